//! The one-pass pattern prefilter (docs/serve.md: "literal and regex patterns
//! of all rules are matched in one pass per field"). At compile time every
//! leaf that is a literal string test (`==`, `!=`, `contains`,
//! `starts_with`, `ends_with`, `in`, each with a constant string or list of
//! strings on the right) is grouped by the expression it tests (its left
//! side: `subject`, `from.domain`, `header("X-Mailer")`, …). Per group, the
//! needles of all its leaves go into one searcher (substring tests; an
//! Aho-Corasick automaton, or a `memmem` search per needle when there are
//! only a few: `search.rs`) and one hash table (equality tests),
//! case-folded once.
//!
//! Per message, a group is scanned the first time the code asks for one
//! of its leaves: its left side is evaluated once (by the interpreter's
//! own step, so a field the ruleset never reads is never decoded), each
//! value is folded once and searched once, and the
//! answers of every leaf of the group are stored. The generated code then
//! reads a leaf's answer instead of evaluating the test.
//!
//! Regex tests without `as` (`subject matches /…/i`) join the group of
//! their left side too, and only their truth is needed (what `captures`
//! would give, without filling capture slots). Each regex is read as the
//! regex crate's own parser reads it, with its flags (`Regex::hir`), for
//! *required strings* (`required`): sets of strings such that the folded value must
//! contain a string of each set for the regex to match anywhere in it
//! (`/attached (is|was) free/i` needs `attached ` and ` free`). Those sets
//! whose strings few other regexes of the group share (`strings::selective`;
//! else the rarest set alone) join the group's automaton, and per value
//! only the regexes with a string of each of those sets in it run
//! (`is_match` on the value itself, the interpreter's own regex).
//!
//! A regex whose matches are a few strings (`/(gift|deal)s? card/i`,
//! `/click (here|now)/i`) is not run at all on ASCII values: its *ASCII
//! language* (`strings::ascii_language`), the lower-case strings an ASCII
//! text must contain for it to match, and that are enough, joins the
//! automaton too, and finding one of them decides the regex. A value that
//! is not ASCII runs it as above. A regex with neither required strings nor
//! an ASCII language runs alone (`is_match`, the first time its leaf is
//! needed).
//!
//! Exactly the interpreter's meaning (`compare.rs`): a test holds when
//! any value of the left side passes (every one, and at least one, with
//! `all`); a value passes when any needle does; strings compare folded
//! with [`fold`]; values that are not text (or an address, which tests by
//! its `.address`) never pass a text needle; `!=` negates the whole test.
//! Searching the folded needle in the folded value byte by byte is what
//! `str::find` does, and UTF-8 makes every byte match of a whole needle
//! start and end on character boundaries.
//!
//! Left out, and so still evaluated by the host: left sides whose value
//! can change during an evaluation or whose evaluation has effects
//! (`score`, captures, `rate()`, `matched()`, user functions, nested
//! tests, which may record `--explain` evidence), `matches … as NAME`
//! (captures), numeric or IP operands. `--explain` evaluations, which
//! record evidence for every test, run in the interpreter.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use regex_syntax::hir::Hir;
use weir_stdlib::{Regex, Value};

use crate::eval::Machine;
use crate::ir::{CmpOp, Compare, Expr};
use weir_stdlib::value::fold;

use super::cond::Leaf;
use super::skip::Skip;

mod search;
mod shift_or;
mod strings;
mod wide;

use search::{Found, Searcher};
use strings::{ascii_language, required, selective};

/// Regexes analysed by one thread at least: a few stay on the calling
/// thread, where starting threads would cost more than they save.
const ANALYSED_PER_THREAD: usize = 128;

/// What the prefilter learns of a regex: the sets of strings every match
/// contains, and its matches when they are a few strings.
pub(crate) type Analysis = (Vec<Vec<String>>, Option<Vec<String>>);

/// Analyses made ahead (while the checker parsed the regex literals), by
/// pattern with its flags inline ([`Regex::inline`]).
pub(crate) type Analyses = HashMap<String, Analysis>;

/// The [`Analysis`] of a regex from its parse (its own, with its flags, as
/// the regex crate builds it): a function of the regex alone.
pub(crate) fn analysis(hir: &Hir) -> Analysis {
    (required(hir).unwrap_or_default(), ascii_language(hir))
}

/// The [`Analysis`] of each regex, in order: the one made ahead in
/// `known` (taken out, not copied: a regex in a later group too is
/// analysed again there), else made here from a fresh parse. The parses
/// run on up to four threads, since parsing every regex again was three
/// quarters of the prefilter's build at 10,000 rules. The result does not
/// depend on the threads, nor on which analyses were made ahead.
fn analyse(regexes: &[&Regex], known: &mut Analyses) -> Vec<Analysis> {
    let keys: Vec<String> = regexes.iter().map(|re| re.inline()).collect();
    let missing: Vec<&Regex> = regexes
        .iter()
        .zip(&keys)
        .filter(|(_, key)| !known.contains_key(*key))
        .map(|(re, _)| *re)
        .collect();
    let mut fresh = analyse_parsing(&missing).into_iter();
    keys.iter()
        .map(|key| match known.remove(key) {
            Some(done) => done,
            None => fresh.next().unwrap_or_default(),
        })
        .collect()
}

