//! The meaning of comparisons and tests (docs/language.md ("Expressions")): a list on the
//! left means any element (or every element, with `all`, and never over an
//! empty list); a list on the right of `==`, `contains`, `starts_with` and
//! `ends_with` means any of its items; string comparisons fold case except
//! `matches`; `in` is case-insensitive equality for strings and containment
//! for IPs; `under` is a domain at or below an entry. Negation (`!=`) is applied by the caller to the whole test.

use std::slice;

use weir_stdlib::Value;

use crate::eval::{contains_ip, text};
use crate::ir::{CmpOp, Compare};
use weir_stdlib::value::fold;

/// What a comparison found.
pub(crate) struct Outcome {
    /// Whether the test held (before `!=`'s negation).
    pub held: bool,
    /// For `matches`: the captures of the first element that matched.
    pub captures: Option<Vec<String>>,
    /// The element that made the test hold and the byte span of the match.
    pub evidence: Option<(String, (usize, usize))>,
}

/// Runs the comparison `c` on evaluated sides.
pub(crate) fn test(c: &Compare, lhs: &Value, rhs: &Value) -> Outcome {
    let items: &[Value] = match lhs {
        Value::List(items) => items,
        other => slice::from_ref(other),
    };
    let mut outcome = Outcome {
        held: false,
        captures: None,
        evidence: None,
    };
    if c.all {
        if items.is_empty() {
            return outcome;
        }
        for item in items {
            match element(c.op, item, rhs) {
                Some(found) => {
                    if outcome.evidence.is_none() {
                        outcome.evidence = Some((text(item), found.span));
                        outcome.captures = found.captures;
                    }
                }
                None => {
                    outcome.evidence = None;
                    outcome.captures = None;
                    return outcome;
                }
            }
        }
        outcome.held = true;
        return outcome;
    }
    for item in items {
        if let Some(found) = element(c.op, item, rhs) {
            outcome.held = true;
            outcome.evidence = Some((text(item), found.span));
            outcome.captures = found.captures;
            return outcome;
        }
    }
    outcome
}

/// One element that passed a test.
struct Found {
    span: (usize, usize),
    captures: Option<Vec<String>>,
}

impl Found {
    fn at(span: (usize, usize)) -> Option<Found> {
        Some(Found {
            span,
            captures: None,
        })
    }
}

/// Tests one left element against the right side.
fn element(op: CmpOp, item: &Value, rhs: &Value) -> Option<Found> {
    match op {
        CmpOp::Matches => {
            let Value::Regex(re) = rhs else { return None };
            let hay = item.as_text()?;
            let caps = re.captures(hay)?;
            let whole = caps.get(0).map_or((0, 0), |m| (m.start(), m.end()));
            let groups = caps
                .iter()
                .map(|m| m.map_or_else(String::new, |m| m.as_str().to_string()))
                .collect();
            Some(Found {
                span: whole,
                captures: Some(groups),
            })
        }
        CmpOp::Under => {
            let set = rhs.as_list().unwrap_or(slice::from_ref(rhs));
            let domain = item.as_text()?;
            set.iter()
                .filter_map(Value::as_text)
                .any(|entry| is_under(domain, entry))
                .then_some(Found {
                    span: (0, domain.len()),
                    captures: None,
                })
        }
        CmpOp::In => {
            let set = rhs.as_list().unwrap_or(slice::from_ref(rhs));
            set.iter().any(|member| is_in(item, member)).then(|| Found {
                span: (0, text(item).len()),
                captures: None,
            })
        }
        _ => {
            let candidates: &[Value] = match rhs {
                Value::List(items) => items,
                other => slice::from_ref(other),
            };
            candidates.iter().find_map(|r| scalar(op, item, r))
        }
    }
}

/// `domain under entry`: equal to the entry or a subdomain of it at a
/// label boundary, case-insensitively, a trailing dot (and an entry's
/// leading dot) ignored. An empty domain or entry is under nothing.
pub(crate) fn is_under(domain: &str, entry: &str) -> bool {
    let domain = fold(domain.trim().trim_end_matches('.'));
    let entry = fold(entry.trim().trim_end_matches('.').trim_start_matches('.'));
    if domain.is_empty() || entry.is_empty() {
        return false;
    }
    domain == entry
        || (domain.len() > entry.len()
            && domain.ends_with(entry.as_str())
            && domain.as_bytes()[domain.len() - entry.len() - 1] == b'.')
}

/// `item in LIST` for one member of the list.
fn is_in(item: &Value, member: &Value) -> bool {
    match (item, member) {
        (Value::Ip(ip), Value::Cidr(net, len)) => contains_ip(*net, *len, *ip),
        (Value::Ip(a), Value::Ip(b)) => a == b,
        _ => equal(item, member),
    }
}

/// Equality: strings and addresses fold case; numbers compare as floats.
fn equal(a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (a.as_text(), b.as_text()) {
        return x == y || fold(x) == fold(y);
    }
    if let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) {
        return x == y;
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Ip(x), Value::Ip(y)) => x == y,
        (Value::Cidr(x, n), Value::Cidr(y, m)) => x == y && n == m,
        (Value::Time(x, _), Value::Time(y, _)) | (Value::Duration(x), Value::Duration(y)) => x == y,
        _ => false,
    }
}

fn scalar(op: CmpOp, a: &Value, b: &Value) -> Option<Found> {
    let whole = || (0, text(a).len());
    match op {
        CmpOp::Eq => equal(a, b).then(|| Found {
            span: whole(),
            captures: None,
        }),
        CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => {
            let ordering = match (a, b) {
                (Value::Time(x, _), Value::Time(y, _))
                | (Value::Duration(x), Value::Duration(y)) => x.partial_cmp(y),
                _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
            }?;
            let held = match op {
                CmpOp::Lt => ordering.is_lt(),
                CmpOp::Le => ordering.is_le(),
                CmpOp::Gt => ordering.is_gt(),
                _ => ordering.is_ge(),
            };
            held.then(|| Found {
                span: whole(),
                captures: None,
            })
        }
        CmpOp::Contains | CmpOp::StartsWith | CmpOp::EndsWith => {
            let (hay, needle) = (a.as_text()?, b.as_text()?);
            let (fh, fn_) = (fold(hay), fold(needle));
            // Spans are reported in the original text; folding that changes
            // byte lengths (rare) falls back to the whole value.
            let same = fh.len() == hay.len();
            match op {
                CmpOp::Contains => {
                    let at = fh.find(&fn_)?;
                    Found::at(if same {
                        (at, at + fn_.len())
                    } else {
                        (0, hay.len())
                    })
                }
                CmpOp::StartsWith => {
                    fh.starts_with(&fn_).then_some(())?;
                    Found::at(if same { (0, fn_.len()) } else { (0, hay.len()) })
                }
                _ => {
                    fh.ends_with(&fn_).then_some(())?;
                    Found::at(if same {
                        (hay.len() - fn_.len(), hay.len())
                    } else {
                        (0, hay.len())
                    })
                }
            }
        }
        CmpOp::Matches | CmpOp::In | CmpOp::Under => None,
    }
}
