//! Several hosts, one Weir (docs/serve.md "Several hosts"): two `weir
//! serve` processes sharing one real `redis-server` through `[store]
//! backend = "redis"`. A `rate()` limit counts both hosts' mail, a sender
//! gets one auto-reply whichever host decided, a message quarantined
//! through one host is listed and released through the other and
//! delivered once, and either host's audit log shows both hosts'
//! decisions, each naming its host.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::outbox::Sink;
use crate::redis_support::{self, Redis};
use crate::serve_support::{
    self, Daemon, files, lmtp_deliver, milter_send, temp_dir, write_config,
};

const RULES: &str = r#"
rule too_many {
  when rate("from:${envelope.from}", 1h) > 10
  then reject 550 "5.7.1" "Too many messages"
}
template away {
  subject = "Away: ${subject}"
  body = "I am away."
}
rule vacation { when subject contains "VACATION" then reply template away }
rule hold { when subject contains "HOLD" then quarantine "held for review" }
"#;

/// A host named `name` sharing `redis`, relaying mail to `sink`.
fn host(redis: &Redis, sink: &Sink, name: &str, tables: &str) -> Daemon {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = temp_dir(&format!("hosts-{name}-{n}"));
    std::fs::write(dir.join("rules.flow"), RULES).expect("rules");
    let relay = format!(
        "[relay]\nhost = \"inet:127.0.0.1:{}\"\nfrom = \"postmaster@example.test\"\n\n[reply]\nperiod = \"1h\"\n",
        sink.port
    );
    let extra = format!("{}\n{relay}\n{tables}", redis.store_table(name));
    let (http, milter) = write_config(&dir, "", &extra);
    Daemon::start(&dir, http, milter).owning(dir)
}

fn accepted(reply: &str) -> bool {
    reply.contains("Accept") || reply.contains("Continue")
}