/// The [`Analysis`] of each regex, each parsed again, on as many threads
/// as a compile may use ([`crate::threads::compile_threads`]).
fn analyse_parsing(regexes: &[&Regex]) -> Vec<Analysis> {
    fn one(re: &&Regex) -> Analysis {
        let hir = re.hir();
        hir.as_ref().map(analysis).unwrap_or_default()
    }
    let threads = crate::threads::compile_threads();
    let per = regexes.len().div_ceil(threads).max(ANALYSED_PER_THREAD);
    let mut chunks = regexes.chunks(per);
    let mine = chunks.next().unwrap_or_default();
    std::thread::scope(|s| {
        let others: Vec<_> = chunks
            .map(|c| s.spawn(move || c.iter().map(one).collect::<Vec<_>>()))
            .collect();
        let mut out: Vec<Analysis> = mine.iter().map(one).collect();
        for other in others {
            out.extend(
                other
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e)),
            );
        }
        out
    })
}

/// How the generated code learns a leaf's truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// It asks the host to evaluate the test (`test`).
    Host,
    /// It reads the leaf's byte in the answer table: 1 is false; anything
    /// else asks the host (`bit`), which scans the leaf's group if needed.
    Byte,
    /// The test holds exactly when some value of its group passed it (no
    /// `all`, no `!=`): its byte is 2 once a value of its group has passed
    /// it, and the byte at `scanned` (after the leaves) is 1 once the group
    /// has been scanned; while neither, it asks the host (`bit`). After a
    /// scan only the leaves that passed are written, not the thousands
    /// that did not.
    Scanned {
        /// The index of the group's byte in the answer table.
        scanned: u32,
    },
}

/// Where a substring needle must sit in the folded value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchor {
    /// Anywhere (`contains`).
    Anywhere,
    /// At the start (`starts_with`).
    Start,
    /// At the end (`ends_with`).
    End,
}

/// One leaf the prefilter decides.
#[derive(Debug, Clone)]
struct Decided {
    /// Its leaf id.
    leaf: u32,
    /// Its group, by index.
    group: u32,
    /// For `matches` (without `as`): the regex, run on the group's values
    /// the first time the leaf is needed.
    regex: Option<Arc<Regex>>,
    /// `all`: every value must pass, and there must be one.
    all: bool,
    /// `!=`: the outcome is negated.
    negated: bool,
}

/// The leaves testing one left side, and their needles.
#[derive(Debug)]
struct Group {
    /// The left side, evaluated once per message.
    lhs: Expr,
    /// The folded substring needles (no empty one), if there are any.
    searcher: Option<Searcher>,
    /// By automaton pattern id: the slots it answers, and how.
    hits: Vec<Vec<(u32, Anchor)>>,
    /// Folded equality needles (`==`, `in`): the slots each answers.
    exact: HashMap<String, Vec<u32>>,
    /// Slots with an empty substring needle: every text value passes.
    empty: Vec<u32>,
    /// By automaton pattern id: the regexes (indices into `filtered`)
    /// that pattern is a string of, with the bit of its set (or
    /// [`LANGUAGE`]).
    cands: Vec<Vec<(u32, u64)>>,
    /// The regexes decided from the strings found in a value.
    filtered: Vec<Filtered>,
    /// The filtered regexes without required strings (indices into
    /// `filtered`): they run on every value that is not ASCII.
    unfiltered: Vec<u32>,
    /// Whether any leaf of the group is a literal test.
    literal: bool,
    /// The group's leaves answered by its scan alone (not regexes run on
    /// their own), packed, to write all their answers after the scan.
    literals: Vec<Member>,
}

/// A literal leaf of a group, as its answer is written after a scan.
#[derive(Debug, Clone, Copy)]
struct Member {
    slot: u32,
    leaf: u32,
    all: bool,
    negated: bool,
}

/// A regex decided from the strings the automaton finds in a value: on an
/// ASCII value by its ASCII language alone, if it has one
/// ([`strings::ascii_language`]); otherwise it runs on the value when a
/// string of each set of its required strings ([`strings::required`]) is
/// in it.
#[derive(Debug)]
struct Filtered {
    regex: Arc<Regex>,
    /// The slots it answers.
    slots: Vec<u32>,
    /// The bits of its sets of required strings (0 when it has none).
    required: u64,
    /// Whether its ASCII language is in the automaton, under [`LANGUAGE`].
    language: bool,
}

/// The candidate bit of a string of a regex's ASCII language (the bits
/// below are its sets of required strings).
const LANGUAGE: u64 = 1 << 63;

/// The prefilter of one compiled ruleset.
#[derive(Debug, Default)]
pub(crate) struct Prefilter {
    /// By leaf id: its slot, if the prefilter decides it.
    slots: Vec<Option<u32>>,
    /// By slot.
    decided: Vec<Decided>,
    groups: Vec<Group>,
    /// The most filtered regexes of any group (the size of the per-message
    /// candidate marks).
    max_filtered: usize,
    /// By slot: where its skips' bytes start in `wake_bytes` (one more
    /// entry at the end; empty when there are no skips).
    wake_starts: Vec<u32>,
    /// The answer-table bytes of the skips (`skip.rs`) each slot is a
    /// trigger of, grouped by slot: written 2 when it passes.
    wake_bytes: Vec<u32>,
    /// How many skip bytes follow the groups' in the answer table.
    skips: usize,
    /// By group: whether some skip tests whether it was scanned.
    skip_groups: Vec<bool>,
}

impl Decided {
    /// Whether the test holds exactly when some value passed it, so that
    /// its leaf's byte can be written when one does ([`Answer::Scanned`]).
    fn by_passing(&self) -> bool {
        self.regex.is_none() && !self.all && !self.negated
    }
}

/// The needles of a decided test, folded, before grouping.
struct Needles {
    exact: Vec<String>,
    substrings: Vec<(String, Anchor)>,
    regex: Option<Arc<Regex>>,
}

