//! The command line contract of docs/cli.md: inputs, outputs, exit codes.

use crate::common;

use common::{stderr, stdout, temp_dir, weir, weir_in};
use serde_json::Value;

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

const RULES: &str = r#"
rule blocked priority 10 {
  when envelope.from.domain in ["spam.example"]
  then reject 550 "5.7.1" "Sender domain blocked"
}
rule mark {
  when subject contains "hello"
  then add_header "X-Checked" "yes"
}
"#;

const HELLO: &str =
    "From: a@ok.example\r\nTo: b@example.com\r\nSubject: Hello there\r\n\r\nbody\r\n";

#[test]
fn run_json_one_message_gives_exactly_one_object_without_file() {
    let dir = temp_dir("one");
    std::fs::write(dir.join("r.flow"), RULES).unwrap();
    std::fs::write(dir.join("m.eml"), HELLO).unwrap();
    let out = weir_in(&dir, &["run", "r.flow", "m.eml", "--json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let objs = json_lines(&stdout(&out));
    assert_eq!(objs.len(), 1);
    let o = &objs[0];
    assert!(o.get("file").is_none());
    assert_eq!(o["verdict"], "accept");
    assert_eq!(o["reply"], Value::Null);
    assert_eq!(o["matched"], serde_json::json!(["mark"]));
    assert_eq!(o["score"], serde_json::json!(0));
    assert_eq!(o["folder"], Value::Null);
    assert_eq!(
        o["actions"],
        serde_json::json!([{"action": "add_header", "name": "X-Checked", "value": "yes", "rule": "mark"}])
    );
}

#[test]
fn run_envelope_options_reject_at_mail_stage() {
    let dir = temp_dir("env");
    std::fs::write(dir.join("r.flow"), RULES).unwrap();
    std::fs::write(dir.join("m.eml"), HELLO).unwrap();
    let out = weir_in(
        &dir,
        &[
            "run",
            "r.flow",
            "m.eml",
            "--json",
            "--from",
            "x@spam.example",
        ],
        None,
    );
    let o = &json_lines(&stdout(&out))[0];
    assert_eq!(o["verdict"], "reject");
    assert_eq!(
        o["reply"],
        serde_json::json!({"code": 550, "status": "5.7.1", "text": "Sender domain blocked"})
    );
    assert_eq!(o["stage"], "mail");
    assert_eq!(o["matched"], serde_json::json!(["blocked"]));
}

#[test]
fn run_reads_stdin_and_directories_in_byte_order_with_file_keys() {
    let dir = temp_dir("dir");
    std::fs::write(dir.join("r.flow"), RULES).unwrap();
    std::fs::create_dir_all(dir.join("mail/sub")).unwrap();
    std::fs::write(dir.join("mail/b.eml"), HELLO).unwrap();
    std::fs::write(dir.join("mail/a.eml"), "Subject: other\r\n\r\n").unwrap();
    std::fs::write(dir.join("mail/sub/c.eml"), HELLO).unwrap();
    let out = weir_in(&dir, &["run", "r.flow", "mail", "--json"], None);
    let files: Vec<String> = json_lines(&stdout(&out))
        .iter()
        .map(|o| o["file"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(files, ["mail/a.eml", "mail/b.eml", "mail/sub/c.eml"]);

    let out = weir_in(
        &dir,
        &["run", "r.flow", "-", "--json"],
        Some(HELLO.as_bytes()),
    );
    let objs = json_lines(&stdout(&out));
    assert_eq!(objs.len(), 1);
    assert_eq!(objs[0]["matched"], serde_json::json!(["mark"]));
}

#[test]
fn run_unreadable_message_is_reported_and_others_still_evaluated() {
    let dir = temp_dir("unreadable");
    std::fs::write(dir.join("r.flow"), RULES).unwrap();
    std::fs::write(dir.join("m.eml"), HELLO).unwrap();
    let out = weir_in(
        &dir,
        &["run", "r.flow", "missing.eml", "m.eml", "--json"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let objs = json_lines(&stdout(&out));
    assert_eq!(objs.len(), 2);
    assert_eq!(objs[0]["file"], "missing.eml");
    assert!(objs[0]["error"].as_str().unwrap().len() > 3);
    assert_eq!(objs[1]["file"], "m.eml");
    assert_eq!(objs[1]["verdict"], "accept");
}

#[test]
fn run_exit_codes_for_bad_rules_and_bad_options() {
    let dir = temp_dir("exit");
    std::fs::write(
        dir.join("bad.flow"),
        "rule r { when subjekt == \"x\" then tag \"x\" }\n",
    )
    .unwrap();
    std::fs::write(dir.join("m.eml"), HELLO).unwrap();
    let out = weir_in(&dir, &["run", "bad.flow", "m.eml"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty(), "diagnostics go to stderr only");
    assert!(stderr(&out).contains("bad.flow:1:"), "{}", stderr(&out));

    std::fs::write(dir.join("r.flow"), RULES).unwrap();
    let out = weir_in(&dir, &["run", "r.flow", "m.eml", "--no-such-option"], None);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn check_exit_codes_and_diagnostics_on_stderr() {
    let dir = temp_dir("check");
    std::fs::write(dir.join("good.flow"), RULES).unwrap();
    let out = weir_in(&dir, &["check", "good.flow"], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());

    std::fs::write(
        dir.join("bad.flow"),
        "rule a { when envelope.frm.domain == \"x\" then tag \"a\" }\nrule b { when subject = 1 then tag \"b\" }\n",
    )
    .unwrap();
    let out = weir_in(&dir, &["check", "."], None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("bad.flow:1:"), "{err}");
    assert!(err.contains("did you mean"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[test]
fn check_reports_a_bad_list_line_at_the_list_file_and_ignores_a_bom() {
    let dir = temp_dir("checklist");
    std::fs::write(
        dir.join("r.flow"),
        "list nets = file \"nets.txt\"\nmap teams = file \"teams.map\"\n\
         rule r {\n  when client.ip in nets and teams[\"a\"] == \"b\"\n  then reject\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("nets.txt"),
        "\u{feff}10.0.0.0/8\n# ok\n10.0.0.0/33\n",
    )
    .unwrap();
    std::fs::write(dir.join("teams.map"), "\u{feff}a b\n").unwrap();
    let out = weir_in(&dir, &["check", "r.flow"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("nets.txt:3: `10.0.0.0/33`"), "{err}");
    assert!(err.contains("--> nets.txt:3:1"), "{err}");
    assert!(!err.contains("r.flow:4"), "the rule is not blamed: {err}");

    std::fs::write(dir.join("nets.txt"), "\u{feff}10.0.0.0/8\n").unwrap();
    let out = weir_in(&dir, &["check", "r.flow"], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn fmt_check_exits_one_and_fmt_rewrites() {
    let dir = temp_dir("fmt");
    std::fs::write(
        dir.join("r.flow"),
        "rule   r{when subject contains \"x\"   then tag \"x\"}\n",
    )
    .unwrap();
    let out = weir_in(&dir, &["fmt", "--check", "r.flow"], None);
    assert_eq!(out.status.code(), Some(1));
    let before = std::fs::read_to_string(dir.join("r.flow")).unwrap();
    assert!(before.starts_with("rule   r"), "--check changes nothing");
    let out = weir_in(&dir, &["fmt", "r.flow"], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = weir_in(&dir, &["fmt", "--check", "r.flow"], None);
    assert_eq!(out.status.code(), Some(0));
    let out = weir_in(&dir, &["fmt", "-"], Some(before.as_bytes()));
    assert_eq!(
        stdout(&out),
        std::fs::read_to_string(dir.join("r.flow")).unwrap()
    );
}

#[test]
fn test_command_prints_a_line_per_test_and_a_summary() {
    let dir = temp_dir("test");
    let rules = format!(
        "{RULES}\ntest \"hello is marked\" {{\n  message \"\"\"\n{HELLO}\"\"\"\n  expect matched mark\n  expect add_header \"X-Checked\" \"yes\"\n}}\n\ntest \"wrong on purpose\" {{\n  message \"\"\"\n{HELLO}\"\"\"\n  expect verdict reject\n}}\n"
    );
    std::fs::write(dir.join("r.flow"), rules).unwrap();
    let out = weir_in(&dir, &["test", "r.flow"], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.lines()
            .any(|l| l.starts_with("ok") && l.contains("hello is marked")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("wrong on purpose")),
        "{text}"
    );
    assert_eq!(text.lines().last(), Some("1 passed, 1 failed"));
}

#[test]
fn diff_reports_changed_outcomes() {
    let dir = temp_dir("diff");
    std::fs::write(dir.join("old.flow"), RULES).unwrap();
    std::fs::write(
        dir.join("new.flow"),
        RULES.replace("\"hello\"", "\"nothing\""),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("mail")).unwrap();
    std::fs::write(dir.join("mail/m.eml"), HELLO).unwrap();
    std::fs::write(dir.join("mail/n.eml"), "Subject: x\r\n\r\n").unwrap();
    let out = weir_in(&dir, &["diff", "old.flow", "new.flow", "mail"], None);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("mail/m.eml"), "{text}");
    assert!(!text.contains("mail/n.eml"), "{text}");
    assert!(text.contains("1 of 2 messages differ"), "{text}");
}

#[test]
fn stats_counts_hits_verdicts_and_rules_that_never_fired() {
    let out = weir(
        &[
            "run",
            "tests/eval/verdicts.flow",
            "tests/eval/mail",
            "--stats",
            "--json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let objs = json_lines(&stdout(&out));
    assert_eq!(objs.len(), 1);
    let s = &objs[0];
    assert_eq!(s["messages"], 5);
    assert!(s["rules"]["list_mail"].as_u64().unwrap() >= 1);
    assert!(
        s["never_fired"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "never_reached")
            || s["rules"]["never_reached"].as_u64().unwrap() > 0
    );
}
