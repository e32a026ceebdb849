//! SIGHUP (what `systemctl reload` sends) with the real binaries: the node reads its
//! configuration again and puts in force the new `[log] level` and `[limits]` and reads its CRL
//! files at once, without dropping its links; a configuration that no longer loads changes
//! nothing and the node runs on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::time::Duration;

use lienthong_harness::{sample_envelope, send_signal, Network, NodeSpec};
use support::{code, link_up, relay_exe, revoke, wait_for};

const ROOT: &str = "000.00.00.G22";
const PROVINCE: &str = "000.00.00.H53";

fn sessions(net: &Network, at: &str, peer: &str) -> String {
    let metrics = net.client(&code(at)).unwrap().get_text("/metrics").unwrap();
    metrics
        .lines()
        .find(|l| l.starts_with("lienthong_link_sessions_total{") && l.contains(peer))
        .unwrap_or_else(|| panic!("no session count for {peer}: {metrics}"))
        .to_owned()
}

fn log_of(net: &Network, agency: &str) -> String {
    std::fs::read_to_string(&net.nodes[&code(agency)].log).unwrap()
}

fn hup(net: &Network, agency: &str) {
    send_signal(
        i32::try_from(net.pid(&code(agency)).unwrap()).unwrap(),
        libc::SIGHUP,
    );
}

fn append(net: &Network, agency: &str, text: &str) {
    std::fs::OpenOptions::new()
        .append(true)
        .open(&net.nodes[&code(agency)].config)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// The status of `n` quick GETs of the province's inbox route.
fn statuses(net: &Network, n: usize) -> Vec<u16> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!(
        "http://{}/v1/inbox?agency={PROVINCE}&bodies=false",
        net.nodes[&code(PROVINCE)].api
    );
    (0..n)
        .map(|_| agent.get(&url).call().unwrap().status().as_u16())
        .collect()
}

#[test]
fn sighup_puts_log_level_limits_and_crls_in_force_without_dropping_links() {
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        NodeSpec::new(ROOT, "Văn phòng Chính phủ", None).unwrap(),
        NodeSpec::new(PROVINCE, "UBND tỉnh Tây Ninh", Some(ROOT)).unwrap(),
    ];
    // No LT_LOG: the configuration's [log] level decides.
    let mut net = Network::create(dir.path(), &relay_exe(), &specs)
        .unwrap()
        .with_env("LT_LOG", "");
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();
    let before = sessions(&net, ROOT, PROVINCE);
    assert!(statuses(&net, 10).iter().all(|s| *s == 200), "no limit yet");
    assert!(!log_of(&net, PROVINCE).contains(" DEBUG "));

    // New log level and limits, then SIGHUP.
    append(
        &net,
        PROVINCE,
        "\n[log]\nlevel = \"info,lienthong_relay=debug\"\n\n[limits]\napi_requests_per_minute = 3\n",
    );
    hup(&net, PROVINCE);
    wait_for(Duration::from_secs(30), "the province's reload", || {
        log_of(&net, PROVINCE)
            .contains("configuration reloaded")
            .then_some(())
    });
    let log = log_of(&net, PROVINCE);
    let line = log
        .lines()
        .find(|l| l.contains("configuration reloaded"))
        .unwrap();
    assert!(line.contains("limits_changed=true"), "{line}");
    assert!(line.contains("lienthong_relay=debug"), "{line}");
    // A document sent now is logged at debug level as it leaves (one request of the three).
    net.client(&code(PROVINCE))
        .unwrap()
        .submit(sample_envelope(
            &code(PROVINCE),
            &[&code(ROOT)],
            "7",
            "Sau khi nạp lại cấu hình",
        ))
        .unwrap();
    wait_for(
        Duration::from_secs(30),
        "debug lines after the reload",
        || {
            log_of(&net, PROVINCE)
                .lines()
                .any(|l| l.contains(" DEBUG ") && l.contains("forwarded"))
                .then_some(())
        },
    );
    let got = statuses(&net, 10);
    assert!(got.contains(&429), "the new limit is in force: {got:?}");
    assert_eq!(got.iter().filter(|s| **s == 200).count(), 2, "{got:?}");
    // The link was not dropped: still up, no new session.
    assert!(link_up(&net, ROOT, PROVINCE));
    assert_eq!(sessions(&net, ROOT, PROVINCE), before);

    // A configuration that no longer loads: refused, the node runs on with what it had.
    append(&net, PROVINCE, "\n[limits]\napi_requests_per_minute = 1\n");
    hup(&net, PROVINCE);
    wait_for(Duration::from_secs(30), "the refused reload", || {
        log_of(&net, PROVINCE)
            .contains("reload refused: the configuration does not load")
            .then_some(())
    });
    // (The province's API is past its new limit: its process and link are checked instead.)
    let pid = net.pid(&code(PROVINCE)).unwrap();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the province stopped"
    );
    assert!(link_up(&net, ROOT, PROVINCE));
    assert_eq!(sessions(&net, ROOT, PROVINCE), before);

    // A new CRL revoking the province, and SIGHUP to the root: the root reads the CRL file at
    // once and closes the revoked child's link.
    revoke(&net, PROVINCE);
    hup(&net, ROOT);
    wait_for(
        Duration::from_secs(30),
        "the root's CRL read on reload",
        || {
            log_of(&net, ROOT)
                .lines()
                .find(|l| l.contains("CRL files read again on reload"))
                .map(str::to_owned)
        },
    );
    let root_log = log_of(&net, ROOT);
    let read = root_log
        .lines()
        .filter(|l| l.contains("CRL files read again on reload"))
        .collect::<Vec<_>>();
    // The periodic check may have seen the new file first; then the reload found it unchanged.
    assert!(
        read.iter()
            .any(|l| l.contains("replaced (1 revoked)") || l.contains("unchanged")),
        "{read:?}"
    );
    assert!(
        root_log.contains("new CRL in force"),
        "the new CRL is in force: {root_log}"
    );
    wait_for(Duration::from_secs(30), "the revoked link down", || {
        (!link_up(&net, ROOT, PROVINCE)).then_some(())
    });
}
