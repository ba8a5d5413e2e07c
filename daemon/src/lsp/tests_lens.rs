//! Running a file's `test` blocks from the editor.
//!
//! Each `test` block gets a code lens "▶ run test", and the top of a file
//! with tests one "▶ run all tests". Both run the command `weir.runTests`
//! (arguments: the file's URI, and optionally a test's name), which
//! compiles the buffer as it is, runs the tests with the runner of `weir
//! test`, answers with the results, shows a summary (`window/showMessage`),
//! and keeps the results so that the next code lens request titles each
//! test "✔ passed" or "✘ failed: reason". Editing the file forgets them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use lsp_types::{CodeLens, Command, Position, Range, Url};
use serde::Serialize;
use weir_grammar::ast::Item;

use super::diagnostics::compile_open;
use super::text::LineIndex;
use super::workspace::{Documents, ParsedFile};
use weir_compiler::{Evaluator, run_case};

/// The command the lenses run.
pub(crate) const RUN_TESTS: &str = "weir.runTests";

/// The outcome of one test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct TestResult {
    /// The test's name.
    pub name: String,
    /// The 1-based line of its `test` keyword.
    pub line: usize,
    /// Whether it passed.
    pub passed: bool,
    /// Why it failed (empty when it passed).
    pub reasons: Vec<String>,
}

/// The outcome of one `weir.runTests`.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct TestRun {
    /// How many passed.
    pub passed: usize,
    /// How many failed.
    pub failed: usize,
    /// Why nothing ran (the file does not compile), if so.
    pub error: Option<String>,
    /// Each test run, in file order.
    pub results: Vec<TestResult>,
}

impl TestRun {
    /// One line for `window/showMessage`.
    pub(crate) fn summary(&self, file: &str) -> String {
        if let Some(error) = &self.error {
            return format!("weir test {file}: {error}");
        }
        let mut line = format!(
            "weir test {file}: {} passed, {} failed",
            self.passed, self.failed
        );
        for r in self.results.iter().filter(|r| !r.passed) {
            line.push_str(&format!("\n✘ {}: {}", r.name, r.reasons.join("; ")));
        }
        line
    }
}

/// Runs the tests of the open buffer at `path` (all, or the one named `only`).
pub(crate) fn run_tests(docs: &Documents, path: &Path, only: Option<&str>) -> TestRun {
    let Some(compiled) = compile_open(docs, path) else {
        return TestRun {
            error: Some("the compiler failed on this file".to_string()),
            ..TestRun::default()
        };
    };
    let errors = compiled.diagnostics.iter().filter(|d| d.is_error()).count();
    let Some(ruleset) = compiled.ruleset.filter(|_| errors == 0) else {
        let plural = if errors == 1 { "" } else { "s" };
        return TestRun {
            error: Some(format!("does not compile ({errors} error{plural})")),
            ..TestRun::default()
        };
    };
    let mut run = TestRun::default();
    // The editor runs tests on the reference interpreter: no code is
    // generated for a file that changes with every keystroke.
    let evaluator = Evaluator::Interp(ruleset.clone());
    let loader = docs.loader();
    for case in ruleset
        .tests()
        .iter()
        .filter(|c| only.is_none_or(|name| c.name == name))
    {
        let outcome = catch_unwind(AssertUnwindSafe(|| run_case(&evaluator, case, &loader)))
            .unwrap_or_else(|_| Err(vec!["the evaluator failed on this test".to_string()]));
        let reasons = outcome.err().unwrap_or_default();
        let passed = reasons.is_empty();
        if passed {
            run.passed += 1;
        } else {
            run.failed += 1;
        }
        run.results.push(TestResult {
            name: case.name.clone(),
            line: case.line,
            passed,
            reasons,
        });
    }
    if run.results.is_empty() {
        run.error = Some(match only {
            Some(name) => format!("no test named {name:?}"),
            None => "no tests in this file".to_string(),
        });
    }
    run
}

/// Merges a new run into the results kept for a file (a single test's
/// run replaces only that test's result).
pub(crate) fn merge(kept: &mut Vec<TestResult>, run: &TestRun) {
    for result in &run.results {
        kept.retain(|k| k.name != result.name);
        kept.push(result.clone());
    }
    kept.sort_by_key(|r| r.line);
}

/// The lenses of a file: one per test block, and one at the top.
pub(crate) fn code_lenses(file: &ParsedFile, uri: &Url, results: &[TestResult]) -> Vec<CodeLens> {
    let index = LineIndex::new(&file.text);
    let mut lenses = Vec::new();
    for item in &file.ast.items {
        let Item::Test(test) = item else { continue };
        let start = index.position(test.span.start);
        let line = start.line as usize + 1;
        let result = results
            .iter()
            .find(|r| r.line == line && r.name == test.name)
            .or_else(|| results.iter().find(|r| r.name == test.name));
        let title = match result {
            None => "▶ run test".to_string(),
            Some(r) if r.passed => "✔ passed".to_string(),
            Some(r) => format!("✘ failed: {}", r.reasons.join("; ")),
        };
        let args = vec![
            serde_json::json!(uri.as_str()),
            serde_json::json!(test.name),
        ];
        lenses.push(lens(
            Range::new(start, index.position(test.name_span.end)),
            title,
            args,
        ));
    }
    if lenses.is_empty() {
        return lenses;
    }
    let passed = results.iter().filter(|r| r.passed).count();
    let failed = results.len() - passed;
    let title = match (passed, failed) {
        (0, 0) => "▶ run all tests".to_string(),
        (p, 0) => format!("▶ run all tests · ✔ {p} passed"),
        (p, f) => format!("▶ run all tests · ✘ {f} failed, {p} passed"),
    };
    let top = Range::new(Position::new(0, 0), Position::new(0, 0));
    lenses.insert(0, lens(top, title, vec![serde_json::json!(uri.as_str())]));
    lenses
}

fn lens(range: Range, title: String, arguments: Vec<serde_json::Value>) -> CodeLens {
    CodeLens {
        range,
        command: Some(Command {
            title,
            command: RUN_TESTS.to_string(),
            arguments: Some(arguments),
        }),
        data: None,
    }
}
