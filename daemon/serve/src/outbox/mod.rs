//! The durable outbox: side effects that reach beyond the SMTP or LMTP
//! transaction (`notify` webhooks, `reply` auto-replies, forwarded copies
//! of `redirect`/`add_rcpt`), written to the store before the recipient's
//! reply is given and delivered afterwards by a worker.
//!
//! - [`enqueue`] turns one recipient's decision into [`OutboxItem`]s. The
//!   key of an item (its idempotency key) is a digest of the message and
//!   the effect, so the identical effect of several recipients of one
//!   message is queued once, and a message the MTA sends again does not
//!   repeat an effect already delivered.
//! - [`spawn_worker`] delivers pending items: a failure is retried after
//!   `[outbox] backoff`, doubling up to `max_backoff`, until the retry
//!   limit (`[notify.X] retries`, `[outbox] mail_retries`) dead-letters it.
//!   The key goes with every attempt (`Idempotency-Key` header, stable
//!   `Message-ID`), so a crash between sending and recording, which sends
//!   again, lets the receiver tell the copies apart.
//! - Every delivery and dead letter is an audit entry with source
//!   `outbox` (and an event on `/v1/events`).

pub mod mail;
pub mod notify;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weir_compiler::{Action, Decision, TakenKind, Verdict};

use super::metrics::OutboxOutcome;
use super::state::{AuditEntry, Daemon, Source, unix_now};

/// How many side effects are attempted at once.
const MAX_IN_FLIGHT: usize = 16;

/// The longest the worker sleeps without looking at the queue.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// What kind of side effect an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A webhook POST to a `[notify.NAME]` channel.
    Notify,
    /// An RFC 3834 auto-reply through `[relay]`.
    Reply,
    /// A forwarded copy (`redirect`, `add_rcpt`) through `[relay]`.
    Forward,
}

impl Kind {
    /// The kind's word (`notify`), also the metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Notify => "notify",
            Kind::Reply => "reply",
            Kind::Forward => "forward",
        }
    }
}

/// Where an item stands. Delivered items leave the queue (their key stays
/// in the store's `outbox_done`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting for its next attempt.
    Pending,
    /// Given up on: listed until `POST /v1/outbox/{id}/retry`.
    Dead,
}

/// What to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Payload {
    /// A JSON body POSTed to the item's channel.
    Notify {
        /// The body.
        body: Value,
    },
    /// A message for the relay.
    Mail {
        /// The envelope sender (`""`: the null reverse path).
        reverse_path: String,
        /// The envelope recipient.
        to: String,
        /// The message, CRLF line ends. Stored as raw bytes apart from
        /// the item's JSON header (`store/outbox.rs`), so never written
        /// with it; read from it only in the earlier format's records.
        #[serde(default, skip_serializing)]
        data: Vec<u8>,
    },
}

/// One side effect in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// The idempotency key, also the id in `/v1/outbox`.
    pub id: String,
    /// Notify, reply or forward.
    pub kind: Kind,
    /// The `[notify.NAME]` channel, for a notify.
    pub channel: Option<String>,
    /// The rule whose action it is.
    pub rule: String,
    /// The Message-ID of the message that caused it.
    pub message_id: String,
    /// When it was queued (seconds since the epoch).
    pub created: i64,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (milliseconds since the epoch).
    pub next_attempt_ms: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Pending or dead.
    pub state: State,
    /// The item's position in the queue, increasing (assigned by the
    /// store when it is queued): the order and cursor of `/v1/outbox`.
    #[serde(default)]
    pub seq: u64,
    /// The `[store] host` that queued it (set by a shared store; empty
    /// with sled).
    #[serde(default)]
    pub host: String,
    /// What to send.
    pub payload: Payload,
}

impl OutboxItem {
    /// The item as `/v1/outbox` shows it (without the payload's bulk).
    pub fn to_json(&self) -> Value {
        let to = match &self.payload {
            Payload::Notify { .. } => Value::Null,
            Payload::Mail { to, .. } => json!(to),
        };
        json!({
            "id": self.id,
            "seq": self.seq,
            "kind": self.kind,
            "channel": self.channel,
            "to": to,
            "rule": self.rule,
            "message_id": self.message_id,
            "state": self.state,
            "attempts": self.attempts,
            "created": crate::clock::format_time(self.created),
            "next_attempt": crate::clock::format_time(self.next_attempt_ms.div_euclid(1000)),
            "last_error": self.last_error,
            "host": self.host,
        })
    }
}

