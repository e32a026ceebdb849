//! A real time-stamping authority that is not ours: `openssl ts -reply` behind a small HTTP
//! server on a loopback port.
//!
//! [`TsaPki::create`] makes, with the `openssl` command line, a TSA CA (RSA-2048, as the
//! government's CA) and three TSA certificates under it (EC P-256, RSA-2048, EC P-384; each with
//! extendedKeyUsage critical timeStamping), a certificate from the same CA without that usage,
//! another CA that issued none of them, and an openssl configuration with one TSA section per
//! TSA certificate. [`TsaServer::start`] answers each POSTed query by running
//! `openssl ts -reply -queryfile … -config … -section …` and sending back its output; it serves
//! one query at a time (the TSA's serial file is not shared safely) and can be stopped, to play
//! "TSA down".

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::openssl;

/// A TSA section of the configuration: which certificate signs, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    /// EC P-256, SHA-256, whole seconds, ESSCertID (SHA-1, v1), default policy 1.2.3.4.1.
    Ec256,
    /// RSA-2048 PKCS#1 v1.5, SHA-256, milliseconds in genTime, ESSCertIDv2 (SHA-256).
    Rsa,
    /// EC P-384, SHA-384, ESSCertIDv2 with SHA-384.
    Ec384,
}

impl Section {
    /// The section's name in the configuration and the stem of its certificate's files.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Section::Ec256 => "tsa-ec256",
            Section::Rsa => "tsa-rsa",
            Section::Ec384 => "tsa-ec384",
        }
    }
}

/// The policy every section issues tokens under unless asked for another it accepts.
pub(crate) const DEFAULT_POLICY: &str = "1.2.3.4.1";
/// The other policy the sections accept.
pub(crate) const OTHER_POLICY: &str = "1.2.3.4.5";

/// The TSA's keys, certificates and configuration, in a folder.
pub(crate) struct TsaPki {
    pub(crate) dir: PathBuf,
}

impl TsaPki {
    /// Makes everything in `dir` (which must exist).
    pub(crate) fn create(dir: &Path) -> TsaPki {
        let ca_ext = "basicConstraints = critical, CA:true\n\
                      keyUsage = critical, keyCertSign, cRLSign\n\
                      subjectKeyIdentifier = hash\n";
        for (name, cn) in [("tsa-ca", "Test TSA CA"), ("other-ca", "Another CA")] {
            std::fs::write(dir.join(format!("{name}.ext")), ca_ext).unwrap();
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-sha256",
                    "-days",
                    "30",
                    "-subj",
                    &format!("/C=VN/O=lienthong tests/CN={cn}"),
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.pem"),
                    "-extensions",
                    "v3",
                    "-config",
                    &write_req_config(dir, name, ca_ext),
                ],
            );
        }
        let no_eku_ext = "basicConstraints = critical, CA:false\n\
                          keyUsage = critical, digitalSignature, nonRepudiation\n\
                          subjectKeyIdentifier = hash\n\
                          authorityKeyIdentifier = keyid\n";
        let tsa_ext = format!("{no_eku_ext}extendedKeyUsage = critical, timeStamping\n");
        let tsa_ext = tsa_ext.as_str();
        for (name, key, ext) in [
            (Section::Ec256.name(), "ec:P-256", tsa_ext),
            (Section::Rsa.name(), "rsa:2048", tsa_ext),
            (Section::Ec384.name(), "ec:P-384", tsa_ext),
            ("no-eku", "ec:P-256", no_eku_ext),
        ] {
            issue(dir, name, key, ext);
        }
        let mut cnf = format!("[tsa]\ndefault_tsa = {}\n", Section::Ec256.name());
        for (section, digest, precision, ess_alg, accuracy) in [
            (Section::Ec256, "sha256", 0, "sha1", "secs:1"),
            (Section::Rsa, "sha256", 3, "sha256", "millisecs:500"),
            (
                Section::Ec384,
                "sha384",
                0,
                "sha384",
                "secs:1, millisecs:250",
            ),
        ] {
            let name = section.name();
            std::fs::write(dir.join(format!("{name}.serial")), "01\n").unwrap();
            cnf.push_str(&format!(
                "\n[{name}]\ndir = {d}\nserial = $dir/{name}.serial\ncrypto_device = builtin\n\
                 signer_cert = $dir/{name}.pem\nsigner_key = $dir/{name}.key\n\
                 signer_digest = {digest}\ndefault_policy = {DEFAULT_POLICY}\n\
                 other_policies = {OTHER_POLICY}\ndigests = sha256, sha384, sha512\n\
                 accuracy = {accuracy}\nclock_precision_digits = {precision}\nordering = no\n\
                 tsa_name = yes\ness_cert_id_chain = no\ness_cert_id_alg = {ess_alg}\n",
                d = dir.display()
            ));
        }
        std::fs::write(dir.join("tsa.cnf"), cnf).unwrap();
        TsaPki {
            dir: dir.to_owned(),
        }
    }

    /// The TSA CA's certificate (the trust anchor), PEM.
    pub(crate) fn ca_pem(&self) -> PathBuf {
        self.dir.join("tsa-ca.pem")
    }

    /// The CA that issued none of the TSA's certificates, PEM.
    pub(crate) fn other_ca_pem(&self) -> PathBuf {
        self.dir.join("other-ca.pem")
    }

    /// A section's TSA certificate, PEM.
    pub(crate) fn tsa_pem(&self, section: Section) -> PathBuf {
        self.dir.join(format!("{}.pem", section.name()))
    }

    /// The certificate (and `.key`) without the timeStamping usage, PEM.
    pub(crate) fn no_eku_pem(&self) -> PathBuf {
        self.dir.join("no-eku.pem")
    }
}

