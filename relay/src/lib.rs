//! The lienthong relay (`lt-relay`).
//!
//! # Layout
//! - [`cli`]: the command line and its dispatch.
//! - [`pki_cmd`]: `lt-relay pki`, the development certificate authority.

pub mod cli;
pub mod pki_cmd;
