//! Entry points for fuzzing (feature `fuzzing`): one function per kind of
//! bytes that reaches the daemon from outside, each taking any bytes and
//! panicking only on a bug. The cargo-fuzz targets in `fuzz/` call them
//! under libFuzzer (nightly); `daemon/tests/fuzz_replay.rs` calls them on
//! the stable toolchain with the seed corpus and a fixed budget of seeded
//! mutations, so CI runs every target.
//!
//! - [`milter_bytes`]: a milter session as the MTA would send it,
//!   decoded by indymilter and handled by Weir's own callbacks (once by a
//!   milter-only daemon, once by one that also delivers by LMTP, whose
//!   milter decides per recipient and stamps);
//! - [`lmtp_bytes`]: an LMTP session (command lines, pipelining, DATA with
//!   dot-stuffing) through Weir's LMTP server, delivering into a Maildir
//!   under a temporary directory;
//! - [`stamp`]: an `X-Weir-Stamp` header value, and a stamp payload signed
//!   with the daemon's key (past the MAC, which no mutation forges);
//! - [`config_toml`]: a `weir.toml`;
//! - [`list_file`]: a list file named by a `list … = file` declaration.
//!
//! The sessions run in-memory (`tokio::io::duplex`) against daemons made
//! once per process under `$TMPDIR/weir-fuzz-<pid>/`. A session that does
//! not end within [`SESSION_LIMIT`] after the client's end of stream is a
//! hang and panics; a panic in any task of the daemon is caught by a panic
//! hook and re-raised in the caller.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::state::Daemon;

/// How long a session may run after the client's end of stream.
pub const SESSION_LIMIT: Duration = Duration::from_secs(20);

/// The rules the daemons run: every stage, edits, a reject, a quarantine,
/// a folder and a `rate()`, so a session reaches each kind of outcome.
const RULES: &str = r#"
rule early_reject priority 1 {
  when envelope.from.domain == "reject.test"
  then reject 550 "5.7.1" "refused"
}
rule hold {
  when subject contains "HOLD"
  then quarantine "held for review"
}
rule edit {
  when subject contains "EDIT" or body contains "edit me"
  then {
    prepend_subject "[E] "
    add_header "X-Fuzz" "1"
    remove_header "X-Remove"
  }
}
rule folder {
  when header("X-Folder") != ""
  then fileinto "Fuzz/Box"
}
rule busy {
  when rate("fuzz:" + envelope.from.address, 1h) > 1000
  then tempfail 451 "4.7.1" "slow down"
}
rule gone {
  when subject contains "DISCARD"
  then discard
}
"#;

/// One daemon and the sender that hands it milter connections.
struct MilterTarget {
    connections: mpsc::UnboundedSender<DuplexStream>,
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    dir: PathBuf,
    milter_only: MilterTarget,
    with_lmtp: MilterTarget,
    lmtp: Arc<Daemon>,
    lmtp_stop: tokio::sync::watch::Receiver<bool>,
    /// Keeps `lmtp_stop` open.
    _lmtp_stop_tx: tokio::sync::watch::Sender<bool>,
    lmtp_runs: AtomicUsize,
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

/// Panics seen in any thread since the process started.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn harness() -> &'static Harness {
    HARNESS.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
        Harness::new().unwrap_or_else(|e| panic!("the fuzzing daemons do not start: {e:#}"))
    })
}