/// The needles of `c` if the prefilter can decide it exactly.
fn needles(c: &Compare) -> Option<Needles> {
    if c.bind.is_some() || !pure(&c.lhs) {
        return None;
    }
    let Expr::Const(rhs) = &c.rhs else {
        return None;
    };
    if c.op == CmpOp::Matches {
        // Without `as`, only the truth of the search matters: `is_match`
        // is what `captures(..).is_some()` decides, without the slots.
        let Value::Regex(re) = rhs else { return None };
        return Some(Needles {
            exact: Vec::new(),
            substrings: Vec::new(),
            regex: Some(Arc::clone(re)),
        });
    }
    // A list on the right means any of its items, for every operator
    // taken here (`compare::element`); each must be text, since a number
    // or an IP could equal or contain a value that is not text.
    let items: Vec<&str> = match rhs {
        Value::List(items) => items.iter().map(Value::as_text).collect::<Option<_>>()?,
        other => vec![other.as_text()?],
    };
    let folded = items.into_iter().map(fold);
    let anchor = match c.op {
        CmpOp::Eq | CmpOp::In => {
            return Some(Needles {
                exact: folded.collect(),
                substrings: Vec::new(),
                regex: None,
            });
        }
        CmpOp::Contains => Anchor::Anywhere,
        CmpOp::StartsWith => Anchor::Start,
        CmpOp::EndsWith => Anchor::End,
        CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge | CmpOp::Matches | CmpOp::Under => {
            return None;
        }
    };
    Some(Needles {
        exact: Vec::new(),
        substrings: folded.map(|n| (n, anchor)).collect(),
        regex: None,
    })
}

/// Whether `e` has the same value wherever it is evaluated during one
/// evaluation, and evaluating it has no effect the interpreter could
/// observe (no rate counting, no `--explain` evidence): fields, headers,
/// constants and pure builtins over them.
fn pure(e: &Expr) -> bool {
    match e {
        Expr::Score
        | Expr::Param(_)
        | Expr::Element
        | Expr::Quantified { .. }
        | Expr::Captures(_)
        | Expr::CallUser { .. }
        | Expr::Rate { .. }
        | Expr::Duplicate { .. }
        | Expr::Matched(_)
        | Expr::Not(_)
        | Expr::And(..)
        | Expr::Or(..)
        | Expr::Compare(_) => false,
        // Constants, fields, headers, members, indexing, arithmetic, pure
        // builtins, lists and interpolations: pure when what they read is.
        _ => e.children().into_iter().all(pure),
    }
}

/// Which group a left side belongs to: two left sides share a key exactly
/// when they are the same expression, that is when their debug forms are
/// equal (the debug form is structural; builtins print as their address,
/// which is the same function for the same builtin). The common shapes
/// (fields, their members, headers by literal name) are keyed as they
/// are, without formatting; any other by its debug form. A shape is
/// always keyed the same way, so the groups are those of the debug forms.
#[derive(Debug, PartialEq, Eq, Hash)]
enum GroupKey<'e> {
    Field(usize),
    Member(Box<GroupKey<'e>>, &'static str),
    Header { name: &'e str, raw: bool },
    Other(String),
}

impl<'e> GroupKey<'e> {
    fn of(lhs: &'e Expr) -> GroupKey<'e> {
        match lhs {
            Expr::Field(f) => GroupKey::Field(*f),
            Expr::Member(of, member) => GroupKey::Member(Box::new(GroupKey::of(of)), member),
            Expr::Header { name, raw } => match &**name {
                Expr::Const(Value::Str(name)) => GroupKey::Header { name, raw: *raw },
                _ => GroupKey::Other(format!("{lhs:?}")),
            },
            _ => GroupKey::Other(format!("{lhs:?}")),
        }
    }
}

/// For each analysed regex of a group, the sets of its required strings
/// worth searching for ([`selective`]), by index, given how many of the
/// group's regexes share each string.
fn chosen_sets(analysed: &[&[Vec<String>]]) -> Vec<Vec<usize>> {
    let mut sharing: foldhash::HashMap<&str, usize> = foldhash::HashMap::default();
    for sets in analysed {
        let mut strings: Vec<&str> = sets.iter().flatten().map(String::as_str).collect();
        strings.sort_unstable();
        strings.dedup();
        for s in strings {
            *sharing.entry(s).or_default() += 1;
        }
    }
    let sharing = |s: &str| sharing.get(s).copied().unwrap_or(0);
    analysed
        .iter()
        .map(|sets| selective(sets, &sharing))
        .collect()
}

/// A group under construction.
#[derive(Default)]
struct GroupBuilder {
    lhs: Option<Expr>,
    /// Distinct substring needles, in automaton pattern order.
    patterns: Vec<String>,
    /// foldhash (as the other maps used only while building): every
    /// needle and regex is looked up once, SipHash cost more there.
    ids: foldhash::HashMap<String, usize>,
    hits: Vec<Vec<(u32, Anchor)>>,
    exact: HashMap<String, Vec<u32>>,
    empty: Vec<u32>,
    literal: bool,
    /// Distinct regexes, with the slots each answers.
    regexes: Vec<(Arc<Regex>, Vec<u32>)>,
    /// By pattern with its flags inline: the index in `regexes`.
    regex_ids: foldhash::HashMap<String, usize>,
}

impl GroupBuilder {
    /// Adds the needles of the leaf in `slot`.
    fn add(&mut self, slot: u32, n: Needles) {
        self.literal |= n.regex.is_none();
        // A regex joins the group's automaton through its strings
        // (or runs alone, decided when the group is built).
        if let Some(re) = &n.regex {
            let next = self.regexes.len();
            let p = *self.regex_ids.entry(re.inline()).or_insert(next);
            if p == next {
                self.regexes.push((Arc::clone(re), Vec::new()));
            }
            self.regexes[p].1.push(slot);
        }
        for needle in n.exact {
            let slots = self.exact.entry(needle).or_default();
            if !slots.contains(&slot) {
                slots.push(slot);
            }
        }
        for (needle, anchor) in n.substrings {
            if needle.is_empty() {
                // Every text value contains, starts and ends with "".
                self.empty.push(slot);
                continue;
            }
            let p = self.pattern(needle);
            self.hits[p].push((slot, anchor));
        }
    }

