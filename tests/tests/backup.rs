//! Backups, restore and audit retention with the real binaries (issue 7: "backups configured",
//! "log retention meeting the level"): a backup taken with `lt-relay backup` while the node runs,
//! the node stopped, its data folder wiped, `lt-relay restore`, and the node back with its
//! documents, inbox, attachments and a verifying audit log; scheduled backups with `keep`; audit
//! records pruned past `audit_retention_days` with the chain still verifying.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use lienthong_common::agency::AgencyCode;
use lienthong_harness::{sample_envelope, Network, NodeSpec};
use serde_json::Value;
use support::{code, dump_logs, relay_exe, wait_for, wait_in_inbox};

fn lt_relay(args: &[&str], config: &Path) -> Output {
    Command::new(relay_exe())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `lt-relay audit verify` succeeds; returns its line.
fn audit_intact(config: &Path) -> String {
    let o = lt_relay(&["audit", "verify"], config);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("audit log intact"), "{text}");
    text.trim().to_owned()
}

fn audit_export(config: &Path) -> Vec<Value> {
    let o = lt_relay(&["audit", "export"], config);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The backup files of `agency` in `dir`, oldest first.
fn backups(dir: &Path, agency: &str) -> Vec<PathBuf> {
    lienthong_common::backup::list(dir, &code(agency))
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

/// The root and one province under it.
fn root_and_province() -> (AgencyCode, AgencyCode, Vec<NodeSpec>) {
    let root = code("000.00.00.G22");
    let province = code("000.00.00.H53");
    let specs = vec![
        NodeSpec::new(root.as_str(), "Văn phòng Chính phủ", None).unwrap(),
        NodeSpec::new(province.as_str(), "UBND tỉnh Tây Ninh", Some(root.as_str())).unwrap(),
    ];
    (root, province, specs)
}

fn append_config(config: &Path, text: &str) {
    let mut s = std::fs::read_to_string(config).unwrap();
    s.push_str(text);
    std::fs::write(config, s).unwrap();
}

#[test]
fn a_node_restored_from_a_backup_taken_while_it_ran_has_its_documents_inbox_and_audit_log() {
    let (root, province, specs) = root_and_province();
    let dir = tempfile::tempdir().unwrap();
    let mut net = Network::create(dir.path(), &relay_exe(), &specs).unwrap();
    let config = net.nodes[&root].config.clone();
    let store_dir = config.parent().unwrap().join("data");
    let backup_dir = dir.path().join("backups");
    append_config(
        &config,
        &format!(
            "\n[backup]\ndir = {:?}\ninterval_hours = 24\nkeep = 2\n",
            backup_dir.display().to_string()
        ),
    );
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();

    // With [backup] and no backup yet, the node writes one at start.
    let at_start = wait_for(
        Duration::from_secs(60),
        "the backup written at start",
        || backups(&backup_dir, root.as_str()).pop(),
    );

    // Documents from the province to the root, one with an attachment; one acknowledged.
    let sender = net.client(&province).unwrap();
    let attachment: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let up = sender.upload_reader(attachment.as_slice()).unwrap();
    let mut ids = Vec::new();
    for n in 1..=3 {
        let mut env = sample_envelope(&province, &[&root], &n.to_string(), "Sao lưu và khôi phục");
        if n == 1 {
            env["attachments"] = serde_json::json!([{ "name": "hoso.bin", "content_type": "application/octet-stream", "size": up.size, "sha256": up.sha256 }]);
        }
        ids.push(sender.submit(env).unwrap().0);
    }
    let c = net.client(&root).unwrap();
    wait_in_inbox(&c, &root, &ids, 60, "three documents at the root");
    c.ack(&ids[2], &root).unwrap();
    let inbox_path = format!("/v1/inbox?agency={root}&all=true");
    let inbox_before = c.get_json(&inbox_path).unwrap();
    assert_eq!(inbox_before.as_array().unwrap().len(), 3);
    let documents_before: Vec<Value> = ids
        .iter()
        .map(|id| c.get_json(&format!("/v1/documents/{id}")).unwrap())
        .collect();
    let audit_before = audit_intact(&config);
    let records_before = audit_export(&config);
    assert!(
        records_before.iter().any(|r| r["kind"] == "register"),
        "the incoming register entries are in the audit log: {records_before:?}"
    );

    // A backup with the CLI while the node runs: through its local API.
    let o = lt_relay(&["backup"], &config);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("backup written: "), "{text}");
    let file = backups(&backup_dir, root.as_str()).pop().unwrap();
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert_ne!(file, at_start);
    let name = file.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.starts_with("000.00.00.G22-") && name.ends_with("Z.ltbak") && name.len() == 36,
        "{name}"
    );
    assert!(backup_dir.join("blobs").join(&up.sha256).exists());

    // Stop the node, lose its data, restore, start it again.
    net.stop(&root, libc::SIGTERM).unwrap();
    std::fs::remove_dir_all(&store_dir).unwrap();
    let o = lt_relay(&["restore", "--from", file.to_str().unwrap()], &config);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("restored"), "{}", stdout(&o));
    // A second restore would replace what is now there: refused without --force.
    let o = lt_relay(&["restore", "--from", file.to_str().unwrap()], &config);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("already holds data") && stderr(&o).contains("--force"),
        "{}",
        stderr(&o)
    );
    net.start(&root).unwrap();
    if let Err(e) = net.wait_linked(Duration::from_secs(60)) {
        dump_logs(&net);
        panic!("{e}");
    }

    // Documents, inbox (acknowledgement included), attachment and audit log are back.
    assert_eq!(c.get_json(&inbox_path).unwrap(), inbox_before);
    for (id, before) in ids.iter().zip(&documents_before) {
        assert_eq!(&c.get_json(&format!("/v1/documents/{id}")).unwrap(), before);
    }
    let fetched = dir.path().join("fetched.bin");
    assert_eq!(
        c.download(&ids[0], &up.sha256, &fetched).unwrap(),
        attachment.len() as u64
    );
    assert_eq!(std::fs::read(&fetched).unwrap(), attachment);
    let count = |line: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.parse().ok())
            .unwrap()
    };
    assert!(count(&audit_intact(&config)) >= count(&audit_before));
    let records_after = audit_export(&config);
    assert_eq!(
        records_after[..records_before.len()],
        records_before[..],
        "the restored audit log holds the same records"
    );

    // The node goes on: a new document arrives after the restored ones, whose entries keep
    // their places (numbers given out after a restore do not reuse restored ones).
    let (id4, _) = sender
        .submit(sample_envelope(&province, &[&root], "4", "Sau khôi phục"))
        .unwrap();
    wait_for(
        Duration::from_secs(60),
        "a document after the restore",
        || {
            c.inbox(&root)
                .unwrap()
                .iter()
                .any(|e| e.envelope.id == id4)
                .then_some(())
        },
    );
    let inbox_after = c.get_json(&inbox_path).unwrap();
    let inbox_after = inbox_after.as_array().unwrap();
    assert_eq!(inbox_after.len(), 4);
    assert_eq!(inbox_after[..3], inbox_before.as_array().unwrap()[..]);
    assert_eq!(inbox_after[3]["envelope"]["id"], id4.as_str());
    assert!(inbox_after[3]["seq"].as_u64() > inbox_after[2]["seq"].as_u64());
    audit_intact(&config);

    // Not due again after the restart (the newest backup is minutes old); one more through the
    // CLI makes three, and keep = 2 removes the oldest.
    assert_eq!(backups(&backup_dir, root.as_str()).len(), 2);
    let o = lt_relay(&["backup"], &config);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("old backup removed"), "{}", stdout(&o));
    let kept = backups(&backup_dir, root.as_str());
    assert_eq!(kept.len(), 2);
    assert!(!kept.contains(&at_start) && kept.contains(&file));
}

