//! `weir run RULES MESSAGE...`: evaluate messages, print decisions or
//! statistics. The rules compile once; this is the throughput path.

use std::collections::BTreeMap;
use std::io::Write;
use std::num::NonZeroUsize;

use std::ops::ControlFlow;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};
use weir_compiler::report::DecisionView;
use weir_compiler::{Decision, Envelope, EvalOptions, Evaluator, MemoryRates, Purpose, Ruleset};

use super::{evaluator, load_ruleset};
use crate::cli::RunArgs;
use crate::inputs::{self, Input};
use crate::report;

mod ordered;

/// What one message gave: its printed block, its decision (for
/// `--stats`), or why it could not be read.
enum Done {
    Printed(Vec<u8>),
    Decided(Box<Decision>),
    Failed(String),
}

/// What every evaluation of one run shares.
struct RunContext<'a> {
    args: &'a RunArgs,
    envelope: Envelope,
    opts: EvalOptions,
    evaluator: Evaluator,
    /// The learned classifiers the rules read (`--state`).
    classifiers: Classifiers,
    messages: Vec<Input>,
    many: bool,
}

/// What one evaluating thread keeps from one message to the next.
#[derive(Default)]
struct Worker {
    rates: MemoryRates,
    /// The message being read, reused: reading costs no allocation once
    /// it has grown to the corpus's usual size.
    bytes: Vec<u8>,
    /// The length of the last printed block: the next one is allocated
    /// at that size, so that it rarely grows (at 10,000 rules a decision
    /// prints several kilobytes).
    printed: usize,
}

/// A read buffer larger than this is not kept for the next message, so
/// one large message does not hold its size per thread for the whole run.
const KEPT_BUFFER: usize = 1 << 20;

impl RunContext<'_> {
    /// Reads, evaluates and (unless `--stats`) prints one message.
    fn evaluate(&self, worker: &mut Worker, input: &Input) -> Done {
        let now = self.args.now.unwrap_or_else(weir_compiler::now);
        let Worker {
            rates,
            bytes,
            printed,
        } = worker;
        let result = input
            .read_into(bytes)
            .map_err(|e| e.to_string())
            .and_then(|len| {
                weir_compiler::transaction_at(&bytes[..len], &self.envelope, now)
                    .map(|mut tx| {
                        tx.classes = self.classifiers.answers(&tx.message);
                        self.evaluator.decide_transaction(&tx, rates, &self.opts)
                    })
                    .map_err(|e| e.to_string())
            });
        if bytes.capacity() > KEPT_BUFFER {
            *bytes = Vec::new();
        }
        match result {
            Ok(decision) if self.args.stats => Done::Decided(Box::new(decision)),
            Ok(decision) => {
                let mut text = Vec::with_capacity(*printed);
                // Writing into a Vec cannot fail.
                let _ = print_decision(&mut text, self.args, input, self.many, &decision);
                *printed = text.len().min(KEPT_BUFFER);
                Done::Printed(text)
            }
            Err(error) => Done::Failed(error),
        }
    }
}

/// How many threads evaluate: `--jobs`, else every core; one when the
/// rules count messages (`rate()`, `duplicate()`), whose counters must
/// see the messages in input order.
fn jobs(args: &RunArgs, ruleset: &Ruleset) -> usize {
    if ruleset.counts_messages() {
        return 1;
    }
    args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    )
}

/// The rules, compiled, and the messages to read. The directory walk
/// (10,000 files: tens of milliseconds) runs beside the compile, unless
/// `--jobs 1` asks for one thread throughout; `--jobs` caps the compile's
/// threads too.
fn rules_and_messages(args: &RunArgs) -> (Option<Ruleset>, Vec<Input>) {
    let purpose = match args.engine {
        crate::cli::Engine::Jit => Purpose::Native,
        crate::cli::Engine::Interp => Purpose::Check,
    };
    if let Some(jobs) = args.jobs.and_then(|n| NonZeroUsize::new(n.into())) {
        weir_compiler::limit_compile_threads(jobs);
    }
    let list = || inputs::expand(&args.messages, inputs::any_file);
    if args.jobs == Some(1) {
        return (load_ruleset(&args.rules, purpose), list());
    }
    std::thread::scope(|scope| {
        let listing = scope.spawn(list);
        let ruleset = load_ruleset(&args.rules, purpose);
        let messages = listing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (ruleset, messages)
    })
}

