//! The outbox shared by every host. Each item is claimed by one host's
//! worker for `claim_timeout` (a lease, set atomically by a Lua script as
//! the worker takes due items); an attempt's outcome releases it. An item
//! claimed by a host that died is due again once the lease has run out,
//! and another host's worker takes it over. A delivered item leaves every
//! index in one script and its key goes to `{outbox}:done`, so it is
//! never delivered again; the same idempotency key goes with every
//! attempt, as with sled.
//!
//! Keys, all in the `{outbox}` hash slot so each script touches one slot:
//! `:items` (id → JSON header), `:bodies` (id → a mail's bytes), `:due`
//! (pending ids by due time, ms), `:dead` (dead ids by creation time),
//! `:queue` (ids by queue position), `:seq`, `:done` (delivered ids by
//! time), `:claims` (id → "HOST DEADLINE_MS").

use std::collections::HashSet;

use redis::Value;

use super::RedisStore;
use crate::outbox::{OutboxItem, Payload, State};

const ADD: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('ZSCORE', KEYS[6], ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], ARGV[1], ARGV[3]) end
if ARGV[4] == 'pending' then
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
else
  redis.call('ZADD', KEYS[5], ARGV[6], ARGV[1])
end
redis.call('ZADD', KEYS[4], ARGV[7], ARGV[1])
return 1
";

const PUT: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[3] == 'pending' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
else
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
end
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
";

/// KEYS items bodies due dead queue claims done; ARGV id, delivered time
/// (empty: removed without being delivered). Returns 1 if it was queued.
const REMOVE: &str = r"
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[7], ARGV[2], ARGV[1]) end
local had = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local dead = redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('HDEL', KEYS[6], ARGV[1])
if had == 1 and dead == 1 then return 2 end
return had
";

/// KEYS due claims; ARGV now_ms, lease_ms, host, max. Claims up to `max`
/// due items whose claim is absent or has run out; returns their ids.
const CLAIM: &str = r"
local now = tonumber(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]) * 4)
local out = {}
for _, id in ipairs(ids) do
  if #out >= tonumber(ARGV[4]) then break end
  local claim = redis.call('HGET', KEYS[2], id)
  local deadline = claim and tonumber(string.match(claim, '(%d+)$')) or 0
  if deadline < now then
    redis.call('HSET', KEYS[2], id, ARGV[3] .. ' ' .. (now + tonumber(ARGV[2])))
    table.insert(out, id)
  end
end
return out
";

const KNOWN: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 1
end
return 0
";

fn state_word(state: State) -> &'static str {
    match state {
        State::Pending => "pending",
        State::Dead => "dead",
    }
}

impl RedisStore {
    fn outbox_key(&self, part: &str) -> String {
        self.key(&format!("{{outbox}}:{part}"))
    }

