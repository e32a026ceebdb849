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
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
