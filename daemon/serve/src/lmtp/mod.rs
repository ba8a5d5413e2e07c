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
mod delivery;
pub mod folder;
pub mod maildir;
mod quarantine;
pub mod rewrite;

pub use quarantine::{delete_held, prune_orphaned_copies, release_held};

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use weir_compiler::{Action, Decision, EvalOptions, Reply, TakenKind, Verdict};
use weir_stdlib::{Address, Connection, Envelope, Limits, Message, Stage, Transaction};

use super::Listener;
use super::audit::{self, AuditDecision};
use super::config::OnError;
use super::outbox::{self, Origin};
use super::stages::{self, PolicyCause, StagedRates};
use super::stamp::{self, STAMP_HEADER, Stamp};
use super::state::{Daemon, LoadedRuleset, Record, Source, unix_now};
use super::store::{MessageSummary, QuarantineEntry};
use command::Command;
use delivery::{Stored, store_copy, target};

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

/// One LMTP session's state between commands.
struct Session {
    daemon: Arc<Daemon>,
    lmtp: crate::config::LmtpConfig,
    host: String,
    max_size: u64,
    client: Client,
    greeted: bool,
    envelope: Option<Pending>,
}

/// Whether a session goes on after a command.
enum Next {
    Continue,
    Close,
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
    let mut conn = Conn {
        reader: BufReader::new(reader),
        writer,
        out: Vec::new(),
        last_code: 0,
        idle_timeout: lmtp.connections.idle_timeout,
    };
    let mut session = Session {
        max_size: daemon.config().limits.max_message_size,
        daemon,
        lmtp,
        host: host_name(),
        client: Client {
            peer,
            lhlo: String::new(),
        },
        greeted: false,
        envelope: None,
    };
    conn.reply(220, "", &format!("{} Weir LMTP ready", session.host));
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
        match command::parse(without_line_end(&line)) {
            Ok(command) => {
                if let Next::Close = session.command(&mut conn, command).await? {
                    return Ok(());
                }
            }
            Err(e) => conn.reply(e.code, e.status, &e.text),
        }
    }
}

impl Session {
    /// Answers one command.
    async fn command<R, W>(
        &mut self,
        conn: &mut Conn<R, W>,
        command: Command,
    ) -> std::io::Result<Next>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        match command {
            Command::Lhlo(name) => {
                self.client.lhlo = name;
                self.greeted = true;
                self.envelope = None;
                let features = "PIPELINING\nENHANCEDSTATUSCODES\n8BITMIME";
                let text = format!("{}\n{features}\nSIZE {}", self.host, self.max_size);
                conn.reply(250, "", &text);
            }
            Command::Helo => conn.reply(500, "5.5.1", "This is LMTP: say LHLO"),
            Command::Vrfy => conn.reply(252, "2.5.2", "Cannot VRFY; send the message"),
            Command::Noop => conn.reply(250, "2.0.0", "OK"),
            Command::Rset => {
                self.envelope = None;
                conn.reply(250, "2.0.0", "OK");
            }
            Command::Quit => {
                conn.reply(221, "2.0.0", "Bye");
                conn.flush().await?;
                return Ok(Next::Close);
            }
            Command::Mail { from, size } => self.mail(conn, from, size),
            Command::Rcpt(to) => self.rcpt(conn, to),
            Command::Data => return self.data(conn).await,
        }
        Ok(Next::Continue)
    }

    fn mail<R, W>(&mut self, conn: &mut Conn<R, W>, from: String, size: Option<u64>)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let max_size = self.max_size;
        if !self.greeted {
            conn.reply(503, "5.5.1", "Send LHLO first");
        } else if self.envelope.is_some() {
            conn.reply(503, "5.5.1", "Nested MAIL command");
        } else if size.is_some_and(|s| s > max_size) {
            let text = format!("Message size exceeds the limit of {max_size} bytes");
            conn.reply(552, "5.3.4", &text);
        } else {
            self.envelope = Some(Pending {
                from,
                recipients: Vec::new(),
            });
            conn.reply(250, "2.1.0", "Sender OK");
        }
    }

    fn rcpt<R, W>(&mut self, conn: &mut Conn<R, W>, to: String)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let Some(env) = self.envelope.as_mut() else {
            conn.reply(503, "5.5.1", "Send MAIL first");
            return;
        };
        if env.recipients.len() >= MAX_RECIPIENTS {
            conn.reply(452, "4.5.3", "Too many recipients");
        } else if let Err(e) = quarantine::mailbox(&self.lmtp, &to) {
            conn.reply(550, "5.1.3", &format!("<{to}> has no mailbox here: {e}"));
        } else {
            env.recipients.push(to);
            conn.reply(250, "2.1.5", "Recipient OK");
        }
    }

    /// `DATA`: reads the message, then decides and delivers it.
    async fn data<R, W>(&mut self, conn: &mut Conn<R, W>) -> std::io::Result<Next>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let Some(env) = self.envelope.take_if(|e| !e.recipients.is_empty()) else {
            let why = if self.envelope.is_none() {
                "Send MAIL first"
            } else {
                "No valid recipients"
            };
            conn.reply(503, "5.5.1", why);
            return Ok(Next::Continue);
        };
        conn.reply(354, "", "Start mail input; end with <CRLF>.<CRLF>");
        conn.flush().await?;
        let Some(data) = read_data(conn, self.max_size).await? else {
            // The client left in the middle: nothing was accepted.
            return Ok(Next::Close);
        };
        deliver_all(&self.daemon, conn, &self.client, &env, data).await;
        Ok(Next::Continue)
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

