//! `weir serve` as an LMTP delivery agent, against the real binary: Python's
//! `smtplib.LMTP` with several recipients and mixed per-recipient outcomes
//! (over the Unix socket), the raw protocol over TCP (malformed commands,
//! bad sequences, pipelining, dot-unstuffing, size limits), Maildir++
//! contents (folder, flags, headers), and the Weir quarantine over HTTP
//! across a restart.

use crate::serve_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serve_support::{
    Daemon, LmtpClient, TempDir, files, free_port, header_values, lmtp_table, temp_dir,
    write_config,
};

const RULES: &str = r#"
rule blocked { when recipient.local == "blocked" then reject 550 "5.7.1" "No mail for blocked" }
rule full { when recipient.local == "full" then tempfail 452 "4.2.2" "Mailbox full" }
rule dropped { when recipient.local == "dropme" then discard }
rule held {
  when subject contains "HOLD"
  then { tag "held"; fileinto "Review"; flag "\\Flagged"; quarantine "held for review" }
}
rule billing {
  when subject contains "invoice" and recipient.local == "bob"
  then { fileinto "Billing/2026"; flag "\\Seen"; tag "billing"; add_header "X-Rule" "billing" }
}
"#;

/// A daemon with `[lmtp]` on a Unix socket or TCP, its Maildir root and
/// the LMTP address.
struct Lmtp {
    daemon: Daemon,
    mail: PathBuf,
    socket: PathBuf,
    port: u16,
    /// Removed after the daemon stops.
    _dir: TempDir,
}

fn config_extra(dir: &Path, tcp_port: u16, unix: bool, max_size: &str) -> String {
    let listen = if unix {
        format!("unix:{}", dir.join("lmtp.sock").display())
    } else {
        format!("inet:127.0.0.1:{tcp_port}")
    };
    format!(
        "{}\n[limits]\nmax_message_size = \"{max_size}\"\n",
        lmtp_table(dir, &listen)
    )
}

fn start(name: &str, unix: bool, max_size: &str) -> Lmtp {
    let dir = temp_dir(&format!("lmtp-{name}"));
    std::fs::write(dir.join("rules.flow"), RULES).expect("rules");
    let port = free_port();
    let (http, milter) = write_config(&dir, "", &config_extra(&dir, port, unix, max_size));
    let daemon = Daemon::start(&dir, http, milter);
    Lmtp {
        mail: dir.join("mail"),
        socket: dir.join("lmtp.sock"),
        port,
        daemon,
        _dir: dir,
    }
}

/// Runs Python's `smtplib.LMTP` against `host` (a socket path or
/// `127.0.0.1`): one transaction, replies read by hand after DATA (see the
/// harness REPORT: `sendmail()` loses all but the first).
fn python_lmtp(host: &str, port: u16, from: &str, to: &[&str], message: &str) -> serde_json::Value {
    const SCRIPT: &str = r#"
import json, smtplib, sys
host, port, sender, rcpts, message = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4]), sys.argv[5]
c = smtplib.LMTP(host, port) if not host.startswith("/") else smtplib.LMTP(host)
lhlo = c.ehlo()
out = {"lhlo": [lhlo[0], lhlo[1].decode()], "features": sorted(c.esmtp_features)}
out["mail"] = list(c.mail(sender))
out["mail"][1] = out["mail"][1].decode()
out["rcpt"], accepted = [], []
for r in rcpts:
    code, text = c.rcpt(r)
    out["rcpt"].append([r, code, text.decode()])
    if code == 250:
        accepted.append(r)
out["data"] = []
if accepted:
    code, text = c.data(message.encode())
    out["data"].append([accepted[0], code, text.decode()])
    for r in accepted[1:]:
        code, text = c.getreply()
        out["data"].append([r, code, text.decode()])
code, text = c.noop()
out["noop"] = [code, text.decode()]
c.quit()
print(json.dumps(out))
"#;
    let output = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(host)
        .arg(port.to_string())
        .arg(from)
        .arg(serde_json::to_string(to).expect("json"))
        .arg(message)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("python printed JSON")
}