/// A configuration for `openssl req -x509` that puts `ext` in section `v3`.
fn write_req_config(dir: &Path, name: &str, ext: &str) -> String {
    let file = format!("{name}.req.cnf");
    std::fs::write(
        dir.join(&file),
        format!("[req]\ndistinguished_name = dn\n[dn]\n[v3]\n{ext}"),
    )
    .unwrap();
    file
}

/// Issues `name.pem` / `name.key` under the TSA CA with a new key of type `key`
/// (`ec:P-256`, `rsa:2048`, …) and the extension lines `ext`.
fn issue(dir: &Path, name: &str, key: &str, ext: &str) {
    let newkey: Vec<String> = match key.split_once(':') {
        Some(("ec", curve)) => vec![
            "-newkey".into(),
            "ec".into(),
            "-pkeyopt".into(),
            format!("ec_paramgen_curve:{curve}"),
        ],
        _ => vec!["-newkey".into(), key.into()],
    };
    let mut args: Vec<String> = vec!["req".into(), "-new".into(), "-nodes".into()];
    args.extend(newkey);
    args.extend(
        [
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/C=VN/O=lienthong tests/CN={name}"),
        ]
        .map(String::from),
    );
    openssl(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-sha256",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "tsa-ca.pem",
            "-CAkey",
            "tsa-ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// The largest query or header block the server reads.
const MAX_REQUEST_BYTES: usize = 64 << 10;

/// `openssl ts -reply` served over HTTP on 127.0.0.1.
pub(crate) struct TsaServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl TsaServer {
    /// Starts answering with the TSA section `section` of `pki`.
    pub(crate) fn start(pki: &TsaPki, section: Section) -> TsaServer {
        Self::start_at(pki, section, "127.0.0.1:0")
    }

    /// The same on a given address (a TSA that comes back where it was).
    pub(crate) fn start_at(pki: &TsaPki, section: Section, addr: &str) -> TsaServer {
        let listener = TcpListener::bind(addr).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let work = pki.dir.join(format!("work-{}", addr.port()));
        std::fs::create_dir_all(&work).unwrap();
        let config = pki.dir.join("tsa.cnf");
        let thread = {
            let (stop, served) = (stop.clone(), served.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    // Counted before the answer leaves, so that a client that has it sees it.
                    served.fetch_add(1, Ordering::SeqCst);
                    if let Err(e) = answer(conn, &work, &config, section) {
                        eprintln!("test TSA: {e}");
                    }
                }
            })
        };
        TsaServer {
            addr,
            stop,
            served,
            thread: Some(thread),
        }
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to post queries to.
    pub(crate) fn url(&self) -> String {
        format!("http://{}/tsa", self.addr)
    }

    /// How many connections were answered.
    pub(crate) fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    /// Stops listening: the port refuses connections from then on.
    pub(crate) fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, Ordering::SeqCst);
            // Wakes the blocked accept, which then sees the flag.
            let _ = TcpStream::connect(self.addr);
            let _ = thread.join();
        }
    }
}

impl Drop for TsaServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads one HTTP request, runs `openssl ts -reply` on its body, writes the answer.
fn answer(
    mut conn: TcpStream,
    work: &Path,
    config: &Path,
    section: Section,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut length = 0usize;
    let mut first = true;
    let mut method_ok = false;
    let mut header_bytes = 0;
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        header_bytes += n;
        if n == 0 || header_bytes > MAX_REQUEST_BYTES {
            return Err(std::io::Error::other("incomplete request"));
        }
        let line = line.trim_end();
        if first {
            method_ok = line.starts_with("POST ");
            first = false;
        } else if line.is_empty() {
            break;
        } else if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    if !method_ok || length == 0 || length > MAX_REQUEST_BYTES {
        return reply(
            &mut conn,
            "400 Bad Request",
            "text/plain",
            b"POST a query\n",
        );
    }
    let mut query = vec![0u8; length];
    reader.read_exact(&mut query)?;
    let (tsq, tsr) = (work.join("query.tsq"), work.join("reply.tsr"));
    std::fs::write(&tsq, &query)?;
    let out = std::process::Command::new("openssl")
        .arg("ts")
        .arg("-reply")
        .arg("-queryfile")
        .arg(&tsq)
        .arg("-config")
        .arg(config)
        .arg("-section")
        .arg(section.name())
        .arg("-out")
        .arg(&tsr)
        .output()?;
    if !out.status.success() {
        return reply(
            &mut conn,
            "500 Internal Server Error",
            "text/plain",
            &out.stderr,
        );
    }
    let body = std::fs::read(&tsr)?;
    reply(&mut conn, "200 OK", "application/timestamp-reply", &body)
}

fn reply(
    conn: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(body)?;
    conn.flush()
}
