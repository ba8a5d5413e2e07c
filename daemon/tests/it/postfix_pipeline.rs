//! `weir serve` as Postfix's milter *and* its LMTP delivery agent at once
//! (issue #11): each message is decided once, by the milter, per
//! recipient; LMTP carries out the stamped decision. A private Postfix on
//! loopback with `smtpd_milters` and `local_transport` both pointing at one
//! daemon; a webhook receiver on loopback for `notify`; `[relay]` is that
//! Postfix, so an auto-reply is real mail delivered through it.
//!
//! Needs `postfix`, `postsuper`, `postqueue`, `script` and root; without
//! them the test prints `skipped: ...` and passes, unless
//! `WEIR_REQUIRE_MAIL_TOOLS=1` (CI), where it fails.

use crate::postfix_support;
use crate::serve_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postfix_support::{Postfix, missing_mail_tools, send, tool};
use serve_support::{
    Daemon, TempDir, files, free_port, header_values, lmtp_table, temp_dir, write_config,
};

const TOOLS: &[&str] = &["postfix", "postsuper", "postqueue", "script"];

/// How long Postfix gets to deliver (a bound, not a timing assertion).
const PATIENCE: Duration = Duration::from_secs(40);

const RULES: &str = r#"
template got_it {
  subject = "We got your message"
  body = "Thank you."
}
rule lottery {
  when subject contains "You have won"
  then {
    prepend_subject "[SPAM] "
    tag "lottery"
    notify "hook" with {text: "won"}
    reply template got_it
  }
}
rule repeated {
  when rate("from:${envelope.from}", 1h) > 1
  then tag "repeat"
}
rule closed {
  when recipient.local == "closed"
  then reject 550 "5.1.1" "Mailbox closed by weir"
}
rule filed {
  when recipient.local == "bob"
  then fileinto "Lottery"
}
rule held {
  when subject contains "HOLDME"
  then quarantine "held for review"
}
"#;

/// A stamp in the right form whose MAC no key of this daemon made: it
/// claims alice's copy goes into `Forged`.
const FORGED_STAMP: &str = "1.eyJydWxlc2V0X3ZlcnNpb24iOjEsInF1ZXVlX2lkIjoiWCIsImF1ZGl0X2lkIjoxLCJmcm9tIjoibG90dGVyeUBleGFtcGxlLnRlc3QiLCJlZGl0c19hcHBsaWVkIjp0cnVlLCJoZWxkIjpmYWxzZSwib3V0Y29tZXMiOlt7InZlcmRpY3QiOiJhY2NlcHQiLCJmb2xkZXIiOiJGb3JnZWQifV0sInJlY2lwaWVudHMiOltbImFsaWNlQGV4YW1wbGUudGVzdCIsMF1dfQ.eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHg";

/// Webhook posts: the `Idempotency-Key` of each.
struct Receiver {
    port: u16,
    keys: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let keys = Arc::new(Mutex::new(Vec::new()));
        let seen = keys.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || answer(stream, &seen));
            }
        });
        Receiver { port, keys }
    }

    fn keys(&self) -> Vec<String> {
        self.keys.lock().expect("keys").clone()
    }
}

/// Reads requests on one connection and answers each `200`.
fn answer(stream: TcpStream, keys: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let (mut length, mut key) = (0, String::new());
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                if n.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if n.eq_ignore_ascii_case("idempotency-key") {
                    key = v.trim().to_string();
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        keys.lock().expect("keys").push(key);
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        if writer.write_all(ok).is_err() {
            return;
        }
    }
}

/// Waits until `dir` holds `n` files; their paths.
fn wait_files(dir: &Path, n: usize, context: &dyn Fn() -> String) -> Vec<PathBuf> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let found = files(dir);
        if found.len() >= n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than {n} files in {}:\n{}",
            dir.display(),
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("delivered copy")
}

/// The metric line's value, or 0.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

struct Rig {
    daemon: Daemon,
    postfix: Postfix,
    hook: Receiver,
    /// Removed last, after Postfix and the daemon stop.
    dir: TempDir,
}

