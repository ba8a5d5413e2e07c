//! The outbox's trees. An item is a small JSON header (`outbox_items`,
//! everything but a mail's bytes) and, for mail, the raw message
//! (`outbox_bodies`), so neither the worker nor `/v1/outbox` decodes a
//! message copy to look at an item. Three indexes hold only keys:
//!
//! - `outbox_due`: big-endian due time (milliseconds) then the id, for
//!   pending items only: the worker reads the due prefix and the first key
//!   after it, never the rest of the queue;
//! - `outbox_queue`: big-endian queue position (`seq`) → id, the order of
//!   `/v1/outbox` and its cursor;
//! - `outbox_dead`: big-endian creation time then the id, for dead items
//!   only: retention reads the expired prefix.
//!
//! Every change of an item updates its header and indexes in one sled
//! transaction, so a crash never leaves an item due twice or lost from
//! its index. The outbox of an earlier version (one JSON record per item,
//! message bytes as arrays of numbers, in a tree named `outbox`) is moved
//! into these trees when the store opens.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use anyhow::Context;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::{Store, read_u64};
use crate::outbox::{OutboxItem, Payload, State};

/// The name of the previous format's tree.
const LEGACY_TREE: &[u8] = b"outbox";

/// The outbox's trees, opened with the store.
#[derive(Clone)]
pub(super) struct OutboxTrees {
    items: sled::Tree,
    bodies: sled::Tree,
    due: sled::Tree,
    queue: sled::Tree,
    dead: sled::Tree,
    done: sled::Tree,
    /// Pending items, counted as they change (sled's `len` scans a tree).
    pending: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl OutboxTrees {
    /// Opens the trees, moves a previous format's items in and counts the
    /// pending ones.
    pub(super) fn open(db: &sled::Db) -> anyhow::Result<OutboxTrees> {
        let trees = OutboxTrees {
            items: db.open_tree("outbox_items")?,
            bodies: db.open_tree("outbox_bodies")?,
            due: db.open_tree("outbox_due")?,
            queue: db.open_tree("outbox_queue")?,
            dead: db.open_tree("outbox_dead")?,
            done: db.open_tree("outbox_done")?,
            pending: std::sync::Arc::default(),
        };
        migrate_legacy(db, &trees)?;
        let pending = trees.due.iter().keys().filter(Result::is_ok).count();
        trees
            .pending
            .store(i64::try_from(pending).unwrap_or(i64::MAX), Ordering::SeqCst);
        Ok(trees)
    }

    pub(super) fn done(&self) -> &sled::Tree {
        &self.done
    }
}

/// The key of an item in `outbox_due`.
fn due_key(item: &OutboxItem) -> Vec<u8> {
    time_key(u64::try_from(item.next_attempt_ms).unwrap_or(0), &item.id)
}

/// The key of an item in `outbox_dead`.
fn dead_key(item: &OutboxItem) -> Vec<u8> {
    time_key(u64::try_from(item.created).unwrap_or(0), &item.id)
}

fn time_key(time: u64, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + id.len());
    key.extend_from_slice(&time.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// The id at the end of a `time_key`.
fn key_id(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(key.get(8..)?).ok()
}

/// The header of `item`: its JSON without the mail's bytes.
fn header(item: &OutboxItem) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_vec(item)?)
}

/// The mail's bytes of `item`, if it is mail.
fn body(item: &OutboxItem) -> Option<&[u8]> {
    match &item.payload {
        Payload::Mail { data, .. } => Some(data),
        Payload::Notify { .. } => None,
    }
}

type Tx<T> = Result<T, ConflictableTransactionError<anyhow::Error>>;

/// Writes an item's index keys for its state.
fn index(due: &TransactionalTree, dead: &TransactionalTree, item: &OutboxItem) -> Tx<()> {
    match item.state {
        State::Pending => due.insert(due_key(item), &[] as &[u8])?,
        State::Dead => dead.insert(dead_key(item), &[] as &[u8])?,
    };
    Ok(())
}

