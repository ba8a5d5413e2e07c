//! Byte decoders shared by headers and bodies: base64, RFC 2047 `Q`, and
//! charset conversion to UTF-8 (through mail-parser's charset tables).

use mail_parser::decoders::charsets::map::charset_decoder;

/// Converts `bytes` in `charset` to UTF-8. An unknown charset is read as
/// UTF-8; invalid bytes become U+FFFD.
pub(crate) fn decode(charset: &str, bytes: &[u8]) -> String {
    let charset = charset.trim().trim_matches('"');
    let is_utf8 = charset.is_empty()
        || charset.eq_ignore_ascii_case("utf-8")
        || charset.eq_ignore_ascii_case("utf8");
    match (is_utf8, charset_decoder(charset.as_bytes())) {
        (false, Some(decoder)) => decoder(bytes),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The value of one base64 digit, if `b` is one.
fn base64_digit(b: u8) -> Option<u32> {
    Some(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    } as u32)
}

/// Decodes base64 leniently: characters outside the alphabet (line breaks,
/// stray bytes) are skipped, decoding stops at `=`, a trailing partial
/// group yields the whole bytes it holds.
pub(crate) fn base64_decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in text {
        if b == b'=' {
            break;
        }
        let Some(digit) = base64_digit(b) else {
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

/// Decodes a quoted-printable body: soft line breaks (`=` at the end of a
/// line) vanish, `=XX` is a byte, a malformed escape is kept as written.
pub(crate) fn quoted_printable_decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while let Some(&b) = text.get(i) {
        if b == b'=' {
            if let (Some(h), Some(l)) = (
                text.get(i + 1).and_then(|&h| hex(h)),
                text.get(i + 2).and_then(|&l| hex(l)),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
            // A soft line break: `=`, optional blanks, then CRLF or LF.
            let mut j = i + 1;
            while let Some(b' ' | b'\t') = text.get(j) {
                j += 1;
            }
            match (text.get(j), text.get(j + 1)) {
                (Some(b'\r'), Some(b'\n')) => {
                    i = j + 2;
                    continue;
                }
                (Some(b'\n'), _) => {
                    i = j + 1;
                    continue;
                }
                (None, _) => break,
                _ => {}
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_lenient() {
        assert_eq!(base64_decode(b"aGVs\r\nbG8="), b"hello");
        assert_eq!(base64_decode(b"aGVsbG8"), b"hello");
    }

    #[test]
    fn quoted_printable() {
        assert_eq!(
            quoted_printable_decode(b"caf=C3=A9 =\r\nau lait=3D"),
            "café au lait=".as_bytes()
        );
        assert_eq!(q_decode(b"a_b=3f=zz"), b"a b?=zz");
    }

    #[test]
    fn charsets() {
        assert_eq!(decode("ISO-8859-1", &[0x63, 0x61, 0x66, 0xe9]), "café");
        assert_eq!(decode("unknown-x", b"ok\xff"), "ok\u{fffd}");
    }
}