#[test]
fn audit_records_past_retention_are_pruned_and_the_chain_still_verifies() {
    let (root, province, specs) = root_and_province();
    let dir = tempfile::tempdir().unwrap();
    // The business clock of the nodes (audit record times included) is read from this file;
    // while it is absent they use the system clock.
    let clock = dir.path().join("clock");
    let mut net = Network::create(dir.path(), &relay_exe(), &specs)
        .unwrap()
        .with_env(lienthong_common::CLOCK_FILE_ENV, clock.to_str().unwrap());
    let config = net.nodes[&root].config.clone();
    append_config(&config, "\n[security]\naudit_retention_days = 2\n");
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();

    let sender = net.client(&province).unwrap();
    let c = net.client(&root).unwrap();
    let mut ids = Vec::new();
    for n in 1..=3 {
        ids.push(
            sender
                .submit(sample_envelope(
                    &province,
                    &[&root],
                    &n.to_string(),
                    "Lưu giữ nhật ký",
                ))
                .unwrap()
                .0,
        );
    }
    wait_in_inbox(&c, &root, &ids, 60, "three documents at the root");
    let before = audit_export(&config);
    assert!(before.len() >= 3, "{before:?}");
    audit_intact(&config);

    // Three days later the records are past the two-day retention: the node prunes them when
    // it starts (then hourly).
    net.stop(&root, libc::SIGTERM).unwrap();
    let now = lienthong_common::now_unix_ms();
    std::fs::write(&clock, (now + 3 * 86_400_000).to_string()).unwrap();
    net.start(&root).unwrap();
    let log = net.nodes[&root].log.clone();
    wait_for(Duration::from_secs(60), "the prune at start", || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("audit records past retention pruned")
            .then_some(())
    });
    let after = audit_export(&config);
    let last_before = before.last().unwrap()["seq"].as_u64().unwrap();
    assert!(
        after
            .iter()
            .all(|r| r["seq"].as_u64().unwrap() > last_before),
        "every old record is gone: {after:?}"
    );
    let pruned = after
        .iter()
        .find(|r| r["class"] == "audit_pruned")
        .unwrap_or_else(|| panic!("a pruning record: {after:?}"));
    // It names the anchor: the last record pruned, at least the last one seen before.
    let anchor: u64 = pruned["reason"]
        .as_str()
        .unwrap()
        .rsplit_once("anchor ")
        .and_then(|(_, a)| a.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{pruned}"));
    assert!(anchor >= last_before, "{pruned}");
    assert!(pruned["seq"].as_u64().unwrap() > anchor);
    assert_eq!(after[0]["seq"].as_u64(), Some(anchor + 1));
    let line = audit_intact(&config);
    assert!(line.contains(&format!("{} records", after.len())), "{line}");
    // Also from the store once the node stopped.
    net.stop(&root, libc::SIGTERM).unwrap();
    audit_intact(&config);
}
