//! `lt-gateway`: the gateway node (`serve`) and the staff commands that talk to a node's local
//! API (`send`, `inbox`, `fetch`, `ack`, `status`, `recall`, `track`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Args, Parser, Subcommand};
use lienthong_client::ApiClient;
use lienthong_common::agency::AgencyCode;
use lienthong_common::config::NodeConfig;
use lienthong_relay::api::TrackView;
use serde_json::{json, Value};

/// Exit code for a bad configuration: the gateway stops before binding any port.
pub const EXIT_CONFIG: u8 = 64;

/// lienthong gateway: the interchange node of a district or commune office, and the staff
/// commands to send and receive documents through it.
///
/// The staff commands talk to the local API of a running gateway (or relay): by default
/// http://127.0.0.1:7480, or the address given with --api.
#[derive(Debug, Parser)]
#[command(name = "lt-gateway", version, propagate_version = true)]
pub struct Cli {
    /// Local API of the node to talk to.
    #[arg(
        long,
        global = true,
        env = "LT_API",
        default_value = "http://127.0.0.1:7480"
    )]
    pub api: String,
    /// Bearer token for a node whose API has `[[api_client]]` entries (its SHA-256 is what
    /// the node's configuration holds).
    #[arg(long, global = true, env = "LT_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// With an https:// API: the CA certificate (PEM) its certificate must chain to (for a node
    /// that uses its own certificate on the API, the interchange CA).
    #[arg(long, global = true, env = "LT_API_CA")]
    pub api_ca: Option<PathBuf>,
    /// With an https:// API that takes client certificates: this client's certificate (PEM).
    #[arg(long, global = true, env = "LT_API_CERT", requires = "api_key")]
    pub api_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, env = "LT_API_KEY", requires = "api_cert")]
    pub api_key: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: a node with no children, linked to its parent relay.
    Serve {
        /// Configuration (TOML; docs/gateway.md). `LT_*` variables override it.
        #[arg(long, env = "LT_CONFIG")]
        config: PathBuf,
    },
    /// Write what a new office node needs: a commented configuration (a leaf: no children), its
    /// key and a certificate signing request for the CA, an operator API token. Asks on a
    /// terminal for what is not given. Then: the CA signs the request, `lt-relay doctor`.
    Init(lienthong_relay::init_cmd::InitArgs),
    /// Send a document with its attachments; prints the envelope id.
    Send(SendArgs),
    /// List received documents not yet acknowledged.
    Inbox {
        /// Agency whose inbox (default: the node's own).
        #[arg(long)]
        agency: Option<AgencyCode>,
        /// Include acknowledged documents.
        #[arg(long)]
        all: bool,
    },
    /// Write a received document's attachments (and its header as envelope.json) to a folder,
    /// checking each attachment's SHA-256.
    Fetch {
        /// Envelope id.
        id: String,
        /// Folder to write into (created if absent).
        #[arg(long)]
        out: PathBuf,
        /// Write the document as one edXML package (`<id>.edxml`, attachments inline) instead
        /// of envelope.json and the attachment files.
        #[arg(long)]
        edxml: bool,
    },
    /// Acknowledge a received document (it leaves the inbox list).
    Ack {
        /// Envelope id.
        id: String,
        /// Agency whose inbox (default: the node's own).
        #[arg(long)]
        agency: Option<AgencyCode>,
    },
    /// Report what happened to a received document: 02 rejected (needs --description), 03
    /// accepted, 04 assigned, 05 processing, 06 done, 15 recall agreed, 16 recall refused
    /// (needs --description).
    Status {
        /// Envelope id.
        id: String,
        /// Status code.
        code: String,
        /// Reason (required for 02 and 16).
        #[arg(long, default_value = "")]
        description: String,
        /// Reporting agency (default: the recipient of the document served by this node).
        #[arg(long)]
        agency: Option<AgencyCode>,
        /// Your id for this update (letters, digits, - _ . :). Running the same command again
        /// with the same id, after a time-out say, sends nothing twice. Default: a new id,
        /// printed, to reuse when in doubt.
        #[arg(long)]
        status_id: Option<String>,
    },
    /// Ask the recipients to return a document: sends status 13 and a revocation notice, then
    /// shows their answers (15 agreed, 16 refused) as they come.
    Recall {
        /// Envelope id of the document sent.
        id: String,
        /// Why it is recalled.
        #[arg(long)]
        reason: String,
        /// Seconds to wait for the recipients' answers (0: do not wait).
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Where a sent document is: per recipient the latest status, the transport events and
    /// the hops it passed with their times.
    Track {
        /// Envelope id.
        id: String,
    },
}

