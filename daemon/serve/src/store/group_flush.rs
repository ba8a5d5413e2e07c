//! Group commit for the store's flush: one flush (sled's write and
//! `sync_file_range` of its log, on sled's I/O thread) covers every caller
//! waiting at the moment it starts, instead of one each.
//!
//! Invariant: a wait for a flush ([`GroupFlush::flush`], [`Pending::wait`])
//! ends `Ok` only once a flush that *started after the request* has
//! succeeded, so everything the caller wrote before asking is durable
//! (docs/serve.md, "State": the audit entry is flushed before the MTA gets
//! the reply). Flushes never overlap: a caller arriving while one runs
//! waits for it to end and then for the next one, which covers it and
//! every other caller that arrived meanwhile; with 32 milter sessions
//! recording at once, that is one disk write for all of them.
//!
//! One caller at a time runs the flushes (it *serves*): the first to ask
//! while nobody serves. It goes on while later callers ask, so the others
//! only wait. A blocking caller ([`GroupFlush::flush`]) serves until its
//! own flush has ended and hands what is still asked for to another
//! thread. An async caller ([`GroupFlush::request`]) waits without
//! holding a thread: the milter's sessions, so that 32 of them waiting
//! hold no blocked threads; when its request finds nobody serving, it
//! gets the [`Duty`] of serving, to carry out on a thread that may
//! block.
//!
//! Writes can be announced ([`GroupFlush::expect`], a milter session at
//! its final evaluation): the caller about to start a flush first
//! lingers, at most [`LINGER`], until no announced write is still coming,
//! so that one flush covers them too; and a flush that follows one that
//! covered several callers starts no sooner than [`PACE`] after it. Each
//! flush wakes every idle I/O thread of sled's pool (seven), so fewer,
//! larger batches save CPU (benches/README.md, "The milter path, round
//! four" and "Round twelve"). With nothing announced and no concurrent
//! callers (one session, the API, LMTP) a flush starts at once.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The longest a flush waits for announced writes: a fraction of the
/// 32-session latency (about 9 ms at p50), several messages' worth of
/// arrivals at 3,000 messages/s.
pub(crate) const LINGER: Duration = Duration::from_millis(1);

/// The least time between the starts of two flushes when the first
/// covered several callers: under concurrent load, batches twice as large
/// as back-to-back flushes give (half the disk syncs and wake-ups of
/// sled's I/O threads at 32 sessions), for at most this much more wait.
/// A lone caller (one session, the API) is never paced.
pub(crate) const PACE: Duration = Duration::from_millis(2);

/// The backend's flush: makes durable everything written before it
/// started, or says why it could not.
pub(crate) type FlushFn = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Serialises flushes and lets one flush answer every waiting caller.
pub(crate) struct GroupFlush {
    run: FlushFn,
    state: Mutex<State>,
    /// Wakes blocking callers when a flush ends.
    ended: Condvar,
    /// Wakes async callers when a flush ends: the last [`Outcome`].
    outcomes: tokio::sync::watch::Sender<Outcome>,
    /// Writes announced and not yet made ([`Expected`] guards alive).
    expected: AtomicUsize,
    /// Wakes a lingering caller when no announced write is left.
    arrived: Condvar,
}

impl std::fmt::Debug for GroupFlush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupFlush").finish_non_exhaustive()
    }
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

/// Where the flushes stand, as the waiters read it.
#[derive(Debug, Clone, Copy, Default)]
struct Outcome {
    /// The number of the last flush that ended.
    ended: u64,
    /// The number of the last flush that succeeded.
    succeeded: u64,
}

#[derive(Debug, Default)]
struct State {
    /// How many flushes have started (the last one's number).
    started: u64,
    /// The highest flush number a caller waits for.
    requested: u64,
    /// Whether a caller runs the flushes (or is about to).
    serving: bool,
    /// Requests since the last flush started.
    asked: u32,
    /// The earliest the next flush may start: [`PACE`] after the last
    /// one's start when that one covered several callers.
    paced_until: Option<Instant>,
    outcome: Outcome,
    /// Why the last failed flush failed.
    error: String,
}

impl State {
    /// Stops serving when every flush asked for has ended; says whether
    /// it did.
    fn stop_serving_if_idle(&mut self) -> bool {
        let idle = self.requested <= self.outcome.ended;
        if idle {
            self.serving = false;
        }
        idle
    }
}

/// A request for a flush, to wait for without holding a thread
/// ([`GroupFlush::request`]).
#[derive(Debug)]
pub(crate) struct Pending {
    group: Arc<GroupFlush>,
    /// The first flush that covers the request.
    needed: u64,
}

