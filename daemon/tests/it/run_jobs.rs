//! `weir run --jobs N`: messages are evaluated on several threads and the
//! output is byte for byte what one thread prints (docs/cli.md).

use std::path::Path;

use crate::common;

use common::{stderr, temp_dir, weir};

const NOW: &str = "2026-12-06T08:00:00Z";

/// `weir run` over `messages` with `extra` options and `--jobs N`:
/// its exit status, standard output and standard error.
fn run(
    rules: &Path,
    messages: &[&Path],
    extra: &[&str],
    jobs: &str,
) -> (Option<i32>, Vec<u8>, String) {
    let mut args = vec!["run", "--now", NOW, "--jobs", jobs];
    args.extend(extra);
    args.push(rules.to_str().unwrap());
    args.extend(messages.iter().map(|m| m.to_str().unwrap()));
    let out = weir(&args, None);
    let err = stderr(&out);
    (out.status.code(), out.stdout, err)
}

fn assert_same_for_every_job_count(rules: &Path, messages: &[&Path], extra: &[&str]) -> Vec<u8> {
    let one = run(rules, messages, extra, "1");
    assert!(!one.1.is_empty(), "one thread printed nothing: {}", one.2);
    for jobs in ["2", "3", "8"] {
        let many = run(rules, messages, extra, jobs);
        assert_eq!(many.0, one.0, "exit status with --jobs {jobs} {extra:?}");
        assert!(
            many.1 == one.1,
            "--jobs {jobs} {extra:?} printed other bytes than --jobs 1"
        );
        assert_eq!(many.2, one.2, "standard error with --jobs {jobs}");
    }
    one.1
}

#[test]
fn many_threads_print_the_bytes_one_thread_prints() {
    let dir = weir_benches::corpus_dir();
    let rules = dir.join("rules").join("rules_100.flow");
    let synth = dir.join("synth");
    let json = assert_same_for_every_job_count(&rules, &[&synth], &["--json"]);
    assert_eq!(String::from_utf8(json).unwrap().lines().count(), 1000);
    assert_same_for_every_job_count(&rules, &[&synth], &[]);
    assert_same_for_every_job_count(&rules, &[&synth], &["--stats"]);
    // The default (one thread per core) prints the same too.
    let mut args = vec!["run", "--now", NOW, "--json"];
    args.extend([rules.to_str().unwrap(), synth.to_str().unwrap()]);
    let default = weir(&args, None);
    assert_eq!(default.status.code(), Some(0), "{}", stderr(&default));
    assert!(default.stdout == run(&rules, &[&synth], &["--json"], "1").1);
}

#[test]
fn an_unreadable_message_keeps_its_place_in_the_output() {
    let dir = temp_dir("run-jobs-unreadable");
    let rules = dir.join("rules.flow");
    std::fs::write(
        &rules,
        "rule urgent { when subject contains \"urgent\" then { tag \"urgent\" } }\n",
    )
    .unwrap();
    let mut messages = Vec::new();
    for i in 0..40 {
        let path = dir.join(format!("{i:02}.eml"));
        if i % 9 != 4 {
            let subject = if i % 3 == 0 { "urgent" } else { "hello" };
            std::fs::write(&path, format!("Subject: {subject} {i}\n\nbody\n")).unwrap();
        }
        // Every ninth path from the fifth on does not exist.
        messages.push(path);
    }
    let paths: Vec<&Path> = messages.iter().map(|p| p.as_path()).collect();
    let out = assert_same_for_every_job_count(&rules, &paths, &["--json"]);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 40);
    assert!(lines[4].contains("\"error\""), "{}", lines[4]);
    assert!(lines[13].contains("\"error\""), "{}", lines[13]);
    assert!(lines[3].contains("urgent") && lines[3].contains("03.eml"));
    assert_eq!(run(&rules, &paths, &["--json"], "2").0, Some(1));
    // In text mode the errors go to standard error, in order too.
    assert_same_for_every_job_count(&rules, &paths, &[]);
}

/// Each thread reads every message into one buffer it reuses: a short
/// message after a long one (past the size a buffer is kept at, 1 MiB,
/// and below it) is read alone, nothing of the one before left in it.
#[test]
fn a_short_message_after_a_long_one_is_read_alone() {
    let dir = temp_dir("run-jobs-buffer");
    let rules = dir.join("rules.flow");
    std::fs::write(
        &rules,
        "rule tail { when body contains \"tail-marker\" then { tag \"tail\" } }\n",
    )
    .unwrap();
    let mail = dir.join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    let mut expected = Vec::new();
    for (i, filler) in [3 << 20, 10, 200_000, 10, 5_000, 10]
        .into_iter()
        .enumerate()
    {
        // Long messages end with the marker; the short ones are shorter
        // than where it was.
        let marked = filler > 10;
        let body = format!(
            "{}{}\n",
            "x".repeat(filler),
            if marked { " tail-marker" } else { "" }
        );
        std::fs::write(
            mail.join(format!("{i:02}.eml")),
            format!("Subject: m{i}\n\n{body}"),
        )
        .unwrap();
        expected.push(marked);
    }
    let out = assert_same_for_every_job_count(&rules, &[&mail], &["--json"]);
    let text = String::from_utf8(out).unwrap();
    let tagged: Vec<bool> = text.lines().map(|l| l.contains("\"tail\"")).collect();
    assert_eq!(tagged, expected, "{text}");
}

#[test]
fn rules_that_count_messages_see_them_in_input_order() {
    let dir = temp_dir("run-jobs-rate");
    let rules = dir.join("rules.flow");
    std::fs::write(
        &rules,
        "rule burst { when rate(\"all\", 1h) > 3 then { tag \"burst\" } }\n\
         rule again { when duplicate(subject, 1h) then { tag \"again\" } }\n",
    )
    .unwrap();
    let mail = dir.join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    for i in 0..30 {
        std::fs::write(
            mail.join(format!("{i:02}.eml")),
            format!("To: a@example.com\nSubject: s{}\n\nbody\n", i % 5),
        )
        .unwrap();
    }
    let out = assert_same_for_every_job_count(&rules, &[&mail], &["--json"]);
    let text = String::from_utf8(out).unwrap();
    let tagged: Vec<bool> = text.lines().map(|l| l.contains("\"burst\"")).collect();
    // The fourth message on is over the rate, whatever the threads.
    assert_eq!(tagged, (0..30).map(|i| i >= 3).collect::<Vec<_>>());
    let again = text.lines().filter(|l| l.contains("\"again\"")).count();
    assert_eq!(again, 25);
}

#[test]
fn jobs_must_be_a_positive_number() {
    let rules = common::root().join("examples/quickstart/support.flow");
    let mail = common::root().join("examples/quickstart/mail/billing.eml");
    for bad in ["0", "many", "1.5"] {
        let out = weir(
            &[
                "run",
                "--jobs",
                bad,
                rules.to_str().unwrap(),
                mail.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(out.status.code(), Some(1), "--jobs {bad}");
        assert!(stderr(&out).contains("--jobs"), "{}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
}
