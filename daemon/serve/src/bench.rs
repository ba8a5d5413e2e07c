//! Entry points for the benchmarks (feature `bench`): the parts of the
//! daemon whose cost `benches/` measures and that the public API does not
//! otherwise reach.

use std::collections::HashSet;
use std::path::Path;

use crate::outbox::{Kind, OutboxItem, Payload, State, now_ms, tick};
use crate::store::Store;

/// An outbox store on its own, for measuring the worker's look at the
/// queue (`outbox::tick`) against the number of items waiting.
#[derive(Debug)]
pub struct OutboxQueue {
    store: Store,
}

impl OutboxQueue {
    /// Opens (or creates) the store in `state_dir`.
    pub fn open(state_dir: &Path) -> anyhow::Result<OutboxQueue> {
        Ok(OutboxQueue {
            store: Store::open(state_dir)?,
        })
    }

    /// Queues `n` pending webhook items due in an hour (flushed).
    pub fn queue_not_due(&self, n: usize) -> anyhow::Result<()> {
        let due = now_ms() + 3_600_000;
        for i in 0..n {
            let item = OutboxItem {
                id: format!("bench-{i:08}"),
                kind: Kind::Notify,
                channel: Some("bench".into()),
                rule: "bench".into(),
                message_id: format!("{i}@bench.test"),
                created: due / 1000 - 3600,
                attempts: 1,
                next_attempt_ms: due,
                last_error: None,
                state: State::Pending,
                seq: 0,
                host: String::new(),
                payload: Payload::Notify {
                    body: serde_json::json!({"text": "waiting"}),
                },
            };
            self.store.outbox_add(&item)?;
        }
        self.store.flush()
    }

    /// One look at the queue now, as the worker makes at least once a
    /// second; returns how many items were due.
    pub fn tick(&self) -> usize {
        tick(&self.store, &HashSet::new(), now_ms()).due.len()
    }

    /// How many items are pending.
    pub fn pending(&self) -> i64 {
        self.store.outbox_pending()
    }
}

/// An audit log on its own, for measuring the hourly retention run
/// (`Store::prune_audit`) and a listing by time against the number of
/// entries kept.
#[derive(Debug)]
pub struct AuditLog {
    store: Store,
}

impl AuditLog {
    /// Opens (or creates) the store in `state_dir`.
    pub fn open(state_dir: &Path) -> anyhow::Result<AuditLog> {
        Ok(AuditLog {
            store: Store::open(state_dir)?,
        })
    }

    /// Appends `n` milter decisions stamped `time` (seconds since the
    /// epoch), each matching a few rules, and flushes.
    pub fn append(&self, n: usize, time: i64) -> anyhow::Result<()> {
        for i in 0..n {
            let entry = crate::state::AuditEntry {
                id: 0,
                time,
                source: crate::state::Source::Milter,
                queue_id: format!("Q{i:08}"),
                message_id: format!("{i}@bench.test"),
                ruleset_version: 1,
                host: String::new(),
                decision: serde_json::json!({
                    "verdict": "accept", "matched": ["r1", "r2", "r3"],
                    "tags": ["r1", "r2", "r3"], "actions": [],
                }),
            };
            self.store.write_audit(entry, None)?;
        }
        self.store.flush()
    }

    /// One retention run at `cutoff`: deletes the entries stamped before
    /// it and returns how many.
    pub fn prune(&self, cutoff: i64) -> anyhow::Result<usize> {
        self.store.prune_audit(cutoff)
    }

    /// The newest `limit` entries stamped at or after `since`, as
    /// `/v1/actions?since=` and the console's Overview ask; returns how
    /// many.
    pub fn since(&self, since: i64, limit: usize) -> usize {
        let filter = crate::store::AuditFilter {
            since_time: Some(since),
            ..Default::default()
        };
        self.store.audit_entries(&filter, limit).len()
    }
}
