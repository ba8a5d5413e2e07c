//! The vendored mail-parser (`vendor/mail-parser`, which reads the MIME
//! structure for Weir) against the published crate it was taken from: the
//! same message tree, byte for byte, for every message. The two differ
//! only in how a part's closing `--boundary` is found and how a text part
//! is checked as UTF-8 (`vendor/mail-parser/PATCHES.md`). Each message is
//! parsed both ways mail-parser reads parts: eagerly (decoding base64 and
//! quoted-printable as it goes) and as Weir's lazy parse does, with
//! `Content-Transfer-Encoding` ignored, so that every part goes through
//! the changed search.

use std::path::Path;

use proptest::prelude::*;

use crate::common;

/// mail-parser's tree of `bytes`, as its `Debug` prints it (both crates
/// print the same types the same way), or that it panicked: on some
/// malformed nesting the published crate's debug assertions panic, and
/// the vendored one must panic alike (Weir catches it, see `mime_body`).
macro_rules! tree {
    ($krate:ident, $bytes:expr, $lazy:expr) => {{
        let parser = if $lazy {
            $krate::MessageParser::new().ignore_header($krate::HeaderName::ContentTransferEncoding)
        } else {
            $krate::MessageParser::new()
        };
        std::panic::catch_unwind(|| format!("{:?}", parser.parse($bytes)))
            .unwrap_or_else(|_| "panicked".to_string())
    }};
}

/// Where the two trees of `bytes` first differ, if they do.
fn difference(bytes: &[u8]) -> Option<String> {
    for lazy in [false, true] {
        let published = tree!(mail_parser_upstream, bytes, lazy);
        let vendored = tree!(mail_parser, bytes, lazy);
        if published != vendored {
            let at = published
                .bytes()
                .zip(vendored.bytes())
                .take_while(|(a, b)| a == b)
                .count();
            return Some(format!(
                "lazy {lazy}, at byte {at} of the tree:\npublished: {}\nvendored:  {}",
                excerpt(&published, at),
                excerpt(&vendored, at),
            ));
        }
    }
    None
}

/// About 80 bytes of `tree` either side of `at`, whole characters.
fn excerpt(tree: &str, at: usize) -> &str {
    let boundary = |mut i: usize| {
        while !tree.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    &tree[boundary(at.saturating_sub(80))..boundary((at + 80).min(tree.len()))]
}

/// Every `.eml` file under `dir`, recursively.
fn eml_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            eml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "eml") {
            out.push(path);
        }
    }
}

#[test]
fn the_repositorys_and_pythons_messages_have_the_published_tree() {
    let root = common::repo_root();
    let mut files = Vec::new();
    for dir in ["examples", "tests", "daemon", "compiler"] {
        eml_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "only {} .eml files found", files.len());
    let mut messages: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|p| (p.display().to_string(), std::fs::read(p).expect("read")))
        .collect();
    messages.extend(common::python_messages());
    for (name, bytes) in &messages {
        if let Some(diff) = difference(bytes) {
            panic!("{name}: {diff}");
        }
    }
}

#[test]
fn the_spamassassin_corpus_has_the_published_tree() {
    let Some(dir) = common::corpus_dir() else {
        return common::skip_corpus_test("the SpamAssassin corpus is not in the cache");
    };
    let names = common::message_names(&dir);
    assert!(names.len() > 6000, "{} messages", names.len());
    for name in &names {
        let bytes = std::fs::read(dir.join(name)).expect("read");
        if let Some(diff) = difference(&bytes) {
            panic!("{name}: {diff}");
        }
    }
}

/// A boundary that starts with a dash, so that a run of dashes before it
/// must be matched at the right place.
const OUTER: &str = "-=_o";
/// A boundary that is a prefix of neither, nested inside.
const INNER: &str = "in";

/// Pieces of a multipart message: fields, boundaries whole, cut or in the
/// middle of a line, line breaks of every kind, dashes, encoded data, and
/// text that is UTF-8, not UTF-8, or cut inside a character.
fn piece() -> impl Strategy<Value = &'static [u8]> {
    prop::sample::select(vec![
        b"caf\xc3\xa9 ".as_slice(),
        b"\xe9t\xe9 ",
        b"\xc3",
        b"Content-Type: text/plain; charset=utf-8\n",
        b"Content-Type: text/plain; charset=iso-8859-1\n",
        b"\r\n",
        b"\n",
        b"\r",
        b"-",
        b"--",
        b"---",
        b"text ",
        b"--",
        b"-=_o",
        b"--in",
        b"--in--",
        b"--=_o",
        b"-in",
        b"Content-Type: text/plain\r\n",
        b"Content-Type: text/html\n",
        b"Content-Type: multipart/alternative; boundary=\"in\"\r\n",
        b"Content-Type: multipart/mixed; boundary=in\n",
        b"Content-Type: message/rfc822\n",
        b"Content-Type: application/pdf; name=a.pdf\n",
        b"Content-Transfer-Encoding: base64\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"aGVsbG8gd29y\nbGQ=\n",
        b"caf=C3=A9 =\r\nsoft=3D\n",
        b"Subject: enclosed\n",
    ])
}

/// A message whose top level is `multipart/mixed` with boundary [`OUTER`],
/// its body made of `pieces` with whole boundary lines among them.
fn message(pieces: &[(&[u8], u8)]) -> Vec<u8> {
    let mut out = format!(
        "Content-Type: multipart/mixed; boundary=\"{OUTER}\"\r\nSubject: s\r\n\r\npreamble\r\n"
    )
    .into_bytes();
    for (piece, line) in pieces {
        match line % 6 {
            0 => out.extend_from_slice(format!("\r\n--{OUTER}\r\n").as_bytes()),
            1 => out.extend_from_slice(format!("\n--{INNER}\n").as_bytes()),
            2 => out.extend_from_slice(format!("\r\n--{OUTER}--\r\n").as_bytes()),
            _ => {}
        }
        out.extend_from_slice(piece);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_multipart_messages_have_the_published_tree(
        pieces in prop::collection::vec((piece(), any::<u8>()), 0..40),
        cut in any::<prop::sample::Index>(),
    ) {
        let whole = message(&pieces);
        if let Some(diff) = difference(&whole) {
            prop_assert!(false, "{diff}\nmessage: {:?}", String::from_utf8_lossy(&whole));
        }
        let cut = &whole[..cut.index(whole.len() + 1)];
        if let Some(diff) = difference(cut) {
            prop_assert!(false, "{diff}\nmessage: {:?}", String::from_utf8_lossy(cut));
        }
    }
}