    /// The automaton pattern id of a (folded, non-empty) needle, adding it.
    fn pattern(&mut self, needle: String) -> usize {
        let next = self.patterns.len();
        let p = *self.ids.entry(needle.clone()).or_insert(next);
        if p == next {
            self.patterns.push(needle);
            self.hits.push(Vec::new());
        }
        p
    }
}

impl Prefilter {
    /// Gathers the leaves it can decide out of the leaf table; `known`:
    /// regexes analysed ahead.
    pub(crate) fn build(leaves: &[Leaf], mut known: Analyses) -> Prefilter {
        let mut pf = Prefilter {
            slots: vec![None; leaves.len()],
            ..Prefilter::default()
        };
        for b in pf.gather(leaves) {
            pf.finish_group(b, &mut known);
        }
        for (slot, d) in pf.decided.iter().enumerate() {
            // The other leaves the scan answers are written as they pass.
            if d.regex.is_some() || d.by_passing() {
                continue;
            }
            if let (Some(g), Ok(slot)) = (pf.groups.get_mut(d.group as usize), u32::try_from(slot))
            {
                g.literals.push(Member {
                    slot,
                    leaf: d.leaf,
                    all: d.all,
                    negated: d.negated,
                });
            }
        }
        pf
    }

    /// The regexes (their pattern with flags inline) that run only on
    /// values where the prefilter found their strings, so most messages
    /// never need them built, as decided when it was built: filtered in
    /// some group and run alone in none. Read from its groups when asked,
    /// which only a server's load does.
    pub(crate) fn filtered_regexes(&self) -> HashSet<String> {
        let alone: HashSet<String> = self
            .decided
            .iter()
            .filter_map(|d| d.regex.as_ref().map(|re| re.inline()))
            .collect();
        self.groups
            .iter()
            .flat_map(|g| &g.filtered)
            .map(|f| f.regex.inline())
            .filter(|p| !alone.contains(p))
            .collect()
    }

    /// Gives each leaf it can decide a slot, in the group of its left side.
    fn gather(&mut self, leaves: &[Leaf]) -> Vec<GroupBuilder> {
        // Same left side, same group ([`GroupKey`]).
        let mut keys: foldhash::HashMap<GroupKey<'_>, usize> = foldhash::HashMap::default();
        let mut builders: Vec<GroupBuilder> = Vec::new();
        for (id, leaf) in leaves.iter().enumerate() {
            let Expr::Compare(c) = &leaf.expr else {
                continue;
            };
            let Some(n) = needles(c) else { continue };
            let (Ok(slot), Ok(group)) =
                (u32::try_from(self.decided.len()), u32::try_from(keys.len()))
            else {
                break;
            };
            let g = *keys.entry(GroupKey::of(&c.lhs)).or_insert_with(|| {
                builders.push(GroupBuilder {
                    lhs: Some(c.lhs.clone()),
                    ..GroupBuilder::default()
                });
                group as usize
            });
            builders[g].add(slot, n);
            self.decided.push(Decided {
                leaf: u32::try_from(id).unwrap_or(u32::MAX),
                group: u32::try_from(g).unwrap_or(u32::MAX),
                regex: None,
                all: c.all,
                negated: c.negated,
            });
            self.slots[id] = Some(slot);
        }
        builders
    }

    /// Builds one group's searcher and regex filters.
    fn finish_group(&mut self, mut b: GroupBuilder, known: &mut Analyses) {
        let mut cands: Vec<Vec<(u32, u64)>> = Vec::new();
        let mut filtered = self.filter_regexes(&mut b, &mut cands, known);
        cands.resize(b.patterns.len(), Vec::new());
        let searcher = if b.patterns.is_empty() {
            None
        } else {
            match Searcher::new(&b.patterns) {
                Some(searcher) => Some(searcher),
                // Too large for the automaton: leave these leaves to
                // the host, and these regexes to run alone, rather
                // than answer them wrongly.
                None => {
                    self.forget(&b);
                    for f in std::mem::take(&mut filtered) {
                        self.alone(&f.regex, &f.slots);
                    }
                    None
                }
            }
        };
        self.max_filtered = self.max_filtered.max(filtered.len());
        let unfiltered = (0..filtered.len())
            .filter(|&r| filtered[r].required == 0)
            .filter_map(|r| u32::try_from(r).ok())
            .collect();
        self.groups.push(Group {
            lhs: b.lhs.unwrap_or(Expr::Const(Value::Bool(false))),
            searcher,
            hits: b.hits,
            exact: b.exact,
            empty: b.empty,
            cands,
            filtered,
            unfiltered,
            literal: b.literal,
            literals: Vec::new(),
        });
    }

