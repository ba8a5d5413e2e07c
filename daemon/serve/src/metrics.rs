//! Prometheus metrics (`GET /metrics`, docs/serve.md).
//!
//! Labels are bounded: a `rule` label is always a rule the running ruleset
//! declares, a `tag` label a literal tag written in the ruleset (anything
//! else, e.g. an interpolated tag, counts as `other`). A sender, recipient
//! or message id is never a label.

use std::collections::HashSet;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use weir_compiler::SmolStr;

/// The one label of a family's series (`rule="r12"`). Its value is a
/// [`SmolStr`], inline up to 23 bytes: with 10,000 rules each series costs
/// no allocation of its own, and counting a decision allocates nothing.
type Labels = [(&'static str, LabelValue); 1];

/// A label's value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LabelValue(SmolStr);

impl EncodeLabelValue for LabelValue {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        EncodeLabelValue::encode(&self.0.as_str(), encoder)
    }
}

/// The label value used for names outside the ruleset's bounded set.
pub const OTHER: &str = "other";

/// The kinds of side effect, the only values of the outbox metrics' label.
pub const OUTBOX_KINDS: [&str; 3] = ["notify", "reply", "forward"];

/// How an LMTP recipient's copy ended, the only values of
/// `weir_lmtp_deliveries_total{result}`.
pub const LMTP_RESULTS: [&str; 4] = ["delivered", "quarantined", "not_delivered", "refused"];

/// How a side-effect attempt ended, for the outbox counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxOutcome {
    /// Sent: `weir_outbox_deliveries_total`.
    Delivered,
    /// Failed, tried again later: `weir_outbox_retries_total`.
    Retry,
    /// Failed for good: `weir_outbox_dead_total`.
    Dead,
}

/// How many evaluation times [`Metrics::eval_quantiles`] looks at.
const RECENT_EVALS: usize = 1000;

/// The metrics registry and every metric of the daemon.
pub struct Metrics {
    registry: Registry,
    messages: Family<Labels, Counter>,
    rule_matches: Family<Labels, Counter>,
    tags: Family<Labels, Counter>,
    eval_duration: Histogram,
    ruleset_version: Gauge<u64, AtomicU64>,
    reloads: Family<Labels, Counter>,
    outbox_pending: Gauge,
    outbox_deliveries: Family<Labels, Counter>,
    outbox_retries: Family<Labels, Counter>,
    outbox_dead: Family<Labels, Counter>,
    milter_connections: Gauge,
    lmtp_deliveries: Family<Labels, Counter>,
    lmtp_connections: Gauge,
    store_errors: Counter,
    autolearn: Family<Vec<(String, String)>, Counter>,
    store_up: Gauge,
    ruleset_in_sync: Gauge,
    store_round_trips: Counter,
    /// Rule names and literal tags of the running ruleset.
    bounds: RwLock<Bounds>,
    /// The last [`RECENT_EVALS`] evaluation times in seconds, for exact
    /// quantiles on the console's Overview (the histogram's are bucketed).
    recent_evals: std::sync::Mutex<std::collections::VecDeque<f64>>,
    /// Evaluations since start (not exported: the histogram counts them
    /// too), read to tell when a burst of mail has ended (`memory.rs`).
    evaluations: AtomicU64,
}

