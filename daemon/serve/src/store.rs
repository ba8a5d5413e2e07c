//! Durable state behind one small API: [`Store`]. Its state lives in sled
//! in `state_dir` (the default, one host) or, for what several hosts must
//! share, in Redis (`[store] backend = "redis"`, `store/redis/`): each
//! method of shared state goes to Redis when it is configured, so callers
//! never know which backend they use, and one test suite
//! (`store/suite.rs`) runs against both. With Redis, sled in `state_dir`
//! still opens (it holds the health probe's local record), but every kind
//! of state, the outbox too, is in Redis.
//!
//! sled's trees:
//! - `audit`: big-endian entry id → JSON [`AuditEntry`], LZ4-compressed
//!   behind a tag byte (`store/packed.rs`; entries stored as plain JSON
//!   are read too);
//! - `audit_times`: the audit log's time index, an entry's time (the sign
//!   bit flipped, big-endian) and id → nothing, read by the retention run
//!   and by listings from a time on (`store/audit_times.rs`);
//! - `rates`: rate key → the largest window seen (8 bytes) followed by the
//!   hit times within it (8 bytes each, big-endian seconds);
//! - `quarantine`: MTA queue id (or the `L…` id of an LMTP copy) → JSON
//!   [`QuarantineEntry`];
//! - `meta`: `ruleset_version` → the last version handed out;
//! - `outbox_items`, `outbox_bodies`, `outbox_due`, `outbox_queue`,
//!   `outbox_dead`: side effects pending or dead-lettered
//!   (`serve/outbox/`), a JSON header and the raw bytes of a mail apart,
//!   indexed by due time, queue position and (dead) creation time
//!   (`store/outbox.rs`);
//! - `outbox_done`: idempotency key → when it was delivered (8 bytes,
//!   big-endian seconds), so the same effect of a message the MTA sends
//!   again is not sent twice; pruned with the audit log;
//! - `replies`: lower-cased sender → when it was last sent an auto-reply;
//! - `delivered`: LMTP delivery key (digest of the message as received,
//!   recipient, folder) → JSON [`DeliveryRecord`], the Maildir file a copy
//!   was given before it was written, so a copy the MTA sends again after a
//!   crash is recognised (`lmtp/mod.rs`); pruned with the audit log.
//!
//! Anything a verdict depends on is flushed ([`Store::flush`]) before the
//! MTA gets its reply.

use std::collections::HashSet;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::state::AuditEntry;

mod audit_times;
mod duplicates;
mod group_flush;
use group_flush::Pending;
pub(crate) use group_flush::{Duty, Expected};
mod outbox;
mod packed;
mod redis;
#[cfg(test)]
pub(crate) mod suite;
#[cfg(test)]
pub(crate) mod test_redis;

pub use self::redis::Health;
use self::redis::RedisStore;
pub use self::redis::{EventId, NewEvents, SharedLearned};
mod search;
pub use search::AuditSearch;

/// Where the learned classifiers' state is kept ([`Store::learned_store`]).
#[derive(Debug)]
pub enum LearnedStore {
    /// This host's sled tree `classifiers`.
    Local(weir_classify::SledState),
    /// Redis, shared by every host (`store/redis/learned.rs`).
    Shared(SharedLearned),
}

/// A message held in the MTA's hold queue by a milter `quarantine`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    /// The MTA's queue id.
    pub queue_id: String,
    /// The audit entry of the decision that held it.
    pub audit_id: u64,
    /// The rule whose `quarantine` held it.
    pub rule: String,
    /// The reason given to `quarantine`.
    pub reason: String,
    /// Seconds since the epoch.
    pub time: i64,
    /// What the message was, for a human deciding on it.
    pub summary: MessageSummary,
    /// For a message held by LMTP in Weir's own quarantine: where its copy
    /// is and how to deliver it on release. `None` for the MTA's hold queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lmtp: Option<LmtpHold>,
    /// When Weir found that the message had left the MTA's hold queue
    /// without it (seconds since the epoch): released or deleted by hand,
    /// expired, or the id never named a held message. Such an entry is
    /// listed as `gone` and can be neither released nor deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone: Option<i64>,
    /// The `[store] host` of the daemon that held it (set by the store):
    /// a message in an MTA's hold queue can be released only through the
    /// host whose MTA holds it.
    #[serde(default)]
    pub host: String,
}

/// An LMTP recipient's copy held in Weir's quarantine (`lmtp/mod.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmtpHold {
    /// The recipient it was for.
    pub recipient: String,
    /// The file under the state directory holding the copy (headers
    /// already edited, CRLF line ends).
    pub file: std::path::PathBuf,
    /// The `fileinto` folder the decision named, or `None` for INBOX.
    pub folder: Option<String>,
    /// The `flag` flags the decision set.
    pub flags: Vec<String>,
}

/// Where an LMTP copy was (or was about to be) written: recorded and
/// flushed before the file is written, so that after a crash between the
/// write and the `250` the copy the MTA sends again can be found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// The Maildir (folder) directory the file goes into.
    pub dir: std::path::PathBuf,
    /// The file's unique base name (before any `:2,FLAGS` suffix).
    pub base: String,
    /// When it was recorded (seconds since the epoch), for pruning.
    pub time: i64,
}

/// A short description of a message (never used as a metric label).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageSummary {
    /// The Message-ID.
    pub message_id: String,
    /// The envelope sender.
    pub from: String,
    /// The envelope recipients.
    pub to: Vec<String>,
    /// The Subject.
    pub subject: String,
    /// Size in bytes.
    pub size: u64,
}

