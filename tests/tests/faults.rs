//! Faults with real processes: `kill -9` of a relay in the middle of a stream of documents, and
//! a link cut by a TCP proxy (connections dropped, then blackholed). Nothing is lost, nothing
//! is delivered twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lienthong_harness::{sample_envelope, Network, NodeSpec};
use support::{code, dump_logs, relay_exe, start, wait_for};

fn five_nodes() -> Vec<NodeSpec> {
    vec![
        NodeSpec::new("000.00.00.G22", "Root", None).unwrap(),
        NodeSpec::new("000.00.00.H53", "Tỉnh A", Some("000.00.00.G22")).unwrap(),
        NodeSpec::new("000.00.21.H53", "Xã A", Some("000.00.00.H53")).unwrap(),
        NodeSpec::new("000.00.00.H49", "Tỉnh B", Some("000.00.00.G22")).unwrap(),
        NodeSpec::new("000.00.07.H49", "Xã B", Some("000.00.00.H49")).unwrap(),
    ]
}

fn inbox_ids(net: &Network, agency: &str) -> Vec<String> {
    let a = code(agency);
    let v = net
        .client(&a)
        .unwrap()
        .get_json(&format!("/v1/inbox?agency={a}&all=true&limit=5000"))
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["envelope"]["id"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_all_once(net: &Network, agency: &str, sent: &[String], timeout: Duration) {
    let want: HashSet<&String> = sent.iter().collect();
    let got = wait_for(timeout, "every document delivered", || {
        let ids = inbox_ids(net, agency);
        let have: HashSet<&String> = ids.iter().collect();
        want.iter().all(|w| have.contains(*w)).then_some(ids)
    });
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "a document was delivered twice");
    assert_eq!(got.len(), sent.len(), "unexpected extra documents");
}

#[test]
fn kill_9_of_a_province_relay_mid_stream_loses_nothing() {
    let (_dir, mut net) = start(&five_nodes());
    let from = code("000.00.21.H53");
    let to = code("000.00.07.H49");
    let province = code("000.00.00.H53");
    let client = net.client(&from).unwrap();
    let mut sent = Vec::new();
    for i in 0..1000 {
        if i == 300 {
            net.stop(&province, libc::SIGKILL).unwrap();
        }
        if i == 500 {
            net.start(&province).unwrap();
        }
        let (id, _) = client
            .submit(sample_envelope(
                &from,
                &[&to],
                &format!("{i}"),
                "Văn bản thử tải",
            ))
            .unwrap();
        sent.push(id);
    }
    assert_all_once(&net, "000.00.07.H49", &sent, Duration::from_secs(240));
    // Kill it again after the stream, with receipts still flowing back, and check the sender
    // ends up with an 01 for every document.
    net.stop(&province, libc::SIGKILL).unwrap();
    net.start(&province).unwrap();
    let sender = net.client(&from).unwrap();
    for id in sent.iter().step_by(97) {
        wait_for(
            Duration::from_secs(60),
            "status 01 back at the sender",
            || {
                let v = sender.track(id).unwrap();
                (v.recipients[0].history.first().map(|h| h.0) == Some(1)).then_some(())
            },
        );
    }
    if std::thread::panicking() {
        dump_logs(&net);
    }
}

const PASS: u8 = 0;
const DROP: u8 = 1;
const BLACKHOLE: u8 = 2;

/// A TCP proxy in the test process: forwards, drops every connection, or blackholes them.
struct Proxy {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(PASS));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (m, c) = (mode.clone(), conns.clone());
        std::thread::spawn(move || {
            for down in listener.incoming() {
                let Ok(down) = down else { continue };
                if m.load(Ordering::SeqCst) == DROP {
                    let _ = down.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(up) = TcpStream::connect(target) else {
                    continue;
                };
                {
                    let mut c = c.lock().unwrap();
                    c.push(down.try_clone().unwrap());
                    c.push(up.try_clone().unwrap());
                }
                for (src, dst) in [
                    (down.try_clone().unwrap(), up.try_clone().unwrap()),
                    (up, down),
                ] {
                    let m = m.clone();
                    std::thread::spawn(move || pump(src, dst, &m));
                }
            }
        });
        Self { addr, mode, conns }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        if mode == DROP {
            for c in self.conns.lock().unwrap().drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }
}

fn pump(mut src: TcpStream, mut dst: TcpStream, mode: &AtomicU8) {
    let _ = src.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if mode.load(Ordering::SeqCst) == BLACKHOLE {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if mode.load(Ordering::SeqCst) == BLACKHOLE {
                    // Swallowed by the blackhole.
                    continue;
                }
                if dst.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = dst.shutdown(Shutdown::Both);
}

#[test]
fn cut_link_queues_then_flows_after_it_heals() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = Network::create(dir.path(), &relay_exe(), &five_nodes()).unwrap();
    let commune = code("000.00.21.H53");
    let province_grpc = net.nodes[&code("000.00.00.H53")].grpc;
    let proxy = Proxy::start(province_grpc);
    net.set_parent_address(&commune, proxy.addr).unwrap();
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();
    let to = code("000.00.07.H49");
    let client = net.client(&commune).unwrap();
    let mut sent = Vec::new();
    let (id, _) = client
        .submit(sample_envelope(&commune, &[&to], "1", "trước khi cắt"))
        .unwrap();
    sent.push(id);
    assert_all_once(&net, "000.00.07.H49", &sent, Duration::from_secs(30));

    for (mode, name) in [(DROP, "dropped"), (BLACKHOLE, "blackholed")] {
        proxy.set(mode);
        let before = inbox_ids(&net, "000.00.07.H49").len();
        let mut batch = Vec::new();
        for i in 0..20 {
            let (id, _) = client
                .submit(sample_envelope(&commune, &[&to], &format!("{i}"), name))
                .unwrap();
            batch.push(id);
        }
        std::thread::sleep(Duration::from_secs(10));
        assert_eq!(
            inbox_ids(&net, "000.00.07.H49").len(),
            before,
            "documents crossed a {name} link"
        );
        let depth = client.get_json("/healthz").unwrap();
        assert_eq!(
            depth["parent"]["up"], false,
            "link still reported up while {name}: {depth}"
        );
        proxy.set(PASS);
        sent.extend(batch);
        assert_all_once(&net, "000.00.07.H49", &sent, Duration::from_secs(60));
    }
}

fn metric(net: &Network, agency: &str, name_and_labels: &str) -> u64 {
    let text = net
        .client(&code(agency))
        .unwrap()
        .get_text("/metrics")
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no {name_and_labels} in:\n{text}"))
}

#[test]
fn a_cut_transfer_resumes_without_resending_what_the_next_hop_holds() {
    const SIZE: u64 = 300 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let mut net = Network::create(dir.path(), &relay_exe(), &five_nodes()).unwrap();
    let commune = code("000.00.21.H53");
    let proxy = Proxy::start(net.nodes[&code("000.00.00.H53")].grpc);
    net.set_parent_address(&commune, proxy.addr).unwrap();
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();

    let src = dir.path().join("big.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src).unwrap());
        for i in 0..(SIZE / 8) {
            f.write_all(&(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes())
                .unwrap();
        }
    }
    let client = net.client(&commune).unwrap();
    let up = client.upload_file(&src).unwrap();
    let to = code("000.00.07.H49");
    let mut env = sample_envelope(&commune, &[&to], "1", "tiếp tục sau khi cắt");
    env["attachments"] =
        serde_json::json!([{ "name": "a.bin", "size": SIZE, "sha256": up.sha256 }]);
    let (id, _) = client.submit(env).unwrap();

    // Cut the link once the province holds more than a third of the attachment.
    let blobs = dir.path().join("000.00.00.H53/data/store/blobs");
    let held_at_cut = wait_for(Duration::from_secs(120), "transfer under way", || {
        let part = std::fs::read_dir(&blobs)
            .ok()?
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().ends_with(".part"))?;
        let len = part.metadata().ok()?.len();
        (len > SIZE / 3).then_some(len)
    });
    proxy.set(DROP);
    std::thread::sleep(Duration::from_secs(3));
    proxy.set(PASS);
    assert_all_once(
        &net,
        "000.00.07.H49",
        std::slice::from_ref(&id),
        Duration::from_secs(300),
    );
    let sent = metric(
        &net,
        "000.00.21.H53",
        "lienthong_chunk_bytes_sent_total{neighbour=\"000.00.00.H53\"}",
    );
    // Resending from zero would cost at least SIZE + held_at_cut; a resume costs SIZE plus
    // what was in flight when the link was cut (bounded by the link buffers).
    assert!(sent >= SIZE, "sent {sent}");
    assert!(
        sent < SIZE + held_at_cut.min(64 * 1024 * 1024),
        "sent {sent} bytes for {SIZE}; {held_at_cut} were held at the cut"
    );
    let out = dir.path().join("out.bin");
    net.client(&to)
        .unwrap()
        .download(&id, &up.sha256, &out)
        .unwrap();
    assert_eq!(std::fs::metadata(&out).unwrap().len(), SIZE);
}

#[test]
fn sigterm_drains_and_restart_resumes() {
    let (_dir, mut net) = start(&five_nodes());
    let from = code("000.00.21.H53");
    let to = code("000.00.07.H49");
    let root = code("000.00.00.G22");
    let client = net.client(&from).unwrap();
    let mut sent = Vec::new();
    for i in 0..200 {
        if i == 50 {
            let pid = net.pid(&root).unwrap();
            lienthong_harness::send_signal(pid as i32, libc::SIGTERM);
        }
        if i == 150 {
            // The root exited on its own after SIGTERM.
            net.stop(&root, libc::SIGTERM).unwrap();
            net.start(&root).unwrap();
        }
        sent.push(
            client
                .submit(sample_envelope(&from, &[&to], &format!("{i}"), "dừng êm"))
                .unwrap()
                .0,
        );
    }
    assert_all_once(&net, "000.00.07.H49", &sent, Duration::from_secs(120));
    let log = std::fs::read_to_string(&net.nodes[&root].log).unwrap();
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("store flushed; stopped"), "{log}");
}
