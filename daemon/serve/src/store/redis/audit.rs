//! The audit log as a Redis stream: one entry per decision, from every
//! host, trimmed by length as it is appended and by age by the retention
//! task. An entry's id is its stream id `MS-SEQ` read as `MS * 1000 + SEQ`:
//! increasing across hosts, as the API's `since=ID` needs, and exact in a
//! JSON number (below 2^53).

use std::collections::HashMap;

use super::RedisStore;
use crate::state::AuditEntry;
use crate::store::AuditFilter;

/// Replaces an amended decision only if nobody amended it meanwhile
/// (KEYS[1] the amendments hash; ARGV id, the value read or "", the new).
const AMEND_SCRIPT: &str = r"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (cur == false and ARGV[2] == '') or cur == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0
";

/// Entries read per round trip when listing.
const PAGE: usize = 256;

fn stream_id(id: u64) -> String {
    format!("{}-{}", id / 1000, id % 1000)
}

fn entry_id(stream_id: &str) -> Option<u64> {
    let (ms, seq) = stream_id.split_once('-')?;
    let (ms, seq): (u64, u64) = (ms.parse().ok()?, seq.parse().ok()?);
    (seq < 1000).then(|| ms * 1000 + seq)
}

/// Raw stream entries: id and flat field/value list.
type Raw = Vec<(String, Vec<Vec<u8>>)>;

impl RedisStore {
    fn audit_key(&self) -> String {
        self.key("{audit}")
    }

    fn amend_key(&self) -> String {
        self.key("{audit}:amend")
    }

    /// Appends `entry`, trimming the stream to about `audit_max_length`;
    /// returns its id.
    pub(in crate::store) fn append_audit<D: serde::Serialize>(
        &self,
        entry: &AuditEntry<D>,
    ) -> anyhow::Result<u64> {
        let value = serde_json::to_vec(entry)?;
        let key = self.audit_key();
        let sid: String = self.redis.run("audit", |c| {
            redis::cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.audit_max_length)
                .arg("*")
                .arg("e")
                .arg(value)
                .query(c)
        })?;
        entry_id(&sid).ok_or_else(|| anyhow::anyhow!("audit stream id {sid:?} out of range"))
    }

    /// Changes the decision of entry `id`; `false` when it is gone.
    pub(in crate::store) fn amend_audit(
        &self,
        id: u64,
        change: impl Fn(&mut serde_json::Value),
    ) -> anyhow::Result<bool> {
        let amend = self.amend_key();
        for _ in 0..16 {
            let current: Option<Vec<u8>> = self
                .redis
                .run("audit", |c| redis::cmd("HGET").arg(&amend).arg(id).query(c))?;
            let mut entry = match &current {
                Some(bytes) => serde_json::from_slice::<AuditEntry>(bytes)?,
                None => match self.audit_entry(id)? {
                    Some(entry) => entry,
                    None => return Ok(false),
                },
            };
            change(&mut entry.decision);
            let new = serde_json::to_vec(&entry)?;
            let swapped: i64 = self.redis.run("audit", |c| {
                redis::cmd("EVAL")
                    .arg(AMEND_SCRIPT)
                    .arg(1)
                    .arg(&amend)
                    .arg(id)
                    .arg(current.as_deref().unwrap_or(b""))
                    .arg(new)
                    .query(c)
            })?;
            if swapped == 1 {
                return Ok(true);
            }
        }
        anyhow::bail!("audit entry {id}: amended concurrently too often")
    }

    /// One entry, amended.
    pub(in crate::store) fn audit_entry(&self, id: u64) -> anyhow::Result<Option<AuditEntry>> {
        let key = self.audit_key();
        let sid = stream_id(id);
        let raw: Raw = self.redis.run("audit", |c| {
            redis::cmd("XRANGE").arg(&key).arg(&sid).arg(&sid).query(c)
        })?;
        Ok(self.decode(raw)?.pop())
    }

    /// The newest `limit` entries matching `filter`, oldest first.
    pub(in crate::store) fn audit_entries(
        &self,
        filter: &AuditFilter,
        limit: usize,
    ) -> anyhow::Result<Vec<AuditEntry>> {
        let key = self.audit_key();
        let floor = filter
            .after_id
            .map_or_else(|| "-".to_string(), |id| format!("({}", stream_id(id)));
        let mut end = "+".to_string();
        let mut out = Vec::new();
        while out.len() < limit {
            let raw: Raw = self.redis.run("audit", |c| {
                redis::cmd("XREVRANGE")
                    .arg(&key)
                    .arg(&end)
                    .arg(&floor)
                    .arg("COUNT")
                    .arg(PAGE)
                    .query(c)
            })?;
            let Some((last, _)) = raw.last() else { break };
            end = format!("({last}");
            let full = raw.len() == PAGE;
            for entry in self.decode(raw)? {
                if filter.matches(&entry) && out.len() < limit {
                    out.push(entry);
                }
            }
            if !full {
                break;
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Stream entries as audit entries, with their ids and amendments.
    fn decode(&self, raw: Raw) -> anyhow::Result<Vec<AuditEntry>> {
        let ids: Vec<u64> = raw.iter().filter_map(|(sid, _)| entry_id(sid)).collect();
        let amended = self.amended(&ids)?;
        let mut out = Vec::with_capacity(raw.len());
        for (sid, fields) in raw {
            let Some(id) = entry_id(&sid) else { continue };
            let body = amended
                .get(&id)
                .or_else(|| fields.get(1))
                .map(Vec::as_slice);
            let Some(Ok(mut entry)) = body.map(serde_json::from_slice::<AuditEntry>) else {
                continue;
            };
            entry.id = id;
            out.push(entry);
        }
        Ok(out)
    }

    fn amended(&self, ids: &[u64]) -> anyhow::Result<HashMap<u64, Vec<u8>>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let key = self.amend_key();
        let values: Vec<Option<Vec<u8>>> = self
            .redis
            .run("audit", |c| redis::cmd("HMGET").arg(&key).arg(ids).query(c))?;
        Ok(ids
            .iter()
            .zip(values)
            .filter_map(|(id, v)| Some((*id, v?)))
            .collect())
    }

    /// Deletes the entries appended before `cutoff` (seconds since the
    /// epoch), and their amendments; returns how many entries went.
    pub(in crate::store) fn prune_audit(&self, cutoff: i64) -> anyhow::Result<usize> {
        let key = self.audit_key();
        let min_ms = u64::try_from(cutoff).unwrap_or(0).saturating_mul(1000);
        let removed: usize = self.redis.run("audit", |c| {
            redis::cmd("XTRIM")
                .arg(&key)
                .arg("MINID")
                .arg(format!("{min_ms}-0"))
                .query(c)
        })?;
        let amend = self.amend_key();
        let ids: Vec<u64> = self
            .redis
            .run("audit", |c| redis::cmd("HKEYS").arg(&amend).query(c))?;
        let old: Vec<u64> = ids.into_iter().filter(|id| *id < min_ms * 1000).collect();
        if !old.is_empty() {
            self.redis.run("audit", |c| {
                redis::cmd("HDEL").arg(&amend).arg(&old).query::<u64>(c)
            })?;
        }
        Ok(removed)
    }
}
