//! Where what was learned is kept. [`LearnedState`] is a small key-value
//! interface (get, a batch of puts and deletes, keys under a prefix), so
//! any store with those operations can hold it: [`SledState`] is a sled
//! tree (`weir learn --state DIR` and `weir serve` open the tree
//! `classifiers` of the daemon's database in `DIR/db`), [`MemoryState`]
//! a map for tests.
//!
//! Layout, under the classifier's name:
//! - `NAME/meta`: each learned class and its message count, a line each;
//! - `NAME/s/XX`: the features whose hash starts with the byte `XX`, each
//!   a little-endian u64 then one u32 count per class (256 shards, so a
//!   batch rewrites the model in 256 values);
//! - `NAME/l/SEQ`: a message learned since the shards were written (its
//!   class, +1 or -1, its features), replayed on load, so learning one
//!   message writes one value; [`save`] folds them into the shards;
//! - `NAME/d/DIGEST`: the class each learned message was learned as.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use crate::model::Model;

/// A failure of the storage under the learned state.
#[derive(Debug)]
pub struct StateError(pub String);

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StateError {}

impl From<sled::Error> for StateError {
    fn from(e: sled::Error) -> Self {
        StateError(e.to_string())
    }
}

/// A key and its value, as a scan returns them.
pub type Entry = (Vec<u8>, Vec<u8>);

/// One write of a batch: a value to put, or `None` to delete the key.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// The key-value operations the learned state needs.
pub trait LearnedState: Send + Sync {
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    /// Applies the writes at once, durably.
    fn apply(&self, writes: Vec<Write>) -> Result<(), StateError>;
    /// Every key under `prefix` with its value, in key order.
    fn scan(&self, prefix: &[u8]) -> Result<Vec<Entry>, StateError>;
}

/// The learned state in a sled tree.
#[derive(Debug, Clone)]
pub struct SledState {
    tree: sled::Tree,
}

impl SledState {
    /// The tree `classifiers` of an open sled database.
    pub fn new(db: &sled::Db) -> Result<SledState, StateError> {
        Ok(SledState {
            tree: db.open_tree("classifiers")?,
        })
    }
}

/// Opening the learned state of a state directory.
#[derive(Debug)]
pub enum OpenError {
    /// A running `weir serve` holds the database.
    Locked(std::path::PathBuf),
    /// Anything else sled reports.
    Other(String),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Locked(dir) => write!(
                f,
                "the state directory {} is in use by a running weir serve: learn through its API \
                 (POST /v1/learn/NAME/CLASS), or stop it first",
                dir.display()
            ),
            OpenError::Other(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for OpenError {}

impl SledState {
    /// Opens the learned state of a state directory as `weir serve` keeps
    /// it (the database `DIR/db`, created when missing), with the database
    /// to keep open while the state is used.
    pub fn open_dir(dir: &std::path::Path) -> Result<(sled::Db, SledState), OpenError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            OpenError::Other(format!(
                "cannot create the state directory {}: {e}",
                dir.display()
            ))
        })?;
        let db = sled::open(dir.join("db")).map_err(|e| match e {
            sled::Error::Io(io)
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("lock") =>
            {
                OpenError::Locked(dir.to_path_buf())
            }
            other => OpenError::Other(format!(
                "cannot open the state in {}: {other}",
                dir.display()
            )),
        })?;
        let state = SledState::new(&db).map_err(|e| OpenError::Other(e.0))?;
        Ok((db, state))
    }
}

impl LearnedState for SledState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), StateError> {
        let mut batch = sled::Batch::default();
        for (key, value) in writes {
            match value {
                Some(v) => batch.insert(key, v),
                None => batch.remove(key),
            }
        }
        self.tree.apply_batch(batch)?;
        self.tree.flush()?;
        Ok(())
    }

    fn scan(&self, prefix: &[u8]) -> Result<Vec<Entry>, StateError> {
        self.tree
            .scan_prefix(prefix)
            .map(|kv| {
                kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(StateError::from)
            })
            .collect()
    }
}

