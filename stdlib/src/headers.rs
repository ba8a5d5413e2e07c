//! The top-level header block: where it ends, its fields as written, and
//! RFC 2047 decoding of their values.
//!
//! Weir reads the header block itself rather than through mail-parser's
//! structured header values, because `header("Name")` must be the field as
//! written (unfolded, decoded, trimmed), never a re-rendering.
//!
//! The rule for "is there a header block at all" (docs/language.md ("The message model"), "any bytes
//! are a message"):
//! - A first line of the form `From ...` (an mbox envelope line, no colon
//!   right after the word) is skipped when the next line is a header field.
//! - The message has headers only if its first line is a syntactically
//!   valid header field: a name of printable ASCII other than `:` (at least
//!   one byte), optional spaces or tabs, then `:`. Otherwise there is no
//!   header block and every byte is body.
//! - The block then runs over field lines and their continuation lines
//!   (lines starting with a space or tab). It ends at the first empty line
//!   (which belongs to neither part), at the end of input, or at the first
//!   line that is neither a field nor a continuation: that line is the first
//!   line of the body (the blank separator is missing).
//! - A message whose first line is empty has an empty header block: the
//!   body is what follows that line.

use std::borrow::Cow;

use crate::charset;

/// One header field of the top-level block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderField {
    /// The field name as written (without the colon and trailing blanks).
    pub(crate) name: String,
    /// The value: unfolded, trimmed, not decoded (invalid UTF-8 replaced).
    pub(crate) raw: String,
    /// The value, RFC 2047-decoded.
    pub(crate) decoded: String,
    /// The whole field in the message's bytes: name, value, continuation
    /// lines and the line end.
    pub(crate) span: std::ops::Range<usize>,
}

/// The result of scanning the header block.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeaderBlock {
    /// The fields in order.
    pub(crate) fields: Vec<HeaderField>,
    /// Where the header block starts (after a skipped mbox `From ` line).
    pub(crate) start: usize,
    /// Where the header lines end (before the blank separator line, if any).
    pub(crate) end: usize,
    /// Where the body starts.
    pub(crate) body_start: usize,
    /// Whether the block ended at a blank line (false: at end of input or at
    /// a line that is not a header field).
    pub(crate) has_separator: bool,
}

