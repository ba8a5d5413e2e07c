//! What every server of the daemon shares: the running ruleset (swapped
//! atomically on reload), the store, metrics and the decision event stream.
//! CONTRACT between the "serve" and "milter" helpers: keep these names.

use std::sync::Arc;
use std::time::SystemTime;

use weir_compiler::{Decision, Ruleset, Verdict};

use super::audit::AuditDecision;
use super::config::Config;
use super::metrics::Metrics;
use super::reload::ReloadError;
use super::reload::{self, ReloadState};
use super::stamp::StampKey;
use super::store::{MessageRates, MessageSummary, QuarantineEntry, Store};
use weir_compiler::Evaluator;

/// A compiled ruleset as the daemon runs it. It is dropped (and its native
/// code freed) when the last message holding its `Arc` is done.
#[derive(Debug)]
pub struct LoadedRuleset {
    /// What decides: the ruleset's native code, or the interpreter where
    /// executable memory is refused. It holds the checked ruleset (rules,
    /// stages, files: what the API shows).
    pub evaluator: Evaluator,
    /// 1 for the first ruleset loaded, +1 for every successful reload (kept
    /// across restarts by the store, so a version names one ruleset).
    pub version: u64,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// What its rules need from `weir.toml` (notify channels, a relay): a
    /// reload of the file may not drop one.
    pub needs: weir_compiler::ConfigNeeds,
}

impl LoadedRuleset {
    /// `evaluator` as version `version`, loaded now.
    pub fn new(evaluator: Evaluator, version: u64) -> LoadedRuleset {
        LoadedRuleset {
            evaluator,
            version,
            loaded_at: SystemTime::now(),
            needs: weir_compiler::ConfigNeeds::default(),
        }
    }

    /// The checked ruleset.
    pub fn ruleset(&self) -> &Ruleset {
        self.evaluator.ruleset()
    }

    /// `Ruleset::hash()`.
    pub fn hash(&self) -> String {
        self.ruleset().hash()
    }
}

/// Where a decision was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The milter (Postfix/Sendmail).
    Milter,
    /// LMTP delivery.
    Lmtp,
    /// The outbox: a side effect delivered or dead-lettered.
    Outbox,
    /// An operator's act through the HTTP API (reload, retry, deploy).
    Api,
}

/// One audit-log entry: a decision and its context (docs/serve.md `/v1/actions`).
/// As read back, the decision object is JSON (`D` its default); a message's
/// decision is written straight from its [`AuditDecision`], since turning
/// it into JSON values first would only be undone by the store.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry<D = serde_json::Value> {
    /// Assigned by the store: increasing, unique.
    pub id: u64,
    /// Seconds since the epoch.
    pub time: i64,
    /// Milter or LMTP.
    pub source: Source,
    /// The MTA's queue id (`i` macro), or `""`.
    pub queue_id: String,
    /// The Message-ID, or `""`.
    pub message_id: String,
    /// The version of the ruleset that decided.
    pub ruleset_version: u64,
    /// The `[store] host` of the daemon that decided (set by the store).
    #[serde(default)]
    pub host: String,
    /// The `weir run --json` object of the decision (verdict, reply, stage,
    /// matched, tags, score, folder, actions).
    pub decision: D,
}

impl AuditEntry<AuditDecision> {
    /// The entry as read back, its decision object as JSON.
    pub fn to_json(&self) -> AuditEntry {
        AuditEntry {
            id: self.id,
            time: self.time,
            source: self.source,
            queue_id: self.queue_id.clone(),
            message_id: self.message_id.clone(),
            ruleset_version: self.ruleset_version,
            host: self.host.clone(),
            decision: self.decision.to_value(),
        }
    }
}

/// The context of one audit entry ([`Daemon::record`]).
#[derive(Debug)]
pub struct Record<'a> {
    /// Milter or LMTP.
    pub source: Source,
    /// The MTA's queue id, or `""`.
    pub queue_id: &'a str,
    /// The version of the ruleset that decided.
    pub version: u64,
    /// The message.
    pub summary: &'a MessageSummary,
    /// The decision object, with the transaction and delivery details.
    pub audit: AuditDecision,
    /// An LMTP quarantine index entry to write with the audit entry.
    pub lmtp_held: Option<QuarantineEntry>,
    /// The message's bytes, for the ring of recent messages (`recent.rs`;
    /// callers pass them only when [`Daemon::keeps_messages`]).
    pub bytes: Option<Arc<Vec<u8>>>,
}

