//! The intake's one definition of valid input and the retry-safe API, with real processes: a
//! province relay (the root of this small network) and one of its districts.
//!
//! - identifiers with NUL, control characters in text fields, attachment names with a path,
//!   wrong Content-Types and an edXML package carrying a control character are refused with the
//!   field and the character named, and nothing of them is stored or sent;
//! - a status posted twice under one id is sent once, and the same id with other content is 409;
//! - the inbox pages (`limit`, `after`) and lists without bodies;
//! - a document for a district that has never linked waits for it and is delivered when it
//!   links; one for a district that never comes is answered with 02 after the configured age;
//! - a client that never finishes its headers is cut off and counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use lienthong_harness::{sample_envelope, ApiClient, Network, NodeSpec};
use serde_json::{json, Value};
use support::{code, relay_exe, wait_for};

const PROVINCE: &str = "000.00.00.H53";
const DISTRICT: &str = "000.00.31.H53";
const NEVER: &str = "000.00.32.H53";

/// An HTTP client that hands back 4xx and 5xx answers instead of failing on them.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// Asserts that the node's `/metrics` has `line`, showing its lines about `family` if not.
fn assert_metric(c: &ApiClient, line: &str, family: &str) {
    let metrics = c.get_text("/metrics").unwrap();
    assert!(
        metrics.contains(line),
        "{line}: {}",
        metrics
            .lines()
            .filter(|l| l.contains(family))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// POSTs `body` with `content_type` (none if empty) and returns the status and the body.
fn post_raw(api: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let mut req = agent().post(format!("http://{api}{path}"));
    if !content_type.is_empty() {
        req = req.header("content-type", content_type);
    }
    let mut resp = req.send(body).unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

fn post_json_raw(api: &str, path: &str, body: &Value) -> (u16, String) {
    post_raw(
        api,
        path,
        "application/json",
        serde_json::to_string(body).unwrap().as_bytes(),
    )
}

fn error_of(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned())
}

fn doc(to: &str, number: &str) -> Value {
    sample_envelope(&code(PROVINCE), &[&code(to)], number, "Kiểm tra đầu vào")
}

/// Submits `env` and expects a 400 whose message starts with `field` and mentions `detail`.
fn refused(api: &str, env: Value, field: &str, detail: &str) {
    let (status, body) = post_json_raw(api, "/v1/documents", &json!({ "envelope": env }));
    let msg = error_of(&body);
    assert_eq!(status, 400, "{field}: expected 400, got {status}: {msg}");
    assert!(
        msg.starts_with(field),
        "expected {field:?} first in {msg:?}"
    );
    assert!(msg.contains(detail), "expected {detail:?} in {msg:?}");
}

fn track_status(c: &ApiClient, id: &str, recipient: &str) -> Option<(i32, String)> {
    let t = c.track(id).ok()?;
    t.recipients
        .iter()
        .find(|r| r.recipient == recipient)
        .map(|r| (r.status, r.description.clone()))
}

#[test]
fn bad_input_refused_retries_safe_and_offline_children_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let mut province = NodeSpec::new(PROVINCE, "UBND tỉnh Tây Ninh", None).unwrap();
    province.offline_child_max_age_hours = Some(1);
    province.api_body_timeout_secs = Some(2);
    province.api_header_timeout_secs = Some(8);
    let specs = vec![
        province,
        NodeSpec::new(DISTRICT, "UBND huyện Bến Cầu", Some(PROVINCE)).unwrap(),
    ];
    let clock = dir.path().join("clock");
    let mut net = Network::create(dir.path(), &relay_exe(), &specs)
        .unwrap()
        .with_env(lienthong_common::CLOCK_FILE_ENV, clock.to_str().unwrap());
    // Only the province: the district has never linked.
    net.start(&code(PROVINCE)).unwrap();
    let p = net.client(&code(PROVINCE)).unwrap();
    wait_for(Duration::from_secs(30), "province API", || p.health().ok());
    let api = net.nodes[&code(PROVINCE)].api.to_string();

    // 1. Identifiers: NUL anywhere in an envelope id, and other characters outside the set.
    for id in ["abc\0def", "\0abc", "abc\0", "a b", "../x"] {
        let mut env = doc(DISTRICT, "1");
        env["id"] = json!(id);
        let detail = if id.contains('\0') {
            "U+0000 (NUL)"
        } else {
            "identifier"
        };
        refused(&api, env, "id:", detail);
    }
    // 2. Control characters in text fields, each named with its field.
    for (field, set, ch) in [
        ("subject", "/subject", "U+0000 (NUL)"),
        ("subject", "/subject", "U+001B (ESC)"),
        ("from.name", "/from/name", "U+0007 (BEL)"),
        ("code.notation", "/code/notation", "U+000B (VT)"),
        ("signer", "/signer/full_name", "U+000C (FF)"),
    ] {
        let c = match ch {
            "U+0000 (NUL)" => '\0',
            "U+001B (ESC)" => '\u{1b}',
            "U+0007 (BEL)" => '\u{7}',
            "U+000B (VT)" => '\u{b}',
            _ => '\u{c}',
        };
        let mut env = doc(DISTRICT, "2");
        *env.pointer_mut(set).unwrap_or(&mut Value::Null) = json!(format!("X{c}Y"));
        if set == "/from/name" {
            env["from"]["name"] = json!(format!("X{c}Y"));
        }
        refused(&api, env, field, ch);
    }
    // 3. Attachment names that are paths, inline in the submit.
    for name in [
        "../../etc/passwd",
        "..\\..\\windows\\win.ini",
        "/etc/shadow",
        "bad\u{1b}.pdf",
    ] {
        let (status, body) = post_json_raw(
            &api,
            "/v1/documents",
            &json!({
                "envelope": doc(DISTRICT, "3"),
                "attachments": [{ "manifest": { "name": name, "content_type": "application/pdf" }, "data": "010203" }],
            }),
        );
        let msg = error_of(&body);
        assert_eq!(status, 400, "{name:?}: {msg}");
        assert!(msg.starts_with("attachments.name"), "{name:?}: {msg}");
    }
    // 4. Content types: only JSON or edXML.
    let body = serde_json::to_vec(&json!({ "envelope": doc(DISTRICT, "4") })).unwrap();
    for ct in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let (status, resp) = post_raw(&api, "/v1/documents", ct, &body);
        let msg = error_of(&resp);
        assert_eq!(status, 415, "{ct:?}: {msg}");
        assert!(msg.contains("application/json"), "{msg}");
    }
    // Nothing of the refused input reached a queue or the books.
    assert_metric(&p, "lienthong_submitted_total 0", "submitted");

    // 5. A document for the district that has never linked waits for it.
    let (waiting, _) = p.submit(doc(DISTRICT, "5")).unwrap();
    // The export of an accepted document is well-formed edXML that imports back; the same
    // package with a control character put into its subject is refused, naming the field.
    let pkg = p
        .get_text_as(
            &format!("/v1/documents/{waiting}"),
            lienthong_edxml::EDXML_CONTENT_TYPE,
        )
        .unwrap();
    lienthong_edxml::import(pkg.as_bytes()).unwrap();
    let broken = pkg.replacen("Kiểm tra đầu vào", "Kiểm tra\u{1b} đầu vào", 1);
    assert_ne!(broken, pkg);
    let (status, resp) = post_raw(
        &api,
        "/v1/documents",
        lienthong_edxml::EDXML_CONTENT_TYPE,
        broken.as_bytes(),
    );
    let msg = error_of(&resp);
    assert!(
        status == 400 && msg.contains("U+001B (ESC)"),
        "{status}: {msg}"
    );

    // The district starts and links: the waiting document is delivered to it.
    net.start(&code(DISTRICT)).unwrap();
    let d = net.client(&code(DISTRICT)).unwrap();
    wait_for(
        Duration::from_secs(60),
        "the waiting document delivered",
        || {
            d.inbox(&code(DISTRICT))
                .ok()?
                .iter()
                .any(|i| i.envelope.id == waiting)
                .then_some(())
        },
    );
    wait_for(Duration::from_secs(30), "01 back at the province", || {
        (track_status(&p, &waiting, DISTRICT)?.0 == 1).then_some(())
    });

    // 6. Retry-safe statuses: the district reports 03 twice under one id.
    let dapi = net.nodes[&code(DISTRICT)].api.to_string();
    let st = json!({ "agency": DISTRICT, "status": 3, "description": "", "id": "dms-3:1" });
    let path = format!("/v1/documents/{waiting}/status");
    let (s1, b1) = post_json_raw(&dapi, &path, &st);
    let (s2, b2) = post_json_raw(&dapi, &path, &st);
    assert_eq!((s1, s2), (200, 200), "{b1} / {b2}");
    assert_eq!(
        serde_json::from_str::<Value>(&b1).unwrap(),
        serde_json::from_str::<Value>(&b2).unwrap(),
        "a repeat is answered as the first post"
    );
    let mut other = st.clone();
    other["status"] = json!(5);
    let (s3, b3) = post_json_raw(&dapi, &path, &other);
    assert_eq!(s3, 409, "{b3}");
    assert!(error_of(&b3).contains("dms-3:1"), "{b3}");
    // The same status under the Idempotency-Key header instead of the body is the same post.
    let mut keyed = st.clone();
    keyed.as_object_mut().unwrap().remove("id");
    let mut resp = agent()
        .post(format!("http://{dapi}{path}"))
        .header("idempotency-key", "dms-3:1")
        .send_json(&keyed)
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let b4: Value = resp.body_mut().read_json().unwrap();
    assert_eq!(b4, serde_json::from_str::<Value>(&b1).unwrap());
    wait_for(Duration::from_secs(30), "03 at the province", || {
        (track_status(&p, &waiting, DISTRICT)?.0 == 3).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let t = p.track(&waiting).unwrap();
    let accepted = t.statuses.iter().filter(|s| s.status == 3).count();
    assert_eq!(
        accepted, 1,
        "03 posted three times under one id arrives once"
    );

    // 7. The inbox pages: three documents for the province from the district.
    let mut sent = Vec::new();
    for n in 1..=3 {
        sent.push(
            d.submit(sample_envelope(
                &code(DISTRICT),
                &[&code(PROVINCE)],
                &format!("1{n}"),
                "Trang hộp thư",
            ))
            .unwrap()
            .0,
        );
    }
    wait_for(
        Duration::from_secs(60),
        "three documents in the province inbox",
        || (p.inbox(&code(PROVINCE)).ok()?.len() >= 3).then_some(()),
    );
    let page1 = p
        .get_json(&format!("/v1/inbox?agency={PROVINCE}&limit=2"))
        .unwrap();
    let page1 = page1.as_array().unwrap();
    assert_eq!(page1.len(), 2);
    let last = page1[1]["seq"].as_u64().unwrap();
    let page2 = p
        .get_json(&format!(
            "/v1/inbox?agency={PROVINCE}&limit=2&after={last}&bodies=false"
        ))
        .unwrap();
    let page2 = page2.as_array().unwrap();
    assert_eq!(page2.len(), 1);
    assert!(page2[0].get("envelope").is_none(), "{page2:?}");
    let mut listed: Vec<String> = page1
        .iter()
        .chain(page2.iter())
        .map(|e| e["envelope_id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    sent.sort();
    assert_eq!(listed, sent);
    let (status, resp) = {
        let mut r = agent()
            .get(format!("http://{api}/v1/inbox?agency={PROVINCE}&limit=0"))
            .call()
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    };
    assert_eq!(status, 400, "{resp}");
    assert!(error_of(&resp).contains("entries"), "{resp}");

    // 8. A client that never finishes its headers is cut off and counted.
    let mut slow = std::net::TcpStream::connect(&api).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 256];
    let started = std::time::Instant::now();
    let n = slow.read(&mut buf).unwrap_or(0);
    assert!(
        started.elapsed() < Duration::from_secs(29),
        "a client with unfinished headers was kept open"
    );
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(
        !answer.contains("200"),
        "unfinished headers answered: {answer}"
    );
    assert_metric(
        &p,
        "lienthong_api_timeouts_total{reason=\"headers\"} 1",
        "api_timeouts",
    );

    // A body that stalls is cut off after [listen] api_body_timeout_secs (2 s here).
    let mut stalled = std::net::TcpStream::connect(&api).unwrap();
    stalled
        .write_all(
            b"POST /v1/attachments HTTP/1.1\r\nHost: x\r\nContent-Type: application/pdf\r\nContent-Length: 1000\r\n\r\n%PDF-1.7",
        )
        .unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = stalled.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 400")
            && answer.contains("no byte of the request body arrived for 2 s"),
        "{answer}"
    );
    assert_metric(
        &p,
        "lienthong_api_timeouts_total{reason=\"body\"} 1",
        "api_timeouts",
    );

    // 9. A document for a district that never links: after the configured hour its sender
    // gets 02 saying why.
    let (lost, _) = p.submit(doc(NEVER, "9")).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        track_status(&p, &lost, NEVER).map(|s| s.0),
        Some(0),
        "still waiting"
    );
    let later = lienthong_common::now_unix_ms() + 2 * 3600 * 1000;
    std::fs::write(&clock, later.to_string()).unwrap();
    let (status, reason) = wait_for(
        Duration::from_secs(60),
        "02 for the expired document",
        || track_status(&p, &lost, NEVER).filter(|s| s.0 == 2),
    );
    assert_eq!(status, 2);
    assert!(
        reason.contains(NEVER) && reason.contains("has not linked"),
        "{reason}"
    );
}

/// No silent drop: a queue entry whose envelope is gone from the store (a damaged store; made
/// here by removing the record from the stopped province's real sled store, the one fault in
/// this file that cannot be produced through an interface) is counted, recorded as a
/// `queue_item_lost` security event, and its sender gets FAILED and 02 saying where and why.
#[test]
fn a_queued_document_gone_from_the_store_is_answered_not_dropped_silently() {
    const ROOT: &str = "000.00.00.G22";
    let dir = tempfile::tempdir().unwrap();
    let specs = vec![
        NodeSpec::new(ROOT, "Văn phòng Chính phủ", None).unwrap(),
        NodeSpec::new(PROVINCE, "UBND tỉnh Tây Ninh", Some(ROOT)).unwrap(),
        NodeSpec::new(DISTRICT, "UBND huyện Bến Cầu", Some(PROVINCE)).unwrap(),
    ];
    let mut net = Network::create(dir.path(), &relay_exe(), &specs).unwrap();
    net.start(&code(ROOT)).unwrap();
    net.start(&code(PROVINCE)).unwrap();
    let root = net.client(&code(ROOT)).unwrap();
    let province = net.client(&code(PROVINCE)).unwrap();
    wait_for(Duration::from_secs(60), "the province linked", || {
        (province.health().ok()?["parent"]["up"] == json!(true)).then_some(())
    });

    // The district has not linked yet: the document waits at the province.
    let env = sample_envelope(&code(ROOT), &[&code(DISTRICT)], "21", "Hồ sơ bị mất");
    let (id, _) = root.submit(env).unwrap();
    wait_for(
        Duration::from_secs(30),
        "the document at the province",
        || province.get_json(&format!("/v1/documents/{id}")).ok(),
    );
    // A status receipt waiting for the root: the province accepts a document the root sent it
    // (03) while the root is down.
    let (for_province, _) = root
        .submit(sample_envelope(
            &code(ROOT),
            &[&code(PROVINCE)],
            "22",
            "Cho tỉnh",
        ))
        .unwrap();
    wait_for(Duration::from_secs(30), "the province's document", || {
        province
            .inbox(&code(PROVINCE))
            .ok()?
            .iter()
            .any(|i| i.envelope.id == for_province)
            .then_some(())
    });
    net.stop(&code(ROOT), libc::SIGTERM).unwrap();
    let posted = province
        .post_status(&for_province, &code(PROVINCE), 3, "")
        .unwrap();
    let receipt_id = posted["receipt_ids"][0].as_str().unwrap().to_owned();

    // Damage the province's store: the envelope record and the receipt record go, their queue
    // entries stay.
    net.stop(&code(PROVINCE), libc::SIGTERM).unwrap();
    let store_dir = net.nodes[&code(PROVINCE)]
        .config
        .parent()
        .unwrap()
        .join("data")
        .join("store");
    {
        let store = lienthong_common::store::Store::open(&store_dir).unwrap();
        let key = [b"e/".as_slice(), id.as_bytes()].concat();
        assert!(store.get_raw(&key).unwrap().is_some(), "envelope record");
        store.remove_raw(&key).unwrap();
        let key = [b"r/".as_slice(), receipt_id.as_bytes()].concat();
        assert!(store.get_raw(&key).unwrap().is_some(), "receipt record");
        store.remove_raw(&key).unwrap();
        let _persisted = store.commit_blocking().unwrap();
    }

    net.start(&code(ROOT)).unwrap();
    net.start(&code(PROVINCE)).unwrap();
    net.start(&code(DISTRICT)).unwrap();
    wait_for(Duration::from_secs(60), "the root back", || {
        root.health().ok()
    });
    let (status, reason) = wait_for(Duration::from_secs(60), "02 back at the sender", || {
        track_status(&root, &id, DISTRICT).filter(|s| s.0 == 2)
    });
    assert_eq!(status, 2);
    assert!(
        reason.contains("lost at 000.00.00.H53") && reason.contains("missing from the store"),
        "{reason}"
    );
    assert_metric(
        &province,
        "lienthong_dropped_total{reason=\"envelope\"} 1",
        "dropped",
    );
    assert_metric(
        &province,
        "lienthong_dropped_total{reason=\"receipt\"} 1",
        "dropped",
    );
    let events = serde_json::to_string(&support::security_events(&net, PROVINCE)).unwrap();
    assert!(
        events.contains("queue_item_lost") && events.contains(&id) && events.contains(&receipt_id),
        "{events}"
    );
    assert!(
        !net.nodes[&code(DISTRICT)]
            .log
            .to_str()
            .is_some_and(|p| std::fs::read_to_string(p).unwrap_or_default().contains(&id)),
        "nothing of the lost document reached the district"
    );
}
