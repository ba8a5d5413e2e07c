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
use std::ops::Range;
use std::sync::OnceLock;

use crate::charset;

/// One header field of the top-level block, as positions in the message's
/// bytes. Its value is unfolded and decoded lazily, on first read, and kept
/// for the next: rules read a few of a message's fields, some of them many
/// times. The accessors take the bytes the block was scanned from.
#[derive(Debug, Clone)]
pub(crate) struct HeaderField {
    /// The whole field in the message's bytes: name, value, continuation
    /// lines and the line end. The name starts it.
    pub(crate) span: Range<usize>,
    /// Where the name ends (before the colon and any blanks before it).
    name_end: usize,
    /// Where the value starts: just after the colon.
    value_start: usize,
    /// The value: unfolded, trimmed, not decoded (invalid UTF-8 replaced).
    raw: OnceLock<Box<str>>,
    /// The value, RFC 2047-decoded and trimmed; `None` when that is the
    /// raw value itself (most values hold no encoded word).
    decoded: OnceLock<Option<Box<str>>>,
}

impl HeaderField {
    /// The name as written. Names are printable ASCII ([`field_name`]), so
    /// the bytes are always UTF-8.
    pub(crate) fn name<'a>(&self, message: &'a [u8]) -> &'a str {
        let bytes = message.get(self.span.start..self.name_end);
        std::str::from_utf8(bytes.unwrap_or_default()).unwrap_or_default()
    }

    /// Whether the name is `name`, ignoring ASCII case.
    pub(crate) fn name_is(&self, message: &[u8], name: &str) -> bool {
        message
            .get(self.span.start..self.name_end)
            .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// The value: unfolded (the line breaks go, the whitespace stays),
    /// invalid UTF-8 replaced, trimmed; not decoded.
    pub(crate) fn raw<'a>(&'a self, message: &[u8]) -> &'a str {
        self.raw.get_or_init(|| {
            let value = message
                .get(self.value_start..self.span.end)
                .unwrap_or_default();
            Box::from(charset::utf8_lossy(&unfold(value)).trim())
        })
    }

    /// The value, RFC 2047-decoded, then trimmed.
    pub(crate) fn decoded<'a>(&'a self, message: &[u8]) -> &'a str {
        let raw = self.raw(message);
        let decoded = self.decoded.get_or_init(|| {
            let decoded = decode_rfc2047(raw);
            let decoded = decoded.trim();
            (decoded != raw).then(|| Box::from(decoded))
        });
        decoded.as_deref().unwrap_or(raw)
    }
}