/// Removes an item's index keys for its state.
fn unindex(due: &TransactionalTree, dead: &TransactionalTree, item: &OutboxItem) -> Tx<()> {
    match item.state {
        State::Pending => due.remove(due_key(item))?,
        State::Dead => dead.remove(dead_key(item))?,
    };
    Ok(())
}

/// Reads a header inside a transaction (an unreadable one aborts it).
fn read_header(items: &TransactionalTree, id: &str) -> Tx<Option<OutboxItem>> {
    let Some(bytes) = items.get(id.as_bytes())? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ConflictableTransactionError::Abort(anyhow::anyhow!("outbox item {id}: {e}")))
}

fn pending_delta(state: Option<State>) -> i64 {
    i64::from(state == Some(State::Pending))
}

fn tx_error(e: sled::transaction::TransactionError<anyhow::Error>) -> anyhow::Error {
    match e {
        sled::transaction::TransactionError::Abort(e) => e,
        sled::transaction::TransactionError::Storage(e) => anyhow::Error::new(e),
    }
}

impl Store {
    fn outbox_trees(&self) -> &OutboxTrees {
        &self.outbox
    }

    /// Adds a side effect to the outbox unless one with the same key is
    /// queued or was delivered; returns whether it was added. Its `seq`
    /// (queue position) is assigned here. Not flushed: the caller flushes
    /// before the MTA's reply.
    pub fn outbox_add(&self, item: &OutboxItem) -> anyhow::Result<bool> {
        if let Some(r) = &self.redis {
            return r.outbox_add(item);
        }
        let mut item = item.clone();
        // Positions start at 1, so `after=0` means "from the first".
        item.seq = self.db.generate_id()? + 1;
        self.outbox_insert(&item)
    }

    /// Inserts `item` with its `seq` as it is, unless its key is known.
    fn outbox_insert(&self, item: &OutboxItem) -> anyhow::Result<bool> {
        let t = self.outbox_trees();
        let added = insert(t, item)?;
        if added {
            t.pending
                .fetch_add(pending_delta(Some(item.state)), Ordering::SeqCst);
        }
        Ok(added)
    }

    /// Whether a side effect with this key is queued or was delivered.
    pub fn outbox_known(&self, id: &str) -> anyhow::Result<bool> {
        if let Some(r) = &self.redis {
            return r.outbox_known(id);
        }
        let t = self.outbox_trees();
        Ok(t.items.contains_key(id.as_bytes())? || t.done.contains_key(id.as_bytes())?)
    }

    /// Replaces the header of a queued side effect (after an attempt, or a
    /// retry on demand) and moves it between the indexes; flushed. The
    /// mail's bytes never change. `false` when the item is not queued
    /// (delivered meanwhile).
    pub fn outbox_put(&self, item: &OutboxItem) -> anyhow::Result<bool> {
        if let Some(r) = &self.redis {
            return r.outbox_put(item);
        }
        let t = self.outbox_trees();
        let head = header(item)?;
        let old_state = (&t.items, &t.due, &t.dead)
            .transaction(|(items, due, dead)| {
                let Some(old) = read_header(items, &item.id)? else {
                    return Ok(None);
                };
                unindex(due, dead, &old)?;
                // The queue position is the stored one, whatever the
                // caller's copy says.
                let mut new = item.clone();
                new.seq = old.seq;
                let head = if old.seq == item.seq {
                    head.clone()
                } else {
                    header(&new).map_err(ConflictableTransactionError::Abort)?
                };
                items.insert(item.id.as_bytes(), head)?;
                index(due, dead, &new)?;
                Ok(Some(old.state))
            })
            .map_err(tx_error)?;
        if old_state.is_some() {
            let delta = pending_delta(Some(item.state)) - pending_delta(old_state);
            t.pending.fetch_add(delta, Ordering::SeqCst);
        }
        self.flush()?;
        Ok(old_state.is_some())
    }