/// The daemon's durable state. Cheap to clone: sled trees are shared handles.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    audit: sled::Tree,
    /// The audit log's time index (`store/audit_times.rs`).
    audit_times: sled::Tree,
    rates: sled::Tree,
    quarantine: sled::Tree,
    meta: sled::Tree,
    /// The outbox's trees (`store/outbox.rs`).
    outbox: outbox::OutboxTrees,
    replies: sled::Tree,
    delivered: sled::Tree,
    /// `duplicate()` records (`store/duplicates.rs`).
    duplicates: sled::Tree,
    /// Held while an audit id is assigned and its entry inserted, so that
    /// entries become visible in id order: a client polling
    /// `/v1/actions?since=LAST` never misses one.
    audit_order: std::sync::Arc<std::sync::Mutex<()>>,
    /// One flush for every caller waiting at once (`store/group_flush.rs`).
    flushes: std::sync::Arc<group_flush::GroupFlush>,
    /// The shared state, with `[store] backend = "redis"`.
    redis: Option<std::sync::Arc<RedisStore>>,
    /// `[store] host`: written into every audit entry.
    host: std::sync::Arc<str>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

const VERSION_KEY: &[u8] = b"ruleset_version";

/// Whether sled failed to open because another process holds the
/// database's lock (sled wraps the `WouldBlock` of the lock in an error
/// of its own).
fn is_lock_error(io: &std::io::Error) -> bool {
    let inner_would_block = io
        .get_ref()
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .is_some_and(|e| e.kind() == std::io::ErrorKind::WouldBlock);
    io.kind() == std::io::ErrorKind::WouldBlock
        || inner_would_block
        || io.to_string().contains("could not acquire lock")
}

/// The least free space the state directory must have for the store to
/// be opened. sled writes a snapshot and a log segment as it opens, and an
/// open that fails half-way on a full disk leaves a store it cannot read
/// again ("Read corrupted data") even once space is freed: so a daemon
/// restarted by its supervisor while the disk is full refuses to open the
/// store, exits, and is restarted until there is room.
const MIN_FREE_TO_OPEN: u64 = 8 << 20;

/// The most bytes of the database sled keeps in memory. Its default (1
/// GiB) lets a daemon keep every audit entry it wrote in memory for weeks:
/// at 10,000 rules, about 10 MB more for every 1,000 messages served
/// (benches/README.md, "Issue 17, the daemon's memory"). 2 MiB holds the
/// pages a message writes to and reads (the ends of the logs, the keys in
/// use); 8 MiB only kept more recent audit entries, 3 to 5 MB more after
/// a few thousand messages for no gain ("Round fourteen"). Reads past it
/// (old audit entries, `/v1/actions`) come from disk.
const CACHE_CAPACITY: u64 = 2 << 20;

