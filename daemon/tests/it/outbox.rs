//! The durable outbox of `weir serve` against real peers on loopback: a
//! webhook receiver (HTTP/1.1 over `std::net`, recording every POST and
//! failing on demand) and an SMTP sink (recording every transaction), with
//! mail delivered over LMTP to the real binary.
//!
//! What is proved: one POST for a notify shared by several recipients;
//! back-off then success; dead letter, `/v1/outbox`, and the retry
//! endpoint; RFC 3834 auto-replies with their headers, none to list, bulk
//! or null-sender mail and at most one per sender per period; forwarded
//! copies with the relay's envelope sender; after `kill -9` during
//! outbox work, every side effect delivered with one idempotency key each;
//! items waiting for a retry across a restart, delivered when due;
//! `/v1/outbox` a page at a time; dead items deleted after the retention.

use crate::serve_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serve_support::{Daemon, TempDir, free_port, lmtp_deliver, lmtp_table, temp_dir, write_config};

const RULES: &str = r#"
template ack {
  subject = "Re: ${subject}"
  body = "We received your message and will answer soon."
}
rule vip { when subject contains "VIP" then { tag "vip"; notify "hook" with { text: "VIP: ${subject}" } } }
rule flaky { when subject contains "FLAKY" then notify "flaky" with { text: "flaky" } }
rule down { when subject contains "DOWN" then notify "down" with { text: "down" } }
rule acknowledge { when subject contains "ACK" then reply template ack }
template desk {
  subject = "Ticket received"
  body = "The help desk has your message."
  from = "Help Desk <help@example.test>"
}
rule helpdesk { when subject contains "HELPDESK" then reply template desk every 0s }
rule fwd { when recipient.local == "fwd" then redirect "archive@elsewhere.test" }
rule copy { when recipient.local == "cc" then add_rcpt "copies@elsewhere.test" }
"#;

/// How long any wait for the daemon's asynchronous work may take before
/// the test fails (a bound on waiting, never a timing assertion).
const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `check` until it gives `Some`, or panics with `what`.
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One POST the webhook receiver got.
#[derive(Debug, Clone)]
struct Post {
    path: String,
    key: Option<String>,
    body: serde_json::Value,
}

/// How the receiver answers.
#[derive(Default)]
struct Behaviour {
    /// Answer 500 to this many requests first.
    fail_first: AtomicUsize,
    /// Answer 500 to every request while set.
    fail_all: AtomicBool,
    /// Hold each request (record it, answer nothing) while set.
    hang: AtomicBool,
}

/// A webhook receiver on a loopback port, stopped when dropped.
struct Receiver {
    port: u16,
    posts: Arc<Mutex<Vec<Post>>>,
    behaviour: Arc<Behaviour>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let posts = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Behaviour::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (p, b, s) = (posts.clone(), behaviour.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (p, b, s) = (p.clone(), b.clone(), s.clone());
                std::thread::spawn(move || serve_http(stream, &p, &b, &s));
            }
        });
        Receiver {
            port,
            posts,
            behaviour,
            stop,
        }
    }

    fn posts(&self) -> Vec<Post> {
        self.posts.lock().expect("posts").clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Serves requests on one connection (keep-alive) until it closes.
fn serve_http(stream: TcpStream, posts: &Mutex<Vec<Post>>, b: &Behaviour, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut length = 0;
        let mut key = None;
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
                    key = Some(v.trim().to_string());
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        posts.lock().expect("posts").push(Post { path, key, body });
        while b.hang.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let fail = b.fail_all.load(Ordering::SeqCst)
            || b.fail_first
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        let status = if fail {
            "500 Internal Server Error"
        } else {
            "200 OK"
        };
        let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nok");
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// One message the SMTP sink accepted.
#[derive(Debug, Clone)]
pub(crate) struct Mail {
    pub(crate) from: String,
    pub(crate) to: Vec<String>,
    pub(crate) data: String,
}

impl Mail {
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    }
}

/// An SMTP sink on a loopback port speaking just enough SMTP (also the
/// relay of the several-hosts tests).
pub(crate) struct Sink {
    pub(crate) port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl Sink {
    pub(crate) fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let m = mails.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let m = m.clone();
                std::thread::spawn(move || serve_smtp(stream, &m));
            }
        });
        Sink { port, mails }
    }

    pub(crate) fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("mails").clone()
    }
}

