//! Drives an SMTP server (a private Postfix on loopback, with or without a
//! milter) with many concurrent sessions and measures each message as a
//! sending MTA sees it: shared by the `smtp-load` tool and
//! `benches/peers/milter.sh`.
//!
//! Each session is one SMTP connection (EHLO) that carries `per_connection`
//! messages (MAIL, RCPT and DATA pipelined, as Postfix's `smtp` client
//! sends them when the server offers PIPELINING; then the message) before
//! it quits and a new one is opened. The latency that matters for a milter
//! is from the end of DATA (the lone dot) to the server's `250`: Postfix's
//! `cleanup` hands the message to the milters only once it has all of it,
//! and answers the client only once every milter has answered. Any reply
//! other than the expected one ends the run with an error: a figure over
//! rejected or tempfailed messages would not measure delivery.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// How long one reply may take before the run fails (Postfix's own milter
/// timeouts are shorter, so a stuck milter shows as a `451`, not a hang).
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// One message as sent: the envelope and the DATA bytes.
#[derive(Debug, Clone)]
pub struct Message {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The content with CRLF line ends, dot-stuffed, without the final
    /// lone dot.
    pub data: Vec<u8>,
}

impl Message {
    /// The message of raw bytes `raw` (any line ends), from `from` to `to`.
    pub fn new(from: &str, to: &[String], raw: &[u8]) -> Message {
        let mut data = Vec::with_capacity(raw.len() + raw.len() / 32);
        let mut lines = raw.split(|b| *b == b'\n').peekable();
        while let Some(line) = lines.next() {
            // A last empty piece is the final line end, not a line.
            if line.is_empty() && lines.peek().is_none() {
                break;
            }
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.first() == Some(&b'.') {
                data.push(b'.');
            }
            data.extend_from_slice(line);
            data.extend_from_slice(b"\r\n");
        }
        Message {
            from: from.to_string(),
            to: to.to_vec(),
            data,
        }
    }
}

/// What to send, where and how.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The SMTP server.
    pub addr: SocketAddr,
    /// How many sessions run at once.
    pub sessions: usize,
    /// How many messages in all.
    pub messages: usize,
    /// How many messages each SMTP connection carries (at least 1).
    pub per_connection: usize,
}

/// The timings of one message, as the sending client sees them.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Connecting, the greeting and EHLO, when this message opened the
    /// connection (else zero).
    pub setup: Duration,
    /// MAIL FROM to the `354` after DATA.
    pub envelope: Duration,
    /// The lone dot ending DATA to the `250`: where the milters run.
    pub end_of_data: Duration,
}

impl Timing {
    /// The whole message: set-up, envelope, content and end of DATA.
    pub fn total(&self) -> Duration {
        self.setup + self.envelope + self.end_of_data
    }
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Report {
    /// Wall time from the first connection to the last reply.
    pub elapsed: Duration,
    /// One entry per message, in no particular order.
    pub timings: Vec<Timing>,
}

impl Report {
    /// Messages per second over the whole run.
    pub fn messages_per_second(&self) -> f64 {
        crate::per_second(self.timings.len(), self.elapsed)
    }

