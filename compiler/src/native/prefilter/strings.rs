//! What a regex needs of a text before it can match: the strings every
//! match contains (*required strings*), so the prefilter runs a regex only
//! on values where they occur; and, for a regex whose matches are a few
//! strings, those strings (its *ASCII language*). The analyses read the
//! syntax tree the regex crate's own parser makes of the pattern with its
//! flags (`weir_stdlib::Regex::hir`), so they see exactly the regex that
//! runs.

use regex_syntax::hir::{Class, Hir, HirKind};

use weir_stdlib::value::fold;

/// The folded image of one character, for required strings: what `fold`
/// makes of it, but `ſ` (long s, which case-insensitive regexes match for
/// `s`) as `s`. Any function of single characters would be exact here
/// (see `required`); this one keeps `(?i)s` and `(?i)k` (whose classes
/// hold `ſ` and the Kelvin sign) single letters, and equals `fold` on
/// every value without `ſ`.
fn image(c: char) -> String {
    match c {
        'ſ' => "s".into(),
        c => {
            let mut buf = [0u8; 4];
            fold(c.encode_utf8(&mut buf))
        }
    }
}

/// Sets of strings, folded as [`image`] folds each character, such that
/// the image of every text the regex `hir` matches anywhere holds a string
/// of each set; `None` when it has no such set of strings of at least
/// [`REQUIRED_MIN`] bytes.
/// At most 63 sets (a bit each per value scanned; the 64th bit is the
/// regex's ASCII language's).
///
/// Exact for any character-wise image: a literal in the match is in the
/// text, so its image is in the text's image; a class whose characters all
/// have one image puts that image in the text's, whichever matched.
pub(super) fn required(hir: &Hir) -> Option<Vec<Vec<String>>> {
    let mut sets = every(hir);
    sets.retain(|set| set.iter().all(|s| s.len() >= REQUIRED_MIN));
    sets.truncate(63);
    (!sets.is_empty()).then_some(sets)
}

/// A string of this many regexes' required sets, or more, is *shared*.
pub(super) const SHARED: usize = 4;

/// The sets of `sets` worth searching for, by index in `sets`, in order:
/// every set none of whose
/// strings is shared by [`SHARED`] or more regexes of the group (`sharing`
/// tells how many regexes' sets hold a string), and the rarest set (the
/// one whose shortest string is longest, then with fewest strings) when no
/// set is left. Every set is a condition every match meets, so any of them
/// still only filters out values the regex cannot match. A shared string
/// (` now` in `/WORD (is|was|are) now/i` for hundreds of words) would make
/// the automaton report, and mark all those regexes, in nearly every
/// value; the regex's own strings (`WORD `) keep it from running, and
/// being built, on values that do not hold them all. Indices, so that the
/// caller moves the sets out rather than copying them.
pub(super) fn selective(sets: &[Vec<String>], sharing: &dyn Fn(&str) -> usize) -> Vec<usize> {
    let (own, shared): (Vec<usize>, Vec<usize>) =
        (0..sets.len()).partition(|&i| sets[i].iter().all(|s| sharing(s) < SHARED));
    if !own.is_empty() {
        return own;
    }
    let key = |&i: &usize| {
        let shortest = sets[i].iter().map(String::len).min().unwrap_or(0);
        (shortest, std::cmp::Reverse(sets[i].len()))
    };
    shared.into_iter().max_by_key(key).into_iter().collect()
}

/// Sets of required strings of `h`: every match of `h` contains one
/// string of each set.
fn every(h: &Hir) -> Vec<Vec<String>> {
    if let Some(s) = exact(h) {
        return if s.is_empty() {
            Vec::new()
        } else {
            vec![vec![s]]
        };
    }
    match h.kind() {
        HirKind::Capture(c) => every(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => every(&r.sub),
        HirKind::Concat(parts) => pieces(parts)
            .into_iter()
            .flat_map(|piece| match piece {
                Piece::Run(run) => vec![vec![run]],
                Piece::Part(part) => every(part),
            })
            .collect(),
        _ => must(h).into_iter().collect(),
    }
}

/// A piece of a concatenation, in order: a maximal run of exact parts as
/// one string (contiguous in every match; never empty), or another part.
enum Piece<'a> {
    Run(String),
    Part(&'a Hir),
}

/// The pieces of the concatenation `parts`.
fn pieces(parts: &[Hir]) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut run = String::new();
    for part in parts {
        match exact(part) {
            Some(s) => run.push_str(&s),
            None => {
                if !run.is_empty() {
                    out.push(Piece::Run(std::mem::take(&mut run)));
                }
                out.push(Piece::Part(part));
            }
        }
    }
    if !run.is_empty() {
        out.push(Piece::Run(run));
    }
    out
}

/// The shortest required string worth an automaton pattern: one letter
/// is in nearly every text.
const REQUIRED_MIN: usize = 3;

/// Most strings in one alternation of required strings.
const REQUIRED_ALTERNATIVES: usize = 32;