/// Splits `bytes` at `pos` into the line starting there (without its line
/// ending) and the offset of the next line.
fn line_at(bytes: &[u8], pos: usize) -> (&[u8], usize) {
    let rest = bytes.get(pos..).unwrap_or_default();
    match memchr::memchr(b'\n', rest) {
        Some(nl) => {
            let line = &rest[..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (line, pos + nl + 1)
        }
        None => (rest, bytes.len()),
    }
}

/// The length of the field name of `line` and the offset just after its
/// colon, if `line` is a syntactically valid header field.
fn field_name(line: &[u8]) -> Option<(usize, usize)> {
    let name_len = line
        .iter()
        .position(|&b| !(33..=126).contains(&b) || b == b':')?;
    if name_len == 0 {
        return None;
    }
    let mut pos = name_len;
    while let Some(b' ' | b'\t') = line.get(pos) {
        pos += 1;
    }
    (line.get(pos) == Some(&b':')).then_some((name_len, pos + 1))
}

/// Scans the header block of `bytes`, stopping after `max_fields + 1`
/// fields (the caller refuses the message then; no need to read further).
pub(crate) fn scan(bytes: &[u8], max_fields: usize) -> HeaderBlock {
    let mut start = 0;
    let (first, after_first) = line_at(bytes, 0);
    if first.starts_with(b"From ") && field_name(first).is_none() {
        let (second, _) = line_at(bytes, after_first);
        if field_name(second).is_some() {
            start = after_first;
        }
    }
    let (first, after_first) = line_at(bytes, start);
    if first.is_empty() && after_first > start {
        // An empty first line: an empty header block, then the body.
        return HeaderBlock {
            fields: Vec::new(),
            start,
            end: start,
            body_start: after_first,
            has_separator: true,
        };
    }
    if field_name(first).is_none() {
        return HeaderBlock::default();
    }

    let mut fields = Vec::new();
    let mut pos = start;
    let mut block = HeaderBlock {
        start,
        ..HeaderBlock::default()
    };
    // The field being read: its name, the bytes of its value lines (the
    // first line's borrowed, copied only when a continuation line follows)
    // and its span so far.
    let mut current: Option<(String, Cow<'_, [u8]>, std::ops::Range<usize>)> = None;
    loop {
        if pos >= bytes.len() {
            block.end = bytes.len();
            block.body_start = bytes.len();
            break;
        }
        let (line, next) = line_at(bytes, pos);
        if line.is_empty() {
            block.end = pos;
            block.body_start = next;
            block.has_separator = true;
            break;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if let Some((_, value, span)) = current.as_mut() {
                // Unfolding: the line break goes, the whitespace stays.
                value.to_mut().extend_from_slice(line);
                span.end = next;
            }
            pos = next;
            continue;
        }
        let Some((name_len, value_at)) = field_name(line) else {
            block.end = pos;
            block.body_start = pos;
            break;
        };
        if let Some(done) = current.take() {
            fields.push(finish(done));
        }
        if fields.len() > max_fields {
            block.end = pos;
            block.body_start = pos;
            break;
        }
        let name = String::from_utf8_lossy(&line[..name_len]).into_owned();
        current = Some((name, Cow::Borrowed(&line[value_at..]), pos..next));
        pos = next;
    }
    if let Some(done) = current.take() {
        fields.push(finish(done));
    }
    block.fields = fields;
    block
}

fn finish((name, value, span): (String, Cow<'_, [u8]>, std::ops::Range<usize>)) -> HeaderField {
    let raw = String::from_utf8_lossy(&value).trim().to_string();
    let decoded = decode_rfc2047(&raw).trim().to_string();
    HeaderField {
        name,
        raw,
        decoded,
        span,
    }
}

/// Where the top-level header fields of a message are, byte for byte, by
/// the same rules the message model reads them with (this module's
/// docs). For code that edits a message as bytes (the daemon's delivered
/// copy, its auto-reply checks): it sees exactly the fields rules saw.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderLayout {
    /// Where the header block starts: after a skipped mbox `From ` line,
    /// else 0.
    pub start: usize,
    /// Each field: its name as written (without the colon and any blanks
    /// before it) and the byte range of the whole field, continuation
    /// lines and line end included. The ranges follow one another from
    /// `start` to `end`.
    pub fields: Vec<(String, std::ops::Range<usize>)>,
    /// Where the header lines end.
    pub end: usize,
    /// Where the body starts (after the blank separator line, if any).
    pub body_start: usize,
    /// Whether a blank line ends the header block (false: the end of input
    /// or a line that is not a header field does).
    pub has_separator: bool,
}

/// The [`HeaderLayout`] of `bytes`. Linear in the size of the header
/// block; never fails.
pub fn header_layout(bytes: &[u8]) -> HeaderLayout {
    let block = scan(bytes, usize::MAX);
    HeaderLayout {
        start: block.start,
        fields: block.fields.into_iter().map(|f| (f.name, f.span)).collect(),
        end: block.end,
        body_start: block.body_start,
        has_separator: block.has_separator,
    }
}

/// The longest encoded word considered (RFC 2047 allows 75 bytes; some
/// mailers write longer ones). Bounding it keeps decoding linear.
const MAX_ENCODED_WORD: usize = 1024;

/// One parsed encoded word: `=?charset?E?text?=`.
struct EncodedWord {
    charset: String,
    bytes: Vec<u8>,
    len: usize,
}

/// Parses an encoded word at the start of `s` (which starts with `=?`).
fn encoded_word(s: &str) -> Option<EncodedWord> {
    let window = &s.as_bytes()[..s.len().min(MAX_ENCODED_WORD)];
    let rest = window.get(2..)?;
    let q1 = rest.iter().position(|&b| b == b'?')?;
    let charset = &rest[..q1];
    if charset.is_empty() || charset.iter().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    let encoding = *rest.get(q1 + 1)?;
    if rest.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let text_start = q1 + 3;
    // Encoded text never holds `?` (RFC 2047 §5), so it ends at the next
    // `?`, which must start `?=`. Every scan thus stops at the next `?`,
    // which keeps decoding linear however many `=?` a header holds.
    let text_len = rest.get(text_start..)?.iter().position(|&b| b == b'?')?;
    if rest.get(text_start + text_len + 1) != Some(&b'=') {
        return None;
    }
    let text = &rest[text_start..text_start + text_len];
    if text.iter().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    let bytes = match encoding {
        b'b' | b'B' => charset::base64_decode(text),
        b'q' | b'Q' => charset::q_decode(text),
        _ => return None,
    };
    // RFC 2231 adds a language: `utf-8*en`.
    let charset = charset.split(|&b| b == b'*').next().unwrap_or(charset);
    Some(EncodedWord {
        charset: String::from_utf8_lossy(charset).to_ascii_lowercase(),
        bytes,
        len: 2 + text_start + text_len + 2,
    })
}

/// Decodes the RFC 2047 encoded words of `s`. Whitespace between two
/// encoded words is dropped (RFC 2047 §6.2); adjacent words in one charset
/// are joined before decoding, so a character split across words survives.
/// Text that is not a well-formed encoded word is kept as written; text
/// without any (most header values) is returned as it is, not copied.
pub(crate) fn decode_rfc2047(s: &str) -> Cow<'_, str> {
    if !s.contains("=?") {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    // Decoded bytes not yet converted, with their charset.
    let mut pending: Option<(String, Vec<u8>)> = None;
    let mut rest = s;
    while !rest.is_empty() {
        if rest.starts_with("=?")
            && let Some(word) = encoded_word(rest)
        {
            match pending.as_mut() {
                // ISO-2022 words each end back in ASCII (RFC 1468), so
                // nothing is split across them; joined, the escape back to
                // ASCII followed at once by the next word's escape out of
                // it is an error to the WHATWG decoder (U+FFFD).
                Some((charset, bytes))
                    if *charset == word.charset && !charset.starts_with("iso-2022") =>
                {
                    bytes.extend_from_slice(&word.bytes)
                }
                _ => {
                    flush(&mut out, pending.take());
                    pending = Some((word.charset, word.bytes));
                }
            }
            rest = &rest[word.len..];
            // Whitespace up to another encoded word disappears.
            let blank = rest.len() - rest.trim_start_matches([' ', '\t', '\r', '\n']).len();
            let after = &rest[blank..];
            if blank > 0 && after.starts_with("=?") && encoded_word(after).is_some() {
                rest = after;
            }
            continue;
        }
        flush(&mut out, pending.take());
        // Copy literal text up to the next possible encoded word.
        let first = rest.chars().next().map_or(1, char::len_utf8);
        let next = rest[first..].find("=?").map_or(rest.len(), |i| i + first);
        out.push_str(&rest[..next]);
        rest = &rest[next..];
    }
    flush(&mut out, pending.take());
    Cow::Owned(out)
}

fn flush(out: &mut String, pending: Option<(String, Vec<u8>)>) {
    if let Some((charset, bytes)) = pending {
        out.push_str(&charset::decode(&charset, &bytes));
    }
}

/// Whether `name` is a header field name the MTA accepts (RFC 5322
/// `ftext`: printable ASCII without `:` or space). The milter and LMTP
/// drop edits of any other name, so `weir check` refuses such a literal.
pub fn valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_encoded_words() {
        assert_eq!(decode_rfc2047("=?utf-8?q?caf=C3=A9?= ok"), "café ok");
        assert_eq!(decode_rfc2047("=?UTF-8?B?Y2Fmw6k=?="), "café");
        assert_eq!(decode_rfc2047("=?utf-8?q?a?= =?utf-8?q?b?="), "ab");
        assert_eq!(decode_rfc2047("=?iso-8859-1?q?d=E9j=E0?="), "déjà");
        assert_eq!(decode_rfc2047("a =?bogus"), "a =?bogus");
        assert_eq!(decode_rfc2047("x =?utf-8?q?a_b?= y"), "x a b y");
        // A UTF-8 character split across two words.
        assert_eq!(decode_rfc2047("=?utf-8?q?=C3?= =?utf-8?q?=A9?="), "é");
        // Two ISO-2022-JP words, each back in ASCII at its end: ス, パ.
        assert_eq!(
            decode_rfc2047("=?iso-2022-jp?B?GyRCJTkbKEI=?=\r\n\t=?iso-2022-jp?B?GyRCJVEbKEI=?="),
            "スパ"
        );
    }

    #[test]
    fn scans_folded_fields() {
        let block = scan(b"Subject: a\r\n  b\r\nTo: x\r\n\r\nbody", 100);
        assert_eq!(block.fields.len(), 2);
        assert_eq!(block.fields[0].raw, "a  b");
        assert_eq!(
            &b"Subject: a\r\n  b\r\nTo: x\r\n\r\nbody"[block.body_start..],
            b"body"
        );
    }

    #[test]
    fn no_header_block() {
        let block = scan(b"hello world\nSubject: x\n\nbody", 100);
        assert!(block.fields.is_empty());
        assert_eq!(block.body_start, 0);
        let block = scan(b"\nSubject: x\n", 100);
        assert!(block.fields.is_empty());
        assert_eq!(block.body_start, 1);
    }
}
