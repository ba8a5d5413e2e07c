//! Sieve's comparators and match types (RFC 5228 §2.7, RFC 5231
//! relational, RFC 5229 captures) as Flow comparisons.

use weir_grammar::ast::{CompareOp, Expr, ExprKind, Span};

use super::Unsupported;
use super::args::Args;
use super::build::{any_of, call, compare, expr, ident, int, regex};
use crate::ast::{Argument, SieveString};

/// How keys are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    /// `i;ascii-casemap`, the default.
    CaseMap,
    /// `i;octet`.
    Octet,
    /// `i;ascii-numeric`.
    Numeric,
}

/// The match type of a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchType {
    Is,
    Contains,
    Matches,
    Regex,
    /// `:value "op"`.
    Value(CompareOp),
    /// `:count "op"`.
    Count(CompareOp),
}

/// A test's comparator and match type.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub comparator: Comparator,
    pub match_type: MatchType,
    /// Where the match type was written (the test, if defaulted).
    pub span: Span,
}

impl Spec {
    /// Reads `:comparator`, `:is`/`:contains`/`:matches`/`:regex`,
    /// `:value`/`:count` from a test's tags.
    pub fn read(args: &Args, test_span: Span) -> Result<Spec, Unsupported> {
        let comparator = match args.value("comparator") {
            None => Comparator::CaseMap,
            Some(Argument::Str(s)) => match s.value.to_ascii_lowercase().as_str() {
                "i;ascii-casemap" => Comparator::CaseMap,
                "i;octet" => Comparator::Octet,
                "i;ascii-numeric" => Comparator::Numeric,
                other => {
                    return Err(Unsupported::new(
                        s.span,
                        format!("comparator \"{other}\""),
                        "Flow knows i;ascii-casemap, i;octet and i;ascii-numeric",
                    ));
                }
            },
            Some(a) => {
                return Err(Unsupported::new(
                    a.span(),
                    ":comparator",
                    "expects a string",
                ));
            }
        };
        let mut match_type = MatchType::Is;
        let mut span = test_span;
        for (tag, tag_span, value) in &args.tags {
            let relational = |value: &Option<&Argument>| -> Result<CompareOp, Unsupported> {
                let op = value
                    .and_then(super::args::string)
                    .map(|s| s.value.to_ascii_lowercase());
                Ok(match op.as_deref() {
                    Some("gt") => CompareOp::Gt,
                    Some("ge") => CompareOp::Ge,
                    Some("lt") => CompareOp::Lt,
                    Some("le") => CompareOp::Le,
                    Some("eq") => CompareOp::Eq,
                    Some("ne") => CompareOp::Ne,
                    _ => {
                        return Err(Unsupported::new(
                            *tag_span,
                            format!(":{tag}"),
                            "the relational operator must be one of gt ge lt le eq ne",
                        ));
                    }
                })
            };
            match_type = match *tag {
                "is" => MatchType::Is,
                "contains" => MatchType::Contains,
                "matches" => MatchType::Matches,
                "regex" => MatchType::Regex,
                "value" => MatchType::Value(relational(value)?),
                "count" => MatchType::Count(relational(value)?),
                _ => continue,
            };
            span = *tag_span;
        }
        Ok(Spec {
            comparator,
            match_type,
            span,
        })
    }

    /// Whether the match sets match variables (`${1}`).
    pub fn captures(&self) -> bool {
        matches!(self.match_type, MatchType::Matches | MatchType::Regex)
    }
}

/// The tags [`Spec::read`] consumes.
pub const SPEC_TAGS: &[&str] = &[
    "comparator",
    "is",
    "contains",
    "matches",
    "regex",
    "value",
    "count",
];

/// A key as Flow text, with whether it was a constant.
pub struct Key {
    pub expr: Expr,
    pub constant: Option<String>,
    pub span: Span,
}

/// What a converted match binds, when asked to.
pub struct Bound {
    pub groups: usize,
}

