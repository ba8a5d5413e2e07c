//! Giving back the memory a compile freed. glibc's allocator keeps what a
//! thread frees in that thread's arena, and returns it to the system only
//! from the top of the arena: a compile (the grammar's parse threads, the
//! checker, the prefilter's analysis threads, Cranelift) frees most of
//! what it allocated, but below the ruleset it keeps, so those pages stay
//! resident for the life of the process. At 10,000 rules that was about
//! 9 MB of the daemon's 64 MB after start (benches/README.md, "The
//! daemon's memory, round four").

/// Returns the pages the C allocator holds free, in every arena, to the
/// operating system (glibc's `malloc_trim(0)`); live allocations do not
/// move. It walks and locks each arena in turn, so call it where a burst
/// of allocation has just ended (after a ruleset is loaded), not per
/// message. Elsewhere than glibc it does nothing.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointers and touches only the
    // allocator's own free lists, under each arena's lock.
    unsafe {
        libc::malloc_trim(0);
    }
}
