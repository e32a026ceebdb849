//! `lt-relay assess`: runs the checks of [`lienthong_node::assess`] on a node's configuration,
//! reading its audit log through the local API when it runs, from the store when stopped.

use std::path::Path;

use lienthong_client::ApiClient;
use lienthong_common::config::NodeConfig;

use crate::assess::{assess, text, AuditState};

/// Runs `lt-relay assess`: Ok(true) when every requirement is met.
pub fn run(config: &Path, level: u8, json: bool) -> anyhow::Result<bool> {
    let cfg = NodeConfig::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let audit = audit_state(&cfg);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let a = assess(&cfg, level, &audit, now);
    if json {
        println!("{}", serde_json::to_string_pretty(&a)?);
    } else {
        print!("{}", text(&a));
    }
    Ok(a.passed())
}

/// The audit log's state: through the API when the node runs, from the store when stopped.
pub fn audit_state(cfg: &NodeConfig) -> AuditState {
    if let Ok(Some(c)) = ApiClient::for_node(cfg) {
        if c.health().is_ok() {
            return match c.get_json("/v1/audit/verify") {
                Ok(v) if v["ok"].as_bool() == Some(true) => {
                    AuditState::Intact(v["records"].as_u64().unwrap_or(0))
                }
                Ok(v) => AuditState::Broken(v["error"].as_str().unwrap_or_default().to_owned()),
                Err(e) => AuditState::Unreadable(e.to_string()),
            };
        }
    }
    let dir = cfg.data_dir.join("store");
    if !dir.exists() {
        return AuditState::Intact(0);
    }
    match lienthong_common::store::Store::open(&dir) {
        Ok(store) => match lienthong_common::audit::verify(&store) {
            Ok(Ok(n)) => AuditState::Intact(n),
            Ok(Err(b)) => AuditState::Broken(b.to_string()),
            Err(e) => AuditState::Unreadable(e.to_string()),
        },
        Err(e) => AuditState::Unreadable(e.to_string()),
    }
}
