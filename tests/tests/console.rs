//! The operator console in a real browser: headless Chromium driven over WebDriver by Debian's
//! chromedriver, against a root and a province set up with `lt-relay init` (HTTPS API, API
//! clients with tokens). It checks: the log-in refuses a wrong token; the network page lists
//! the province, and shows it down once its process is killed; a document the province sends
//! is found by its id, with its track, and is in the root's incoming register; a refused link (a node that is
//! not a child of the root) appears under security; an operator backs up from the page; a
//! read-only client sees no backup button and is refused when it posts one. A screenshot of each
//! page goes to the test's output folder and must not be blank.
//!
//! Needs /usr/bin/chromium and /usr/bin/chromedriver (README's test command installs them):
//! without them it prints that it was skipped, and fails when `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lienthong_harness::free_addr;
use serde_json::{json, Value};
use support::{gateway_exe, relay_exe, sha256_hex, wait_for, Procs};

const ROOT: &str = "000.00.00.G22";
const PROVINCE: &str = "000.00.00.H53";
/// A commune of another province: not a child of the root, so its link is refused.
const STRAY: &str = "000.21.31.H49";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A WebDriver session of headless Chromium.
struct Browser {
    agent: ureq::Agent,
    base: String,
    _driver: Procs,
}

impl Browser {
    fn start(profile: &Path) -> Self {
        let port = free_addr().unwrap().port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let root = format!("http://127.0.0.1:{port}");
        wait_for(Duration::from_secs(30), "chromedriver", || {
            agent
                .get(&format!("{root}/status"))
                .call()
                .ok()
                .filter(|r| r.status() == 200)
                .map(|_| ())
        });
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--window-size=1400,900",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let mut resp = agent
            .post(&format!("{root}/session"))
            .send_json(&caps)
            .unwrap();
        let v: Value = resp.body_mut().read_json().unwrap();
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_owned();
        Self {
            agent,
            base: format!("{root}/session/{id}"),
            _driver: Procs(vec![driver]),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let mut resp = match (method, body) {
            ("GET", _) => self.agent.get(&url).call().unwrap(),
            ("DELETE", _) => self.agent.delete(&url).call().unwrap(),
            (_, b) => self
                .agent
                .post(&url)
                .send_json(b.unwrap_or_else(|| json!({})))
                .unwrap(),
        };
        let v: Value = resp.body_mut().read_json().unwrap();
        v["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn element(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    fn has(&self, css: &str) -> bool {
        let v = self.call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_array().is_some_and(|a| !a.is_empty())
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn click(&self, css: &str) {
        let e = self.element(css);
        self.call("POST", &format!("/element/{e}/click"), None);
    }

    /// Runs `script` in the page and returns its value.
    fn execute(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    fn source(&self) -> String {
        self.call("GET", "/source", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.call("GET", &format!("/cookie/{name}"), None)["value"]
            .as_str()
            .map(str::to_owned)
    }

    fn delete_cookies(&self) {
        self.call("DELETE", "/cookie", None);
    }

    /// Saves a screenshot of the page as `dir/name.png` and checks it is not blank.
    fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let b64 = self.call("GET", "/screenshot", None);
        let png = base64_decode(b64.as_str().unwrap());
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap();
        assert_not_blank(&png, &path);
        if let Some(docs) = std::env::var_os("LT_CONSOLE_SCREENSHOTS") {
            std::fs::copy(&path, Path::new(&docs).join(format!("{name}.png"))).unwrap();
        }
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.base).call();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// The HTML of `node`'s row in the network page's source.
fn node_row(page: &str, node: &str) -> Option<String> {
    page.split("<tr")
        .find(|r| r.contains(&format!("data-node=\"{node}\"")))
        .map(str::to_owned)
}

/// A page screenshot is not blank: it has text and colours, not one flat fill.
fn assert_not_blank(png: &[u8], path: &Path) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bytes = &buf[..info.buffer_size()];
    let px = info.color_type.samples();
    let mut colours = std::collections::HashMap::<&[u8], usize>::new();
    for p in bytes.chunks(px) {
        *colours.entry(p).or_default() += 1;
    }
    let total = bytes.len() / px;
    let commonest = colours.values().copied().max().unwrap_or(0);
    assert!(
        colours.len() > 16 && commonest * 100 / total < 98,
        "{} looks blank: {} colours, the commonest on {}% of the pixels",
        path.display(),
        colours.len(),
        commonest * 100 / total
    );
}

fn run(args: &[&str]) -> String {
    let out = Command::new(relay_exe()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "lt-relay {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `lt-relay init` of a node in `work/folder`, its request signed by the CA in `work/ca`.
fn node(work: &Path, folder: &str, extra: &[&str]) -> (PathBuf, String, String) {
    let dir = work.join(folder);
    let api = free_addr().unwrap().to_string();
    let link = free_addr().unwrap().to_string();
    let s = |p: PathBuf| p.to_str().unwrap().to_owned();
    let mut args: Vec<String> = [
        "init",
        "--dir",
        &s(dir.clone()),
        "--data-dir",
        &s(dir.join("data")),
        "--backup-dir",
        &s(dir.join("backup")),
        "--ca",
        &s(work.join("ca/ca.pem")),
        "--crl",
        &s(work.join("ca/ca.crl")),
        "--api",
        &api,
        "--listen",
        &link,
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&argv);
    let agency = extra[extra.iter().position(|a| *a == "--agency").unwrap() + 1];
    let pki = dir.join("pki");
    run(&[
        "pki",
        "sign-csr",
        "--dir",
        &s(work.join("ca")),
        "--csr",
        &s(pki.join(format!("{agency}.csr"))),
        "--out",
        &s(pki.join(format!("{agency}.pem"))),
    ]);
    (dir.join("node.toml"), api, link)
}

/// An HTTPS client that trusts the CA `ca` and follows at most `redirects` redirects.
fn agent(ca: &Path, redirects: u32) -> ureq::Agent {
    let _ = rustls::crypto::ring::default_provider().install_default();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(redirects)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&[
                    ureq::tls::Certificate::from_pem(&std::fs::read(ca).unwrap())
                        .unwrap()
                        .to_owned(),
                ]))
                .build(),
        )
        .build()
        .into()
}

fn serve(config: &Path, log: PathBuf) -> Child {
    Command::new(relay_exe())
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

#[test]
fn the_console_in_a_browser() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {CHROMIUM} or {CHROMEDRIVER} is missing: README's test command installs them"
        );
        eprintln!("skipped: {CHROMIUM} or {CHROMEDRIVER} missing (apt-get install chromium chromium-driver)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    run(&["pki", "init", "--dir", w.join("ca").to_str().unwrap()]);

    let (root_cfg, root_api, root_link) = node(
        w,
        "root",
        &[
            "--tier",
            "root",
            "--agency",
            ROOT,
            "--name",
            "Văn phòng Chính phủ",
        ],
    );
    // A read-only client beside the operator that init wrote.
    let viewer_token = "xem-chi-doc-0123456789abcdef";
    std::fs::OpenOptions::new()
        .append(true)
        .open(&root_cfg)
        .unwrap()
        .write_all(
            format!(
                "\n[[api_client]]\nname = \"viewer\"\ntoken_sha256 = \"{}\"\nscopes = [\"monitor\", \"books\", \"inbox\"]\n",
                sha256_hex(viewer_token)
            )
            .as_bytes(),
        )
        .unwrap();
    let operator_token = std::fs::read_to_string(w.join("root/node.token"))
        .unwrap()
        .trim()
        .to_owned();
    let endpoint = format!("https://{root_link}");
    let (province_cfg, province_api, _) = node(
        w,
        "province",
        &[
            "--tier",
            "province",
            "--agency",
            PROVINCE,
            "--name",
            "UBND tỉnh Tây Ninh",
            "--parent-endpoint",
            &endpoint,
            "--parent-agency",
            ROOT,
        ],
    );
    // The province's document-management software: a client that may send.
    let dms_token = "dms-tay-ninh-0123456789abcdef";
    std::fs::OpenOptions::new()
        .append(true)
        .open(&province_cfg)
        .unwrap()
        .write_all(
            format!(
                "\n[[api_client]]\nname = \"dms\"\ntoken_sha256 = \"{}\"\nscopes = [\"submit\", \"inbox\", \"status\", \"books\"]\n",
                sha256_hex(dms_token)
            )
            .as_bytes(),
        )
        .unwrap();
    let (stray_cfg, _, _) = node(
        w,
        "stray",
        &[
            "--tier",
            "commune",
            "--agency",
            STRAY,
            "--name",
            "UBND xã lạc đường",
            "--parent-endpoint",
            &endpoint,
            "--parent-agency",
            ROOT,
        ],
    );
    // The province's key readable by others: its attestation says key_permissions is not met.
    {
        use std::os::unix::fs::PermissionsExt;
        let key = w.join(format!("province/pki/{PROVINCE}.key"));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut procs = Procs(vec![serve(&root_cfg, w.join("root.log"))]);
    procs.0.push(serve(&province_cfg, w.join("province.log")));
    procs.0.push(serve(&stray_cfg, w.join("stray.log")));

    let browser = Browser::start(&w.join("chromium-profile"));
    let console = format!("https://{root_api}/console");

    // Log-in: a wrong token is refused, with the reason on the page.
    browser.goto(&console);
    assert!(browser.has("input#token"), "{}", browser.source());
    browser.type_into("#token", "not-a-token");
    browser.click("#login");
    wait_for(Duration::from_secs(30), "the refused log-in's page", || {
        browser
            .source()
            .contains("Mã truy cập không đúng")
            .then_some(())
    });
    assert!(!browser.has("table.nodes"));
    browser.screenshot(&shots, "login");

    // The operator: the network, the province up.
    browser.type_into("#token", &operator_token);
    browser.click("#login");
    wait_for(
        Duration::from_secs(60),
        "the province linked, on the page",
        || {
            browser.goto(&console);
            let page = browser.source();
            (page.contains(PROVINCE) && page.contains("đang kết nối")).then_some(())
        },
    );
    let row = node_row(&browser.source(), PROVINCE).unwrap();
    assert!(row.contains("chưa đạt: key_permissions"), "{row}");
    assert!(
        row.contains("class=\"since\""),
        "the link's state says since when: {row}"
    );
    assert!(
        row.contains("warning"),
        "an unmet requirement is a warning: {row}"
    );
    browser.screenshot(&shots, "network");
    // The province's name (from its signed node detail) on its row, and its own page: every
    // requirement with the evidence it found.
    wait_for(
        Duration::from_secs(60),
        "the province's name on its row",
        || {
            browser.goto(&console);
            let row = node_row(&browser.source(), PROVINCE)?;
            row.contains("UBND tỉnh Tây Ninh").then_some(())
        },
    );
    browser.goto(&format!("{console}/node/{PROVINCE}"));
    let title = browser
        .execute("const t = document.querySelector('#node-title'); return t ? t.textContent : '';");
    assert!(
        title
            .as_str()
            .unwrap_or_default()
            .contains("UBND tỉnh Tây Ninh"),
        "{}",
        browser.source()
    );
    let key_row = browser
        .execute(
            "const r = document.querySelector('#node-requirements tr[data-requirement=\"key_permissions\"]');\
             return r ? r.className + '|' + r.textContent : '';",
        )
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        key_row.starts_with("warning|")
            && key_row.contains("tệp khóa bí mật chỉ chủ sở hữu được đọc")
            && key_row.contains("0644")
            && key_row.contains("readable by group or others"),
        "{key_row}"
    );
    assert!(browser.has("#node-requirements tr[data-requirement=\"tls13_only\"]"));
    browser.screenshot(&shots, "node");
    browser.goto(&format!("{console}/node/000.00.99.H99"));
    assert!(browser.has("#no-node"), "{}", browser.source());

    // A document the province sends to the root (with lt-gateway, as its DMS would) is found by
    // its envelope id, with its track, and is in the root's incoming register.
    let attachment = w.join("bao-cao.pdf");
    std::fs::write(&attachment, b"%PDF-1.4\n% Bao cao tinh hinh\n%%EOF\n").unwrap();
    let send = |number: &str, subject: &str| -> String {
        let sent = Command::new(gateway_exe())
            .args(["--api", &format!("https://{province_api}"), "--api-ca"])
            .arg(w.join("ca/ca.pem"))
            .args([
                "--token", dms_token, "send", "--to", ROOT, "--number", number,
            ])
            .args(["--notation", "UBND-VP", "--subject", subject, "--file"])
            .arg(&attachment)
            .output()
            .unwrap();
        assert!(
            sent.status.success(),
            "{}",
            String::from_utf8_lossy(&sent.stderr)
        );
        String::from_utf8_lossy(&sent.stdout).trim().to_owned()
    };
    let envelope = send("12", "Báo cáo tình hình liên thông văn bản");
    wait_for(Duration::from_secs(60), "the document at the root", || {
        browser.goto(&format!("{console}/documents?id={envelope}"));
        browser.has("#doc-found").then_some(())
    });
    let page = browser.source();
    assert!(page.contains("12/UBND-VP"), "{page}");
    assert!(
        page.contains("Báo cáo tình hình liên thông văn bản"),
        "{page}"
    );
    // The operator (no inbox scope) sees the track but may not download the contents.
    assert!(browser.has("#no-downloads"), "{}", browser.source());
    assert!(!browser.has("#download-json"));
    browser.goto(&format!("{console}/documents/{envelope}/envelope.json"));
    assert!(browser.has("#forbidden"), "{}", browser.source());
    browser.goto(&format!("{console}/documents?id={envelope}"));
    browser.screenshot(&shots, "document");
    browser.goto(&format!("{console}/documents?id=no-such-document"));
    assert!(browser.has("#not-found"));
    browser.goto(&format!("{console}/register?agency={ROOT}&direction=in"));
    assert!(
        browser.has(&format!("tr[data-envelope=\"{envelope}\"]")),
        "{}",
        browser.source()
    );
    browser.screenshot(&shots, "register");
    // The printable book, opened from its link.
    browser.click("#register-print");
    wait_for(Duration::from_secs(30), "the printable book", || {
        browser
            .source()
            .contains("SỔ ĐĂNG KÝ VĂN BẢN ĐẾN")
            .then_some(())
    });
    assert!(browser
        .source()
        .contains("Báo cáo tình hình liên thông văn bản"));

    // Traffic: the document came in over the province's link, charted per minute; the charts
    // part refreshes itself, without reloading the page, when more comes.
    let received_from_province = |browser: &Browser| -> u64 {
        browser
            .execute(&format!(
                "const c = document.querySelector('#traffic-links tr[data-link=\"{PROVINCE}\"] td.in');\
                 return c ? Number(c.textContent) : 0;"
            ))
            .as_u64()
            .unwrap_or(0)
    };
    browser.goto(&format!("{console}/traffic?every=2"));
    assert!(
        received_from_province(&browser) >= 1,
        "{}",
        browser.source()
    );
    for chart in ["in", "out", "depth", "latency", "refused"] {
        assert!(browser.has(&format!("#chart-{chart} svg")), "chart {chart}");
    }
    assert!(
        browser.source().contains("stroke-width=\"2\""),
        "a line is drawn: {}",
        browser.source()
    );
    browser.screenshot(&shots, "traffic");
    let before = received_from_province(&browser);
    browser.execute("window.ltNotReloaded = true; return null;");
    send("13", "Công văn thứ hai");
    wait_for(
        Duration::from_secs(60),
        "the traffic charts refreshed with the second document",
        || (received_from_province(&browser) > before).then_some(()),
    );
    assert_eq!(
        browser.execute("return window.ltNotReloaded === true;"),
        Value::Bool(true),
        "refreshed in place, not by reloading the page"
    );
    assert!(browser.has("#traffic-charts[data-refreshed]"));

    // The statistics report: the root received both documents this month, with its charts.
    browser.goto(&format!("{console}/report?agency={ROOT}"));
    let received = browser
        .execute("return Number(document.querySelector('#received').textContent);")
        .as_u64();
    assert_eq!(received, Some(2), "{}", browser.source());
    for chart in ["timeliness", "to-01", "to-03", "to-06", "rejections"] {
        assert!(browser.has(&format!("#chart-{chart} svg")), "chart {chart}");
    }
    browser.screenshot(&shots, "report");
    browser.goto(&format!("{console}/report?agency=not-a-code"));
    assert!(browser.has("#report-error"), "{}", browser.source());

    // The security page lists the stray node's refused link.
    wait_for(
        Duration::from_secs(60),
        "the refused link under security",
        || {
            browser.goto(&format!("{console}/security"));
            let page = browser.source();
            page.contains("not_a_child").then_some(())
        },
    );
    assert!(browser.source().contains(STRAY));
    assert!(browser.has("#audit-ok"), "the audit chain's state is shown");
    // This node's own assessment, requirement by requirement with its evidence, and the
    // province's unmet requirement named with its text.
    assert!(
        browser.has("#own-assessment tr[data-requirement=\"tls13_only\"]"),
        "{}",
        browser.source()
    );
    let unmet = browser
        .execute(&format!(
            "const r = document.querySelector('#below-unmet tr[data-node=\"{PROVINCE}\"]');\
             return r ? r.textContent : '';"
        ))
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        unmet.contains("key_permissions")
            && unmet.contains("tệp khóa bí mật chỉ chủ sở hữu được đọc")
            && unmet.contains("readable by group or others"),
        "{unmet}"
    );
    browser.screenshot(&shots, "security");

    // English as a switch.
    browser.goto(&format!("{console}/security?lang=en"));
    assert!(browser.source().contains("Security"));
    assert!(browser.source().contains("readable by their owner only"));
    browser.goto(&format!("{console}?lang=vi"));

    // The operator backs up from the page.
    browser.click("#backup");
    wait_for(Duration::from_secs(30), "the backup's answer page", || {
        browser.has("#backup-done").then_some(())
    });
    assert!(std::fs::read_dir(w.join("root/backup")).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".ltbak")));

