//! Security events posted as JSON to an HTTP collector (`[security] webhook_url`).
//!
//! [`Node::security_event`] must never wait on the network: it hands the event to a bounded
//! queue ([`WEBHOOK_QUEUE`]) and returns. One sender task drains the queue and posts each event
//! once, with a short timeout ([`WEBHOOK_TIMEOUT`]); a failed post is logged and counted, not
//! retried. When the queue is full (the collector is slow or down) the event is dropped from the
//! webhook, logged and counted: the log line, the metric and the audit record still hold it.

use std::sync::Arc;
use std::time::Duration;

use lienthong_common::audit::AuditRecord;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;
use crate::node::Node;

/// Events waiting to be posted before new ones are dropped.
pub const WEBHOOK_QUEUE: usize = 256;
/// How long one post (connect, send, answer) may take.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// One event ready to be posted.
#[derive(Debug)]
struct Outgoing {
    class: String,
    body: Vec<u8>,
}

/// The JSON body: the audit record's fields and the agency of the node that recorded it.
#[derive(Serialize)]
struct Body<'a> {
    node: &'a str,
    #[serde(flatten)]
    record: &'a AuditRecord,
}

/// The body when the event could not be appended to the audit log: the same fields, with no
/// place in the chain.
#[derive(Serialize)]
struct Unchained<'a> {
    node: &'a str,
    seq: Option<u64>,
    at_unix_ms: i64,
    kind: &'a str,
    class: &'a str,
    peer: &'a str,
    agency: &'a str,
    reason: &'a str,
    prev_hash: Option<&'a str>,
    hash: Option<&'a str>,
}

/// A security event as [`Sink::offer`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// Event class.
    pub class: &'a str,
    /// Peer concerned.
    pub peer: &'a str,
    /// Agency concerned.
    pub agency: &'a str,
    /// Why.
    pub reason: &'a str,
    /// Its audit record, if the append succeeded.
    pub record: Option<&'a AuditRecord>,
}

/// The caller's end of the webhook queue.
#[derive(Debug)]
pub struct Sink {
    tx: mpsc::Sender<Outgoing>,
    /// Classes posted (empty: all).
    classes: Vec<String>,
}

impl Sink {
    fn wants(&self, class: &str) -> bool {
        self.classes.is_empty() || self.classes.iter().any(|c| c == class)
    }

    /// Queues `event` for posting if its class is selected; never waits. A full queue drops
    /// the event (logged, counted in `lienthong_webhook_dropped_total`).
    pub fn offer(&self, node: &str, event: Event<'_>, metrics: &Metrics) {
        if !self.wants(event.class) {
            return;
        }
        let body = match event.record {
            Some(record) => serde_json::to_vec(&Body { node, record }),
            None => serde_json::to_vec(&Unchained {
                node,
                seq: None,
                at_unix_ms: lienthong_common::now_unix_ms(),
                kind: "security",
                class: event.class,
                peer: event.peer,
                agency: event.agency,
                reason: event.reason,
                prev_hash: None,
                hash: None,
            }),
        };
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                warn!(class = event.class, cause = %e, "cannot encode security event for the webhook");
                metrics.webhook_dropped.inc();
                return;
            }
        };
        let out = Outgoing {
            class: event.class.to_owned(),
            body,
        };
        match self.tx.try_send(out) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(o)) => {
                warn!(
                    class = %o.class,
                    queued = WEBHOOK_QUEUE,
                    "webhook queue full; security event not posted (it is in the audit log)"
                );
                metrics.webhook_dropped.inc();
            }
            Err(mpsc::error::TrySendError::Closed(o)) => {
                debug!(class = %o.class, "webhook sender stopped; security event not posted");
                metrics.webhook_dropped.inc();
            }
        }
    }
}

/// Starts the webhook of `node` if `[security] webhook_url` is set: from now on its security
/// events of the selected classes are posted. Call before anything can record an event.
pub fn start(node: &Arc<Node>, tracker: &TaskTracker, shutdown: CancellationToken) {
    let Some(url) = node.config.security.webhook_url.clone() else {
        return;
    };
    let (tx, rx) = mpsc::channel(WEBHOOK_QUEUE);
    let sink = Sink {
        tx,
        classes: node.config.security.webhook_classes.clone(),
    };
    if node.webhook.set(sink).is_err() {
        warn!("security events webhook already started");
        return;
    }
    info!(url = %url, classes = ?node.config.security.webhook_classes, "security events webhook enabled");
    tracker.spawn(run(node.clone(), url, rx, shutdown));
}

