//! Issue #5: `kill -9` of `weir serve` during LMTP delivery, then a restart
//! and the MTA's retries: no message lost, none delivered twice to the
//! Maildir.
//!
//! - [`the_same_message_sent_again_is_delivered_once`] simulates the crash
//!   window without timing: a copy delivered (its `250` "lost"), then the
//!   identical bytes sent again, also after a `kill -9` and restart, after a
//!   mail reader moved the file to `cur/`, and after the file was left only
//!   in `tmp/` (a crash before the rename): delivered exactly once each time.
//! - [`kill_9_during_delivery_loses_nothing_and_duplicates_nothing`] kills
//!   the daemon while a client streams 300 messages, restarts it on the
//!   same state and ports, re-sends every recipient that got no `250` (as
//!   an MTA would) and a few that did, and checks every copy is in the
//!   Maildir exactly once.

use crate::serve_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serve_support::{Daemon, TempDir, free_port, lmtp_table, temp_dir, write_config};

/// Messages with "flagged" in the subject go to a folder with a flag, so
/// the copy lands in `.Work/cur/` with a `:2,S` suffix.
const RULES: &str = r#"
rule work { when subject contains "flagged" then { fileinto "Work"; flag "\\Seen" } }
"#;

/// A test directory with config, rules and the LMTP port.
struct Setup {
    dir: TempDir,
    http: u16,
    milter: u16,
    lmtp: u16,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let dir = temp_dir(&format!("lmtp-crash-{name}"));
        std::fs::write(dir.join("rules.flow"), RULES).expect("rules");
        let lmtp = free_port();
        let extra = lmtp_table(&dir, &format!("inet:127.0.0.1:{lmtp}"));
        let (http, milter) = write_config(&dir, "", &extra);
        Setup {
            dir,
            http,
            milter,
            lmtp,
        }
    }

    /// Starts (or restarts) the daemon on the same state and ports.
    fn start(&self) -> Daemon {
        Daemon::start(&self.dir, self.http, self.milter)
    }

    fn mail(&self) -> PathBuf {
        self.dir.join("mail").join("example.test")
    }
}

/// One LMTP connection over TCP; every step returns an I/O error rather
/// than panicking, since the daemon may be killed under it.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(port: u16) -> std::io::Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut c = Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        c.expect(220)?;
        c.writer.write_all(b"LHLO crash.test\r\n")?;
        c.expect(250)?;
        Ok(c)
    }

    /// Reads one (possibly multi-line) reply; its code.
    fn reply(&mut self) -> std::io::Result<u16> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let code = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| std::io::Error::other(format!("bad reply {line:?}")))?;
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(code);
            }
        }
    }

    fn expect(&mut self, want: u16) -> std::io::Result<()> {
        match self.reply()? {
            code if code == want => Ok(()),
            code => Err(std::io::Error::other(format!("got {code}, wanted {want}"))),
        }
    }

    /// One transaction; the reply code after DATA of each recipient, in
    /// order. `on_reply` is called after each, so a watcher sees progress.
    fn send(
        &mut self,
        rcpts: &[String],
        message: &[u8],
        mut on_reply: impl FnMut(&str, u16),
    ) -> std::io::Result<Vec<u16>> {
        self.writer
            .write_all(b"MAIL FROM:<sender@example.test>\r\n")?;
        self.expect(250)?;
        for r in rcpts {
            self.writer
                .write_all(format!("RCPT TO:<{r}>\r\n").as_bytes())?;
            self.expect(250)?;
        }
        self.writer.write_all(b"DATA\r\n")?;
        self.expect(354)?;
        self.writer.write_all(message)?;
        self.writer.write_all(b".\r\n")?;
        let mut codes = Vec::new();
        for r in rcpts {
            let code = self.reply()?;
            on_reply(r, code);
            codes.push(code);
        }
        Ok(codes)
    }
}

