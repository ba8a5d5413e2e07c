//! Where rule evaluations run: a pool of as many slots as the machine has
//! cores, on the blocking threads.
//!
//! An evaluation cannot be interrupted once started (it is native code or
//! the interpreter, and always terminates, ARCHITECTURE.md), so a timeout
//! that only stops *waiting* would let a flood of large messages pile up
//! work on tokio's 512 blocking threads. Here a job holds its slot until it
//! really ends, timed out or not: at most one job per core runs, the rest
//! wait for a slot, and a job that gets none within [`QUEUE_WAIT`] is
//! answered `Busy`, which the servers turn into a tempfail: back-pressure
//! to the MTA, which retries later.
//!
//! A small message ([`INLINE_MAX`]) is evaluated on the caller's own task
//! instead ([`run_sized`]): its parsing and evaluation take well under a
//! millisecond, less than handing it to a blocking thread and waking the
//! task again costs (two thread crossings, a futex wake-up each). The
//! tokio workers are one per core, so this too runs at most one evaluation
//! per core; it cannot be stopped waiting, so its budget is checked when
//! it ends.
//!
//! The time allowed ([`budget`]) is `eval_timeout` plus an allowance for
//! parsing that grows with the message, so a large legitimate message is
//! not tempfailed on every retry because parsing it takes longer than the
//! evaluation budget.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// How long a job may wait for a free slot before it is answered `Busy`
/// (well below Postfix's `milter_content_timeout`, 300 s by default, and
/// the 30 s the harness sets).
pub const QUEUE_WAIT: Duration = Duration::from_secs(10);

/// The largest message (header block and body, in bytes) evaluated on the
/// caller's task rather than in the pool: 64 KiB, most mail (the median of
/// the benchmark corpus `synth` is 18 KB).
pub const INLINE_MAX: u64 = 64 * 1024;

/// Time allowed for parsing, per MiB of message.
pub const PARSE_PER_MIB: Duration = Duration::from_millis(250);

/// Why a job gave no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalError {
    /// No slot came free within [`QUEUE_WAIT`].
    Busy,
    /// The job ran past its budget (it goes on, holding its slot).
    TimedOut,
    /// The job panicked.
    Failed(String),
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalError::Busy => write!(f, "every evaluation slot stayed busy for {QUEUE_WAIT:?}"),
            EvalError::TimedOut => write!(f, "the evaluation ran past its time budget"),
            EvalError::Failed(why) => write!(f, "the evaluation failed: {why}"),
        }
    }
}

impl std::error::Error for EvalError {}

/// The pool's slots: one per core (at least two).
fn slots() -> &'static Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(Semaphore::new(cores.max(2)))
    })
}

/// The time allowed for a job on a message of `size` bytes: `eval_timeout`
/// plus [`PARSE_PER_MIB`] per MiB.
pub fn budget(eval_timeout: Duration, size: u64) -> Duration {
    // Proportional: a small message adds next to nothing.
    let nanos = u128::from(size) * PARSE_PER_MIB.as_nanos() / (1024 * 1024);
    let allowance = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
    eval_timeout.saturating_add(allowance)
}

/// Runs `job` in a slot of the pool within `budget` (counted from when it
/// gets its slot).
pub async fn run<T, F>(budget: Duration, job: F) -> Result<T, EvalError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let permit = tokio::time::timeout(QUEUE_WAIT, slots().clone().acquire_owned())
        .await
        .map_err(|_| EvalError::Busy)?
        .map_err(|_| EvalError::Busy)?;
    let handle = tokio::task::spawn_blocking(move || {
        // Released when the job really ends, not when the caller stops
        // waiting for it.
        let _permit = permit;
        job()
    });
    match tokio::time::timeout(budget, handle).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(EvalError::Failed(e.to_string())),
        Err(_) => Err(EvalError::TimedOut),
    }
}

/// Runs `job` on the message of `size` bytes: on the calling task when it
/// is small ([`INLINE_MAX`]), else in a slot of the pool ([`run`]). Either
/// way a job past `budget` gives [`EvalError::TimedOut`] and a panic
/// [`EvalError::Failed`].
pub async fn run_sized<T, F>(size: u64, budget: Duration, job: F) -> Result<T, EvalError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if size <= INLINE_MAX {
        return run_here(budget, job);
    }
    run(budget, job).await
}

/// Runs `job` on this thread; its time is checked once it has ended.
fn run_here<T>(budget: Duration, job: impl FnOnce() -> T) -> Result<T, EvalError> {
    let started = Instant::now();
    let value = std::panic::catch_unwind(AssertUnwindSafe(job)).map_err(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panicked".to_string());
        EvalError::Failed(why)
    })?;
    if started.elapsed() > budget {
        return Err(EvalError::TimedOut);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_grows_with_the_message() {
        let base = Duration::from_millis(100);
        assert_eq!(budget(base, 0), base);
        assert!(budget(base, 1000) < base + Duration::from_millis(1));
        assert_eq!(budget(base, 10 * 1024 * 1024), base + PARSE_PER_MIB * 10);
    }

    #[tokio::test]
    async fn a_small_message_runs_here_with_the_same_outcomes() {
        let here = std::thread::current().id();
        let ran_on = run_sized(INLINE_MAX, Duration::from_secs(5), move || {
            std::thread::current().id()
        })
        .await;
        assert_eq!(ran_on, Ok(here));
        let pooled = run_sized(INLINE_MAX + 1, Duration::from_secs(5), move || {
            std::thread::current().id()
        })
        .await;
        assert_ne!(pooled, Ok(here));
        let slow = run_sized(10, Duration::from_millis(1), || {
            std::thread::sleep(Duration::from_millis(20))
        })
        .await;
        assert_eq!(slow, Err(EvalError::TimedOut));
        let failed = run_sized(10, Duration::from_secs(5), || -> u8 { panic!("boom") }).await;
        assert_eq!(failed, Err(EvalError::Failed("boom".into())));
    }

    #[tokio::test]
    async fn a_timed_out_job_keeps_its_slot_until_it_ends() {
        let cores = slots().available_permits();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let stuck = run(Duration::from_millis(10), move || {
            let _ = rx.recv();
        })
        .await;
        assert_eq!(stuck, Err(EvalError::TimedOut));
        assert_eq!(slots().available_permits(), cores - 1, "still held");
        tx.send(()).expect("release");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while slots().available_permits() != cores {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(run(Duration::from_secs(5), || 7).await, Ok(7));
    }
}
