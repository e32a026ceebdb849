//! Where the `lt-relay` commands that read a node find it: its local API while the node runs
//! (its store is locked then), its store when it is stopped.

use std::path::Path;

use anyhow::{anyhow, Context};
use lienthong_common::config::NodeConfig;
use lienthong_common::store::Store;

use crate::register::NodeView;
use lienthong_client::ApiClient;

/// A node as a command reads it.
pub enum Source {
    /// The running node, through its local API.
    Api(ApiClient),
    /// The stopped node: its configuration and its store.
    Store(Box<NodeConfig>, Store),
}

/// Loads `config` and reaches the node: its API if it answers, else its store.
pub fn source(config: &Path) -> anyhow::Result<Source> {
    let cfg = NodeConfig::load(config).map_err(|e| anyhow!("{e}"))?;
    if let Some(c) = ApiClient::for_node(&cfg)? {
        if c.health().is_ok() {
            return Ok(Source::Api(c));
        }
    }
    let store = Store::open(&cfg.data_dir.join("store")).with_context(|| {
        format!(
            "opening the store of {} (is the node running without its API?)",
            cfg.agency
        )
    })?;
    Ok(Source::Store(Box::new(cfg), store))
}

/// What registers, reports and monitoring need of a stopped node.
pub fn stored_view<'a>(cfg: &NodeConfig, store: &'a Store) -> anyhow::Result<NodeView<'a>> {
    Ok(NodeView {
        store,
        agency: cfg.agency.clone(),
        locals: cfg.served_agencies(),
        announcements: crate::node::stored_announcements(store)?,
    })
}
