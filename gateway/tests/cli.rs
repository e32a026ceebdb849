//! `lt-gateway` command-line errors that need no running network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn gw() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lt-gateway"))
}

#[test]
fn a_gateway_config_with_a_link_listener_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gw.toml");
    std::fs::write(&cfg, "[node]\nagency = \"000.21.31.H53\"\ndata_dir = \"d\"\n[listen]\ngrpc = \"127.0.0.1:1\"\n[tls]\nca = \"gw.toml\"\ncert = \"gw.toml\"\nkey = \"gw.toml\"\n[parent]\nendpoint = \"https://127.0.0.1:2\"\nagency = \"000.00.31.H53\"\n").unwrap();
    let out = gw().args(["serve", "--config"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen.grpc: a gateway has no children"));
}

#[test]
fn staff_commands_explain_what_is_wrong() {
    // Nothing listens on port 9 of loopback.
    let out = gw()
        .args(["--api", "http://127.0.0.1:9", "inbox"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the node's API at http://127.0.0.1:9"),
        "{err}"
    );
    assert!(err.contains("--api"), "{err}");

    let out = gw()
        .args([
            "--api",
            "http://127.0.0.1:9",
            "send",
            "--to",
            "000.00.00.h53",
            "--number",
            "1",
            "--subject",
            "x",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("000.00.00.h53") && err.contains("VVV.ZZ.YY.MXX"),
        "{err}"
    );

    let out = gw()
        .args([
            "--api",
            "http://127.0.0.1:9",
            "send",
            "--to",
            "000.00.00.H53",
            "--number",
            "1",
            "--subject",
            "x",
            "--file",
            "/nonexistent/a.pdf",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/a.pdf") && err.contains("not found"),
        "{err}"
    );
}