/// The daemon's shared state.
pub struct Daemon {
    /// The running configuration (see [`Daemon::config`]).
    config: arc_swap::ArcSwap<Config>,
    /// Durable state.
    pub store: Store,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// One event per decision, for `/v1/events`.
    pub events: tokio::sync::broadcast::Sender<AuditEntry>,
    /// Wakes the outbox worker when a side effect is queued or retried.
    pub outbox_wake: tokio::sync::Notify,
    /// Signs the milter's decision stamps and verifies them at delivery.
    pub stamp_key: StampKey,
    current: arc_swap::ArcSwap<LoadedRuleset>,
    /// The ring of recent messages' bytes (`[http] keep_messages`).
    pub recent: crate::recent::Recent,
    /// The ruleset versions this daemon ran, with their source (the
    /// console's Rules page).
    pub history: crate::console::history::History,
    /// Reload bookkeeping: one reload at a time, the last error, the files
    /// to watch.
    pub(crate) reload: ReloadState,
    /// The learned classifiers the rules read (`classifiers.rs`).
    pub learned: crate::classifiers::Learned,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("version", &self.current().version)
            .finish_non_exhaustive()
    }
}

pub use crate::clock::unix_now;

/// Why the daemon did not start.
#[derive(Debug)]
pub enum StartError {
    /// The rules do not compile or their tests fail.
    Rules(ReloadError),
    /// `weir.toml` does not configure what the rules need.
    Config(ReloadError),
    /// The state directory, the store or the stamp key cannot be used.
    State(anyhow::Error),
}

impl StartError {
    /// The exit status it means: 2 for rules that do not load (as `weir
    /// check`), 1 for everything else (docs/serve.md "Exit status").
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Rules(_) => 2,
            StartError::Config(_) | StartError::State(_) => 1,
        }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Rules(e) => {
                write!(f, "{e}\nweir serve: the rules do not load; not starting")
            }
            StartError::Config(e) => write!(
                f,
                "{e}\nweir serve: weir.toml does not configure what the rules name; not starting"
            ),
            StartError::State(e) => write!(f, "weir serve: {e:#}"),
        }
    }
}

impl std::error::Error for StartError {}

impl Daemon {
    /// Compiles the configured rules, runs their `test` blocks, opens the
    /// store and makes the result version 1 (or the next version after the
    /// last run's). The error says which of these failed, and so the exit
    /// status (`StartError::exit_code`).
    pub fn new(config: Config) -> Result<Arc<Daemon>, StartError> {
        let candidate =
            reload::prepare(&config.rules, &weir_compiler::FsLoader).map_err(StartError::Rules)?;
        if let Some(e) = reload::check_needs(&candidate.needs, candidate.ruleset(), &config) {
            return Err(StartError::Config(e));
        }
        candidate.warn_lmtp_only(config.lmtp.is_some());
        let store = Store::open_config(&config).map_err(StartError::State)?;
        let stamp_key =
            StampKey::load(&config.state_dir).map_err(|e| StartError::State(e.into()))?;
        let start =
            crate::cluster::start_version(&config, &store, candidate).map_err(StartError::State)?;
        let (candidate, version) = (start.candidate, start.version);
        let metrics = Metrics::new();
        candidate.show_in(&metrics, version);
        let mut loaded = LoadedRuleset::new(candidate.evaluator, version);
        loaded.needs = candidate.needs.clone();
        let (events, _) = tokio::sync::broadcast::channel(1024);
        let learned =
            crate::classifiers::Learned::new(store.learned_store().map_err(StartError::State)?);
        learned.preload(loaded.evaluator.ruleset());
        let history = crate::console::history::History::default();
        history.remember(&loaded, &config.rules);
        // The compile's freed memory would otherwise stay resident.
        weir_compiler::release_free_memory();
        Ok(Arc::new(Daemon {
            learned,
            config: arc_swap::ArcSwap::from_pointee(config),
            store,
            metrics,
            events,
            outbox_wake: tokio::sync::Notify::new(),
            stamp_key,
            current: arc_swap::ArcSwap::from_pointee(loaded),
            recent: crate::recent::Recent::default(),
            history,
            reload: {
                let reload = ReloadState::new(candidate.watch);
                reload.set_start_refusal(start.refused);
                reload
            },
        }))
    }

