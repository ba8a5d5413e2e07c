//! The shared state of several hosts in Redis (`[store] backend = "redis"`):
//! standalone (also over TLS or a Unix socket), behind Sentinel, or a
//! Cluster. The [`Store`](super::Store) sends each of its methods of shared
//! state here when Redis is configured.
//!
//! Connections are the `redis` crate's synchronous ones, pooled by r2d2
//! (`pool_size`): every store call is made on a blocking thread (rule
//! evaluation, recording a decision), as sled's were. A command that fails
//! on the connection (refused, dropped, past `timeout`) opens a breaker:
//! further calls fail at once, without waiting on the network, until the
//! back-off has passed (100 ms, doubling to 5 s); then one call tries
//! again, and the first success closes it. So a Redis that is down costs a
//! message one fast error (`on_error`), and a Redis that returns is used
//! again without a restart.
//!
//! Keys (after `prefix`), with the Cluster hash tag in braces where one
//! operation touches two keys or a listing reads one key:
//! - `{rate:KEY}` (sorted set of hit times) and `{rate:KEY}:w` (its largest
//!   window): `rate()`, counted by one Lua script per key;
//! - `dup:SCOPE\0KEY`: a `duplicate()` record (seconds), expiring after
//!   `[audit] retention`;
//! - `reply:SENDER`: the last auto-reply, `SET NX EX period`;
//! - `dlv:KEY`: an LMTP delivery record (JSON), expiring after the retention;
//! - `{audit}`: the audit log, a stream trimmed to `audit_max_length` and
//!   by age; `{audit}:amend`: decisions amended after the fact (a delivery
//!   added), by entry id;
//! - `{quarantine}`: the quarantine index, a hash by id;
//!   `{quarantine}:copy:ID`: the held copy of an LMTP quarantine;
//! - `{outbox}:…`: the outbox every host's worker delivers from, a stream
//!   read through one consumer group (`redis/outbox.rs`);
//! - `ruleset_version`, `ids`: counters; `health:HOST`: the probe;
//!   `ruleset:announced`, `ruleset:hosts`: one ruleset across hosts
//!   (`cluster.rs`);
//! - `{learned:NAME}:…`: what classifier NAME learned, every host's
//!   (`redis/learned.rs`).

mod audit;
mod conn;
mod learned;
mod outbox;
mod records;

use std::time::Duration;

pub use conn::Health;
use conn::Redis;
pub use learned::{EventId, NewEvents, SharedLearned};

use crate::config::RedisConfig;

/// The Redis half of a [`Store`](super::Store).
pub(super) struct RedisStore {
    redis: Redis,
    prefix: String,
    /// This daemon's `[store] host`.
    host: String,
    /// `[audit] retention` in seconds: how long records that expire live.
    retention: u64,
    audit_max_length: u64,
    /// `claim_timeout`: how long an outbox entry of a host that stopped
    /// reading stays idle before another host takes it over.
    claim_timeout: Duration,
    /// Where the outbox's next `XAUTOCLAIM` goes on in the pending
    /// entries (`redis/outbox.rs`).
    autoclaim_cursor: std::sync::Mutex<String>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects (lazily: the pool opens connections on demand) and checks
    /// once that Redis answers, so a start with a wrong address fails with
    /// a clear error.
    pub(super) fn open(
        config: &RedisConfig,
        host: &str,
        retention: Duration,
    ) -> anyhow::Result<RedisStore> {
        let redis = Redis::open(config)?;
        let store = RedisStore {
            redis,
            prefix: config.prefix.clone(),
            host: host.to_string(),
            retention: retention.as_secs().max(1),
            audit_max_length: config.audit_max_length,
            claim_timeout: config.claim_timeout,
            autoclaim_cursor: std::sync::Mutex::new("0-0".into()),
        };
        store.probe()?;
        store.outbox_migrate()?;
        Ok(store)
    }

    /// A key under the prefix.
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Writes a small record with a short expiry: whether Redis takes
    /// writes now.
    pub(super) fn probe(&self) -> anyhow::Result<()> {
        let key = self.key(&format!("health:{}", self.host));
        let now = crate::clock::unix_now();
        self.redis.run("probe", |c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(now)
                .arg("EX")
                .arg(60)
                .query::<()>(c)
        })
    }

    /// The breaker's view of Redis: up, or failing since when and why.
    pub(super) fn health(&self) -> Health {
        self.redis.health()
    }

    /// How many commands (round trips) this store has sent, for the
    /// benchmarks and `weir_store_round_trips_total`.
    pub(super) fn round_trips(&self) -> u64 {
        self.redis.round_trips()
    }
}