    // The root killed and started again: the operator's log-in still holds (no form), with
    // its scope (the backup button); the viewer's, made with a token changed before the
    // restart, does not.
    let no_redirects = agent(&w.join("ca/ca.pem"), 0);
    let resp = no_redirects
        .post(&format!("{console}/login"))
        .send_form([("token", viewer_token)])
        .unwrap();
    assert_eq!(resp.status(), 303);
    let viewer_cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("the viewer's session cookie")
        .to_owned();
    let old_viewer_token = viewer_token;
    let viewer_token = "xem-chi-doc-moi-0123456789abcdef";
    let config = std::fs::read_to_string(&root_cfg).unwrap();
    std::fs::write(
        &root_cfg,
        config.replace(&sha256_hex(old_viewer_token), &sha256_hex(viewer_token)),
    )
    .unwrap();
    procs.0[0].kill().unwrap();
    procs.0[0].wait().unwrap();
    procs.0[0] = serve(&root_cfg, w.join("root-again.log"));
    wait_for(
        Duration::from_secs(60),
        "the root's console again, still logged in",
        || {
            browser.goto(&console);
            (browser.has("table.nodes") && browser.has("#backup")).then_some(())
        },
    );
    assert!(!browser.has("input#token"));
    let log = std::fs::read_to_string(w.join("root-again.log")).unwrap();
    assert!(
        log.contains("console session taken up again from the store"),
        "{log}"
    );
    let resp = no_redirects
        .get(&console)
        .header("Cookie", &viewer_cookie)
        .call()
        .unwrap();
    assert_eq!(resp.status(), 401);
    let log = std::fs::read_to_string(w.join("root-again.log")).unwrap();
    assert!(
        log.contains("stored console session dropped")
            && log.contains("API client viewer is no longer configured with that token"),
        "{log}"
    );

