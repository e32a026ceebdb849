//! Node configuration (docs/configuration.md), in two stages: [`RawConfig`] is what the TOML file
//! and `LT_*` environment variables say; [`NodeConfig`] is the checked, resolved form (parsed
//! agency codes and addresses, paths made absolute). A bad file fails in [`NodeConfig::load`]
//! with a message naming the key, before anything is bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::agency::AgencyCode;

/// A configuration problem, naming the file and the key.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {key}: {reason}")]
pub struct ConfigError {
    /// The configuration file.
    pub path: PathBuf,
    /// The offending key (`section.key`), or `file`.
    pub key: String,
    /// What is wrong and, where it helps, what to do.
    pub reason: String,
}

/// The TOML file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[node]`
    #[serde(default)]
    pub node: RawNode,
    /// `[listen]`
    #[serde(default)]
    pub listen: RawListen,
    /// `[parent]`, absent on the root.
    pub parent: Option<RawParent>,
    /// `[tls]`
    #[serde(default)]
    pub tls: RawTls,
    /// `[[child]]`
    #[serde(default)]
    pub child: Vec<RawChild>,
    /// `[[route]]`
    #[serde(default)]
    pub route: Vec<RawRoute>,
    /// `[[local]]`
    #[serde(default)]
    pub local: Vec<RawLocal>,
    /// `[link]`
    #[serde(default)]
    pub link: RawLink,
    /// `[amqp]`: RabbitMQ as the DMS integration point (absent: the embedded default).
    pub amqp: Option<RawAmqp>,
    /// `[reports]`
    #[serde(default)]
    pub reports: RawReports,
    /// `[security]`
    #[serde(default)]
    pub security: RawSecurity,
    /// `[backup]`: periodic backups of the store (absent: none).
    pub backup: Option<RawBackup>,
    /// `[timestamp]`: RFC 3161 time-stamps on documents sent from here, and the trust anchors
    /// the stamps of others are checked against (absent: none).
    pub timestamp: Option<RawTimestamp>,
    /// `[pdf_signatures]`: the trust anchors the signatures inside delivered PDF attachments
    /// are checked against (absent: no check).
    pub pdf_signatures: Option<RawPdfSignatures>,
    /// `[limits]`: rate and byte limits against abuse.
    #[serde(default)]
    pub limits: RawLimits,
    /// `[log]`
    #[serde(default)]
    pub log: RawLog,
    /// `[[api_client]]`: who may use the local API (none: anyone who reaches it, which is only
    /// allowed on a loopback address).
    #[serde(default)]
    pub api_client: Vec<RawApiClient>,
}

/// `[[api_client]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiClient {
    /// Its name, for logs and events.
    pub name: Option<String>,
    /// SHA-256 of its bearer token, hex (the token itself is never stored).
    pub token_sha256: Option<String>,
    /// The common name (CN) of its client certificate, issued by `[listen] api_client_ca`.
    pub certificate_cn: Option<String>,
    /// Agencies it may act for (empty: every agency this node serves).
    #[serde(default)]
    pub agencies: Vec<String>,
    /// What it may do.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Its own request limit, instead of `[limits] api_requests_per_minute`.
    pub requests_per_minute: Option<u32>,
    /// Its own byte limit, instead of `[limits] api_mib_per_minute`.
    pub mib_per_minute: Option<u32>,
}

/// `[limits]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Requests per minute for each API client (each address, without clients); 0: none.
    pub api_requests_per_minute: Option<u32>,
    /// MiB of request bodies per minute for each API client; 0: none.
    pub api_mib_per_minute: Option<u32>,
    /// Envelopes and receipts per minute from each child; 0: none.
    pub link_items_per_minute: Option<u32>,
    /// MiB of frames per minute from each child; 0: none.
    pub link_mib_per_minute: Option<u32>,
}

/// `[log]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// The log filter (`tracing` directives), when `LT_LOG` is not set; applied again on reload.
    pub level: Option<String>,
}

/// Resolved `[limits]` (0: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Requests per minute per API client.
    pub api_requests_per_minute: u32,
    /// MiB of request bodies per minute per API client.
    pub api_mib_per_minute: u32,
    /// Items per minute per child link.
    pub link_items_per_minute: u32,
    /// MiB of frames per minute per child link.
    pub link_mib_per_minute: u32,
}

/// `[security]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecurity {
    /// The security level (1–5, NĐ 85/2016) the node is assessed against in its reports to
    /// its parent (absent: not assessed).
    pub level: Option<u8>,
    /// Certificates (own, CA, children's) expiring within this many days raise an event.
    pub expiry_warning_days: Option<u32>,
    /// Audit records older than this many days are pruned (absent or 0: kept forever).
    pub audit_retention_days: Option<u32>,
    /// Seconds between the node's signed reports on itself to its parent.
    pub report_interval_secs: Option<u64>,
    /// Items a single peer may send per minute before a `burst` event (0: no limit).
    pub burst_items_per_minute: Option<u32>,
    /// URL to POST each security event to as JSON (http:// only, e.g. a local collector).
    pub webhook_url: Option<String>,
    /// Event classes sent to the webhook (absent or empty: every class).
    pub webhook_classes: Option<Vec<String>>,
}

/// Resolved `[security]`.
#[derive(Debug, Clone)]
pub struct SecuritySettings {
    /// Level assessed in the node's reports (0: none).
    pub level: u8,
    /// Expiry warning margin, days.
    pub expiry_warning_days: u32,
    /// Audit retention, days (0: forever).
    pub audit_retention_days: u32,
    /// Interval of the reports to the parent.
    pub report_interval: Duration,
    /// Burst threshold per peer and minute (0: off).
    pub burst_items_per_minute: u32,
    /// Webhook for security events.
    pub webhook_url: Option<String>,
    /// Classes sent to the webhook (empty: all).
    pub webhook_classes: Vec<String>,
}

