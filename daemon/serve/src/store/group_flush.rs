//! Group commit for the store's flush: one flush (sled's write and
//! `sync_file_range` of its log, on sled's I/O thread) covers every caller
//! waiting at the moment it starts, instead of one each.
//!
//! Invariant: [`GroupFlush::flush`] returns `Ok` only once a flush that
//! *started after it was called* has succeeded, so everything the caller
//! wrote before calling it is durable (docs/serve.md, "State": the audit
//! entry is flushed before the MTA gets the reply). Flushes never overlap:
//! a caller arriving while one runs waits for it to end and then for the
//! next one, which covers it and every other caller that arrived
//! meanwhile; with 32 milter sessions recording at once, that is one disk
//! write and one thread hand-off for all of them.
//!
//! Writes can be announced ([`GroupFlush::expect`], a milter session at
//! its final evaluation): the caller that is to start a flush first
//! lingers, at most [`LINGER`], until no announced write is still coming,
//! so that one flush covers them too. Each flush wakes every idle I/O
//! thread of sled's pool (seven), so fewer, larger batches save CPU
//! (benches/README.md, "The milter path, round four"). With nothing
//! announced (one session, the API, LMTP) a flush starts at once.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The longest a flush waits for announced writes: a fraction of the
/// 32-session latency (about 14 ms at p50), several messages' worth of
/// arrivals at 3,000 messages/s.
pub(crate) const LINGER: Duration = Duration::from_millis(1);

/// Serialises flushes and lets one flush answer every waiting caller.
#[derive(Debug, Default)]
pub(crate) struct GroupFlush {
    state: Mutex<State>,
    ended: Condvar,
    /// Writes announced and not yet made ([`Expected`] guards alive).
    expected: AtomicUsize,
    /// Wakes a lingering caller when no announced write is left.
    arrived: Condvar,
}

/// An announced write: alive from the announcement until just before the
/// write, so a starting flush lingers for it ([`GroupFlush::expect`]).
#[derive(Debug)]
pub(crate) struct Expected(Arc<GroupFlush>);

impl Drop for Expected {
    fn drop(&mut self) {
        if self.0.expected.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Under the lock, so a caller that saw a write still expected
            // is already waiting and gets this wake-up.
            let _state = self.0.lock();
            self.0.arrived.notify_all();
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Whether a caller lingers before starting the next flush.
    lingering: bool,
    /// How many flushes have started (the last one's number).
    started: u64,
    /// The number of the last flush that ended.
    ended: u64,
    /// Whether a flush is running now.
    running: bool,
    /// The number of the last flush that succeeded.
    succeeded: u64,
    /// Why the last failed flush failed.
    error: String,
}

impl GroupFlush {
    /// Announces a write that will be flushed soon: until the guard is
    /// dropped, a flush about to start waits for it (at most [`LINGER`]).
    pub(crate) fn expect(self: &Arc<Self>) -> Expected {
        self.expected.fetch_add(1, Ordering::SeqCst);
        Expected(Arc::clone(self))
    }

    /// Returns once a flush started after this call has ended: `Ok` if one
    /// such flush succeeded, else the error of the last one. `flush` is the
    /// backend's flush; this caller runs it or waits for another's run.
    pub(crate) fn flush(&self, flush: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
        let mut state = self.lock();
        let needed = state.started + 1;
        let mut flush = Some(flush);
        while state.ended < needed {
            if state.running || state.lingering {
                state = self
                    .ended
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            let Some(run) = flush.take() else {
                // Unreachable: this caller runs at most one flush, which
                // ends at a number of at least `needed`.
                break;
            };
            state = self.linger(state);
            state.running = true;
            state.started += 1;
            let number = state.started;
            drop(state);
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(run))
                .unwrap_or_else(|_| Err("the flush panicked".to_string()));
            state = self.lock();
            state.running = false;
            state.ended = number;
            match outcome {
                Ok(()) => state.succeeded = number,
                Err(e) => state.error = e,
            }
            self.ended.notify_all();
        }
        if state.succeeded >= needed {
            Ok(())
        } else {
            Err(state.error.clone())
        }
    }

    /// Waits, at most [`LINGER`], until no announced write is still to
    /// come. Callers arriving meanwhile wait for the flush that follows,
    /// which has not started yet and so covers their writes.
    fn linger<'a>(&'a self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let deadline = Instant::now() + LINGER;
        state.lingering = true;
        while self.expected.load(Ordering::SeqCst) > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .arrived
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.lingering = false;
        state
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// What the callers of a test wrote and what their flushes made
    /// durable.
    #[derive(Default)]
    struct Log {
        flushes: AtomicU64,
        written: AtomicU64,
        durable: AtomicU64,
    }

    /// A caller that runs `first`, writes, and flushes through `group`
    /// with a flush that makes durable what is written when it starts
    /// (taking `pause`); it checks that it is answered only once its own
    /// write is durable.
    fn writer(
        group: &Arc<GroupFlush>,
        log: &Arc<Log>,
        pause: Duration,
        first: impl FnOnce() + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        let (group, log) = (group.clone(), log.clone());
        std::thread::spawn(move || {
            first();
            let mine = log.written.fetch_add(1, Ordering::SeqCst) + 1;
            group
                .flush(|| {
                    let now = log.written.load(Ordering::SeqCst);
                    std::thread::sleep(pause);
                    log.flushes.fetch_add(1, Ordering::SeqCst);
                    log.durable.fetch_max(now, Ordering::SeqCst);
                    Ok(())
                })
                .expect("flushed");
            assert!(log.durable.load(Ordering::SeqCst) >= mine);
        })
    }

    #[test]
    fn one_flush_covers_every_caller_waiting_when_it_starts() {
        let (group, log) = (Arc::new(GroupFlush::default()), Arc::new(Log::default()));
        let callers: Vec<_> = (0..16)
            .map(|_| writer(&group, &log, Duration::from_millis(20), || {}))
            .collect();
        for caller in callers {
            caller.join().expect("caller");
        }
        let n = log.flushes.load(Ordering::SeqCst);
        assert!((1..16).contains(&n), "{n} flushes for 16 callers");
    }

    #[test]
    fn announced_writes_are_covered_and_a_flush_never_waits_for_ever() {
        let (group, log) = (Arc::new(GroupFlush::default()), Arc::new(Log::default()));
        // Announced before any write, as a milter session's final stage.
        let announced: Vec<_> = (0..8).map(|_| group.expect()).collect();
        let callers: Vec<_> = announced
            .into_iter()
            .map(|expected| writer(&group, &log, Duration::ZERO, move || drop(expected)))
            .collect();
        for caller in callers {
            caller.join().expect("caller");
        }
        // A write announced and never made delays a flush, never stops it.
        let _never = group.expect();
        assert_eq!(group.flush(|| Ok(())), Ok(()));
    }

    #[test]
    fn a_failed_flush_fails_its_callers_and_a_later_success_serves_later_ones() {
        let group = GroupFlush::default();
        assert_eq!(
            group.flush(|| Err("disk full".into())),
            Err("disk full".into())
        );
        assert_eq!(group.flush(|| Ok(())), Ok(()));
        assert_eq!(
            group.flush(|| panic!("boom")),
            Err("the flush panicked".into())
        );
        assert_eq!(group.flush(|| Ok(())), Ok(()));
    }
}
