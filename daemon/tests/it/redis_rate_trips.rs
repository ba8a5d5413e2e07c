//! `rate()` on Redis costs a fixed number of round trips per message,
//! whatever the number of keys (docs/serve.md "Several hosts"): every key
//! a message can ask is read in one pipeline before evaluation and its
//! hits are written in one after the decision. Measured with
//! `weir_store_round_trips_total` on two real daemons sharing a real
//! `redis-server`, one with one `rate()` key and one with three.

use std::time::{Duration, Instant};

use crate::redis_support::{self, Redis};
use crate::serve_support::{Daemon, free_port, lmtp_deliver, milter_send, temp_dir, write_config};

const ONE_KEY: &str = r#"
rule by_sender {
  when rate("from:${from.address}", 1h) > 3
  then reject 550 "5.7.1" "Too many from you"
}
"#;

const THREE_KEYS: &str = r#"
rule by_sender {
  when rate("from:${from.address}", 1h) > 3
  then reject 550 "5.7.1" "Too many from you"
}
rule by_subject {
  when rate("subject:${subject}", 1d) > 1000
  then tag "campaign"
}
rule by_domain {
  when subject contains "x" and rate("domain:${from.domain}", 1m) > 1000
  then tag "busy"
}
"#;

/// Three keys for delivery: one names each recipient.
const THREE_LMTP_KEYS: &str = r#"
rule by_sender {
  when rate("from:${from.address}", 1h) > 1000
  then tag "busy-sender"
}
rule by_subject {
  when rate("subject:${subject}", 1d) > 1000
  then tag "campaign"
}
rule by_mailbox {
  when rate("to:${recipient.address}", 1h) > 1000
  then tag "busy-mailbox"
}
"#;

fn host(redis: &Redis, name: &str, rules: &str) -> Daemon {
    host_with(redis, name, rules, "")
}

fn host_with(redis: &Redis, name: &str, rules: &str, tables: &str) -> Daemon {
    let dir = temp_dir(&format!("rate-trips-{name}"));
    std::fs::write(dir.join("rules.flow"), rules).expect("rules");
    let extra = format!("{}\n{tables}", redis.store_table(name));
    let (http, milter) = write_config(&dir, "", &extra);
    Daemon::start(&dir, http, milter).owning(dir)
}

/// A daemon that delivers into `dir/mail` over LMTP, and its LMTP port.
fn lmtp_host(redis: &Redis, name: &str, rules: &str) -> (Daemon, u16) {
    let port = free_port();
    let mail = temp_dir(&format!("rate-trips-mail-{name}"));
    let table = format!(
        "[lmtp]\nlisten = \"inet:127.0.0.1:{port}\"\nmaildir = \"{}/{{domain}}/{{local}}\"\n",
        mail.display()
    );
    (host_with(redis, name, rules, &table).owning(mail), port)
}

fn round_trips(d: &Daemon) -> f64 {
    let text = d.request("GET", "/metrics", false, b"").body;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("weir_store_round_trips_total")?
                .trim()
                .parse()
                .ok()
        })
        .expect("weir_store_round_trips_total")
}

/// The round trips per message of `messages` messages from distinct
/// senders, each sent by `send(n)`, less what the daemon sends when idle
/// (its health probe).
fn per_message(d: &Daemon, messages: usize, send: impl Fn(usize)) -> f64 {
    let idle_from = (round_trips(d), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let idle = (round_trips(d) - idle_from.0) / idle_from.1.elapsed().as_secs_f64();
    let (before, started) = (round_trips(d), Instant::now());
    (0..messages).for_each(send);
    let sent = round_trips(d) - before - idle * started.elapsed().as_secs_f64();
    sent / messages as f64
}

/// `per_message` through the milter.
fn per_milter_message(d: &Daemon, messages: usize) -> f64 {
    per_message(d, messages, |n| {
        let from = format!("s{n}@example.test");
        let r = milter_send(d.milter, &from, "hello", &format!("m{n}"));
        assert!(r.contains("Accept") || r.contains("Continue"), "{r}");
    })
}

/// `per_message` through LMTP on `port`, three recipients each.
fn per_lmtp_message(d: &Daemon, port: u16, messages: usize) -> f64 {
    per_message(d, messages, |n| {
        let from = format!("s{n}@example.test");
        let text = format!(
            "From: <{from}>\r\nSubject: hello\r\nMessage-ID: <l{n}@example.test>\r\n\r\nHi.\r\n"
        );
        let to = ["a@example.test", "b@example.test", "c@example.test"];
        for reply in lmtp_deliver(port, &from, &to, &text) {
            assert!(reply.starts_with("250"), "{reply}");
        }
    })
}

#[test]
fn a_message_costs_the_same_round_trips_with_one_rate_key_or_three() {
    if !redis_support::available() {
        return;
    }
    let redis = Redis::start();
    let one = host(&redis, "one-key", ONE_KEY);
    let three = host(&redis, "three-keys", THREE_KEYS);
    let messages = 40;
    let with_one = per_milter_message(&one, messages);
    let with_three = per_milter_message(&three, messages);
    eprintln!("round trips per message: 1 key {with_one:.2}, 3 keys {with_three:.2}");
    // The audit entry, one read of every key, one write of every hit.
    for (keys, measured) in [(1, with_one), (3, with_three)] {
        assert!(
            (2.5..3.5).contains(&measured),
            "{keys} key(s): {measured:.2} round trips per message, not 3"
        );
    }

    // The counts the rules see are unchanged: the 4th message of one
    // sender is refused, the rules of both hosts counting it.
    for n in 0..3 {
        let via = if n % 2 == 0 { &one } else { &three };
        let r = milter_send(via.milter, "bulk@example.test", "hello", &format!("b{n}"));
        assert!(r.contains("Accept") || r.contains("Continue"), "{r}");
    }
    let r = milter_send(three.milter, "bulk@example.test", "hello", "b3");
    assert!(r.contains("550"), "the 4th message: {r}");

    // A key read before evaluation but under a condition that never held
    // (no subject had an "x") was never counted: Redis has no such key,
    // while the keys evaluated were counted.
    let exists = |key: &str| redis.cli(&["exists", key]).trim().to_string();
    assert_eq!(exists("it:{rate:domain:example.test}"), "0");
    assert_eq!(exists("it:{rate:subject:hello}"), "1");
    assert_eq!(exists("it:{rate:from:bulk@example.test}"), "1");
}

#[test]
fn a_delivery_to_three_mailboxes_costs_the_same_round_trips_with_one_rate_key_or_three() {
    if !redis_support::available() {
        return;
    }
    let redis = Redis::start();
    let (one, one_port) = lmtp_host(&redis, "lmtp-one-key", ONE_KEY);
    let (three, three_port) = lmtp_host(&redis, "lmtp-three-keys", THREE_LMTP_KEYS);
    let messages = 20;
    let with_one = per_lmtp_message(&one, one_port, messages);
    let with_three = per_lmtp_message(&three, three_port, messages);
    eprintln!(
        "LMTP round trips per message (3 recipients): 1 key {with_one:.2}, 3 keys {with_three:.2}"
    );
    // Three keys, five of them per message (one per mailbox), are read in
    // the one round trip one key takes.
    assert!(
        (with_three - with_one).abs() < 0.5,
        "1 key: {with_one:.2}, 3 keys: {with_three:.2} round trips per message"
    );
    let counted = redis.cli(&["exists", "it:{rate:to:c@example.test}"]);
    assert_eq!(counted.trim(), "1", "every mailbox's key counted");
}
