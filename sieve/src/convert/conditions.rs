//! Sieve tests (RFC 5228 §5 and extensions) as Flow conditions.

use weir_grammar::ast::{CompareOp, Expr, ExprKind, Span};

use super::args::{Args, nth_strings, string, strings};
use super::build::{all_of, any_of, call, compare, expr, field, int, name, not, text};
use super::matching::{self, Comparator, MatchType, SPEC_TAGS, Spec};
use super::{Converter, Unsupported};
use crate::ast::{Argument, Test};

/// The tests whose match variables a condition binds.
pub type BindTarget = Option<Span>;

impl Converter<'_> {
    /// A Sieve test as a Flow condition; `bind` is the span of the one test
    /// whose captures the rule binds, if any.
    pub(super) fn test(&mut self, t: &Test, bind: BindTarget) -> Result<Expr, Unsupported> {
        let args = Args::read(&t.args);
        match t.name.as_str() {
            "true" => Ok(expr(ExprKind::Bool(true))),
            "false" => Ok(expr(ExprKind::Bool(false))),
            "not" => {
                let inner = t.args.tests.first().ok_or_else(|| missing(t))?;
                Ok(not(self.test(inner, bind)?))
            }
            "allof" | "anyof" => {
                let items = t
                    .args
                    .tests
                    .iter()
                    .map(|x| self.test(x, bind))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if t.name == "allof" {
                    all_of(items)
                } else {
                    any_of(items)
                })
            }
            "exists" => {
                args.only(&[], "exists")?;
                let names = nth_strings(&args, 0, t.span, "exists")?;
                let items = names
                    .iter()
                    .map(|n| Ok(expr(ExprKind::Exists(Box::new(self.header_call(n)?)))))
                    .collect::<Result<Vec<_>, Unsupported>>()?;
                Ok(all_of(items))
            }
            "size" => self.size(t, &args),
            "header" => self.header(t, &args, bind),
            "address" | "envelope" => self.address(t, &args, bind),
            "body" => self.body(t, &args, bind),
            "string" => self.string_test(t, &args, bind),
            "currentdate" | "date" => self.date(t, &args),
            "duplicate" => self.duplicate(t, &args),
            "spamtest" => self.spamtest(t, &args),
            "hasflag" => self.hasflag(t, &args),
            other => Err(Unsupported::new(
                t.span,
                format!("test `{other}`"),
                "Flow has no equivalent test",
            )),
        }
    }

    /// `hasflag` without variable names tests the flags the script set so
    /// far (imap4flags' internal variable, empty when the script starts).
    /// Where no flag it asks for can have been set on the way to it, it is
    /// `false` in Sieve, and so in Flow; otherwise it is not converted.
    fn hasflag(&mut self, t: &Test, args: &Args) -> Result<Expr, Unsupported> {
        args.only(SPEC_TAGS, "hasflag")?;
        let spec = Spec::read(args, t.span)?;
        if args.positional.len() > 1 {
            return Err(Unsupported::new(
                t.span,
                "hasflag with variable names",
                "Flow's flags are not variables",
            ));
        }
        let keys = nth_strings(args, 0, t.span, "hasflag")?;
        let words: Option<Vec<String>> = keys
            .iter()
            .map(|k| self.scope.constant(k).map(|c| c.to_lowercase()))
            .collect();
        let path = &self.test_path;
        let none_set = !path.unknown_flags
            && spec.comparator != Comparator::Numeric
            && match spec.match_type {
                MatchType::Is => words.is_some_and(|w| {
                    w.iter()
                        .flat_map(|k| k.split_whitespace())
                        .all(|k| !path.flags.contains(k))
                }),
                MatchType::Contains | MatchType::Matches | MatchType::Regex => {
                    path.flags.is_empty()
                }
                MatchType::Count(_) | MatchType::Value(_) => false,
            };
        if none_set {
            return Ok(expr(ExprKind::Bool(false)));
        }
        Err(Unsupported::new(
            t.span,
            "hasflag",
            "a flag it tests may have been set by then, and Flow rules do not read the flags set so far",
        ))
    }

    fn header_call(&self, n: &crate::ast::SieveString) -> Result<Expr, Unsupported> {
        let value = self.scope.constant(n).ok_or_else(|| {
            Unsupported::new(
                n.span,
                "a header name with variables",
                "Flow header names are literals",
            )
        })?;
        Ok(call("header", vec![text(&value)]))
    }

    fn size(&mut self, t: &Test, args: &Args) -> Result<Expr, Unsupported> {
        args.only(&["over", "under"], "size")?;
        let n = match args.positional.first() {
            Some(Argument::Number(n, _)) => *n,
            _ => return Err(missing(t)),
        };
        let op = if args.has("over") {
            CompareOp::Gt
        } else {
            CompareOp::Lt
        };
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        Ok(compare(op, name("size"), expr(ExprKind::Size(n as u64))))
    }

    /// Runs one match over every source, any of them.
    fn each(
        &mut self,
        sources: Vec<Expr>,
        spec: &Spec,
        keys: &[matching::Key],
        t: &Test,
        bind: BindTarget,
    ) -> Result<Expr, Unsupported> {
        let binding = bind == Some(t.span) && spec.captures();
        if binding && sources.len() != 1 {
            return Err(Unsupported::new(
                t.span,
                "match variables over several headers",
                "Flow binds the captures of one comparison",
            ));
        }
        let mut bound = None;
        let name = binding.then(|| self.scope.capture_name.clone());
        let items = sources
            .into_iter()
            .map(|lhs| matching::test(lhs, spec, keys, name.as_deref(), &mut bound))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(b) = bound {
            self.bound_groups = Some(b.groups);
        }
        Ok(any_of(items))
    }

    fn header(&mut self, t: &Test, args: &Args, bind: BindTarget) -> Result<Expr, Unsupported> {
        args.only(SPEC_TAGS, "header")?;
        let spec = Spec::read(args, t.span)?;
        let names = nth_strings(args, 0, t.span, "header")?;
        let key_strings = nth_strings(args, 1, t.span, "header")?;
        let keys = matching::keys(&self.scope, &key_strings)?;
        let sources = names
            .iter()
            .map(|n| self.header_call(n))
            .collect::<Result<Vec<_>, _>>()?;
        self.each(sources, &spec, &keys, t, bind)
    }

    fn string_test(
        &mut self,
        t: &Test,
        args: &Args,
        bind: BindTarget,
    ) -> Result<Expr, Unsupported> {
        args.only(SPEC_TAGS, "string")?;
        let spec = Spec::read(args, t.span)?;
        let sources = nth_strings(args, 0, t.span, "string")?;
        let key_strings = nth_strings(args, 1, t.span, "string")?;
        let keys = matching::keys(&self.scope, &key_strings)?;
        if let MatchType::Count(_) = spec.match_type {
            return Err(Unsupported::new(
                spec.span,
                "string :count",
                "not converted",
            ));
        }
        let sources = sources
            .iter()
            .map(|s| self.scope.string(s))
            .collect::<Result<Vec<_>, _>>()?;
        self.each(sources, &spec, &keys, t, bind)
    }

    fn address(&mut self, t: &Test, args: &Args, bind: BindTarget) -> Result<Expr, Unsupported> {
        let mut known = SPEC_TAGS.to_vec();
        known.extend(["all", "localpart", "domain", "user", "detail"]);
        args.only(&known, &t.name)?;
        let spec = Spec::read(args, t.span)?;
        let names = nth_strings(args, 0, t.span, &t.name)?;
        let key_strings = nth_strings(args, 1, t.span, &t.name)?;
        let keys = matching::keys(&self.scope, &key_strings)?;
        let part = ["localpart", "domain", "user", "detail", "all"]
            .into_iter()
            .rfind(|p| args.tags.iter().any(|(t, _, _)| t == p))
            .unwrap_or("all");
        if let (MatchType::Count(op), [n]) = (spec.match_type, names.as_slice()) {
            let base = self.address_source(t, n)?;
            let base = if matches!(&base.kind, ExprKind::Field(_, f) if f.name == "from") {
                return Err(Unsupported::new(
                    spec.span,
                    "envelope :count \"from\"",
                    "the envelope has one sender",
                ));
            } else {
                base
            };
            let keys = keys
                .iter()
                .map(|k| {
                    k.constant
                        .as_deref()
                        .and_then(|c| c.trim().parse::<i64>().ok())
                        .ok_or_else(|| {
                            Unsupported::new(k.span, "a numeric key", "it is not a number")
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(any_of(
                keys.into_iter()
                    .map(|n| compare(op, call("count", vec![base.clone()]), int(n)))
                    .collect(),
            ));
        }
        let mut sources = Vec::new();
        for n in &names {
            let base = self.address_source(t, n)?;
            sources.push(match part {
                "localpart" => field(base, "local"),
                "domain" => field(base, "domain"),
                "detail" => field(base, "detail"),
                "user" => return self.user_part(base, &spec, &keys, t),
                _ => field(base, "address"),
            });
        }
        if matches!(spec.match_type, MatchType::Count(_)) {
            return Err(Unsupported::new(
                spec.span,
                format!("{} :count", t.name),
                "not converted: Flow counts a list, not the addresses of several headers",
            ));
        }
        self.each(sources, &spec, &keys, t, bind)
    }

    fn address_source(&self, t: &Test, n: &crate::ast::SieveString) -> Result<Expr, Unsupported> {
        let written = self.scope.constant(n).unwrap_or_default();
        let header = written.to_ascii_lowercase();
        let flow = if t.name == "envelope" {
            match header.as_str() {
                "from" => field(name("envelope"), "from"),
                "to" => field(name("envelope"), "to"),
                _ => {
                    return Err(Unsupported::new(
                        n.span,
                        format!("envelope \"{header}\""),
                        "Flow's envelope has `from` and `to`",
                    ));
                }
            }
        } else {
            match header.as_str() {
                "from" | "to" | "cc" | "sender" => name(&header),
                "reply-to" => name("reply_to"),
                "" => {
                    return Err(Unsupported::new(
                        n.span,
                        "address with a header name built from variables",
                        "Flow reads the header named by a constant",
                    ));
                }
                // Any other header: its addresses as `from` reads From's,
                // from the undecoded values, as Sieve parses them.
                _ => call(
                    "addresses",
                    vec![field(call("header", vec![text(&written)]), "raw")],
                ),
            }
        };
        Ok(flow)
    }

    /// `:user` (RFC 5233): the local part before the first `+`.
    fn user_part(
        &mut self,
        base: Expr,
        spec: &Spec,
        keys: &[matching::Key],
        t: &Test,
    ) -> Result<Expr, Unsupported> {
        let globs: Vec<String> = match spec.match_type {
            MatchType::Is => keys
                .iter()
                .map(|k| k.constant.clone().map(|c| escape_glob(&c)))
                .collect::<Option<_>>(),
            MatchType::Matches => keys
                .iter()
                .map(|k| k.constant.clone())
                .collect::<Option<_>>(),
            _ => None,
        }
        .ok_or_else(|| {
            Unsupported::new(
                spec.span,
                ":user",
                "converted only with constant :is or :matches keys",
            )
        })?;
        let flags = if spec.comparator == Comparator::Octet {
            "s"
        } else {
            "is"
        };
        let alts: Vec<String> = globs
            .iter()
            .map(|g| {
                let re = matching::glob(g);
                format!("{}(?:\\+.*)?$", &re[..re.len() - 1]).replace("(.*?)", "([^+]*?)")
            })
            .collect();
        let pattern = if alts.len() == 1 {
            alts[0].clone()
        } else {
            alts.iter()
                .map(|a| format!("(?:{a})"))
                .collect::<Vec<_>>()
                .join("|")
        };
        let _ = t;
        Ok(compare(
            CompareOp::Matches,
            field(base, "local"),
            super::build::regex(pattern, flags),
        ))
    }

    fn body(&mut self, t: &Test, args: &Args, bind: BindTarget) -> Result<Expr, Unsupported> {
        let mut known = SPEC_TAGS.to_vec();
        known.extend(["text", "content", "raw"]);
        args.only(&known, "body")?;
        let spec = Spec::read(args, t.span)?;
        let key_strings = nth_strings(args, 0, t.span, "body")?;
        let keys = matching::keys(&self.scope, &key_strings)?;
        let sources = match args.value("content") {
            Some(types) => self.content_sources(types)?,
            // The undecoded body, MIME structure included.
            None if args.has("raw") => vec![field(name("body"), "raw")],
            // `:text` reads the text with its line breaks, as Pigeonhole does.
            None => vec![field(name("body"), "lines")],
        };
        if sources.len() > 1 && bind == Some(t.span) {
            return Err(Unsupported::new(
                t.span,
                "body :content with match variables",
                "Flow binds the captures of one comparison",
            ));
        }
        let bind = if sources.len() > 1 { None } else { bind };
        self.each(sources, &spec, &keys, t, bind)
    }

    /// `:content` types as Flow's body texts: `text/html` is `body.html`
    /// (the HTML with its tags, as Sieve reads it); `text` and `text/plain`
    /// are `body.lines` and `body.html` (`body.lines` is the plain text
    /// with its line breaks, or the HTML as text when there is none).
    fn content_sources(&mut self, types: &Argument) -> Result<Vec<Expr>, Unsupported> {
        let mut out = Vec::new();
        for ty in strings(types).unwrap_or_default() {
            let html = field(name("body"), "html");
            match ty.value.to_ascii_lowercase().as_str() {
                "text/html" => out.push(html),
                "text" | "text/plain" => {
                    self.info(
                        ty.span,
                        "body :content \"text\"",
                        "converted as `body.lines` and `body.html`: text attachments are not read",
                    );
                    out.extend([field(name("body"), "lines"), html]);
                }
                other => {
                    return Err(Unsupported::new(
                        ty.span,
                        format!("body :content \"{other}\""),
                        "Flow reads the text and HTML body, not other MIME parts",
                    ));
                }
            }
        }
        out.dedup();
        Ok(out)
    }

    fn date(&mut self, t: &Test, args: &Args) -> Result<Expr, Unsupported> {
        let mut known = SPEC_TAGS.to_vec();
        known.push("zone");
        args.only(&known, &t.name)?;
        let spec = Spec::read(args, t.span)?;
        let offset = usize::from(t.name == "date");
        let base = if t.name == "date" {
            let header = nth_strings(args, 0, t.span, "date")?;
            match header.as_slice() {
                [h] if h.value.eq_ignore_ascii_case("date") => name("date"),
                _ => {
                    return Err(Unsupported::new(
                        t.span,
                        "date on a header other than Date",
                        "Flow reads the Date header only",
                    ));
                }
            }
        } else {
            name("now")
        };
        let base = match args.value("zone") {
            Some(z) => {
                let zone = string(z).map(|s| s.value.clone()).unwrap_or_default();
                let iana = fixed_zone(&zone).ok_or_else(|| {
                    Unsupported::new(
                        z.span(),
                        format!(":zone \"{zone}\""),
                        "Flow converts whole-hour offsets (as Etc/GMT zones)",
                    )
                })?;
                call("local", vec![base, text(&iana)])
            }
            None => {
                self.info(
                    t.span,
                    &t.name,
                    "without :zone Sieve uses the server's time zone; converted as UTC",
                );
                base
            }
        };
        let part = nth_strings(args, offset, t.span, &t.name)?;
        let part = part
            .first()
            .map(|p| p.value.to_ascii_lowercase())
            .unwrap_or_default();
        let keys = nth_strings(args, offset + 1, t.span, &t.name)?;
        let op = match spec.match_type {
            MatchType::Is => CompareOp::Eq,
            MatchType::Value(op) => op,
            _ => {
                return Err(Unsupported::new(
                    spec.span,
                    format!("{} with this match type", t.name),
                    "Flow compares date parts with :is and :value only",
                ));
            }
        };
        let items = keys
            .iter()
            .map(|k| date_part(&base, &part, op, &k.value, k.span))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(any_of(items))
    }

    fn duplicate(&mut self, _t: &Test, args: &Args) -> Result<Expr, Unsupported> {
        args.only(
            &["handle", "header", "uniqueid", "seconds", "last"],
            "duplicate",
        )?;
        // Without its header the test is false (RFC 7352 §3.1, §3.2).
        let mut guard = None;
        let key = if let Some(u) = args.value("uniqueid").and_then(string) {
            self.scope.string(u)?
        } else if let Some(h) = args.value("header").and_then(string) {
            let header = self.header_call(h)?;
            guard = Some(expr(ExprKind::Exists(Box::new(header.clone()))));
            call("first", vec![header])
        } else {
            guard = Some(expr(ExprKind::Exists(Box::new(call(
                "header",
                vec![text("Message-ID")],
            )))));
            name("message_id")
        };
        let key = match args.value("handle").and_then(string) {
            Some(h) => {
                let handle = self.scope.constant(h).unwrap_or_default();
                expr(ExprKind::Str(super::build::str_lit(vec![
                    weir_grammar::ast::StrPart::Text(format!("{handle}:")),
                    weir_grammar::ast::StrPart::Interp(key),
                ])))
            }
            None => key,
        };
        let seconds = match args.value("seconds") {
            Some(Argument::Number(n, _)) => *n,
            _ => DUPLICATE_PERIOD,
        };
        let test = call("duplicate", vec![key, expr(ExprKind::Duration(seconds))]);
        Ok(match guard {
            Some(g) => all_of(vec![g, test]),
            None => test,
        })
    }

    fn spamtest(&mut self, t: &Test, args: &Args) -> Result<Expr, Unsupported> {
        args.only(SPEC_TAGS, "spamtest")?;
        let spec = Spec::read(args, t.span)?;
        let key_strings = nth_strings(args, 0, t.span, "spamtest")?;
        let keys = matching::keys(&self.scope, &key_strings)?;
        let op = match spec.match_type {
            MatchType::Value(op) => op,
            MatchType::Is => CompareOp::Eq,
            _ => {
                return Err(Unsupported::new(
                    spec.span,
                    "spamtest match type",
                    "use :value",
                ));
            }
        };
        self.imports.insert("stdlib/spam".to_string());
        self.warn(
            t.span,
            "spamtest",
            "converted to Weir's own `score` (import \"stdlib/spam\"), not the score of the scanner Sieve read",
        );
        let items = keys
            .iter()
            .map(|k| {
                let n: i64 = k
                    .constant
                    .as_deref()
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| {
                        Unsupported::new(k.span, "spamtest key", "it is not a number")
                    })?;
                Ok(compare(op, name("score"), int(n)))
            })
            .collect::<Result<Vec<_>, Unsupported>>()?;
        Ok(any_of(items))
    }
}

/// The period of `duplicate` without `:seconds`: Pigeonhole's
/// `sieve_duplicate_default_period` (12 hours).
pub const DUPLICATE_PERIOD: u64 = 12 * 3600;

fn missing(t: &Test) -> Unsupported {
    Unsupported::new(
        t.span,
        format!("test `{}`", t.name),
        "an argument is missing",
    )
}

fn escape_glob(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if matches!(c, '*' | '?' | '\\') {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

/// `+0100` as `Etc/GMT-1` (the IANA names count the other way).
fn fixed_zone(zone: &str) -> Option<String> {
    let (sign, rest) = zone.split_at_checked(1)?;
    let digits: u32 = rest.parse().ok()?;
    if rest.len() != 4 || !digits.is_multiple_of(100) || !matches!(sign, "+" | "-") {
        return None;
    }
    let hours = digits / 100;
    if hours == 0 {
        return Some("Etc/UTC".to_string());
    }
    let flipped = if sign == "+" { "-" } else { "+" };
    Some(format!("Etc/GMT{flipped}{hours}"))
}

fn date_part(
    base: &Expr,
    part: &str,
    op: CompareOp,
    key: &str,
    span: Span,
) -> Result<Expr, Unsupported> {
    let number = |k: &str| -> Result<i64, Unsupported> {
        k.parse().map_err(|_| {
            Unsupported::new(span, format!("date part key \"{k}\""), "it is not a number")
        })
    };
    Ok(match part {
        "year" | "month" | "day" | "hour" | "minute" | "second" => {
            compare(op, field(base.clone(), part), int(number(key)?))
        }
        "weekday" if op == CompareOp::Eq => {
            const DAYS: [&str; 7] = [
                "sunday",
                "monday",
                "tuesday",
                "wednesday",
                "thursday",
                "friday",
                "saturday",
            ];
            let day = usize::try_from(number(key)?)
                .ok()
                .and_then(|d| DAYS.get(d))
                .ok_or_else(|| Unsupported::new(span, "weekday", "expects 0 (Sunday) to 6"))?;
            compare(op, field(base.clone(), "weekday"), text(day))
        }
        // `HH:MM:SS`, the three parts equal.
        "time" if op == CompareOp::Eq => {
            let parts: Vec<&str> = key.split(':').collect();
            let [h, m, s] = parts.as_slice() else {
                return Err(Unsupported::new(span, "time key", "expects hh:mm:ss"));
            };
            // Sieve compares the text: `7:00:00` is never `07:00:00`.
            if parts.iter().any(|p| p.len() != 2) {
                return Err(Unsupported::new(span, "time key", "expects hh:mm:ss"));
            }
            all_of(vec![
                compare(op, field(base.clone(), "hour"), int(number(h)?)),
                compare(op, field(base.clone(), "minute"), int(number(m)?)),
                compare(op, field(base.clone(), "second"), int(number(s)?)),
            ])
        }
        "date" if op == CompareOp::Eq => {
            let mut it = key.splitn(3, '-');
            let (y, m, d) = (it.next(), it.next(), it.next());
            match (y, m, d) {
                (Some(y), Some(m), Some(d)) => all_of(vec![
                    compare(op, field(base.clone(), "year"), int(number(y)?)),
                    compare(op, field(base.clone(), "month"), int(number(m)?)),
                    compare(op, field(base.clone(), "day"), int(number(d)?)),
                ]),
                _ => return Err(Unsupported::new(span, "date key", "expects yyyy-mm-dd")),
            }
        }
        other => {
            return Err(Unsupported::new(
                span,
                format!("date part \"{other}\""),
                "Flow's times have year, month, day, hour, minute, second and weekday",
            ));
        }
    })
}

/// Whether a test (or a test inside it) is `hasflag`, which reads the
/// flags set on the way to it.
pub fn reads_flags(t: &Test) -> bool {
    t.name == "hasflag" || t.args.tests.iter().any(reads_flags)
}

/// Whether a test (or a test inside it) sets match variables.
pub fn sets_captures(t: &Test) -> bool {
    let args = Args::read(&t.args);
    args.has("matches") || args.has("regex") || t.args.tests.iter().any(sets_captures)
}

/// The test of a condition whose captures a rule can bind: the test itself,
/// or the last capturing test of an `allof` (evaluated last when it holds).
pub fn bind_target(t: &Test) -> Result<Span, Unsupported> {
    match t.name.as_str() {
        "allof" => {
            let last = t.args.tests.iter().rev().find(|x| sets_captures(x));
            match last {
                Some(x) => bind_target(x),
                None => Err(no_bind(t.span)),
            }
        }
        "anyof" | "not" => Err(no_bind(t.span)),
        _ if sets_captures(t) => Ok(t.span),
        _ => Err(no_bind(t.span)),
    }
}

fn no_bind(span: Span) -> Unsupported {
    Unsupported::new(
        span,
        "match variables",
        "Flow binds captures only from a :matches or :regex test outside anyof and not",
    )
}

/// Strings argument helper for tests elsewhere.
pub fn list_strings(a: &Argument) -> Vec<String> {
    strings(a)
        .map(|l| l.iter().map(|s| s.value.clone()).collect())
        .unwrap_or_default()
}