    /// The group's regexes that its automaton can filter, through their
    /// required strings or their ASCII language (marked in `cands`, by
    /// pattern); the others are made to run alone.
    fn filter_regexes(
        &mut self,
        b: &mut GroupBuilder,
        cands: &mut Vec<Vec<(u32, u64)>>,
        known: &mut Analyses,
    ) -> Vec<Filtered> {
        let mut filtered = Vec::new();
        let regexes = std::mem::take(&mut b.regexes);
        let refs: Vec<&Regex> = regexes.iter().map(|(re, _)| &**re).collect();
        let analysed: Vec<_> = analyse(&refs, known)
            .into_iter()
            .zip(regexes)
            .map(|((sets, language), (re, slots))| (re, slots, sets, language))
            .collect();
        let all_sets: Vec<&[Vec<String>]> = analysed
            .iter()
            .map(|(_, _, sets, _)| sets.as_slice())
            .collect();
        let chosen = chosen_sets(&all_sets);
        for ((re, slots, sets, language), keep) in analysed.into_iter().zip(chosen) {
            let sets: Vec<Vec<String>> = sets
                .into_iter()
                .enumerate()
                .filter(|(k, _)| keep.contains(k))
                .map(|(_, set)| set)
                .collect();
            if sets.is_empty() && language.is_none() {
                self.alone(&re, &slots);
                continue;
            }
            let r = u32::try_from(filtered.len()).unwrap_or(u32::MAX);
            let mut mark = |b: &mut GroupBuilder, s: String, bit: u64| {
                let p = b.pattern(s);
                if cands.len() <= p {
                    cands.resize(p + 1, Vec::new());
                }
                match cands[p].iter_mut().find(|(x, _)| *x == r) {
                    Some((_, bits)) => *bits |= bit,
                    None => cands[p].push((r, bit)),
                }
            };
            let mut full = 0u64;
            for (k, set) in sets.into_iter().enumerate() {
                let bit = 1u64 << k;
                full |= bit;
                for s in set {
                    mark(b, s, bit);
                }
            }
            let has_language = language.is_some();
            for s in language.into_iter().flatten() {
                mark(b, s, LANGUAGE);
            }
            filtered.push(Filtered {
                regex: re,
                slots,
                required: full,
                language: has_language,
            });
        }
        filtered
    }

    /// Makes `re` (answering `slots`) run alone, on the group's values,
    /// the first time one of its leaves is needed.
    fn alone(&mut self, re: &Arc<Regex>, slots: &[u32]) {
        for &s in slots {
            if let Some(d) = self.decided.get_mut(s as usize) {
                d.regex = Some(Arc::clone(re));
            }
        }
    }

    /// Gives the substring leaves of a group whose automaton could not be
    /// built back to the host.
    fn forget(&mut self, b: &GroupBuilder) {
        let lost: Vec<u32> = b.hits.iter().flatten().map(|(s, _)| *s).collect();
        for slot in self.slots.iter_mut() {
            if slot.is_some_and(|s| lost.contains(&s)) {
                *slot = None;
            }
        }
    }

    /// The slot answering leaf `id`, if the prefilter decides it.
    pub(crate) fn slot(&self, id: usize) -> Option<u32> {
        self.slots.get(id).copied().flatten()
    }

    /// How the generated code learns leaf `id`'s truth.
    pub(crate) fn answer(&self, id: u32) -> Answer {
        let Some(d) = self
            .slot(id as usize)
            .and_then(|slot| self.decided.get(slot as usize))
        else {
            return Answer::Host;
        };
        match u32::try_from(self.group_byte(d.group as usize)) {
            Ok(scanned) if d.by_passing() => Answer::Scanned { scanned },
            _ => Answer::Byte,
        }
    }

    /// The answer-table byte of group `g`: 1 once it has been scanned.
    /// The groups' bytes follow the leaves'; the skips' follow theirs.
    fn group_byte(&self, g: usize) -> usize {
        self.slots.len() + g
    }

    /// The answer-table byte of the first skip: the one after the
    /// groups'.
    pub(crate) fn skips_from(&self) -> Option<u32> {
        u32::try_from(self.group_byte(self.groups.len())).ok()
    }

    /// Makes the scan write each of `skips`' bytes (numbered from
    /// [`Prefilter::skips_from`]) when one of its triggers passes.
    pub(crate) fn wake(&mut self, skips: &[Skip]) {
        (self.wake_starts, self.wake_bytes) = self.wake_lists(skips);
        self.skips = skips.len();
        self.skip_groups = self.tested_groups(skips);
    }

    /// By slot, the bytes of the skips it is a trigger of: where each
    /// slot's start, and the bytes.
    fn wake_lists(&self, skips: &[Skip]) -> (Vec<u32>, Vec<u32>) {
        let mut by_slot: Vec<(u32, u32)> = skips
            .iter()
            .flat_map(|s| s.triggers.iter().map(move |&leaf| (leaf, s.byte)))
            .filter_map(|(leaf, byte)| Some((self.slot(leaf as usize)?, byte)))
            .collect();
        if by_slot.is_empty() {
            return (Vec::new(), Vec::new());
        }
        by_slot.sort_unstable();
        by_slot.dedup();
        // Counts, then prefix sums: slot `s` is `bytes[starts[s]..starts[s + 1]]`.
        let mut starts = vec![0u32; self.decided.len() + 1];
        for &(slot, _) in &by_slot {
            starts[slot as usize + 1] += 1;
        }
        for s in 0..self.decided.len() {
            starts[s + 1] += starts[s];
        }
        (starts, by_slot.into_iter().map(|(_, byte)| byte).collect())
    }

    /// By group: whether one of `skips` tests its byte.
    fn tested_groups(&self, skips: &[Skip]) -> Vec<bool> {
        let mut tested = vec![false; self.groups.len()];
        let bytes: HashSet<usize> = skips
            .iter()
            .flat_map(|s| &s.groups)
            .map(|&byte| byte as usize)
            .collect();
        for (g, flag) in tested.iter_mut().enumerate() {
            *flag = bytes.contains(&self.group_byte(g));
        }
        tested
    }

