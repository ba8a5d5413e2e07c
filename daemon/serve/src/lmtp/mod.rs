//! The LMTP server (RFC 2033): Weir as the delivery agent that files mail
//! into Maildir++ folders, the job Dovecot's LMTP with Sieve does.
//!
//! CONTRACT with `serve/mod.rs`: [`serve`] takes the already bound
//! [`Listener`] (TCP or Unix) and serves until `stop` turns true; idle
//! sessions are then told `421` and closed, a message being received or
//! delivered is finished first.
//!
//! A session: `LHLO` (PIPELINING, ENHANCEDSTATUSCODES, 8BITMIME, SIZE),
//! `MAIL`, `RCPT` (each recipient checked to name a mailbox), `DATA`
//! (dot-unstuffed, bounded by `[limits] max_message_size`), then one reply
//! per accepted recipient, in order. Replies are buffered and written when
//! no further pipelined command is waiting, so a pipelined group gets one
//! write; TCP sockets get `TCP_NODELAY` because each reply group is a
//! round trip the client waits for.
//!
//! Per recipient the rules run once with `recipient` bound, and the
//! decision is carried out before that recipient's reply:
//! - `accept` (or no verdict): the copy, with the milter's header edits
//!   (`rewrite.rs`), goes into the decision's folder with its flags
//!   (`maildir.rs`); `250` only once it is durable. No copy is delivered
//!   twice when the MTA sends the same message again because a crash came
//!   between the write and the `250`: the file's name is put in the
//!   store's delivery index (key: digest of the message as received,
//!   lower-cased recipient, folder directory) and flushed *before* the
//!   file is written; a later delivery with the same key whose file is
//!   still in `new/` or `cur/` is answered `250` without writing
//!   (`deliver_once`). The index is pruned with the audit log, so the same
//!   bytes sent again after `[audit] retention` are delivered again;
//! - `reject`/`tempfail`: the rule's reply;
//! - `discard`, `redirect`, or `remove_rcpt` of this recipient: `250`,
//!   nothing stored (forwarded copies belong to the outbox, not here);
//! - side effects (`notify`, `reply`, the forwarded copies of `redirect`
//!   and `add_rcpt`) are queued in the outbox (`serve/outbox/`) and
//!   flushed before the reply; identical ones of several recipients are
//!   queued once;
//! - `quarantine`: the copy is written under `state_dir/quarantine/` and
//!   indexed in the store with the audit entry; `POST
//!   /v1/quarantine/{id}/release` delivers it where the decision said
//!   ([`release_held`]).
//!
//! Every recipient's decision is recorded (audit log with the ruleset
//! version, metrics, event) before its reply. A failure to evaluate or to
//! store gives `[lmtp] on_error` (an `accept` there still cannot claim a
//! copy that was not stored, so it becomes a tempfail).

pub mod command;
pub mod folder;
pub mod maildir;
pub mod rewrite;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use weir_compiler::{Action, Decision, EvalOptions, Reply, TakenKind, Verdict};
use weir_stdlib::{Address, Connection, Envelope, Limits, Message, Stage, Transaction};

use super::Listener;
use super::config::OnError;
use super::outbox::{self, Origin};
use super::stages::{self, PolicyCause, StagedRates};
use super::stamp::{self, STAMP_HEADER, Stamp};
use super::state::{Daemon, LoadedRuleset, Record, Source, unix_now};
use super::store::{DeliveryRecord, LmtpHold, MessageSummary, QuarantineEntry};
use command::Command;

/// The longest command line accepted (RFC 5321 asks for at least 512).
const MAX_COMMAND_LINE: usize = 4096;

/// The longest line of message data (RFC 5321's limit is 1000; real mail
/// exceeds it, so this only bounds memory per line).
const MAX_DATA_LINE: usize = 1 << 20;

/// The most recipients per transaction (RFC 5321 asks for at least 100).
const MAX_RECIPIENTS: usize = 1000;

