//! Finding a group's needles in one value. The prefilter needs, per needle,
//! whether it occurs in the value anywhere, at its start, at its end; not
//! where else. A few needles: one `memmem` search per needle, as the
//! interpreter's own `contains` does. Many: [`Fingerprints`], a filter on
//! the eight bytes (four, for needles shorter than eight) at every
//! position that stays in cache, confirmed
//! by comparing the needles in full (an Aho-Corasick DFA of thousands of
//! needles is megabytes, walked one dependent load per byte); the needles
//! shorter than four bytes in an Aho-Corasick DFA of their own, in an
//! overlapping search so that no needle hides another.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use memchr::memmem::Finder;

/// Up to this many needles are searched one by one.
const FEW: usize = 8;

/// The needles of one group, ready to search.
#[derive(Debug)]
pub(super) enum Searcher {
    /// Each needle on its own (needle ids are indices).
    Few(Vec<Finder<'static>>),
    /// All needles at once in an Aho-Corasick DFA (needle ids are pattern
    /// ids): the needles shorter than a fingerprint.
    Automaton(AhoCorasick),
    /// Many needles: a fingerprint filter over every position, the
    /// shorter needles in a searcher of their own.
    Fingerprints(Box<Fingerprints>),
}

/// Where a needle was found in a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Found {
    /// The needle's id.
    pub needle: usize,
    /// Whether this occurrence starts the value.
    pub at_start: bool,
    /// Whether this occurrence ends the value.
    pub at_end: bool,
}

impl Searcher {
    /// A searcher for `needles` (non-empty strings); `None` when they do
    /// not fit in an automaton.
    pub(super) fn new(needles: &[String]) -> Option<Searcher> {
        if needles.len() <= FEW {
            return Some(Self::few(needles));
        }
        Fingerprints::new(needles).map(|f| Searcher::Fingerprints(Box::new(f)))
    }

    fn few(needles: &[String]) -> Searcher {
        let finders = needles
            .iter()
            .map(|n| Finder::new(n.as_bytes()).into_owned())
            .collect();
        Searcher::Few(finders)
    }

    /// A searcher of `needles` alone: one by one for a few, else a DFA,
    /// which scans several times faster than the NFA the builder picks
    /// for thousands of needles, for a few MB.
    fn automaton(needles: &[String]) -> Option<Searcher> {
        if needles.len() <= FEW {
            return Some(Self::few(needles));
        }
        AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(needles)
            .ok()
            .map(Searcher::Automaton)
    }

    /// Calls `found` for the needles in `value`: every needle that occurs
    /// is reported at least once, and one of its reports has `at_start`
    /// (`at_end`) set when it occurs at the start (end) of the value.
    pub(super) fn search(&self, value: &str, mut found: impl FnMut(Found)) {
        match self {
            Searcher::Few(finders) => {
                let bytes = value.as_bytes();
                for (needle, finder) in finders.iter().enumerate() {
                    if finder.find(bytes).is_some() {
                        let n = finder.needle();
                        found(Found {
                            needle,
                            at_start: bytes.starts_with(n),
                            at_end: bytes.ends_with(n),
                        });
                    }
                }
            }
            Searcher::Automaton(automaton) => {
                for m in automaton.find_overlapping_iter(value) {
                    found(Found {
                        needle: m.pattern().as_usize(),
                        at_start: m.start() == 0,
                        at_end: m.end() == value.len(),
                    });
                }
            }
            Searcher::Fingerprints(f) => f.search(value, &mut found),
        }
    }
}

/// Bytes of a short fingerprint: the first four bytes of a needle shorter
/// than [`LONG`].
const WIDTH: usize = 4;

/// Bytes of a long fingerprint: the first eight bytes of a needle at
/// least that long. Eight bytes are rarer in text than four (a needle's
/// first word, not its first syllable), so far fewer positions reach the
/// comparisons.
const LONG: usize = 8;

/// Bits of a fingerprint's hash: a filter of 8 KB per length, which stays
/// in the first-level cache while a body is scanned.
const HASH_BITS: u32 = 16;

/// The hash of a short fingerprint (multiplicative, the top bits).
fn hash4(fingerprint: u32) -> usize {
    (fingerprint.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
}

/// The hash of a long fingerprint (multiplicative, the top bits).
fn hash8(fingerprint: u64) -> usize {
    (fingerprint.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - HASH_BITS)) as usize
}

/// Many needles found by their fingerprints, Hyperscan's FDR idea without
/// SIMD: at every position of a value the eight bytes there (and, when
/// some needles are shorter, the first four of them) are hashed and looked
/// up in a bit table of the needles' fingerprints; only where the bit is
/// set are the needles of that hash compared in full. The tables are small
/// enough to stay in cache, where an Aho-Corasick DFA of thousands of
/// needles is megabytes walked one dependent load per byte. Exact: every
/// occurrence of every needle at least four bytes long starts at a
/// position whose fingerprint is in its table, and is confirmed by a full
/// comparison; shorter needles are searched by their own searcher.
#[derive(Debug)]
pub(super) struct Fingerprints {
    /// The needles of at least [`LONG`] bytes, by their first eight.
    long: Table,
    /// The needles of [`WIDTH`] to [`LONG`] − 1 bytes, by their first
    /// four, if there are any.
    mid: Option<Table>,
    /// Every needle's bytes, by needle id.
    needles: Vec<Box<[u8]>>,
    /// The needles shorter than [`WIDTH`], and their ids.
    short: Option<(Searcher, Vec<usize>)>,
}

