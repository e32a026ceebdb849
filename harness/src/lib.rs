//! A local network of real `lt-relay` processes on 127.0.0.1: a PKI, one config per node, the
//! processes, and an HTTP client for their local APIs. Used by `lt-relay demo`, the end-to-end
//! tests and the benchmark.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use lienthong_common::agency::AgencyCode;
use lienthong_common::pki::{self, IssueRequest};
use serde_json::{json, Value};

pub use lienthong_client::ApiClient;

/// One node of a topology.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Its agency.
    pub agency: AgencyCode,
    /// Its name.
    pub name: String,
    /// Its parent (none for the root).
    pub parent: Option<AgencyCode>,
    /// Children the code hierarchy does not imply (3-tier trees).
    pub extra_children: Vec<AgencyCode>,
    /// Run as `lt-gateway serve` (no link listener) instead of `lt-relay serve`.
    pub gateway: bool,
    /// RabbitMQ URL: the node's DMS side is the broker (`[amqp]`).
    pub amqp: Option<String>,
    /// `[amqp].ca`: trust roots for an `amqps://` broker.
    pub amqp_ca: Option<PathBuf>,
    /// `[link] offline_child_max_age_hours` (none: the default; 0: no waiting, no route).
    pub offline_child_max_age_hours: Option<u64>,
    /// `[listen] api_body_timeout_secs` (none: the default).
    pub api_body_timeout_secs: Option<u64>,
    /// `[listen] api_header_timeout_secs` (none: the default).
    pub api_header_timeout_secs: Option<u64>,
}

impl NodeSpec {
    /// A node under `parent`.
    pub fn new(agency: &str, name: &str, parent: Option<&str>) -> anyhow::Result<Self> {
        Ok(Self {
            agency: AgencyCode::parse(agency)?,
            name: name.to_owned(),
            parent: parent.map(AgencyCode::parse).transpose()?,
            extra_children: Vec::new(),
            gateway: false,
            amqp: None,
            amqp_ca: None,
            offline_child_max_age_hours: None,
            api_body_timeout_secs: None,
            api_header_timeout_secs: None,
        })
    }

    /// A gateway under `parent`.
    pub fn gateway(agency: &str, name: &str, parent: &str) -> anyhow::Result<Self> {
        let mut s = Self::new(agency, name, Some(parent))?;
        s.gateway = true;
        Ok(s)
    }
}

/// The demo topology: root, a ministry, two provinces each with a district and a commune.
pub fn demo_topology() -> anyhow::Result<Vec<NodeSpec>> {
    Ok(vec![
        NodeSpec::new("000.00.00.G22", "Văn phòng Chính phủ", None)?,
        NodeSpec::new("000.00.00.G14", "Bộ Nội vụ", Some("000.00.00.G22"))?,
        NodeSpec::new("000.00.00.H53", "UBND tỉnh Tây Ninh", Some("000.00.00.G22"))?,
        NodeSpec::new("000.00.31.H53", "UBND huyện Bến Cầu", Some("000.00.00.H53"))?,
        NodeSpec::new("000.21.31.H53", "UBND xã An Thạnh", Some("000.00.31.H53"))?,
        NodeSpec::new(
            "000.00.00.H49",
            "UBND tỉnh Quảng Nam",
            Some("000.00.00.G22"),
        )?,
        NodeSpec::new(
            "000.00.05.H49",
            "UBND huyện Duy Xuyên",
            Some("000.00.00.H49"),
        )?,
        NodeSpec::new("000.07.05.H49", "UBND xã Duy Hải", Some("000.00.05.H49"))?,
    ])
}

/// A node's files and process.
#[derive(Debug)]
pub struct NodeProc {
    /// Its spec.
    pub spec: NodeSpec,
    /// Local API address.
    pub api: SocketAddr,
    /// Link listener address.
    pub grpc: SocketAddr,
    /// Its config file.
    pub config: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    child: Option<Child>,
}

/// A network of relay processes.
#[derive(Debug)]
pub struct Network {
    /// Working directory (PKI, configs, data, logs).
    pub dir: PathBuf,
    exe: PathBuf,
    gateway_exe: Option<PathBuf>,
    env: Vec<(String, String)>,
    /// Nodes by agency.
    pub nodes: BTreeMap<AgencyCode, NodeProc>,
}

/// A free TCP port on 127.0.0.1, chosen below the kernel's ephemeral range (32768 and up) so
/// that an outgoing connection cannot take it between now and the node binding it.
///
/// A port is handed out once per process: networks created at the same time (tests running in
/// parallel) would otherwise both get a port that is free until the first of them binds it.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    for _ in 0..1000 {
        let port = fastrand::u16(20000..32000);
        let mut given = match GIVEN.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if given.contains(&port) {
            continue;
        }
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            given.insert(port);
            return Ok(l.local_addr()?);
        }
    }
    bail!("no free port found in 20000..32000")
}

