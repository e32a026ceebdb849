//! The Debian packages of deploy/package-deb.sh (docs/operations.md, "Installing from the Debian
//! packages"), built from this run's binaries and installed on this machine:
//!
//! - the packages' contents and control fields (`dpkg-deb -c`, `dpkg-deb -I`);
//! - `dpkg -i`: the system account `lienthong`, its folders, the programs and their man pages;
//! - the units pass `systemd-analyze verify`, and `systemd-analyze security --offline=true`
//!   rates each in the "OK" band (exposure at most 4.9);
//! - with a development PKI installed into /etc/lienthong/pki as an operator would, the
//!   installed `lt-relay assess` runs, as the service account, on every installed example
//!   configuration as installed; `lt-relay serve` and `lt-gateway serve` start on an example as
//!   the service account (listen addresses moved to free ports with `LT_*` overrides) and stop
//!   cleanly;
//! - `dpkg -r` removes the programs and units and keeps the store, the backups, the keys and
//!   the account; `dpkg --purge` removes the account and still keeps them; a reinstall after
//!   another account took the old uid gives them to the new account.
//!
//! It installs packages system-wide: it needs root, dpkg-deb and systemd-analyze (no running
//! systemd), and a machine where lienthong is not installed (no program, account or folder of
//! it). Otherwise it prints why and passes, or fails when `CI=true`. Whatever happens, the
//! packages are purged and what the test made is removed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{gateway_exe, relay_exe};

const RELAY: &str = "lienthong-relay";
const GATEWAY: &str = "lienthong-gateway";
const ACCOUNT: &str = "lienthong";
/// An account the test makes to take the old uid before reinstalling.
const PLACEHOLDER: &str = "lt-pkgtest";
/// The folders the packages make or use; the test runs only when none exists, and removes them.
const FOLDERS: [&str; 4] = [
    "/etc/lienthong",
    "/var/lib/lienthong",
    "/var/backups/lienthong",
    "/var/log/lienthong",
];
/// The units, as an operator names an instance of each.
const UNITS: [&str; 2] = [
    "lienthong-relay@node.service",
    "lienthong-gateway@gw.service",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Runs `cmd`; panics with its output unless it exits 0; returns its standard output.
fn check(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run it: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `program` can be started.
fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The `getent passwd` or `getent group` entry of `name`.
fn getent(db: &str, name: &str) -> Option<String> {
    let out = Command::new("getent").args([db, name]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The uid and gid of the service account.
fn account_ids() -> (u32, u32) {
    let id = |flag: &str| {
        check(Command::new("id").args([flag, ACCOUNT]), "id")
            .trim()
            .parse::<u32>()
            .unwrap()
    };
    (id("-u"), id("-g"))
}

/// dpkg's status of a package, e.g. "ii " (installed), "rc " (configuration files only);
/// empty when dpkg does not know it.
fn dpkg_status(package: &str) -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Abbrev}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Why the test cannot run here, if it cannot.
fn cannot_run() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not running as root (dpkg -i installs system-wide)".into());
    }
    for tool in [
        "dpkg-deb",
        "dpkg",
        "dpkg-query",
        "systemd-analyze",
        "setpriv",
        "useradd",
    ] {
        if !runs(tool) {
            return Some(format!("{tool} is not installed"));
        }
    }
    for exe in ["/usr/bin/lt-relay", "/usr/bin/lt-gateway"] {
        if Path::new(exe).exists() {
            return Some(format!(
                "{exe} exists: lienthong is installed on this machine, which the test leaves alone"
            ));
        }
    }
    for package in [RELAY, GATEWAY] {
        let status = dpkg_status(package);
        if status.len() >= 2 && !status[1..].starts_with('n') {
            return Some(format!("the package {package} is known to dpkg ({status})"));
        }
    }
    for name in [ACCOUNT, PLACEHOLDER] {
        if getent("passwd", name).is_some() || getent("group", name).is_some() {
            return Some(format!(
                "the account or group {name} exists: the test leaves it alone"
            ));
        }
    }
    FOLDERS
        .iter()
        .find(|d| Path::new(d).exists())
        .map(|d| format!("{d} exists: the test leaves it alone"))
}

/// Undoes the installation even when an assertion fails: purges the packages, then removes
/// the accounts and folders, which [`cannot_run`] found absent before the test.
struct Cleanup {
    placeholder: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", RELAY, GATEWAY])
            .output();
        let mut accounts = vec![ACCOUNT];
        if self.placeholder {
            accounts.push(PLACEHOLDER);
        }
        for name in accounts {
            if getent("passwd", name).is_some() {
                let _ = Command::new("userdel").arg(name).output();
            }
            if getent("group", name).is_some() {
                let _ = Command::new("groupdel").arg(name).output();
            }
        }
        for d in FOLDERS {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Asserts a path's owner, group and mode.
fn assert_owned(path: &str, uid: u32, gid: u32, mode: u32) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777),
        (uid, gid, mode),
        "{path}: (uid, gid, mode)"
    );
}

