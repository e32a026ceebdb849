//! Shared by the end-to-end tests: finding the real binaries, building networks of them,
//! waiting for conditions.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lienthong_common::agency::AgencyCode;
use lienthong_harness::{Network, NodeSpec};

pub(crate) mod pdf;
pub(crate) mod tsa;

/// The `lt-relay` binary built by this `cargo test` run (the relay package's own integration
/// tests make cargo build it).
pub(crate) fn relay_exe() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let exe = target.join(profile).join("lt-relay");
    assert!(
        exe.exists(),
        "{} not built: run the tests with `cargo test --workspace`",
        exe.display()
    );
    exe
}

pub(crate) fn code(s: &str) -> AgencyCode {
    AgencyCode::parse(s).unwrap()
}

/// Creates and starts a network in a temporary folder and waits until it is linked.
pub(crate) fn start(specs: &[NodeSpec]) -> (tempfile::TempDir, Network) {
    let dir = tempfile::tempdir().unwrap();
    let mut net = Network::create(dir.path(), &relay_exe(), specs).unwrap();
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();
    (dir, net)
}

/// An organization whose name is its code.
#[allow(dead_code)]
pub(crate) fn org(code: &str) -> lienthong_proto::v1::Organization {
    lienthong_proto::v1::Organization {
        code: code.into(),
        name: code.into(),
        ..Default::default()
    }
}

/// The `lt-gateway` binary beside `lt-relay`.
#[allow(dead_code)]
pub(crate) fn gateway_exe() -> PathBuf {
    relay_exe().with_file_name("lt-gateway")
}

/// Two provinces under the root, each with one commune gateway (`a` under 000.00.00.H53, `b`
/// under 000.00.00.H49), started and linked.
#[allow(dead_code)]
pub(crate) fn two_gateways(a: &str, b: &str) -> (tempfile::TempDir, Network) {
    let dir = tempfile::tempdir().unwrap();
    let specs = vec![
        NodeSpec::new("000.00.00.G22", "Root", None).unwrap(),
        NodeSpec::new("000.00.00.H53", "Tỉnh A", Some("000.00.00.G22")).unwrap(),
        NodeSpec::gateway(a, "Xã A", "000.00.00.H53").unwrap(),
        NodeSpec::new("000.00.00.H49", "Tỉnh B", Some("000.00.00.G22")).unwrap(),
        NodeSpec::gateway(b, "Xã B", "000.00.00.H49").unwrap(),
    ];
    let mut net = Network::create(dir.path(), &relay_exe(), &specs)
        .unwrap()
        .with_gateway_exe(&gateway_exe());
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();
    (dir, net)
}

/// Waits until every envelope of `ids` is in `agency`'s inbox (read through `client`).
#[allow(dead_code)]
pub(crate) fn wait_in_inbox(
    client: &lienthong_harness::ApiClient,
    agency: &AgencyCode,
    ids: &[String],
    timeout_secs: u64,
    what: &str,
) {
    wait_for(Duration::from_secs(timeout_secs), what, || {
        let inbox = client.inbox(agency).unwrap();
        ids.iter()
            .all(|id| inbox.iter().any(|e| &e.envelope.id == id))
            .then_some(())
    });
}

/// Polls `f` until it returns Some or `timeout` passes.
pub(crate) fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Prints the tail of every node log (for a failing test's output).
pub(crate) fn dump_logs(net: &Network) {
    for n in net.nodes.values() {
        let text = std::fs::read_to_string(&n.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("==== {} ====", n.spec.agency);
        for l in &lines[lines.len().saturating_sub(30)..] {
            eprintln!("{l}");
        }
    }
}

/// SHA-256 of a file, hex, read in 1 MiB pieces.
pub(crate) fn sha256_file(path: &std::path::Path) -> String {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The classes of the security events a node recorded, read with `lt-relay security events`.
pub(crate) fn security_event_classes(config: &std::path::Path) -> Vec<String> {
    security_events_at(config)
        .iter()
        .map(|e| e["class"].as_str().unwrap().to_owned())
        .collect()
}

/// A node's security events as JSON objects, read with `lt-relay security events --json`.
pub(crate) fn security_events(net: &Network, agency: &str) -> Vec<serde_json::Value> {
    security_events_at(&net.nodes[&code(agency)].config)
}

/// The security events of the node configured by `config`, as JSON objects.
pub(crate) fn security_events_at(config: &std::path::Path) -> Vec<serde_json::Value> {
    security_events_with_token(config, None)
}

/// The same, read with the API token `token` (`LT_API_TOKEN`) when given.
pub(crate) fn security_events_with_token(
    config: &std::path::Path,
    token: Option<&str>,
) -> Vec<serde_json::Value> {
    let mut cmd = std::process::Command::new(relay_exe());
    cmd.args(["security", "events", "--json", "--config"])
        .arg(config);
    if let Some(t) = token {
        cmd.env("LT_API_TOKEN", t);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The SHA-256 of `s`, in hex: what an `[[api_client]]` holds of its token.
pub(crate) fn sha256_hex(s: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the `openssl` command line in `dir`; panics with its output when it fails.
pub(crate) fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed ECDSA P-256 certificate `name.pem` with its key `name.key`, valid `days`
/// days, with `more` arguments for `openssl req`.
pub(crate) fn openssl_self_signed(
    dir: &std::path::Path,
    name: &str,
    days: &str,
    subject: &str,
    more: &[&str],
) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    let mut args = vec![
        "req",
        "-x509",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        &key,
        "-out",
        &pem,
        "-days",
        days,
        "-subj",
        subject,
    ];
    args.extend_from_slice(more);
    openssl(dir, &args);
}

/// Whether the node `at` reports its link to `peer` up (`lienthong_link_up`).
pub(crate) fn link_up(net: &Network, at: &str, peer: &str) -> bool {
    let metrics = net.client(&code(at)).unwrap().get_text("/metrics").unwrap();
    metrics.lines().any(|l| {
        l.starts_with("lienthong_link_up{") && l.contains(peer) && l.trim_end().ends_with(" 1")
    })
}

/// `lt-relay pki revoke` of `agency` in the network's PKI folder, and nothing else.
pub(crate) fn revoke(net: &Network, agency: &str) {
    let out = std::process::Command::new(relay_exe())
        .args(["pki", "revoke", "--agency", agency, "--dir"])
        .arg(net.pki_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Processes a test started by hand, killed when it ends however it ends.
pub(crate) struct Procs(pub(crate) Vec<std::process::Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
