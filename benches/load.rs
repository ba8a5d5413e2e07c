//! Drives a milter server with many concurrent sessions over loopback, the
//! way an MTA does, and measures what it adds to each message: shared by the
//! `milter-load` tool and the `milter` criterion benchmark.
//!
//! Each session is one milter connection (negotiate, connect, HELO) that
//! carries `per_connection` messages (MAIL, RCPT, DATA, headers, body,
//! end of message) before it quits and a new one is opened: Postfix opens
//! one milter connection per SMTP session, so the default is one message
//! per connection and the set-up is part of every message's cost.
//!
//! With [`Plan::lmtp`] each accepted message is then delivered over LMTP,
//! as Postfix's `lmtp` client would after the milter: with the milter's
//! header edits applied (so a `weir serve` running both carries out its
//! stamp), or, with [`Delivery::LmtpOnly`], without the milter at all (LMTP
//! evaluates, as when Weir is the delivery agent alone).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use weir_serve::milter_client::{Client, Endpoint, Mail, Reply};

/// What to send, where and how.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The milter server (TCP or a Unix socket).
    pub addr: Endpoint,
    /// How many sessions run at once.
    pub sessions: usize,
    /// How many messages in all.
    pub messages: usize,
    /// How many messages each milter connection carries (at least 1).
    pub per_connection: usize,
    /// Which message to send first (the run goes on round-robin from it),
    /// so that short runs in a row do not all send the same few messages.
    pub first: usize,
    /// Whether and how each message is delivered over LMTP afterwards.
    pub lmtp: Option<(SocketAddr, Delivery)>,
}

/// Which stages a message goes through when an LMTP server is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The milter, then LMTP with the milter's edits (the stamp).
    AfterMilter,
    /// LMTP alone: no milter session.
    LmtpOnly,
}

/// The timings of one message, as the MTA sees them.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Connecting, negotiating, connect and HELO, when this message opened
    /// the connection (else zero).
    pub setup: Duration,
    /// MAIL FROM to the final reply.
    pub transaction: Duration,
    /// The LMTP delivery: connecting to the last recipient's reply (zero
    /// without LMTP).
    pub delivery: Duration,
}