/// `[backup]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackup {
    /// Directory the backups are written to.
    pub dir: Option<PathBuf>,
    /// Hours between backups.
    pub interval_hours: Option<u32>,
    /// Backups kept (older ones are removed).
    pub keep: Option<u32>,
}

/// `[timestamp]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimestamp {
    /// The TSA's URL (`http://` or `https://`); absent: this node stamps nothing, and only
    /// checks the stamps of documents passing through.
    pub url: Option<String>,
    /// PEM files of the TSA's trust anchors (its CA).
    pub ca: Option<Vec<PathBuf>>,
    /// Documents wait for their stamp (true), or leave without one after `max_wait_secs`.
    pub required: Option<bool>,
    /// The TSA policy to ask for (an OID), if any.
    pub policy: Option<String>,
    /// Most documents stamped by one request.
    pub batch_max: Option<usize>,
    /// How long the first document of a batch waits for others (milliseconds).
    pub batch_wait_ms: Option<u64>,
    /// Time-out of one request to the TSA (seconds).
    pub timeout_secs: Option<u64>,
    /// When not `required`: how long a document waits for a stamp before leaving without one.
    pub max_wait_secs: Option<u64>,
    /// Seconds between time-stamps of the audit log's head (0: none).
    pub audit_interval_secs: Option<u64>,
}

/// Resolved `[timestamp]`.
#[derive(Debug, Clone)]
pub struct TimestampSettings {
    /// The TSA to ask (absent: only check others' stamps).
    pub url: Option<String>,
    /// The TSA trust anchors (PEM files).
    pub ca: Vec<PathBuf>,
    /// Nothing leaves without a stamp.
    pub required: bool,
    /// Policy OID asked for.
    pub policy: Option<String>,
    /// Most documents per request.
    pub batch_max: usize,
    /// Batching window.
    pub batch_wait: Duration,
    /// Request time-out.
    pub timeout: Duration,
    /// When not required: the longest a document waits for its stamp.
    pub max_wait: Duration,
    /// Between two time-stamps of the audit log's head (zero: none).
    pub audit_interval: Duration,
}

/// `[pdf_signatures]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPdfSignatures {
    /// PEM files of the CA certificates document signers must chain to.
    pub ca: Option<Vec<PathBuf>>,
    /// Revocation lists (PEM or DER) for the certificates those CAs issued.
    pub crl: Option<Vec<PathBuf>>,
}

/// Resolved `[pdf_signatures]`: the files exist and `ca` holds PEM certificates; the node
/// reads them into trust anchors once, at start.
#[derive(Debug, Clone)]
pub struct PdfSignatureSettings {
    /// Trust anchors (PEM files), at least one.
    pub ca: Vec<PathBuf>,
    /// CRL files (maybe none).
    pub crl: Vec<PathBuf>,
}

/// Resolved `[backup]`.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    /// Directory.
    pub dir: PathBuf,
    /// Interval.
    pub interval: Duration,
    /// Backups kept.
    pub keep: u32,
}

/// `[reports]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReports {
    /// Seconds between sending changed daily summaries to the parent.
    pub summary_interval_secs: Option<u64>,
    /// How many past days are re-summarised and re-sent when their figures change.
    pub summary_days: Option<u32>,
}

/// Statistics summaries sent upward.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// Interval between sends.
    pub summary_interval: Duration,
    /// Days looked back.
    pub summary_days: u32,
}

/// `[amqp]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAmqp {
    /// `amqp://user:pass@host:5672/vhost` or `amqps://...`.
    pub url: Option<String>,
    /// `quorum` (default) or `classic`.
    pub queue_type: Option<String>,
    /// Unacknowledged messages the relay takes at once from each queue.
    pub prefetch: Option<u16>,
    /// Message format the relay publishes: `protobuf` (default) or `json`.
    pub format: Option<String>,
    /// Trust roots (PEM) for the broker's certificate with `amqps://`; absent: the system's.
    pub ca: Option<PathBuf>,
}

/// Resolved `[amqp]`.
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// Broker URL.
    pub url: String,
    /// Declare quorum queues (else classic).
    pub quorum: bool,
    /// Prefetch per consumer.
    pub prefetch: u16,
    /// Publish JSON instead of protobuf.
    pub json: bool,
    /// Publish documents and statuses as edXML packages (`format = "edxml"`), to every agency
    /// of the node.
    pub edxml: bool,
    /// With `amqps://`: the PEM file whose certificates are the only trust roots for the
    /// broker's certificate (absent: the system's trust roots).
    pub ca: Option<PathBuf>,
}

/// `[node]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    /// This node's agency code.
    pub agency: Option<String>,
    /// Its name.
    pub name: Option<String>,
    /// Store directory.
    pub data_dir: Option<PathBuf>,
}

/// `[listen]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    /// mTLS link listener for children.
    pub grpc: Option<String>,
    /// Local HTTP API.
    pub api: Option<String>,
    /// Seconds a client of the local API has to send a request's headers.
    pub api_header_timeout_secs: Option<u64>,
    /// Seconds a request body may go without a byte arriving.
    pub api_body_timeout_secs: Option<u64>,
    /// Whether `/healthz` answers without a token when API clients are configured.
    pub api_open_health: Option<bool>,
    /// Whether `/metrics` answers without a token when API clients are configured.
    pub api_open_metrics: Option<bool>,
    /// Serve the local API over TLS (HTTPS).
    pub api_tls: Option<bool>,
    /// The API's certificate chain (PEM; absent: the node's own, `[tls] cert`).
    pub api_tls_cert: Option<PathBuf>,
    /// The API certificate's key (PEM; absent: `[tls] key`).
    pub api_tls_key: Option<PathBuf>,
    /// CA certificates (PEM) whose client certificates identify API clients (`certificate_cn`).
    pub api_client_ca: Option<PathBuf>,
}

