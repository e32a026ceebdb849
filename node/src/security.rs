//! Periodic security checks of a node's own trust material: its certificate and the CA's close
//! to expiry (within `[security] expiry_warning_days`), and a missing or stale CRL; and the
//! per-peer [`BurstCounter`] the link sessions use. Each finding is a security event (log,
//! metric, audit, webhook).

use std::sync::Arc;
use std::time::{Duration, Instant};

use lienthong_common::tls::Identity;
use lienthong_common::trust::CrlReload;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::node::Node;
use crate::security_events::EventClass;

/// The fixed window over which [`BurstCounter`] counts a peer's items.
pub const BURST_WINDOW: Duration = Duration::from_secs(60);
/// How often the checks run.
pub const CHECK_EVERY: Duration = Duration::from_secs(3600);

fn days_left(not_after: i64) -> i64 {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    (not_after - now).div_euclid(86_400)
}

fn date_of(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| lienthong_common::envelope::format_date(t.date()))
        .unwrap_or_default()
}

/// Checks a certificate's remaining validity; records `class` when fewer days than
/// `[security] expiry_warning_days` are left.
pub fn check_expiry(node: &Node, class: EventClass, who: &str, der: &[u8]) {
    let margin = i64::from(node.config.security.expiry_warning_days);
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => {
            let not_after = cert.validity().not_after.timestamp();
            let left = days_left(not_after);
            if left < margin {
                let reason = format!(
                    "certificate of {who} expires on {} ({left} days left, warning margin {margin} days)",
                    date_of(not_after)
                );
                warn!(class = %class, peer = %who, cause = %reason, "certificate close to expiry");
                node.security_event(class, who, node.agency().as_str(), &reason);
            }
        }
        Err(e) => {
            let reason = format!("unreadable certificate: {e}");
            warn!(class = %class, peer = %who, cause = %reason, "cannot check certificate expiry");
            node.security_event(class, who, "", &reason);
        }
    }
}

