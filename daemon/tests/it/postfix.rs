//! `weir serve` behind a real Postfix (issue #4): each test starts its own
//! Postfix instance on loopback whose `smtpd_milters` is the daemon, an LMTP
//! sink that Postfix delivers to, and speaks SMTP to Postfix.
//!
//! Needs `postfix`, `postsuper`, `postqueue`, `postcat`, `script` and root;
//! without them each test prints `skipped: ...` and passes, unless
//! `WEIR_REQUIRE_MAIL_TOOLS=1` (CI), where it fails.

use crate::postfix_support;
use crate::serve_support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postfix_support::{Delivered, LmtpSink, Postfix, Smtp, missing_mail_tools, send, tool};
use serve_support::{Daemon, TempDir, free_port, temp_dir, write_config};

const TOOLS: &[&str] = &["postfix", "postsuper", "postqueue", "postcat", "script"];

/// How long Postfix gets to deliver or hold a message (a bound, not a
/// timing assertion: delivery normally takes milliseconds).
const PATIENCE: Duration = Duration::from_secs(40);

/// One rule per action the tests drive through Postfix, keyed by sender,
/// recipient, body or subject so that each message triggers one rule.
const RULES: &str = r#"
rule blocked_sender priority 10 {
  when envelope.from.domain == "blocked.test"
  then reject 554 "5.7.3" "Sender blocked by weir"
}
rule closed_mailbox priority 20 {
  when envelope.to.local == "closed"
  then reject 550 "5.1.1" "Mailbox closed by weir"
}
rule busy_mailbox priority 20 {
  when envelope.to.local == "busy"
  then tempfail 450 "4.2.1" "Mailbox busy, try later"
}
rule body_virus {
  when body contains "EICAR-TEST"
  then reject 554 "5.7.9" "Body rule: virus found (100% sure)"
}
rule body_multiline {
  when body contains "MULTILINE"
  then reject 554 "5.7.9" "first line\nsecond line"
}
rule body_later {
  when body contains "SLOWDOWN"
  then tempfail 452 "4.3.1" "Body rule: come back later"
}
rule held {
  when subject contains "HOLDME"
  then { tag "held"; quarantine "suspicious subject" }
}
rule dropped {
  when subject contains "DROPME"
  then discard
}
rule marked {
  when subject contains "billing"
  then {
    add_header "X-Checked" "yes"
    set_header "X-Priority" "1"
    remove_header "X-Spam-Junk"
    tag "billing"
    tag "vip"
    fileinto "Support/Billing"
    prepend_subject "[B] "
  }
}
rule rerouted {
  when subject contains "REDIRECT"
  then redirect "archive@example.test"
}
rule copied {
  when subject contains "COPYME"
  then { add_rcpt "audit@example.test"; remove_rcpt "bob@example.test" }
}
"#;

/// A daemon, a Postfix in front of it and the sink behind it. Fields drop
/// in order: Postfix stops before the daemon and the sink go away.
struct Rig {
    postfix: Postfix,
    daemon: Daemon,
    sink: LmtpSink,
    /// The packet log when Postfix talks to the daemon through a [`Tap`].
    tap: Option<Tap>,
    /// Removed after Postfix and the daemon stop.
    _dir: TempDir,
}

impl Rig {
    /// Starts everything, or `None` when the mail tools are missing (the
    /// test is then skipped, see the module docs). With `tap`, Postfix's
    /// milter connections go through a recording relay.
    fn start(name: &str, rules: &str, tap: bool) -> Option<Rig> {
        if missing_mail_tools(TOOLS, true).is_some() {
            return None;
        }
        let dir = temp_dir(&format!("postfix-{name}"));
        std::fs::write(dir.join("rules.flow"), rules).expect("rules");
        let pf_dir = dir.join("postfix");
        let etc = pf_dir.join("etc");
        let postsuper = tool("postsuper");
        // Release and delete act on this test's instance only.
        let milter_extra = format!(
            "release = \"{ps} -c {etc} -H {{queue_id}}\"\ndelete = \"{ps} -c {etc} -d {{queue_id}} hold\"",
            ps = postsuper.display(),
            etc = etc.display()
        );
        let (http, milter) = write_config(&dir, &milter_extra, "");
        let daemon = Daemon::start(&dir, http, milter);
        let sink = LmtpSink::start();
        let tap = tap.then(|| Tap::start(milter));
        let milter_port = tap.as_ref().map_or(milter, |t| t.port);
        let postfix = Postfix::start(&pf_dir, free_port(), milter_port, sink.port);
        Some(Rig {
            postfix,
            daemon,
            sink,
            tap,
            _dir: dir,
        })
    }

