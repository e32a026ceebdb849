//! The queue between [`Node::security_event`](crate::node::Node::security_event) and whatever
//! posts security events to a collector (the relay's webhook). Offering never waits on the
//! network: the queue is bounded ([`WEBHOOK_QUEUE`]) and a full queue drops the event from
//! the webhook, logged and counted; the log line, the metric and the audit record still hold it.

use lienthong_common::audit::AuditRecord;
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use lienthong_proto::v1::RefusalCode;

use crate::metrics::Metrics;

/// The class of a security event: its name in the audit log, the metric
/// `lienthong_refused_total{reason}` and the webhook. docs/security.md lists every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventClass {
    /// A TLS handshake on the link listener failed.
    TlsHandshake,
    /// A TLS handshake took too long.
    TlsTimeout,
    /// A client certificate names no usable agency.
    BadCertificate,
    /// A certificate names an agency that is not a child of this node.
    NotAChild,
    /// A link's Hello claims another agency than its certificate.
    AgencyMismatch,
    /// A child announced an agency outside its subtree.
    AnnounceOutsideSubtree,
    /// An item refused on a link, by the class of the refusal.
    Refused(RefusalCode),
    /// A message on a RabbitMQ outbox or status queue was refused and dead-lettered.
    AmqpInvalid,
    /// A neighbour sent more items in a minute than `[security] burst_items_per_minute`.
    Burst,
    /// The node's own certificate expires soon.
    CertificateExpiring,
    /// The interchange CA certificate expires soon.
    CaExpiring,
    /// A child linked with a certificate that expires soon.
    PeerCertificateExpiring,
    /// No CRL is configured.
    CrlMissing,
    /// The CRL is past its next-update date.
    CrlStale,
    /// A changed CRL file could not be put in force (unreadable, not signed by the CA, older).
    CrlRefused,
    /// A CRL could not be fetched from a configured URL or distribution point.
    CrlUnreachable,
    /// A queue entry pointed at nothing in the store and was discarded.
    QueueItemLost,
    /// A local API request without a known token, or beyond its client's scopes or agencies.
    ApiAuth,
    /// An API client passed its request or byte limit (answered 429).
    ApiRateLimit,
    /// A child link passed its item or byte limit (its items wait).
    LinkRateLimit,
    /// The time-stamping authority could not be reached or its answer was refused (the
    /// documents to be stamped wait); recorded once per outage.
    TsaUnreachable,
    /// A signature inside a delivered PDF attachment is invalid (the document was delivered).
    PdfSignatureInvalid,
}

impl EventClass {
    /// Every class, once (refusals by every code).
    pub const ALL: [EventClass; 30] = [
        Self::TlsHandshake,
        Self::TlsTimeout,
        Self::BadCertificate,
        Self::NotAChild,
        Self::AgencyMismatch,
        Self::AnnounceOutsideSubtree,
        Self::Refused(RefusalCode::RefusalMalformed),
        Self::Refused(RefusalCode::RefusalTooLarge),
        Self::Refused(RefusalCode::RefusalInvalid),
        Self::Refused(RefusalCode::RefusalBadSignature),
        Self::Refused(RefusalCode::RefusalBadCertificate),
        Self::Refused(RefusalCode::RefusalSpoofedSender),
        Self::Refused(RefusalCode::RefusalNoRoute),
        Self::Refused(RefusalCode::RefusalReplay),
        Self::Refused(RefusalCode::RefusalUnspecified),
        Self::AmqpInvalid,
        Self::Burst,
        Self::CertificateExpiring,
        Self::CaExpiring,
        Self::PeerCertificateExpiring,
        Self::CrlMissing,
        Self::CrlStale,
        Self::CrlRefused,
        Self::CrlUnreachable,
        Self::QueueItemLost,
        Self::ApiAuth,
        Self::ApiRateLimit,
        Self::LinkRateLimit,
        Self::TsaUnreachable,
        Self::PdfSignatureInvalid,
    ];

    /// Its name, as recorded and counted.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TlsHandshake => "tls_handshake",
            Self::TlsTimeout => "tls_timeout",
            Self::BadCertificate => "bad_certificate",
            Self::NotAChild => "not_a_child",
            Self::AgencyMismatch => "agency_mismatch",
            Self::AnnounceOutsideSubtree => "announce_outside_subtree",
            Self::Refused(code) => refusal_class(code),
            Self::AmqpInvalid => "amqp_invalid",
            Self::Burst => "burst",
            Self::CertificateExpiring => "certificate_expiring",
            Self::CaExpiring => "ca_expiring",
            Self::PeerCertificateExpiring => "peer_certificate_expiring",
            Self::CrlMissing => "crl_missing",
            Self::CrlStale => "crl_stale",
            Self::CrlRefused => "crl_refused",
            Self::CrlUnreachable => "crl_unreachable",
            Self::QueueItemLost => "queue_item_lost",
            Self::ApiAuth => "api_auth",
            Self::ApiRateLimit => "api_rate_limit",
            Self::LinkRateLimit => "link_rate_limit",
            Self::TsaUnreachable => "tsa_unreachable",
            Self::PdfSignatureInvalid => "pdf_signature_invalid",
        }
    }

    /// The class named `name`, if any (for `[security] webhook_classes`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl std::fmt::Display for EventClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The snake-case name of a refusal class, for metrics, logs and the audit log.
pub fn refusal_class(code: RefusalCode) -> &'static str {
    match code {
        RefusalCode::RefusalMalformed => "malformed",
        RefusalCode::RefusalTooLarge => "too_large",
        RefusalCode::RefusalInvalid => "invalid",
        RefusalCode::RefusalBadSignature => "bad_signature",
        RefusalCode::RefusalBadCertificate => "bad_certificate",
        RefusalCode::RefusalSpoofedSender => "spoofed_sender",
        RefusalCode::RefusalNoRoute => "no_route",
        RefusalCode::RefusalReplay => "replay",
        RefusalCode::RefusalUnspecified => "unspecified",
    }
}

/// Events waiting to be posted before new ones are dropped.
pub const WEBHOOK_QUEUE: usize = 256;

/// One event ready to be posted.
#[derive(Debug)]
pub struct Outgoing {
    /// Its class.
    pub class: String,
    /// The JSON body.
    pub body: Vec<u8>,
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
    /// A sink passing events of `classes` (empty: all) and the receiving end its poster
    /// drains.
    pub fn new(classes: Vec<String>) -> (Self, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(WEBHOOK_QUEUE);
        (Self { tx, classes }, rx)
    }

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
    fn every_class_has_one_name_and_is_documented() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/security.md"))
                .unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for c in EventClass::ALL {
            assert_eq!(
                EventClass::parse(c.as_str()).map(EventClass::as_str),
                Some(c.as_str())
            );
            // `bad_certificate` is both a link peer's certificate and a signer's: one name.
            let shared = c == EventClass::Refused(RefusalCode::RefusalBadCertificate);
            assert!(seen.insert(c.as_str()) || shared, "{c} named twice");
            if c != EventClass::Refused(RefusalCode::RefusalUnspecified)
                && c != EventClass::Refused(RefusalCode::RefusalNoRoute)
            {
                assert!(
                    doc.contains(&format!("`{c}`")),
                    "{c} missing from docs/security.md"
                );
            }
        }
        assert_eq!(EventClass::parse("no_such_class"), None);
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
