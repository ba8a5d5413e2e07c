//! Literals: strings (escapes, interpolation, the `"""` indentation rule),
//! regexes, numbers with their suffixes, and IP/CIDR literals. The grammar
//! accepts a little more than is valid so that each mistake is reported
//! here with its exact span and a hint.

use std::net::IpAddr;

use pest::iterators::Pair;

use super::{Builder, Rule};
use crate::ast::{Expr, ExprKind, RegexLit, Span, StrLit, StrPart};
use crate::codes;

impl Builder<'_> {
    /// Builds a string literal of any form.
    pub(super) fn string(&self, pair: Pair<'_, Rule>) -> StrLit {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::tstring => self.triple_string(pair, span),
            Rule::raw_tstring => {
                let content = Span::new(
                    span.start + 3,
                    span.end.saturating_sub(3).max(span.start + 3),
                );
                let removed = dedent_ranges(self.source, content, &[]);
                let text = keep_outside(self.source, content, &removed);
                StrLit {
                    parts: text_parts(text),
                    triple: true,
                    span,
                }
            }
            Rule::unterminated_string => {
                let text = &self.source[span.start..span.end];
                let (message, hint) = if text.len() > 1 && text[1..].contains('"') {
                    (
                        "this string literal is malformed",
                        "check its `${...}` interpolations: each needs an expression and a closing `}`",
                    )
                } else {
                    (
                        "this string literal is not terminated",
                        "close it with `\"` on the same line; use `\"\"\"...\"\"\"` for text spanning lines",
                    )
                };
                self.report(
                    self.error(codes::UNTERMINATED_STRING, message, span)
                        .with_hint(hint),
                );
                StrLit {
                    parts: text_parts(text.get(1..).unwrap_or("").to_string()),
                    triple: false,
                    span,
                }
            }
            _ => {
                let mut parts = Vec::new();
                for p in pair.into_inner() {
                    match p.as_rule() {
                        Rule::str_text => push_text(&mut parts, p.as_str()),
                        Rule::escape => {
                            if let Some(c) = self.escape(&p) {
                                push_text(&mut parts, c.encode_utf8(&mut [0; 4]));
                            }
                        }
                        Rule::interp => parts.push(self.interpolation(p)),
                        _ => {}
                    }
                }
                StrLit {
                    parts,
                    triple: false,
                    span,
                }
            }
        }
    }

    /// A `"""` string: escapes and interpolations as in `"..."`, then the
    /// indentation rule of docs/language.md ("Lexical structure") applied to the literal text.
    fn triple_string(&self, pair: Pair<'_, Rule>, span: Span) -> StrLit {
        let content = Span::new(
            span.start + 3,
            span.end.saturating_sub(3).max(span.start + 3),
        );
        let inner: Vec<Pair<'_, Rule>> = pair.into_inner().collect();
        let interps: Vec<Span> = inner
            .iter()
            .filter(|p| p.as_rule() == Rule::interp)
            .map(|p| self.span(p))
            .collect();
        let removed = dedent_ranges(self.source, content, &interps);
        let mut parts = Vec::new();
        for p in inner {
            match p.as_rule() {
                Rule::tstr_text => {
                    let text = keep_outside(self.source, self.span(&p), &removed);
                    push_text(&mut parts, &text);
                }
                Rule::escape => {
                    if let Some(c) = self.escape(&p) {
                        push_text(&mut parts, c.encode_utf8(&mut [0; 4]));
                    }
                }
                Rule::interp => parts.push(self.interpolation(p)),
                _ => {}
            }
        }
        StrLit {
            parts,
            triple: true,
            span,
        }
    }

    /// `${expr}` inside a string.
    fn interpolation(&self, pair: Pair<'_, Rule>) -> StrPart {
        let span = self.span(&pair);
        match pair.into_inner().find(|p| p.as_rule() == Rule::cond_expr) {
            Some(e) => StrPart::Interp(self.expr(e)),
            None => StrPart::Interp(Expr {
                kind: ExprKind::Bool(false),
                span,
            }),
        }
    }

    /// Resolves one escape, reporting an invalid one.
    fn escape(&self, pair: &Pair<'_, Rule>) -> Option<char> {
        let text = pair.as_str();
        let span = self.span(pair);
        match text {
            "\\n" => Some('\n'),
            "\\r" => Some('\r'),
            "\\t" => Some('\t'),
            "\\\"" => Some('"'),
            "\\\\" => Some('\\'),
            "\\$" => Some('$'),
            _ if text.starts_with("\\u{") => {
                let hex = text.trim_start_matches("\\u{").trim_end_matches('}');
                let c = (1..=6)
                    .contains(&hex.len())
                    .then(|| u32::from_str_radix(hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32);
                if c.is_none() {
                    self.report(
                        self.error(
                            codes::INVALID_UNICODE_ESCAPE,
                            format!("`{text}` is not a valid Unicode escape"),
                            span,
                        )
                        .with_hint(
                            "write 1 to 6 hex digits naming a Unicode scalar value, e.g. `\\u{e9}`",
                        ),
                    );
                }
                c
            }
            _ => {
                self.report(
                    self.error(
                        codes::INVALID_ESCAPE,
                        format!("unknown escape `{text}`"),
                        span,
                    )
                    .with_label("unknown escape")
                    .with_hint("valid escapes are \\n \\r \\t \\\" \\\\ \\$ and \\u{XXXX}"),
                );
                None
            }
        }
    }

    /// `/pattern/flags`.
    pub(super) fn regex(&self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        let mut pattern = String::new();
        let mut flags = String::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::regex_body => pattern = p.as_str().replace("\\/", "/"),
                Rule::regex_flags => {
                    let flags_span = self.span(&p);
                    for (i, c) in p.as_str().char_indices() {
                        if matches!(c, 'i' | 'm' | 's' | 'x') {
                            if !flags.contains(c) {
                                flags.push(c);
                            }
                        } else {
                            let at = flags_span.start + i;
                            self.report(
                                self.error(
                                    codes::INVALID_REGEX_FLAG,
                                    format!("unknown regex flag `{c}`"),
                                    Span::new(at, at + c.len_utf8()),
                                )
                                .with_hint("regex flags are i (ignore case), m (multi-line), s (dot matches newline) and x (verbose)"),
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        Expr {
            kind: ExprKind::Regex(RegexLit { pattern, flags }),
            span,
        }
    }

    /// A regex without its closing slash.
    pub(super) fn unterminated_regex(&self, pair: &Pair<'_, Rule>) -> Expr {
        let span = self.span(pair);
        self.report(
            self.error(
                codes::UNTERMINATED_REGEX,
                "this regex literal is not terminated",
                span,
            )
            .with_hint("close it with `/` on the same line; write a slash inside it as `\\/`"),
        );
        Expr {
            kind: ExprKind::Regex(RegexLit {
                pattern: pair.as_str().get(1..).unwrap_or("").to_string(),
                flags: String::new(),
            }),
            span,
        }
    }

    /// An IPv4 or IPv6 address, or a CIDR block.
    pub(super) fn ip(&self, pair: &Pair<'_, Rule>) -> Expr {
        let span = self.span(pair);
        let text = pair.as_str();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let kind = match (addr.parse::<IpAddr>(), prefix) {
            (Ok(ip), None) => Some(ExprKind::Ip(ip)),
            (Ok(ip), Some(p)) => {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                match p.parse::<u8>() {
                    Ok(len) if len <= max => Some(ExprKind::Cidr(ip, len)),
                    _ => {
                        self.report(
                            self.error(
                                codes::INVALID_IP,
                                format!("`/{p}` is not a valid prefix length"),
                                span,
                            )
                            .with_hint(format!(
                                "a prefix length is at most {max} for this address"
                            )),
                        );
                        None
                    }
                }
            }
            (Err(_), _) => {
                self.report(self.error(
                    codes::INVALID_IP,
                    format!("`{addr}` is not a valid IP address"),
                    span,
                ));
                None
            }
        };
        Expr {
            kind: kind.unwrap_or(ExprKind::Bool(false)),
            span,
        }
    }

    /// An integer, decimal, size or duration.
    pub(super) fn number(&self, pair: &Pair<'_, Rule>) -> Expr {
        let span = self.span(pair);
        let kind = self
            .number_kind(pair.as_str(), span)
            .unwrap_or(ExprKind::Int(0));
        Expr { kind, span }
    }

    /// An integer where only an integer makes sense (priorities, SMTP codes).
    pub(super) fn integer(&self, pair: &Pair<'_, Rule>) -> Option<(i64, Span)> {
        let span = self.span(pair);
        let text = pair.as_str();
        let digits = text.trim_start_matches('-');
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            self.report(
                self.error(
                    codes::INVALID_NUMBER_SUFFIX,
                    format!("`{text}` is not a whole number"),
                    span,
                )
                .with_hint("write a whole number without suffix"),
            );
            return None;
        }
        match text.parse::<i64>() {
            Ok(v) => Some((v, span)),
            Err(_) => {
                self.report(self.error(
                    codes::NUMBER_OUT_OF_RANGE,
                    format!("`{text}` is too large"),
                    span,
                ));
                None
            }
        }
    }

    fn number_kind(&self, text: &str, span: Span) -> Option<ExprKind> {
        let digits_end = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (value, suffix) = text.split_at(digits_end);
        let too_large = || {
            self.report(self.error(
                codes::NUMBER_OUT_OF_RANGE,
                format!("`{text}` is too large"),
                span,
            ));
            None
        };
        let scale: u64 = match suffix {
            "" if value.contains('.') => {
                return match value.parse::<f64>() {
                    Ok(f) if f.is_finite() => Some(ExprKind::Float(f)),
                    _ => too_large(),
                };
            }
            "" => {
                return match value.parse::<i64>() {
                    Ok(i) => Some(ExprKind::Int(i)),
                    Err(_) => too_large(),
                };
            }
            "K" => 1 << 10,
            "M" => 1 << 20,
            "G" => 1 << 30,
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => {
                self.report(
                    self.error(
                        codes::INVALID_NUMBER_SUFFIX,
                        format!("`{text}` has an unknown suffix `{suffix}`"),
                        span,
                    )
                    .with_label("unknown suffix")
                    .with_hint("sizes take upper-case K M G; durations take s m h d"),
                );
                return None;
            }
        };
        let amount = if value.contains('.') {
            let f = value.parse::<f64>().ok()? * scale as f64;
            if f.fract() != 0.0 {
                self.report(self.error(
                    codes::NUMBER_OUT_OF_RANGE,
                    format!(
                        "`{text}` is not a whole number of {}",
                        if scale >= 1024 { "bytes" } else { "seconds" }
                    ),
                    span,
                ));
                return None;
            }
            if !(0.0..1.8e19).contains(&f) {
                return too_large();
            }
            f as u64
        } else {
            match value.parse::<u64>().ok().and_then(|v| v.checked_mul(scale)) {
                Some(v) => v,
                None => return too_large(),
            }
        };
        Some(if matches!(suffix, "K" | "M" | "G") {
            ExprKind::Size(amount)
        } else {
            ExprKind::Duration(amount)
        })
    }
}

/// Appends text to the parts, merging with a preceding text part.
fn push_text(parts: &mut Vec<StrPart>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(StrPart::Text(last)) = parts.last_mut() {
        last.push_str(text);
    } else {
        parts.push(StrPart::Text(text.to_string()));
    }
}

fn text_parts(text: String) -> Vec<StrPart> {
    if text.is_empty() {
        Vec::new()
    } else {
        vec![StrPart::Text(text)]
    }
}

/// The byte ranges of a `"""` literal's content that the indentation rule
/// removes: a newline right after the opening quotes, the blanks of
/// whitespace-only lines, and the leading blanks common to the other lines.
/// Lines that start inside an interpolation are left alone.
pub(crate) fn dedent_ranges(source: &str, content: Span, interps: &[Span]) -> Vec<Span> {
    let text = source.get(content.start..content.end).unwrap_or("");
    let mut removed = Vec::new();
    let mut start = content.start;
    if text.starts_with("\r\n") {
        removed.push(Span::new(start, start + 2));
        start += 2;
    } else if text.starts_with('\n') {
        removed.push(Span::new(start, start + 1));
        start += 1;
    }
    let inside_interp = |at: usize| interps.iter().any(|s| s.start < at && at < s.end);
    let mut lines = Vec::new();
    let mut line_start = start;
    for (i, c) in source[start..content.end].char_indices() {
        if c == '\n' {
            lines.push(Span::new(line_start, start + i));
            line_start = start + i + 1;
        }
    }
    lines.push(Span::new(line_start, content.end));
    let mut common: Option<&str> = None;
    for line in &lines {
        if inside_interp(line.start) {
            continue;
        }
        let l = &source[line.start..line.end];
        if l.trim_matches([' ', '\t', '\r']).is_empty() {
            removed.push(Span::new(
                line.start,
                line.end - usize::from(l.ends_with('\r')),
            ));
            continue;
        }
        let indent = &l[..l.len() - l.trim_start_matches([' ', '\t']).len()];
        common = Some(match common {
            None => indent,
            Some(c) => {
                let n = c
                    .bytes()
                    .zip(indent.bytes())
                    .take_while(|(a, b)| a == b)
                    .count();
                &c[..n]
            }
        });
    }
    let common_len = common.map_or(0, str::len);
    if common_len > 0 {
        for line in &lines {
            let l = &source[line.start..line.end];
            if !inside_interp(line.start) && !l.trim_matches([' ', '\t', '\r']).is_empty() {
                removed.push(Span::new(line.start, line.start + common_len));
            }
        }
    }
    removed.sort();
    removed
}

/// The text of `span` without the bytes in `removed`.
pub(crate) fn keep_outside(source: &str, span: Span, removed: &[Span]) -> String {
    let mut out = String::new();
    let mut at = span.start;
    for r in removed {
        if r.end <= at || r.start >= span.end {
            continue;
        }
        if r.start > at {
            out.push_str(&source[at..r.start]);
        }
        at = at.max(r.end);
    }
    if at < span.end {
        out.push_str(&source[at..span.end]);
    }
    out
}