/// Every agency code an example names a certificate for (as tests/tests/assess.rs).
fn codes_in(text: &str) -> Vec<String> {
    text.split("/etc/lienthong/pki/")
        .skip(1)
        .filter_map(|rest| rest.split_once(".pem").map(|(c, _)| c.to_owned()))
        .filter(|c| c != "ca")
        .collect()
}

/// The example configurations of deploy/examples, by file name.
fn example_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("deploy/examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 5, "{names:?}");
    names
}

/// Checks a package's file list and control fields; returns its file list.
fn inspect(deb: &Path, package: &str, version: &str, arch: &str, files: &[String]) -> String {
    let list = check(Command::new("dpkg-deb").arg("-c").arg(deb), "dpkg-deb -c");
    for line in list.lines() {
        assert!(line.contains(" root/root "), "not owned by root: {line}");
    }
    for f in files {
        let line = list
            .lines()
            .find(|l| l.ends_with(&format!(" .{f}")))
            .unwrap_or_else(|| panic!("{package} lacks {f}:\n{list}"));
        let mode = if f.starts_with("/usr/bin/") {
            "-rwxr-xr-x"
        } else {
            "-rw-r--r--"
        };
        assert!(line.starts_with(mode), "{line}: expected {mode}");
    }
    let info = check(Command::new("dpkg-deb").arg("-I").arg(deb), "dpkg-deb -I");
    for field in [
        format!("Package: {package}"),
        format!("Version: {version}"),
        format!("Architecture: {arch}"),
    ] {
        assert!(info.contains(&field), "{package}: no {field:?}:\n{info}");
    }
    let depends = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .unwrap_or_else(|| panic!("{package}: no Depends:\n{info}"));
    assert!(depends.contains("libc6 (>= "), "{depends}");
    for script in ["postinst", "prerm", "postrm", "conffiles", "md5sums"] {
        assert!(info.contains(script), "{package}: no {script}:\n{info}");
    }
    let conffiles = check(
        Command::new("dpkg-deb").arg("-I").arg(deb).arg("conffiles"),
        "dpkg-deb -I conffiles",
    );
    let mut listed: Vec<&str> = conffiles.lines().collect();
    listed.sort_unstable();
    let mut expected: Vec<&str> = files
        .iter()
        .filter(|f| f.starts_with("/etc/"))
        .map(String::as_str)
        .collect();
    expected.sort_unstable();
    assert_eq!(listed, expected, "{package}: conffiles");
    eprintln!("{package}: Depends: {depends}");
    list
}

