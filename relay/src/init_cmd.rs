//! `lt-relay init` and `lt-gateway init`: the files a new node needs, written for its tier.
//!
//! Writes, refusing to overwrite a key (and a configuration, unless `--force`):
//! - the configuration (mode 0640), commented, for the tier;
//! - the node's key (0600) and a certificate signing request for the CA ([`pki::make_csr`]);
//! - an operator API token (0600) whose SHA-256 the configuration holds;
//! - copies of the CA certificate and CRL when given.
//!
//! Run as root with a `lienthong` system user present (the Debian package makes it), the key,
//! the token and the folders go to that user and the configuration to `root:lienthong`, so the
//! service can read them and nobody else can.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use clap::{Args, ValueEnum};
use lienthong_common::agency::AgencyCode;
use lienthong_common::pki::{self, KeyAlgorithm};

/// The system user the packages run nodes as.
pub const SERVICE_USER: &str = "lienthong";

/// The place of a node in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Tier {
    /// The central root relay: no parent.
    Root,
    /// A ministry's relay, under the root.
    Ministry,
    /// A province's relay, under the root.
    Province,
    /// A district's relay, under its province.
    District,
    /// A commune's node: no children, so no link listener.
    Commune,
}

impl Tier {
    fn has_children(self) -> bool {
        self != Tier::Commune
    }

    fn label(self) -> &'static str {
        match self {
            Tier::Root => "the ROOT relay of the interchange (no parent)",
            Tier::Ministry => "a MINISTRY relay (parent: the root)",
            Tier::Province => "a PROVINCE relay (parent: the root)",
            Tier::District => "a DISTRICT relay (parent: its province)",
            Tier::Commune => {
                "a COMMUNE or office node (no children; parent: its district or province)"
            }
        }
    }
}

/// Which binary runs `init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `lt-relay init`.
    Relay,
    /// `lt-gateway init`: always a node without children.
    Gateway,
}

/// Arguments of `init`. What is not given is asked for on a terminal; otherwise it is an error.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The node's place in the tree (lt-relay only; lt-gateway is always a leaf).
    #[arg(long, value_enum)]
    pub tier: Option<Tier>,
    /// The node's agency code, e.g. 000.00.00.H53.
    #[arg(long)]
    pub agency: Option<AgencyCode>,
    /// The agency's name, e.g. "UBND tỉnh Tây Ninh".
    #[arg(long)]
    pub name: Option<String>,
    /// The parent's link address, https://HOST:PORT (not for the root).
    #[arg(long)]
    pub parent_endpoint: Option<String>,
    /// The parent's agency code (default for districts and communes: the code's administrative
    /// parent).
    #[arg(long)]
    pub parent_agency: Option<AgencyCode>,
    /// Folder for the configuration, the key, the request and the token.
    #[arg(long, default_value = "/etc/lienthong")]
    pub dir: PathBuf,
    /// The configuration file to write (default: DIR/node.toml, lt-gateway: DIR/gw.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The node's store folder.
    #[arg(long, default_value = "/var/lib/lienthong")]
    pub data_dir: PathBuf,
    /// Folder for scheduled backups.
    #[arg(long, default_value = "/var/backups/lienthong")]
    pub backup_dir: PathBuf,
    /// The interchange CA certificate (PEM) to copy to DIR/pki/ca.pem (else put it there).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// The CA's CRL (PEM) to copy to DIR/pki/ca.crl (else put it there).
    #[arg(long)]
    pub crl: Option<PathBuf>,
    /// Link listener for the children (relays with children only).
    #[arg(long, default_value = "0.0.0.0:7443")]
    pub listen: String,
    /// Local API address.
    #[arg(long, default_value = "127.0.0.1:7480")]
    pub api: String,
    /// A DNS name or IP address the node's link listener is reached at, for the certificate
    /// request (repeat for several).
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Security level to configure and assess against (1 to 4).
    #[arg(long, default_value_t = 3)]
    pub level: u8,
    /// An RSA-2048 key instead of ECDSA P-256.
    #[arg(long)]
    pub rsa: bool,
    /// Overwrite an existing configuration file (a key is never overwritten).
    #[arg(long)]
    pub force: bool,
}

/// Everything `init` writes, resolved.
struct Plan {
    role: Role,
    tier: Tier,
    agency: AgencyCode,
    name: String,
    parent: Option<(String, AgencyCode)>,
    pki: PathBuf,
    config: PathBuf,
    data_dir: PathBuf,
    backup_dir: PathBuf,
    listen: String,
    api: String,
    level: u8,
    has_crl: bool,
    token_sha256: String,
}

