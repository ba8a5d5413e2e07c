//! Giving back the memory a burst of mail freed. Messages are parsed and
//! evaluated on several threads (tokio's workers and blocking threads,
//! `evalpool.rs`), and glibc keeps what a thread frees in that thread's
//! arena, returning it to the system only from the top: after a burst,
//! several megabytes of freed message data stay resident in the arenas
//! that served it. Once the daemon is quiet they are released, off the
//! hot path ("The daemon's memory, round four" in benches/README.md has
//! the figures), with the search caches the ruleset's regexes kept between
//! messages (`weir_stdlib::Regex::forget_caches`): the next message starts
//! fresh ones.

use std::sync::Arc;
use std::time::Duration;

use crate::state::Daemon;

/// How long without an evaluation ends a burst.
const QUIET: Duration = Duration::from_secs(1);

/// Whether a burst of evaluations has just ended, from the evaluation
/// count read once per [`QUIET`] period.
#[derive(Debug)]
struct Bursts {
    seen: u64,
    busy: bool,
}

impl Bursts {
    /// True once per burst: at the first read that finds no evaluation
    /// since the read before, after one that found some.
    fn ended(&mut self, evaluations: u64) -> bool {
        if evaluations != self.seen {
            self.seen = evaluations;
            self.busy = true;
            return false;
        }
        std::mem::take(&mut self.busy)
    }
}

/// Forgets the regexes' search caches and releases the allocator's free
/// memory ([`weir_compiler::release_free_memory`]) each time a burst of
/// messages ends, for the daemon's life.
pub fn spawn_release_after_bursts(daemon: Arc<Daemon>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(QUIET);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut bursts = Bursts {
            seen: daemon.metrics.evaluations(),
            busy: false,
        };
        loop {
            tick.tick().await;
            if bursts.ended(daemon.metrics.evaluations()) {
                let current = daemon.current();
                // It locks each arena in turn: not on a worker thread.
                let _ = tokio::task::spawn_blocking(move || {
                    current.evaluator.ruleset().forget_regex_caches();
                    weir_compiler::release_free_memory();
                })
                .await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::Bursts;

    #[test]
    fn a_burst_ends_once_at_the_first_quiet_read() {
        let mut bursts = Bursts {
            seen: 0,
            busy: false,
        };
        assert!(!bursts.ended(0), "quiet from the start: nothing to release");
        assert!(!bursts.ended(5));
        assert!(!bursts.ended(9));
        assert!(bursts.ended(9));
        assert!(!bursts.ended(9), "once per burst");
        assert!(!bursts.ended(10));
        assert!(bursts.ended(10));
    }
}