/// Arguments of `send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Send this edXML (QCVN 102) document package as it is, attachments inline: its own
    /// fields say who sends what to whom, so the options below are not used.
    #[arg(long, conflicts_with_all = ["to", "number", "notation", "doc_type", "subject", "priority", "due", "from", "files"])]
    pub edxml: Option<PathBuf>,
    /// Recipient agency codes, comma separated (e.g. 000.00.00.G14,000.21.31.H53).
    #[arg(long, value_delimiter = ',', required_unless_present = "edxml")]
    pub to: Vec<String>,
    /// Document number (số), at most 11 characters.
    #[arg(long, required_unless_present = "edxml")]
    pub number: Option<String>,
    /// Notation (ký hiệu), e.g. UBND-VP.
    #[arg(long, default_value = "")]
    pub notation: String,
    /// Document type name, e.g. "Công văn".
    #[arg(long = "type", default_value = "Công văn")]
    pub doc_type: String,
    /// Subject (trích yếu).
    #[arg(long, required_unless_present = "edxml")]
    pub subject: Option<String>,
    /// Priority: 0 normal, 1 urgent, 2 very urgent, 3 express, 4 express at a set time.
    #[arg(long, default_value_t = 0)]
    pub priority: i32,
    /// Handling deadline, YYYY-MM-DD.
    #[arg(long)]
    pub due: Option<String>,
    /// Sending agency (default: the node's own).
    #[arg(long)]
    pub from: Option<AgencyCode>,
    /// A file to attach (repeat for several).
    #[arg(long = "file")]
    pub files: Vec<PathBuf>,
}

/// The client of `--api`, with its credentials.
fn api_client(cli: &Cli) -> anyhow::Result<ApiClient> {
    let client = ApiClient::new(&cli.api).with_token(cli.token.as_deref());
    if !cli.api.starts_with("https://") {
        if cli.api_ca.is_some() || cli.api_cert.is_some() {
            anyhow::bail!(
                "--api-ca and --api-cert are for an https:// API; --api is {}",
                cli.api
            );
        }
        return Ok(client);
    }
    let ca = cli.api_ca.as_deref().ok_or_else(|| {
        anyhow::anyhow!(
            "--api {} is HTTPS: give --api-ca FILE (or LT_API_CA), the CA certificate its certificate chains to",
            cli.api
        )
    })?;
    let identity = cli.api_cert.as_deref().zip(cli.api_key.as_deref());
    client.with_tls(ca, identity)
}

