//! `weir serve` driven by `miltertest` (OpenDKIM's MTA simulator): each
//! Lua script in `tests/miltertest/` exercises one group of actions of
//! docs/language.md ("Rules and actions") as the milter maps them, against a daemon started here.
//! Malformed protocol input must end only the connection that sent it.
//!
//! Needs `miltertest`; without it each test prints `skipped: ...` and
//! passes, unless `WEIR_REQUIRE_MAIL_TOOLS=1` (CI), where it fails.

use crate::postfix_support;
use crate::serve_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use postfix_support::{missing_mail_tools, show, tool};
use serve_support::{Daemon, temp_dir, write_config};

/// One rule per action; each script's messages are keyed to one rule by
/// sender, recipient, subject or body.
const RULES: &str = r#"
rule blocked_sender priority 10 {
  when envelope.from.domain == "blocked.test"
  then reject 554 "5.7.3" "Sender blocked"
}
rule no_nobody priority 20 {
  when envelope.to.local == "nobody"
  then tempfail 452 "4.2.2" "Mailbox full"
}
rule header_reject priority 30 {
  when subject contains "HEADERREJECT"
  then reject 550 "5.7.1" "Header rule"
}
rule body_virus { when body contains "EICAR" then reject 554 "5.7.9" "Virus found: 100% sure" }
rule body_default_reject { when body contains "DEFAULTREJECT" then reject }
rule body_later { when body contains "COMELATER" then tempfail 452 "4.3.1" "Come back later" }
rule body_default_tempfail { when body contains "DEFAULTTEMPFAIL" then tempfail }
rule dropped { when subject contains "DROPME" then discard }
rule held { when subject contains "HOLDME" then { tag "held"; quarantine "suspicious subject" } }
rule accepted { when subject contains "ACCEPTME" then accept }
rule late { when subject contains "LATE" then tag "late" }
rule edits {
  when subject contains "HEADERS" or header("X-Trigger") contains "HEADERS"
  then {
    add_header "X-Added" "one"
    add_header "X-Note" "line one\nline two"
    set_header "X-Set" "new"
    remove_header "X-Remove"
    prepend_subject "[W] "
    tag "billing"
    tag "vip"
    fileinto "Support/Billing"
  }
}
rule rcpt_add { when subject contains "ADDRCPT" then add_rcpt "audit@example.test" }
rule rcpt_remove { when subject contains "REMOVERCPT" then remove_rcpt "carol@example.test" }
rule rcpt_redirect { when subject contains "REDIRECT" then redirect "archive@example.test" }
"#;

/// Rules that read the envelope and headers, never the body.
const NO_BODY_RULES: &str = r#"
rule blocked_sender { when envelope.from.domain == "blocked.test" then reject "no" }
rule report { when subject contains "report" then tag "report" }
"#;

/// Every script and the rules it runs against; `every_script_is_run`
/// keeps this list and the directory in step.
const SCRIPTS: &[(&str, &str)] = &[
    ("negotiate.lua", RULES),
    ("reject_tempfail.lua", RULES),
    ("discard_quarantine_accept.lua", RULES),
    ("headers.lua", RULES),
    ("recipients.lua", RULES),
    ("body_skip.lua", NO_BODY_RULES),
];

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/miltertest")
}

/// Starts a daemon with `rules`, or `None` when miltertest is missing.
fn start(name: &str, rules: &str) -> Option<Daemon> {
    if missing_mail_tools(&["miltertest"], false).is_some() {
        return None;
    }
    let dir = temp_dir(&format!("miltertest-{name}"));
    std::fs::write(dir.join("rules.flow"), rules).expect("rules");
    let (http, milter) = write_config(&dir, "", "");
    Some(Daemon::start(&dir, http, milter).owning(dir))
}

/// Runs one script against `daemon`; fails with miltertest's output and
/// the daemon's log unless it exits 0 having printed its `PASS` line (a
/// script that stopped early without an error must not pass).
fn run_script(daemon: &Daemon, script: &str) {
    let dir = scripts_dir();
    let out = Command::new(tool("miltertest"))
        .arg("-D")
        .arg(format!("port={}", daemon.milter))
        .arg("-D")
        .arg(format!("dir={}", dir.display()))
        .arg("-s")
        .arg(dir.join(script))
        .output()
        .expect("miltertest runs");
    let name = script.trim_end_matches(".lua");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().any(|l| l == format!("PASS {name}")),
        "miltertest {script}: {}\n--- weir log:\n{}",
        show(&out),
        daemon.log()
    );
}

fn script_rules(script: &str) -> &'static str {
    SCRIPTS
        .iter()
        .find(|(s, _)| *s == script)
        .map(|(_, r)| *r)
        .expect("a listed script")
}

fn run(script: &str) -> Option<Daemon> {
    let daemon = start(script.trim_end_matches(".lua"), script_rules(script))?;
    run_script(&daemon, script);
    Some(daemon)
}