impl Store {
    /// Opens (or creates) the store in `dir`; refuses while `dir` has less
    /// than [`MIN_FREE_TO_OPEN`] bytes free.
    pub fn open(dir: &Path) -> anyhow::Result<Store> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
        let free = fs2::available_space(dir)
            .with_context(|| format!("cannot read the free space of {}", dir.display()))?;
        if free < MIN_FREE_TO_OPEN {
            anyhow::bail!(
                "state_dir {} has {free} bytes free; the store is not opened with less than {MIN_FREE_TO_OPEN} \
                 (an open that fails on a full disk damages it): free some space",
                dir.display()
            );
        }
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(CACHE_CAPACITY)
            .open()
            .map_err(|e| match e {
            sled::Error::Io(io) if is_lock_error(&io) => anyhow::anyhow!(
                "state_dir {} is in use by another running weir serve (its database is locked); \
                 stop that one or give this one another state_dir",
                dir.display()
            ),
            other => anyhow::Error::new(other)
                .context(format!("cannot open the store in {}", dir.display())),
        })?;
        Ok(Store {
            audit: db.open_tree("audit")?,
            audit_times: db.open_tree("audit_times")?,
            rates: db.open_tree("rates")?,
            quarantine: db.open_tree("quarantine")?,
            meta: db.open_tree("meta")?,
            outbox: outbox::OutboxTrees::open(&db)?,
            replies: db.open_tree("replies")?,
            delivered: db.open_tree("delivered")?,
            duplicates: db.open_tree("duplicates")?,
            flushes: std::sync::Arc::new(group_flush::GroupFlush::new({
                let db = db.clone();
                Box::new(move || db.flush().map(drop).map_err(|e| e.to_string()))
            })),
            db,
            audit_order: std::sync::Arc::default(),
            redis: None,
            host: crate::config::StoreConfig::defaults().host.into(),
        })
    }

    /// Opens the store `config` asks for: sled in `state_dir` and, with
    /// `[store] backend = "redis"`, the shared state in Redis (which must
    /// answer: a start with Redis down fails, for the supervisor to try
    /// again).
    pub fn open_config(config: &crate::config::Config) -> anyhow::Result<Store> {
        let mut store = Store::open(&config.state_dir)?;
        store.host = config.store.host.as_str().into();
        if let crate::config::StoreBackend::Redis(redis) = &config.store.backend {
            let shared = RedisStore::open(redis, &config.store.host, config.audit.retention)
                .context("cannot open the Redis store ([store])")?;
            store.redis = Some(std::sync::Arc::new(shared));
        }
        Ok(store)
    }

    /// `"sled"` or `"redis"`.
    pub fn backend(&self) -> &'static str {
        if self.redis.is_some() {
            "redis"
        } else {
            "sled"
        }
    }

    /// Whether the shared store answers (always [`Health::Up`] for sled,
    /// whose faults the probe finds).
    pub fn health(&self) -> Health {
        self.redis.as_ref().map_or(Health::Up, |r| r.health())
    }

    /// Commands sent to Redis so far (0 with sled).
    pub fn round_trips(&self) -> u64 {
        self.redis.as_ref().map_or(0, |r| r.round_trips())
    }

    /// This daemon's `[store] host`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Where the learned classifiers' state is (`classifiers.rs`): in
    /// Redis when it is configured, shared by every host; else the sled
    /// tree `classifiers` (`weir learn --state` opens the same tree).
    pub fn learned_store(&self) -> anyhow::Result<LearnedStore> {
        let local = weir_classify::SledState::new(&self.db).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(match &self.redis {
            Some(r) => LearnedStore::Shared(SharedLearned::new(r.clone(), local)),
            None => LearnedStore::Local(local),
        })
    }

    /// Writes everything to disk; returns once everything written before
    /// the call is durable. Callers flushing at the same time share one
    /// flush (group commit, `store/group_flush.rs`).
    pub fn flush(&self) -> anyhow::Result<()> {
        self.flushes.flush().map_err(flush_error)
    }

    /// Asks for a flush of everything written before the call, to wait for
    /// without holding a thread ([`Durable::wait`]); see [`Store::flush`].
    /// Nothing is asked when the audit log is in Redis
    /// ([`Store::audit_needs_flush`]).
    pub(crate) fn request_flush(&self) -> (Durable, Option<Duty>) {
        if !self.audit_needs_flush() {
            return (Durable(None), None);
        }
        let (pending, duty) = self.flushes.request();
        (Durable(Some(pending)), duty)
    }

    /// Announces an audit entry about to be written (a milter session's
    /// final evaluation): a flush starting before the guard is dropped
    /// waits a little for it, so that one flush covers more sessions
    /// (`store/group_flush.rs`).
    pub(crate) fn expect_write(&self) -> Expected {
        self.flushes.expect()
    }

    /// A new unique id (increasing, also across restarts).
    pub fn generate_id(&self) -> anyhow::Result<u64> {
        if let Some(r) = &self.redis {
            // Shared: the ids name quarantined copies every host lists.
            return r.increment("ids");
        }
        Ok(self.db.generate_id()?)
    }

    /// Hands out the next ruleset version (persisted, so versions keep
    /// increasing across restarts and audit entries stay unambiguous).
    pub fn next_ruleset_version(&self) -> anyhow::Result<u64> {
        if let Some(r) = &self.redis {
            return r.increment("ruleset_version");
        }
        let next = self
            .meta
            .update_and_fetch(VERSION_KEY, |old| {
                let n = old.and_then(read_u64).unwrap_or(0) + 1;
                Some(n.to_be_bytes().to_vec())
            })?
            .and_then(|v| read_u64(&v))
            .unwrap_or(1);
        self.flush()?;
        Ok(next)
    }

    /// Appends an audit entry (its `id` is assigned here) and, for a
    /// milter `quarantine`, its quarantine index entry; flushes both before
    /// returning, since the MTA's reply depends on them.
    pub fn append_audit(
        &self,
        entry: AuditEntry,
        held: Option<QuarantineEntry>,
    ) -> anyhow::Result<AuditEntry> {
        let entry = self.write_audit(entry, held)?;
        self.make_audit_durable()?;
        Ok(entry)
    }

    /// Returns once the audit entries written before the call, and what a
    /// decision records with them, are durable: a flush with sled, nothing
    /// with Redis ([`Store::audit_needs_flush`]).
    pub(crate) fn make_audit_durable(&self) -> anyhow::Result<()> {
        if self.audit_needs_flush() {
            self.flush()?;
        }
        Ok(())
    }

    /// Whether an audit entry (and what a decision records with it) is
    /// durable only after a flush: with sled; with Redis each write is
    /// answered once Redis holds it.
    fn audit_needs_flush(&self) -> bool {
        self.redis.is_none()
    }

    /// [`Store::append_audit`] without the flush: the entry is durable
    /// once a flush asked for after this returns has succeeded
    /// ([`Store::request_flush`]).
    pub(crate) fn write_audit<D: Serialize>(
        &self,
        mut entry: AuditEntry<D>,
        held: Option<QuarantineEntry>,
    ) -> anyhow::Result<AuditEntry<D>> {
        entry.host = self.host.to_string();
        if let Some(r) = &self.redis {
            entry.id = r.append_audit(&entry)?;
            if let Some(mut held) = held {
                held.audit_id = entry.id;
                held.host = self.host.to_string();
                r.put_quarantine(&held)?;
            }
            return Ok(entry);
        }
        {
            let _in_order = self
                .audit_order
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // sled's ids increase across restarts (it reserves them in
            // batches). They start at 1 so that `since=0` means "all".
            entry.id = self.db.generate_id()? + 1;
            self.audit
                .insert(entry.id.to_be_bytes(), encode_audit(&entry)?)?;
        }
        if let Some(mut held) = held {
            held.audit_id = entry.id;
            held.host = self.host.to_string();
            self.put_quarantine(&held)?;
        }
        Ok(entry)
    }

    /// Changes the decision object of audit entry `id` with `change` and
    /// flushes (a delivery outcome added to the milter's entry). `false`
    /// when there is no such entry (pruned).
    pub fn amend_audit(
        &self,
        id: u64,
        change: impl Fn(&mut serde_json::Value),
    ) -> anyhow::Result<bool> {
        if let Some(r) = &self.redis {
            return r.amend_audit(id, change);
        }
        let _in_order = self
            .audit_order
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(bytes) = self.audit.get(id.to_be_bytes())? else {
            return Ok(false);
        };
        let mut entry: AuditEntry = decode_audit(&bytes)?;
        change(&mut entry.decision);
        self.audit.insert(id.to_be_bytes(), encode_audit(&entry)?)?;
        self.flush()?;
        Ok(true)
    }

    /// Audit entries matching `filter`, oldest first, at most `limit`
    /// (the newest `limit` of them).
    pub fn audit_entries(&self, filter: &AuditFilter, limit: usize) -> Vec<AuditEntry> {
        if let Some(r) = &self.redis {
            return r.audit_entries(filter, limit).unwrap_or_else(|e| {
                tracing::error!("{e:#}");
                Vec::new()
            });
        }
        let after = filter.after_id.map_or(0, |id| id.saturating_add(1));
        let start = filter
            .since_time
            .map_or(after, |since| after.max(self.first_audit_since(since)));
        // Newest first, so that only as many entries are read as are
        // returned when most match: reading the whole log would also pull
        // every page of it into sled's cache.
        let mut newest: Vec<AuditEntry> = (self.audit.range(start.to_be_bytes()..).rev())
            .filter_map(|item| decode_audit(&item.ok()?.1).ok())
            .filter(|entry| filter.matches(entry))
            .take(limit)
            .collect();
        newest.reverse();
        newest
    }

    /// The lowest audit id that may be stamped at or after `since`, found
    /// through the index by time: the console's Overview asks for the last
    /// day every few seconds, and the log keeps `[audit] retention` (30
    /// days by default).
    fn first_audit_since(&self, since: i64) -> u64 {
        audit_times::first_since(&self.audit_times, &self.meta, since).unwrap_or_else(|e| {
            tracing::error!("the audit log's time index: {e}");
            0
        })
    }

    /// One audit entry by id.
    pub fn audit_entry(&self, id: u64) -> Option<AuditEntry> {
        if let Some(r) = &self.redis {
            return r.audit_entry(id).unwrap_or_else(|e| {
                tracing::error!("{e:#}");
                None
            });
        }
        let value = self.audit.get(id.to_be_bytes()).ok()??;
        decode_audit(&value).ok()
    }

    /// Deletes audit entries older than `cutoff` (seconds since the
    /// epoch), found through the log's index by time after extending it
    /// with the entries written since the last call
    /// (`store/audit_times.rs`); returns how many.
    pub fn prune_audit(&self, cutoff: i64) -> anyhow::Result<usize> {
        if let Some(r) = &self.redis {
            return r.prune_audit(cutoff);
        }
        audit_times::catch_up(&self.audit, &self.audit_times, &self.meta)?;
        let mut removed = 0;
        for item in audit_times::expired(&self.audit_times, cutoff) {
            let (key, _) = item?;
            if let Some(id) = audit_times::id(&key)
                && self.audit.remove(id.to_be_bytes())?.is_some()
            {
                removed += 1;
            }
            self.audit_times.remove(key)?;
        }
        if removed > 0 {
            self.flush()?;
        }
        Ok(removed)
    }

    /// Counts a hit for `key` at `now` (if `count`) and returns the hits
    /// within `window_secs`, as [`weir_compiler::RateCounter::hit`].
    pub fn rate_hit(&self, key: &str, window_secs: u64, now: i64, count: bool) -> u64 {
        if let Some(r) = &self.redis {
            // A failure reads as no hit; the message's audit entry cannot
            // be written either, so it gets `on_error` and is not accepted.
            return r
                .rate_hit(key, window_secs, now, count)
                .unwrap_or_else(|e| {
                    tracing::error!("rate counter {key:?}: {e:#}");
                    0
                });
        }
        let window = i64::try_from(window_secs).unwrap_or(i64::MAX);
        if !count {
            // A read (a dry run, a non-final stage) writes nothing, and
            // creates no key.
            let stored = self.rates.get(key.as_bytes()).ok().flatten();
            let (_, times) = decode_rate(stored.as_deref());
            return times
                .iter()
                .filter(|&&t| now.saturating_sub(t) < window)
                .count() as u64;
        }
        let mut within = 0u64;
        let result = self.rates.update_and_fetch(key.as_bytes(), |old| {
            let (max_window, mut times) = decode_rate(old);
            let max_window = max_window.max(window);
            // Forget what no window of this key can see any more.
            times.retain(|&t| now.saturating_sub(t) < max_window);
            if count {
                times.push(now);
            }
            within = times
                .iter()
                .filter(|&&t| now.saturating_sub(t) < window || (count && t == now))
                .count() as u64;
            Some(encode_rate(max_window, &times))
        });
        if let Err(e) = result {
            tracing::error!("rate counter {key:?}: {e}");
        }
        within
    }

    /// The hits within each `(key, window)` at `now`, counting nothing, in
    /// order: the prefetch of a message's `rate()` keys, in one round trip
    /// to Redis (one read per key with sled, which is local).
    pub fn rate_counts(&self, keys: &[(String, u64)], now: i64) -> Vec<u64> {
        if let Some(r) = &self.redis {
            // As `rate_hit`: a failure reads as no hit, and the message's
            // audit entry cannot be written either, so it gets `on_error`.
            return r.rate_counts(keys, now).unwrap_or_else(|e| {
                tracing::error!("rate counters: {e:#}");
                vec![0; keys.len()]
            });
        }
        keys.iter()
            .map(|(key, window)| self.rate_hit(key, *window, now, false))
            .collect()
    }

    /// Counts one hit at `now` for each `(key, window)`: the final
    /// decision's counts, written once per message (in one round trip to
    /// Redis).
    pub fn rate_hits(&self, hits: &[(String, u64)], now: i64) {
        if let Some(r) = &self.redis {
            if let Err(e) = r.rate_hits(hits, now) {
                tracing::error!("rate counters: {e:#}");
            }
            return;
        }
        for (key, window) in hits {
            self.rate_hit(key, *window, now, true);
        }
    }

    /// Deletes `rate()` keys none of whose hits any window can see any
    /// more (each key keeps its largest window); returns how many.
    pub fn prune_rates(&self, now: i64) -> anyhow::Result<usize> {
        if self.redis.is_some() {
            // Redis expires each key after its largest window.
            return Ok(0);
        }
        let mut removed = 0;
        for item in self.rates.iter() {
            let (key, value) = item?;
            let (max_window, times) = decode_rate(Some(&value));
            if times.iter().all(|&t| now.saturating_sub(t) >= max_window) {
                // Only if no hit was counted meanwhile.
                if self
                    .rates
                    .compare_and_swap(&key, Some(&value), None as Option<&[u8]>)?
                    .is_ok()
                {
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            self.flush()?;
        }
        Ok(removed)
    }

    /// Records a held message.
    pub fn put_quarantine(&self, entry: &QuarantineEntry) -> anyhow::Result<()> {
        if let Some(r) = &self.redis {
            return r.put_quarantine(entry);
        }
        self.quarantine
            .insert(entry.queue_id.as_bytes(), serde_json::to_vec(entry)?)?;
        Ok(())
    }

    /// Every held message, oldest first (none when Redis does not answer:
    /// logged).
    pub fn quarantine_entries(&self) -> Vec<QuarantineEntry> {
        self.try_quarantine_entries().unwrap_or_else(|e| {
            tracing::error!("{e:#}");
            Vec::new()
        })
    }

    /// Every held message, oldest first, or why they cannot be read.
    pub fn try_quarantine_entries(&self) -> anyhow::Result<Vec<QuarantineEntry>> {
        let mut out: Vec<QuarantineEntry> = match &self.redis {
            Some(r) => r.quarantine_entries()?,
            None => self
                .quarantine
                .iter()
                .filter_map(|item| item.ok())
                .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
                .collect(),
        };
        out.sort_by_key(|e| (e.time, e.audit_id));
        Ok(out)
    }

    /// One held message.
    pub fn quarantine_entry(&self, queue_id: &str) -> Option<QuarantineEntry> {
        if let Some(r) = &self.redis {
            return r.quarantine_entry(queue_id).unwrap_or_else(|e| {
                tracing::error!("{e:#}");
                None
            });
        }
        let value = self.quarantine.get(queue_id.as_bytes()).ok()??;
        serde_json::from_slice(&value).ok()
    }

    /// Writes and flushes one small record: whether the store takes
    /// writes now (`health.rs`).
    pub fn probe(&self) -> Result<(), ProbeError> {
        if let Some(r) = &self.redis {
            r.probe().map_err(ProbeError::Shared)?;
        }
        self.probe_local().map_err(ProbeError::Local)
    }

    fn probe_local(&self) -> anyhow::Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        self.meta.insert(b"health_probe", &now.to_be_bytes())?;
        self.flush()
    }

    /// Forgets the entries marked gone whose message was held before
    /// `cutoff`; flushed. Returns how many.
    pub fn prune_gone_quarantine(&self, cutoff: i64) -> anyhow::Result<usize> {
        let mut removed = 0;
        for entry in self.quarantine_entries() {
            if entry.gone.is_some() && entry.time < cutoff {
                match &self.redis {
                    Some(r) => {
                        r.remove_quarantine(&entry.queue_id)?;
                    }
                    None => {
                        self.quarantine.remove(entry.queue_id.as_bytes())?;
                    }
                }
                removed += 1;
            }
        }
        if removed > 0 {
            self.flush()?;
        }
        Ok(removed)
    }

    /// Keeps the held copy of an LMTP quarantine in the shared store, so
    /// any host can release it; nothing with sled (the file in
    /// `state_dir` is the copy).
    pub fn put_held_copy(&self, id: &str, bytes: &[u8]) -> anyhow::Result<()> {
        match &self.redis {
            Some(r) => r.put_held_copy(id, bytes),
            None => Ok(()),
        }
    }

    /// The shared held copy of an LMTP quarantine (`None` with sled).
    pub fn held_copy(&self, id: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match &self.redis {
            Some(r) => r.held_copy(id),
            None => Ok(None),
        }
    }

    /// Forgets the shared held copy of an LMTP quarantine.
    pub fn remove_held_copy(&self, id: &str) -> anyhow::Result<()> {
        match &self.redis {
            Some(r) => r.remove_held_copy(id),
            None => Ok(()),
        }
    }

    /// A value shared by every host (Redis); `None` with sled.
    pub fn shared_get(&self, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match &self.redis {
            Some(r) => r.get_raw(name),
            None => Ok(None),
        }
    }

    /// Sets a value shared by every host; nothing with sled.
    pub fn shared_set(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        match &self.redis {
            Some(r) => r.set_raw(name, bytes),
            None => Ok(()),
        }
    }

    /// Sets one field of a map shared by every host; nothing with sled.
    pub fn shared_hset(&self, name: &str, field: &str, bytes: &[u8]) -> anyhow::Result<()> {
        match &self.redis {
            Some(r) => r.hset_raw(name, field, bytes),
            None => Ok(()),
        }
    }

    /// Every field of a map shared by every host; empty with sled.
    pub fn shared_hgetall(&self, name: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        match &self.redis {
            Some(r) => r.hgetall_raw(name),
            None => Ok(Vec::new()),
        }
    }

    /// Forgets a held message (released or deleted); flushed.
    pub fn remove_quarantine(&self, queue_id: &str) -> anyhow::Result<bool> {
        if let Some(r) = &self.redis {
            return r.remove_quarantine(queue_id);
        }
        let existed = self.quarantine.remove(queue_id.as_bytes())?.is_some();
        self.flush()?;
        Ok(existed)
    }
}