/// `[parent]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParent {
    /// `https://host:port`
    pub endpoint: Option<String>,
    /// The parent's agency code.
    pub agency: Option<String>,
}

/// `[tls]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// Trust bundle (PEM): the interchange root CA, and any intermediate CAs.
    pub ca: Option<PathBuf>,
    /// This node's certificate (PEM).
    pub cert: Option<PathBuf>,
    /// Its private key (PKCS#8 PEM).
    pub key: Option<PathBuf>,
    /// The CAs' revocation lists (one file, PEM with one CRL per CA, or DER).
    pub crl: Option<PathBuf>,
    /// More CRL files.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
    /// URLs CRLs are fetched from periodically (http://).
    #[serde(default)]
    pub crl_urls: Vec<String>,
    /// Also fetch from the CRL distribution points of the bundle's and this node's certificates.
    pub crl_distribution_points: Option<bool>,
    /// Seconds between fetches.
    pub crl_fetch_secs: Option<u64>,
    /// Hours a CRL may be past its nextUpdate before chains through its CA are refused.
    pub crl_grace_hours: Option<u32>,
    /// Refuse chains through a CA whose CRL is past nextUpdate plus the grace.
    pub crl_fail_closed: Option<bool>,
    /// Where certificates name their agency: "san_uri" (default), "subject:UID", ...
    pub agency_in: Option<String>,
    /// Lowest TLS version on the link: "1.3" (default) or "1.2".
    pub min_version: Option<String>,
}

/// `[[child]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChild {
    /// A child agency the code hierarchy does not make a child.
    pub agency: String,
}

/// `[[route]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Destination agency (and everything below it).
    pub agency: String,
    /// Neighbour (parent or child) to send it to.
    pub via: String,
}

/// `[[local]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocal {
    /// Another agency served by this node's local API.
    pub agency: String,
    /// Its name.
    pub name: Option<String>,
    /// Its certificate (signs its documents and receipts).
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// `"edxml"`: its DMS receives documents and statuses on RabbitMQ as edXML packages,
    /// whatever `[amqp] format` says.
    pub format: Option<String>,
}

/// `[link]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLink {
    /// Items in flight per link, awaiting the neighbour's hop ack.
    pub window: Option<usize>,
    /// Bytes in flight per link (KiB), awaiting the neighbour's hop ack.
    pub window_kib: Option<u32>,
    /// Seconds between heartbeats.
    pub heartbeat_secs: Option<u64>,
    /// Cap of the reconnect backoff, seconds.
    pub max_backoff_secs: Option<u64>,
    /// Hours a document waits for a child below this node that has never linked (or is
    /// offline) before its sender gets 02.
    pub offline_child_max_age_hours: Option<u64>,
    /// Seconds after which a child that has not linked loses what it announced (0: never).
    pub announce_expiry_secs: Option<u64>,
}

/// The parent link.
#[derive(Debug, Clone)]
pub struct ParentConfig {
    /// `host:port` to connect to.
    pub address: String,
    /// The original endpoint text.
    pub endpoint: String,
    /// The agency the parent's certificate must name.
    pub agency: AgencyCode,
}

/// Certificate and key files.
#[derive(Debug, Clone)]
pub struct TlsPaths {
    /// CA.
    pub ca: PathBuf,
    /// Node certificate.
    pub cert: PathBuf,
    /// Node key.
    pub key: PathBuf,
    /// CRL files (`crl`, then `crls`).
    pub crls: Vec<PathBuf>,
    /// The first CRL file, if any (`crl`).
    pub crl: Option<PathBuf>,
    /// URLs CRLs are fetched from.
    pub crl_urls: Vec<String>,
    /// Also fetch from the certificates' CRL distribution points.
    pub crl_distribution_points: bool,
    /// Interval of the fetches.
    pub crl_fetch_every: Duration,
    /// How long past nextUpdate a CRL may be before chains through its CA are refused (None:
    /// never; `crl_fail_closed = false`).
    pub crl_stale_after: Option<Duration>,
    /// Where certificates name their agency.
    pub agency_in: crate::trust::AgencyField,
    /// The link also accepts TLS 1.2 (`[tls] min_version = "1.2"`). Off by default; an
    /// assessment at any level reports it as not met.
    pub allow_tls12: bool,
}

impl TlsPaths {
    /// The trust store these settings describe: the CA bundle, the CRL files, where
    /// certificates name their agency, and the CRL staleness limit.
    pub fn trust_store(&self) -> Result<crate::trust::TrustStore, crate::trust::TrustError> {
        crate::trust::TrustStore::load_with(
            &self.ca,
            self.crls.clone(),
            self.agency_in.clone(),
            self.crl_stale_after
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        )
    }
}

/// What an API client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiScope {
    /// Upload attachments and submit documents.
    Submit,
    /// Read inboxes, documents and their attachments, and acknowledge them.
    Inbox,
    /// Post statuses.
    Status,
    /// Read registers, reports and tracking.
    Books,
    /// Operate the node: backups, audit log, security reports and pushes.
    Operate,
    /// Read `/healthz` and `/metrics` where they are not open (`[listen] api_open_health`,
    /// `api_open_metrics`).
    Monitor,
}

