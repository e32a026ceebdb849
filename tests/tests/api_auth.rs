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
use support::{code, gateway_exe, openssl, relay_exe, security_events, sha256_hex, wait_in_inbox};

const ROOT: &str = "000.00.00.G22";
const PROVINCE: &str = "000.00.00.H53";
const DMS_TOKEN: &str = "dms-token-3f9a1c7e5b2d4860";
const OPS_TOKEN: &str = "ops-token-8e21d4a9c07b53f6";

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

/// A CA and one client certificate issued by it, with the `openssl` command line: `<name>-ca.pem`
/// and `<name>.pem` / `<name>.key` (CN `cn`) in `dir`.
fn openssl_client_pki(dir: &std::path::Path, name: &str, cn: &str) {
    let ca = format!("{name}-ca");
    support::openssl_self_signed(
        dir,
        &ca,
        "30",
        &format!("/O=lienthong tests/CN={name} API clients CA"),
        &[
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    std::fs::write(
        dir.join(format!("{name}.ext")),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// The `api_tls_auth` requirement in `lt-relay assess --level 3` of the node configured by `config`.
fn api_tls_check(config: &std::path::Path) -> serde_json::Value {
    let out = std::process::Command::new(relay_exe())
        .args(["assess", "--level", "3", "--json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "api_tls_auth")
        .cloned()
        .unwrap()
}

#[test]
fn the_api_over_tls_takes_tokens_and_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        NodeSpec::new(ROOT, "Văn phòng Chính phủ", None).unwrap(),
        NodeSpec::new(PROVINCE, "UBND tỉnh", Some(ROOT)).unwrap(),
    ];
    let mut net = Network::create(dir.path(), &relay_exe(), &specs).unwrap();
    // The DMS's certificate from the province's own CA for API clients; a look-alike from a CA
    // the node does not trust.
    let certs = dir.path().join("api-clients");
    std::fs::create_dir_all(&certs).unwrap();
    openssl_client_pki(&certs, "dms", "dms-tayninh");
    openssl_client_pki(&certs, "rogue", "dms-tayninh");
    // The IT centre's monitoring station, from a second CA for API clients.
    openssl_client_pki(&certs, "watch", "watch-tayninh");
    let client_cas = certs.join("client-cas.pem");
    std::fs::write(
        &client_cas,
        std::fs::read_to_string(certs.join("dms-ca.pem")).unwrap()
            + &std::fs::read_to_string(certs.join("watch-ca.pem")).unwrap(),
    )
    .unwrap();
    let config = net.nodes[&code(PROVINCE)].config.clone();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen(
            "[listen]\n",
            &format!(
                "[listen]\napi_tls = true\napi_client_ca = \"{}\"\n",
                client_cas.display()
            ),
            1,
        ),
    )
    .unwrap();
    append_config(
        &config,
        &format!(
            "\n[[api_client]]\nname = \"dms\"\ncertificate_cn = \"dms-tayninh\"\nagencies = [\"{PROVINCE}\"]\nscopes = [\"submit\", \"inbox\", \"status\"]\n\n\
             [[api_client]]\nname = \"watch\"\ncertificate_cn = \"watch-tayninh\"\nscopes = [\"monitor\"]\n\n\
             [[api_client]]\nname = \"ops\"\ntoken_sha256 = \"{}\"\nscopes = [\"books\", \"operate\"]\n",
            sha256_hex(OPS_TOKEN)
        ),
    );
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();

    let addr = net.nodes[&code(PROVINCE)].api;
    let https = format!("https://{addr}");
    let ca = net.pki_dir().join("ca.pem");
    let anonymous = ApiClient::new(&https).with_tls(&ca, None).unwrap();
    let dms = ApiClient::new(&https)
        .with_tls(&ca, Some((&certs.join("dms.pem"), &certs.join("dms.key"))))
        .unwrap();
    let rogue = ApiClient::new(&https)
        .with_tls(
            &ca,
            Some((&certs.join("rogue.pem"), &certs.join("rogue.key"))),
        )
        .unwrap();
    let ops = ApiClient::new(&https)
        .with_tls(&ca, None)
        .unwrap()
        .with_token(Some(OPS_TOKEN));
    let doc = || sample_envelope(&code(PROVINCE), &[&code(ROOT)], "21", "Công văn qua HTTPS");

    // Plain HTTP gets no answer from an HTTPS listener.
    assert!(ApiClient::new(&format!("http://{addr}")).health().is_err());
    // A server certificate from another CA is not accepted by the client.
    let other_ca = certs.join("rogue-ca.pem");
    assert!(ApiClient::new(&https)
        .with_tls(&other_ca, None)
        .unwrap()
        .health()
        .is_err());
    // Open routes answer over HTTPS; the rest needs a credential.
    assert!(anonymous.health().is_ok());
    let e = anonymous.submit(doc()).unwrap_err();
    assert_eq!(status_of(&e), "401", "{e}");
    assert!(e.to_string().contains("client certificate"), "{e}");
    // A client certificate from a CA the node does not trust ends the handshake.
    let e = rogue.health().unwrap_err();
    assert!(!e.to_string().contains("HTTP "), "{e}");
    // The DMS's certificate is its credential: it sends for its agency, not for the books.
    let (id, _) = dms.submit(doc()).unwrap();
    let root = net.client(&code(ROOT)).unwrap();
    wait_in_inbox(&root, &code(ROOT), &[id], 60, "the document at the root");
    let e = dms
        .get_json(&format!("/v1/registers/{PROVINCE}?direction=out"))
        .unwrap_err();
    assert_eq!(status_of(&e), "403", "{e}");
    // A token works over HTTPS as well.
    let book = ops
        .get_json(&format!("/v1/registers/{PROVINCE}?direction=out"))
        .unwrap();
    assert_eq!(book["rows"].as_array().map(Vec::len), Some(1), "{book}");

    // The console: a certificate with the monitor scope logs in by itself (a session cookie
    // comes with the page); one without the scope, and no certificate at all, get the form.
    let watch = ApiClient::new(&https)
        .with_tls(
            &ca,
            Some((&certs.join("watch.pem"), &certs.join("watch.key"))),
        )
        .unwrap();
    let page = watch.get_text("/console").unwrap();
    assert!(page.contains("href=\"/console/security\""), "{page}");
    assert!(page.contains(PROVINCE), "{page}");
    // A client that keeps no cookie is given the same session again, not one more.
    assert!(watch.get_text("/console/security").is_ok());
    let log = std::fs::read_to_string(&net.nodes[&code(PROVINCE)].log).unwrap_or_default();
    assert_eq!(
        log.matches("console log-in by client certificate").count(),
        1,
        "{log}"
    );
    for (who, client) in [("dms", &dms), ("anonymous", &anonymous)] {
        let e = client.get_text("/console").unwrap_err();
        assert_eq!(status_of(&e), "401", "{who}: {e}");
    }

    // The gateway CLI: --api-ca is required for https://, then its certificate identifies it.
    let run = |args: &[&str]| {
        let mut c = std::process::Command::new(gateway_exe());
        c.args(["--api", &https]);
        c.args(args);
        c.args(["inbox", "--agency", PROVINCE]);
        for k in ["LT_API_TOKEN", "LT_API_CA", "LT_API_CERT", "LT_API_KEY"] {
            c.env_remove(k);
        }
        c.output().unwrap()
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--api-ca"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ca_arg = ca.to_str().unwrap();
    let out = run(&["--api-ca", ca_arg]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let cert = certs.join("dms.pem");
    let key = certs.join("dms.key");
    let out = run(&[
        "--api-ca",
        ca_arg,
        "--api-cert",
        cert.to_str().unwrap(),
        "--api-key",
        key.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Refusals are api_auth events: the anonymous submit and the DMS's books request at least,
    // each naming what was missing.
    // Read with `lt-relay security events`, which reaches the HTTPS API itself (the node's
    // CA from its configuration, the token from LT_API_TOKEN).
    let out = std::process::Command::new(relay_exe())
        .args(["security", "events", "--json", "--config"])
        .arg(&config)
        .env("LT_API_TOKEN", OPS_TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = String::from_utf8_lossy(&out.stdout).to_string();
    let reasons: Vec<String> = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["class"] == "api_auth")
        .map(|e| e["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("client certificate is required")),
        "{events}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("API client dms lacks")),
        "{events}"
    );
    assert!(
        reasons.iter().any(|r| r.contains(
            "console: API client dms (client certificate dms-tayninh) has neither the operate nor the monitor scope"
        )),
        "{events}"
    );

    // `assess` finds the API authenticated and on TLS (a level-3 requirement), and not so on
    // the root, whose API is plain HTTP without clients.
    let check = api_tls_check(&config);
    assert_eq!(check["met"], true, "{check:#}");
    let check = api_tls_check(&net.nodes[&code(ROOT)].config);
    assert_eq!(check["met"], false, "{check:#}");
    assert!(
        check["evidence"].as_str().unwrap().contains("api_tls"),
        "{check:#}"
    );
}

#[test]
fn inconsistent_api_tls_settings_stop_the_node_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let specs = [NodeSpec::new(ROOT, "Văn phòng Chính phủ", None).unwrap()];
    let net = Network::create(dir.path(), &relay_exe(), &specs).unwrap();
    let config = net.nodes[&code(ROOT)].config.clone();
    let text = std::fs::read_to_string(&config).unwrap();
    let ca = net.pki_dir().join("ca.pem");
    let serve = |name: &str, text: String| {
        let path = config.with_file_name(name);
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(relay_exe())
            .args(["serve", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // A client CA on a plain-HTTP API.
    let (status, err) = serve(
        "plain.toml",
        text.replacen(
            "[listen]\n",
            &format!("[listen]\napi_client_ca = \"{}\"\n", ca.display()),
            1,
        ),
    );
    assert_eq!(status, Some(64), "{err}");
    assert!(
        err.contains("listen.api_client_ca") && err.contains("api_tls"),
        "{err}"
    );
    // A client identified by certificate where no CA issues API client certificates.
    let (status, err) = serve(
        "nocA.toml",
        text.replacen("[listen]\n", "[listen]\napi_tls = true\n", 1)
            + "\n[[api_client]]\nname = \"dms\"\ncertificate_cn = \"dms\"\nscopes = [\"submit\"]\n",
    );
    assert_eq!(status, Some(64), "{err}");
    assert!(
        err.contains("certificate_cn") && err.contains("api_client_ca"),
        "{err}"
    );
    // A client with no credential at all.
    let (status, err) = serve(
        "nocred.toml",
        text.clone() + "\n[[api_client]]\nname = \"dms\"\nscopes = [\"submit\"]\n",
    );
    assert_eq!(status, Some(64), "{err}");
    assert!(err.contains("credential"), "{err}");
}