    /// Everything worth reading when a test fails.
    fn context(&self) -> String {
        format!(
            "--- postfix.log:\n{}\n--- postqueue -p:\n{}\n--- weir log:\n{}",
            self.postfix.log(),
            self.postfix.queue_text(),
            self.daemon.log()
        )
    }

    /// Waits for a delivered message whose Subject contains `subject`.
    fn delivered(&self, subject: &str) -> Delivered {
        self.sink.wait_for(PATIENCE, &|| self.context(), |m| {
            m.header("Subject").iter().any(|s| s.contains(subject))
        })
    }

    fn send(&self, from: &str, to: &[&str], message: &str) -> postfix_support::Sent {
        send(self.postfix.smtp, from, to, message)
    }
}

/// A small RFC 5322 message.
fn message(subject: &str, extra_headers: &str, body: &str) -> String {
    format!(
        "From: Sender <sender@example.org>\r\nTo: bob@example.test\r\nSubject: {subject}\r\nMessage-ID: <{}@example.org>\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\n{extra_headers}\r\n{body}",
        subject
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '.' })
            .collect::<String>()
    )
}

#[test]
fn envelope_rules_are_answered_before_the_content_is_sent() {
    let Some(rig) = Rig::start("envelope", RULES, false) else {
        return;
    };
    // A sender rule is final at MAIL FROM: Postfix relays the custom reply
    // to that command, and no recipient is ever asked for.
    let sent = rig.send(
        "spammer@blocked.test",
        &["bob@example.test"],
        &message("hi", "", "hello\r\n"),
    );
    let mail = sent.reply("MAIL FROM").expect("MAIL FROM sent");
    assert_eq!(
        (mail.code, mail.text.as_str()),
        (554, "5.7.3 Sender blocked by weir"),
        "{sent:?}\n{}",
        rig.context()
    );
    assert!(
        sent.reply("RCPT").is_none() && sent.queue_id.is_none(),
        "{sent:?}"
    );

    // A recipient rule is final only once every recipient is known
    // (docs/language.md ("Stages")): each RCPT TO gets 250, and the custom reply comes
    // back to DATA, before any content is transferred (no 354).
    let sent = rig.send(
        "alice@example.org",
        &["bob@example.test", "closed@example.test"],
        &message("hi", "", "hello\r\n"),
    );
    let rcpts: Vec<u16> = sent
        .transcript
        .iter()
        .filter(|(c, _)| c.starts_with("RCPT"))
        .map(|(_, r)| r.code)
        .collect();
    assert_eq!(rcpts, [250, 250], "{sent:?}");
    let data = sent.reply("DATA").expect("DATA sent");
    assert_eq!(
        (data.code, data.text.as_str()),
        (550, "5.1.1 Mailbox closed by weir"),
        "{sent:?}\n{}",
        rig.context()
    );
    assert!(
        sent.reply(".").is_none() && sent.queue_id.is_none(),
        "{sent:?}"
    );

    // tempfail keeps its custom 4xx code and status.
    let sent = rig.send(
        "alice@example.org",
        &["busy@example.test"],
        &message("hi", "", "hello\r\n"),
    );
    let data = sent.reply("DATA").expect("DATA sent");
    assert_eq!(
        (data.code, data.text.as_str()),
        (450, "4.2.1 Mailbox busy, try later"),
        "{sent:?}"
    );

    // Postfix names the stage in its log.
    rig.postfix.wait_log(
        &["milter-reject: MAIL from", "Sender blocked by weir"],
        PATIENCE,
    );
    rig.postfix.wait_log(
        &["milter-reject: DATA from", "5.1.1 Mailbox closed by weir"],
        PATIENCE,
    );
    // The audit log has the stage that decided and Postfix's queue id,
    // which exists from the first accepted RCPT on (Postfix's default
    // `smtpd_delay_open_until_valid_rcpt = yes`), so not at MAIL FROM.
    let audit = rig.daemon.get("/v1/actions?verdict=reject").json();
    let stages: Vec<(&str, bool)> = audit
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| {
            (
                e["stage"].as_str().unwrap_or(""),
                e["queue_id"].as_str().is_some_and(|q| !q.is_empty()),
            )
        })
        .collect();
    assert_eq!(stages, [("mail", false), ("rcpt", true)], "{audit:#}");
}

