//! What the learned classifiers learned, shared by every host
//! (docs/classifiers.md "Storage"). Each host classifies with a model in
//! its own memory, so classifying costs no round trip; Redis holds, per
//! classifier, under one Cluster hash tag `{learned:NAME}`:
//! - `{learned:NAME}:log`: a stream of learn events, one per class a
//!   message was added to (`d` = `+`) or removed from (`-`), with its
//!   features (`f`, 8 little-endian bytes each); a move is two events;
//! - `{learned:NAME}:digests`: a hash digest → the class the message is
//!   learned as, so a message counts once on every host;
//! - `{learned:NAME}:snapshot`: a hash with the whole model as of one
//!   event (`ms`, `seq` its stream id, `model` the model,
//!   `weir_classify::state::encode_model`) and `pending`, the events
//!   added since it was written.
//!
//! A host whose own sled holds what a classifier learned (`weir learn
//! --state`, or a single host moving to Redis) seeds Redis with it when
//! Redis has nothing for that classifier yet.
//!
//! Learning is one Lua script (read the digest record, add the events,
//! write the record: atomic, so two hosts learning the same message count
//! it once). Every host reads the events after the last one it applied
//! (one script, so it also learns whether it missed events trimmed away,
//! and then reloads the snapshot); the host that learned reads at once,
//! the others every [`crate::classifiers::FOLLOW`]. After
//! `FOLD_AFTER` events a host writes its model as the snapshot, and the
//! stream keeps only what is newer than the snapshot or a minute old.

use redis::Value;
use weir_classify::{Model, Outcome};

use super::RedisStore;

/// Learns or forgets one message, atomically. KEYS: digests, log,
/// snapshot. ARGV: digest, class, `1` to forget, the features. Returns
/// the outcome word, the class it was learned as before (or ""), and the
/// events pending since the snapshot.
const CHANGE_SCRIPT: &str = r"
local old = redis.call('HGET', KEYS[1], ARGV[1])
local class, forget, f = ARGV[2], ARGV[3] == '1', ARGV[4]
local outcome
if forget then
  if not old then return {'not learned', '', 0} end
  redis.call('XADD', KEYS[2], '*', 'c', old, 'd', '-', 'f', f)
  redis.call('HDEL', KEYS[1], ARGV[1])
  outcome = 'forgotten'
elseif old == class then
  return {'already learned', old, 0}
else
  if old then
    redis.call('XADD', KEYS[2], '*', 'c', old, 'd', '-', 'f', f)
    outcome = 'moved'
  else
    outcome = 'learned'
  end
  redis.call('XADD', KEYS[2], '*', 'c', class, 'd', '+', 'f', f)
  redis.call('HSET', KEYS[1], ARGV[1], class)
end
return {outcome, old or '', redis.call('HINCRBY', KEYS[3], 'pending', 1)}
";

/// The snapshot's id and model, and every event from it on, read at once.
/// KEYS: snapshot, log. Returns ms, seq, model ("" when none), events.
const LOAD_SCRIPT: &str = r"
local s = redis.call('HMGET', KEYS[1], 'ms', 'seq', 'model')
local from = '-'
if s[1] then from = s[1] .. '-' .. s[2] end
return {s[1] or '', s[2] or '', s[3] or '', redis.call('XRANGE', KEYS[2], from, '+')}
";

/// The events after one (ARGV[1], or "" for all), at most ARGV[2], with
/// the snapshot's id and whether that event is still in the stream.
/// KEYS: snapshot, log.
const EVENTS_SCRIPT: &str = r"
local s = redis.call('HMGET', KEYS[1], 'ms', 'seq')
local found, from = 0, '-'
if ARGV[1] ~= '' then
  from = '(' .. ARGV[1]
  if #redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1]) > 0 then found = 1 end
end
return {s[1] or '', s[2] or '', found, redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', ARGV[2])}
";

/// Writes the snapshot unless a newer one is there, then trims the events
/// older than both it and a minute (a host reading the stream a little
/// late still finds its place). KEYS: snapshot, log. ARGV: ms, seq, model.
const FOLD_SCRIPT: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'ms', 'seq')
local ms, seq = tonumber(ARGV[1]), tonumber(ARGV[2])
if cur[1] then
  local cms, cseq = tonumber(cur[1]), tonumber(cur[2])
  if cms > ms or (cms == ms and cseq >= seq) then return 0 end
end
redis.call('HSET', KEYS[1], 'ms', ARGV[1], 'seq', ARGV[2], 'model', ARGV[3], 'pending', 0)
local t = redis.call('TIME')
local minute_ago = tonumber(t[1]) * 1000 - 60000
local keep = ARGV[1] .. '-' .. ARGV[2]
if minute_ago < ms then keep = string.format('%d-0', minute_ago) end
redis.call('XTRIM', KEYS[2], 'MINID', keep)
return 1
";

