//! Byte decoders shared by headers and bodies: base64, RFC 2047 `Q`, and
//! charset conversion to UTF-8 (through mail-parser's charset tables).

use std::sync::OnceLock;

use mail_parser::decoders::charsets::DecoderFnc;
use mail_parser::decoders::charsets::map::charset_decoder;

/// Converts `bytes` in `charset` to UTF-8. An unknown charset is read as
/// UTF-8; invalid bytes become U+FFFD.
pub(crate) fn decode(charset: &str, bytes: &[u8]) -> String {
    let charset = charset.trim().trim_matches('"');
    let is_utf8 = charset.is_empty()
        || charset.eq_ignore_ascii_case("utf-8")
        || charset.eq_ignore_ascii_case("utf8");
    match (is_utf8, charset_decoder(charset.as_bytes())) {
        (false, Some(decoder)) => decode_with(decoder, bytes),
        _ => utf8_lossy(bytes).into_owned(),
    }
}

/// `bytes` as UTF-8, each invalid sequence replaced by U+FFFD: what
/// `String::from_utf8_lossy` gives, with the check for valid text first.
/// The standard library validates ASCII a word at a time, the lossy scan
/// a byte at a time (seven times slower on mostly-ASCII text), and most
/// text is valid.
pub(crate) fn utf8_lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// What `decoder` (one of mail-parser's charset decoders) makes of
/// `bytes`. A single-byte charset (`us-ascii` and `iso-8859-1` are
/// windows-1252, most mail's) is decoded through its table with its ASCII
/// runs copied whole: mail-parser pushes one `char` per byte, which was a
/// sixth of the time of reading real mail with a few rules.
pub(crate) fn decode_with(decoder: DecoderFnc, bytes: &[u8]) -> String {
    match single_byte_table(decoder) {
        Some(table) => decode_single_byte(table, bytes),
        None => decoder(bytes),
    }
}

/// Labels of mail-parser's single-byte decoders, one per decoder.
const SINGLE_BYTE_LABELS: [&str; 27] = [
    "windows-1250",
    "windows-1251",
    "windows-1252",
    "windows-1253",
    "windows-1254",
    "windows-1255",
    "windows-1256",
    "windows-1257",
    "windows-1258",
    "iso-8859-2",
    "iso-8859-3",
    "iso-8859-4",
    "iso-8859-5",
    "iso-8859-6",
    "iso-8859-7",
    "iso-8859-8",
    "iso-8859-9",
    "iso-8859-10",
    "iso-8859-13",
    "iso-8859-14",
    "iso-8859-15",
    "iso-8859-16",
    "koi8-r",
    "koi8-u",
    "macintosh",
    "ibm850",
    "tis-620",
];

/// A single-byte decoder's table, read from the decoder itself: each byte
/// alone gives one character, ASCII gives itself, and the 256 bytes in a
/// row give the 256 characters in a row (no state between bytes). A
/// decoder that is not of [`SINGLE_BYTE_LABELS`], or fails a check, has
/// none and decodes as it always does.
fn single_byte_table(decoder: DecoderFnc) -> Option<&'static [char; 256]> {
    static TABLES: OnceLock<Vec<(DecoderFnc, [char; 256])>> = OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        SINGLE_BYTE_LABELS
            .iter()
            .filter_map(|label| charset_decoder(label.as_bytes()))
            .filter_map(|decoder| Some((decoder, read_table(decoder)?)))
            .collect()
    });
    tables
        .iter()
        .find(|(known, _)| std::ptr::fn_addr_eq(*known, decoder))
        .map(|(_, table)| table)
}

/// The table of a decoder that passes [`single_byte_table`]'s checks.
fn read_table(decoder: DecoderFnc) -> Option<[char; 256]> {
    let mut table = ['\0'; 256];
    for (byte, slot) in (0..=255u8).zip(table.iter_mut()) {
        let decoded = decoder(&[byte]);
        let mut chars = decoded.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            return None;
        };
        if byte.is_ascii() && c != char::from(byte) {
            return None;
        }
        *slot = c;
    }
    let all: Vec<u8> = (0..=255u8).collect();
    (decoder(&all) == table.iter().collect::<String>()).then_some(table)
}

/// `bytes` through a single-byte `table` whose ASCII half is the identity.
fn decode_single_byte(table: &[char; 256], bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 8);
    let mut rest = bytes;
    while !rest.is_empty() {
        let ascii = rest
            .iter()
            .position(|b| !b.is_ascii())
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(ascii);
        out.push_str(std::str::from_utf8(run).unwrap_or_default());
        let high = tail.iter().position(|b| b.is_ascii()).unwrap_or(tail.len());
        out.extend(tail[..high].iter().map(|&b| table[usize::from(b)]));
        rest = &tail[high..];
    }
    out
}