#[test]
fn python_lmtp_gets_one_reply_per_recipient_and_maildir_gets_the_copies() {
    let l = start("python", true, "10M");
    let message = "From: sender@example.test\r\nTo: team@example.test\r\nSubject: Your invoice\r\nMessage-ID: <inv-1@example.test>\r\nX-Weir-Tags: forged\r\n\r\nHello\r\n.dot line\r\n";
    let out = python_lmtp(
        l.socket.to_str().expect("utf-8 path"),
        0,
        "sender@example.test",
        &[
            "alice@example.test",
            "bob@Example.TEST",
            "blocked@example.test",
            "../etc@example.test",
            "full@example.test",
            "dropme@example.test",
        ],
        message,
    );
    let features: Vec<&str> = out["features"]
        .as_array()
        .expect("features")
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    for f in ["pipelining", "enhancedstatuscodes", "8bitmime", "size"] {
        assert!(features.contains(&f), "{f} advertised: {features:?}");
    }
    let rcpt: Vec<(String, i64)> = out["rcpt"]
        .as_array()
        .expect("rcpt")
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_i64().unwrap()))
        .collect();
    assert_eq!(rcpt[3], ("../etc@example.test".to_string(), 550), "{out}");
    assert!(rcpt.iter().filter(|r| r.1 == 250).count() == 5, "{out}");
    let data: Vec<(String, i64, String)> = out["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_string(),
                r[1].as_i64().unwrap(),
                r[2].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let codes: Vec<(&str, i64)> = data.iter().map(|d| (d.0.as_str(), d.1)).collect();
    assert_eq!(
        codes,
        [
            ("alice@example.test", 250),
            ("bob@Example.TEST", 250),
            ("blocked@example.test", 550),
            ("full@example.test", 452),
            ("dropme@example.test", 250),
        ],
        "{out}"
    );
    assert_eq!(data[2].2, "5.7.1 No mail for blocked");
    assert_eq!(data[3].2, "4.2.2 Mailbox full");
    assert!(data[4].2.contains("not delivered"), "{out}");
    // The session is still in step after the per-recipient replies.
    assert_eq!(out["noop"][0], 250, "{out}");

    // alice: INBOX, new/, the forged header removed, dot-unstuffed, LF.
    let alice = files(&l.mail.join("example.test/alice/new"));
    assert_eq!(alice.len(), 1, "{alice:?}");
    let text = std::fs::read_to_string(&alice[0]).expect("alice's copy");
    assert!(!text.contains('\r'), "stored with LF line ends");
    assert!(text.ends_with("\n\nHello\n.dot line\n"), "{text:?}");
    assert!(header_values(&text, "X-Weir-Tags").is_empty(), "{text}");
    let size = alice[0]
        .to_string_lossy()
        .rsplit(",S=")
        .next()
        .unwrap()
        .to_string();
    assert_eq!(size.parse::<usize>().ok(), Some(text.len()));

    // bob: the folder, the flags, the rule's headers.
    let bob_dir = l.mail.join("example.test/bob/.Billing.2026");
    assert!(bob_dir.join("maildirfolder").exists());
    assert!(files(&bob_dir.join("new")).is_empty());
    let bob = files(&bob_dir.join("cur"));
    assert_eq!(bob.len(), 1);
    assert!(bob[0].to_string_lossy().ends_with(":2,S"), "{bob:?}");
    let text = std::fs::read_to_string(&bob[0]).expect("bob's copy");
    assert_eq!(header_values(&text, "X-Weir-Tags"), ["billing"]);
    assert_eq!(header_values(&text, "X-Weir-Folder"), ["Billing/2026"]);
    assert_eq!(header_values(&text, "X-Rule"), ["billing"]);
    assert_eq!(header_values(&text, "Subject"), ["Your invoice"]);

    // Nobody else got a copy.
    for who in ["blocked", "full", "dropme"] {
        assert!(!l.mail.join("example.test").join(who).exists(), "{who}");
    }

    // One audit entry per recipient decision, with the recipient.
    let actions = l.daemon.get("/v1/actions").json();
    let got: Vec<(String, String)> = actions
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            assert_eq!(e["source"], "lmtp", "{e}");
            assert_eq!(e["ruleset_version"], 1, "{e}");
            let d = e;
            (
                d["recipient"].as_str().unwrap_or("").to_string(),
                d["verdict"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("alice@example.test", "accept"),
        ("bob@Example.TEST", "accept"),
        ("blocked@example.test", "reject"),
        ("full@example.test", "tempfail"),
        ("dropme@example.test", "discard"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want, "{actions}");

    // Every recipient's outcome is counted, by result only.
    let metrics = l.daemon.request("GET", "/metrics", false, b"").body;
    for (result, n) in [
        ("delivered", 2),
        ("refused", 2),
        ("not_delivered", 1),
        ("quarantined", 0),
    ] {
        let series = format!("weir_lmtp_deliveries_total{{result=\"{result}\"}} {n}");
        assert!(metrics.contains(&series), "{series} in:\n{metrics}");
    }
    assert!(metrics.contains("weir_lmtp_connections "), "{metrics}");
}

#[test]
fn raw_protocol_sequences_errors_pipelining_and_limits() {
    let l = start("raw", false, "2K");
    let mut c = LmtpClient::connect(l.port);
    assert!(c.command("MAIL FROM:<a@b.test>").starts_with("503 5.5.1"));
    assert!(c.command("HELO x").starts_with("500 "));
    assert!(c.command("FROB").starts_with("500 5.5.1"));
    let lhlo = c.command("LHLO client.test");
    for f in [
        "250-PIPELINING",
        "250-ENHANCEDSTATUSCODES",
        "250-8BITMIME",
        "250 SIZE 2048",
    ] {
        assert!(lhlo.contains(f), "{lhlo}");
    }
    assert!(
        c.command("RCPT TO:<a@example.test>")
            .starts_with("503 5.5.1")
    );
    assert!(c.command("DATA").starts_with("503 5.5.1"));
    assert!(c.command("MAIL FROM:a@b.test").starts_with("501 5.5.4"));
    assert!(
        c.command("MAIL FROM:<a@b.test> SIZE=99999")
            .starts_with("552 5.3.4")
    );
    assert!(
        c.command(&format!("NOOP {}", "x".repeat(5000)))
            .starts_with("500 5.5.2")
    );
    assert!(c.command("NOOP").starts_with("250 "));
    assert!(c.command("MAIL FROM:<a@b.test>").starts_with("250 "));
    assert!(c.command("MAIL FROM:<a@b.test>").starts_with("503 5.5.1"));
    assert!(c.command("RCPT TO:<nodomain>").starts_with("501 5.1.3"));
    assert!(
        c.command("DATA").starts_with("503 5.5.1"),
        "no recipients yet"
    );
    assert!(c.command("RSET").starts_with("250 "));

    // A whole transaction in one write (PIPELINING up to DATA), with
    // dot-stuffed lines and a bare-LF line end.
    c.send(
        b"MAIL FROM:<s@example.test> SIZE=100\r\nRCPT TO:<carol@example.test>\r\nRCPT TO:<dave@example.test>\r\nDATA\r\n",
    );
    assert!(c.reply().starts_with("250 2.1.0"));
    assert!(c.reply().starts_with("250 2.1.5"));
    assert!(c.reply().starts_with("250 2.1.5"));
    assert!(c.reply().starts_with("354 "));
    c.send(b"Subject: dots\r\n\r\n..starts with a dot\r\n...\r\nbare lf\n.\r\n");
    assert!(c.reply().starts_with("250 2.0.0 <carol@example.test>"));
    assert!(c.reply().starts_with("250 2.0.0 <dave@example.test>"));
    for who in ["carol", "dave"] {
        let got = files(&l.mail.join(format!("example.test/{who}/new")));
        assert_eq!(got.len(), 1, "{who}");
        let text = std::fs::read_to_string(&got[0]).expect("copy");
        // Return-Path and Delivered-To on top, as Dovecot's LMTP adds them.
        assert_eq!(
            text,
            format!(
                "Return-Path: <s@example.test>\nDelivered-To: {who}@example.test\nSubject: dots\n\n.starts with a dot\n..\nbare lf\n"
            )
        );
    }

    // Past max_message_size: read to the end, refused for every recipient,
    // and the session goes on.
    assert!(c.command("MAIL FROM:<s@example.test>").starts_with("250 "));
    assert!(c.command("RCPT TO:<erin@example.test>").starts_with("250 "));
    assert!(
        c.command("RCPT TO:<frank@example.test>")
            .starts_with("250 ")
    );
    assert!(c.command("DATA").starts_with("354 "));
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    for _ in 0..100 {
        big.extend_from_slice(&[b'y'; 60]);
        big.extend_from_slice(b"\r\n");
    }
    big.extend_from_slice(b".\r\n");
    c.send(&big);
    assert!(c.reply().starts_with("552 5.3.4"));
    assert!(c.reply().starts_with("552 5.3.4"));
    assert!(!l.mail.join("example.test/erin").exists());
    assert!(c.command("NOOP").starts_with("250 "));
    assert!(c.command("QUIT").starts_with("221 "));
    let mut rest = String::new();
    let _ = c.reader().read_to_string(&mut rest);
    assert_eq!(rest, "", "the server closes after QUIT");

    // Garbage from one client does not disturb the next.
    let mut bad = TcpStream::connect(("127.0.0.1", l.port)).expect("connect");
    let _ = bad.write_all(&[0xff, 0x00, 0xfe, b'\r', b'\n', 0x01]);
    drop(bad);
    let mut c = LmtpClient::connect(l.port);
    assert!(c.command("LHLO again").starts_with("250"));
}

#[test]
fn quarantine_lists_releases_and_deletes_across_a_restart() {
    let mut l = start("quarantine", false, "10M");
    for n in 1..=2 {
        let message = format!(
            "From: s@example.test\r\nSubject: HOLD number {n}\r\nMessage-ID: <hold-{n}@example.test>\r\n\r\nheld body {n}\r\n"
        );
        let out = python_lmtp(
            "127.0.0.1",
            l.port,
            "s@example.test",
            &["alice@example.test"],
            &message,
        );
        assert_eq!(out["data"][0][1], 250, "{out}");
        assert!(
            out["data"][0][2].as_str().unwrap().contains("quarantined"),
            "{out}"
        );
    }
    assert!(
        !l.mail.join("example.test/alice/.Review").exists(),
        "nothing delivered yet"
    );
    let list = l.daemon.get("/v1/quarantine").json();
    let list = list.as_array().expect("a list").clone();
    assert_eq!(list.len(), 2, "{list:?}");
    for q in &list {
        assert_eq!(q["source"], "lmtp");
        assert_eq!(q["rule"], "held");
        assert_eq!(q["reason"], "held for review");
        assert_eq!(q["recipient"], "alice@example.test");
        assert_eq!(q["folder"], "Review");
    }
    let ids: Vec<String> = list
        .iter()
        .map(|q| q["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(list[0]["message_id"], "hold-1@example.test");

    // Restart: the quarantine is still there.
    l.daemon.signal("TERM");
    assert_eq!(
        l.daemon.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        l.daemon.log()
    );
    let (dir, http, milter) = (l.daemon.dir.clone(), l.daemon.http, l.daemon.milter);
    l.daemon = Daemon::start(&dir, http, milter);
    let after = l.daemon.get("/v1/quarantine").json();
    assert_eq!(after.as_array().map(Vec::len), Some(2), "{after}");
    let one = l.daemon.get(&format!("/v1/quarantine/{}", ids[0])).json();
    assert_eq!(one["decision"]["verdict"], "quarantine", "{one}");

    // Release: delivered where the decision said, with its flags and headers.
    let r = l.daemon.request(
        "POST",
        &format!("/v1/quarantine/{}/release", ids[0]),
        true,
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let cur = files(&l.mail.join("example.test/alice/.Review/cur"));
    assert_eq!(cur.len(), 1, "{cur:?}");
    assert!(cur[0].to_string_lossy().ends_with(":2,F"), "{cur:?}");
    let text = std::fs::read_to_string(&cur[0]).expect("released copy");
    assert!(text.contains("held body 1"), "{text}");
    assert_eq!(header_values(&text, "X-Weir-Tags"), ["held"]);
    assert_eq!(header_values(&text, "X-Weir-Folder"), ["Review"]);
    let again = l.daemon.request(
        "POST",
        &format!("/v1/quarantine/{}/release", ids[0]),
        true,
        b"",
    );
    assert_eq!(again.status, 404, "released once only");

    // Delete: gone from the list and from the disk.
    let held_files = files(&dir.join("state/quarantine"));
    assert_eq!(held_files.len(), 1, "{held_files:?}");
    let d = l
        .daemon
        .request("DELETE", &format!("/v1/quarantine/{}", ids[1]), true, b"");
    assert_eq!(d.status, 200, "{}", d.body);
    assert_eq!(l.daemon.get("/v1/quarantine").json(), serde_json::json!([]));
    assert!(files(&dir.join("state/quarantine")).is_empty());
    assert_eq!(
        files(&l.mail.join("example.test/alice/.Review/cur")).len(),
        1
    );

    // The audit log says what became of each held copy.
    let actions = l.daemon.get("/v1/actions").json();
    let acts: Vec<(String, String)> = actions
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["quarantine"].is_string())
        .map(|e| {
            assert_eq!(e["source"], "lmtp", "{e}");
            assert_eq!(e["rule"], "held", "{e}");
            (
                e["quarantine"].as_str().unwrap_or("").to_string(),
                e["recipient"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(acts.len(), 2, "{actions}");
    assert_eq!(acts[0].0, "released");
    assert_eq!(acts[1].0, "deleted");
}

/// Every file and directory under `dir` (recursively), with its mode bits.
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let mode = entry.metadata().expect("metadata").permissions().mode() & 0o777;
        out.push((path.clone(), mode));
        if path.is_dir() {
            out.extend(modes(&path));
        }
    }
    out
}

#[test]
fn addresses_cannot_leave_the_maildir_root_and_copies_are_private() {
    let l = start("traversal", false, "1M");
    let root = l.mail.parent().expect("the test directory").to_path_buf();
    let mut c = LmtpClient::connect(l.port);
    assert!(c.command("LHLO client.test").starts_with("250"));
    assert!(c.command("MAIL FROM:<a@b.test>").starts_with("250 "));
    // Each placeholder's text would have been expanded again by the next
    // replacement: /mail/{detail}../{detail}.. became /mail/../..
    for evil in [
        "{detail}..@{detail}..",
        "{detail}+..@example.test",
        "x+{domain}@example.test",
        "{local}@example.test",
    ] {
        let reply = c.command(&format!("RCPT TO:<{evil}>"));
        assert!(reply.starts_with("550 5.1.3"), "{evil}: {reply}");
    }
    // Upper and lower case local parts share one Maildir.
    for rcpt in ["Carol@example.test", "carol@Example.TEST"] {
        let reply = c.command(&format!("RCPT TO:<{rcpt}>"));
        assert!(reply.starts_with("250 "), "{rcpt}: {reply}");
    }
    assert!(c.command("DATA").starts_with("354"));
    // A space before a colon is still a header field (the message model's
    // rule): nothing moves into the body, and the unedited copy is stored
    // byte for byte.
    let message = "Subject : spaced\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\nAuto-Submitted: auto-generated\r\n\r\nbody line\r\n";
    c.send(format!("{message}.\r\n").as_bytes());
    for _ in 0..2 {
        let reply = c.reply();
        assert!(reply.starts_with("250 "), "{reply}");
    }
    // One copy: the second recipient names the same mailbox, and the
    // delivery index knows the message is already there.
    let carol = files(&l.mail.join("example.test/carol/new"));
    assert_eq!(carol.len(), 1, "{carol:?}");
    for copy in &carol {
        let text = std::fs::read_to_string(copy).expect("copy");
        // Byte for byte below the delivery agent's trace fields.
        let expected = format!(
            "Return-Path: <a@b.test>\nDelivered-To: Carol@example.test\n{}",
            message.replace("\r\n", "\n")
        );
        assert_eq!(text, expected, "byte for byte");
    }
    assert!(!l.mail.join("example.test/Carol").exists());
    // Nothing was created outside the Maildir root.
    let mut top: Vec<String> = std::fs::read_dir(&root)
        .expect("test dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            ![
                "mail",
                "state",
                "rules.flow",
                "weir.toml",
                "api-token",
                "daemon.log",
            ]
            .contains(&n.as_str())
        })
        .collect();
    top.sort();
    assert!(top.is_empty(), "{top:?}");
    // Mail is for its owner alone: files 0600, directories 0700.
    for (path, mode) in modes(&l.mail) {
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{}", path.display());
    }
}

#[test]
fn concurrent_releases_of_one_held_copy_deliver_it_once() {
    let l = start("release-race", false, "10M");
    let message = "From: s@example.test\r\nSubject: HOLD racing\r\nMessage-ID: <race@example.test>\r\n\r\nheld body\r\n";
    let out = python_lmtp(
        "127.0.0.1",
        l.port,
        "s@example.test",
        &["alice@example.test"],
        message,
    );
    assert_eq!(out["data"][0][1], 250, "{out}");
    let list = l.daemon.get("/v1/quarantine").json();
    let id = list[0]["id"].as_str().expect("an id").to_string();
    let path = format!("/v1/quarantine/{id}/release");
    // Many at once, so some overlap the first one's delivery.
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| l.daemon.request("POST", &path, true, b"").status))
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect()
    });
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 404, 409].contains(s)),
        "{statuses:?}"
    );
    let cur = files(&l.mail.join("example.test/alice/.Review/cur"));
    assert_eq!(cur.len(), 1, "delivered once: {cur:?}");
}
