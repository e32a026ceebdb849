//! Gateways at both ends of a relay chain, driven through the staff CLI (`lt-gateway`), with
//! real processes: send and fetch, the parent down while sending, recall answered 15 and 16,
//! a 200 MiB file, API errors, idle memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use lienthong_harness::Network;
use serde_json::Value;
use support::{code, gateway_exe, sha256_file, two_gateways, wait_for};

fn gw(net: &Network, agency: &str, args: &[&str]) -> (bool, String, String) {
    let api = format!("http://{}", net.nodes[&code(agency)].api);
    let out = Command::new(gateway_exe())
        .arg("--api")
        .arg(&api)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn gw_ok(net: &Network, agency: &str, args: &[&str]) -> String {
    let (ok, out, err) = gw(net, agency, args);
    assert!(ok, "lt-gateway {args:?} failed: {err}");
    out
}

fn gw_json(net: &Network, agency: &str, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(gw_ok(net, agency, &a).trim()).unwrap()
}

fn history(net: &Network, agency: &str, id: &str, recipient: &str) -> Vec<i64> {
    let v = gw_json(net, agency, &["track", id]);
    let r = v["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["recipient"] == recipient)
        .unwrap()
        .clone();
    r["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_i64().unwrap())
        .collect()
}

const A: &str = "000.00.21.H53";
const B: &str = "000.00.07.H49";

#[test]
fn gateway_to_gateway_through_the_relay_chain() {
    let (dir, mut net) = two_gateways(A, B);

    // Idle memory of a gateway.
    std::thread::sleep(Duration::from_secs(2));
    let pid = net.pid(&code(A)).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    eprintln!("idle gateway RSS: {} KiB", rss_kib);
    assert!(rss_kib < 30 * 1024, "idle gateway uses {rss_kib} KiB");

    // Send with a file, fetch it at the far end, answer with statuses.
    let file = dir.path().join("congvan.pdf");
    std::fs::write(&file, b"%PDF-1.7 noi dung cong van").unwrap();
    let file_s = file.to_str().unwrap();
    let id = gw_ok(
        &net,
        A,
        &[
            "send",
            "--to",
            B,
            "--number",
            "15",
            "--notation",
            "UBND",
            "--subject",
            "Về việc phối hợp",
            "--file",
            file_s,
        ],
    )
    .trim()
    .to_owned();
    wait_for(Duration::from_secs(30), "document in B's inbox", || {
        let v = gw_json(&net, B, &["inbox"]);
        v.as_array()
            .unwrap()
            .iter()
            .any(|e| e["envelope"]["id"] == id.as_str())
            .then_some(())
    });
    let out = dir.path().join("fetched");
    gw_ok(&net, B, &["fetch", &id, "--out", out.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(out.join("congvan.pdf")).unwrap(),
        std::fs::read(&file).unwrap()
    );
    gw_ok(&net, B, &["status", &id, "03"]);
    gw_ok(&net, B, &["ack", &id]);
    wait_for(Duration::from_secs(30), "03 back at A", || {
        (history(&net, A, &id, B) == vec![1, 3]).then_some(())
    });
    assert!(gw_ok(&net, A, &["track", &id]).contains("accepted"));

    // A bad status code is refused with the valid ones listed; a missing field is named.
    let (ok, _, err) = gw(&net, B, &["status", &id, "07"]);
    assert!(!ok);
    assert!(
        err.contains("HTTP 400") && err.contains("02, 03, 04, 05, 06, 13, 15, 16"),
        "{err}"
    );
    let api = lienthong_harness::ApiClient::new(&format!("http://{}", net.nodes[&code(A)].api));
    let e = api.post_json("/v1/documents", &serde_json::json!({ "envelope": { "to": [{ "code": B, "name": "B" }], "code": { "number": "1" }, "promulgation": { "date": "2026-01-02" } } })).unwrap_err();
    assert!(
        e.to_string().contains("HTTP 400") && e.to_string().contains("subject is required"),
        "{e}"
    );

    // The parent is down while a document is sent: it waits at the gateway, then arrives.
    net.stop(&code("000.00.00.H53"), libc::SIGTERM).unwrap();
    let offline = gw_ok(
        &net,
        A,
        &[
            "send",
            "--to",
            B,
            "--number",
            "16",
            "--subject",
            "Gửi khi mất kết nối",
        ],
    )
    .trim()
    .to_owned();
    let v = gw_json(&net, A, &["track", &offline]);
    assert_eq!(v["recipients"][0]["status"], 0);
    assert!(
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["state"] == 1),
        "queued event: {v}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(!gw_json(&net, B, &["inbox"])
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["envelope"]["id"] == offline.as_str()));
    net.start(&code("000.00.00.H53")).unwrap();
    wait_for(
        Duration::from_secs(60),
        "offline document delivered after reconnect",
        || {
            gw_json(&net, B, &["inbox"])
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["envelope"]["id"] == offline.as_str())
                .then_some(())
        },
    );

    // Recall: 13 → 15, and 13 → 16.
    for (answer, desc) in [("15", ""), ("16", "đã ban hành văn bản thực hiện")] {
        let doc = gw_ok(
            &net,
            A,
            &[
                "send",
                "--to",
                B,
                "--number",
                answer,
                "--subject",
                "Văn bản sẽ thu hồi",
            ],
        )
        .trim()
        .to_owned();
        wait_for(Duration::from_secs(30), "document at B", || {
            gw_json(&net, B, &["inbox"])
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["envelope"]["id"] == doc.as_str())
                .then_some(())
        });
        gw_ok(&net, A, &["recall", &doc, "--reason", "Sai sót nội dung"]);
        // B sees the recall request and the revocation notice.
        wait_for(Duration::from_secs(30), "13 at B", || {
            let v = gw_json(&net, B, &["track", &doc]);
            v["statuses"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["status"] == 13)
                .then_some(())
        });
        wait_for(Duration::from_secs(30), "revocation notice at B", || {
            gw_json(&net, B, &["inbox"])
                .as_array()
                .unwrap()
                .iter()
                .any(|e| {
                    e["envelope"]["business"]["doc_type"] == 1
                        && e["envelope"]["business"]["target_document_id"]
                            .as_str()
                            .is_some_and(|t| t.ends_with(&format!("{answer}/")))
                })
                .then_some(())
        });
        let mut args = vec!["status", doc.as_str(), answer];
        if !desc.is_empty() {
            args.extend(["--description", desc]);
        }
        gw_ok(&net, B, &args);
        let code: i64 = answer.parse().unwrap();
        wait_for(Duration::from_secs(30), "recall answer at A", || {
            history(&net, A, &doc, B).contains(&code).then_some(())
        });
        let (ok, out, _) = gw(
            &net,
            A,
            &["recall", &doc, "--reason", "nhắc lại", "--wait", "5"],
        );
        assert!(ok && out.contains(&format!("{answer} recall")), "{out}");
    }

    // A 200 MiB file through the CLI, fetched with a matching digest.
    let big = dir.path().join("hoso.zip");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        for i in 0u64..(200 * 1024 * 1024 / 8) {
            f.write_all(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes())
                .unwrap();
        }
    }
    let (ok, out, err) = gw(
        &net,
        A,
        &[
            "send",
            "--to",
            B,
            "--number",
            "17",
            "--subject",
            "Hồ sơ lớn",
            "--file",
            big.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert!(err.contains("100%"), "progress bar: {err}");
    let big_id = out.trim().to_owned();
    wait_for(Duration::from_secs(300), "200 MiB document at B", || {
        gw_json(&net, B, &["inbox"])
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["envelope"]["id"] == big_id.as_str())
            .then_some(())
    });
    let out_dir = dir.path().join("big-out");
    gw_ok(
        &net,
        B,
        &["fetch", &big_id, "--out", out_dir.to_str().unwrap()],
    );
    assert_eq!(sha256_file(&out_dir.join("hoso.zip")), sha256_file(&big));
}