/// A message as received, with what its decisions and records need.
struct Prepared {
    wire: Arc<Vec<u8>>,
    stamp: Option<Stamp>,
    received: Received,
    origin: Origin,
    summary: MessageSummary,
    message: Arc<Message>,
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
    let Some(prepared) = prepare(daemon, conn, envelope, data).await else {
        return;
    };
    let base = transaction(client, envelope);
    // One counter for the message: a rate key counts once however many
    // recipients evaluate it, and only when some copy was not deferred
    // (a 4xx brings the message back; its retry must not count twice).
    let mut rates = StagedRates::new(daemon.store.clone());
    let mut deferred_all = true;
    let evaluated = Delivery {
        version: loaded.version,
        summary: &prepared.summary,
        message: Some((&prepared.wire, &envelope.recipients)),
        origin: Some(&prepared.origin),
        received: &prepared.received,
        stamped: None,
    };
    let started = Instant::now();
    let mut decided = Vec::new();
    for rcpt in &envelope.recipients {
        let stamped = prepared
            .stamp
            .as_ref()
            .and_then(|s| stamped_decision(s, rcpt));
        if let Some((decision, stamped)) = stamped {
            let delivery = Delivery {
                version: stamped.version,
                stamped: Some(stamped),
                ..evaluated
            };
            finish(daemon, conn, &delivery, rcpt, decision).await;
            continue;
        }
        let message = &prepared.message;
        let (decision, back) = evaluate(daemon, &loaded, &base, message, rcpt, rates).await;
        rates = back;
        let decision = finish(daemon, conn, &evaluated, rcpt, decision).await;
        decided.push((rcpt.as_str(), decision));
        deferred_all &= (400..500).contains(&conn.last_code);
    }
    let decisions: Vec<&Decision> = decided.iter().map(|(_, d)| d).collect();
    let message = Arc::clone(&prepared.message);
    crate::autolearn::after_decisions(daemon, loaded.evaluator.ruleset(), &decisions, move || {
        Some(message)
    });
    if !decided.is_empty() && !deferred_all {
        tokio::task::spawn_blocking(move || rates.commit())
            .await
            .unwrap_or_else(|e| tracing::error!("cannot count the message's rates: {e}"));
    }
    log_line(&evaluated, &decided, started);
}

