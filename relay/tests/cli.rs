//! The `lt-relay` command line: a bad configuration exits 64 before binding any port, with a
//! message naming the key; the PKI tool's errors name the problem.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::Command;

fn relay() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lt-relay"))
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn bad_configs_exit_64_and_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    assert!(relay()
        .args(["pki", "init", "--dir"])
        .arg(&pki)
        .status()
        .unwrap()
        .success());
    assert!(relay()
        .args(["pki", "issue", "--agency", "000.00.00.H53", "--dir"])
        .arg(&pki)
        .status()
        .unwrap()
        .success());
    // A port that is free now; a good config would bind it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let good = format!(
        "[node]\nagency = \"000.00.00.H53\"\ndata_dir = \"data\"\n[listen]\ngrpc = \"127.0.0.1:{port}\"\n[tls]\nca = \"pki/ca.pem\"\ncert = \"pki/000.00.00.H53.pem\"\nkey = \"pki/000.00.00.H53.key\"\n"
    );
    let cases = [
        (
            "agency",
            good.replace("agency = \"000.00.00.H53\"", "agency = \"000.00.00.h53\""),
            "node.agency",
        ),
        (
            "missing",
            good.replace("agency = \"000.00.00.H53\"\n", ""),
            "node.agency: required",
        ),
        (
            "addr",
            good.replace(&format!("127.0.0.1:{port}"), "nowhere"),
            "listen.grpc",
        ),
        (
            "cafile",
            good.replace("pki/ca.pem", "pki/none.pem"),
            "tls.ca",
        ),
        (
            "parent",
            format!("{good}[parent]\nendpoint = \"http://x:1\"\nagency = \"000.00.00.G22\"\n"),
            "parent.endpoint",
        ),
        (
            "unknown",
            format!("{good}[nodes]\nx = 1\n"),
            "unknown field",
        ),
        (
            "wrongcert",
            good.replace("pki/000.00.00.H53.pem", "pki/ca.pem"),
            "names no agency",
        ),
        (
            "amqp_ca_missing",
            format!("{good}[amqp]\nurl = \"amqps://mq:5671/%2f\"\nca = \"pki/none.pem\"\n"),
            "amqp.ca: ",
        ),
        (
            "amqp_ca_not_a_certificate",
            format!(
                "{good}[amqp]\nurl = \"amqps://mq:5671/%2f\"\nca = \"pki/000.00.00.H53.key\"\n"
            ),
            "holds no PEM certificate",
        ),
        (
            "amqp_ca_without_tls",
            format!("{good}[amqp]\nurl = \"amqp://mq:5672/%2f\"\nca = \"pki/ca.pem\"\n"),
            "amqp.ca: is only used with an amqps:// url",
        ),
    ];
    for (name, text, expect) in cases {
        let cfg = write(dir.path(), &format!("{name}.toml"), &text);
        let out = relay()
            .args(["serve", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{name}: {err}");
        assert!(err.contains(expect), "{name}: {err}");
        // Nothing was bound.
        TcpListener::bind(("127.0.0.1", port)).expect("port still free");
    }
}

#[test]
fn pki_tool_reports_problems() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let out = relay()
        .args(["pki", "issue", "--agency", "000.00.00.H53", "--dir"])
        .arg(&pki)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pki init"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(relay()
        .args(["pki", "init", "--dir"])
        .arg(&pki)
        .status()
        .unwrap()
        .success());
    let out = relay()
        .args(["pki", "issue", "--agency", "000.00.00.X5", "--dir"])
        .arg(&pki)
        .output()
        .unwrap();
    assert!(out.status.success(), "an opaque code is accepted");
    let out = relay()
        .args(["pki", "issue", "--agency", "000.00.00.h53", "--dir"])
        .arg(&pki)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("MXX"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(relay()
        .args([
            "pki",
            "issue",
            "--rsa",
            "--agency",
            "000.00.00.H53",
            "--dir"
        ])
        .arg(&pki)
        .status()
        .unwrap()
        .success());
    let out = relay()
        .args(["pki", "issue", "--agency", "000.00.00.H53", "--dir"])
        .arg(&pki)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert!(relay()
        .args(["pki", "revoke", "--agency", "000.00.00.H53", "--dir"])
        .arg(&pki)
        .status()
        .unwrap()
        .success());
    let out = relay()
        .args(["pki", "list", "--dir"])
        .arg(&pki)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("000.00.00.H53") && l.ends_with("yes")),
        "{text}"
    );
}
