//! CRLs fetched over HTTP (`[tls] crl_urls`, and with `crl_distribution_points = true` the
//! distribution points named in the trust bundle's and this node's certificates): once shortly
//! after start, then every `crl_fetch_secs`. A fetched CRL goes through the same checks as a CRL
//! file ([`TrustStore::offer_crl`](lienthong_common::trust::TrustStore::offer_crl): signed by a
//! CA of the bundle, not older than the one in force) and, when new, is announced to the links,
//! which close those of peers it revokes. A URL that cannot be fetched is a `crl_unreachable`
//! event, a CRL that cannot be used a `crl_refused` one, each said once until it changes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lienthong_common::trust::{distribution_points, CrlReload};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::node::Node;
use crate::security_events::EventClass;

/// The largest CRL taken (a national CA's CRL with many entries stays far below).
const MAX_CRL_BYTES: u64 = 32 << 20;

/// Time allowed for one fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Every URL to fetch: the configured ones, then the distribution points if asked for.
fn urls(node: &Node) -> Vec<String> {
    let tls = &node.config.tls;
    let mut urls = tls.crl_urls.clone();
    if tls.crl_distribution_points {
        let mut certs = node.verifier.trust().cas();
        if let Ok(own) = lienthong_common::trust::load_certs(&tls.cert) {
            certs.extend(own);
        }
        for c in certs {
            for u in distribution_points(&c) {
                if !urls.contains(&u) {
                    urls.push(u);
                }
            }
        }
    }
    urls
}

fn fetch(agent: &ureq::Agent, url: &str) -> Result<Vec<u8>, String> {
    let mut resp = agent.get(url).call().map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    resp.body_mut()
        .with_config()
        .limit(MAX_CRL_BYTES)
        .read_to_vec()
        .map_err(|e| e.to_string())
}

/// Runs until `shutdown`; returns at once when there is nothing to fetch.
pub(crate) async fn run(node: Arc<Node>, shutdown: CancellationToken) {
    let urls = urls(&node);
    if urls.is_empty() {
        return;
    }
    info!(
        ?urls,
        every_secs = node.config.tls.crl_fetch_every.as_secs(),
        "CRLs fetched over HTTP"
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(FETCH_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    // The last problem said per URL, so that a lasting one is said once.
    let mut said: HashMap<String, String> = HashMap::new();
    let mut wait = Duration::from_secs(1);
    let mut reloads = node.reloads.subscribe();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            // A reload (SIGHUP) fetches at once.
            Ok(()) = reloads.changed() => {}
        }
        wait = node.config.tls.crl_fetch_every;
        for url in &urls {
            let (a, u) = (agent.clone(), url.clone());
            let fetched = tokio::task::spawn_blocking(move || fetch(&a, &u))
                .await
                .unwrap_or_else(|e| Err(format!("fetch task failed: {e}")));
            let outcome = match fetched {
                Err(e) => Err((EventClass::CrlUnreachable, format!("fetching {url}: {e}"))),
                Ok(bytes) => node
                    .verifier
                    .trust()
                    .offer_crl(url, &bytes)
                    .map_err(|e| (EventClass::CrlRefused, e.to_string())),
            };
            match outcome {
                Ok(CrlReload::Unchanged) => {
                    said.remove(url);
                    debug!(%url, "fetched CRL unchanged");
                }
                Ok(CrlReload::Replaced { revoked }) => {
                    said.remove(url);
                    let generation = node.verifier.trust().generation();
                    info!(%url, revoked, generation, "new CRL in force (fetched)");
                    node.crl_generation.send_replace(generation);
                }
                Err((class, reason)) => {
                    if said.get(url) != Some(&reason) {
                        warn!(class = class.as_str(), %url, cause = %reason, "CRL not taken; the CRLs in force stay");
                        node.security_event(class, url, node.agency().as_str(), &reason);
                        let _ = node.store.commit().await;
                        said.insert(url.clone(), reason);
                    }
                }
            }
        }
    }
}
