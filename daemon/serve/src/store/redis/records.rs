//! `rate()` counters, `duplicate()` records, reply-once times, the LMTP
//! delivery index, the quarantine index and the counters, in Redis.

use std::sync::atomic::{AtomicU64, Ordering};

use redis::Value;

use super::RedisStore;
use crate::store::{DeliveryRecord, QuarantineEntry};

/// One sliding window, atomically: KEYS[1] the hit times (a sorted set,
/// scored by second), KEYS[2] the largest window asked of the key; ARGV
/// now, window, 1 to count a hit, the hit's unique member. Counting drops
/// the hits no window can see and keeps both keys for that window; a
/// read writes nothing. Returns the hits within the window, as the sled
/// store counts them (`now - t < window`).
const RATE_SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local w = tonumber(ARGV[2])
if ARGV[3] == '1' then
  local maxw = tonumber(redis.call('GET', KEYS[2]) or '0')
  if w > maxw then maxw = w end
  redis.call('SET', KEYS[2], maxw, 'EX', maxw + 60)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - maxw)
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('EXPIRE', KEYS[1], maxw + 60)
end
return redis.call('ZCOUNT', KEYS[1], now - w + 1, '+inf')
";

/// Makes hit members unique within a process; the host name and process
/// id make them unique across hosts.
static HIT_SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl RedisStore {
    fn rate_keys(&self, key: &str) -> (String, String) {
        let zset = self.key(&format!("{{rate:{key}}}"));
        let window = format!("{zset}:w");
        (zset, window)
    }

    fn rate_command(&self, key: &str, window_secs: u64, now: i64, count: bool) -> redis::Cmd {
        let (zset, window) = self.rate_keys(key);
        let member = format!(
            "{now}:{}:{}:{}",
            self.host,
            std::process::id(),
            HIT_SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RATE_SCRIPT)
            .arg(2)
            .arg(zset)
            .arg(window)
            .arg(now)
            .arg(window_secs.min(i64::MAX as u64))
            .arg(if count { "1" } else { "0" })
            .arg(member);
        cmd
    }

    /// Counts (if `count`) and reads one key's window.
    pub(in crate::store) fn rate_hit(
        &self,
        key: &str,
        window_secs: u64,
        now: i64,
        count: bool,
    ) -> anyhow::Result<u64> {
        let cmd = self.rate_command(key, window_secs, now, count);
        self.redis.run("rate", |c| cmd.query(c))
    }

    /// Reads the hits within each `(key, window)` in one round trip (one
    /// pipeline of the read-only script; in a Cluster, one pipeline per
    /// master holding a key), in order.
    pub(in crate::store) fn rate_counts(
        &self,
        keys: &[(String, u64)],
        now: i64,
    ) -> anyhow::Result<Vec<u64>> {
        let commands = keys
            .iter()
            .map(|(key, window)| self.rate_command(key, *window, now, false))
            .collect();
        let replies = self.redis.batch("rate", commands)?;
        replies
            .into_iter()
            .map(|v| redis::from_redis_value::<u64>(v).map_err(anyhow::Error::from))
            .collect()
    }

    /// Counts a hit for every `(key, window)` in one round trip (one
    /// pipeline; in a Cluster, one per node holding a key).
    pub(in crate::store) fn rate_hits(
        &self,
        hits: &[(String, u64)],
        now: i64,
    ) -> anyhow::Result<()> {
        let commands = hits
            .iter()
            .map(|(key, window)| self.rate_command(key, *window, now, true))
            .collect();
        self.redis.batch("rate", commands).map(drop)
    }

    fn duplicate_key(&self, scope: &str, key: &str) -> String {
        self.key(&format!("dup:{scope}\0{key}"))
    }

    /// The time a copy carrying `key` was recorded for `scope`, if any.
    pub(in crate::store) fn duplicate_time(
        &self,
        scope: &str,
        key: &str,
    ) -> anyhow::Result<Option<i64>> {
        let k = self.duplicate_key(scope, key);
        self.redis
            .run("duplicate", |c| redis::cmd("GET").arg(&k).query(c))
    }

    /// Records `keys` for `scope` at `now`, each expiring after the
    /// retention, in one round trip.
    pub(in crate::store) fn record_duplicates(
        &self,
        scope: &str,
        keys: &[String],
        now: i64,
    ) -> anyhow::Result<()> {
        let commands = keys
            .iter()
            .map(|key| {
                let mut cmd = redis::cmd("SET");
                cmd.arg(self.duplicate_key(scope, key))
                    .arg(now)
                    .arg("EX")
                    .arg(self.retention);
                cmd
            })
            .collect();
        self.redis.batch("duplicate", commands).map(drop)
    }

    /// Whether `sender` may get an auto-reply now; if so, the time is set
    /// in the same command (`SET NX EX`), so two hosts never both reply.
    pub(in crate::store) fn reply_allowed(
        &self,
        sender: &str,
        period_secs: u64,
        now: i64,
    ) -> anyhow::Result<bool> {
        let key = self.key(&format!("reply:{}", sender.to_ascii_lowercase()));
        let set: Option<String> = self.redis.run("reply", |c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(now)
                .arg("NX")
                .arg("EX")
                .arg(period_secs.max(1))
                .query(c)
        })?;
        Ok(set.is_some())
    }

    /// The recorded LMTP delivery of `key`.
    pub(in crate::store) fn delivery(&self, key: &str) -> anyhow::Result<Option<DeliveryRecord>> {
        let k = self.key(&format!("dlv:{key}"));
        let value: Option<Vec<u8>> = self
            .redis
            .run("delivery", |c| redis::cmd("GET").arg(&k).query(c))?;
        Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Records the LMTP delivery of `key`, expiring after the retention.
    pub(in crate::store) fn put_delivery(
        &self,
        key: &str,
        record: &DeliveryRecord,
    ) -> anyhow::Result<()> {
        let k = self.key(&format!("dlv:{key}"));
        let value = serde_json::to_vec(record)?;
        self.redis.run("delivery", |c| {
            redis::cmd("SET")
                .arg(&k)
                .arg(value)
                .arg("EX")
                .arg(self.retention)
                .query(c)
        })
    }

    /// The next value of a shared counter (`ruleset_version`, `ids`).
    pub(in crate::store) fn increment(&self, name: &str) -> anyhow::Result<u64> {
        let k = self.key(name);
        self.redis
            .run(name, |c| redis::cmd("INCR").arg(&k).query(c))
    }

    fn quarantine_key(&self) -> String {
        self.key("{quarantine}")
    }

    /// Records a held message in the shared index.
    pub(in crate::store) fn put_quarantine(&self, entry: &QuarantineEntry) -> anyhow::Result<()> {
        let value = serde_json::to_vec(entry)?;
        let k = self.quarantine_key();
        self.redis.run("quarantine", |c| {
            redis::cmd("HSET")
                .arg(&k)
                .arg(&entry.queue_id)
                .arg(value)
                .query(c)
        })
    }

    /// Every held message, any host's.
    pub(in crate::store) fn quarantine_entries(&self) -> anyhow::Result<Vec<QuarantineEntry>> {
        let k = self.quarantine_key();
        let all: Vec<(String, Vec<u8>)> = self
            .redis
            .run("quarantine", |c| redis::cmd("HGETALL").arg(&k).query(c))?;
        Ok(all
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect())
    }

    /// One held message.
    pub(in crate::store) fn quarantine_entry(
        &self,
        id: &str,
    ) -> anyhow::Result<Option<QuarantineEntry>> {
        let k = self.quarantine_key();
        let value: Option<Vec<u8>> = self.redis.run("quarantine", |c| {
            redis::cmd("HGET").arg(&k).arg(id).query(c)
        })?;
        Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Forgets a held message; whether it was there. The one host whose
    /// `HDEL` removes it is the one that releases or deletes it.
    pub(in crate::store) fn remove_quarantine(&self, id: &str) -> anyhow::Result<bool> {
        let k = self.quarantine_key();
        let removed: u64 = self.redis.run("quarantine", |c| {
            redis::cmd("HDEL").arg(&k).arg(id).query(c)
        })?;
        Ok(removed > 0)
    }

    /// Stores the held copy of an LMTP quarantine, so any host can release
    /// it.
    pub(in crate::store) fn put_held_copy(&self, id: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let k = self.key(&format!("{{quarantine}}:copy:{id}"));
        self.redis.run("held copy", |c| {
            redis::cmd("SET").arg(&k).arg(bytes).query(c)
        })
    }

    /// The held copy of an LMTP quarantine.
    pub(in crate::store) fn held_copy(&self, id: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let k = self.key(&format!("{{quarantine}}:copy:{id}"));
        self.redis
            .run("held copy", |c| redis::cmd("GET").arg(&k).query(c))
    }

    /// Deletes the held copy of an LMTP quarantine.
    pub(in crate::store) fn remove_held_copy(&self, id: &str) -> anyhow::Result<()> {
        let k = self.key(&format!("{{quarantine}}:copy:{id}"));
        self.redis
            .run("held copy", |c| redis::cmd("DEL").arg(&k).query::<Value>(c))
            .map(drop)
    }

    /// A value under the prefix (cluster-wide settings: `cluster.rs`).
    pub(in crate::store) fn get_raw(&self, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let k = self.key(name);
        self.redis.run(name, |c| redis::cmd("GET").arg(&k).query(c))
    }

    /// Sets a value under the prefix.
    pub(in crate::store) fn set_raw(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let k = self.key(name);
        self.redis
            .run(name, |c| redis::cmd("SET").arg(&k).arg(bytes).query(c))
    }

    /// Sets one field of a hash under the prefix.
    pub(in crate::store) fn hset_raw(
        &self,
        name: &str,
        field: &str,
        bytes: &[u8],
    ) -> anyhow::Result<()> {
        let k = self.key(name);
        self.redis
            .run(name, |c| {
                redis::cmd("HSET")
                    .arg(&k)
                    .arg(field)
                    .arg(bytes)
                    .query::<Value>(c)
            })
            .map(drop)
    }

    /// Every field of a hash under the prefix.
    pub(in crate::store) fn hgetall_raw(
        &self,
        name: &str,
    ) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let k = self.key(name);
        self.redis
            .run(name, |c| redis::cmd("HGETALL").arg(&k).query(c))
    }
}