/// Posts queued events one at a time until `shutdown`; what is still queued then is dropped
/// (counted).
async fn run(
    node: Arc<Node>,
    url: String,
    mut rx: mpsc::Receiver<Outgoing>,
    shutdown: CancellationToken,
) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(WEBHOOK_TIMEOUT))
        .http_status_as_error(false)
        .max_redirects(0)
        // A collector on the local network: no proxy from the environment in between.
        .proxy(None)
        .build()
        .into();
    loop {
        let out = tokio::select! {
            _ = shutdown.cancelled() => break,
            o = rx.recv() => match o {
                Some(o) => o,
                None => return,
            },
        };
        let (agent, target) = (agent.clone(), url.clone());
        let class = out.class;
        // ureq blocks: keep it off the reactor.
        let sent = tokio::task::spawn_blocking(move || post(&agent, &target, out.body)).await;
        let failure = match sent {
            Ok(Ok(())) => None,
            Ok(Err(cause)) => Some(cause),
            Err(e) => Some(format!("sender task failed: {e}")),
        };
        if let Some(cause) = failure {
            warn!(url = %url, class = %class, cause = %cause, "security event not posted to the webhook (no retry)");
            node.metrics.webhook_failed.inc();
        }
    }
    rx.close();
    let mut left = 0u64;
    while rx.try_recv().is_ok() {
        left += 1;
    }
    if left > 0 {
        warn!(
            count = left,
            "stopping: security events still queued for the webhook are not posted"
        );
        node.metrics.webhook_dropped.inc_by(left);
    }
}

fn post(agent: &ureq::Agent, url: &str, body: Vec<u8>) -> Result<(), String> {
    let resp = agent
        .post(url)
        .header("content-type", "application/json")
        .send(&body[..])
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn record() -> AuditRecord {
        serde_json::from_value(serde_json::json!({
            "seq": 7,
            "at_unix_ms": 1_700_000_000_000_i64,
            "kind": "security",
            "class": "crl_missing",
            "peer": "",
            "agency": "000.00.00.H53",
            "reason": "no CRL",
            "prev_hash": "aa",
            "hash": "bb",
        }))
        .unwrap()
    }

    fn event(r: &AuditRecord) -> Event<'_> {
        Event {
            class: &r.class,
            peer: &r.peer,
            agency: &r.agency,
            reason: &r.reason,
            record: Some(r),
        }
    }

    #[test]
    fn the_body_is_the_audit_record_and_the_node() {
        let (tx, mut rx) = mpsc::channel(4);
        let sink = Sink {
            tx,
            classes: vec![],
        };
        let r = record();
        sink.offer("000.00.00.H53", event(&r), &Metrics::new());
        let out = rx.try_recv().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(v["node"], "000.00.00.H53");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["class"], "crl_missing");
        assert_eq!(v["hash"], "bb");
        assert_eq!(v["prev_hash"], "aa");
    }

    #[test]
    fn an_event_without_audit_record_has_null_chain_fields() {
        let (tx, mut rx) = mpsc::channel(4);
        let sink = Sink {
            tx,
            classes: vec![],
        };
        let e = Event {
            class: "burst",
            peer: "000.00.21.H53",
            agency: "000.00.21.H53",
            reason: "too many",
            record: None,
        };
        sink.offer("000.00.00.H53", e, &Metrics::new());
        let v: serde_json::Value = serde_json::from_slice(&rx.try_recv().unwrap().body).unwrap();
        assert_eq!(v["class"], "burst");
        assert!(v["seq"].is_null() && v["hash"].is_null());
    }

    #[test]
    fn classes_filter_and_a_full_queue_drops_and_counts() {
        let (tx, mut rx) = mpsc::channel(1);
        let sink = Sink {
            tx,
            classes: vec!["crl_missing".into()],
        };
        let metrics = Metrics::new();
        let r = record();
        let mut other = record();
        other.class = "tls_handshake".into();
        sink.offer("n", event(&other), &metrics);
        assert!(
            rx.try_recv().is_err(),
            "a class outside the filter is not queued"
        );
        sink.offer("n", event(&r), &metrics);
        sink.offer("n", event(&r), &metrics);
        assert_eq!(metrics.webhook_dropped.get(), 1);
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err());
    }
}