impl Plan {
    fn key(&self) -> PathBuf {
        self.pki.join(format!("{}.key", self.agency))
    }
    fn csr(&self) -> PathBuf {
        self.pki.join(format!("{}.csr", self.agency))
    }
    fn cert(&self) -> PathBuf {
        self.pki.join(format!("{}.pem", self.agency))
    }
    fn token(&self) -> PathBuf {
        self.config.with_extension("token")
    }
}

/// Asks on the terminal, or fails naming the flag.
fn ask(flag: &str, question: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("{flag} is required (or run `init` in a terminal to be asked)");
    }
    eprint!("{question}: ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the answer")?;
    let answer = line.trim().to_owned();
    if answer.is_empty() {
        bail!("{flag}: no answer given");
    }
    Ok(answer)
}

fn resolve(role: Role, a: InitArgs) -> anyhow::Result<Plan> {
    let tier = match (role, a.tier) {
        (Role::Gateway, None | Some(Tier::Commune)) => Tier::Commune,
        (Role::Gateway, Some(t)) => bail!(
            "--tier {t:?}: a gateway has no children; use `lt-relay init` for a relay",
            t = t
        ),
        (Role::Relay, Some(t)) => t,
        (Role::Relay, None) => {
            let t = ask(
                "--tier",
                "tier (root, ministry, province, district, commune)",
            )?;
            Tier::from_str(&t, true).map_err(|_| anyhow!("--tier: {t:?} is not a tier"))?
        }
    };
    let agency = match a.agency {
        Some(c) => c,
        None => AgencyCode::parse(&ask("--agency", "agency code (e.g. 000.00.00.H53)")?)
            .map_err(|e| anyhow!("--agency: {e}"))?,
    };
    let name = match a.name {
        Some(n) => n,
        None => ask("--name", "agency name (e.g. UBND tỉnh Tây Ninh)")?,
    };
    let parent = if tier == Tier::Root {
        if a.parent_endpoint.is_some() || a.parent_agency.is_some() {
            bail!("--tier root has no parent: leave out --parent-endpoint and --parent-agency");
        }
        None
    } else {
        let endpoint = match a.parent_endpoint {
            Some(e) => e,
            None => ask(
                "--parent-endpoint",
                "parent's link address (https://HOST:PORT)",
            )?,
        };
        if !endpoint.starts_with("https://") {
            bail!("--parent-endpoint: {endpoint:?} must start with https://");
        }
        let derived = matches!(tier, Tier::District | Tier::Commune)
            .then(|| agency.administrative_parent())
            .flatten();
        let parent_agency = match a.parent_agency.or(derived) {
            Some(p) => p,
            None => AgencyCode::parse(&ask(
                "--parent-agency",
                "parent's agency code (e.g. 000.00.00.G22)",
            )?)
            .map_err(|e| anyhow!("--parent-agency: {e}"))?,
        };
        Some((endpoint, parent_agency))
    };
    if !(1..=4).contains(&a.level) {
        bail!("--level {}: levels are 1 to 4", a.level);
    }
    // Absolute paths: a configuration's relative paths would be taken from its own folder.
    let absolute = |p: &Path| {
        std::path::absolute(p).with_context(|| format!("making {} absolute", p.display()))
    };
    let dir = absolute(&a.dir)?;
    let config = match &a.config {
        Some(c) => absolute(c)?,
        None => dir.join(match role {
            Role::Relay => "node.toml",
            Role::Gateway => "gw.toml",
        }),
    };
    Ok(Plan {
        role,
        tier,
        agency,
        name,
        parent,
        pki: dir.join("pki"),
        config,
        data_dir: absolute(&a.data_dir)?,
        backup_dir: absolute(&a.backup_dir)?,
        listen: a.listen,
        api: a.api,
        level: a.level,
        has_crl: a.crl.is_some(),
        token_sha256: String::new(),
    })
}

