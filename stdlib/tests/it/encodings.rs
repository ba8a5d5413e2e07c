//! No evasion by encoding: a plain text, re-encoded in every way MIME (and
//! the mailers that bend it) allows, is the same `body` each time.
//!
//! Each case draws a text, a transfer encoding (8bit, base64 with any line
//! width and blank or whitespace-only lines before the data,
//! quoted-printable with soft breaks anywhere), a charset label (UTF-8, or
//! windows-1252 under any of the labels mail uses for it), a structure
//! (single part; in a `multipart/mixed` beside an attachment; in a
//! `multipart/alternative` beside an HTML version; nested), with or without
//! the closing boundaries, with blanks after the boundaries, with CRLF or
//! LF line ends; and checks that `body` is the text.

use proptest::prelude::*;
use weir_stdlib::{Limits, Message};

/// Characters of the texts: ASCII, and a few that UTF-8 and windows-1252
/// both hold but encode differently.
const ALPHABET: &[char] = &[
    'a', 'b', 'c', 'k', 'l', 'i', 'e', 'r', 'n', 'o', 'w', 'F', 'R', 'E', '0', '7', '.', ',', '!',
    '?', '=', '-', '_', '$', '%', '<', '>', '&', ';', ':', '"', '\'', '/', 'é', 'ü', '’', '€',
];

fn word() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ALPHABET), 1..12)
        .prop_map(|chars| chars.into_iter().collect())
}

/// Lines of words (some empty: paragraphs), without trailing blanks.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::collection::vec(word(), 0..10), 1..12).prop_map(|lines| {
        let lines: Vec<String> = lines.into_iter().map(|words| words.join(" ")).collect();
        let text = lines.join("\n");
        // The text starts with a word, so no part is all whitespace.
        format!("Hello {}", text.trim()).trim_end().to_string()
    })
}

