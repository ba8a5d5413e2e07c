//! The store's health: a write probe, run every [`PROBE_INTERVAL`] and by
//! `GET /healthz`.
//!
//! After one failed write (a full disk, an I/O error) sled refuses every
//! later write until the database is opened again, even once the fault has
//! cleared, so every message would be tempfailed until a manual restart.
//! Weir does not try to reopen sled under its running servers: when the
//! probe fails it counts the error (`weir_store_errors_total`), answers
//! `/healthz` with 503, stops like on SIGTERM (connections in flight are
//! tempfailed, since nothing can be recorded) and exits with status 75
//! (`EX_TEMPFAIL`), so its supervisor (systemd's `Restart=on-failure`)
//! starts it again; a start opens the store afresh and succeeds once the
//! disk takes writes again. Meanwhile Postfix applies
//! `milter_default_action = tempfail` and defers LMTP deliveries: mail
//! waits in its queue, it is never accepted unrecorded.
//!
//! With `[store] backend = "redis"` a failed write to Redis is different:
//! the daemon keeps running, answers `/healthz` with 503 and
//! `weir_store_up 0`, and every message meets `on_error` (its audit entry
//! cannot be written) until the probe, retried at each tick once the
//! store's back-off allows, finds Redis answering again.

use std::sync::Arc;
use std::time::Duration;

use super::state::Daemon;
use super::store::ProbeError;

/// How often the store is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The exit status after a store fault (`EX_TEMPFAIL` of sysexits.h).
pub const STORE_FAULT_EXIT: u8 = 75;

/// Writes and flushes a small record; the error when the store does not
/// take writes. Counts failures in `weir_store_errors_total` and sets
/// `weir_store_up`.
pub async fn probe(daemon: &Arc<Daemon>) -> Result<(), ProbeError> {
    let store = daemon.store.clone();
    let result = tokio::task::spawn_blocking(move || store.probe())
        .await
        .unwrap_or_else(|e| Err(ProbeError::Local(anyhow::anyhow!("{e}"))));
    if result.is_err() {
        daemon.metrics.store_error();
    }
    daemon
        .metrics
        .set_store(result.is_ok(), daemon.store.round_trips());
    result
}

/// Probes the store every [`PROBE_INTERVAL`]; returns at the first failure
/// (logged), after which the daemon stops and exits with
/// [`STORE_FAULT_EXIT`].
pub async fn watch_store(daemon: Arc<Daemon>) {
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(ProbeError::Local(e)) = probe(&daemon).await {
            tracing::error!(
                "the store does not take writes ({e}): stopping so that the supervisor starts weir again once it does; mail is tempfailed meanwhile"
            );
            return;
        }
    }
}
