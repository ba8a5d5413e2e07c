//! Hot reload under load, against the real `weir serve`: milter sessions
//! send mail without pause while the rules change 100 times (the file
//! watcher, `POST /v1/reload` and SIGHUP in turn), with broken rulesets in
//! between that must be refused. Nothing may be lost or decided by the
//! wrong ruleset.
//!
//! Generation K of the rules tags every message `gen-K`, adds `X-Gen: K`,
//! and rejects subjects marked with K's parity (`ODD` or `EVEN`) with a
//! reply naming K. So the MTA side sees which generation decided each
//! message, and the audit log must agree: the entry's `ruleset_version` is
//! the version the daemon gave generation K, its tags hold `gen-K`, its
//! verdict is the one K's rules give that subject.

use crate::serve_support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use serve_support::{Daemon, free_port, temp_dir};
use weir::milter_client::{Client, Edit, Mail, Outcome, Reply};

/// Concurrent milter sessions sending mail.
const SENDERS: usize = 3;
/// Messages per milter connection before it quits and reconnects.
const PER_CONNECTION: usize = 5;
/// Rule changes that must take effect.
const GOOD_CHANGES: usize = 100;
/// Broken rulesets tried between them (every eleventh change).
const BROKEN_EVERY: usize = 11;
/// How long any one awaited event may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// Generation `k` of the rules: tag and header name `k`; odd generations
/// reject `ODD` subjects, even ones `EVEN` subjects. Its `test` block runs
/// at every reload.
fn good_rules(k: usize) -> String {
    let parity = if k % 2 == 1 { "ODD" } else { "EVEN" };
    format!(
        r#"rule gen_{k} priority 1 {{
  then {{ tag "gen-{k}"; add_header "X-Gen" "{k}" }}
}}
rule refuse_{k} priority 2 {{
  when subject contains "{parity}"
  then reject 550 "5.7.1" "gen-{k} refuses"
}}
test "generation {k} tags" {{
  message """Subject: hello

hi
"""
  expect tag "gen-{k}"
}}
"#
    )
}

/// A ruleset that must be refused: a compile error, or a `test` block that
/// fails. Either way it still names generation `k`, so if it ever ran the
/// audit check would see a version it cannot map.
fn broken_rules(k: usize, compile_error: bool) -> String {
    if compile_error {
        format!("rule gen_{k} {{ when subjcet contains \"x\" then tag \"gen-{k}\" }}\n")
    } else {
        good_rules(k).replace(
            &format!("expect tag \"gen-{k}\""),
            "expect tag \"never-set\"",
        )
    }
}

/// How a change is announced to the daemon.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    /// The entry file is replaced; the watcher notices.
    Watcher,
    /// `POST /v1/reload`.
    Post,
    /// SIGHUP.
    Sighup,
}

/// The rules: `rules/rules.flow` is a symbolic link into `gens/`. The
/// daemon watches `rules/`, so swapping the link is a change the watcher
/// sees, while rewriting the linked file in `gens/` is one only an explicit
/// trigger makes the daemon load. Each change thus causes exactly one
/// reload, and every version can be matched to its generation.
struct RuleFiles {
    dir: PathBuf,
    /// The file the link points at now.
    target: PathBuf,
    files_written: usize,
}

impl RuleFiles {
    fn new(dir: &Path, text: &str) -> RuleFiles {
        std::fs::create_dir_all(dir.join("rules")).unwrap();
        std::fs::create_dir_all(dir.join("gens")).unwrap();
        let mut files = RuleFiles {
            dir: dir.to_path_buf(),
            target: PathBuf::new(),
            files_written: 0,
        };
        files.target = files.new_file(text);
        std::os::unix::fs::symlink(files.link_to(&files.target), dir.join("rules/rules.flow"))
            .unwrap();
        files
    }