/// Polls `check` until it holds, or panics naming `what`.
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_rate_limit_counts_the_mail_of_both_hosts() {
    if !redis_support::available() {
        return;
    }
    let redis = Redis::start();
    let sink = Sink::start();
    let a = host(&redis, &sink, "mx-a", "");
    let b = host(&redis, &sink, "mx-b", "");
    for n in 0..10 {
        let via = if n % 2 == 0 { &a } else { &b };
        let r = milter_send(via.milter, "bulk@example.test", "hello", &format!("r{n}"));
        assert!(accepted(&r), "message {} is within the limit: {r}", n + 1);
    }
    let r = milter_send(b.milter, "bulk@example.test", "hello", "r10");
    assert!(
        r.contains("550"),
        "the 11th message, across both hosts: {r}"
    );
    let r = milter_send(a.milter, "other@example.test", "hello", "o1");
    assert!(accepted(&r), "another sender is not limited: {r}");

    // Either host's audit log shows both hosts' decisions.
    for d in [&a, &b] {
        let actions = d.request("GET", "/v1/actions?limit=100", true, b"").json();
        let hosts: Vec<&str> = actions
            .as_array()
            .expect("a list")
            .iter()
            .map(|e| e["host"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(hosts.len(), 12, "{actions}");
        assert_eq!(hosts.iter().filter(|h| **h == "mx-a").count(), 6);
        assert_eq!(hosts.iter().filter(|h| **h == "mx-b").count(), 6);
    }
}

#[test]
fn a_sender_writing_to_both_hosts_gets_one_vacation_reply() {
    if !redis_support::available() {
        return;
    }
    let redis = Redis::start();
    let sink = Sink::start();
    let a = host(&redis, &sink, "mx-a", "");
    let b = host(&redis, &sink, "mx-b", "");
    assert!(accepted(&milter_send(
        a.milter,
        "alice@example.test",
        "VACATION 1",
        "v1"
    )));
    assert!(accepted(&milter_send(
        b.milter,
        "alice@example.test",
        "VACATION 2",
        "v2"
    )));
    assert!(accepted(&milter_send(
        b.milter,
        "bob@example.test",
        "VACATION 3",
        "v3"
    )));
    wait_until("two replies", || sink.mails().len() >= 2);
    // Both outboxes drained: nothing more is coming.
    for d in [&a, &b] {
        wait_until("an empty outbox", || {
            let items = d.request("GET", "/v1/outbox", true, b"").json();
            items.as_array().is_some_and(Vec::is_empty)
        });
    }
    let mut to: Vec<String> = sink.mails().iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        ["alice@example.test", "bob@example.test"],
        "one reply each"
    );
}

/// `[lmtp]` delivering into one mail store both hosts reach.
fn lmtp_table(mail_root: &Path) -> (u16, String) {
    let port = serve_support::free_port();
    let table = format!(
        "[lmtp]\nlisten = \"inet:127.0.0.1:{port}\"\nmaildir = \"{}/{{domain}}/{{local}}\"\n",
        mail_root.display()
    );
    (port, table)
}

#[test]
fn quarantined_through_one_host_released_through_the_other_delivered_once() {
    if !redis_support::available() {
        return;
    }
    let redis = Redis::start();
    let mail_root = temp_dir("hosts-mail");
    let (lmtp_a, table_a) = lmtp_table(&mail_root);
    let (_, table_b) = lmtp_table(&mail_root);
    let sink = Sink::start();
    let a = host(&redis, &sink, "mda-a", &table_a);
    let b = host(&redis, &sink, "mda-b", &table_b);
    let message = "From: <x@example.test>\nTo: <u@example.test>\nSubject: HOLD me\nMessage-ID: <h1@example.test>\n\nBody.\n";
    let replies = lmtp_deliver(lmtp_a, "x@example.test", &["u@example.test"], message);
    assert!(replies[0].starts_with("250"), "{replies:?}");
    let inbox = mail_root.join("example.test/u/new");
    assert!(files(&inbox).is_empty(), "held, not delivered");

    let listed = b.request("GET", "/v1/quarantine", true, b"").json();
    let entries = listed.as_array().expect("a list");
    assert_eq!(entries.len(), 1, "{listed}");
    assert_eq!(entries[0]["host"], "mda-a", "{listed}");
    let id = entries[0]["id"].as_str().expect("an id").to_string();
    // A's copy is in its state directory; B releases the shared copy.
    let shown = b.request("GET", &format!("/v1/quarantine/{id}"), true, b"");
    assert_eq!(shown.status, 200);

    let released = b.request("POST", &format!("/v1/quarantine/{id}/release"), true, b"");
    assert_eq!(released.status, 200, "{}", released.body);
    let again = a.request("POST", &format!("/v1/quarantine/{id}/release"), true, b"");
    assert_eq!(again.status, 404, "released once: {}", again.body);
    let delivered = files(&inbox);
    assert_eq!(delivered.len(), 1, "delivered once: {delivered:?}");
    let copy = std::fs::read_to_string(&delivered[0]).expect("the copy");
    assert!(copy.contains("Subject: HOLD me"), "{copy}");
    let left = a.request("GET", "/v1/quarantine", true, b"").json();
    assert_eq!(left.as_array().map(Vec::len), Some(0), "{left}");
}

fn metric(d: &Daemon, series: &str) -> Option<f64> {
    let text = d.request("GET", "/metrics", false, b"").body;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn with_redis_down_mail_is_tempfailed_and_flows_again_when_it_returns() {
    if !redis_support::available() {
        return;
    }
    let mut redis = Redis::start();
    let sink = Sink::start();
    let a = host(&redis, &sink, "mx-a", "");
    assert!(accepted(&milter_send(
        a.milter,
        "s@example.test",
        "before",
        "d0"
    )));
    assert_eq!(metric(&a, "weir_store_up "), Some(1.0));

    redis.stop();
    for n in 1..4 {
        let r = milter_send(a.milter, "s@example.test", "during", &format!("d{n}"));
        assert!(
            r.contains("451") || r.contains("Tempfail"),
            "not accepted unrecorded while Redis is down: {r}"
        );
    }
    let health = a.request("GET", "/healthz", false, b"");
    assert_eq!(health.status, 503, "{}", health.body);
    let body = health.json();
    assert_eq!(body["store_backend"], "redis", "{body}");
    assert!(body["store_down_since"].is_string(), "{body}");
    assert_eq!(metric(&a, "weir_store_up "), Some(0.0));

    // Back, on the same port: no restart of Weir.
    redis.resume();
    wait_until("the store to be up again", || {
        a.request("GET", "/healthz", false, b"").status == 200
    });
    let r = milter_send(a.milter, "s@example.test", "after", "d9");
    assert!(accepted(&r), "{r}");
    assert_eq!(metric(&a, "weir_store_up "), Some(1.0));
    let actions = a.request("GET", "/v1/actions", true, b"").json();
    let ids: Vec<&str> = actions
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|e| e["message_id"].as_str())
        .collect();
    assert_eq!(
        ids,
        ["d9@example.test"],
        "recorded in the Redis that returned"
    );
    assert!(
        a.child.id() > 0 && a.log().contains("answers again"),
        "{}",
        a.log()
    );
}

const NEW_RULES: &str = r#"
rule blocked { when subject contains "BLOCKED" then reject 550 "5.7.1" "Blocked everywhere" }
"#;

/// A ruleset B cannot load: it names a webhook only A configures.
const NOTIFYING_RULES: &str = r#"
rule ping { when subject contains "PING" then notify "hook" with { text: "ping" } }
"#;

fn version(d: &Daemon) -> u64 {
    d.request("GET", "/v1/ruleset", true, b"").json()["version"]
        .as_u64()
        .expect("a version")
}

#[test]
fn a_reload_on_one_host_reaches_the_other() {
    if !redis_support::available() {
        return;
    }
    let redis = Redis::start();
    let sink = Sink::start();
    let hook = "[notify.hook]\nurl = \"http://127.0.0.1:9/hook\"\n";
    let a = host(&redis, &sink, "mx-a", hook);
    let b = host(&redis, &sink, "mx-b", "");
    assert!(accepted(&milter_send(
        b.milter,
        "s@example.test",
        "BLOCKED",
        "n0"
    )));

    // Only A's files change; B has the old ones.
    std::fs::write(a.dir.join("rules.flow"), NEW_RULES).expect("rules");
    let reloaded = a.request("POST", "/v1/reload", true, b"");
    assert_eq!(reloaded.status, 200, "{}", reloaded.body);
    wait_until("B to run A's version", || version(&b) == version(&a));
    let r = milter_send(b.milter, "s@example.test", "BLOCKED", "n1");
    assert!(r.contains("550"), "B decides with A's rules: {r}");

    // Every host's version, from either host.
    wait_until("both hosts listed in sync", || {
        let hosts = b.request("GET", "/v1/ruleset", true, b"").json()["hosts"].clone();
        hosts.as_array().is_some_and(|h| {
            h.len() == 2
                && h.iter()
                    .all(|x| x["version"] == version(&a) && x["in_sync"] == true)
        })
    });

    // A version B cannot load: B keeps its own and says why.
    let kept = version(&b);
    std::fs::write(a.dir.join("rules.flow"), NOTIFYING_RULES).expect("rules");
    assert_eq!(a.request("POST", "/v1/reload", true, b"").status, 200);
    wait_until("B to report that it cannot load it", || {
        let ruleset = a.request("GET", "/v1/ruleset", true, b"").json();
        ruleset["hosts"].as_array().is_some_and(|h| {
            h.iter().any(|x| {
                x["host"] == "mx-b"
                    && x["in_sync"] == false
                    && x["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("notify.hook"))
            })
        })
    });
    assert_eq!(version(&b), kept, "B keeps its running version");
    assert_eq!(metric(&b, "weir_ruleset_in_sync "), Some(0.0));
    let r = milter_send(b.milter, "s@example.test", "BLOCKED", "n2");
    assert!(r.contains("550"), "B still runs its version: {r}");
}

#[test]
fn the_event_stream_of_one_host_shows_the_other_hosts_decisions() {
    if !redis_support::available() {
        return;
    }
    let redis = Redis::start();
    let sink = Sink::start();
    let a = host(&redis, &sink, "mx-a", "");
    let b = host(&redis, &sink, "mx-b", "");
    let mut events = serve_support::Events::open(b.http, &b.token);
    assert!(accepted(&milter_send(
        a.milter,
        "s@example.test",
        "from A",
        "e1"
    )));
    let decision = events.next_decision();
    assert_eq!(decision["host"], "mx-a", "{decision}");
    assert_eq!(decision["message_id"], "e1@example.test", "{decision}");
    assert!(accepted(&milter_send(
        b.milter,
        "s@example.test",
        "from B",
        "e2"
    )));
    let decision = events.next_decision();
    assert_eq!(decision["host"], "mx-b", "{decision}");

    // A milter quarantine is in A's Postfix hold queue: B lists it, and
    // refuses to act on it, naming the host that can.
    let r = milter_send(a.milter, "s@example.test", "HOLD this", "e3");
    assert!(r.contains("Quarantine") || accepted(&r), "{r}");
    let listed = b.request("GET", "/v1/quarantine", true, b"").json();
    let entry = listed
        .as_array()
        .and_then(|l| l.iter().find(|e| e["queue_id"] == "Qe3"))
        .cloned()
        .unwrap_or_else(|| panic!("listed on B: {listed}"));
    assert_eq!(entry["host"], "mx-a", "{entry}");
    assert_eq!(entry["status"], "held", "B does not mark it gone: {entry}");
    let release = b.request("POST", "/v1/quarantine/Qe3/release", true, b"");
    assert_eq!(release.status, 409, "{}", release.body);
    assert!(release.body.contains("mx-a"), "{}", release.body);
}

/// A webhook receiver that holds every request unanswered while `hang`
/// is set (an attempt in flight), then answers 200; it records the
/// `Idempotency-Key` of each request it answered.
struct Hook {
    port: u16,
    hang: std::sync::Arc<std::sync::atomic::AtomicBool>,
    seen: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    answered: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Hook {
    fn start() -> Hook {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let hook = Hook {
            port: listener.local_addr().expect("addr").port(),
            hang: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
            seen: std::sync::Arc::default(),
            answered: std::sync::Arc::default(),
        };
        let (hang, seen, answered) = (hook.hang.clone(), hook.seen.clone(), hook.answered.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (hang, seen, answered) = (hang.clone(), seen.clone(), answered.clone());
                std::thread::spawn(move || {
                    use std::io::{BufRead, Write};
                    let mut reader = std::io::BufReader::new(&stream);
                    let mut key = String::new();
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        if let Some((n, v)) = line.split_once(':')
                            && n.eq_ignore_ascii_case("idempotency-key")
                        {
                            key = v.trim().to_string();
                        }
                        if line.trim().is_empty() {
                            break;
                        }
                        line.clear();
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                    if hang.load(Ordering::SeqCst) {
                        // Held until the sender dies: never answered.
                        std::thread::sleep(Duration::from_secs(120));
                        return;
                    }
                    answered.lock().expect("lock").push(key);
                    let _ = (&stream).write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                });
            }
        });
        hook
    }
}

const HOOK_RULES: &str = r#"
rule ping { when subject contains "PING" then notify "hook" with { text: "ping ${subject}" } }
"#;

/// A host named `name` running [`HOOK_RULES`] with the `[store]` table
/// `store` and the other `tables` (the hook's).
fn hook_host(name: &str, store: &str, tables: &str) -> Daemon {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = temp_dir(&format!("hosts-hook-{name}-{n}"));
    std::fs::write(dir.join("rules.flow"), HOOK_RULES).expect("rules");
    let (http, milter) = write_config(&dir, "", &format!("{store}\n{tables}"));
    Daemon::start(&dir, http, milter).owning(dir)
}

#[test]
fn outbox_items_of_a_host_killed_mid_attempt_are_delivered_once_by_another() {
    use std::sync::atomic::Ordering;
    if !redis_support::available() {
        return;
    }
    let redis = Redis::start();
    let hook = Hook::start();
    let tables = format!(
        "[notify.hook]\nurl = \"http://127.0.0.1:{}/hook\"\ntimeout = \"60s\"\n",
        hook.port
    );
    let start = |name: &str| {
        let store = redis
            .store_table(name)
            .replace("[store]\n", "[store]\nclaim_timeout = \"3s\"\n");
        hook_host(name, &store, &tables)
    };
    let mut a = start("mx-a");
    for n in 0..3 {
        assert!(accepted(&milter_send(
            a.milter,
            "s@example.test",
            &format!("PING {n}"),
            &format!("p{n}")
        )));
    }
    wait_until("host A to be attempting all three", || {
        hook.seen.load(Ordering::SeqCst) >= 3
    });
    a.kill_9();
    hook.hang.store(false, Ordering::SeqCst);

    let b = start("mx-b");
    wait_until("host B to deliver all three", || {
        hook.answered.lock().expect("lock").len() >= 3
    });
    wait_until("an empty outbox", || {
        let items = b.request("GET", "/v1/outbox", true, b"").json();
        items.as_array().is_some_and(Vec::is_empty)
    });
    std::thread::sleep(Duration::from_secs(4));
    let mut keys = hook.answered.lock().expect("lock").clone();
    keys.sort();
    let before = keys.len();
    keys.dedup();
    assert_eq!(
        (before, keys.len()),
        (3, 3),
        "each key delivered once: {keys:?}"
    );
    assert!(keys.iter().all(|k| !k.is_empty()), "{keys:?}");
}

#[test]
fn a_sentinel_failover_is_survived() {
    use crate::redis_support::Sentinel;
    if !redis_support::available() {
        return;
    }
    // The master and its replica ask for a password, as in production.
    let auth = ["--requirepass", "s3cret-pw", "--masterauth", "s3cret-pw"];
    let mut master = Redis::start_with(serve_support::free_port(), &auth);
    let master_port = master.port.to_string();
    let mut replica_args = vec!["--replicaof", "127.0.0.1", &master_port];
    replica_args.extend(auth);
    let replica = Redis::start_with(serve_support::free_port(), &replica_args);
    let sentinels: Vec<Sentinel> = (0..3)
        .map(|_| Sentinel::start(master.port, "s3cret-pw"))
        .collect();
    wait_until("the sentinels to see the master", || {
        sentinels
            .iter()
            .all(|s| s.master_port() == Some(master.port))
    });
    let addresses: Vec<String> = sentinels
        .iter()
        .map(|s| format!("\"127.0.0.1:{}\"", s.port))
        .collect();
    let dir = temp_dir("hosts-sentinel");
    std::fs::write(dir.join("rules.flow"), RULES).expect("rules");
    let sink = Sink::start();
    let store = format!(
        "[store]\nbackend = \"redis\"\nhost = \"mx-s\"\ntimeout = \"1s\"\nconnect_timeout = \"1s\"\n\
         [store.sentinel]\nmaster = \"weir\"\naddresses = [{}]\npassword = \"s3cret-pw\"\n\n\
         [relay]\nhost = \"inet:127.0.0.1:{}\"\nfrom = \"postmaster@example.test\"\n",
        addresses.join(", "),
        sink.port
    );
    let (http, milter) = write_config(&dir, "", &store);
    let d = Daemon::start(&dir, http, milter);
    assert!(accepted(&milter_send(
        d.milter,
        "s@example.test",
        "before",
        "f0"
    )));

    master.stop();
    wait_until("a failover to the replica", || {
        sentinels
            .iter()
            .any(|s| s.master_port() == Some(replica.port))
    });
    // Mail meanwhile is tempfailed or accepted, never lost; once the new
    // master is known it is accepted again, without a restart.
    let mut n = 0;
    wait_until("mail accepted through the new master", || {
        n += 1;
        accepted(&milter_send(
            d.milter,
            "s@example.test",
            "after",
            &format!("f{n}"),
        ))
    });
    let actions = d.request("GET", "/v1/actions", true, b"").json();
    assert!(
        actions.as_array().is_some_and(|a| a
            .iter()
            .any(|e| e["message_id"] == format!("f{n}@example.test"))),
        "{actions}"
    );
    assert!(
        replica
            .cli(&["info", "replication"])
            .contains("role:master")
    );
}

#[test]
fn with_redis_slow_past_the_timeout_mail_is_tempfailed_then_flows() {
    if !redis_support::available() {
        return;
    }
    let redis = Redis::start();
    let sink = Sink::start();
    let a = host(&redis, &sink, "mx-a", "");
    assert!(accepted(&milter_send(
        a.milter,
        "s@example.test",
        "before",
        "w0"
    )));
    // Writes wait 3 s: past `timeout = "1s"`.
    assert!(
        redis
            .cli(&["client", "pause", "3000", "write"])
            .contains("OK")
    );
    let started = Instant::now();
    let r = milter_send(a.milter, "s@example.test", "slow", "w1");
    assert!(r.contains("451") || r.contains("Tempfail"), "{r}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered at the timeout, not when Redis woke: {:?}",
        started.elapsed()
    );
    wait_until("mail accepted again", || {
        accepted(&milter_send(a.milter, "s@example.test", "after", "w2"))
    });
}

#[test]
fn a_start_without_redis_fails_with_a_clear_error() {
    let dir = temp_dir("hosts-no-redis");
    std::fs::write(dir.join("rules.flow"), RULES).expect("rules");
    let nobody = serve_support::free_port();
    let store = format!(
        "[store]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:{nobody}\"\nconnect_timeout = \"500ms\"\n\n\
         [relay]\nhost = \"inet:127.0.0.1:25\"\nfrom = \"postmaster@example.test\"\n"
    );
    write_config(&dir, "", &store);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--config", "weir.toml"])
        .current_dir(&dir)
        .output()
        .expect("weir runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot open the Redis store ([store])"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&nobody.to_string()) || stderr.contains("refused"),
        "{stderr}"
    );
}

