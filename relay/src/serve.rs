//! `lt-relay serve`: bind the listeners, keep the parent link up, drain on SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use lienthong_common::clock::Clock;
use lienthong_common::config::NodeConfig;
use lienthong_common::tls::{self, Identity};
use lienthong_proto::v1::relay_link_server::RelayLinkServer;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::link::{self, LinkService, MAX_FRAME_BYTES};
use crate::node::Node;
use crate::security_events::EventClass;

/// TLS handshakes in progress at once on the link listener.
pub const MAX_CONCURRENT_HANDSHAKES: usize = 256;
/// How long a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight work may take to finish after SIGTERM.
pub const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// Binds `addr`, if configured.
async fn bind(
    addr: Option<std::net::SocketAddr>,
) -> Result<Option<(std::net::SocketAddr, TcpListener)>, ServeError> {
    match addr {
        Some(addr) => Ok(Some((
            addr,
            TcpListener::bind(addr)
                .await
                .map_err(|cause| ServeError::Bind { addr, cause })?,
        ))),
        None => Ok(None),
    }
}

/// Why `serve` could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Configuration, certificates or store: exit 64 before any port is bound.
    #[error("{0}")]
    Config(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        cause: std::io::Error,
    },
}

/// A started node: its listeners are bound and its tasks running.
pub struct Running {
    /// The node.
    pub node: Arc<Node>,
    /// Fire to stop.
    pub shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Running {
    /// Waits until every task ended after shutdown (at most [`DRAIN_GRACE`]), then flushes.
    pub async fn drained(self) {
        self.tracker.close();
        if tokio::time::timeout(DRAIN_GRACE, self.tracker.wait())
            .await
            .is_err()
        {
            warn!("drain grace period over; stopping with tasks still running");
        }
        match self.node.store.commit().await {
            Ok(_) => info!("store flushed; stopped"),
            Err(e) => error!(cause = %e, "final store flush failed"),
        }
    }
}

/// Opens the node and binds its listeners. Errors here happen before any traffic.
pub async fn start(config: NodeConfig) -> Result<Running, ServeError> {
    apply_log_level(&config);
    let identity = Identity::load(&config.tls.cert, &config.tls.key)
        .map_err(|e| ServeError::Config(e.to_string()))?;
    let node =
        Node::open(config, Clock::from_env()).map_err(|e| ServeError::Config(e.to_string()))?;
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    // Before anything can record a security event, so that none misses the webhook.
    crate::webhook::start(&node, &tracker, shutdown.clone());

    let grpc = bind(node.config.grpc).await?;
    let api = bind(node.config.api).await?;

    if let Some((addr, listener)) = grpc {
        let server_cfg = tls::server_config(
            node.verifier.trust(),
            &identity,
            node.config.tls.allow_tls12,
        )
        .map_err(|e| ServeError::Config(e.to_string()))?;
        info!(%addr, "link listener (mTLS 1.3) ready");
        tracker.spawn(serve_links(
            node.clone(),
            listener,
            server_cfg,
            shutdown.clone(),
        ));
    }
    if let Some((addr, listener)) = api {
        let api_tls = match &node.config.api_tls {
            None => {
                info!(%addr, "local API ready (plain HTTP)");
                None
            }
            Some(t) => {
                let cfg = tls::api_server_config(t)
                    .map_err(|e| ServeError::Config(format!("[listen] api_tls: {e}")))?;
                info!(
                    %addr,
                    certificate = %t.cert.display(),
                    client_certificates = t.client_ca.is_some(),
                    "local API ready (HTTPS)"
                );
                Some(cfg)
            }
        };
        let router = crate::router::router(node.clone());
        tracker.spawn(crate::api_server::serve(
            listener,
            router,
            node.config.api_timeouts.clone(),
            api_tls,
            node.clone(),
            shutdown.clone(),
        ));
    }
    if let Some(amqp) = node.config.amqp.clone() {
        info!("RabbitMQ integration enabled");
        tracker.spawn(crate::amqp::run(node.clone(), amqp, shutdown.clone()));
    }
    tracker.spawn(crate::security::watch(
        node.clone(),
        identity.clone(),
        shutdown.clone(),
    ));
    tracker.spawn(crate::security::watch_crl(node.clone(), shutdown.clone()));
    tracker.spawn(crate::crl_fetch::run(node.clone(), shutdown.clone()));
    tracker.spawn(crate::report::summary_loop(node.clone(), shutdown.clone()));
    tracker.spawn(crate::offline::expiry_loop(node.clone(), shutdown.clone()));
    tracker.spawn(crate::offline::announce_expiry_loop(
        node.clone(),
        shutdown.clone(),
    ));
    crate::upkeep::spawn(&tracker, &node, &shutdown);
    tracker.spawn(crate::monitor::monitor_loop(node.clone(), shutdown.clone()));
    tracker.spawn(crate::stamper::run(node.clone(), shutdown.clone()));
    tracker.spawn(lienthong_node::pdf_check::run(
        node.clone(),
        shutdown.clone(),
    ));
    tracker.spawn(crate::stamper::audit_loop(node.clone(), shutdown.clone()));
    if node.config.parent.is_some() {
        tracker.spawn(link::parent_loop(node.clone(), identity, shutdown.clone()));
    }
    info!(agency = %node.agency(), name = %node.config.name, "node started");
    Ok(Running {
        node,
        shutdown,
        tracker,
    })
}

async fn serve_links(
    node: Arc<Node>,
    listener: TcpListener,
    cfg: Arc<rustls::ServerConfig>,
    shutdown: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let (tx, rx) = mpsc::channel::<
        Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, std::io::Error>,
    >(16);
    let handshakes = Arc::new(Semaphore::new(MAX_CONCURRENT_HANDSHAKES));
    let accept_node = node.clone();
    let accept_stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = accept_stop.cancelled() => return,
                a = listener.accept() => a,
            };
            let (tcp, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(cause = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = handshakes.clone().acquire_owned().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let node = accept_node.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        drop(permit);
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => {
                        warn!(%remote, cause = %e, "TLS handshake refused");
                        node.security_event(
                            EventClass::TlsHandshake,
                            &remote.to_string(),
                            "",
                            &e.to_string(),
                        );
                    }
                    Err(_) => {
                        warn!(%remote, "TLS handshake timed out");
                        node.security_event(
                            EventClass::TlsTimeout,
                            &remote.to_string(),
                            "",
                            "TLS handshake timed out",
                        );
                    }
                }
            });
        }
    });
    let svc = RelayLinkServer::new(LinkService::new(node.clone(), shutdown.clone()))
        .max_decoding_message_size(MAX_FRAME_BYTES)
        .max_encoding_message_size(MAX_FRAME_BYTES);
    let res = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(node.config.link.heartbeat))
        .http2_keepalive_timeout(Some(node.config.link.heartbeat * 2))
        .add_service(svc)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            shutdown.cancelled_owned(),
        )
        .await;
    if let Err(e) = res {
        error!(cause = %e, "link server stopped");
    }
}