    /// Marks a side effect delivered: its key goes to `outbox_done` and
    /// the item leaves every tree in one transaction; flushed.
    pub fn outbox_delivered(&self, id: &str, now: i64) -> anyhow::Result<()> {
        if let Some(r) = &self.redis {
            return r.outbox_delivered(id, now);
        }
        let removed = self.outbox_remove(id, Some(now))?;
        self.outbox_trees()
            .pending
            .fetch_sub(pending_delta(removed), Ordering::SeqCst);
        self.flush()
    }

    /// Removes item `id` from every tree (and records it delivered at
    /// `done_at`, if given); returns the state it had.
    fn outbox_remove(&self, id: &str, done_at: Option<i64>) -> anyhow::Result<Option<State>> {
        let t = self.outbox_trees();
        (&t.items, &t.bodies, &t.due, &t.queue, &t.dead, &t.done)
            .transaction(|(items, bodies, due, queue, dead, done)| {
                if let Some(now) = done_at {
                    done.insert(id.as_bytes(), &now.to_be_bytes())?;
                }
                let Some(old) = read_header(items, id)? else {
                    return Ok(None);
                };
                items.remove(id.as_bytes())?;
                bodies.remove(id.as_bytes())?;
                queue.remove(&old.seq.to_be_bytes())?;
                unindex(due, dead, &old)?;
                Ok(Some(old.state))
            })
            .map_err(tx_error)
    }

    /// One queued side effect, with its mail's bytes.
    pub fn outbox_item(&self, id: &str) -> Option<OutboxItem> {
        if let Some(r) = &self.redis {
            return r.outbox_item(id).unwrap_or_else(|e| {
                tracing::error!("{e:#}");
                None
            });
        }
        let mut item = self.outbox_header(id)?;
        if let Payload::Mail { data, .. } = &mut item.payload {
            *data = self
                .outbox_trees()
                .bodies
                .get(id.as_bytes())
                .ok()??
                .to_vec();
        }
        Some(item)
    }

    /// One queued side effect without its mail's bytes.
    fn outbox_header(&self, id: &str) -> Option<OutboxItem> {
        let bytes = self.outbox_trees().items.get(id.as_bytes()).ok()??;
        match serde_json::from_slice(&bytes) {
            Ok(item) => Some(item),
            Err(e) => {
                tracing::error!("outbox item {id} is unreadable: {e}");
                None
            }
        }
    }

    /// Pending items due at `now_ms` (milliseconds since the epoch),
    /// earliest first, with their mail's bytes: at most `max`, skipping
    /// the ids in `skip` (attempts under way). Reads only the due prefix
    /// of `outbox_due`. With Redis the items are taken for this host's
    /// worker (read through the stream's consumer group, or taken over
    /// from a host that stopped reading for `claim_timeout`), and the
    /// hold on the attempts in `skip` is renewed (`redis/outbox.rs`).
    pub fn outbox_due(&self, now_ms: i64, skip: &HashSet<String>, max: usize) -> Vec<OutboxItem> {
        if let Some(r) = &self.redis {
            return r.outbox_due(now_ms, skip, max).unwrap_or_else(|e| {
                tracing::debug!("outbox: {e:#}");
                Vec::new()
            });
        }
        let end = time_key(u64::try_from(now_ms).unwrap_or(0).saturating_add(1), "");
        let mut out = Vec::new();
        for key in self.outbox_trees().due.range(..end).keys() {
            if out.len() >= max {
                break;
            }
            let Ok(key) = key else { continue };
            let Some(id) = key_id(&key) else { continue };
            if skip.contains(id) {
                continue;
            }
            if let Some(item) = self.outbox_item(id) {
                out.push(item);
            }
        }
        out
    }

    /// When the first pending item after `now_ms` is due.
    pub fn outbox_next_due(&self, now_ms: i64) -> Option<i64> {
        if let Some(r) = &self.redis {
            return r.outbox_next_due(now_ms).ok().flatten();
        }
        let start = time_key(u64::try_from(now_ms).unwrap_or(0).saturating_add(1), "");
        let (key, _) = self.outbox_trees().due.range(start..).next()?.ok()?;
        let time = read_u64(&key)?;
        i64::try_from(time).ok()
    }