    /// How many skips it wakes.
    pub(crate) fn skip_count(&self) -> usize {
        self.skips
    }

    /// The answer-table byte after the skips': 1 once every group some
    /// skip tests has been scanned, so that a skip need not test its
    /// groups one by one. (A group whose leaves are only ever asked after
    /// another test holds, `a and b`, may stay unscanned, and is not
    /// waited for unless a skip needs it.)
    pub(crate) fn every_group_byte(&self) -> Option<u32> {
        self.skips_from()?
            .checked_add(u32::try_from(self.skips).ok()?)
    }

    /// How many groups some skip tests the byte of.
    fn tested_group_count(&self) -> usize {
        self.skip_groups.iter().filter(|&&tested| tested).count()
    }

    /// The skip bytes `slot` wakes.
    fn wakes(&self, slot: u32) -> &[u32] {
        let s = slot as usize;
        match (self.wake_starts.get(s), self.wake_starts.get(s + 1)) {
            (Some(&from), Some(&to)) => self
                .wake_bytes
                .get(from as usize..to as usize)
                .unwrap_or_default(),
            _ => &[],
        }
    }

    /// How many leaves the prefilter decides.
    pub(crate) fn decided(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Fresh per-message state, for a leaf table of `leaves` leaves.
    pub(crate) fn scan(&self, leaves: usize) -> Scan {
        let waited = self.tested_group_count();
        Scan {
            // The leaves' bytes, then the groups' (`Answer::Scanned`),
            // then the skips', then the every-group byte.
            bits: vec![
                Cell::new(0);
                leaves.max(self.slots.len()) + self.groups.len() + self.skips + 1
            ],
            scanned: vec![false; self.groups.len()],
            unscanned: waited,
            waited,
            values: vec![0; self.groups.len()],
            value: vec![None; self.groups.len()],
            regex: vec![Outcome::Unknown; self.decided.len()],
            passed: vec![0; self.decided.len()],
            stamp: vec![0; self.decided.len()],
            marks: vec![(0, 0); self.max_filtered],
            touched: Vec::new(),
            passed_slots: Vec::new(),
            item: 0,
        }
    }
}

/// Whether a literal test holds when `passed` of its left side's `values`
/// values passed it: one (`all`: every one, and there is one), then `!=`.
fn literal_held(all: bool, negated: bool, passed: u32, values: u32) -> bool {
    let held = if all {
        values > 0 && passed == values
    } else {
        passed > 0
    };
    held != negated
}

/// How the strings found in a value decide a filtered regex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// An ASCII value: the regex's ASCII language, if it has one, decides;
    /// else its required strings tell whether to run it.
    Ascii,
    /// Its required strings tell whether to run it.
    Required,
    /// Run it (the value holds a character the strings were not folded
    /// for).
    Every,
}

/// A regex leaf's outcome in one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Not run yet.
    Unknown,
    /// The test held (before `!=`).
    Held,
    /// It did not.
    Failed,
}

/// What the prefilter found in one message, filled group by group.
#[derive(Debug)]
pub(crate) struct Scan {
    /// By leaf id: 0 while not known, else 1 + the leaf's truth (for an
    /// [`Answer::Scanned`] leaf only 2, once a value passed it); then by
    /// group: 1 once scanned. What the generated code reads before asking
    /// the host.
    bits: Vec<Cell<u8>>,
    /// By group: whether it was scanned.
    scanned: Vec<bool>,
    /// How many groups some skip tests are not scanned yet.
    unscanned: usize,
    /// How many groups some skip tests.
    waited: usize,
    /// By group: how many values its left side had.
    values: Vec<u32>,
    /// By group: its left side's value, for the regex leaves.
    value: Vec<Option<Value>>,
    /// By slot: a regex leaf's outcome, once run.
    regex: Vec<Outcome>,
    /// By slot: how many of those values passed the leaf's test.
    passed: Vec<u32>,
    /// By slot: the last value (of `item`) that counted for it, so a value
    /// matching several needles of one leaf counts once.
    stamp: Vec<u32>,
    /// By filtered regex of the group being scanned: the last value (of
    /// `item`) in which one of its required strings was found, and the
    /// bits of the sets found in it.
    marks: Vec<(u32, u64)>,
    /// The filtered regexes marked in the value being scanned.
    touched: Vec<u32>,
    /// The slots that some value passed, in the order they first did.
    passed_slots: Vec<u32>,
    /// A counter naming each value scanned, from 1, not reset between
    /// messages (see [`Scan::clear`]).
    item: u32,
}

impl Scan {
    /// Back to the state [`Prefilter::scan`] makes, keeping the memory.
    pub(crate) fn clear(&mut self) {
        self.bits.iter().for_each(|b| b.set(0));
        self.scanned.fill(false);
        self.unscanned = self.waited;
        self.values.fill(0);
        self.value.fill(None);
        self.regex.fill(Outcome::Unknown);
        for &s in &self.passed_slots {
            if let Some(p) = self.passed.get_mut(s as usize) {
                *p = 0;
            }
        }
        self.passed_slots.clear();
        self.touched.clear();
        // `item` counts on across messages, so no stamp or mark an earlier
        // message left equals an item of this one, and the tables (a
        // stamp for each slot) need no clearing but before it could wrap.
        if self.item > u32::MAX / 2 {
            self.stamp.fill(0);
            self.marks.fill((0, 0));
            self.item = 0;
        }
    }

    /// The answers by leaf id, for the generated code.
    pub(crate) fn bits(&self) -> &[Cell<u8>] {
        &self.bits
    }

