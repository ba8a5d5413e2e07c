//! The soak test (not in the default run): a private Postfix with `weir
//! serve` as its milter and its LMTP delivery agent, mail submitted at a
//! steady rate for a long time while the daemon is reloaded every 10 s,
//! killed with `kill -9` every few minutes (and restarted, as systemd
//! would), and once put through a full disk (its `state_dir` on a small
//! tmpfs, filled, then freed).
//!
//! What must hold at the end: every message Postfix accepted (`250 …
//! queued as`) is in a Maildir exactly once per recipient, or came back to
//! the sender as a bounce; every other message got a refusal the sender
//! saw (a 4xx or 5xx reply); nothing was lost, nothing delivered twice;
//! within each life of the daemon, its resident memory and open files
//! stay flat.
//!
//! ```text
//! WEIR_SOAK=1 cargo test --release -p weir --test it soak -- --ignored --nocapture
//! ```
//!
//! `WEIR_SOAK_SECS` (default 1800), `WEIR_SOAK_KILL_EVERY` (seconds,
//! default 300), `WEIR_SOAK_RATE` (messages a second, default 4). Needs
//! root (the Postfix master, the tmpfs) and `postfix`, `postqueue`,
//! `script`. The figures of a run are in `benches/README.md` ("Soak").

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::temp_dir;
use crate::postfix_support::{Postfix, missing_mail_tools};
use crate::serve_support::{Daemon, free_port, lmtp_table, write_config};

const TOOLS: &[&str] = &["postfix", "postqueue", "script", "mount"];

/// Every tenth message is refused by a rule at end of DATA; some are filed
/// into a folder, some edited: each kind of outcome keeps happening.
const RULES: &str = r#"
rule refuse {
  when subject contains "REFUSE"
  then reject 550 "5.7.1" "refused by the soak rules"
}
rule file_it {
  when subject contains "FILE"
  then fileinto "Soak/Filed"
}
rule edit {
  when subject contains "EDIT"
  then prepend_subject "[soak] "
}
"#;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A tmpfs mounted for the test's life.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {}",
            path.display()
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// How one submission ended, as the sender saw it.
#[derive(Debug, Clone)]
enum Outcome {
    /// `250 … queued as ID`.
    Queued(String),
    /// A 4xx or 5xx reply to the named command.
    Refused { command: String, reply: String },
    /// No reply at all (the connection broke): must never happen, since
    /// Postfix, not Weir, talks to the sender.
    Broken(String),
}

/// One SMTP submission, tolerant of refusals at any step.
fn submit(port: u16, from: &str, to: &[&str], message: &str) -> Outcome {
    let run = || -> std::io::Result<Outcome> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        let mut writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        let mut read_reply = || -> std::io::Result<String> {
            let mut all = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 {
                    return Err(std::io::Error::other(format!("closed after {all:?}")));
                }
                all.push_str(&line);
                if line.as_bytes().get(3) != Some(&b'-') {
                    return Ok(all);
                }
            }
        };
        read_reply()?;
        let mut data = String::new();
        for line in message.split("\r\n") {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        let mut steps: Vec<(String, String)> = vec![
            ("EHLO".into(), "EHLO soak.weir.test\r\n".into()),
            ("MAIL".into(), format!("MAIL FROM:<{from}>\r\n")),
        ];
        steps.extend(
            to.iter()
                .map(|r| ("RCPT".into(), format!("RCPT TO:<{r}>\r\n"))),
        );
        steps.push(("DATA".into(), "DATA\r\n".into()));
        steps.push((".".into(), data));
        for (command, line) in steps {
            writer.write_all(line.as_bytes())?;
            let reply = read_reply()?;
            let code = reply.get(..1).unwrap_or("");
            if code == "4" || code == "5" {
                let _ = writer.write_all(b"QUIT\r\n");
                return Ok(Outcome::Refused { command, reply });
            }
            if command == "." {
                let _ = writer.write_all(b"QUIT\r\n");
                let id = reply
                    .split("queued as ")
                    .nth(1)
                    .map(|s| s.trim().to_string());
                return Ok(id.map_or(Outcome::Broken(reply), Outcome::Queued));
            }
        }
        unreachable!("the last step is the end of data")
    };
    run().unwrap_or_else(|e| Outcome::Broken(e.to_string()))
}