/// Reads what the decisions need from the message (stamp, trace fields,
/// origin, parsed model); `None` when it cannot be decided, after every
/// recipient was answered with the refusal the limits or `on_error` give.
async fn prepare<R, W>(
    daemon: &Arc<Daemon>,
    conn: &mut Conn<R, W>,
    envelope: &Pending,
    data: Result<Vec<u8>, ()>,
) -> Option<Prepared>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let version = daemon.current().version;
    let mut summary = MessageSummary {
        from: envelope.from.clone(),
        ..MessageSummary::default()
    };
    let Ok(wire) = data else {
        tracing::warn!("LMTP message exceeds max_message_size");
        // Permanent whatever `on_limit` says, as for `SIZE=` at MAIL: the
        // same message will never fit (RFC 5321 552).
        let decision = stages::policy_decision(OnError::Reject, Stage::Body, PolicyCause::Limit);
        let refused = Delivery::refused(version, &summary);
        refuse_all(daemon, conn, &refused, envelope, decision).await;
        return None;
    };
    let (wire, stamp) = take_stamp(daemon, wire, &envelope.from);
    let received = Received::of(&wire);
    let wire = Arc::new(wire);
    // The origin has read the headers the summary needs: no second pass.
    // Its digest reads the whole message (up to max_message_size): off the
    // async threads.
    let origin = {
        let (wire, from, recipients) = (
            wire.clone(),
            envelope.from.clone(),
            envelope.recipients.clone(),
        );
        tokio::task::spawn_blocking(move || Origin::new(&wire, &from, &recipients)).await
    };
    let Ok(origin) = origin else {
        tracing::error!("LMTP: reading the message's headers failed");
        let refused = Delivery::refused(version, &summary);
        refuse_all(daemon, conn, &refused, envelope, failure_decision(daemon)).await;
        return None;
    };
    summary.message_id = origin.message_id.clone();
    summary.subject = origin.subject.clone();
    summary.size = wire.len() as u64;
    let Some(message) = parse(daemon, &wire).await else {
        let on_limit = match daemon.config().limits.on_limit {
            // What was not kept cannot be delivered.
            OnError::Accept => OnError::Reject,
            other => other,
        };
        let decision = stages::policy_decision(on_limit, Stage::Body, PolicyCause::Limit);
        let mut refused = Delivery::refused(version, &summary);
        refused.received = &received;
        refuse_all(daemon, conn, &refused, envelope, decision).await;
        return None;
    };
    Some(Prepared {
        wire,
        stamp,
        received,
        origin,
        summary,
        message,
    })
}

/// The message model under `[limits]`, parsed off the async threads;
/// `None` (logged) when a limit is exceeded or parsing failed.
async fn parse(daemon: &Daemon, wire: &Arc<Vec<u8>>) -> Option<Arc<Message>> {
    let config = daemon.config();
    let limits = Limits {
        max_message_size: config.limits.max_message_size,
        max_headers: config.limits.max_headers,
        max_mime_depth: config.limits.max_mime_depth,
    };
    let wire = wire.clone();
    match tokio::task::spawn_blocking(move || Message::parse(&wire, &limits)).await {
        Ok(Ok(m)) => Some(Arc::new(m)),
        Ok(Err(limit)) => {
            tracing::warn!("LMTP message: {limit}");
            None
        }
        Err(e) => {
            tracing::error!("LMTP message parsing failed: {e}");
            None
        }
    }
}

/// Answers every recipient with one refusal.
async fn refuse_all<R, W>(
    daemon: &Arc<Daemon>,
    conn: &mut Conn<R, W>,
    refused: &Delivery<'_>,
    envelope: &Pending,
    decision: Decision,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    for rcpt in &envelope.recipients {
        finish(daemon, conn, refused, rcpt, decision.clone()).await;
    }
}