impl Harness {
    fn new() -> anyhow::Result<Harness> {
        let dir = std::env::temp_dir().join(format!("weir-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("rules.flow"), RULES)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let milter_only = daemon(&dir, "milter", false)?;
        let lmtp = daemon(&dir, "lmtp", true)?;
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let _guard = runtime.enter();
        Ok(Harness {
            milter_only: MilterTarget::start(milter_only),
            with_lmtp: MilterTarget::start(lmtp.clone()),
            lmtp,
            lmtp_stop: stop,
            _lmtp_stop_tx: stop_tx,
            lmtp_runs: AtomicUsize::new(0),
            runtime,
            dir,
        })
    }
}

/// A daemon with its state in `dir/name`, delivering by LMTP under
/// `dir/mail` when `lmtp`.
fn daemon(dir: &Path, name: &str, lmtp: bool) -> anyhow::Result<Arc<Daemon>> {
    let mut text = format!(
        "rules = \"rules.flow\"\nstate_dir = \"{name}-state\"\n\n[milter]\nlisten = \"inet:127.0.0.1:1\"\n"
    );
    if lmtp {
        text.push_str(&format!(
            "\n[lmtp]\nlisten = \"inet:127.0.0.1:1\"\nmaildir = \"{}/mail/{{domain}}/{{local}}\"\n",
            dir.display()
        ));
    }
    let config = Config::parse(&text, "weir.toml", dir, None).map_err(anyhow::Error::msg)?;
    Ok(Daemon::new(config)?)
}

/// Hands each milter connection to indymilter, as the socket listener does.
struct Connections(mpsc::UnboundedReceiver<DuplexStream>);

impl indymilter::Listener for Connections {
    type Io = DuplexStream;

    fn poll_accept(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<DuplexStream>> {
        match self.0.poll_recv(cx) {
            std::task::Poll::Ready(Some(stream)) => std::task::Poll::Ready(Ok(stream)),
            // The harness lives as long as the process: never reached.
            _ => std::task::Poll::Pending,
        }
    }
}

impl MilterTarget {
    /// Starts indymilter with Weir's callbacks on the current runtime.
    fn start(daemon: Arc<Daemon>) -> MilterTarget {
        let (connections, accepted) = mpsc::unbounded_channel();
        let limits = daemon.config().milter.connections;
        let config = indymilter::Config {
            max_connections: limits.max,
            actions: crate::milter::ACTIONS,
            connection_timeout: limits.idle_timeout,
        };
        let callbacks = crate::milter::callbacks(daemon);
        tokio::spawn(async move {
            let _ = indymilter::run(
                Connections(accepted),
                callbacks,
                config,
                std::future::pending::<()>(),
            )
            .await;
        });
        MilterTarget { connections }
    }
}

/// Writes `data` as the client, then ends the stream, while reading every
/// reply; returns the replies. Panics if the server side does not end
/// within [`SESSION_LIMIT`].
async fn converse(mut client: DuplexStream, data: &[u8]) -> Vec<u8> {
    let (mut reader, mut writer) = tokio::io::split(&mut client);
    let write = async {
        // A server that closes early makes the rest of the write fail:
        // that is an answer, not a bug.
        let _ = writer.write_all(data).await;
        let _ = writer.shutdown().await;
    };
    let read = async {
        let mut replies = Vec::new();
        let _ = reader.read_to_end(&mut replies).await;
        replies
    };
    let session = async { tokio::join!(write, read).1 };
    match tokio::time::timeout(SESSION_LIMIT, session).await {
        Ok(replies) => replies,
        Err(_) => panic!("the session did not end within {SESSION_LIMIT:?} of the end of input"),
    }
}

/// Panics if any thread panicked since `before` (a daemon task's panic is
/// otherwise only logged by tokio).
fn no_new_panic(before: usize) {
    let now = PANICS.load(Ordering::SeqCst);
    assert_eq!(now, before, "a daemon task panicked on this input");
}

/// Size of each in-memory pipe (both directions).
const PIPE: usize = 1 << 20;

/// A milter session: `data` is what the MTA sends (milter packets:
/// 4-byte big-endian length, command byte, payload), to a milter-only
/// daemon and to one that also delivers by LMTP. Returns what each of
/// the two answered, in that order.
pub fn milter_bytes(data: &[u8]) -> [Vec<u8>; 2] {
    let h = harness();
    let before = PANICS.load(Ordering::SeqCst);
    let replies = [&h.milter_only, &h.with_lmtp].map(|target| {
        let (client, server) = tokio::io::duplex(PIPE);
        if target.connections.send(server).is_err() {
            panic!("the milter server of the harness stopped");
        }
        h.runtime.block_on(converse(client, data))
    });
    no_new_panic(before);
    replies
}

/// An LMTP session: `data` is what the MTA sends after connecting. Every
/// reply line must be well formed (three digits, then a space or a
/// hyphen); messages delivered go to a Maildir emptied every 256 sessions.
/// Returns the replies.
pub fn lmtp_bytes(data: &[u8]) -> Vec<u8> {
    let h = harness();
    let before = PANICS.load(Ordering::SeqCst);
    if h.lmtp_runs.fetch_add(1, Ordering::SeqCst) % 256 == 255 {
        let _ = std::fs::remove_dir_all(h.dir.join("mail"));
    }
    let (client, server) = tokio::io::duplex(PIPE);
    let (reader, writer) = tokio::io::split(server);
    let daemon = h.lmtp.clone();
    let stop = h.lmtp_stop.clone();
    let peer = Some((std::net::IpAddr::from([127, 0, 0, 1]), 10025));
    let replies = h.runtime.block_on(async move {
        let session =
            tokio::spawn(
                async move { crate::lmtp::session(daemon, reader, writer, peer, stop).await },
            );
        let replies = converse(client, data).await;
        if let Err(e) = session.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
        replies
    });
    no_new_panic(before);
    for line in replies.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let well_formed = line.len() >= 5
            && line[..3].iter().all(u8::is_ascii_digit)
            && matches!(line[3], b' ' | b'-')
            && line.ends_with(b"\r");
        assert!(
            well_formed,
            "malformed reply line {:?}",
            String::from_utf8_lossy(line)
        );
    }
    replies
}

/// An `X-Weir-Stamp` value as found in a message, and `data` as a stamp's
/// JSON payload signed with the daemon's key: opened, and each
/// recipient's outcome turned into the decision LMTP would carry out.
pub fn stamp(data: &[u8]) {
    use crate::stamp::{STAMP_HEADER, Stamp, StampKey, find};
    let key = StampKey::from_bytes(b"the fuzzing key, 32 bytes long!!");
    let text = String::from_utf8_lossy(data).into_owned();
    let headers = vec![(STAMP_HEADER.to_string(), text)];
    let _ = find(&headers, "<a@example.test>", &key);
    let Ok(stamp) = Stamp::open(&key.sign_raw(data), &key) else {
        return;
    };
    for (rcpt, _) in &stamp.recipients {
        if let Some(outcome) = stamp.outcome_for(rcpt) {
            let _ = outcome.decision();
            let _ = outcome.forwarded().decision();
        }
    }
    // What is read back is what was signed: sealing it again opens to
    // the same stamp.
    let again = Stamp::open(&stamp.seal(&key), &key);
    assert_eq!(
        again.as_ref(),
        Ok(&stamp),
        "a stamp does not survive sealing"
    );
}

/// A `weir.toml`: parsed and checked, with an error (never a panic) for
/// anything wrong.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let base = Path::new("/nonexistent-weir-fuzz");
    if let Ok(config) = Config::parse(text, "weir.toml", base, None) {
        // What the daemon reads first from a good one.
        let _ = (config.milter.connections.max, config.state_dir.clone());
    }
}

/// A list or map file: loaded through rulesets that declare it as a list
/// and test membership (as domains, as networks: whichever the file's
/// entries make it checks), and as a map read by key, then evaluated on a
/// fixed message.
pub fn list_file(data: &[u8]) {
    use weir_compiler::loader::MemoryLoader;
    use weir_compiler::{EvalOptions, MemoryRates, compile};
    use weir_stdlib::{Limits, Message, Transaction};
    const RULES: [&str; 3] = [
        "list entries = file \"entries.txt\"\n\
         rule sender { when envelope.from.domain in entries then tag \"domain\" }\n",
        "list entries = file \"entries.txt\"\n\
         rule client { when client.ip in entries then tag \"net\" }\n",
        "map entries = file \"entries.txt\"\n\
         rule routed { when envelope.from.domain in entries \
         then fileinto entries[envelope.from.domain] }\n",
    ];
    const MESSAGE: &[u8] = b"From: a@example.test\r\nSubject: hi\r\n\r\nbody\r\n";
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for rules in RULES {
        let mut loader: MemoryLoader = MemoryLoader::new();
        loader.insert("fuzz.flow", rules);
        loader.insert("entries.txt", text);
        let compiled = compile(Path::new("fuzz.flow"), &loader);
        let Some(ruleset) = compiled.ruleset else {
            continue;
        };
        let Ok(message) = Message::parse(MESSAGE, &Limits::default()) else {
            return;
        };
        let client = Some(std::net::IpAddr::from([192, 0, 2, 1]));
        let tx = Transaction::with_defaults(message, Some("a@example.test"), &[], client, None, 0);
        let _ = ruleset.evaluate(&tx, &mut MemoryRates::default(), &EvalOptions::default());
    }
}
