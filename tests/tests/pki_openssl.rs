//! The real PKI's shape, with the real binaries and certificates made by the `openssl` command
//! line (not the project's own code): a root CA, an intermediate CA under it, and RSA-2048
//! relay certificates issued by the intermediate that name their agency in the subject's UID
//! (`[tls] agency_in = "subject:UID"`). The nodes trust the bundle (root and intermediate) and
//! hold one CRL per CA in one file. Documents and receipts cross the chain; then a relay is
//! revoked at the intermediate, and the intermediate at the root, each taking effect without
//! a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use lienthong_harness::{sample_envelope, Network, NodeSpec};
use support::{code, link_up, openssl, relay_exe, security_events, wait_for, wait_in_inbox};

const ROOT: &str = "000.00.00.G22";
const TAY_NINH: &str = "000.00.00.H53";
const QUANG_NGAI: &str = "000.00.00.H49";

/// A CA kept by `openssl ca` (its database, for revocations and CRLs) in `dir/<name>`.
fn ca_config(dir: &Path, name: &str) -> PathBuf {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("index.txt"), "").unwrap();
    std::fs::write(home.join("crlnumber"), "01\n").unwrap();
    let cnf = home.join("ca.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[ca]\ndefault_ca = this\n[this]\ndir = {d}\ndatabase = $dir/index.txt\ncrlnumber = $dir/crlnumber\n\
             certificate = {d}/../{name}.pem\nprivate_key = {d}/../{name}.key\ndefault_md = sha256\n\
             default_crl_days = 7\nnew_certs_dir = $dir\npolicy = any\n[any]\ncommonName = supplied\n",
            d = home.display()
        ),
    )
    .unwrap();
    cnf
}

/// Issues `name.pem` / `name.key` (RSA-2048) signed by the CA `issuer`, with `ext` lines.
fn issue(dir: &Path, name: &str, subject: &str, issuer: &str, ext: &str) {
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subject,
        ],
    );
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
            &format!("{issuer}.pem"),
            "-CAkey",
            &format!("{issuer}.key"),
            "-CAcreateserial",
            "-days",
            "60",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// Writes both CAs' current CRLs, PEM, into the one file the nodes read.
fn publish_crls(dir: &Path, root_cnf: &Path, int_cnf: &Path, target: &Path, extra: &[&str]) {
    for (cnf, out) in [(root_cnf, "root.crl"), (int_cnf, "intermediate.crl")] {
        let mut args = vec![
            "ca",
            "-config",
            cnf.to_str().unwrap(),
            "-gencrl",
            "-out",
            out,
        ];
        args.extend_from_slice(extra);
        openssl(dir, &args);
    }
    let mut both = std::fs::read(dir.join("root.crl")).unwrap();
    both.extend(std::fs::read(dir.join("intermediate.crl")).unwrap());
    // Written beside and renamed, as a CA's publishing job would.
    let tmp = target.with_extension("new");
    std::fs::write(&tmp, both).unwrap();
    std::fs::rename(&tmp, target).unwrap();
}

fn closed_for(net: &Network, at: &str, peer: &str) -> Option<serde_json::Value> {
    security_events(net, at)
        .into_iter()
        .find(|e| e["class"] == "bad_certificate" && e["agency"] == peer)
}

/// The openssl CA folder, its two CA configurations, and the CRL file the nodes read.
struct OpensslPki {
    ca: PathBuf,
    root_cnf: PathBuf,
    int_cnf: PathBuf,
    crl_file: PathBuf,
}

impl OpensslPki {
    /// Publishes both CAs' CRLs (with `extra` options for `openssl ca -gencrl`).
    fn publish(&self, extra: &[&str]) {
        publish_crls(
            &self.ca,
            &self.root_cnf,
            &self.int_cnf,
            &self.crl_file,
            extra,
        );
    }
}