/// Message number `i`: distinct Message-ID; every seventh goes to the
/// flagged folder.
fn message(i: usize) -> Vec<u8> {
    let subject = if i.is_multiple_of(7) {
        "flagged"
    } else {
        "plain"
    };
    format!(
        "From: sender@example.test\r\nTo: someone@example.test\r\nSubject: {subject} {i}\r\nMessage-ID: <crash-{i}@example.test>\r\n\r\nBody of message {i}.\r\n"
    )
    .into_bytes()
}

/// The recipients of message `i`: one, or two for every tenth.
fn recipients(i: usize) -> Vec<String> {
    let mut out = vec![format!("user{}@example.test", i % 5)];
    if i % 10 == 3 {
        out.push("both@example.test".to_string());
    }
    out
}

/// Every delivered copy under `mail` (files in `new/` or `cur/` of any
/// Maildir folder; `tmp/` never counts): (mailbox, Message-ID) → paths.
fn delivered(mail: &Path) -> BTreeMap<(String, String), Vec<PathBuf>> {
    let mut out: BTreeMap<(String, String), Vec<PathBuf>> = BTreeMap::new();
    let Ok(mailboxes) = std::fs::read_dir(mail) else {
        return out;
    };
    for mailbox in mailboxes.map(|e| e.expect("entry").path()) {
        let user = mailbox.file_name().unwrap().to_string_lossy().into_owned();
        let mut folders = vec![mailbox.clone()];
        for e in std::fs::read_dir(&mailbox).expect("mailbox") {
            let p = e.expect("entry").path();
            if p.file_name().unwrap().to_string_lossy().starts_with('.') {
                folders.push(p);
            }
        }
        for folder in folders {
            for sub in ["new", "cur"] {
                let Ok(files) = std::fs::read_dir(folder.join(sub)) else {
                    continue;
                };
                for f in files.map(|e| e.expect("entry").path()) {
                    let text = std::fs::read_to_string(&f).expect("message file");
                    let id = text
                        .lines()
                        .take_while(|l| !l.is_empty())
                        .find_map(|l| l.strip_prefix("Message-ID:"))
                        .unwrap_or_else(|| panic!("{} has no Message-ID", f.display()))
                        .trim()
                        .to_string();
                    out.entry((user.clone(), id)).or_default().push(f);
                }
            }
        }
    }
    out
}

/// How many files are left in `tmp/` directories under `mail`.
fn tmp_leftovers(mail: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![mail.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for p in entries.map(|e| e.expect("entry").path()) {
            if p.is_dir() {
                stack.push(p);
            } else if dir.file_name().is_some_and(|n| n == "tmp") {
                n += 1;
            }
        }
    }
    n
}

/// The local part of `rcpt` (the mailbox directory name).
fn local(rcpt: &str) -> String {
    rcpt.split('@').next().unwrap().to_string()
}

