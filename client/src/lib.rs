//! A small blocking client for a node's local HTTP API: what `lt-gateway`, the read commands of
//! `lt-relay` and the tests use to talk to a running node.
//!
//! # Layout
//! - [`ApiClient`]: the requests.
//! - [`types`]: the JSON shapes of the answers.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use lienthong_common::agency::AgencyCode;
use serde_json::{json, Value};

pub mod types;

use types::{InboxItem, TrackView, Uploaded};

/// The environment variable the command-line tools read a bearer token from.
pub const TOKEN_ENV: &str = "LT_API_TOKEN";
/// The environment variable naming the CA file (PEM) an HTTPS API's certificate must chain to.
pub const CA_ENV: &str = "LT_API_CA";
/// The environment variable naming a client certificate (PEM) for an HTTPS API.
pub const CERT_ENV: &str = "LT_API_CERT";
/// The environment variable naming the client certificate's key (PEM).
pub const KEY_ENV: &str = "LT_API_KEY";

/// A small blocking client for a node's local API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    agent: ureq::Agent,
    /// Bearer token for a node whose API has `[[api_client]]` entries.
    token: Option<String>,
}

/// The certificates of a PEM file (at least one).
fn pem_certificates(path: &Path) -> anyhow::Result<Vec<ureq::tls::Certificate<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let certs = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not PEM certificates", path.display()))?;
    if certs.is_empty() {
        bail!("{}: no PEM certificate in the file", path.display());
    }
    Ok(certs)
}

/// The HTTP agent: long requests allowed (uploads), pooled connections dropped well before
/// the node closes them.
fn agent(tls: Option<ureq::tls::TlsConfig>) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(600)))
        // Well under the shortest time a node keeps an idle connection open
        // (`[listen] api_header_timeout_secs`, at least 1 s, default 30 s): a pooled
        // connection is never reused just as the node closes it.
        .max_idle_age(Duration::from_secs(5))
        .http_status_as_error(false);
    if let Some(tls) = tls {
        config = config.tls_config(tls);
    }
    config.build().into()
}

fn body_error(e: ureq::Error) -> anyhow::Error {
    anyhow!("{e}")
}