impl Store {
    /// Forgets delivered keys older than `cutoff` (seconds since the
    /// epoch); returns how many.
    pub fn prune_outbox_done(&self, cutoff: i64) -> anyhow::Result<usize> {
        if let Some(r) = &self.redis {
            return r.prune_outbox_done(cutoff);
        }
        let mut removed = 0;
        let done = self.outbox.done();
        for item in done.iter() {
            let (key, value) = item?;
            if read_u64(&value).map_or(0, |t| t as i64) < cutoff {
                done.remove(key)?;
                removed += 1;
            }
        }
        if removed > 0 {
            self.flush()?;
        }
        Ok(removed)
    }

    /// Forgets auto-reply times older than `cutoff` (the `[reply] period`
    /// before now: they no longer hold a reply back); returns how many.
    pub fn prune_replies(&self, cutoff: i64) -> anyhow::Result<usize> {
        if self.redis.is_some() {
            // Redis expires each reply time after its period.
            return Ok(0);
        }
        let mut removed = 0;
        for item in self.replies.iter() {
            let (key, value) = item?;
            if read_u64(&value).map_or(0, |t| t as i64) < cutoff {
                self.replies.remove(key)?;
                removed += 1;
            }
        }
        if removed > 0 {
            self.flush()?;
        }
        Ok(removed)
    }

