//! The audit log against the number of entries it keeps (a day of a busy
//! host is 100,000):
//! - the hourly retention run (`weir_serve::bench::AuditLog::prune`,
//!   `[audit] retention`) when nothing has expired, and with 1,000
//!   entries written since the run before (which it indexes by time);
//! - every entry of the last hour (`weir_serve::bench::AuditLog::since`),
//!   as `/v1/actions?since=` and the console's Overview (the last day,
//!   every 5 s) ask, when the log also keeps 100,000 older entries.
//!
//! `cargo bench -p weir-benches --bench audit`

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use weir_serve::bench::AuditLog;

/// When the entries were written (seconds since the epoch); the cutoff is
/// an hour earlier, so none has expired.
const WRITTEN: i64 = 1_800_000_000;

/// The Overview's limit: every entry of the day.
const ALL: usize = 200_000;

/// A log of `kept` entries in a fresh directory, removed afterwards.
fn with_log(kept: usize, time: i64, bench: impl FnOnce(&AuditLog)) {
    let dir = std::env::temp_dir().join(format!(
        "weir-bench-audit-{}-{kept}-{time}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let log = AuditLog::open(&dir).expect("the store opens");
    log.append(kept, time).expect("entries written");
    bench(&log);
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

fn retention(c: &mut Criterion) {
    let mut group = c.benchmark_group("audit retention");
    group.sample_size(10);
    for kept in [1_000, 100_000] {
        with_log(kept, WRITTEN, |log| {
            assert_eq!(log.prune(WRITTEN - 3600).expect("pruned"), 0);
            group.bench_function(format!("{kept} entries, none expired"), |b| {
                b.iter(|| log.prune(WRITTEN - 3600).expect("pruned"));
            });
            group.bench_function(format!("{kept} entries, 1000 new, none expired"), |b| {
                b.iter_batched(
                    || log.append(1_000, WRITTEN).expect("entries written"),
                    |()| log.prune(WRITTEN - 3600).expect("pruned"),
                    BatchSize::PerIteration,
                );
            });
        });
    }
    group.finish();
}

fn last_hour(c: &mut Criterion) {
    let mut group = c.benchmark_group("audit since");
    group.sample_size(10);
    for older in [0, 100_000] {
        with_log(older, WRITTEN - 86_400, |log| {
            log.append(1_000, WRITTEN).expect("the last hour's entries");
            // The retention run that indexes them, as at start and hourly.
            log.prune(0).expect("indexed");
            assert_eq!(log.since(WRITTEN - 3600, ALL), 1_000);
            group.bench_function(format!("the last hour's 1000, {older} older"), |b| {
                b.iter(|| log.since(WRITTEN - 3600, ALL));
            });
        });
    }
    group.finish();
}

criterion_group!(benches, retention, last_hour);
criterion_main!(benches);
