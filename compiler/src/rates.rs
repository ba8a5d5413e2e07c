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
}

/// Counters kept in memory (`weir run`, `weir test`).
#[derive(Debug, Default, Clone)]
pub struct MemoryRates {
    hits: HashMap<String, VecDeque<i64>>,
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
}

/// Counters that count nothing and see nothing (constant folding).
pub(crate) struct NoRates;

impl RateCounter for NoRates {
    fn hit(&mut self, _key: &str, _window_secs: u64, _now: i64, _count: bool) -> u64 {
        0
    }
}
