//! Compiles proto/lienthong/v1/*.proto with protox (pure Rust), so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "lienthong/v1/envelope.proto",
        "lienthong/v1/receipt.proto",
        "lienthong/v1/link.proto",
        "lienthong/v1/gateway.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    let mut builder = tonic_prost_build::configure()
        // JSON forms for the local HTTP API: every message is serde, missing fields default.
        .type_attribute(
            ".lienthong.v1",
            "#[derive(serde::Serialize, serde::Deserialize)]",
        )
        .message_attribute(".lienthong.v1", "#[serde(default)]")
        // Ordered maps: a signed summary re-encodes to the same bytes on every node.
        .btree_map(".lienthong.v1");
    for field in [
        "AttachmentManifest.sha256",
        "AttachmentChunk.sha256",
        "ChunkRequest.sha256",
        "Signature.value",
        "AttachmentChunk.data",
        "SubmitAttachment.data",
        "TimeStamp.token",
        "HashStep.sibling",
    ] {
        builder = builder.field_attribute(
            format!(".lienthong.v1.{field}"),
            "#[serde(with = \"crate::hex_bytes\")]",
        );
    }
    builder = builder.field_attribute(
        ".lienthong.v1.Signature.certificate_chain",
        "#[serde(with = \"crate::hex_bytes_list\")]",
    );
    // The services only with the `grpc` feature: the node core uses the messages alone.
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    builder
        .build_client(grpc)
        .build_server(grpc)
        .compile_fds(fds)?;
    Ok(())
}