/// `systemd-analyze security --offline=true UNIT`: the exposure and its band.
fn exposure(unit: &str) -> (f64, String) {
    let out = check(
        Command::new("systemd-analyze").args(["security", "--offline=true", unit]),
        "systemd-analyze security",
    );
    for line in out.lines().filter(|l| l.starts_with('✗')) {
        eprintln!(
            "  {}",
            line.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level for"))
        .unwrap_or_else(|| panic!("no overall exposure level:\n{out}"));
    eprintln!("{}", line.trim());
    let rating = line.rsplit_once(": ").unwrap().1;
    let mut words = rating.split_whitespace();
    let score: f64 = words.next().unwrap().parse().unwrap();
    (score, words.next().unwrap_or_default().to_owned())
}

/// Runs a command as the service account (its own groups only), like the unit.
fn as_account(exe: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={ACCOUNT}"))
        .arg(format!("--regid={ACCOUNT}"))
        .args(["--init-groups", "--", exe]);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("LT_")) {
        cmd.env_remove(k);
    }
    cmd
}

/// `lt-relay assess --level 3` on an installed configuration, as the service account: it must
/// run (exit 0: every requirement met, 1: some not met) and print its requirements.
fn assess(config: &str) -> (i32, String) {
    let out = as_account("/usr/bin/lt-relay")
        .args(["assess", "--level", "3", "--config", config])
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        code == 0 || code == 1,
        "assess {config}: exit {code} (64: configuration error, 2: bad command line)\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(" requirements met: ")
            && text.lines().filter(|l| l.starts_with("MET ")).count() >= 10,
        "assess {config} printed no requirement list:\n{text}"
    );
    (code, text)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `exe serve --config CONFIG` as the service account, waits for a log line containing `until`,
/// stops it with SIGTERM (as systemd does) and checks that it stopped cleanly; returns its log.
fn serve_briefly(exe: &str, config: &str, env: &[(&str, String)], until: &str) -> String {
    let mut child = as_account(exe)
        .args(["serve", "--config", config])
        .env("LT_LOG", "info")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let started = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
                if line.contains(until) {
                    break true;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(_) => break false,
        }
    };
    if !started {
        let _ = child.kill();
        let status = child.wait();
        panic!("{exe} serve --config {config} did not start ({status:?}):\n{log}");
    }
    check(
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string()),
        "kill -TERM",
    );
    let status = wait_exit(&mut child, Duration::from_secs(30));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    reader.join().unwrap();
    log.extend(rx.try_iter().map(|l| l + "\n"));
    let status = status.unwrap_or_else(|| panic!("{exe} did not stop within 30 s:\n{log}"));
    assert!(status.success(), "{exe} serve: {status}\n{log}");
    assert!(log.contains("store flushed; stopped"), "{log}");
    log
}