impl ApiScope {
    /// Every scope.
    pub const ALL: [ApiScope; 6] = [
        Self::Submit,
        Self::Inbox,
        Self::Status,
        Self::Books,
        Self::Operate,
        Self::Monitor,
    ];

    /// Its name in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::Inbox => "inbox",
            Self::Status => "status",
            Self::Books => "books",
            Self::Operate => "operate",
            Self::Monitor => "monitor",
        }
    }
}

/// A client of the local API (`[[api_client]]`).
#[derive(Debug, Clone)]
pub struct ApiClientConfig {
    /// Its name.
    pub name: String,
    /// SHA-256 of its bearer token, if it has one.
    pub token_sha256: Option<[u8; 32]>,
    /// The CN of its client certificate, if it presents one.
    pub certificate_cn: Option<String>,
    /// Agencies it may act for (empty: every agency this node serves).
    pub agencies: Vec<AgencyCode>,
    /// What it may do.
    pub scopes: Vec<ApiScope>,
    /// Requests per minute (0: none).
    pub requests_per_minute: u32,
    /// MiB of request bodies per minute (0: none).
    pub mib_per_minute: u32,
}

impl ApiClientConfig {
    /// Whether it may act for `agency`.
    pub fn may_act_for(&self, agency: &AgencyCode) -> bool {
        self.agencies.is_empty() || self.agencies.contains(agency)
    }
}

/// Another agency served locally.
#[derive(Debug, Clone)]
pub struct LocalAgency {
    /// Code.
    pub agency: AgencyCode,
    /// Name.
    pub name: String,
    /// Certificate.
    pub cert: PathBuf,
    /// Key.
    pub key: PathBuf,
    /// Its DMS takes edXML on RabbitMQ (`format = "edxml"`).
    pub edxml: bool,
}

/// Link tuning.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// Items in flight per link.
    pub window: usize,
    /// Bytes in flight per link, in KiB.
    pub window_kib: u32,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Reconnect backoff cap.
    pub max_backoff: Duration,
    /// How long a document waits for a child that has not linked yet.
    pub offline_child_max_age: Duration,
    /// How long a child that does not link keeps what it announced (zero: for good).
    pub announce_expiry: Duration,
}

/// The local API's routes that answer without a token even when clients are configured.
#[derive(Debug, Clone, Copy)]
pub struct ApiOpen {
    /// `/healthz`.
    pub health: bool,
    /// `/metrics`.
    pub metrics: bool,
}

/// The local API over TLS (`[listen] api_tls = true`).
#[derive(Debug, Clone)]
pub struct ApiTls {
    /// Certificate chain the API presents.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// Trust roots for client certificates (absent: clients authenticate by token only).
    pub client_ca: Option<PathBuf>,
}

/// Local API time-outs against slow clients.
#[derive(Debug, Clone)]
pub struct ApiTimeouts {
    /// Time allowed to send a request's headers.
    pub header: Duration,
    /// Time a request body may go without a byte arriving.
    pub body: Duration,
}

/// Default hours a document waits for a child that has not linked yet (a week: a commune
/// office may be offline over a long holiday).
pub const DEFAULT_OFFLINE_CHILD_HOURS: u64 = 168;

/// Default in-flight window per link.
pub const DEFAULT_WINDOW: usize = 64;

/// Default in-flight bytes per link, in KiB (16 MiB).
pub const DEFAULT_WINDOW_KIB: u32 = 16 * 1024;

/// The resolved configuration of a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The file it came from.
    pub path: PathBuf,
    /// This node's agency.
    pub agency: AgencyCode,
    /// Its name.
    pub name: String,
    /// Store directory.
    pub data_dir: PathBuf,
    /// Link listener (absent: no children, as on a gateway).
    pub grpc: Option<SocketAddr>,
    /// Local API listener.
    pub api: Option<SocketAddr>,
    /// Local API time-outs.
    pub api_timeouts: ApiTimeouts,
    /// Which monitoring routes answer without a token when API clients are configured.
    pub api_open: ApiOpen,
    /// TLS on the local API (absent: plain HTTP).
    pub api_tls: Option<ApiTls>,
    /// Parent link (absent on the root).
    pub parent: Option<ParentConfig>,
    /// Certificates.
    pub tls: TlsPaths,
    /// Extra children.
    pub children: Vec<AgencyCode>,
    /// Extra routes: destination → neighbour.
    pub routes: Vec<(AgencyCode, AgencyCode)>,
    /// Extra locally served agencies.
    pub local: Vec<LocalAgency>,
    /// Link tuning.
    pub link: LinkSettings,
    /// RabbitMQ integration, if configured.
    pub amqp: Option<AmqpConfig>,
    /// Daily summaries for the statistics reports.
    pub reports: ReportSettings,
    /// Security monitoring settings.
    pub security: SecuritySettings,
    /// Backups, if configured.
    pub backup: Option<BackupSettings>,
    /// Time-stamps, if configured.
    pub timestamp: Option<TimestampSettings>,
    /// The check of signatures inside delivered PDF attachments, if configured.
    pub pdf_signatures: Option<PdfSignatureSettings>,
    /// Clients of the local API (empty: no authentication, loopback only).
    pub api_clients: Vec<ApiClientConfig>,
    /// Rate and byte limits, as configured at start (a reload puts new ones in the node).
    pub limits: Limits,
    /// `[log] level`, when set.
    pub log_level: Option<String>,
}

impl NodeConfig {
    /// Every agency this node serves: its own, then each `[[local]]` one.
    pub fn served_agencies(&self) -> Vec<AgencyCode> {
        let mut v = vec![self.agency.clone()];
        v.extend(self.local.iter().map(|l| l.agency.clone()));
        v
    }

