//! Differential test: random rulesets (every expression and action form of
//! docs/language.md, see the `weir-flowgen` crate) evaluated by the
//! interpreter and the native engine on a corpus of messages must give
//! identical decisions: verdict, reply, matched rules, actions, tags,
//! score, folder and stage. (`--explain`, which traces every rule, is
//! evaluated by the interpreter under both engines, so it is not compared.)
//!
//! The corpus: `tests/eval/mail/*.eml`, `examples/**/*.eml`, and Python's
//! email test messages (`test/test_email/data/msg_*.txt`) when a Python
//! with its test suite is installed. Fixed seed and 256 cases by default;
//! `WEIR_DIFF_CASES=N` runs more, `WEIR_DIFF_SEED=N` another sequence.

use weir_flowgen as flowgen;

use std::cell::RefCell;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{NOW, compile_files};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use weir_compiler::{EvalOptions, MemoryRates, NativeRuleset, Verdict};
use weir_stdlib::{Limits, Message, Transaction};

/// One message of the corpus with the envelope it is evaluated under.
struct Case {
    name: String,
    tx: Transaction,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the compiler crate is inside the workspace")
        .to_path_buf()
}

/// Files under `dir` (recursively) whose name satisfies `keep`, sorted.
fn files(dir: &Path, keep: &dyn Fn(&str) -> bool, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, keep, out);
        } else if path.file_name().and_then(|n| n.to_str()).is_some_and(keep) {
            out.push(path);
        }
    }
}

/// Where Python keeps its email test messages, if it does.
fn python_email_data() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import test.test_email,os;print(os.path.dirname(test.test_email.__file__))",
        ])
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    let data = Path::new(dir.trim()).join("data");
    data.is_dir().then_some(data)
}

fn corpus() -> Vec<Case> {
    let root = workspace();
    let mut paths = Vec::new();
    files(
        &root.join("tests/eval/mail"),
        &|n| n.ends_with(".eml"),
        &mut paths,
    );
    files(&root.join("examples"), &|n| n.ends_with(".eml"), &mut paths);
    let mut python = Vec::new();
    if let Some(data) = python_email_data() {
        files(
            &data,
            &|n| n.starts_with("msg_") && n.ends_with(".txt"),
            &mut python,
        );
    }
    paths.sort();
    python.sort();
    paths.extend(python);
    let envelopes: [(Option<&str>, &[&str], Option<&str>); 4] = [
        (None, &[], None),
        (
            Some("Bounce+News@Example.org"),
            &["support@example.com", "x@other.org"],
            Some("192.0.2.7"),
        ),
        (Some(""), &["ops@example.com"], Some("2001:db8::1")),
        (
            Some("ceo@example.com"),
            &["vip+a@example.com"],
            Some("10.1.2.3"),
        ),
    ];
    let mut cases = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        let Ok(message) = Message::parse(&bytes, &Limits::default()) else {
            continue;
        };
        let (from, to, ip) = envelopes[i % envelopes.len()];
        let to: Vec<String> = to.iter().map(|s| s.to_string()).collect();
        let ip: Option<IpAddr> = ip.map(|i| i.parse().expect("a test IP"));
        let tx = Transaction::with_defaults(message, from, &to, ip, Some("mx.example.net"), NOW);
        let name = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        cases.push(Case { name, tx });
    }
    cases
}

/// The errors of a compilation, rendered.
fn errors(c: &weir_compiler::Compiled) -> String {
    c.diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| c.render(d))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the run saw, to check the generator produces rules that do things.
#[derive(Default)]
struct Stats {
    rulesets: usize,
    decisions: usize,
    not_accepted: usize,
    matched: usize,
    actions: usize,
}