/// One bit table of fingerprints and the needles behind each hash.
#[derive(Debug)]
struct Table {
    /// One bit per hash: whether some needle's fingerprint has it.
    filter: Vec<u64>,
    /// By hash: where its needles start in `bucket` (one more entry at
    /// the end).
    starts: Vec<u32>,
    /// The needles, grouped by hash.
    bucket: Vec<Entry>,
}

impl Table {
    /// A table of `needles` (id, hash of its fingerprint, bytes).
    fn new(needles: &[(u32, usize, &[u8])]) -> Table {
        let slots = 1usize << HASH_BITS;
        let mut filter = vec![0u64; slots / 64];
        let mut counts = vec![0u32; slots + 1];
        for &(_, h, _) in needles {
            filter[h / 64] |= 1 << (h % 64);
            counts[h + 1] += 1;
        }
        // Prefix sums: bucket `h` is `bucket[starts[h]..starts[h + 1]]`.
        for h in 0..slots {
            counts[h + 1] += counts[h];
        }
        let starts = counts.clone();
        let mut bucket = vec![Entry::default(); needles.len()];
        for &(id, h, bytes) in needles {
            bucket[counts[h] as usize] = Entry::new(id, bytes);
            counts[h] += 1;
        }
        Table {
            filter,
            starts,
            bucket,
        }
    }

    /// The needles whose fingerprint hashes to `h` (none if its bit is
    /// clear).
    #[inline]
    fn entries(&self, h: usize) -> &[Entry] {
        if self.filter[h / 64] & (1 << (h % 64)) == 0 {
            return &[];
        }
        &self.bucket[self.starts[h] as usize..self.starts[h + 1] as usize]
    }
}

impl Fingerprints {
    fn new(needles: &[String]) -> Option<Fingerprints> {
        let ids = |keep: &dyn Fn(usize) -> bool| -> Vec<usize> {
            (0..needles.len())
                .filter(|&i| keep(needles[i].len()))
                .collect()
        };
        let short = ids(&|n| n < WIDTH);
        let short = if short.is_empty() {
            None
        } else {
            let texts: Vec<String> = short.iter().map(|&i| needles[i].clone()).collect();
            Some((Searcher::automaton(&texts)?, short))
        };
        let entries = |keep: &dyn Fn(usize) -> bool, hash: &dyn Fn(&[u8]) -> usize| {
            ids(keep)
                .into_iter()
                .map(|i| {
                    let bytes = needles[i].as_bytes();
                    Some((u32::try_from(i).ok()?, hash(bytes), bytes))
                })
                .collect::<Option<Vec<_>>>()
        };
        let long = entries(&|n| n >= LONG, &|b| hash8(head(b)))?;
        let mid = entries(&|n| (WIDTH..LONG).contains(&n), &|b| {
            hash4(fingerprint(b))
        })?;
        Some(Fingerprints {
            long: Table::new(&long),
            mid: (!mid.is_empty()).then(|| Table::new(&mid)),
            needles: needles.iter().map(|n| n.as_bytes().into()).collect(),
            short,
        })
    }

    fn search(&self, value: &str, found: &mut dyn FnMut(Found)) {
        if let Some((searcher, ids)) = &self.short {
            searcher.search(value, |f| {
                found(Found {
                    needle: ids[f.needle],
                    ..f
                })
            });
        }
        let bytes = value.as_bytes();
        for at in 0..bytes.len().saturating_sub(WIDTH - 1) {
            let rest = &bytes[at..];
            // The eight bytes here (fewer at the end): the long
            // fingerprint, and the entries' first comparison in registers.
            let eight = head(rest);
            if rest.len() >= LONG {
                for entry in self.long.entries(hash8(eight)) {
                    self.confirm(entry, eight, at, bytes, found);
                }
            }
            if let Some(mid) = &self.mid {
                for entry in mid.entries(hash4(eight as u32)) {
                    self.confirm(entry, eight, at, bytes, found);
                }
            }
        }
    }

    /// Reports `entry`'s needle if it occurs at `at` in `bytes`, whose
    /// eight bytes there (zero-padded) are `eight`.
    #[inline]
    fn confirm(
        &self,
        entry: &Entry,
        eight: u64,
        at: usize,
        bytes: &[u8],
        found: &mut dyn FnMut(Found),
    ) {
        if eight & entry.mask != entry.prefix {
            return;
        }
        let needle = &self.needles[entry.id as usize];
        let rest = &bytes[at..];
        if rest.len() >= needle.len()
            && rest[LONG.min(needle.len())..needle.len()] == needle[LONG.min(needle.len())..]
        {
            found(Found {
                needle: entry.id as usize,
                at_start: at == 0,
                at_end: at + needle.len() == bytes.len(),
            });
        }
    }
}

