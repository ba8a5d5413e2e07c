//! The `test` blocks of `tests/message/` (the message model: body
//! paragraphs, attachments inside attachments) and `tests/auth/`
//! (`auth_results()` and `stdlib/auth` over what real checkers write, and
//! forged headers), run by `weir test` as a user runs them; and the two
//! engines' decisions over the same rules and messages, compared.

use crate::common::{stderr, stdout, weir};

fn passes(dir: &str, at_least: usize) {
    let out = weir(&["test", dir], None);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{dir}:\n{text}\n{}",
        stderr(&out)
    );
    let summary = text
        .lines()
        .find(|l| l.ends_with(" failed"))
        .unwrap_or_default();
    let passed: usize = summary
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(passed >= at_least, "{dir}: {summary}");
    assert!(summary.ends_with(" 0 failed"), "{dir}: {summary}");
}

/// `weir run --json` with each engine gives the same decisions.
fn engines_agree(rules: &str, mail: &str) {
    let run = |engine: &str| {
        let out = weir(&["run", "--json", "--engine", engine, rules, mail], None);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
    };
    let interp = run("interp");
    assert!(interp.lines().count() >= 5, "{interp}");
    assert_eq!(interp, run("jit"));
}

#[test]
fn message_model_tests_pass() {
    passes("tests/message", 5);
    engines_agree("tests/message/message.flow", "tests/mime/");
}

#[test]
fn authentication_results_tests_pass() {
    passes("tests/auth", 7);
    engines_agree(
        "tests/auth/auth.flow",
        "examples/sender-authentication/mail/",
    );
}