fn check(tape: &[u32], corpus: &[Case], stats: &RefCell<Stats>) -> Result<(), TestCaseError> {
    let text = flowgen::ruleset(&mut flowgen::Tape::new(tape));
    let compiled = compile_files(&[("rules.flow", &text)]);
    prop_assert!(
        !compiled.has_errors(),
        "the generated ruleset does not compile:\n{}\n{}",
        text,
        errors(&compiled)
    );
    let Some(ruleset) = compiled.ruleset else {
        return Err(TestCaseError::fail("no ruleset"));
    };
    let native = NativeRuleset::compile(&ruleset)
        .map_err(|e| TestCaseError::fail(format!("native compile failed: {e}")))?;
    // Each engine keeps its own counters across the corpus, so `rate()`
    // sees the same history in both.
    let (mut interp_rates, mut native_rates) = (MemoryRates::default(), MemoryRates::default());
    let mut s = stats.borrow_mut();
    s.rulesets += 1;
    for (i, case) in corpus.iter().enumerate() {
        let opts = EvalOptions {
            explain: false,
            dry_run: i % 7 == 3,
        };
        let expected = ruleset.evaluate(&case.tx, &mut interp_rates, &opts);
        let got = native.evaluate(&case.tx, &mut native_rates, &opts);
        prop_assert_eq!(
            &got,
            &expected,
            "engines disagree on {} with ruleset:\n{}",
            case.name,
            text
        );
        s.decisions += 1;
        s.not_accepted += usize::from(expected.verdict != Verdict::Accept);
        s.matched += expected.matched.len();
        s.actions += expected.actions.len();
    }
    Ok(())
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

#[test]
fn engines_agree_on_random_rulesets() {
    let corpus = corpus();
    assert!(
        corpus.len() >= 40,
        "the corpus is too small: {} messages",
        corpus.len()
    );
    let cases = env_number("WEIR_DIFF_CASES").unwrap_or(256);
    let seed = env_number("WEIR_DIFF_SEED").unwrap_or(0x5745_4952);
    let config = Config {
        cases: u32::try_from(cases).unwrap_or(u32::MAX),
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 512,
        ..Config::default()
    };
    let stats = RefCell::new(Stats::default());
    let mut runner = TestRunner::new(config);
    let tapes = proptest::collection::vec(any::<u32>(), 0..400);
    if let Err(e) = runner.run(&tapes, |tape| check(&tape, &corpus, &stats)) {
        panic!("{e}");
    }
    let s = stats.into_inner();
    eprintln!(
        "differential: {} rulesets, {} decisions, {} not accepted, {} matches, {} actions",
        s.rulesets, s.decisions, s.not_accepted, s.matched, s.actions
    );
    // The generator must produce rules that hold and act, or the
    // comparison proves little.
    assert!(s.not_accepted * 20 >= s.decisions, "too few verdicts");
    assert!(s.matched >= s.decisions, "too few matches");
    assert!(s.actions >= s.decisions, "too few actions");
}

#[test]
fn generated_rulesets_cover_every_form() {
    // Over many tapes, the generator writes every operator and action
    // word at least once (a guard against a generator that silently
    // stopped producing a form).
    let mut all = String::new();
    let mut state = 0x2545_f491_u64;
    for _ in 0..300 {
        let tape: Vec<u32> = (0..400)
            .map(|_| {
                // xorshift64*: a fixed, dependency-free sequence.
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
            })
            .collect();
        all.push_str(&flowgen::ruleset(&mut flowgen::Tape::new(&tape)));
    }
    for word in [
        " and ",
        " or ",
        "not (",
        "==",
        "!=",
        " < ",
        "<=",
        " > ",
        ">=",
        " contains ",
        "contains any",
        "starts_with",
        "ends_with",
        " matches ",
        " as m",
        "m[\"",
        " in ",
        " under ",
        "some(",
        "every(",
        " => ",
        " in routes",
        "routes[",
        " exists",
        "all ",
        " + ",
        " - ",
        "(-",
        "header(",
        ".raw",
        "matched(",
        "rate(",
        "score",
        "pred(",
        "label(",
        "size_of(",
        "count(",
        "len(",
        "lower(",
        "upper(",
        "trim(",
        "split(",
        "join(",
        "replace(",
        "first(",
        "number(",
        "max(",
        "min(",
        ".domain",
        ".weekday",
        ".second",
        "local(",
        "time(\"",
        "attachments",
        "envelope.to",
        "client.ip",
        "body.html",
        "body.lines",
        "addresses(",
        "body.raw",
        "m[",
        "${",
        "shadow",
        "priority",
        "if ",
        "else",
        "accept",
        "reject",
        "tempfail",
        "discard",
        "quarantine",
        "stop",
        "add_header",
        "set_header",
        "remove_header",
        "prepend_subject",
        "add_rcpt",
        "remove_rcpt",
        "redirect",
        "fileinto",
        "flag",
        "keep",
        "tag",
        "notify",
        " with {",
        "template t",
        "reply template",
        "log ",
        "import",
    ] {
        assert!(all.contains(word), "the generator never wrote `{word}`");
    }
}