fn serve_smtp(stream: TcpStream, mails: &Mutex<Vec<Mail>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut w = stream.try_clone().expect("clone");
    let mut r = BufReader::new(stream);
    let _ = w.write_all(b"220 sink ESMTP\r\n");
    let mut current = Mail {
        from: String::new(),
        to: Vec::new(),
        data: String::new(),
    };
    let arg = |l: &str| {
        let a = l.split_once(':').map_or("", |(_, a)| a).trim();
        a.split_whitespace()
            .next()
            .unwrap_or("")
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string()
    };
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let l = line.trim_end();
        let verb = l
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let answer = match verb.as_str() {
            "EHLO" => "250-sink\r\n250 8BITMIME\r\n".to_string(),
            "HELO" => "250 sink\r\n".into(),
            "MAIL" => {
                current.from = arg(l);
                current.to.clear();
                "250 OK\r\n".into()
            }
            "RCPT" => {
                current.to.push(arg(l));
                "250 OK\r\n".into()
            }
            "DATA" => {
                let _ = w.write_all(b"354 go ahead\r\n");
                let mut data = String::new();
                loop {
                    let mut d = String::new();
                    if r.read_line(&mut d).unwrap_or(0) == 0 {
                        return;
                    }
                    if d.trim_end_matches(['\r', '\n']) == "." {
                        break;
                    }
                    data.push_str(d.strip_prefix('.').unwrap_or(&d));
                }
                current.data = data;
                mails.lock().expect("mails").push(current.clone());
                "250 queued\r\n".into()
            }
            "QUIT" => {
                let _ = w.write_all(b"221 bye\r\n");
                return;
            }
            "RSET" | "NOOP" => "250 OK\r\n".into(),
            _ => "502 not implemented\r\n".into(),
        };
        if w.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// A daemon with LMTP on TCP, three webhook channels on one receiver and
/// the relay on one sink.
struct Setup {
    daemon: Daemon,
    lmtp: u16,
    receiver: Receiver,
    sink: Sink,
    /// Removed last, after the daemon stops.
    dir: TempDir,
}

/// The `[outbox]` table of most tests: fast retries.
const FAST_RETRIES: &str =
    "[outbox]\nbackoff = \"20ms\"\nmax_backoff = \"100ms\"\nmail_retries = 3\n";

fn setup(name: &str) -> Setup {
    setup_with(name, FAST_RETRIES)
}

/// [`setup`] with `tables` (`[outbox]` and any other) instead of
/// [`FAST_RETRIES`].
fn setup_with(name: &str, tables: &str) -> Setup {
    let dir = temp_dir(&format!("outbox-{name}"));
    std::fs::write(dir.join("rules.flow"), RULES).expect("rules");
    let receiver = Receiver::start();
    let sink = Sink::start();
    let lmtp = free_port();
    let hook = |path: &str, retries: u32| {
        format!(
            "url = \"http://127.0.0.1:{}/{path}\"\ntimeout = \"10s\"\nretries = {retries}\n",
            receiver.port
        )
    };
    let extra = format!(
        "{}\n\
         [notify.hook]\n{}\n[notify.flaky]\n{}\n[notify.down]\n{}\n\
         [relay]\nhost = \"inet:127.0.0.1:{}\"\nfrom = \"support@example.test\"\n\n\
         [reply]\nperiod = \"1h\"\n\n{tables}",
        lmtp_table(&dir, &format!("inet:127.0.0.1:{lmtp}")),
        hook("hook", 5),
        hook("flaky", 5),
        hook("down", 1),
        sink.port
    );
    let (http, milter) = write_config(&dir, "", &extra);
    let daemon = Daemon::start(&dir, http, milter);
    Setup {
        daemon,
        dir,
        lmtp,
        receiver,
        sink,
    }
}

fn message(from: &str, subject: &str, id: &str, extra: &str) -> String {
    format!(
        "From: {from}\r\nTo: a@example.test, b@example.test\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n{extra}\r\nHello\r\n"
    )
}

/// The `/v1/outbox` list.
fn outbox(d: &Daemon) -> Vec<serde_json::Value> {
    let r = d.get("/v1/outbox");
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().expect("an array").clone()
}

/// Waits until the outbox holds nothing pending.
fn wait_drained(d: &Daemon) {
    wait_for("the outbox to drain", || {
        outbox(d)
            .iter()
            .all(|i| i["state"] != "pending")
            .then_some(())
    });
}

/// A counter or gauge from `/metrics`.
fn metric(d: &Daemon, series: &str) -> f64 {
    let text = d.request("GET", "/metrics", false, b"").body;
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

fn maildir_files(dir: &Path, domain: &str, local: &str) -> usize {
    std::fs::read_dir(dir.join("mail").join(domain).join(local).join("new"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn one_notify_for_several_recipients_with_its_key_and_summary() {
    let s = setup("once");
    let replies = lmtp_deliver(
        s.lmtp,
        "ceo@example.test",
        &["a@example.test", "b@example.test", "c@example.test"],
        &message(
            "ceo@example.test",
            "VIP board meeting",
            "vip-1@example.test",
            "",
        ),
    );
    assert!(replies.iter().all(|r| r.starts_with("250")), "{replies:?}");
    wait_drained(&s.daemon);
    wait_for("the delivery to be counted", || {
        (metric(&s.daemon, "weir_outbox_deliveries_total{kind=\"notify\"}") == 1.0).then_some(())
    });
    let posts = s.receiver.posts();
    assert_eq!(posts.len(), 1, "one POST for three recipients: {posts:?}");
    let post = &posts[0];
    assert_eq!(post.path, "/hook");
    let body = &post.body;
    assert_eq!(post.key.as_deref(), body["id"].as_str(), "{body}");
    assert_eq!(body["rule"], "vip");
    assert_eq!(body["text"], "VIP: VIP board meeting");
    assert_eq!(body["tags"], serde_json::json!(["vip"]));
    assert_eq!(body["message"]["from"], "ceo@example.test");
    assert_eq!(body["message"]["subject"], "VIP board meeting");
    assert_eq!(body["message"]["message_id"], "vip-1@example.test");
    assert_eq!(
        body["message"]["to"],
        serde_json::json!(["a@example.test", "b@example.test", "c@example.test"])
    );
    // The delivery is an audit entry of its own.
    let actions = s.daemon.get("/v1/actions").json();
    let delivered: Vec<_> = actions
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["source"] == "outbox")
        .collect();
    assert_eq!(delivered.len(), 1, "{actions}");
    assert_eq!(delivered[0]["outbox"], "delivered");
    assert_eq!(delivered[0]["item"], body["id"]);
    assert!(
        delivered[0]["id"].is_u64(),
        "the audit id stays the entry's"
    );
    assert_eq!(metric(&s.daemon, "weir_outbox_pending"), 0.0);
}

#[test]
fn a_failing_webhook_is_retried_with_the_same_key_until_it_answers() {
    let s = setup("flaky");
    s.receiver.behaviour.fail_first.store(3, Ordering::SeqCst);
    let replies = lmtp_deliver(
        s.lmtp,
        "x@example.test",
        &["a@example.test"],
        &message("x@example.test", "FLAKY", "flaky-1@example.test", ""),
    );
    assert!(replies[0].starts_with("250"), "{replies:?}");
    wait_for("the fourth attempt to succeed", || {
        (metric(&s.daemon, "weir_outbox_deliveries_total{kind=\"notify\"}") == 1.0).then_some(())
    });
    let posts = s.receiver.posts();
    assert_eq!(posts.len(), 4, "three failures, then success: {posts:?}");
    let keys: BTreeSet<_> = posts.iter().map(|p| p.key.clone()).collect();
    assert_eq!(keys.len(), 1, "every attempt carries one key: {keys:?}");
    assert_eq!(
        metric(&s.daemon, "weir_outbox_retries_total{kind=\"notify\"}"),
        3.0
    );
    assert!(outbox(&s.daemon).is_empty());
}

#[test]
fn a_dead_webhook_is_listed_and_retried_on_demand() {
    let s = setup("dead");
    s.receiver.behaviour.fail_all.store(true, Ordering::SeqCst);
    lmtp_deliver(
        s.lmtp,
        "x@example.test",
        &["a@example.test"],
        &message("x@example.test", "DOWN", "down-1@example.test", ""),
    );
    // `retries = 1`: two attempts, then the dead-letter list.
    let item = wait_for("a dead letter", || {
        outbox(&s.daemon).into_iter().find(|i| i["state"] == "dead")
    });
    assert_eq!(item["kind"], "notify");
    assert_eq!(item["channel"], "down");
    assert_eq!(item["rule"], "down");
    assert_eq!(item["attempts"], 2);
    assert!(
        item["last_error"].as_str().unwrap_or("").contains("500"),
        "{item}"
    );
    assert_eq!(s.receiver.posts().len(), 2);
    assert_eq!(
        metric(&s.daemon, "weir_outbox_dead_total{kind=\"notify\"}"),
        1.0
    );
    let id = item["id"].as_str().expect("an id").to_string();

    assert_eq!(
        s.daemon
            .request("POST", "/v1/outbox/nonesuch/retry", true, b"")
            .status,
        404
    );
    s.receiver.behaviour.fail_all.store(false, Ordering::SeqCst);
    let r = s
        .daemon
        .request("POST", &format!("/v1/outbox/{id}/retry"), true, b"");
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for("the retried item to be delivered", || {
        outbox(&s.daemon).is_empty().then_some(())
    });
    let posts = s.receiver.posts();
    assert_eq!(posts.len(), 3, "{posts:?}");
    assert!(posts.iter().all(|p| p.key.as_deref() == Some(id.as_str())));
    // The retry is in the audit log with who asked for it; the refused
    // one (404) is not.
    let actions = s.daemon.get("/v1/actions?limit=1000").json();
    let retries: Vec<&serde_json::Value> = actions
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["act"] == "outbox_retry")
        .collect();
    assert_eq!(retries.len(), 1, "{actions}");
    assert_eq!(retries[0]["item"], id.as_str());
    assert_eq!(retries[0]["source"], "api");
    assert_eq!(retries[0]["by"]["role"], "admin");
}

#[test]
fn auto_replies_follow_rfc_3834_and_forwarded_copies_go_through_the_relay() {
    let s = setup("mail");
    let d = &s.daemon;
    // Two recipients on vacation, one reply from each (RFC 5230: per
    // recipient and sender); then a second message from the same sender
    // to one of them within the period gets none.
    let r = lmtp_deliver(
        s.lmtp,
        "alice@example.test",
        &["a@example.test", "b@example.test"],
        &message(
            "Alice <alice@example.test>",
            "ACK please",
            "ack-1@example.test",
            "References: <older@example.test>\r\n",
        ),
    );
    assert!(r.iter().all(|r| r.starts_with("250")), "{r:?}");
    lmtp_deliver(
        s.lmtp,
        "alice@example.test",
        &["a@example.test"],
        &message("alice@example.test", "ACK again", "ack-2@example.test", ""),
    );
    // Mail that does not name the recipient (a list, an alias) gets none.
    lmtp_deliver(
        s.lmtp,
        "alice@example.test",
        &["c@example.test"],
        &message("alice@example.test", "ACK blind", "ack-3@example.test", ""),
    );
    // List, bulk, auto-submitted and null-sender mail gets no reply.
    for (from, extra, id) in [
        ("bob@example.test", "List-Id: <team.example.test>\r\n", "l"),
        ("carol@example.test", "Precedence: bulk\r\n", "p"),
        ("dave@example.test", "Auto-Submitted: auto-replied\r\n", "a"),
        ("", "", "n"),
        ("MAILER-DAEMON@example.test", "", "m"),
    ] {
        let replies = lmtp_deliver(
            s.lmtp,
            from,
            &["a@example.test"],
            &message(
                "someone@example.test",
                "ACK",
                &format!("{id}@example.test"),
                extra,
            ),
        );
        assert!(replies[0].starts_with("250"), "{replies:?}");
    }
    // Forwarded copies: redirect drops the local copy, add_rcpt keeps it.
    lmtp_deliver(
        s.lmtp,
        "erin@example.test",
        &["fwd@example.test", "cc@example.test"],
        &message("erin@example.test", "Forward me", "fwd-1@example.test", ""),
    );
    // Every side effect was queued before its LMTP reply: once the queue
    // is drained, the sink has all there will ever be.
    wait_drained(d);
    let mails = wait_for("four mails at the sink", || {
        let m = s.sink.mails();
        (m.len() >= 4).then_some(m)
    });
    assert_eq!(mails.len(), 4, "two replies and two copies: {mails:#?}");
    assert_eq!(
        metric(d, "weir_outbox_deliveries_total{kind=\"reply\"}"),
        2.0
    );
    let mut reply_from: Vec<String> = mails
        .iter()
        .filter(|m| m.to == ["alice@example.test"])
        .filter_map(|m| m.header("From"))
        .collect();
    reply_from.sort();
    assert_eq!(reply_from, ["<a@example.test>", "<b@example.test>"]);
    assert_eq!(
        metric(d, "weir_outbox_deliveries_total{kind=\"forward\"}"),
        2.0
    );

    let reply = mails
        .iter()
        .find(|m| {
            m.to == ["alice@example.test"]
                && m.header("From").as_deref() == Some("<a@example.test>")
        })
        .expect("the auto-reply");
    assert_eq!(reply.from, "", "RFC 3834 §3.3: null reverse path");
    assert_eq!(
        reply.header("Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert_eq!(reply.header("To").as_deref(), Some("<alice@example.test>"));
    assert_eq!(reply.header("Subject").as_deref(), Some("Re: ACK please"));
    assert_eq!(
        reply.header("In-Reply-To").as_deref(),
        Some("<ack-1@example.test>")
    );
    assert_eq!(
        reply.header("References").as_deref(),
        Some("<older@example.test> <ack-1@example.test>")
    );
    let key = reply.header("X-Weir-Idempotency-Key").expect("a key");
    assert_eq!(
        reply.header("Message-ID"),
        Some(format!("<weir-{key}@example.test>"))
    );
    assert!(reply.data.contains("We received your message"));

    for (to, local) in [
        ("archive@elsewhere.test", "fwd"),
        ("copies@elsewhere.test", "cc"),
    ] {
        let copy = mails
            .iter()
            .find(|m| m.to == [to])
            .unwrap_or_else(|| panic!("a copy to {to}: {mails:#?}"));
        assert_eq!(copy.from, "support@example.test", "the relay's from");
        assert_eq!(copy.header("Subject").as_deref(), Some("Forward me"));
        assert_eq!(
            copy.header("Message-ID").as_deref(),
            Some("<fwd-1@example.test>")
        );
        assert!(copy.header("X-Weir-Idempotency-Key").is_some());
        let local_copies = maildir_files(&s.dir, "example.test", local);
        assert_eq!(local_copies, usize::from(local == "cc"), "{local}");
    }
}

#[test]
fn kill_9_during_outbox_work_then_restart_delivers_every_side_effect() {
    let mut s = setup("kill");
    s.receiver.behaviour.hang.store(true, Ordering::SeqCst);
    let senders = ["p1@example.test", "p2@example.test", "p3@example.test"];
    for (i, from) in senders.iter().enumerate() {
        let replies = lmtp_deliver(
            s.lmtp,
            from,
            &["a@example.test", "b@example.test"],
            &message(
                from,
                &format!("VIP ACK {i}"),
                &format!("k{i}@example.test"),
                "",
            ),
        );
        assert!(replies.iter().all(|r| r.starts_with("250")), "{replies:?}");
    }
    // The worker is in the middle of it: a webhook request is held open.
    wait_for("a webhook request in flight", || {
        (!s.receiver.posts().is_empty()).then_some(())
    });
    s.daemon.kill_9();
    s.receiver.behaviour.hang.store(false, Ordering::SeqCst);

    let (http, milter) = (s.daemon.http, s.daemon.milter);
    s.daemon = Daemon::start(&s.dir, http, milter);
    wait_for("every side effect after the restart", || {
        let hooks: BTreeSet<String> = s
            .receiver
            .posts()
            .iter()
            .filter_map(|p| p.body["message"]["message_id"].as_str().map(String::from))
            .collect();
        let replies = s.sink.mails().len();
        (hooks.len() == 3 && replies >= 6 && outbox(&s.daemon).is_empty()).then_some(())
    });
    // The request the kill cut off was made again after the restart.
    assert!(s.receiver.posts().len() > 3, "{:?}", s.receiver.posts());
    // Each effect has exactly one key, however often it was sent.
    let mut hook_keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in s.receiver.posts() {
        let id = p.body["message"]["message_id"]
            .as_str()
            .expect("id")
            .to_string();
        hook_keys
            .entry(id)
            .or_default()
            .insert(p.key.expect("a key"));
    }
    assert_eq!(hook_keys.len(), 3, "{hook_keys:?}");
    assert!(hook_keys.values().all(|k| k.len() == 1), "{hook_keys:?}");
    let mut reply_keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in s.sink.mails() {
        // One reply per sender and recipient (the reply's From).
        let from = m.header("From").unwrap_or_default();
        reply_keys
            .entry(format!("{}:{from}", m.to.join(",")))
            .or_default()
            .insert(m.header("X-Weir-Idempotency-Key").expect("a key"));
    }
    let expected: BTreeSet<String> = senders
        .iter()
        .flat_map(|s| ["a", "b"].map(|r| format!("{s}:<{r}@example.test>")))
        .collect();
    assert_eq!(
        reply_keys.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "{reply_keys:?}"
    );
    assert!(reply_keys.values().all(|k| k.len() == 1), "{reply_keys:?}");
}

/// Sends one message through the daemon's milter (as Postfix would).
fn milter_send(port: u16, from: &str, to: &[&str], subject: &str, id: &str) -> String {
    use weir::milter_client::Mail;
    let mail = Mail {
        helo: "client.example.test".into(),
        from: from.into(),
        to: to.iter().map(|s| s.to_string()).collect(),
        headers: vec![
            ("From".into(), format!("<{from}>")),
            ("To".into(), to.join(", ")),
            ("Subject".into(), subject.into()),
            ("Message-ID".into(), format!("<{id}>")),
        ],
        body: b"Hello.\r\n".to_vec(),
        queue_id: format!("Q{}", id.len()),
        ..Mail::default()
    };
    let reply = serve_support::milter_reply(port, &mail).expect("the milter answers");
    format!("{reply:?}")
}

#[test]
fn the_milter_queues_notify_and_reply_too() {
    // docs/language.md ("Rules and actions"): a side effect is written to the outbox before the
    // SMTP reply, whichever server decided; the MTA forwards copies itself.
    let s = setup("milter");
    let reply = milter_send(
        s.daemon.milter,
        "ceo@example.test",
        &["a@example.test", "b@example.test"],
        "VIP ACK from the milter",
        "milter-1@example.test",
    );
    assert!(
        reply.contains("Accept") || reply.contains("Continue"),
        "{reply}"
    );
    wait_drained(&s.daemon);
    wait_for("the webhook and the auto-reply", || {
        (!s.receiver.posts().is_empty() && !s.sink.mails().is_empty()).then_some(())
    });
    let posts = s.receiver.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].body["rule"], "vip");
    assert_eq!(
        posts[0].body["message"]["subject"],
        "VIP ACK from the milter"
    );
    assert_eq!(
        posts[0].body["message"]["to"],
        serde_json::json!(["a@example.test", "b@example.test"])
    );
    let mails = s.sink.mails();
    assert_eq!(mails.len(), 1, "one auto-reply: {mails:?}");
    assert_eq!(mails[0].to, vec!["ceo@example.test".to_string()]);
    assert_eq!(mails[0].from, "", "RFC 3834: null reverse path");
    assert_eq!(
        mails[0].header("In-Reply-To").as_deref(),
        Some("<milter-1@example.test>")
    );
    // The same message decided again (the MTA retried) repeats nothing.
    milter_send(
        s.daemon.milter,
        "ceo@example.test",
        &["a@example.test", "b@example.test"],
        "VIP ACK from the milter",
        "milter-1@example.test",
    );
    wait_drained(&s.daemon);
    assert_eq!(
        s.sink.mails().len(),
        1,
        "at most one reply per sender per period"
    );
}

#[test]
fn sighup_rereads_weir_toml_and_the_next_webhook_goes_to_the_new_url() {
    let s = setup("sighup-config");
    let send_vip = |n: u32| {
        let replies = lmtp_deliver(
            s.lmtp,
            "ceo@example.test",
            &["a@example.test"],
            &message(
                "ceo@example.test",
                &format!("VIP {n}"),
                &format!("vip-{n}@example.test"),
                "",
            ),
        );
        assert!(replies.iter().all(|r| r.starts_with("250")), "{replies:?}");
    };
    send_vip(1);
    wait_for("the first webhook", || {
        (s.receiver.posts().len() == 1).then_some(())
    });
    assert_eq!(s.receiver.posts()[0].path, "/hook");

    // A new URL for the channel, and a listener change that needs a restart.
    let file = s.dir.join("weir.toml");
    let text = std::fs::read_to_string(&file).expect("config");
    let old_milter = format!("listen = \"inet:127.0.0.1:{}\"", s.daemon.milter);
    let new_milter = format!("listen = \"inet:127.0.0.1:{}\"", free_port());
    let changed = text
        .replacen("/hook\"", "/moved\"", 1)
        .replacen(&old_milter, &new_milter, 1);
    assert_ne!(changed, text);
    std::fs::write(&file, changed).expect("config");
    s.daemon.signal("HUP");
    wait_for("the configuration to be reloaded", || {
        let log = s.daemon.log();
        assert!(!log.contains("keeping the running configuration"), "{log}");
        log.contains("configuration reloaded").then_some(())
    });
    assert!(
        s.daemon.log().contains("[milter] listen changed"),
        "{}",
        s.daemon.log()
    );
    send_vip(2);
    wait_for("the second webhook", || {
        (s.receiver.posts().len() == 2).then_some(())
    });
    assert_eq!(s.receiver.posts()[1].path, "/moved");

    // The API reload says what needs a restart; a broken file changes
    // nothing and says why.
    let r = s.daemon.request("POST", "/v1/reload", true, b"");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["config"]["restart_needed"],
        serde_json::json!(["[milter] listen"])
    );
    // Rules naming a channel weir.toml lacks do not replace the running ones.
    let rules = s.dir.join("rules.flow");
    let good = std::fs::read_to_string(&rules).expect("rules");
    std::fs::write(
        &rules,
        format!("{good}\nrule page {{ when subject contains \"PAGE\" then notify \"nowhere\" }}\n"),
    )
    .expect("rules");
    let r = s.daemon.request("POST", "/v1/reload", true, b"");
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["kind"], "config", "{}", r.body);
    assert!(
        r.json()["rendered"]
            .as_str()
            .unwrap_or("")
            .contains("[notify.nowhere]"),
        "{}",
        r.body
    );
    std::fs::write(&rules, good).expect("rules");

    std::fs::write(
        &file,
        "rules = \"rules.flow\"\n[limits]\nmax_headers = \"many\"\n",
    )
    .expect("config");
    let r = s.daemon.request("POST", "/v1/reload", true, b"");
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["kind"], "config");
    assert!(
        r.json()["rendered"]
            .as_str()
            .unwrap_or("")
            .contains("[limits]"),
        "{}",
        r.body
    );
    send_vip(3);
    wait_for("the third webhook", || {
        (s.receiver.posts().len() == 3).then_some(())
    });
    assert_eq!(s.receiver.posts()[2].path, "/moved");
}