/// Serves LMTP on `listener` until `stop` turns true.
pub async fn serve(
    daemon: Arc<Daemon>,
    listener: Listener,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut sessions = tokio::task::JoinSet::new();
    let mut stopping = stop.clone();
    loop {
        let accepted = tokio::select! {
            () = async { let _ = stopping.wait_for(|s| *s).await; } => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
            accepted = accept(&listener) => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // A full file table must not end the server for good.
                tracing::warn!("LMTP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // `[lmtp] max_connections`: past it a client gets a 421 at once
        // rather than a session.
        let max_sessions = daemon
            .config()
            .lmtp
            .as_ref()
            .map_or(1, |l| l.connections.max);
        if sessions.len() >= max_sessions {
            tracing::warn!("LMTP: more than {max_sessions} sessions; refusing one");
            let _ = busy(stream).await;
            continue;
        }
        let daemon = daemon.clone();
        let stop = stop.clone();
        daemon.metrics.lmtp_connection_opened();
        sessions.spawn(async move {
            let metrics_engine = daemon.clone();
            let result = match stream {
                Stream::Tcp(s) => {
                    let (r, w) = s.into_split();
                    session(daemon, r, w, peer, stop).await
                }
                Stream::Unix(s) => {
                    let (r, w) = s.into_split();
                    session(daemon, r, w, peer, stop).await
                }
            };
            metrics_engine.metrics.lmtp_connection_closed();
            if let Err(e) = result {
                tracing::debug!("LMTP session ended: {e}");
            }
        });
    }
    while sessions.join_next().await.is_some() {}
    Ok(())
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<(Stream, Option<(IpAddr, u16)>)> {
    match listener {
        Listener::Tcp(l) => {
            let (s, addr) = l.accept().await?;
            if let Err(e) = s.set_nodelay(true) {
                tracing::warn!("cannot set TCP_NODELAY: {e}");
            }
            Ok((Stream::Tcp(s), Some((addr.ip(), addr.port()))))
        }
        Listener::Unix(l) => {
            let (s, _) = l.accept().await?;
            Ok((Stream::Unix(s), None))
        }
    }
}

async fn busy(stream: Stream) -> std::io::Result<()> {
    let line = b"421 4.3.2 Too many connections, try again later\r\n";
    match stream {
        Stream::Tcp(mut s) => s.write_all(line).await,
        Stream::Unix(mut s) => s.write_all(line).await,
    }
}

/// The local host name for the greeting.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// What one read of a line gave.
enum Line {
    /// A whole line (with its line end) is in the buffer.
    Complete,
    /// The line was longer than allowed; it was read and dropped.
    TooLong,
    /// The client closed the connection.
    Closed,
}

/// One connection's I/O: buffered reads, replies gathered in `out` and
/// written when the client has nothing more pipelined.
struct Conn<R, W> {
    reader: BufReader<R>,
    writer: W,
    out: Vec<u8>,
    /// The code of the last reply queued: after a recipient's decision,
    /// whether its copy was deferred (4xx).
    last_code: u16,
    /// `[lmtp] idle_timeout`: for a read of a line and for a write of the
    /// replies (a client that pipelines and never reads is let go).
    idle_timeout: Duration,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Conn<R, W> {
    /// Queues a reply; a multi-line text becomes a multi-line reply.
    fn reply(&mut self, code: u16, status: &str, text: &str) {
        self.last_code = code;
        let lines: Vec<&str> = text
            .split('\n')
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.is_empty())
            .collect();
        let lines = if lines.is_empty() { vec![""] } else { lines };
        let last = lines.len() - 1;
        for (i, line) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            let line = if status.is_empty() {
                format!("{code}{sep}{line}\r\n")
            } else {
                format!("{code}{sep}{status} {line}\r\n")
            };
            self.out.extend_from_slice(line.as_bytes());
        }
    }

    /// Queues a decision's SMTP reply.
    fn reply_with(&mut self, reply: &Reply) {
        let status = reply.status.clone();
        self.reply(reply.code, &status, &reply.text);
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            let write = async {
                self.writer.write_all(&self.out).await?;
                self.writer.flush().await
            };
            match tokio::time::timeout(self.idle_timeout, write).await {
                Ok(written) => written?,
                Err(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "client did not read its replies",
                    ));
                }
            }
            self.out.clear();
        }
        Ok(())
    }

    /// Reads one line into `line` (cleared first), at most `max` bytes.
    /// Pending replies are written first when no whole line is buffered,
    /// since the client may be waiting for them before it sends more.
    async fn read_line(&mut self, line: &mut Vec<u8>, max: usize) -> std::io::Result<Line> {
        line.clear();
        if !self.reader.buffer().contains(&b'\n') {
            self.flush().await?;
        }
        let read = async {
            let mut too_long = false;
            loop {
                let available = self.reader.fill_buf().await?;
                if available.is_empty() {
                    return Ok(Line::Closed);
                }
                let (take, done) = match available.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (available.len(), false),
                };
                if !too_long && line.len() + take <= max {
                    line.extend_from_slice(&available[..take]);
                } else {
                    too_long = true;
                    line.clear();
                }
                self.reader.consume(take);
                if done {
                    return Ok(if too_long {
                        Line::TooLong
                    } else {
                        Line::Complete
                    });
                }
            }
        };
        match tokio::time::timeout(self.idle_timeout, read).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client silent for too long",
            )),
        }
    }
}

/// The envelope of the transaction in progress.
#[derive(Debug, Default)]
struct Pending {
    from: String,
    recipients: Vec<String>,
}

/// What the session knows of its client.
#[derive(Debug, Clone)]
struct Client {
    peer: Option<(IpAddr, u16)>,
    lhlo: String,
}

/// One LMTP session over any byte stream (a socket, or an in-memory pipe
/// for the fuzzer): greeting, commands, DATA and per-recipient replies,
/// until QUIT, the client's end of stream, or `stop`.
pub(crate) async fn session<R, W>(
    daemon: Arc<Daemon>,
    reader: R,
    writer: W,
    peer: Option<(IpAddr, u16)>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Some(lmtp) = daemon.config().lmtp.clone() else {
        return Ok(());
    };
    let max_size = daemon.config().limits.max_message_size;
    let host = host_name();
    let mut conn = Conn {
        reader: BufReader::new(reader),
        writer,
        out: Vec::new(),
        last_code: 0,
        idle_timeout: lmtp.connections.idle_timeout,
    };
    conn.reply(220, "", &format!("{host} Weir LMTP ready"));
    let mut client = Client {
        peer,
        lhlo: String::new(),
    };
    let mut greeted = false;
    let mut envelope: Option<Pending> = None;
    let mut line = Vec::new();
    loop {
        let read = tokio::select! {
            biased;
            read = conn.read_line(&mut line, MAX_COMMAND_LINE) => read?,
            // The guard `wait_for` returns is not `Send`: drop it at once.
            () = async { let _ = stop.wait_for(|s| *s).await; } => {
                conn.reply(421, "4.3.2", "Service shutting down");
                conn.flush().await?;
                return Ok(());
            }
        };
        match read {
            Line::Closed => return Ok(()),
            Line::TooLong => {
                conn.reply(500, "5.5.2", "Line too long");
                continue;
            }
            Line::Complete => {}
        }
        let text = without_line_end(&line);
        let command = match command::parse(text) {
            Ok(c) => c,
            Err(e) => {
                conn.reply(e.code, e.status, &e.text);
                continue;
            }
        };
        match command {
            Command::Lhlo(name) => {
                client.lhlo = name;
                greeted = true;
                envelope = None;
                conn.reply(
                    250,
                    "",
                    &format!("{host}\nPIPELINING\nENHANCEDSTATUSCODES\n8BITMIME\nSIZE {max_size}"),
                );
            }
            Command::Helo => conn.reply(500, "5.5.1", "This is LMTP: say LHLO"),
            Command::Vrfy => conn.reply(252, "2.5.2", "Cannot VRFY; send the message"),
            Command::Noop => conn.reply(250, "2.0.0", "OK"),
            Command::Rset => {
                envelope = None;
                conn.reply(250, "2.0.0", "OK");
            }
            Command::Quit => {
                conn.reply(221, "2.0.0", "Bye");
                conn.flush().await?;
                return Ok(());
            }
            Command::Mail { from, size } => {
                if !greeted {
                    conn.reply(503, "5.5.1", "Send LHLO first");
                } else if envelope.is_some() {
                    conn.reply(503, "5.5.1", "Nested MAIL command");
                } else if size.is_some_and(|s| s > max_size) {
                    conn.reply(
                        552,
                        "5.3.4",
                        &format!("Message size exceeds the limit of {max_size} bytes"),
                    );
                } else {
                    envelope = Some(Pending {
                        from,
                        recipients: Vec::new(),
                    });
                    conn.reply(250, "2.1.0", "Sender OK");
                }
            }
            Command::Rcpt(to) => {
                let Some(env) = envelope.as_mut() else {
                    conn.reply(503, "5.5.1", "Send MAIL first");
                    continue;
                };
                if env.recipients.len() >= MAX_RECIPIENTS {
                    conn.reply(452, "4.5.3", "Too many recipients");
                } else if let Err(e) = maildir::mailbox_dir(&lmtp.maildir, &to, address_case(&lmtp))
                {
                    conn.reply(550, "5.1.3", &format!("<{to}> has no mailbox here: {e}"));
                } else {
                    env.recipients.push(to);
                    conn.reply(250, "2.1.5", "Recipient OK");
                }
            }
            Command::Data => {
                let Some(env) = envelope.take_if(|e| !e.recipients.is_empty()) else {
                    let why = if envelope.is_none() {
                        "Send MAIL first"
                    } else {
                        "No valid recipients"
                    };
                    conn.reply(503, "5.5.1", why);
                    continue;
                };
                conn.reply(354, "", "Start mail input; end with <CRLF>.<CRLF>");
                conn.flush().await?;
                let Some(data) = read_data(&mut conn, max_size).await? else {
                    // The client left in the middle: nothing was accepted.
                    return Ok(());
                };
                deliver_all(&daemon, &mut conn, &client, &env, data).await;
            }
        }
    }
}