/// The commented configuration for the plan.
fn render(p: &Plan) -> String {
    let binary = match p.role {
        Role::Relay => "lt-relay",
        Role::Gateway => "lt-gateway",
    };
    let pki = p.pki.display();
    let mut t = format!(
        "# lienthong node: {label}.\n\
         # Agency {agency}, {name}. Written by `{binary} init`; keys: docs/configuration.md.\n\
         #\n\
         # Check:  lt-relay doctor --config {config}\n\
         # Run:    {binary} serve --config {config}\n\
         \n\
         [node]\n\
         agency = \"{agency}\"\n\
         name = \"{name}\"\n\
         # The store: documents, queues, registers, the audit log. Never copy parts of it.\n\
         data_dir = \"{data}\"\n\
         \n\
         [listen]\n",
        label = p.tier.label(),
        agency = p.agency,
        name = p.name.replace('"', "\\\""),
        config = p.config.display(),
        data = p.data_dir.display(),
    );
    if p.tier.has_children() {
        t += &format!(
            "# Link listener for the children (mutual TLS; their certificates must come from the CA).\n\
             grpc = \"{}\"\n",
            p.listen
        );
    } else {
        t += "# No grpc key: this node has no children and accepts no links.\n";
    }
    t += &format!(
        "# Local API for the DMS and the operators, HTTPS with this node's certificate. Every route\n\
         # but /healthz and /metrics needs a credential of an [[api_client]] below (docs/api.md).\n\
         api = \"{}\"\n\
         api_tls = true\n\n",
        p.api
    );
    if let Some((endpoint, agency)) = &p.parent {
        t += &format!(
            "[parent]\n\
             # The parent's link listener; its certificate must name {agency}.\n\
             endpoint = \"{endpoint}\"\n\
             agency = \"{agency}\"\n\n"
        );
    }
    t += &format!(
        "[tls]\n\
         # The interchange CA, this node's certificate (from the CA, for {csr}) and its key.\n\
         ca = \"{pki}/ca.pem\"\n\
         cert = \"{cert}\"\n\
         key = \"{key}\"\n",
        csr = p.csr().display(),
        cert = p.cert().display(),
        key = p.key().display(),
    );
    if p.has_crl {
        t += &format!(
            "# The CA's revocation list: replace the file when the CA publishes a new one (read\n\
             # again within 10 s), or let the node fetch it (crl_urls, docs/configuration.md).\n\
             crl = \"{pki}/ca.crl\"\n\n"
        );
    } else {
        t += &format!(
            "# Put the CA's revocation list at {pki}/ca.crl and uncomment (level 3 and above\n\
             # need a fresh CRL):\n\
             # crl = \"{pki}/ca.crl\"\n\n"
        );
    }
    t += &format!(
        "[link]\n\
         # The heartbeat must match the parent's; the window is how many items travel unacknowledged.\n\
         window = {window}\n\
         heartbeat_secs = 10\n\
         max_backoff_secs = 30\n\n\
         [security]\n\
         # Assessed against this level: `lt-relay assess --level {level} --config {config}`.\n\
         level = {level}\n\
         expiry_warning_days = 30\n\
         audit_retention_days = 365\n\n\
         [backup]\n\
         # A weekly backup, 53 kept: a year of history (docs/operations.md).\n\
         dir = \"{backup}\"\n\
         interval_hours = 168\n\
         keep = 53\n\n\
         # Limits against abuse (docs/security.md): past them a client is answered 429 and a\n\
         # child's frames wait; each is a security event.\n\
         [limits]\n\
         api_requests_per_minute = 6000\n\
         api_mib_per_minute = 2048\n\
         link_items_per_minute = 60000\n\
         link_mib_per_minute = 4096\n\n\
         # Who may use the local API (docs/api.md). Only the SHA-256 of a token is stored.\n\
         # The operators' token is in {token} (mode 0600).\n\
         [[api_client]]\n\
         name = \"operator\"\n\
         token_sha256 = \"{sha}\"\n\
         scopes = [\"books\", \"monitor\", \"operate\"]\n\n\
         # The document-management software: make a token, put its SHA-256 here, uncomment.\n\
         #   TOKEN=$(openssl rand -hex 32); printf %s \"$TOKEN\" | sha256sum\n\
         # [[api_client]]\n\
         # name = \"dms\"\n\
         # token_sha256 = \"...\"\n\
         # scopes = [\"submit\", \"inbox\", \"status\", \"books\"]\n",
        window = if p.tier.has_children() { 64 } else { 16 },
        level = p.level,
        config = p.config.display(),
        backup = p.backup_dir.display(),
        token = p.token().display(),
        sha = p.token_sha256,
    );
    t
}

/// The service user's ids, when running as root and the user exists (from /etc/passwd).
fn service_ids() -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    if std::fs::metadata("/proc/self").ok()?.uid() != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        if f.next()? != SERVICE_USER {
            return None;
        }
        let _password = f.next()?;
        Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
    })
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

fn chown(path: &Path, uid: Option<u32>, gid: Option<u32>) -> anyhow::Result<()> {
    std::os::unix::fs::chown(path, uid, gid)
        .with_context(|| format!("changing the owner of {}", path.display()))
}