#[test]
fn body_rules_reject_or_tempfail_after_the_content() {
    let Some(rig) = Rig::start("body", RULES, false) else {
        return;
    };
    for (body, code, text) in [
        // `%` reaches the client as is (it is Postfix's escape character).
        (
            "X5O!P%@AP EICAR-TEST here\r\n",
            554,
            "5.7.9 Body rule: virus found (100% sure)",
        ),
        // A multi-line text becomes a multi-line reply.
        ("MULTILINE\r\n", 554, "5.7.9 first line\n5.7.9 second line"),
        (
            "please SLOWDOWN a bit\r\n",
            452,
            "4.3.1 Body rule: come back later",
        ),
    ] {
        let sent = rig.send(
            "alice@example.org",
            &["bob@example.test"],
            &message("a body rule", "", body),
        );
        let codes: Vec<u16> = sent.transcript.iter().map(|(_, r)| r.code).collect();
        // MAIL, RCPT and DATA pass; the verdict answers the final dot.
        assert_eq!(codes[..3], [250, 250, 354], "{sent:?}\n{}", rig.context());
        let end = sent.reply(".").expect("content sent");
        assert_eq!((end.code, end.text.as_str()), (code, text), "{sent:?}");
        assert_eq!(sent.queue_id, None);
    }
    rig.postfix.wait_log(
        &[
            "milter-reject: END-OF-MESSAGE",
            "5.7.9 Body rule: virus found (100% sure)",
        ],
        PATIENCE,
    );
    rig.postfix.wait_log(
        &[
            "milter-reject: END-OF-MESSAGE",
            "4.3.1 Body rule: come back later",
        ],
        PATIENCE,
    );
}

