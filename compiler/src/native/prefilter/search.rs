//! Finding a group's needles in one value. The prefilter needs, per needle,
//! whether it occurs in the value anywhere, at its start, at its end; not
//! where else. A few needles: one `memmem` search per needle, as the
//! interpreter's own `contains` does. Many: [`Fingerprints`], a filter on
//! eight bytes (four, for needles shorter than eight) at every position
//! that stays in cache, confirmed
//! by comparing the needles in full (an Aho-Corasick DFA of thousands of
//! needles is megabytes, walked one dependent load per byte); the needles
//! shorter than four bytes in an Aho-Corasick DFA of their own, in an
//! overlapping search so that no needle hides another.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use memchr::memmem::Finder;

use super::shift_or::ShiftOr;
use super::wide;

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

/// Bytes of a long fingerprint: eight bytes of a needle at least that
/// long, chosen by [`window`].
const LONG: usize = 8;

/// Fingerprints above which the first pass is left out: with eight
/// buckets of more than about a hundred fingerprints each, nearly every
/// pair of letters is some fingerprint's, and the pass rules out too few
/// positions to pay for itself (at 10,000 generated rules the body's 2,600
/// let 6 % through and evaluation took longer than without; at 1,000 rules
/// its 310 let 0.3 % through and evaluation took a quarter less).
const FIRST_PASS_MAX: usize = 800;

/// Bits of a filter's word index: 2,048 words of 32 bits, 8 KB, which
/// stays in the first-level cache while a body is scanned.
pub(super) const WORDS_BITS: u32 = 11;

/// A filter: a blocked Bloom filter of fingerprint hashes ([`probe`]).
pub(super) type Filter = [u32; 1 << WORDS_BITS];

/// The multipliers of the hashes: a short fingerprint's, and a long
/// one's two halves'. 32-bit products, so that eight positions can be
/// hashed at once ([`super::wide`]) exactly as one is here.
pub(super) const MID_K: u32 = 0x9E37_79B1;
pub(super) const LO_K: u32 = 0x85EB_CA77;
pub(super) const HI_K: u32 = 0xC2B2_AE3D;

/// Right shift mixing a hash's upper bits into the lower ones its two
/// bits are taken from, so that they do not repeat the word's index
/// (its top [`WORDS_BITS`] bits).
pub(super) const MIX: u32 = 11;

/// The filter word of a hash and the two bits it sets in it: one memory
/// access per position for two bits' precision (with 2,000 fingerprints,
/// 0.5 % of positions pass it by chance against 3.5 % with one bit in the
/// same 8 KB).
#[inline]
fn probe(hash: u32) -> (usize, u32) {
    let word = (hash >> (32 - WORDS_BITS)) as usize;
    let g = hash ^ (hash >> MIX);
    let bits = (1u32 << (g & 31)) | (1u32 << ((g >> 5) & 31));
    (word, bits)
}

/// The hash of a short fingerprint.
#[inline]
fn hash4(fingerprint: u32) -> u32 {
    fingerprint.wrapping_mul(MID_K)
}

/// The hash of a long fingerprint.
#[inline]
fn hash8(fingerprint: u64) -> u32 {
    (fingerprint as u32).wrapping_mul(LO_K) ^ ((fingerprint >> 32) as u32).wrapping_mul(HI_K)
}

/// Where in a needle of at least [`LONG`] bytes its fingerprint is taken:
/// the eight bytes whose middle is nearest a byte that is not a letter
/// or digit (the earliest such window). A phrase's words are common in
/// text; the bytes across the break between two of them much less so, so
/// far fewer positions of a text reach the comparisons than with its
/// first eight bytes (in `synth` bodies, a tenth as many).
fn window(needle: &[u8]) -> usize {
    let middle = |k: usize| {
        needle[k..k + LONG]
            .iter()
            .enumerate()
            .filter(|(_, b)| !b.is_ascii_alphanumeric())
            .map(|(i, _)| (2 * i).abs_diff(LONG - 1))
            .min()
            .unwrap_or(usize::MAX)
    };
    (0..=needle.len() - LONG)
        .min_by_key(|&k| middle(k))
        .unwrap_or(0)
}