/// A network of `specs` in `dir` whose certificates all come from an openssl-made root and
/// intermediate CA (RSA-2048, agency in the subject's UID), with `extra_tls` added to each
/// node's `[tls]`.
fn openssl_network(dir: &Path, specs: &[NodeSpec], extra_tls: &str) -> (Network, OpensslPki) {
    let net = Network::create(dir, &relay_exe(), specs).unwrap();

    // The PKI, by openssl alone.
    let ca = dir.join("openssl-pki");
    std::fs::create_dir_all(&ca).unwrap();
    openssl(
        &ca,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-days",
            "3650",
            "-subj",
            "/C=VN/O=Test Government CA/CN=Test Root CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    issue(
        &ca,
        "intermediate",
        "/C=VN/O=Test Government CA/CN=Test Issuing CA for Agencies",
        "root",
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    );
    let pki = net.pki_dir();
    for (agency, name) in [
        (ROOT, "VPCP"),
        (TAY_NINH, "Tay Ninh"),
        (QUANG_NGAI, "Quang Ngai"),
    ] {
        issue(
            &ca,
            agency,
            &format!("/C=VN/O=UBND {name}/UID=MNS:{agency}/CN={name}"),
            "intermediate",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n\
             authorityKeyIdentifier=keyid\n",
        );
        std::fs::copy(
            ca.join(format!("{agency}.key")),
            pki.join(format!("{agency}.key")),
        )
        .unwrap();
        // Tây Ninh's file holds its chain; the others only their own certificate, the bundle
        // supplying the intermediate.
        let mut pem = std::fs::read(ca.join(format!("{agency}.pem"))).unwrap();
        if agency == TAY_NINH {
            pem.extend(std::fs::read(ca.join("intermediate.pem")).unwrap());
        }
        std::fs::write(pki.join(format!("{agency}.pem")), pem).unwrap();
    }
    let mut bundle = std::fs::read(ca.join("root.pem")).unwrap();
    bundle.extend(std::fs::read(ca.join("intermediate.pem")).unwrap());
    std::fs::write(pki.join("ca.pem"), bundle).unwrap();
    let root_cnf = ca_config(&ca, "root");
    let int_cnf = ca_config(&ca, "intermediate");
    let crl_file = pki.join("ca.crl");
    let pki = OpensslPki {
        ca,
        root_cnf,
        int_cnf,
        crl_file,
    };
    pki.publish(&[]);
    for n in net.nodes.values() {
        let text = std::fs::read_to_string(&n.config).unwrap();
        std::fs::write(
            &n.config,
            text.replacen(
                "[tls]\n",
                &format!("[tls]\nagency_in = \"subject:UID\"\n{extra_tls}"),
                1,
            ),
        )
        .unwrap();
    }

    (net, pki)
}

#[test]
fn a_three_level_rsa_pki_made_by_openssl_carries_documents_and_revokes_at_each_level() {
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        NodeSpec::new(ROOT, "Van phong Chinh phu", None).unwrap(),
        NodeSpec::new(TAY_NINH, "UBND tinh Tay Ninh", Some(ROOT)).unwrap(),
        NodeSpec::new(QUANG_NGAI, "UBND tinh Quang Ngai", Some(ROOT)).unwrap(),
    ];
    let (mut net, pki) = openssl_network(dir.path(), &specs, "");
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();

    // A document and its receipts across the chain: signed and checked with RSA keys whose
    // certificates chain through the intermediate to the root.
    let sender = net.client(&code(TAY_NINH)).unwrap();
    let (id, _) = sender
        .submit(sample_envelope(
            &code(TAY_NINH),
            &[&code(QUANG_NGAI)],
            "31",
            "Cong van",
        ))
        .unwrap();
    let qn = net.client(&code(QUANG_NGAI)).unwrap();
    wait_in_inbox(
        &qn,
        &code(QUANG_NGAI),
        std::slice::from_ref(&id),
        60,
        "the document at Quang Ngai",
    );
    wait_for(
        Duration::from_secs(60),
        "status 01 back at Tay Ninh",
        || {
            let t = sender.track(&id).ok()?;
            t.recipients
                .iter()
                .any(|r| r.recipient == QUANG_NGAI && r.history.iter().any(|(c, _)| *c == 1))
                .then_some(())
        },
    );

    // Revoked at the intermediate: Quảng Ngãi's link ends; Tây Ninh's stays.
    openssl(
        &pki.ca,
        &[
            "ca",
            "-config",
            pki.int_cnf.to_str().unwrap(),
            "-revoke",
            &format!("{QUANG_NGAI}.pem"),
            "-crl_reason",
            "keyCompromise",
        ],
    );
    pki.publish(&[]);
    let event = wait_for(
        Duration::from_secs(60),
        "the root closing Quang Ngai's link",
        || closed_for(&net, ROOT, QUANG_NGAI),
    );
    assert!(
        event["reason"].as_str().unwrap().contains("revoked"),
        "{event}"
    );
    wait_for(Duration::from_secs(30), "Quang Ngai's link down", || {
        (!link_up(&net, ROOT, QUANG_NGAI)).then_some(())
    });
    assert!(link_up(&net, ROOT, TAY_NINH));
    assert!(closed_for(&net, ROOT, TAY_NINH).is_none());

    // The intermediate revoked at the root: every certificate under it fails.
    openssl(
        &pki.ca,
        &[
            "ca",
            "-config",
            pki.root_cnf.to_str().unwrap(),
            "-revoke",
            "intermediate.pem",
            "-crl_reason",
            "cACompromise",
        ],
    );
    pki.publish(&[]);
    // Both ends' certificates come from the intermediate: whichever puts the CRL in force
    // first closes the link (the root as parent, Tây Ninh as child).
    let event = wait_for(
        Duration::from_secs(60),
        "the link between the root and Tay Ninh closed",
        || closed_for(&net, ROOT, TAY_NINH).or_else(|| closed_for(&net, TAY_NINH, ROOT)),
    );
    assert!(
        event["reason"].as_str().unwrap().contains("revoked"),
        "{event}"
    );
    wait_for(Duration::from_secs(30), "Tay Ninh's link down", || {
        (!link_up(&net, ROOT, TAY_NINH)).then_some(())
    });
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        !link_up(&net, ROOT, TAY_NINH),
        "no new link under a revoked CA"
    );
}