/// One round of checks.
pub fn check_once(node: &Node, identity: &Identity) {
    if let Some(own) = identity.chain.first() {
        check_expiry(
            node,
            EventClass::CertificateExpiring,
            node.agency().as_str(),
            own,
        );
    }
    for ca in node.verifier.trust().cas() {
        check_expiry(node, EventClass::CaExpiring, "interchange CA", &ca);
    }
    let crls = node.verifier.trust().crl_ders();
    let fetched = !node.config.tls.crl_urls.is_empty() || node.config.tls.crl_distribution_points;
    if crls.is_empty() && !fetched {
        warn!(
            class = EventClass::CrlMissing.as_str(),
            "no CRL configured ([tls] crl): revoked certificates are not refused"
        );
        node.security_event(
            EventClass::CrlMissing,
            "",
            node.agency().as_str(),
            "no CRL configured ([tls] crl): revoked certificates are not refused",
        );
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for (ca, next, closed) in node.verifier.trust().stale_crls(now) {
        let reason = if closed {
            format!("the CRL of {ca} was due for renewal on {}; past the grace period, certificates it covers are refused until a fresh one arrives", date_of(next))
        } else {
            format!("the CRL of {ca} was due for renewal on {}", date_of(next))
        };
        warn!(class = "crl_stale", fail_closed = closed, cause = %reason, "stale CRL");
        node.security_event(EventClass::CrlStale, "", node.agency().as_str(), &reason);
    }
}

/// Runs the checks at start and every [`CHECK_EVERY`] until `shutdown`.
pub async fn watch(node: Arc<Node>, identity: Identity, shutdown: CancellationToken) {
    loop {
        check_once(&node, &identity);
        let _ = node.store.commit().await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}

/// How often the CRL file is looked at for a new version.
pub const CRL_CHECK_EVERY: Duration = Duration::from_secs(10);

/// Puts a changed CRL file in force: looked at every [`CRL_CHECK_EVERY`] until `shutdown`. A
/// new CRL is announced to the links ([`Node::crl_generation`]), which close the links of
/// peers it revokes; one that cannot be used is a `crl_refused` event and the old one stays.
pub async fn watch_crl(node: Arc<Node>, shutdown: CancellationToken) {
    let mut refused_stamp = String::new();
    let mut reloads = node.reloads.subscribe();
    loop {
        let on_reload = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(CRL_CHECK_EVERY) => false,
            // A reload (SIGHUP) reads the files at once; a refusal is said again.
            Ok(()) = reloads.changed() => {
                refused_stamp.clear();
                true
            }
        };
        let trust = node.verifier.trust().clone();
        let outcome = tokio::task::spawn_blocking(move || trust.reload_crl()).await;
        if on_reload {
            let said = match &outcome {
                Ok(Ok(CrlReload::Unchanged)) => "unchanged".to_owned(),
                Ok(Ok(CrlReload::Replaced { revoked })) => format!("replaced ({revoked} revoked)"),
                Ok(Err(e)) => format!("refused: {e}"),
                Err(e) => format!("not read: {e}"),
            };
            info!(outcome = %said, "CRL files read again on reload");
        }
        match outcome {
            Ok(Ok(CrlReload::Unchanged)) => {}
            Ok(Ok(CrlReload::Replaced { revoked })) => {
                refused_stamp.clear();
                let generation = node.verifier.trust().generation();
                info!(revoked, generation, "new CRL in force");
                node.crl_generation.send_replace(generation);
            }
            Ok(Err(e)) => {
                let reason = e.to_string();
                // Said once per bad file, not every round.
                if reason != refused_stamp {
                    warn!(class = EventClass::CrlRefused.as_str(), cause = %reason, "new CRL not used; the CRL in force stays");
                    node.security_event(
                        EventClass::CrlRefused,
                        "",
                        node.agency().as_str(),
                        &reason,
                    );
                    let _ = node.store.commit().await;
                    refused_stamp = reason;
                }
            }
            Err(e) => warn!(cause = %e, "CRL check task failed"),
        }
    }
}

/// Counts the items (envelopes and receipts) one peer sends, in fixed windows of
/// [`BURST_WINDOW`] starting at the first item after the previous window ended, and says once
/// per window when the count passes the limit. It only observes: the items are still taken.
#[derive(Debug)]
pub struct BurstCounter {
    limit: u32,
    started: Option<Instant>,
    count: u32,
    reported: bool,
}

impl BurstCounter {
    /// A counter for `limit` items per window (0: never reports).
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            started: None,
            count: 0,
            reported: false,
        }
    }

    /// Counts one item arriving at `now`. Returns the count the first time it exceeds the limit
    /// in the current window, `None` otherwise.
    pub fn hit(&mut self, now: Instant) -> Option<u32> {
        if self.limit == 0 {
            return None;
        }
        match self.started {
            Some(t) if now.saturating_duration_since(t) < BURST_WINDOW => {}
            _ => {
                self.started = Some(now);
                self.count = 0;
                self.reported = false;
            }
        }
        self.count = self.count.saturating_add(1);
        if self.count > self.limit && !self.reported {
            self.reported = true;
            return Some(self.count);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_reported_once_per_window() {
        let t0 = Instant::now();
        let mut c = BurstCounter::new(3);
        let seen: Vec<Option<u32>> = (0..6).map(|_| c.hit(t0)).collect();
        assert_eq!(seen, vec![None, None, None, Some(4), None, None]);
        // A new window starts with the first item after the last one ended.
        let t1 = t0 + BURST_WINDOW;
        let seen: Vec<Option<u32>> = (0..4).map(|_| c.hit(t1)).collect();
        assert_eq!(seen, vec![None, None, None, Some(4)]);
    }

    #[test]
    fn items_spread_over_windows_are_no_burst() {
        let t0 = Instant::now();
        let mut c = BurstCounter::new(3);
        for i in 0..20u32 {
            let at = t0 + BURST_WINDOW / 2 * i;
            assert_eq!(c.hit(at), None, "item {i}");
        }
    }

    #[test]
    fn a_zero_limit_never_reports() {
        let t0 = Instant::now();
        let mut c = BurstCounter::new(0);
        assert!((0..10_000).all(|_| c.hit(t0).is_none()));
    }
}
