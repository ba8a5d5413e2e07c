//! The features of a message: the words of the decoded subject and body
//! text (numbers reduced to their length), the words of selected headers
//! marked with the header's name, the sender's and recipients' addresses,
//! the shape of the Message-ID and MIME boundary, the hosts and path
//! segments of URLs and the attachments' types, each hashed to 64 bits.
//! One pass over each text, so time is linear in the message.
//!
//! Words are single words, not rspamd's sparse bigrams: on the
//! SpamAssassin corpus the bigrams, which repeat each word's evidence five
//! times over, ranked worse at low false-positive rates
//! (benches/README.md, "Learned classifiers").

use weir_stdlib::Message;

mod headers;

/// Words longer than this are cut (base64 blobs, long URLs): their
/// prefix still says something, and the hash stays cheap.
const MAX_WORD: usize = 40;

/// Shorter words are left out (as SpamAssassin's Bayes does): "to",
/// "of" and "is" say nothing.
const MIN_WORD: usize = 3;

/// At most this many words of the body are read: the start of a message
/// says what it is, and a bound keeps a huge message cheap.
const MAX_BODY_WORDS: usize = 20_000;

/// The distinct features of a message, sorted.
pub fn features(message: &Message) -> Vec<u64> {
    let mut out = Vec::with_capacity(1024);
    words(&message.subject(), b's', usize::MAX, &mut out);
    words(message.body_text(), b'b', MAX_BODY_WORDS, &mut out);
    headers::features(message, &mut out);
    urls(message.body_text(), &mut out);
    urls(message.body_html(), &mut out);
    for a in message.attachments() {
        out.push(hash2(b'a', a.content_type.as_bytes()));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The words of `text`: letters and digits (with `'`, `$`, `€` and `!`),
/// lower-cased; words shorter than [`MIN_WORD`] left out; a number is
/// the token of its length (`#3` for `100`), so prices and dates count
/// by their shape, not each value apart.
fn words(text: &str, kind: u8, max: usize, out: &mut Vec<u64>) {
    let mut seen = 0usize;
    let mut word = String::with_capacity(MAX_WORD);
    let mut chars = text.chars();
    while seen < max {
        word.clear();
        let mut digits_only = true;
        for c in chars.by_ref() {
            if c.is_alphanumeric() || c == '\'' || c == '$' || c == '€' || c == '!' {
                if word.len() < MAX_WORD {
                    word.extend(c.to_lowercase());
                }
                digits_only &= c.is_ascii_digit();
            } else if !word.is_empty() {
                break;
            }
        }
        if word.is_empty() {
            break;
        }
        if digits_only {
            let digits = [b'#', b'0' + word.len().min(9) as u8];
            out.push(hash2(kind, &digits));
        } else if word.chars().count() >= MIN_WORD {
            out.push(hash2(kind, word.as_bytes()));
        } else {
            continue;
        }
        seen += 1;
    }
}

/// The host of every `http://`, `https://` and `www.` link in `text`
/// (and its last two labels), and the first segments of its path and
/// query (digits masked, long ones by position only).
fn urls(text: &str, out: &mut Vec<u64>) {
    let mut links = Links::default();
    let mut from = 0;
    while let Some(start) = links.next(text.as_bytes(), from) {
        let rest = &text[start..];
        let after = rest
            .strip_prefix("http://")
            .or_else(|| rest.strip_prefix("https://"))
            .unwrap_or(rest);
        let host_len = after
            .bytes()
            .take(253)
            .take_while(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'-')
            .count();
        let host = after[..host_len].to_ascii_lowercase();
        if !host.is_empty() {
            // The registrable part too: `a.b.example.com` → `example.com`.
            let labels: Vec<&str> = host.trim_end_matches('.').split('.').collect();
            if labels.len() > 2 {
                out.push(hash2(b'u', labels[labels.len() - 2..].join(".").as_bytes()));
            }
            out.push(hash2(b'u', host.as_bytes()));
            url_path(&after[host_len..], out);
        }
        from = start + rest.len().clamp(1, 4);
    }
}

/// Where the next `http` and the next `www.` are, each searched again
/// only once passed: searching both from every link would read the rest
/// of the text once per link when one of them does not occur.
#[derive(Default)]
struct Links {
    http: Option<Option<usize>>,
    www: Option<Option<usize>>,
}

impl Links {
    fn next(&mut self, bytes: &[u8], from: usize) -> Option<usize> {
        let http = Self::refresh(&mut self.http, bytes, from, b"http");
        let www = Self::refresh(&mut self.www, bytes, from, b"www.");
        match (http, www) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The cached position of `needle` at or after `from`.
    fn refresh(
        cached: &mut Option<Option<usize>>,
        bytes: &[u8],
        from: usize,
        needle: &[u8],
    ) -> Option<usize> {
        match *cached {
            Some(None) => None,
            Some(Some(at)) if at >= from => Some(at),
            _ => {
                let found = bytes
                    .get(from..)
                    .and_then(|rest| find(rest, needle))
                    .map(|i| from + i);
                *cached = Some(found);
                found
            }
        }
    }
}

/// At most this many path and query segments of a URL are features.
const MAX_PATH_SEGMENTS: usize = 6;

/// Segments longer than this (tracking ids) count by their position.
const MAX_SEGMENT: usize = 20;

/// The path and query of a URL, up to its end (`rest` follows the host).
fn url_path(rest: &str, out: &mut Vec<u64>) {
    // At most 200 bytes are read, so a long run of links without spaces
    // stays linear.
    let mut limit = rest.len().min(200);
    while !rest.is_char_boundary(limit) {
        limit -= 1;
    }
    let rest = &rest[..limit];
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')'))
        .unwrap_or(rest.len());
    let path = &rest[..end];
    let segments = path
        .split(['/', '?', '&', '=', '#'])
        .filter(|p| !p.is_empty());
    for (i, segment) in segments.take(MAX_PATH_SEGMENTS).enumerate() {
        if segment.len() > MAX_SEGMENT {
            out.push(hash2(b'p', &[b'#', b'0' + i.min(2) as u8]));
            continue;
        }
        let masked: Vec<u8> = segment
            .bytes()
            .map(|c| {
                if c.is_ascii_digit() {
                    b'0'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect();
        out.push(hash2(b'p', &masked));
    }
    if path.contains('?') {
        out.push(hash2(b'p', b"?"));
    }
    if path.contains(['@', '%']) {
        out.push(hash2(b'p', b"@%"));
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// FNV-1a over a kind byte and the text: stable across versions and
/// hosts, since the learned state is kept by these hashes.
fn hash2(kind: u8, text: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in std::iter::once(&kind).chain(text) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_stdlib::Limits;

    fn msg(text: &str) -> Message {
        Message::parse(text.as_bytes(), &Limits::default()).expect("a message")
    }

    #[test]
    fn words_and_hosts_are_features() {
        let a = features(&msg(
            "Subject: Cheap pills\r\n\r\nBuy cheap pills at http://pills.example.com/x now\r\n",
        ));
        let b = features(&msg(
            "Subject: Cheap pills\r\n\r\nBuy cheap pills at http://pills.example.com/x now\r\n",
        ));
        assert_eq!(a, b, "features are deterministic");
        let c = features(&msg(
            "Subject: Meeting notes\r\n\r\nThe notes from today's meeting\r\n",
        ));
        let shared: Vec<_> = a.iter().filter(|f| c.contains(f)).collect();
        // Only what every message without those headers has in common:
        // no sender, no recipients, no Message-ID.
        assert!(shared.len() <= 4, "{shared:?}");
        assert!(a.len() > 10);
        let words_only = features(&msg("Subject: x\r\n\r\npills cheap buy\r\n"));
        assert!(words_only.len() < a.len());
    }

    #[test]
    fn numbers_count_by_their_length() {
        let a = features(&msg("\r\nonly 100 dollars\r\n"));
        let b = features(&msg("\r\nonly 250 dollars\r\n"));
        let c = features(&msg("\r\nonly 2500 dollars\r\n"));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn url_paths_are_features_with_digits_masked() {
        let a = features(&msg("\r\nsee http://example.com/remove.cgi?id=123\r\n"));
        let b = features(&msg("\r\nsee http://example.com/remove.cgi?id=456\r\n"));
        let c = features(&msg("\r\nsee http://example.com/\r\n"));
        assert_eq!(a, b);
        assert!(a.len() > c.len());
    }

    #[test]
    fn a_long_run_of_links_without_spaces_stays_linear() {
        // 10,000 links in one 180 kB word: reading the rest of the word
        // once per link would take minutes; linear, milliseconds.
        let body = "http://a.example/x".repeat(10_000);
        let m = msg(&format!("\r\n{body}\r\n"));
        let started = std::time::Instant::now();
        let f = features(&m);
        assert!(!f.is_empty());
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn received_lines_and_dates_are_not_features() {
        let a = features(&msg(
            "From: a@example.com\r\nDate: Mon, 1 Jul 2002 10:00:00 +0000\r\nSubject: hello\r\n\r\nhello there\r\n",
        ));
        let b = features(&msg(
            "Received: from relay.example.net ([192.0.2.7]) by mx.example.org\r\nFrom: a@example.com\r\nDate: Tue, 2 Jul 2002 11:00:00 +0000\r\nSubject: hello\r\n\r\nhello there\r\n",
        ));
        assert_eq!(a, b);
    }
}