    /// Whether `sender` may get an auto-reply now: not if it got one less
    /// than `period_secs` ago. When it may, `now` is recorded at once, so
    /// a second message in the period gets none (not flushed: the caller
    /// flushes with the outbox item).
    pub fn reply_allowed(&self, sender: &str, period_secs: u64, now: i64) -> anyhow::Result<bool> {
        if let Some(r) = &self.redis {
            return r.reply_allowed(sender, period_secs, now);
        }
        let period = i64::try_from(period_secs).unwrap_or(i64::MAX);
        let key = sender.to_ascii_lowercase();
        let mut allowed = false;
        self.replies.update_and_fetch(key.as_bytes(), |old| {
            let last = old.and_then(read_u64).map(|t| t as i64);
            allowed = last.is_none_or(|t| now.saturating_sub(t) >= period);
            if allowed {
                Some(now.to_be_bytes().to_vec())
            } else {
                old.map(<[u8]>::to_vec)
            }
        })?;
        Ok(allowed)
    }
}

impl Store {
    /// The recorded LMTP delivery of `key`, if any.
    pub fn delivery(&self, key: &str) -> anyhow::Result<Option<DeliveryRecord>> {
        if let Some(r) = &self.redis {
            return r.delivery(key);
        }
        let Some(value) = self.delivered.get(key.as_bytes())? else {
            return Ok(None);
        };
        // An unreadable record only means the copy cannot be recognised:
        // it is then delivered again rather than refused for ever.
        Ok(serde_json::from_slice(&value).ok())
    }