#[test]
fn every_script_is_run() {
    let mut found: Vec<String> = std::fs::read_dir(scripts_dir())
        .expect("scripts")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".lua") && n != "lib.lua")
        .collect();
    found.sort();
    let mut listed: Vec<String> = SCRIPTS.iter().map(|(s, _)| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        found, listed,
        "add the script to SCRIPTS and give it a test"
    );
}

#[test]
fn negotiation_asks_for_the_actions_and_every_step() {
    run("negotiate.lua");
}

#[test]
fn reject_and_tempfail_with_custom_and_default_replies() {
    run("reject_tempfail.lua");
}

#[test]
fn discard_quarantine_and_accept() {
    let Some(daemon) = run("discard_quarantine_accept.lua") else {
        return;
    };
    // The quarantined message is in the index under the queue id the
    // script sent as macro `i`, with the rule that held it.
    let held = daemon.get("/v1/quarantine").json();
    let held = held.as_array().expect("a list");
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(
        (&held[0]["id"], &held[0]["rule"], &held[0]["reason"]),
        (
            &"QHOLD1".into(),
            &"held".into(),
            &"suspicious subject".into()
        ),
        "{held:?}"
    );
    // Every message was recorded, with the verdict the MTA was given.
    let audit = daemon.get("/v1/actions").json();
    let verdicts: Vec<&str> = audit
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|e| e["verdict"].as_str())
        .collect();
    assert_eq!(verdicts, ["discard", "quarantine", "accept", "accept"]);
}

#[test]
fn header_edits_tags_and_folder() {
    run("headers.lua");
}

#[test]
fn recipient_edits() {
    run("recipients.lua");
}

#[test]
fn the_body_is_skipped_when_no_rule_reads_it() {
    run("body_skip.lua");
}

/// Writes `bytes` on a new connection; when `closed`, also demands that
/// the daemon then closes it, since it cannot make sense of what follows.
fn send_garbage(port: u16, bytes: &[u8], closed: bool, what: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    // A peer that already closed may reset the write; that is fine.
    let _ = s.write_all(bytes);
    if closed {
        // A bound so a hung daemon fails the test instead of hanging it.
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        // Replies (to a good negotiation) may come first, then the end.
        let mut rest = Vec::new();
        let eof = match s.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(eof, "the daemon kept the connection open after {what}");
    }
}

/// SMFIC_OPTNEG as Postfix sends it: version 6, every action, no step off.
const NEGOTIATE: &[u8] = &[
    0, 0, 0, 13, b'O', 0, 0, 0, 6, 0, 0, 0x01, 0xff, 0, 0x1f, 0xff, 0xff,
];

#[test]
fn malformed_input_ends_only_its_own_connection() {
    let Some(mut daemon) = start("garbage", RULES) else {
        return;
    };
    let port = daemon.milter;
    let after_negotiation = |packet: &[u8]| [NEGOTIATE, packet].concat();
    // Input the daemon cannot make sense of: it must close the connection.
    let refused: &[(&str, Vec<u8>)] = &[
        // An HTTP request reads as a 1.2 GB length.
        (
            "not the milter protocol",
            b"GET / HTTP/1.0\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "an oversize length",
            vec![0xff, 0xff, 0xff, 0xff, b'O', 1, 2, 3],
        ),
        ("a zero length", vec![0; 8]),
        (
            "a negotiation too short",
            vec![0, 0, 0, 5, b'O', 0, 0, 0, 6],
        ),
        (
            "protocol version 1",
            vec![0, 0, 0, 13, b'O', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
        ("MAIL before negotiation", b"\0\0\0\x06M<a@b>".to_vec()),
        ("an unknown command", after_negotiation(&[0, 0, 0, 1, b'Z'])),
        (
            "MAIL without NUL terminators",
            after_negotiation(b"\0\0\0\x06M<a@b>"),
        ),
    ];
    for (what, bytes) in refused {
        send_garbage(port, bytes, true, what);
    }
    // Truncated input: the daemon waits for the rest (as long as its
    // connection timeout); the test just hangs up.
    send_garbage(
        port,
        &[0, 0, 0, 50, b'M', b'<'],
        false,
        "a truncated packet",
    );
    send_garbage(
        port,
        &after_negotiation(&[0, 0x10, 0, 0, b'B', b'x']),
        false,
        "a truncated 1 MiB body chunk",
    );
    send_garbage(port, &pseudo_random(8192), false, "noise");
    // A truncated packet on a connection left open while the script runs:
    // a stalled peer must not hold up the others.
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stalled
        .write_all(&[0, 0, 0, 50, b'M', b'<'])
        .expect("partial packet");

    assert!(
        daemon.child.try_wait().expect("wait").is_none(),
        "the daemon died:\n{}",
        daemon.log()
    );
    run_script(&daemon, "headers.lua");
    assert_eq!(daemon.request("GET", "/healthz", false, b"").status, 200);
    drop(stalled);
}

/// Deterministic noise (xorshift), so a failure can be replayed.
fn pseudo_random(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
