//! `weir serve` end to end through the milter (driven by `miltertest`):
//! decisions reach the audit log, the metrics and `/v1/events`, and the
//! audit log and `rate()` counters survive `kill -9` and a restart.
//!
//! Skipped (with a note) where `miltertest` is not installed
//! (`apt-get install miltertest`), unless `WEIR_REQUIRE_MAIL_TOOLS=1` (CI),
//! where that is a failure.

use crate::serve_support;

use std::path::Path;
use std::process::Command;

use serve_support::{Daemon, Events, temp_dir, write_config};

const RULES: &str = r#"
rule burst {
  when rate(envelope.from.domain, 1h) > 2
  then tempfail 451 "4.7.1" "slow down"
}

rule vip {
  when subject contains "vip"
  then tag "vip"
}

rule hold {
  when subject contains "exe"
  then quarantine "executable"
}
"#;

/// One milter transaction; `expect` is `accept` (an accepting end of
/// message) or `tempfail` (refused at MAIL FROM).
const SCRIPT: &str = r#"
local sock = "inet:" .. port .. "@127.0.0.1"
local function fail(msg) mt.echo("FAIL: " .. msg); error(msg) end
local function ok(rc, what) if rc ~= nil then fail(what .. ": " .. tostring(rc)) end end
local conn = mt.connect(sock, 20, 0.25)
if conn == nil then fail("connect") end
ok(mt.negotiate(conn, nil, nil, nil), "negotiate")
if not mt.test_option(conn, SMFIP_NOCONNECT) then
  ok(mt.conninfo(conn, "client.example", "192.0.2.7"), "conninfo")
  if mt.getreply(conn) ~= SMFIR_CONTINUE then fail("conninfo reply") end
end
if not mt.test_option(conn, SMFIP_NOHELO) then
  ok(mt.helo(conn, "client.example"), "helo")
  if mt.getreply(conn) ~= SMFIR_CONTINUE then fail("helo reply") end
end
ok(mt.macro(conn, SMFIC_MAIL, "i", qid), "macro")
ok(mt.mailfrom(conn, "<sender@corp.example>"), "mailfrom")
local r = mt.getreply(conn)
if expect == "tempfail" then
  if r ~= SMFIR_TEMPFAIL and r ~= SMFIR_REPLYCODE then fail("expected a tempfail at MAIL, got " .. tostring(r)) end
  mt.disconnect(conn)
  return
end
if r ~= SMFIR_CONTINUE then fail("mailfrom reply " .. tostring(r)) end
ok(mt.macro(conn, SMFIC_RCPT, "i", qid), "macro")
ok(mt.rcptto(conn, "<support@example.com>"), "rcptto")
if mt.getreply(conn) ~= SMFIR_CONTINUE then fail("rcpt reply") end
ok(mt.header(conn, "From", "sender@corp.example"), "header")
ok(mt.header(conn, "Subject", subject), "header")
ok(mt.header(conn, "Message-ID", "<" .. qid .. "@corp.example>"), "header")
if not mt.test_option(conn, SMFIP_NOEOH) then ok(mt.eoh(conn), "eoh") end
if not mt.test_option(conn, SMFIP_NOBODY) then ok(mt.bodystring(conn, "hello\r\n"), "body") end
ok(mt.eom(conn), "eom")
local e = mt.getreply(conn)
if e ~= SMFIR_CONTINUE and e ~= SMFIR_ACCEPT then fail("eom reply " .. tostring(e)) end
mt.disconnect(conn)
"#;

fn miltertest_available() -> bool {
    Command::new("miltertest").arg("-h").output().is_ok()
}

fn send(dir: &Path, port: u16, qid: &str, subject: &str, expect: &str) {
    let script = dir.join("transaction.lua");
    std::fs::write(&script, SCRIPT).unwrap();
    let out = Command::new("miltertest")
        .args(["-D", &format!("port={port}")])
        .args(["-D", &format!("qid={qid}")])
        .args(["-D", &format!("subject={subject}")])
        .args(["-D", &format!("expect={expect}")])
        .arg("-s")
        .arg(&script)
        .output()
        .expect("miltertest runs");
    assert!(
        out.status.success(),
        "miltertest {qid}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn decisions_are_audited_and_survive_kill_9() {
    if !miltertest_available() {
        assert_ne!(
            std::env::var("WEIR_REQUIRE_MAIL_TOOLS").as_deref(),
            Ok("1"),
            "WEIR_REQUIRE_MAIL_TOOLS=1 but miltertest is not installed"
        );
        eprintln!("skipped: miltertest is not installed");
        return;
    }
    let dir = temp_dir("milter-restart");
    std::fs::write(dir.join("rules.flow"), RULES).unwrap();
    let (http, milter) = write_config(&dir, "", "");
    let mut d = Daemon::start(&dir, http, milter);
    let mut events = Events::open(http, &d.token);

    send(&dir, milter, "QA1", "vip news", "accept");
    let event = events.next_decision();
    assert_eq!(event["queue_id"], "QA1");
    assert_eq!(event["verdict"], "accept");
    assert_eq!(event["tags"], serde_json::json!(["vip"]));
    assert_eq!(event["ruleset_version"], 1);
    send(&dir, milter, "QA2", "setup.exe", "accept");
    assert_eq!(events.next_decision()["queue_id"], "QA2");

    let actions = d.get("/v1/actions").json();
    assert_eq!(actions.as_array().unwrap().len(), 2, "{actions}");
    assert_eq!(actions[0]["message_id"], "QA1@corp.example");
    assert_eq!(actions[1]["verdict"], "quarantine");
    let held = d.get("/v1/quarantine").json();
    assert_eq!(held[0]["queue_id"], "QA2");
    assert_eq!(held[0]["rule"], "hold");
    let metrics = d.request("GET", "/metrics", false, b"").body;
    assert!(
        metrics.contains("weir_messages_total{verdict=\"accept\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("weir_messages_total{verdict=\"quarantine\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("weir_tags_total{tag=\"vip\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("weir_rule_matches_total{rule=\"hold\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("weir_eval_duration_seconds_count"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("corp.example"),
        "no sender in labels:\n{metrics}"
    );

    d.signal("KILL");
    let status = d.child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    drop(d);

    let d = Daemon::start(&dir, http, milter);
    let actions = d.get("/v1/actions").json();
    let queue_ids: Vec<&str> = actions
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["queue_id"].as_str().unwrap())
        .collect();
    assert_eq!(queue_ids, ["QA1", "QA2"], "the audit log survived");
    assert_eq!(d.get("/v1/quarantine").json()[0]["queue_id"], "QA2");
    // The third message from corp.example within the hour: the two counted
    // before the kill are still there.
    send(&dir, milter, "QA3", "hello", "tempfail");
    let last = d.get("/v1/actions?limit=1").json();
    assert_eq!(last[0]["verdict"], "tempfail", "{last}");
    assert_eq!(last[0]["matched"], serde_json::json!(["burst"]));
    assert_eq!(last[0]["ruleset_version"], 2, "a restart loads version 2");
}
