//! Registers, reports and tracking on a real network (root, two provinces, a gateway under
//! each) with a controllable clock (`LT_CLOCK_FILE`): every figure below is worked out by hand
//! from the scripted scenario.
//!
//! Scenario (Vietnam time; G1 sends, G2 and P2 receive):
//! - 2026-12-30 08:00  A (due 12-31) to G2 and P2; B (due 12-30) to G2
//! - 09:00  G2 accepts A (03); 10:00 P2 accepts A (03); 11:00 G2 assigns (04) and finishes
//!   A (06): on time
//! - 12:00  C to P2, rejected by P2 at 13:00 ("sai nơi nhận"); D to G2
//! - 14:00  G1 asks to recall D (13), G2 agrees (15); R revokes D, to G2; A is sent again
//!   under a new envelope (same document): no new numbers
//! - G2 restarts; 2026-12-31 10:00 F to G2: number 5, continuing the book
//! - 2027-01-01 08:00  E to G2: number 1 of the 2027 book; P2 finishes A (06): late; B has
//!   no 06 and its due date passed: overdue
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lienthong_harness::{sample_envelope, ApiClient, Network, NodeSpec};
use serde_json::{json, Value};
use support::{code, dump_logs, relay_exe, wait_for};

const ROOT: &str = "000.00.00.G22";
const P1: &str = "000.00.00.H53";
const G1: &str = "000.00.31.H53";
const P2: &str = "000.00.00.H49";
const G2: &str = "000.00.05.H49";

fn set_clock(file: &Path, t: time::OffsetDateTime) {
    let ms = t.unix_timestamp() * 1000;
    std::fs::write(file, ms.to_string()).unwrap();
}

struct Scene {
    net: Network,
    clock: PathBuf,
}

impl Scene {
    fn client(&self, a: &str) -> ApiClient {
        self.net.client(&code(a)).unwrap()
    }

    /// Sends from G1; waits until every recipient's inbox has it. Returns (envelope, document).
    fn send(&self, to: &[&str], number: &str, date: &str, extra: Value) -> (String, String) {
        let to_codes: Vec<_> = to.iter().map(|t| code(t)).collect();
        let refs: Vec<_> = to_codes.iter().collect();
        let mut env = sample_envelope(&code(G1), &refs, number, &format!("Văn bản số {number}"));
        env["promulgation"]["date"] = json!(date);
        if let (Some(e), Some(x)) = (env.as_object_mut(), extra.as_object()) {
            for (k, v) in x {
                e.insert(k.clone(), v.clone());
            }
        }
        let (id, doc) = self.client(G1).submit(env).unwrap();
        for t in to {
            self.wait_inbox(t, &id);
        }
        (id, doc)
    }

    fn wait_inbox(&self, agency: &str, id: &str) {
        let c = self.client(agency);
        wait_for(
            Duration::from_secs(30),
            &format!("{id} in {agency}"),
            || {
                c.get_json(&format!("/v1/inbox?agency={agency}&all=true"))
                    .ok()
                    .filter(|v| {
                        v.as_array()
                            .is_some_and(|a| a.iter().any(|i| i["envelope"]["id"] == id))
                    })
            },
        );
    }

    fn status(&self, agency: &str, id: &str, status: i32, description: &str, staff: Value) {
        self.client(agency)
            .post_json(
                &format!("/v1/documents/{id}/status"),
                &json!({ "agency": agency, "status": status, "description": description, "staff": staff }),
            )
            .unwrap();
    }