/// Starts `weir serve` in `dir`; `None` when it does not answer within
/// 20 s (e.g. while its state directory is full). Never panics.
fn try_start(dir: &Path, http: u16, milter: u16) -> Option<Daemon> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("daemon.log"))
        .ok()?;
    let child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--config", "weir.toml"])
        .current_dir(dir)
        .env("WEIR_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .ok()?;
    let mut daemon = Daemon {
        child,
        dir: dir.to_path_buf(),
        http,
        milter,
        token: "secret-token".into(),
        owned: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = daemon.try_request("GET", "/healthz", false, b"")
            && r.status == 200
        {
            return Some(daemon);
        }
        if let Ok(Some(_)) = daemon.child.try_wait() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    kill(&mut daemon.child);
    None
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Resident memory (kB) and open files of a process.
fn resources(pid: u32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, fds))
}

/// The Message-ID of every message file under `root`, with how many files
/// carry it, per recipient directory (`mail/DOMAIN/LOCAL`).
fn delivered(root: &Path) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let parent = path.parent().and_then(|p| p.file_name());
            if !matches!(parent.and_then(|p| p.to_str()), Some("new" | "cur")) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let id = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("Message-ID")
                        .then(|| value.trim().to_string())
                })
                .unwrap_or_default();
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
            let mailbox = format!(
                "{}/{}",
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default()
            );
            *out.entry((mailbox, id)).or_insert(0) += 1;
        }
    }
    out
}

/// Every message file under `dir`, concatenated.
fn mailbox_text(dir: &Path) -> String {
    let mut text = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
        {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(t) = std::fs::read_to_string(&path) {
                text.push_str(&t);
            }
        }
    }
    text
}

/// Fills the file system of `dir` until a write fails; the filler's path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    if let Ok(mut file) = std::fs::File::create(&path) {
        for chunk in [1 << 20, 4096, 512] {
            let block = vec![b'x'; chunk];
            while file
                .write_all(&block)
                .and_then(|()| file.sync_all())
                .is_ok()
            {}
        }
    }
    path
}

