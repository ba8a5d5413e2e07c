//! How an audit entry is kept in sled: its JSON, LZ4-compressed behind a
//! one-byte tag.
//!
//! sled keeps the pages it wrote recently in memory, the entries in them
//! included, and its LRU only evicts in batches and never a shard's last
//! page (it has 256), so the audit log's newest few thousand entries stay
//! resident: about 2.6 KB each at 10,000 generated rules, where one
//! message matches dozens of rules. Compressed, the same entries take a
//! fraction of that (benches/README.md, "Round fifteen"). Entries written
//! before they were compressed are plain JSON, which starts with `{`, never
//! with the tag, and are read as they are.

use std::borrow::Cow;

/// The tag of an LZ4 block (`lz4_flex`'s, the decompressed size first).
const LZ4: u8 = 1;

/// LZ4 cannot expand more than 255-fold: a larger declared size is damage,
/// not a reason to allocate it.
const MAX_RATIO: usize = 255;

/// A stored audit entry that does not decompress.
#[derive(Debug)]
pub(crate) struct Damaged;

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a stored audit entry is damaged: it does not decompress")
    }
}

impl std::error::Error for Damaged {}

/// `json` as it is stored.
pub(crate) fn pack(json: &[u8]) -> Vec<u8> {
    let mut out = vec![LZ4];
    out.extend_from_slice(&lz4_flex::block::compress_prepend_size(json));
    out
}

/// The JSON of a stored entry, packed or written before entries were.
pub(crate) fn unpack(stored: &[u8]) -> Result<Cow<'_, [u8]>, Damaged> {
    let Some((&LZ4, block)) = stored.split_first() else {
        return Ok(Cow::Borrowed(stored));
    };
    let declared = block
        .first_chunk::<4>()
        .map_or(usize::MAX, |size| u32::from_le_bytes(*size) as usize);
    if declared > block.len().saturating_mul(MAX_RATIO) {
        return Err(Damaged);
    }
    lz4_flex::block::decompress_size_prepended(block)
        .map(Cow::Owned)
        .map_err(|_| Damaged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_comes_back_as_it_was_packed_and_smaller() {
        let json = br#"{"matched":["r1","r2"],"actions":[{"action":"tag","value":"r1","rule":"r1"},{"action":"tag","value":"r2","rule":"r2"}]}"#;
        let stored = pack(json);
        assert!(stored.len() < json.len(), "{} bytes", stored.len());
        assert_eq!(unpack(&stored).expect("unpack").as_ref(), json);
        assert_eq!(unpack(&pack(b"")).expect("empty").as_ref(), b"");
    }

    #[test]
    fn plain_json_from_before_is_read_as_it_is() {
        let json = br#"{"id":1}"#;
        assert!(matches!(unpack(json), Ok(Cow::Borrowed(b)) if b == json));
        assert!(matches!(unpack(b""), Ok(Cow::Borrowed(b""))));
    }

    #[test]
    fn damage_is_an_error_not_an_allocation() {
        assert!(unpack(&[LZ4]).is_err(), "no size");
        assert!(
            unpack(&[LZ4, 0xff, 0xff, 0xff, 0xff, 0]).is_err(),
            "4 GB declared"
        );
        let mut cut = pack(b"{\"a\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}");
        cut.truncate(cut.len() - 2);
        assert!(unpack(&cut).is_err(), "cut short");
    }
}
