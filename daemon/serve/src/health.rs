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

use std::sync::Arc;
use std::time::Duration;

use super::state::Daemon;

/// How often the store is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The exit status after a store fault (`EX_TEMPFAIL` of sysexits.h).
pub const STORE_FAULT_EXIT: u8 = 75;

/// Writes and flushes a small record; the error when the store does not
/// take writes. Counts failures in `weir_store_errors_total`.
pub async fn probe(daemon: &Arc<Daemon>) -> Result<(), String> {
    let store = daemon.store.clone();
    let result = tokio::task::spawn_blocking(move || store.probe())
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| format!("{e:#}")));
    if result.is_err() {
        daemon.metrics.store_error();
    }
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
        if let Err(e) = probe(&daemon).await {
            tracing::error!(
                "the store does not take writes ({e}): stopping so that the supervisor starts weir again once it does; mail is tempfailed meanwhile"
            );
            return;
        }
    }
}
