//! Security events posted as JSON to an HTTP collector (`[security] webhook_url`).
//!
//! [`Node::security_event`] must never wait on the network: it hands the event to a bounded
//! queue ([`WEBHOOK_QUEUE`](crate::security_events::WEBHOOK_QUEUE)) and returns. One sender task drains the queue and posts each event
//! once, with a short timeout ([`WEBHOOK_TIMEOUT`]); a failed post is logged and counted, not
//! retried. When the queue is full (the collector is slow or down) the event is dropped from the
//! webhook, logged and counted: the log line, the metric and the audit record still hold it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::node::Node;
use crate::security_events::{Outgoing, Sink};

/// How long one post (connect, send, answer) may take.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the webhook of `node` if `[security] webhook_url` is set: from now on its security
/// events of the selected classes are posted. Call before anything can record an event.
pub fn start(node: &Arc<Node>, tracker: &TaskTracker, shutdown: CancellationToken) {
    let Some(url) = node.config.security.webhook_url.clone() else {
        return;
    };
    let (sink, rx) = Sink::new(node.config.security.webhook_classes.clone());
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
