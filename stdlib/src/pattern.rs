//! Regex literals (`/…/flags`): checked when a ruleset is compiled, built
//! the first time a message needs them.
//!
//! Building a regex (its automata) costs about 100 µs, against 8 µs to
//! parse it; a ruleset of 10,000 rules holds about 2,000 regexes, and the
//! prefilter decides many of them without ever running them (see the
//! compiler's `native/prefilter/strings.rs`). So [`Regex::new`] parses the
//! pattern, which finds every syntax error at load time with the regex
//! crate's own message, and builds the automata only on first use.
//!
//! Invariant: a [`Regex`] that [`Regex::new`] accepted always builds. The
//! one error left after parsing is the size limit; a pattern whose
//! automaton could come near it (by a generous upper bound computed from
//! the parsed pattern) is built at once, so that error is reported at load
//! time too.
//!
//! A test that needs only whether the regex matches ([`Regex::is_match`],
//! the prefilter's) runs the pattern with its groups made non-capturing:
//! the same strings match, and the regex crate, finding no group, builds
//! no one-pass DFA for it (at 10,000 generated rules, 3 MB of the daemon's
//! memory after serving, for regexes that never report a group).
//!
//! That test's search caches (the lazy DFA's states, added as searches
//! meet new bytes) are kept between messages, one for each thread that
//! searched at once, until [`Regex::forget_caches`]: a daemon forgets them
//! when it goes quiet (at 10,000 generated rules, 8 MB after 1,000
//! messages), and the next search starts a fresh one.

use std::fmt;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use regex_automata::{Input, meta};
use regex_syntax::hir::{Class, Hir, HirKind};

/// The largest automaton a regex may compile to, in bytes.
pub const SIZE_LIMIT: usize = 1 << 22;

/// The most a lazy DFA's cache may grow to, in bytes: the regex crate's
/// own default, so that both builds of a pattern search alike.
const DFA_CACHE_LIMIT: usize = 2 << 20;

/// The flags Flow accepts after a regex literal, with their meaning.
pub const FLAGS: &str = "i (ignore case), m (multi-line), s (dot matches newline), x (extended)";

/// A regex literal: its pattern, its flags, and the regex, built once.
pub struct Regex {
    pattern: String,
    flags: String,
    /// What the flags mean to the regex crate (checked by `new`).
    settings: Settings,
    /// Capture groups, the whole match included (`captures_len`).
    groups: usize,
    built: OnceLock<regex::Regex>,
    /// The pattern without capture groups, for [`Regex::is_match`] when
    /// `built` is not there.
    matcher: OnceLock<meta::Regex>,
    /// `matcher`'s search caches not in use, kept between searches until
    /// [`Regex::forget_caches`].
    caches: Mutex<Vec<meta::Cache>>,
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/{}", self.pattern, self.flags)
    }
}

/// Why a regex literal was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegexError {
    /// A flag other than `i`, `m`, `s`, `x`.
    UnknownFlag(char),
    /// The pattern does not parse or is too large: the regex crate's
    /// message.
    Invalid(String),
}

impl fmt::Display for RegexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegexError::UnknownFlag(c) => write!(f, "unknown regex flag `{c}`"),
            RegexError::Invalid(detail) => f.write_str(detail),
        }
    }
}

impl std::error::Error for RegexError {}

/// The regex crate's settings for a flag string (all known flags).
#[derive(Debug, Clone, Copy)]
struct Settings {
    case_insensitive: bool,
    multi_line: bool,
    dot_matches_new_line: bool,
    ignore_whitespace: bool,
}

impl Settings {
    fn of(flags: &str) -> Result<Settings, RegexError> {
        let mut s = Settings {
            case_insensitive: false,
            multi_line: false,
            dot_matches_new_line: false,
            ignore_whitespace: false,
        };
        for flag in flags.chars() {
            match flag {
                'i' => s.case_insensitive = true,
                'm' => s.multi_line = true,
                's' => s.dot_matches_new_line = true,
                'x' => s.ignore_whitespace = true,
                other => return Err(RegexError::UnknownFlag(other)),
            }
        }
        Ok(s)
    }

    fn build(&self, pattern: &str) -> Result<regex::Regex, regex::Error> {
        regex::RegexBuilder::new(pattern)
            .case_insensitive(self.case_insensitive)
            .multi_line(self.multi_line)
            .dot_matches_new_line(self.dot_matches_new_line)
            .ignore_whitespace(self.ignore_whitespace)
            .size_limit(SIZE_LIMIT)
            .build()
    }

