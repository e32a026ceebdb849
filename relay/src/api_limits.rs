//! The local API's rate and byte limits (`[limits] api_requests_per_minute`,
//! `api_mib_per_minute`, or a client's own `requests_per_minute` / `mib_per_minute`): one pair
//! of buckets per API client, or per address when the API has no clients (with clients, the
//! open monitoring routes are not limited, and requests without a credential are refused before
//! they get here). A request beyond
//! either is answered 429 with `Retry-After`, logged, counted in
//! `lienthong_refused_total{reason="api_rate_limit"}`, and recorded as a security event at most
//! once a minute per client. Bodies are charged by their `Content-Length`, or as they are read
//! when they have none.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lienthong_node::limits::{Bucket, EventGate, EVENT_EVERY};
use tokio_stream::StreamExt;
use tracing::info;

use crate::api_auth::Caller;
use crate::api_error::ApiError;
use crate::api_server::Connection;
use crate::node::Node;
use crate::security_events::EventClass;

/// Peers kept before idle ones are forgotten (a full bucket is the same as none).
const PRUNE_ABOVE: usize = 4096;

/// One client's (or address's) buckets.
#[derive(Debug)]
struct Peer {
    requests: Bucket,
    bytes: Bucket,
    events: EventGate,
    seen: Instant,
}

/// The limits' state, shared by every request.
pub(crate) struct ApiLimits {
    node: Arc<Node>,
    peers: Mutex<HashMap<String, Arc<Mutex<Peer>>>>,
}

impl ApiLimits {
    pub(crate) fn new(node: Arc<Node>) -> Arc<Self> {
        Arc::new(Self {
            node,
            peers: Mutex::new(HashMap::new()),
        })
    }

    fn peer(
        &self,
        key: &str,
        per_minute: u64,
        bytes_per_minute: u64,
        now: Instant,
    ) -> Arc<Mutex<Peer>> {
        let mut peers = lock(&self.peers);
        if peers.len() > PRUNE_ABOVE {
            peers.retain(|_, p| now.saturating_duration_since(lock(p).seen) < EVENT_EVERY * 2);
        }
        let peer = peers
            .entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Peer {
                    requests: Bucket::new(per_minute, now),
                    bytes: Bucket::new(bytes_per_minute, now),
                    events: EventGate::default(),
                    seen: now,
                }))
            })
            .clone();
        {
            // Limits changed by a reload apply to peers already seen as well.
            let mut p = lock(&peer);
            p.requests.set_rate(per_minute, now);
            p.bytes.set_rate(bytes_per_minute, now);
        }
        peer
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The middleware; it runs after authentication, so it knows the client.
pub(crate) async fn limit(
    State(limits): State<Arc<ApiLimits>>,
    req: Request,
    next: Next,
) -> Response {
    let node = &limits.node;
    let caller = req.extensions().get::<Caller>().and_then(|c| c.0.clone());
    let (key, who, per_minute, mib) = match &caller {
        Some(c) => {
            // The limits of a reload, for a client the configuration still has.
            let (per_minute, mib) = node
                .limits()
                .clients
                .get(&c.name)
                .copied()
                .unwrap_or((c.requests_per_minute, c.mib_per_minute));
            (
                format!("client {}", c.name),
                c.name.clone(),
                per_minute,
                mib,
            )
        }
        // With clients configured, a request without one is on an open monitoring route, or on
        // the console (its log-in included), which is limited per address like an open API.
        None if !node.config.api_clients.is_empty()
            && !req.uri().path().starts_with("/console") =>
        {
            return next.run(req).await
        }
        None => {
            let ip = req
                .extensions()
                .get::<Connection>()
                .map(|c| c.peer.ip().to_string())
                .unwrap_or_default();
            let limits = node.limits().node;
            (
                format!("address {ip}"),
                ip,
                limits.api_requests_per_minute,
                limits.api_mib_per_minute,
            )
        }
    };
    if per_minute == 0 && mib == 0 {
        return next.run(req).await;
    }
    let now = Instant::now();
    let peer = limits.peer(&key, u64::from(per_minute), u64::from(mib) << 20, now);
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let refused = {
        let mut p = lock(&peer);
        p.seen = now;
        match p.requests.take(1, now) {
            Err(wait) => Some((wait, format!("more than {per_minute} requests per minute"))),
            Ok(()) => match p.bytes.take(length.unwrap_or(0), now) {
                Err(wait) => Some((
                    wait,
                    format!("more than {mib} MiB of request bodies per minute"),
                )),
                Ok(()) => None,
            },
        }
    };
    if let Some((wait, what)) = refused {
        let secs = wait
            .as_secs()
            .saturating_add(u64::from(wait.subsec_nanos() > 0))
            .max(1);
        let reason = format!(
            "{} {}: {key} sent {what}; retry in {secs} s",
            req.method(),
            req.uri().path()
        );
        info!(client = %who, retry_after_secs = secs, cause = %reason, "API request refused: rate limit");
        let record = lock(&peer).events.hit(now);
        match record {
            Some(n) => node.security_event(
                EventClass::ApiRateLimit,
                &who,
                "",
                &format!("{reason} ({n} refused since the last event)"),
            ),
            None => node.metrics.refuse(EventClass::ApiRateLimit.as_str()),
        }
        let mut r = ApiError::new(StatusCode::TOO_MANY_REQUESTS, reason).into_response();
        if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    if length.is_some() || mib == 0 {
        return next.run(req).await;
    }
    // No Content-Length (a chunked body): charged as it is read; the debt delays the next.
    let (parts, body) = req.into_parts();
    let charged = peer.clone();
    let body = Body::from_stream(body.into_data_stream().map(move |chunk| {
        if let Ok(bytes) = &chunk {
            lock(&charged)
                .bytes
                .debit(bytes.len() as u64, Instant::now());
        }
        chunk
    }));
    next.run(Request::from_parts(parts, body)).await
}