    fn lt(&self, agency: &str, args: &[&str]) -> String {
        let out = Command::new(relay_exe())
            .args(args)
            .arg("--config")
            .arg(&self.net.nodes[&code(agency)].config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lt-relay {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn report(&self, at: &str, agency: &str, subtree: bool) -> Value {
        self.client(at)
            .get_json(&format!(
                "/v1/reports/{agency}?from=2026-12-30&to=2027-01-01&subtree={subtree}"
            ))
            .unwrap()
    }
}

fn vn(y: i32, m: u8, d: u8, h: u8) -> time::OffsetDateTime {
    time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d)
        .unwrap()
        .with_hms(h, 0, 0)
        .unwrap()
        .assume_offset(time::macros::offset!(+7))
}

fn numbers(book: &Value) -> Vec<(u64, String)> {
    book["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["number"].as_u64().unwrap(),
                r["document_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Counts in a report that sum over agencies (everything but the percentiles and tops).
fn additive(r: &Value) -> Value {
    json!({
        "sent": r["sent"], "received": r["received"],
        "amendments_sent": r["amendments_sent"], "amendments_received": r["amendments_received"],
        "sent_by_status": r["sent_by_status"], "received_by_status": r["received_by_status"],
        "handled_on_time": r["handled_on_time"], "handled_late": r["handled_late"],
        "overdue_open": r["overdue_open"], "rejections": r["rejections"],
        "n01": r["time_to_arrived"]["count"], "n03": r["time_to_accepted"]["count"],
        "n06": r["time_to_done"]["count"],
    })
}

fn add(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => json!(x.as_u64().unwrap() + y.as_u64().unwrap()),
        (Value::Object(x), Value::Object(y)) => {
            let mut out = x.clone();
            for (k, v) in y {
                let sum = match x.get(k) {
                    Some(w) => add(w, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), sum);
            }
            Value::Object(out)
        }
        (Value::Null, v) | (v, Value::Null) => v.clone(),
        _ => panic!("cannot add {a} and {b}"),
    }
}

#[test]
fn registers_reports_and_tracking_follow_the_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock");
    set_clock(&clock, vn(2026, 12, 30, 8));
    let specs = vec![
        NodeSpec::new(ROOT, "Văn phòng Chính phủ", None).unwrap(),
        NodeSpec::new(P1, "UBND tỉnh Tây Ninh", Some(ROOT)).unwrap(),
        NodeSpec::gateway(G1, "UBND huyện Bến Cầu", P1).unwrap(),
        NodeSpec::new(P2, "UBND tỉnh Quảng Nam", Some(ROOT)).unwrap(),
        NodeSpec::gateway(G2, "UBND huyện Duy Xuyên", P2).unwrap(),
    ];
    let net = Network::create(&dir.path().join("net"), &relay_exe(), &specs)
        .unwrap()
        .with_gateway_exe(&relay_exe().with_file_name("lt-gateway"))
        .with_env("LT_CLOCK_FILE", clock.to_str().unwrap());
    let mut s = Scene { net, clock };
    s.net.start_all().unwrap();
    s.net.wait_linked(Duration::from_secs(60)).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(&mut s)));
    if result.is_err() {
        dump_logs(&s.net);
    }
    s.net.stop_all();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn scenario(s: &mut Scene) {
    let day1 = "2026-12-30";
    let (a, a_doc) = s.send(&[G2, P2], "1", day1, json!({ "due_date": "2026-12-31" }));
    let (b, b_doc) = s.send(&[G2], "2", day1, json!({ "due_date": "2026-12-30" }));
    set_clock(&s.clock, vn(2026, 12, 30, 9));
    s.status(G2, &a, 3, "", Value::Null);
    set_clock(&s.clock, vn(2026, 12, 30, 10));
    s.status(P2, &a, 3, "", Value::Null);
    set_clock(&s.clock, vn(2026, 12, 30, 11));
    s.status(
        G2,
        &a,
        4,
        "",
        json!({ "department": "Phòng Tư pháp", "staff": "Chuyên viên 1" }),
    );
    s.status(G2, &a, 6, "", Value::Null);
    set_clock(&s.clock, vn(2026, 12, 30, 12));
    let (c, _) = s.send(&[P2], "3", day1, json!({}));
    let (d, d_doc) = s.send(&[G2], "4", day1, json!({}));
    set_clock(&s.clock, vn(2026, 12, 30, 13));
    s.status(P2, &c, 2, "sai nơi nhận", Value::Null);
    set_clock(&s.clock, vn(2026, 12, 30, 14));
    s.status(G1, &d, 13, "ban hành nhầm", Value::Null);
    let g2 = s.client(G2);
    wait_for(Duration::from_secs(30), "13 at G2", || {
        g2.track(&d)
            .ok()
            .filter(|t| t.statuses.iter().any(|r| r.status == 13))
    });
    s.status(G2, &d, 15, "", Value::Null);
    let (_r, r_doc) = s.send(
        &[G2],
        "5",
        day1,
        json!({ "business": { "doc_type": 1, "target_document_id": d_doc, "reason": "ban hành nhầm" } }),
    );
    // The same document A again, under a new envelope: one number in every book.
    let (a2, a2_doc) = s.send(&[G2, P2], "1", day1, json!({ "due_date": "2026-12-31" }));
    assert_ne!(a2, a);
    assert_eq!(a2_doc, a_doc);

    // A restart of G2 does not restart its numbering.
    s.net.stop(&code(G2), libc::SIGTERM).unwrap();
    set_clock(&s.clock, vn(2026, 12, 31, 10));
    s.net.start(&code(G2)).unwrap();
    s.net.wait_linked(Duration::from_secs(60)).unwrap();
    let (_f, f_doc) = s.send(&[G2], "6", "2026-12-31", json!({}));
    set_clock(&s.clock, vn(2027, 1, 1, 8));
    let (_e, e_doc) = s.send(&[G2], "7", "2027-01-01", json!({}));
    s.status(P2, &a, 6, "", Value::Null);

    // Incoming register of G2: continuous within 2026, restarting at 1 in 2027.
    let in26 = s
        .client(G2)
        .get_json(&format!("/v1/registers/{G2}?year=2026&direction=in"))
        .unwrap();
    assert_eq!(
        numbers(&in26),
        vec![
            (1, a_doc.clone()),
            (2, b_doc.clone()),
            (3, d_doc.clone()),
            (4, r_doc.clone()),
            (5, f_doc.clone()),
        ]
    );
    let in27 = s
        .client(G2)
        .get_json(&format!("/v1/registers/{G2}?year=2027&direction=in"))
        .unwrap();
    assert_eq!(numbers(&in27), vec![(1, e_doc.clone())]);
    let rows = in26["rows"].as_array().unwrap();
    assert_eq!(rows[0]["date"], "2026-12-30");
    assert_eq!(rows[0]["handler"], "Phòng Tư pháp / Chuyên viên 1");
    assert_eq!(rows[0]["passed_on"], "2026-12-30");
    assert_eq!(rows[0]["from"], G1);
    assert_eq!(rows[4]["date"], "2026-12-31");
    let d_notes = rows[2]["notes"].as_array().unwrap();
    assert!(
        d_notes.iter().any(|n| n["kind"] == "amended_by"
            && n["business"] == "revoke"
            && n["document_id"] == r_doc.as_str()),
        "{d_notes:?}"
    );
    assert!(d_notes
        .iter()
        .any(|n| n["kind"] == "status" && n["status"] == 13));
    assert!(d_notes
        .iter()
        .any(|n| n["kind"] == "status" && n["status"] == 15));
    assert_eq!(rows[3]["business"], "revoke");
    assert_eq!(rows[3]["notes"][0]["kind"], "amends");

    // Outgoing register of G1: one row per document (A sent twice is one row).
    let out26 = s
        .client(G1)
        .get_json(&format!("/v1/registers/{G1}?year=2026&direction=out"))
        .unwrap();
    assert_eq!(out26["rows"].as_array().unwrap().len(), 6);
    let c_row = &out26["rows"][2];
    assert!(c_row["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["status"] == 2 && n["reason"] == "sai nơi nhận"));

    // The CLI prints the same book, and the printable HTML one.
    let csv = s.lt(
        G2,
        &[
            "register",
            "--agency",
            G2,
            "--year",
            "2026",
            "--direction",
            "in",
            "--format",
            "csv",
        ],
    );
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert!(csv.lines().nth(3).unwrap().contains("4/VP"), "{csv}");
    let html = s.lt(
        G2,
        &[
            "register",
            "--agency",
            G2,
            "--year",
            "2026",
            "--direction",
            "in",
            "--format",
            "html",
        ],
    );
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("SỔ ĐĂNG KÝ VĂN BẢN ĐẾN"));
    assert!(html.contains("Số đến"));
    assert_eq!(html.matches("<tr><td").count(), 5);

    // Reports: G1's sent documents, statuses per (document, recipient) pair.
    let expect_g1 = json!({
        "sent": 7, "received": 0, "amendments_sent": 1, "amendments_received": 0,
        "sent_by_status": { "01": 4, "02": 1, "06": 2, "15": 1 },
        "received_by_status": {}, "handled_on_time": 0, "handled_late": 0, "overdue_open": 0,
        "rejections": { "sai nơi nhận": 1 }, "n01": 8, "n03": 2, "n06": 2,
    });
    let g1 = wait_for(Duration::from_secs(30), "G1's report", || {
        let r = s.report(G1, G1, false);
        (additive(&r) == expect_g1).then_some(r)
    });
    assert_eq!(g1["time_to_arrived"]["median_secs"], 0);
    assert_eq!(g1["time_to_accepted"]["median_secs"], 3600);
    assert_eq!(g1["time_to_accepted"]["p90_secs"], 7200);
    assert_eq!(g1["time_to_done"]["median_secs"], 3 * 3600);
    assert_eq!(g1["time_to_done"]["p90_secs"], 2 * 86_400);
    assert_eq!(
        g1["top_recipients"][0],
        json!({ "agency": G2, "documents": 6 })
    );
    assert_eq!(
        g1["top_recipients"][1],
        json!({ "agency": P2, "documents": 2 })
    );
    let expect_g2 = json!({
        "sent": 0, "received": 6, "amendments_sent": 0, "amendments_received": 1,
        "sent_by_status": {}, "received_by_status": { "01": 4, "06": 1, "15": 1 },
        "handled_on_time": 1, "handled_late": 0, "overdue_open": 1,
        "rejections": {}, "n01": 0, "n03": 0, "n06": 0,
    });
    assert_eq!(additive(&s.report(G2, G2, false)), expect_g2);
    let expect_p2 = json!({
        "sent": 0, "received": 2, "amendments_sent": 0, "amendments_received": 0,
        "sent_by_status": {}, "received_by_status": { "02": 1, "06": 1 },
        "handled_on_time": 0, "handled_late": 1, "overdue_open": 0,
        "rejections": {}, "n01": 0, "n03": 0, "n06": 0,
    });
    assert_eq!(additive(&s.report(P2, P2, false)), expect_p2);

    // Tracking: B is overdue at G2; by document id through the CLI.
    let track = s.lt(G1, &["track", &b_doc]);
    assert!(track.contains(G2) && track.contains("OVERDUE"), "{track}");
    let _ = b;

    // Subtree: each node sends its signed daily summaries up; the root's subtree report is
    // the sum of its children's subtree reports.
    for n in [G1, G2, P2] {
        s.client(n)
            .post_json("/v1/reports/push", &json!({}))
            .unwrap();
    }
    let p1_sub = wait_for(Duration::from_secs(30), "P1 subtree", || {
        let r = s.report(P1, P1, true);
        (additive(&r) == expect_g1).then_some(r)
    });
    let p2_expect = add(&expect_g2, &expect_p2);
    let p2_sub = wait_for(Duration::from_secs(30), "P2 subtree", || {
        let r = s.report(P2, P2, true);
        (additive(&r) == p2_expect).then_some(r)
    });
    let sum = add(&additive(&p1_sub), &additive(&p2_sub));
    let root = wait_for(Duration::from_secs(30), "root subtree", || {
        let r = s.report(ROOT, ROOT, true);
        (additive(&r) == sum).then_some(r)
    });
    assert_eq!(root["time_to_done"], g1["time_to_done"]);
    assert_eq!(root["agencies"], json!([P2, G2, G1]));
    // The root can report on one province's subtree without holding its documents.
    assert_eq!(additive(&s.report(ROOT, P2, true)), p2_expect);

    // With G2 stopped, the CLI reads its store directly and prints the same book.
    s.net.stop(&code(G2), libc::SIGTERM).unwrap();
    let json_book = s.lt(
        G2,
        &[
            "register",
            "--agency",
            G2,
            "--year",
            "2026",
            "--direction",
            "in",
            "--format",
            "json",
        ],
    );
    let offline: Value = serde_json::from_str(&json_book).unwrap();
    assert_eq!(numbers(&offline), numbers(&in26));
}