impl Network {
    /// Creates the PKI and a config per node under `dir`. `exe` is the `lt-relay` binary.
    pub fn create(dir: &Path, exe: &Path, specs: &[NodeSpec]) -> anyhow::Result<Self> {
        let pki_dir = dir.join("pki");
        pki::init(&pki_dir).context("creating the demo PKI")?;
        let mut nodes = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        for s in specs {
            addrs.insert(s.agency.clone(), (free_addr()?, free_addr()?));
        }
        for s in specs {
            let mut req = IssueRequest::new(s.agency.clone());
            req.name = Some(s.name.clone());
            pki::issue(&pki_dir, &req).with_context(|| format!("certificate for {}", s.agency))?;
            let (api, grpc) = addrs[&s.agency];
            let node_dir = dir.join(s.agency.as_str());
            std::fs::create_dir_all(&node_dir)?;
            let grpc_line = if s.gateway {
                String::new()
            } else {
                format!("grpc = \"{grpc}\"\n")
            };
            let mut body_line = s
                .api_body_timeout_secs
                .map(|t| format!("api_body_timeout_secs = {t}\n"))
                .unwrap_or_default();
            if let Some(t) = s.api_header_timeout_secs {
                body_line.push_str(&format!("api_header_timeout_secs = {t}\n"));
            }
            let mut toml = format!(
                "[node]\nagency = \"{a}\"\nname = \"{n}\"\ndata_dir = \"data\"\n\n[listen]\n{grpc_line}api = \"{api}\"\n{body_line}\n[tls]\nca = \"../pki/ca.pem\"\ncert = \"../pki/{a}.pem\"\nkey = \"../pki/{a}.key\"\ncrl = \"../pki/ca.crl\"\n\n[link]\nheartbeat_secs = 2\nmax_backoff_secs = 2\n",
                a = s.agency,
                n = s.name
            );
            if let Some(h) = s.offline_child_max_age_hours {
                toml.push_str(&format!("offline_child_max_age_hours = {h}\n"));
            }
            if let Some(p) = &s.parent {
                let (_, pgrpc) = addrs
                    .get(p)
                    .ok_or_else(|| anyhow!("{}: parent {p} is not in the topology", s.agency))?;
                toml.push_str(&format!(
                    "\n[parent]\nendpoint = \"https://{pgrpc}\"\nagency = \"{p}\"\n"
                ));
            }
            if let Some(url) = &s.amqp {
                toml.push_str(&format!("\n[amqp]\nurl = \"{url}\"\nprefetch = 64\n"));
                if let Some(ca) = &s.amqp_ca {
                    toml.push_str(&format!("ca = {:?}\n", ca.display().to_string()));
                }
            }
            for c in &s.extra_children {
                toml.push_str(&format!("\n[[child]]\nagency = \"{c}\"\n"));
            }
            let config = node_dir.join("node.toml");
            std::fs::write(&config, toml)?;
            nodes.insert(
                s.agency.clone(),
                NodeProc {
                    spec: s.clone(),
                    api,
                    grpc,
                    config,
                    log: node_dir.join("node.log"),
                    child: None,
                },
            );
        }
        Ok(Self {
            dir: dir.to_owned(),
            exe: exe.to_owned(),
            gateway_exe: None,
            env: Vec::new(),
            nodes,
        })
    }

    /// Sets the `lt-gateway` binary used for gateway nodes.
    pub fn with_gateway_exe(mut self, exe: &Path) -> Self {
        self.gateway_exe = Some(exe.to_owned());
        self
    }

    /// Sets an environment variable for every node started from now on.
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The PKI directory.
    pub fn pki_dir(&self) -> PathBuf {
        self.dir.join("pki")
    }