    /// The regex crate's build of `pattern` with every group made
    /// non-capturing: what [`regex::Regex::is_match`] answers, without the
    /// capture states and the one-pass DFA built for them.
    fn build_matcher(&self, pattern: &str) -> Option<meta::Regex> {
        let hir = without_captures(self.parse(pattern).ok()?);
        // The settings `regex::RegexBuilder` gives a `&str` regex.
        let config = meta::Config::new()
            .match_kind(regex_automata::MatchKind::LeftmostFirst)
            .utf8_empty(true)
            .nfa_size_limit(Some(SIZE_LIMIT))
            .hybrid_cache_capacity(DFA_CACHE_LIMIT);
        meta::Builder::new()
            .configure(config)
            .build_from_hir(&hir)
            .ok()
    }

    /// Parses `pattern` as the regex crate would before building it.
    fn parse(&self, pattern: &str) -> Result<Hir, String> {
        regex_syntax::ParserBuilder::new()
            .case_insensitive(self.case_insensitive)
            .multi_line(self.multi_line)
            .dot_matches_new_line(self.dot_matches_new_line)
            .ignore_whitespace(self.ignore_whitespace)
            .build()
            .parse(pattern)
            // The regex crate reports a syntax error with this text.
            .map_err(|e| regex::Error::Syntax(e.to_string()).to_string())
    }
}

impl Regex {
    /// Checks the literal `/pattern/flags`; builds it at once only when
    /// its size could come near [`SIZE_LIMIT`].
    pub fn new(pattern: &str, flags: &str) -> Result<Regex, RegexError> {
        let settings = Settings::of(flags)?;
        let hir = settings.parse(pattern).map_err(RegexError::Invalid)?;
        let built = OnceLock::new();
        if size_bound(&hir).saturating_mul(4) >= SIZE_LIMIT {
            let regex = settings
                .build(pattern)
                .map_err(|e| RegexError::Invalid(e.to_string()))?;
            let _ = built.set(regex);
        }
        Ok(Regex {
            pattern: pattern.to_string(),
            flags: flags.to_string(),
            settings,
            groups: hir.properties().explicit_captures_len() + 1,
            built,
            matcher: OnceLock::new(),
            caches: Mutex::new(Vec::new()),
        })
    }

    /// The pattern, as written between the slashes.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// The flags, as written after the closing slash.
    pub fn flags(&self) -> &str {
        &self.flags
    }

    /// The pattern with its flags written inline (`(?i)abc`): the same
    /// regex, for tools that take a pattern alone.
    pub fn inline(&self) -> String {
        if self.flags.is_empty() {
            self.pattern.clone()
        } else {
            format!("(?{}){}", self.flags, self.pattern)
        }
    }

    /// The pattern as the regex crate's parser reads it with the flags:
    /// the syntax the regex is built from, for analyses of what it can
    /// match. `None` only for a pattern `new` refused, which never exists.
    pub fn hir(&self) -> Option<Hir> {
        self.settings.parse(&self.pattern).ok()
    }

    /// How many capture groups a match has, the whole match (group 0)
    /// included.
    pub fn captures_len(&self) -> usize {
        self.groups
    }