#[test]
fn accepted_mail_is_delivered_with_the_edits() {
    let Some(rig) = Rig::start("deliver", RULES, false) else {
        return;
    };
    // Headers: added, set (replacing two copies), removed, subject
    // rewritten; tags and folder as headers; forged Weir headers removed.
    let extra = "X-Priority: 5\r\nX-Priority: 4\r\nX-Spam-Junk: yes\r\nX-Weir-Tags: forged\r\nX-Weir-Folder: Evil\r\n";
    let sent = rig.send(
        "alice@example.org",
        &["bob@example.test"],
        &message("billing question", extra, "Line one\r\n.dotted line\r\n"),
    );
    assert!(sent.queue_id.is_some(), "{sent:?}\n{}", rig.context());
    let m = rig.delivered("billing question");
    let ctx = || format!("{}\n{}", m.data, rig.context());
    assert_eq!(m.header("Subject"), ["[B] billing question"], "{}", ctx());
    assert_eq!(m.header("X-Checked"), ["yes"], "{}", ctx());
    assert_eq!(m.header("X-Priority"), ["1"], "{}", ctx());
    assert!(m.header("X-Spam-Junk").is_empty(), "{}", ctx());
    assert_eq!(m.header("X-Weir-Tags"), ["billing, vip"], "{}", ctx());
    assert_eq!(m.header("X-Weir-Folder"), ["Support/Billing"], "{}", ctx());
    assert_eq!(m.rcpts, ["bob@example.test"]);
    assert!(
        m.data.ends_with("\r\n\r\nLine one\r\n.dotted line\r\n"),
        "{}",
        ctx()
    );

    // A folded Subject keeps its folding after the rewrite.
    rig.send(
        "alice@example.org",
        &["bob@example.test"],
        &message("billing folded\r\n\tsecond line", "", "hi\r\n"),
    );
    let m = rig.delivered("billing folded");
    assert_eq!(
        m.header("Subject"),
        ["[B] billing folded\tsecond line"],
        "{}\n{}",
        m.data,
        rig.context()
    );

    // No rule: delivered as sent, except that a forged tag header goes.
    rig.send(
        "alice@example.org",
        &["bob@example.test"],
        &message("plain hello", "X-Weir-Tags: forged\r\n", "hi\r\n"),
    );
    let m = rig.delivered("plain hello");
    assert_eq!(m.header("Subject"), ["plain hello"]);
    assert!(m.header("X-Weir-Tags").is_empty(), "{}", m.data);
    assert!(m.header("X-Checked").is_empty(), "{}", m.data);

    // Several messages in one SMTP session: nothing of one decision leaks
    // into the next (Postfix aborts the milter transaction in between).
    let mut smtp = Smtp::connect(rig.postfix.smtp);
    let first = smtp.send(
        "spammer@blocked.test",
        &["bob@example.test"],
        &message("session zero", "", "hi\r\n"),
    );
    assert_eq!(first.reply("MAIL").map(|r| r.code), Some(554), "{first:?}");
    smtp.send(
        "alice@example.org",
        &["bob@example.test"],
        &message("billing session one", "", "hi\r\n"),
    );
    smtp.send(
        "alice@example.org",
        &["bob@example.test"],
        &message("session two", "", "hi\r\n"),
    );
    smtp.quit();
    let one = rig.delivered("billing session one");
    assert_eq!(one.header("X-Weir-Tags"), ["billing, vip"], "{}", one.data);
    let two = rig.delivered("session two");
    assert!(two.header("X-Weir-Tags").is_empty(), "{}", two.data);
    assert_eq!(two.header("Subject"), ["session two"], "{}", two.data);

    // Envelope edits: redirect replaces every recipient.
    rig.send(
        "alice@example.org",
        &["bob@example.test", "carol@example.test"],
        &message("REDIRECT me", "", "hi\r\n"),
    );
    let m = rig.delivered("REDIRECT me");
    assert_eq!(m.rcpts, ["archive@example.test"], "{}", rig.context());

    // add_rcpt and remove_rcpt.
    rig.send(
        "alice@example.org",
        &["bob@example.test", "carol@example.test"],
        &message("COPYME please", "", "hi\r\n"),
    );
    let m = rig.delivered("COPYME please");
    let mut rcpts = m.rcpts.clone();
    rcpts.sort();
    assert_eq!(
        rcpts,
        ["audit@example.test", "carol@example.test"],
        "{}",
        rig.context()
    );

    // discard: Postfix says 250 to the client and drops the message.
    let sent = rig.send(
        "alice@example.org",
        &["bob@example.test"],
        &message("DROPME now", "", "hi\r\n"),
    );
    assert_eq!(sent.reply(".").map(|r| r.code), Some(250), "{sent:?}");
    let id = sent.queue_id.expect("a queue id");
    rig.postfix
        .wait_log(&[&id, "milter-discard: END-OF-MESSAGE"], PATIENCE);
    // cleanup drops it before it is queued.
    let queued = rig.postfix.queue();
    assert!(
        !queued.iter().any(|m| m["queue_id"] == id.as_str()),
        "{queued:?}"
    );

    // The redirected and the copied messages reached nobody else.
    for m in rig.sink.messages() {
        let subject = m.header("Subject").join(" ");
        if subject.contains("REDIRECT") || subject.contains("COPYME") {
            assert!(!m.rcpts.iter().any(|r| r == "bob@example.test"), "{m:?}");
        }
        assert!(
            !subject.contains("DROPME"),
            "a discarded message arrived: {m:?}"
        );
    }
}