#[test]
fn the_same_message_sent_again_is_delivered_once() {
    let s = Setup::new("again");
    let mut daemon = s.start();
    let rcpts = vec![
        "alice@example.test".to_string(),
        "bob@Example.TEST".to_string(),
    ];
    let plain = message(1);
    let flagged = message(7);
    let mut c = Client::connect(s.lmtp).expect("connect");
    assert_eq!(c.send(&rcpts, &plain, |_, _| {}).unwrap(), [250, 250]);
    assert_eq!(c.send(&rcpts[..1], &flagged, |_, _| {}).unwrap(), [250]);
    let first = delivered(&s.mail());
    assert_eq!(first.len(), 3, "{first:?}");

    // The MTA did not see the 250s (the crash window) and sends the same
    // bytes again, the domain spelled differently: accepted, no copy.
    let bob_upper = vec!["bob@EXAMPLE.test".to_string()];
    assert_eq!(c.send(&rcpts, &plain, |_, _| {}).unwrap(), [250, 250]);
    assert_eq!(c.send(&bob_upper, &plain, |_, _| {}).unwrap(), [250]);
    assert_eq!(c.send(&rcpts[..1], &flagged, |_, _| {}).unwrap(), [250]);
    assert_eq!(delivered(&s.mail()), first, "nothing delivered twice");
    drop(c);

    // The index is durable: after kill -9 and a restart the same again.
    daemon.kill_9();
    drop(daemon);
    let mut daemon = s.start();
    let mut c = Client::connect(s.lmtp).expect("connect after restart");
    assert_eq!(c.send(&rcpts, &plain, |_, _| {}).unwrap(), [250, 250]);
    assert_eq!(c.send(&rcpts[..1], &flagged, |_, _| {}).unwrap(), [250]);
    assert_eq!(delivered(&s.mail()), first, "nothing delivered twice");
    assert!(
        daemon.log().contains("not delivered again"),
        "the skipped copies are logged:\n{}",
        daemon.log()
    );

    // A mail reader moved alice's copy to cur/ and marked it seen: still
    // recognised.
    let key = |who: &str| (who.to_string(), "<crash-1@example.test>".to_string());
    let alice = first[&key("alice")][0].clone();
    assert_eq!(alice.parent().unwrap().file_name().unwrap(), "new");
    let name = alice.file_name().unwrap().to_string_lossy().into_owned();
    let read = s
        .mail()
        .join("alice")
        .join("cur")
        .join(format!("{name}:2,S"));
    std::fs::rename(&alice, &read).expect("move to cur");
    assert_eq!(c.send(&rcpts[..1], &plain, |_, _| {}).unwrap(), [250]);
    assert_eq!(delivered(&s.mail())[&key("alice")], [read]);

    // The crash came after the index was written but before the rename:
    // the file is only in tmp/. That is not a delivery: the copy sent
    // again is delivered (once), and the tmp/ file is not counted.
    let bob = first[&key("bob")][0].clone();
    let stray = s
        .mail()
        .join("bob")
        .join("tmp")
        .join(bob.file_name().unwrap());
    std::fs::rename(&bob, &stray).expect("move to tmp");
    assert!(!delivered(&s.mail()).contains_key(&key("bob")));
    assert_eq!(c.send(&rcpts[1..], &plain, |_, _| {}).unwrap(), [250]);
    let now = delivered(&s.mail());
    assert_eq!(now[&key("bob")].len(), 1, "{now:?}");
    assert_ne!(now[&key("bob")][0], bob, "delivered under a fresh name");
    assert!(stray.exists(), "the stray tmp/ file is left alone");
    // ... and that new copy is then the one recognised.
    assert_eq!(c.send(&rcpts[1..], &plain, |_, _| {}).unwrap(), [250]);
    assert_eq!(delivered(&s.mail()), now);

    // A message differing by one byte is another message.
    let mut other = plain.clone();
    other.extend_from_slice(b"!\r\n");
    assert_eq!(c.send(&rcpts[..1], &other, |_, _| {}).unwrap(), [250]);
    assert_eq!(delivered(&s.mail())[&key("alice")].len(), 2);

    // Every send was audited (14 recipient decisions), all accepted.
    drop(c);
    let actions = daemon.get("/v1/actions?limit=1000").json();
    let actions = actions.as_array().expect("entries");
    assert_eq!(actions.len(), 14, "{actions:?}");
    assert!(
        actions.iter().all(|a| a["verdict"] == "accept"),
        "{actions:?}"
    );
    daemon.kill_9();
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[test]
fn kill_9_during_delivery_loses_nothing_and_duplicates_nothing() {
    const N: usize = 300;
    const KILL_AFTER: usize = 80;
    const UNCERTAIN: usize = 5;
    let s = Setup::new("kill");
    let mut daemon = s.start();

    // The MTA: streams the messages over one connection, recording which
    // recipient got which reply, until the connection breaks.
    let acked = Arc::new(AtomicUsize::new(0));
    let port = s.lmtp;
    let client = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            let mut replies: BTreeMap<(usize, String), u16> = BTreeMap::new();
            let Ok(mut c) = Client::connect(port) else {
                return replies;
            };
            for i in 0..N {
                let sent = c.send(&recipients(i), &message(i), |r, code| {
                    replies.insert((i, r.to_string()), code);
                    if code == 250 {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                });
                if sent.is_err() {
                    break;
                }
            }
            replies
        })
    };
    // Kill the daemon as soon as KILL_AFTER copies are acknowledged,
    // without waiting for anything else: it is in the middle of delivering.
    while acked.load(Ordering::SeqCst) < KILL_AFTER && !client.is_finished() {
        std::thread::yield_now();
    }
    daemon.kill_9();
    drop(daemon);
    let replies = client.join().expect("client thread");
    let acknowledged: Vec<(usize, String)> = replies
        .iter()
        .filter(|(_, code)| **code == 250)
        .map(|(k, _)| k.clone())
        .collect();
    assert!(
        acknowledged.len() >= KILL_AFTER,
        "{} acknowledged before the kill",
        acknowledged.len()
    );
    assert!(
        replies.values().all(|&c| c == 250),
        "only 250s before the kill: {replies:?}"
    );
    eprintln!(
        "acknowledged before kill -9: {} of {} copies; tmp/ leftovers: {}",
        acknowledged.len(),
        (0..N).map(|i| recipients(i).len()).sum::<usize>(),
        tmp_leftovers(&s.mail())
    );

    // Restart on the same state directory and ports, then retry as an
    // MTA does: each message to its recipients without a 250, plus the
    // last acknowledged ones, whose 250 the MTA might not have seen.
    let daemon = s.start();
    let mut retry: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for i in 0..N {
        for r in recipients(i) {
            if !replies.contains_key(&(i, r.clone())) {
                retry.entry(i).or_default().push(r);
            }
        }
    }
    for (i, r) in acknowledged.iter().rev().take(UNCERTAIN) {
        retry.entry(*i).or_default().push(r.clone());
    }
    let mut c = Client::connect(s.lmtp).expect("connect after restart");
    for (i, rcpts) in &retry {
        let codes = c.send(rcpts, &message(*i), |_, _| {}).expect("retry");
        assert!(
            codes.iter().all(|&c| c == 250),
            "message {i}: {codes:?}\n{}",
            daemon.log()
        );
    }
    drop(c);

    // Every copy is in the Maildir exactly once, nothing else is.
    let got = delivered(&s.mail());
    let mut want = Vec::new();
    for i in 0..N {
        for r in recipients(i) {
            want.push((local(&r), format!("<crash-{i}@example.test>")));
        }
    }
    want.sort();
    let keys: Vec<(String, String)> = got.keys().cloned().collect();
    assert_eq!(keys, want, "every copy delivered");
    let twice: Vec<_> = got.iter().filter(|(_, files)| files.len() != 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    // The flagged ones are in the folder, with the flag.
    for ((user, id), files) in &got {
        let n: usize = id["<crash-".len()..id.find('@').unwrap()].parse().unwrap();
        let path = files[0].to_string_lossy().into_owned();
        if n.is_multiple_of(7) {
            assert!(
                path.contains("/.Work/cur/") && path.ends_with(":2,S"),
                "{user}: {path}"
            );
        } else {
            assert!(path.contains(&format!("/{user}/new/")), "{user}: {path}");
        }
    }

    // The audit log survived and holds every copy's decision (a copy sent
    // again is decided, and audited, again).
    let actions = daemon.get("/v1/actions?limit=10000").json();
    let audited: std::collections::BTreeSet<(String, String)> = actions
        .as_array()
        .expect("entries")
        .iter()
        .map(|a| {
            assert_eq!(a["verdict"], "accept", "{a}");
            let rcpt = a["recipient"].as_str().expect("recipient");
            let id = a["message_id"].as_str().expect("message_id");
            (local(rcpt), format!("<{id}>"))
        })
        .collect();
    assert_eq!(audited.into_iter().collect::<Vec<_>>(), want);
    drop(daemon);
    let _ = std::fs::remove_dir_all(&s.dir);
}