    /// Records (or replaces) the LMTP delivery of `key`; flushed, since the
    /// file is written only after this returns.
    pub fn put_delivery(&self, key: &str, record: &DeliveryRecord) -> anyhow::Result<()> {
        if let Some(r) = &self.redis {
            return r.put_delivery(key, record);
        }
        self.delivered
            .insert(key.as_bytes(), serde_json::to_vec(record)?)?;
        self.flush()
    }

    /// Forgets LMTP deliveries recorded before `cutoff` (seconds since the
    /// epoch); returns how many.
    pub fn prune_deliveries(&self, cutoff: i64) -> anyhow::Result<usize> {
        if self.redis.is_some() {
            // Redis expires each record after the retention.
            return Ok(0);
        }
        let mut removed = 0;
        for item in self.delivered.iter() {
            let (key, value) = item?;
            let time =
                serde_json::from_slice::<DeliveryRecord>(&value).map_or(i64::MIN, |r| r.time);
            if time < cutoff {
                self.delivered.remove(key)?;
                removed += 1;
            }
        }
        if removed > 0 {
            self.flush()?;
        }
        Ok(removed)
    }
}

/// Why the store's probe failed.
#[derive(Debug)]
pub enum ProbeError {
    /// sled in `state_dir` refused a write: it stays refused until the
    /// database is reopened (`health.rs` exits for a restart).
    Local(anyhow::Error),
    /// Redis did not take the write: the store's breaker keeps trying with
    /// back-off, and the daemon tempfails meanwhile.
    Shared(anyhow::Error),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Local(e) | ProbeError::Shared(e) => write!(f, "{e:#}"),
        }
    }
}

/// Which audit entries `/v1/actions` wants.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only entries with a greater id.
    pub after_id: Option<u64>,
    /// Only entries at or after this time (seconds since the epoch).
    pub since_time: Option<i64>,
    /// Only entries where this rule matched.
    pub rule: Option<String>,
    /// Only entries with this verdict.
    pub verdict: Option<String>,
    /// The search's further criteria (`store/search.rs`).
    pub search: AuditSearch,
}

impl AuditFilter {
    pub(crate) fn matches(&self, e: &AuditEntry) -> bool {
        if self.since_time.is_some_and(|t| e.time < t) {
            return false;
        }
        if let Some(v) = &self.verdict
            && e.decision.get("verdict").and_then(|x| x.as_str()) != Some(v.as_str())
        {
            return false;
        }
        if let Some(rule) = &self.rule {
            let matched = e.decision.get("matched").and_then(|m| m.as_array());
            if !matched.is_some_and(|m| m.iter().any(|r| r.as_str() == Some(rule.as_str()))) {
                return false;
            }
        }
        self.search.matches(e)
    }
}

/// A requested flush to wait for ([`Store::request_flush`]): nothing with
/// Redis.
#[derive(Debug)]
pub(crate) struct Durable(Option<Pending>);

impl Durable {
    /// Waits, without holding a thread, until what was written before the
    /// request is durable, or the flush failed.
    pub(crate) async fn wait(self) -> anyhow::Result<()> {
        match self.0 {
            Some(pending) => pending.wait().await.map_err(flush_error),
            None => Ok(()),
        }
    }
}

fn flush_error(e: String) -> anyhow::Error {
    anyhow::anyhow!("cannot flush the store: {e}")
}