#[test]
fn quarantine_holds_in_postfix_and_the_api_releases_or_deletes() {
    let Some(rig) = Rig::start("quarantine", RULES, false) else {
        return;
    };
    let mut ids = Vec::new();
    for subject in ["HOLDME one", "HOLDME two"] {
        let sent = rig.send(
            "alice@example.org",
            &["bob@example.test"],
            &message(subject, "", "hi\r\n"),
        );
        let end = sent.reply(".").expect("content sent");
        assert_eq!(end.code, 250, "{sent:?}\n{}", rig.context());
        ids.push(sent.queue_id.expect("a queue id"));
    }
    // Both sit in Postfix's hold queue.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut held = rig.postfix.held();
        held.sort();
        let mut want = ids.clone();
        want.sort();
        if held == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "held {held:?}, want {want:?}\n{}",
            rig.context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let listing = rig.postfix.queue_text();
    for id in &ids {
        assert!(
            listing.contains(&format!("{id}!")),
            "postqueue -p marks held mail with !:\n{listing}"
        );
    }
    let headers = rig.postfix.queued_headers(&ids[0]);
    assert!(headers.contains("Subject: HOLDME one"), "{headers}");
    assert!(
        headers.contains("X-Weir-Tags: held"),
        "edits apply to held mail too:\n{headers}"
    );
    rig.postfix
        .wait_log(&[&ids[0], "milter-hold: END-OF-MESSAGE"], PATIENCE);

    // Weir's API lists them with the rule that held them.
    let list = rig.daemon.get("/v1/quarantine").json();
    let listed: HashMap<String, (String, String, String)> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|q| {
            let s = |k: &str| q[k].as_str().unwrap_or("").to_string();
            (s("id"), (s("rule"), s("reason"), s("subject")))
        })
        .collect();
    assert_eq!(listed.len(), 2, "{list:#}");
    assert_eq!(
        listed[&ids[0]],
        (
            "held".into(),
            "suspicious subject".into(),
            "HOLDME one".into()
        )
    );
    assert_eq!(listed[&ids[1]].0, "held");

    // Release: postsuper -H moves it out of hold, and it is delivered.
    let r = rig.daemon.request(
        "POST",
        &format!("/v1/quarantine/{}/release", ids[0]),
        true,
        b"",
    );
    assert_eq!(r.status, 200, "{}\n{}", r.body, rig.context());
    assert_eq!(r.json()["status"], "released");
    rig.postfix.flush();
    let m = rig.delivered("HOLDME one");
    assert_eq!(m.rcpts, ["bob@example.test"]);
    assert_eq!(m.header("X-Weir-Tags"), ["held"]);

    // Delete: postsuper -d removes the other from the queue.
    let r = rig
        .daemon
        .request("DELETE", &format!("/v1/quarantine/{}", ids[1]), true, b"");
    assert_eq!(r.status, 200, "{}\n{}", r.body, rig.context());
    assert_eq!(r.json()["status"], "deleted");
    let queued: Vec<serde_json::Value> = rig.postfix.queue();
    assert!(
        !queued.iter().any(|m| m["queue_id"] == ids[1].as_str()),
        "{queued:?}"
    );
    assert_eq!(
        rig.daemon.get("/v1/quarantine").json(),
        serde_json::json!([])
    );
    // An id that is no longer held is 404, not a postsuper run.
    let r = rig
        .daemon
        .request("DELETE", &format!("/v1/quarantine/{}", ids[1]), true, b"");
    assert_eq!(r.status, 404, "{}", r.body);
    rig.postfix.wait_log(&[&ids[1], "removed"], PATIENCE);
    // The deleted one never reaches the sink.
    for m in rig.sink.messages() {
        assert!(
            !m.header("Subject").iter().any(|s| s.contains("HOLDME two")),
            "{m:?}"
        );
    }
}

/// Sends HOLDME messages from `from` through Postfix and waits until all
/// of them are in its hold queue; their queue ids.
fn hold_messages(rig: &Rig, from: &str, subjects: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for subject in subjects {
        let sent = rig.send(from, &["bob@example.test"], &message(subject, "", "hi\r\n"));
        let end = sent.reply(".").expect("content sent");
        assert_eq!(end.code, 250, "{sent:?}\n{}", rig.context());
        ids.push(sent.queue_id.expect("a queue id"));
    }
    let deadline = Instant::now() + PATIENCE;
    while !ids.iter().all(|id| rig.postfix.held().contains(id)) {
        assert!(Instant::now() < deadline, "not held:\n{}", rig.context());
        std::thread::sleep(Duration::from_millis(100));
    }
    ids
}

/// The `status` of each entry of `/v1/quarantine`, by id.
fn quarantine_status(rig: &Rig) -> HashMap<String, String> {
    let list = rig.daemon.get("/v1/quarantine").json();
    list.as_array()
        .expect("a list")
        .iter()
        .map(|q| {
            let s = |k: &str| q[k].as_str().unwrap_or("").to_string();
            (s("id"), s("status"))
        })
        .collect()
}

/// Sends one message through the daemon's milter as a local client that
/// speaks the protocol would, claiming queue id `queue_id`.
fn milter_plant(port: u16, from: &str, queue_id: &str) {
    use weir::milter_client::Mail;
    let mail = Mail {
        helo: "intruder.example.test".into(),
        from: from.into(),
        to: vec!["bob@example.test".into()],
        headers: vec![("Subject".into(), "HOLDME planted".into())],
        body: b"hi\r\n".to_vec(),
        queue_id: queue_id.into(),
        ..Mail::default()
    };
    serve_support::milter_reply(port, &mail).expect("the milter answers");
}