/// The one string (as images) every match of `h` is, if there is one.
fn exact(h: &Hir) -> Option<String> {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => Some(String::new()),
        HirKind::Literal(lit) => Some(
            std::str::from_utf8(&lit.0)
                .ok()?
                .chars()
                .map(image)
                .collect(),
        ),
        HirKind::Class(Class::Unicode(class)) => {
            let mut one: Option<String> = None;
            let mut count = 0u32;
            for range in class.ranges() {
                count += u32::from(range.end()) - u32::from(range.start()) + 1;
                if count > 8 {
                    return None;
                }
                for c in range.start()..=range.end() {
                    let i = image(c);
                    match &one {
                        None => one = Some(i),
                        Some(o) if *o == i => {}
                        Some(_) => return None,
                    }
                }
            }
            one
        }
        HirKind::Class(Class::Bytes(_)) => None,
        HirKind::Capture(c) => exact(&c.sub),
        HirKind::Repetition(r) if Some(r.min) == r.max && r.min <= 4 => {
            Some(exact(&r.sub)?.repeat(r.min as usize))
        }
        HirKind::Concat(parts) => parts.iter().map(exact).collect(),
        HirKind::Repetition(_) | HirKind::Alternation(_) => None,
    }
}

/// Required strings of `h`: every match of `h` contains one of them.
fn must(h: &Hir) -> Option<Vec<String>> {
    if let Some(s) = exact(h) {
        return (!s.is_empty()).then(|| vec![s]);
    }
    match h.kind() {
        HirKind::Capture(c) => must(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => must(&r.sub),
        HirKind::Alternation(branches) => {
            let mut all: Vec<String> = Vec::new();
            for b in branches {
                for s in must(b)? {
                    if !all.contains(&s) {
                        all.push(s);
                    }
                }
            }
            (all.len() <= REQUIRED_ALTERNATIVES).then_some(all)
        }
        HirKind::Concat(parts) => {
            // Any run, or any part's own required strings, will do:
            // keep the one whose shortest string is longest.
            let mut best: Option<Vec<String>> = None;
            let mut consider = |c: Vec<String>| {
                let score = |v: &[String]| v.iter().map(String::len).min().unwrap_or(0);
                if best.as_ref().is_none_or(|b| score(&c) > score(b)) {
                    best = Some(c);
                }
            };
            for piece in pieces(parts) {
                match piece {
                    Piece::Run(run) => consider(vec![run]),
                    Piece::Part(part) => {
                        if let Some(c) = must(part) {
                            consider(c);
                        }
                    }
                }
            }
            best
        }
        _ => None,
    }
}

/// Most strings a regex's [`ascii_language`] may have: more would swell
/// the automaton for what the regex itself decides well.
const LANGUAGE_MAX: usize = 64;

/// Longest string of an [`ascii_language`].
const LANGUAGE_LONGEST: usize = 256;

/// Most repetitions of a bounded repetition (`x{2,3}`) expanded.
const REPEAT_MAX: u32 = 8;

/// The finite set of strings, lower-case ASCII, that decides the regex
/// `hir` on ASCII text: an ASCII text matches the
/// regex anywhere if and only if its ASCII lower-case image contains one
/// of them. `None` when there is no such set of at most [`LANGUAGE_MAX`]
/// non-empty strings: anchors and word boundaries, unbounded repetition,
/// a class wider than a few characters, a case-sensitive letter.
///
/// Exact: the regex's language, read on ASCII characters only (no other
/// can occur in ASCII text), is expanded; each class must hold both cases
/// of every ASCII letter it holds (so it holds a character exactly when it
/// holds its lower case), which every class of a case-insensitive regex
/// does. Then a substring of the text is in the language exactly when its
/// lower-case image is one of the strings.
pub(super) fn ascii_language(hir: &Hir) -> Option<Vec<String>> {
    let strings = language(hir)?;
    let usable = !strings.is_empty() && strings.iter().all(|s| !s.is_empty());
    usable.then_some(strings)
}

/// The language of `h` on ASCII text, as lower-case strings (see
/// [`ascii_language`]).
fn language(h: &Hir) -> Option<Vec<String>> {
    match h.kind() {
        HirKind::Empty => Some(vec![String::new()]),
        HirKind::Look(_) | HirKind::Class(Class::Bytes(_)) => None,
        HirKind::Literal(lit) => {
            let text = std::str::from_utf8(&lit.0).ok()?;
            // A letter in a literal is case-sensitive; anything else
            // outside ASCII never occurs in ASCII text.
            let caseless = text
                .bytes()
                .all(|b| b.is_ascii() && !b.is_ascii_alphabetic());
            caseless.then(|| vec![text.to_string()])
        }
        HirKind::Class(Class::Unicode(class)) => class_language(class),
        HirKind::Capture(c) => language(&c.sub),
        HirKind::Repetition(r) => {
            let max = r.max?;
            if max > REPEAT_MAX {
                return None;
            }
            let sub = language(&r.sub)?;
            let mut all = Vec::new();
            for count in r.min..=max {
                let mut strings = vec![String::new()];
                for _ in 0..count {
                    strings = product(&strings, &sub)?;
                }
                union(&mut all, strings)?;
            }
            Some(all)
        }
        HirKind::Concat(parts) => parts.iter().try_fold(vec![String::new()], |acc, part| {
            product(&acc, &language(part)?)
        }),
        HirKind::Alternation(branches) => {
            let mut all = Vec::new();
            for b in branches {
                union(&mut all, language(b)?)?;
            }
            Some(all)
        }
    }
}

/// The lower-case images of a class's ASCII characters, if the class
/// holds both cases of each letter it holds and has at most a few.
fn class_language(class: &regex_syntax::hir::ClassUnicode) -> Option<Vec<String>> {
    let mut ascii: Vec<u8> = Vec::new();
    for range in class.ranges() {
        let (start, end) = (u32::from(range.start()), u32::from(range.end()));
        for c in start..=end.min(0x7f) {
            ascii.push(u8::try_from(c).ok()?);
            if ascii.len() > 2 * LANGUAGE_MAX {
                return None;
            }
        }
    }
    let mut images: Vec<String> = Vec::new();
    for &b in &ascii {
        let closed = !b.is_ascii_alphabetic()
            || (ascii.contains(&b.to_ascii_lowercase()) && ascii.contains(&b.to_ascii_uppercase()));
        if !closed {
            return None;
        }
        let image = char::from(b.to_ascii_lowercase()).to_string();
        if !images.contains(&image) {
            images.push(image);
        }
    }
    (images.len() <= 16 && !images.is_empty()).then_some(images)
}

/// Every string of `a` followed by every string of `b`, if not too many.
fn product(a: &[String], b: &[String]) -> Option<Vec<String>> {
    if a.len().saturating_mul(b.len()) > LANGUAGE_MAX {
        return None;
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            if x.len() + y.len() > LANGUAGE_LONGEST {
                return None;
            }
            let s = format!("{x}{y}");
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    Some(out)
}

/// Adds the strings of `more` to `all`, if they stay few enough.
fn union(all: &mut Vec<String>, more: Vec<String>) -> Option<()> {
    for s in more {
        if !all.contains(&s) {
            all.push(s);
        }
    }
    (all.len() <= LANGUAGE_MAX).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(p: &str) -> Option<Vec<String>> {
        let hir = regex_syntax::Parser::new().parse(p).ok()?;
        ascii_language(&hir).map(|mut v| {
            v.sort();
            v
        })
    }

    fn strings(v: &[&str]) -> Option<Vec<String>> {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        Some(v)
    }

    #[test]
    fn case_insensitive_alternatives_expand() {
        assert_eq!(
            lang("(?i)click (is|was) Free"),
            strings(&["click is free", "click was free"])
        );
        assert_eq!(
            lang("(?i)(gift|deal)s?"),
            strings(&["gift", "gifts", "deal", "deals"])
        );
        assert_eq!(lang("(?i)ab[0-2]"), strings(&["ab0", "ab1", "ab2"]));
        assert_eq!(lang("(?i)x{2,3}"), strings(&["xx", "xxx"]));
        assert_eq!(lang("[0-9]-[0-9]"), None, "100 strings is too many");
        assert_eq!(
            lang("(?i)[0-9]-"),
            strings(&["0-", "1-", "2-", "3-", "4-", "5-", "6-", "7-", "8-", "9-"])
        );
    }

    #[test]
    fn what_a_substring_cannot_decide_is_refused() {
        for p in [
            "abc",          // case-sensitive letters
            "(?i)^abc",     // anchor
            "(?i)\\bab\\b", // word boundary
            "(?i)a.c",      // wide class
            "(?i)ab+",      // unbounded
            "(?i)a?",       // matches the empty string
            "(?i)[a-z]x",   // 26 letters
            "[aB]c",        // a class without both cases
            "(?-u:\\xff)",  // bytes
            "(",            // does not parse
        ] {
            assert_eq!(lang(p), None, "{p}");
        }
    }

    #[test]
    fn non_ascii_characters_of_a_class_never_occur() {
        // (?i)k holds the Kelvin sign, (?i)s the long s: neither is in
        // ASCII text, so the class decides by its letter.
        assert_eq!(lang("(?i)ks"), strings(&["ks"]));
        assert_eq!(lang("(?i)é"), None, "only non-ASCII");
        assert_eq!(lang("123"), strings(&["123"]));
    }

    #[test]
    fn shared_strings_leave_the_sets_unless_nothing_else_is_left() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let sets = vec![set(&["zarojadi "]), set(&[" now"]), set(&["is ", "was"])];
        let shared = |s: &str| if s == " now" { SHARED } else { 1 };
        assert_eq!(selective(&sets, &shared), vec![0, 2]);
        // Every set shared: the one whose shortest string is longest.
        assert_eq!(selective(&sets, &|_| SHARED), vec![0]);
        // Of equal ones, the last.
        let equal = vec![set(&["abcd"]), set(&["efgh"])];
        assert_eq!(selective(&equal, &|_| SHARED), vec![1]);
    }
}