#[test]
fn debian_packages_install_with_hardened_units_and_removal_keeps_the_store() {
    if let Some(why) = cannot_run() {
        assert!(!ci(), "CI=true, but the package test cannot run: {why}");
        eprintln!("package test skipped: {why}");
        return;
    }
    let t0 = Instant::now();
    let work = tempfile::tempdir().unwrap();

    // Build, from this run's binaries.
    let bin_dir = relay_exe().parent().unwrap().to_owned();
    assert!(
        gateway_exe().exists(),
        "{} not built",
        gateway_exe().display()
    );
    let out_dir = work.path().join("debs");
    let printed = check(
        Command::new("bash")
            .arg(repo().join("deploy/package-deb.sh"))
            .arg("--bin-dir")
            .arg(&bin_dir)
            .arg("--out")
            .arg(&out_dir),
        "deploy/package-deb.sh",
    );
    eprintln!("packages built in {:.1} s", t0.elapsed().as_secs_f64());
    let version = env!("CARGO_PKG_VERSION").replace('-', "~");
    let arch = check(
        Command::new("dpkg").arg("--print-architecture"),
        "dpkg --print-architecture",
    )
    .trim()
    .to_owned();
    let deb = |package: &str| out_dir.join(format!("{package}_{version}_{arch}.deb"));
    let debs = [deb(RELAY), deb(GATEWAY)];
    for d in &debs {
        assert!(
            printed.lines().any(|l| Path::new(l) == d.as_path()),
            "{} not among the packages the script printed:\n{printed}",
            d.display()
        );
    }

    // Contents.
    let examples = example_names();
    let mut relay_files: Vec<String> = [
        "/usr/bin/lt-relay",
        "/usr/lib/systemd/system/lienthong-relay@.service",
        "/usr/share/man/man1/lt-relay.1.gz",
        "/usr/share/doc/lienthong-relay/copyright",
    ]
    .map(String::from)
    .to_vec();
    relay_files.extend(
        examples
            .iter()
            .map(|n| format!("/etc/lienthong/examples/{n}")),
    );
    let gateway_files: Vec<String> = [
        "/usr/bin/lt-gateway",
        "/usr/lib/systemd/system/lienthong-gateway@.service",
        "/usr/share/man/man1/lt-gateway.1.gz",
        "/usr/share/doc/lienthong-gateway/copyright",
        "/etc/lienthong/examples/gateway.toml",
    ]
    .map(String::from)
    .to_vec();
    let relay_list = inspect(&debs[0], RELAY, &version, &arch, &relay_files);
    let gateway_list = inspect(&debs[1], GATEWAY, &version, &arch, &gateway_files);
    for (list, package) in [(&relay_list, RELAY), (&gateway_list, GATEWAY)] {
        for made_by_postinst in ["/var/lib/lienthong", "/etc/lienthong/pki"] {
            assert!(
                !list.contains(made_by_postinst),
                "{package} ships {made_by_postinst}: dpkg would remove it with the package"
            );
        }
    }

    // Install.
    let mut cleanup = Cleanup { placeholder: false };
    let t_install = Instant::now();
    check(
        Command::new("dpkg").arg("-i").args(&debs),
        "dpkg -i lienthong-relay lienthong-gateway",
    );
    eprintln!("installed in {:.1} s", t_install.elapsed().as_secs_f64());
    let passwd = getent("passwd", ACCOUNT).expect("no account lienthong after dpkg -i");
    eprintln!("account: {passwd}");
    let fields: Vec<&str> = passwd.split(':').collect();
    assert_eq!(fields[5], "/var/lib/lienthong", "{passwd}");
    assert!(
        fields[6].ends_with("nologin") || fields[6].ends_with("false"),
        "{passwd}"
    );
    let (uid, gid) = account_ids();
    assert!(uid > 0 && uid < 1000, "not a system account: {passwd}");
    assert_owned("/var/lib/lienthong", uid, gid, 0o750);
    assert_owned("/var/backups/lienthong", uid, gid, 0o750);
    assert_owned("/etc/lienthong/pki", 0, gid, 0o750);
    assert_owned("/etc/lienthong", 0, 0, 0o755);
    for (exe, name) in [
        ("/usr/bin/lt-relay", "lt-relay"),
        ("/usr/bin/lt-gateway", "lt-gateway"),
    ] {
        let v = check(Command::new(exe).arg("--version"), exe);
        assert_eq!(v.trim(), format!("{name} {}", env!("CARGO_PKG_VERSION")));
        assert!(check(Command::new(exe).arg("--help"), exe).contains("Usage:"));
        let man = check(
            Command::new("gzip")
                .arg("-dc")
                .arg(format!("/usr/share/man/man1/{name}.1.gz")),
            "gzip -dc",
        );
        let title = format!(".TH {} 1", name.to_uppercase());
        assert!(man.starts_with(&title), "{name}.1: {}", &man[..80]);
        assert!(man.contains(&format!(".SS \"{name} serve\"")), "{name}.1");
    }

    let gateway_example = std::fs::read_to_string("/etc/lienthong/examples/gateway.toml").unwrap();
    assert!(
        gateway_example.contains("lt-gateway serve --config /etc/lienthong/gw.toml")
            && !gateway_example.contains("lt-relay serve"),
        "gateway.toml:\n{gateway_example}"
    );

    // The units: verified, and rated in the "OK" band.
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(UNITS)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(
        verify.status.success() && !said.contains("lienthong"),
        "systemd-analyze verify {UNITS:?}: {}\n{said}",
        verify.status
    );
    eprintln!("systemd-analyze verify {UNITS:?}: passed");
    for unit in UNITS {
        let (score, band) = exposure(unit);
        assert!(
            score <= 4.9 && band == "OK",
            "{unit}: exposure {score} {band}, above the OK band (4.9)"
        );
    }

    // A development PKI, installed into /etc/lienthong/pki as an operator would (docs/gateway.md
    // 2.3): certificates root-owned and readable by the group, keys the account's, 0600.
    let ca = work.path().join("ca");
    let ca_str = ca.to_str().unwrap();
    check(
        Command::new("/usr/bin/lt-relay").args(["pki", "init", "--dir", ca_str]),
        "lt-relay pki init",
    );
    let installed: Vec<String> = relay_files
        .iter()
        .chain(&gateway_files)
        .filter(|f| f.starts_with("/etc/lienthong/examples/"))
        .cloned()
        .collect();
    let mut codes: Vec<String> = installed
        .iter()
        .flat_map(|f| codes_in(&std::fs::read_to_string(f).unwrap()))
        .collect();
    codes.sort();
    codes.dedup();
    let public = |files: Vec<PathBuf>| {
        check(
            Command::new("install")
                .args(["-o", "root", "-g", ACCOUNT, "-m", "0644"])
                .args(files)
                .arg("/etc/lienthong/pki/"),
            "install",
        )
    };
    public(vec![ca.join("ca.pem"), ca.join("ca.crl")]);
    for c in &codes {
        check(
            Command::new("/usr/bin/lt-relay").args([
                "pki",
                "issue",
                "--dir",
                ca_str,
                "--agency",
                c.as_str(),
            ]),
            "lt-relay pki issue",
        );
        public(vec![ca.join(format!("{c}.pem"))]);
        check(
            Command::new("install")
                .args(["-o", ACCOUNT, "-g", ACCOUNT, "-m", "0600"])
                .arg(ca.join(format!("{c}.key")))
                .arg("/etc/lienthong/pki/"),
            "install",
        );
    }

    // assess, on each installed example as installed.
    for config in &installed {
        let (code, text) = assess(config);
        if config.ends_with("/district.toml") {
            eprintln!("$ lt-relay assess --level 3 --config {config}   (exit {code})\n{text}");
        } else {
            eprintln!("{config}: exit {code}, {}", text.lines().last().unwrap());
        }
    }

    // Both programs start as the account on an installed example and stop on SIGTERM: the
    // relay on the district example as installed (its store in /var/lib/lienthong, a first
    // backup in /var/backups/lienthong); the gateway as a second node of the machine, in its
    // own data_dir below /var/lib/lienthong.
    let port = || format!("127.0.0.1:{}", free_port());
    let log = serve_briefly(
        "/usr/bin/lt-relay",
        "/etc/lienthong/examples/district.toml",
        &[("LT_LISTEN_GRPC", port()), ("LT_LISTEN_API", port())],
        "backup written",
    );
    assert!(log.contains("backup written"), "{log}");
    serve_briefly(
        "/usr/bin/lt-gateway",
        "/etc/lienthong/examples/gateway.toml",
        &[
            ("LT_LISTEN_API", port()),
            ("LT_NODE_DATA_DIR", "/var/lib/lienthong/gw".to_owned()),
        ],
        "node started",
    );
    let store = std::fs::metadata("/var/lib/lienthong/store").unwrap();
    assert_eq!(
        (store.uid(), store.gid()),
        (uid, gid),
        "/var/lib/lienthong/store"
    );
    let backup = std::fs::read_dir("/var/backups/lienthong")
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "ltbak"))
        .expect("no backup in /var/backups/lienthong");
    assert_eq!(std::fs::metadata(&backup).unwrap().uid(), uid);
    let marker = Path::new("/var/lib/lienthong/kept-by-removal");
    std::fs::write(marker, "written by tests/tests/package.rs\n").unwrap();

    // Removal keeps the store, the backups, the keys, the configurations and the account.
    check(Command::new("dpkg").args(["-r", RELAY, GATEWAY]), "dpkg -r");
    for gone in [
        "/usr/bin/lt-relay",
        "/usr/bin/lt-gateway",
        "/usr/lib/systemd/system/lienthong-relay@.service",
        "/usr/lib/systemd/system/lienthong-gateway@.service",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} left by dpkg -r");
    }
    let kept = |paths: &[&Path]| {
        for p in paths {
            assert!(p.exists(), "{} removed", p.display());
        }
    };
    let store_and_keys = [
        marker,
        Path::new("/var/lib/lienthong/store"),
        Path::new("/var/lib/lienthong/gw/store"),
        backup.as_path(),
        Path::new("/etc/lienthong/pki/ca.pem"),
        Path::new("/etc/lienthong/pki/000.00.31.H53.key"),
    ];
    kept(&store_and_keys);
    kept(&[Path::new("/etc/lienthong/examples/district.toml")]);
    assert!(
        getent("passwd", ACCOUNT).is_some(),
        "dpkg -r removed the account"
    );
    assert!(
        dpkg_status(RELAY).starts_with("rc"),
        "{}",
        dpkg_status(RELAY)
    );
    eprintln!("dpkg -r: programs and units gone; store, backups, keys and account kept");

    // Purge: the account and the example configurations go; the store, backups and keys stay.
    check(
        Command::new("dpkg").args(["--purge", RELAY, GATEWAY]),
        "dpkg --purge",
    );
    assert!(
        getent("passwd", ACCOUNT).is_none(),
        "purge kept the account"
    );
    assert!(getent("group", ACCOUNT).is_none(), "purge kept the group");
    assert!(!Path::new("/etc/lienthong/examples").exists());
    kept(&store_and_keys);
    eprintln!("dpkg --purge: account gone; store, backups and keys kept");

    // Reinstall after another account took the old uid: the new account gets another uid, and
    // the store, backups and keys of the old one.
    let old_uid = uid.to_string();
    if getent("passwd", &old_uid).is_none() {
        check(
            Command::new("useradd").args([
                "--system",
                "--uid",
                old_uid.as_str(),
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                PLACEHOLDER,
            ]),
            "useradd (placeholder)",
        );
        cleanup.placeholder = true;
    }
    check(
        Command::new("dpkg").arg("-i").args(&debs),
        "dpkg -i (again)",
    );
    let (new_uid, new_gid) = account_ids();
    assert_ne!(new_uid, uid);
    for p in [
        "/var/lib/lienthong",
        "/var/lib/lienthong/store",
        "/var/lib/lienthong/gw/store",
        backup.to_str().unwrap(),
        "/etc/lienthong/pki/000.00.31.H53.key",
    ] {
        let m = std::fs::metadata(p).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (new_uid, new_gid),
            "{p} after reinstall"
        );
    }
    assert_eq!(
        std::fs::metadata("/etc/lienthong/pki").unwrap().gid(),
        new_gid
    );
    // The new account reads the kept store (assess verifies its audit log) and keys.
    let (_, text) = assess("/etc/lienthong/examples/district.toml");
    assert!(text.contains("chain intact"), "{text}");
    eprintln!("reinstall: uid {uid} -> {new_uid}; the store, backups and keys followed");

    drop(cleanup);
    for d in FOLDERS {
        assert!(!Path::new(d).exists(), "{d} left after the test");
    }
    eprintln!("package test: {:.1} s", t0.elapsed().as_secs_f64());
}
