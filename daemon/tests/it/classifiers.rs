//! Learned classifiers end to end (docs/classifiers.md): `weir learn`
//! from files, directories and mbox files with digest records, `weir run
//! --state`, and `weir serve` reading the same state and learning through
//! `POST /v1/learn/NAME/CLASS`.

use std::path::Path;

use proptest::prelude::*;

use crate::common::{stderr, stdout, temp_dir, weir, weir_in};
use crate::serve_support::{Daemon, write_config};

const RULES: &str = r#"classifier spam = learned ["spam", "ham"]

rule answer {
  then tag "class=${spam.class} p=${spam.probability("spam")}"
}
"#;

const SPAM_WORDS: &[&str] = &[
    "cheap",
    "pills",
    "offer",
    "winner",
    "casino",
    "viagra",
    "mortgage",
    "free",
    "click",
    "prize",
    "unsubscribe",
    "bonus",
    "loans",
    "credit",
    "deal",
    "guaranteed",
    "lottery",
    "cash",
];
const HAM_WORDS: &[&str] = &[
    "meeting", "agenda", "patch", "review", "kernel", "release", "minutes", "thanks", "lunch",
    "project", "deadline", "report", "build", "commit", "draft", "schedule", "budget", "notes",
];
const SHARED: &[&str] = &[
    "the", "and", "you", "today", "please", "about", "this", "week",
];

/// A small deterministic generator (tests must not depend on a clock).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// A message of `class` (mostly its words, some shared, some of the other
/// class), unique by its index.
fn message(rng: &mut Lcg, class: &str, index: usize) -> String {
    let (own, other) = if class == "spam" {
        (SPAM_WORDS, HAM_WORDS)
    } else {
        (HAM_WORDS, SPAM_WORDS)
    };
    let mut words = Vec::new();
    for _ in 0..30 {
        let pick = rng.next(10);
        let list = if pick < 7 {
            own
        } else if pick < 9 {
            SHARED
        } else {
            other
        };
        words.push(list[rng.next(list.len())].to_string());
    }
    // A word of its own makes each message distinct (digests differ).
    let tag: String = format!("{index:x}")
        .chars()
        .map(|c| (b'g' + c.to_digit(16).unwrap_or(0) as u8) as char)
        .collect();
    format!(
        "From: someone@example.org\r\nTo: me@example.com\r\nSubject: {} {} {tag}\r\n\r\n{}\r\n",
        words[0],
        words[1],
        words.join(" ")
    )
}

/// Writes `n` messages of each class under `dir/CLASS/`.
fn corpus(dir: &Path, seed: u64, n: usize, start: usize) {
    let mut rng = Lcg(seed);
    for class in ["spam", "ham"] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..n {
            let text = message(&mut rng, class, start + i);
            std::fs::write(dir.join(class).join(format!("{i:03}.eml")), text).unwrap();
        }
    }
}