/// Many needles found by their fingerprints, Hyperscan's FDR idea without
/// SIMD: a bucketed shift-or over byte pairs ([`ShiftOr`]) offers the
/// positions where a fingerprint may start; there the eight bytes (and,
/// when some needles are shorter, the first four of them) are hashed and
/// looked up in a Bloom filter of the needles' fingerprints; only where it
/// passes are the needles of that fingerprint's hash compared in full. The filters
/// are small enough to stay in cache, where an Aho-Corasick DFA of
/// thousands of needles is megabytes walked one dependent load per byte.
/// Exact: every occurrence of a needle of at least eight bytes has its
/// fingerprint ([`window`]) at its offset in the needle, and of a needle
/// of four to seven bytes at its start; every candidate is compared in
/// full; shorter needles are searched by their own searcher.
#[derive(Debug)]
pub(super) struct Fingerprints {
    /// The needles of at least [`LONG`] bytes, by their [`window`].
    long: Table,
    /// The needles of [`WIDTH`] to [`LONG`] − 1 bytes, by their first
    /// four (a table that never passes when there are none).
    mid: Table,
    /// Every needle's bytes, by needle id.
    needles: Vec<Box<[u8]>>,
    /// The needles shorter than [`WIDTH`], and their ids.
    short: Option<(Searcher, Vec<usize>)>,
    /// The first pass over a value, before `long` and `mid` are asked;
    /// none for more than [`FIRST_PASS_MAX`] fingerprints.
    first: Option<ShiftOr>,
    /// Whether, without a first pass, the filters are asked eight
    /// positions at a time ([`wide`]), as this processor allows.
    wide: bool,
}

/// One filter of fingerprints and the needles behind each hash.
#[derive(Debug)]
struct Table {
    /// The blocked Bloom filter of the fingerprints' hashes ([`probe`]);
    /// of a fixed size, so that probing it needs no bounds check.
    filter: Box<Filter>,
    /// By bucket (the hash's top bits, as the filter's word): where its
    /// needles start in `bucket` (one more entry at the end).
    starts: Vec<u32>,
    /// The needles, grouped by bucket.
    bucket: Vec<Entry>,
}

impl Table {
    /// A table of `needles` (entry, hash of its fingerprint).
    fn new(needles: &[(Entry, u32)]) -> Table {
        let words = 1usize << WORDS_BITS;
        let mut filter: Box<Filter> = Box::new([0; 1 << WORDS_BITS]);
        let mut counts = vec![0u32; words + 1];
        for &(_, h) in needles {
            let (word, bits) = probe(h);
            filter[word] |= bits;
            counts[word + 1] += 1;
        }
        // Prefix sums: bucket `w` is `bucket[starts[w]..starts[w + 1]]`.
        for w in 0..words {
            counts[w + 1] += counts[w];
        }
        let starts = counts.clone();
        let mut bucket = vec![Entry::default(); needles.len()];
        for &(entry, h) in needles {
            let (word, _) = probe(h);
            bucket[counts[word] as usize] = entry;
            counts[word] += 1;
        }
        Table {
            filter,
            starts,
            bucket,
        }
    }

    /// Whether the filter lets `hash` through: some fingerprint may
    /// have it. Never, for a table of no needles.
    #[inline(always)]
    fn may_have(&self, hash: u32) -> bool {
        let (word, bits) = probe(hash);
        self.filter[word] & bits == bits
    }

    /// The needles whose fingerprint may hash to `hash` (none when the
    /// filter says no fingerprint does).
    #[inline]
    fn entries(&self, hash: u32) -> &[Entry] {
        if !self.may_have(hash) {
            return &[];
        }
        let (word, _) = probe(hash);
        &self.bucket[self.starts[word] as usize..self.starts[word + 1] as usize]
    }
}

