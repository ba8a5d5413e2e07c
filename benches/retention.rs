//! The hourly retention run over the audit log
//! (`weir_serve::bench::AuditLog::prune`, `[audit] retention`) when
//! nothing has expired, with 1,000 and with 100,000 entries kept, and
//! with 1,000 entries written since the run before (which it indexes by
//! time): what a busy host pays every hour for the days of decisions it
//! keeps.
//!
//! `cargo bench -p weir-benches --bench retention`

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use weir_serve::bench::AuditLog;

/// When the entries were written (seconds since the epoch); the cutoff is
/// an hour earlier, so none has expired.
const WRITTEN: i64 = 1_800_000_000;

fn nothing_expired(c: &mut Criterion) {
    let mut group = c.benchmark_group("audit retention");
    group.sample_size(10);
    for kept in [1_000, 100_000] {
        let dir = std::env::temp_dir().join(format!(
            "weir-bench-retention-{}-{kept}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let log = AuditLog::open(&dir).expect("the store opens");
        log.append(kept, WRITTEN).expect("entries written");
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
        drop(log);
        let _ = std::fs::remove_dir_all(&dir);
    }
    group.finish();
}

criterion_group!(benches, nothing_expired);
criterion_main!(benches);