/// One submission: its Message-ID, recipients and how it ended.
type Submission = (String, Vec<&'static str>, Outcome);

/// Submits messages at `rate` a second for `total`.
fn send_steadily(port: u16, rate: u64, total: Duration) -> Vec<Submission> {
    let started = Instant::now();
    let interval = Duration::from_millis(1000 / rate);
    let mut outcomes = Vec::new();
    let mut n = 0u64;
    while started.elapsed() < total {
        let tick = Instant::now();
        n += 1;
        let to: Vec<&str> = if n.is_multiple_of(3) {
            vec!["alice@example.test", "bob@example.test"]
        } else {
            vec!["alice@example.test"]
        };
        let subject = match n % 10 {
            0 => "REFUSE",
            3 => "FILE",
            6 => "EDIT",
            _ => "plain",
        };
        let id = format!("<soak-{n}@weir.test>");
        let message = format!(
            "From: sender@example.test\r\nTo: {}\r\nSubject: soak {n} {subject}\r\nMessage-ID: {id}\r\n\r\nMessage {n} of the soak test.\r\n.A line with a leading dot.\r\n",
            to.join(", ")
        );
        let outcome = submit(port, "sender@example.test", &to, &message);
        outcomes.push((id, to, outcome));
        if let Some(rest) = interval.checked_sub(tick.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    outcomes
}

/// A sample of the daemon's resources, tagged with its life (restart count).
#[derive(Debug, Clone, Copy)]
struct Sample {
    life: usize,
    secs: u64,
    rss_kb: u64,
    fds: usize,
}

#[test]
#[ignore = "a long run: WEIR_SOAK=1 cargo test -p weir --test it soak -- --ignored"]
fn soak() {
    if std::env::var("WEIR_SOAK").as_deref() != Ok("1") {
        eprintln!("skipped: set WEIR_SOAK=1 to run the soak test");
        return;
    }
    if missing_mail_tools(TOOLS, true).is_some() {
        return;
    }
    let total = Duration::from_secs(setting("WEIR_SOAK_SECS", 1800));
    let kill_every = Duration::from_secs(setting("WEIR_SOAK_KILL_EVERY", 300));
    let rate = setting("WEIR_SOAK_RATE", 4).max(1);
    let dir = temp_dir("soak");
    let state = Tmpfs::mount(&dir.join("state"), "64m");
    std::fs::write(dir.join("rules.flow"), RULES).expect("rules");
    let lmtp = free_port();
    let extra = lmtp_table(&dir, &format!("inet:127.0.0.1:{lmtp}"));
    let (http, milter) = write_config(&dir, "", &extra);
    let run = Run {
        dir: dir.clone(),
        http,
        milter,
        state,
    };
    let mut daemon = try_start(&dir, http, milter).expect("weir serve starts");
    let postfix = Postfix::start(&dir.join("postfix"), free_port(), milter, lmtp);

    let started = Instant::now();
    // The sender keeps a steady rate whatever the supervisor is doing.
    let smtp = postfix.smtp;
    let sender = std::thread::spawn(move || send_steadily(smtp, rate, total));
    let faults = supervise(&run, &mut daemon, total, kill_every);
    let outcomes = sender.join().expect("the sender");
    if let Ok(Some(_)) = daemon.child.try_wait() {
        daemon = try_start(&dir, http, milter).expect("weir serve starts at the end");
    }
    drain(&postfix);
    let tally = tally(&dir.join("mail"), &outcomes);
    let report = flatness(&faults.samples);
    eprintln!(
        "soak: {:?}, {} messages submitted ({} queued by Postfix, {} refused with a reply: {:?}), \
         {} copies delivered, {} bounces, {} kill -9, {} reloads, {} lives of the daemon \
         ({} failed restarts; exited on the full disk: {})\n{report}",
        started.elapsed(),
        outcomes.len(),
        tally.queued,
        tally.refused,
        tally.refusals,
        tally.copies,
        tally.bounces,
        faults.kills,
        faults.reloads,
        faults.lives,
        faults.restarts_failed,
        faults.down_on_full_disk,
    );
    tally.check();
    assert!(
        faults.kills > 0 && faults.reloads > 0,
        "the faults happened"
    );
    drop(daemon);
}

/// What the soak runs in.
struct Run {
    dir: PathBuf,
    http: u16,
    milter: u16,
    /// `state_dir`, a small tmpfs.
    state: Tmpfs,
}

/// What the supervisor did and saw.
#[derive(Default)]
struct Faults {
    samples: Vec<Sample>,
    lives: usize,
    kills: usize,
    reloads: usize,
    restarts_failed: usize,
    /// Whether the daemon exited on its own while the disk was full.
    down_on_full_disk: bool,
}

/// Until `total` has passed: restarts the daemon when it exits (as
/// systemd would: the store failing on a full disk exits 75), kills it
/// with `kill -9` every `kill_every`, reloads it every 10 s, fills its
/// `state_dir` halfway through (for 30 s and until the daemon exits on
/// it, at most 120 s), and samples its resources every 10 s.
fn supervise(run: &Run, daemon: &mut Daemon, total: Duration, kill_every: Duration) -> Faults {
    let started = Instant::now();
    let mut faults = Faults {
        lives: 1,
        ..Faults::default()
    };
    let (mut last_kill, mut last_reload) = (Instant::now(), Instant::now());
    let mut last_sample = Instant::now() - Duration::from_secs(10);
    let mut disk_full: Option<(Instant, PathBuf)> = None;
    let mut disk_full_done = false;
    let restart = |daemon: &mut Daemon, faults: &mut Faults| match try_start(
        &run.dir, run.http, run.milter,
    ) {
        Some(d) => {
            *daemon = d;
            faults.lives += 1;
        }
        None => faults.restarts_failed += 1,
    };
    while started.elapsed() < total {
        if let Ok(Some(_)) = daemon.child.try_wait() {
            faults.down_on_full_disk |= disk_full.is_some();
            restart(daemon, &mut faults);
        }
        if last_kill.elapsed() >= kill_every {
            kill(&mut daemon.child);
            faults.kills += 1;
            last_kill = Instant::now();
            restart(daemon, &mut faults);
        }
        // Reloaded while running (not while down during the full disk).
        if last_reload.elapsed() >= Duration::from_secs(10)
            && matches!(daemon.child.try_wait(), Ok(None))
        {
            let hup = Command::new("kill")
                .args(["-HUP", &daemon.child.id().to_string()])
                .status();
            faults.reloads += usize::from(hup.is_ok_and(|s| s.success()));
            last_reload = Instant::now();
        }
        if !disk_full_done && disk_full.is_none() && started.elapsed() >= total / 2 {
            disk_full = Some((Instant::now(), fill(&run.state.0)));
        }
        // Full for 30 s and until the daemon noticed (it may still have
        // room in a log segment sled had already allocated), at most 120 s.
        if let Some((since, filler)) = &disk_full
            && since.elapsed() >= Duration::from_secs(30)
            && (faults.down_on_full_disk || since.elapsed() >= Duration::from_secs(120))
        {
            let _ = std::fs::remove_file(filler);
            disk_full = None;
            disk_full_done = true;
        }
        if last_sample.elapsed() >= Duration::from_secs(10)
            && let Some((rss_kb, fds)) = resources(daemon.child.id())
        {
            faults.samples.push(Sample {
                life: faults.lives,
                secs: started.elapsed().as_secs(),
                rss_kb,
                fds,
            });
            last_sample = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if let Some((_, filler)) = disk_full {
        let _ = std::fs::remove_file(filler);
    }
    faults
}

/// Waits until Postfix has delivered what it queued (deferred LMTP
/// deliveries are retried; a flush makes them due now).
fn drain(postfix: &Postfix) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let queued = postfix.queue();
        if queued.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Postfix still holds {} messages:\n{}",
            queued.len(),
            postfix.queue_text()
        );
        postfix.flush();
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Submissions against the Maildirs.
#[derive(Debug, Default)]
struct Tally {
    queued: usize,
    refused: usize,
    refusals: BTreeMap<String, usize>,
    copies: usize,
    bounces: usize,
    lost: Vec<String>,
    duplicated: Vec<String>,
    refused_then_delivered: Vec<String>,
    unexpected: Vec<String>,
    broken: Vec<String>,
}

/// Compares what the sender was told with what is in the Maildirs under
/// `mail` (bounces go to the sender's own mailbox, `example.test/sender`).
fn tally(mail: &Path, outcomes: &[Submission]) -> Tally {
    const BOUNCES: &str = "example.test/sender";
    let files = delivered(mail);
    let bounce_text = mailbox_text(&mail.join(BOUNCES));
    let mut t = Tally::default();
    let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
    for (id, to, outcome) in outcomes {
        let keys = to.iter().map(|rcpt| {
            let local = rcpt.split('@').next().unwrap_or_default();
            (format!("example.test/{local}"), id.clone())
        });
        match outcome {
            Outcome::Queued(queue_id) => {
                t.queued += 1;
                for key in keys {
                    if !files.contains_key(&key) && !bounce_text.contains(id.as_str()) {
                        t.lost
                            .push(format!("{id} (Postfix {queue_id}) to {}", key.0));
                    }
                    expected.insert(key);
                }
            }
            Outcome::Refused { command, reply } => {
                t.refused += 1;
                let code = reply.get(..3).unwrap_or("???");
                *t.refusals
                    .entry(format!("{code} at {command}"))
                    .or_insert(0) += 1;
                for key in keys.filter(|k| files.contains_key(k)) {
                    t.refused_then_delivered.push(format!("{key:?}"));
                }
            }
            Outcome::Broken(why) => t.broken.push(format!("{id}: {why}")),
        }
    }
    for (key, count) in &files {
        if key.0 == BOUNCES {
            t.bounces += count;
            continue;
        }
        t.copies += count;
        if *count > 1 {
            t.duplicated.push(format!("{key:?} x{count}"));
        }
        if !expected.contains(key) {
            t.unexpected.push(format!("{key:?}"));
        }
    }
    t
}

impl Tally {
    /// Zero lost, zero duplicated, every refusal seen by the sender.
    fn check(&self) {
        assert!(self.broken.is_empty(), "no reply: {:?}", self.broken);
        assert!(
            self.lost.is_empty(),
            "accepted, never delivered: {:?}",
            self.lost
        );
        assert!(
            self.duplicated.is_empty(),
            "delivered twice: {:?}",
            self.duplicated
        );
        assert!(
            self.refused_then_delivered.is_empty(),
            "refused yet delivered: {:?}",
            self.refused_then_delivered
        );
        assert!(
            self.unexpected.is_empty(),
            "never accepted: {:?}",
            self.unexpected
        );
        assert!(
            self.queued > 0 && self.refused > 0,
            "both outcomes happened"
        );
    }
}

/// Within each life of the daemon (after its first sample), the growth of
/// its resident memory and open files; a summary line per life.
fn flatness(samples: &[Sample]) -> String {
    let mut lines = Vec::new();
    let lives: BTreeSet<usize> = samples.iter().map(|s| s.life).collect();
    for life in lives {
        let of: Vec<&Sample> = samples.iter().filter(|s| s.life == life).collect();
        let (Some(first), Some(last)) = (of.first(), of.last()) else {
            continue;
        };
        let max_rss = of.iter().map(|s| s.rss_kb).max().unwrap_or(0);
        let max_fds = of.iter().map(|s| s.fds).max().unwrap_or(0);
        lines.push(format!(
            "life {life}: {}s..{}s, {} samples, RSS {} → {} kB (max {max_rss}), open files {} → {} (max {max_fds})",
            first.secs,
            last.secs,
            of.len(),
            first.rss_kb,
            last.rss_kb,
            first.fds,
            last.fds
        ));
        // Flat: no steady climb within a life (twice the first sample and
        // a margin is far above the noise of allocator and caches).
        assert!(
            max_fds <= first.fds * 2 + 64,
            "open files grew within life {life}: {of:?}"
        );
        assert!(
            max_rss <= first.rss_kb * 2 + 65_536,
            "resident memory grew within life {life}: {of:?}"
        );
    }
    lines.join("\n")
}
