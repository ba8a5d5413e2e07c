//! Sieve strings to Flow strings: `${name}` and `${N}` (RFC 5229) become
//! interpolations of what Flow knows of them.

use std::collections::{HashMap, HashSet};

use weir_grammar::ast::{Expr, ExprKind, StrPart};

use super::Unsupported;
use super::build::{expr, int, name, str_lit};
use crate::ast::SieveString;

/// What a string may refer to at one point of the script.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// `require "variables"` was given: `${...}` is expanded.
    pub enabled: bool,
    /// Variables set so far on this path, by lower-case name.
    pub vars: HashMap<String, Expr>,
    /// Variables set inside a nested block: their value after the block
    /// depends on the branch taken, which Flow cannot carry.
    pub tainted: HashSet<String>,
    /// The capture binding's groups, when the rule's condition binds `m`.
    pub captures: Option<usize>,
    /// The binding's name.
    pub capture_name: String,
}

/// One piece of a Sieve string.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Var(String),
    Match(usize),
}

/// Splits a string at its variable references (RFC 5229 §3).
pub fn pieces(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        lit.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after.find('}');
        let reference = end.map(|e| &after[..e]).and_then(reference);
        match (reference, end) {
            (Some(piece), Some(e)) => {
                if !lit.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut lit)));
                }
                out.push(piece);
                rest = &after[e + 1..];
            }
            _ => {
                lit.push_str("${");
                rest = after;
            }
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        out.push(Piece::Text(lit));
    }
    out
}

fn reference(inner: &str) -> Option<Piece> {
    if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
        return inner.parse().ok().map(Piece::Match);
    }
    let ok = inner.split('.').all(|part| {
        let mut b = part.bytes();
        b.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == b'_')
            && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
    });
    ok.then(|| Piece::Var(inner.to_ascii_lowercase()))
}

impl Scope {
    /// The string as a Flow string expression.
    pub fn string(&self, s: &SieveString) -> Result<Expr, Unsupported> {
        if !self.enabled {
            return Ok(super::build::text(&s.value));
        }
        let mut parts: Vec<StrPart> = Vec::new();
        for piece in pieces(&s.value) {
            let part = match piece {
                Piece::Text(t) => StrPart::Text(t),
                Piece::Match(n) => match self.captures {
                    Some(groups) if n <= groups => StrPart::Interp(expr(ExprKind::Index(
                        Box::new(name(&self.capture_name)),
                        Box::new(int(n as i64)),
                    ))),
                    Some(_) => StrPart::Text(String::new()),
                    None => {
                        return Err(Unsupported::new(
                            s.span,
                            format!("match variable ${{{n}}}"),
                            "it is not set by a :matches or :regex test of this rule's condition \
                             that Flow can bind (a `matches ... as` outside `or` and `not`)",
                        ));
                    }
                },
                Piece::Var(v) => match self.variable(&v, s)? {
                    // A value that is itself a string joins this one.
                    StrPart::Interp(Expr {
                        kind: ExprKind::Str(inner),
                        ..
                    }) => {
                        for p in inner.parts {
                            push_part(&mut parts, p);
                        }
                        continue;
                    }
                    other => other,
                },
            };
            push_part(&mut parts, part);
        }
        Ok(expr(ExprKind::Str(str_lit(parts))))
    }

    fn variable(&self, v: &str, s: &SieveString) -> Result<StrPart, Unsupported> {
        if self.tainted.contains(v) {
            return Err(Unsupported::new(
                s.span,
                format!("variable ${{{v}}}"),
                "it is set inside a conditional block and read after it; Flow has no variables \
                 whose value depends on the branch taken",
            ));
        }
        if v.contains('.') {
            return Err(Unsupported::new(
                s.span,
                format!("variable ${{{v}}}"),
                "variable namespaces (environment, global) have no Flow equivalent",
            ));
        }
        Ok(match self.vars.get(v) {
            Some(Expr {
                kind: ExprKind::Str(lit),
                ..
            }) if lit.as_plain().is_some() => StrPart::Text(lit.as_plain().unwrap_or_default()),
            Some(e) => StrPart::Interp(e.clone()),
            // An unset variable is the empty string (RFC 5229 §3).
            None => StrPart::Text(String::new()),
        })
    }

    /// The string's value when it is a constant.
    pub fn constant(&self, s: &SieveString) -> Option<String> {
        match self.string(s).ok()?.kind {
            ExprKind::Str(lit) => lit.as_plain(),
            _ => None,
        }
    }
}

/// Appends a part, joining adjacent texts.
fn push_part(parts: &mut Vec<StrPart>, part: StrPart) {
    match (parts.last_mut(), part) {
        (Some(StrPart::Text(a)), StrPart::Text(b)) => a.push_str(&b),
        (_, StrPart::Text(b)) if b.is_empty() => {}
        (_, part) => parts.push(part),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_and_others_left_alone() {
        assert_eq!(
            pieces("a${1}b${Name}${x-y}${"),
            vec![
                Piece::Text("a".into()),
                Piece::Match(1),
                Piece::Text("b".into()),
                Piece::Var("name".into()),
                Piece::Text("${x-y}${".into()),
            ]
        );
    }
}
