//! Counters behind `rate(KEY, WINDOW)`. Evaluation is sans-IO: the caller
//! owns the counters (in memory for `weir run` and `weir test`, durable in
//! the daemon) and hands them to [`Ruleset::evaluate`](crate::Ruleset::evaluate).

use std::collections::{HashMap, VecDeque};

/// Counts messages per key over sliding windows.
pub trait RateCounter {
    /// Counts one hit for `key` at `now` unless `count` is false, and
    /// returns the hits within the last `window_secs` seconds (including
    /// this one if counted).
    fn hit(&mut self, key: &str, window_secs: u64, now: i64, count: bool) -> u64;

    /// `duplicate()`: whether a copy carrying `key` was delivered to
    /// `scope` (the lower-cased recipient) within the last `window_secs`
    /// seconds before `now`. Only reads: the caller records the keys of
    /// `Decision::duplicates` once the copy is delivered.
    fn duplicate(&mut self, scope: &str, key: &str, window_secs: u64, now: i64) -> bool;

    /// Records that a copy carrying `keys` was delivered to `scope` at
    /// `now`, for counters that keep `duplicate()` records themselves
    /// (`weir run`: [`Evaluator::decide`](crate::Evaluator::decide) takes
    /// each accepted message as delivered). The daemon records through its
    /// store once a copy's fate is known, so its counters keep the default.
    fn record_delivered(&mut self, _scope: &str, _keys: &[String], _now: i64) {}
}

/// Whether a copy recorded at `delivered` is within `window_secs` of `now`.
pub fn within_window(delivered: i64, window_secs: u64, now: i64) -> bool {
    let window = i64::try_from(window_secs).unwrap_or(i64::MAX);
    now.saturating_sub(delivered) < window
}

/// Counters kept in memory (`weir run`, `weir test`).
#[derive(Debug, Default, Clone)]
pub struct MemoryRates {
    hits: HashMap<String, VecDeque<i64>>,
    /// `duplicate()` records: (scope, key) → when the last copy was delivered.
    delivered: HashMap<(String, String), i64>,
}

/// The longest window remembered: older hits are forgotten.
const MAX_WINDOW_SECS: i64 = 366 * 24 * 3600;

impl RateCounter for MemoryRates {
    fn hit(&mut self, key: &str, window_secs: u64, now: i64, count: bool) -> u64 {
        let times = self.hits.entry(key.to_string()).or_default();
        // Hits arrive in time order in practice; forget what no window can see.
        while times
            .front()
            .is_some_and(|&t| now.saturating_sub(t) >= MAX_WINDOW_SECS)
        {
            times.pop_front();
        }
        if count {
            times.push_back(now);
        }
        let window = i64::try_from(window_secs).unwrap_or(i64::MAX);
        let within = times
            .iter()
            .filter(|&&t| now.saturating_sub(t) < window || (count && t == now))
            .count();
        within as u64
    }

    fn duplicate(&mut self, scope: &str, key: &str, window_secs: u64, now: i64) -> bool {
        self.delivered
            .get(&(scope.to_string(), key.to_string()))
            .is_some_and(|&t| within_window(t, window_secs, now))
    }

    fn record_delivered(&mut self, scope: &str, keys: &[String], now: i64) {
        for key in keys {
            self.delivered.insert((scope.to_string(), key.clone()), now);
        }
    }
}

impl MemoryRates {
    /// Sets the count under `key` to `n` messages at `now`, as if they had
    /// all arrived then (a test's `rate "KEY" = N`): every window of
    /// `rate()` sees them.
    pub fn preset(&mut self, key: &str, n: u64, now: i64) {
        let times = self.hits.entry(key.to_string()).or_default();
        times.clear();
        times.extend(std::iter::repeat_n(
            now,
            usize::try_from(n).unwrap_or(usize::MAX),
        ));
    }
}

/// Counters that count nothing and see nothing (constant folding).
pub(crate) struct NoRates;

impl RateCounter for NoRates {
    fn hit(&mut self, _key: &str, _window_secs: u64, _now: i64, _count: bool) -> u64 {
        0
    }

    fn duplicate(&mut self, _scope: &str, _key: &str, _window_secs: u64, _now: i64) -> bool {
        false
    }
}