    /// The truth of the leaf answered by `slot`: its answer if known, else
    /// found by scanning its group first if this message has not yet
    /// needed it. Records it (and those of
    /// the group's other leaves answered by the scan) in `bits`.
    pub(crate) fn test(&mut self, pf: &Prefilter, slot: u32, machine: &mut Machine<'_>) -> bool {
        let Some(d) = pf.decided.get(slot as usize) else {
            return false;
        };
        match self.bits.get(d.leaf as usize).map(Cell::get) {
            Some(1) => return false,
            Some(2) => return true,
            _ => {}
        }
        let held = self.truth(pf, d, slot, machine);
        if let Some(bit) = self.bits.get(d.leaf as usize) {
            bit.set(1 + u8::from(held));
        }
        held
    }

    /// The truth of the leaf answered by `slot` (`d`).
    fn truth(&mut self, pf: &Prefilter, d: &Decided, slot: u32, machine: &mut Machine<'_>) -> bool {
        let g = d.group as usize;
        if !self.scanned.get(g).copied().unwrap_or(true) {
            if let Some(group) = pf.groups.get(g) {
                let first = self.passed_slots.len();
                self.fill(group, g, machine);
                self.write_passed(pf, first);
                let values = self.values[g];
                for m in &group.literals {
                    if let Some(bit) = self.bits.get(m.leaf as usize) {
                        let passed = self.passed.get(m.slot as usize).copied().unwrap_or(0);
                        let held = literal_held(m.all, m.negated, passed, values);
                        bit.set(1 + u8::from(held));
                    }
                }
            }
            self.mark_scanned(pf, g);
        }
        let values = self.values.get(g).copied().unwrap_or(0);
        if let Some(re) = &d.regex {
            return self.regex_test(slot as usize, g, re, d) != d.negated;
        }
        self.literal_truth(d, slot, values)
    }

    /// Writes the answers of the [`Answer::Scanned`] leaves that passed
    /// since `passed_slots[first]` (the scan of one group), and those of
    /// the skips they are triggers of.
    fn write_passed(&self, pf: &Prefilter, first: usize) {
        for &s in self.passed_slots.get(first..).unwrap_or_default() {
            if let Some(d) = pf.decided.get(s as usize)
                && d.by_passing()
                && let Some(bit) = self.bits.get(d.leaf as usize)
            {
                bit.set(2);
                for &byte in pf.wakes(s) {
                    if let Some(skip) = self.bits.get(byte as usize) {
                        skip.set(2);
                    }
                }
            }
        }
    }

    /// Marks group `g` scanned: for the host, and in the answer table for
    /// the code (the group's byte, and the every-group byte once the last
    /// group some skip tests is scanned).
    fn mark_scanned(&mut self, pf: &Prefilter, g: usize) {
        if let Some(scanned) = self.scanned.get_mut(g) {
            *scanned = true;
        }
        if let Some(flag) = self.bits.get(pf.group_byte(g)) {
            flag.set(1);
        }
        if pf.skip_groups.get(g).copied().unwrap_or(false) {
            self.unscanned = self.unscanned.saturating_sub(1);
            if self.unscanned == 0
                && let Some(every) = pf.every_group_byte()
                && let Some(flag) = self.bits.get(every as usize)
            {
                flag.set(1);
            }
        }
    }

    /// The truth of a leaf answered by the scan of its group (not a regex
    /// run alone), whose left side had `values` values.
    fn literal_truth(&self, d: &Decided, slot: u32, values: u32) -> bool {
        let passed = self.passed.get(slot as usize).copied().unwrap_or(0);
        literal_held(d.all, d.negated, passed, values)
    }

    /// Whether a regex leaf's test holds (before `!=`), running its regex
    /// on the group's values the first time.
    fn regex_test(&mut self, slot: usize, g: usize, re: &Regex, d: &Decided) -> bool {
        match self.regex.get(slot) {
            Some(Outcome::Held) => return true,
            Some(Outcome::Failed) => return false,
            _ => {}
        }
        let items = match self.value.get(g) {
            Some(Some(Value::List(items))) => items.as_slice(),
            Some(Some(other)) => std::slice::from_ref(other),
            _ => &[],
        };
        let passes = |v: &Value| v.as_text().is_some_and(|t| re.is_match(t));
        let held = if d.all {
            !items.is_empty() && items.iter().all(passes)
        } else {
            items.iter().any(passes)
        };
        if let Some(o) = self.regex.get_mut(slot) {
            *o = if held { Outcome::Held } else { Outcome::Failed };
        }
        held
    }

    /// Scans every value of a group's left side once.
    fn fill(&mut self, group: &Group, g: usize, machine: &mut Machine<'_>) {
        let value = machine.eval(&group.lhs);
        let items = match &value {
            Value::List(items) => items.as_slice(),
            other => std::slice::from_ref(other),
        };
        self.values[g] = u32::try_from(items.len()).unwrap_or(u32::MAX);
        if !group.literal && group.filtered.is_empty() {
            self.value[g] = Some(value);
            return;
        }
        for item in items {
            self.item = self.item.wrapping_add(1);
            let Some(text) = item.as_text() else {
                continue;
            };
            let folded = fold(text);
            self.touched.clear();
            if group.literal {
                if let Some(slots) = group.exact.get(&folded) {
                    for &s in slots {
                        self.pass(s);
                    }
                }
                for &s in &group.empty {
                    self.pass(s);
                }
            }
            if let Some(searcher) = &group.searcher {
                searcher.search(&folded, |found| self.found(group, found));
            }
            if !group.filtered.is_empty() {
                self.confirm(group, text, &folded);
            }
        }
        self.value[g] = Some(value);
    }

