//! Learned classifiers end to end (docs/classifiers.md): `weir learn`
//! from files, directories and mbox files with digest records, `weir run
//! --state`, and `weir serve` reading the same state and learning through
//! `POST /v1/learn/NAME/CLASS`, and autolearn from the daemon's own
//! decisions over LMTP.

use std::path::Path;

use proptest::prelude::*;

use crate::common::{stderr, stdout, temp_dir, weir, weir_in};
use crate::serve_support::{Daemon, free_port, lmtp_deliver, lmtp_table, write_config};

pub const RULES: &str = r#"classifier spam = learned ["spam", "ham"]

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
pub fn corpus(dir: &Path, seed: u64, n: usize, start: usize) {
    let mut rng = Lcg(seed);
    for class in ["spam", "ham"] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..n {
            let text = message(&mut rng, class, start + i);
            std::fs::write(dir.join(class).join(format!("{i:03}.eml")), text).unwrap();
        }
    }
}

pub fn learn(dir: &Path, args: &[&str]) -> String {
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

/// Rules whose decisions teach: a trap header quarantines (spam), a known
/// sender's header tags `known` (ham).
pub const AUTOLEARN_RULES: &str = r#"classifier spam = learned ["spam", "ham"]

rule answer {
  then tag "class=${spam.class} p=${spam.probability("spam")}"
}

rule known {
  when header("X-Known") exists
  then tag "known"
}

rule trap {
  when header("X-Trap") exists
  then quarantine "spam trap"
}
"#;

pub const AUTOLEARN: &str = "[classifiers.spam.autolearn.spam]\nverdict = [\"quarantine\"]\nskip_above = 0.9\n\n[classifiers.spam.autolearn.ham]\ntag = [\"known\"]\n";

/// A daemon with LMTP delivery, `extra` appended to its weir.toml; its
/// LMTP port.
fn lmtp_daemon(dir: &Path, extra: &str) -> (Daemon, u16) {
    std::fs::write(dir.join("rules.flow"), AUTOLEARN_RULES).unwrap();
    let port = free_port();
    let listen = format!("inet:127.0.0.1:{port}");
    let tables = format!("{}\n{extra}", lmtp_table(dir, &listen));
    let (http, milter) = write_config(dir, "", &tables);
    (Daemon::start(dir, http, milter), port)
}

/// Message `i` of `class` from the corpus in `dir/c`, with `header` added.
fn with_header(dir: &Path, class: &str, i: usize, header: &str) -> String {
    let text = std::fs::read_to_string(dir.join(format!("c/{class}/{i:03}.eml"))).unwrap();
    format!("{header}\r\n{text}")
}

/// Delivers one message over LMTP; every recipient gets a 250.
fn deliver(port: u16, to: &[&str], message: &str) {
    for reply in lmtp_deliver(port, "sender@example.org", to, message) {
        assert!(reply.starts_with("250"), "{reply}");
    }
}

/// `weir_autolearn_total` for class `class` and `outcome` (0 when absent).
fn autolearned(daemon: &Daemon, class: &str, outcome: &str) -> u64 {
    let metrics = daemon.get("/metrics").body;
    let want = [
        "weir_autolearn_total{".to_string(),
        "classifier=\"spam\"".to_string(),
        format!("class=\"{class}\""),
        format!("outcome=\"{outcome}\""),
    ];
    metrics
        .lines()
        .find(|l| want.iter().all(|w| l.contains(w.as_str())))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// Waits until the `autolearned` counts of `outcomes` for `class` add up
/// to `n` (learning runs after the reply, in a task of its own).
pub fn wait_autolearned(daemon: &Daemon, class: &str, outcomes: &[&str], n: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let got: u64 = outcomes.iter().map(|o| autolearned(daemon, class, o)).sum();
        if got >= n {
            assert_eq!(got, n, "{class} {outcomes:?}");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{class} {outcomes:?}: {got} of {n}\n{}",
            daemon.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn check_tag(daemon: &Daemon, message: &[u8]) -> String {
    let r = daemon.request("POST", "/v1/check", true, message);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["tags"][0].as_str().unwrap().to_string()
}

#[test]
fn autolearn_learns_from_the_decisions_and_skips_what_it_already_knows() {
    let dir = temp_dir("classify-autolearn");
    corpus(&dir.join("c"), 5, 14, 0);
    let (daemon, port) = lmtp_daemon(&dir, AUTOLEARN);
    let probe = std::fs::read(dir.join("c/spam/011.eml")).unwrap();
    assert_eq!(
        check_tag(&daemon, &probe),
        "class= p=0",
        "nothing learned yet"
    );
    // The first message goes to two recipients: it is learned once.
    deliver(
        port,
        &["a@example.com", "b@example.com"],
        &with_header(&dir, "spam", 0, "X-Trap: yes"),
    );
    for i in 1..11 {
        deliver(
            port,
            &["a@example.com"],
            &with_header(&dir, "spam", i, "X-Trap: yes"),
        );
    }
    for i in 0..11 {
        deliver(
            port,
            &["a@example.com"],
            &with_header(&dir, "ham", i, "X-Known: yes"),
        );
    }
    // A message no condition holds for teaches nothing.
    deliver(
        port,
        &["a@example.com"],
        &with_header(&dir, "ham", 11, "X-Other: yes"),
    );
    wait_autolearned(&daemon, "spam", &["learned"], 11);
    // Once each class has ten, the classifier answers: the last ham
    // messages may already be ham with p >= 0.95 (the default skip_above).
    wait_autolearned(&daemon, "ham", &["learned", "skipped_confident"], 11);
    assert!(autolearned(&daemon, "ham", "learned") >= 10);
    // A later classification changes: the spam probe now leans to spam.
    let tag = check_tag(&daemon, &probe);
    let p: f64 = tag.rsplit("p=").next().unwrap().parse().unwrap();
    assert!(p > 0.5, "learned from the decisions: {tag}");
    // The same digests as the API's: a learned message is already learned,
    // the message nothing held for is not.
    let first = with_header(&dir, "spam", 1, "X-Trap: yes");
    let r = daemon.request("POST", "/v1/learn/spam/spam", true, first.as_bytes());
    assert_eq!(r.json()["outcome"], "already learned", "{}", r.body);
    // A trapped message the classifier already calls spam with p >= 0.9
    // (skip_above) is not learned again.
    let confident = (12..14)
        .map(|i| with_header(&dir, "spam", i, "X-Trap: yes"))
        .find(|m| check_tag(&daemon, m.as_bytes()).starts_with("class=spam "))
        .expect("a trapped message the classifier is sure of");
    deliver(port, &["a@example.com"], &confident);
    wait_autolearned(&daemon, "spam", &["skipped_confident"], 1);
    assert_eq!(autolearned(&daemon, "spam", "learned"), 11);
    let r = daemon.request("POST", "/v1/learn/spam/spam", true, confident.as_bytes());
    assert_eq!(
        r.json()["outcome"],
        "learned",
        "it was not learned: {}",
        r.body
    );
    let other = with_header(&dir, "ham", 11, "X-Other: yes");
    let r = daemon.request("POST", "/v1/learn/spam/ham", true, other.as_bytes());
    assert_eq!(r.json()["outcome"], "learned", "{}", r.body);
    // Learning changed no decision: every trapped copy is held (the
    // first message twice, once per recipient).
    let held = daemon.get("/v1/quarantine").json();
    assert_eq!(held.as_array().map(Vec::len), Some(13), "{held}");
}

#[test]
fn without_autolearn_the_decisions_teach_nothing() {
    let dir = temp_dir("classify-no-autolearn");
    corpus(&dir.join("c"), 5, 12, 0);
    let (daemon, port) = lmtp_daemon(&dir, "");
    for i in 0..11 {
        deliver(
            port,
            &["a@example.com"],
            &with_header(&dir, "spam", i, "X-Trap: yes"),
        );
        deliver(
            port,
            &["a@example.com"],
            &with_header(&dir, "ham", i, "X-Known: yes"),
        );
    }
    // Give a learning task, were one started, time to finish.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let probe = std::fs::read(dir.join("c/spam/011.eml")).unwrap();
    assert_eq!(check_tag(&daemon, &probe), "class= p=0");
    assert!(
        !daemon
            .get("/metrics")
            .body
            .contains("weir_autolearn_total{")
    );
    let first = with_header(&dir, "spam", 0, "X-Trap: yes");
    let r = daemon.request("POST", "/v1/learn/spam/spam", true, first.as_bytes());
    assert_eq!(r.json()["outcome"], "learned", "{}", r.body);
}

#[test]
fn autolearn_naming_what_the_rules_do_not_declare_stops_the_start() {
    let dir = temp_dir("classify-autolearn-bad");
    std::fs::write(dir.join("rules.flow"), AUTOLEARN_RULES).unwrap();
    let bad = "[classifiers.spma.autolearn.spam]\nverdict = [\"reject\"]\n\n\
               [classifiers.spam.autolearn.hma]\ntag = [\"known\"]\n\n\
               [classifiers.spam.autolearn.spam]\nrule = [\"trapp\"]\n";
    write_config(&dir, "", bad);
    let out = weir_in(&dir, &["serve", "--config", "weir.toml"], None);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    for want in [
        "[classifiers.spma]: the rules declare no classifier \"spma\" (did you mean 'spam'?)",
        "[classifiers.spam.autolearn.hma]: classifier \"spam\" has no class \"hma\" (did you mean 'ham'?); its classes are spam, ham",
        "[classifiers.spam.autolearn.spam] rule: the rules have no rule \"trapp\" (did you mean 'trap'?)",
    ] {
        assert!(err.contains(want), "{want}\n---\n{err}");
    }
}

/// Message `i` of `class` through the milter, with `header: yes` added.
pub fn milter_send(daemon: &Daemon, dir: &Path, class: &str, i: usize, header: &str) -> String {
    use weir::milter_client::Mail;
    let text = std::fs::read_to_string(dir.join(format!("c/{class}/{i:03}.eml"))).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut headers: Vec<(String, String)> = head
        .split("\r\n")
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    headers.push((header.to_string(), "yes".to_string()));
    let mail = Mail {
        helo: "client.example.test".into(),
        from: "sender@example.org".into(),
        to: vec!["me@example.com".into()],
        headers,
        body: body.as_bytes().to_vec(),
        queue_id: format!("Q{class}{i}"),
        ..Mail::default()
    };
    let reply =
        crate::serve_support::milter_reply(daemon.milter, &mail).expect("the milter answers");
    format!("{reply:?}")
}

#[test]
fn autolearn_learns_from_the_milters_decisions() {
    let dir = temp_dir("classify-autolearn-milter");
    corpus(&dir.join("c"), 9, 11, 0);
    std::fs::write(dir.join("rules.flow"), AUTOLEARN_RULES).unwrap();
    let (http, milter) = write_config(&dir, "", AUTOLEARN);
    let daemon = Daemon::start(&dir, http, milter);
    for i in 0..10 {
        milter_send(&daemon, &dir, "spam", i, "X-Trap");
        milter_send(&daemon, &dir, "ham", i, "X-Known");
    }
    // No rule matched: nothing is learned.
    milter_send(&daemon, &dir, "spam", 10, "X-Other");
    wait_autolearned(&daemon, "spam", &["learned"], 10);
    wait_autolearned(&daemon, "ham", &["learned"], 10);
    // The API sees the same digests: a trapped message is already
    // learned, the one no rule matched is not.
    let trapped = with_header(&dir, "spam", 3, "X-Trap: yes");
    let r = daemon.request("POST", "/v1/learn/spam/spam", true, trapped.as_bytes());
    assert_eq!(r.json()["outcome"], "already learned", "{}", r.body);
    let other = with_header(&dir, "spam", 10, "X-Other: yes");
    let r = daemon.request("POST", "/v1/learn/spam/spam", true, other.as_bytes());
    assert_eq!(r.json()["outcome"], "learned", "{}", r.body);
}

#[test]
fn a_reload_that_drops_an_autolearned_classifier_is_refused() {
    let dir = temp_dir("classify-autolearn-reload");
    std::fs::write(dir.join("rules.flow"), AUTOLEARN_RULES).unwrap();
    let (http, milter) = write_config(&dir, "", AUTOLEARN);
    let daemon = Daemon::start(&dir, http, milter);
    assert_eq!(daemon.version(), 1);
    std::fs::write(
        dir.join("rules.flow"),
        "rule trap {\n  when header(\"X-Trap\") exists\n  then quarantine \"spam trap\"\n}\n",
    )
    .unwrap();
    let r = daemon.request("POST", "/v1/reload", true, b"");
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body
            .contains("[classifiers.spam]: the rules declare no classifier \\\"spam\\\""),
        "{}",
        r.body
    );
    assert_eq!(daemon.version(), 1, "the running rules stay");
}

/// `?audit=ID` learns a decided message from the ring of recent messages
/// (`[http] keep_messages`) without uploading it; without the ring it is a
/// 404 naming what Weir keeps.
#[test]
fn the_api_learns_a_recent_decision_by_its_audit_id() {
    let dir = temp_dir("classify-audit-ring");
    std::fs::write(dir.join("rules.flow"), RULES).unwrap();
    corpus(&dir.join("c"), 2, 12, 0);
    let (http, milter) = write_config(&dir, "", "keep_messages = 10\nkeep_for = \"1h\"\n");
    let daemon = Daemon::start(&dir, http, milter);
    milter_send(&daemon, &dir, "spam", 0, "X-Any");
    let actions = daemon.get("/v1/actions").json();
    let id = &actions[0]["id"];
    assert!(id.is_u64(), "{actions}");
    let learn = format!("/v1/learn/spam/spam?audit={id}");
    let r = daemon.request("POST", &learn, true, b"");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["outcome"], "learned");
    let r = daemon.request("POST", &learn, true, b"");
    assert_eq!(r.json()["outcome"], "already learned", "{}", r.body);
    let missing = format!("/v1/learn/spam/spam?audit={}", id.as_u64().unwrap() + 1000);
    let r = daemon.request("POST", &missing, true, b"");
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("keep_messages"), "{}", r.body);
}