    /// Reads, overrides from the environment (`LT_*`), checks and resolves `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let err = |key: &str, reason: String| ConfigError {
            path: path.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err("file", e.to_string()))?;
        let mut raw: RawConfig = toml::from_str(&text)
            .map_err(|e| err("file", e.message().to_owned() + &span_note(&text, e.span())))?;
        apply_env(&mut raw, |k| std::env::var(k).ok());
        Self::resolve(path, raw)
    }

    /// Resolves a raw configuration read from `path` (relative paths are taken from its folder).
    pub fn resolve(path: &Path, raw: RawConfig) -> Result<Self, ConfigError> {
        let err = |key: &str, reason: String| ConfigError {
            path: path.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let code = |key: &str, s: &str| AgencyCode::parse(s).map_err(|e| err(key, e.to_string()));
        let addr = |key: &str, s: &str| {
            s.parse::<SocketAddr>().map_err(|e| {
                err(
                    key,
                    format!("{s:?} is not an address like 127.0.0.1:7480 ({e})"),
                )
            })
        };

        let agency = code(
            "node.agency",
            raw.node
                .agency
                .as_deref()
                .ok_or_else(|| err("node.agency", "required".into()))?,
        )?;
        let name = raw.node.name.unwrap_or_else(|| agency.to_string());
        let data_dir = abs(raw
            .node
            .data_dir
            .ok_or_else(|| err("node.data_dir", "required".into()))?);
        let grpc = raw
            .listen
            .grpc
            .as_deref()
            .map(|s| addr("listen.grpc", s))
            .transpose()?;
        let api = raw
            .listen
            .api
            .as_deref()
            .map(|s| addr("listen.api", s))
            .transpose()?;

        let parent = match raw.parent {
            None => None,
            Some(p) => {
                let endpoint = p.endpoint.ok_or_else(|| {
                    err(
                        "parent.endpoint",
                        "required when [parent] is present".into(),
                    )
                })?;
                let address = endpoint
                    .strip_prefix("https://")
                    .ok_or_else(|| {
                        err(
                            "parent.endpoint",
                            format!("{endpoint:?} must start with https://"),
                        )
                    })?
                    .trim_end_matches('/')
                    .to_owned();
                if !address.contains(':') {
                    return Err(err(
                        "parent.endpoint",
                        format!("{endpoint:?} needs a port, e.g. https://host:7443"),
                    ));
                }
                let agency = code(
                    "parent.agency",
                    p.agency.as_deref().ok_or_else(|| {
                        err("parent.agency", "required when [parent] is present".into())
                    })?,
                )?;
                Some(ParentConfig {
                    address,
                    endpoint,
                    agency,
                })
            }
        };
        if let Some(p) = &parent {
            if p.agency == agency {
                return Err(err(
                    "parent.agency",
                    "a node cannot be its own parent".into(),
                ));
            }
        }

        let file = |key: &str, p: Option<PathBuf>| -> Result<PathBuf, ConfigError> {
            let p = abs(p.ok_or_else(|| err(key, "required".into()))?);
            if !p.exists() {
                return Err(err(key, format!("{} does not exist", p.display())));
            }
            Ok(p)
        };
        let crl = raw.tls.crl.map(|c| file("tls.crl", Some(c))).transpose()?;
        let mut crls: Vec<PathBuf> = crl.iter().cloned().collect();
        for (i, c) in raw.tls.crls.into_iter().enumerate() {
            crls.push(file(&format!("tls.crls[{i}]"), Some(c))?);
        }
        let mut crl_urls = Vec::new();
        for (i, u) in raw.tls.crl_urls.into_iter().enumerate() {
            if !u.starts_with("http://") {
                return Err(err(
                    &format!("tls.crl_urls[{i}]"),
                    format!("{u:?}: CRLs are fetched over http:// (they are signed by their CA)"),
                ));
            }
            crl_urls.push(u);
        }
        let tls = TlsPaths {
            ca: file("tls.ca", raw.tls.ca)?,
            cert: file("tls.cert", raw.tls.cert)?,
            key: file("tls.key", raw.tls.key)?,
            crl: crl.clone(),
            crls,
            crl_urls,
            crl_distribution_points: raw.tls.crl_distribution_points.unwrap_or(false),
            crl_fetch_every: Duration::from_secs(raw.tls.crl_fetch_secs.unwrap_or(60).max(1)),
            crl_stale_after: raw
                .tls
                .crl_fail_closed
                .unwrap_or(raw.security.level.unwrap_or(0) >= 3)
                .then(|| {
                    Duration::from_secs(u64::from(raw.tls.crl_grace_hours.unwrap_or(24)) * 3600)
                }),
            agency_in: match raw.tls.agency_in.as_deref() {
                None => crate::trust::AgencyField::SanUri,
                Some(a) => {
                    crate::trust::AgencyField::parse(a).map_err(|e| err("tls.agency_in", e))?
                }
            },
            allow_tls12: match raw.tls.min_version.as_deref().unwrap_or("1.3") {
                "1.3" => false,
                "1.2" => true,
                other => {
                    return Err(err(
                        "tls.min_version",
                        format!("{other:?}: use \"1.3\" (or \"1.2\" where an old peer needs it)"),
                    ))
                }
            },
        };

        let children = raw
            .child
            .iter()
            .map(|c| code("child.agency", &c.agency))
            .collect::<Result<Vec<_>, _>>()?;
        let routes = raw
            .route
            .iter()
            .map(|r| Ok((code("route.agency", &r.agency)?, code("route.via", &r.via)?)))
            .collect::<Result<Vec<_>, ConfigError>>()?;
        for (dest, via) in &routes {
            let is_parent = parent.as_ref().is_some_and(|p| &p.agency == via);
            let is_child =
                children.contains(via) || via.administrative_parent().as_ref() == Some(&agency);
            if !is_parent && !is_child {
                return Err(err(
                    "route.via",
                    format!("route to {dest} goes via {via}, which is neither the parent nor a child of {agency}"),
                ));
            }
        }
        let local = raw
            .local
            .into_iter()
            .map(|l| {
                let edxml = match l.format.as_deref() {
                    None => false,
                    Some("edxml") => true,
                    Some(other) => {
                        return Err(err(
                            "local.format",
                            format!(
                            "{other:?}: the only value is \"edxml\" (else [amqp] format applies)"
                        ),
                        ))
                    }
                };
                Ok(LocalAgency {
                    agency: code("local.agency", &l.agency)?,
                    name: l.name.unwrap_or_else(|| l.agency.clone()),
                    cert: file("local.cert", Some(l.cert))?,
                    key: file("local.key", Some(l.key))?,
                    edxml,
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;

        let window = raw.link.window.unwrap_or(DEFAULT_WINDOW);
        if window == 0 || window > 10_000 {
            return Err(err("link.window", format!("{window} is outside 1..=10000")));
        }
        let window_kib = raw.link.window_kib.unwrap_or(DEFAULT_WINDOW_KIB);
        if !(64..=1_048_576).contains(&window_kib) {
            return Err(err(
                "link.window_kib",
                format!("{window_kib} is outside 64..=1048576 (64 KiB to 1 GiB)"),
            ));
        }
        let link = LinkSettings {
            window,
            window_kib,
            heartbeat: Duration::from_secs(raw.link.heartbeat_secs.unwrap_or(10).max(1)),
            max_backoff: Duration::from_secs(raw.link.max_backoff_secs.unwrap_or(30).max(1)),
            offline_child_max_age: Duration::from_secs(
                raw.link
                    .offline_child_max_age_hours
                    .unwrap_or(DEFAULT_OFFLINE_CHILD_HOURS)
                    .saturating_mul(3600),
            ),
            announce_expiry: Duration::from_secs(
                raw.link
                    .announce_expiry_secs
                    .unwrap_or(DEFAULT_OFFLINE_CHILD_HOURS * 3600),
            ),
        };
        let api_open = ApiOpen {
            health: raw.listen.api_open_health.unwrap_or(true),
            metrics: raw.listen.api_open_metrics.unwrap_or(true),
        };
        let api_timeouts = ApiTimeouts {
            header: Duration::from_secs(raw.listen.api_header_timeout_secs.unwrap_or(30).max(1)),
            body: Duration::from_secs(raw.listen.api_body_timeout_secs.unwrap_or(30).max(1)),
        };
        let sec = raw.security;
        let level = sec.level.unwrap_or(0);
        if level > 5 {
            return Err(err(
                "security.level",
                format!("{level}: levels run from 1 to 5"),
            ));
        }
        if let Some(u) = &sec.webhook_url {
            if !u.starts_with("http://") {
                return Err(err(
                    "security.webhook_url",
                    format!("{u:?} must start with http:// (a collector on the local network)"),
                ));
            }
        }
        let security = SecuritySettings {
            level,
            expiry_warning_days: sec.expiry_warning_days.unwrap_or(30),
            audit_retention_days: sec.audit_retention_days.unwrap_or(0),
            report_interval: Duration::from_secs(sec.report_interval_secs.unwrap_or(300).max(1)),
            burst_items_per_minute: sec.burst_items_per_minute.unwrap_or(0),
            webhook_url: sec.webhook_url,
            webhook_classes: sec.webhook_classes.unwrap_or_default(),
        };
        let backup = match raw.backup {
            None => None,
            Some(b) => {
                let dir = abs(b.dir.ok_or_else(|| {
                    err("backup.dir", "required when [backup] is present".into())
                })?);
                let hours = b.interval_hours.unwrap_or(24);
                if hours == 0 {
                    return Err(err("backup.interval_hours", "must be at least 1".into()));
                }
                Some(BackupSettings {
                    dir,
                    interval: Duration::from_secs(u64::from(hours) * 3600),
                    keep: b.keep.unwrap_or(14).max(1),
                })
            }
        };
        let timestamp = match raw.timestamp {
            None => None,
            Some(t) => {
                let ca: Vec<PathBuf> = t.ca.unwrap_or_default().into_iter().map(abs).collect();
                if ca.is_empty() {
                    return Err(err(
                        "timestamp.ca",
                        "required when [timestamp] is present: every stamp is checked against the TSA's CA"
                            .into(),
                    ));
                }
                let url = t.url.filter(|u| !u.trim().is_empty());
                if let Some(u) = &url {
                    if !(u.starts_with("http://") || u.starts_with("https://")) {
                        return Err(err(
                            "timestamp.url",
                            format!("{u} is not an http:// or https:// URL"),
                        ));
                    }
                }
                let required = t.required.unwrap_or(url.is_some());
                if required && url.is_none() {
                    return Err(err(
                        "timestamp.required",
                        "true needs timestamp.url: where would the stamps come from?".into(),
                    ));
                }
                if let Some(p) = &t.policy {
                    let dotted = p.split('.').count() >= 2
                        && p.split('.')
                            .all(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()));
                    if !dotted {
                        return Err(err(
                            "timestamp.policy",
                            format!("{p} is not an OID (digits and dots)"),
                        ));
                    }
                }
                let batch_max = t.batch_max.unwrap_or(500);
                if !(1..=100_000).contains(&batch_max) {
                    return Err(err(
                        "timestamp.batch_max",
                        format!("{batch_max} is outside 1..=100000"),
                    ));
                }
                Some(TimestampSettings {
                    url,
                    ca,
                    required,
                    policy: t.policy,
                    batch_max,
                    batch_wait: Duration::from_millis(t.batch_wait_ms.unwrap_or(200)),
                    timeout: Duration::from_secs(t.timeout_secs.unwrap_or(10).max(1)),
                    max_wait: Duration::from_secs(t.max_wait_secs.unwrap_or(300)),
                    audit_interval: Duration::from_secs(t.audit_interval_secs.unwrap_or(3600)),
                })
            }
        };
        let pdf_signatures = match raw.pdf_signatures {
            None => None,
            Some(p) => {
                let mut ca = Vec::new();
                for (i, c) in p.ca.unwrap_or_default().into_iter().enumerate() {
                    let key = format!("pdf_signatures.ca[{i}]");
                    let c = file(&key, Some(c))?;
                    check_pem_certificates(&c).map_err(|reason| err(&key, reason))?;
                    ca.push(c);
                }
                if ca.is_empty() {
                    return Err(err(
                        "pdf_signatures.ca",
                        "required when [pdf_signatures] is present: the CA certificates (PEM) document signers chain to".into(),
                    ));
                }
                let crl = p
                    .crl
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| file(&format!("pdf_signatures.crl[{i}]"), Some(c)))
                    .collect::<Result<Vec<_>, _>>()?;
                Some(PdfSignatureSettings { ca, crl })
            }
        };
        let summary_days = raw.reports.summary_days.unwrap_or(62);
        if !(1..=3660).contains(&summary_days) {
            return Err(err(
                "reports.summary_days",
                format!("{summary_days} is outside 1..=3660"),
            ));
        }
        let reports = ReportSettings {
            summary_interval: Duration::from_secs(
                raw.reports.summary_interval_secs.unwrap_or(3600).max(1),
            ),
            summary_days,
        };
        let amqp = match raw.amqp {
            None => None,
            Some(a) => {
                let url = a
                    .url
                    .ok_or_else(|| err("amqp.url", "required when [amqp] is present".into()))?;
                if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
                    return Err(err(
                        "amqp.url",
                        format!("{url:?} must start with amqp:// or amqps://"),
                    ));
                }
                let quorum = match a.queue_type.as_deref().unwrap_or("quorum") {
                    "quorum" => true,
                    "classic" => false,
                    other => {
                        return Err(err(
                            "amqp.queue_type",
                            format!("{other:?}: use \"quorum\" or \"classic\""),
                        ))
                    }
                };
                // edXML covers documents and statuses; the other messages (transport and error
                // events) then go as JSON.
                let (json, edxml) = match a.format.as_deref().unwrap_or("protobuf") {
                    "protobuf" => (false, false),
                    "json" => (true, false),
                    "edxml" => (true, true),
                    other => {
                        return Err(err(
                            "amqp.format",
                            format!("{other:?}: use \"protobuf\", \"json\" or \"edxml\""),
                        ))
                    }
                };
                let prefetch = a.prefetch.unwrap_or(64);
                if prefetch == 0 {
                    return Err(err("amqp.prefetch", "must be at least 1".into()));
                }
                let ca = match a.ca {
                    None => None,
                    Some(_) if !url.starts_with("amqps://") => {
                        return Err(err(
                            "amqp.ca",
                            "is only used with an amqps:// url; amqp.url is plain amqp://".into(),
                        ))
                    }
                    Some(c) => {
                        let c = file("amqp.ca", Some(c))?;
                        check_pem_certificates(&c).map_err(|reason| err("amqp.ca", reason))?;
                        Some(c)
                    }
                };
                Some(AmqpConfig {
                    url,
                    quorum,
                    prefetch,
                    json,
                    edxml,
                    ca,
                })
            }
        };
        let api_tls = if raw.listen.api_tls.unwrap_or(false) {
            let cert = match raw.listen.api_tls_cert {
                Some(c) => file("listen.api_tls_cert", Some(c))?,
                None => tls.cert.clone(),
            };
            let key = match raw.listen.api_tls_key {
                Some(k) => file("listen.api_tls_key", Some(k))?,
                None => tls.key.clone(),
            };
            let client_ca = raw
                .listen
                .api_client_ca
                .map(|c| file("listen.api_client_ca", Some(c)))
                .transpose()?;
            Some(ApiTls {
                cert,
                key,
                client_ca,
            })
        } else {
            for (k, set) in [
                ("listen.api_tls_cert", raw.listen.api_tls_cert.is_some()),
                ("listen.api_tls_key", raw.listen.api_tls_key.is_some()),
                ("listen.api_client_ca", raw.listen.api_client_ca.is_some()),
            ] {
                if set {
                    return Err(err(
                        k,
                        "set, but [listen] api_tls is not true: the API would serve plain HTTP"
                            .into(),
                    ));
                }
            }
            None
        };
        let log_level = match raw.log.level {
            None => None,
            Some(l) => {
                crate::telemetry::parse_level(&l).map_err(|e| err("log.level", e.to_string()))?;
                Some(l)
            }
        };
        let limits = Limits {
            api_requests_per_minute: raw.limits.api_requests_per_minute.unwrap_or(0),
            api_mib_per_minute: raw.limits.api_mib_per_minute.unwrap_or(0),
            link_items_per_minute: raw.limits.link_items_per_minute.unwrap_or(0),
            link_mib_per_minute: raw.limits.link_mib_per_minute.unwrap_or(0),
        };
        let mut api_clients = Vec::new();
        for (i, c) in raw.api_client.into_iter().enumerate() {
            let key = |k: &str| format!("api_client[{i}].{k}");
            let name = c.name.ok_or_else(|| err(&key("name"), "required".into()))?;
            crate::input::identifier("name", &name)
                .map_err(|e| err(&key("name"), e.to_string()))?;
            if api_clients.iter().any(|o: &ApiClientConfig| o.name == name) {
                return Err(err(&key("name"), format!("{name:?} is used twice")));
            }
            let token_sha256 = match c.token_sha256 {
                None => None,
                Some(hash) => Some(
                    hex::decode(hash.trim())
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .ok_or_else(|| {
                            err(
                                &key("token_sha256"),
                                "not 64 hex digits: write the SHA-256 of the token, e.g. the first field of `printf %s \"$TOKEN\" | sha256sum`".into(),
                            )
                        })?,
                ),
            };
            let certificate_cn = c.certificate_cn.map(|n| n.trim().to_owned());
            match &certificate_cn {
                None if token_sha256.is_none() => {
                    return Err(err(
                        &key("token_sha256"),
                        "a credential is required: token_sha256, certificate_cn, or both".into(),
                    ))
                }
                Some(n) if n.is_empty() => {
                    return Err(err(&key("certificate_cn"), "empty".into()))
                }
                Some(_) if api_tls.as_ref().and_then(|t| t.client_ca.as_ref()).is_none() => {
                    return Err(err(
                        &key("certificate_cn"),
                        "client certificates need [listen] api_tls = true and api_client_ca (the CA that issues them)".into(),
                    ))
                }
                _ => {}
            }
            let mut agencies = Vec::new();
            for a in &c.agencies {
                let a = code(&key("agencies"), a)?;
                if a != agency && !local.iter().any(|l: &LocalAgency| l.agency == a) {
                    return Err(err(
                        &key("agencies"),
                        format!("{a} is not served by this node ([node] or [[local]])"),
                    ));
                }
                agencies.push(a);
            }
            let mut scopes = Vec::new();
            for sc in &c.scopes {
                let found = ApiScope::ALL
                    .into_iter()
                    .find(|x| x.as_str() == sc)
                    .ok_or_else(|| {
                        err(
                            &key("scopes"),
                            format!("{sc:?} is not one of: submit, inbox, status, books, operate"),
                        )
                    })?;
                scopes.push(found);
            }
            if scopes.is_empty() {
                return Err(err(&key("scopes"), "at least one scope is required".into()));
            }
            api_clients.push(ApiClientConfig {
                name,
                token_sha256,
                certificate_cn,
                requests_per_minute: c
                    .requests_per_minute
                    .unwrap_or(limits.api_requests_per_minute),
                mib_per_minute: c.mib_per_minute.unwrap_or(limits.api_mib_per_minute),
                agencies,
                scopes,
            });
        }
        if let Some(a) = api {
            if !a.ip().is_loopback() && api_clients.is_empty() {
                return Err(err(
                    "listen.api",
                    format!("{a} can be reached from other machines, and no [[api_client]] is configured: anyone reaching it could send documents in this node's name. Add [[api_client]] entries (name, token_sha256, agencies, scopes; see configuration.md) or listen on 127.0.0.1"),
                ));
            }
        }
        Ok(Self {
            api_clients,
            amqp,
            reports,
            security,
            backup,
            timestamp,
            pdf_signatures,
            path: path.to_owned(),
            agency,
            name,
            data_dir,
            grpc,
            api,
            api_timeouts,
            api_open,
            api_tls,
            limits,
            log_level,
            parent,
            tls,
            children,
            routes,
            local,
            link,
        })
    }
}

/// Checks that `path` holds at least one PEM certificate and nothing unreadable.
fn check_pem_certificates(path: &Path) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut count = 0usize;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|e| format!("{}: not a PEM certificate file ({e})", path.display()))?;
        count += 1;
    }
    if count == 0 {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(())
}