#[test]
fn a_message_deleted_by_hand_is_gone_and_planted_ids_never_reach_postsuper() {
    let Some(rig) = Rig::start("quarantine-gone", RULES, false) else {
        return;
    };
    let ids = hold_messages(
        &rig,
        "alice@example.org",
        &["HOLDME by hand", "HOLDME other", "HOLDME kept"],
    );
    // An administrator deletes one with postsuper, outside Weir.
    postfix_support::run_ok(
        std::process::Command::new(tool("postsuper"))
            .arg("-c")
            .arg(rig.postfix.etc())
            .args(["-d", &ids[0]]),
    );
    // A local process plants entries through the milter: Postfix's
    // keyword, and the id of someone else's held message.
    milter_plant(rig.daemon.milter, "mallory@example.net", "ALL");
    milter_plant(rig.daemon.milter, "mallory@example.net", &ids[1]);

    let status = quarantine_status(&rig);
    assert_eq!(status[&ids[0]], "gone", "{status:?}\n{}", rig.context());
    assert_eq!(status["ALL"], "gone", "{status:?}");
    assert_eq!(status[&ids[1]], "gone", "{status:?}");
    assert_eq!(status[&ids[2]], "held", "{status:?}");

    for id in [ids[0].as_str(), "ALL", ids[1].as_str()] {
        let r = rig
            .daemon
            .request("POST", &format!("/v1/quarantine/{id}/release"), true, b"");
        assert_eq!(r.status, 409, "release {id}: {}", r.body);
        assert_eq!(r.json()["status"], "gone");
        let r = rig
            .daemon
            .request("DELETE", &format!("/v1/quarantine/{id}"), true, b"");
        assert_eq!(r.status, 409, "delete {id}: {}", r.body);
    }
    // Nothing else left the hold queue: no `postsuper -d ALL`, no release
    // of the message whose id was planted.
    let mut held = rig.postfix.held();
    held.sort();
    let mut want = vec![ids[1].clone(), ids[2].clone()];
    want.sort();
    assert_eq!(held, want, "{}", rig.context());

    // The real one is released, once.
    let r = rig.daemon.request(
        "POST",
        &format!("/v1/quarantine/{}/release", ids[2]),
        true,
        b"",
    );
    assert_eq!(r.status, 200, "{}\n{}", r.body, rig.context());
    assert_eq!(r.json()["status"], "released");
    rig.postfix.flush();
    rig.delivered("HOLDME kept");
    assert_eq!(rig.postfix.held(), [ids[1].clone()]);
}

/// Rules that read the envelope and the headers, never the body.
const NO_BODY_RULES: &str = r#"
rule blocked_sender {
  when envelope.from.domain == "blocked.test"
  then reject "no"
}
rule internal {
  when envelope.to.domain == "example.test" and subject contains "report"
  then tag "report"
}
"#;

