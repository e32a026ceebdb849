//! Wire contract of the lienthong interchange: the protobuf messages and gRPC services of
//! package `lienthong.v1`, generated at build time from `proto/lienthong/v1/*.proto`.
//!
//! - `envelope.proto`: the document envelope (edXML MessageHeader meanings) and its signature.
//! - `receipt.proto`: business status receipts and, separately, transport events.
//! - `link.proto`: the relay link service (one bidirectional stream per parent–child pair).
//! - `gateway.proto`: the local document service a node offers to DMS software and staff tools.
//!
//! docs/protocol.md documents every field.

#![allow(missing_docs, unreachable_pub, clippy::all)]

/// Package `lienthong.v1`.
pub mod v1 {
    tonic::include_proto!("lienthong.v1");
}