#[test]
fn a_crl_past_its_next_update_closes_the_door_where_configured_and_a_fresh_one_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        NodeSpec::new(ROOT, "Van phong Chinh phu", None).unwrap(),
        NodeSpec::new(TAY_NINH, "UBND tinh Tay Ninh", Some(ROOT)).unwrap(),
    ];
    let (mut net, pki) = openssl_network(dir.path(), &specs, "");
    // Only the root closes the door; Tây Ninh keeps using its CRLs however old (the default
    // below level 3).
    let root_config = net.nodes[&code(ROOT)].config.clone();
    let text = std::fs::read_to_string(&root_config).unwrap();
    std::fs::write(
        &root_config,
        text.replacen(
            "[tls]\n",
            "[tls]\ncrl_fail_closed = true\ncrl_grace_hours = 0\n",
            1,
        ),
    )
    .unwrap();
    // CRLs that were due for renewal in January.
    pki.publish(&[
        "-crl_lastupdate",
        "20260101000000Z",
        "-crl_nextupdate",
        "20260102000000Z",
    ]);
    net.start_all().unwrap();
    // The root refuses Tây Ninh's link in the TLS handshake: its chain runs through CAs whose
    // CRLs are stale (a tls_handshake event naming the cause).
    let root = net.client(&code(ROOT)).unwrap();
    wait_for(Duration::from_secs(60), "the root's API", || {
        root.health().ok()
    });
    let event = wait_for(
        Duration::from_secs(60),
        "the root refusing Tay Ninh",
        || {
            security_events(&net, ROOT).into_iter().find(|e| {
                e["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("past its next update"))
            })
        },
    );
    assert_eq!(event["class"], "tls_handshake", "{event}");
    let stale = security_events(&net, ROOT)
        .into_iter()
        .find(|e| e["class"] == "crl_stale")
        .expect("a crl_stale event");
    assert!(
        stale["reason"].as_str().unwrap().contains("refused"),
        "{stale}"
    );
    assert!(!link_up(&net, ROOT, TAY_NINH));
    // `assess` sees both stale CRLs of the one file.
    let out = std::process::Command::new(relay_exe())
        .args(["assess", "--level", "2", "--json", "--config"])
        .arg(&root_config)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let crl = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "crl")
        .cloned()
        .unwrap();
    assert_eq!(crl["met"], false, "{crl:#}");
    assert_eq!(
        crl["evidence"]
            .as_str()
            .unwrap()
            .matches("stale since")
            .count(),
        2,
        "{crl:#}"
    );
    // Fresh CRLs: the next attempt links, with nothing restarted.
    pki.publish(&[]);
    net.wait_linked(Duration::from_secs(60)).unwrap();
}
