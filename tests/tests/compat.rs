//! Nodes of this release beside nodes of an older one, over real links: a parent that does not
//! list `node_detail` in its Hello never gets a node detail (it would not know the frame), and the
//! detail does not hold up what is queued behind it. The older parent is played by this test: a
//! real mTLS gRPC link server with the root's certificate that answers the Hello with no
//! features, records every frame, and acknowledges each item.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lienthong_common::pki;
use lienthong_common::tls::{self, Identity};
use lienthong_common::trust::TrustStore;
use lienthong_harness::{Network, NodeSpec};
use lienthong_proto::v1::relay_link_server::{RelayLink, RelayLinkServer};
use lienthong_proto::v1::{
    link_frame::Frame, receipt_frame, Hello, HopAck, LinkFrame, ProbeRequest, ProbeResponse,
};
use support::{code, relay_exe, wait_for};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

const ROOT: &str = "000.00.00.G22";
const PROVINCE: &str = "000.00.00.H53";

/// What the old parent received: the kind of every receipt frame, in order.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<&'static str>>>);

struct OldParent {
    seen: Seen,
}

type Frames = Pin<Box<dyn Stream<Item = Result<LinkFrame, Status>> + Send>>;

fn kind(item: &Option<receipt_frame::Item>) -> &'static str {
    match item {
        Some(receipt_frame::Item::Status(_)) => "status",
        Some(receipt_frame::Item::Transport(_)) => "transport",
        Some(receipt_frame::Item::Summary(_)) => "summary",
        Some(receipt_frame::Item::Attestation(_)) => "attestation",
        Some(receipt_frame::Item::Detail(_)) => "detail",
        None => "empty",
    }
}

#[tonic::async_trait]
impl RelayLink for OldParent {
    type OpenStream = Frames;

    async fn open(&self, req: Request<Streaming<LinkFrame>>) -> Result<Response<Frames>, Status> {
        let mut inbound = req.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<LinkFrame, Status>>(64);
        // An older release's Hello: no features at all.
        tx.send(Ok(LinkFrame {
            frame: Some(Frame::Hello(Hello {
                agency: ROOT.into(),
                serves: vec![ROOT.into()],
                software_version: "0.1.0".into(),
                features: vec![],
                heartbeat_secs: 0,
                claims: vec![],
            })),
        }))
        .await
        .unwrap();
        let seen = self.seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(f)) = inbound.next().await {
                let id = match f.frame {
                    Some(Frame::Receipt(r)) => {
                        seen.0.lock().unwrap().push(kind(&r.item));
                        match r.item {
                            Some(receipt_frame::Item::Status(s)) => s.id,
                            Some(receipt_frame::Item::Transport(t)) => t.id,
                            Some(receipt_frame::Item::Summary(s)) => s.id,
                            Some(receipt_frame::Item::Attestation(a)) => a.id,
                            Some(receipt_frame::Item::Detail(d)) => d.id,
                            None => continue,
                        }
                    }
                    Some(Frame::Envelope(h)) => h.envelope.map(|e| e.id).unwrap_or_default(),
                    _ => continue,
                };
                let ack = LinkFrame {
                    frame: Some(Frame::Ack(HopAck { item_id: id })),
                };
                if tx.send(Ok(ack)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn probe(&self, _: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        Err(Status::unimplemented("an older parent: no probe"))
    }
}

/// Serves the old parent on a loopback port with the root's certificate; returns its address.
async fn old_parent(pki_dir: &std::path::Path, seen: Seen) -> std::net::SocketAddr {
    let trust = Arc::new(
        TrustStore::load(&pki::ca_cert_path(pki_dir), Some(&pki::crl_path(pki_dir))).unwrap(),
    );
    let id = Identity::load(
        &pki::node_cert_path(pki_dir, &code(ROOT)),
        &pki::node_key_path(pki_dir, &code(ROOT)),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(&trust, &id, false).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            if let Ok(tls) = acceptor.accept(tcp).await {
                let _ = tx.send(Ok::<_, std::io::Error>(tls)).await;
            }
        }
    });
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(RelayLinkServer::new(OldParent { seen }))
            .serve_with_incoming(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap();
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_without_node_detail_gets_attestations_but_no_details() {
    let dir = tempfile::tempdir().unwrap();
    let specs = vec![
        NodeSpec::new(ROOT, "Root", None).unwrap(),
        NodeSpec::new(PROVINCE, "Tỉnh A", Some(ROOT)).unwrap(),
    ];
    let mut net = Network::create(dir.path(), &relay_exe(), &specs).unwrap();
    let seen = Seen::default();
    let addr = old_parent(&net.pki_dir(), seen.clone()).await;
    net.set_parent_address(&code(PROVINCE), addr).unwrap();
    net.start(&code(PROVINCE)).unwrap();
    let log = net.nodes[&code(PROVINCE)].log.clone();

    // The province makes an attestation and a node detail at start: the attestation goes up,
    // the detail is taken off the queue unsent, with a line in the log.
    let s = seen.clone();
    tokio::task::spawn_blocking(move || {
        wait_for(
            Duration::from_secs(60),
            "the attestation at the old parent",
            || s.0.lock().unwrap().contains(&"attestation").then_some(()),
        );
        wait_for(Duration::from_secs(30), "the province's log line", || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("node detail not sent: the peer does not take node details")
                .then_some(())
        });
    })
    .await
    .unwrap();
    // A second attestation after it: nothing waits behind the detail, and still no detail.
    let before = seen.0.lock().unwrap().len();
    let client = net.client(&code(PROVINCE)).unwrap();
    let s = seen.clone();
    tokio::task::spawn_blocking(move || {
        client
            .post_json("/v1/security/push", &serde_json::json!({}))
            .unwrap();
        wait_for(Duration::from_secs(30), "a second attestation", || {
            let v = s.0.lock().unwrap();
            (v.len() > before && v[before..].contains(&"attestation")).then_some(())
        });
    })
    .await
    .unwrap();
    let all = seen.0.lock().unwrap().clone();
    assert!(!all.contains(&"detail"), "{all:?}");
    // The province still holds its own detail (its console and `security report` show it).
    let report = net
        .client(&code(PROVINCE))
        .unwrap()
        .get_json("/v1/security/report")
        .unwrap();
    assert_eq!(report[0]["name"], "Tỉnh A", "{report}");
    net.stop_all();
}