/// Runs the command line.
pub fn run(cli: Cli) -> ExitCode {
    if let Command::Serve { config } = &cli.command {
        return serve(config);
    }
    if let Command::Init(args) = cli.command {
        return match lienthong_relay::init_cmd::run(lienthong_relay::init_cmd::Role::Gateway, args)
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lt-gateway: error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let client = match api_client(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(64);
        }
    };
    let result = match cli.command {
        Command::Serve { config } => return serve(&config),
        Command::Init(_) => return ExitCode::SUCCESS, // handled above
        Command::Send(a) => send(&client, &cli.api, a, cli.json),
        Command::Inbox { agency, all } => inbox(&client, &cli.api, agency, all, cli.json),
        Command::Fetch {
            id,
            out,
            edxml: true,
        } => fetch_edxml(&client, &cli.api, &id, &out, cli.json),
        Command::Fetch {
            id,
            out,
            edxml: false,
        } => fetch(&client, &cli.api, &id, &out, cli.json),
        Command::Ack { id, agency } => ack(&client, &cli.api, &id, agency, cli.json),
        Command::Status {
            id,
            code,
            description,
            agency,
            status_id,
        } => status(
            &client,
            &cli.api,
            &id,
            StatusUpdate {
                code,
                description,
                agency,
                status_id,
            },
            cli.json,
        ),
        Command::Recall { id, reason, wait } => {
            recall(&client, &cli.api, &id, &reason, wait, cli.json)
        }
        Command::Track { id } => track(&client, &cli.api, &id, cli.json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lt-gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(path: &Path) -> ExitCode {
    let config = match NodeConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lt-gateway: configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if config.grpc.is_some() {
        eprintln!(
            "lt-gateway: configuration error: {}: listen.grpc: a gateway has no children; remove it (run lt-relay for a node with children)",
            path.display()
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    if config.parent.is_none() {
        eprintln!("lt-gateway: configuration error: {}: parent: required (the relay this office connects to)", path.display());
        return ExitCode::from(EXIT_CONFIG);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lt-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(lienthong_relay::serve::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ lienthong_relay::serve::ServeError::Config(_)) => {
            eprintln!("lt-gateway: configuration error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("lt-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Turns a transport failure into advice.
fn reach(api: &str, e: anyhow::Error) -> anyhow::Error {
    let text = format!("{e:#}");
    if text.contains("Connection refused")
        || text.contains("connection refused")
        || text.contains("io:") && !text.contains("HTTP")
    {
        anyhow!("cannot reach the node's API at {api} ({text}); is `lt-gateway serve` running there? Use --api to point elsewhere")
    } else {
        e
    }
}

fn own_agency(client: &ApiClient, api: &str) -> anyhow::Result<AgencyCode> {
    let h = client.health().map_err(|e| reach(api, e))?;
    let a = h["agency"]
        .as_str()
        .ok_or_else(|| anyhow!("{api}/healthz did not name the node's agency"))?;
    Ok(AgencyCode::parse(a)?)
}

fn parse_code(s: &str) -> anyhow::Result<AgencyCode> {
    AgencyCode::parse(s.trim()).map_err(|e| {
        anyhow!("recipient {s:?}: {e}; agency codes look like 000.00.00.H53 (VVV.ZZ.YY.MXX) or are an opaque code of at most 35 characters")
    })
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("pdf") => "application/pdf",
        Some("doc") => "application/msword",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Some("xls") => "application/vnd.ms-excel",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Some("zip") => "application/zip",
        Some("xml") => "application/xml",
        Some("txt") => "text/plain",
        _ => "application/octet-stream",
    }
}

/// A reader that prints upload progress to stderr for large files.
struct Progress<R> {
    inner: R,
    done: u64,
    total: u64,
    last: Instant,
    name: String,
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.last.elapsed() > Duration::from_millis(250) || (n == 0 && self.total > 0) {
            self.last = Instant::now();
            let pct = (self.done * 100).checked_div(self.total).unwrap_or(100);
            let width = 30usize;
            let filled = (pct as usize * width / 100).min(width);
            eprint!(
                "\r{} [{}{}] {:>3}% {}/{} MiB",
                self.name,
                "#".repeat(filled),
                " ".repeat(width - filled),
                pct,
                self.done >> 20,
                self.total >> 20
            );
            if n == 0 {
                eprintln!();
            }
        }
        Ok(n)
    }
}

/// Files above this size show a progress bar while they upload.
const PROGRESS_THRESHOLD: u64 = 8 * 1024 * 1024;

fn upload(client: &ApiClient, api: &str, path: &Path) -> anyhow::Result<Value> {
    let meta = std::fs::metadata(path).map_err(|e| {
        anyhow!(
            "file {}: {e}; check the path given to --file",
            path.display()
        )
    })?;
    if !meta.is_file() {
        bail!("file {}: not a regular file", path.display());
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "attachment".into());
    let file = std::fs::File::open(path).map_err(|e| anyhow!("file {}: {e}", path.display()))?;
    let up = if meta.len() >= PROGRESS_THRESHOLD {
        let reader = Progress {
            inner: file,
            done: 0,
            total: meta.len(),
            last: Instant::now(),
            name: name.clone(),
        };
        client.upload_reader(reader)
    } else {
        client.upload_reader(file)
    }
    .map_err(|e| reach(api, e))?;
    if up.size != meta.len() {
        bail!(
            "file {}: the node stored {} bytes of {}",
            path.display(),
            up.size,
            meta.len()
        );
    }
    Ok(
        json!({ "name": name, "content_type": content_type(path), "size": up.size, "sha256": up.sha256 }),
    )
}

fn send_edxml(client: &ApiClient, api: &str, path: &Path, as_json: bool) -> anyhow::Result<()> {
    let package = std::fs::read(path).with_context(|| {
        format!(
            "{}: cannot read the edXML package given to --edxml",
            path.display()
        )
    })?;
    let r = client
        .post_bytes(
            "/v1/documents",
            lienthong_edxml::EDXML_CONTENT_TYPE,
            &package,
        )
        .map_err(|e| reach(api, e))?;
    if as_json {
        println!("{r}");
    } else {
        println!(
            "sent {}  document {}",
            r["envelope_id"].as_str().unwrap_or_default(),
            r["document_id"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

fn send(client: &ApiClient, api: &str, a: SendArgs, as_json: bool) -> anyhow::Result<()> {
    if let Some(path) = &a.edxml {
        return send_edxml(client, api, path, as_json);
    }
    let to: Vec<AgencyCode> =
        a.to.iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| parse_code(s))
            .collect::<Result<_, _>>()?;
    if to.is_empty() {
        bail!("--to: give at least one recipient agency code");
    }
    for f in &a.files {
        if !f.is_file() {
            bail!(
                "file {}: not found; check the path given to --file",
                f.display()
            );
        }
    }
    let from = match a.from {
        Some(f) => f,
        None => own_agency(client, api)?,
    };
    let mut attachments = Vec::new();
    for f in &a.files {
        attachments.push(upload(client, api, f)?);
    }
    let today =
        lienthong_common::envelope::format_date(lienthong_common::envelope::today_in_vietnam(
            lienthong_common::clock::Clock::from_env().now_utc(),
        ));
    let env = json!({
        "from": { "code": from.to_string() },
        "to": to.iter().map(|t| json!({ "code": t.to_string(), "name": t.to_string() })).collect::<Vec<_>>(),
        "code": { "number": a.number.clone().unwrap_or_default(), "notation": a.notation },
        "promulgation": { "date": today },
        "document_type": { "type_name": a.doc_type },
        "subject": a.subject.clone().unwrap_or_default(),
        "due_date": a.due.unwrap_or_default(),
        "other_info": { "priority": a.priority },
        "attachments": attachments,
    });
    let r = client
        .post_json("/v1/documents", &json!({ "envelope": env }))
        .map_err(|e| reach(api, e))?;
    if as_json {
        println!("{r}");
    } else {
        println!("{}", r["envelope_id"].as_str().unwrap_or_default());
        eprintln!(
            "sent {} to {}",
            r["document_id"].as_str().unwrap_or_default(),
            a.to.join(", ")
        );
    }
    Ok(())
}

fn inbox(
    client: &ApiClient,
    api: &str,
    agency: Option<AgencyCode>,
    all: bool,
    as_json: bool,
) -> anyhow::Result<()> {
    let agency = match agency {
        Some(a) => a,
        None => own_agency(client, api)?,
    };
    let v = client
        .get_json(&format!("/v1/inbox?agency={agency}&all={all}"))
        .map_err(|e| reach(api, e))?;
    if as_json {
        println!("{v}");
        return Ok(());
    }
    let items = v.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("no documents waiting for {agency}");
        return Ok(());
    }
    println!(
        "{:<38} {:<15} {:<20} {:>5} {:<4} subject",
        "id", "from", "number/notation", "files", "ack"
    );
    for e in items {
        let env = &e["envelope"];
        println!(
            "{:<38} {:<15} {:<20} {:>5} {:<4} {}",
            env["id"].as_str().unwrap_or_default(),
            env["from"]["code"].as_str().unwrap_or_default(),
            format!(
                "{}/{}",
                env["code"]["number"].as_str().unwrap_or_default(),
                env["code"]["notation"].as_str().unwrap_or_default()
            ),
            env["attachments"].as_array().map(Vec::len).unwrap_or(0),
            if e["acknowledged"].as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            },
            env["subject"].as_str().unwrap_or_default(),
        );
    }
    Ok(())
}

fn safe_name(name: &str) -> String {
    let base = Path::new(name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if base.is_empty() || base == "." || base == ".." {
        "attachment".into()
    } else {
        base
    }
}

fn fetch_edxml(
    client: &ApiClient,
    api: &str,
    id: &str,
    out: &Path,
    as_json: bool,
) -> anyhow::Result<()> {
    let package = client
        .get_text_as(
            &format!("/v1/documents/{id}"),
            lienthong_edxml::EDXML_CONTENT_TYPE,
        )
        .map_err(|e| reach(api, e))?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join(format!("{}.edxml", safe_name(id)));
    std::fs::write(&path, &package).with_context(|| format!("writing {}", path.display()))?;
    if as_json {
        println!(
            "{}",
            json!({ "edxml": path.display().to_string(), "bytes": package.len() })
        );
    } else {
        println!("{}  {} bytes", path.display(), package.len());
    }
    Ok(())
}

fn fetch(client: &ApiClient, api: &str, id: &str, out: &Path, as_json: bool) -> anyhow::Result<()> {
    let env = client
        .get_json(&format!("/v1/documents/{id}"))
        .map_err(|e| reach(api, e))?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("envelope.json"), serde_json::to_vec_pretty(&env)?)?;
    let mut written = Vec::new();
    for a in env["attachments"].as_array().cloned().unwrap_or_default() {
        let sha = a["sha256"].as_str().unwrap_or_default().to_owned();
        let path = out.join(safe_name(a["name"].as_str().unwrap_or("attachment")));
        let n = client
            .download(id, &sha, &path)
            .map_err(|e| reach(api, e))?;
        let got = sha256_file(&path)?;
        if got != sha {
            bail!("{}: SHA-256 {got} does not match the signed header's {sha}; the file was not kept intact", path.display());
        }
        written.push(json!({ "path": path.display().to_string(), "size": n, "sha256": sha }));
    }
    if as_json {
        println!(
            "{}",
            json!({ "envelope": out.join("envelope.json").display().to_string(), "attachments": written })
        );
    } else {
        for w in &written {
            println!(
                "{}  {} bytes  sha256 ok",
                w["path"].as_str().unwrap_or_default(),
                w["size"]
            );
        }
        println!("header: {}", out.join("envelope.json").display());
    }
    Ok(())
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(hex::encode(ctx.finish()))
}

fn ack(
    client: &ApiClient,
    api: &str,
    id: &str,
    agency: Option<AgencyCode>,
    as_json: bool,
) -> anyhow::Result<()> {
    let agency = match agency {
        Some(a) => a,
        None => own_agency(client, api)?,
    };
    client.ack(id, &agency).map_err(|e| reach(api, e))?;
    if as_json {
        println!(
            "{}",
            json!({ "acknowledged": id, "agency": agency.to_string() })
        );
    } else {
        println!("acknowledged {id}");
    }
    Ok(())
}

/// What `lt-gateway status` reports.
struct StatusUpdate {
    code: String,
    description: String,
    agency: Option<AgencyCode>,
    status_id: Option<String>,
}

fn status(
    client: &ApiClient,
    api: &str,
    id: &str,
    update: StatusUpdate,
    as_json: bool,
) -> anyhow::Result<()> {
    let StatusUpdate {
        code,
        description,
        agency,
        status_id,
    } = update;
    let n: i32 = code.trim().parse().map_err(|_| {
        anyhow!("status {code:?} is not a number; valid: 02, 03, 04, 05, 06, 15, 16")
    })?;
    let status_id = status_id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let mut body = json!({ "status": n, "description": description, "id": status_id });
    if let Some(a) = agency {
        body["agency"] = json!(a.to_string());
    }
    let r = client
        .post_json(&format!("/v1/documents/{id}/status"), &body)
        .map_err(|e| reach(api, e))?;
    if as_json {
        println!("{r}");
    } else {
        println!(
            "status {n:02} ({}) sent for {id} (status id {status_id})",
            lienthong_common::envelope::status_names(n).1
        );
    }
    Ok(())
}

fn recall(
    client: &ApiClient,
    api: &str,
    id: &str,
    reason: &str,
    wait: u64,
    as_json: bool,
) -> anyhow::Result<()> {
    let env = client
        .get_json(&format!("/v1/documents/{id}"))
        .map_err(|e| reach(api, e))?;
    client
        .post_json(
            &format!("/v1/documents/{id}/status"),
            &json!({ "status": 13, "description": reason }),
        )
        .map_err(|e| reach(api, e))?;
    // The revocation notice: the same document header, business type 1 (revoke), pointing
    // at the recalled document.
    let mut notice = env.clone();
    for k in ["id", "signature", "trace", "attachments"] {
        if let Some(o) = notice.as_object_mut() {
            o.remove(k);
        }
    }
    notice["business"] =
        json!({ "doc_type": 1, "reason": reason, "target_document_id": env["document_id"] });
    let r = client
        .post_json("/v1/documents", &json!({ "envelope": notice }))
        .map_err(|e| reach(api, e))?;
    if !as_json {
        println!(
            "recall requested for {id} (13 sent; revocation notice {})",
            r["envelope_id"].as_str().unwrap_or_default()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        let view = track_view(client, api, id)?;
        let answered = view
            .recipients
            .iter()
            .filter(|r| r.history.iter().any(|(c, _)| *c == 15 || *c == 16))
            .count();
        if answered == view.recipients.len() || Instant::now() >= deadline {
            if as_json {
                println!("{}", serde_json::to_string(&view)?);
            } else {
                for r in &view.recipients {
                    let answer = r.history.iter().rev().find(|(c, _)| *c == 15 || *c == 16);
                    match answer {
                        Some((c, _)) => println!(
                            "  {}  {:02} {}",
                            r.recipient,
                            c,
                            lienthong_common::envelope::status_names(*c).1
                        ),
                        None => println!("  {}  no answer yet", r.recipient),
                    }
                }
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn track_view(client: &ApiClient, api: &str, id: &str) -> anyhow::Result<TrackView> {
    client.track(id).map_err(|e| reach(api, e))
}

fn track(client: &ApiClient, api: &str, id: &str, as_json: bool) -> anyhow::Result<()> {
    let view = track_view(client, api, id)?;
    if as_json {
        println!("{}", serde_json::to_string(&view)?);
        return Ok(());
    }
    print!("{}", lienthong_relay::books_cmd::track_text(&view));
    Ok(())
}