    /// The running configuration. A reload of `weir.toml` replaces what
    /// can change live (`reload.rs`); a caller that needs several values
    /// to agree keeps the `Arc` it got.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Makes `config` the running configuration (reload).
    pub(crate) fn swap_config(&self, config: Config) {
        self.config.store(Arc::new(config));
    }

    /// The running ruleset. A message keeps the `Arc` it started with, so a
    /// reload never changes the rules under a message in flight.
    pub fn current(&self) -> Arc<LoadedRuleset> {
        self.current.load_full()
    }

    /// Makes `loaded` the running ruleset (reload).
    pub(crate) fn swap(&self, loaded: LoadedRuleset) {
        self.history.remember(&loaded, &self.config().rules);
        self.current.store(Arc::new(loaded));
    }

    /// Records a decision: audit entry flushed to disk before returning,
    /// metrics updated, event published; call before replying to the MTA.
    /// A milter `quarantine` is indexed by queue id (the MTA's hold queue),
    /// so the API can show, release and delete it. `record` carries the
    /// decision object (`audit.rs`) and may carry an LMTP quarantine index
    /// entry, written and flushed with the audit entry.
    pub fn record(
        &self,
        record: Record<'_>,
        decision: &Decision,
    ) -> anyhow::Result<AuditEntry<AuditDecision>> {
        let entry = self.write_record(record, decision)?;
        self.store.make_audit_durable()?;
        self.recorded(&entry, decision);
        Ok(entry)
    }

    /// The writes of [`Daemon::record`]: durable once a flush asked for
    /// after it returns has succeeded ([`Store::request_flush`]), and then
    /// to be announced with [`Daemon::recorded`].
    pub(crate) fn write_record(
        &self,
        record: Record<'_>,
        decision: &Decision,
    ) -> anyhow::Result<AuditEntry<AuditDecision>> {
        let Record {
            source,
            queue_id,
            version,
            summary,
            audit,
            lmtp_held,
            bytes,
        } = record;
        let time = unix_now();
        let entry = AuditEntry {
            host: String::new(),
            id: 0,
            time,
            source,
            queue_id: queue_id.to_string(),
            message_id: summary.message_id.clone(),
            ruleset_version: version,
            decision: audit,
        };
        // A milter quarantine is the MTA's hold queue: index it by queue id
        // so the API can release or delete it.
        let held = (decision.verdict == Verdict::Quarantine
            && source == Source::Milter
            && !queue_id.is_empty())
        .then(|| QuarantineEntry {
            host: String::new(),
            queue_id: queue_id.to_string(),
            audit_id: 0,
            rule: decision.decided_by.clone().unwrap_or_default(),
            reason: decision.quarantine_reason.clone().unwrap_or_default(),
            time,
            summary: summary.clone(),
            lmtp: None,
            gone: None,
        })
        .or(lmtp_held);
        let entry = self.store.write_audit(entry, held)?;
        if let Some(bytes) = bytes {
            let http = &self.config().http;
            let kept = crate::recent::Kept {
                audit_id: entry.id,
                time,
                bytes,
            };
            self.recent.keep(kept, http.keep_messages, http.keep_for);
        }
        Ok(entry)
    }

    /// Counts a durable decision in the metrics and publishes its audit
    /// entry on `/v1/events`.
    pub(crate) fn recorded(&self, entry: &AuditEntry<AuditDecision>, decision: &Decision) {
        self.metrics
            .decided(decision.verdict.as_str(), &decision.matched, &decision.tags);
        self.publish(|| entry.to_json());
    }

    /// Appends an entry that is not a message's decision (an operator's
    /// act, an outbox delivery) to the audit log and publishes it on
    /// `/v1/events`.
    pub fn record_entry(&self, entry: AuditEntry) -> anyhow::Result<AuditEntry> {
        let entry = self.store.append_audit(entry, None)?;
        self.publish(|| entry.clone());
        Ok(entry)
    }