    /// How many items are pending (kept as they change, no scan).
    pub fn outbox_pending(&self) -> i64 {
        if let Some(r) = &self.redis {
            return r.outbox_pending().unwrap_or(0);
        }
        self.outbox_trees().pending.load(Ordering::SeqCst)
    }

    /// Queued side effects (pending and dead) in queue order, after
    /// position `after` (`seq`), at most `limit`, without their mail's
    /// bytes.
    pub fn outbox_page(&self, after: u64, limit: usize) -> Vec<OutboxItem> {
        if let Some(r) = &self.redis {
            return r.outbox_page(after, limit).unwrap_or_else(|e| {
                tracing::error!("{e:#}");
                Vec::new()
            });
        }
        let start = after.saturating_add(1).to_be_bytes();
        self.outbox_trees()
            .queue
            .range(start..)
            .values()
            .filter_map(Result::ok)
            .filter_map(|id| self.outbox_header(std::str::from_utf8(&id).ok()?))
            .take(limit)
            .collect()
    }

    /// Deletes dead-lettered outbox items created before `cutoff` (seconds
    /// since the epoch); returns how many. Reads only the expired prefix
    /// of `outbox_dead`; pending items are never pruned.
    pub fn prune_dead_outbox(&self, cutoff: i64) -> anyhow::Result<usize> {
        if let Some(r) = &self.redis {
            return r.prune_dead_outbox(cutoff);
        }
        let end = time_key(u64::try_from(cutoff).unwrap_or(0), "");
        let expired: Vec<String> = self
            .outbox_trees()
            .dead
            .range(..end)
            .keys()
            .filter_map(Result::ok)
            .filter_map(|k| key_id(&k).map(String::from))
            .collect();
        let mut removed = 0;
        for id in expired {
            if self.outbox_remove(&id, None)? == Some(State::Dead) {
                removed += 1;
            }
        }
        if removed > 0 {
            self.flush()?;
        }
        Ok(removed)
    }
}

/// Moves the items of the previous format's `outbox` tree (one JSON
/// record each, a mail's bytes as an array of numbers) into the new
/// trees, keeping their state, attempts and due time; queue positions
/// follow their creation order. The old tree is dropped once every item
/// is moved and flushed; an unreadable record is logged and the old tree
/// kept, so nothing is lost and the next start tries again.
fn migrate_legacy(db: &sled::Db, trees: &OutboxTrees) -> anyhow::Result<()> {
    if !db.tree_names().iter().any(|n| n.as_ref() == LEGACY_TREE) {
        return Ok(());
    }
    let legacy = db.open_tree(LEGACY_TREE)?;
    let mut items = Vec::new();
    let mut unreadable = 0;
    for record in legacy.iter() {
        let (key, value) = record?;
        match serde_json::from_slice::<OutboxItem>(&value) {
            Ok(item) => items.push(item),
            Err(e) => {
                unreadable += 1;
                tracing::error!(
                    "outbox: the earlier version's item {:?} is unreadable, kept in the `outbox` tree: {e}",
                    String::from_utf8_lossy(&key)
                );
            }
        }
    }
    items.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    let moved = items.len();
    for mut item in items {
        item.seq = db.generate_id()? + 1;
        // Already there after a migration cut off by a crash: skipped.
        insert(trees, &item)?;
    }
    db.flush().context("cannot flush the migrated outbox")?;
    if unreadable == 0 {
        db.drop_tree(LEGACY_TREE)?;
        db.flush().context("cannot flush the migrated outbox")?;
    }
    if moved > 0 {
        tracing::info!("outbox: moved {moved} items of the earlier store format");
    }
    Ok(())
}