impl Rig {
    fn start(name: &str) -> Option<Rig> {
        if missing_mail_tools(TOOLS, true).is_some() {
            return None;
        }
        let dir = temp_dir(name);
        std::fs::write(dir.join("rules.flow"), RULES).expect("rules");
        let hook = Receiver::start();
        let lmtp = free_port();
        let smtp = free_port();
        let etc = dir.join("postfix/etc");
        let milter_extra = format!(
            "release = \"{ps} -c {etc} -H {{queue_id}}\"\ndelete = \"{ps} -c {etc} -d {{queue_id}}\"",
            ps = tool("postsuper").display(),
            etc = etc.display()
        );
        let extra = format!(
            "{}\n[notify.hook]\nurl = \"http://127.0.0.1:{}/hook\"\n\n[relay]\nhost = \"inet:127.0.0.1:{smtp}\"\nfrom = \"auto@example.test\"\n",
            lmtp_table(&dir, &format!("inet:127.0.0.1:{lmtp}")),
            hook.port
        );
        let (http, milter) = write_config(&dir, &milter_extra, &extra);
        let daemon = Daemon::start(&dir, http, milter);
        let postfix = Postfix::start(&dir.join("postfix"), smtp, milter, lmtp);
        Some(Rig {
            dir,
            daemon,
            postfix,
            hook,
        })
    }

    fn context(&self) -> String {
        format!(
            "--- postfix.log:\n{}\n--- weir log:\n{}",
            self.postfix.log(),
            self.daemon.log()
        )
    }

    fn mailbox(&self, user: &str) -> PathBuf {
        self.dir.join("mail/example.test").join(user)
    }

    fn audit_for(&self, queue_id: &str) -> Vec<serde_json::Value> {
        let r = self.daemon.get("/v1/actions?limit=1000");
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["entries"]
            .as_array()
            .or(r.json().as_array())
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["queue_id"] == queue_id)
            .collect()
    }
}