    /// The named groups (`(?P<id>…)`) with their indexes, in pattern order.
    pub fn capture_names(&self) -> Vec<(String, usize)> {
        fn walk(hir: &Hir, out: &mut Vec<(String, usize)>) {
            match hir.kind() {
                HirKind::Capture(c) => {
                    if let Some(name) = &c.name {
                        out.push((name.to_string(), c.index as usize));
                    }
                    walk(&c.sub, out);
                }
                HirKind::Repetition(r) => walk(&r.sub, out),
                HirKind::Concat(subs) | HirKind::Alternation(subs) => {
                    for sub in subs {
                        walk(sub, out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        if let Some(hir) = self.hir() {
            walk(&hir, &mut out);
        }
        out
    }

    /// The built regex (built now if this is its first use).
    pub fn regex(&self) -> &regex::Regex {
        self.built.get_or_init(|| {
            // An error is not reached (see the module's invariant); should
            // it be, the regex matches nothing rather than take the process
            // down in the middle of a message.
            self.settings
                .build(&self.pattern)
                .unwrap_or_else(|_| never())
        })
    }

    /// Whether the regex has been built yet.
    pub fn is_built(&self) -> bool {
        self.built.get().is_some()
    }

    /// Whether the regex matches anywhere in `haystack`: the full build
    /// when there is one, else the one without capture groups (built now
    /// if this is its first use).
    pub fn is_match(&self, haystack: &str) -> bool {
        if let Some(built) = self.built.get() {
            return built.is_match(haystack);
        }
        let matcher = self.matcher();
        let spare = self.spare_caches().pop();
        let mut cache = spare.unwrap_or_else(|| matcher.create_cache());
        // What `meta::Regex::is_match` runs, with a cache kept here.
        let input = Input::new(haystack).earliest(true);
        let held = matcher.search_half_with(&mut cache, &input).is_some();
        self.spare_caches().push(cache);
        held
    }

    /// Drops the search caches [`Regex::is_match`] kept (a full build's,
    /// for captures, are the regex crate's and stay).
    pub fn forget_caches(&self) {
        let caches = std::mem::take(&mut *self.spare_caches());
        // Freed after the lock is released: a search may be waiting for it.
        drop(caches);
    }

    /// The kept search caches not in use. The regex crate's own pool
    /// cannot be emptied, hence this one. A panic while it is locked
    /// leaves it whole (it only ever pushes or pops a cache).
    fn spare_caches(&self) -> MutexGuard<'_, Vec<meta::Cache>> {
        self.caches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The build without capture groups.
    fn matcher(&self) -> &meta::Regex {
        self.matcher.get_or_init(|| {
            // As for `regex` (the module's invariant): a pattern without
            // its groups is smaller, so it builds whenever the full one
            // does.
            self.settings
                .build_matcher(&self.pattern)
                .unwrap_or_else(never_matcher)
        })
    }

    /// The leftmost-first match in `haystack` with its capture groups.
    pub fn captures<'h>(&self, haystack: &'h str) -> Option<regex::Captures<'h>> {
        self.regex().captures(haystack)
    }
}

/// A regex that matches nothing.
fn never() -> regex::Regex {
    regex::Regex::new(r"[^\s\S]").unwrap_or_else(|_| unreachable!("a valid pattern"))
}

/// A matcher that matches nothing.
fn never_matcher() -> meta::Regex {
    meta::Regex::new(r"[^\s\S]").unwrap_or_else(|_| unreachable!("a valid pattern"))
}

/// `h` with every capture group replaced by what it holds: the same
/// strings match.
fn without_captures(h: Hir) -> Hir {
    match h.into_kind() {
        HirKind::Capture(c) => without_captures(*c.sub),
        HirKind::Repetition(mut r) => {
            r.sub = Box::new(without_captures(*r.sub));
            Hir::repetition(r)
        }
        HirKind::Concat(parts) => Hir::concat(parts.into_iter().map(without_captures).collect()),
        HirKind::Alternation(parts) => {
            Hir::alternation(parts.into_iter().map(without_captures).collect())
        }
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(lit) => Hir::literal(lit.0),
        HirKind::Class(class) => Hir::class(class),
        HirKind::Look(look) => Hir::look(look),
    }
}

/// An upper bound, in bytes, on the size of the automaton the regex crate
/// builds for `h`: every state counted at 64 bytes, a class as up to 32
/// states per range (a range splits into at most a handful of UTF-8
/// sequences of up to 4 bytes each), a repetition as copies of its part.
fn size_bound(h: &Hir) -> usize {
    const STATE: usize = 64;
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => STATE,
        HirKind::Literal(lit) => lit.0.len().saturating_mul(STATE),
        HirKind::Class(Class::Unicode(c)) => c.ranges().len().saturating_mul(32 * STATE),
        HirKind::Class(Class::Bytes(c)) => c.ranges().len().saturating_mul(STATE),
        HirKind::Capture(c) => size_bound(&c.sub).saturating_add(2 * STATE),
        HirKind::Repetition(r) => {
            let copies = r.max.unwrap_or(r.min).max(r.min).saturating_add(1) as usize;
            size_bound(&r.sub)
                .saturating_add(STATE)
                .saturating_mul(copies)
        }
        HirKind::Concat(parts) | HirKind::Alternation(parts) => parts
            .iter()
            .map(size_bound)
            .fold(STATE, |a, b| a.saturating_add(b).saturating_add(STATE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_read_as_the_regex_crate_writes_them() {
        let unclosed = String::from("a(b");
        let ours = Regex::new(&unclosed, "").expect_err("unclosed group");
        let theirs = regex::Regex::new(&unclosed).expect_err("unclosed group");
        assert_eq!(ours, RegexError::Invalid(theirs.to_string()));
        assert_eq!(
            Regex::new("a", "iq").expect_err("q").to_string(),
            "unknown regex flag `q`"
        );
    }

    #[test]
    fn a_small_regex_is_built_on_first_use() {
        let re = Regex::new("(ticket) #(\\d+)", "i").expect("valid");
        assert!(!re.is_built());
        assert_eq!(re.captures_len(), 3);
        assert_eq!(re.inline(), "(?i)(ticket) #(\\d+)");
        let caps = re.captures("TICKET #42").expect("a match");
        assert_eq!(&caps[2], "42");
        assert!(re.is_built());
    }

    #[test]
    fn a_regex_that_may_be_too_large_is_built_at_load() {
        // Far past the limit: refused at once, with the crate's message.
        let err = Regex::new("\\w{1000}{1000}", "").expect_err("too large");
        let theirs = regex::RegexBuilder::new("\\w{1000}{1000}")
            .size_limit(SIZE_LIMIT)
            .build()
            .expect_err("too large");
        assert_eq!(err, RegexError::Invalid(theirs.to_string()));
        // Near it but within: built at once, so never fails later.
        let re = Regex::new("\\w{50}", "").expect("within the limit");
        assert!(re.is_built());
    }

    #[test]
    fn is_match_runs_the_pattern_without_its_groups() {
        let re = Regex::new("(ticket) #(\\d+)", "i").expect("valid");
        assert!(re.is_match("your TICKET #42"));
        assert!(!re.is_match("ticket #"));
        assert!(!re.is_built(), "the build with groups is left for captures");
        assert!(re.captures("TICKET #42").is_some());
        assert!(re.is_built());
        assert!(re.is_match("ticket #7"), "and used once built");
    }

    #[test]
    fn a_search_cache_is_kept_until_forgotten() {
        let re = Regex::new("ticket #\\d+", "i").expect("valid");
        let kept = |re: &Regex| re.spare_caches().len();
        assert!(re.is_match("your TICKET #42"));
        assert!(!re.is_match("ticket #"));
        assert_eq!(kept(&re), 1, "one cache, used again");
        re.forget_caches();
        assert_eq!(kept(&re), 0);
        assert!(re.is_match("ticket #7"), "a fresh cache searches alike");
        assert_eq!(kept(&re), 1);
    }

    /// The regex crate's full build of `pattern` with `flags`.
    fn full(pattern: &str, flags: &str) -> regex::Regex {
        Settings::of(flags)
            .and_then(|s| {
                s.build(pattern)
                    .map_err(|e| RegexError::Invalid(e.to_string()))
            })
            .expect("valid")
    }

    proptest::proptest! {
        #[test]
        fn a_pattern_without_its_groups_matches_the_same_strings(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "a", "b", "(a|b)", "(?:ab)+", "(x(y)?z)*", "c?", "(a+)b", "^", "$",
                "\\b", "\\w", "\\s", ".", "[a-c]{2,3}", "((a)|(b))", "()", "(é|ß)",
            ]), 1..6),
            flags in proptest::sample::select(vec!["", "i", "m", "s", "ims", "x"]),
            haystack in proptest::collection::vec(
                proptest::sample::select(vec!['a', 'b', 'c', 'x', 'y', 'z', ' ', '\n', 'É', 'ẞ', 'A']),
                0..12),
        ) {
            let pattern: String = parts.concat();
            let haystack: String = haystack.into_iter().collect();
            let re = Regex::new(&pattern, flags).expect("valid");
            // Built at load only when large (`\\w` is); else not by `is_match`.
            let loaded = re.is_built();
            proptest::prop_assert_eq!(
                re.is_match(&haystack),
                full(&pattern, flags).is_match(&haystack),
                "/{}/{} on {:?}", pattern, flags, haystack
            );
            proptest::prop_assert_eq!(re.is_built(), loaded);
        }
    }

    #[test]
    fn flags_mean_what_the_regex_crate_says() {
        let re = Regex::new("^b.c$", "ims").expect("valid");
        assert!(re.is_match("a\nB\nC"));
        let re = Regex::new("a b # comment", "x").expect("valid");
        assert!(re.is_match("ab"));
    }
}
