//! Finding a group's needles in one value. The prefilter needs, per needle,
//! whether it occurs in the value anywhere, at its start, at its end; not
//! where else. Many needles: one Aho-Corasick DFA, in an overlapping
//! search so that no needle hides another. A few: one `memmem` search per
//! needle, as the interpreter's own `contains` does, which for a long
//! value (a message body) is several times faster than walking the DFA
//! byte by byte.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use memchr::memmem::Finder;

/// Up to this many needles are searched one by one.
const FEW: usize = 8;

/// The needles of one group, ready to search.
#[derive(Debug)]
pub(super) enum Searcher {
    /// Each needle on its own (needle ids are indices).
    Few(Vec<Finder<'static>>),
    /// All needles at once (needle ids are pattern ids).
    Many(AhoCorasick),
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
            let finders = needles
                .iter()
                .map(|n| Finder::new(n.as_bytes()).into_owned())
                .collect();
            return Some(Searcher::Few(finders));
        }
        // A DFA scans several times faster than the NFA the builder picks
        // for thousands of needles, for a few MB.
        AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(needles)
            .ok()
            .map(Searcher::Many)
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
            Searcher::Many(automaton) => {
                for m in automaton.find_overlapping_iter(value) {
                    found(Found {
                        needle: m.pattern().as_usize(),
                        at_start: m.start() == 0,
                        at_end: m.end() == value.len(),
                    });
                }
            }
        }
    }
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
            Some(Searcher::Many(_))
        ));
        assert_eq!(summary(&many, value), expected);
    }
}