/// Makes a model learned on one host (`weir learn --state`, or before
/// the store was Redis) the shared one, only while Redis has none: no
/// snapshot and no event. KEYS: snapshot, log. ARGV: the model.
const SEED_SCRIPT: &str = r"
if redis.call('HEXISTS', KEYS[1], 'ms') == 1 or redis.call('XLEN', KEYS[2]) > 0 then return 0 end
redis.call('HSET', KEYS[1], 'ms', 0, 'seq', 1, 'model', ARGV[1], 'pending', 0)
return 1
";

/// Digest records written per round trip when seeding.
const SEED_PAGE: usize = 1000;

/// Events read per round trip.
const PAGE: usize = 1000;

/// A learn event's stream id (`MS-SEQ`), in the order Redis gave them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventId {
    /// Redis's clock when it was added, in milliseconds.
    pub ms: u64,
    /// Its number within that millisecond.
    pub seq: u64,
}

impl EventId {
    fn parse(id: &str) -> Option<EventId> {
        let (ms, seq) = id.split_once('-')?;
        Some(EventId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    /// From the snapshot's `ms` and `seq` fields ("" when none).
    fn from_fields(ms: &[u8], seq: &[u8]) -> Option<EventId> {
        let (ms, seq) = (
            std::str::from_utf8(ms).ok()?,
            std::str::from_utf8(seq).ok()?,
        );
        Some(EventId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One message added to (`delta` 1) or removed from (-1) a class.
#[derive(Debug, Clone)]
pub struct LearnEvent {
    /// Its place in the stream.
    pub id: EventId,
    /// The class.
    pub class: String,
    /// 1 or -1.
    pub delta: i32,
    /// The message's features.
    pub features: Vec<u64>,
}

/// What a host that applied the events up to one finds next.
#[derive(Debug)]
pub enum NewEvents {
    /// The events after it, in order (at most a page: ask again while
    /// full).
    Events(Vec<LearnEvent>),
    /// Events it did not apply were trimmed away: load the model again.
    Missed,
}

/// Raw stream entries: id and flat field/value list.
type Raw = Vec<(String, Vec<Vec<u8>>)>;

fn events(raw: Raw) -> Vec<LearnEvent> {
    raw.into_iter()
        .filter_map(|(id, fields)| {
            let mut event = LearnEvent {
                id: EventId::parse(&id)?,
                class: String::new(),
                delta: 1,
                features: Vec::new(),
            };
            for pair in fields.chunks_exact(2) {
                match pair[0].as_slice() {
                    b"c" => event.class = String::from_utf8_lossy(&pair[1]).into_owned(),
                    b"d" => event.delta = if pair[1] == b"-" { -1 } else { 1 },
                    b"f" => event.features = weir_classify::state::decode_features(&pair[1]),
                    _ => {}
                }
            }
            Some(event)
        })
        .collect()
}

/// The shared half of the learned classifiers: a handle on the store's
/// Redis (`Store::learned_store`).
#[derive(Clone)]
pub struct SharedLearned {
    redis: std::sync::Arc<RedisStore>,
    /// This host's sled tree `classifiers`: what it holds seeds Redis
    /// when Redis has nothing for a classifier.
    local: weir_classify::SledState,
}

impl std::fmt::Debug for SharedLearned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLearned").finish_non_exhaustive()
    }
}

impl SharedLearned {
    pub(in crate::store) fn new(
        redis: std::sync::Arc<RedisStore>,
        local: weir_classify::SledState,
    ) -> SharedLearned {
        SharedLearned { redis, local }
    }

    /// The keys of classifier `name`: digests, log, snapshot.
    fn keys(&self, name: &str) -> [String; 3] {
        ["digests", "log", "snapshot"].map(|k| self.redis.key(&format!("{{learned:{name}}}:{k}")))
    }

    /// Learns (or, with `forget`, forgets) a message of classifier `name`
    /// by its digest and features; the outcome, and how many events wait
    /// to be folded into the snapshot.
    pub fn change(
        &self,
        name: &str,
        digest: &str,
        class: &str,
        forget: bool,
        features: &[u64],
    ) -> anyhow::Result<(Outcome, u64)> {
        let [digests, log, snapshot] = self.keys(name);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(CHANGE_SCRIPT)
            .arg(3)
            .arg(digests)
            .arg(log)
            .arg(snapshot)
            .arg(digest)
            .arg(class)
            .arg(if forget { "1" } else { "0" })
            .arg(weir_classify::state::encode_features(features));
        let (word, old, pending): (String, String, u64) =
            self.redis.redis.run("learn", |c| cmd.query(c))?;
        let outcome = match word.as_str() {
            "learned" => Outcome::Learned,
            "already learned" => Outcome::AlreadyLearned,
            "moved" => Outcome::Moved(old),
            "forgotten" => Outcome::Forgotten(old),
            "not learned" => Outcome::NotLearned,
            other => anyhow::bail!("the learn script answered {other:?}"),
        };
        Ok((outcome, pending))
    }

    /// Classifier `name`'s model as every host learned it, and the last
    /// event it includes (`None`: none yet). When Redis has nothing for
    /// it and this host's sled does, that is written first, with its
    /// digest records.
    pub fn load(&self, name: &str) -> anyhow::Result<(Model, Option<EventId>)> {
        let (model, seen) = self.load_shared(name)?;
        if seen.is_some() || model.learned().next().is_some() {
            return Ok((model, seen));
        }
        let local = weir_classify::state::load(&self.local, name)?;
        if local.learned().next().is_none() || !self.seed(name, &local)? {
            return Ok((model, seen));
        }
        tracing::info!(
            "classifier {name}: what this host learned before ({} features) is now shared in Redis",
            local.vocabulary()
        );
        self.load_shared(name)
    }

    /// Writes `model` as the first snapshot, then the local digest
    /// records; whether Redis took it (it had nothing).
    fn seed(&self, name: &str, model: &Model) -> anyhow::Result<bool> {
        let [digests, log, snapshot] = self.keys(name);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SEED_SCRIPT)
            .arg(2)
            .arg(snapshot)
            .arg(log)
            .arg(weir_classify::state::encode_model(model));
        let written: Value = self.redis.redis.run("learned seed", |c| cmd.query(c))?;
        if written != Value::Int(1) {
            return Ok(false);
        }
        let records = weir_classify::state::digests(&self.local, name)?;
        for page in records.chunks(SEED_PAGE) {
            let mut cmd = redis::cmd("HSET");
            cmd.arg(&digests);
            for (digest, class) in page {
                cmd.arg(digest).arg(class);
            }
            self.redis
                .redis
                .run("learned seed", |c| cmd.query::<Value>(c))?;
        }
        Ok(true)
    }

    fn load_shared(&self, name: &str) -> anyhow::Result<(Model, Option<EventId>)> {
        let [_, log, snapshot] = self.keys(name);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(LOAD_SCRIPT).arg(2).arg(snapshot).arg(log);
        let (ms, seq, bytes, raw): (Vec<u8>, Vec<u8>, Vec<u8>, Raw) =
            self.redis.redis.run("learned model", |c| cmd.query(c))?;
        let mut seen = EventId::from_fields(&ms, &seq);
        let mut model = if bytes.is_empty() {
            Model::default()
        } else {
            weir_classify::state::decode_model(&bytes).ok_or_else(|| {
                anyhow::anyhow!("the snapshot of classifier {name:?} in Redis is not a model")
            })?
        };
        for e in events(raw) {
            if seen.is_some_and(|s| e.id <= s) {
                continue;
            }
            model.add(&e.class, &e.features, e.delta);
            seen = Some(e.id);
        }
        Ok((model, seen))
    }

    /// The events after `seen` (`None`: from the first), a page at most.
    pub fn events_after(&self, name: &str, seen: Option<EventId>) -> anyhow::Result<NewEvents> {
        let [_, log, snapshot] = self.keys(name);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(EVENTS_SCRIPT)
            .arg(2)
            .arg(snapshot)
            .arg(log)
            .arg(seen.map(|s| s.to_string()).unwrap_or_default())
            .arg(PAGE);
        let (ms, seq, found, raw): (Vec<u8>, Vec<u8>, i64, Raw) =
            self.redis.redis.run("learn events", |c| cmd.query(c))?;
        let snapshot = EventId::from_fields(&ms, &seq);
        // A snapshot newer than what this host applied, and its last event
        // trimmed away: the events in between may be gone too.
        if found == 0 && snapshot.is_some_and(|s| seen.is_none_or(|seen| s > seen)) {
            return Ok(NewEvents::Missed);
        }
        Ok(NewEvents::Events(events(raw)))
    }

    /// Writes `model`, which includes the events up to `seen`, as the
    /// snapshot (unless a newer one is there) and trims the stream;
    /// whether it was written.
    pub fn fold(&self, name: &str, seen: EventId, model: &Model) -> anyhow::Result<bool> {
        let [_, log, snapshot] = self.keys(name);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(FOLD_SCRIPT)
            .arg(2)
            .arg(snapshot)
            .arg(log)
            .arg(seen.ms)
            .arg(seen.seq)
            .arg(weir_classify::state::encode_model(model));
        let written: Value = self.redis.redis.run("learned snapshot", |c| cmd.query(c))?;
        Ok(written == Value::Int(1))
    }
}