/// A needle in its bucket: its first eight bytes (fewer when it is
/// shorter) and their mask, compared before the rest of it.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    prefix: u64,
    mask: u64,
    id: u32,
}

impl Entry {
    fn new(id: u32, needle: &[u8]) -> Entry {
        let n = needle.len().min(LONG);
        let mask = if n == LONG {
            u64::MAX
        } else {
            (1u64 << (8 * n)) - 1
        };
        Entry {
            prefix: head(needle),
            mask,
            id,
        }
    }
}

/// The first eight bytes of `bytes` (fewer when it is shorter) as a
/// little-endian number, zero-padded.
#[inline]
fn head(bytes: &[u8]) -> u64 {
    if let Some(eight) = bytes.first_chunk::<LONG>() {
        return u64::from_le_bytes(*eight);
    }
    let mut eight = [0u8; LONG];
    eight[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(eight)
}

/// The first [`WIDTH`] bytes of `bytes` (at least that long), as a number.
fn fingerprint(bytes: &[u8]) -> u32 {
    let mut four = [0u8; WIDTH];
    four.copy_from_slice(&bytes[..WIDTH]);
    u32::from_le_bytes(four)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `search` reports, as (needle, occurs, at start, at end).
    fn summary(needles: &[&str], value: &str) -> Vec<(usize, bool, bool)> {
        let needles: Vec<String> = needles.iter().map(|s| s.to_string()).collect();
        let searcher = Searcher::new(&needles).expect("small");
        let mut out: Vec<(usize, bool, bool)> = Vec::new();
        searcher.search(value, |f| match out.iter_mut().find(|o| o.0 == f.needle) {
            Some(o) => {
                o.1 |= f.at_start;
                o.2 |= f.at_end;
            }
            None => out.push((f.needle, f.at_start, f.at_end)),
        });
        out.sort();
        out
    }

    #[test]
    fn few_and_many_needles_report_the_same() {
        let few = ["ab", "bab", "b", "zz"];
        let value = "abab";
        let expected = vec![(0, true, true), (1, false, true), (2, false, true)];
        assert_eq!(summary(&few, value), expected);
        // The same needles among enough others to take the automaton.
        let mut many: Vec<&str> = few.to_vec();
        many.extend(["q1", "q2", "q3", "q4", "q5", "q6", "q7"]);
        assert!(matches!(
            Searcher::new(&many.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
            Some(Searcher::Fingerprints(_))
        ));
        assert_eq!(summary(&many, value), expected);
    }

    /// What `search` must report, found naively: (needle, at start, at end)
    /// for every needle occurring in `value`.
    fn naive(needles: &[String], value: &str) -> Vec<(usize, bool, bool)> {
        let mut out = Vec::new();
        for (i, n) in needles.iter().enumerate() {
            if value.contains(n.as_str()) {
                out.push((
                    i,
                    value.starts_with(n.as_str()),
                    value.ends_with(n.as_str()),
                ));
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

        /// Many short and long needles over a small alphabet, so that they
        /// overlap, nest and share fingerprints: the fingerprint searcher
        /// reports exactly what a naive search finds.
        #[test]
        fn fingerprints_find_what_a_naive_search_finds(
            needles in proptest::collection::vec("[ab c\u{e9}]{1,20}", 9..60),
            value in "[ab c\u{e9}]{0,300}",
        ) {
            let mut needles = needles;
            needles.sort();
            needles.dedup();
            let refs: Vec<&str> = needles.iter().map(String::as_str).collect();
            let searcher = Searcher::new(&needles).expect("small");
            if needles.len() > FEW {
                proptest::prop_assert!(matches!(searcher, Searcher::Fingerprints(_)));
            }
            proptest::prop_assert_eq!(summary(&refs, &value), naive(&needles, &value));
        }

        /// Needles cut out of the value itself (so that long ones occur,
        /// at its start, its end and overlapping), among random ones.
        #[test]
        fn fingerprints_find_needles_cut_from_the_value(
            value in "[ab c\u{e9}]{0,120}",
            cuts in proptest::collection::vec((0usize..120, 1usize..24), 9..40),
            others in proptest::collection::vec("[ab c\u{e9}]{1,20}", 0..20),
        ) {
            let chars: Vec<char> = value.chars().collect();
            let mut needles: Vec<String> = cuts
                .iter()
                .filter(|(from, _)| *from < chars.len())
                .map(|&(from, len)| chars[from..(from + len).min(chars.len())].iter().collect())
                .chain(others)
                .collect();
            needles.sort();
            needles.dedup();
            proptest::prop_assume!(needles.len() > FEW);
            let refs: Vec<&str> = needles.iter().map(String::as_str).collect();
            proptest::prop_assert_eq!(summary(&refs, &value), naive(&needles, &value));
        }
    }
}