#[derive(Debug, Clone, Copy)]
enum Charset {
    Utf8(&'static str),
    Windows1252(&'static str),
}

fn charset() -> impl Strategy<Value = Charset> {
    prop_oneof![
        prop::sample::select(vec!["utf-8", "UTF-8", "utf8"]).prop_map(Charset::Utf8),
        prop::sample::select(vec![
            "windows-1252",
            "cp1252",
            "iso-8859-1",
            "ISO8859-1",
            "iso_8859-1",
            "latin1",
            "us-ascii",
        ])
        .prop_map(Charset::Windows1252),
    ]
}

fn encode_charset(text: &str, charset: Charset) -> Vec<u8> {
    match charset {
        Charset::Utf8(_) => text.as_bytes().to_vec(),
        Charset::Windows1252(_) => text
            .chars()
            .map(|c| match c {
                'é' => 0xE9,
                'ü' => 0xFC,
                '’' => 0x92,
                '€' => 0x80,
                c if c.is_ascii() => c as u8,
                c => panic!("{c:?} is not in the alphabet"),
            })
            .collect(),
    }
}

#[derive(Debug, Clone)]
enum Transfer {
    EightBit,
    /// Line width, and what comes between the headers and the data.
    Base64 {
        width: usize,
        lead: &'static str,
    },
    /// Longest line before a soft break.
    QuotedPrintable {
        width: usize,
    },
}

fn transfer() -> impl Strategy<Value = Transfer> {
    prop_oneof![
        Just(Transfer::EightBit),
        (
            4usize..=100,
            prop::sample::select(vec!["", "\n", "\n\n", "  \n\t\n"])
        )
            .prop_map(|(width, lead)| Transfer::Base64 { width, lead }),
        (8usize..=76).prop_map(|width| Transfer::QuotedPrintable { width }),
    ]
}

fn base64(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let word = (b(0) << 16) | (b(1) << 8) | b(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(DIGITS[(word >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Quoted-printable as RFC 2045 writes it, with soft breaks so that no
/// line is longer than `width` (escapes are never split).
fn quoted_printable(bytes: &[u8], width: usize) -> String {
    let mut out = String::new();
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let mut column = 0;
        for (i, &b) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let token = match b {
                b' ' | b'\t' if last => format!("={b:02X}"),
                b'=' => "=3D".to_string(),
                b' ' | b'\t' | 33..=126 => (b as char).to_string(),
                _ => format!("={b:02X}"),
            };
            if column + token.len() + 1 > width {
                out.push_str("=\n");
                column = 0;
            }
            column += token.len();
            out.push_str(&token);
        }
    }
    out
}

/// The headers and body of the text part.
fn text_part(text: &str, charset: Charset, transfer: &Transfer) -> (String, Vec<u8>) {
    let label = match charset {
        Charset::Utf8(l) | Charset::Windows1252(l) => l,
    };
    let bytes = encode_charset(text, charset);
    let (encoding, body) = match transfer {
        Transfer::EightBit => ("8bit", bytes),
        Transfer::Base64 { width, lead } => {
            // Base64 holds the canonical form: CRLF line ends.
            let bytes = crlf(&bytes);
            let data = base64(&bytes);
            let lines: Vec<&str> = data
                .as_bytes()
                .chunks(*width)
                .map(|c| std::str::from_utf8(c).expect("ascii"))
                .collect();
            ("base64", format!("{lead}{}", lines.join("\n")).into_bytes())
        }
        Transfer::QuotedPrintable { width } => (
            "quoted-printable",
            quoted_printable(&bytes, *width).into_bytes(),
        ),
    };
    (
        format!(
            "Content-Type: text/plain; charset={label}\nContent-Transfer-Encoding: {encoding}\n"
        ),
        body,
    )
}

#[derive(Debug, Clone, Copy)]
enum Structure {
    Single,
    /// The text part after an attachment (so it is the last part).
    Mixed,
    /// `multipart/alternative` of the text and an HTML version.
    Alternative,
    /// The alternative inside a `multipart/mixed`, after an attachment.
    Nested,
}

fn structure() -> impl Strategy<Value = Structure> {
    prop::sample::select(vec![
        Structure::Single,
        Structure::Mixed,
        Structure::Alternative,
        Structure::Nested,
    ])
}

/// The whole message, LF line ends.
fn message(
    text: &str,
    charset: Charset,
    transfer: &Transfer,
    structure: Structure,
    close: bool,
    boundary_blanks: &str,
) -> Vec<u8> {
    let (headers, body) = text_part(text, charset, transfer);
    let mut out =
        b"From: a@example.com\nTo: b@example.org\nSubject: s\nMIME-Version: 1.0\n".to_vec();
    let attachment = "Content-Type: image/gif; name=\"x.gif\"\nContent-Transfer-Encoding: base64\n\nR0lGODlhAQABAAAAACw=\n";
    let html = "Content-Type: text/html\n\n<p>Other words entirely</p>\n";
    let open = |b: &str| format!("\n--{b}{boundary_blanks}\n");
    let end = |b: &str| {
        if close {
            format!("\n--{b}--{boundary_blanks}\n")
        } else {
            "\n".to_string()
        }
    };
    let mut part = headers.into_bytes();
    part.push(b'\n');
    part.extend_from_slice(&body);
    match structure {
        Structure::Single => out.extend_from_slice(&part),
        Structure::Mixed => {
            out.extend_from_slice(b"Content-Type: multipart/mixed; boundary=\"=_m\"\n\nPreamble.");
            out.extend_from_slice(open("=_m").as_bytes());
            out.extend_from_slice(attachment.as_bytes());
            out.extend_from_slice(open("=_m").as_bytes());
            out.extend_from_slice(&part);
            out.extend_from_slice(end("=_m").as_bytes());
        }
        Structure::Alternative | Structure::Nested => {
            if let Structure::Nested = structure {
                out.extend_from_slice(b"Content-Type: multipart/mixed; boundary=\"=_m\"\n\n");
                out.extend_from_slice(open("=_m").as_bytes());
                out.extend_from_slice(attachment.as_bytes());
                out.extend_from_slice(open("=_m").as_bytes());
            }
            out.extend_from_slice(b"Content-Type: multipart/alternative; boundary=\"=_a\"\n\n");
            out.extend_from_slice(open("=_a").as_bytes());
            out.extend_from_slice(html.as_bytes());
            out.extend_from_slice(open("=_a").as_bytes());
            out.extend_from_slice(&part);
            out.extend_from_slice(end("=_a").as_bytes());
            if let Structure::Nested = structure {
                out.extend_from_slice(end("=_m").as_bytes());
            }
        }
    }
    out
}

/// The text as `body` gives it: its paragraphs (runs of non-empty lines),
/// each on one line with its line breaks read as spaces.
fn paragraphs(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim).chain([""]) {
        if !line.is_empty() {
            current.push(line);
        } else if !current.is_empty() {
            out.push(current.join(" "));
            current.clear();
        }
    }
    out.join("\n")
}

fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 20);
    for &b in bytes {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn body_is_the_text_however_it_is_encoded(
        text in text(),
        charset in charset(),
        transfer in transfer(),
        structure in structure(),
        close in any::<bool>(),
        boundary_blanks in prop::sample::select(vec!["", " ", "\t ", "  "]),
        use_crlf in any::<bool>(),
    ) {
        let mut bytes = message(&text, charset, &transfer, structure, close, boundary_blanks);
        if use_crlf {
            bytes = crlf(&bytes);
        }
        let message = Message::parse(&bytes, &Limits::default()).expect("accepted");
        prop_assert_eq!(
            message.body_text(),
            paragraphs(&text),
            "message:\n{}",
            String::from_utf8_lossy(&bytes)
        );
    }
}