#[test]
fn a_rule_s_period_and_a_template_s_from_apply_to_its_replies() {
    let s = setup("every");
    for n in 1..=2 {
        let r = lmtp_deliver(
            s.lmtp,
            "zoe@example.test",
            &["a@example.test"],
            &message(
                "zoe@example.test",
                &format!("HELPDESK {n}"),
                &format!("desk-{n}@example.test"),
                "",
            ),
        );
        assert!(r[0].starts_with("250"), "{r:?}");
    }
    wait_drained(&s.daemon);
    // `every 0s`: the second message within [reply] period (1h) is
    // answered too; both come from the template's `from`.
    let mails = wait_for("two replies", || {
        let m = s.sink.mails();
        (m.len() >= 2).then_some(m)
    });
    assert_eq!(mails.len(), 2, "{mails:#?}");
    for m in &mails {
        assert_eq!(m.to, ["zoe@example.test"]);
        assert_eq!(m.header("From").as_deref(), Some("<help@example.test>"));
        assert_eq!(m.header("Subject").as_deref(), Some("Ticket received"));
    }
}

#[test]
fn items_waiting_for_a_retry_survive_a_restart_and_are_delivered_when_due() {
    let mut s = setup_with(
        "restart",
        "[outbox]\nbackoff = \"2s\"\nmax_backoff = \"2s\"\nmail_retries = 3\n",
    );
    s.receiver.behaviour.fail_all.store(true, Ordering::SeqCst);
    for i in 0..3 {
        let replies = lmtp_deliver(
            s.lmtp,
            "x@example.test",
            &["a@example.test"],
            &message(
                "x@example.test",
                &format!("VIP {i}"),
                &format!("r{i}@example.test"),
                "",
            ),
        );
        assert!(replies[0].starts_with("250"), "{replies:?}");
    }
    // Each first attempt failed: three items wait for their retry.
    let waiting = wait_for("three failed first attempts", || {
        let items = outbox(&s.daemon);
        (items.len() == 3 && items.iter().all(|i| i["attempts"].as_u64() >= Some(1)))
            .then_some(items)
    });
    assert!(
        waiting.iter().all(|i| i["state"] == "pending"),
        "{waiting:?}"
    );
    s.daemon.signal("TERM");
    assert_eq!(s.daemon.wait_exit(Duration::from_secs(20)), Some(0));
    let attempts_before = s.receiver.posts().len();
    s.receiver.behaviour.fail_all.store(false, Ordering::SeqCst);

    let (http, milter) = (s.daemon.http, s.daemon.milter);
    s.daemon = Daemon::start(&s.dir, http, milter);
    wait_for("the queue to empty", || {
        outbox(&s.daemon).is_empty().then_some(())
    });
    let posts = s.receiver.posts();
    let delivered: BTreeSet<String> = posts[attempts_before..]
        .iter()
        .filter_map(|p| p.key.clone())
        .collect();
    let expected: BTreeSet<String> = waiting
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(delivered, expected, "every waiting item, after the restart");
    assert_eq!(
        posts.len() - attempts_before,
        3,
        "each delivered once: {posts:?}"
    );
    // The audit log shows each item's outcome as its one state.
    let actions = s.daemon.get("/v1/actions?limit=1000").json();
    let outcomes: Vec<&serde_json::Value> = actions
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["source"] == "outbox")
        .collect();
    assert_eq!(outcomes.len(), 3, "{actions}");
    for entry in outcomes {
        assert_eq!(entry["state"], "delivered", "{entry}");
        assert_eq!(entry["outbox"], "delivered", "{entry}");
    }
}