/// Reads the message after `354` up to the lone dot, undoing dot-stuffing
/// and making every line end CRLF. `Ok(None)`: the connection closed;
/// `Ok(Some(Err(())))`: the message was larger than `max_size` (read to
/// its end and dropped).
async fn read_data<R, W>(
    conn: &mut Conn<R, W>,
    max_size: u64,
) -> std::io::Result<Option<Result<Vec<u8>, ()>>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut data = Vec::new();
    let mut too_big = false;
    let mut line = Vec::new();
    loop {
        match conn.read_line(&mut line, MAX_DATA_LINE).await? {
            Line::Closed => return Ok(None),
            Line::TooLong => {
                too_big = true;
                data = Vec::new();
                continue;
            }
            Line::Complete => {}
        }
        let body = without_line_end(&line);
        if body == b"." {
            break;
        }
        let body = body.strip_prefix(b".").unwrap_or(body);
        if too_big {
            continue;
        }
        if (data.len() + body.len() + 2) as u64 > max_size {
            too_big = true;
            data = Vec::new();
            continue;
        }
        data.extend_from_slice(body);
        data.extend_from_slice(b"\r\n");
    }
    Ok(Some(if too_big { Err(()) } else { Ok(data) }))
}

/// Decides and delivers for every recipient, queuing their replies in order.
async fn deliver_all<R, W>(
    daemon: &Arc<Daemon>,
    conn: &mut Conn<R, W>,
    client: &Client,
    envelope: &Pending,
    data: Result<Vec<u8>, ()>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let loaded = daemon.current();
    let limits = Limits {
        max_message_size: daemon.config().limits.max_message_size,
        max_headers: daemon.config().limits.max_headers,
        max_mime_depth: daemon.config().limits.max_mime_depth,
    };
    let on_limit = match daemon.config().limits.on_limit {
        // What was not kept cannot be delivered.
        OnError::Accept => OnError::Reject,
        other => other,
    };
    let wire = match data {
        Ok(wire) => wire,
        Err(()) => {
            tracing::warn!("LMTP message exceeds max_message_size");
            let summary = MessageSummary {
                from: envelope.from.clone(),
                ..MessageSummary::default()
            };
            let refused = Delivery::refused(loaded.version, &summary);
            for rcpt in &envelope.recipients {
                // Permanent whatever `on_limit` says, as for `SIZE=` at
                // MAIL: the same message will never fit (RFC 5321 552).
                let decision =
                    stages::policy_decision(OnError::Reject, Stage::Body, PolicyCause::Limit);
                finish(daemon, conn, &refused, rcpt, decision).await;
            }
            return;
        }
    };
    let (wire, stamp) = take_stamp(daemon, wire, &envelope.from);
    let received = Received::of(&wire);
    let wire = Arc::new(wire);
    // The origin has read the headers the summary needs: no second pass.
    // Its digest reads the whole message (up to max_message_size): off the
    // async threads.
    let origin = {
        let wire = wire.clone();
        let from = envelope.from.clone();
        let recipients = envelope.recipients.clone();
        tokio::task::spawn_blocking(move || Origin::new(&wire, &from, &recipients)).await
    };
    let Ok(origin) = origin else {
        tracing::error!("LMTP: reading the message's headers failed");
        let summary = MessageSummary::default();
        let refused = Delivery::refused(loaded.version, &summary);
        for rcpt in &envelope.recipients {
            let decision = failure_decision(daemon);
            finish(daemon, conn, &refused, rcpt, decision).await;
        }
        return;
    };
    let summary = MessageSummary {
        message_id: origin.message_id.clone(),
        from: envelope.from.clone(),
        to: Vec::new(),
        subject: origin.subject.clone(),
        size: wire.len() as u64,
    };
    let parsed = {
        let wire = wire.clone();
        tokio::task::spawn_blocking(move || Message::parse(&wire, &limits)).await
    };
    let message = match parsed {
        Ok(Ok(m)) => Arc::new(m),
        other => {
            match other {
                Ok(Err(limit)) => tracing::warn!("LMTP message: {limit}"),
                Err(e) => tracing::error!("LMTP message parsing failed: {e}"),
                Ok(Ok(_)) => {}
            }
            let mut refused = Delivery::refused(loaded.version, &summary);
            refused.received = &received;
            for rcpt in &envelope.recipients {
                let decision = stages::policy_decision(on_limit, Stage::Body, PolicyCause::Limit);
                finish(daemon, conn, &refused, rcpt, decision).await;
            }
            return;
        }
    };
    let (ip, port) = client.peer.unwrap_or((IpAddr::from([127, 0, 0, 1]), 0));
    let base = Transaction {
        connection: Connection {
            ip,
            name: String::new(),
            port,
            helo: client.lhlo.clone(),
            auth_user: String::new(),
            tls: false,
        },
        envelope: Envelope {
            from: Address::parse(&envelope.from),
            to: envelope
                .recipients
                .iter()
                .map(|a| Address::parse(a))
                .collect(),
            recipient: None,
        },
        message: Message::empty(),
        now: unix_now(),
    };
    // One counter for the message: a rate key counts once however many
    // recipients evaluate it, and only when some copy was not deferred
    // (a 4xx brings the message back; its retry must not count twice).
    let mut rates = StagedRates::new(daemon.store.clone());
    let mut deferred_all = true;
    let evaluated = Delivery {
        version: loaded.version,
        summary: &summary,
        message: Some((&wire, &envelope.recipients)),
        origin: Some(&origin),
        received: &received,
        stamped: None,
    };
    let started = Instant::now();
    let mut decided = Vec::new();
    for rcpt in &envelope.recipients {
        if let Some((decision, stamped)) = stamp.as_ref().and_then(|s| stamped_decision(s, rcpt)) {
            let delivery = Delivery {
                version: stamped.version,
                stamped: Some(stamped),
                ..evaluated
            };
            finish(daemon, conn, &delivery, rcpt, decision).await;
            continue;
        }
        let (decision, back) = evaluate(daemon, &loaded, &base, &message, rcpt, rates).await;
        rates = back;
        let decision = finish(daemon, conn, &evaluated, rcpt, decision).await;
        decided.push((rcpt.as_str(), decision));
        deferred_all &= (400..500).contains(&conn.last_code);
    }
    if !decided.is_empty() && !deferred_all {
        tokio::task::spawn_blocking(move || rates.commit())
            .await
            .unwrap_or_else(|e| tracing::error!("cannot count the message's rates: {e}"));
    }
    log_line(&evaluated, &decided, started);
}