/// Exit status: 0 whatever the verdicts; 1 for an unreadable message; 2
/// when the rules do not compile or the `--state` directory cannot be read.
pub fn run(args: &RunArgs) -> u8 {
    let (ruleset, messages) = rules_and_messages(args);
    let Some(ruleset) = ruleset else {
        return 2;
    };
    let Some(classifiers) = classifiers(&ruleset, args) else {
        return 2;
    };
    let cx = RunContext {
        classifiers,
        args,
        envelope: Envelope {
            from: args.from.clone(),
            to: args.to.clone(),
            client_ip: args.client_ip,
            helo: args.helo.clone(),
        },
        opts: EvalOptions {
            explain: args.explain,
            ..EvalOptions::default()
        },
        evaluator: evaluator(&ruleset, args.engine),
        many: messages.len() > 1 || args.messages.iter().any(|p| p.is_dir()),
        messages,
    };
    let mut stats = Stats::new(&ruleset);
    let mut status = 0;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut closed = false;
    ordered::for_each_ordered(
        jobs(args, &ruleset),
        cx.messages.len(),
        Worker::default,
        |worker, i| cx.evaluate(worker, &cx.messages[i]),
        |i, done| {
            let printed = match done {
                Done::Printed(text) => out.write_all(&text),
                Done::Decided(decision) => {
                    stats.add(&decision);
                    Ok(())
                }
                Done::Failed(error) => {
                    status = 1;
                    stats.errors += 1;
                    print_error(&mut out, args, &cx.messages[i], &error)
                }
            };
            // Standard output was closed (e.g. piped into `head`): stop quietly.
            closed = printed.is_err();
            if closed {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    );
    if closed {
        return status;
    }
    if args.stats {
        let _ = stats.print(&mut out, args.json);
    }
    let _ = out.flush();
    status
}

/// The learned classifiers the rules declare, read from `--state` once
/// (none learned without it); `None` after printing why they cannot be.
fn classifiers(ruleset: &Ruleset, args: &RunArgs) -> Option<Classifiers> {
    let declared: Vec<(String, Vec<String>)> = ruleset
        .classifiers()
        .iter()
        .map(|c| (c.name.clone(), c.classes.clone()))
        .collect();
    let Some(dir) = &args.state else {
        return Some(Classifiers {
            declared,
            models: weir_classify::Models::default(),
        });
    };
    // A mistyped directory would otherwise read as "nothing learned".
    if !dir.join("db").is_dir() {
        eprintln!(
            "error: {} holds no learned state (no {}): give the directory `weir learn --state` wrote",
            dir.display(),
            dir.join("db").display()
        );
        return None;
    }
    let (_db, state) = match weir_classify::SledState::open_dir(dir) {
        Ok(opened) => opened,
        Err(e) => {
            eprintln!("error: {e}");
            return None;
        }
    };
    let names = declared.iter().map(|(name, _)| name.as_str());
    match weir_classify::Models::load(&state, names) {
        Ok(models) => Some(Classifiers { declared, models }),
        Err(e) => {
            eprintln!(
                "error: cannot read the learned state in {}: {e}",
                dir.display()
            );
            None
        }
    }
}

/// The classifiers `weir run` classifies with: the rules' declarations
/// and the models read from `--state`.
struct Classifiers {
    declared: Vec<(String, Vec<String>)>,
    models: weir_classify::Models,
}

impl Classifiers {
    fn answers(&self, message: &weir_stdlib::Message) -> weir_stdlib::Classifications {
        let declared = self
            .declared
            .iter()
            .map(|(name, classes)| (name.as_str(), classes.as_slice()));
        self.models.answers(declared, message)
    }
}

fn print_decision(
    out: &mut impl Write,
    args: &RunArgs,
    input: &Input,
    many: bool,
    decision: &Decision,
) -> std::io::Result<()> {
    if args.json {
        let line = JsonLine {
            decision,
            file: many.then(|| input.display()),
            // The same name as in `/v1/check`'s answer.
            trace: args
                .explain
                .then(|| weir_compiler::report::trace_json(&decision.trace)),
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")
    } else {
        if many {
            write!(out, "{}: ", input.display())?;
        }
        write!(out, "{}", report::decision_text(decision))?;
        if args.explain {
            writeln!(out, "  rules:")?;
            write!(out, "{}", report::trace_text(&decision.trace))?;
        }
        Ok(())
    }
}

/// One `--json` line: the decision's object (the bytes of
/// `report::decision_json`, written without building it), then the file's
/// name when there are several and the trace when explaining.
struct JsonLine<'a> {
    decision: &'a Decision,
    file: Option<String>,
    trace: Option<Value>,
}

impl Serialize for JsonLine<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        DecisionView(self.decision).serialize_entries(&mut map)?;
        if let Some(file) = &self.file {
            map.serialize_entry("file", file)?;
        }
        if let Some(trace) = &self.trace {
            map.serialize_entry("trace", trace)?;
        }
        map.end()
    }
}

