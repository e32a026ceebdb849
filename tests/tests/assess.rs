//! `lt-relay assess` on the example configurations of deploy/examples (which pass level 3) and
//! on a deliberately weak one (world-readable key, TLS 1.2 allowed, no CRL, short audit
//! retention), which fails exactly those items.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use lienthong_common::pki::{self, IssueRequest};
use serde_json::Value;
use support::{code, relay_exe};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples")
}

/// Every agency code an example names a certificate for.
fn codes_in(text: &str) -> Vec<String> {
    text.split("/etc/lienthong/pki/")
        .skip(1)
        .filter_map(|rest| rest.split_once(".pem").map(|(c, _)| c.to_owned()))
        .filter(|c| c != "ca")
        .collect()
}

/// Copies an example into `dir` with its paths pointing at a test PKI and folders.
fn localise(example: &Path, dir: &Path, pki_dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(example).unwrap();
    for c in codes_in(&text) {
        let agency = code(&c);
        if !pki::node_cert_path(pki_dir, &agency).exists() {
            pki::issue(pki_dir, &IssueRequest::new(agency)).unwrap();
        }
    }
    let name = example.file_stem().unwrap().to_str().unwrap();
    let text = text
        .replace("/etc/lienthong/pki", pki_dir.to_str().unwrap())
        .replace(
            "/var/lib/lienthong",
            dir.join(format!("data-{name}")).to_str().unwrap(),
        )
        .replace(
            "/var/backups/lienthong",
            dir.join(format!("backups-{name}")).to_str().unwrap(),
        );
    let out = dir.join(format!("{name}.toml"));
    std::fs::write(&out, text).unwrap();
    out
}

fn assess(config: &Path, level: &str) -> (i32, Value) {
    let out = Command::new(relay_exe())
        .args(["assess", "--level", level, "--json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "assess printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

fn not_met(v: &Value) -> BTreeSet<String> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["met"] == false)
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn example_configs_pass_level_3_and_a_weak_one_fails_exactly_its_weaknesses() {
    // Under the target directory: on disk, like /var/lib (a tmpfs would fail store_durable).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let pki_dir = dir.path().join("pki");
    pki::init(&pki_dir).unwrap();
    let mut examples: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 5, "{examples:?}");
    for ex in &examples {
        let cfg = localise(ex, dir.path(), &pki_dir);
        let (status, v) = assess(&cfg, "3");
        assert_eq!(
            status,
            0,
            "{} fails level 3: {:?}\n{v:#}",
            ex.display(),
            not_met(&v)
        );
        assert_eq!(v["met"], v["total"]);
        assert!(v["total"].as_u64().unwrap() >= 10);
    }

    // The weak configuration: the province example with four weaknesses.
    let province = localise(&examples_dir().join("province.toml"), dir.path(), &pki_dir);
    let text = std::fs::read_to_string(&province).unwrap();
    let crl_line = format!("crl = \"{}/ca.crl\"\n", pki_dir.display());
    assert!(text.contains(&crl_line));
    let weak_text = text
        .replace(&crl_line, "min_version = \"1.2\"\n")
        .replace("audit_retention_days = 365", "audit_retention_days = 7");
    let weak = dir.path().join("weak.toml");
    std::fs::write(&weak, weak_text).unwrap();
    let key = pki::node_key_path(&pki_dir, &code("000.00.00.H53"));
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (status, v) = assess(&weak, "3");
    assert_eq!(status, 1, "{v:#}");
    let expected: BTreeSet<String> = ["key_permissions", "tls13_only", "crl", "log_retention"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(not_met(&v), expected, "{v:#}");
    // Evidence names what was found.
    let evidence = |id: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()["evidence"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(evidence("key_permissions").contains("0644"));
    assert!(evidence("log_retention").contains("7"));
    // Level 1 does not require a CRL or a retention period.
    let (status, v) = assess(&weak, "1");
    assert_eq!(status, 1);
    let expected: BTreeSet<String> = ["key_permissions", "tls13_only"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(not_met(&v), expected, "{v:#}");

    // The text form says the same, line by line.
    let out = Command::new(relay_exe())
        .args(["assess", "--level", "3", "--config"])
        .arg(&weak)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NOT MET  crl"), "{text}");
    assert!(text.contains("FAIL"), "{text}");
    // A configuration that does not load is exit 64, not a failed assessment.
    std::fs::write(dir.path().join("bad.toml"), "[node]\nagency = \"x\"\n").unwrap();
    let out = Command::new(relay_exe())
        .args(["assess", "--level", "3", "--config"])
        .arg(dir.path().join("bad.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}
