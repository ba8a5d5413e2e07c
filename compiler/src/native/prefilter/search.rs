//! Finding a group's needles in one value. The prefilter needs, per needle,
//! whether it occurs in the value anywhere, at its start, at its end; not
//! where else. A few needles: one `memmem` search per needle, as the
//! interpreter's own `contains` does. Many: [`Fingerprints`], a filter on
//! the first four bytes at every position that stays in cache, confirmed
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

/// Bytes of a fingerprint: a needle's first four bytes.
const WIDTH: usize = 4;

/// Bits of a fingerprint's hash: a filter of 8 KB, which stays in the
/// first-level cache while a body is scanned.
const HASH_BITS: u32 = 16;

/// The hash of a fingerprint (multiplicative, the top bits).
fn hash(fingerprint: u32) -> usize {
    (fingerprint.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
}

/// Many needles found by their fingerprints, Hyperscan's FDR idea without
/// SIMD: at every position of a value the four bytes there are hashed and
/// looked up in a bit table of the needles' fingerprints; only where the
/// bit is set are the needles of that hash compared in full. The table is
/// small enough to stay in cache, where an Aho-Corasick DFA of thousands
/// of needles is megabytes walked one dependent load per byte. Exact:
/// every occurrence of every needle at least four bytes long starts at a
/// position whose fingerprint is in the table, and is confirmed by a full
/// comparison; shorter needles are searched by their own searcher.
#[derive(Debug)]
pub(super) struct Fingerprints {
    /// One bit per hash: whether some needle's fingerprint has it.
    filter: Vec<u64>,
    /// By hash: where its needles start in `bucket` (one more entry at
    /// the end).
    starts: Vec<u32>,
    /// The long needles, grouped by hash.
    bucket: Vec<Entry>,
    /// Every needle's bytes, by needle id.
    needles: Vec<Box<[u8]>>,
    /// The needles shorter than [`WIDTH`], and their ids.
    short: Option<(Searcher, Vec<usize>)>,
}

impl Fingerprints {
    fn new(needles: &[String]) -> Option<Fingerprints> {
        let (long, short): (Vec<usize>, Vec<usize>) =
            (0..needles.len()).partition(|&i| needles[i].len() >= WIDTH);
        let short = if short.is_empty() {
            None
        } else {
            let texts: Vec<String> = short.iter().map(|&i| needles[i].clone()).collect();
            Some((Searcher::automaton(&texts)?, short))
        };
        let slots = 1usize << HASH_BITS;
        let mut filter = vec![0u64; slots / 64];
        let mut counts = vec![0u32; slots + 1];
        let hashes: Vec<usize> = long
            .iter()
            .map(|&i| hash(fingerprint(needles[i].as_bytes())))
            .collect();
        for &h in &hashes {
            filter[h / 64] |= 1 << (h % 64);
            counts[h + 1] += 1;
        }
        // Prefix sums: bucket `h` is `bucket[starts[h]..starts[h + 1]]`.
        for h in 0..slots {
            counts[h + 1] += counts[h];
        }
        let starts = counts.clone();
        let mut bucket = vec![Entry::default(); long.len()];
        for (&i, &h) in long.iter().zip(&hashes) {
            bucket[counts[h] as usize] = Entry::new(u32::try_from(i).ok()?, needles[i].as_bytes());
            counts[h] += 1;
        }
        Some(Fingerprints {
            filter,
            starts,
            bucket,
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
        for (at, window) in bytes.windows(WIDTH).enumerate() {
            let h = hash(fingerprint(window));
            if self.filter[h / 64] & (1 << (h % 64)) == 0 {
                continue;
            }
            let (from, to) = (self.starts[h] as usize, self.starts[h + 1] as usize);
            let rest = &bytes[at..];
            // The eight bytes here (fewer at the end), for the entries'
            // first comparison in registers.
            let head = padded(rest);
            for entry in &self.bucket[from..to] {
                if head & entry.mask != entry.prefix {
                    continue;
                }
                let needle = &self.needles[entry.id as usize];
                if rest.len() >= needle.len()
                    && rest[8.min(needle.len())..needle.len()] == needle[8.min(needle.len())..]
                {
                    found(Found {
                        needle: entry.id as usize,
                        at_start: at == 0,
                        at_end: at + needle.len() == bytes.len(),
                    });
                }
            }
        }
    }
}

/// A long needle in its bucket: its first eight bytes (fewer when it is
/// shorter) and their mask, compared before the rest of it.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    prefix: u64,
    mask: u64,
    id: u32,
}

impl Entry {
    fn new(id: u32, needle: &[u8]) -> Entry {
        let n = needle.len().min(8);
        let mask = if n == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * n)) - 1
        };
        Entry {
            prefix: padded(&needle[..n]),
            mask,
            id,
        }
    }
}

/// Up to eight bytes as a little-endian number, zero-padded.
fn padded(bytes: &[u8]) -> u64 {
    let mut eight = [0u8; 8];
    let n = bytes.len().min(8);
    eight[..n].copy_from_slice(&bytes[..n]);
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
            needles in proptest::collection::vec("[ab c\u{e9}]{1,9}", 9..60),
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
    }
}