#[test]
fn a_host_that_starts_later_adopts_the_announced_version() {
    if !redis_support::available() {
        return;
    }
    let redis = Redis::start();
    let sink = Sink::start();
    let a = host(&redis, &sink, "mx-a", "");
    for rules in [NEW_RULES.to_string(), format!("{NEW_RULES}\n# again\n")] {
        std::fs::write(a.dir.join("rules.flow"), rules).expect("rules");
        let reloaded = a.request("POST", "/v1/reload", true, b"");
        assert_eq!(reloaded.status, 200, "{}", reloaded.body);
    }
    // The file watcher may reload A once more after the API did: wait for
    // A to run the version last announced, and to stay on it.
    let last_announced = || -> Option<u64> {
        let json: serde_json::Value =
            serde_json::from_str(&redis.cli(&["get", "it:ruleset:announced"])).ok()?;
        json["version"].as_u64()
    };
    wait_until("A to settle on the announced version", || {
        let before = version(&a);
        std::thread::sleep(Duration::from_millis(1_500));
        version(&a) == before && last_announced() == Some(before)
    });
    let announced = version(&a);
    assert!(announced >= 3, "A started and reloaded twice: {announced}");

    // B's own files are the first ruleset; it starts on A's all the same.
    let b = host(&redis, &sink, "mx-b", "");
    assert_eq!(
        version(&b),
        announced,
        "B adopts A's version at start: {}",
        b.log()
    );
    let r = milter_send(b.milter, "s@example.test", "BLOCKED", "s1");
    assert!(r.contains("550"), "B decides with A's rules: {r}");
    wait_until("B to report itself in sync", || {
        metric(&b, "weir_ruleset_in_sync ") == Some(1.0)
    });
    wait_until("both hosts listed in sync", || {
        let hosts = a.request("GET", "/v1/ruleset", true, b"").json()["hosts"].clone();
        hosts.as_array().is_some_and(|h| {
            h.len() == 2
                && h.iter()
                    .all(|x| x["version"] == announced && x["in_sync"] == true)
        })
    });
}