    /// The `q` quantile (0.0 to 1.0, nearest rank) of `what` over every
    /// message; zero when nothing was sent.
    pub fn quantile(&self, q: f64, what: impl Fn(&Timing) -> Duration) -> Duration {
        crate::quantile(&self.timings, q, what)
    }
}

/// Sends `plan.messages` messages, cycling through `messages`, over
/// `plan.sessions` concurrent sessions. The first refused, tempfailed or
/// malformed reply, or connection error, ends the run with that error.
pub async fn run(plan: &Plan, messages: Arc<Vec<Message>>) -> io::Result<Report> {
    if messages.is_empty() {
        return Err(io::Error::other("no messages to send"));
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..plan.sessions.max(1) {
        let (next, messages, plan) = (next.clone(), messages.clone(), plan.clone());
        tasks.spawn(async move { session_loop(&plan, &next, &messages).await });
    }
    let mut report = Report::default();
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(io::Error::other)? {
            Ok(timings) => report.timings.extend(timings),
            Err(e) => {
                tasks.abort_all();
                return Err(e);
            }
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// One concurrent sender: takes message numbers until all are taken.
async fn session_loop(
    plan: &Plan,
    next: &AtomicUsize,
    messages: &[Message],
) -> io::Result<Vec<Timing>> {
    let mut timings = Vec::new();
    let mut open: Option<(Session, usize)> = None;
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= plan.messages {
            break;
        }
        let begin = Instant::now();
        let (mut session, carried) = match open.take() {
            Some(open) => open,
            None => (Session::open(plan.addr).await?, 0),
        };
        let setup = begin.elapsed();
        let (envelope, end_of_data) = session.send(&messages[n % messages.len()]).await?;
        timings.push(Timing {
            setup,
            envelope,
            end_of_data,
        });
        if carried + 1 >= plan.per_connection.max(1) {
            session.quit().await?;
        } else {
            open = Some((session, carried + 1));
        }
    }
    if let Some((session, _)) = open {
        session.quit().await?;
    }
    Ok(timings)
}

/// One SMTP connection after EHLO.
struct Session {
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
}

impl Session {
    /// Connects, reads the greeting and says EHLO.
    async fn open(addr: SocketAddr) -> io::Result<Session> {
        let stream = TcpStream::connect(addr).await?;
        // One write per command group, answered at once: without it the
        // server's delayed ACK adds tens of milliseconds to small writes.
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let mut session = Session {
            read: BufReader::new(read),
            write,
        };
        session.expect("greeting", "220").await?;
        session.write.write_all(b"EHLO load.test\r\n").await?;
        session.expect("EHLO", "250").await?;
        Ok(session)
    }

    /// Sends one message; the time from MAIL to `354` and from the end of
    /// DATA to `250`.
    async fn send(&mut self, message: &Message) -> io::Result<(Duration, Duration)> {
        let begin = Instant::now();
        let mut envelope = format!("MAIL FROM:<{}>\r\n", message.from);
        for rcpt in &message.to {
            envelope.push_str(&format!("RCPT TO:<{rcpt}>\r\n"));
        }
        envelope.push_str("DATA\r\n");
        self.write.write_all(envelope.as_bytes()).await?;
        self.expect("MAIL FROM", "250").await?;
        for _ in &message.to {
            self.expect("RCPT TO", "250").await?;
        }
        self.expect("DATA", "354").await?;
        let envelope = begin.elapsed();
        self.write.write_all(&message.data).await?;
        let end = Instant::now();
        self.write.write_all(b".\r\n").await?;
        self.expect("end of DATA", "250").await?;
        Ok((envelope, end.elapsed()))
    }

    /// Says QUIT and waits for the `221`.
    async fn quit(mut self) -> io::Result<()> {
        self.write.write_all(b"QUIT\r\n").await?;
        self.expect("QUIT", "221").await
    }

    /// Reads one reply (all its lines) and checks its code.
    async fn expect(&mut self, after: &str, code: &str) -> io::Result<()> {
        let reply = tokio::time::timeout(REPLY_TIMEOUT, read_reply(&mut self.read))
            .await
            .map_err(|_| io::Error::other(format!("no reply to {after} in {REPLY_TIMEOUT:?}")))??;
        if reply.starts_with(code) {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "{after}: the server replied {:?}, expected {code}",
                reply.trim_end()
            )))
        }
    }
}

/// One SMTP reply, every line of it (`250-…` continues, `250 …` ends).
async fn read_reply<R: AsyncBufReadExt + Unpin>(read: &mut R) -> io::Result<String> {
    let mut reply = String::new();
    loop {
        let start = reply.len();
        if read.read_line(&mut reply).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the server closed the connection after {reply:?}"),
            ));
        }
        let line = &reply.as_bytes()[start..];
        if line.len() < 4 || !line[..3].iter().all(u8::is_ascii_digit) {
            return Err(io::Error::other(format!("not an SMTP reply: {reply:?}")));
        }
        if line[3] != b'-' {
            return Ok(reply);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_crlf_and_dot_stuffed() {
        let to = vec!["a@b.test".to_string()];
        let message = Message::new("s@b.test", &to, b"Subject: x\n\n.hidden\nline\r\n..\n");
        assert_eq!(
            message.data,
            b"Subject: x\r\n\r\n..hidden\r\nline\r\n...\r\n".to_vec()
        );
    }

    #[tokio::test]
    async fn replies_are_read_whole_and_garbage_is_refused() {
        let mut input: &[u8] = b"250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n";
        let reply = read_reply(&mut input).await.unwrap();
        assert_eq!(reply.lines().count(), 3);
        let mut input: &[u8] = b"hello\r\n";
        assert!(read_reply(&mut input).await.is_err());
        let mut input: &[u8] = b"";
        assert!(read_reply(&mut input).await.is_err());
    }
}
