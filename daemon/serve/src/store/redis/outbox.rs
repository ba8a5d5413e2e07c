//! The outbox shared by every host: a Redis Stream read through one
//! consumer group, each host a consumer named after its `[store] host`.
//!
//! - An item due now is an entry of the stream (`XADD`, field `id` = the
//!   item's idempotency key); one due later (a retry after back-off) waits
//!   in `:delayed` by due time and is moved into the stream when due.
//! - A worker takes entries with `XREADGROUP` (new ones, `>`), which puts
//!   them in its pending entries list (PEL); every look at the queue also
//!   reads its own PEL again, which renews its hold on the attempts under
//!   way (their idle time starts over) and takes back, at once, what it
//!   held before a restart.
//! - Entries of a host that stopped looking (it died) go idle; once idle
//!   for `claim_timeout`, `XAUTOCLAIM` hands them to whichever host looks
//!   next.
//! - A delivered item is recorded first (its key into `:done`, the item
//!   out of every index), then its entry acknowledged (`XACK`) and
//!   deleted. An entry whose item was delivered, removed or queued again
//!   under a newer entry is acknowledged without an attempt wherever it
//!   turns up, so a host that died between recording and acknowledging
//!   costs no second delivery: one delivery per idempotency key. (A host
//!   that dies after sending but before recording is sent again by the
//!   next host, with the same `Idempotency-Key`, as on one host.)
//! - A failed attempt replaces the header, acknowledges the entry and
//!   schedules the next attempt (`:delayed`) or dead-letters the item.
//!
//! Keys, all in the `{outbox}` hash slot so each script touches one slot:
//! `:stream` (entries; group [`GROUP`]), `:entry` (id → its current
//! stream entry), `:items` (id → JSON header), `:bodies` (id → a mail's
//! bytes), `:delayed` (ids due later, by due time in ms), `:dead` (dead
//! ids by creation time), `:queue` (ids by queue position, the order of
//! `/v1/outbox`), `:seq`, `:done` (delivered ids by time).

use std::collections::HashSet;

use redis::Value;

use super::RedisStore;
use crate::outbox::{OutboxItem, Payload, State};

/// The consumer group every host's worker reads through.
const GROUP: &str = "workers";

