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

/// The size from which glibc serves an allocation with its own mapping,
/// returned to the system when freed: above every message buffer of
/// ordinary mail, so messages are not slowed by a mapping each.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 512 * 1024;

/// How much free memory an arena may keep at its top before glibc returns
/// it on a `free`: large, since [`release_free_memory`] returns it once a
/// burst ends, and trimming (and growing again) within a burst costs
/// system calls and page faults.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 64 << 20;

/// Fixes glibc's mapping and trim thresholds ([`MMAP_THRESHOLD`],
/// [`TRIM_THRESHOLD`]). By default glibc raises its mapping threshold to
/// the size of every mapped block freed (up to 32 MiB): after the first
/// large messages, later ones are served from the arenas and leave them
/// fragmented among long-lived data (regex caches, the store's cache),
/// which [`release_free_memory`] cannot return. Fixed thresholds keep the
/// daemon several MB smaller after serving (benches/README.md, "The
/// daemon's memory after serving, round seven"). Call it before the
/// threads that allocate start. Elsewhere than glibc it does nothing.
pub fn fix_allocator_thresholds() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` takes no pointers and only sets parameters of the
    // allocator, under its own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