#[test]
fn milter_and_lmtp_decide_each_message_once() {
    let Some(rig) = Rig::start("pipeline-once") else {
        return;
    };
    let context = || rig.context();
    let message = "From: Lottery <lottery@example.test>\r\nTo: alice@example.test, bob@example.test\r\nSubject: You have won\r\nMessage-ID: <won-1@example.test>\r\n\r\nClaim your prize.\r\n";
    let sent = send(
        rig.postfix.smtp,
        "lottery@example.test",
        &["alice@example.test", "bob@example.test"],
        message,
    );
    let queue_id = sent.queue_id.clone().expect("Postfix took the message");

    // Each copy: the subject prefixed once, Weir's own trace fields, no
    // stamp left; bob's in his folder (the copies differ, so LMTP made
    // the header edits from the stamp).
    let alice = read(&wait_files(&rig.mailbox("alice/new"), 1, &context)[0]);
    let bob = read(&wait_files(&rig.mailbox("bob/.Lottery/new"), 1, &context)[0]);
    for (who, text) in [("alice", &alice), ("bob", &bob)] {
        assert_eq!(
            header_values(text, "Subject"),
            ["[SPAM] You have won"],
            "{text}"
        );
        assert_eq!(header_values(text, "X-Weir-Tags"), ["lottery"], "{text}");
        assert!(header_values(text, "X-Weir-Stamp").is_empty(), "{text}");
        assert_eq!(
            header_values(text, "Return-Path"),
            ["<lottery@example.test>"]
        );
        assert_eq!(
            header_values(text, "Delivered-To"),
            [format!("{who}@example.test")]
        );
        assert!(text.starts_with("Return-Path: "), "{text}");
    }
    assert_eq!(header_values(&bob, "X-Weir-Folder"), ["Lottery"]);

    // One auto-reply, delivered back to the sender through Postfix.
    let replies = wait_files(&rig.mailbox("lottery/new"), 1, &context);
    // One webhook.
    let deadline = Instant::now() + PATIENCE;
    while rig.hook.keys().is_empty() {
        assert!(Instant::now() < deadline, "no webhook:\n{}", context());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(rig.hook.keys().len(), 1, "{:?}", rig.hook.keys());
    assert_eq!(files(&rig.mailbox("lottery/new")).len(), 1, "{replies:?}");

    // One audit entry for the message, with both recipients' outcomes.
    let entries = rig.audit_for(&queue_id);
    assert_eq!(entries.len(), 1, "{entries:#?}");
    let outcomes = entries[0]["recipients"].as_array().expect("recipients");
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert_eq!(outcomes[1]["folder"], "Lottery");
    // What an operator looks for, and each copy's delivery.
    let e = &entries[0];
    assert_eq!(e["source"], "milter");
    assert_eq!(e["message_id"], "won-1@example.test");
    assert_eq!(e["from"], "lottery@example.test");
    assert_eq!(
        e["to"],
        serde_json::json!(["alice@example.test", "bob@example.test"])
    );
    assert_eq!(e["client"]["ip"], "127.0.0.1", "{e:#}");
    assert!(
        !e["client"]["helo"].as_str().unwrap_or("").is_empty(),
        "{e:#}"
    );
    assert!(e["size"].as_u64().unwrap_or(0) > 50, "{e:#}");
    assert_eq!(e["verdict"], "accept");
    assert_eq!(e["tags"], serde_json::json!(["lottery"]));
    assert!(e["ruleset_version"].as_u64().is_some());
    for outcome in outcomes {
        assert_eq!(outcome["delivery"], "delivered", "{e:#}");
    }
    // One log line for the message, joinable with Postfix's by queue id.
    let log = rig.daemon.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("{queue_id}: client=")))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("verdict=accept"), "{}", lines[0]);
    assert!(lines[0].contains("rules=lottery"), "{}", lines[0]);

    // The rule matched once, for the message; rate() counted it once, so
    // the next message from the sender is the second, not the third.
    let metrics = rig.daemon.get("/metrics").body;
    assert_eq!(
        metric(&metrics, "weir_rule_matches_total{rule=\"lottery\"}"),
        1.0,
        "{metrics}"
    );
    let sent = send(
        rig.postfix.smtp,
        "lottery@example.test",
        &["bob@example.test", "closed@example.test"],
        "From: lottery@example.test\r\nSubject: again\r\nMessage-ID: <won-2@example.test>\r\n\r\nHi\r\n",
    );
    let second = sent.queue_id.expect("Postfix took the second message");
    let copies = wait_files(&rig.mailbox("bob/.Lottery/new"), 2, &context);
    let again = copies
        .iter()
        .map(|p| read(p))
        .find(|t| t.contains("Subject: again"))
        .expect("bob's second copy");
    assert_eq!(header_values(&again, "X-Weir-Tags"), ["repeat"], "{again}");
    assert!(header_values(&alice, "X-Weir-Tags") == ["lottery"]);
    // closed: refused at delivery for that recipient only (the MTA
    // bounces it), as with LMTP alone.
    rig.postfix.wait_log(
        &[
            "to=<closed@example.test>",
            "status=bounced",
            "Mailbox closed by weir",
        ],
        PATIENCE,
    );
    assert!(!rig.mailbox("closed").exists());
    assert_eq!(rig.audit_for(&second).len(), 1);
}

