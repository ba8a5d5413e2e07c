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

/// `VmRSS` and `VmHWM` (peak) of this process in KiB, from
/// /proc/self/status (Linux).
fn rss_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Compile time and memory of a large rule file, phase by phase (ignored
/// by default; `WEIR_RULES=target/bench-corpus/rules/rules_10000.flow
/// cargo test --release -p weir-compiler --test native_timing -- --ignored
/// --nocapture measure_rule_file`).
#[test]
#[ignore = "a measurement, not a test: run in release with WEIR_RULES"]
fn measure_rule_file() {
    let Some(path) = std::env::var_os("WEIR_RULES") else {
        eprintln!("WEIR_RULES is not set: nothing measured");
        return;
    };
    let path = std::path::PathBuf::from(path);
    eprintln!("before: RSS, peak (KiB) {:?}", rss_kib());
    let text = std::fs::read_to_string(&path).expect("the rule file");
    let started = Instant::now();
    let (_, diagnostics) = weir_grammar::parse(&text, "rules.flow");
    assert!(diagnostics.is_empty());
    eprintln!("parse alone: {:?}", started.elapsed());
    let started = Instant::now();
    let compiled = weir_compiler::compile(&path, &weir_compiler::FsLoader);
    let ruleset = compiled.ruleset.expect("the rules compile");
    let checked = started.elapsed();
    eprintln!(
        "parse + check + lower: {checked:?}; RSS, peak {:?}",
        rss_kib()
    );
    for prefilter in [false, true] {
        let started = Instant::now();
        let native = if prefilter {
            NativeRuleset::compile(&ruleset)
        } else {
            NativeRuleset::compile_without_prefilter(&ruleset)
        }
        .expect("native code");
        eprintln!(
            "native (prefilter {prefilter}): {:?}, {} leaves, {} prefiltered; RSS, peak {:?}",
            started.elapsed(),
            native.leaf_count(),
            native.prefiltered_count(),
            rss_kib()
        );
        drop(native);
    }
}

/// Messages per second of the native engine over a folder of mail, rules
/// compiled once, parse included, a few passes (ignored by default; a
/// quick loop for profiling, criterion in `benches/` is the measure):
/// `WEIR_RULES=target/bench-corpus/rules/rules_10000.flow
/// WEIR_MAIL=target/bench-corpus/synth cargo test --release -p
/// weir-compiler --test native_timing -- --ignored --nocapture
/// measure_throughput`.
#[test]
#[ignore = "a measurement, not a test: run in release with WEIR_RULES and WEIR_MAIL"]
fn measure_throughput() {
    let (Some(rules), Some(mail)) = (
        std::env::var_os("WEIR_RULES"),
        std::env::var_os("WEIR_MAIL"),
    ) else {
        eprintln!("WEIR_RULES or WEIR_MAIL is not set: nothing measured");
        return;
    };
    let compiled = weir_compiler::compile(std::path::Path::new(&rules), &weir_compiler::FsLoader);
    let ruleset = compiled.ruleset.expect("the rules compile");
    let native = NativeRuleset::compile(&ruleset).expect("native code");
    let messages: Vec<Vec<u8>> = std::fs::read_dir(mail)
        .expect("the mail folder")
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .collect();
    let opts = EvalOptions::default();
    for pass in 0..5 {
        let started = Instant::now();
        let mut tags = 0;
        for bytes in &messages {
            let message = Message::parse(bytes, &Limits::default()).expect("within limits");
            let tx = Transaction::with_defaults(message, None, &[], None, None, NOW);
            tags += native
                .evaluate(&tx, &mut MemoryRates::default(), &opts)
                .tags
                .len();
        }
        let elapsed = started.elapsed();
        eprintln!(
            "pass {pass}: {} messages in {elapsed:?} ({:.0}/s), {tags} tags",
            messages.len(),
            messages.len() as f64 / elapsed.as_secs_f64()
        );
    }
}
