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

use lienthong_relay::topology::{sample_envelope, Network, NodeSpec};
use support::{code, dump_logs, relay_exe, wait_for};

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
        .get_json(&format!("/v1/inbox?agency={a}&all=true"))
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
    let dir = tempfile::tempdir().unwrap();
    let mut net = Network::create(dir.path(), &relay_exe(), &five_nodes()).unwrap();
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();
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