/// The current time in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// FNV-1a over 128 bits: a digest that stays the same across builds and
/// Rust versions (the idempotency key must survive an upgrade), with no
/// new dependency. Not a defence against forged collisions, which would
/// only merge two side effects of the same message.
pub fn digest(parts: &[&[u8]]) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut hash = OFFSET;
    for part in parts {
        // The length first, so ("ab","c") and ("a","bc") differ.
        for b in (part.len() as u64).to_be_bytes().iter().chain(part.iter()) {
            hash ^= u128::from(*b);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    format!("{hash:032x}")
}

/// What one received message contributes to its side effects, computed
/// once for all its recipients.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Digest of the message as received.
    pub digest: String,
    /// The envelope sender (`""` for the null sender).
    pub sender: String,
    /// Every envelope recipient of the transaction.
    pub recipients: Vec<String>,
    /// The Message-ID without angle brackets, or `""`.
    pub message_id: String,
    /// The Subject, or `""`.
    pub subject: String,
    /// The References header, or `""`.
    pub references: String,
    /// Why the message must get no auto-reply (RFC 3834 §2), if it must not.
    pub no_reply: Option<String>,
}

impl Origin {
    /// The origin of `wire` (the message as received) with its envelope.
    pub fn new(wire: &[u8], sender: &str, recipients: &[String]) -> Origin {
        let raw = super::lmtp::rewrite::RawMessage::split(wire);
        let headers = raw.header_pairs();
        let first = |name: &str| super::stages::first_header(&headers, name);
        let sender = super::stages::strip_brackets(sender);
        Origin {
            digest: digest(&[wire]),
            no_reply: mail::no_reply_reason(&sender, &headers),
            sender,
            recipients: recipients.to_vec(),
            message_id: super::stages::message_id(&headers),
            subject: first("Subject"),
            references: first("References"),
        }
    }
}

/// Queues the side effects of one recipient's decision; runs on a
/// blocking thread. `accepted` says the message was taken for this
/// recipient (delivered, quarantined, discarded, forwarded): auto-replies
/// and forwarded copies need that; a webhook goes for any verdict but
/// `tempfail` (the MTA sends the message again, and the effect then).
/// `recipient` is the recipient the decision was made for: an auto-reply
/// comes from that address, at most once per (recipient, sender) and
/// period. `copy` makes the copy to forward; `None` where the MTA forwards
/// (the milter edits the envelope recipients instead, docs/language.md
/// ("Rules and actions")). Returns
/// how many items were added; the caller flushes the store before
/// replying.
pub fn enqueue(
    daemon: &Daemon,
    origin: &Origin,
    decision: &Decision,
    recipient: &str,
    accepted: bool,
    copy: Option<&dyn Fn() -> Vec<u8>>,
) -> anyhow::Result<usize> {
    if decision.verdict == Verdict::Tempfail {
        return Ok(0);
    }
    let queue = Queue {
        daemon,
        origin,
        decision,
        now: unix_now(),
    };
    let mut added = 0;
    for taken in decision.actions.iter().filter(|t| !t.shadow) {
        let TakenKind::Action(action) = &taken.what else {
            continue;
        };
        let rule = taken.rule.as_str();
        let item = match action {
            Action::Notify {
                channel,
                with,
                template,
            } => Some(queue.notify(rule, channel, with, template.as_ref())),
            Action::Reply {
                template,
                every,
                skipped,
            } if accepted => queue.reply(rule, recipient, template, *every, skipped.as_ref())?,
            Action::Redirect(to) | Action::AddRcpt(to) if accepted => match copy {
                Some(copy) => queue.forward(rule, to, copy)?,
                None => None,
            },
            _ => None,
        };
        if let Some(item) = item
            && daemon.store.outbox_add(&item)?
        {
            added += 1;
        }
    }
    Ok(added)
}

/// What every item queued for one recipient's decision shares.
struct Queue<'a> {
    daemon: &'a Daemon,
    origin: &'a Origin,
    decision: &'a Decision,
    /// Seconds since the epoch.
    now: i64,
}

