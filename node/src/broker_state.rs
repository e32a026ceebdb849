//! The RabbitMQ connection state of a node, written by the AMQP adapter's connection loop and
//! read by `/healthz`.

use std::sync::Mutex;

use lienthong_common::now_unix_ms;
use serde::Serialize;

/// Where the node stands with the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Not connected yet since the node started.
    Connecting,
    /// Connected, queues declared, consuming.
    Connected,
    /// The connection was lost or an attempt failed; retrying with backoff.
    Reconnecting,
}

/// The broker connection as `/healthz` shows it (docs/api.md).
#[derive(Debug, Clone, Serialize)]
pub struct BrokerHealth {
    /// The state.
    pub state: LinkState,
    /// When it entered that state (Unix ms).
    pub since_unix_ms: i64,
    /// Why the last connection ended or the last attempt failed; absent while connected.
    pub last_error: Option<String>,
}

/// The broker connection state: written by the integration's connection loop, read by
/// `/healthz`. A std `Mutex`: held only to copy or replace a small value, never across an
/// await, so it cannot stall the reactor.
#[derive(Debug)]
pub struct BrokerState(Mutex<BrokerHealth>);

impl Default for BrokerState {
    fn default() -> Self {
        Self(Mutex::new(BrokerHealth {
            state: LinkState::Connecting,
            since_unix_ms: now_unix_ms(),
            last_error: None,
        }))
    }
}

impl BrokerState {
    fn set(&self, state: LinkState, last_error: Option<String>) {
        let mut h = match self.0.lock() {
            Ok(h) => h,
            Err(p) => p.into_inner(),
        };
        if h.state != state {
            h.since_unix_ms = now_unix_ms();
        }
        h.state = state;
        h.last_error = last_error;
    }

    /// Connected and consuming.
    pub fn connected(&self) {
        self.set(LinkState::Connected, None);
    }

    /// The connection ended or could not be made, because of `cause`.
    pub fn lost(&self, cause: &str) {
        self.set(LinkState::Reconnecting, Some(cause.to_owned()));
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> BrokerHealth {
        match self.0.lock() {
            Ok(h) => h.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}