    /// Records what finding one needle of `group` in the current value
    /// means: the substring tests it passes, the regexes it marks.
    fn found(&mut self, group: &Group, found: Found) {
        let p = found.needle;
        for &(s, anchor) in group.hits.get(p).map(Vec::as_slice).unwrap_or_default() {
            let ok = match anchor {
                Anchor::Anywhere => true,
                Anchor::Start => found.at_start,
                Anchor::End => found.at_end,
            };
            if ok {
                self.pass(s);
            }
        }
        for &(r, bits) in group.cands.get(p).map(Vec::as_slice).unwrap_or_default() {
            if let Some(mark) = self.marks.get_mut(r as usize) {
                if mark.0 != self.item {
                    *mark = (self.item, 0);
                    self.touched.push(r);
                }
                mark.1 |= bits;
            }
        }
    }

    /// Decides the filtered regexes of `group` on one value (`text`,
    /// folded `folded`) from the strings the automaton marked in it.
    fn confirm(&mut self, group: &Group, text: &str, folded: &str) {
        let touched = std::mem::take(&mut self.touched);
        // `fold` keeps ASCII text ASCII and makes anything else non-ASCII.
        let ascii = folded.is_ascii();
        if ascii {
            // Only a regex with a string in the value can match it.
            for &r in &touched {
                self.decide(group, r, text, Reading::Ascii);
            }
        } else if folded.contains('ſ') {
            // The required strings are folded as `required` folds them,
            // which is `fold` but for `ſ` (see `strings::image`): a value
            // with one runs every regex.
            for r in 0..group.filtered.len() {
                self.decide(
                    group,
                    u32::try_from(r).unwrap_or(u32::MAX),
                    text,
                    Reading::Every,
                );
            }
        } else {
            for &r in &touched {
                self.decide(group, r, text, Reading::Required);
            }
            for &r in &group.unfiltered {
                if !touched.contains(&r) {
                    self.decide(group, r, text, Reading::Required);
                }
            }
        }
        self.touched = touched;
    }

    /// Decides filtered regex `r` on the current value, `text`, read as
    /// `reading` says.
    fn decide(&mut self, group: &Group, r: u32, text: &str, reading: Reading) {
        let Some(f) = group.filtered.get(r as usize) else {
            return;
        };
        let found = match self.marks.get(r as usize) {
            Some(&(item, bits)) if item == self.item => bits,
            _ => 0,
        };
        let held = match reading {
            Reading::Ascii if f.language => found & LANGUAGE != 0,
            Reading::Every => f.regex.is_match(text),
            Reading::Ascii | Reading::Required => {
                found & f.required == f.required && f.regex.is_match(text)
            }
        };
        if held {
            for &s in &f.slots {
                self.pass(s);
            }
        }
    }

    /// Counts the current value as passing `slot`'s test, once.
    fn pass(&mut self, slot: u32) {
        let s = slot as usize;
        if let (Some(stamp), Some(passed)) = (self.stamp.get_mut(s), self.passed.get_mut(s))
            && *stamp != self.item
        {
            *stamp = self.item;
            if *passed == 0 {
                self.passed_slots.push(slot);
            }
            *passed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two left sides share a group key exactly when their debug forms,
    /// the structural key, are equal.
    #[test]
    fn group_keys_are_equal_when_debug_forms_are() {
        let header = |name: Expr, raw| Expr::Header {
            name: Box::new(name),
            raw,
        };
        let text = |s: &str| Expr::Const(Value::Str(s.into()));
        let lhs = [
            Expr::Field(1),
            Expr::Field(2),
            Expr::Member(Box::new(Expr::Field(1)), "domain"),
            Expr::Member(Box::new(Expr::Field(1)), "local"),
            Expr::Member(Box::new(Expr::Field(2)), "domain"),
            header(text("X-A"), false),
            header(text("X-A"), true),
            header(text("X-B"), false),
            header(Expr::Field(1), false),
            header(Expr::Field(2), false),
            Expr::Member(Box::new(header(text("X-A"), false)), "domain"),
            Expr::Member(Box::new(header(Expr::Field(1), false)), "domain"),
            Expr::Score,
            Expr::Element,
        ];
        for a in &lhs {
            for b in &lhs {
                let same = format!("{a:?}") == format!("{b:?}");
                assert_eq!(GroupKey::of(a) == GroupKey::of(b), same, "{a:?} {b:?}");
            }
            // The same expression built again.
            assert_eq!(GroupKey::of(a), GroupKey::of(&a.clone()));
        }
    }

    /// Analysed on several threads, each regex gets the analysis it gets
    /// alone, in its place.
    #[test]
    fn regexes_analysed_on_threads_keep_their_order_and_results() {
        let regexes: Vec<Regex> = (0..3 * ANALYSED_PER_THREAD + 7)
            .map(|i| {
                let pattern = match i % 3 {
                    0 => format!("word{i} (is|was) now"),
                    1 => format!("^(ab|cd){i}$"),
                    _ => format!("x{i}.*y"),
                };
                Regex::new(&pattern, "i").expect("valid")
            })
            .collect();
        let refs: Vec<&Regex> = regexes.iter().collect();
        let together = analyse(&refs, &mut Analyses::default());
        assert_eq!(together.len(), refs.len());
        for (re, got) in refs.iter().zip(&together) {
            assert_eq!(got, &analyse(&[*re], &mut Analyses::default())[0], "{re:?}");
        }
        // Every fifth analysed ahead.
        let mut known: Analyses = regexes
            .iter()
            .step_by(5)
            .map(|re| (re.inline(), analysis(&re.hir().expect("valid"))))
            .collect();
        assert_eq!(analyse(&refs, &mut known), together);
        // Each taken by the regex it was made for.
        assert!(known.is_empty());
    }
}
