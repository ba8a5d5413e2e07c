//! A built regex stays small: the regex crate builds full (dense) DFAs for
//! small patterns (up to 30 NFA states) when regex-automata's `dfa-build`
//! feature is on anywhere in the build (Cargo unifies features: one crate
//! of the workspace asking for it is enough; `tracing-subscriber`'s
//! `env-filter` does). They cost about 5 KB more per regex, a sixth of it,
//! kept for the ruleset's life, and evaluating was no faster with them
//! (benches/README.md, "Issue 17, the daemon's memory"). The lazy DFA the
//! crate uses instead grows its cache only as a search needs it.
//!
//! Under `cargo test --workspace` (CI's command) this binary is built with
//! the features every crate of the workspace asks for, so a dependency
//! that turns full DFAs on again fails here.
//!
//! Its own test binary: the counting allocator is the process's global one.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use weir_stdlib::pattern::Regex;

/// Bytes allocated and not yet freed, over the whole process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// Counts live bytes and passes every call on to the system allocator.
struct Counting;

fn size(layout: Layout) -> isize {
    isize::try_from(layout.size()).unwrap_or(isize::MAX)
}

// SAFETY: every call is passed on unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(size(layout), Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(size(layout), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let grown = isize::try_from(new_size).unwrap_or(isize::MAX) - size(layout);
        LIVE.fetch_add(grown, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(size(layout), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Patterns of the shapes `tests/corpus/gen_rules.py` generates most (the
/// 10,000-rule benchmark's), `i` to tell them apart.
fn patterns(i: usize) -> [String; 4] {
    [
        format!("zarojadi{i} (is|was|are) now"),
        format!("^(re|fwd): .*bimu{i}"),
        format!("kevevu{i}[0-9]{{2,3}}"),
        format!("(lowest|cheap{i}) (price|deal|offer)s?"),
    ]
}

#[test]
fn a_built_regex_holds_no_full_dfa() {
    const COUNT: usize = 100;
    let regexes: Vec<Regex> = (0..COUNT)
        .flat_map(patterns)
        .map(|p| Regex::new(&p, "i").expect("a valid pattern"))
        .collect();
    let before = LIVE.load(Ordering::Relaxed);
    for re in &regexes {
        // Built, and searched once, as a message would.
        assert!(!re.is_match("nothing to see here"));
    }
    let per_regex = (LIVE.load(Ordering::Relaxed) - before) / (4 * COUNT as isize);
    eprintln!("{per_regex} bytes per built regex");
    // Measured (regex 1.13, regex-automata 0.4.18): 26.3 KB per regex
    // built with its capture groups and without full DFAs, 31.4 KB with
    // them (the same patterns, with regex-automata's `dfa-build` on);
    // 19.1 KB built without its groups, as `is_match` builds it.
    assert!(
        per_regex < 22 << 10,
        "a built regex holds {per_regex} bytes: are the regex crate's full DFAs on?"
    );
}