impl Queue<'_> {
    /// A new pending item, due now.
    fn item(
        &self,
        id: String,
        kind: Kind,
        channel: Option<String>,
        rule: &str,
        payload: Payload,
    ) -> OutboxItem {
        OutboxItem {
            id,
            kind,
            channel,
            rule: rule.to_string(),
            message_id: self.origin.message_id.clone(),
            created: self.now,
            attempts: 0,
            next_attempt_ms: now_ms(),
            last_error: None,
            state: State::Pending,
            seq: 0,
            host: String::new(),
            payload,
        }
    }

    /// A webhook to `channel`. An unconfigured channel's item is kept,
    /// dead, so the mistake shows in `/v1/outbox`: only configured
    /// channels are ever called.
    fn notify(
        &self,
        rule: &str,
        channel: &str,
        with: &[(String, String)],
        template: Option<&weir_compiler::decision::RenderedTemplate>,
    ) -> OutboxItem {
        let mut body = notify::body(self.origin, self.decision, rule, with, template);
        let id = digest(&[
            self.origin.digest.as_bytes(),
            b"notify",
            channel.as_bytes(),
            body.to_string().as_bytes(),
        ]);
        body["id"] = json!(id);
        let mut item = self.item(
            id,
            Kind::Notify,
            Some(channel.to_string()),
            rule,
            Payload::Notify { body },
        );
        if !self.daemon.config().notify.contains_key(channel) {
            item.state = State::Dead;
            item.last_error = Some(format!(
                "no [notify.{channel}] channel is configured in weir.toml"
            ));
        }
        item
    }

    /// An auto-reply for `recipient`, unless the decision skipped it, the
    /// message must get none (RFC 3834), it is queued already, or the
    /// sender had one from `recipient` within the period.
    fn reply(
        &self,
        rule: &str,
        recipient: &str,
        template: &weir_compiler::decision::RenderedTemplate,
        every: Option<i64>,
        skipped: Option<&String>,
    ) -> anyhow::Result<Option<OutboxItem>> {
        let origin = self.origin;
        if let Some(why) = skipped.or(origin.no_reply.as_ref()) {
            tracing::info!(
                "reply of rule {rule}: not sent to <{}>: {why}",
                origin.sender
            );
            return Ok(None);
        }
        let recipient = super::stages::strip_brackets(recipient).to_lowercase();
        // Per recipient: two colleagues on vacation each answer.
        let id = digest(&[
            origin.digest.as_bytes(),
            b"reply",
            recipient.as_bytes(),
            template.name.as_bytes(),
            template.subject.as_bytes(),
            template.body.as_bytes(),
        ]);
        if self.daemon.store.outbox_known(&id)? {
            return Ok(None);
        }
        let config = self.daemon.config();
        let period = every.map_or(config.reply.period.as_secs(), |secs| {
            u64::try_from(secs).unwrap_or(0)
        });
        let pair = format!("{recipient}\n{}", origin.sender);
        if !self.daemon.store.reply_allowed(&pair, period, self.now)? {
            tracing::info!(
                "reply of rule {rule}: <{}> already had one from <{recipient}> within [reply] period",
                origin.sender
            );
            return Ok(None);
        }
        let from = reply_from(&config, template, &recipient);
        let data = mail::auto_reply(origin, template, &from, &id, self.now);
        let mut item = self.item(
            id,
            Kind::Reply,
            None,
            rule,
            Payload::Mail {
                // RFC 3834 §3.3: no bounce of an auto-reply.
                reverse_path: String::new(),
                to: origin.sender.clone(),
                data,
            },
        );
        no_relay(self.daemon, &mut item);
        Ok(Some(item))
    }

    /// The recipient's copy forwarded to `to`, unless queued already.
    fn forward(
        &self,
        rule: &str,
        to: &str,
        copy: &dyn Fn() -> Vec<u8>,
    ) -> anyhow::Result<Option<OutboxItem>> {
        let to = super::stages::strip_brackets(to);
        let id = digest(&[
            self.origin.digest.as_bytes(),
            b"forward",
            to.to_ascii_lowercase().as_bytes(),
        ]);
        if self.daemon.store.outbox_known(&id)? {
            return Ok(None);
        }
        let relay_from = self.daemon.config().relay.as_ref().map(|r| r.from.clone());
        let data = mail::forwarded(&copy(), &id);
        let mut item = self.item(
            id,
            Kind::Forward,
            None,
            rule,
            Payload::Mail {
                reverse_path: relay_from.unwrap_or_default(),
                to,
                data,
            },
        );
        no_relay(self.daemon, &mut item);
        Ok(Some(item))
    }
}

/// The `From:` of an auto-reply: the template's `from` (its address: the
/// header is written as `<address>`), else the recipient being answered
/// for, as vacation does, else the relay's address.
fn reply_from(
    config: &crate::config::Config,
    template: &weir_compiler::decision::RenderedTemplate,
    recipient: &str,
) -> String {
    let template_from = weir_stdlib::Address::parse(template.from.trim()).address;
    if !template_from.is_empty() {
        template_from.into()
    } else if recipient.is_empty() {
        config
            .relay
            .as_ref()
            .map(|r| r.from.clone())
            .unwrap_or_default()
    } else {
        recipient.to_string()
    }
}

