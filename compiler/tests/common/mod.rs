//! Helpers shared by the compiler's integration tests: compile Flow text
//! from memory and evaluate inline messages.
#![allow(dead_code)]

use std::path::Path;

use weir_compiler::loader::MemoryLoader;
use weir_compiler::{Compiled, Decision, EvalOptions, MemoryRates, RateCounter, Ruleset, compile};
use weir_stdlib::{Limits, Message, Transaction};

/// The clock of every test evaluation: 2026-11-22T07:00:00Z, a Sunday.
pub const NOW: i64 = 1_795_330_800;

/// Compiles files given as (path, text); the first is the entry.
pub fn compile_files(files: &[(&str, &str)]) -> Compiled {
    let mut loader: MemoryLoader = MemoryLoader::new();
    for (path, text) in files {
        loader.insert(*path, *text);
    }
    compile(Path::new(files[0].0), &loader)
}

/// Every diagnostic rendered, for failure messages.
pub fn rendered(c: &Compiled) -> String {
    c.diagnostics
        .iter()
        .map(|d| c.render(d))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Compiles one file that must have no errors (warnings allowed).
pub fn rules(source: &str) -> Ruleset {
    rules_files(&[("rules.flow", source)])
}

/// Compiles files that must have no errors.
pub fn rules_files(files: &[(&str, &str)]) -> Ruleset {
    let c = compile_files(files);
    assert!(!c.has_errors(), "unexpected errors:\n{}", rendered(&c));
    c.ruleset.expect("a ruleset when there is no error")
}

/// The codes of the diagnostics of one file's compilation.
pub fn codes(source: &str) -> Vec<&'static str> {
    compile_files(&[("rules.flow", source)])
        .diagnostics
        .iter()
        .map(|d| d.code)
        .collect()
}

/// The transaction for a message text with `weir run`'s defaults.
pub fn tx(message: &str) -> Transaction {
    tx_with(message, None, &[], None)
}

/// A transaction with an explicit envelope and client.
pub fn tx_with(message: &str, from: Option<&str>, to: &[&str], ip: Option<&str>) -> Transaction {
    let message =
        Message::parse(message.as_bytes(), &Limits::default()).expect("message within limits");
    let to: Vec<String> = to.iter().map(|s| s.to_string()).collect();
    let ip = ip.map(|i| i.parse().expect("test IP"));
    Transaction::with_defaults(message, from, &to, ip, None, NOW)
}

/// Evaluates a message with fresh counters.
pub fn decide(rules: &Ruleset, message: &str) -> Decision {
    rules.evaluate(
        &tx(message),
        &mut MemoryRates::default(),
        &EvalOptions::default(),
    )
}

/// Evaluates a transaction with given counters and options.
pub fn decide_tx(
    rules: &Ruleset,
    tx: &Transaction,
    rates: &mut dyn RateCounter,
    opts: &EvalOptions,
) -> Decision {
    rules.evaluate(tx, rates, opts)
}

/// A plain message.
pub fn mail(headers: &str, body: &str) -> String {
    format!("{headers}\r\n\r\n{body}")
}

/// The usual test message.
pub const MAIL: &str = "From: Alice Example <alice+news@Example.com>\r\n\
To: Bob <bob@example.org>, carol@other.net\r\n\
Cc: dave@example.com\r\n\
Subject: Invoice 42 for ticket #1234\r\n\
Message-ID: <abc@example.com>\r\n\
Date: Sun, 22 Nov 2026 06:00:00 +0000\r\n\
X-Mailer: Test\r\n\
X-Mailer: Test2\r\n\
\r\n\
Hello, your payment failed.\r\n";

/// Whether the decision took an action with this word (non-shadow).
pub fn took(d: &Decision, word: &str) -> bool {
    d.actions.iter().any(|t| {
        matches!(&t.what, weir_compiler::TakenKind::Action(a) if a.name() == word) && !t.shadow
    })
}
