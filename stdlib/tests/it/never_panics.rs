//! Property tests: no bytes make `Message::parse` or an accessor panic.

use crate::common;
use proptest::prelude::*;
use weir_stdlib::{Address, Limits, Message};

/// Real messages to mutate: a few hand-written MIME shapes plus Python's
/// email test messages when installed.
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(load_seeds)
}

fn load_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = vec![
        b"Subject: =?utf-8?q?a?=\r\nFrom: A <a@b>\r\nTo: g: x@y, z@w;\r\n\r\nbody\r\n".to_vec(),
        b"Content-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/plain\n\nplain\n--b\nContent-Type: text/html\n\n<p>x&amp;<b>y</b></p>\n--b--\n".to_vec(),
        b"Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: message/rfc822\n\nSubject: in\nContent-Type: multipart/mixed; boundary=i\n\n--i\nContent-Type: application/pdf; name*=utf-8''%C3%A9.pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0=\n--i--\n--o\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nd=E9j=E0=\n vu\n--o--\n".to_vec(),
    ];
    seeds.extend(
        common::python_messages()
            .into_iter()
            .map(|(_, bytes)| bytes),
    );
    seeds
}

/// One edit of a message: overwrite, insert, delete a range, or truncate.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let interesting = prop::sample::select(vec![
        b"\r\n".to_vec(),
        b"\n\n".to_vec(),
        b"--".to_vec(),
        b"=?".to_vec(),
        b"?=".to_vec(),
        b"<".to_vec(),
        b"&#x".to_vec(),
        b":".to_vec(),
        b"\"".to_vec(),
        b"\xff\xfe".to_vec(),
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\n".to_vec(),
        b"Content-Transfer-Encoding: base64\n".to_vec(),
    ]);
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (
            any::<usize>(),
            prop_oneof![interesting, prop::collection::vec(any::<u8>(), 0..8)]
        )
            .prop_map(|(i, bytes)| Edit::Insert(i, bytes)),
        (any::<usize>(), 0usize..64).prop_map(|(i, n)| Edit::Delete(i, n)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len();
        match e {
            Edit::Set(i, b) if len > 0 => bytes[i % len] = *b,
            Edit::Insert(i, ins) => {
                let at = i % (len + 1);
                bytes.splice(at..at, ins.iter().copied());
            }
            Edit::Delete(i, n) if len > 0 => {
                let at = i % len;
                let end = (at + n).min(len);
                bytes.drain(at..end);
            }
            Edit::Truncate(i) => bytes.truncate(i % (len + 1)),
            _ => {}
        }
    }
    bytes
}

fn check(bytes: &[u8]) {
    for limits in [
        Limits::default(),
        Limits {
            max_message_size: 200,
            max_headers: 3,
            max_mime_depth: 1,
        },
    ] {
        if let Ok(m) = Message::parse(bytes, &limits) {
            common::touch_everything(&m);
        }
    }
    let text = String::from_utf8_lossy(bytes);
    let _ = Address::parse(&text);
    let _ = weir_stdlib::html::html_to_text(&text);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "[ -~\\r\\n\\t]{0,600}") {
        check(text.as_bytes());
    }

    #[test]
    fn mutated_messages_never_panic(seed in any::<prop::sample::Index>(), edits in prop::collection::vec(edit(), 1..8)) {
        let seeds = seeds();
        let bytes = apply(seed.get(seeds).clone(), &edits);
        check(&bytes);
    }
}