#[test]
fn unneeded_stages_cost_no_stall_and_the_body_is_skipped() {
    let Some(rig) = Rig::start("stages", NO_BODY_RULES, true) else {
        return;
    };
    let tap = rig.tap.as_ref().expect("tapped");
    // A 200 KiB body: Postfix sends bodies in chunks of at most 64 KiB.
    let line = format!("{}\r\n", "b".repeat(98));
    let big_body = line.repeat(2048);
    let sent = rig.send(
        "alice@example.org",
        &["bob@example.test"],
        &message("big report", "", &big_body),
    );
    assert!(sent.queue_id.is_some(), "{sent:?}\n{}", rig.context());
    let m = rig.delivered("big report");
    assert_eq!(m.header("X-Weir-Tags"), ["report"]);
    assert!(
        m.data.ends_with(&format!("\r\n\r\n{big_body}")),
        "the skipped body is delivered whole ({} bytes)",
        m.data.len()
    );

    // Then a few small ones, timed loosely (printed, not asserted).
    let mut times = Vec::new();
    for i in 0..20 {
        let started = Instant::now();
        let sent = rig.send(
            "alice@example.org",
            &["bob@example.test"],
            &message(&format!("report {i}"), "", "short\r\n"),
        );
        times.push(started.elapsed());
        assert!(sent.queue_id.is_some(), "{sent:?}");
    }
    times.sort();
    eprintln!(
        "postfix+weir: one SMTP session per message, median {:?}, max {:?} (20 messages; a median near 40 ms or more would mean a stalled macro)",
        times[times.len() / 2],
        times[times.len() - 1]
    );

    let sessions = tap.sessions();
    let big = sessions
        .iter()
        .find(|s| s.iter().any(|p| p.mta && p.cmd == b'B'))
        .expect("a session with a body");
    // 1. Weir negotiates no SMFIP_NO* step (connect, helo, mail, rcpt,
    //    body, headers, eoh, data) and asks for SMFIR_SKIP.
    assert!(
        big.iter().any(|p| !p.mta && p.cmd == b'O'),
        "the negotiation was seen\n{}",
        Tap::render(big)
    );
    for session in &sessions {
        let Some(opts) = session.iter().find(|p| !p.mta && p.cmd == b'O') else {
            continue;
        };
        let flags = u32::from_be_bytes(opts.data[8..12].try_into().expect("flags"));
        assert_eq!(flags & 0x27f, 0, "no step negotiated away: {flags:#x}");
        assert_eq!(flags & 0x400, 0x400, "SMFIP_SKIP asked for: {flags:#x}");
        // These rules refuse only at MAIL: every other reply but the
        // body's (for the skip) is negotiated away (SMFIP_NR_*), and
        // Postfix honours that (3. below).
        let quiet = no_reply_commands(flags);
        assert_eq!(quiet, b"CHRTLNU", "replies negotiated away: {flags:#x}");
    }
    // 2. Every macro packet Postfix sends is followed at once by the
    //    command it belongs to: no stage's macros are left waiting for a
    //    command that never comes (the delayed-ACK stall).
    for session in &sessions {
        let from_mta: Vec<&Packet> = session.iter().filter(|p| p.mta).collect();
        for pair in from_mta.windows(2) {
            if pair[0].cmd == b'D' {
                let stage = pair[0].data.first().copied().unwrap_or(0);
                assert_eq!(
                    pair[1].cmd,
                    stage,
                    "macros for {:?} followed by {:?}\n{}",
                    stage as char,
                    pair[1].cmd as char,
                    Tap::render(session)
                );
            }
        }
        // 3. Postfix never sends a second command that wants an answer
        //    before Weir answered the first, and wants none where the
        //    answer was negotiated away.
        let quiet = session
            .iter()
            .find(|p| !p.mta && p.cmd == b'O')
            .map(|o| {
                no_reply_commands(u32::from_be_bytes(o.data[8..12].try_into().expect("flags")))
            })
            .unwrap_or_default();
        let mut waiting: Option<u8> = None;
        for p in session {
            if p.mta {
                if let Some(cmd) = waiting {
                    panic!(
                        "{:?} sent while {:?} is unanswered\n{}",
                        p.cmd as char,
                        cmd as char,
                        Tap::render(session)
                    );
                }
                // Macros, abort, quit and the commands whose reply was
                // negotiated away get no reply.
                if !matches!(p.cmd, b'D' | b'A' | b'Q') && !quiet.contains(&p.cmd) {
                    waiting = Some(p.cmd);
                }
            } else if !matches!(p.cmd, b'h' | b'm' | b'i' | b'+' | b'-' | b'q' | b'p') {
                // A modification is not the answer; anything else is.
                waiting = None;
            }
        }
    }
    // 4. No rule reads the body: Weir answers the first chunk with
    //    SMFIR_SKIP and Postfix sends no further chunk.
    let chunks = big.iter().filter(|p| p.mta && p.cmd == b'B').count();
    let body_replies: Vec<u8> = big
        .windows(2)
        .filter(|w| w[0].mta && w[0].cmd == b'B')
        .map(|w| w[1].cmd)
        .collect();
    assert_eq!(
        (chunks, body_replies.as_slice()),
        (1, &b"s"[..]),
        "{}",
        Tap::render(big)
    );
    // 5. Postfix logged no milter trouble (timeouts, protocol errors).
    let log = rig.postfix.log();
    let trouble: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("warning") || l.contains("timeout") || l.contains("milter8"))
        .collect();
    assert!(trouble.is_empty(), "{trouble:#?}\n{log}");
}

#[test]
fn packets_without_a_reply_wait_for_no_delayed_ack() {
    // Straight from Postfix to Weir (no tap, whose own ACKs would be
    // timed): Postfix writes each milter packet on its own with Nagle's
    // algorithm on, so a packet whose reply is negotiated away (connect,
    // HELO, recipients, headers here) holds the next one until Weir ACKs
    // it. Weir ACKs at once (TCP_QUICKACK); a delayed ACK would add at
    // least 40 ms to every message.
    let Some(rig) = Rig::start("quickack", NO_BODY_RULES, false) else {
        return;
    };
    let mut times = Vec::new();
    for i in 0..21 {
        let started = Instant::now();
        let sent = rig.send(
            "alice@example.org",
            &["bob@example.test", "carol@example.test"],
            &message(
                &format!("report {i}"),
                "X-One: 1\r\nX-Two: 2\r\n",
                "short\r\n",
            ),
        );
        times.push(started.elapsed());
        assert!(sent.queue_id.is_some(), "{sent:?}\n{}", rig.context());
    }
    times.sort();
    let median = times[times.len() / 2];
    eprintln!(
        "postfix+weir, no tap: median {median:?}, max {:?}",
        times[times.len() - 1]
    );
    assert!(
        median < Duration::from_millis(40),
        "one SMTP session per message took {median:?} at the median: a packet waited for a delayed ACK\n{times:?}"
    );
}

