//! The lienthong gateway (`lt-gateway`): the node of a district or commune office that has no
//! broker and no children, plus the staff commands that talk to a node's local API.
//!
//! # Layout
//! - [`cli`]: the command line: `serve` (a node with no link listener, run by the relay's
//!   serving code, so its link, store and local API are the same implementation) and the staff
//!   commands (`send`, `inbox`, `fetch`, `ack`, `status`, `recall`, `track`).

pub mod cli;