fn learn(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["learn"];
    all.extend_from_slice(args);
    let out = weir_in(dir, &all, None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// The tag of each message under `weir run --state`, by file name.
fn run_tags(dir: &Path) -> Vec<(String, String)> {
    let out = weir_in(
        dir,
        &["run", "--json", "--state", "state", "rules.flow", "test"],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|line| {
            let d: serde_json::Value = serde_json::from_str(line).unwrap();
            let file = d["file"].as_str().unwrap().to_string();
            (file, d["tags"][0].as_str().unwrap().to_string())
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3, .. ProptestConfig::default() })]

    /// `weir learn` then `weir run --state` and `weir serve` (its
    /// `/v1/check`) give the same classes and probabilities for the same
    /// messages, for random corpora.
    #[test]
    fn learn_then_run_and_serve_agree(seed in any::<u64>()) {
        let dir = temp_dir(&format!("classify-agree-{}", seed % 1000));
        std::fs::write(dir.join("rules.flow"), RULES).unwrap();
        corpus(&dir.join("train"), seed, 20, 0);
        corpus(&dir.join("test"), seed ^ 0x5eed, 8, 1000);
        learn(&dir, &["spam", "spam", "train/spam", "--state", "state"]);
        learn(&dir, &["spam", "ham", "train/ham", "--state", "state"]);
        let from_run = run_tags(&dir);
        prop_assert_eq!(from_run.len(), 16);
        let answered = from_run.iter().filter(|(_, t)| !t.starts_with("class= ")).count();
        prop_assert!(answered >= 4, "the classifier answers: {:?}", from_run);
        let (http, milter) = write_config(&dir, "", "");
        let daemon = Daemon::start(&dir, http, milter);
        for (file, tag) in &from_run {
            let bytes = std::fs::read(dir.join(file)).unwrap();
            let r = daemon.request("POST", "/v1/check", true, &bytes);
            prop_assert_eq!(r.status, 200);
            let answer = r.json();
            prop_assert_eq!(answer["tags"][0].as_str().unwrap(), tag.as_str(), "{}", file);
        }
    }
}

#[test]
fn learn_counts_a_message_once_moves_it_and_forgets_it() {
    let dir = temp_dir("classify-digests");
    corpus(&dir.join("c"), 7, 3, 0);
    let first = learn(&dir, &["spam", "spam", "c/spam", "--state", "state"]);
    assert!(
        first.starts_with("spam: 3 learned, 0 already learned"),
        "{first}"
    );
    let again = learn(&dir, &["spam", "spam", "c/spam", "--state", "state"]);
    assert!(again.contains("0 learned, 3 already learned"), "{again}");
    assert!(again.contains("now spam 3"), "{again}");
    let moved = learn(&dir, &["spam", "ham", "c/spam/000.eml", "--state", "state"]);
    assert!(moved.contains("1 moved"), "{moved}");
    assert!(moved.contains("now spam 2, ham 1"), "{moved}");
    let forgot = learn(
        &dir,
        &["spam", "ham", "--forget", "c/spam", "--state", "state"],
    );
    assert!(forgot.contains("3 forgotten"), "{forgot}");
    assert!(forgot.contains("now spam 0, ham 0"), "{forgot}");
    let never = learn(
        &dir,
        &[
            "spam",
            "ham",
            "--forget",
            "c/ham/000.eml",
            "--state",
            "state",
        ],
    );
    assert!(never.contains("1 not learned before"), "{never}");
}

#[test]
fn learn_reads_mbox_files_and_reports_unreadable_inputs() {
    let dir = temp_dir("classify-mbox");
    let mut rng = Lcg(11);
    let mut mbox = String::new();
    for i in 0..4 {
        mbox.push_str("From someone@example.org Mon Dec  2 20:00:00 2024\n");
        mbox.push_str(&message(&mut rng, "ham", i).replace("\r\n", "\n"));
        mbox.push('\n');
    }
    std::fs::write(dir.join("inbox.mbox"), mbox).unwrap();
    let out = learn(&dir, &["spam", "ham", "inbox.mbox", "--state", "state"]);
    assert!(out.starts_with("spam: 4 learned"), "{out}");
    let missing = weir_in(
        &dir,
        &[
            "learn",
            "spam",
            "ham",
            "inbox.mbox",
            "nope.eml",
            "--state",
            "state",
        ],
        None,
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("nope.eml"),
        "{}",
        stderr(&missing)
    );
    assert!(
        stdout(&missing).contains("4 already learned"),
        "{}",
        stdout(&missing)
    );
}

#[test]
fn learn_refuses_a_state_a_running_daemon_holds() {
    let dir = temp_dir("classify-locked");
    std::fs::write(dir.join("rules.flow"), RULES).unwrap();
    corpus(&dir.join("c"), 3, 1, 0);
    let (http, milter) = write_config(&dir, "", "");
    let _daemon = Daemon::start(&dir, http, milter);
    let out = weir_in(
        &dir,
        &["learn", "spam", "spam", "c/spam", "--state", "state"],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("POST /v1/learn"), "{}", stderr(&out));
    let usage = weir(&["learn", "spam"], None);
    assert_ne!(usage.status.code(), Some(0));
    let missing = weir_in(
        &dir,
        &["run", "--state", "no-such-dir", "rules.flow", "c/spam"],
        None,
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("holds no learned state"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn the_api_learns_moves_forgets_and_keeps_it_across_a_restart() {
    let dir = temp_dir("classify-api");
    std::fs::write(dir.join("rules.flow"), RULES).unwrap();
    corpus(&dir.join("c"), 5, 12, 0);
    let (http, milter) = write_config(&dir, "", "");
    let mut daemon = Daemon::start(&dir, http, milter);
    let probe = std::fs::read(dir.join("c/spam/011.eml")).unwrap();
    let before = daemon.request("POST", "/v1/check", true, &probe).json();
    assert_eq!(before["tags"][0], "class= p=0", "nothing learned yet");
    for class in ["spam", "ham"] {
        for i in 0..11 {
            let bytes = std::fs::read(dir.join(format!("c/{class}/{i:03}.eml"))).unwrap();
            let r = daemon.request("POST", &format!("/v1/learn/spam/{class}"), true, &bytes);
            assert_eq!(r.status, 200, "{}", r.body);
            assert_eq!(r.json()["outcome"], "learned");
        }
    }
    let first = std::fs::read(dir.join("c/spam/000.eml")).unwrap();
    let again = daemon
        .request("POST", "/v1/learn/spam/spam", true, &first)
        .json();
    assert_eq!(again["outcome"], "already learned");
    let moved = daemon
        .request("POST", "/v1/learn/spam/ham", true, &first)
        .json();
    assert_eq!(moved["outcome"], "moved");
    assert_eq!(moved["from"], "spam");
    let forgot = daemon
        .request("POST", "/v1/learn/spam/ham?forget=true", true, &first)
        .json();
    assert_eq!(forgot["outcome"], "forgotten");
    let after = daemon.request("POST", "/v1/check", true, &probe).json();
    let tag = after["tags"][0].as_str().unwrap().to_string();
    assert!(tag.starts_with("class=spam "), "{tag}");
    // Bad requests: an unknown classifier or class, no message, no token.
    let r = daemon.request("POST", "/v1/learn/spma/spam", true, &first);
    assert_eq!(r.status, 404);
    assert!(r.body.contains("did you mean 'spam'"), "{}", r.body);
    let r = daemon.request("POST", "/v1/learn/spam/hma", true, &first);
    assert_eq!(r.status, 422);
    assert!(r.body.contains("did you mean 'ham'"), "{}", r.body);
    assert_eq!(
        daemon
            .request("POST", "/v1/learn/spam/ham", true, b"")
            .status,
        400
    );
    assert_eq!(
        daemon
            .request("POST", "/v1/learn/spam/ham", false, &first)
            .status,
        401
    );
    let r = daemon.request("POST", "/v1/learn/spam/ham?audit=99", true, b"");
    assert_eq!(r.status, 404);
    // What was learned is in the store: a restarted daemon answers the same.
    daemon.kill_9();
    let daemon = Daemon::start(&dir, http, milter);
    let restarted = daemon.request("POST", "/v1/check", true, &probe).json();
    assert_eq!(restarted["tags"][0].as_str().unwrap(), tag);
}

/// examples/learned-triage/ as its README trains it: one `weir learn` per
/// folder, then its held-out messages are filed by their class.
#[test]
fn the_triage_example_learns_from_its_folders() {
    let dir = temp_dir("classify-triage");
    let example = crate::common::root().join("examples/learned-triage");
    let state = dir.join("state");
    let state = state.to_str().unwrap();
    for class in ["billing", "technical", "sales"] {
        let folder = example.join("train").join(class);
        learn(
            &dir,
            &["triage", class, folder.to_str().unwrap(), "--state", state],
        );
    }
    let rules = example.join("triage.flow");
    let mail = example.join("mail");
    let out = weir(
        &[
            "run",
            "--json",
            "--state",
            state,
            rules.to_str().unwrap(),
            mail.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let folders: Vec<(String, String)> = stdout(&out)
        .lines()
        .map(|l| {
            let d: serde_json::Value = serde_json::from_str(l).unwrap();
            let file = d["file"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            (file, d["folder"].as_str().unwrap_or("INBOX").to_string())
        })
        .collect();
    assert_eq!(
        folders,
        [
            ("billing.eml".to_string(), "Support/Billing".to_string()),
            ("sales.eml".to_string(), "Sales/Leads".to_string()),
            ("technical.eml".to_string(), "Support/Technical".to_string()),
        ]
    );
}
