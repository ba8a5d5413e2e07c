//! Work spread over threads, results handed back in input order: what
//! lets `weir run --jobs N` print exactly what one thread prints.

use std::collections::BTreeMap;
use std::ops::{ControlFlow, Range};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

/// The most items one thread takes at once. Handing results over one by
/// one cost a channel operation and a wake-up of the printing thread per
/// message (24,000 context switches over 10,000 messages, 17 % more CPU
/// than one thread); a run of consecutive items costs one.
const MAX_RUN: usize = 32;

/// Calls `work(i)` for every `i` in `0..count` on `jobs` threads (inline
/// when `jobs` is 1) and `sink(i, result)` on the calling thread in
/// order of `i`. Each thread builds its own state with `init`. When
/// `sink` breaks, the threads stop taking work and the call returns.
/// Threads take runs of consecutive items, shorter as the end nears so
/// that they finish together; a run finished ahead of an earlier one
/// waits in memory until it is done (for `weir run`, printed decisions
/// of a few hundred bytes to a few kilobytes each).
pub fn for_each_ordered<S, R: Send>(
    jobs: usize,
    count: usize,
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, usize) -> R + Sync,
    mut sink: impl FnMut(usize, R) -> ControlFlow<()>,
) {
    if jobs <= 1 || count <= 1 {
        let mut state = init();
        for i in 0..count {
            if sink(i, work(&mut state, i)).is_break() {
                return;
            }
        }
        return;
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Enough room that a worker rarely waits on the printer. Made
        // inside the scope so that returning drops the receiver, which
        // ends the sends of workers blocked on a full channel before the
        // scope waits for them.
        let (tx, rx) = mpsc::sync_channel::<(usize, Vec<R>)>(jobs * 4);
        for _ in 0..jobs.min(count) {
            let tx = tx.clone();
            let (next, stop, init, work) = (&next, &stop, &init, &work);
            scope.spawn(move || {
                let mut state = init();
                while !stop.load(Ordering::Relaxed) {
                    let Some(run) = take_run(next, count, jobs) else {
                        break;
                    };
                    let start = run.start;
                    let results = run.map(|i| work(&mut state, i)).collect();
                    if tx.send((start, results)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Runs that arrived before an earlier one: held until it comes.
        let mut waiting = BTreeMap::new();
        let mut expected = 0;
        for (start, results) in rx.iter() {
            waiting.insert(start, results);
            while let Some(results) = waiting.remove(&expected) {
                for result in results {
                    if sink(expected, result).is_break() {
                        stop.store(true, Ordering::Relaxed);
                        // Dropping the receiver ends every blocked send.
                        return;
                    }
                    expected += 1;
                }
            }
        }
    });
}

/// Claims the next run of items: an eighth of each thread's share of
/// what is left, between 1 and `MAX_RUN`, so the last runs are single
/// items and no thread is left with a long run while the others idle.
fn take_run(next: &AtomicUsize, count: usize, jobs: usize) -> Option<Range<usize>> {
    let mut start = next.load(Ordering::Relaxed);
    loop {
        if start >= count {
            return None;
        }
        let len = ((count - start) / (jobs * 8)).clamp(1, MAX_RUN);
        match next.compare_exchange_weak(start, start + len, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return Some(start..start + len),
            Err(now) => start = now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uneven work, so that threads finish out of order.
    fn slow_square(i: usize) -> usize {
        let spin = (i % 7) * 20_000;
        std::hint::black_box((0..spin).fold(0usize, |a, b| a.wrapping_add(b & 1)));
        i * i
    }

    #[test]
    fn results_come_back_in_input_order_whatever_the_threads() {
        for jobs in [1, 2, 3, 8] {
            let mut seen = Vec::new();
            for_each_ordered(
                jobs,
                300,
                || (),
                |_, i| slow_square(i),
                |i, r| {
                    seen.push((i, r));
                    ControlFlow::Continue(())
                },
            );
            let want: Vec<(usize, usize)> = (0..300).map(|i| (i, i * i)).collect();
            assert_eq!(seen, want, "jobs {jobs}");
        }
    }

    #[test]
    fn a_break_stops_the_work() {
        let done = AtomicUsize::new(0);
        let mut sunk = 0;
        for_each_ordered(
            2,
            100_000,
            || (),
            |_, i| {
                done.fetch_add(1, Ordering::Relaxed);
                slow_square(i)
            },
            |i, _| {
                sunk += 1;
                if i == 10 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        assert_eq!(sunk, 11);
        assert!(done.load(Ordering::Relaxed) < 100_000);
    }

    #[test]
    fn a_break_returns_while_the_workers_wait_on_a_full_channel() {
        let mut sunk = 0;
        for_each_ordered(
            2,
            1_000_000,
            || (),
            |_, i| i,
            |_, _| {
                sunk += 1;
                // Meanwhile the workers fill the channel and block on it.
                std::thread::sleep(std::time::Duration::from_millis(100));
                ControlFlow::Break(())
            },
        );
        assert_eq!(sunk, 1);
    }
}
