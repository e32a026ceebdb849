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
        let mut conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_limit)
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(svc));
        let stopped = stop.cancelled();
        tokio::pin!(stopped);
        let mut stopping = false;
        let result = std::future::poll_fn(|cx| {
            if !stopping && std::future::Future::poll(stopped.as_mut(), cx).is_ready() {
                stopping = true;
                Pin::new(&mut conn).graceful_shutdown();
            }
            conn.poll_without_shutdown(cx)
        })
        .await;
        match result {
            // At a stop, the connection was idle or has had its last answer: no wait.
            Ok(()) if stopping => {
                let mut io = conn.into_parts().io.into_inner();
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut io).await;
            }
            Ok(()) => linger(conn.into_parts().io.into_inner(), peer).await,
            Err(e) => log_ended(&e, &activity, &node, peer, header_limit),
        }
    }
}

/// How long a closing connection goes on reading what its client still sends.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// Closes a served connection the way a client can read its last answer: the sending side is
/// shut first, then whatever the client still sends (the rest of a body refused before it was
/// read, as a 429 or 413 is) is read and dropped until it closes too, for at most [`LINGER`].
/// Closing with unread bytes would make the kernel answer them with a reset, and a client still
/// writing its body would lose the answer it was sent.
async fn linger<I>(mut io: I, peer: std::net::SocketAddr)
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if io.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut sink = vec![0u8; 16 * 1024];
        let mut dropped = 0u64;
        while let Ok(n) = io.read(&mut sink).await {
            if n == 0 {
                break;
            }
            dropped += n as u64;
        }
        dropped
    };
    match tokio::time::timeout(LINGER, drain).await {
        Ok(0) => {}
        Ok(dropped) => debug!(%peer, dropped, "unread request bytes dropped at close"),
        Err(_) => debug!(%peer, "client still sending after the answer; connection closed"),
    }
}

/// Logs why a connection ended with an error, counting a client too slow with its headers.
fn log_ended(
    e: &hyper::Error,
    activity: &Activity,
    node: &Node,
    peer: std::net::SocketAddr,
    header_limit: std::time::Duration,
) {
    if e.is_timeout() && !activity.slow_client() {
        debug!(%peer, "idle local API connection closed");
    } else if e.is_timeout() {
        node.metrics.api_timeout("headers");
        info!(%peer, limit_secs = header_limit.as_secs(), "local API client did not send its headers in time; connection closed");
    } else {
        debug!(%peer, cause = %e, "local API connection ended with an error");
    }
}
