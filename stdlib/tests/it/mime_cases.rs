//! Real-world MIME, one minimal message each: `tests/mime/NAME.eml` is read
//! as Weir's message model and must give `tests/mime/NAME.expect` (its
//! `body`, `body.html` and `attachments` with every member). `UPDATE_EXPECT=1` rewrites the
//! expectations from what Weir reads; review the diff before committing.

use std::path::{Path, PathBuf};

use weir_stdlib::{Limits, Message};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/mime")
}

/// What a case checks, as text.
fn render(message: &Message) -> String {
    let mut out = format!(
        "subject: {}\nbody:\n{}\nbody.html:\n{}\nattachments:\n",
        message.subject(),
        message.body_text(),
        message.body_html()
    );
    for a in message.attachments() {
        out.push_str(&format!(
            "{} | {} | {} | archive={} | encrypted={}\n",
            a.name, a.content_type, a.size, a.archive, a.encrypted
        ));
    }
    out
}

#[test]
fn every_mime_case_reads_as_expected() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("tests/mime")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "tests/mime has its cases");
    let update = std::env::var("UPDATE_EXPECT").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for case in &cases {
        let bytes = std::fs::read(case).expect("a case");
        let message = Message::parse(&bytes, &Limits::default()).expect("accepted");
        let got = render(&message);
        let expect_path = case.with_extension("expect");
        if update {
            std::fs::write(&expect_path, &got).expect("write .expect");
            continue;
        }
        let want = std::fs::read_to_string(&expect_path).unwrap_or_default();
        if got != want {
            failures.push(format!(
                "{}:\n--- expected\n{want}--- got\n{got}",
                case.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