impl Fingerprints {
    fn new(needles: &[String]) -> Option<Fingerprints> {
        let short: Vec<usize> = (0..needles.len())
            .filter(|&i| needles[i].len() < WIDTH)
            .collect();
        let short = if short.is_empty() {
            None
        } else {
            let texts: Vec<String> = short.iter().map(|&i| needles[i].clone()).collect();
            Some((Searcher::automaton(&texts)?, short))
        };
        let (mut long, mut mid) = (Vec::new(), Vec::new());
        for (i, needle) in needles.iter().enumerate() {
            let (bytes, id) = (needle.as_bytes(), u32::try_from(i).ok()?);
            if bytes.len() >= LONG {
                let offset = window(bytes);
                let entry = Entry::new(id, &bytes[offset..], offset);
                long.push((entry, hash8(entry.prefix)));
            } else if bytes.len() >= WIDTH {
                let entry = Entry::new(id, bytes, 0);
                mid.push((entry, hash4(entry.prefix as u32)));
            }
        }
        let first = (long.len() + mid.len() <= FIRST_PASS_MAX).then(|| {
            ShiftOr::new(
                &long
                    .iter()
                    .map(|(e, _)| e.prefix.to_le_bytes())
                    .collect::<Vec<_>>(),
                &mid.iter()
                    .map(|(e, _)| (e.prefix as u32).to_le_bytes())
                    .collect::<Vec<_>>(),
            )
        });
        Some(Fingerprints {
            long: Table::new(&long),
            mid: Table::new(&mid),
            needles: needles.iter().map(|n| n.as_bytes().into()).collect(),
            short,
            first,
            wide: wide::available(),
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
        // Every position where eight bytes remain is offered by the first
        // pass when a fingerprint may start there; the last few, where
        // only a short one fits, are asked directly. Without a first pass,
        // every position is.
        match &self.first {
            Some(first) => first.scan(bytes, |at, long, mid| {
                self.candidate(bytes, at, long, mid, found)
            }),
            None => {
                let from = self.wide_filtered(bytes, found);
                self.filtered(bytes, from, found)
            }
        }
        for at in bytes.len().saturating_sub(LONG - 1)..bytes.len().saturating_sub(WIDTH - 1) {
            self.at(bytes, at, true, true, found);
        }
    }

    /// Asks the filters eight positions at a time ([`wide`]) where this
    /// processor allows, and [`Fingerprints::candidate`] where one
    /// passes; returns the first position not asked (0 without [`wide`]).
    fn wide_filtered(&self, bytes: &[u8], found: &mut dyn FnMut(Found)) -> usize {
        if !self.wide {
            return 0;
        }
        let mid = (!self.mid.bucket.is_empty()).then_some(&*self.mid.filter);
        wide::filtered(&self.long.filter, mid, bytes, &mut |at, long, mid| {
            self.candidate(bytes, at, long, mid, found)
        })
    }

    /// Asks the filters at every position from `from` where eight bytes
    /// remain and [`Fingerprints::candidate`] where one passes: the loop
    /// without a first pass (or after [`wide`]'s), kept to the two probes
    /// so that its state stays in registers.
    fn filtered(&self, bytes: &[u8], from: usize, found: &mut dyn FnMut(Found)) {
        let rest = bytes.get(from..).unwrap_or_default();
        for (at, window) in (from..).zip(rest.windows(LONG)) {
            let eight = head(window);
            let long = self.long.may_have(hash8(eight));
            let mid = self.mid.may_have(hash4(eight as u32));
            if long | mid {
                self.candidate(bytes, at, long, mid, found);
            }
        }
    }

    /// [`Fingerprints::at`] out of line, for the first pass's few
    /// candidates: inlined there it slows the pass itself.
    #[inline(never)]
    fn candidate(
        &self,
        bytes: &[u8],
        at: usize,
        long: bool,
        mid: bool,
        found: &mut dyn FnMut(Found),
    ) {
        self.at(bytes, at, long, mid, found);
    }

    /// Reports the needles whose fingerprint is at `at` in `bytes`: the
    /// long ones if `long`, the four-to-seven-byte ones if `mid`.
    #[inline(always)]
    fn at(&self, bytes: &[u8], at: usize, long: bool, mid: bool, found: &mut dyn FnMut(Found)) {
        let rest = &bytes[at..];
        // The eight bytes here (fewer at the end): the long fingerprint,
        // and the entries' first comparison in registers.
        let eight = head(rest);
        if long && rest.len() >= LONG {
            for entry in self.long.entries(hash8(eight)) {
                self.confirm(entry, eight, at, bytes, found);
            }
        }
        if mid {
            for entry in self.mid.entries(hash4(eight as u32)) {
                self.confirm(entry, eight, at, bytes, found);
            }
        }
    }

    /// Reports `entry`'s needle if its fingerprint is at `at` in `bytes`
    /// (whose eight bytes there, zero-padded, are `eight`) and the whole
    /// needle is around it.
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
        let Some(start) = at.checked_sub(entry.offset as usize) else {
            return;
        };
        let Some(here) = bytes.get(start..start + needle.len()) else {
            return;
        };
        // A needle shorter than eight bytes is all in its fingerprint,
        // just compared; a longer one is compared word by word in line
        // (most that share a fingerprint differ in their first word).
        if needle.len() < LONG || same_words(here, needle) {
            found(Found {
                needle: entry.id as usize,
                at_start: start == 0,
                at_end: start + needle.len() == bytes.len(),
            });
        }
    }
}

/// A needle in its bucket: the eight bytes of its fingerprint (fewer when
/// it is shorter) and their mask, compared before the whole needle.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    prefix: u64,
    mask: u64,
    id: u32,
    /// Where the fingerprint starts in the needle.
    offset: u32,
}