/// An audit entry as it is stored in sled ([`packed`]).
fn encode_audit<D: Serialize>(entry: &AuditEntry<D>) -> anyhow::Result<Vec<u8>> {
    Ok(packed::pack(&serde_json::to_vec(entry)?))
}

/// The time of a stored audit entry; one that cannot be read is the
/// oldest there is, and goes at the next retention run.
fn audit_time(stored: &[u8]) -> i64 {
    /// The one field read (the rest of the entry is skipped).
    #[derive(Deserialize)]
    struct Time {
        time: i64,
    }
    decode_audit::<Time>(stored).map_or(i64::MIN, |e| e.time)
}

/// A stored audit entry, or the fields `T` of it.
fn decode_audit<T: serde::de::DeserializeOwned>(stored: &[u8]) -> anyhow::Result<T> {
    Ok(serde_json::from_slice(&packed::unpack(stored)?)?)
}

fn read_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

fn decode_rate(value: Option<&[u8]>) -> (i64, Vec<i64>) {
    let Some(bytes) = value else {
        return (0, Vec::new());
    };
    let mut chunks = bytes
        .chunks_exact(8)
        .filter_map(|c| c.try_into().ok().map(i64::from_be_bytes));
    let max_window = chunks.next().unwrap_or(0);
    (max_window, chunks.collect())
}

fn encode_rate(max_window: i64, times: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 * (times.len() + 1));
    out.extend_from_slice(&max_window.to_be_bytes());
    for t in times {
        out.extend_from_slice(&t.to_be_bytes());
    }
    out
}

/// A [`weir_compiler::RateCounter`] over the store, scoped to one message:
/// a key is counted at most once however many times the message is
/// evaluated (the milter evaluates stage by stage).
#[derive(Debug, Clone)]
pub struct MessageRates {
    store: Store,
    counted: HashSet<String>,
}

impl MessageRates {
    /// Counters for a new message.
    pub fn new(store: Store) -> MessageRates {
        MessageRates {
            store,
            counted: HashSet::new(),
        }
    }
}

impl weir_compiler::RateCounter for MessageRates {
    fn hit(&mut self, key: &str, window_secs: u64, now: i64, count: bool) -> u64 {
        let count = count && self.counted.insert(key.to_string());
        self.store.rate_hit(key, window_secs, now, count)
    }

