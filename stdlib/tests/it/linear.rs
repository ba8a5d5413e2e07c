//! Hostile inputs stay linear: each takes well under a second per
//! megabyte even unoptimized; a quadratic step would take minutes.

use std::time::{Duration, Instant};

use weir_stdlib::html::html_to_text;
use weir_stdlib::{Limits, Message};

const SIZE: usize = 4 * 1024 * 1024;

fn repeat(unit: &str) -> String {
    unit.repeat(SIZE / unit.len())
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(20), "{what} took {elapsed:?}");
    out
}

#[test]
fn html_conversion_is_linear_on_hostile_markup() {
    for unit in [
        "<head></head>",
        "<a \"",
        "&",
        "&#",
        "<!--",
        "<script>",
        "<p>&amp;x</p>",
        "<<<>",
    ] {
        let html = repeat(unit);
        let text = timed(unit, || html_to_text(&html));
        assert!(text.len() <= html.len(), "{unit}");
    }
}

#[test]
fn header_decoding_is_linear_on_hostile_encoded_words() {
    for unit in [
        "=?",
        "=?a?q?",
        "=?utf-8?q?x?= ",
        "=?utf-8?b?",
        "?=",
        "=?a?q?=?b",
    ] {
        let msg = format!("Subject: {}\r\n\r\nbody", repeat(unit));
        let m = timed(unit, || Message::parse(msg.as_bytes(), &Limits::default()));
        let m = m.expect("accepted");
        assert!(!timed(unit, || m.subject()).is_empty(), "{unit}");
    }
}

#[test]
fn many_tiny_parts_parse_quickly() {
    let mut msg = String::from("Content-Type: multipart/mixed; boundary=b\r\n\r\n");
    while msg.len() < SIZE {
        msg.push_str("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n");
    }
    msg.push_str("--b--\r\n");
    let m = timed("tiny parts", || {
        Message::parse(msg.as_bytes(), &Limits::default())
    })
    .expect("accepted");
    assert!(m.body_text().starts_with("x\nx\n"));
}
