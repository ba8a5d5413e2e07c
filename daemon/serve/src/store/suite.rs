//! One test suite for every backend of the [`Store`]: sled, Redis
//! standalone and a three-master Redis Cluster run the same cases. Each
//! case gets two handles on one store, as two hosts would have (sled: two
//! clones of one database; Redis: two connections under one prefix, each
//! with its own `host`).

use std::time::Duration;

use super::test_redis::{self, RedisCluster, RedisServer, TestCerts};
use super::*;
use crate::config::{Config, RedisConfig, RedisTarget, StoreBackend};
use crate::state::Source;
use weir_compiler::RateCounter;

type Case = (&'static str, fn(&Store, &Store));

const CASES: &[Case] = &[
    ("rates slide and count once per message", rates_slide),
    ("rates of two hosts add up", rates_add_up),
    ("rate hits are committed in one batch", rate_batch),
    ("a message's rate keys are read in one batch", rate_prefetch),
    ("duplicates are per recipient and slide", duplicates),
    ("a sender gets one reply per period", replies),
    ("deliveries are recorded", deliveries),
    ("the audit log shows both hosts", audit_of_two_hosts),
    ("audit filters, limits and amendments", audit_filters),
    ("audit retention by age", audit_retention),
    ("quarantine is listed and removed by any host", quarantine),
    ("versions and ids are shared", counters),
    ("the outbox is claimed by one host and taken over", outbox),
];

fn run(open: impl Fn(&str, &str) -> Store) {
    for (name, case) in CASES {
        eprintln!("case: {name}");
        let slug = name.replace(' ', "-");
        let _states = StatesRemoved::new(&slug);
        let a = open(&slug, "host-a");
        let b = open(&slug, "host-b");
        case(&a, &b);
    }
}

/// The store in `dir` opened again after the test dropped it. sled's I/O
/// threads may still hold the database (and its lock) for a moment after
/// the last handle goes, so a lock error is tried again for up to 5 s.
pub(crate) fn reopen(dir: &std::path::Path) -> Store {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match Store::open(dir) {
            Ok(store) => return store,
            Err(e)
                if format!("{e:#}").contains("is in use")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("reopen: {e:#}"),
        }
    }
}