impl Timing {
    /// The latency Weir adds to the message: the milter's share of set-up,
    /// its transaction and the delivery.
    pub fn total(&self) -> Duration {
        self.setup + self.transaction + self.delivery
    }
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Report {
    /// Wall time from the first connection to the last reply.
    pub elapsed: Duration,
    /// One entry per message, in no particular order.
    pub timings: Vec<Timing>,
    /// How many messages ended with each final reply (`accept`,
    /// `tempfail`, `550 5.7.1 …`), so a figure shows what was measured.
    pub replies: BTreeMap<String, usize>,
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

/// The messages to send: the raw messages `raw` as milter transactions,
/// the envelope sender taken from the `From:` address (a generic one when
/// there is none), `recipients` recipients (`user@example.com`, then
/// `user1@…`), and queue ids `L0`, `L1`, … .
pub fn mails(raw: &[Vec<u8>], recipients: usize) -> Vec<Mail> {
    let to: Vec<String> = (0..recipients.max(1))
        .map(|i| match i {
            0 => "user@example.com".to_string(),
            i => format!("user{i}@example.com"),
        })
        .collect();
    raw.iter()
        .enumerate()
        .map(|(i, bytes)| {
            let mail = Mail {
                client: Some(SocketAddr::from(([192, 0, 2, 1], 40000))),
                helo: "mx.sender.test".into(),
                to: to.clone(),
                queue_id: format!("L{i:X}"),
                ..Mail::default()
            }
            .with_raw(bytes);
            let from = mail
                .headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("from"))
                .and_then(|(_, value)| address(value))
                .unwrap_or_else(|| "sender@example.net".into());
            Mail { from, ..mail }
        })
        .collect()
}

/// The address of a `From:` value (`"Name" <a@b>` or `a@b`).
fn address(value: &str) -> Option<String> {
    let inner = match (value.rfind('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value.trim(),
    };
    inner.contains('@').then(|| inner.trim().to_string())
}

/// A short name for a final reply.
fn reply_name(reply: &Reply) -> String {
    match reply {
        Reply::Accept => "accept".into(),
        Reply::Continue => "continue".into(),
        Reply::Reject => "reject".into(),
        Reply::Tempfail => "tempfail".into(),
        Reply::Discard => "discard".into(),
        Reply::Skip => "skip".into(),
        Reply::Code(text) => text.split_whitespace().next().unwrap_or("code").into(),
        Reply::Other(byte) => format!("command {:?}", char::from(*byte)),
    }
}

/// Sends `plan.messages` messages, cycling through `mails`, over
/// `plan.sessions` concurrent sessions. Any connection or protocol error
/// ends the run with that error: a load figure with lost messages would
/// mean nothing.
pub async fn run(plan: &Plan, mails: Arc<Vec<Mail>>) -> std::io::Result<Report> {
    if mails.is_empty() {
        return Err(std::io::Error::other("no messages to send"));
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..plan.sessions.max(1) {
        let (next, mails, plan) = (next.clone(), mails.clone(), plan.clone());
        tasks.spawn(async move { session_loop(&plan, &next, &mails).await });
    }
    let mut report = Report::default();
    while let Some(joined) = tasks.join_next().await {
        let (timings, replies) = joined.map_err(std::io::Error::other)??;
        report.timings.extend(timings);
        for (name, n) in replies {
            *report.replies.entry(name).or_default() += n;
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

type SessionResult = (Vec<Timing>, BTreeMap<String, usize>);

/// One concurrent sender: takes message numbers until all are taken.
async fn session_loop(
    plan: &Plan,
    next: &AtomicUsize,
    mails: &[Mail],
) -> std::io::Result<SessionResult> {
    let mut timings = Vec::new();
    let mut replies = BTreeMap::new();
    let mut open: Option<(Client, usize)> = None;
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= plan.messages {
            break;
        }
        let mail = &mails[(plan.first + n) % mails.len()];
        if let Some((addr, Delivery::LmtpOnly)) = plan.lmtp {
            let begin = Instant::now();
            let reply = lmtp::deliver(addr, mail, &[]).await?;
            let delivery = begin.elapsed();
            timings.push(Timing {
                setup: Duration::ZERO,
                transaction: Duration::ZERO,
                delivery,
            });
            *replies.entry(reply).or_default() += 1;
            continue;
        }
        let begin = Instant::now();
        let (mut client, carried) = match open.take() {
            Some(open) => open,
            None => {
                let mut client = Client::connect_to(&plan.addr, 0x1ff).await?;
                let hello = client.hello(mail).await?;
                if hello != Reply::Continue {
                    return Err(std::io::Error::other(format!(
                        "the filter refused the connection: {hello:?}"
                    )));
                }
                (client, 0)
            }
        };
        let setup = begin.elapsed();
        let transaction_begin = Instant::now();
        let outcome = client.message(mail).await?;
        let transaction = transaction_begin.elapsed();
        let mut delivery = Duration::ZERO;
        let mut reply = reply_name(&outcome.reply);
        if let (Some((addr, _)), Reply::Accept | Reply::Continue) = (plan.lmtp, &outcome.reply) {
            let begin = Instant::now();
            reply = lmtp::deliver(addr, mail, &outcome.edits).await?;
            delivery = begin.elapsed();
        }
        timings.push(Timing {
            setup,
            transaction,
            delivery,
        });
        *replies.entry(reply).or_default() += 1;
        if carried + 1 >= plan.per_connection.max(1) {
            client.quit().await?;
        } else {
            open = Some((client, carried + 1));
        }
    }
    if let Some((client, _)) = open {
        client.quit().await?;
    }
    Ok((timings, replies))
}

/// The LMTP side: one delivery per message, as Postfix's `lmtp` client
/// makes it.
mod lmtp {
    use std::net::SocketAddr;

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpStream;
    use weir_serve::milter_client::{Edit, Mail};

    /// Delivers `mail` with the milter's `edits` applied; the reply codes
    /// of its recipients joined (`250` or `250+451`, say).
    pub async fn deliver(addr: SocketAddr, mail: &Mail, edits: &[Edit]) -> std::io::Result<String> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        expect(&mut read, "220").await?;
        let mut envelope = format!("LHLO load.test\r\nMAIL FROM:<{}>\r\n", mail.from);
        for rcpt in &mail.to {
            envelope.push_str(&format!("RCPT TO:<{rcpt}>\r\n"));
        }
        envelope.push_str("DATA\r\n");
        // Pipelined, as Postfix's lmtp client sends it.
        write.write_all(envelope.as_bytes()).await?;
        for want in ["250", "250"]
            .into_iter()
            .chain(mail.to.iter().map(|_| "250"))
        {
            expect(&mut read, want).await?;
        }
        expect(&mut read, "354").await?;
        write.write_all(&data(mail, edits)).await?;
        let mut codes = Vec::new();
        for _ in &mail.to {
            codes.push(reply(&mut read).await?);
        }
        write.write_all(b"QUIT\r\n").await?;
        codes.dedup();
        Ok(codes.join("+"))
    }

    /// The message as delivered: headers with the edits applied, the
    /// body, dot-stuffed and ended by the lone dot.
    fn data(mail: &Mail, edits: &[Edit]) -> Vec<u8> {
        let mut headers = mail.headers.clone();
        for edit in edits {
            match edit {
                Edit::AddHeader(name, value) => headers.push((name.clone(), value.clone())),
                Edit::InsertHeader(index, name, value) => {
                    let at = (*index as usize).min(headers.len());
                    headers.insert(at, (name.clone(), value.clone()));
                }
                Edit::ChangeHeader(index, name, value) => change(&mut headers, *index, name, value),
                _ => {}
            }
        }
        let mut out = Vec::new();
        for (name, value) in &headers {
            out.extend_from_slice(
                format!("{name}: {}\r\n", value.replace('\n', "\r\n")).as_bytes(),
            );
        }
        out.extend_from_slice(b"\r\n");
        for line in mail.body.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    /// SMFIR_CHGHEADER: occurrence `index` (1-based) of `name` changed,
    /// or deleted when `value` is empty.
    fn change(headers: &mut Vec<(String, String)>, index: u32, name: &str, value: &str) {
        let at = headers
            .iter()
            .enumerate()
            .filter(|(_, (n, _))| n.eq_ignore_ascii_case(name))
            .nth((index as usize).saturating_sub(1))
            .map(|(i, _)| i);
        match (at, value.is_empty()) {
            (Some(i), true) => {
                headers.remove(i);
            }
            (Some(i), false) => headers[i].1 = value.to_string(),
            (None, _) => {}
        }
    }

    async fn reply<R: AsyncBufReadExt + Unpin>(read: &mut R) -> std::io::Result<String> {
        loop {
            let mut line = String::new();
            if read.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(line.get(..3).unwrap_or("").to_string());
            }
        }
    }

    async fn expect<R: AsyncBufReadExt + Unpin>(read: &mut R, want: &str) -> std::io::Result<()> {
        let got = reply(read).await?;
        if got == want {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "LMTP: got {got}, wanted {want}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_addresses_are_extracted() {
        assert_eq!(address("\"A B\" <a@b.test>").as_deref(), Some("a@b.test"));
        assert_eq!(address(" a@b.test ").as_deref(), Some("a@b.test"));
        assert_eq!(address("undisclosed"), None);
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let report = Report {
            elapsed: Duration::from_secs(1),
            timings: (1..=100)
                .map(|ms| Timing {
                    setup: Duration::ZERO,
                    transaction: Duration::from_millis(ms),
                    delivery: Duration::ZERO,
                })
                .collect(),
            replies: BTreeMap::new(),
        };
        assert_eq!(
            report.quantile(0.5, Timing::total),
            Duration::from_millis(50)
        );
        assert_eq!(
            report.quantile(0.99, Timing::total),
            Duration::from_millis(99)
        );
        assert_eq!(
            report.quantile(1.0, Timing::total),
            Duration::from_millis(100)
        );
        assert_eq!(report.messages_per_second(), 100.0);
    }
}
