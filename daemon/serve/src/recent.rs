//! The ring of recent messages' bytes (`[http] keep_messages`,
//! `keep_for`): what the console explains a decision on (the Message page)
//! and backtests an edited ruleset against (the Playground).
//!
//! Off by default (`keep_messages = 0`: nothing is copied). In memory only:
//! a restart empties it, and nothing of it reaches the disk. Bounded three
//! ways: at most `keep_messages` messages, none older than `keep_for`, and
//! at most [`MAX_KEPT_BYTES`] bytes in all (the oldest go first).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The most bytes the ring holds, whatever `keep_messages` says.
pub const MAX_KEPT_BYTES: usize = 256 * 1024 * 1024;

/// One kept message: the audit entry that decided it and its bytes.
#[derive(Debug, Clone)]
pub struct Kept {
    /// The audit entry's id.
    pub audit_id: u64,
    /// When it was kept (seconds since the epoch).
    pub time: i64,
    /// The message as received.
    pub bytes: Arc<Vec<u8>>,
}

/// The ring.
#[derive(Debug, Default)]
pub struct Recent {
    ring: Mutex<VecDeque<Kept>>,
}

impl Recent {
    /// Keeps `kept`, then drops what is past the bounds: more than `max`
    /// messages, older than `keep_for`, more than [`MAX_KEPT_BYTES`].
    /// With `max` 0 it keeps nothing (and empties the ring).
    pub fn keep(&self, kept: Kept, max: usize, keep_for: Duration) {
        let now = kept.time;
        let mut ring = self.lock();
        if max > 0 && kept.bytes.len() <= MAX_KEPT_BYTES {
            ring.push_back(kept);
        }
        prune(&mut ring, max, now, keep_for);
    }

    /// The kept bytes of audit entry `audit_id`.
    pub fn get(&self, audit_id: u64) -> Option<Kept> {
        self.lock()
            .iter()
            .rev()
            .find(|k| k.audit_id == audit_id)
            .cloned()
    }

    /// The newest `n` kept messages younger than `keep_for`, newest first.
    pub fn latest(&self, n: usize, now: i64, keep_for: Duration) -> Vec<Kept> {
        let oldest = now.saturating_sub(secs(keep_for));
        self.lock()
            .iter()
            .rev()
            .filter(|k| k.time >= oldest)
            .take(n)
            .cloned()
            .collect()
    }

    /// How many messages are kept.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Kept>> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn prune(ring: &mut VecDeque<Kept>, max: usize, now: i64, keep_for: Duration) {
    let oldest = now.saturating_sub(secs(keep_for));
    while ring.front().is_some_and(|k| k.time < oldest) || ring.len() > max {
        ring.pop_front();
    }
    let mut total: usize = ring.iter().map(|k| k.bytes.len()).sum();
    while total > MAX_KEPT_BYTES {
        match ring.pop_front() {
            Some(k) => total -= k.bytes.len(),
            None => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(id: u64, time: i64, len: usize) -> Kept {
        Kept {
            audit_id: id,
            time,
            bytes: Arc::new(vec![b'x'; len]),
        }
    }

    const DAY: Duration = Duration::from_secs(86400);

    #[test]
    fn off_keeps_nothing() {
        let r = Recent::default();
        r.keep(kept(1, 100, 10), 0, DAY);
        assert_eq!(r.count(), 0);
    }

    #[test]
    fn the_count_bound_drops_the_oldest() {
        let r = Recent::default();
        for id in 1..=5 {
            r.keep(kept(id, 100, 10), 3, DAY);
        }
        let ids: Vec<u64> = r.latest(10, 100, DAY).iter().map(|k| k.audit_id).collect();
        assert_eq!(ids, [5, 4, 3]);
        assert!(r.get(2).is_none());
        assert!(r.get(4).is_some());
    }

    #[test]
    fn the_age_bound_drops_old_messages() {
        let r = Recent::default();
        r.keep(kept(1, 0, 10), 10, Duration::from_secs(60));
        r.keep(kept(2, 50, 10), 10, Duration::from_secs(60));
        r.keep(kept(3, 100, 10), 10, Duration::from_secs(60));
        assert!(r.get(1).is_none());
        assert_eq!(r.latest(10, 130, Duration::from_secs(60)).len(), 1);
    }

    #[test]
    fn the_byte_bound_holds() {
        let r = Recent::default();
        r.keep(kept(1, 0, MAX_KEPT_BYTES - 5), 10, DAY);
        r.keep(kept(2, 0, 10), 10, DAY);
        assert!(r.get(1).is_none());
        assert!(r.get(2).is_some());
        r.keep(kept(3, 0, MAX_KEPT_BYTES + 1), 10, DAY);
        assert!(r.get(3).is_none());
    }
}
