//! Times the two halves of loading a ruleset, as `weir run` and a daemon
//! (re)load do them: the front end (`compile`: parse, check, lower) and
//! the native back end (`NativeRuleset::compile`: leaf table, prefilter,
//! Cranelift), best and median of `ROUNDS` rounds of wall time and of the
//! calling thread's CPU time. Parsing and code generation run on several
//! threads: on a machine with a free core for each, the wall time is about
//! the calling thread's CPU time; on a busy one, the wall time shows the
//! wait for a core, and `perf stat -e task-clock` the CPU time of all.
//!
//! `cargo run --release -p weir-compiler --example compile_time -- RULES.flow [ROUNDS]`
//!
//! It builds without the daemon (unlike `benches/`), so a change to the
//! compiler is measured after rebuilding one crate; run it under
//! `perf stat -e task-clock` for CPU time, or `perf record` for a profile.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use weir_compiler::{FsLoader, NativeRuleset, compile};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        eprintln!("usage: compile_time RULES.flow [ROUNDS]");
        std::process::exit(2);
    };
    let rounds: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    let mut front = Vec::new();
    let mut back = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..rounds.max(1) {
        let start_cpu = thread_cpu();
        let start = Instant::now();
        let compiled = compile(&path, &FsLoader);
        let Some(ruleset) = compiled.ruleset else {
            for d in &compiled.diagnostics {
                eprintln!("{}", compiled.render(d));
            }
            std::process::exit(1);
        };
        let checked = Instant::now();
        let native = match NativeRuleset::compile(&ruleset) {
            Ok(native) => native,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
        let done = Instant::now();
        cpu.push(thread_cpu().saturating_sub(start_cpu));
        std::hint::black_box(native.leaf_count());
        front.push(checked - start);
        back.push(done - checked);
    }
    let total: Vec<Duration> = front.iter().zip(&back).map(|(f, b)| *f + *b).collect();
    for (name, times) in [
        ("front end", front),
        ("native", back),
        ("total", total),
        ("thread CPU", cpu),
    ] {
        println!("{name:<10} {}", summary(times));
    }
}

/// The CPU time the calling thread has run, from the scheduler's
/// statistics (Linux; zero elsewhere).
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// "best B ms, median M ms" of `times`.
fn summary(mut times: Vec<Duration>) -> String {
    times.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "best {:7.1} ms, median {:7.1} ms",
        ms(times[0]),
        ms(times[times.len() / 2])
    )
}
