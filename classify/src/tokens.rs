//! The features of a message: words of the decoded subject and body text,
//! orthogonal sparse bigrams of neighbouring words (rspamd's OSB: each
//! word paired with each of the next four, with their distance), selected
//! headers, the hosts of URLs and the attachments' types, each hashed to
//! 64 bits. One pass over each text, so time is linear in the message.

use weir_stdlib::Message;

/// How many words after a word make a bigram with it (OSB's window, less one).
const WINDOW: usize = 4;

/// Words longer than this are cut (base64 blobs, long URLs): their
/// prefix still says something, and the hash stays cheap.
const MAX_WORD: usize = 40;

/// At most this many words of the body are read: the start of a message
/// says what it is, and a bound keeps a huge message cheap.
const MAX_BODY_WORDS: usize = 20_000;

/// Headers that say nothing about a message's class (unique per message)
/// or that the subject and addresses cover already.
const SKIPPED_HEADERS: &[&str] = &["date", "message-id", "subject", "content-length", "lines"];

/// At most this many words of one header are features.
const MAX_HEADER_WORDS: usize = 30;

/// The distinct features of a message, sorted.
pub fn features(message: &Message) -> Vec<u64> {
    let mut out = Vec::with_capacity(1024);
    words(&message.subject(), b's', usize::MAX, &mut out);
    words(message.body_text(), b'b', MAX_BODY_WORDS, &mut out);
    for a in message.from().iter().chain(message.reply_to().iter()) {
        out.push(hash2(b'f', a.domain.to_ascii_lowercase().as_bytes()));
        out.push(hash2(b'n', a.name.to_lowercase().as_bytes()));
    }
    for (name, value) in message.headers() {
        header(&name, &value, &mut out);
    }
    url_hosts(message.body_text(), &mut out);
    url_hosts(message.body_html(), &mut out);
    for a in message.attachments() {
        out.push(hash2(b'a', a.content_type.as_bytes()));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// A header's name, and the words of its value each marked with the
/// name (as SpamAssassin's Bayes does: mailers, lists, relays and
/// content types say much about where mail comes from).
fn header(name: &str, value: &str, out: &mut Vec<u64>) {
    let lower = name.to_ascii_lowercase();
    if SKIPPED_HEADERS.contains(&lower.as_str()) {
        return;
    }
    out.push(hash2(b'H', lower.as_bytes()));
    let mut key = lower.into_bytes();
    key.push(b':');
    let prefix = key.len();
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

/// The words of `text` (letters and digits, lower-cased; words of one
/// character and pure numbers skipped) and their sparse bigrams.
fn words(text: &str, kind: u8, max: usize, out: &mut Vec<u64>) {
    let mut ring = [0u64; WINDOW];
    let mut seen = 0usize;
    let mut word = String::with_capacity(MAX_WORD);
    let mut chars = text.chars().peekable();
    while seen < max {
        word.clear();
        let mut digits_only = true;
        while let Some(&c) = chars.peek() {
            chars.next();
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
        if word.chars().count() < 2 || digits_only {
            continue;
        }
        let h = hash2(kind, word.as_bytes());
        out.push(h);
        // Pairs with the previous words, each distance its own feature.
        for distance in 1..=WINDOW.min(seen) {
            let previous = ring[(seen - distance) % WINDOW];
            out.push(mix(previous, h, distance as u64));
        }
        ring[seen % WINDOW] = h;
        seen += 1;
    }
}

/// The host of every `http://`, `https://` and `www.` link in `text`.
fn url_hosts(text: &str, out: &mut Vec<u64>) {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = find_link(&bytes[from..]) {
        let start = from + i;
        let rest = &text[start..];
        let after = rest
            .strip_prefix("http://")
            .or_else(|| rest.strip_prefix("https://"))
            .unwrap_or(rest);
        let host: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
            .take(253)
            .collect::<String>()
            .to_ascii_lowercase();
        if !host.is_empty() {
            // The registrable part too: `a.b.example.com` → `example.com`.
            let labels: Vec<&str> = host.trim_end_matches('.').split('.').collect();
            if labels.len() > 2 {
                out.push(hash2(b'u', labels[labels.len() - 2..].join(".").as_bytes()));
            }
            out.push(hash2(b'u', host.as_bytes()));
        }
        from = start + rest.len().clamp(1, 4);
    }
}

fn find_link(bytes: &[u8]) -> Option<usize> {
    let http = find(bytes, b"http");
    let www = find(bytes, b"www.");
    match (http, www) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
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

/// Combines two word hashes and their distance into the bigram's feature.
fn mix(a: u64, b: u64, distance: u64) -> u64 {
    let mut h = a.rotate_left(17) ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ distance;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
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
    fn words_bigrams_and_hosts_are_features() {
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
        assert!(a.iter().all(|f| !c.contains(f)), "no feature shared");
        assert!(a.len() > 10);
        let words_only = features(&msg("Subject: x\r\n\r\npills cheap buy\r\n"));
        assert!(words_only.len() < a.len());
    }

    #[test]
    fn word_order_makes_different_bigrams() {
        let a = features(&msg("\r\nalpha beta gamma\r\n"));
        let b = features(&msg("\r\ngamma beta alpha\r\n"));
        assert_ne!(a, b);
        let shared = a.iter().filter(|f| b.contains(f)).count();
        assert_eq!(shared, 3, "the three words, none of the bigrams");
    }
}