    /// Sends the entry `make` makes to the `/v1/events` subscribers.
    /// Without one it is not made (a deep copy of its decision object: 2.5
    /// % of the milter's CPU at 32 sessions), since nobody would see it.
    fn publish(&self, make: impl FnOnce() -> AuditEntry) {
        if self.events.receiver_count() > 0 {
            // A subscriber gone since is not an error.
            let _ = self.events.send(make());
        }
    }

    /// [`Daemon::record_entry`] off the async runtime, for an act that is
    /// done either way: a failure is only logged, naming `what`.
    pub async fn record_act(self: &Arc<Self>, entry: AuditEntry, what: &str) {
        let daemon = self.clone();
        let recorded = tokio::task::spawn_blocking(move || daemon.record_entry(entry)).await;
        match recorded {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("cannot record {what}: {e:#}"),
            Err(e) => tracing::error!("cannot record {what}: {e}"),
        }
    }

    /// Whether recent messages' bytes are kept (`[http] keep_messages`).
    pub fn keeps_messages(&self) -> bool {
        self.config().http.keep_messages > 0
    }

    /// A rate counter backed by the store, scoped to one message (a key
    /// counted once per message even across several evaluations of it).
    /// It owns its handles, so a milter session can keep it across awaits.
    pub fn message_rates(&self) -> MessageRates {
        MessageRates::new(self.store.clone())
    }

    /// Records how long one evaluation took (`weir_eval_duration_seconds`).
    pub fn observe_eval(&self, elapsed: std::time::Duration) {
        self.metrics.observe_eval(elapsed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Client, Delivery, RecipientOutcome, ReplyJson};
    use weir_compiler::{Action, Reply, Taken, TakenKind};
    use weir_stdlib::Stage;

    /// A decision with every kind of value its JSON object holds: a
    /// reply, a fractional score, tags, a folder, actions.
    fn decision() -> Decision {
        let mut decision = Decision::new(
            Verdict::Reject,
            Some(Reply {
                code: 550,
                status: "5.7.1".into(),
                text: "no \"thanks\" \u{e9}".into(),
            }),
            Stage::Body,
        );
        decision.matched = vec!["spammy".into()];
        decision.tags = vec!["spam".into(), "bulk".into()];
        decision.score = 7.25;
        decision.folder = Some("Junk".into());
        decision.actions = vec![Taken {
            rule: "spammy".into(),
            shadow: false,
            what: TakenKind::Action(Action::Score(7.25)),
        }];
        decision
    }

    /// An entry written straight from its decision object is the bytes of
    /// the same entry as read back (JSON values), so readers, `/v1/events`
    /// and the store agree whichever form made it.
    #[test]
    fn an_entry_written_from_its_decision_object_is_the_json_it_reads_back_as() {
        let decision = decision();
        let mut milter = AuditDecision::new(&decision, "a@x.test");
        milter.to = Some(vec!["b@y.test".into(), "c@y.test".into()]);
        milter.client = Client {
            ip: "192.0.2.7".into(),
            name: "mail.x.test".into(),
            helo: "x.test".into(),
        };
        milter.auth_user = Some("a".into());
        milter.size = 1234;
        milter.recipients = Some(vec![RecipientOutcome::new("b@y.test", &decision)]);
        let lmtp = AuditDecision::new(&decision, "a@x.test").with_delivery(Delivery {
            recipient: "b@y.test".into(),
            delivery: "refused".into(),
            folder: Some("Other".into()),
            reply: Some(ReplyJson::from(&Reply {
                code: 451,
                status: "4.3.0".into(),
                text: "later".into(),
            })),
            ..Delivery::default()
        });
        for audit in [milter, lmtp] {
            let entry = AuditEntry {
                id: 42,
                time: 1_700_000_000,
                source: Source::Milter,
                queue_id: "4XyZ".into(),
                message_id: "m@x.test".into(),
                ruleset_version: 3,
                host: "mx1".into(),
                decision: audit,
            };
            let direct = serde_json::to_vec(&entry).expect("serialize");
            let read_back = serde_json::to_vec(&entry.to_json()).expect("serialize");
            assert_eq!(
                String::from_utf8_lossy(&direct),
                String::from_utf8_lossy(&read_back)
            );
        }
    }
}