/// The learned state in memory (tests).
#[derive(Debug, Default)]
pub struct MemoryState {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl LearnedState for MemoryState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.lock().get(key).cloned())
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), StateError> {
        let mut map = self.lock();
        for (key, value) in writes {
            match value {
                Some(v) => map.insert(key, v),
                None => map.remove(&key),
            };
        }
        Ok(())
    }

    fn scan(&self, prefix: &[u8]) -> Result<Vec<Entry>, StateError> {
        Ok(self
            .lock()
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl MemoryState {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn key(name: &str, rest: &str) -> Vec<u8> {
    format!("{name}/{rest}").into_bytes()
}

/// Loads what classifier `name` learned (an empty model when nothing).
pub fn load(state: &dyn LearnedState, name: &str) -> Result<Model, StateError> {
    let mut model = Model::default();
    if let Some(meta) = state.get(&key(name, "meta"))? {
        for line in String::from_utf8_lossy(&meta).lines() {
            if let Some((class, n)) = line.rsplit_once('\t') {
                let i = model.class_index(class);
                model.messages[i] = n.parse().unwrap_or(0);
            }
        }
    }
    let width = model.classes.len();
    let shards = state.scan(&key(name, "s/"))?;
    let stride = 8 + 4 * width;
    model.reserve(shards.iter().map(|(_, s)| s.len() / stride).sum());
    for (_, shard) in shards {
        let mut row = vec![0u32; width];
        for entry in shard.chunks_exact(stride) {
            let feature = u64::from_le_bytes(entry[..8].try_into().unwrap_or_default());
            for (i, n) in entry[8..].chunks_exact(4).enumerate() {
                row[i] = u32::from_le_bytes(n.try_into().unwrap_or_default());
            }
            model.set_row(feature, &row);
        }
    }
    for (_, entry) in state.scan(&key(name, "l/"))? {
        if let Some((class, delta, features)) = decode_log(&entry) {
            model.add(&class, &features, delta);
        }
    }
    Ok(model)
}

/// The writes that store `model` whole as classifier `name`'s: meta and
/// every shard, the log folded in (its entries deleted).
pub fn save(state: &dyn LearnedState, name: &str, model: &Model) -> Result<(), StateError> {
    let mut writes: Vec<Write> = Vec::new();
    let meta: String = model
        .learned()
        .map(|(c, n)| format!("{c}\t{n}\n"))
        .collect();
    writes.push((key(name, "meta"), Some(meta.into_bytes())));
    let mut shards: Vec<Vec<u8>> = vec![Vec::new(); 256];
    for (feature, row) in model.rows() {
        let shard = &mut shards[(feature >> 56) as usize];
        shard.extend_from_slice(&feature.to_le_bytes());
        for n in row {
            shard.extend_from_slice(&n.to_le_bytes());
        }
    }
    for (i, shard) in shards.into_iter().enumerate() {
        let k = key(name, &format!("s/{i:02x}"));
        writes.push((k, (!shard.is_empty()).then_some(shard)));
    }
    for (k, _) in state.scan(&key(name, "l/"))? {
        writes.push((k, None));
    }
    state.apply(writes)
}

/// How many messages were learned since the shards were last written.
pub fn log_len(state: &dyn LearnedState, name: &str) -> Result<usize, StateError> {
    Ok(state.scan(&key(name, "l/"))?.len())
}

/// The write that records one message learned (`delta` 1) or forgotten
/// (-1) since the shards were written, to replay on load.
pub fn log_write(name: &str, seq: u64, class: &str, delta: i32, features: &[u64]) -> Write {
    let mut v = Vec::with_capacity(8 + class.len() + features.len() * 8);
    v.push(if delta < 0 { b'-' } else { b'+' });
    v.extend_from_slice(&(class.len() as u32).to_le_bytes());
    v.extend_from_slice(class.as_bytes());
    for f in features {
        v.extend_from_slice(&f.to_le_bytes());
    }
    (key(name, &format!("l/{seq:020}")), Some(v))
}

fn decode_log(v: &[u8]) -> Option<(String, i32, Vec<u64>)> {
    let delta = if *v.first()? == b'-' { -1 } else { 1 };
    let len = u32::from_le_bytes(v.get(1..5)?.try_into().ok()?) as usize;
    let class = String::from_utf8(v.get(5..5 + len)?.to_vec()).ok()?;
    let features = v
        .get(5 + len..)?
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect();
    Some((class, delta, features))
}

/// The class a message (by digest) was learned as, if it was.
pub fn digest_class(
    state: &dyn LearnedState,
    name: &str,
    digest: &str,
) -> Result<Option<String>, StateError> {
    Ok(state
        .get(&key(name, &format!("d/{digest}")))?
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}

/// Every digest record of classifier `name`: the digest and the class
/// the message was learned as.
pub fn digests(state: &dyn LearnedState, name: &str) -> Result<Vec<(String, String)>, StateError> {
    let prefix = key(name, "d/");
    Ok(state
        .scan(&prefix)?
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(&k[prefix.len()..]).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect())
}

/// The write recording that a message was learned as `class` (`None`:
/// forgotten).
pub fn digest_write(name: &str, digest: &str, class: Option<&str>) -> Write {
    (
        key(name, &format!("d/{digest}")),
        class.map(|c| c.as_bytes().to_vec()),
    )
}

/// A model as one value (a store that keeps a snapshot whole, as the
/// daemon's Redis store does): the classes with their message counts,
/// then every feature with its counts. [`decode_model`] reads it back.
pub fn encode_model(model: &Model) -> Vec<u8> {
    let width = model.classes.len();
    let mut v = Vec::with_capacity(16 + model.vocabulary() * (8 + 4 * width));
    v.extend_from_slice(&(width as u32).to_le_bytes());
    for (class, n) in model.learned() {
        v.extend_from_slice(&(class.len() as u32).to_le_bytes());
        v.extend_from_slice(class.as_bytes());
        v.extend_from_slice(&n.to_le_bytes());
    }
    for (feature, row) in model.rows() {
        v.extend_from_slice(&feature.to_le_bytes());
        for n in row {
            v.extend_from_slice(&n.to_le_bytes());
        }
    }
    v
}

/// The model [`encode_model`] wrote; `None` when the value is not one.
pub fn decode_model(v: &[u8]) -> Option<Model> {
    let mut model = Model::default();
    let width = u32::from_le_bytes(v.get(..4)?.try_into().ok()?) as usize;
    let mut at = 4;
    for _ in 0..width {
        let len = u32::from_le_bytes(v.get(at..at + 4)?.try_into().ok()?) as usize;
        let class = std::str::from_utf8(v.get(at + 4..at + 4 + len)?).ok()?;
        at += 4 + len;
        let n = u64::from_le_bytes(v.get(at..at + 8)?.try_into().ok()?);
        at += 8;
        let i = model.class_index(class);
        model.messages[i] = n;
    }
    let stride = 8 + 4 * width;
    let rows = v.get(at..)?;
    if rows.len() % stride != 0 {
        return None;
    }
    model.reserve(rows.len() / stride);
    let mut row = vec![0u32; width];
    for entry in rows.chunks_exact(stride) {
        let feature = u64::from_le_bytes(entry[..8].try_into().ok()?);
        for (i, n) in entry[8..].chunks_exact(4).enumerate() {
            row[i] = u32::from_le_bytes(n.try_into().ok()?);
        }
        model.set_row(feature, &row);
    }
    Some(model)
}

/// Features as bytes (8 little-endian bytes each), as a learn event
/// carries them.
pub fn encode_features(features: &[u64]) -> Vec<u8> {
    features.iter().flat_map(|f| f.to_le_bytes()).collect()
}

/// The features [`encode_features`] wrote (a trailing partial one is
/// ignored).
pub fn decode_features(v: &[u8]) -> Vec<u64> {
    v.chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_encoded_whole_reads_back_the_same() {
        let mut model = Model::default();
        model.add("spam", &[1, 2, 3], 1);
        model.add("ham", &[3, 4], 1);
        model.add("ham", &[4, u64::MAX], 1);
        let back = decode_model(&encode_model(&model)).expect("decodes");
        assert_eq!(
            back.learned().collect::<Vec<_>>(),
            [("spam", 1), ("ham", 2)]
        );
        for f in [1, 2, 3, 4, u64::MAX] {
            assert_eq!(back.counts(f), model.counts(f), "feature {f}");
        }
        assert_eq!(back.vocabulary(), model.vocabulary());
        assert!(decode_model(b"\x01\x00").is_none(), "truncated");
        let empty = decode_model(&encode_model(&Model::default())).expect("empty");
        assert_eq!(empty.vocabulary(), 0);
        assert_eq!(
            decode_features(&encode_features(&[7, u64::MAX])),
            [7, u64::MAX]
        );
    }
}