/// Dead-letters a mail item at once when there is no `[relay]` to send
/// it through, so the mistake shows in `/v1/outbox`.
fn no_relay(daemon: &Daemon, item: &mut OutboxItem) {
    if daemon.config().relay.is_none() {
        item.state = State::Dead;
        item.last_error = Some("no [relay] is configured in weir.toml".into());
    }
}

/// Why an attempt failed.
#[derive(Debug)]
pub enum Failure {
    /// Worth another attempt later.
    Retry(String),
    /// Will never succeed as it is (e.g. an SMTP 5xx): dead-lettered at once.
    Permanent(String),
}

/// The retry limit of an item: attempts after the first.
fn retries(daemon: &Daemon, item: &OutboxItem) -> u32 {
    match (&item.kind, &item.channel) {
        (Kind::Notify, Some(channel)) => {
            daemon.config().notify.get(channel).map_or(0, |c| c.retries)
        }
        _ => daemon.config().outbox.mail_retries,
    }
}

/// The delay before the attempt after `attempts` failed ones.
fn backoff(daemon: &Daemon, attempts: u32) -> Duration {
    let base = daemon.config().outbox.backoff;
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(30));
    base.saturating_mul(factor)
        .min(daemon.config().outbox.max_backoff)
}

/// Makes one attempt at `item`.
async fn attempt(daemon: &Daemon, item: &OutboxItem) -> Result<(), Failure> {
    match &item.payload {
        Payload::Notify { body } => {
            // The channel as configured now: a reload of weir.toml that
            // changed its URL applies to the next attempt.
            let config = daemon.config();
            let channel = item
                .channel
                .as_ref()
                .and_then(|c| config.notify.get(c))
                .ok_or_else(|| {
                    Failure::Permanent(format!(
                        "no [notify.{}] channel is configured in weir.toml",
                        item.channel.as_deref().unwrap_or("")
                    ))
                })?;
            notify::post(channel, &item.id, body).await
        }
        Payload::Mail {
            reverse_path,
            to,
            data,
        } => {
            let config = daemon.config();
            let relay = config
                .relay
                .as_ref()
                .ok_or_else(|| Failure::Permanent("no [relay] is configured".into()))?;
            mail::send(relay, reverse_path, to, data).await
        }
    }
}

/// Makes one attempt and records its outcome (flushed).
async fn run_one(daemon: Arc<Daemon>, mut item: OutboxItem) {
    let result = attempt(&daemon, &item).await;
    item.attempts += 1;
    let outcome = match result {
        Ok(()) => OutboxOutcome::Delivered,
        Err(Failure::Permanent(e)) => {
            item.last_error = Some(e);
            OutboxOutcome::Dead
        }
        Err(Failure::Retry(e)) => {
            item.last_error = Some(e);
            if item.attempts > retries(&daemon, &item) {
                OutboxOutcome::Dead
            } else {
                OutboxOutcome::Retry
            }
        }
    };
    let kind = item.kind.as_str();
    match outcome {
        OutboxOutcome::Delivered => tracing::info!(
            "outbox: {kind} {} delivered (attempt {})",
            item.id,
            item.attempts
        ),
        OutboxOutcome::Retry => {
            let delay = backoff(&daemon, item.attempts);
            item.next_attempt_ms =
                now_ms().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
            tracing::warn!(
                "outbox: {kind} {} failed (attempt {}), retrying in {delay:?}: {}",
                item.id,
                item.attempts,
                item.last_error.as_deref().unwrap_or("")
            );
        }
        OutboxOutcome::Dead => {
            item.state = State::Dead;
            tracing::error!(
                "outbox: {kind} {} dead after {} attempts: {}",
                item.id,
                item.attempts,
                item.last_error.as_deref().unwrap_or("")
            );
        }
    }
    // Counted before the store shows the outcome, so whoever sees the
    // item leave the queue also sees it counted.
    daemon.metrics.outbox_attempted(kind, outcome);
    let recorded = {
        let daemon = daemon.clone();
        let item = item.clone();
        tokio::task::spawn_blocking(move || {
            if outcome == OutboxOutcome::Delivered {
                daemon.store.outbox_delivered(&item.id, unix_now())?;
            } else {
                daemon.store.outbox_put(&item)?;
            }
            if outcome != OutboxOutcome::Retry {
                audit(&daemon, &item, outcome)?;
            }
            anyhow::Ok(())
        })
        .await
    };
    match recorded {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!("outbox: cannot record {}: {e:#}", item.id),
        Err(e) => tracing::error!("outbox: cannot record {}: {e}", item.id),
    }
}