fn print_error(
    out: &mut impl Write,
    args: &RunArgs,
    input: &Input,
    error: &str,
) -> std::io::Result<()> {
    if args.json && !args.stats {
        writeln!(out, "{}", json!({"file": input.display(), "error": error}))
    } else {
        out.flush()?;
        eprintln!("error: {}: {error}", input.display());
        Ok(())
    }
}

/// Counts over a corpus for `--stats`.
struct Stats {
    rules: Vec<String>,
    hits: BTreeMap<String, u64>,
    verdicts: BTreeMap<&'static str, u64>,
    messages: u64,
    errors: u64,
}

impl Stats {
    fn new(ruleset: &Ruleset) -> Stats {
        let rules: Vec<String> = ruleset.rules().iter().map(|r| r.name.clone()).collect();
        let hits = rules.iter().map(|r| (r.clone(), 0)).collect();
        Stats {
            rules,
            hits,
            verdicts: BTreeMap::new(),
            messages: 0,
            errors: 0,
        }
    }

    fn add(&mut self, d: &Decision) {
        self.messages += 1;
        *self.verdicts.entry(d.verdict.as_str()).or_default() += 1;
        for rule in &d.matched {
            *self.hits.entry(rule.to_string()).or_default() += 1;
        }
    }

    fn never_fired(&self) -> Vec<&String> {
        self.rules
            .iter()
            .filter(|r| self.hits.get(*r) == Some(&0))
            .collect()
    }

    fn print(&self, out: &mut impl Write, as_json: bool) -> std::io::Result<()> {
        if as_json {
            let rules: serde_json::Map<String, Value> = self
                .rules
                .iter()
                .map(|r| (r.clone(), json!(self.hits.get(r).copied().unwrap_or(0))))
                .collect();
            let obj = json!({
                "messages": self.messages,
                "errors": self.errors,
                "verdicts": self.verdicts,
                "rules": rules,
                "never_fired": self.never_fired(),
            });
            return writeln!(out, "{obj}");
        }
        writeln!(
            out,
            "messages: {} ({} unreadable)",
            self.messages, self.errors
        )?;
        writeln!(out, "verdicts:")?;
        for (verdict, n) in &self.verdicts {
            writeln!(out, "  {verdict:<12} {n}")?;
        }
        writeln!(out, "rule hits:")?;
        let width = self.rules.iter().map(|r| r.len()).max().unwrap_or(0);
        for rule in &self.rules {
            writeln!(
                out,
                "  {rule:<width$} {}",
                self.hits.get(rule).copied().unwrap_or(0)
            )?;
        }
        let never = self.never_fired();
        writeln!(out, "never fired: {}", never.len())?;
        for rule in never {
            writeln!(out, "  {rule}")?;
        }
        Ok(())
    }
}