    fn new_file(&mut self, text: &str) -> PathBuf {
        self.files_written += 1;
        let path = self.dir.join(format!("gens/g{}.flow", self.files_written));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn link_to(&self, target: &Path) -> PathBuf {
        Path::new("..")
            .join("gens")
            .join(target.file_name().unwrap())
    }

    /// A new file and the link swapped to it atomically (the watcher's case).
    fn swap_link(&mut self, text: &str) {
        let target = self.new_file(text);
        let next = self.dir.join("rules/next-link");
        std::os::unix::fs::symlink(self.link_to(&target), &next).unwrap();
        std::fs::rename(&next, self.dir.join("rules/rules.flow")).unwrap();
        self.target = target;
    }

    /// The linked file replaced in `gens/`, which nobody watches.
    fn rewrite_target(&self, text: &str) {
        let tmp = self.dir.join("gens/next.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.target).unwrap();
    }
}

/// One message as the MTA side saw it.
#[derive(Debug)]
struct Sent {
    queue_id: String,
    subject: String,
    outcome: Outcome,
}

/// What the senders share with the test.
#[derive(Default)]
struct Traffic {
    stop: AtomicBool,
    /// Messages that got their final reply.
    done: AtomicUsize,
    /// The first connection or protocol error.
    error: Mutex<Option<String>>,
}

/// Sends messages until told to stop: `PER_CONNECTION` per connection,
/// subjects cycling through `ODD`, `EVEN` and neither.
async fn sender(id: usize, addr: SocketAddr, traffic: Arc<Traffic>) -> Vec<Sent> {
    let mut sent = Vec::new();
    let result: std::io::Result<()> = async {
        let mut n = 0;
        while !traffic.stop.load(Ordering::SeqCst) {
            let mut client = Client::connect(addr).await?;
            let hello_mail = Mail {
                helo: "mx.sender.test".into(),
                ..Mail::default()
            };
            let hello = client.hello(&hello_mail).await?;
            if hello != Reply::Continue {
                return Err(std::io::Error::other(format!("connection refused: {hello:?}")));
            }
            for _ in 0..PER_CONNECTION {
                if traffic.stop.load(Ordering::SeqCst) {
                    break;
                }
                let queue_id = format!("S{id}N{n}");
                let subject = format!("{} {queue_id}", ["ODD", "EVEN", "PLAIN"][n % 3]);
                let raw = format!(
                    "From: a@sender.test\r\nTo: b@example.com\r\nSubject: {subject}\r\nMessage-ID: <{queue_id}@sender.test>\r\n\r\nhello\r\n"
                );
                let mail = Mail {
                    helo: "mx.sender.test".into(),
                    from: "a@sender.test".into(),
                    to: vec!["b@example.com".into()],
                    queue_id: queue_id.clone(),
                    ..Mail::default()
                }
                .with_raw(raw.as_bytes());
                let outcome = client.message(&mail).await.map_err(|e| {
                    std::io::Error::other(format!("message {queue_id}: {e}"))
                })?;
                sent.push(Sent {
                    queue_id,
                    subject,
                    outcome,
                });
                traffic.done.fetch_add(1, Ordering::SeqCst);
                n += 1;
            }
            client.quit().await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        let mut first = traffic.error.lock().unwrap();
        first.get_or_insert_with(|| format!("sender {id}: {e}"));
    }
    sent
}

/// The generation a message's outcome names, and whether it was rejected.
fn seen_generation(sent: &Sent) -> (usize, bool) {
    let number = |text: &str| -> usize {
        text.parse()
            .unwrap_or_else(|_| panic!("{}: no generation in {text:?}", sent.queue_id))
    };
    match &sent.outcome.reply {
        Reply::Code(text) => {
            let k = text
                .split_whitespace()
                .find_map(|w| w.strip_prefix("gen-"))
                .unwrap_or_else(|| panic!("{}: unexpected reply {text:?}", sent.queue_id));
            assert!(
                text.starts_with("550 5.7.1 "),
                "{}: {text:?}",
                sent.queue_id
            );
            (number(k), true)
        }
        Reply::Accept => {
            let header = |want: &str| {
                sent.outcome.edits.iter().find_map(|e| match e {
                    Edit::AddHeader(name, value) | Edit::InsertHeader(_, name, value)
                        if name == want =>
                    {
                        Some(value.clone())
                    }
                    _ => None,
                })
            };
            let k = number(&header("X-Gen").unwrap_or_else(|| {
                panic!(
                    "{}: accepted without X-Gen: {:?}",
                    sent.queue_id, sent.outcome
                )
            }));
            let tags = header("X-Weir-Tags").unwrap_or_default();
            assert!(
                tags.split(", ").any(|t| t == format!("gen-{k}")),
                "{}: X-Gen {k} but X-Weir-Tags {tags:?}",
                sent.queue_id
            );
            (k, false)
        }
        other => panic!("{}: not a final reply: {other:?}", sent.queue_id),
    }
}

/// Whether generation `k` rejects `subject`.
fn rejects(k: usize, subject: &str) -> bool {
    subject.starts_with(if k % 2 == 1 { "ODD" } else { "EVEN" })
}

fn reload_counter(d: &Daemon, result: &str) -> u64 {
    let metrics = d.get("/metrics").body;
    let prefix = format!("weir_reloads_total{{result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no {prefix} in:\n{metrics}"))
}

/// Polls `probe` until it holds, failing after [`PATIENCE`] or when a
/// sender failed.
fn wait_until(d: &Daemon, traffic: &Traffic, what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !probe() {
        if let Some(e) = traffic.error.lock().unwrap().as_ref() {
            panic!("{e}\n{}", d.log());
        }
        assert!(
            Instant::now() < deadline,
            "waited in vain for {what}:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How far back each poll of the audit log reaches. An entry's id is taken
/// before it is written, so with several messages decided at once a poll
/// may see an id before a lower one is visible: looking back further than
/// the decisions that can be in flight (one per sender) misses none.
const AUDIT_OVERLAP: u64 = 16;

/// Adds the audit entries from about `seen`'s newest id on (all of them
/// the first time) to `seen`, keyed by id. The API returns the newest
/// `limit` entries, so a full page would mean some were skipped.
fn poll_audit(d: &Daemon, seen: &mut BTreeMap<u64, Value>) {
    let path = match seen.keys().next_back() {
        // `since` is exclusive and the first id may be 0: no `since` at first.
        None => "/v1/actions?limit=10000".to_string(),
        Some(last) => format!(
            "/v1/actions?since={}&limit=10000",
            last.saturating_sub(AUDIT_OVERLAP)
        ),
    };
    let page = d.get(&path).json();
    let entries = page.as_array().expect("an array of entries");
    assert!(entries.len() < 10_000, "too many entries for one page");
    // An operator's act (the reloads over HTTP) is an entry of its own,
    // with source "api": only the messages' entries are counted here.
    for entry in entries.iter().filter(|e| e["source"] != "api") {
        seen.insert(entry["id"].as_u64().expect("an id"), entry.clone());
    }
}

#[test]
fn rules_change_100_times_under_load_and_no_message_is_lost_or_misdecided() {
    let dir = temp_dir("reload-load");
    let mut files = RuleFiles::new(&dir, &good_rules(1));
    let (http, milter) = (free_port(), free_port());
    serve_support::write_token(&dir.join("api-token"), "secret-token");
    std::fs::write(
        dir.join("weir.toml"),
        format!(
            "rules = \"rules/rules.flow\"\nstate_dir = \"state\"\n\n[milter]\nlisten = \"inet:127.0.0.1:{milter}\"\n\n[http]\nlisten = \"127.0.0.1:{http}\"\ntoken_file = \"api-token\"\n"
        ),
    )
    .unwrap();
    let d = Daemon::start(&dir, http, milter);

    // Which generation each ruleset version runs, learned as it is loaded.
    let mut generation_of: BTreeMap<u64, usize> = BTreeMap::new();
    let first = d.version();
    generation_of.insert(first, 1);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let traffic = Arc::new(Traffic::default());
    let addr = SocketAddr::from(([127, 0, 0, 1], milter));
    let senders: Vec<_> = (0..SENDERS)
        .map(|id| runtime.spawn(sender(id, addr, traffic.clone())))
        .collect();

    // Lets every sender finish a message begun after the last change, so
    // each generation decides mail (a sender has at most one in flight).
    let let_mail_through = |traffic: &Traffic| {
        let target = traffic.done.load(Ordering::SeqCst) + SENDERS + 1;
        wait_until(&d, traffic, "mail to flow", || {
            traffic.done.load(Ordering::SeqCst) >= target
        });
    };

    let mut audit: BTreeMap<u64, Value> = BTreeMap::new();
    let mut generation = 1;
    let mut version = first;
    let (mut good, mut broken) = (0, 0);
    let mut step = 0;
    let mut triggers_used = BTreeSet::new();
    let_mail_through(&traffic);
    while good < GOOD_CHANGES {
        step += 1;
        let trigger = [Trigger::Watcher, Trigger::Post, Trigger::Sighup][step % 3];
        triggers_used.insert(format!("{trigger:?}"));
        let is_broken = step % BROKEN_EVERY == 5;
        let next = generation + 1;
        let text = if is_broken {
            broken_rules(next, broken % 2 == 0)
        } else {
            good_rules(next)
        };
        match trigger {
            Trigger::Watcher => files.swap_link(&text),
            Trigger::Post | Trigger::Sighup => files.rewrite_target(&text),
        }
        let errors_before = u64::try_from(broken).unwrap();
        match trigger {
            Trigger::Watcher => {}
            Trigger::Sighup => d.signal("HUP"),
            Trigger::Post => {
                let r = d.request("POST", "/v1/reload", true, b"");
                let body = r.json();
                if is_broken {
                    assert_eq!(r.status, 422, "step {step}: {body}");
                    assert_eq!(body["version"], version, "step {step}: {body}");
                } else {
                    assert_eq!(r.status, 200, "step {step}: {body}");
                    assert_eq!(body["version"], version + 1, "step {step}: {body}");
                }
            }
        }
        if is_broken {
            wait_until(&d, &traffic, "the broken ruleset to be refused", || {
                reload_counter(&d, "error") > errors_before
            });
            assert_eq!(d.version(), version, "step {step}: a broken ruleset ran");
            let ruleset = d.get("/v1/ruleset").json();
            assert!(
                ruleset["last_error"].is_object(),
                "step {step}: no last_error: {ruleset}"
            );
            broken += 1;
        } else {
            wait_until(&d, &traffic, "the new ruleset", || d.version() > version);
            let ruleset = d.get("/v1/ruleset").json();
            let names: Vec<&str> = ruleset["rules"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| r["name"].as_str())
                .collect();
            assert_eq!(ruleset["version"], version + 1, "step {step}: {ruleset}");
            assert!(
                names.contains(&format!("gen_{next}").as_str()),
                "step {step}: generation {next} expected, rules {names:?}"
            );
            version += 1;
            generation = next;
            generation_of.insert(version, generation);
            good += 1;
        }
        let_mail_through(&traffic);
        poll_audit(&d, &mut audit);
    }

    traffic.stop.store(true, Ordering::SeqCst);
    let mut sent: Vec<Sent> = Vec::new();
    for task in senders {
        sent.extend(runtime.block_on(task).expect("a sender task"));
    }
    if let Some(e) = traffic.error.lock().unwrap().as_ref() {
        panic!("{e}\n{}", d.log());
    }
    poll_audit(&d, &mut audit);

    // Every change and every refusal is accounted for.
    assert_eq!(triggers_used.len(), 3);
    assert_eq!(reload_counter(&d, "ok"), GOOD_CHANGES as u64);
    assert_eq!(reload_counter(&d, "error"), broken as u64);
    assert!(broken >= 9, "only {broken} broken rulesets tried");
    assert_eq!(d.version(), first + GOOD_CHANGES as u64);
    assert_eq!(generation_of.len(), GOOD_CHANGES + 1);

    // Nothing lost: one audit entry per message, and the same messages.
    assert_eq!(audit.len(), sent.len(), "audit entries vs messages sent");
    let by_queue_id: BTreeMap<&str, &Value> = audit
        .values()
        .map(|e| (e["queue_id"].as_str().expect("a queue id"), e))
        .collect();
    assert_eq!(by_queue_id.len(), audit.len(), "a queue id logged twice");

    // Nothing mis-decided.
    let mut decided_by: BTreeMap<u64, usize> = BTreeMap::new();
    for message in &sent {
        let (k, rejected) = seen_generation(message);
        let q = &message.queue_id;
        assert_eq!(rejected, rejects(k, &message.subject), "{q}: {message:?}");
        let entry = by_queue_id
            .get(q.as_str())
            .unwrap_or_else(|| panic!("{q}: no audit entry"));
        let v = entry["ruleset_version"].as_u64().expect("a version");
        assert_eq!(
            generation_of.get(&v),
            Some(&k),
            "{q}: decided by version {v}, the MTA saw generation {k}: {entry}"
        );
        let tag = format!("gen-{k}");
        assert!(
            entry["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == tag.as_str())),
            "{q}: audit entry without {tag}: {entry}"
        );
        let verdict = if rejected { "reject" } else { "accept" };
        assert_eq!(entry["verdict"], verdict, "{q}: {entry}");
        *decided_by.entry(v).or_default() += 1;
    }
    for v in generation_of.keys() {
        assert!(
            decided_by.contains_key(v),
            "version {v} decided no message: {decided_by:?}"
        );
    }
}
