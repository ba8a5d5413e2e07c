//! The first pass of the fingerprint search: Hyperscan's FDR idea in
//! scalar code. The fingerprints (eight bytes of a long needle, the first
//! four of a needle of four to seven bytes) are split into eight buckets; one
//! table says, for each pair of adjacent bytes (hashed) and each offset
//! in a fingerprint, which buckets have no fingerprint with that pair
//! there. Sliding over a value with a shift and an OR per byte leaves, at
//! each position, the buckets none of whose pairs ruled it out; only
//! there is the fingerprint filter behind it asked.
//! One table load per byte, off the dependency chain, where that filter
//! costs two hashes and two loads per byte.

use std::ops::Range;

/// Bits of a hashed byte pair: the table is 2^11 words, 16 KB, which
/// stays in the first-level cache beside the value being scanned.
const PAIR_BITS: u32 = 11;

/// Byte pairs in a fingerprint of eight bytes, the longest.
const PAIRS: usize = 7;

/// Buckets: the bits of a byte, shared by the two kinds of fingerprint in
/// proportion to their numbers.
const BUCKETS: usize = 8;

/// The bucketed shift-or table of a set of fingerprints.
#[derive(Debug)]
pub(super) struct ShiftOr {
    /// By hashed byte pair: byte `k` (0 to 6) has bit `b` set when no
    /// fingerprint of bucket `b` has that pair at offset `6 - k` (a
    /// four-byte fingerprint has none past offset 2, so its buckets are
    /// never ruled out there); byte 7 is zero (it would speak of an offset
    /// before the fingerprint).
    table: Box<[u64; 1 << PAIR_BITS]>,
    /// The buckets of long fingerprints, as bits.
    long: u8,
}

/// The hash of a byte pair.
#[inline]
fn pair_hash(pair: [u8; 2]) -> usize {
    let h = u32::from(u16::from_le_bytes(pair)).wrapping_mul(0x9E37_79B1);
    (h >> (32 - PAIR_BITS)) as usize
}

impl ShiftOr {
    /// The table of `long` fingerprints and `mid` ones.
    pub(super) fn new(long: &[[u8; 8]], mid: &[[u8; 4]]) -> ShiftOr {
        let mid_buckets = match (long.is_empty(), mid.is_empty()) {
            (_, true) => 0,
            (true, false) => BUCKETS,
            (false, false) => (BUCKETS * mid.len())
                .div_ceil(long.len() + mid.len())
                .clamp(1, BUCKETS - 1),
        };
        let long_buckets = BUCKETS - mid_buckets;
        // Every bucket rules every position out until its fingerprints
        // are entered.
        let mut table = Box::new([u64::MAX >> 8; 1 << PAIR_BITS]);
        fill(&mut table, 0..long_buckets, long);
        fill(&mut table, long_buckets..BUCKETS, mid);
        ShiftOr {
            table,
            long: (0xFFu16 >> mid_buckets) as u8,
        }
    }

    /// Calls `candidate(at, long, mid)` for each position `at` from 0 to
    /// `bytes.len() - 8` where a long (mid) fingerprint may start: never
    /// false for a position where one does.
    #[inline]
    pub(super) fn scan(&self, bytes: &[u8], mut candidate: impl FnMut(usize, bool, bool)) {
        let mut state = 0u64;
        for (i, pair) in bytes.windows(2).enumerate() {
            // The mask lets the compiler drop the table's bounds check.
            let d = pair_hash([pair[0], pair[1]]) & ((1 << PAIR_BITS) - 1);
            state = (state >> 8) | self.table[d];
            let passed = !(state as u8);
            if passed != 0 && i >= PAIRS - 1 {
                let (long, mid) = (passed & self.long != 0, passed & !self.long != 0);
                candidate(i + 1 - PAIRS, long, mid);
            }
        }
    }
}

/// Enters the fingerprints `windows` (of `N` bytes, `N - 1` pairs) in
/// `table`, sorted into the `buckets` so that a bucket holds fingerprints
/// alike (fewer distinct pairs at each offset).
fn fill<const N: usize>(
    table: &mut [u64; 1 << PAIR_BITS],
    buckets: Range<usize>,
    windows: &[[u8; N]],
) {
    if buckets.is_empty() {
        return;
    }
    let mut sorted: Vec<&[u8; N]> = windows.iter().collect();
    sorted.sort_unstable();
    let per = sorted.len().div_ceil(buckets.len()).max(1);
    for (members, bucket) in sorted.chunks(per).zip(buckets) {
        let bit = |offset: usize| 1u64 << (8 * (PAIRS - 1 - offset) + bucket);
        // Offsets past the fingerprints' last pair rule nothing out.
        for offset in N - 1..PAIRS {
            for entry in table.iter_mut() {
                *entry &= !bit(offset);
            }
        }
        for w in members {
            for offset in 0..N - 1 {
                table[pair_hash([w[offset], w[offset + 1]])] &= !bit(offset);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The positions `scan` offers, as (at, long, mid).
    fn offered(table: &ShiftOr, text: &[u8]) -> Vec<(usize, bool, bool)> {
        let mut out = Vec::new();
        table.scan(text, |at, long, mid| out.push((at, long, mid)));
        out
    }

    #[test]
    fn offers_every_position_where_a_fingerprint_starts() {
        let table = ShiftOr::new(&[*b"ki lowes", *b"12345678"], &[*b"bimu", *b"vasu"]);
        let text = b"xxfesabuki lowest bimuxxxx 12345678";
        let got = offered(&table, text);
        assert!(got.iter().any(|&(at, long, _)| at == 8 && long), "{got:?}");
        assert!(got.iter().any(|&(at, _, mid)| at == 18 && mid), "{got:?}");
        assert!(got.iter().any(|&(at, long, _)| at == 27 && long), "{got:?}");
        // A text with none of their pairs offers nothing.
        assert!(offered(&table, b"zzzzzzzzzzzzzzzzzzzz").is_empty());
        // With one kind only, the other's buckets never pass.
        let only_long = ShiftOr::new(&[*b"12345678"], &[]);
        assert_eq!(offered(&only_long, b"x12345678x"), vec![(1, true, false)]);
        let only_mid = ShiftOr::new(&[], &[*b"bimu"]);
        assert!(offered(&only_mid, b"xxbimuxxxx").contains(&(2, false, true)));
    }
}
