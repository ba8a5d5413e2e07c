//! `weir serve` under a flood of 10 MB messages through the milter: each
//! is decided (its parsing does not count against `eval_timeout`, whose
//! budget grows with the message), evaluations run on a bounded pool, and
//! small messages sent meanwhile keep getting their verdicts.

use crate::serve_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serve_support::{Daemon, temp_dir, write_config};
use weir::milter_client::{Client, Mail, Reply};

const RULES: &str = "rule vip {\n  when body contains \"vip-marker\"\n  then tag \"vip\"\n}\n";

fn mail(n: usize, body: Vec<u8>) -> Mail {
    Mail {
        helo: "client.example.test".into(),
        from: "a@example.org".into(),
        to: vec!["bob@example.test".into()],
        headers: vec![
            ("Subject".into(), format!("message {n}")),
            ("Message-ID".into(), format!("<big-{n}@example.org>")),
        ],
        body,
        queue_id: format!("4A1B2C{n:04}"),
        ..Mail::default()
    }
}

async fn send(port: u16, mail: Mail) -> Reply {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut client = Client::connect(addr).await.expect("connect milter");
    client.hello(&mail).await.expect("hello");
    client.message(&mail).await.expect("message").reply
}

#[test]
fn ten_megabyte_messages_are_decided_and_small_ones_keep_flowing() {
    let dir = temp_dir("big-messages");
    std::fs::write(dir.join("rules.flow"), RULES).expect("rules");
    let (http, milter) = write_config(&dir, "", "");
    let d = Daemon::start(&dir, http, milter);
    let big_body = "a line of a large message body, not the marker\r\n"
        .repeat(10 * 1024 * 1024 / 48)
        .into_bytes();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (big, small) = runtime.block_on(async {
        let mut big = tokio::task::JoinSet::new();
        for n in 0..8 {
            big.spawn(send(milter, mail(n, big_body.clone())));
        }
        // Small messages while the big ones are in flight.
        let mut small = Vec::new();
        for n in 100..110 {
            let started = Instant::now();
            let reply = send(milter, mail(n, b"vip-marker\r\n".to_vec())).await;
            small.push((reply, started.elapsed()));
        }
        let mut replies = Vec::new();
        while let Some(r) = big.join_next().await {
            replies.push(r.expect("task"));
        }
        (replies, small)
    });
    assert!(
        big.iter().all(|r| *r == Reply::Accept),
        "10 MB messages: {big:?}\n{}",
        d.log()
    );
    for (reply, took) in &small {
        assert_eq!(*reply, Reply::Accept, "{small:?}\n{}", d.log());
        assert!(*took < Duration::from_secs(20), "{small:?}");
    }
}