/// The one INFO line per message LMTP decided (a stamped message was
/// logged by the milter), joinable with Postfix's log by queue id.
fn log_line(delivery: &Delivery<'_>, decided: &[(&str, Decision)], started: Instant) {
    if decided.is_empty() {
        return;
    }
    let mut rules: Vec<&str> = Vec::new();
    for (_, d) in decided {
        for rule in &d.matched {
            if !rules.contains(&rule.as_str()) {
                rules.push(rule);
            }
        }
    }
    let to: Vec<String> = decided
        .iter()
        .map(|(rcpt, d)| format!("<{rcpt}>:{}", d.verdict.as_str()))
        .collect();
    let received = delivery.received;
    tracing::info!(
        "{}: lmtp client={} from=<{}> to={} rules={} ruleset={} ms={}",
        if received.queue_id.is_empty() {
            "NOQUEUE"
        } else {
            &received.queue_id
        },
        if received.client.is_empty() {
            "unknown"
        } else {
            &received.client
        },
        delivery.summary.from,
        to.join(","),
        if rules.is_empty() {
            "-".to_string()
        } else {
            rules.join(",")
        },
        delivery.version,
        started.elapsed().as_millis()
    );
}

/// What the MTA's own trace field (the topmost `Received:`, which Postfix
/// adds before it delivers) says about the message: its queue id and the
/// client it came from, for the audit log of a message no milter saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Received {
    /// The word after ` id ` (Postfix's queue id), or `""`.
    queue_id: String,
    /// What `from` says: `HELO (name [ip])`, or `""`.
    client: String,
}

/// A `Received:` field's `from` part: `HELO (name [ip])` as the
/// audit entry's `client` object (`ip`, `name`, `helo`).
fn client_json(from: &str) -> serde_json::Value {
    let (helo, rest) = from.split_once(' ').unwrap_or((from, ""));
    let inner = rest.trim().trim_start_matches('(').trim_end_matches(')');
    let (name, ip) = match inner.split_once('[') {
        Some((name, ip)) => (name.trim(), ip.split(']').next().unwrap_or("")),
        None => (inner.trim(), ""),
    };
    let name = if name == "unknown" { "" } else { name };
    serde_json::json!({"ip": ip, "name": name, "helo": helo})
}

impl Received {
    fn of(wire: &[u8]) -> Received {
        let headers = rewrite::RawMessage::split(wire).header_pairs();
        let Some((_, value)) = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("Received"))
        else {
            return Received::default();
        };
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        let before_date = value.split(';').next().unwrap_or("");
        let words: Vec<&str> = before_date.split(' ').collect();
        let queue_id = words
            .windows(2)
            .find(|w| w[0] == "id")
            .map(|w| w[1].to_string())
            .unwrap_or_default();
        let client = before_date
            .strip_prefix("from ")
            .and_then(|rest| rest.split(" by ").next())
            .unwrap_or("")
            .to_string();
        Received { queue_id, client }
    }
}

#[cfg(test)]
mod received_tests {
    use super::*;

    #[test]
    fn postfix_trace_fields_give_queue_id_and_client() {
        let wire = b"Received: from client.test (mail.client.test [192.0.2.7])\r\n\tby mx.weir.test (Postfix) with ESMTP id 4ABCD123\r\n\tfor <bob@example.test>; Sun, 6 Dec 2026 03:00:00 +0000 (UTC)\r\nReceived: from elsewhere by x with SMTP id OLDER;\r\n d\r\n\r\nbody\r\n";
        let r = Received::of(wire);
        assert_eq!(r.queue_id, "4ABCD123");
        assert_eq!(
            client_json(&r.client),
            serde_json::json!({"ip": "192.0.2.7", "name": "mail.client.test", "helo": "client.test"})
        );
        assert_eq!(
            Received::of(b"Subject: no trace\r\n\r\n"),
            Received::default()
        );
        let local = Received::of(b"Received: by mx.weir.test (Postfix, from userid 0)\r\n id 9XYZ; Sun, 6 Dec 2026\r\n\r\n");
        assert_eq!(
            (local.queue_id.as_str(), local.client.as_str()),
            ("9XYZ", "")
        );
    }
}

/// Removes every [`STAMP_HEADER`] field from `wire` and returns the stamp
/// they carried, if it is valid (`stamp.rs`); an invalid one is logged and
/// ignored.
fn take_stamp(daemon: &Daemon, wire: Vec<u8>, from: &str) -> (Vec<u8>, Option<Stamp>) {
    let mut raw = rewrite::RawMessage::split(&wire);
    if !raw
        .fields
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(STAMP_HEADER))
    {
        return (wire, None);
    }
    let found = stamp::find(&raw.header_pairs(), from, &daemon.stamp_key);
    raw.fields
        .retain(|(n, _)| !n.eq_ignore_ascii_case(STAMP_HEADER));
    let stamp = match found {
        Some(Ok(stamp)) => Some(stamp),
        Some(Err(e)) => {
            tracing::warn!(
                "LMTP: a {STAMP_HEADER} field {e} was removed and ignored; the message is evaluated"
            );
            None
        }
        None => None,
    };
    (raw.to_bytes(), stamp)
}

