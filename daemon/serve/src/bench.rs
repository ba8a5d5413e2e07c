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
