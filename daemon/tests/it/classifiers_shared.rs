//! Learned classifiers shared by several hosts (docs/classifiers.md
//! "Storage", docs/serve.md "Several hosts"): two `weir serve` processes
//! on one real `redis-server`. What is learned through one host's API
//! classifies the other host's mail, what is forgotten through the other
//! changes the first, and a restarted host reads it all back from Redis;
//! what `weir learn --state` taught one host before becomes the shared
//! model when Redis has none.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::classifiers::{
    AUTOLEARN, AUTOLEARN_RULES, RULES, corpus, learn as weir_learn, milter_send, wait_autolearned,
};
use crate::redis_support::{self, Redis};
use crate::serve_support::{Daemon, temp_dir, write_config};

/// A host named `name` sharing `redis`, in `dir`.
fn host(redis: &Redis, dir: &Path, name: &str) -> (Daemon, u16, u16) {
    host_with(redis, dir, name, RULES, "")
}

/// A host with these rules and `extra` in its weir.toml.
fn host_with(
    redis: &Redis,
    dir: &Path,
    name: &str,
    rules: &str,
    extra: &str,
) -> (Daemon, u16, u16) {
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(dir.join("rules.flow"), rules).expect("rules");
    let tables = format!("{}\n{extra}", redis.store_table(name));
    let (http, milter) = write_config(dir, "", &tables);
    (Daemon::start(dir, http, milter), http, milter)
}

/// The tag the rules give `message` on `daemon` (class and probability).
fn tag(daemon: &Daemon, message: &[u8]) -> String {
    let r = daemon.request("POST", "/v1/check", true, message);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["tags"][0].as_str().unwrap_or_default().to_string()
}

/// Polls until `daemon` tags `message` as `want` says; how long it took.
fn wait_for_tag(
    daemon: &Daemon,
    message: &[u8],
    what: &str,
    want: impl Fn(&str) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let t = tag(daemon, message);
        if want(&t) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: still {t:?} after 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn learn(daemon: &Daemon, path: &str, bytes: &[u8], outcome: &str) {
    let r = daemon.request("POST", path, true, bytes);
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    assert_eq!(r.json()["outcome"], outcome, "{path}: {}", r.body);
}

#[test]
fn what_one_host_learns_classifies_the_mail_of_the_other() {
    if !redis_support::available() {
        return;
    }
    let redis = Redis::start();
    let root = temp_dir("classify-shared");
    corpus(&root.join("c"), 5, 21, 0);
    let (a, _, _) = host(&redis, &root.join("a"), "mx-a");
    let (mut b, b_http, b_milter) = host(&redis, &root.join("b"), "mx-b");
    let read = |class: &str, i: usize| {
        std::fs::read(root.join(format!("c/{class}/{i:03}.eml"))).expect("message")
    };
    let probe = read("spam", 20);
    assert_eq!(tag(&b, &probe), "class= p=0", "nothing learned yet");

    for class in ["spam", "ham"] {
        for i in 0..20 {
            learn(
                &a,
                &format!("/v1/learn/spam/{class}"),
                &read(class, i),
                "learned",
            );
        }
    }
    let on_a = tag(&a, &probe);
    assert!(on_a.starts_with("class=spam "), "A learned at once: {on_a}");
    let took = wait_for_tag(&b, &probe, "B reads what A learned", |t| t == on_a);
    eprintln!("B classified with what A learned after {took:?}");
    assert!(
        took < Duration::from_secs(3),
        "within the second the docs promise (and load): {took:?}"
    );

    // Learned on A, it counts once whichever host is asked again.
    learn(
        &b,
        "/v1/learn/spam/spam",
        &read("spam", 0),
        "already learned",
    );

    // Forgetting on B changes A.
    for i in 0..20 {
        learn(
            &b,
            "/v1/learn/spam/spam?forget=true",
            &read("spam", i),
            "forgotten",
        );
    }
    let on_b = tag(&b, &probe);
    assert!(
        !on_b.starts_with("class=spam "),
        "B forgot its spam: {on_b}"
    );
    wait_for_tag(&a, &probe, "A reads what B forgot", |t| t == on_b);
    learn(
        &a,
        "/v1/learn/spam/spam?forget=true",
        &read("spam", 3),
        "not learned",
    );

    // A restarted host reads what every host learned back from Redis.
    b.kill_9();
    let b = Daemon::start(&root.join("b"), b_http, b_milter);
    assert_eq!(tag(&b, &probe), on_b);
}

#[test]
fn what_weir_learn_taught_one_host_seeds_an_empty_redis() {
    if !redis_support::available() {
        return;
    }
    let redis = Redis::start();
    let root = temp_dir("classify-seed");
    corpus(&root.join("c"), 5, 21, 0);
    let a_dir = root.join("a");
    std::fs::create_dir_all(&a_dir).expect("dir");
    // `weir learn` into host A's state directory, the daemon stopped.
    for class in ["spam", "ham"] {
        let path = root.join("c").join(class);
        weir_learn(
            &a_dir,
            &[
                "spam",
                class,
                path.to_str().expect("path"),
                "--state",
                "state",
            ],
        );
    }
    let probe = std::fs::read(root.join("c/spam/020.eml")).expect("probe");
    let (a, _, _) = host(&redis, &a_dir, "mx-a");
    let on_a = tag(&a, &probe);
    assert!(
        on_a.starts_with("class=spam "),
        "A reads what it learned: {on_a}"
    );
    // B never learned anything itself: it reads the seeded model, and the
    // digest records came along (the message counts once).
    let (b, _, _) = host(&redis, &root.join("b"), "mx-b");
    assert_eq!(tag(&b, &probe), on_a);
    learn(&b, "/v1/learn/spam/spam", &probe, "already learned");
}

#[test]
fn what_one_host_autolearns_classifies_the_mail_of_the_other() {
    if !redis_support::available() {
        return;
    }
    let redis = Redis::start();
    let root = temp_dir("classify-shared-autolearn");
    // Host A autolearns from its milter's decisions; host B learns nothing
    // itself.
    let a_dir = root.join("a");
    std::fs::create_dir_all(&a_dir).expect("dir");
    corpus(&a_dir.join("c"), 9, 11, 0);
    let (a, _, _) = host_with(&redis, &a_dir, "mx-a", AUTOLEARN_RULES, AUTOLEARN);
    let (b, _, _) = host_with(&redis, &root.join("b"), "mx-b", AUTOLEARN_RULES, "");
    let probe = std::fs::read(a_dir.join("c/spam/010.eml")).expect("probe");
    assert_eq!(tag(&b, &probe), "class= p=0", "nothing learned yet");
    for i in 0..10 {
        milter_send(&a, &a_dir, "spam", i, "X-Trap");
        milter_send(&a, &a_dir, "ham", i, "X-Known");
    }
    wait_autolearned(&a, "spam", &["learned"], 10);
    wait_autolearned(&a, "ham", &["learned"], 10);
    let on_a = tag(&a, &probe);
    assert_ne!(on_a, "class= p=0", "A learned");
    wait_for_tag(&b, &probe, "B reads what A autolearned", |t| t == on_a);
}
