//! `Authentication-Results` (RFC 8601) read into records: what
//! `auth_results(TRUSTED)` gives (docs/language.md ("Authentication
//! results")).
//!
//! The grammar (RFC 8601 §2.2), leniently: an authserv-id (a token or a
//! quoted string) and an optional version, then `;`-separated results, each
//! `method[/version] = result`, an optional `reason = value`, then
//! `ptype.property = value` pairs. Comments `( … )` (nested, with `\`
//! escapes) may stand between any two tokens; their text is kept, since
//! OpenDMARC (`(p=reject dis=none)`) and rspamd (`(policy=reject)`) write
//! the domain's DMARC policy there. A result that does not read (no `=`,
//! `none`) is skipped; the rest of the header still counts.

/// One result of one `Authentication-Results` header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthResult {
    /// The authserv-id of the header, as written.
    pub authserv: String,
    /// The method, lower-case, without its version (`dkim`, `spf`, `dmarc`).
    pub method: String,
    /// The result, lower-case (`pass`, `fail`, `softfail`, `none`, …).
    pub result: String,
    /// The `reason=` value, or `""`.
    pub reason: String,
    /// The text of the result's comments, joined with `; `, or `""`.
    pub comment: String,
    /// The properties in order: (`ptype.property` lower-case, value as
    /// written, quotes removed).
    pub properties: Vec<(String, String)>,
}

impl AuthResult {
    /// The value of property `name` (`header.from`; case-insensitive), or
    /// `""`.
    pub fn property(&self, name: &str) -> &str {
        self.properties
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.as_str())
    }

    /// The DMARC policy the result reports, lower-case: the
    /// `policy.dmarc` property (Stalwart), else `policy=` (rspamd) or `p=`
    /// (OpenDMARC) in a comment; `""` when none is given.
    pub fn policy(&self) -> String {
        let property = self.property("policy.dmarc");
        if !property.is_empty() {
            return property.to_ascii_lowercase();
        }
        for word in self
            .comment
            .split(|c: char| c.is_whitespace() || c == ';' || c == ',')
        {
            let lower = word.to_ascii_lowercase();
            if let Some(p) = lower
                .strip_prefix("policy=")
                .or_else(|| lower.strip_prefix("p="))
            {
                return p.to_string();
            }
        }
        String::new()
    }
}

/// A token of a header value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A run of characters other than blanks, `;`, `=`, `(` and `"`;
    /// `true` when blanks or a comment stood right before it.
    Word(String, bool),
    /// A quoted string, unquoted.
    Quoted(String),
    Comment(String),
    Semi,
    /// `=`; `true` when blanks or a comment stood right before it.
    Equals(bool),
}

/// Splits a header value into tokens. Never fails: an unclosed quote or
/// comment runs to the end.
fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut spaced = true;
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
                spaced = true;
                continue;
            }
            ';' => {
                chars.next();
                out.push(Token::Semi);
            }
            '=' => {
                chars.next();
                out.push(Token::Equals(spaced));
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => s.extend(chars.next()),
                        c => s.push(c),
                    }
                }
                out.push(Token::Quoted(s));
            }
            '(' => {
                chars.next();
                let mut depth = 1;
                let mut s = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        '\\' => {
                            s.extend(chars.next());
                            continue;
                        }
                        _ => {}
                    }
                    if depth == 0 {
                        break;
                    }
                    s.push(c);
                }
                out.push(Token::Comment(s.trim().to_string()));
                spaced = true;
                continue;
            }
            _ => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, ';' | '=' | '(' | '"') {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                out.push(Token::Word(s, spaced));
            }
        }
        spaced = false;
    }
    out
}

/// Reads one `Authentication-Results` header value: its authserv-id and
/// its results (see the module docs).
pub fn parse(value: &str) -> (String, Vec<AuthResult>) {
    let tokens = tokens(value);
    let mut groups = tokens.split(|t| *t == Token::Semi);
    let authserv = groups
        .next()
        .and_then(|head| {
            head.iter().find_map(|t| match t {
                Token::Word(w, _) => Some(w.clone()),
                Token::Quoted(q) => Some(q.clone()),
                _ => None,
            })
        })
        .unwrap_or_default();
    let results = groups
        .filter_map(|group| result(group, &authserv))
        .collect();
    (authserv, results)
}

