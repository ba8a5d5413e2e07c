//! `Ruleset::rate_keys`: the `rate()` keys a caller can read before
//! evaluation. Every key the evaluation asks whose expression reads only
//! the transaction is listed, listing counts nothing, and keys known only
//! mid-evaluation are left to the counter.

use std::collections::BTreeSet;

use weir_compiler::{EvalOptions, MemoryRates, RateCounter};

use crate::common::{MAIL, rules, tx_with};

/// Records every key and window asked, over in-memory counters.
#[derive(Default)]
struct Recorder {
    inner: MemoryRates,
    asked: BTreeSet<(String, u64)>,
}

impl RateCounter for Recorder {
    fn hit(&mut self, key: &str, window_secs: u64, now: i64, count: bool) -> u64 {
        self.asked.insert((key.to_string(), window_secs));
        self.inner.hit(key, window_secs, now, count)
    }

    fn duplicate(&mut self, scope: &str, key: &str, window_secs: u64, now: i64) -> bool {
        self.inner.duplicate(scope, key, window_secs, now)
    }
}

const RULES: &str = r#"
fn busy(k: string) = rate("fn:${k}", 10m) > 1000
rule by_sender {
  when rate("from:${envelope.from}", 1h) > 100
  then reject 550 "5.7.1" "Too many"
}
rule by_client {
  when rate("ip:${client.ip}", 1m) > 100 and busy(subject)
  then tag "busy"
}
rule never {
  when subject contains "no such subject"
  then {
    if rate("cold:${envelope.from}", 1d) > 0 { tag "cold" }
  }
}
rule scored {
  when subject contains "Invoice"
  then score 2
}
rule late {
  when rate("score:${score}", 1h) > 100 or some(to.address, a => rate("to:${a}", 1h) > 100)
  then tag "late"
}
"#;

fn keys(list: &[(String, u64)]) -> BTreeSet<(String, u64)> {
    list.iter().cloned().collect()
}

fn key(k: &str, w: u64) -> (String, u64) {
    (k.to_string(), w)
}

#[test]
fn keys_of_the_message_are_listed_and_keys_known_mid_evaluation_are_not() {
    let rules = rules(RULES);
    let tx = tx_with(
        MAIL,
        Some("bulk@example.test"),
        &["bob@example.org"],
        Some("192.0.2.7"),
    );
    let listed = keys(&rules.rate_keys(&tx));
    let expected: BTreeSet<_> = [
        key("from:bulk@example.test", 3600),
        key("ip:192.0.2.7", 60),
        key("fn:Invoice 42 for ticket #1234", 600),
        // Under a condition that does not hold: read, never counted.
        key("cold:bulk@example.test", 86400),
    ]
    .into_iter()
    .collect();
    assert_eq!(listed, expected);

    let mut rates = Recorder::default();
    rules.evaluate(&tx, &mut rates, &EvalOptions::default());
    // What evaluation asked beyond the list is what depends on it.
    let beyond: Vec<_> = rates.asked.difference(&listed).cloned().collect();
    assert_eq!(
        beyond,
        vec![
            key("score:2", 3600),
            key("to:bob@example.org", 3600),
            key("to:carol@other.net", 3600)
        ],
    );
    // Listing counted nothing: the cold key was never asked, so never counted.
    assert!(!rates.asked.contains(&key("cold:bulk@example.test", 86400)));
    assert_eq!(
        rates
            .inner
            .hit("cold:bulk@example.test", 86400, crate::common::NOW, false),
        0
    );
    assert_eq!(
        rates
            .inner
            .hit("from:bulk@example.test", 3600, crate::common::NOW, false),
        1
    );
}

#[test]
fn a_ruleset_without_rate_lists_nothing() {
    let rules = rules("rule a { when subject contains \"x\" then tag \"x\" }\n");
    let tx = tx_with(MAIL, Some("a@example.test"), &[], None);
    assert!(rules.rate_keys(&tx).is_empty());
}