/// Writes the audit entry (and event) of a delivered or dead item.
fn audit(daemon: &Daemon, item: &OutboxItem, outcome: OutboxOutcome) -> anyhow::Result<()> {
    let mut object = item.to_json();
    // `id` is the audit entry's own in `/v1/actions`: the item's is `item`.
    if let Some(map) = object.as_object_mut() {
        let id = map.remove("id").unwrap_or_default();
        map.insert("item".into(), id);
    }
    // One state: the item's outcome, not the `pending` it had while
    // queued (`outbox` is the same word, kept for existing readers).
    let state = if outcome == OutboxOutcome::Delivered {
        "delivered"
    } else {
        "dead"
    };
    object["state"] = json!(state);
    object["outbox"] = json!(state);
    let entry = AuditEntry {
        host: String::new(),
        id: 0,
        time: unix_now(),
        source: Source::Outbox,
        queue_id: item.id.clone(),
        message_id: item.message_id.clone(),
        ruleset_version: daemon.current().version,
        decision: object,
    };
    daemon.record_entry(entry)?;
    Ok(())
}

/// Makes a dead (or pending) item due now with a fresh retry budget;
/// `None` if there is no such item. Flushed; wakes the worker.
pub fn retry_now(daemon: &Daemon, id: &str) -> anyhow::Result<Option<OutboxItem>> {
    let Some(mut item) = daemon.store.outbox_item(id) else {
        return Ok(None);
    };
    item.state = State::Pending;
    item.attempts = 0;
    item.next_attempt_ms = now_ms();
    if !daemon.store.outbox_put(&item)? {
        // Delivered meanwhile.
        return Ok(None);
    }
    daemon.outbox_wake.notify_one();
    Ok(Some(item))
}

/// What one look at the queue found.
#[derive(Debug)]
pub struct Tick {
    /// Items due now and not under way, at most the free attempt slots.
    pub due: Vec<OutboxItem>,
    /// How long to sleep if nothing else wakes the worker.
    pub wait: Duration,
    /// How many items are pending.
    pub pending: i64,
}

/// One look at the queue at `now` (milliseconds since the epoch; reads the
/// store, so on a blocking thread): reads only the due prefix of the due
/// index and the first key after it, so its cost does not grow with the
/// items waiting for later.
pub fn tick(store: &crate::store::Store, in_flight: &HashSet<String>, now: i64) -> Tick {
    let free = MAX_IN_FLIGHT.saturating_sub(in_flight.len());
    // Asked even with no free slot: with Redis, looking renews this host's
    // hold on the attempts under way.
    let due = store.outbox_due(now, in_flight, free);
    let wait = store.outbox_next_due(now).map_or(IDLE_POLL, |next| {
        Duration::from_millis(u64::try_from(next.saturating_sub(now)).unwrap_or(0)).min(IDLE_POLL)
    });
    Tick {
        due,
        wait,
        pending: store.outbox_pending(),
    }
}

/// Starts the worker that delivers pending items until `stop` turns true.
/// Items in flight at a stop or crash stay pending and are sent again at
/// the next start (with the same idempotency key).
pub fn spawn_worker(
    daemon: Arc<Daemon>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut running = tokio::task::JoinSet::new();
        let mut in_flight: HashSet<String> = HashSet::new();
        loop {
            let looked = {
                let store = daemon.store.clone();
                let in_flight = in_flight.clone();
                tokio::task::spawn_blocking(move || tick(&store, &in_flight, now_ms())).await
            };
            let wait = match looked {
                Ok(found) => {
                    daemon.metrics.set_outbox_pending(found.pending);
                    for item in found.due {
                        in_flight.insert(item.id.clone());
                        let daemon = daemon.clone();
                        running.spawn(async move {
                            let id = item.id.clone();
                            run_one(daemon, item).await;
                            id
                        });
                    }
                    found.wait
                }
                Err(e) => {
                    tracing::error!("outbox: cannot read the queue: {e}");
                    IDLE_POLL
                }
            };
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                () = daemon.outbox_wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                Some(done) = running.join_next(), if !running.is_empty() => {
                    if let Ok(id) = done {
                        in_flight.remove(&id);
                    }
                }
            }
            // Collect every other finished attempt before looking again.
            while let Some(done) = running.try_join_next() {
                if let Ok(id) = done {
                    in_flight.remove(&id);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_stable_and_separate_parts() {
        assert_eq!(digest(&[b"abc"]), digest(&[b"abc"]));
        assert_ne!(digest(&[b"ab", b"c"]), digest(&[b"a", b"bc"]));
        assert_eq!(digest(&[b""]).len(), 32);
    }
}
