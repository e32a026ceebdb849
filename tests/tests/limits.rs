//! Abuse limits with the real binaries: an API client past `requests_per_minute` or its
//! per-minute bytes is answered 429 with Retry-After and raises `api_rate_limit`; a child past
//! `[limits] link_items_per_minute` is slowed (its frames wait unread), raises
//! `link_rate_limit`, and loses nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use lienthong_harness::{sample_envelope, Network, NodeSpec};
use support::{code, relay_exe, sha256_hex, wait_in_inbox};

const ROOT: &str = "000.00.00.G22";
const PROVINCE: &str = "000.00.00.H53";
const DMS_TOKEN: &str = "dms-token-7c1e93b05d2a4f68";
const BULK_TOKEN: &str = "bulk-token-0a4d8e27f61c95b3";

/// One HTTP/1.1 request on its own connection: the status and the raw head and body.
fn raw_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: &[u8],
) -> (u16, String) {
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.write_all(body).unwrap();
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn set_listen_and_append(config: &std::path::Path, listen: &str, tail: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let text = text.replacen("[listen]\n", &format!("[listen]\n{listen}"), 1) + tail;
    std::fs::write(config, text).unwrap();
}

#[test]
fn an_api_client_past_its_limits_is_answered_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let specs = [NodeSpec::new(ROOT, "Văn phòng Chính phủ", None).unwrap()];
    let mut net = Network::create(dir.path(), &relay_exe(), &specs).unwrap();
    let config = net.nodes[&code(ROOT)].config.clone();
    set_listen_and_append(
        &config,
        "",
        &format!(
            "\n[limits]\napi_requests_per_minute = 20\napi_mib_per_minute = 1\n\n\
             [[api_client]]\nname = \"dms\"\ntoken_sha256 = \"{}\"\nscopes = [\"submit\", \"inbox\", \"operate\"]\n\n\
             [[api_client]]\nname = \"bulk\"\ntoken_sha256 = \"{}\"\nscopes = [\"inbox\", \"operate\"]\nrequests_per_minute = 0\n",
            sha256_hex(DMS_TOKEN),
            sha256_hex(BULK_TOKEN)
        ),
    );
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();
    let addr = net.nodes[&code(ROOT)].api;

    // 20 requests within the minute pass; the 21st is refused with Retry-After.
    let inbox = format!("/v1/inbox?agency={ROOT}");
    for i in 0..20 {
        let (status, text) = raw_request(addr, "GET", &inbox, DMS_TOKEN, b"");
        assert_eq!(status, 200, "request {i}: {text}");
    }
    let (status, text) = raw_request(addr, "GET", &inbox, DMS_TOKEN, b"");
    assert_eq!(status, 429, "{text}");
    let retry: u64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("retry-after: ")
                .or_else(|| l.strip_prefix("Retry-After: "))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After: {text}"));
    assert!((1..=3).contains(&retry), "{text}");
    assert!(text.contains("more than 20 requests per minute"), "{text}");
    // Another client has its own bucket, and its own limit (none).
    for i in 0..30 {
        let (status, text) = raw_request(addr, "GET", &inbox, BULK_TOKEN, b"");
        assert_eq!(status, 200, "bulk request {i}: {text}");
    }
    // After the wait, the limited client goes again.
    std::thread::sleep(Duration::from_secs(retry));
    let (status, text) = raw_request(addr, "GET", &inbox, DMS_TOKEN, b"");
    assert_eq!(status, 200, "{text}");

    // Bytes: with one request per 3 s left, a body past the MiB per minute is refused.
    std::thread::sleep(Duration::from_secs(6));
    let big = vec![7u8; 700 * 1024];
    let (status, text) = raw_request(addr, "POST", "/v1/attachments", DMS_TOKEN, &big);
    assert!(status == 200 || status == 201, "{text}");
    std::thread::sleep(Duration::from_secs(3));
    let (status, text) = raw_request(addr, "POST", "/v1/attachments", DMS_TOKEN, &big);
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("MiB of request bodies per minute"), "{text}");
    // A client that sends its whole body without waiting (no `Expect: 100-continue`) reads the
    // refusal all the same: the relay reads the rest and drops it before it closes.
    let bigger = vec![7u8; 8 << 20];
    for round in 0..3 {
        let (status, text) = raw_request(addr, "POST", "/v1/attachments", DMS_TOKEN, &bigger);
        assert_eq!(status, 429, "round {round}: {text}");
    }

    // Refusals: logged events (once a minute per client), every one counted.
    let events: Vec<_> = support::security_events_with_token(&config, Some(BULK_TOKEN))
        .into_iter()
        .filter(|e| e["class"] == "api_rate_limit")
        .collect();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["peer"], "dms", "{events:#?}");
    let (_, metrics) = raw_request(addr, "GET", "/metrics", BULK_TOKEN, b"");
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("reason=\"api_rate_limit\"") && l.trim_end().ends_with(" 5")),
        "{metrics}"
    );

    // The console, its log-in page included, is limited per address as an open API is.
    let statuses: Vec<u16> = (0..25)
        .map(|_| raw_request(addr, "GET", "/console/login", "", b"").0)
        .collect();
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!((20..=21).contains(&passed), "{statuses:?}");
}

#[test]
fn a_child_past_its_link_limit_is_slowed_and_loses_nothing() {
    const DOCS: usize = 130;
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        NodeSpec::new(ROOT, "Văn phòng Chính phủ", None).unwrap(),
        NodeSpec::new(PROVINCE, "UBND tỉnh", Some(ROOT)).unwrap(),
    ];
    let mut net = Network::create(dir.path(), &relay_exe(), &specs).unwrap();
    let root_config = net.nodes[&code(ROOT)].config.clone();
    set_listen_and_append(
        &root_config,
        "",
        "\n[limits]\nlink_items_per_minute = 120\n",
    );
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();

    let province = net.client(&code(PROVINCE)).unwrap();
    let mut ids = Vec::new();
    for i in 0..DOCS {
        let (id, _) = province
            .submit(sample_envelope(
                &code(PROVINCE),
                &[&code(ROOT)],
                &format!("{}", i + 1),
                "Báo cáo",
            ))
            .unwrap();
        ids.push(id);
    }
    let root = net.client(&code(ROOT)).unwrap();
    // 120 go at once, the other 10 at two a second: every one arrives.
    wait_in_inbox(&root, &code(ROOT), &ids, 120, "every document at the root");
    let events: Vec<_> = support::security_events(&net, ROOT)
        .into_iter()
        .filter(|e| e["class"] == "link_rate_limit")
        .collect();
    assert!(!events.is_empty(), "no link_rate_limit event");
    assert_eq!(events[0]["peer"], PROVINCE, "{events:#?}");
    assert!(
        events[0]["reason"]
            .as_str()
            .unwrap()
            .contains("more than 120 items per minute"),
        "{events:#?}"
    );
    let metrics = root.get_text("/metrics").unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("lienthong_refused_total")
                && l.contains("reason=\"link_rate_limit\"")),
        "{metrics}"
    );
}
