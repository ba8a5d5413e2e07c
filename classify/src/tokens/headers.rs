//! The features of a message's headers: the words of each header marked
//! with its name (as SpamAssassin's Bayes does: mailers, relays and
//! content types say much about where mail comes from), the sender's and
//! recipients' addresses, and the shapes of the Message-ID and the MIME
//! boundary, which mailers (and spamware) each write their own way.

use weir_stdlib::Message;

use super::{MAX_WORD, hash2};

/// Headers whose words are not features: unique per message or per
/// delivery (`Received` and `Date` differ between two copies of one
/// message, which must stay one message: docs/classifiers.md), covered
/// otherwise (`Subject`, `Message-ID`), or, as SpamAssassin's Bayes
/// ignores them, written by mailing lists, filters and mail stores: a
/// list header marks spam sent to a list as ham.
fn ignored(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "date",
        "received",
        "message-id",
        "subject",
        "content-length",
        "lines",
        "sender",
        "x-sender",
        "x-loop",
        "mail-followup-to",
        "precedence",
        "errors-to",
        "status",
        "x-status",
        "x-keywords",
        "x-uid",
        "x-uidl",
        "xref",
    ];
    const PREFIXES: &[&str] = &[
        "list-",
        "x-list",
        "x-mailman",
        "x-beenthere",
        "x-spam",
        "x-virus",
        "x-mailscanner",
        "resent-",
    ];
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// At most this many words of one header are features.
const MAX_HEADER_WORDS: usize = 30;

/// A header value this short is a feature whole too (`X-Mailer:
/// Microsoft Outlook Express 5.00.2919.6700`, a Content-Type).
const MAX_WHOLE_VALUE: usize = 60;

/// The features of the headers of `message`.
pub(super) fn features(message: &Message, out: &mut Vec<u64>) {
    for (name, value) in message.headers() {
        header(&name, &value, out);
    }
    addresses(message, out);
    let id = message.message_id();
    let (local, domain) = id.split_once('@').unwrap_or((&id, ""));
    out.push(hash2(b'M', shape(local).as_bytes()));
    out.push(hash2(b'M', domain.to_ascii_lowercase().as_bytes()));
    for value in message.header_raw("Content-Type") {
        if let Some(i) = value.to_ascii_lowercase().find("boundary=") {
            out.push(hash2(b'B', shape(&value[i + 9..]).as_bytes()));
        }
    }
}

/// A header's name, its value whole when short, and the words of its
/// value, each marked with the name.
fn header(name: &str, value: &str, out: &mut Vec<u64>) {
    let lower = name.to_ascii_lowercase();
    if ignored(&lower) {
        return;
    }
    out.push(hash2(b'H', lower.as_bytes()));
    let mut key = lower.into_bytes();
    key.push(b':');
    let prefix = key.len();
    if value.len() <= MAX_WHOLE_VALUE {
        key.extend_from_slice(value.to_lowercase().as_bytes());
        out.push(hash2(b'V', &key));
    }
    for word in value
        .split(|c: char| {
            c.is_whitespace()
                || matches!(c, ';' | ',' | '(' | ')' | '<' | '>' | '"' | '[' | ']' | '=')
        })
        .filter(|w| w.len() > 1 && w.len() <= MAX_WORD)
        .take(MAX_HEADER_WORDS)
    {
        key.truncate(prefix);
        key.extend_from_slice(word.to_lowercase().as_bytes());
        out.push(hash2(b'h', &key));
    }
}

/// The sender (domain, address, display name or its absence, and the
/// shape of the local part), whether `Reply-To` goes elsewhere, and the recipients (domain,
/// address without `+detail`, whether detail and a display name are
/// there, and how many there are).
fn addresses(message: &Message, out: &mut Vec<u64>) {
    let from = message.from();
    for a in from.iter().chain(message.reply_to().iter()) {
        out.push(hash2(b'f', a.domain.to_ascii_lowercase().as_bytes()));
        out.push(hash2(b'n', a.name.to_lowercase().as_bytes()));
    }
    for a in &from {
        out.push(hash2(b'F', a.address.to_ascii_lowercase().as_bytes()));
        out.push(hash2(b'F', shape(&a.local).as_bytes()));
        if a.name.is_empty() {
            out.push(hash2(b'F', b"-name"));
        }
    }
    for r in message.reply_to() {
        let same = from
            .iter()
            .any(|f| f.domain.eq_ignore_ascii_case(&r.domain));
        out.push(hash2(
            b'F',
            if same {
                b"reply-to:same"
            } else {
                b"reply-to:other"
            },
        ));
    }
    let to = message.to();
    let cc = message.cc();
    out.push(hash2(b'R', &[b'0' + (to.len() + cc.len()).min(6) as u8]));
    for a in to.iter().chain(cc.iter()) {
        let domain = a.domain.to_ascii_lowercase();
        let base = a.local.split('+').next().unwrap_or("").to_ascii_lowercase();
        out.push(hash2(b'T', domain.as_bytes()));
        out.push(hash2(b'T', format!("{base}@{domain}").as_bytes()));
        out.push(hash2(
            b'T',
            if a.detail.is_empty() {
                b"-detail"
            } else {
                b"+detail"
            },
        ));
        out.push(hash2(
            b'T',
            if a.name.is_empty() {
                b"-name"
            } else {
                b"+name"
            },
        ));
    }
}

/// The shape of an identifier: each run of digits, upper-case or
/// lower-case letters one character (`9`, `A`, `a`), other characters
/// kept, at most 64 read: `3370.Reply.25187` → `9.Aa.9`.
fn shape(s: &str) -> String {
    let mut shape = String::new();
    let mut last = None;
    for c in s.chars().take(64) {
        let class = if c.is_ascii_digit() {
            '9'
        } else if c.is_ascii_uppercase() {
            'A'
        } else if c.is_ascii_lowercase() {
            'a'
        } else {
            c
        };
        if last != Some(class) {
            shape.push(class);
            last = Some(class);
        }
    }
    shape
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_fold_runs() {
        assert_eq!(shape("3370.Reply.25187"), "9.Aa.9");
        assert_eq!(shape("a1B2"), "a9A9");
    }

    #[test]
    fn list_and_trace_headers_are_ignored() {
        for name in [
            "received",
            "list-id",
            "x-beenthere",
            "x-spam-status",
            "date",
        ] {
            assert!(ignored(name), "{name}");
        }
        for name in ["x-mailer", "from", "content-type", "return-path"] {
            assert!(!ignored(name), "{name}");
        }
    }
}
