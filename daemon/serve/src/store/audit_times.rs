//! The audit log's time index (sled tree `audit_times`): one empty-valued
//! key per entry, its time then its id, so that the hourly retention run
//! deletes the entries that expired, and a listing from a time on
//! (`/v1/actions?since=`, the console's Overview of the last day) finds
//! its entries, without reading the whole log.
//!
//! Ids follow the clock only while it never steps back, and an entry
//! stamped in the future (a clock that jumped forward, then was corrected)
//! must not keep later ones from expiring: the index orders by time, so
//! neither needs the log read in id order.
//!
//! The index is brought up to date by the retention run itself
//! ([`catch_up`]), from the entries written since the run before, not by
//! each decision: a message's recording pays no second insert (about 7 µs
//! with sled), and each run reads only the last hour's entries, still in
//! sled's cache. A log from before the index is indexed by the first run.
//!
//! **Invariant**: every audit entry with an id up to the `meta` key
//! [`THROUGH`] has its key here. Ids are handed out and entries inserted
//! in one step (`Store::write_audit`), so an entry never appears behind
//! one already indexed.

use super::{audit_time, read_u64};

/// The `meta` key: the greatest id whose entry has its index key.
const THROUGH: &[u8] = b"audit_times_through";

/// The index key of entry `id` stamped `time` (seconds since the epoch):
/// ordered by time, then by id.
pub(super) fn key(time: i64, id: u64) -> [u8; 16] {
    let mut key = [0; 16];
    // The sign bit flipped, so that times before 1970 sort first.
    let time = time.cast_unsigned() ^ (1 << 63);
    key[..8].copy_from_slice(&time.to_be_bytes());
    key[8..].copy_from_slice(&id.to_be_bytes());
    key
}

/// The id in index key `key`.
pub(super) fn id(key: &[u8]) -> Option<u64> {
    read_u64(key.get(8..)?)
}

/// Gives the entries written since the last call their index keys.
pub(super) fn catch_up(
    audit: &sled::Tree,
    index: &sled::Tree,
    meta: &sled::Tree,
) -> sled::Result<()> {
    let mut last = None;
    for item in audit.range(not_indexed(meta)?.to_be_bytes()..) {
        let (id, entry) = item?;
        let Some(id) = read_u64(&id) else { continue };
        index.insert(key(audit_time(&entry), id), &[])?;
        last = Some(id);
    }
    // sled recovers a prefix of the writes: with the mark, every key above.
    if let Some(last) = last {
        meta.insert(THROUGH, &last.to_be_bytes())?;
    }
    Ok(())
}

/// The first id whose entry may have no index key yet.
fn not_indexed(meta: &sled::Tree) -> sled::Result<u64> {
    let through = meta.get(THROUGH)?.and_then(|v| read_u64(&v));
    Ok(through.map_or(0, |id| id.saturating_add(1)))
}

/// The lowest id whose entry may be stamped at or after `since`: the
/// lowest the index holds from `since` on, or the first entry it does not
/// hold yet. No entry below it is.
pub(super) fn first_since(index: &sled::Tree, meta: &sled::Tree, since: i64) -> sled::Result<u64> {
    let mut first = not_indexed(meta)?;
    for item in index.range(key(since, 0)..) {
        first = id(&item?.0).map_or(first, |id| id.min(first));
    }
    Ok(first)
}

/// The keys of the entries stamped before `cutoff`, oldest first.
pub(super) fn expired(index: &sled::Tree, cutoff: i64) -> sled::Iter {
    index.range(..key(cutoff, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_time_then_id_across_the_epoch() {
        let keys = [
            key(i64::MIN, 9),
            key(-5, 1),
            key(0, 0),
            key(0, 7),
            key(100, 2),
            key(i64::MAX, 0),
        ];
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert_eq!(id(&key(-5, 42)), Some(42));
        assert_eq!(id(b"short"), None);
    }
}
