//! What a regex needs of a text before it can match: the strings every
//! match contains (*required strings*), so the prefilter runs a regex only
//! on values where they occur. Patterns are read with `regex-syntax`, the
//! regex crate's own parser, so the analysis sees exactly the regex that
//! runs.

use regex_syntax::hir::{Class, Hir, HirKind};

use crate::compat::fold;

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
/// the image of every text the regex `pattern` (flags inline) matches
/// anywhere holds a string of each set; `None` when the pattern does not
/// parse or has no such set of strings of at least [`REQUIRED_MIN`] bytes.
/// At most 64 sets (a bit each per value scanned).
///
/// Exact for any character-wise image: a literal in the match is in the
/// text, so its image is in the text's image; a class whose characters all
/// have one image puts that image in the text's, whichever matched.
pub(super) fn required(pattern: &str) -> Option<Vec<Vec<String>>> {
    let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
    let mut sets = every(&hir);
    sets.retain(|set| set.iter().all(|s| s.len() >= REQUIRED_MIN));
    sets.truncate(64);
    (!sets.is_empty()).then_some(sets)
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