/// The commands whose reply the negotiated protocol options `flags` do
/// away with (`SMFIP_NR_*`), in protocol order.
fn no_reply_commands(flags: u32) -> Vec<u8> {
    let no_reply = [
        (b'C', 0x1000),
        (b'H', 0x2000),
        (b'M', 0x4000),
        (b'R', 0x8000),
        (b'T', 0x1_0000),
        (b'L', 0x80),
        (b'N', 0x4_0000),
        (b'B', 0x8_0000),
        (b'U', 0x2_0000),
    ];
    no_reply
        .iter()
        .filter(|(_, flag)| flags & flag != 0)
        .map(|(cmd, _)| *cmd)
        .collect()
}

/// One milter packet seen by the [`Tap`].
#[derive(Debug, Clone)]
struct Packet {
    /// From Postfix (true) or from Weir.
    mta: bool,
    cmd: u8,
    data: Vec<u8>,
}

/// The packets of one milter connection, in order.
type SessionLog = Arc<Mutex<Vec<Packet>>>;

/// A relay between Postfix and the daemon that logs every milter packet of
/// every connection, in the order they crossed. Each packet is logged
/// before it is forwarded, so the log order is the causal order.
struct Tap {
    port: u16,
    sessions: Arc<Mutex<Vec<SessionLog>>>,
}

impl Tap {
    fn start(target: u16) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind tap");
        let port = listener.local_addr().expect("addr").port();
        let sessions: Arc<Mutex<Vec<SessionLog>>> = Arc::default();
        let all = sessions.clone();
        // The thread ends with the test process; it holds no resource a
        // later test needs.
        std::thread::spawn(move || {
            for mta in listener.incoming().flatten() {
                let Ok(milter) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let log: SessionLog = Arc::default();
                all.lock().expect("sessions").push(log.clone());
                for s in [&mta, &milter] {
                    let _ = s.set_nodelay(true);
                }
                let (mta2, milter2) = (
                    mta.try_clone().expect("clone"),
                    milter.try_clone().expect("clone"),
                );
                let log2 = log.clone();
                std::thread::spawn(move || relay(mta, milter, true, &log));
                std::thread::spawn(move || relay(milter2, mta2, false, &log2));
            }
        });
        Tap { port, sessions }
    }

    /// A copy of every session's packets.
    fn sessions(&self) -> Vec<Vec<Packet>> {
        self.sessions
            .lock()
            .expect("sessions")
            .iter()
            .map(|s| s.lock().expect("session").clone())
            .collect()
    }

    /// A session as one line per packet, for failure messages.
    fn render(session: &[Packet]) -> String {
        session
            .iter()
            .map(|p| {
                let shown: String = p
                    .data
                    .iter()
                    .take(40)
                    .map(|b| {
                        if b.is_ascii_graphic() {
                            *b as char
                        } else {
                            '.'
                        }
                    })
                    .collect();
                format!(
                    "{} {} [{}] {shown}\n",
                    if p.mta { "postfix>" } else { "   weir>" },
                    p.cmd as char,
                    p.data.len()
                )
            })
            .collect()
    }
}

/// Copies milter packets from `from` to `to`, logging each before sending
/// it on in one write.
fn relay(mut from: TcpStream, mut to: TcpStream, mta: bool, log: &Mutex<Vec<Packet>>) {
    loop {
        let mut len = [0u8; 4];
        if from.read_exact(&mut len).is_err() {
            break;
        }
        let n = u32::from_be_bytes(len) as usize;
        let mut body = vec![0u8; n];
        if n == 0 || n > 1 << 24 || from.read_exact(&mut body).is_err() {
            break;
        }
        log.lock().expect("log").push(Packet {
            mta,
            cmd: body[0],
            data: body[1..].to_vec(),
        });
        let mut wire = len.to_vec();
        wire.extend_from_slice(&body);
        if to.write_all(&wire).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}
