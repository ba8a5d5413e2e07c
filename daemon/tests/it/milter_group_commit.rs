//! The audit log's group commit (`store/group_flush.rs`): with many milter
//! sessions recording at once, one flush covers several of them, and still
//! no reply goes out before its audit entry is durable (docs/serve.md,
//! "State"). `kill -9` in the middle of a burst of concurrent sessions; after
//! a restart, every message that got its final reply has its entry.

use crate::serve_support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serve_support::{Daemon, milter_reply, temp_dir, write_config};
use weir::milter_client::{Mail, Reply};

const RULES: &str = r#"
rule marked { when subject contains "burst" then tag "burst" }
rule greeted { when body contains "Hello" then tag "greeted" }
"#;

/// Sessions at once, as Postfix's `smtpd` processes under load.
const SESSIONS: usize = 16;

fn mail(queue_id: &str) -> Mail {
    Mail {
        helo: "client.example.test".into(),
        from: "sender@example.test".into(),
        to: vec!["u@example.test".into()],
        headers: vec![
            ("From".into(), "<sender@example.test>".into()),
            ("Subject".into(), "a burst".into()),
            ("Message-ID".into(), format!("<{queue_id}@example.test>")),
        ],
        body: b"Hello.\r\n".to_vec(),
        queue_id: queue_id.into(),
        ..Mail::default()
    }
}

#[test]
fn every_answered_message_is_audited_after_kill_9_mid_burst() {
    let dir = temp_dir("milter-group-commit");
    std::fs::write(dir.join("rules.flow"), RULES).unwrap();
    let (http, milter) = write_config(&dir, "", "");
    let mut d = Daemon::start(&dir, http, milter);

    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let senders: Vec<_> = (0..SESSIONS)
        .map(|session| {
            let answered = answered.clone();
            std::thread::spawn(move || {
                for n in 0.. {
                    let queue_id = format!("Q{session}N{n}");
                    // An error: the daemon is gone (killed below).
                    let Ok(reply) = milter_reply(milter, &mail(&queue_id)) else {
                        return;
                    };
                    assert_eq!(reply, Reply::Accept, "{queue_id}");
                    answered.lock().unwrap().push(queue_id);
                }
            })
        })
        .collect();
    // Kill while every session is busy, well into the burst.
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.lock().unwrap().len() < 300 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    d.kill_9();
    for sender in senders {
        sender.join().expect("sender");
    }
    drop(d);
    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() >= 300, "only {} answered", answered.len());

    let d = Daemon::start(&dir, http, milter);
    let actions = d.get("/v1/actions?limit=10000").json();
    let audited: BTreeSet<&str> = actions
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|a| a["queue_id"].as_str())
        .collect();
    let lost: Vec<&String> = answered
        .iter()
        .filter(|q| !audited.contains(q.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered messages have no audit entry after kill -9: {:?}",
        lost.len(),
        answered.len(),
        &lost[..lost.len().min(10)]
    );
}
