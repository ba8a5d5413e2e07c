//! The hot path allocates a fixed small number of times per message,
//! whatever the number of rules: a counting allocator around one
//! evaluation of an already parsed message, at 10, 1,000 and 10,000 rules
//! of the shapes `tests/corpus/gen_rules.py` generates (substring,
//! equality and regex tests on headers and bodies).
//!
//! Its own test binary: the counting allocator is the process's global one.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Write as _;

use common::*;
use weir_compiler::{EvalOptions, MemoryRates, NativeRuleset};

/// Counts the allocations made on threads that asked for it.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the thread's slots may be gone while it exits.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = COUNT.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every call is passed on unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations (and reallocations) made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    COUNT.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    COUNT.with(Cell::get)
}

/// Three rules that hold on [`MESSAGE`], then `n` that do not, cycling
/// through the generated shapes.
fn ruleset_text(n: usize) -> String {
    let mut text = String::from(
        "rule hello { when subject contains \"quarterly\" then tag \"report\" }\n\
         rule billing {\n  when body contains \"invoice attached\"\n  then {\n    tag \"billing\"\n    score +2\n  }\n}\n\
         rule domain { when from.domain == \"example.com\" then fileinto \"Work\" }\n",
    );
    for i in 0..n {
        let when = match i % 6 {
            0 => format!("subject contains \"word{i}\""),
            1 => format!("body contains \"phrase{i} lowest\""),
            2 => format!("header(\"X-Mailer\") contains \"Mailer {i}\""),
            3 => format!("body matches /z{i}q (is|was) now/i"),
            4 => format!("from.domain == \"domain{i}.org\""),
            _ => format!("subject matches /^re: w{i}x/i or to.address == \"u{i}@example.net\""),
        };
        let _ = writeln!(text, "rule r{i} {{ when {when} then tag \"r{i}\" }}");
    }
    text
}

const MESSAGE: &str = "From: Alice <alice@example.com>\r\n\
To: Bob <bob@example.org>\r\n\
Subject: The quarterly report\r\n\
X-Mailer: Mailer Q\r\n\
Date: Sun, 6 Dec 2026 08:00:00 +0000\r\n\
Message-ID: <q1@example.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Hello Bob, the invoice attached is for the quarter. Caf=C3=A9 at ten?\r\n\
\r\n\
Alice\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Hello Bob, the <b>invoice attached</b> is for the quarter.</p>\r\n\
--b1--\r\n";

/// Allocations of one native evaluation of [`MESSAGE`], after warming up.
fn per_message(n: usize) -> u64 {
    let ruleset = rules(&ruleset_text(n));
    let native = NativeRuleset::compile(&ruleset).expect("native code on this host");
    let t = tx(MESSAGE);
    let opts = EvalOptions::default();
    let mut rates = MemoryRates::default();
    // The first evaluations build the regexes and the message's decoded
    // fields, once per ruleset and per message.
    let first = native.evaluate(&t, &mut rates, &opts);
    assert_eq!(first.tags, ["report", "billing"], "{n} rules");
    assert_eq!(first.folder.as_deref(), Some("Work"));
    native.evaluate(&t, &mut rates, &opts);
    let counts: Vec<u64> = (0..5)
        .map(|_| {
            allocations(|| {
                std::hint::black_box(native.evaluate(&t, &mut rates, &opts));
            })
        })
        .collect();
    // Steady state: every evaluation allocates the same.
    assert!(counts.windows(2).all(|w| w[0] == w[1]), "{counts:?}");
    counts[0]
}

#[test]
fn an_evaluation_allocates_the_same_few_times_at_10_1000_and_10000_rules() {
    let counts: Vec<(usize, u64)> = [10, 1_000, 10_000]
        .into_iter()
        .map(|n| (n, per_message(n)))
        .collect();
    eprintln!("allocations per message: {counts:?}");
    let (_, at_ten) = counts[0];
    assert!(
        counts.iter().all(|&(_, c)| c == at_ten),
        "allocations grow with the rules: {counts:?}"
    );
    assert!(
        at_ten <= BOUND,
        "{at_ten} allocations per message, more than {BOUND}"
    );
}

/// The fixed budget, 54 measured: the fields the rules read, built once
/// per evaluation (the `from` and `to` address lists and their members,
/// the subject, a header's values, their case-folded copies for the
/// prefilter), the decision (its lists of matched rules, tags and
/// actions, the folder; rule names and tags of up to 23 bytes are copied
/// inline) and the interpreter state (two tables).
/// The prefilter's per-message state is reused between messages.
const BOUND: u64 = 72;