/// The duty of running the flushes that are asked for, given to the
/// request that found nobody running them. Carry it out
/// ([`Duty::serve`]) on a thread that may block, after handing the
/// [`Pending`] to whoever waits; dropping it serves too, so that no
/// request is left without a flush.
#[derive(Debug)]
#[must_use = "the flushes asked for run only when the duty is served"]
pub(crate) struct Duty {
    group: Arc<GroupFlush>,
    /// The first flush that covers the request that got the duty.
    needed: u64,
}

impl Duty {
    /// Runs flushes until the one its own request needs has ended,
    /// keeping the duty: so a caller that serves anyway is answered by
    /// one wake-up, not two. Blocks.
    pub(crate) fn serve_first(&self) {
        self.group.serve(Some(self.needed));
    }

    /// Runs flushes until none is asked for: blocks.
    pub(crate) fn serve(self) {
        drop(self);
    }
}

impl Drop for Duty {
    fn drop(&mut self) {
        self.group.serve(None);
    }
}

impl Pending {
    /// Waits, without holding a thread, until a flush that started after
    /// the request has ended: `Ok` if one such flush succeeded, else the
    /// error of the last one.
    pub(crate) async fn wait(self) -> Result<(), String> {
        let mut outcomes = self.group.outcomes.subscribe();
        let needed = self.needed;
        let outcome = match outcomes.wait_for(|o| o.ended >= needed).await {
            Ok(outcome) => *outcome,
            // Unreachable: the sender lives in the group this holds.
            Err(_) => return Err("the store's flushes stopped".to_string()),
        };
        self.group.answer(needed, outcome)
    }
}

impl GroupFlush {
    /// A group commit over the backend's flush `run`.
    pub(crate) fn new(run: FlushFn) -> GroupFlush {
        GroupFlush {
            run,
            state: Mutex::default(),
            ended: Condvar::new(),
            outcomes: tokio::sync::watch::Sender::new(Outcome::default()),
            expected: AtomicUsize::new(0),
            arrived: Condvar::new(),
        }
    }

    /// Announces a write that will be flushed soon: until the guard is
    /// dropped, a flush about to start waits for it (at most [`LINGER`]).
    pub(crate) fn expect(self: &Arc<Self>) -> Expected {
        self.expected.fetch_add(1, Ordering::SeqCst);
        Expected(Arc::clone(self))
    }

    /// Asks for a flush covering everything written before this call,
    /// without waiting: the request to wait for, and the duty of running
    /// the flushes when nobody runs them now.
    pub(crate) fn request(self: &Arc<Self>) -> (Pending, Option<Duty>) {
        let (needed, serve) = self.ask();
        let pending = Pending {
            group: Arc::clone(self),
            needed,
        };
        let duty = serve.then(|| Duty {
            group: Arc::clone(self),
            needed,
        });
        (pending, duty)
    }