/// Writes a new item's header, bytes and index keys in one transaction,
/// unless its key is queued or was delivered; returns whether it did.
fn insert(t: &OutboxTrees, item: &OutboxItem) -> anyhow::Result<bool> {
    let head = header(item)?;
    (&t.items, &t.bodies, &t.due, &t.queue, &t.dead, &t.done)
        .transaction(|(items, bodies, due, queue, dead, done)| {
            if done.get(item.id.as_bytes())?.is_some() || items.get(item.id.as_bytes())?.is_some() {
                return Ok(false);
            }
            items.insert(item.id.as_bytes(), head.as_slice())?;
            if let Some(data) = body(item) {
                bodies.insert(item.id.as_bytes(), data)?;
            }
            queue.insert(&item.seq.to_be_bytes(), item.id.as_bytes())?;
            index(due, dead, item)?;
            Ok(true)
        })
        .map_err(tx_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Kind;

    fn tempdir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("weir-outbox-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn mail(id: &str, due: i64, data: &[u8]) -> OutboxItem {
        OutboxItem {
            id: id.into(),
            kind: Kind::Forward,
            channel: None,
            rule: "r".into(),
            message_id: format!("{id}@test"),
            created: 1_000,
            attempts: 0,
            next_attempt_ms: due,
            last_error: None,
            state: State::Pending,
            seq: 0,
            host: String::new(),
            payload: Payload::Mail {
                reverse_path: String::new(),
                to: "a@b.test".into(),
                data: data.to_vec(),
            },
        }
    }

    fn ids(items: &[OutboxItem]) -> Vec<&str> {
        items.iter().map(|i| i.id.as_str()).collect()
    }

    #[test]
    fn only_due_items_are_read_earliest_first_with_their_bytes() {
        let dir = tempdir("due");
        let store = Store::open(&dir).expect("open");
        for (id, due) in [("late", 9_000), ("b", 2_000), ("a", 1_000), ("c", 3_000)] {
            assert!(
                store
                    .outbox_add(&mail(id, due, id.as_bytes()))
                    .expect("add")
            );
        }
        assert!(
            !store.outbox_add(&mail("a", 1, b"")).expect("add"),
            "a key is queued once"
        );
        let none = HashSet::new();
        assert_eq!(ids(&store.outbox_due(2_500, &none, 16)), ["a", "b"]);
        assert_eq!(
            ids(&store.outbox_due(3_000, &none, 2)),
            ["a", "b"],
            "at most max"
        );
        let skip: HashSet<String> = ["a".to_string()].into();
        assert_eq!(ids(&store.outbox_due(3_000, &skip, 16)), ["b", "c"]);
        let first = &store.outbox_due(1_000, &none, 1)[0];
        assert!(matches!(&first.payload, Payload::Mail { data, .. } if data == b"a"));
        assert_eq!(store.outbox_next_due(3_000), Some(9_000));
        assert_eq!(store.outbox_next_due(9_000), None);
        assert_eq!(store.outbox_pending(), 4);

        // Moved later, dead, delivered: each leaves the due prefix.
        let mut a = store.outbox_item("a").expect("a");
        a.next_attempt_ms = 10_000;
        assert!(store.outbox_put(&a).expect("put"));
        let mut b = store.outbox_item("b").expect("b");
        b.state = State::Dead;
        assert!(store.outbox_put(&b).expect("put"));
        store.outbox_delivered("c", 5).expect("delivered");
        assert!(
            store
                .outbox_due(9_999, &none, 16)
                .iter()
                .map(|i| &i.id)
                .eq(["late"].iter())
        );
        assert_eq!(store.outbox_pending(), 2, "a and late");
        assert!(
            store.outbox_known("c").expect("known"),
            "delivered keys are remembered"
        );
        assert!(!store.outbox_add(&mail("c", 1, b"")).expect("add"));
        assert!(!store.outbox_put(&mail("c", 1, b"")).expect("put"), "gone");
        let header = store
            .outbox_trees()
            .items
            .get(b"a")
            .expect("get")
            .expect("a");
        assert!(
            !header.windows(3).any(|w| w == b"[97"),
            "no bytes in the header"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn pages_follow_the_queue_order_and_survive_removals() {
        let dir = tempdir("pages");
        let store = Store::open(&dir).expect("open");
        for i in 0..7 {
            store
                .outbox_add(&mail(&format!("i{i}"), 1, b"x"))
                .expect("add");
        }
        let first = store.outbox_page(0, 3);
        assert_eq!(ids(&first), ["i0", "i1", "i2"]);
        // The cursor's own item goes: the next page still follows it.
        store.outbox_delivered("i2", 1).expect("delivered");
        let second = store.outbox_page(first[2].seq, 3);
        assert_eq!(ids(&second), ["i3", "i4", "i5"]);
        let third = store.outbox_page(second[2].seq, 3);
        assert_eq!(ids(&third), ["i6"]);
        assert!(store.outbox_page(third[0].seq, 3).is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn dead_items_are_pruned_by_creation_time_and_pending_ones_never() {
        let dir = tempdir("prune");
        let store = Store::open(&dir).expect("open");
        for (id, created, state) in [
            ("old-dead", 100, State::Dead),
            ("new-dead", 300, State::Dead),
            ("old-pending", 100, State::Pending),
        ] {
            let mut item = mail(id, 1, b"x");
            item.created = created;
            item.state = state;
            store.outbox_add(&item).expect("add");
        }
        assert_eq!(store.prune_dead_outbox(200).expect("prune"), 1);
        assert_eq!(ids(&store.outbox_page(0, 10)), ["new-dead", "old-pending"]);
        assert!(
            store
                .outbox_trees()
                .bodies
                .get(b"old-dead")
                .expect("get")
                .is_none()
        );
        assert_eq!(store.prune_dead_outbox(200).expect("prune"), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_earlier_format_is_moved_in_on_open_and_survives_a_restart() {
        let dir = tempdir("legacy");
        std::fs::create_dir_all(&dir).expect("dir");
        {
            let db = sled::open(dir.join("db")).expect("sled");
            let legacy = db.open_tree(LEGACY_TREE).expect("tree");
            // As the earlier version wrote them: bytes as numbers, no seq.
            let later = r#"{"id":"m1","kind":"reply","channel":null,"rule":"r","message_id":"x","created":20,"attempts":2,"next_attempt_ms":5000,"last_error":"timeout","state":"pending","payload":{"type":"mail","reverse_path":"","to":"a@b.test","data":[72,105,13,10]}}"#;
            let first = r#"{"id":"n1","kind":"notify","channel":"hook","rule":"r","message_id":"x","created":10,"attempts":3,"next_attempt_ms":0,"last_error":"500","state":"dead","payload":{"type":"notify","body":{"id":"n1"}}}"#;
            legacy.insert("m1", later).expect("insert");
            legacy.insert("n1", first).expect("insert");
            legacy.insert("bad", "not json").expect("insert");
            db.flush().expect("flush");
        }
        {
            // sled's I/O threads may still hold the database just dropped.
            let store = crate::store::suite::reopen(&dir);
            let page = store.outbox_page(0, 10);
            assert_eq!(ids(&page), ["n1", "m1"], "in creation order");
            let m1 = store.outbox_item("m1").expect("m1");
            assert_eq!((m1.attempts, m1.next_attempt_ms), (2, 5000));
            assert!(matches!(&m1.payload, Payload::Mail { data, .. } if data == b"Hi\r\n"));
            assert_eq!(store.outbox_item("n1").expect("n1").state, State::Dead);
            assert_eq!(store.outbox_pending(), 1);
            assert_eq!(ids(&store.outbox_due(5000, &HashSet::new(), 9)), ["m1"]);
            assert!(
                store
                    .db
                    .tree_names()
                    .iter()
                    .any(|n| n.as_ref() == LEGACY_TREE),
                "an unreadable record keeps the old tree"
            );
            store
                .db
                .open_tree(LEGACY_TREE)
                .expect("tree")
                .remove("bad")
                .expect("rm");
            store.flush().expect("flush");
        }
        let store = crate::store::suite::reopen(&dir);
        assert_eq!(ids(&store.outbox_page(0, 10)), ["n1", "m1"], "moved once");
        assert!(
            !store
                .db
                .tree_names()
                .iter()
                .any(|n| n.as_ref() == LEGACY_TREE)
        );
        assert_eq!(store.outbox_pending(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
