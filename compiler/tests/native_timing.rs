//! A rough timing of both engines (ignored by default; run in release:
//! `cargo test --release -p weir-compiler --test native_timing -- --ignored --nocapture`).
//! Criterion benchmarks in `benches/` are the real measure.

mod common;

use std::fmt::Write as _;
use std::time::Instant;

use common::*;
use weir_compiler::{EvalOptions, MemoryRates, NativeRuleset};
use weir_stdlib::{Limits, Message, Transaction};

#[test]
#[ignore = "a timing, not a test: run in release"]
fn time_both_engines() {
    let mut text = String::from("let words = [\"invoice\", \"refund\", \"ticket\"]\n");
    for i in 0..200 {
        let _ = write!(
            text,
            "rule r{i} {{\n  when (subject contains \"w{i}\" or from.domain == \"d{i}.example\") \
             and not (header(\"X-{i}\") exists) and (size > {i} or score < 3)\n  then tag \"t{i}\"\n}}\n"
        );
    }
    let r = rules(&text);
    let started = Instant::now();
    let native = NativeRuleset::compile(&r).expect("native code");
    eprintln!("compile 200 rules: {:?}", started.elapsed());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/eval/mail");
    let txs: Vec<Transaction> = std::fs::read_dir(root)
        .expect("the eval mail")
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| Message::parse(&b, &Limits::default()).ok())
        .map(|m| Transaction::with_defaults(m, None, &[], None, None, NOW))
        .collect();
    let opts = EvalOptions::default();
    for round in 0..2 {
        let started = Instant::now();
        for _ in 0..200 {
            for tx in &txs {
                r.evaluate(tx, &mut MemoryRates::default(), &opts);
            }
        }
        let interp = started.elapsed();
        let started = Instant::now();
        for _ in 0..200 {
            for tx in &txs {
                native.evaluate(tx, &mut MemoryRates::default(), &opts);
            }
        }
        let jit = started.elapsed();
        eprintln!(
            "round {round}: interp {interp:?}, jit {jit:?} ({} evaluations each)",
            200 * txs.len()
        );
    }
}