    fn duplicate(&mut self, scope: &str, key: &str, window_secs: u64, now: i64) -> bool {
        self.store.duplicate_seen(scope, key, window_secs, now)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_state_dir_in_use_is_named_clearly() {
        let dir = std::env::temp_dir().join(format!("weir-store-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = Store::open(&dir).expect("first");
        let second = Store::open(&dir).expect_err("locked");
        let text = format!("{second:#}");
        assert!(
            text.contains("in use by another running weir serve"),
            "{text}"
        );
        assert!(!text.contains("WouldBlock"), "{text}");
        drop(first);
        let _ = std::fs::remove_dir_all(&dir);
    }

    use super::*;
    use weir_compiler::RateCounter;

    #[test]
    fn rates_count_once_per_message_and_slide() {
        let dir = tempdir();
        let store = Store::open(&dir).expect("open");
        let mut first = MessageRates::new(store.clone());
        assert_eq!(first.hit("k", 60, 1000, true), 1);
        assert_eq!(
            first.hit("k", 60, 1000, true),
            1,
            "same message counts once"
        );
        let mut second = MessageRates::new(store.clone());
        assert_eq!(second.hit("k", 60, 1010, true), 2);
        assert_eq!(second.hit("k", 60, 1010, false), 2);
        let mut dry = MessageRates::new(store.clone());
        assert_eq!(dry.hit("k", 60, 1069, false), 1, "the first hit slid out");
        assert_eq!(store.rate_hit("other", 60, 1070, false), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn retention_deletes_only_old_audit_entries() {
        let dir = tempdir().with_extension("retention");
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).expect("open");
        // 900: stamped by a clock that had jumped forward; 200 follows it.
        for time in [100, 900, 200, 300] {
            store
                .append_audit(entry_at(time, "accept"), None)
                .expect("append");
        }
        assert_eq!(store.prune_audit(250).expect("prune"), 2);
        let left = store.audit_entries(&AuditFilter::default(), 10);
        let left: Vec<&str> = left.iter().map(|e| e.queue_id.as_str()).collect();
        assert_eq!(left, ["Q900", "Q300"], "past the future-stamped entry too");
        assert_eq!(
            store.audit_times.len(),
            2,
            "expired keys go with their entries"
        );
        // Written after a run: indexed by the next one.
        store
            .append_audit(entry_at(400, "accept"), None)
            .expect("append");
        // A key whose entry is gone (deleted by a version without the index).
        store
            .audit_times
            .insert(audit_times::key(50, 12345), &[])
            .expect("key");
        assert_eq!(
            store.prune_audit(250).expect("prune"),
            0,
            "no entry, no count"
        );
        assert_eq!(store.audit_times.len(), 3, "the lone key is gone");
        assert_eq!(store.prune_audit(1000).expect("prune"), 3);
        assert!(store.audit_times.is_empty() && store.audit.is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_log_from_before_compression_and_the_time_index_is_read_amended_and_pruned() {
        let dir = tempdir().with_extension("plain-audit");
        let store = Store::open(&dir).expect("open");
        // A log as an earlier version wrote it: plain JSON, no time index.
        let mut ids = Vec::new();
        for time in [100, 300] {
            // Ids as the store hands them out, older than the next entry's.
            let id = store.db.generate_id().expect("id") + 1;
            let entry = AuditEntry {
                id,
                ..entry_at(time, "accept")
            };
            let json = serde_json::to_vec(&entry).expect("json");
            store.audit.insert(id.to_be_bytes(), json).expect("insert");
            ids.push(id);
        }
        drop(store);
        let store = suite::reopen(&dir);
        let packed = store.append_audit(entry_at(400, "accept"), None);
        let packed = packed.expect("append");
        let stored = store.audit.get(packed.id.to_be_bytes()).expect("get");
        assert_ne!(stored.expect("stored").first(), Some(&b'{'), "not packed");
        let all = store.audit_entries(&AuditFilter::default(), 10);
        let times: Vec<i64> = all.iter().map(|e| e.time).collect();
        assert_eq!(times, [100, 300, 400]);
        assert_eq!(store.audit_entry(ids[0]).expect("by id").queue_id, "Q100");
        let amended = store.amend_audit(ids[1], |d| d["verdict"] = "reject".into());
        assert!(amended.expect("amend"));
        let changed = store.audit_entry(ids[1]).expect("amended");
        assert_eq!(changed.decision["verdict"], "reject");
        assert_eq!(store.prune_audit(350).expect("prune"), 2);
        assert_eq!(store.audit_times.len(), 1, "the first run indexed them all");
        let left = store.audit_entries(&AuditFilter::default(), 10);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, packed.id);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_newest_entries_are_listed_oldest_first_and_filtered() {
        let dir = tempdir().with_extension("newest-audit");
        let store = Store::open(&dir).expect("open");
        for time in 1..=20 {
            let verdict = if time % 3 == 0 { "reject" } else { "accept" };
            store
                .append_audit(entry_at(time, verdict), None)
                .expect("append");
        }
        let times = |filter: &AuditFilter, limit| -> Vec<i64> {
            let entries = store.audit_entries(filter, limit);
            entries.iter().map(|e| e.time).collect()
        };
        assert_eq!(times(&AuditFilter::default(), 3), [18, 19, 20]);
        let rejects = AuditFilter {
            verdict: Some("reject".into()),
            ..Default::default()
        };
        assert_eq!(times(&rejects, 2), [15, 18]);
        assert_eq!(times(&rejects, 100), [3, 6, 9, 12, 15, 18]);
        let first = store.audit_entries(&AuditFilter::default(), 20)[0].id;
        let after = AuditFilter {
            after_id: Some(first + 16),
            ..Default::default()
        };
        assert_eq!(times(&after, 10), [18, 19, 20]);
        assert!(store.audit_entries(&AuditFilter::default(), 0).is_empty());
        let since = |time| AuditFilter {
            since_time: Some(time),
            ..Default::default()
        };
        assert_eq!(times(&since(17), 10), [17, 18, 19, 20], "not indexed yet");
        assert_eq!(store.prune_audit(0).expect("index"), 0);
        // A clock that stepped back, then on.
        for time in [16, 30] {
            store
                .append_audit(entry_at(time, "accept"), None)
                .expect("append");
        }
        assert_eq!(times(&since(17), 10), [17, 18, 19, 20, 30]);
        assert_eq!(times(&since(16), 3), [20, 16, 30], "in id order");
        assert_eq!(times(&since(31), 10), [] as [i64; 0]);
        let both = AuditFilter {
            after_id: Some(first + 18),
            ..since(16)
        };
        assert_eq!(times(&both, 10), [20, 16, 30]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn deliveries_are_recorded_and_pruned_by_time() {
        let dir = tempdir().with_extension("deliveries");
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).expect("open");
        let record = |time| DeliveryRecord {
            dir: "/m/a".into(),
            base: format!("{time}.M1P2Q3.host,S=10"),
            time,
        };
        store.put_delivery("old", &record(100)).expect("put");
        store.put_delivery("new", &record(300)).expect("put");
        assert_eq!(store.delivery("old").expect("get"), Some(record(100)));
        assert_eq!(store.delivery("none").expect("get"), None);
        assert_eq!(store.prune_deliveries(250).expect("prune"), 1);
        assert_eq!(store.delivery("old").expect("get"), None);
        assert_eq!(store.delivery("new").expect("get"), Some(record(300)));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn reads_create_no_rate_key_and_stale_keys_are_pruned() {
        let dir = tempdir().with_extension("rates");
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).expect("open");
        assert_eq!(store.rate_hit("read-only", 60, 1000, false), 0);
        assert!(store.rates.is_empty(), "a read wrote a key");
        store.rate_hit("short", 60, 1000, true);
        store.rate_hit("long", 3600, 1000, true);
        assert_eq!(store.rate_hit("short", 60, 1030, false), 1);
        assert_eq!(store.prune_rates(1059).expect("prune"), 0);
        assert_eq!(store.prune_rates(1060).expect("prune"), 1);
        assert_eq!(store.rates.len(), 1);
        assert_eq!(store.rate_hit("long", 3600, 1060, false), 1);
        assert_eq!(store.prune_rates(4600).expect("prune"), 1);
        assert!(store.rates.is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn reply_times_are_pruned_after_their_period() {
        let dir = tempdir().with_extension("replies");
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).expect("open");
        assert!(store.reply_allowed("a@x", 100, 1000).expect("allowed"));
        assert!(store.reply_allowed("b@x", 100, 1050).expect("allowed"));
        assert_eq!(store.prune_replies(1001).expect("prune"), 1);
        assert_eq!(store.replies.len(), 1);
        assert!(
            !store
                .reply_allowed("b@x", 100, 1100)
                .expect("within its period")
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A milter decision stamped `time`, its queue id `Q{time}`.
    fn entry_at(time: i64, verdict: &str) -> AuditEntry {
        AuditEntry {
            id: 0,
            time,
            source: super::super::state::Source::Milter,
            queue_id: format!("Q{time}"),
            message_id: String::new(),
            ruleset_version: 1,
            host: String::new(),
            decision: serde_json::json!({"verdict": verdict, "matched": ["r1"]}),
        }
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "weir-store-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
