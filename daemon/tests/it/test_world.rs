//! Tests that set the world (docs/language.md ("Tests")) and `weir run
//! --now` (docs/cli.md): a rate limit and an out-of-hours rule become
//! testable, and obsolete `Date:` forms are read.

use crate::common;

use common::{golden, root, stderr, stdout, temp_dir, weir, weir_in};

/// `weir test tests/world/NAME.flow` prints `tests/world/NAME.expected`
/// and passes: each file has tests that only pass when its `now`, `rate`,
/// `duplicate` or `recipient` line is applied.
#[test]
fn world_golden_tests_pass() {
    for name in ["classifiers", "office_hours", "rate_limit"] {
        let rel = format!("tests/world/{name}.flow");
        let out = weir(&["test", &rel], None);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{rel}:\n{text}{}", stderr(&out));
        let expected = root().join(format!("tests/world/{name}.expected"));
        if let Err(e) = golden(&expected, &text) {
            panic!("{e}");
        }
    }
}

const ORDER: &str = "From: alice@example.org\r\nTo: support@example.com\r\n\
Subject: order\r\nDate: Mon, 2 Dec 2024 20:00 GMT\r\n\r\nhello\r\n";

const HOURS: &str = r#"
rule evening {
  when local(now, "Europe/Berlin").hour >= 18
  then tag "evening ${local(now, "Europe/Berlin")}"
}
rule dated {
  when date < time("2024-12-03T00:00:00Z")
  then tag "dated ${date}"
}
"#;

fn tags_at(now: &str) -> String {
    let dir = temp_dir(&format!("world-run-{}", now.replace(':', "")));
    std::fs::write(dir.join("hours.flow"), HOURS).unwrap();
    let out = weir_in(
        &dir,
        &["run", "--json", "--now", now, "hours.flow", "-"],
        Some(ORDER.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let decision: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    decision["tags"].to_string()
}

#[test]
fn run_now_sets_the_clock_and_obsolete_dates_parse() {
    assert_eq!(
        tags_at("2024-12-20T18:00:00Z"),
        r#"["evening 2024-12-20T19:00:00+01:00","dated 2024-12-02T20:00:00Z"]"#
    );
    assert_eq!(
        tags_at("2024-12-20T12:00:00+01:00"),
        r#"["dated 2024-12-02T20:00:00Z"]"#
    );
}

#[test]
fn run_now_refuses_a_malformed_time() {
    let dir = temp_dir("world-bad-now");
    std::fs::write(dir.join("hours.flow"), HOURS).unwrap();
    for bad in ["yesterday", "2024-12-20", "2024-12-20 18:00"] {
        let out = weir_in(
            &dir,
            &["run", "--now", bad, "hours.flow", "-"],
            Some(ORDER.as_bytes()),
        );
        assert_eq!(out.status.code(), Some(1), "{bad}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("is not an RFC 3339 time"),
            "{bad}: {}",
            stderr(&out)
        );
    }
}

/// Without `now` the clock is the real one: the same test that passes at
/// 19:00 Berlin time fails at 12:00, so `now` is what made it pass.
#[test]
fn a_test_fails_when_its_world_says_otherwise() {
    let dir = temp_dir("world-fails");
    let rules = format!(
        "{HOURS}\ntest \"noon is not evening\" {{\n  message \"\"\"\n    Subject: x\n\n    y\n    \"\"\"\n  now \"2024-12-20T11:00:00Z\"\n  expect tag \"evening 2024-12-20T12:00:00+01:00\"\n}}\n"
    );
    std::fs::write(dir.join("r.flow"), rules).unwrap();
    let out = weir_in(&dir, &["test", "r.flow"], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("noon is not evening")),
        "{text}"
    );
}