fn write_new(path: &Path, text: &str, mode: u32, overwrite: bool) -> anyhow::Result<()> {
    if path.exists() && !overwrite {
        bail!(
            "{} already exists; move it away or give --force",
            path.display()
        );
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    set_mode(path, mode)
}

fn copy_in(from: &Path, to: &Path, force: bool) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(from).with_context(|| format!("reading {}", from.display()))?;
    if !text.contains("-----BEGIN") {
        bail!("{} is not a PEM file", from.display());
    }
    write_new(to, &text, 0o644, force || !to.exists())
}

/// Runs `init` for `role`.
pub fn run(role: Role, args: InitArgs) -> anyhow::Result<()> {
    let ca = args.ca.clone();
    let crl = args.crl.clone();
    let hosts = args.hosts.clone();
    let algorithm = if args.rsa {
        KeyAlgorithm::Rsa2048
    } else {
        KeyAlgorithm::EcdsaP256
    };
    let force = args.force;
    let mut plan = resolve(role, args)?;
    if plan.config.exists() && !force {
        bail!(
            "{} already exists; move it away or give --force (the key is never overwritten)",
            plan.config.display()
        );
    }
    let ids = service_ids();
    for dir in [
        plan.config.parent().unwrap_or(Path::new(".")),
        plan.pki.as_path(),
    ] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    set_mode(&plan.pki, 0o750)?;

    let csr = pki::make_csr(&plan.agency, Some(&plan.name), algorithm, &hosts)
        .context("making the key and the certificate signing request")?;
    csr.save(&plan.key(), &plan.csr())
        .context("writing the key and the request")?;
    if let Some(ca) = &ca {
        copy_in(ca, &plan.pki.join("ca.pem"), force)?;
    }
    if let Some(crl) = &crl {
        copy_in(crl, &plan.pki.join("ca.crl"), force)?;
    }
    let token = hex::encode(rand_token()?);
    plan.token_sha256 = hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ));
    write_new(&plan.token(), &format!("{token}\n"), 0o600, force)?;
    write_new(&plan.config, &render(&plan), 0o640, force)?;
    for dir in [&plan.data_dir, &plan.backup_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        set_mode(dir, 0o750)?;
    }
    if let Some((uid, gid)) = ids {
        // The service reads its key and token and owns its store; root keeps the rest.
        chown(&plan.pki, Some(0), Some(gid))?;
        chown(&plan.config, Some(0), Some(gid))?;
        for p in [
            plan.key(),
            plan.token(),
            plan.data_dir.clone(),
            plan.backup_dir.clone(),
        ] {
            chown(&p, Some(uid), Some(gid))?;
        }
    }
    print_next(&plan, ca.is_some(), ids.is_some());
    Ok(())
}

fn rand_token() -> anyhow::Result<[u8; 32]> {
    use ring::rand::SecureRandom;
    let mut t = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut t)
        .map_err(|_| anyhow!("the system's random source failed"))?;
    Ok(t)
}

fn print_next(p: &Plan, have_ca: bool, owned: bool) {
    let binary = match p.role {
        Role::Relay => "lt-relay",
        Role::Gateway => "lt-gateway",
    };
    println!("{} {} ({}): files written", binary, p.agency, p.name);
    println!("  configuration (0640):  {}", p.config.display());
    println!("  key (0600):            {}", p.key().display());
    println!("  certificate request:   {}", p.csr().display());
    println!("  operator token (0600): {}", p.token().display());
    if owned {
        println!("  owned by root:{SERVICE_USER} (the key, token and store by {SERVICE_USER})");
    }
    println!("next:");
    println!(
        "  1. send {} to the interchange CA and put the certificate it returns at {}",
        p.csr().display(),
        p.cert().display()
    );
    println!(
        "     (development CA: lt-relay pki sign-csr --dir CA-DIR --csr {} --out {})",
        p.csr().display(),
        p.cert().display()
    );
    let mut step = 2;
    if !have_ca {
        println!(
            "  {step}. put the CA certificate at {}",
            p.pki.join("ca.pem").display()
        );
        step += 1;
    }
    if !p.has_crl {
        println!(
            "  {step}. put the CA's CRL at {} and uncomment `crl` in the configuration",
            p.pki.join("ca.crl").display()
        );
        step += 1;
    }
    println!(
        "  {step}. lt-relay doctor --config {}   (says what is still wrong, and how to fix it)",
        p.config.display()
    );
    println!(
        "  {}. {binary} serve --config {}   (or the packaged service)",
        step + 1,
        p.config.display()
    );
}