/// Runs a node until SIGTERM or SIGINT, then drains. SIGHUP reloads ([`reload`]).
pub async fn run(config: NodeConfig) -> Result<(), ServeError> {
    let running = start(config).await?;
    let stop = running.shutdown.clone();
    wait_for_signal(&running.node).await;
    info!("stopping: no new work; finishing in-flight items");
    stop.cancel();
    running.drained().await;
    Ok(())
}

async fn wait_for_signal(node: &Node) {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(mut term), Ok(mut int), Ok(mut hup)) => loop {
            tokio::select! {
                _ = term.recv() => return info!("SIGTERM received"),
                _ = int.recv() => return info!("SIGINT received"),
                _ = hup.recv() => reload(node),
            }
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Applies `[log] level` unless `LT_LOG` is set; says why when it cannot.
fn apply_log_level(config: &NodeConfig) -> Option<String> {
    let level = config.log_level.as_deref()?;
    match lienthong_common::telemetry::apply_level(level) {
        Ok(()) => Some(level.to_owned()),
        Err(e) => {
            warn!(cause = %e, "[log] level not applied");
            None
        }
    }
}

/// SIGHUP: reads the configuration file again and puts in force what changes without dropping
/// a link or a connection: `[log] level`, `[limits]` and the API clients' limits; the CRL files
/// are read, and the CRL URLs fetched, at once. Other changed keys wait for a restart. A file
/// that no longer loads changes nothing.
pub fn reload(node: &Node) {
    let path = &node.config.path;
    info!(config = %path.display(), "SIGHUP: reloading the configuration");
    let config = match NodeConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            warn!(cause = %e, "reload refused: the configuration does not load; nothing changed");
            return;
        }
    };
    if config.agency != node.config.agency {
        warn!(
            running = %node.config.agency,
            file = %config.agency,
            "reload refused: node.agency changed; a node's agency changes only with a restart"
        );
        return;
    }
    let log_level = apply_log_level(&config);
    let limits_changed = node.set_limits(&config);
    node.reloads.send_modify(|n| *n += 1);
    info!(
        log_level = log_level.as_deref().unwrap_or("unchanged"),
        limits_changed,
        "configuration reloaded: log level and limits in force, CRLs read again; other changes take effect at the next restart"
    );
}
