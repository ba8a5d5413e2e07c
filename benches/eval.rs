//! Evaluation throughput over the synthetic corpus, parse included, rules
//! compiled once (steady state), for N generated rules; and mail-parser's
//! parse-only throughput on the same corpus (the ceiling).
//!
//! `cargo bench -p weir-benches --bench eval` (set `WEIR_BENCH_N=10,100`
//! to choose the rule counts). Results go in `benches/README.md`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use weir_benches::{rules, synth_messages};
use weir_compiler::{EvalOptions, FsLoader, MemoryRates, compile};
use weir_stdlib::{Limits, Message, Transaction};

fn rule_counts() -> Vec<usize> {
    std::env::var("WEIR_BENCH_N")
        .unwrap_or_else(|_| "10,100,1000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

fn parse_only(c: &mut Criterion) {
    let messages = synth_messages();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(messages.len() as u64));
    group.sample_size(10);
    group.bench_function("mail-parser", |b| {
        b.iter(|| {
            let parser = mail_parser::MessageParser::default();
            messages.iter().filter_map(|m| parser.parse(m)).count()
        })
    });
    group.bench_function("weir message model", |b| {
        b.iter(|| {
            messages
                .iter()
                .filter_map(|m| Message::parse(m, &Limits::default()).ok())
                .map(|m| m.body_text().len())
                .sum::<usize>()
        })
    });
    group.finish();
}

fn interpreter(c: &mut Criterion) {
    let messages = synth_messages();
    let mut group = c.benchmark_group("interp");
    group.throughput(Throughput::Elements(messages.len() as u64));
    group.sample_size(10);
    for n in rule_counts() {
        let compiled = compile(&rules(n), &FsLoader);
        let ruleset = compiled.ruleset.expect("generated rules compile");
        group.bench_function(format!("synth/{n} rules"), |b| {
            b.iter(|| {
                let mut rates = MemoryRates::default();
                let mut tags = 0;
                for bytes in &messages {
                    let message = Message::parse(bytes, &Limits::default()).expect("within limits");
                    let tx = Transaction::with_defaults(message, None, &[], None, None, 0);
                    tags += ruleset
                        .evaluate(&tx, &mut rates, &EvalOptions::default())
                        .tags
                        .len();
                }
                tags
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parse_only, interpreter);
criterion_main!(benches);
