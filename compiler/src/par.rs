//! A map over a slice on several threads whose result does not depend on
//! their timing (the checker's regex literals, `check/regexes.rs`).

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The most threads one map runs on: a (re)load should not take every
/// core of a large machine from the mail it serves.
const MAX_THREADS: usize = 4;

/// `items.iter().map(f).collect()`, computed on up to [`MAX_THREADS`]
/// threads (the calling one included), each taking the next `batch`
/// items not yet taken; the results come back in the order of `items`.
/// Fewer than four batches are mapped on the calling thread, as is
/// everything when no other thread can start. A panic in `f` goes on to
/// the caller, as it would on one thread.
pub(crate) fn map<T: Sync, R: Send>(
    items: &[T],
    batch: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let batch = batch.max(1);
    let threads = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(MAX_THREADS);
    map_on(items, batch, threads, &f)
}

/// [`map`] on at most `threads` threads.
fn map_on<T: Sync, R: Send>(
    items: &[T],
    batch: usize,
    threads: usize,
    f: &(impl Fn(&T) -> R + Sync),
) -> Vec<R> {
    let batches = items.len().div_ceil(batch);
    if threads <= 1 || batches < 4 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let worker = || {
        let mut done = Vec::new();
        loop {
            let start = next.fetch_add(batch, Ordering::Relaxed);
            let Some(rest) = items.get(start..).filter(|rest| !rest.is_empty()) else {
                return done;
            };
            let taken = &rest[..rest.len().min(batch)];
            done.push((start, taken.iter().map(f).collect::<Vec<R>>()));
        }
    };
    let mut done = std::thread::scope(|s| {
        // A thread the system refuses leaves its batches to the others.
        let helpers: Vec<_> = (1..threads.min(batches))
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(s, worker).ok())
            .collect();
        let mut done = worker();
        for helper in helpers {
            match helper.join() {
                Ok(more) => done.extend(more),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        done
    });
    done.sort_unstable_by_key(|(start, _)| *start);
    done.into_iter().flat_map(|(_, results)| results).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the threads and the batch, the results are the one-thread
    /// map's, in order.
    #[test]
    fn the_results_are_the_one_thread_map_in_order() {
        let items: Vec<u64> = (0..1000).collect();
        let slow_square = |&x: &u64| {
            // Uneven work, so the threads finish out of order.
            (0..(x % 13) * 100).fold(x * x, |a, b| a ^ (b & 1))
        };
        let alone: Vec<u64> = items.iter().map(slow_square).collect();
        for threads in [1, 2, 3, 4] {
            for batch in [1, 7, 32, 2000] {
                for _ in 0..4 {
                    assert_eq!(map_on(&items, batch, threads, &slow_square), alone);
                }
            }
        }
        assert!(map_on(&[] as &[u64], 8, 4, &slow_square).is_empty());
    }
}