#[test]
fn a_host_that_cannot_load_the_announced_version_at_start_runs_its_own_and_says_so() {
    if !redis_support::available() {
        return;
    }
    let redis = Redis::start();
    let sink = Sink::start();
    let hook = "[notify.hook]\nurl = \"http://127.0.0.1:9/hook\"\n";
    let a = host(&redis, &sink, "mx-a", hook);
    std::fs::write(a.dir.join("rules.flow"), NOTIFYING_RULES).expect("rules");
    assert_eq!(a.request("POST", "/v1/reload", true, b"").status, 200);

    // B has no [notify.hook]: it starts on its own files, under a version
    // of its own, and says why.
    let b = host(&redis, &sink, "mx-b", "");
    assert_ne!(version(&b), version(&a));
    wait_until("B to report that it cannot load A's version", || {
        metric(&b, "weir_ruleset_in_sync ") == Some(0.0)
            && b.request("GET", "/v1/ruleset", true, b"").json()["hosts"]
                .as_array()
                .is_some_and(|h| {
                    h.iter().any(|x| {
                        x["host"] == "mx-b"
                            && x["in_sync"] == false
                            && x["error"]
                                .as_str()
                                .is_some_and(|e| e.contains("notify.hook"))
                    })
                })
    });
    let r = milter_send(b.milter, "s@example.test", "VACATION", "s2");
    assert!(accepted(&r), "B runs its own rules: {r}");
}

