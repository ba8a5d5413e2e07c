//! The outbox worker's idle cost: one look at the queue
//! (`weir_serve::bench::OutboxQueue::tick`, what the worker does at least
//! once a second) with no pending item and with 10,000 pending items none
//! of which is due. The due index makes the two the same: the worker reads
//! the due prefix of the index and the first key after it, never the
//! waiting items.
//!
//! `cargo bench -p weir-benches --bench outbox`

use criterion::{Criterion, criterion_group, criterion_main};
use weir_serve::bench::OutboxQueue;

/// Items waiting in the larger queue.
const WAITING: usize = 10_000;

fn idle_tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("outbox idle tick");
    for waiting in [0, WAITING] {
        let dir = std::env::temp_dir().join(format!(
            "weir-bench-outbox-{}-{waiting}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let queue = OutboxQueue::open(&dir).expect("the store opens");
        queue.queue_not_due(waiting).expect("items queued");
        assert_eq!(queue.pending(), i64::try_from(waiting).unwrap_or(i64::MAX));
        assert_eq!(queue.tick(), 0, "nothing is due");
        group.bench_function(format!("{waiting} pending, none due"), |b| {
            b.iter(|| queue.tick());
        });
        drop(queue);
        let _ = std::fs::remove_dir_all(&dir);
    }
    group.finish();
}

criterion_group!(benches, idle_tick);
criterion_main!(benches);
