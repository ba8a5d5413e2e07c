//! Run-time values of Flow expressions.

use std::net::IpAddr;
use std::sync::Arc;

use crate::authres::AuthResult;
use crate::message::{Address, Attachment};

/// A run-time value. Cheap to clone: compound values are shared.
#[derive(Debug, Clone)]
pub enum Value {
    /// `bool`.
    Bool(bool),
    /// `int`.
    Int(i64),
    /// `float`.
    Float(f64),
    /// `string`.
    Str(Arc<str>),
    /// `address`.
    Address(Arc<Address>),
    /// `ip`.
    Ip(IpAddr),
    /// `cidr`: network address and prefix length.
    Cidr(IpAddr, u8),
    /// `time`: seconds since the Unix epoch, and the zone its members
    /// (`.hour`, …) are read in: UTC except after `local(t, ZONE)`.
    /// Comparisons and arithmetic use the instant alone.
    Time(i64, crate::time::Zone),
    /// `duration`: seconds (negative when the first time was earlier).
    Duration(i64),
    /// `regex`.
    Regex(Arc<crate::pattern::Regex>),
    /// `list<T>`.
    List(Arc<Vec<Value>>),
    /// An attachment record.
    Attachment(Arc<Attachment>),
    /// Captures of `matches ... as m`: `m[0]` the whole match, then groups
    /// (a group that did not take part is `""`).
    Captures(Arc<Vec<String>>),
    /// One result of an `Authentication-Results` header.
    AuthResult(Arc<AuthResult>),
}

impl Value {
    /// A string value.
    pub fn str(s: impl AsRef<str>) -> Value {
        Value::Str(Arc::from(s.as_ref()))
    }

    /// A list value.
    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Arc::new(items))
    }

    /// An address value.
    pub fn address(a: Address) -> Value {
        Value::Address(Arc::new(a))
    }

    /// An attachment value.
    pub fn attachment(a: Attachment) -> Value {
        Value::Attachment(Arc::new(a))
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The number as a float (ints promoted), if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The text of a string, or the `.address` of an address.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Address(a) => Some(&a.address),
            _ => None,
        }
    }

    /// The items of a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
}

impl Value {
    /// The value as text for `${...}` interpolation (docs/language.md ("Lexical structure")):
    /// - a string as is; an address as its `.address`;
    /// - a number in shortest form (`9.5`, `8`: an integral float prints
    ///   without `.0`);
    /// - a time as RFC 3339: in UTC `2026-11-22T07:00:00Z`, a `local()`
    ///   time with its zone's offset `2026-11-22T08:00:00+01:00`;
    /// - a duration as a Flow literal in the largest unit that divides it
    ///   exactly (`90s`, `5m`, `2h`, `7d`, `-30s`; zero is `0s`);
    /// - an ip as usual text, a cidr as `address/prefix`;
    /// - a list as its items' texts joined with `, `;
    /// - a regex as its source, an attachment as its name, captures as the
    ///   whole match (`m[0]`), a bool as `true`/`false`, an
    ///   authentication result as `method=result` (`dmarc=fail`).
    pub fn to_text(&self) -> String {
        match self {
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format_float(*f),
            Value::Str(s) => s.to_string(),
            Value::Address(a) => a.address.to_string(),
            Value::Ip(ip) => ip.to_string(),
            Value::Cidr(ip, prefix) => format!("{ip}/{prefix}"),
            Value::Time(t, zone) => crate::time::format(*t, *zone),
            Value::Duration(d) => format_duration(*d),
            Value::Regex(r) => r.as_str().to_string(),
            Value::List(items) => items
                .iter()
                .map(Value::to_text)
                .collect::<Vec<_>>()
                .join(", "),
            Value::Attachment(a) => a.name.clone(),
            Value::Captures(c) => c.first().cloned().unwrap_or_default(),
            Value::AuthResult(r) => format!("{}={}", r.method, r.result),
        }
    }
}

/// A float in shortest round-trip form, without a trailing `.0`.
fn format_float(f: f64) -> String {
    // Rust's `Display` for f64 is already the shortest round-trip form and
    // prints integral values without a fraction (`8`).
    format!("{f}")
}

/// Seconds since the epoch as RFC 3339 UTC; out-of-range times print as
/// their number of seconds.
pub fn format_time(secs: i64) -> String {
    crate::time::format(secs, crate::time::Zone::UTC)
}

impl Value {
    /// A time in UTC.
    pub fn utc(secs: i64) -> Value {
        Value::Time(secs, crate::time::Zone::UTC)
    }
}

/// A duration as a Flow literal (`5m`), in the largest exact unit.
pub fn format_duration(secs: i64) -> String {
    const UNITS: [(i64, &str); 3] = [(86_400, "d"), (3_600, "h"), (60, "m")];
    for (size, unit) in UNITS {
        if secs != 0 && secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// Case folding for case-insensitive comparisons (docs/language.md ("Expressions"): string
/// comparisons ignore case, as in Sieve). It lowercases each character
/// (Unicode lowercase mapping) and folds the final sigma `ς` to `σ`, which
/// matches Unicode simple case folding for every cased letter in common
/// use; the few characters whose full lowercase differs (`İ`) lowercase
/// the same way on both sides of a comparison. ASCII text takes a fast path.
pub fn fold(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    // Mostly-ASCII text (a Latin-1 body with a few accents) is the common
    // case: its ASCII runs are copied and lowercased in bulk, and only the
    // characters between them go through the Unicode mapping one by one.
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        let ascii = rest
            .bytes()
            .position(|b| !b.is_ascii())
            .unwrap_or(rest.len());
        let start = out.len();
        out.push_str(&rest[..ascii]);
        out[start..].make_ascii_lowercase();
        let mut chars = rest[ascii..].chars();
        rest = chars.as_str();
        while let Some(c) = chars.next().filter(|c| !c.is_ascii()) {
            fold_char(c, &mut out);
            rest = chars.as_str();
        }
    }
    out
}

/// Appends the case folding of one character (see [`fold`]).
#[inline]
fn fold_char(c: char, out: &mut String) {
    match c {
        'ς' => out.push('σ'),
        c => out.extend(c.to_lowercase()),
    }
}
