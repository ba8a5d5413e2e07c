//! Drives a milter server with many concurrent sessions over loopback, the
//! way an MTA does, and measures what it adds to each message: shared by the
//! `milter-load` tool and the `milter` criterion benchmark.
//!
//! Each session is one milter connection (negotiate, connect, HELO) that
//! carries `per_connection` messages (MAIL, RCPT, DATA, headers, body,
//! end of message) before it quits and a new one is opened: Postfix opens
//! one milter connection per SMTP session, so the default is one message
//! per connection and the set-up is part of every message's cost.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use weir_serve::milter_client::{Client, Mail, Reply};

/// What to send, where and how.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The milter server.
    pub addr: SocketAddr,
    /// How many sessions run at once.
    pub sessions: usize,
    /// How many messages in all.
    pub messages: usize,
    /// How many messages each milter connection carries (at least 1).
    pub per_connection: usize,
    /// Which message to send first (the run goes on round-robin from it),
    /// so that short runs in a row do not all send the same few messages.
    pub first: usize,
}

/// The timings of one message, as the MTA sees them.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Connecting, negotiating, connect and HELO, when this message opened
    /// the connection (else zero).
    pub setup: Duration,
    /// MAIL FROM to the final reply.
    pub transaction: Duration,
}

impl Timing {
    /// The latency the milter adds to the message: its share of set-up and
    /// its transaction.
    pub fn total(&self) -> Duration {
        self.setup + self.transaction
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
        self.timings.len() as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// The `q` quantile (0.0 to 1.0, nearest rank) of `what` over every
    /// message; zero when nothing was sent.
    pub fn quantile(&self, q: f64, what: impl Fn(&Timing) -> Duration) -> Duration {
        let mut values: Vec<Duration> = self.timings.iter().map(what).collect();
        if values.is_empty() {
            return Duration::ZERO;
        }
        values.sort_unstable();
        let rank = (q * values.len() as f64).ceil() as usize;
        values[rank.clamp(1, values.len()) - 1]
    }
}

/// The messages to send: the raw messages `raw` as milter transactions,
/// the envelope sender taken from the `From:` address (a generic one when
/// there is none), one recipient, and queue ids `L0`, `L1`, … .
pub fn mails(raw: &[Vec<u8>]) -> Vec<Mail> {
    raw.iter()
        .enumerate()
        .map(|(i, bytes)| {
            let mail = Mail {
                client: Some(SocketAddr::from(([192, 0, 2, 1], 40000))),
                helo: "mx.sender.test".into(),
                to: vec!["user@example.com".into()],
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
        let begin = Instant::now();
        let (mut client, carried) = match open.take() {
            Some(open) => open,
            None => {
                let mut client = Client::connect(plan.addr).await?;
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
        timings.push(Timing { setup, transaction });
        *replies.entry(reply_name(&outcome.reply)).or_default() += 1;
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
