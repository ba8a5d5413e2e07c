//! The ratios of issue 17's targets measured in CPU time of the measuring
//! thread rather than wall time, so that other work on a shared machine
//! (builds, other benchmarks) changes them less: messages per CPU second
//! of mail-parser's parse alone, of Weir's message model, and of the native
//! engine (parse and evaluation, as `benches/eval.rs` measures them) for N
//! generated rules over `synth` (or, with `--corpus spamassassin`, the
//! SpamAssassin public corpus and rules generated from its vocabulary),
//! each as a share of mail-parser's.
//!
//! `cargo run --release -p weir-benches --bin cpu-ratio -- [N ...]`
//! (default 10 1000 10000). Each figure is the best of `--rounds` rounds
//! (default 5) of at least `--seconds` CPU seconds (default 2), the
//! rounds of all engines interleaved so that a slow spell hits all alike.
//! Linux only: the thread's CPU time comes from /proc/thread-self/schedstat.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use weir_compiler::{EvalOptions, FsLoader, MemoryRates, NativeRuleset, compile};
use weir_stdlib::{Limits, Message, Transaction};

/// Command line.
#[derive(Parser)]
struct Args {
    /// Rule counts of the native engine's rows.
    ns: Vec<usize>,
    /// Rounds per engine; each figure is the best round.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// CPU seconds per round, at least.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Measure only the rows whose name contains this (for `perf record`);
    /// the share column then needs mail-parser's row among them.
    #[arg(long)]
    only: Option<String>,
    /// The messages and rules: `synth` with its generated rules, or
    /// `spamassassin`, the public corpus (6,046 real messages, fetched on
    /// first use) with rules generated from its own vocabulary.
    #[arg(long, default_value = "synth", value_parser = ["synth", "spamassassin"])]
    corpus: String,
}

/// The CPU time this thread has run, from the scheduler's statistics.
fn thread_cpu() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")
        .context("reading /proc/thread-self/schedstat (Linux only)")?;
    let ns: u64 = stat
        .split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .context("an unexpected /proc/thread-self/schedstat")?;
    Ok(Duration::from_nanos(ns))
}

/// One pass over the corpus; returns a count, so the work stays.
type Pass<'a> = Box<dyn Fn(&[Vec<u8>]) -> usize + 'a>;

/// One thing measured: a name and one pass over the corpus.
struct Row<'a> {
    name: String,
    pass: Pass<'a>,
    best: f64,
}

/// Messages per CPU second of passes of `row` for at least `seconds`.
fn round(row: &Row<'_>, messages: &[Vec<u8>], seconds: f64) -> Result<f64> {
    let start = thread_cpu()?;
    let mut done = 0usize;
    loop {
        std::hint::black_box((row.pass)(messages));
        done += messages.len();
        let spent = (thread_cpu()? - start).as_secs_f64();
        if spent >= seconds {
            return Ok(done as f64 / spent);
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let ns = if args.ns.is_empty() {
        vec![10, 1000, 10000]
    } else {
        args.ns.clone()
    };
    let real = args.corpus == "spamassassin";
    let messages = if real {
        weir_benches::spamassassin_messages()
    } else {
        weir_benches::synth_messages()
    };
    let mut natives = Vec::new();
    for &n in &ns {
        let rules = if real {
            weir_benches::spamassassin_rules(n)
        } else {
            weir_benches::rules(n)
        };
        let ruleset = compile(&rules, &FsLoader)
            .ruleset
            .context("the generated rules compile")?;
        natives.push((n, NativeRuleset::compile(&ruleset)?));
    }
    let mut rows: Vec<Row<'_>> = vec![
        Row {
            name: "mail-parser parse only".into(),
            pass: Box::new(|messages| {
                // The published crate, not the one Weir reads mail with
                // (vendor/mail-parser/PATCHES.md).
                let parser = mail_parser_upstream::MessageParser::default();
                messages.iter().filter_map(|m| parser.parse(m)).count()
            }),
            best: 0.0,
        },
        Row {
            name: "weir message model".into(),
            pass: Box::new(|messages| {
                messages
                    .iter()
                    .filter_map(|m| Message::parse(m, &Limits::default()).ok())
                    .map(|m| m.body_text().len())
                    .sum()
            }),
            best: 0.0,
        },
    ];
    for (n, native) in &natives {
        rows.push(Row {
            name: format!("native, {n} rules"),
            pass: Box::new(move |messages| {
                let mut rates = MemoryRates::default();
                let mut tags = 0;
                for bytes in messages {
                    let Ok(message) = Message::parse(bytes, &Limits::default()) else {
                        continue;
                    };
                    let tx = Transaction::with_defaults(message, None, &[], None, None, 0);
                    tags += native
                        .evaluate(&tx, &mut rates, &EvalOptions::default())
                        .tags
                        .len();
                }
                tags
            }),
            best: 0.0,
        });
    }
    if let Some(only) = &args.only {
        rows.retain(|r| r.name.contains(only.as_str()));
    }
    // A warm-up pass each: lazily built regexes, caches.
    for row in &rows {
        std::hint::black_box((row.pass)(&messages));
    }
    for _ in 0..args.rounds {
        for row in &mut rows {
            row.best = row.best.max(round(row, &messages, args.seconds)?);
        }
    }
    let ceiling = rows
        .iter()
        .find(|r| r.name.starts_with("mail-parser"))
        .map_or(f64::NAN, |r| r.best);
    println!(
        "{:<24} {:>16} {:>14}",
        "", "msgs per CPU s", "of mail-parser"
    );
    for row in &rows {
        println!(
            "{:<24} {:>16.0} {:>13.1} %",
            row.name,
            row.best,
            100.0 * row.best / ceiling
        );
    }
    Ok(())
}