/// The decision stamped for `rcpt`, to be carried out without evaluating
/// again. `None` (evaluate) for a recipient the stamp does not name and
/// for a stamped `tempfail`: a deferral asks for a new decision when the
/// MTA tries again. A `quarantine` the MTA's hold queue already carried
/// out (the message is here, so it was released) becomes an `accept`.
fn stamped_decision(stamp: &Stamp, rcpt: &str) -> Option<(Decision, Stamped)> {
    let outcome = stamp.outcome_for(rcpt)?;
    let mut decision = outcome.decision()?;
    if decision.verdict == Verdict::Tempfail {
        return None;
    }
    if stamp.held && decision.verdict == Verdict::Quarantine {
        decision.verdict = Verdict::Accept;
    }
    Some((
        decision,
        Stamped {
            audit_id: stamp.audit_id,
            queue_id: stamp.queue_id.clone(),
            version: stamp.ruleset_version,
            edits_applied: stamp.edits_applied,
        },
    ))
}

/// Evaluates the rules for one recipient, off the async threads and
/// bounded by `eval_timeout`; a failure gives the `[lmtp] on_error`
/// decision. The rate counter goes in and comes back.
async fn evaluate(
    daemon: &Arc<Daemon>,
    loaded: &Arc<LoadedRuleset>,
    base: &Transaction,
    message: &Arc<Message>,
    rcpt: &str,
    rates: StagedRates,
) -> (Decision, StagedRates) {
    let on_error = daemon
        .config()
        .lmtp
        .as_ref()
        .map_or(OnError::Tempfail, |l| l.on_error);
    let mut tx = base.clone();
    tx.envelope.recipient = Some(Address::parse(rcpt));
    let loaded = loaded.clone();
    let message = message.clone();
    let fallback = rates.clone();
    let budget = crate::evalpool::budget(daemon.config().limits.eval_timeout, message.size());
    let job = crate::evalpool::run(budget, move || {
        let mut rates = rates;
        let started = Instant::now();
        tx.message = (*message).clone();
        let decision = loaded
            .evaluator
            .evaluate(&tx, &mut rates, &EvalOptions::default());
        (decision, rates, started.elapsed())
    });
    match job.await {
        Ok((decision, rates, elapsed)) => {
            daemon.observe_eval(elapsed);
            (decision, rates)
        }
        Err(e) => {
            let d = crate::milter::pool_failure(daemon, &e, on_error, Stage::Body);
            (d, fallback)
        }
    }
}

