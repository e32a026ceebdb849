//! From nothing to a linked node with the real binaries: `lt-relay init` writes a root's and a
//! province's configuration, key and certificate request, `lt-gateway init` an office's; the
//! development CA signs the requests (`lt-relay pki sign-csr`); `lt-relay doctor` first says
//! what is missing and how to fix it, then passes; the nodes start and link. `doctor` also
//! catches a parent whose clock is off, a parent that is not running, and an unsafe key mode.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use lienthong_common::config::NodeConfig;
use lienthong_harness::free_addr;
use support::{gateway_exe, relay_exe, wait_for, Procs};

const ROOT: &str = "000.00.00.G22";
const PROVINCE: &str = "000.00.00.H53";
const OFFICE: &str = "000.00.31.H53";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(exe: &Path, args: &[&str]) -> Output {
    Command::new(exe).args(args).output().unwrap()
}

fn ok(exe: &Path, args: &[&str]) -> String {
    let out = run(exe, args);
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        exe.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `doctor --json`: the exit code and the checks by name.
fn doctor(config: &Path, env: &[(&str, &str)]) -> (i32, serde_json::Value) {
    let out = Command::new(relay_exe())
        .args(["doctor", "--json", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", text(&out.stdout)));
    (out.status.code().unwrap_or(-1), v)
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

fn serve(exe: &Path, config: &Path, log: PathBuf, env: &[(&str, &str)]) -> Child {
    Command::new(exe)
        .args(["serve", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// `init` arguments shared by every node of the test.
fn init_args<'a>(dir: &'a str, ca: &'a str, crl: &'a str, api: &'a str) -> Vec<&'a str> {
    vec![
        "init",
        "--dir",
        dir,
        "--data-dir",
        "",
        "--backup-dir",
        "",
        "--ca",
        ca,
        "--crl",
        crl,
        "--api",
        api,
    ]
}

/// Fills the data and backup folders (`""` placeholders) of `init_args`.
fn with_folders<'a>(mut args: Vec<&'a str>, data: &'a str, backup: &'a str) -> Vec<&'a str> {
    args[4] = data;
    args[6] = backup;
    args
}

fn parent_up(config: &Path) -> bool {
    let cfg = NodeConfig::load(config).unwrap();
    let Ok(Some(client)) = lienthong_client::ApiClient::for_node(&cfg) else {
        return false;
    };
    client
        .health()
        .is_ok_and(|h| h["parent"]["up"].as_bool() == Some(true))
}

#[test]
fn init_then_a_signed_request_then_doctor_then_the_node_links() {
    let work = tempfile::tempdir().unwrap();
    let w = |p: &str| work.path().join(p).to_str().unwrap().to_owned();
    let relay = relay_exe();
    ok(&relay, &["pki", "init", "--dir", &w("ca")]);
    let (ca, crl) = (w("ca/ca.pem"), w("ca/ca.crl"));

    // The root.
    let root_link = free_addr().unwrap().to_string();
    let root_api = free_addr().unwrap().to_string();
    let (root_dir, root_data, root_backup) = (w("root"), w("root/data"), w("root/backup"));
    let mut args = with_folders(
        init_args(&root_dir, &ca, &crl, &root_api),
        &root_data,
        &root_backup,
    );
    args.extend([
        "--tier",
        "root",
        "--agency",
        ROOT,
        "--name",
        "Văn phòng Chính phủ",
        "--listen",
        &root_link,
    ]);
    let said = ok(&relay, &args);
    assert!(
        said.contains("pki sign-csr"),
        "init names the next step: {said}"
    );
    let root_config = work.path().join("root/node.toml");
    let written = std::fs::read_to_string(&root_config).unwrap();
    assert!(
        written.contains("# lienthong node: the ROOT relay"),
        "{written}"
    );
    assert!(!written.contains("[parent]"), "{written}");

    // Before the CA has signed: doctor names the missing certificate, exit 64.
    let (code, report) = doctor(&root_config, &[]);
    assert_eq!(code, 64, "{report:#}");
    let cfg_check = check(&report, "config");
    assert_eq!(cfg_check["outcome"], "fail");
    assert!(
        cfg_check["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("{ROOT}.pem")),
        "{cfg_check}"
    );

    sign(&relay, work.path(), "root", ROOT);
    let (code, report) = doctor(&root_config, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(check(&report, "chain")["outcome"], "ok");
    assert_eq!(check(&report, "parent")["outcome"], "skip");
    // What init wrote meets the level it configured.
    let assessed = ok(
        &relay,
        &[
            "assess",
            "--level",
            "3",
            "--config",
            root_config.to_str().unwrap(),
        ],
    );
    assert!(assessed.contains("requirements met: PASS"), "{assessed}");

    // The province, under the root.
    let province_api = free_addr().unwrap().to_string();
    let province_link = free_addr().unwrap().to_string();
    let (p_dir, p_data, p_backup) = (w("province"), w("province/data"), w("province/backup"));
    let endpoint = format!("https://{root_link}");
    let mut args = with_folders(
        init_args(&p_dir, &ca, &crl, &province_api),
        &p_data,
        &p_backup,
    );
    args.extend([
        "--tier",
        "province",
        "--agency",
        PROVINCE,
        "--name",
        "UBND tỉnh Tây Ninh",
        "--listen",
        &province_link,
        "--parent-endpoint",
        &endpoint,
        "--parent-agency",
        ROOT,
    ]);
    ok(&relay, &args);
    let province_config = work.path().join("province/node.toml");
    let key = work.path().join(format!("province/pki/{PROVINCE}.key"));
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&province_config), 0o640);
    // Nothing is overwritten: a second init stops at the existing configuration.
    let again = run(&relay, &args);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );
    sign(&relay, work.path(), "province", PROVINCE);

    // The root is not running yet: doctor says so, with what to check.
    let (code, report) = doctor(&province_config, &[]);
    assert_eq!(code, 1, "{report:#}");
    let parent = check(&report, "parent");
    assert_eq!(parent["outcome"], "fail", "{report:#}");
    assert!(
        parent["fix"].as_str().unwrap().contains("parent runs"),
        "{parent}"
    );
    assert_eq!(check(&report, "clock")["outcome"], "skip");

    // The root runs, with its business clock five minutes ahead: the clock check fails.
    let clock_file = work.path().join("root-clock");
    let ahead = lienthong_common::now_unix_ms() + 5 * 60 * 1000;
    std::fs::write(&clock_file, ahead.to_string()).unwrap();
    let clock_env = [("LT_CLOCK_FILE", clock_file.to_str().unwrap())];
    let mut nodes = Procs(vec![serve(
        &relay,
        &root_config,
        work.path().join("root.log"),
        &clock_env,
    )]);
    let report = wait_for(Duration::from_secs(30), "the root to answer probes", || {
        let (code, report) = doctor(&province_config, &[]);
        (check(&report, "parent")["outcome"] == "ok").then_some((code, report))
    });
    let (code, report) = report;
    assert_eq!(code, 1, "{report:#}");
    let clock = check(&report, "clock");
    assert_eq!(clock["outcome"], "fail", "{report:#}");
    assert!(
        clock["detail"].as_str().unwrap().contains("behind"),
        "{clock}"
    );
    assert!(
        check(&report, "parent")["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("takes this node as {PROVINCE}")),
        "{report:#}"
    );
    // The root's clock file removed: the root's clock is the system's, and doctor passes.
    std::fs::remove_file(&clock_file).unwrap();
    let (code, report) = doctor(&province_config, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(check(&report, "clock")["outcome"], "ok");

    // An unsafe key mode fails the files check, with the command that fixes it.
    set_mode(&key, 0o644);
    let (code, report) = doctor(&province_config, &[]);
    assert_eq!(code, 1);
    let files = check(&report, "files");
    assert_eq!(files["outcome"], "fail", "{report:#}");
    assert!(
        files["fix"].as_str().unwrap().contains("chmod 600"),
        "{files}"
    );
    set_mode(&key, 0o600);

    nodes.0.push(serve(
        &relay,
        &province_config,
        work.path().join("province.log"),
        &[],
    ));
    wait_for(
        Duration::from_secs(60),
        "the province linked to the root",
        || parent_up(&province_config).then_some(()),
    );
    // Running, the node's own ports are in use by itself: doctor still passes.
    let (code, report) = doctor(&province_config, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert!(
        check(&report, "ports")["detail"]
            .as_str()
            .unwrap()
            .contains("in use by this node"),
        "{report:#}"
    );

    // An office under the province, set up by lt-gateway init (its parent agency taken from
    // its code), linked.
    let gateway = gateway_exe();
    let office_api = free_addr().unwrap().to_string();
    let (o_dir, o_data, o_backup) = (w("office"), w("office/data"), w("office/backup"));
    let endpoint = format!("https://{province_link}");
    let mut args = with_folders(
        init_args(&o_dir, &ca, &crl, &office_api),
        &o_data,
        &o_backup,
    );
    args.extend([
        "--agency",
        OFFICE,
        "--name",
        "UBND huyện Bến Cầu",
        "--parent-endpoint",
        &endpoint,
    ]);
    ok(&gateway, &args);
    let office_config = work.path().join("office/gw.toml");
    let written = std::fs::read_to_string(&office_config).unwrap();
    assert!(
        written.contains(&format!("agency = \"{PROVINCE}\"")),
        "{written}"
    );
    assert!(
        !written.contains("\ngrpc = "),
        "a gateway has no listener: {written}"
    );
    sign(&relay, work.path(), "office", OFFICE);
    let (code, report) = doctor(&office_config, &[]);
    assert_eq!(code, 0, "{report:#}");
    nodes.0.push(serve(
        &gateway,
        &office_config,
        work.path().join("office.log"),
        &[],
    ));
    wait_for(
        Duration::from_secs(60),
        "the office linked to the province",
        || parent_up(&office_config).then_some(()),
    );
}

/// The development CA in `work/ca` signs the request `init` wrote in `work/folder/pki`, and the
/// certificate goes beside it.
fn sign(relay: &Path, work: &Path, folder: &str, agency: &str) {
    let pki = work.join(folder).join("pki");
    let csr = pki.join(format!("{agency}.csr"));
    let cert = pki.join(format!("{agency}.pem"));
    let ca = work.join("ca");
    ok(
        relay,
        &[
            "pki",
            "sign-csr",
            "--dir",
            ca.to_str().unwrap(),
            "--csr",
            csr.to_str().unwrap(),
            "--out",
            cert.to_str().unwrap(),
        ],
    );
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn set_mode(p: &Path, m: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}
