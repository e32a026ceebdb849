//! Wire contract of the lienthong interchange: the protobuf messages and (with the `grpc`
//! feature) the gRPC services of package `lienthong.v1`, generated at build time from
//! `proto/lienthong/v1/*.proto`.
//!
//! - `envelope.proto`: the document envelope (edXML MessageHeader meanings) and its signature.
//! - `receipt.proto`: business status receipts and, separately, transport events.
//! - `link.proto`: the relay link service (one bidirectional stream per parent–child pair).
//! - `gateway.proto`: the local document service a node offers to DMS software and staff tools.
//!
//! docs/protocol.md documents every field.

#![allow(missing_docs, unreachable_pub, clippy::all)]

/// Byte fields in JSON: lowercase hex strings.
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes bytes as hex.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    /// Deserializes hex into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

/// Lists of byte strings in JSON: arrays of lowercase hex strings.
pub mod hex_bytes_list {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes a list of byte strings as hex strings.
    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(hex::encode))
    }

    /// Deserializes hex strings into byte strings.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        v.into_iter()
            .map(|s| hex::decode(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// Package `lienthong.v1`.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/lienthong.v1.rs"));
}