/// A delivery recorded whose stream entry was never acknowledged (the
/// host died between the two) is not delivered again by the host that
/// takes the entry over. Host A's Redis user may not `XACK`, so its
/// acknowledgement is refused by the real server; then A is killed.
#[test]
fn an_outbox_item_delivered_whose_ack_was_lost_is_not_delivered_twice() {
    use std::sync::atomic::Ordering;
    if !redis_support::available() {
        return;
    }
    let redis = Redis::start();
    redis.cli(&[
        "acl", "setuser", "mx-a", "on", ">secret", "~*", "&*", "+@all", "-xack",
    ]);
    let hook = Hook::start();
    hook.hang.store(false, Ordering::SeqCst);
    let tables = format!(
        "[notify.hook]\nurl = \"http://127.0.0.1:{}/hook\"\n",
        hook.port
    );
    let start = |name: &str, url: &str| {
        let store = redis
            .store_table(name)
            .replace("redis://", url)
            .replace("[store]\n", "[store]\nclaim_timeout = \"2s\"\n");
        hook_host(name, &store, &tables)
    };
    let mut a = start("mx-a", "redis://mx-a:secret@");
    assert!(accepted(&milter_send(
        a.milter,
        "s@example.test",
        "PING once",
        "k0"
    )));
    let unacknowledged = || {
        redis
            .cli(&["xpending", "it:{outbox}:stream", "workers"])
            .lines()
            .next()
            .map(str::to_string)
    };
    wait_until("A to deliver and record it, its ack refused", || {
        hook.answered.lock().expect("lock").len() == 1
            && redis.cli(&["zcard", "it:{outbox}:done"]).trim() == "1"
            && unacknowledged().as_deref() == Some("1")
    });
    assert!(a.log().contains("not acknowledged"), "{}", a.log());
    a.kill_9();

    let b = start("mx-b", "redis://");
    wait_until("B to acknowledge A's entry", || {
        unacknowledged().as_deref() == Some("0")
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(hook.seen.load(Ordering::SeqCst), 1, "delivered once");
    let items = b.request("GET", "/v1/outbox", true, b"").json();
    assert_eq!(items, serde_json::json!([]));
}

/// A dead letter queued by one host is listed, with its host, and retried
/// through the other; the retried item goes back into the shared stream
/// and is delivered once.
#[test]
fn a_dead_letter_of_one_host_is_listed_and_retried_through_the_other() {
    use std::sync::atomic::Ordering;
    if !redis_support::available() {
        return;
    }
    let redis = Redis::start();
    let hook = Hook::start();
    let tables = format!(
        "[notify.hook]\nurl = \"http://127.0.0.1:{}/hook\"\ntimeout = \"1s\"\nretries = 0\n",
        hook.port
    );
    let start = |name: &str| hook_host(name, &redis.store_table(name), &tables);
    let a = start("mx-a");
    let b = start("mx-b");
    assert!(accepted(&milter_send(
        a.milter,
        "s@example.test",
        "PING dead",
        "d0"
    )));
    let mut listed = serde_json::Value::Null;
    wait_until("B to list A's item dead", || {
        listed = b.request("GET", "/v1/outbox", true, b"").json();
        listed[0]["state"] == "dead"
    });
    assert_eq!(listed[0]["host"], "mx-a", "{listed}");
    hook.hang.store(false, Ordering::SeqCst);
    let id = listed[0]["id"].as_str().expect("an id").to_string();
    let retried = b.request("POST", &format!("/v1/outbox/{id}/retry"), true, b"");
    assert_eq!(retried.status, 200, "{}", retried.body);
    wait_until("the retried item to be delivered", || {
        hook.answered.lock().expect("lock").len() == 1
    });
    wait_until("an empty outbox on A", || {
        a.request("GET", "/v1/outbox", true, b"").json() == serde_json::json!([])
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(*hook.answered.lock().expect("lock"), [id], "delivered once");
}