/// The flags `flag` set (shadow rules excluded).
fn decision_flags(decision: &Decision) -> Vec<String> {
    decision
        .actions
        .iter()
        .filter(|t| !t.shadow)
        .filter_map(|t| match &t.what {
            TakenKind::Action(Action::Flag(f)) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

/// Whether the decision drops this recipient's local copy (`redirect`, or
/// `remove_rcpt` naming it).
fn drops_local_copy(decision: &Decision, rcpt: &str) -> bool {
    decision
        .actions
        .iter()
        .filter(|t| !t.shadow)
        .any(|t| match &t.what {
            TakenKind::Action(Action::Redirect(_)) => true,
            TakenKind::Action(Action::RemoveRcpt(a)) => {
                stages::strip_brackets(a).eq_ignore_ascii_case(rcpt)
            }
            _ => false,
        })
}

/// What was done with a recipient's copy, for its reply.
enum Outcome {
    Delivered,
    Quarantined(String),
    NotDelivered,
    Refused(Reply),
}

/// What carrying out the decisions of one message needs besides each
/// recipient's decision.
#[derive(Debug, Clone)]
struct Delivery<'a> {
    /// The version of the ruleset that decided.
    version: u64,
    /// The message, for the audit log.
    summary: &'a MessageSummary,
    /// The received message and all recipients (`None` when it was not
    /// kept: every decision is then a refusal).
    message: Option<(&'a Arc<Vec<u8>>, &'a Vec<String>)>,
    /// What the side effects need.
    origin: Option<&'a Origin>,
    /// The MTA's queue id and client, from its `Received:` field.
    received: &'a Received,
    /// Set when the milter decided (the stamp): then its audit entry and
    /// side effects stand, and nothing is recorded or queued again.
    stamped: Option<Stamped>,
}

/// The milter's decision for a message, from its stamp.
#[derive(Debug, Clone)]
struct Stamped {
    /// The milter's audit entry.
    audit_id: u64,
    /// The queue id the milter saw.
    queue_id: String,
    /// The ruleset version that decided.
    version: u64,
    /// Whether the milter made the header edits already.
    edits_applied: bool,
}

/// The trace of a message not kept.
static NOT_RECEIVED: Received = Received {
    queue_id: String::new(),
    client: String::new(),
};

impl<'a> Delivery<'a> {
    /// A message that was not kept (too large, unparsable).
    fn refused(version: u64, summary: &'a MessageSummary) -> Delivery<'a> {
        Delivery {
            version,
            summary,
            message: None,
            origin: None,
            received: &NOT_RECEIVED,
            stamped: None,
        }
    }
}

/// Carries out one recipient's decision, records it, and queues its reply;
/// returns the decision carried out (a failure's, when delivery failed).
async fn finish<R, W>(
    daemon: &Arc<Daemon>,
    conn: &mut Conn<R, W>,
    delivery: &Delivery<'_>,
    rcpt: &str,
    mut decision: Decision,
) -> Decision
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut summary = delivery.summary.clone();
    summary.to = vec![rcpt.to_string()];
    let mut held = None;
    let outcome = match (decision.verdict, delivery.message) {
        (Verdict::Reject | Verdict::Tempfail, _) | (_, None) => {
            Outcome::Refused(decision.refusal())
        }
        (Verdict::Discard, _) => Outcome::NotDelivered,
        (_, Some(_)) if drops_local_copy(&decision, rcpt) => Outcome::NotDelivered,
        (verdict, Some(_)) => {
            if let Some(warning) = target(daemon, decision.folder.as_deref()).warning {
                tracing::warn!("<{rcpt}>: {warning}");
                decision.warnings.push(warning);
            }
            let stored = store_copy(daemon, delivery, &decision, rcpt, &summary).await;
            match (verdict, stored) {
                (Verdict::Quarantine, Ok(Stored::Held(entry))) => {
                    let id = entry.queue_id.clone();
                    held = Some(*entry);
                    Outcome::Quarantined(id)
                }
                (_, Ok(Stored::Delivered(path))) => {
                    tracing::debug!("<{rcpt}>: delivered to {}", path.display());
                    Outcome::Delivered
                }
                // A held copy is only made for `quarantine`.
                (_, Ok(Stored::Held(_))) => Outcome::Delivered,
                (_, Err(e)) => {
                    tracing::error!("LMTP delivery to <{rcpt}> failed: {e:#}");
                    decision = failure_decision(daemon);
                    Outcome::Refused(decision.refusal())
                }
            }
        }
    };
    if delivery.stamped.is_none()
        && let Err(e) = queue_side_effects(daemon, delivery, rcpt, &decision, &outcome).await
    {
        tracing::error!("cannot queue the side effects for <{rcpt}>: {e}");
        // A copy already delivered keeps its 250 (a refusal would make
        // the MTA deliver it twice); otherwise the MTA tries again
        // later and the side effects are queued then.
        if !matches!(outcome, Outcome::Delivered | Outcome::Refused(_)) {
            if let Some(hold) = held.as_ref().and_then(|h| h.lmtp.as_ref()) {
                let _ = std::fs::remove_file(&hold.file);
            }
            let failed = failure_decision(daemon);
            conn.reply_with(&failed.refusal());
            return failed;
        }
    }
    let outcome_json = outcome.json(rcpt, &decision);
    let recorded = record(
        daemon,
        delivery,
        &decision,
        summary,
        held.clone(),
        outcome_json,
    )
    .await;
    if let Err(e) = recorded {
        tracing::error!("cannot record the LMTP decision for <{rcpt}>: {e}");
        // Not indexed, so not releasable: refuse rather than hold a message
        // nobody can see. (A copy already delivered keeps its 250: a
        // refusal now would make the MTA deliver it twice.)
        if let (Outcome::Quarantined(_), Some(entry)) = (&outcome, held) {
            if let Some(hold) = entry.lmtp {
                let _ = std::fs::remove_file(hold.file);
            }
            let failed = failure_decision(daemon);
            conn.reply_with(&failed.refusal());
            return failed;
        }
    }
    reply_outcome(daemon, conn, rcpt, outcome);
    decision
}

/// Adds one recipient's delivery outcome to the milter's decision object:
/// into its entry of `recipients`, or as a new one (a recipient a rule
/// added).
fn add_delivery(
    decision: &mut serde_json::Value,
    outcome: serde_json::Map<String, serde_json::Value>,
) {
    let rcpt = outcome
        .get("recipient")
        .and_then(|r| r.as_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let Some(list) = decision
        .get_mut("recipients")
        .and_then(|r| r.as_array_mut())
    else {
        return;
    };
    let same = |r: &serde_json::Value| {
        r["recipient"]
            .as_str()
            .is_some_and(|a| a.eq_ignore_ascii_case(&rcpt))
    };
    match list.iter_mut().find(|r| same(r)) {
        Some(serde_json::Value::Object(entry)) => entry.extend(outcome),
        _ => list.push(serde_json::Value::Object(outcome)),
    }
}

impl Outcome {
    /// `recipient` and `delivery` (`delivered`, `quarantined` with
    /// `quarantine_id`, `refused` with `reply`, `discarded`), with the
    /// `folder` and `flags` of a stored copy.
    fn json(&self, rcpt: &str, decision: &Decision) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        out.insert("recipient".into(), rcpt.into());
        let stored = |out: &mut serde_json::Map<String, serde_json::Value>| {
            out.insert("folder".into(), decision.folder.clone().into());
            out.insert("flags".into(), decision_flags(decision).into());
        };
        match self {
            Outcome::Delivered => {
                out.insert("delivery".into(), "delivered".into());
                stored(&mut out);
            }
            Outcome::Quarantined(id) => {
                out.insert("delivery".into(), "quarantined".into());
                out.insert("quarantine_id".into(), id.clone().into());
                stored(&mut out);
            }
            Outcome::NotDelivered => {
                out.insert("delivery".into(), "discarded".into());
            }
            Outcome::Refused(reply) => {
                out.insert("delivery".into(), "refused".into());
                out.insert(
                    "reply".into(),
                    serde_json::json!({"code": reply.code, "status": reply.status, "text": reply.text}),
                );
            }
        }
        out
    }
}

/// Counts and sends a recipient's reply.
fn reply_outcome<R, W>(daemon: &Daemon, conn: &mut Conn<R, W>, rcpt: &str, outcome: Outcome)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    daemon.metrics.lmtp_delivered(match outcome {
        Outcome::Delivered => "delivered",
        Outcome::Quarantined(_) => "quarantined",
        Outcome::NotDelivered => "not_delivered",
        Outcome::Refused(_) => "refused",
    });
    match outcome {
        Outcome::Delivered => conn.reply(250, "2.0.0", &format!("<{rcpt}> delivered")),
        Outcome::Quarantined(id) => {
            conn.reply(250, "2.0.0", &format!("<{rcpt}> quarantined as {id}"));
        }
        Outcome::NotDelivered => {
            conn.reply(250, "2.0.0", &format!("<{rcpt}> accepted, not delivered"));
        }
        Outcome::Refused(reply) => conn.reply_with(&reply),
    }
}

/// Queues one recipient's side effects in the outbox, flushed.
async fn queue_side_effects(
    daemon: &Arc<Daemon>,
    delivery: &Delivery<'_>,
    rcpt: &str,
    decision: &Decision,
    outcome: &Outcome,
) -> Result<(), String> {
    let (Some(origin), Some((wire, recipients))) = (delivery.origin, delivery.message) else {
        return Ok(());
    };
    let accepted = !matches!(outcome, Outcome::Refused(_));
    let daemon = daemon.clone();
    let origin = origin.clone();
    let decision = decision.clone();
    let wire = wire.clone();
    let recipients = recipients.clone();
    let rcpt = rcpt.to_string();
    let queued = tokio::task::spawn_blocking(move || {
        let copy = || rewrite::delivered_copy(&wire, &decision, &recipients);
        let added = outbox::enqueue(&daemon, &origin, &decision, &rcpt, accepted, Some(&copy))?;
        if added > 0 {
            // Durable before the reply (the audit entry below
            // flushes too, but a failure there must not lose these).
            daemon.store.flush()?;
            daemon.outbox_wake.notify_one();
        }
        anyhow::Ok(())
    })
    .await;
    match queued {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Records one recipient's decision: its own audit entry, or, for a
/// decision the milter stamped, only the quarantine index entry of a held
/// copy (under the milter's audit entry), flushed.
async fn record(
    daemon: &Arc<Daemon>,
    delivery: &Delivery<'_>,
    decision: &Decision,
    summary: MessageSummary,
    held: Option<QuarantineEntry>,
    outcome: serde_json::Map<String, serde_json::Value>,
) -> Result<(), String> {
    let daemon = daemon.clone();
    let version = delivery.version;
    let decision = decision.clone();
    let stamped = delivery.stamped.clone();
    let received = delivery.received.clone();
    let job = tokio::task::spawn_blocking(move || {
        if let Some(stamped) = stamped {
            tracing::debug!(
                "LMTP: {} as the milter decided (queue id {}, audit entry {}, ruleset {})",
                serde_json::Value::Object(outcome.clone()),
                stamped.queue_id,
                stamped.audit_id,
                stamped.version,
            );
            if let Some(mut entry) = held {
                entry.audit_id = stamped.audit_id;
                daemon.store.put_quarantine(&entry)?;
            }
            daemon
                .store
                .amend_audit(stamped.audit_id, |d| add_delivery(d, outcome))?;
            return Ok(());
        }
        // `duplicate()` remembers what a delivered (not refused) copy's
        // decision marked.
        if outcome.get("delivery").and_then(|d| d.as_str()) != Some("refused") {
            let rcpt = outcome
                .get("recipient")
                .and_then(|r| r.as_str())
                .unwrap_or("");
            daemon
                .store
                .record_decision_duplicates(rcpt, &decision, unix_now())?;
        }
        let mut extra = outcome;
        extra.insert("from".into(), summary.from.clone().into());
        extra.insert("client".into(), client_json(&received.client));
        extra.insert("size".into(), summary.size.into());
        let record = Record {
            source: Source::Lmtp,
            queue_id: &received.queue_id,
            version,
            summary: &summary,
            extra,
            lmtp_held: held,
        };
        daemon.record(record, &decision).map(|_| ())
    });
    match job.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Where a copy of a decision filing into `folder` goes, under the
/// configured `[lmtp] utf8_folders`.
fn target(daemon: &Daemon, folder: Option<&str>) -> folder::Target {
    let utf8 = daemon
        .config()
        .lmtp
        .as_ref()
        .is_some_and(|l| l.utf8_folders);
    folder::resolve(folder, utf8)
}

/// The `[lmtp] on_error` decision after a failed delivery (`accept` cannot
/// claim a copy that was not stored, so it is a tempfail here).
fn failure_decision(daemon: &Daemon) -> Decision {
    let policy = match daemon
        .config()
        .lmtp
        .as_ref()
        .map_or(OnError::Tempfail, |l| l.on_error)
    {
        OnError::Accept => OnError::Tempfail,
        other => other,
    };
    stages::policy_decision(policy, Stage::Body, PolicyCause::Error)
}

/// Where a copy went.
enum Stored {
    /// Into the Maildir: the file.
    Delivered(PathBuf),
    /// Into the quarantine: the index entry to record.
    Held(Box<QuarantineEntry>),
}

/// The delivery index key of one recipient's copy: the digest of the
/// message as received (`Origin::digest`), the lower-cased recipient, and
/// the target folder's directory. The directory, not the folder's name, so
/// that `INBOX` and no folder are one, and two spellings of a recipient
/// that the `[lmtp] maildir` pattern keeps apart (its local part is
/// case-sensitive) are two copies. The decision's flags and header edits
/// are not part of it: a copy the MTA sends again is the same copy even if
/// the rules changed meanwhile.
fn delivery_key(message_digest: &str, rcpt: &str, dir: &Path) -> String {
    outbox::digest(&[
        b"lmtp-delivery",
        message_digest.as_bytes(),
        rcpt.trim().to_ascii_lowercase().as_bytes(),
        dir.as_os_str().as_encoded_bytes(),
    ])
}

/// Delivers `content` into the Maildir folder directory `folder` (see
/// `maildir::folder_dir`), once per message, recipient and
/// folder (see the module documentation and [`delivery_key`]): a copy
/// already delivered is found and returned instead; otherwise a new name
/// is recorded in the store (flushed) before the file is written.
fn deliver_once(
    daemon: &Daemon,
    message_digest: &str,
    rcpt: &str,
    mailbox: &Path,
    folder: Option<&str>,
    flags: &[String],
    content: &[u8],
) -> anyhow::Result<PathBuf> {
    let dir = maildir::folder_dir(mailbox, folder)?;
    let key = &delivery_key(message_digest, rcpt, &dir);
    if let Some(record) = daemon.store.delivery(key)?
        && let Some(path) =
            maildir::find_delivered(&record.dir, &record.base).with_context(|| {
                format!(
                    "cannot look for {} in {}",
                    record.base,
                    record.dir.display()
                )
            })?
    {
        tracing::info!(
            "<{rcpt}>: the same message was delivered already as {}; not delivered again",
            path.display()
        );
        return Ok(path);
    }
    let base = maildir::new_base_name(content.len());
    let record = DeliveryRecord {
        dir,
        base: base.clone(),
        time: unix_now(),
    };
    daemon.store.put_delivery(key, &record)?;
    Ok(maildir::deliver_as(mailbox, folder, flags, content, &base)?)
}

/// Stores one recipient's copy: into its Maildir (once per message when
/// the digest of the message as received is known: see [`deliver_once`]),
/// or (quarantine) into the quarantine directory, returning the index
/// entry to record. The copy gets `Return-Path:` and `Delivered-To:` on
/// top, as Dovecot's LMTP adds them, and the decision's header edits
/// unless the milter made them already.
async fn store_copy(
    daemon: &Arc<Daemon>,
    delivery: &Delivery<'_>,
    decision: &Decision,
    rcpt: &str,
    summary: &MessageSummary,
) -> anyhow::Result<Stored> {
    let (wire, recipients) = delivery.message.context("the message was not kept")?;
    let edited = if delivery.stamped.as_ref().is_some_and(|s| s.edits_applied) {
        wire.to_vec()
    } else {
        // Rewriting copies the whole message: off the async threads.
        let (wire, decision, recipients) = (wire.clone(), decision.clone(), recipients.to_vec());
        tokio::task::spawn_blocking(move || rewrite::delivered_copy(&wire, &decision, &recipients))
            .await
            .context("the copy task failed")?
    };
    let mut copy = trace_fields(&summary.from, rcpt);
    copy.extend_from_slice(&edited);
    let message_digest = delivery.origin.map(|o| o.digest.clone());
    // The held copy keeps the folder's name: it is mapped when released.
    let folder = decision.folder.clone();
    let dir_name = target(daemon, folder.as_deref()).dir;
    let flags = decision_flags(decision);
    let daemon = daemon.clone();
    let rcpt = rcpt.to_string();
    let quarantine = decision.verdict == Verdict::Quarantine;
    let rule = decision.decided_by.clone().unwrap_or_default();
    let reason = decision.quarantine_reason.clone().unwrap_or_default();
    let summary = summary.clone();
    tokio::task::spawn_blocking(move || {
        let config = daemon.config();
        let lmtp = config.lmtp.as_ref().context("[lmtp] is not configured")?;
        // The folder is checked before anything is written, also for a
        // quarantined copy, so a release cannot fail on it later.
        let mailbox = maildir::mailbox_dir(&lmtp.maildir, &rcpt, address_case(lmtp))?;
        maildir::folder_dir(&mailbox, dir_name.as_deref())?;
        if !quarantine {
            let content = maildir::to_lf(&copy);
            let path = match &message_digest {
                Some(digest) => deliver_once(
                    &daemon,
                    digest,
                    &rcpt,
                    &mailbox,
                    dir_name.as_deref(),
                    &flags,
                    &content,
                )?,
                None => maildir::deliver(&mailbox, dir_name.as_deref(), &flags, &content)?,
            };
            return Ok(Stored::Delivered(path));
        }
        let id = format!("L{}", daemon.store.generate_id()?);
        let file = write_held(&daemon.config().state_dir, &id, &copy)?;
        Ok(Stored::Held(Box::new(QuarantineEntry {
            queue_id: id,
            audit_id: 0,
            rule,
            reason,
            time: unix_now(),
            summary,
            lmtp: Some(LmtpHold {
                recipient: rcpt,
                file,
                folder,
                flags,
            }),
            gone: None,
        })))
    })
    .await
    .context("the delivery task failed")?
}

/// `Return-Path:` (the envelope sender) and `Delivered-To:` (the
/// recipient) as a delivery agent puts them on top of a copy. CR and LF in
/// an address (which the LMTP parser does not let through) would be
/// header injection: they become spaces.
fn trace_fields(from: &str, rcpt: &str) -> Vec<u8> {
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    let from = clean(&stages::strip_brackets(from));
    format!("Return-Path: <{from}>\r\nDelivered-To: {}\r\n", clean(rcpt)).into_bytes()
}

/// The directory of quarantined LMTP copies.
fn quarantine_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("quarantine")
}

/// How old a quarantine file that no index entry names must be before it
/// is deleted: younger ones may belong to a delivery in flight (the file
/// is written before its entry).
const ORPHAN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Deletes the files in `state_dir/quarantine` that no quarantine entry
/// names (left by a crash between the file and its entry, or by a
/// release cut short) once they are older than [`ORPHAN_AGE`].
pub fn prune_orphaned_copies(daemon: &Daemon) {
    let dir = quarantine_dir(&daemon.config().state_dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let named: std::collections::HashSet<PathBuf> = daemon
        .store
        .quarantine_entries()
        .into_iter()
        .filter_map(|e| e.lmtp.map(|h| h.file))
        .collect();
    for entry in entries.flatten() {
        let path = entry.path();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= ORPHAN_AGE));
        if old && !named.contains(&path) {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!("retention: deleted the orphaned {}", path.display()),
                Err(e) => tracing::warn!("retention: cannot delete {}: {e}", path.display()),
            }
        }
    }
}

/// Writes a quarantined copy durably (temporary name, fsync, rename, fsync
/// of the directory); returns its path.
fn write_held(state_dir: &Path, id: &str, copy: &[u8]) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    let dir = quarantine_dir(state_dir);
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::File::open(state_dir)?.sync_all()?;
    }
    let tmp = dir.join(format!("{id}.tmp"));
    let file = dir.join(format!("{id}.eml"));
    // Held mail is for the operator alone, whatever the process umask.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(copy)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &file)?;
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(file)
}

