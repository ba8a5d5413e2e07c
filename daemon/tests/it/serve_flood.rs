//! `weir serve` under an idle-connection flood: 2,000 connections to the
//! HTTP port that never send a byte, with the daemon limited to 1,024 open
//! files. The HTTP listener serves at most `[http] max_connections` of them
//! (the rest wait in the kernel's accept queue, holding none of the
//! daemon's descriptors), so milter and LMTP mail still flows; and an idle
//! HTTP peer is closed after `[http] idle_timeout`.

use crate::serve_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serve_support::{Daemon, files, free_port, lmtp_table, temp_dir, write_config};
use weir::milter_client::{Mail, Reply};

const RULES: &str = "rule vip {\n  when subject contains \"vip\"\n  then tag \"vip\"\n}\n";

/// One LMTP transaction; the reply to the final dot.
fn lmtp_deliver(port: u16, rcpt: &str) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect LMTP");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut reply = || {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("an LMTP reply in time");
            text.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return text;
            }
        }
    };
    assert!(reply().starts_with("220"));
    for command in [
        "LHLO flood.test".to_string(),
        "MAIL FROM:<a@example.org>".to_string(),
        format!("RCPT TO:<{rcpt}>"),
        "DATA".to_string(),
    ] {
        writer
            .write_all(format!("{command}\r\n").as_bytes())
            .expect("write");
        let r = reply();
        assert!(r.starts_with('2') || r.starts_with('3'), "{command}: {r}");
    }
    writer
        .write_all(b"Subject: vip during a flood\r\n\r\nhello\r\n.\r\n")
        .expect("write");
    reply()
}

fn milter_send(port: u16) -> Reply {
    let mail = Mail {
        helo: "client.example.test".into(),
        from: "a@example.org".into(),
        to: vec!["bob@example.test".into()],
        headers: vec![("Subject".into(), "vip via the milter".into())],
        body: b"hello\r\n".to_vec(),
        queue_id: "4A1B2C3D4E".into(),
        ..Mail::default()
    };
    serve_support::milter_reply(port, &mail).expect("the milter answers")
}

/// Opens `count` connections to `port` concurrently; those established
/// within two seconds, kept open.
fn flood(port: u16, count: usize) -> Vec<std::net::TcpStream> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut connects = tokio::task::JoinSet::new();
        for _ in 0..count {
            connects.spawn(tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::TcpStream::connect(("127.0.0.1", port)),
            ));
        }
        let mut open = Vec::new();
        while let Some(done) = connects.join_next().await {
            if let Ok(Ok(Ok(stream))) = done {
                open.push(stream.into_std().expect("a std stream"));
            }
        }
        open
    })
}

#[test]
fn an_idle_http_flood_starves_neither_milter_nor_lmtp() {
    if std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: prlimit not installed");
        return;
    }
    let dir = temp_dir("flood");
    std::fs::write(dir.join("rules.flow"), RULES).expect("rules");
    let lmtp_port = free_port();
    let extra = format!(
        "{}\n",
        lmtp_table(&dir, &format!("inet:127.0.0.1:{lmtp_port}"))
    );
    let (http, milter) = write_config(&dir, "", &extra);
    let d = Daemon::start_with_nofile(&dir, http, milter, 1024);

    // The flood: 2,000 connections at once that never send a byte. Those
    // past the kernel's accept queue are not established; that is the
    // flooder's problem.
    let flood = flood(http, 2000);
    assert!(flood.len() >= 256, "only {} connected", flood.len());
    std::thread::sleep(Duration::from_millis(500));

    // Mail still flows, on both listeners.
    let start = Instant::now();
    let end = lmtp_deliver(lmtp_port, "carol@example.test");
    assert!(end.starts_with("250"), "{end}\n{}", d.log());
    assert_eq!(
        files(&dir.join("mail/example.test/carol/new")).len(),
        1,
        "{}",
        d.log()
    );
    assert_eq!(milter_send(milter), Reply::Accept, "{}", d.log());
    assert!(start.elapsed() < Duration::from_secs(10));

    // Once the flood is gone the API answers at once.
    drop(flood);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = d.try_request("GET", "/healthz", false, b"")
            && r.status == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "the API never answered again");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_http_peer_that_sends_nothing_or_half_a_request_is_closed() {
    use std::io::Read;
    let dir = temp_dir("http-idle");
    std::fs::write(dir.join("rules.flow"), RULES).expect("rules");
    let (http, milter) = write_config(&dir, "", "");
    let config = std::fs::read_to_string(dir.join("weir.toml")).expect("config");
    let config = config.replacen("[http]\n", "[http]\nidle_timeout = \"1s\"\n", 1);
    std::fs::write(dir.join("weir.toml"), config).expect("config");
    let _d = Daemon::start(&dir, http, milter);
    for sent in [&b""[..], b"GET /healthz HTTP/1.1\r\nHost: x\r\n"] {
        let mut s = TcpStream::connect(("127.0.0.1", http)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(sent).expect("write");
        let start = Instant::now();
        let mut rest = Vec::new();
        // The server closes the connection (possibly after a 408).
        let _ = s.read_to_end(&mut rest).expect("closed, not timed out");
        assert!(start.elapsed() < Duration::from_secs(5), "{sent:?}");
    }
}