fn span_note(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(s) => {
            let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

/// Applies `LT_*` environment overrides (documented in docs/configuration.md).
pub fn apply_env(raw: &mut RawConfig, get: impl Fn(&str) -> Option<String>) {
    if let Some(v) = get("LT_NODE_AGENCY") {
        raw.node.agency = Some(v);
    }
    if let Some(v) = get("LT_NODE_NAME") {
        raw.node.name = Some(v);
    }
    if let Some(v) = get("LT_NODE_DATA_DIR") {
        raw.node.data_dir = Some(v.into());
    }
    if let Some(v) = get("LT_LISTEN_GRPC") {
        raw.listen.grpc = Some(v);
    }
    if let Some(v) = get("LT_LISTEN_API") {
        raw.listen.api = Some(v);
    }
    if let Some(v) = get("LT_PARENT_ENDPOINT") {
        raw.parent.get_or_insert_with(Default::default).endpoint = Some(v);
    }
    if let Some(v) = get("LT_PARENT_AGENCY") {
        raw.parent.get_or_insert_with(Default::default).agency = Some(v);
    }
    if let Some(v) = get("LT_AMQP_URL") {
        raw.amqp.get_or_insert_with(Default::default).url = Some(v);
    }
    if let Some(v) = get("LT_AMQP_CA") {
        raw.amqp.get_or_insert_with(Default::default).ca = Some(v.into());
    }
    if let Some(v) = get("LT_TLS_CA") {
        raw.tls.ca = Some(v.into());
    }
    if let Some(v) = get("LT_TLS_CERT") {
        raw.tls.cert = Some(v.into());
    }
    if let Some(v) = get("LT_TLS_KEY") {
        raw.tls.key = Some(v.into());
    }
    if let Some(v) = get("LT_TLS_CRL") {
        raw.tls.crl = Some(v.into());
    }
}