impl Entry {
    /// The entry of needle `id` whose fingerprint is `from` (the needle
    /// from `offset` on).
    fn new(id: u32, from: &[u8], offset: usize) -> Entry {
        let n = from.len().min(LONG);
        let mask = if n == LONG {
            u64::MAX
        } else {
            (1u64 << (8 * n)) - 1
        };
        Entry {
            prefix: head(from) & mask,
            mask,
            id,
            offset: u32::try_from(offset).unwrap_or(u32::MAX),
        }
    }
}

/// Whether `a` and `b`, of the same length and at least eight bytes,
/// are equal: eight bytes at a time from the start, the last word
/// overlapping the one before.
#[inline]
fn same_words(a: &[u8], b: &[u8]) -> bool {
    debug_assert!(a.len() == b.len() && a.len() >= LONG);
    let word = |s: &[u8], at: usize| head(&s[at..at + LONG]);
    let last = a.len() - LONG;
    (0..last).step_by(LONG).all(|at| word(a, at) == word(b, at)) && word(a, last) == word(b, last)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What `search` reports, as (needle, occurs, at start, at end).
    fn summary(needles: &[&str], value: &str) -> Vec<(usize, bool, bool)> {
        let needles: Vec<String> = needles.iter().map(|s| s.to_string()).collect();
        summarise(&Searcher::new(&needles).expect("small"), value)
    }

    /// What `summary` gives when many needles are searched without the
    /// first pass, as more than [`FIRST_PASS_MAX`] of them are.
    fn summary_without_first_pass(
        needles: &[&str],
        value: &str,
        wide: bool,
    ) -> Vec<(usize, bool, bool)> {
        let needles: Vec<String> = needles.iter().map(|s| s.to_string()).collect();
        let mut searcher = Searcher::new(&needles).expect("small");
        if let Searcher::Fingerprints(f) = &mut searcher {
            f.first = None;
            f.wide = wide;
        }
        summarise(&searcher, value)
    }

    /// Without a first pass, one position at a time and (where the
    /// processor allows) eight at a time, the searcher reports what a
    /// naive search finds.
    fn without_first_pass_as_naive(
        refs: &[&str],
        needles: &[String],
        value: &str,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        for wide in [false, wide::available()] {
            proptest::prop_assert_eq!(
                summary_without_first_pass(refs, value, wide),
                naive(needles, value),
                "eight at a time: {}",
                wide
            );
        }
        Ok(())
    }

    fn summarise(searcher: &Searcher, value: &str) -> Vec<(usize, bool, bool)> {
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
            without_first_pass_as_naive(&refs, &needles, &value)?;
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
            without_first_pass_as_naive(&refs, &needles, &value)?;
        }
    }
}
