//! Evidence that holds up outside lienthong: RFC 3161 time-stamps over document signatures,
//! per-document proof bundles, and the signatures inside PDF attachments.
//!
//! # Layout
//! - [`batch`]: the SHA-256 hash tree over a batch of document signatures, its root and each
//!   document's path to it.
//! - [`tsa`]: RFC 3161 time-stamps over a batch root: the request, the response, the token's
//!   check, and the check of one document's stored stamp (`verify_document_stamp`).
//! - [`chain`]: certificate chains to trust anchors at a given time, with CRLs; shared by every
//!   check that meets a certificate.
//! - [`pdf`]: the signatures inside a PDF (`check_pdf`): where they are, what they cover,
//!   whether their CMS, signer chain and embedded time-stamp verify.

pub mod batch;
pub mod chain;
pub mod pdf;
pub mod tsa;