    // The province killed: its row shows the link down.
    procs.0[1].kill().unwrap();
    procs.0[1].wait().unwrap();
    wait_for(
        Duration::from_secs(60),
        "the province down, on the page",
        || {
            browser.goto(&console);
            let row = node_row(&browser.source(), PROVINCE)?;
            (row.contains("mất kết nối") && row.contains("failing")).then_some(())
        },
    );
    browser.screenshot(&shots, "network-down");

    // A read-only client: no backup button, and a posted backup is refused.
    browser.delete_cookies();
    browser.goto(&console);
    browser.type_into("#token", viewer_token);
    browser.click("#login");
    wait_for(Duration::from_secs(30), "the viewer's log-in", || {
        browser
            .source()
            .contains("<span class=\"who\">viewer</span>")
            .then_some(())
    });
    browser.goto(&console);
    assert!(browser.source().contains(PROVINCE));
    assert!(
        !browser.has("#backup"),
        "a read-only client sees no backup button"
    );
    let session = browser.cookie("lt_console").expect("a session cookie");
    let agent = agent(&w.join("ca/ca.pem"), 10);
    let resp = agent
        .post(&format!("{console}/backup"))
        .header("Cookie", &format!("lt_console={session}"))
        .send_empty()
        .unwrap();
    assert_eq!(resp.status(), 403);
    // A client with the inbox scope downloads the envelope, the edXML package and the
    // attachment, byte for byte.
    let mut resp = agent
        .get(&format!("{console}/documents/{envelope}/envelope.json"))
        .header("Cookie", &format!("lt_console={session}"))
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let env: Value = resp.body_mut().read_json().unwrap();
    assert_eq!(env["id"], Value::String(envelope.clone()), "{env}");
    let mut resp = agent
        .get(&format!("{console}/documents/{envelope}/package.edxml"))
        .header("Cookie", &format!("lt_console={session}"))
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp
        .body_mut()
        .read_to_string()
        .unwrap()
        .contains("Báo cáo tình hình liên thông văn bản"));
    browser.goto(&format!("{console}/documents?id={envelope}"));
    let link = browser
        .execute("return document.querySelector('#downloads a.attachment').getAttribute('href');");
    let mut resp = agent
        .get(&format!("https://{root_api}{}", link.as_str().unwrap()))
        .header("Cookie", &format!("lt_console={session}"))
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("bao-cao.pdf")));
    assert_eq!(
        resp.body_mut().read_to_vec().unwrap(),
        std::fs::read(&attachment).unwrap()
    );
    // A read-only client may download the register as CSV.
    let mut resp = agent
        .get(&format!(
            "{console}/register.csv?agency={ROOT}&direction=in"
        ))
        .header("Cookie", &format!("lt_console={session}"))
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(".csv")));
    let csv = resp.body_mut().read_to_string().unwrap();
    assert!(
        csv.contains(&envelope) || csv.contains("12/UBND-VP"),
        "{csv}"
    );
    println!("screenshots in {}", shots.display());
}
