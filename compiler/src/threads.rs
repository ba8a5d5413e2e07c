//! How many threads one compile may use, the calling thread included:
//! one per core, at most four (a reload should not take every core of a
//! large machine from the mail it serves), and no more than the program
//! allows (`weir run --jobs`).

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The most threads a compile uses on any machine.
const MAX_THREADS: usize = 4;

/// The program's limit ([`limit_compile_threads`]); none until it sets one.
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Lets every later compile in this process use at most `threads`
/// threads, the calling one included (at least one): `weir run --jobs 1`
/// runs on one thread from start to end.
pub fn limit_compile_threads(threads: NonZeroUsize) {
    LIMIT.store(threads.get(), Ordering::Relaxed);
}

/// The threads a compile may use, the calling one included: at least one.
pub(crate) fn compile_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(MAX_THREADS)
        .min(LIMIT.load(Ordering::Relaxed))
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_caps_the_threads_and_lifting_it_restores_them() {
        let before = compile_threads();
        assert!((1..=MAX_THREADS).contains(&before));
        limit_compile_threads(NonZeroUsize::MIN);
        assert_eq!(compile_threads(), 1);
        LIMIT.store(usize::MAX, Ordering::Relaxed);
        assert_eq!(compile_threads(), before);
    }
}