    fn script(&self, body: &str, keys: &[&str], args: &[&[u8]]) -> anyhow::Result<Value> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(body).arg(keys.len());
        for k in keys {
            cmd.arg(self.outbox_key(k));
        }
        for a in args {
            cmd.arg(*a);
        }
        self.redis.run("outbox", |c| cmd.query(c))
    }

    /// Queues `item` unless its key is queued or delivered.
    pub(in crate::store) fn outbox_add(&self, item: &OutboxItem) -> anyhow::Result<bool> {
        let mut item = item.clone();
        let seq_key = self.outbox_key("seq");
        item.seq = self
            .redis
            .run("outbox", |c| redis::cmd("INCR").arg(&seq_key).query(c))?;
        item.host = self.host.clone();
        let header = serde_json::to_vec(&item)?;
        let body = match &item.payload {
            Payload::Mail { data, .. } => data.as_slice(),
            Payload::Notify { .. } => b"",
        };
        let added = self.script(
            ADD,
            &["items", "bodies", "due", "queue", "dead", "done"],
            &[
                item.id.as_bytes(),
                &header,
                body,
                state_word(item.state).as_bytes(),
                item.next_attempt_ms.to_string().as_bytes(),
                item.created.to_string().as_bytes(),
                item.seq.to_string().as_bytes(),
            ],
        )?;
        Ok(added == Value::Int(1))
    }

    /// Whether a side effect with this key is queued or was delivered.
    pub(in crate::store) fn outbox_known(&self, id: &str) -> anyhow::Result<bool> {
        let known = self.script(KNOWN, &["items", "done"], &[id.as_bytes()])?;
        Ok(known == Value::Int(1))
    }

    /// Replaces a queued item's header after an attempt (or a retry on
    /// demand) and releases its claim; `false` when it is not queued.
    pub(in crate::store) fn outbox_put(&self, item: &OutboxItem) -> anyhow::Result<bool> {
        let header = serde_json::to_vec(item)?;
        let put = self.script(
            PUT,
            &["items", "due", "dead", "claims"],
            &[
                item.id.as_bytes(),
                &header,
                state_word(item.state).as_bytes(),
                item.next_attempt_ms.to_string().as_bytes(),
                item.created.to_string().as_bytes(),
            ],
        )?;
        Ok(put == Value::Int(1))
    }

    /// Removes item `id` from every index (recording it delivered at
    /// `done_at`); whether it was queued, and whether it was dead.
    pub(in crate::store) fn outbox_remove(
        &self,
        id: &str,
        done_at: Option<i64>,
    ) -> anyhow::Result<(bool, bool)> {
        let done = done_at.map(|t| t.to_string()).unwrap_or_default();
        let removed = self.script(
            REMOVE,
            &["items", "bodies", "due", "dead", "queue", "claims", "done"],
            &[id.as_bytes(), done.as_bytes()],
        )?;
        Ok(match removed {
            Value::Int(2) => (true, true),
            Value::Int(1) => (true, false),
            _ => (false, false),
        })
    }

    /// One queued item, with its mail's bytes.
    pub(in crate::store) fn outbox_item(&self, id: &str) -> anyhow::Result<Option<OutboxItem>> {
        Ok(self.outbox_items(&[id.to_string()], true)?.pop())
    }

    /// Queued items by id (those still queued), with or without bytes.
    fn outbox_items(&self, ids: &[String], bodies: bool) -> anyhow::Result<Vec<OutboxItem>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let items_key = self.outbox_key("items");
        let headers: Vec<Option<Vec<u8>>> = self.redis.run("outbox", |c| {
            redis::cmd("HMGET").arg(&items_key).arg(ids).query(c)
        })?;
        let mut out: Vec<OutboxItem> = headers
            .into_iter()
            .flatten()
            .filter_map(|h| serde_json::from_slice(&h).ok())
            .collect();
        let mail: Vec<String> = out
            .iter()
            .filter(|i| matches!(i.payload, Payload::Mail { .. }))
            .map(|i| i.id.clone())
            .collect();
        if bodies && !mail.is_empty() {
            let bodies_key = self.outbox_key("bodies");
            let data: Vec<Option<Vec<u8>>> = self.redis.run("outbox", |c| {
                redis::cmd("HMGET").arg(&bodies_key).arg(&mail).query(c)
            })?;
            for (id, bytes) in mail.iter().zip(data) {
                let item = out.iter_mut().find(|i| &i.id == id);
                if let Some(OutboxItem {
                    payload: Payload::Mail { data, .. },
                    ..
                }) = item
                {
                    *data = bytes.unwrap_or_default();
                }
            }
        }
        Ok(out)
    }

    /// Claims up to `max` due items for this host (not those in `skip`,
    /// attempts of its own under way) and returns them.
    pub(in crate::store) fn outbox_due(
        &self,
        now_ms: i64,
        skip: &HashSet<String>,
        max: usize,
    ) -> anyhow::Result<Vec<OutboxItem>> {
        let lease = self.claim_timeout.as_millis().to_string();
        let claimed = self.script(
            CLAIM,
            &["due", "claims"],
            &[
                now_ms.to_string().as_bytes(),
                lease.as_bytes(),
                self.host.as_bytes(),
                max.to_string().as_bytes(),
            ],
        )?;
        let ids: Vec<String> = redis::from_redis_value(claimed)?;
        let ids: Vec<String> = ids.into_iter().filter(|id| !skip.contains(id)).collect();
        self.outbox_items(&ids, true)
    }

    /// When the first pending item after `now_ms` is due.
    pub(in crate::store) fn outbox_next_due(&self, now_ms: i64) -> anyhow::Result<Option<i64>> {
        let due = self.outbox_key("due");
        let next: Vec<(String, f64)> = self.redis.run("outbox", |c| {
            redis::cmd("ZRANGEBYSCORE")
                .arg(&due)
                .arg(format!("({now_ms}"))
                .arg("+inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(1)
                .query(c)
        })?;
        Ok(next.first().map(|(_, score)| *score as i64))
    }

    /// Pending items of every host.
    pub(in crate::store) fn outbox_pending(&self) -> anyhow::Result<i64> {
        let due = self.outbox_key("due");
        self.redis
            .run("outbox", |c| redis::cmd("ZCARD").arg(&due).query(c))
    }

    /// Queued items in queue order after position `after`, at most `limit`.
    pub(in crate::store) fn outbox_page(
        &self,
        after: u64,
        limit: usize,
    ) -> anyhow::Result<Vec<OutboxItem>> {
        let queue = self.outbox_key("queue");
        let ids: Vec<String> = self.redis.run("outbox", |c| {
            redis::cmd("ZRANGEBYSCORE")
                .arg(&queue)
                .arg(format!("({after}"))
                .arg("+inf")
                .arg("LIMIT")
                .arg(0)
                .arg(limit)
                .query(c)
        })?;
        self.outbox_items(&ids, false)
    }

    /// Dead items created before `cutoff` (seconds), removed; how many.
    pub(in crate::store) fn prune_dead_outbox(&self, cutoff: i64) -> anyhow::Result<usize> {
        let dead = self.outbox_key("dead");
        let ids: Vec<String> = self.redis.run("outbox", |c| {
            redis::cmd("ZRANGEBYSCORE")
                .arg(&dead)
                .arg("-inf")
                .arg(format!("({cutoff}"))
                .query(c)
        })?;
        let mut removed = 0;
        for id in ids {
            if self.outbox_remove(&id, None)?.1 {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Forgets delivered keys older than `cutoff` (seconds); how many.
    pub(in crate::store) fn prune_outbox_done(&self, cutoff: i64) -> anyhow::Result<usize> {
        let done = self.outbox_key("done");
        self.redis.run("outbox", |c| {
            redis::cmd("ZREMRANGEBYSCORE")
                .arg(&done)
                .arg("-inf")
                .arg(format!("({cutoff}"))
                .query(c)
        })
    }
}