#[test]
fn forged_stamps_are_removed_and_ignored() {
    let Some(rig) = Rig::start("pipeline-forged") else {
        return;
    };
    let context = || rig.context();
    // Through Postfix: the milter removes the incoming copy.
    let message = format!(
        "From: x@example.test\r\nSubject: plain\r\nX-Weir-Stamp: {FORGED_STAMP}\r\n\r\nHi\r\n"
    );
    send(
        rig.postfix.smtp,
        "lottery@example.test",
        &["alice@example.test"],
        &message,
    );
    let copy = read(&wait_files(&rig.mailbox("alice/new"), 1, &context)[0]);
    assert!(header_values(&copy, "X-Weir-Stamp").is_empty(), "{copy}");
    assert!(!rig.mailbox("alice/.Forged").exists());

    // Straight to LMTP (no milter): removed, and the message evaluated.
    let lmtp = rig.postfix_lmtp_port();
    let mut s = TcpStream::connect(("127.0.0.1", lmtp)).expect("lmtp");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    let mut expect = |r: &mut BufReader<TcpStream>, code: &str| {
        line.clear();
        loop {
            line.clear();
            r.read_line(&mut line).expect("reply");
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                break;
            }
        }
        assert!(line.starts_with(code), "wanted {code}, got {line}");
    };
    expect(&mut r, "220");
    for (cmd, code) in [
        ("LHLO test\r\n", "250"),
        ("MAIL FROM:<lottery@example.test>\r\n", "250"),
        ("RCPT TO:<alice@example.test>\r\n", "250"),
        ("DATA\r\n", "354"),
    ] {
        s.write_all(cmd.as_bytes()).expect("write");
        expect(&mut r, code);
    }
    let data = format!(
        "Subject: You have won\r\nX-Weir-Stamp: {FORGED_STAMP}\r\nX-Weir-Stamp: 1.junk\r\n\r\nHi\r\n.\r\n"
    );
    s.write_all(data.as_bytes()).expect("write");
    expect(&mut r, "250");
    let copies = wait_files(&rig.mailbox("alice/new"), 2, &context);
    let direct = copies
        .iter()
        .map(|p| read(p))
        .find(|t| t.contains("You have won"))
        .expect("the direct copy");
    assert!(
        header_values(&direct, "X-Weir-Stamp").is_empty(),
        "{direct}"
    );
    // Evaluated: the rules' edits, not the forged folder.
    assert_eq!(
        header_values(&direct, "Subject"),
        ["[SPAM] You have won"],
        "{direct}"
    );
    assert!(!rig.mailbox("alice/.Forged").exists());
    assert!(
        rig.daemon.log().contains("X-Weir-Stamp"),
        "the removal is logged"
    );
}

#[test]
fn a_message_released_from_the_hold_queue_is_delivered_once() {
    let Some(rig) = Rig::start("pipeline-release") else {
        return;
    };
    let context = || rig.context();
    let sent = send(
        rig.postfix.smtp,
        "lottery@example.test",
        &["alice@example.test", "bob@example.test"],
        "From: x@example.test\r\nSubject: HOLDME please\r\n\r\nHi\r\n",
    );
    let queue_id = sent.queue_id.expect("Postfix took the message");
    let deadline = Instant::now() + PATIENCE;
    while !rig.postfix.held().contains(&queue_id) {
        assert!(Instant::now() < deadline, "not held:\n{}", context());
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = rig.daemon.request(
        "POST",
        &format!("/v1/quarantine/{queue_id}/release"),
        true,
        b"",
    );
    assert_eq!(r.status, 200, "{}\n{}", r.body, context());
    rig.postfix.flush();
    let alice = wait_files(&rig.mailbox("alice/new"), 1, &context);
    wait_files(&rig.mailbox("bob/.Lottery/new"), 1, &context);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(files(&rig.mailbox("alice/new")).len(), 1, "{alice:?}");
    // Not held again by LMTP: the quarantine is empty.
    let listed = rig.daemon.get("/v1/quarantine").json();
    let listed = listed
        .as_array()
        .cloned()
        .or_else(|| listed["items"].as_array().cloned())
        .unwrap_or_default();
    assert!(listed.is_empty(), "{listed:?}\n{}", context());
    // The decision and the release, nothing decided at delivery.
    let entries = rig.audit_for(&queue_id);
    let kinds: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["source"].as_str().unwrap_or(""),
                e["quarantine"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("milter", ""), ("milter", "released")],
        "{entries:#?}"
    );
}

impl Rig {
    /// The daemon's LMTP port, from `weir.toml`.
    fn postfix_lmtp_port(&self) -> u16 {
        let config = std::fs::read_to_string(self.dir.join("weir.toml")).expect("config");
        config
            .lines()
            .skip_while(|l| l.trim() != "[lmtp]")
            .find_map(|l| l.trim().strip_prefix("listen = \"inet:127.0.0.1:"))
            .and_then(|p| p.trim_end_matches('"').parse().ok())
            .expect("[lmtp] listen")
    }
}
