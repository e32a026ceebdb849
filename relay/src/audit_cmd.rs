//! `lt-relay audit` and `lt-relay security`: read a node's audit log, through its local API when
//! the node runs (its store is locked then), directly from its store when it does not.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Subcommand;
use lienthong_common::audit::{self, AuditRecord};
use lienthong_common::clock::Clock;

use crate::node_source::{source, stored_view, Source};

/// Audit log commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; names the first edited, deleted or moved record. Exits non-zero
    /// when the chain is broken.
    Verify {
        /// The node's configuration.
        #[arg(long, env = "LT_CONFIG")]
        config: PathBuf,
    },
    /// Write the records as JSON lines.
    Export {
        /// The node's configuration.
        #[arg(long, env = "LT_CONFIG")]
        config: PathBuf,
        /// From this date (YYYY-MM-DD, Vietnam time), inclusive.
        #[arg(long)]
        from: Option<String>,
        /// Up to this date (YYYY-MM-DD), exclusive.
        #[arg(long)]
        to: Option<String>,
    },
}

/// Security monitoring commands.
#[derive(Debug, Subcommand)]
pub enum SecurityCommand {
    /// List the security events this node recorded (refused handshakes, links, envelopes...).
    Events {
        /// The node's configuration.
        #[arg(long, env = "LT_CONFIG")]
        config: PathBuf,
        /// Only events on or after this date (YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        /// Also the events reported by the nodes within this agency's subtree (this node's own
        /// code: everything below it), with the node that recorded each.
        #[arg(long)]
        subtree: Option<String>,
    },
    /// Per node (this one and every node reporting to it, directly or through others): last
    /// seen, version, certificate/CA/CRL margins, queue depths, parent link, assessment
    /// result, security events by class.
    Report {
        /// The node's configuration.
        #[arg(long, env = "LT_CONFIG")]
        config: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn date_ms(s: &str) -> anyhow::Result<i64> {
    let d = lienthong_common::envelope::parse_date("date", s).map_err(|e| anyhow!("{e}"))?;
    let t = d.midnight().assume_offset(time::macros::offset!(+7));
    Ok(t.unix_timestamp().saturating_mul(1000))
}

fn fetch(
    src: &Source,
    from: Option<i64>,
    to: Option<i64>,
    kind: Option<&str>,
) -> anyhow::Result<Vec<AuditRecord>> {
    match src {
        Source::Api(c) => {
            let mut q = Vec::new();
            if let Some(f) = from {
                q.push(format!("from={f}"));
            }
            if let Some(t) = to {
                q.push(format!("to={t}"));
            }
            if let Some(k) = kind {
                q.push(format!("kind={k}"));
            }
            let v = c.get_json(&format!("/v1/audit/records?{}", q.join("&")))?;
            Ok(serde_json::from_value(v)?)
        }
        Source::Store(_, s) => Ok(audit::records(s)?
            .into_iter()
            .filter_map(Result::ok)
            .filter(|r| from.is_none_or(|f| r.at_unix_ms >= f))
            .filter(|r| to.is_none_or(|t| r.at_unix_ms < t))
            .filter(|r| kind.is_none_or(|k| r.kind == k))
            .collect()),
    }
}

/// Runs an audit command; Ok(false) when the chain is broken.
pub fn run_audit(cmd: AuditCommand) -> anyhow::Result<bool> {
    match cmd {
        AuditCommand::Verify { config } => {
            let (ok, text) = match source(&config)? {
                Source::Api(c) => {
                    let v = c.get_json("/v1/audit/verify")?;
                    if v["ok"].as_bool() == Some(true) {
                        (true, format!("audit log intact: {} records", v["records"]))
                    } else {
                        (
                            false,
                            format!(
                                "audit log BROKEN: {}",
                                v["error"].as_str().unwrap_or_default()
                            ),
                        )
                    }
                }
                Source::Store(_, s) => match audit::verify(&s)? {
                    Ok(n) => (true, format!("audit log intact: {n} records")),
                    Err(b) => (false, format!("audit log BROKEN: {b}")),
                },
            };
            println!("{text}");
            Ok(ok)
        }
        AuditCommand::Export { config, from, to } => {
            let src = source(&config)?;
            let from = from.as_deref().map(date_ms).transpose()?;
            let to = to.as_deref().map(date_ms).transpose()?;
            for r in fetch(&src, from, to, None)? {
                println!("{}", serde_json::to_string(&r)?);
            }
            Ok(true)
        }
    }
}

/// Runs a security command.
pub fn run_security(cmd: SecurityCommand) -> anyhow::Result<()> {
    match cmd {
        SecurityCommand::Events {
            config,
            since,
            json,
            subtree: Some(subtree),
        } => {
            let code = lienthong_common::agency::AgencyCode::parse(&subtree)
                .map_err(|e| anyhow!("--subtree: {e}"))?;
            let since = since.as_deref().map(date_ms).transpose()?.unwrap_or(0);
            let events: Vec<crate::monitor::NodeEvent> = match source(&config)? {
                Source::Api(c) => serde_json::from_value(
                    c.get_json(&format!("/v1/security/events?subtree={code}&since={since}"))?,
                )?,
                Source::Store(cfg, store) => {
                    crate::monitor::subtree_events(&stored_view(&cfg, &store)?, &code, since)?
                }
            };
            if json {
                for e in &events {
                    println!("{}", serde_json::to_string(e)?);
                }
                return Ok(());
            }
            println!(
                "{:<15} {:<6} {:<20} {:<26} {:<22} {:<15} reason",
                "node", "seq", "at", "class", "peer", "agency"
            );
            for e in &events {
                println!(
                    "{:<15} {:<6} {:<20} {:<26} {:<22} {:<15} {}",
                    e.node,
                    e.seq,
                    crate::books_cmd::time_text(e.at_unix_ms),
                    e.class,
                    e.peer,
                    e.agency,
                    e.reason
                );
            }
            println!("{} events", events.len());
            Ok(())
        }
        SecurityCommand::Report { config, json } => {
            let nodes: Vec<crate::monitor::NodeStatus> = match source(&config)? {
                Source::Api(c) => serde_json::from_value(c.get_json("/v1/security/report")?)?,
                Source::Store(_, store) => {
                    crate::monitor::stored_report(&store, Clock::from_env().now_unix_ms())?
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&nodes)?);
                return Ok(());
            }
            println!(
                "{:<15} {:<20} {:<8} {:>9} {:>7} {:>8} {:<14} events",
                "node", "last seen", "version", "cert days", "CA days", "CRL days", "assessment"
            );
            for n in &nodes {
                let assessment = if n.assessed_level == 0 {
                    "not assessed".to_owned()
                } else {
                    format!(
                        "L{} {}/{}",
                        n.assessed_level, n.assessment_met, n.assessment_total
                    )
                };
                let events: Vec<String> = n
                    .events_by_class
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                println!(
                    "{:<15} {:<20} {:<8} {:>9} {:>7} {:>8} {:<14} {}",
                    n.node,
                    crate::books_cmd::time_text(n.last_seen_unix_ms),
                    n.version,
                    n.certificate_days_left,
                    n.ca_days_left,
                    n.crl_days_left
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "none".into()),
                    assessment,
                    events.join(", ")
                );
                if !n.name.is_empty() && n.name != n.node {
                    println!("{:<15} {}", "", n.name);
                }
                if !n.assessment_not_met.is_empty() {
                    println!("{:<15} not met: {}", "", n.assessment_not_met.join(", "));
                }
                for r in n.requirements.iter().filter(|r| !r.met) {
                    println!("{:<15}   {}: {}", "", r.id, r.evidence);
                }
            }
            Ok(())
        }
        SecurityCommand::Events {
            config,
            since,
            json,
            subtree: None,
        } => {
            let src = source(&config)?;
            let since = since.as_deref().map(date_ms).transpose()?;
            let records = fetch(&src, since, None, Some("security"))?;
            if json {
                for r in &records {
                    println!("{}", serde_json::to_string(r)?);
                }
                return Ok(());
            }
            println!(
                "{:<6} {:<24} {:<26} {:<22} {:<15} reason",
                "seq", "at", "class", "peer", "agency"
            );
            for r in &records {
                let at = time::OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(r.at_unix_ms) * 1_000_000,
                )
                .map(|t| t.to_offset(time::macros::offset!(+7)).to_string())
                .unwrap_or_default();
                println!(
                    "{:<6} {:<24} {:<26} {:<22} {:<15} {}",
                    r.seq,
                    at.get(..19).unwrap_or(&at),
                    r.class,
                    r.peer,
                    r.agency,
                    r.reason
                );
            }
            println!("{} events", records.len());
            Ok(())
        }
    }
}