/// A fresh state directory for one host of a case (or test) `slug`, below
/// [`slug_dir`].
fn state_dir(slug: &str, host: &str) -> std::path::PathBuf {
    let dir = slug_dir(slug).join(host);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The directory of the stores a case (or test) `slug` opens on this
/// thread, one state directory per host below it.
fn slug_dir(slug: &str) -> std::path::PathBuf {
    std::env::temp_dir()
        .join(format!(
            "weir-suite-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ))
        .join(slug)
}

/// Removes, when dropped, the state directories of every store opened
/// for `slug` on this thread ([`slug_dir`]); declared before the stores,
/// it outlives them.
pub(crate) struct StatesRemoved(String);

impl StatesRemoved {
    pub(crate) fn new(slug: &str) -> StatesRemoved {
        StatesRemoved(slug.to_string())
    }
}

impl Drop for StatesRemoved {
    fn drop(&mut self) {
        let dir = slug_dir(&self.0);
        let _ = std::fs::remove_dir_all(&dir);
        // The thread's directory too, once its last slug is gone.
        if let Some(parent) = dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

#[test]
fn suite_on_sled() {
    let stores = std::sync::Mutex::new(std::collections::HashMap::<String, Store>::new());
    run(|slug, _host| {
        let mut stores = stores.lock().expect("lock");
        stores
            .entry(slug.to_string())
            .or_insert_with(|| Store::open(&state_dir(slug, "sled")).expect("open"))
            .clone()
    });
}

/// A Redis store named `host`, under a prefix of its own for `slug`.
pub(crate) fn redis_store(target: RedisTarget, slug: &str, host: &str) -> Store {
    tls_store(target, Default::default(), slug, host).expect("open the Redis store")
}

/// [`redis_store`] with `[store] tls_*_file`, or why it cannot open.
fn tls_store(
    target: RedisTarget,
    tls: crate::config::RedisTls,
    slug: &str,
    host: &str,
) -> anyhow::Result<Store> {
    let mut config = Config::defaults(std::path::Path::new("r.flow"));
    config.state_dir = state_dir(slug, host);
    config.store.host = host.to_string();
    config.store.backend = StoreBackend::Redis(RedisConfig {
        target,
        prefix: format!("t{}:{slug}:", std::process::id()),
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
        pool_size: 4,
        audit_max_length: 1000,
        claim_timeout: Duration::from_secs(1),
        tls: Box::new(tls),
    });
    Store::open_config(&config)
}

#[test]
fn suite_on_redis() {
    if !test_redis::available() {
        return;
    }
    let server = RedisServer::start();
    run(|slug, host| redis_store(RedisTarget::Url(server.url()), slug, host));
}

#[test]
fn suite_on_redis_over_tls() {
    if !test_redis::available() {
        return;
    }
    let Some(certs) = TestCerts::make() else {
        return;
    };
    let (server, url) = RedisServer::start_tls(&certs);
    let tls = crate::config::RedisTls {
        ca_file: Some(certs.file("ca.pem")),
        cert_file: Some(certs.file("client.pem")),
        key_file: Some(certs.file("client.key")),
    };
    let target = || RedisTarget::Url(url.clone());
    run(|slug, host| tls_store(target(), tls.clone(), slug, host).expect("open over TLS"));
    // What went over TLS is really there (read in plain text on the other port).
    let keys = server.cli(&["dbsize"]).unwrap_or_default();
    assert_ne!(keys.trim(), "0", "nothing stored over TLS");

    // Refused, with the reason: a server not signed by a trusted CA (the
    // system's roots), and no client certificate.
    let untrusted = crate::config::RedisTls::default();
    let no_client = crate::config::RedisTls {
        ca_file: tls.ca_file.clone(),
        ..Default::default()
    };
    for (tls, what) in [
        (untrusted, "UnknownIssuer"),
        (no_client, "CertificateRequired"),
    ] {
        let _states = StatesRemoved::new("refused");
        let store = tls_store(target(), tls, "refused", "host-a");
        let error = match store {
            Err(e) => format!("{e:#}"),
            Ok(store) => match store.probe() {
                Err(e) => format!("{e}"),
                Ok(()) => panic!("connected over TLS with {what:?} missing"),
            },
        };
        assert!(error.contains(what), "{error}");
        eprintln!("refused as expected: {error}");
    }
}

#[test]
fn suite_on_redis_over_a_unix_socket() {
    if !test_redis::available() {
        return;
    }
    let (_server, url) = RedisServer::start_with_socket();
    run(|slug, host| redis_store(RedisTarget::Url(url.clone()), slug, host));
}

#[test]
fn suite_on_redis_cluster() {
    if !test_redis::available() {
        return;
    }
    let cluster = RedisCluster::start();
    run(|slug, host| redis_store(RedisTarget::Cluster(cluster.seeds()), slug, host));
    // The keys really are spread over the three masters.
    for node in &cluster.nodes {
        let keys = node.cli(&["dbsize"]).unwrap_or_default();
        assert_ne!(keys.trim(), "0", "node {} holds no key", node.port);
    }
}

fn rates_slide(a: &Store, _: &Store) {
    let mut first = MessageRates::new(a.clone());
    assert_eq!(first.hit("k", 60, 1000, true), 1);
    assert_eq!(
        first.hit("k", 60, 1000, true),
        1,
        "same message counts once"
    );
    let mut second = MessageRates::new(a.clone());
    assert_eq!(second.hit("k", 60, 1010, true), 2);
    assert_eq!(second.hit("k", 60, 1010, false), 2);
    let mut dry = MessageRates::new(a.clone());
    assert_eq!(dry.hit("k", 60, 1069, false), 1, "the first hit slid out");
    assert_eq!(a.rate_hit("other", 60, 1070, false), 0);
    assert_eq!(a.rate_hit("k", 3600, 1070, false), 2, "a longer window");
}

fn rates_add_up(a: &Store, b: &Store) {
    for i in 0..5 {
        a.rate_hit("sender@x", 3600, 2000 + i, true);
        b.rate_hit("sender@x", 3600, 2000 + i, true);
    }
    assert_eq!(a.rate_hit("sender@x", 3600, 2010, false), 10);
    assert_eq!(b.rate_hit("sender@x", 3600, 2010, true), 11);
}

fn rate_batch(a: &Store, b: &Store) {
    let hits = vec![("one".to_string(), 60), ("two".to_string(), 3600)];
    a.rate_hits(&hits, 5000);
    b.rate_hits(&hits, 5001);
    assert_eq!(a.rate_hit("one", 60, 5002, false), 2);
    assert_eq!(a.rate_hit("two", 3600, 5002, false), 2);
    assert_eq!(a.rate_hit("one", 60, 5061, false), 0);
}

fn rate_prefetch(a: &Store, b: &Store) {
    for t in [6000, 6001, 6002] {
        b.rate_hits(&[("p1".to_string(), 60), ("p2".to_string(), 3600)], t);
    }
    let keys = vec![
        ("p1".to_string(), 60),
        ("p2".to_string(), 3600),
        ("p2".to_string(), 2),
        ("none".to_string(), 60),
    ];
    assert_eq!(a.rate_counts(&keys, 6003), vec![3, 3, 1, 0]);
    assert_eq!(
        a.rate_counts(&keys, 6003),
        vec![3, 3, 1, 0],
        "reads count nothing"
    );
    assert_eq!(a.rate_counts(&[], 6003), Vec::<u64>::new());

    // A message whose keys were prefetched sees what it would have read
    // key by key, counts once, and only what its evaluation asked.
    let mut message = crate::stages::StagedRates::new(a.clone());
    message.prefetch(keys.clone(), 6004);
    assert_eq!(message.hit("p1", 60, 6004, true), 4);
    assert_eq!(message.hit("p2", 2, 6004, false), 0);
    assert_eq!(
        message.hit("late", 60, 6004, true),
        1,
        "not prefetched: read"
    );
    message.commit();
    assert_eq!(b.rate_counts(&keys, 6004), vec![4, 3, 0, 0]);
    assert_eq!(b.rate_hit("late", 60, 6004, false), 1);
}

fn duplicates(a: &Store, b: &Store) {
    assert!(!a.duplicate_seen("a@x", "k", 60, 1000));
    a.record_duplicates("a@x", &["k".to_string()], 1000)
        .expect("record");
    assert!(
        b.duplicate_seen("a@x", "k", 60, 1059),
        "seen by the other host"
    );
    assert!(!b.duplicate_seen("a@x", "k", 60, 1060), "out of the window");
    assert!(!b.duplicate_seen("b@x", "k", 60, 1001), "another recipient");
    assert!(!b.duplicate_seen("a@x", "other", 60, 1001));
}

fn replies(a: &Store, b: &Store) {
    let now = crate::clock::unix_now();
    assert!(a.reply_allowed("Sender@X", 100, now).expect("allowed"));
    assert!(
        !b.reply_allowed("sender@x", 100, now + 1).expect("asked"),
        "the other host sends none within the period"
    );
    assert!(b.reply_allowed("other@x", 100, now).expect("allowed"));
}

fn deliveries(a: &Store, b: &Store) {
    let record = DeliveryRecord {
        dir: "/m/a".into(),
        base: "1.M1P2Q3.host,S=10".into(),
        time: crate::clock::unix_now(),
    };
    a.put_delivery("key", &record).expect("put");
    assert_eq!(b.delivery("key").expect("get"), Some(record));
    assert_eq!(b.delivery("none").expect("get"), None);
}

fn entry(queue_id: &str, verdict: &str, rule: &str) -> AuditEntry {
    AuditEntry {
        id: 0,
        time: crate::clock::unix_now(),
        source: Source::Milter,
        queue_id: queue_id.to_string(),
        message_id: String::new(),
        ruleset_version: 1,
        host: String::new(),
        decision: serde_json::json!({"verdict": verdict, "matched": [rule], "recipients": []}),
    }
}

fn audit_of_two_hosts(a: &Store, b: &Store) {
    let first = a
        .append_audit(entry("QA", "accept", "r1"), None)
        .expect("a");
    let second = b
        .append_audit(entry("QB", "reject", "r2"), None)
        .expect("b");
    assert!(second.id > first.id, "ids increase across hosts");
    for store in [a, b] {
        let all = store.audit_entries(&AuditFilter::default(), 10);
        let seen: Vec<(&str, &str)> = all
            .iter()
            .map(|e| (e.queue_id.as_str(), e.host.as_str()))
            .collect();
        if store.backend() == "redis" {
            assert_eq!(seen, [("QA", "host-a"), ("QB", "host-b")]);
        } else {
            assert_eq!(seen.len(), 2, "{seen:?}");
        }
    }
    let one = b.audit_entry(first.id).expect("by id");
    assert_eq!(one.queue_id, "QA");
}

fn audit_filters(a: &Store, b: &Store) {
    let mut ids = Vec::new();
    for i in 0..6 {
        let verdict = if i % 2 == 0 { "accept" } else { "reject" };
        let e = a.append_audit(entry(&format!("Q{i}"), verdict, "r"), None);
        ids.push(e.expect("append").id);
    }
    let newest = b.audit_entries(&AuditFilter::default(), 2);
    let names: Vec<&str> = newest.iter().map(|e| e.queue_id.as_str()).collect();
    assert_eq!(names, ["Q4", "Q5"], "the newest, oldest first");
    let since = AuditFilter {
        after_id: Some(ids[3]),
        ..AuditFilter::default()
    };
    assert_eq!(b.audit_entries(&since, 10).len(), 2);
    let rejects = AuditFilter {
        verdict: Some("reject".into()),
        ..AuditFilter::default()
    };
    assert_eq!(b.audit_entries(&rejects, 10).len(), 3);
    let amended = b
        .amend_audit(ids[0], |d| d["delivered"] = serde_json::json!(true))
        .expect("amend");
    assert!(amended);
    let again = a
        .amend_audit(ids[0], |d| d["again"] = serde_json::json!(1))
        .expect("amend");
    assert!(again);
    let e = a.audit_entry(ids[0]).expect("entry");
    assert_eq!(e.decision["delivered"], true, "{}", e.decision);
    assert_eq!(e.decision["again"], 1, "both amendments kept");
    let listed = a.audit_entries(&AuditFilter::default(), 10);
    assert_eq!(listed[0].decision["again"], 1, "listed amended");
    assert!(
        !a.amend_audit(u64::MAX / 2, |_| ()).expect("amend"),
        "no such entry"
    );
}

fn audit_retention(a: &Store, b: &Store) {
    a.append_audit(entry("Q1", "accept", "r"), None).expect("a");
    b.append_audit(entry("Q2", "accept", "r"), None).expect("b");
    let now = crate::clock::unix_now();
    assert_eq!(a.prune_audit(now - 3600).expect("prune"), 0);
    assert_eq!(a.audit_entries(&AuditFilter::default(), 10).len(), 2);
    assert_eq!(b.prune_audit(now + 10).expect("prune"), 2);
    assert!(a.audit_entries(&AuditFilter::default(), 10).is_empty());
}

fn quarantine(a: &Store, b: &Store) {
    let held = QuarantineEntry {
        host: String::new(),
        queue_id: "4XyZ".into(),
        audit_id: 0,
        rule: "hold".into(),
        reason: "why".into(),
        time: crate::clock::unix_now(),
        summary: MessageSummary::default(),
        lmtp: None,
        gone: None,
    };
    let e = a
        .append_audit(entry("4XyZ", "quarantine", "hold"), Some(held))
        .expect("append");
    let listed = b.quarantine_entries();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].audit_id, e.id, "indexed with its audit entry");
    assert_eq!(
        b.quarantine_entry("4XyZ").map(|q| q.rule),
        Some("hold".into())
    );
    assert!(b.remove_quarantine("4XyZ").expect("remove"));
    assert!(
        !a.remove_quarantine("4XyZ").expect("remove"),
        "removed once"
    );
    assert!(a.quarantine_entries().is_empty());
}

fn outbox_item(id: &str) -> crate::outbox::OutboxItem {
    use crate::outbox::{Kind, OutboxItem, Payload, State};
    OutboxItem {
        id: id.into(),
        kind: Kind::Forward,
        channel: None,
        rule: "r".into(),
        message_id: format!("{id}@test"),
        created: crate::clock::unix_now(),
        attempts: 0,
        next_attempt_ms: 1_000,
        last_error: None,
        state: State::Pending,
        seq: 0,
        host: String::new(),
        payload: Payload::Mail {
            reverse_path: String::new(),
            to: "x@example.test".into(),
            data: b"Subject: hi\r\n\r\nbody\r\n".to_vec(),
        },
    }
}

fn outbox(a: &Store, b: &Store) {
    use crate::outbox::Payload;
    let none = HashSet::new();
    assert!(a.outbox_add(&outbox_item("k1")).expect("add"));
    assert!(
        !b.outbox_add(&outbox_item("k1")).expect("add"),
        "queued once"
    );
    assert!(b.outbox_known("k1").expect("known"));
    assert!(b.outbox_add(&outbox_item("k2")).expect("add"));
    assert_eq!(a.outbox_pending(), 2);
    let page: Vec<String> = b.outbox_page(0, 10).into_iter().map(|i| i.id).collect();
    assert_eq!(page, ["k1", "k2"], "queue order");
    let taken = a.outbox_due(crate::outbox::now_ms(), &none, 10);
    assert_eq!(taken.len(), 2);
    let Payload::Mail { data, .. } = &taken[0].payload else {
        panic!("mail")
    };
    assert!(data.starts_with(b"Subject: hi"), "with its bytes");
    if a.backend() == "redis" {
        let now = crate::outbox::now_ms();
        assert!(b.outbox_due(now, &none, 10).is_empty(), "claimed by host a");
        std::thread::sleep(Duration::from_millis(1_100));
        let now = crate::outbox::now_ms();
        let taken_over = b.outbox_due(now, &none, 10);
        assert_eq!(taken_over.len(), 2, "taken over once the claim ran out");
    }
    a.outbox_delivered("k1", 3).expect("delivered");
    assert!(b.outbox_known("k1").expect("known"), "its key stays known");
    assert!(
        !b.outbox_add(&outbox_item("k1")).expect("add"),
        "never again"
    );
    let mut retry = outbox_item("k2");
    retry.attempts = 1;
    let later = crate::outbox::now_ms() + 3_600_000;
    retry.next_attempt_ms = later;
    assert!(b.outbox_put(&retry).expect("put"));
    assert_eq!(a.outbox_next_due(2_000), Some(later));
    assert!(a.outbox_due(crate::outbox::now_ms(), &none, 10).is_empty());
    assert_eq!(a.outbox_item("k2").map(|i| i.attempts), Some(1));
    assert_eq!(a.outbox_pending(), 1);
    if let (Some(ra), Some(_)) = (&a.redis, &b.redis) {
        outbox_stream(a, b, ra);
    }
}

fn ids(items: &[crate::outbox::OutboxItem]) -> Vec<&str> {
    items.iter().map(|i| i.id.as_str()).collect()
}

/// What the stream and its consumer group add on Redis: a host that keeps
/// looking keeps its attempts, one that stops loses them after
/// `claim_timeout` (1 s here), an entry it held but is not attempting
/// (a restart) comes back to it at once, a retry on demand replaces the
/// held entry, and a delivery recorded whose acknowledgement was lost is
/// acknowledged by whoever meets it, never handed out again.
fn outbox_stream(a: &Store, b: &Store, ra: &RedisStore) {
    let none = HashSet::new();
    let now = crate::outbox::now_ms;
    assert!(a.outbox_add(&outbox_item("k4")).expect("add"));
    assert_eq!(ids(&a.outbox_due(now(), &none, 10)), ["k4"]);
    let busy: HashSet<String> = ["k4".to_string()].into();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(400));
        assert!(a.outbox_due(now(), &busy, 10).is_empty(), "renewed");
        assert!(b.outbox_due(now(), &none, 10).is_empty(), "still a's");
    }
    assert_eq!(
        ids(&a.outbox_due(now(), &none, 10)),
        ["k4"],
        "held, not under way: back at once"
    );
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(ids(&b.outbox_due(now(), &none, 10)), ["k4"], "taken over");
    assert!(a.outbox_due(now(), &none, 10).is_empty(), "no longer a's");

    let mut again = a.outbox_item("k4").expect("k4");
    again.attempts = 0;
    assert!(a.outbox_put(&again).expect("retry on demand"));
    assert_eq!(ids(&a.outbox_due(now(), &none, 10)), ["k4"], "a new entry");
    assert!(b.outbox_due(now(), &none, 10).is_empty(), "b's is gone");
    assert_eq!(ra.outbox_unacknowledged().expect("pending"), 1);

    ra.outbox_record_delivered("k4", 5).expect("recorded");
    assert_eq!(ra.outbox_unacknowledged().expect("pending"), 1, "ack lost");
    std::thread::sleep(Duration::from_millis(1_100));
    assert!(b.outbox_due(now(), &none, 10).is_empty(), "not again");
    assert_eq!(
        ra.outbox_unacknowledged().expect("pending"),
        0,
        "acknowledged"
    );
    assert!(a.outbox_due(now(), &none, 10).is_empty());
    assert!(
        !b.outbox_add(&outbox_item("k4")).expect("add"),
        "never again"
    );
    assert_eq!(a.outbox_pending(), 1, "k2 waits for later");
}

fn counters(a: &Store, b: &Store) {
    let v1 = a.next_ruleset_version().expect("version");
    let v2 = b.next_ruleset_version().expect("version");
    assert!(v2 > v1);
    let i1 = a.generate_id().expect("id");
    let i2 = b.generate_id().expect("id");
    assert_ne!(i1, i2);
    a.probe().expect("probe");
    assert_eq!(b.health(), Health::Up);
}
