//! Upgrades keep the store: this build opens a store written by release 0.1.0 (a fixture made by
//! `deploy/store-fixture.sh v0.1.0 …` with that release's own binaries) and finds every queued
//! document, register number and audit record in it; then the node delivers the queued documents
//! to its parent, which runs this build too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use lienthong_harness::free_addr;
use support::{relay_exe, wait_for, Procs};

const FIXTURE: &str = "fixtures/store-v0.1.0.tar.gz";

fn run(args: &[&str]) -> Output {
    Command::new(relay_exe()).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn serve(config: &Path, log: &Path) -> Child {
    Command::new(relay_exe())
        .args(["serve", "--config"])
        .arg(config)
        .env("LT_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Unpacks the fixture in `dir` and writes its configuration for the given addresses.
fn unpack(dir: &Path, api: &str, parent: &str) -> PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&fixture)
        .arg("-C")
        .arg(dir)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "tar could not unpack {}",
        fixture.display()
    );
    let template = std::fs::read_to_string(dir.join("node.toml.in")).unwrap();
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        template
            .replace("@DIR@", &dir.display().to_string())
            .replace("@API@", api)
            .replace("@PARENT@", parent),
    )
    .unwrap();
    config
}

#[test]
fn a_store_written_by_release_0_1_0_is_migrated_and_keeps_everything() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("province");
    std::fs::create_dir_all(&dir).unwrap();
    let province_api = free_addr().unwrap().to_string();
    let root_link = free_addr().unwrap().to_string();
    let config = unpack(&dir, &province_api, &root_link);
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let ids: Vec<String> = expected["envelopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3, "the fixture queued three documents");

    // The first open by this build migrates the store (the read commands open it directly
    // while the node is stopped), and the outgoing register reads as release 0.1.0 wrote it.
    let config_s = config.to_str().unwrap();
    let year = expected["register"]["year"].to_string();
    let out = run(&[
        "register",
        "--config",
        config_s,
        "--agency",
        "000.00.00.H53",
        "--year",
        &year,
        "--direction",
        "out",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "register: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("store migrated to the current format"),
        "no migration logged: {}",
        text(&out.stderr)
    );
    let register: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        register["rows"], expected["register"]["rows"],
        "register entries differ from what release 0.1.0 read"
    );
    let numbers: Vec<u64> = register["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![1, 2, 3]);

    // The audit chain is intact and holds every record release 0.1.0 wrote.
    let out = run(&["audit", "verify", "--config", config_s]);
    assert!(out.status.success(), "audit verify: {}", text(&out.stdout));
    let records = expected["audit_records"].as_u64().unwrap();
    assert!(records > 0);
    assert!(
        text(&out.stdout).contains(&format!("intact: {records} records")),
        "{}",
        text(&out.stdout)
    );
    // A second open finds the current format: no second migration.
    let out = run(&["audit", "verify", "--config", config_s]);
    assert!(!text(&out.stderr).contains("store migrated"));

    // The root, from the fixture's own CA, and the province with its queue.
    let root_dir = work.path().join("root");
    let root_api = free_addr().unwrap().to_string();
    std::fs::create_dir_all(&root_dir).unwrap();
    let root_config = root_dir.join("node.toml");
    let pki = dir.join("pki");
    std::fs::write(
        &root_config,
        format!(
            "[node]\nagency = \"000.00.00.G22\"\nname = \"Văn phòng Chính phủ\"\ndata_dir = \"{data}\"\n\
             [listen]\ngrpc = \"{root_link}\"\napi = \"{root_api}\"\n\
             [tls]\nca = \"{pki}/ca.pem\"\ncert = \"{pki}/000.00.00.G22.pem\"\nkey = \"{pki}/000.00.00.G22.key\"\n\
             [security]\nlevel = 1\n",
            data = root_dir.join("data").display(),
            pki = pki.display(),
        ),
    )
    .unwrap();
    let mut relays = Procs(Vec::new());
    relays
        .0
        .push(serve(&root_config, &work.path().join("root.log")));
    relays
        .0
        .push(serve(&config, &work.path().join("province.log")));

    // Every queued document arrives in the root's inbox, as it was signed by release 0.1.0.
    let inbox_url = format!("http://{root_api}/v1/inbox?agency=000.00.00.G22");
    let arrived = wait_for(
        Duration::from_secs(60),
        "the queued documents at the root",
        || {
            let mut answer = ureq::get(&inbox_url).call().ok()?;
            let v: serde_json::Value = answer.body_mut().read_json().ok()?;
            let got: Vec<String> = v
                .as_array()?
                .iter()
                .filter_map(|e| e["envelope"]["id"].as_str().map(str::to_owned))
                .collect();
            (got.len() >= ids.len()).then_some(got)
        },
    );
    let mut arrived = arrived;
    arrived.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(
        arrived, want,
        "the root received other documents than were queued"
    );
    let log = std::fs::read_to_string(work.path().join("province.log")).unwrap();
    assert!(
        !log.contains("store migrated"),
        "the node migrated again: {log}"
    );
}

#[test]
fn the_fixture_is_there() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    assert!(
        fixture.exists(),
        "{} is missing: make it with `bash deploy/store-fixture.sh v0.1.0 tests/{FIXTURE}`",
        fixture.display()
    );
}
