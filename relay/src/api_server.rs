//! The local API's listener: HTTP/1.1 connections served by hyper with time-outs against slow
//! clients (a client that never finishes its headers, or lets a body stall, is cut off and
//! counted in `lienthong_api_timeouts`), TCP_NODELAY, and a graceful stop. With
//! `[listen] api_tls`, each connection is a TLS session first; the common name of a client
//! certificate that chains to `api_client_ca` goes with each of its requests as a
//! [`Connection`].

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use lienthong_common::config::ApiTimeouts;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::node::Node;

/// Why a request body read was cut off.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("no byte of the request body arrived for {0} s")]
    Stalled(u64),
    #[error("reading the request body: {0}")]
    Read(axum::Error),
}

/// A request body whose stream fails if no chunk arrives within `limit` of the previous one.
fn with_idle_limit(
    body: hyper::body::Incoming,
    limit: std::time::Duration,
    node: Arc<Node>,
) -> Body {
    let secs = limit.as_secs();
    let stream = Body::new(body)
        .into_data_stream()
        .timeout(limit)
        .map(move |r| match r {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(e)) => Err(BodyError::Read(e)),
            Err(_) => {
                node.metrics.api_timeout("body");
                warn!(limit_secs = secs, "local API request body stalled; cut off");
                Err(BodyError::Stalled(secs))
            }
        });
    Body::from_stream(stream)
}

/// What a connection has done, so that a header time-out can tell a slow client (bytes of a
/// request arrived, or nothing ever did) from an idle keep-alive connection (its last answer
/// was written and nothing came after), which hyper closes the same way.
#[derive(Debug, Default)]
struct Activity {
    read_since_write: AtomicU64,
    written: AtomicU64,
}

impl Activity {
    fn slow_client(&self) -> bool {
        self.read_since_write.load(Ordering::Relaxed) > 0
            || self.written.load(Ordering::Relaxed) == 0
    }
}

/// Who is at the other end of a request's connection: its address, and the common name of the
/// client certificate it presented (none: no certificate, or plain HTTP).
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    pub(crate) peer: std::net::SocketAddr,
    pub(crate) certificate_cn: Option<String>,
}

/// A TCP stream that records its [`Activity`].
struct Watched {
    tcp: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.tcp).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before) as u64;
        if n > 0 {
            self.activity
                .read_since_write
                .fetch_add(n, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.tcp).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            if *n > 0 {
                self.activity
                    .written
                    .fetch_add(*n as u64, Ordering::Relaxed);
                self.activity.read_since_write.store(0, Ordering::Relaxed);
            }
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Serves `router` on `listener` until `stop`, then lets open requests finish; over TLS when
/// `tls` is given.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    timeouts: ApiTimeouts,
    tls: Option<Arc<rustls::ServerConfig>>,
    node: Arc<Node>,
    stop: CancellationToken,
) {
    let conns = TaskTracker::new();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                warn!(cause = %e, "local API accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        // Small JSON requests and answers: without TCP_NODELAY, Nagle and delayed ACKs add
        // tens of milliseconds to each one.
        let _ = tcp.set_nodelay(true);
        let activity = Arc::new(Activity::default());
        let io = Watched {
            tcp,
            activity: activity.clone(),
        };
        let conn = Conn {
            router: router.clone(),
            node: node.clone(),
            timeouts: timeouts.clone(),
            stop: stop.clone(),
            activity,
            peer,
        };
        let acceptor = acceptor.clone();
        conns.spawn(async move {
            let Some(acceptor) = acceptor else {
                return conn.run(io, None).await;
            };
            let limit = conn.timeouts.header;
            let tls = match tokio::time::timeout(limit, acceptor.accept(io)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    info!(%peer, cause = %e, "local API TLS handshake failed; connection closed");
                    return;
                }
                Err(_) => {
                    conn.node.metrics.api_timeout("headers");
                    info!(%peer, limit_secs = limit.as_secs(), "local API client did not finish its TLS handshake in time; connection closed");
                    return;
                }
            };
            let cn = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(lienthong_common::tls::common_name);
            conn.run(tls, cn).await;
        });
    }
    conns.close();
    conns.wait().await;
}

/// One accepted connection, before it is served.
struct Conn {
    router: Router,
    node: Arc<Node>,
    timeouts: ApiTimeouts,
    stop: CancellationToken,
    activity: Arc<Activity>,
    peer: std::net::SocketAddr,
}

impl Conn {
    /// Serves HTTP/1.1 on `io` until the client leaves, a time-out, or the stop.
    async fn run<I>(self, io: I, certificate_cn: Option<String>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            router,
            node,
            timeouts,
            stop,
            activity,
            peer,
        } = self;
        let m = node.clone();
        let connection = Connection {
            peer,
            certificate_cn,
        };
        let body_limit = timeouts.body;
        let header_limit = timeouts.header;
        let svc = tower::ServiceExt::map_request(
            router,
            move |req: hyper::Request<hyper::body::Incoming>| {
                let (mut parts, body) = req.into_parts();
                parts.extensions.insert(connection.clone());
                hyper::Request::from_parts(parts, with_idle_limit(body, body_limit, m.clone()))
            },
        );
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_limit)
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(svc));
        tokio::pin!(conn);
        let result = tokio::select! {
            r = conn.as_mut() => r,
            _ = stop.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            if e.is_timeout() && !activity.slow_client() {
                debug!(%peer, "idle local API connection closed");
            } else if e.is_timeout() {
                node.metrics.api_timeout("headers");
                info!(%peer, limit_secs = header_limit.as_secs(), "local API client did not send its headers in time; connection closed");
            } else {
                debug!(%peer, cause = %e, "local API connection ended with an error");
            }
        }
    }
}