/// Lua helpers every script that touches the stream starts with: make sure
/// the group exists (a Redis that restarted empty, or a stream created by
/// `XADD` alone, has none; reading from `0` loses nothing), put an item in
/// the stream or in `:delayed`, and take its entry out again.
const HELPERS: &str = r"
local function ensure(stream, group)
  redis.pcall('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
end
local function schedule(stream, delayed, entry, id, due, now)
  if tonumber(due) <= tonumber(now) then
    redis.call('HSET', entry, id, redis.call('XADD', stream, '*', 'id', id))
  else
    redis.call('ZADD', delayed, due, id)
  end
end
local function unschedule(stream, group, delayed, entry, id)
  local e = redis.call('HGET', entry, id)
  if e then
    redis.call('XACK', stream, group, e)
    redis.call('XDEL', stream, e)
    redis.call('HDEL', entry, id)
  end
  redis.call('ZREM', delayed, id)
end
";

/// KEYS items bodies queue dead done stream delayed entry; ARGV id header
/// body state due created seq now group. Queues an item unless its key is
/// queued or delivered; returns 1 if it did.
const ADD: &str = r"
local items, bodies, queue, dead, done, stream, delayed, entry =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local id = ARGV[1]
if redis.call('HEXISTS', items, id) == 1 or redis.call('ZSCORE', done, id) then
  return 0
end
ensure(stream, ARGV[9])
redis.call('HSET', items, id, ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', bodies, id, ARGV[3]) end
redis.call('ZADD', queue, ARGV[7], id)
if ARGV[4] == 'pending' then
  schedule(stream, delayed, entry, id, ARGV[5], ARGV[8])
else
  redis.call('ZADD', dead, ARGV[6], id)
end
return 1
";

/// KEYS items stream delayed dead entry; ARGV id header state due created
/// now group. Replaces a queued item's header, takes its entry out and
/// schedules it again (or dead-letters it); 0 when it is not queued.
const PUT: &str = r"
local items, stream, delayed, dead, entry = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, group = ARGV[1], ARGV[7]
if redis.call('HEXISTS', items, id) == 0 then return 0 end
ensure(stream, group)
redis.call('HSET', items, id, ARGV[2])
unschedule(stream, group, delayed, entry, id)
redis.call('ZREM', dead, id)
if ARGV[3] == 'pending' then
  schedule(stream, delayed, entry, id, ARGV[4], ARGV[6])
else
  redis.call('ZADD', dead, ARGV[5], id)
end
return 1
";

/// KEYS items bodies queue dead delayed done; ARGV id now. Records a
/// delivery: the key into `done`, the item out of every index (its stream
/// entry stays until [`ACK`]). Returns 1 if it was queued.
const DELIVERED: &str = r"
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[1])
local had = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return had
";

/// KEYS stream entry; ARGV id group. Acknowledges and deletes an item's
/// stream entry; 1 if it had one.
const ACK: &str = r"
ensure(KEYS[1], ARGV[2])
local e = redis.call('HGET', KEYS[2], ARGV[1])
if not e then return 0 end
redis.call('XACK', KEYS[1], ARGV[2], e)
redis.call('XDEL', KEYS[1], e)
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
";

/// KEYS items bodies queue dead delayed stream entry; ARGV id group.
/// Removes an item without delivering it (retention of dead letters):
/// 2 if it was dead, 1 if it was queued, 0 if not.
const REMOVE: &str = r"
local items, bodies, queue, dead, delayed, stream, entry =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local id = ARGV[1]
ensure(stream, ARGV[2])
unschedule(stream, ARGV[2], delayed, entry, id)
local had = redis.call('HDEL', items, id)
redis.call('HDEL', bodies, id)
redis.call('ZREM', queue, id)
local was_dead = redis.call('ZREM', dead, id)
if had == 1 and was_dead == 1 then return 2 end
return had
";

/// KEYS stream delayed entry items done; ARGV now group consumer
/// claim_timeout_ms max cursor, then the ids this host is attempting.
///
/// Moves the items of `:delayed` that are due into the stream; reads this
/// consumer's own PEL (renewing its attempts under way, taking back what
/// it held before a restart), takes over entries idle for claim_timeout
/// (`XAUTOCLAIM` from `cursor`), then reads new entries. An entry whose
/// item is gone, delivered or queued again under a newer entry is
/// acknowledged and deleted; up to `max` live items not under way are
/// returned, the others stay in this consumer's PEL for the next look.
/// Returns {ids, next cursor}.
const CLAIM: &str = r"
local stream, delayed, entry, items, done = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, group, me, idle, max = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local busy, nbusy = {}, 0
for i = 7, #ARGV do busy[ARGV[i]] = true; nbusy = nbusy + 1 end
ensure(stream, group)
for _, id in ipairs(redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', delayed, id)
  if redis.call('HEXISTS', items, id) == 1 then
    redis.call('HSET', entry, id, redis.call('XADD', stream, '*', 'id', id))
  end
end
local out, seen = {}, {}
local function consider(list)
  for _, e in ipairs(list or {}) do
    local eid, fields = e[1], e[2]
    local id = fields and fields[2]
    local live = id and redis.call('HGET', entry, id) == eid
      and redis.call('HEXISTS', items, id) == 1
      and not redis.call('ZSCORE', done, id)
    if not live then
      redis.call('XACK', stream, group, eid)
      redis.call('XDEL', stream, eid)
      if id and redis.call('HGET', entry, id) == eid then redis.call('HDEL', entry, id) end
    elseif not busy[id] and not seen[id] and #out < max then
      seen[id] = true
      table.insert(out, id)
    end
  end
end
local own = redis.call('XREADGROUP', 'GROUP', group, me, 'COUNT', nbusy + max + 1, 'STREAMS', stream, '0')
if own then consider(own[1][2]) end
local cursor = ARGV[6]
if max > 0 then
  local claimed = redis.call('XAUTOCLAIM', stream, group, me, idle, cursor, 'COUNT', max)
  cursor = claimed[1]
  consider(claimed[2])
end
if #out < max then
  local new = redis.call('XREADGROUP', 'GROUP', group, me, 'COUNT', max - #out, 'STREAMS', stream, '>')
  if new then consider(new[1][2]) end
end
return {out, cursor}
";

/// KEYS due claims delayed. Moves the pending items of the earlier
/// lease-based format (`:due`, by due time; `:claims`, the leases) into
/// `:delayed`, whence the next look moves each into the stream when due.
/// Returns how many.
const MIGRATE: &str = r"
local moved = 0
local old = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #old, 2 do
  redis.call('ZADD', KEYS[3], old[i + 1], old[i])
  moved = moved + 1
end
redis.call('DEL', KEYS[1], KEYS[2])
return moved
";

/// KEYS items dead: pending items (queued, not dead).
const PENDING: &str = r"
return redis.call('HLEN', KEYS[1]) - redis.call('ZCARD', KEYS[2])
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

    /// Runs a script of the outbox (with [`HELPERS`] in front) on `keys`
    /// (under `{outbox}`).
    fn script(&self, body: &str, keys: &[&str], args: &[&[u8]]) -> anyhow::Result<Value> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(format!("{HELPERS}{body}")).arg(keys.len());
        for k in keys {
            cmd.arg(self.outbox_key(k));
        }
        for a in args {
            cmd.arg(*a);
        }
        self.redis.run("outbox", |c| cmd.query(c))
    }

    /// Moves the pending items an earlier version of Weir left in the
    /// lease-based format into this one (at open; nothing to do after the
    /// first time), so an upgrade loses no queued side effect.
    pub(in crate::store) fn outbox_migrate(&self) -> anyhow::Result<()> {
        let moved = self.script(MIGRATE, &["due", "claims", "delayed"], &[])?;
        let moved: u64 = redis::from_redis_value(moved)?;
        if moved > 0 {
            tracing::info!("outbox: moved {moved} items of the earlier Redis format");
        }
        Ok(())
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
            &[
                "items", "bodies", "queue", "dead", "done", "stream", "delayed", "entry",
            ],
            &[
                item.id.as_bytes(),
                &header,
                body,
                state_word(item.state).as_bytes(),
                item.next_attempt_ms.to_string().as_bytes(),
                item.created.to_string().as_bytes(),
                item.seq.to_string().as_bytes(),
                crate::outbox::now_ms().to_string().as_bytes(),
                GROUP.as_bytes(),
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
    /// demand), acknowledges its entry and schedules it again or
    /// dead-letters it; `false` when it is not queued.
    pub(in crate::store) fn outbox_put(&self, item: &OutboxItem) -> anyhow::Result<bool> {
        let header = serde_json::to_vec(item)?;
        let put = self.script(
            PUT,
            &["items", "stream", "delayed", "dead", "entry"],
            &[
                item.id.as_bytes(),
                &header,
                state_word(item.state).as_bytes(),
                item.next_attempt_ms.to_string().as_bytes(),
                item.created.to_string().as_bytes(),
                crate::outbox::now_ms().to_string().as_bytes(),
                GROUP.as_bytes(),
            ],
        )?;
        Ok(put == Value::Int(1))
    }

    /// Records item `id` delivered at `done_at` (its key into `:done`, the
    /// item out of every index), then acknowledges its stream entry. A
    /// failed acknowledgement is only logged: the delivery is recorded, and
    /// whichever worker meets the entry next acknowledges it without an
    /// attempt.
    pub(in crate::store) fn outbox_delivered(&self, id: &str, done_at: i64) -> anyhow::Result<()> {
        self.outbox_record_delivered(id, done_at)?;
        if let Err(e) = self.script(
            ACK,
            &["stream", "entry"],
            &[id.as_bytes(), GROUP.as_bytes()],
        ) {
            tracing::warn!(
                "outbox: {id} is delivered but its stream entry is not acknowledged ({e:#}); \
                 the next worker that meets it acknowledges it"
            );
        }
        Ok(())
    }

    /// The first half of [`Self::outbox_delivered`]: the delivery recorded,
    /// the stream entry not yet acknowledged.
    pub(in crate::store) fn outbox_record_delivered(
        &self,
        id: &str,
        done_at: i64,
    ) -> anyhow::Result<()> {
        self.script(
            DELIVERED,
            &["items", "bodies", "queue", "dead", "delayed", "done"],
            &[id.as_bytes(), done_at.to_string().as_bytes()],
        )?;
        Ok(())
    }

    /// How many entries of the stream some host holds unacknowledged.
    #[cfg(test)]
    pub(in crate::store) fn outbox_unacknowledged(&self) -> anyhow::Result<u64> {
        let stream = self.outbox_key("stream");
        let summary: Value = self.redis.run("outbox", |c| {
            redis::cmd("XPENDING").arg(&stream).arg(GROUP).query(c)
        })?;
        let Value::Array(parts) = summary else {
            anyhow::bail!("XPENDING answered {summary:?}");
        };
        Ok(redis::from_redis_value(
            parts.into_iter().next().unwrap_or(Value::Int(0)),
        )?)
    }

    /// Removes item `id` without delivering it; whether it was queued, and
    /// whether it was dead.
    fn outbox_remove(&self, id: &str) -> anyhow::Result<(bool, bool)> {
        let removed = self.script(
            REMOVE,
            &[
                "items", "bodies", "queue", "dead", "delayed", "stream", "entry",
            ],
            &[id.as_bytes(), GROUP.as_bytes()],
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

    /// Takes up to `max` items for this host's worker (not those in
    /// `busy`, its attempts under way, whose hold it renews) and returns
    /// them: see [`CLAIM`].
    pub(in crate::store) fn outbox_due(
        &self,
        now_ms: i64,
        busy: &HashSet<String>,
        max: usize,
    ) -> anyhow::Result<Vec<OutboxItem>> {
        let cursor = self
            .autoclaim_cursor
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|_| "0-0".into());
        let mut args: Vec<Vec<u8>> = vec![
            now_ms.to_string().into_bytes(),
            GROUP.into(),
            self.host.clone().into_bytes(),
            self.claim_timeout.as_millis().to_string().into_bytes(),
            max.to_string().into_bytes(),
            cursor.into_bytes(),
        ];
        args.extend(busy.iter().map(|id| id.clone().into_bytes()));
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let claimed = self.script(
            CLAIM,
            &["stream", "delayed", "entry", "items", "done"],
            &args,
        )?;
        let (ids, next): (Vec<String>, String) = redis::from_redis_value(claimed)?;
        if let Ok(mut c) = self.autoclaim_cursor.lock() {
            *c = next;
        }
        self.outbox_items(&ids, true)
    }

    /// When the first item waiting for a later attempt is due.
    pub(in crate::store) fn outbox_next_due(&self, now_ms: i64) -> anyhow::Result<Option<i64>> {
        let delayed = self.outbox_key("delayed");
        let next: Vec<(String, f64)> = self.redis.run("outbox", |c| {
            redis::cmd("ZRANGEBYSCORE")
                .arg(&delayed)
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
        let pending = self.script(PENDING, &["items", "dead"], &[])?;
        Ok(redis::from_redis_value(pending)?)
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
            if self.outbox_remove(&id)?.1 {
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::{Duration, Instant};

    use crate::config::{Config, RedisConfig, RedisTarget, StoreBackend};
    use crate::outbox::{Kind, OutboxItem, Payload, State, now_ms};
    use crate::store::Store;
    use crate::store::test_redis::{self, RedisServer};

    fn store_named(server: &RedisServer, host: &str) -> Store {
        let mut config = Config::defaults(std::path::Path::new("r.flow"));
        // Under the server's own directory: each test has its own server,
        // so tests running at once never share a state_dir (and its lock),
        // and the directory goes when the server does.
        config.state_dir = server.dir().join(format!("state-{host}"));
        config.store.host = host.into();
        config.store.backend = StoreBackend::Redis(RedisConfig {
            target: RedisTarget::Url(server.url()),
            prefix: "cost:".into(),
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(2),
            pool_size: 4,
            audit_max_length: 1000,
            claim_timeout: Duration::from_secs(60),
            tls: Default::default(),
        });
        Store::open_config(&config).expect("open the Redis store")
    }

    fn notify(id: String, due: i64) -> OutboxItem {
        OutboxItem {
            id,
            kind: Kind::Notify,
            channel: Some("hook".into()),
            rule: "r".into(),
            message_id: "m@test".into(),
            created: due / 1000,
            attempts: 0,
            next_attempt_ms: due,
            last_error: None,
            state: State::Pending,
            seq: 0,
            host: String::new(),
            payload: Payload::Notify {
                body: serde_json::json!({"text": "x"}),
            },
        }
    }

    /// Items the lease-based format left pending (one due, one due
    /// later, one claimed by a host) are all delivered after the upgrade.
    #[test]
    fn the_earlier_format_is_moved_in_on_open() {
        if !test_redis::available() {
            return;
        }
        let server = RedisServer::start();
        let client = redis::Client::open(server.url()).expect("client");
        let mut c = client.get_connection().expect("connection");
        let later = now_ms() + 3_600_000;
        for (id, due) in [("due", 1_000), ("later", later), ("claimed", 2_000)] {
            let header = serde_json::to_string(&notify(id.into(), due)).expect("json");
            let _: () = redis::cmd("HSET")
                .arg("cost:{outbox}:items")
                .arg(id)
                .arg(header)
                .query(&mut c)
                .expect("hset");
            let _: () = redis::cmd("ZADD")
                .arg("cost:{outbox}:due")
                .arg(due)
                .arg(id)
                .query(&mut c)
                .expect("zadd");
        }
        let _: () = redis::cmd("HSET")
            .arg("cost:{outbox}:claims")
            .arg("claimed")
            .arg(format!("old-host {}", now_ms() + 60_000))
            .query(&mut c)
            .expect("hset");
        let store = store_named(&server, "mx-a");
        let none = HashSet::new();
        let mut due: Vec<String> = store
            .outbox_due(now_ms(), &none, 16)
            .into_iter()
            .map(|i| i.id)
            .collect();
        due.sort();
        assert_eq!(due, ["claimed", "due"]);
        assert_eq!(store.outbox_next_due(now_ms()), Some(later));
        assert_eq!(store.outbox_pending(), 3);
        let old: u64 = redis::cmd("EXISTS")
            .arg("cost:{outbox}:due")
            .arg("cost:{outbox}:claims")
            .query(&mut c)
            .expect("exists");
        assert_eq!(old, 0, "the old keys are gone");
        let again = store_named(&server, "mx-b");
        assert_eq!(again.outbox_pending(), 3, "a second open loses nothing");
    }

    /// What the outbox costs in Redis round trips, the figure that matters
    /// for several hosts sharing one Redis: two to queue an item, at most
    /// four per delivered item (its share of a look, the header, the
    /// record, the acknowledgement), and three per look at the queue,
    /// however many items wait for a later attempt. Prints the times too
    /// (`--nocapture`; benches/README.md).
    #[test]
    fn round_trips_per_item_and_per_look() {
        if !test_redis::available() {
            return;
        }
        let server = RedisServer::start();
        let store = store_named(&server, "mx-a");
        let n = 400;
        let (trips, clock) = (store.round_trips(), Instant::now());
        for i in 0..n {
            assert!(store.outbox_add(&notify(format!("k{i}"), 0)).expect("add"));
        }
        let queued = (store.round_trips() - trips, clock.elapsed());

        let (trips, clock) = (store.round_trips(), Instant::now());
        let (none, mut delivered) = (HashSet::new(), 0);
        while delivered < n {
            let due = store.outbox_due(now_ms(), &none, 16);
            assert!(!due.is_empty(), "{delivered} delivered, none due");
            for item in due {
                store.outbox_delivered(&item.id, 1).expect("delivered");
                delivered += 1;
            }
        }
        let sent = (store.round_trips() - trips, clock.elapsed());
        assert_eq!(store.outbox_pending(), 0);

        let later = now_ms() + 3_600_000;
        let mut looks = Vec::new();
        for waiting in [0, 10_000] {
            for i in 0..waiting {
                store
                    .outbox_add(&notify(format!("w{i}"), later))
                    .expect("add");
            }
            let (trips, clock) = (store.round_trips(), Instant::now());
            for _ in 0..100 {
                let tick = crate::outbox::tick(&store, &none, now_ms());
                assert!(tick.due.is_empty());
            }
            looks.push((waiting, store.round_trips() - trips, clock.elapsed() / 100));
        }
        let per = |d: Duration| d / n as u32;
        eprintln!(
            "queue: {} round trips per item, {:?} per item; deliver: {} round trips per item, {:?} per item",
            queued.0 as f64 / f64::from(n as u32),
            per(queued.1),
            sent.0 as f64 / f64::from(n as u32),
            per(sent.1)
        );
        for (waiting, trips, time) in &looks {
            eprintln!(
                "look with {waiting} waiting: {} round trips, {time:?}",
                trips / 100
            );
        }
        assert_eq!(queued.0, 2 * n as u64, "INCR and one script per item");
        assert!(sent.0 <= 4 * n as u64, "{} round trips for {n}", sent.0);
        assert!(looks.iter().all(|(_, trips, _)| *trips == 300), "{looks:?}");
    }
}
