//! Evidence that holds up outside lienthong: RFC 3161 time-stamps over document signatures,
//! per-document proof bundles, and the signatures inside PDF attachments.
//!
//! # Layout
//! - [`batch`]: the SHA-256 hash tree over a batch of document signatures, its root and each
//!   document's path to it.
//! - [`tsa`]: RFC 3161 time-stamps over a batch root: the request, the response, the check of
//!   one document's stored stamp (`verify_document_stamp`), and the one check of a token,
//!   whatever it stamps.
//! - [`chain`]: certificate chains to trust anchors at a given time, with CRLs; shared by every
//!   check that meets a certificate.
//! - `cms_sig` (private): the one check of a CMS signer (RFC 5652 form, content-type and
//!   messageDigest attributes, the signature with the signer's certificate), shared by
//!   time-stamp tokens and PDF signatures.
//! - [`pdf`]: the signatures inside a PDF (`check_pdf`): where they are, what they cover,
//!   whether their CMS, signer chain and embedded time-stamp verify; time-stamp tokens are
//!   checked by [`tsa`], whatever they stamp.

pub mod batch;
pub mod chain;
mod cms_sig;
pub mod pdf;
pub mod tsa;