/// `lhs` (a string or list of strings) tested against the keys.
/// `bind`: the name to bind the captures to (one key only).
pub fn test(
    lhs: Expr,
    spec: &Spec,
    keys: &[Key],
    bind: Option<&str>,
    bound: &mut Option<Bound>,
) -> Result<Expr, Unsupported> {
    let octet = spec.comparator == Comparator::Octet;
    if spec.comparator == Comparator::Numeric
        && !matches!(
            spec.match_type,
            MatchType::Value(_) | MatchType::Count(_) | MatchType::Is
        )
    {
        return Err(Unsupported::new(
            spec.span,
            "i;ascii-numeric with this match type",
            "Flow compares numbers with ==, <, >, ... only",
        ));
    }
    match spec.match_type {
        MatchType::Count(op) => {
            let n = numeric_keys(keys)?;
            Ok(any_of(
                n.into_iter()
                    .map(|n| compare(op, call("count", vec![lhs.clone()]), int(n)))
                    .collect(),
            ))
        }
        MatchType::Value(op) => {
            if spec.comparator != Comparator::Numeric {
                return Err(Unsupported::new(
                    spec.span,
                    ":value with a string comparator",
                    "Flow orders numbers and times, not strings; use :comparator \"i;ascii-numeric\"",
                ));
            }
            numeric(lhs, op, keys)
        }
        MatchType::Is if spec.comparator == Comparator::Numeric => {
            numeric(lhs, CompareOp::Eq, keys)
        }
        MatchType::Is | MatchType::Contains if !octet => {
            let op = if spec.match_type == MatchType::Is {
                CompareOp::Eq
            } else {
                CompareOp::Contains
            };
            Ok(compare(op, lhs, key_list(keys)))
        }
        MatchType::Is | MatchType::Contains => octet_literal(lhs, spec, keys),
        MatchType::Matches => glob_match(lhs, spec, keys, bind, bound),
        MatchType::Regex => {
            let patterns = constants(keys, "a :regex key with variables")?;
            for (p, k) in patterns.iter().zip(keys) {
                if let Err(e) = regex::Regex::new(p) {
                    return Err(Unsupported::new(
                        k.span,
                        ":regex key",
                        format!(
                            "Flow's regex syntax refuses it: {}",
                            first_line(&e.to_string())
                        ),
                    ));
                }
            }
            // POSIX regexes (Pigeonhole's) let `.` match a line break.
            let flags = if octet { "s" } else { "is" };
            bind_regex(lhs, patterns, flags, keys, bind, bound)
        }
    }
}

/// `:is`/`:contains` under `i;octet`: a case-sensitive regex of the
/// escaped keys.
fn octet_literal(lhs: Expr, spec: &Spec, keys: &[Key]) -> Result<Expr, Unsupported> {
    let patterns = constants(keys, "an i;octet key with variables")?;
    let anchored = spec.match_type == MatchType::Is;
    let alts: Vec<String> = patterns
        .iter()
        .map(|k| {
            let q = regex::escape(k);
            if anchored { format!("^{q}$") } else { q }
        })
        .collect();
    Ok(compare(
        CompareOp::Matches,
        lhs,
        regex(alternation(alts), ""),
    ))
}

/// `:matches`: a simple glob as a string test, any other as a regex.
fn glob_match(
    lhs: Expr,
    spec: &Spec,
    keys: &[Key],
    bind: Option<&str>,
    bound: &mut Option<Bound>,
) -> Result<Expr, Unsupported> {
    let octet = spec.comparator == Comparator::Octet;
    let globs = constants(keys, "a :matches key with variables")?;
    if bind.is_none()
        && !octet
        && let Some(simple) = simple_glob(&lhs, &globs)
    {
        return Ok(simple);
    }
    let alts: Vec<String> = globs.iter().map(|g| glob(g)).collect();
    let flags = if octet { "s" } else { "is" };
    bind_regex(lhs, alts, flags, keys, bind, bound)
}

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim().to_string()
}

fn bind_regex(
    lhs: Expr,
    alts: Vec<String>,
    flags: &str,
    keys: &[Key],
    bind: Option<&str>,
    bound: &mut Option<Bound>,
) -> Result<Expr, Unsupported> {
    if bind.is_some() && alts.len() != 1 {
        return Err(Unsupported::new(
            keys.first().map_or_else(Span::default, |k| k.span),
            "match variables of a key list",
            "Flow binds the captures of one regex; the group numbers of several keys differ",
        ));
    }
    let pattern = alternation(alts);
    let groups = regex::Regex::new(&pattern).map_or(0, |r| r.captures_len() - 1);
    let mut e = compare(CompareOp::Matches, lhs, regex(pattern, flags));
    if let (Some(name), ExprKind::Compare(c)) = (bind, &mut e.kind) {
        c.bind = Some(ident(name));
        *bound = Some(Bound { groups });
    }
    Ok(e)
}

