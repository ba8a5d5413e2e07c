//! The milter path end to end: the milter server of `weir serve` embedded
//! in this process (`weir_serve::EmbeddedMilter`: ruleset compiled to native
//! code, store and audit log in a temporary directory) on a loopback port,
//! driven by concurrent milter sessions (`weir_benches::load`) sending the
//! synthetic corpus, one message per connection as Postfix does.
//!
//! One iteration is one message; criterion's time per iteration is wall
//! time divided by messages at that concurrency, so its throughput is
//! messages per second. Per-message latency quantiles come from the
//! `milter-load` tool (see `benches/README.md`).
//!
//! `cargo bench -p weir-benches --bench milter` (set `WEIR_BENCH_N=10,1000`
//! to choose the rule counts; 1,000 by default).

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use weir_benches::load::{self, Plan};
use weir_benches::{rules, synth_messages};

/// Concurrent sessions measured: one (latency-bound) and many (as an MTA
/// under load).
const SESSIONS: [usize; 2] = [1, 32];

fn rule_counts() -> Vec<usize> {
    std::env::var("WEIR_BENCH_N")
        .unwrap_or_else(|_| "1000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

fn milter(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mails = Arc::new(load::mails(&synth_messages(), 1));
    let mut group = c.benchmark_group("milter");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    for n in rule_counts() {
        let state =
            std::env::temp_dir().join(format!("weir-bench-milter-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        let server = runtime
            .block_on(weir_serve::EmbeddedMilter::start(&rules(n), &state))
            .expect("the generated rules load");
        let mut sent = 0;
        for sessions in SESSIONS {
            group.bench_function(format!("{n} rules/{sessions} sessions"), |b| {
                b.iter_custom(|iters| {
                    let messages = usize::try_from(iters).unwrap_or(usize::MAX);
                    let plan = Plan {
                        addr: server.addr().into(),
                        sessions,
                        messages,
                        per_connection: 1,
                        first: sent,
                        lmtp: None,
                    };
                    sent = sent.wrapping_add(messages);
                    let report = runtime
                        .block_on(load::run(&plan, mails.clone()))
                        .expect("every message gets a reply");
                    report.elapsed
                })
            });
        }
        runtime.block_on(server.stop()).expect("the server stops");
        let _ = std::fs::remove_dir_all(&state);
    }
    group.finish();
}

criterion_group!(benches, milter);
criterion_main!(benches);