#[test]
fn the_outbox_is_listed_a_page_at_a_time_in_queue_order() {
    let s = setup("pages");
    s.receiver.behaviour.fail_all.store(true, Ordering::SeqCst);
    for i in 0..5 {
        lmtp_deliver(
            s.lmtp,
            "x@example.test",
            &["a@example.test"],
            &message(
                "x@example.test",
                &format!("DOWN {i}"),
                &format!("p{i}@example.test"),
                "",
            ),
        );
    }
    wait_for("five dead letters", || {
        let items = s.daemon.get("/v1/outbox?limit=100").json();
        let items = items.as_array().expect("an array").clone();
        (items.len() == 5 && items.iter().all(|i| i["state"] == "dead")).then_some(())
    });
    let mut seen = Vec::new();
    let mut path = "/v1/outbox?limit=2".to_string();
    let mut pages = 0;
    loop {
        let r = s.daemon.get(&path);
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.json().as_array().expect("an array").clone();
        assert!(page.len() <= 2, "{page:?}");
        pages += 1;
        seen.extend(page.iter().cloned());
        let Some(link) = r.header("link") else {
            assert!(
                page.len() < 2 || pages == 3,
                "a full page links to the next"
            );
            break;
        };
        assert!(link.ends_with("; rel=\"next\""), "{link}");
        let last = page.last().expect("a full page")["seq"]
            .as_u64()
            .expect("seq");
        assert_eq!(
            link,
            format!("</v1/outbox?after={last}&limit=2>; rel=\"next\"")
        );
        path = format!("/v1/outbox?after={last}&limit=2");
        assert!(pages < 10, "pagination ends");
    }
    let messages: Vec<&str> = seen
        .iter()
        .map(|i| i["message_id"].as_str().expect("message_id"))
        .collect();
    assert_eq!(
        messages,
        (0..5)
            .map(|i| format!("p{i}@example.test"))
            .collect::<Vec<_>>(),
        "every item once, in the order queued"
    );
    let seqs: Vec<u64> = seen
        .iter()
        .map(|i| i["seq"].as_u64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    for bad in [
        "/v1/outbox?limit=0",
        "/v1/outbox?after=x",
        "/v1/outbox?page=2",
    ] {
        let r = s.daemon.get(bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.json()["error"].is_string(), "{}", r.body);
    }
}

#[test]
fn dead_items_are_deleted_after_the_retention_and_pending_ones_kept() {
    let mut s = setup_with(
        "prune",
        "[outbox]\nbackoff = \"1s\"\nmax_backoff = \"1s\"\nmail_retries = 3\n\n[audit]\nretention = \"1s\"\n",
    );
    s.receiver.behaviour.fail_all.store(true, Ordering::SeqCst);
    for subject in ["DOWN", "VIP"] {
        lmtp_deliver(
            s.lmtp,
            "x@example.test",
            &["a@example.test"],
            &message(
                "x@example.test",
                subject,
                &format!("{subject}@example.test"),
                "",
            ),
        );
    }
    // DOWN dies after its two attempts; VIP (five retries) is still
    // pending, and from now on its attempts hang: it stays pending.
    wait_for("one dead, one waiting", || {
        let items = outbox(&s.daemon);
        let states: BTreeSet<String> = items.iter().map(|i| i["state"].to_string()).collect();
        (items.len() == 2 && states.len() == 2).then_some(())
    });
    s.receiver.behaviour.hang.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(2100));
    // Retention runs at start (then hourly): a restart applies it now.
    s.daemon.signal("TERM");
    assert_eq!(s.daemon.wait_exit(Duration::from_secs(20)), Some(0));
    let (http, milter) = (s.daemon.http, s.daemon.milter);
    s.daemon = Daemon::start(&s.dir, http, milter);
    let left = wait_for("the dead item to go", || {
        let items = outbox(&s.daemon);
        (items.len() == 1).then_some(items)
    });
    assert_eq!(left[0]["state"], "pending", "{left:?}");
    assert_eq!(left[0]["message_id"], "VIP@example.test");
}