/// The value lines of a field (the first line's value, then its
/// continuation lines) without their line breaks, LF or CRLF, as
/// [`line_at`] splits them. A value on one line is not copied.
fn unfold(value: &[u8]) -> Cow<'_, [u8]> {
    fn strip(line: &[u8]) -> &[u8] {
        line.strip_suffix(b"\r").unwrap_or(line)
    }
    let Some(first) = memchr::memchr(b'\n', value) else {
        // The last line of the input, without a line break.
        return Cow::Borrowed(value);
    };
    if first + 1 == value.len() {
        return Cow::Borrowed(strip(&value[..first]));
    }
    let mut out = Vec::with_capacity(value.len());
    let mut rest = value;
    while let Some(nl) = memchr::memchr(b'\n', rest) {
        out.extend_from_slice(strip(&rest[..nl]));
        rest = &rest[nl + 1..];
    }
    // A last line without a line break keeps its bytes, as in `line_at`.
    out.extend_from_slice(rest);
    Cow::Owned(out)
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
    // The field being read; its span grows with its continuation lines.
    let mut current: Option<HeaderField> = None;
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
            if let Some(field) = current.as_mut() {
                field.span.end = next;
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
            fields.push(done);
        }
        if fields.len() > max_fields {
            block.end = pos;
            block.body_start = pos;
            break;
        }
        current = Some(HeaderField {
            span: pos..next,
            name_end: pos + name_len,
            value_start: pos + value_at,
            raw: OnceLock::new(),
            decoded: OnceLock::new(),
        });
        pos = next;
    }
    if let Some(done) = current.take() {
        fields.push(done);
    }
    block.fields = fields;
    block
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
        fields: block
            .fields
            .into_iter()
            .map(|f| (f.name(bytes).to_string(), f.span))
            .collect(),
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
        assert_eq!(
            block.fields[0].raw(b"Subject: a\r\n  b\r\nTo: x\r\n\r\nbody"),
            "a  b"
        );
        assert_eq!(
            &b"Subject: a\r\n  b\r\nTo: x\r\n\r\nbody"[block.body_start..],
            b"body"
        );
    }

    /// A field's name and values by their definition, read at once from
    /// its span: the lines as `line_at` splits them, the first line's value
    /// after the colon, then its continuation lines, joined without their
    /// line breaks; raw = that, invalid UTF-8 replaced, trimmed; decoded =
    /// raw RFC 2047-decoded, trimmed.
    fn eager(bytes: &[u8], span: &Range<usize>) -> (String, String, String) {
        let (first, mut pos) = line_at(bytes, span.start);
        let (name_len, value_at) = field_name(first).expect("a field starts its span");
        let mut value = first[value_at..].to_vec();
        while pos < span.end {
            let (line, next) = line_at(bytes, pos);
            assert!(matches!(line.first(), Some(b' ' | b'\t')));
            value.extend_from_slice(line);
            pos = next;
        }
        assert_eq!(pos, span.end);
        let name = String::from_utf8_lossy(&first[..name_len]).into_owned();
        let raw = String::from_utf8_lossy(&value).trim().to_string();
        let decoded = decode_rfc2047(&raw).trim().to_string();
        (name, raw, decoded)
    }

    /// Pieces of header blocks: field starts, blanks, every kind of line
    /// break, continuation lines, encoded words (well-formed or not),
    /// UTF-8 and invalid UTF-8.
    const PIECES: &[&[u8]] = &[
        b"Subject:",
        b"content-Type :",
        b"X-A:",
        b"From ",
        b":",
        b" ",
        b"\t",
        b"\r\n",
        b"\n",
        b"\r",
        b"\r\n ",
        b"\n\t",
        b"\r\r\n\t",
        b"\r\nTo:",
        b"\nX-A:",
        b"\r\n\r\nbody",
        b"a",
        b"b c",
        "é".as_bytes(),
        b"\xff",
        b"\xc3",
        b"=?utf-8?q?caf=C3=A9?=",
        b"=?UTF-8?B?Y2Fmw6k=?=",
        b"=?iso-8859-1?q?d=E9j=E0?=",
        b"=?utf-8?q?=C3?=",
        b"=?utf-8?q?a_b?= ",
        b"=?",
        b"?=",
    ];

    fn header_block() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let start = proptest::sample::select(vec![
            &b"Subject:"[..],
            b"X-A :",
            b"From me\nTo:",
            b"From me\r\n",
            b"\n",
            b"",
        ]);
        let piece = prop_oneof![
            4 => proptest::sample::select(PIECES).prop_map(<[u8]>::to_vec),
            1 => any::<u8>().prop_map(|b| vec![b]),
        ];
        (start, proptest::collection::vec(piece, 0..48))
            .prop_map(|(start, pieces)| [vec![start.to_vec()], pieces].concat().concat())
    }

    proptest::proptest! {
        #[test]
        fn lazy_values_are_the_eager_definition(bytes in header_block()) {
            // Read decoded first (it reads raw) in one scan, raw first in
            // the other; each value twice, the second from the cache.
            let decoded_first = scan(&bytes, usize::MAX);
            let raw_first = scan(&bytes, usize::MAX);
            let mut at = decoded_first.start;
            for (a, b) in decoded_first.fields.iter().zip(&raw_first.fields) {
                proptest::prop_assert_eq!(a.span.start, at);
                at = a.span.end;
                let (name, raw, decoded) = eager(&bytes, &a.span);
                proptest::prop_assert_eq!(a.name(&bytes), &name);
                proptest::prop_assert!(a.name_is(&bytes, &name.to_ascii_uppercase()));
                proptest::prop_assert!(a.name_is(&bytes, &name.to_ascii_lowercase()));
                let longer = name.clone() + "x";
                proptest::prop_assert!(!a.name_is(&bytes, &longer));
                for _ in 0..2 {
                    proptest::prop_assert_eq!(a.decoded(&bytes), &decoded);
                    proptest::prop_assert_eq!(a.raw(&bytes), &raw);
                    proptest::prop_assert_eq!(b.raw(&bytes), &raw);
                    proptest::prop_assert_eq!(b.decoded(&bytes), &decoded);
                }
            }
            proptest::prop_assert_eq!(at, decoded_first.end);
            let layout = header_layout(&bytes);
            let names = decoded_first.fields.iter().map(|f| eager(&bytes, &f.span).0);
            let layout_names = layout.fields.iter().map(|(n, _)| n.clone());
            proptest::prop_assert!(layout_names.eq(names));
        }
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
