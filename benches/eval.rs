//! Evaluation throughput over the synthetic corpus, parse included, rules
//! compiled once (steady state), for N generated rules, under the
//! interpreter and the native (Cranelift) engine; mail-parser's parse-only
//! throughput on the same corpus (the ceiling); and the time to compile
//! N rules from source to native code (parse, check, lower, JIT).
//!
//! `cargo bench -p weir-benches --bench eval` (set `WEIR_BENCH_N=10,100`
//! to choose the rule counts, `WEIR_BENCH_COMPILE_N` those of the compile
//! group, 10000 by default). `WEIR_BENCH_REAL=1` adds the same groups over
//! real mail, the SpamAssassin public corpus (6,046 messages, fetched into
//! a cache on first use), with rules generated from its own vocabulary:
//! `parse/spamassassin/...`, `interp/spamassassin/N rules`,
//! `jit/spamassassin/N rules`. Results go in `benches/README.md`.

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use weir_benches::{rules, spamassassin_messages, spamassassin_rules, synth_messages};
use weir_compiler::{
    Decision, EvalOptions, FsLoader, MemoryRates, NativeRuleset, Ruleset, compile,
};
use weir_stdlib::{Limits, Message, Transaction};

fn rule_counts() -> Vec<usize> {
    counts("WEIR_BENCH_N", "10,100,1000")
}

/// The rule counts named by `var` (comma-separated), else `default`.
fn counts(var: &str, default: &str) -> Vec<usize> {
    std::env::var(var)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// Whether the real corpus is benchmarked too (`WEIR_BENCH_REAL=1`).
fn real_mail() -> bool {
    std::env::var("WEIR_BENCH_REAL").is_ok_and(|v| v == "1")
}

fn parse_only(c: &mut Criterion) {
    parse_corpus(c, "", &synth_messages());
    if real_mail() {
        parse_corpus(c, "spamassassin/", &spamassassin_messages());
    }
}

/// mail-parser's parse alone and Weir's message model over `messages`.
fn parse_corpus(c: &mut Criterion, prefix: &str, messages: &[Vec<u8>]) {
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(messages.len() as u64));
    group.sample_size(10);
    group.bench_function(format!("{prefix}mail-parser"), |b| {
        b.iter(|| {
            // The published crate, not the one Weir reads mail with
            // (vendor/mail-parser/PATCHES.md).
            let parser = mail_parser_upstream::MessageParser::default();
            messages.iter().filter_map(|m| parser.parse(m)).count()
        })
    });
    group.bench_function(format!("{prefix}weir message model"), |b| {
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

/// One pass over the corpus as an engine sees it in production: each
/// message parsed, then evaluated with fresh `rate()` counters per pass.
/// Returns the number of tags set, so the work cannot be optimised away.
fn one_pass(
    messages: &[Vec<u8>],
    evaluate: impl Fn(&Transaction, &mut MemoryRates) -> Decision,
) -> usize {
    let mut rates = MemoryRates::default();
    let mut tags = 0;
    for bytes in messages {
        let message = Message::parse(bytes, &Limits::default()).expect("within limits");
        let tx = Transaction::with_defaults(message, None, &[], None, None, 0);
        tags += evaluate(&tx, &mut rates).tags.len();
    }
    tags
}

/// A group whose throughput is messages of one pass over the corpus.
fn corpus_group<'a>(
    c: &'a mut Criterion,
    name: &str,
    messages: usize,
) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(messages as u64));
    group.sample_size(10);
    // One pass over the corpus takes seconds at 10,000 rules: the same
    // iteration count in every sample keeps the run bounded.
    group.sampling_mode(SamplingMode::Flat);
    group
}

/// A generated ruleset, checked.
fn ruleset(path: &std::path::Path) -> Ruleset {
    compile(path, &FsLoader)
        .ruleset
        .expect("generated rules compile")
}

/// The corpora measured: (name, messages, path of the rules of N).
type Corpus = (&'static str, Vec<Vec<u8>>, fn(usize) -> std::path::PathBuf);

fn corpora() -> Vec<Corpus> {
    let mut out: Vec<Corpus> = vec![("synth", synth_messages(), rules)];
    if real_mail() {
        out.push(("spamassassin", spamassassin_messages(), spamassassin_rules));
    }
    out
}

/// Benchmarks `evaluate` over one pass of `messages` as `name`.
fn bench_pass(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: String,
    messages: &[Vec<u8>],
    evaluate: impl Fn(&Transaction, &mut MemoryRates) -> Decision,
) {
    group.bench_function(name, |b| b.iter(|| one_pass(messages, &evaluate)));
}

fn interpreter(c: &mut Criterion) {
    for (corpus, messages, rules_of) in corpora() {
        let mut group = corpus_group(c, "interp", messages.len());
        for n in rule_counts() {
            let ruleset = ruleset(&rules_of(n));
            bench_pass(
                &mut group,
                format!("{corpus}/{n} rules"),
                &messages,
                |tx, rates| ruleset.evaluate(tx, rates, &EvalOptions::default()),
            );
        }
        group.finish();
    }
}

/// The native engine: compiled once per N (outside the measurement), then
/// every message parsed and evaluated, as `interpreter` does; with the
/// prefilter (the default) and without it (every test through the host).
fn native(c: &mut Criterion) {
    for (corpus, messages, rules_of) in corpora() {
        let mut group = corpus_group(c, "jit", messages.len());
        for n in rule_counts() {
            let ruleset = ruleset(&rules_of(n));
            let engines = [
                ("", NativeRuleset::compile(&ruleset)),
                (
                    ", no prefilter",
                    NativeRuleset::compile_without_prefilter(&ruleset),
                ),
            ];
            for (label, native) in engines {
                let native = native.expect("native code on this host");
                let name = format!("{corpus}/{n} rules{label}");
                bench_pass(&mut group, name, &messages, |tx, rates| {
                    native.evaluate(tx, rates, &EvalOptions::default())
                });
            }
        }
        group.finish();
    }
}

/// From source file to callable native code: what a (re)load costs.
fn compile_time(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    // A compile of 10,000 rules takes most of a second: the same iteration
    // count in every sample keeps the run bounded.
    group.sampling_mode(SamplingMode::Flat);
    for n in counts("WEIR_BENCH_COMPILE_N", "10000") {
        let path = rules(n);
        group.bench_function(format!("{n} rules to native"), |b| {
            b.iter(|| {
                let ruleset = compile(&path, &FsLoader)
                    .ruleset
                    .expect("generated rules compile");
                NativeRuleset::compile(&ruleset)
                    .expect("native code on this host")
                    .leaf_count()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parse_only, interpreter, native, compile_time);
criterion_main!(benches);
