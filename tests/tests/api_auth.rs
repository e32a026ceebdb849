//! The local API with `[[api_client]]` entries, with the real binaries: no or an unknown token
//! is 401, a route outside the client's scopes or an agency it may not act for is 403, each an
//! `api_auth` security event; `/healthz` and `/metrics` stay open unless closed, then only the
//! `monitor` scope reads them; the gateway CLI sends its
//! token from `LT_API_TOKEN`. A node whose API listens beyond loopback with no client refuses to
//! start.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use lienthong_harness::{sample_envelope, ApiClient, Network, NodeSpec};
use support::{code, gateway_exe, relay_exe, security_events, wait_in_inbox};

const ROOT: &str = "000.00.00.G22";
const PROVINCE: &str = "000.00.00.H53";
const DMS_TOKEN: &str = "dms-token-3f9a1c7e5b2d4860";
const OPS_TOKEN: &str = "ops-token-8e21d4a9c07b53f6";

fn sha256_hex(s: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn append_config(config: &std::path::Path, text: &str) {
    let mut s = std::fs::read_to_string(config).unwrap();
    s.push_str(text);
    std::fs::write(config, s).unwrap();
}

/// The HTTP status in an `ApiClient` error (`...: HTTP 403 Forbidden: ...`).
fn status_of(e: &anyhow::Error) -> String {
    let t = e.to_string();
    t.split("HTTP ")
        .nth(1)
        .unwrap_or(&t)
        .chars()
        .take(3)
        .collect()
}

#[test]
fn api_clients_need_a_token_a_scope_and_their_agency() {
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        NodeSpec::new(ROOT, "Văn phòng Chính phủ", None).unwrap(),
        NodeSpec::new(PROVINCE, "UBND tỉnh", Some(ROOT)).unwrap(),
    ];
    let mut net = Network::create(dir.path(), &relay_exe(), &specs).unwrap();
    let config = net.nodes[&code(PROVINCE)].config.clone();
    append_config(
        &config,
        &format!(
            "\n[[api_client]]\nname = \"dms\"\ntoken_sha256 = \"{}\"\nagencies = [\"{PROVINCE}\"]\nscopes = [\"submit\", \"inbox\", \"status\"]\n\n\
             [[api_client]]\nname = \"ops\"\ntoken_sha256 = \"{}\"\nscopes = [\"books\", \"operate\"]\n",
            sha256_hex(DMS_TOKEN),
            sha256_hex(OPS_TOKEN)
        ),
    );
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();

    let api = format!("http://{}", net.nodes[&code(PROVINCE)].api);
    let anonymous = ApiClient::new(&api);
    let stranger = ApiClient::new(&api).with_token(Some("not-a-known-token"));
    let dms = ApiClient::new(&api).with_token(Some(DMS_TOKEN));
    let ops = ApiClient::new(&api).with_token(Some(OPS_TOKEN));
    let doc = || sample_envelope(&code(PROVINCE), &[&code(ROOT)], "12", "Công văn");

    // Open: health and metrics.
    assert!(anonymous.health().is_ok());
    assert!(anonymous.get_text("/metrics").is_ok());
    // 401 without or with an unknown token.
    let e = anonymous.submit(doc()).unwrap_err();
    assert_eq!(status_of(&e), "401", "{e}");
    assert!(e.to_string().contains("Bearer"), "{e}");
    let e = stranger.get_json("/v1/inbox").unwrap_err();
    assert_eq!(status_of(&e), "401", "{e}");
    // 403 outside the scopes.
    let e = ops.submit(doc()).unwrap_err();
    assert_eq!(status_of(&e), "403", "{e}");
    assert!(e.to_string().contains("\"submit\""), "{e}");
    let e = dms
        .get_json(&format!("/v1/registers/{PROVINCE}?direction=out"))
        .unwrap_err();
    assert_eq!(status_of(&e), "403", "{e}");
    // 403 for an agency the client may not act for.
    let e = dms
        .submit(sample_envelope(
            &code(ROOT),
            &[&code(PROVINCE)],
            "13",
            "Giả mạo",
        ))
        .unwrap_err();
    assert_eq!(status_of(&e), "403", "{e}");
    assert!(
        e.to_string().contains(&format!("may not act for {ROOT}")),
        "{e}"
    );

    // Allowed: the DMS sends for its agency, the document arrives; the operator reads books.
    let (id, _) = dms.submit(doc()).unwrap();
    let root = net.client(&code(ROOT)).unwrap();
    wait_in_inbox(&root, &code(ROOT), &[id], 60, "the document at the root");
    let book = ops
        .get_json(&format!("/v1/registers/{PROVINCE}?direction=out"))
        .unwrap();
    assert_eq!(book["rows"].as_array().map(Vec::len), Some(1), "{book}");

    // The gateway CLI: refused without a token, served with LT_API_TOKEN.
    let run = |token: Option<&str>| {
        let mut c = std::process::Command::new(gateway_exe());
        c.args(["--api", &api, "inbox", "--agency", PROVINCE]);
        c.env_remove("LT_API_TOKEN");
        if let Some(t) = token {
            c.env("LT_API_TOKEN", t);
        }
        c.output().unwrap()
    };
    let out = run(None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(Some(DMS_TOKEN));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every refusal is an event and counted.
    std::env::set_var("LT_API_TOKEN", OPS_TOKEN);
    let refusals: Vec<_> = security_events(&net, PROVINCE)
        .into_iter()
        .filter(|e| e["class"] == "api_auth")
        .collect();
    std::env::remove_var("LT_API_TOKEN");
    assert_eq!(refusals.len(), 6, "{refusals:#?}");
    let metrics = anonymous.get_text("/metrics").unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("reason=\"api_auth\"") && l.trim_end().ends_with(" 6")),
        "{metrics}"
    );
}