    /// Returns once a flush started after this call has ended: `Ok` if one
    /// such flush succeeded, else the error of the last one. Blocks; runs
    /// the flush itself when nobody else does.
    pub(crate) fn flush(self: &Arc<Self>) -> Result<(), String> {
        let (needed, serve) = self.ask();
        if serve {
            self.serve(Some(needed));
            self.hand_over();
        }
        let mut state = self.lock();
        while state.outcome.ended < needed {
            state = self
                .ended
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let outcome = state.outcome;
        drop(state);
        self.answer(needed, outcome)
    }

    /// Records a request: the first flush that covers it (the next one to
    /// start), and whether the caller is to serve.
    fn ask(&self) -> (u64, bool) {
        let mut state = self.lock();
        let needed = state.started + 1;
        state.requested = state.requested.max(needed);
        state.asked += 1;
        let serve = !state.serving;
        state.serving = true;
        (needed, serve)
    }

    /// The answer to a request for flush `needed` once `outcome` has it
    /// ended.
    fn answer(&self, needed: u64, outcome: Outcome) -> Result<(), String> {
        if outcome.succeeded >= needed {
            Ok(())
        } else {
            Err(self.lock().error.clone())
        }
    }

    /// Runs flushes while one is asked for, then stops serving; with
    /// `until`, runs them until flush `until` has ended and stays the one
    /// serving.
    fn serve(&self, until: Option<u64>) {
        let mut state = self.lock();
        loop {
            if until.is_some_and(|until| state.outcome.ended >= until) {
                return;
            }
            if state.stop_serving_if_idle() {
                return;
            }
            state = self.linger(state);
            state.paced_until = (state.asked > 1).then(|| Instant::now() + PACE);
            state.asked = 0;
            state.started += 1;
            let number = state.started;
            drop(state);
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| (self.run)()))
                .unwrap_or_else(|_| Err("the flush panicked".to_string()));
            state = self.lock();
            state.outcome.ended = number;
            match outcome {
                Ok(()) => state.outcome.succeeded = number,
                Err(e) => state.error = e,
            }
            self.ended.notify_all();
            self.outcomes.send_replace(state.outcome);
        }
    }

    /// Ends a blocking caller's serving once its own flush has ended:
    /// what is still asked for goes to another thread (one of the async
    /// runtime's blocking threads when the caller runs inside it, else one
    /// of its own; served here when none can be started).
    fn hand_over(self: &Arc<Self>) {
        if self.lock().stop_serving_if_idle() {
            return;
        }
        let group = Arc::clone(self);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn_blocking(move || group.serve(None));
            return;
        }
        let started = std::thread::Builder::new()
            .name("weir-flush".into())
            .spawn(move || group.serve(None));
        if started.is_err() {
            self.serve(None);
        }
    }

    /// Waits, at most [`LINGER`], until no announced write is still to
    /// come, and until [`PACE`] after the last flush's start when that one
    /// covered several callers. Callers arriving meanwhile are covered by
    /// the flush that follows, which has not started yet.
    fn linger<'a>(&'a self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let deadline = Instant::now() + LINGER;
        let paced = state.paced_until.unwrap_or_else(Instant::now);
        loop {
            let now = Instant::now();
            let until = if self.expected.load(Ordering::SeqCst) > 0 {
                deadline.max(paced)
            } else {
                paced
            };
            let left = until.saturating_duration_since(now);
            if left.is_zero() {
                break;
            }
            state = self
                .arrived
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// What the callers of a test wrote and what their flushes made
    /// durable.
    #[derive(Default)]
    struct Log {
        flushes: AtomicU64,
        written: AtomicU64,
        durable: AtomicU64,
    }

    /// A group whose flush makes durable what is written when it starts,
    /// taking `pause`.
    fn group(log: &Arc<Log>, pause: Duration) -> Arc<GroupFlush> {
        let log = log.clone();
        Arc::new(GroupFlush::new(Box::new(move || {
            let now = log.written.load(Ordering::SeqCst);
            std::thread::sleep(pause);
            log.flushes.fetch_add(1, Ordering::SeqCst);
            log.durable.fetch_max(now, Ordering::SeqCst);
            Ok(())
        })))
    }

    /// Writes one record to `log`: the count that must be durable.
    fn write(log: &Log) -> u64 {
        log.written.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// A blocking caller that runs `first`, writes and flushes, and
    /// checks that it is answered only once its own write is durable.
    fn writer(
        group: &Arc<GroupFlush>,
        log: &Arc<Log>,
        first: impl FnOnce() + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        let (group, log) = (group.clone(), log.clone());
        std::thread::spawn(move || {
            first();
            let mine = write(&log);
            group.flush().expect("flushed");
            assert!(log.durable.load(Ordering::SeqCst) >= mine);
        })
    }

    #[test]
    fn one_flush_covers_every_caller_waiting_when_it_starts() {
        let log = Arc::new(Log::default());
        let group = group(&log, Duration::from_millis(20));
        let callers: Vec<_> = (0..16).map(|_| writer(&group, &log, || {})).collect();
        for caller in callers {
            caller.join().expect("caller");
        }
        let n = log.flushes.load(Ordering::SeqCst);
        assert!((1..16).contains(&n), "{n} flushes for 16 callers");
    }

    #[test]
    fn announced_writes_are_covered_and_a_flush_never_waits_for_ever() {
        let log = Arc::new(Log::default());
        let group = group(&log, Duration::ZERO);
        // Announced before any write, as a milter session's final stage.
        let announced: Vec<_> = (0..8).map(|_| group.expect()).collect();
        let callers: Vec<_> = announced
            .into_iter()
            .map(|expected| writer(&group, &log, move || drop(expected)))
            .collect();
        for caller in callers {
            caller.join().expect("caller");
        }
        // A write announced and never made delays a flush, never stops it.
        let _never = group.expect();
        assert_eq!(group.flush(), Ok(()));
    }

    #[test]
    fn a_failed_flush_fails_its_callers_and_a_later_success_serves_later_ones() {
        let calls = AtomicU64::new(0);
        let group = Arc::new(GroupFlush::new(Box::new(move || {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err("disk full".into()),
                2 => panic!("boom"),
                _ => Ok(()),
            }
        })));
        assert_eq!(group.flush(), Err("disk full".into()));
        assert_eq!(group.flush(), Ok(()));
        assert_eq!(group.flush(), Err("the flush panicked".into()));
        assert_eq!(group.flush(), Ok(()));
    }

    /// Async callers (the milter's) wait without threads, each answered
    /// only once its write is durable; the one that found nobody serving
    /// serves on a blocking thread, and blocking callers mixed in are
    /// served too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_requests_are_covered_and_share_flushes_with_blocking_callers() {
        let log = Arc::new(Log::default());
        let group = group(&log, Duration::from_millis(2));
        let blocking: Vec<_> = (0..4).map(|_| writer(&group, &log, || {})).collect();
        let mut waiting = tokio::task::JoinSet::new();
        // Blocking callers on the runtime's blocking threads too, which
        // hand what is still asked for to another of them.
        for _ in 0..4 {
            let (group, log) = (group.clone(), log.clone());
            waiting.spawn_blocking(move || {
                let mine = write(&log);
                group.flush().expect("flushed");
                assert!(log.durable.load(Ordering::SeqCst) >= mine);
            });
        }
        for _ in 0..64 {
            let (group, log) = (group.clone(), log.clone());
            waiting.spawn(async move {
                let mine = write(&log);
                let (pending, duty) = group.request();
                if let Some(duty) = duty {
                    tokio::task::spawn_blocking(move || duty.serve());
                }
                pending.wait().await.expect("flushed");
                assert!(log.durable.load(Ordering::SeqCst) >= mine);
            });
        }
        let all = async {
            while let Some(done) = waiting.join_next().await {
                done.expect("caller");
            }
        };
        tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .expect("no request is left without a flush");
        for caller in blocking {
            caller.join().expect("caller");
        }
        let n = log.flushes.load(Ordering::SeqCst);
        assert!((1..72).contains(&n), "{n} flushes for 72 callers");
    }

    #[tokio::test]
    async fn serving_first_answers_the_server_and_keeps_the_duty() {
        let log = Arc::new(Log::default());
        let group = group(&log, Duration::ZERO);
        let mine = write(&log);
        let (pending, duty) = group.request();
        let duty = duty.expect("nobody was serving");
        duty.serve_first();
        assert!(log.durable.load(Ordering::SeqCst) >= mine);
        // A request made meanwhile finds the duty taken, and is served by it.
        let later = write(&log);
        let (second, none) = group.request();
        assert!(none.is_none(), "one caller serves at a time");
        std::thread::spawn(move || duty.serve());
        pending.wait().await.expect("flushed");
        second.wait().await.expect("flushed");
        assert!(log.durable.load(Ordering::SeqCst) >= later);
        assert_eq!(log.flushes.load(Ordering::SeqCst), 2);
    }

    /// A group whose flush records when it started.
    fn timed() -> (Arc<GroupFlush>, Arc<Mutex<Vec<Instant>>>) {
        let starts = Arc::new(Mutex::new(Vec::new()));
        let log = starts.clone();
        let group = GroupFlush::new(Box::new(move || {
            log.lock().expect("log").push(Instant::now());
            Ok(())
        }));
        (Arc::new(group), starts)
    }

    #[test]
    fn a_lone_caller_is_never_paced() {
        let (group, starts) = timed();
        let began = Instant::now();
        for _ in 0..10 {
            group.flush().expect("flushed");
        }
        assert_eq!(starts.lock().expect("log").len(), 10);
        // Paced, ten flushes would take at least nine times PACE.
        assert!(began.elapsed() < PACE * 4, "{:?}", began.elapsed());
    }

    #[tokio::test]
    async fn a_flush_after_one_that_covered_several_callers_waits_for_the_pace() {
        let (group, starts) = timed();
        let (first, duty) = group.request();
        let (second, _) = group.request();
        let duty = duty.expect("nobody was serving");
        duty.serve_first();
        let (third, _) = group.request();
        std::thread::spawn(move || duty.serve());
        for pending in [first, second, third] {
            pending.wait().await.expect("flushed");
        }
        let starts = starts.lock().expect("log");
        assert_eq!(starts.len(), 2, "one flush for the first two, one more");
        assert!(starts[1] - starts[0] >= PACE, "{:?}", starts[1] - starts[0]);
    }

    #[tokio::test]
    async fn an_async_request_gets_the_error_of_its_failed_flush() {
        let group = Arc::new(GroupFlush::new(Box::new(|| Err("disk full".into()))));
        let (pending, duty) = group.request();
        let (_, second) = group.request();
        assert!(second.is_none(), "one caller serves at a time");
        std::thread::spawn(move || duty.expect("nobody was serving").serve());
        assert_eq!(pending.wait().await, Err("disk full".into()));
    }
}