#[derive(Debug, Default)]
struct Bounds {
    rules: HashSet<SmolStr>,
    tags: HashSet<SmolStr>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn label(key: &'static str, value: impl Into<SmolStr>) -> Labels {
    [(key, LabelValue(value.into()))]
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::default(),
            messages: Family::default(),
            rule_matches: Family::default(),
            tags: Family::default(),
            // 10 µs .. ~5 s.
            eval_duration: Histogram::new(exponential_buckets(0.00001, 4.0, 10)),
            ruleset_version: Gauge::default(),
            reloads: Family::default(),
            outbox_pending: Gauge::default(),
            outbox_deliveries: Family::default(),
            outbox_retries: Family::default(),
            outbox_dead: Family::default(),
            milter_connections: Gauge::default(),
            lmtp_deliveries: Family::default(),
            lmtp_connections: Gauge::default(),
            store_errors: Counter::default(),
            autolearn: Family::default(),
            store_up: Gauge::default(),
            ruleset_in_sync: Gauge::default(),
            store_round_trips: Counter::default(),
            bounds: RwLock::new(Bounds::default()),
            recent_evals: std::sync::Mutex::default(),
            evaluations: AtomicU64::new(0),
        };
        metrics.register();
        metrics.show_zeros();
        // The daemon starts only once its store has opened.
        metrics.store_up.set(1);
        metrics.ruleset_in_sync.set(1);
        metrics
    }

    /// Registers each metric under its name and help text.
    fn register(&mut self) {
        self.registry.register(
            "weir_store_errors",
            "Failed writes to the state store (health probes)",
            self.store_errors.clone(),
        );
        self.registry.register(
            "weir_store_up",
            "Whether the state store takes writes (1) or not (0): Redis down, sled refusing",
            self.store_up.clone(),
        );
        self.registry.register(
            "weir_ruleset_in_sync",
            "Whether this host runs the last ruleset version another host announced (1) or could not load it (0)",
            self.ruleset_in_sync.clone(),
        );
        self.registry.register(
            "weir_store_round_trips",
            "Commands sent to the shared store (Redis); 0 with sled",
            self.store_round_trips.clone(),
        );
        // prometheus-client appends `_total` to counters.
        self.registry.register(
            "weir_messages",
            "Messages decided, by verdict",
            self.messages.clone(),
        );
        self.registry.register(
            "weir_rule_matches",
            "Times a rule's condition held, by rule",
            self.rule_matches.clone(),
        );
        self.registry
            .register("weir_tags", "Tags applied, by tag", self.tags.clone());
        self.registry.register(
            "weir_eval_duration_seconds",
            "Time to evaluate the rules on one message",
            self.eval_duration.clone(),
        );
        self.registry.register(
            "weir_ruleset_version",
            "Version of the running ruleset",
            self.ruleset_version.clone(),
        );
        self.registry.register(
            "weir_reloads",
            "Ruleset reloads, by result",
            self.reloads.clone(),
        );
        self.registry.register(
            "weir_outbox_pending",
            "Side effects waiting in the outbox",
            self.outbox_pending.clone(),
        );
        self.registry.register(
            "weir_outbox_deliveries",
            "Side effects delivered, by kind (notify, reply, forward)",
            self.outbox_deliveries.clone(),
        );
        self.registry.register(
            "weir_outbox_retries",
            "Failed side-effect attempts that will be retried, by kind",
            self.outbox_retries.clone(),
        );
        self.registry.register(
            "weir_outbox_dead",
            "Side effects dead-lettered, by kind",
            self.outbox_dead.clone(),
        );
        self.registry.register(
            "weir_milter_connections",
            "Open milter connections",
            self.milter_connections.clone(),
        );
        self.registry.register(
            "weir_lmtp_deliveries",
            "LMTP recipients, by result (delivered, quarantined, not_delivered, refused)",
            self.lmtp_deliveries.clone(),
        );
        self.registry.register(
            "weir_lmtp_connections",
            "Open LMTP connections",
            self.lmtp_connections.clone(),
        );
        self.registry.register(
            "weir_autolearn",
            "Messages autolearn considered, by classifier, class and outcome",
            self.autolearn.clone(),
        );
    }

    /// Creates the labelled series a scraper should see at 0 from the start.
    fn show_zeros(&self) {
        for result in LMTP_RESULTS {
            let _ = self.lmtp_deliveries.get_or_create(&label("result", result));
        }
        // Show the reload counters at 0 before the first reload.
        for result in ["ok", "error"] {
            let _ = self.reloads.get_or_create(&label("result", result));
        }
        for kind in OUTBOX_KINDS {
            let _ = self.outbox_deliveries.get_or_create(&label("kind", kind));
            let _ = self.outbox_retries.get_or_create(&label("kind", kind));
            let _ = self.outbox_dead.get_or_create(&label("kind", kind));
        }
    }

    /// Sets the running ruleset: its version and the names labels may take.
    /// Every verdict, rule and literal tag gets its series at 0, so the
    /// names show before the first message.
    pub fn set_ruleset<'a>(
        &self,
        version: u64,
        rules: impl IntoIterator<Item = &'a str>,
        tags: impl IntoIterator<Item = &'a str>,
    ) {
        self.ruleset_version.set(version);
        for verdict in ["accept", "reject", "tempfail", "discard", "quarantine"] {
            let _ = self.messages.get_or_create(&label("verdict", verdict));
        }
        let rules: HashSet<SmolStr> = rules.into_iter().map(SmolStr::new).collect();
        let tags: HashSet<SmolStr> = tags.into_iter().map(SmolStr::new).collect();
        for rule in &rules {
            let _ = self
                .rule_matches
                .get_or_create(&label("rule", rule.clone()));
        }
        for tag in &tags {
            let _ = self.tags.get_or_create(&label("tag", tag.clone()));
        }
        if let Ok(mut b) = self.bounds.write() {
            *b = Bounds { rules, tags };
        }
    }

    /// Counts one decision.
    pub fn decided(&self, verdict: &str, matched: &[SmolStr], tags: &[SmolStr]) {
        self.messages
            .get_or_create(&label("verdict", verdict))
            .inc();
        let Ok(bounds) = self.bounds.read() else {
            return;
        };
        let bounded = |set: &HashSet<SmolStr>, name: &SmolStr| {
            if set.contains(name) {
                name.clone()
            } else {
                SmolStr::new_static(OTHER)
            }
        };
        for rule in matched {
            let labels = label("rule", bounded(&bounds.rules, rule));
            self.rule_matches.get_or_create(&labels).inc();
        }
        for tag in tags {
            let labels = label("tag", bounded(&bounds.tags, tag));
            self.tags.get_or_create(&labels).inc();
        }
    }

    /// Observes the time one evaluation took.
    pub fn observe_eval(&self, elapsed: std::time::Duration) {
        self.eval_duration.observe(elapsed.as_secs_f64());
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        let mut recent = self.recent_evals.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT_EVALS {
            recent.pop_front();
        }
        recent.push_back(elapsed.as_secs_f64());
    }

    /// How many evaluations were observed since start.
    pub fn evaluations(&self) -> u64 {
        self.evaluations.load(Ordering::Relaxed)
    }

    /// The median and 99th percentile of the last [`RECENT_EVALS`]
    /// evaluation times, in seconds (`None` before the first).
    pub fn eval_quantiles(&self) -> Option<(f64, f64)> {
        let mut times: Vec<f64> = {
            let recent = self.recent_evals.lock().unwrap_or_else(|p| p.into_inner());
            recent.iter().copied().collect()
        };
        if times.is_empty() {
            return None;
        }
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        Some((at(0.5), at(0.99)))
    }

    /// Counts a reload attempt.
    pub fn reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reloads.get_or_create(&label("result", result)).inc();
    }

    /// A milter connection was accepted.
    pub fn milter_connection_opened(&self) {
        self.milter_connections.inc();
    }

    /// A milter connection ended.
    pub fn milter_connection_closed(&self) {
        self.milter_connections.dec();
    }

    /// Counts one LMTP recipient's outcome (one of [`LMTP_RESULTS`]).
    pub fn lmtp_delivered(&self, result: &'static str) {
        self.lmtp_deliveries
            .get_or_create(&label("result", result))
            .inc();
    }

    /// What autolearn did with one message for one class of one
    /// classifier (labels bounded by `[classifiers]` in weir.toml; the
    /// outcome one of `autolearn::OUTCOMES`).
    pub fn autolearned(&self, classifier: &str, class: &str, outcome: &'static str) {
        debug_assert!(crate::autolearn::OUTCOMES.contains(&outcome), "{outcome}");
        let labels = vec![
            ("classifier".to_string(), classifier.to_string()),
            ("class".to_string(), class.to_string()),
            ("outcome".to_string(), outcome.to_string()),
        ];
        self.autolearn.get_or_create(&labels).inc();
    }

    /// A write to the state store failed.
    pub fn store_error(&self) {
        self.store_errors.inc();
    }

    /// An LMTP connection was accepted.
    pub fn lmtp_connection_opened(&self) {
        self.lmtp_connections.inc();
    }

    /// An LMTP connection ended.
    pub fn lmtp_connection_closed(&self) {
        self.lmtp_connections.dec();
    }

    /// Sets the number of pending outbox entries.
    pub fn set_outbox_pending(&self, n: i64) {
        self.outbox_pending.set(n);
    }

    /// Counts the end of one side-effect attempt of `kind` (one of
    /// [`OUTBOX_KINDS`]): delivered, to be retried, or dead-lettered.
    pub fn outbox_attempted(&self, kind: &str, outcome: OutboxOutcome) {
        let family = match outcome {
            OutboxOutcome::Delivered => &self.outbox_deliveries,
            OutboxOutcome::Retry => &self.outbox_retries,
            OutboxOutcome::Dead => &self.outbox_dead,
        };
        family.get_or_create(&label("kind", kind)).inc();
    }

    /// The store's state: whether it takes writes, and the commands sent
    /// to Redis so far (the counter catches up with the store's count).
    pub fn set_store(&self, up: bool, round_trips: u64) {
        self.store_up.set(i64::from(up));
        let seen = self.store_round_trips.get();
        if round_trips > seen {
            self.store_round_trips.inc_by(round_trips - seen);
        }
    }

    /// `weir_ruleset_in_sync` (`cluster.rs`).
    pub fn set_ruleset_in_sync(&self, in_sync: bool) {
        self.ruleset_in_sync.set(i64::from(in_sync));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded_by_the_ruleset() {
        let m = Metrics::new();
        m.set_ruleset(3, ["vip"], ["billing"]);
        m.decided(
            "accept",
            &["vip".into(), "ghost".into()],
            &["billing".into(), "alice@example.com".into()],
        );
        let text = m.render();
        assert!(
            text.contains("weir_messages_total{verdict=\"accept\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("weir_rule_matches_total{rule=\"vip\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("weir_rule_matches_total{rule=\"other\"} 1"),
            "{text}"
        );
        assert!(text.contains("weir_tags_total{tag=\"other\"} 1"), "{text}");
        assert!(!text.contains("alice"), "{text}");
        assert!(text.contains("weir_ruleset_version 3"), "{text}");
    }
}