impl ApiClient {
    /// A client for `base` (e.g. `http://127.0.0.1:7480`).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            agent: agent(None),
            token: None,
        }
    }

    /// The same client, for a node whose API speaks HTTPS (`[listen] api_tls`): the server's
    /// certificate must chain to a certificate in the PEM file `ca` (the interchange CA when the
    /// node uses its own certificate), and `identity`, if given, is the client certificate and
    /// key (PEM files) presented to a node that has `api_client_ca`.
    pub fn with_tls(mut self, ca: &Path, identity: Option<(&Path, &Path)>) -> anyhow::Result<Self> {
        let roots = pem_certificates(ca)?;
        let client_cert = match identity {
            None => None,
            Some((cert, key)) => {
                let chain = pem_certificates(cert)?;
                let pem =
                    std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
                let key = ureq::tls::PrivateKey::from_pem(&pem)
                    .with_context(|| format!("{}: not a PEM private key", key.display()))?;
                Some(ureq::tls::ClientCert::new_with_certs(&chain, key))
            }
        };
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
            .client_cert(client_cert)
            .build();
        self.agent = agent(Some(tls));
        Ok(self)
    }

    /// A client for the local API of the node configured by `cfg`, as the node's own
    /// commands reach it: HTTPS when `[listen] api_tls` is on (the certificate checked against
    /// `LT_API_CA`, else the node's `[tls] ca`), the token from `LT_API_TOKEN` and a client
    /// certificate from `LT_API_CERT` and `LT_API_KEY`, if set. None when it has no API.
    pub fn for_node(cfg: &lienthong_common::config::NodeConfig) -> anyhow::Result<Option<Self>> {
        let Some(api) = cfg.api else { return Ok(None) };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let token = env(TOKEN_ENV);
        let c = match &cfg.api_tls {
            None => Self::new(&format!("http://{api}")),
            Some(_) => {
                let ca = env(CA_ENV).map_or_else(|| cfg.tls.ca.clone(), Into::into);
                let cert = env(CERT_ENV).map(std::path::PathBuf::from);
                let key = env(KEY_ENV).map(std::path::PathBuf::from);
                let identity = match (&cert, &key) {
                    (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
                    (None, None) => None,
                    _ => bail!("set both {CERT_ENV} and {KEY_ENV}, or neither"),
                };
                // The node's certificate names 127.0.0.1 and localhost, not a wildcard address.
                let host = if api.ip().is_unspecified() {
                    std::net::SocketAddr::from(([127, 0, 0, 1], api.port()))
                } else {
                    api
                };
                Self::new(&format!("https://{host}")).with_tls(&ca, identity)?
            }
        };
        Ok(Some(c.with_token(token.as_deref())))
    }

    /// The same client, sending `token` as its bearer token (none: no Authorization header).
    pub fn with_token(mut self, token: Option<&str>) -> Self {
        self.token = token.filter(|t| !t.is_empty()).map(str::to_owned);
        self
    }

    fn auth<B>(&self, r: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => r.header("authorization", format!("Bearer {t}")),
            None => r,
        }
    }

    fn check(
        mut resp: ureq::http::Response<ureq::Body>,
        what: &str,
    ) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        let msg = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(body);
        bail!("{what}: HTTP {status}: {msg}")
    }

    fn get(&self, path: &str) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let resp = self
            .auth(self.agent.get(format!("{}{path}", self.base)))
            .call()
            .map_err(body_error)?;
        Self::check(resp, path)
    }

    /// GET with an `Accept` header, returning the body as text (e.g. an edXML package).
    pub fn get_text_as(&self, path: &str, accept: &str) -> anyhow::Result<String> {
        let resp = self
            .auth(self.agent.get(format!("{}{path}", self.base)))
            .header("accept", accept)
            .call()
            .map_err(body_error)?;
        let mut resp = Self::check(resp, path)?;
        resp.body_mut()
            .with_config()
            .limit(lienthong_edxml::MAX_EDXML_BYTES as u64)
            .read_to_string()
            .map_err(body_error)
    }

    /// POST a body of `content_type` (e.g. an edXML package), returning JSON.
    pub fn post_bytes(&self, path: &str, content_type: &str, body: &[u8]) -> anyhow::Result<Value> {
        let resp = self
            .auth(self.agent.post(format!("{}{path}", self.base)))
            .header("content-type", content_type)
            .send(body)
            .map_err(body_error)?;
        let mut resp = Self::check(resp, path)?;
        resp.body_mut().read_json().map_err(body_error)
    }

    /// GET returning JSON.
    pub fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        self.get(path)?.body_mut().read_json().map_err(body_error)
    }

    /// GET returning text (e.g. `/metrics`).
    pub fn get_text(&self, path: &str) -> anyhow::Result<String> {
        self.get(path)?
            .body_mut()
            .read_to_string()
            .map_err(body_error)
    }

    /// GET returning the body's bytes (e.g. a proof bundle), refused past `limit` bytes.
    pub fn get_bytes(&self, path: &str, limit: u64) -> anyhow::Result<Vec<u8>> {
        self.get(path)?
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(body_error)
    }

    /// POST JSON returning JSON (empty object for 204).
    pub fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let resp = self
            .auth(self.agent.post(format!("{}{path}", self.base)))
            .send_json(body)
            .map_err(body_error)?;
        let mut resp = Self::check(resp, path)?;
        if resp.status() == 204 {
            return Ok(json!({}));
        }
        resp.body_mut().read_json().map_err(body_error)
    }

    /// `/healthz`.
    pub fn health(&self) -> anyhow::Result<Value> {
        Ok(self.health_with_status()?.1)
    }

    /// `/healthz` with its HTTP status: 503 carries the same body (the node runs, its broker
    /// connection does not).
    pub fn health_with_status(&self) -> anyhow::Result<(u16, Value)> {
        let mut resp = self
            .auth(self.agent.get(format!("{}/healthz", self.base)))
            .call()
            .map_err(body_error)?;
        let status = resp.status().as_u16();
        if status != 503 {
            resp = Self::check(resp, "/healthz")?;
        }
        Ok((status, resp.body_mut().read_json().map_err(body_error)?))
    }

    /// Uploads a file's bytes; returns its digest and size.
    pub fn upload_file(&self, path: &Path) -> anyhow::Result<Uploaded> {
        let f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
        self.upload_reader(f)
    }

    /// Uploads bytes read from `reader` (streamed); returns their digest and size.
    pub fn upload_reader(&self, mut reader: impl std::io::Read) -> anyhow::Result<Uploaded> {
        let resp = self
            .auth(self.agent.post(format!("{}/v1/attachments", self.base)))
            .header("content-type", "application/octet-stream")
            .send(ureq::SendBody::from_reader(&mut reader))
            .map_err(body_error)?;
        let mut resp = Self::check(resp, "upload")?;
        resp.body_mut().read_json().map_err(body_error)
    }

    /// Downloads an attachment into `out`; returns the bytes written.
    pub fn download(&self, envelope_id: &str, sha256: &str, out: &Path) -> anyhow::Result<u64> {
        let url = format!(
            "{}/v1/documents/{envelope_id}/attachments/{sha256}",
            self.base
        );
        let resp = self.auth(self.agent.get(url)).call().map_err(body_error)?;
        let mut resp = Self::check(resp, "download")?;
        let mut f = std::fs::File::create(out)?;
        let n = std::io::copy(
            &mut resp.body_mut().with_config().limit(u64::MAX).reader(),
            &mut f,
        )?;
        Ok(n)
    }

    /// Submits a document: `envelope` is the JSON envelope header (unsigned).
    pub fn submit(&self, envelope: Value) -> anyhow::Result<(String, String)> {
        let r = self.post_json("/v1/documents", &json!({ "envelope": envelope }))?;
        Ok((
            r["envelope_id"].as_str().unwrap_or_default().to_owned(),
            r["document_id"].as_str().unwrap_or_default().to_owned(),
        ))
    }

    /// An agency's unacknowledged inbox.
    pub fn inbox(&self, agency: &AgencyCode) -> anyhow::Result<Vec<InboxItem>> {
        let v = self.get_json(&format!("/v1/inbox?agency={agency}"))?;
        Ok(serde_json::from_value(v)?)
    }

    /// Posts a status about a received (or, for 13, sent) document.
    pub fn post_status(
        &self,
        envelope_id: &str,
        agency: &AgencyCode,
        status: i32,
        description: &str,
    ) -> anyhow::Result<Value> {
        self.post_json(
            &format!("/v1/documents/{envelope_id}/status"),
            &json!({ "agency": agency.to_string(), "status": status, "description": description }),
        )
    }

    /// Acknowledges an inbox entry.
    pub fn ack(&self, envelope_id: &str, agency: &AgencyCode) -> anyhow::Result<()> {
        self.post_json(
            &format!("/v1/inbox/{envelope_id}/ack?agency={agency}"),
            &json!({}),
        )?;
        Ok(())
    }

    /// The track view of a document.
    pub fn track(&self, envelope_id: &str) -> anyhow::Result<TrackView> {
        let v = self.get_json(&format!("/v1/documents/{envelope_id}/track"))?;
        Ok(serde_json::from_value(v)?)
    }
}
