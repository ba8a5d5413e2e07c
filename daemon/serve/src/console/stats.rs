//! The Overview's figures (`GET /v1/stats`), computed from the audit log
//! of the last day, the metrics and the store.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::clock::format_time;
use crate::state::{Daemon, unix_now};
use crate::store::AuditFilter;

/// The verdicts, in the order the series are given.
pub const VERDICTS: [&str; 5] = ["accept", "reject", "tempfail", "discard", "quarantine"];
/// The most audit entries one computation reads.
const MAX_ENTRIES: usize = 200_000;
/// The day's buckets are this many minutes wide.
const DAY_BUCKET_MINUTES: i64 = 10;

/// Messages per minute by verdict in buckets of `width` seconds ending
/// with the one holding `now`: `{"t": [bucket starts], VERDICT: [per
/// minute]}`.
struct Series {
    start: i64,
    width: i64,
    counts: Vec<[u64; 5]>,
}

impl Series {
    fn new(now: i64, width: i64, buckets: usize) -> Series {
        let last = now - now.rem_euclid(width);
        Series {
            start: last - width * (buckets as i64 - 1),
            width,
            counts: vec![[0; 5]; buckets],
        }
    }

    fn add(&mut self, time: i64, verdict: usize) {
        if time < self.start {
            return;
        }
        let i = ((time - self.start) / self.width) as usize;
        if let Some(bucket) = self.counts.get_mut(i) {
            bucket[verdict] += 1;
        }
    }

    fn to_json(&self) -> Value {
        let minutes = self.width as f64 / 60.0;
        let mut out = serde_json::Map::new();
        let t: Vec<i64> = (0..self.counts.len() as i64)
            .map(|i| self.start + i * self.width)
            .collect();
        out.insert("t".into(), json!(t));
        for (v, name) in VERDICTS.iter().enumerate() {
            let per_minute: Vec<f64> = self.counts.iter().map(|c| c[v] as f64 / minutes).collect();
            out.insert((*name).into(), json!(per_minute));
        }
        Value::Object(out)
    }
}

/// The Overview's figures; `store` is the store probe's result.
pub fn stats(daemon: &Daemon, store: Result<(), String>) -> Value {
    let now = unix_now();
    let filter = AuditFilter {
        since_time: Some(now - 86_400),
        ..AuditFilter::default()
    };
    let entries = daemon.store.audit_entries(&filter, MAX_ENTRIES);
    let mut hour = Series::new(now, 60, 60);
    let mut day = Series::new(now, DAY_BUCKET_MINUTES * 60, 144);
    let mut rules: HashMap<String, u64> = HashMap::new();
    let mut decided = 0u64;
    for e in &entries {
        let verdict = e.decision.get("verdict").and_then(Value::as_str);
        let Some(v) = verdict.and_then(|v| VERDICTS.iter().position(|x| *x == v)) else {
            continue;
        };
        decided += 1;
        hour.add(e.time, v);
        day.add(e.time, v);
        for rule in e
            .decision
            .get("matched")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(r) = rule.as_str() {
                *rules.entry(r.to_string()).or_default() += 1;
            }
        }
    }
    let mut top: Vec<(String, u64)> = rules.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(10);
    let outbox = daemon.store.outbox_page(0, MAX_ENTRIES);
    let dead = outbox
        .iter()
        .filter(|i| i.to_json()["state"] == "dead")
        .count();
    let current = daemon.current();
    let loaded_at = current
        .loaded_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let last_error = daemon.reload.last_error();
    json!({
        "time": format_time(now),
        "hour": hour.to_json(),
        "day": day.to_json(),
        "decided_last_day": decided,
        "top_rules": top.iter().map(|(r, n)| json!({"rule": r, "hits": n})).collect::<Vec<_>>(),
        "eval_seconds": daemon.metrics.eval_quantiles().map(|(p50, p99)| json!({"p50": p50, "p99": p99})),
        "ruleset": {
            "version": current.version,
            "hash": current.hash(),
            "loaded_at": format_time(loaded_at),
            "last_reload": if last_error.is_some() { "failed" } else { "ok" },
            "last_error": last_error.map(|e| e.rendered),
        },
        "outbox": {"pending": outbox.len() - dead, "dead": dead},
        "quarantine": {"held": daemon.store.quarantine_entries().iter().filter(|q| q.gone.is_none()).count()},
        "store": match store { Ok(()) => "ok".to_string(), Err(e) => e },
        "kept_messages": daemon.recent.count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_minutes() {
        let mut s = Series::new(3600, 60, 60);
        s.add(3600, 0);
        s.add(3599, 1);
        s.add(0, 1);
        let j = s.to_json();
        assert_eq!(j["accept"][59], 1.0);
        assert_eq!(j["reject"][58], 1.0);
        assert_eq!(j["t"][59], 3600);
        // Older than the first bucket: not counted.
        assert_eq!(
            j["reject"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| **x == 1.0)
                .count(),
            1
        );
    }
}