/// One `method=result …` group, or `None` when it does not read.
fn result(group: &[Token], authserv: &str) -> Option<AuthResult> {
    let mut comments = Vec::new();
    let mut rest = group.iter().filter(|t| match t {
        Token::Comment(c) => {
            if !c.is_empty() {
                comments.push(c.clone());
            }
            false
        }
        _ => true,
    });
    let mut record = AuthResult {
        authserv: authserv.to_string(),
        ..AuthResult::default()
    };
    let Some(Token::Word(method, _)) = rest.next() else {
        return None;
    };
    let Some(Token::Equals(_)) = rest.next() else {
        return None;
    };
    let result = match rest.next() {
        Some(Token::Word(w, _)) | Some(Token::Quoted(w)) => w,
        _ => return None,
    };
    record.method = method.split('/').next().unwrap_or("").to_ascii_lowercase();
    record.result = result.to_ascii_lowercase();
    let rest: Vec<&Token> = rest.collect();
    let mut i = 0;
    while i < rest.len() {
        let (Token::Word(key, _), Some(Token::Equals(_))) = (rest[i], rest.get(i + 1)) else {
            i += 1;
            continue;
        };
        // The value: a quoted string, or a word and whatever follows it
        // with no blank in between (base64 `header.b=ab+c/d=`).
        let mut value = String::new();
        i += 2;
        match rest.get(i) {
            Some(Token::Quoted(q)) => {
                value.push_str(q);
                i += 1;
            }
            Some(Token::Word(w, _)) => {
                value.push_str(w);
                i += 1;
                loop {
                    match rest.get(i) {
                        Some(Token::Equals(false)) => value.push('='),
                        Some(Token::Word(w, false)) => value.push_str(w),
                        _ => break,
                    }
                    i += 1;
                }
            }
            _ => {}
        }
        let key = key.to_ascii_lowercase();
        if key == "reason" {
            record.reason = value;
        } else if key.contains('.') {
            record.properties.push((key, value));
        }
    }
    record.comment = comments.join("; ");
    Some(record)
}

/// The results of every header whose authserv-id is in `trusted`
/// (compared ignoring case), in header order.
pub fn trusted_results<'a>(
    headers: impl IntoIterator<Item = &'a str>,
    trusted: &[&str],
) -> Vec<AuthResult> {
    let mut out = Vec::new();
    for header in headers {
        let (authserv, results) = parse(header);
        if trusted.iter().any(|t| t.eq_ignore_ascii_case(&authserv)) {
            out.extend(results);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rspamd_with_the_policy_in_a_trailing_comment() {
        let (id, r) = parse(
            "mx.example.com; dkim=none; spf=fail (mx.example.com: domain of \
             a@bank.example does not designate 192.0.2.9 as permitted sender) \
             smtp.mailfrom=a@bank.example; dmarc=fail reason=\"No valid SPF, No valid DKIM\" \
             header.from=bank.example (policy=reject)",
        );
        assert_eq!(id, "mx.example.com");
        assert_eq!(r.len(), 3);
        assert_eq!(
            (r[1].method.as_str(), r[1].result.as_str()),
            ("spf", "fail")
        );
        assert_eq!(r[1].property("smtp.mailfrom"), "a@bank.example");
        assert_eq!(r[2].reason, "No valid SPF, No valid DKIM");
        assert_eq!(r[2].property("header.from"), "bank.example");
        assert_eq!(r[2].policy(), "reject");
    }

    #[test]
    fn reads_opendkim_opendmarc_and_stalwart() {
        let (_, r) = parse(
            "mx.example.com; dkim=pass (2048-bit key; unprotected) header.d=example.org \
             header.i=@example.org header.b=\"AbC+/9==\"",
        );
        assert_eq!(r[0].comment, "2048-bit key; unprotected");
        assert_eq!(r[0].property("header.d"), "example.org");
        assert_eq!(r[0].property("header.b"), "AbC+/9==");
        let (_, r) =
            parse("mx.example.com; dmarc=fail (p=quarantine dis=none) header.from=x.example");
        assert_eq!(r[0].policy(), "quarantine");
        let (_, r) = parse(
            "mx.example.com; dmarc=pass header.from=x.example policy.dmarc=reject; \
             iprev=pass policy.iprev=192.0.2.1",
        );
        assert_eq!(r[0].policy(), "reject");
        assert_eq!(r[1].method, "iprev");
    }

    #[test]
    fn tolerates_blanks_versions_unbase64_and_junk() {
        let (id, r) = parse("\"mx.example.com\" 1; DKIM/1 = PASS header.b=ab=c; none; ;garbage");
        assert_eq!(id, "mx.example.com");
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].method.as_str(), r[0].result.as_str()),
            ("dkim", "pass")
        );
        assert_eq!(r[0].property("header.b"), "ab=c");
        assert_eq!(parse("mx.example.com; none").1, vec![]);
        assert_eq!(parse("").1, vec![]);
        assert_eq!(parse("(unclosed").0, "");
    }

    #[test]
    fn only_trusted_authserv_ids_count() {
        let headers = [
            "evil.example; dmarc=pass header.from=bank.example",
            "MX.example.com; dmarc=fail header.from=bank.example",
        ];
        let r = trusted_results(headers, &["mx.example.com"]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].result, "fail");
        assert!(trusted_results(headers, &[]).is_empty());
    }
}