/// The value of one base64 digit, if `b` is one (the URL-safe `-` and
/// `_` too, which some encoders write).
fn base64_digit(b: u8) -> Option<u32> {
    match b {
        b'-' => Some(62),
        b'_' => Some(63),
        _ => standard_base64_digit(b),
    }
}

/// The value of one digit of the standard base64 alphabet.
fn standard_base64_digit(b: u8) -> Option<u32> {
    Some(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// What a lenient decoder does at `=`.
#[derive(Clone, Copy)]
enum AtPad {
    /// Stop: the data ends there.
    Stop,
    /// Drop the group's partial bits and go on (concatenated encodings).
    NextGroup,
}

/// Decodes base64 skipping every byte `digit` does not know; `=` does what
/// `at_pad` says; a trailing partial group yields the whole bytes it holds.
fn lenient_base64(text: &[u8], at_pad: AtPad, digit: fn(u8) -> Option<u32>) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in text {
        if b == b'=' {
            match at_pad {
                AtPad::Stop => break,
                AtPad::NextGroup => {
                    (acc, bits) = (0, 0);
                    continue;
                }
            }
        }
        let Some(digit) = digit(b) else {
            continue;
        };
        acc = (acc << 6) | digit;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Decodes base64 leniently: characters outside the alphabet (line breaks,
/// stray bytes) are skipped, decoding stops at `=`, a trailing partial
/// group yields the whole bytes it holds.
pub(crate) fn base64_decode(text: &[u8]) -> Vec<u8> {
    lenient_base64(text, AtPad::Stop, base64_digit)
}

/// Whether a line (without its line break) is base64 data as encoders
/// write it: digits of the standard alphabet, then at most two `=`, with
/// blanks only around them (`==` alone is the end of data wrapped at an
/// odd width). A blank line is not data.
fn is_base64_line(line: &[u8]) -> bool {
    let line = line.trim_ascii();
    let digits = line
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        .count();
    let padding = &line[digits..];
    // A line of padding alone ends data split at an odd width.
    !line.is_empty() && padding.len() <= 2 && padding.iter().all(|&b| b == b'=')
}

/// Decodes the base64 data of a body part as mail readers do, and returns
/// it with the text that follows it.
///
/// Blank and whitespace-only lines are skipped wherever they are (some
/// mailers put one between a part's headers and its data), and so is any
/// character outside the alphabet; `=` padding ends a group, and data
/// after it is decoded too (some encoders pad every line). The data runs
/// to its last line of full width (the width of its first line) or with
/// padding, and the base64 lines right after that one. What follows (a
/// footer a mailing list appended, say) is returned undecoded, to be read
/// as text. A body whose first line is not base64 has no data.
pub(crate) fn base64_body_decode(body: &[u8]) -> (Vec<u8>, &[u8]) {
    // (start, end) of every line, line break included.
    let mut lines = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let end = body[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |i| pos + i + 1);
        lines.push((pos, end));
        pos = end;
    }
    let text = |&(start, end): &(usize, usize)| body[start..end].trim_ascii();
    let Some(first) = lines.iter().position(|l| !text(l).is_empty()) else {
        return (Vec::new(), body);
    };
    if !is_base64_line(text(&lines[first])) {
        return (Vec::new(), body);
    }
    let width = text(&lines[first]).len();
    let mut last = lines
        .iter()
        .rposition(|l| {
            let line = text(l);
            is_base64_line(line) && (line.len() == width || line.ends_with(b"="))
        })
        .unwrap_or(first);
    while lines.get(last + 1).is_some_and(|l| is_base64_line(text(l))) {
        last += 1;
    }
    let data_end = lines[last].1;
    (base64_decode_groups(&body[..data_end]), &body[data_end..])
}

/// Decodes base64 skipping every character outside the standard alphabet;
/// `=` ends a group (its partial bits are dropped) and decoding goes on.
fn base64_decode_groups(text: &[u8]) -> Vec<u8> {
    lenient_base64(text, AtPad::NextGroup, standard_base64_digit)
}

/// Decodes a uuencoded body (`Content-Transfer-Encoding: x-uuencode`):
/// the lines between `begin MODE NAME` and `end`, each starting with its
/// length. `None` when there is no `begin` line. A malformed line gives the
/// bytes it holds; decoding stops at `end` or at the end of the text.
pub(crate) fn uudecode(text: &[u8]) -> Option<Vec<u8>> {
    let mut lines = text
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    lines.find(|l| l.starts_with(b"begin "))?;
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for line in lines {
        if line.trim_ascii() == b"end" {
            break;
        }
        let Some((&count, data)) = line.split_first() else {
            continue;
        };
        let count = usize::from(count.wrapping_sub(b' ') & 0x3f);
        let values: Vec<u8> = data.iter().map(|&c| c.wrapping_sub(b' ') & 0x3f).collect();
        let mut bytes = Vec::with_capacity(count + 2);
        for group in values.chunks(4) {
            let v = |i: usize| u32::from(group.get(i).copied().unwrap_or(0));
            let word = (v(0) << 18) | (v(1) << 12) | (v(2) << 6) | v(3);
            bytes.extend_from_slice(&word.to_be_bytes()[1..]);
        }
        bytes.truncate(count);
        out.extend_from_slice(&bytes);
    }
    Some(out)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decodes RFC 2047 `Q` text: `_` is a space, `=XX` a byte; a malformed
/// escape is kept as written.
pub(crate) fn q_decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while let Some(&b) = text.get(i) {
        match b {
            b'_' => out.push(b' '),
            b'=' => match (
                text.get(i + 1).and_then(|&h| hex(h)),
                text.get(i + 2).and_then(|&l| hex(l)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'='),
            },
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

/// What an `=` of a quoted-printable body stands for ([`equals`]).
enum Equals {
    /// An escape, whose byte is written, or a soft line break: the body
    /// goes on at this index.
    Next(usize),
    /// Only blanks follow it: the body ends there.
    End,
    /// Neither (`==`, `=8` at a line end): the `=` is kept as written.
    Literal,
}

/// Reads the `=` at `text[at]`: `=XX` is a byte, written to `out`; `=`,
/// optional blanks, then CRLF or LF is a soft line break, which vanishes.
fn equals(text: &[u8], at: usize, out: &mut Vec<u8>) -> Equals {
    if let (Some(h), Some(l)) = (
        text.get(at + 1).and_then(|&h| hex(h)),
        text.get(at + 2).and_then(|&l| hex(l)),
    ) {
        out.push(h << 4 | l);
        return Equals::Next(at + 3);
    }
    let mut j = at + 1;
    while let Some(b' ' | b'\t') = text.get(j) {
        j += 1;
    }
    match (text.get(j), text.get(j + 1)) {
        (Some(b'\r'), Some(b'\n')) => Equals::Next(j + 2),
        (Some(b'\n'), _) => Equals::Next(j + 1),
        (None, _) => Equals::End,
        _ => Equals::Literal,
    }
}

/// Decodes a quoted-printable body as RFC 2045 §6.7 asks of a robust
/// decoder: soft line breaks (`=` at the end of a line) vanish, `=XX` is a
/// byte, a malformed escape (`==`, `=8` at a line end) is kept as written,
/// blanks at the end of a line (transport padding) are dropped, and a lone
/// CR is kept (HTML reads it as a space).
pub(crate) fn quoted_printable_decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    // Blanks written as such at the end of `out`, since the last escape.
    let mut padding = 0;
    let mut i = 0;
    while i < text.len() {
        // Bytes that are neither `=` nor a line end are copied as a run.
        let run = memchr::memchr3(b'=', b'\n', b'\r', &text[i..]).unwrap_or(text.len() - i);
        if run > 0 {
            let bytes = &text[i..i + run];
            out.extend_from_slice(bytes);
            // Every byte that ends a run sets `padding` to 0: the run's
            // own trailing blanks are all there is.
            padding = bytes
                .iter()
                .rev()
                .take_while(|b| matches!(b, b' ' | b'\t'))
                .count();
            i += run;
            continue;
        }
        // An `=`, a line end or a lone CR.
        match quoted_printable_byte(text, i, &mut out, &mut padding) {
            Some(next) => i = next,
            None => break,
        }
    }
    out.truncate(out.len() - padding);
    out
}

/// Reads one byte of a quoted-printable body, `text[at]`, as the
/// definition does, and says where the body goes on (`None`: it ended).
/// An `=` is read by [`equals`]; any other byte is written as it is, a
/// line end first dropping the blanks before it. `padding` counts the
/// blanks written as such at the end of `out` since the last escape.
fn quoted_printable_byte(
    text: &[u8],
    at: usize,
    out: &mut Vec<u8>,
    padding: &mut usize,
) -> Option<usize> {
    let b = text[at];
    if b == b'=' {
        match equals(text, at, out) {
            Equals::Next(next) => {
                *padding = 0;
                return Some(next);
            }
            Equals::End => return None,
            Equals::Literal => {}
        }
    }
    if b == b'\n' || (b == b'\r' && text.get(at + 1) == Some(&b'\n')) {
        out.truncate(out.len() - *padding);
    }
    *padding = if matches!(b, b' ' | b'\t') {
        *padding + 1
    } else {
        0
    };
    out.push(b);
    Some(at + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one byte at a time (each read as the decoder reads
    /// a byte outside its runs): the oracle for the decoder's runs.
    fn byte_at_a_time(text: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len());
        let mut padding = 0;
        let mut i = 0;
        while i < text.len() {
            match quoted_printable_byte(text, i, &mut out, &mut padding) {
                Some(next) => i = next,
                None => break,
            }
        }
        out.truncate(out.len() - padding);
        out
    }

    proptest::proptest! {
        #[test]
        fn quoted_printable_runs_decode_as_byte_at_a_time(
            text in proptest::collection::vec(
                proptest::sample::select(b"ab =\t\r\n3D0gG".to_vec()), 0..64)
        ) {
            proptest::prop_assert_eq!(quoted_printable_decode(&text), byte_at_a_time(&text));
        }
    }

    proptest::proptest! {
        #[test]
        fn single_byte_tables_decode_as_their_decoder(
            label in proptest::sample::select(SINGLE_BYTE_LABELS.to_vec()),
            bytes in proptest::collection::vec(
                proptest::prop_oneof![proptest::num::u8::ANY, 0x20..0x7fu8], 0..64)
        ) {
            let decoder = charset_decoder(label.as_bytes()).expect("a known label");
            proptest::prop_assert_eq!(decode_with(decoder, &bytes), decoder(&bytes));
        }
    }

    #[test]
    fn every_single_byte_label_has_a_table() {
        for label in SINGLE_BYTE_LABELS {
            let decoder = charset_decoder(label.as_bytes()).expect(label);
            assert!(single_byte_table(decoder).is_some(), "{label}");
        }
        for label in ["utf-16", "shift_jis", "iso-2022-jp", "utf-7", "gbk"] {
            let decoder = charset_decoder(label.as_bytes()).expect(label);
            assert!(single_byte_table(decoder).is_none(), "{label}");
        }
    }

    #[test]
    fn base64_is_lenient() {
        assert_eq!(base64_decode(b"aGVs\r\nbG8="), b"hello");
        assert_eq!(base64_decode(b"aGVsbG8"), b"hello");
    }

    #[test]
    fn base64_body_skips_blank_lines_and_stops_at_text() {
        let (data, rest) = base64_body_decode(b"\n  \n\taGVs\r\n\r\nbG8=\n\n--\nA footer\n");
        assert_eq!(data, b"hello");
        assert_eq!(rest, b"\n--\nA footer\n");
        // Every line padded: each group is decoded.
        let (data, rest) = base64_body_decode(b"aGk=\nYQ==\n");
        assert_eq!(data, b"hia");
        assert_eq!(rest, b"");
        // A stray line inside the data is skipped, as mail readers do;
        // the short last line belongs to the data.
        let (data, rest) = base64_body_decode(b"aGVsbG8g\n*** ### ***\nd29ybGQh\nIQ\nThanks.\n");
        assert_eq!(data, b"hello world!!");
        assert_eq!(rest, b"Thanks.\n");
        // Wrapped at an odd width, the padding alone on the last line.
        let (data, rest) = base64_body_decode(b"aGVsbG8\n=\n");
        assert_eq!((data.as_slice(), rest), (&b"hello"[..], &b""[..]));
        // Not base64 from the first line: no data.
        let (data, rest) = base64_body_decode(b"Hello there\naGVs\n");
        assert_eq!(data, b"");
        assert_eq!(rest, b"Hello there\naGVs\n");
    }

    #[test]
    fn uuencoded() {
        let text = b"junk\nbegin 644 a.txt\r\n%:&5L;&\\`\r\n`\r\nend\r\n";
        assert_eq!(uudecode(text).as_deref(), Some(&b"hello"[..]));
        assert_eq!(uudecode(b"no begin line\n"), None);
    }

    #[test]
    fn quoted_printable() {
        assert_eq!(
            quoted_printable_decode(b"caf=C3=A9 =\r\nau lait=3D"),
            "café au lait=".as_bytes()
        );
        assert_eq!(q_decode(b"a_b=3f=zz"), b"a b?=zz");
        assert_eq!(
            quoted_printable_decode(b"a==b =8\nby\rstate  \r\nend=20 \t"),
            b"a==b =8\nby\rstate\r\nend "
        );
    }

    #[test]
    fn charsets() {
        assert_eq!(decode("ISO-8859-1", &[0x63, 0x61, 0x66, 0xe9]), "café");
        assert_eq!(decode("unknown-x", b"ok\xff"), "ok\u{fffd}");
    }
}