/// Releases a quarantined LMTP copy: delivers it where its decision said
/// (folder, flags; headers were edited when it was held), then forgets it.
/// Returns the delivered file.
pub fn release_held(daemon: &Daemon, entry: &QuarantineEntry) -> anyhow::Result<PathBuf> {
    let hold = entry
        .lmtp
        .as_ref()
        .context("not an LMTP quarantine entry")?;
    let config = daemon.config();
    let lmtp = config
        .lmtp
        .as_ref()
        .context("[lmtp] is not configured: cannot deliver")?;
    let copy = std::fs::read(&hold.file)
        .with_context(|| format!("cannot read the held copy {}", hold.file.display()))?;
    let target = target(daemon, hold.folder.as_deref());
    if let Some(warning) = &target.warning {
        tracing::warn!(
            "quarantine: {} <{}>: {warning}",
            entry.queue_id,
            hold.recipient
        );
    }
    let mailbox = maildir::mailbox_dir(&lmtp.maildir, &hold.recipient, address_case(lmtp))?;
    let path = maildir::deliver(
        &mailbox,
        target.dir.as_deref(),
        &hold.flags,
        &maildir::to_lf(&copy),
    )?;
    // Delivered first: a crash now leaves it listed (a second release would
    // deliver it again) rather than lost.
    daemon.store.remove_quarantine(&entry.queue_id)?;
    let _ = std::fs::remove_file(&hold.file);
    tracing::info!(
        "quarantine: {} released to <{}> ({})",
        entry.queue_id,
        hold.recipient,
        path.display()
    );
    Ok(path)
}

/// How `[lmtp]` fills the Maildir pattern from an address.
fn address_case(lmtp: &crate::config::LmtpConfig) -> maildir::AddressCase {
    maildir::AddressCase {
        lowercase_local: lmtp.lowercase_local,
    }
}

/// Deletes a quarantined LMTP copy: index entry, then file.
pub fn delete_held(daemon: &Daemon, entry: &QuarantineEntry) -> anyhow::Result<()> {
    let hold = entry
        .lmtp
        .as_ref()
        .context("not an LMTP quarantine entry")?;
    daemon.store.remove_quarantine(&entry.queue_id)?;
    match std::fs::remove_file(&hold.file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove {}: {e}", hold.file.display()),
    }
    tracing::info!("quarantine: {} deleted", entry.queue_id);
    Ok(())
}

/// A line read from the peer without its `\n` or `\r\n`.
fn without_line_end(line: &[u8]) -> &[u8] {
    match line.strip_suffix(b"\n") {
        Some(l) => l.strip_suffix(b"\r").unwrap_or(l),
        None => line,
    }
}
