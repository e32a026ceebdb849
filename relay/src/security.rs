//! Periodic security checks of a node's own trust material: its certificate and the CA's close
//! to expiry, and a missing or stale CRL. Each finding is a security event (log, metric, audit).

use std::sync::Arc;
use std::time::Duration;

use lienthong_common::tls::Identity;
use tokio_util::sync::CancellationToken;

use crate::node::Node;

/// Certificates expiring within this many days raise an event.
pub const EXPIRY_WARNING_DAYS: i64 = 30;
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

/// Checks a certificate's remaining validity; records `class` when it is short.
pub fn check_expiry(node: &Node, class: &str, who: &str, der: &[u8]) {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => {
            let not_after = cert.validity().not_after.timestamp();
            let left = days_left(not_after);
            if left < EXPIRY_WARNING_DAYS {
                node.security_event(
                    class,
                    who,
                    node.agency().as_str(),
                    &format!(
                        "certificate of {who} expires on {} ({left} days left)",
                        date_of(not_after)
                    ),
                );
            }
        }
        Err(e) => node.security_event(class, who, "", &format!("unreadable certificate: {e}")),
    }
}

/// One round of checks.
pub fn check_once(node: &Node, identity: &Identity) {
    if let Some(own) = identity.chain.first() {
        check_expiry(node, "certificate_expiring", node.agency().as_str(), own);
    }
    check_expiry(
        node,
        "ca_expiring",
        "interchange CA",
        node.verifier.trust().ca(),
    );
    let crls = node.verifier.trust().crl_ders();
    if crls.is_empty() {
        node.security_event(
            "crl_missing",
            "",
            node.agency().as_str(),
            "no CRL configured ([tls] crl): revoked certificates are not refused",
        );
    }
    for crl in crls {
        if let Ok((_, parsed)) = x509_parser::parse_x509_crl(crl) {
            let next = parsed.next_update().map(|t| t.timestamp());
            if let Some(next) = next {
                if next < time::OffsetDateTime::now_utc().unix_timestamp() {
                    node.security_event(
                        "crl_stale",
                        "",
                        node.agency().as_str(),
                        &format!("the CRL was due for renewal on {}", date_of(next)),
                    );
                }
            }
        }
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