#[test]
fn an_api_beyond_loopback_without_clients_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let specs = [NodeSpec::new(ROOT, "Văn phòng Chính phủ", None).unwrap()];
    let net = Network::create(dir.path(), &relay_exe(), &specs).unwrap();
    let config = net.nodes[&code(ROOT)].config.clone();
    let api = net.nodes[&code(ROOT)].api;
    let open = config.with_file_name("open.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&format!("api = \"{api}\""), "api = \"0.0.0.0:0\"");
    assert!(text.contains("api = \"0.0.0.0:0\""), "{text}");
    std::fs::write(&open, text).unwrap();
    let out = std::process::Command::new(relay_exe())
        .args(["serve", "--config"])
        .arg(&open)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listen.api") && err.contains("[[api_client]]"),
        "{err}"
    );
}

#[test]
fn metrics_can_be_closed_to_all_but_monitoring_clients() {
    const MON_TOKEN: &str = "mon-token-51c0e7a2d9b84f36";
    let dir = tempfile::tempdir().unwrap();
    let specs = [NodeSpec::new(ROOT, "Văn phòng Chính phủ", None).unwrap()];
    let mut net = Network::create(dir.path(), &relay_exe(), &specs).unwrap();
    let config = net.nodes[&code(ROOT)].config.clone();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen("[listen]\n", "[listen]\napi_open_metrics = false\n", 1),
    )
    .unwrap();
    append_config(
        &config,
        &format!(
            "\n[[api_client]]\nname = \"prometheus\"\ntoken_sha256 = \"{}\"\nscopes = [\"monitor\"]\n",
            sha256_hex(MON_TOKEN)
        ),
    );
    net.start_all().unwrap();
    let api = format!("http://{}", net.nodes[&code(ROOT)].api);
    let anonymous = ApiClient::new(&api);
    let monitor = ApiClient::new(&api).with_token(Some(MON_TOKEN));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // Health stays open (the default).
    while anonymous.health().is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the node did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let e = anonymous.get_text("/metrics").unwrap_err();
    assert_eq!(status_of(&e), "401", "{e}");
    let metrics = monitor.get_text("/metrics").unwrap();
    assert!(metrics.contains("lienthong_refused_total"), "{metrics}");
    // The monitor scope reads metrics and health only.
    let e = monitor.get_json("/v1/security/events").unwrap_err();
    assert_eq!(status_of(&e), "403", "{e}");
    assert!(e.to_string().contains("operate"), "{e}");
    net.stop_all();
}