/// The transaction the rules see, before `recipient` is bound: the LMTP
/// client as the connection (LMTP has no SMTP client to report).
fn transaction(client: &Client, envelope: &Pending) -> Transaction {
    let (ip, port) = client.peer.unwrap_or((IpAddr::from([127, 0, 0, 1]), 0));
    Transaction {
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
        classes: Default::default(),
    }
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
        assert_eq!(r.client, "client.test (mail.client.test [192.0.2.7])");
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
    let learner = Arc::clone(daemon);
    let job = crate::evalpool::run(budget, move || {
        let mut rates = rates;
        let started = Instant::now();
        tx.message = (*message).clone();
        tx.classes = learner
            .learned
            .answers(loaded.evaluator.ruleset(), &tx.message);
        // Every recipient's keys known before evaluation, in one round
        // trip with the first recipient (the others find them read).
        let recipients = tx.envelope.to.clone();
        rates.prefetch_for(loaded.ruleset(), &mut tx, &recipients);
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
    let (outcome, held) = carry_out(daemon, delivery, rcpt, &mut decision, &summary).await;
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
    let outcome_audit = outcome.delivery(rcpt, &decision);
    let recorded = record(
        daemon,
        delivery,
        &decision,
        summary,
        held.clone(),
        outcome_audit,
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

/// Stores the copy as `decision` says (or not, for a refusal or a copy
/// the rules dropped); a failure to store turns `decision` into the
/// `on_error` refusal. Returns the outcome and, for a held copy, its
/// quarantine entry.
async fn carry_out(
    daemon: &Arc<Daemon>,
    delivery: &Delivery<'_>,
    rcpt: &str,
    decision: &mut Decision,
    summary: &MessageSummary,
) -> (Outcome, Option<QuarantineEntry>) {
    let mut held = None;
    let outcome = match (decision.verdict, delivery.message) {
        (Verdict::Reject | Verdict::Tempfail, _) | (_, None) => {
            Outcome::Refused(decision.refusal())
        }
        (Verdict::Discard, _) => Outcome::NotDelivered,
        (_, Some(_)) if drops_local_copy(decision, rcpt) => Outcome::NotDelivered,
        (verdict, Some(_)) => {
            if let Some(warning) = target(daemon, decision.folder.as_deref()).warning {
                tracing::warn!("<{rcpt}>: {warning}");
                decision.warnings.push(warning);
            }
            let stored = store_copy(daemon, delivery, decision, rcpt, summary).await;
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
                    *decision = failure_decision(daemon);
                    Outcome::Refused(decision.refusal())
                }
            }
        }
    };
    (outcome, held)
}

impl Outcome {
    /// What delivery made of `rcpt`'s copy, for the audit entry:
    /// `delivered` and `quarantined` (with `quarantine_id`) with the
    /// copy's `folder` and `flags`, `refused` with its `reply`,
    /// `discarded`.
    fn delivery(&self, rcpt: &str, decision: &Decision) -> audit::Delivery {
        let stored = |delivery: &str, quarantine_id: Option<String>| audit::Delivery {
            recipient: rcpt.to_string(),
            delivery: delivery.to_string(),
            folder: decision.folder.clone(),
            flags: Some(audit::flags(decision)),
            quarantine_id,
            reply: None,
        };
        match self {
            Outcome::Delivered => stored("delivered", None),
            Outcome::Quarantined(id) => stored("quarantined", Some(id.clone())),
            Outcome::NotDelivered => audit::Delivery {
                recipient: rcpt.to_string(),
                delivery: "discarded".into(),
                ..audit::Delivery::default()
            },
            Outcome::Refused(reply) => audit::Delivery {
                recipient: rcpt.to_string(),
                delivery: "refused".into(),
                reply: Some(reply.into()),
                ..audit::Delivery::default()
            },
        }
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
    outcome: audit::Delivery,
) -> Result<(), String> {
    let daemon = daemon.clone();
    let version = delivery.version;
    let decision = decision.clone();
    let stamped = delivery.stamped.clone();
    let received = delivery.received.clone();
    let bytes = delivery
        .message
        .filter(|_| daemon.keeps_messages())
        .map(|(bytes, _)| bytes.clone());
    let job = tokio::task::spawn_blocking(move || {
        if let Some(stamped) = stamped {
            tracing::debug!(
                "LMTP: <{}> {} as the milter decided (queue id {}, audit entry {}, ruleset {})",
                outcome.recipient,
                outcome.delivery,
                stamped.queue_id,
                stamped.audit_id,
                stamped.version,
            );
            if let Some(mut entry) = held {
                entry.audit_id = stamped.audit_id;
                daemon.store.put_quarantine(&entry)?;
            }
            daemon.store.amend_audit(stamped.audit_id, |d| {
                if let Err(e) = audit::add_delivery(d, &outcome) {
                    tracing::error!("audit entry {}: {e}", stamped.audit_id);
                }
            })?;
            return Ok(());
        }
        // `duplicate()` remembers what a delivered (not refused) copy's
        // decision marked.
        if outcome.delivery != "refused" {
            daemon
                .store
                .record_decision_duplicates(&outcome.recipient, &decision, unix_now())?;
        }
        let audit = AuditDecision {
            client: audit::Client::from_received(&received.client),
            size: summary.size,
            ..AuditDecision::new(&decision, &summary.from)
        }
        .with_delivery(outcome);
        let record = Record {
            source: Source::Lmtp,
            queue_id: &received.queue_id,
            version,
            summary: &summary,
            audit,
            lmtp_held: held,
            bytes,
        };
        daemon.record(record, &decision).map(|_| ())
    });
    match job.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(e) => Err(e.to_string()),
    }
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

/// A line read from the peer without its `\n` or `\r\n`.
fn without_line_end(line: &[u8]) -> &[u8] {
    match line.strip_suffix(b"\n") {
        Some(l) => l.strip_suffix(b"\r").unwrap_or(l),
        None => line,
    }
}
