//! Prometheus metrics of a node, in one registry served at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label: a neighbour's agency code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NeighbourLabel {
    /// Agency code.
    pub neighbour: String,
}

/// Label: a refusal reason class.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Reason class (snake case).
    pub reason: String,
}

/// The node's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Items a neighbour acknowledged.
    pub forwarded: Family<NeighbourLabel, Counter>,
    /// Items refused, by reason.
    pub refused: Family<ReasonLabel, Counter>,
    /// Outbound queue depth per neighbour (set at scrape time).
    pub queue_depth: Family<NeighbourLabel, Gauge>,
    /// 1 while a link to the neighbour is up.
    pub link_up: Family<NeighbourLabel, Gauge>,
    /// Link sessions started with each neighbour (a link that keeps restarting flaps).
    pub link_sessions: Family<NeighbourLabel, Counter>,
    /// Time from sending an item to its hop ack.
    pub hop_ack_seconds: Histogram,
    /// Attachment bytes sent to each neighbour (a resumed transfer sends only what is missing).
    pub chunk_bytes_sent: Family<NeighbourLabel, Counter>,
    /// Documents delivered into a local inbox.
    pub delivered: Counter,
    /// Documents accepted from the local side.
    pub submitted: Counter,
    /// Security events not posted to the webhook: its queue was full, or the node stopped.
    pub webhook_dropped: Counter,
    /// Security events whose post to the webhook failed (not retried).
    pub webhook_failed: Counter,
    /// Queued items discarded without being sent, by reason (each also a security event).
    pub dropped: Family<ReasonLabel, Counter>,
    /// Local API connections closed for slowness, by what was late (`headers`, `body`).
    pub api_timeouts: Family<ReasonLabel, Counter>,
    /// The current minute's traffic, for the console's charts ([`crate::traffic`]).
    pub traffic: crate::traffic::Traffic,
    /// When each neighbour's link last went up or down in this process (unix ms).
    link_changes: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    /// When this process started (unix ms): a link never up since is down since then.
    started_unix_ms: i64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered under the `lienthong_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("lienthong");
        let forwarded = Family::<NeighbourLabel, Counter>::default();
        let refused = Family::<ReasonLabel, Counter>::default();
        let queue_depth = Family::<NeighbourLabel, Gauge>::default();
        let link_up = Family::<NeighbourLabel, Gauge>::default();
        let link_sessions = Family::<NeighbourLabel, Counter>::default();
        let hop_ack_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let delivered = Counter::default();
        let chunk_bytes_sent = Family::<NeighbourLabel, Counter>::default();
        let submitted = Counter::default();
        let webhook_dropped = Counter::default();
        let webhook_failed = Counter::default();
        let dropped = Family::<ReasonLabel, Counter>::default();
        let api_timeouts = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "dropped",
            "Queued items discarded without being sent, by reason",
            dropped.clone(),
        );
        registry.register(
            "api_timeouts",
            "Local API requests cut off because the client was too slow, by what was late",
            api_timeouts.clone(),
        );
        registry.register(
            "forwarded",
            "Items acknowledged by the next hop",
            forwarded.clone(),
        );
        registry.register("refused", "Items refused, by reason", refused.clone());
        registry.register(
            "queue_depth",
            "Outbound queue depth per neighbour",
            queue_depth.clone(),
        );
        registry.register(
            "link_up",
            "1 while the link to a neighbour is up",
            link_up.clone(),
        );
        registry.register(
            "link_sessions",
            "Link sessions started with each neighbour",
            link_sessions.clone(),
        );
        registry.register(
            "hop_ack_seconds",
            "Seconds from sending an item to the neighbour's durable-persist ack",
            hop_ack_seconds.clone(),
        );
        registry.register(
            "chunk_bytes_sent",
            "Attachment bytes sent to each neighbour",
            chunk_bytes_sent.clone(),
        );
        registry.register(
            "delivered",
            "Documents delivered into a local inbox",
            delivered.clone(),
        );
        registry.register(
            "submitted",
            "Documents accepted from the local side",
            submitted.clone(),
        );
        registry.register(
            "webhook_dropped",
            "Security events not posted to the webhook: queue full or node stopping",
            webhook_dropped.clone(),
        );
        registry.register(
            "webhook_failed",
            "Security events whose single post to the webhook failed",
            webhook_failed.clone(),
        );
        Self {
            registry,
            forwarded,
            refused,
            queue_depth,
            link_up,
            link_sessions,
            hop_ack_seconds,
            chunk_bytes_sent,
            delivered,
            submitted,
            webhook_dropped,
            webhook_failed,
            dropped,
            api_timeouts,
            traffic: crate::traffic::Traffic::default(),
            link_changes: std::sync::Mutex::default(),
            started_unix_ms: lienthong_common::now_unix_ms(),
        }
    }

    /// The same metrics, counting links never up as down since `unix_ms` (the node's clock at
    /// its start) rather than the system clock's.
    pub fn started_at(mut self, unix_ms: i64) -> Self {
        self.started_unix_ms = unix_ms;
        self
    }

    /// Records the link to `neighbour` going up or down at `now_ms`.
    pub fn link_changed(&self, neighbour: &str, up: bool, now_ms: i64) {
        self.link_up
            .get_or_create(&NeighbourLabel {
                neighbour: neighbour.to_owned(),
            })
            .set(i64::from(up));
        self.link_changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(neighbour.to_owned(), now_ms);
    }

    /// Since when the link to `neighbour` has been in its present state (unix ms): its last
    /// change, or this process's start when it never came up.
    pub fn link_since(&self, neighbour: &str) -> i64 {
        self.link_changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(neighbour)
            .copied()
            .unwrap_or(self.started_unix_ms)
    }

    /// Counts a refusal.
    pub fn refuse(&self, reason: &str) {
        self.traffic.refused(reason);
        self.refused
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts an item dropped from a queue.
    pub fn drop_item(&self, reason: &str) {
        self.dropped
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a local API request cut off for slowness.
    pub fn api_timeout(&self, what: &str) {
        self.api_timeouts
            .get_or_create(&ReasonLabel {
                reason: what.to_owned(),
            })
            .inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(cause = %e, "cannot encode metrics");
            out = format!("# metrics encoding failed: {e}\n");
        }
        out
    }
}
