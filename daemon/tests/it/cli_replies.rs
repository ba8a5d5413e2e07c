//! Auto-replies the daemon would skip are shown as skipped by `weir run`
//! and do not satisfy `expect reply` in `weir test` (docs/language.md,
//! "Auto-replies"): test and production agree.

use crate::common;

use common::{stderr, stdout, temp_dir, weir_in};

const RULES: &str = r#"
template away {
  subject = "Out of office"
  body = "I am away."
}
rule vacation {
  then reply template away
}

test "a person's mail is answered" {
  message """
    From: a@example.com
    To: me@example.org
    Subject: hello

    hi
    """
  expect reply template away
}

test "an auto-reply is not answered" {
  message """
    From: a@example.com
    To: me@example.org
    Auto-Submitted: auto-replied
    Subject: away too

    hi
    """
  expect not reply template away
}

test "wrong on purpose: a skipped reply is no reply" {
  message """
    From: a@example.com
    To: me@example.org
    Auto-Submitted: auto-generated
    Subject: robot

    hi
    """
  expect reply template away
}
"#;

const AUTO: &str = "From: a@example.com\r\nTo: me@example.org\r\nAuto-Submitted: auto-replied\r\nSubject: x\r\n\r\nbody\r\n";

#[test]
fn skipped_replies_show_in_run_and_fail_expect_reply() {
    let dir = temp_dir("cli-replies");
    std::fs::write(dir.join("r.flow"), RULES).unwrap();

    let out = weir_in(&dir, &["test", "r.flow"], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert_eq!(text.lines().last(), Some("2 passed, 1 failed"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("wrong on purpose")),
        "{text}"
    );
    assert!(text.contains("skipped: auto-submitted"), "{text}");

    let out = weir_in(
        &dir,
        &["run", "--json", "r.flow", "-"],
        Some(AUTO.as_bytes()),
    );
    let decision: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("JSON");
    assert_eq!(decision["actions"][0]["action"], "reply");
    assert_eq!(
        decision["actions"][0]["skipped"], "auto-submitted",
        "{decision}"
    );
}

const ALIASES: &str = r#"
template away {
  subject = "Away"
  from = "Support <support@example.org>"
  addresses = "support@example.org, help@example.org"
}
rule vacation {
  then reply template away
}
"#;

#[test]
fn a_template_s_addresses_count_as_the_recipient_s() {
    let dir = temp_dir("cli-aliases");
    std::fs::write(dir.join("r.flow"), ALIASES).unwrap();
    let reply_of = |to_header: &str| {
        let mail = format!("From: a@example.com\r\nTo: {to_header}\r\nSubject: x\r\n\r\nbody\r\n");
        let out = weir_in(
            &dir,
            &["run", "--json", "--to", "carol@example.org", "r.flow", "-"],
            Some(mail.as_bytes()),
        );
        let d: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("JSON");
        d["actions"][0].clone()
    };
    // The envelope recipient is carol, but the mail names an alias.
    assert_eq!(
        reply_of("help@example.org")["skipped"],
        serde_json::Value::Null
    );
    assert_eq!(
        reply_of("carol@example.org")["skipped"],
        serde_json::Value::Null
    );
    assert_eq!(reply_of("list@example.net")["skipped"], "not-addressed");
}