fn alternation(alts: Vec<String>) -> String {
    if alts.len() == 1 {
        return alts.into_iter().next().unwrap_or_default();
    }
    alts.iter()
        .map(|a| format!("(?:{a})"))
        .collect::<Vec<_>>()
        .join("|")
}

fn key_list(keys: &[Key]) -> Expr {
    if keys.len() == 1 {
        keys[0].expr.clone()
    } else {
        expr(ExprKind::List(
            keys.iter().map(|k| k.expr.clone()).collect(),
        ))
    }
}

fn constants(keys: &[Key], what: &str) -> Result<Vec<String>, Unsupported> {
    keys.iter()
        .map(|k| {
            k.constant.clone().ok_or_else(|| {
                Unsupported::new(
                    k.span,
                    what,
                    "Flow patterns are literals: a pattern cannot be built at run time",
                )
            })
        })
        .collect()
}

fn numeric_keys(keys: &[Key]) -> Result<Vec<i64>, Unsupported> {
    keys.iter()
        .map(|k| {
            k.constant
                .as_deref()
                .and_then(|c| c.trim().parse::<i64>().ok())
                .ok_or_else(|| Unsupported::new(k.span, "a numeric key", "it is not a number"))
        })
        .collect()
}

/// `number(x) OP n` for the value or any value of a list.
fn numeric(lhs: Expr, op: CompareOp, keys: &[Key]) -> Result<Expr, Unsupported> {
    let n = numeric_keys(keys)?;
    let list = matches!(&lhs.kind, ExprKind::Call(f, _) if f.name == "header");
    let one = |x: Expr, n: i64| compare(op, call("number", vec![x]), int(n));
    Ok(any_of(
        n.into_iter()
            .map(|n| {
                if list {
                    let body = one(super::build::name("v"), n);
                    call(
                        "some",
                        vec![
                            lhs.clone(),
                            expr(ExprKind::Lambda(ident("v"), Box::new(body))),
                        ],
                    )
                } else {
                    one(lhs.clone(), n)
                }
            })
            .collect(),
    ))
}

/// A glob that is a literal, `x*`, `*x` or `*x*` as `==`, `starts_with`,
/// `ends_with` or `contains` (case-insensitive, as the default comparator).
fn simple_glob(lhs: &Expr, globs: &[String]) -> Option<Expr> {
    let mut op = None;
    let mut keys = Vec::new();
    for g in globs {
        let starts = g.starts_with('*');
        let ends = g.ends_with('*') && g.len() > 1;
        let inner = &g[usize::from(starts)..g.len() - usize::from(ends)];
        if inner.is_empty() || inner.contains(['*', '?', '\\']) {
            return None;
        }
        let this = match (starts, ends) {
            (false, false) => CompareOp::Eq,
            (true, true) => CompareOp::Contains,
            (false, true) => CompareOp::StartsWith,
            (true, false) => CompareOp::EndsWith,
        };
        if op.is_some_and(|o| o != this) {
            return None;
        }
        op = Some(this);
        keys.push(super::build::text(inner));
    }
    let rhs = if keys.len() == 1 {
        keys.pop()?
    } else {
        expr(ExprKind::List(keys))
    };
    Some(compare(op?, lhs.clone(), rhs))
}

/// A `:matches` glob as an anchored regex: `*` is a shortest `(.*?)` and
/// `?` one character `(.)`, as Pigeonhole captures them; `\` escapes.
pub fn glob(g: &str) -> String {
    let mut out = String::from("^");
    let mut chars = g.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str("(.*?)"),
            '?' => out.push_str("(.)"),
            '\\' => {
                if let Some(next) = chars.next() {
                    out.push_str(&regex::escape(&next.to_string()));
                }
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push('$');
    out
}

/// Keys of a test from its strings.
pub fn keys(scope: &super::vars::Scope, strings: &[&SieveString]) -> Result<Vec<Key>, Unsupported> {
    strings
        .iter()
        .map(|s| {
            Ok(Key {
                expr: scope.string(s)?,
                constant: scope.constant(s),
                span: s.span,
            })
        })
        .collect()
}