    /// Starts every node that is not running.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        let all: Vec<AgencyCode> = self.nodes.keys().cloned().collect();
        for a in all {
            if self.nodes.get(&a).is_some_and(|n| n.child.is_none()) {
                self.start(&a)?;
            }
        }
        Ok(())
    }

    /// Starts one node's process (appending to its log).
    pub fn start(&mut self, agency: &AgencyCode) -> anyhow::Result<()> {
        let n = self
            .nodes
            .get_mut(agency)
            .ok_or_else(|| anyhow!("no node {agency}"))?;
        let exe = match (&self.gateway_exe, n.spec.gateway) {
            (Some(g), true) => g.clone(),
            _ => self.exe.clone(),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)?;
        let child = Command::new(&exe)
            .arg("serve")
            .arg("--config")
            .arg(&n.config)
            .env(
                "LT_LOG",
                std::env::var("LT_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        n.child = Some(child);
        Ok(())
    }

    /// The process id of a running node.
    pub fn pid(&self, agency: &AgencyCode) -> Option<u32> {
        self.nodes
            .get(agency)
            .and_then(|n| n.child.as_ref())
            .map(Child::id)
    }

    /// Points a node's parent link at another address (a proxy in a test). Takes effect at
    /// the node's next start.
    pub fn set_parent_address(&self, agency: &AgencyCode, addr: SocketAddr) -> anyhow::Result<()> {
        let n = self
            .nodes
            .get(agency)
            .ok_or_else(|| anyhow!("no node {agency}"))?;
        let parent = n
            .spec
            .parent
            .as_ref()
            .ok_or_else(|| anyhow!("{agency} has no parent"))?;
        let pgrpc = self
            .nodes
            .get(parent)
            .ok_or_else(|| anyhow!("no node {parent}"))?
            .grpc;
        let text = std::fs::read_to_string(&n.config)?;
        std::fs::write(
            &n.config,
            text.replace(&format!("https://{pgrpc}"), &format!("https://{addr}")),
        )?;
        Ok(())
    }

    /// Sends a signal to a node's process and waits for it to exit.
    pub fn stop(&mut self, agency: &AgencyCode, signal: i32) -> anyhow::Result<()> {
        let n = self
            .nodes
            .get_mut(agency)
            .ok_or_else(|| anyhow!("no node {agency}"))?;
        if let Some(mut c) = n.child.take() {
            let pid = i32::try_from(c.id()).unwrap_or(0);
            send_signal(pid, signal);
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if c.try_wait()?.is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Stops every node with SIGTERM.
    pub fn stop_all(&mut self) {
        let all: Vec<AgencyCode> = self.nodes.keys().cloned().collect();
        for a in all {
            let _ = self.stop(&a, libc::SIGTERM);
        }
    }

    /// A client for a node's local API.
    pub fn client(&self, agency: &AgencyCode) -> anyhow::Result<ApiClient> {
        let n = self
            .nodes
            .get(agency)
            .ok_or_else(|| anyhow!("no node {agency}"))?;
        Ok(api_client_of(n))
    }

    /// Waits until every node answers /healthz, every child is linked to its parent, and every
    /// agency appears in the root's routing table.
    pub fn wait_linked(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        for (agency, n) in &self.nodes {
            let c = api_client_of(n);
            loop {
                let ok = c.health().ok().is_some_and(|h| {
                    h["parent"].is_null() || h["parent"]["up"].as_bool() == Some(true)
                });
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "{agency} did not come up linked within {timeout:?}; see {}",
                        n.log.display()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // Announcements propagate upward: wait until each root knows every agency below it.
        for (agency, n) in &self.nodes {
            if n.spec.parent.is_some() {
                continue;
            }
            let c = api_client_of(n);
            loop {
                let serves: Vec<String> = c
                    .health()
                    .ok()
                    .and_then(|h| serde_json::from_value(h["serves"].clone()).ok())
                    .unwrap_or_default();
                if self
                    .nodes
                    .keys()
                    .all(|k| serves.iter().any(|s| s == k.as_str()))
                {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("root {agency} did not learn every agency within {timeout:?} (knows {serves:?})");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }
}

/// A client for a node's local API as its configuration file says it now serves it: HTTPS with
/// the node's `[tls] ca` when `[listen] api_tls` is on, else plain HTTP. No credentials.
fn api_client_of(n: &NodeProc) -> ApiClient {
    let plain = || ApiClient::new(&format!("http://{}", n.api));
    match lienthong_common::config::NodeConfig::load(&n.config) {
        Ok(cfg) if cfg.api_tls.is_some() => ApiClient::new(&format!("https://{}", n.api))
            .with_tls(&cfg.tls.ca, None)
            .unwrap_or_else(|_| plain()),
        _ => plain(),
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for n in self.nodes.values_mut() {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Sends `signal` to process `pid`.
pub fn send_signal(pid: i32, signal: i32) {
    if pid > 0 {
        // A failed kill (process already gone) is not an error here.
        let _ = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status();
    }
}

/// A minimal valid envelope header in JSON, from `from` to `to`.
pub fn sample_envelope(
    from: &AgencyCode,
    to: &[&AgencyCode],
    number: &str,
    subject: &str,
) -> Value {
    let today = lienthong_common::envelope::format_date(
        lienthong_common::envelope::today_in_vietnam(lienthong_common::now_utc()),
    );
    json!({
        "from": { "code": from.to_string() },
        "to": to.iter().map(|t| json!({ "code": t.to_string(), "name": format!("Cơ quan {t}") })).collect::<Vec<_>>(),
        "code": { "number": number, "notation": "VP" },
        "promulgation": { "place": "Hà Nội", "date": today },
        "document_type": { "type": 1, "type_name": "Công văn" },
        "subject": subject,
        "signer": { "competence": "TL. CHỦ TỊCH", "position": "Chánh Văn phòng", "full_name": "Người ký" },
        "other_info": { "priority": 0 },
    })
}
