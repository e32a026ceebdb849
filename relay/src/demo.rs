//! `lt-relay demo`: a whole local network in one command.
//!
//! Creates a PKI and starts, as real processes on the embedded default, a root, a ministry and
//! two provinces each with a district and a commune; sends documents commune→commune across
//! provinces, ministry→all communes and commune→ministry; lets each recipient post statuses;
//! prints each document's track view and `delivered N/N, receipts M/M`; stops everything.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lienthong_common::agency::AgencyCode;

use lienthong_harness::{demo_topology, sample_envelope, Network};

/// Options of the demo.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Working directory (PKI, configs, stores, logs). Default: a new folder under the system
    /// temporary directory, removed at the end unless --keep.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the network running after the exchange, until Ctrl-C, to open the root's console
    /// (its address is printed), and keep the working directory (to read the node logs).
    #[arg(long)]
    pub keep: bool,
    /// Seconds to wait for deliveries and receipts before giving up.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

struct Sent {
    from: AgencyCode,
    to: Vec<AgencyCode>,
    envelope_id: String,
    document_id: String,
}

/// Runs the demo; Ok(true) when every document and receipt arrived.
pub fn run(args: DemoArgs) -> anyhow::Result<bool> {
    let (dir, temp) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("lienthong-demo-{}", std::process::id())),
            true,
        ),
    };
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!("{} is not empty; give an empty or new --dir", dir.display());
    }
    std::fs::create_dir_all(&dir)?;
    let exe = std::env::current_exe().context("locating the lt-relay binary")?;
    let result = (|| {
        let mut net = Network::create(&dir, &exe, &demo_topology()?)?;
        println!("starting {} nodes in {}", net.nodes.len(), dir.display());
        net.start_all()?;
        net.wait_linked(Duration::from_secs(args.timeout))?;
        println!("all links up");
        let outcome = exchange(&net, Duration::from_secs(args.timeout));
        let root = code("000.00.00.G22")?;
        let console = net
            .nodes
            .get(&root)
            .map(|n| format!("http://{}/console", n.api))
            .unwrap_or_default();
        if args.keep {
            println!("\nconsole of the root: {console}");
            println!("  (no log-in: the demo's APIs have no clients and listen on loopback only)");
            println!("the network runs until Ctrl-C");
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(tokio::signal::ctrl_c())?;
        } else {
            println!("\nrun with --keep to keep the network running and open the root's console");
        }
        net.stop_all();
        outcome
    })();
    if temp && !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("working directory kept: {}", dir.display());
    }
    result
}

fn code(s: &str) -> anyhow::Result<AgencyCode> {
    Ok(AgencyCode::parse(s)?)
}

fn exchange(net: &Network, timeout: Duration) -> anyhow::Result<bool> {
    let ministry = code("000.00.00.G14")?;
    let commune_a = code("000.21.31.H53")?;
    let commune_b = code("000.07.05.H49")?;
    let plan: Vec<(AgencyCode, Vec<AgencyCode>, &str)> = vec![
        (
            commune_a.clone(),
            vec![commune_b.clone()],
            "Đề nghị phối hợp giải quyết hồ sơ liên tỉnh",
        ),
        (
            ministry.clone(),
            vec![commune_a.clone(), commune_b.clone()],
            "Hướng dẫn triển khai công tác văn thư năm 2027",
        ),
        (
            commune_b.clone(),
            vec![ministry.clone()],
            "Báo cáo kết quả thực hiện cải cách hành chính",
        ),
    ];
    let mut sent = Vec::new();
    for (i, (from, to, subject)) in plan.iter().enumerate() {
        let refs: Vec<&AgencyCode> = to.iter().collect();
        let env = sample_envelope(from, &refs, &format!("{}", 100 + i), subject);
        let (envelope_id, document_id) = net.client(from)?.submit(env)?;
        println!(
            "sent {document_id} from {from} to {}",
            to.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
        );
        sent.push(Sent {
            from: from.clone(),
            to: to.clone(),
            envelope_id,
            document_id,
        });
    }

    let deliveries: usize = sent.iter().map(|s| s.to.len()).sum();
    let deadline = Instant::now() + timeout;
    let mut delivered = 0;
    let mut pending: Vec<(AgencyCode, String)> = sent
        .iter()
        .flat_map(|s| s.to.iter().map(|t| (t.clone(), s.envelope_id.clone())))
        .collect();
    while !pending.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for (to, id) in pending {
            let inbox = net.client(&to)?.inbox(&to)?;
            if inbox.iter().any(|e| e.envelope.id == id) {
                delivered += 1;
                let c = net.client(&to)?;
                c.post_status(&id, &to, 3, "")?;
                c.post_status(&id, &to, 6, "")?;
                c.ack(&id, &to)?;
            } else {
                still.push((to, id));
            }
        }
        pending = still;
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // Every delivery yields 01 (automatic), 03 and 06 back at the sender.
    let expected_receipts = deliveries * 3;
    let mut receipts;
    loop {
        receipts = 0;
        for s in &sent {
            let view = net.client(&s.from)?.track(&s.envelope_id)?;
            for r in &view.recipients {
                receipts += [1, 3, 6]
                    .iter()
                    .filter(|c| r.history.iter().any(|(h, _)| h == *c))
                    .count();
            }
        }
        if receipts >= expected_receipts || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    for s in &sent {
        let view = net.client(&s.from)?.track(&s.envelope_id)?;
        println!("\n{}  \"{}\"", view.document_id, view.subject);
        for r in &view.recipients {
            let history: Vec<String> = r.history.iter().map(|(c, _)| format!("{c:02}")).collect();
            println!(
                "  → {}  latest {:02}  statuses [{}]",
                r.recipient,
                r.status,
                history.join(" ")
            );
            let hops: Vec<String> = r
                .trace
                .iter()
                .map(|t| {
                    let wait = if t.forwarded_unix_ms > 0 {
                        t.forwarded_unix_ms - t.received_unix_ms
                    } else {
                        0
                    };
                    format!("{} (+{wait} ms)", t.agency)
                })
                .collect();
            println!("    hops: {}", hops.join(" → "));
        }
        let _ = &s.document_id;
    }
    println!("\ndelivered {delivered}/{deliveries}, receipts {receipts}/{expected_receipts}");
    Ok(delivered == deliveries && receipts == expected_receipts)
}
