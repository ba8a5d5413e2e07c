//! The Flow compiler: from parsed files to a checked [`Ruleset`] that the
//! reference interpreter evaluates.
//!
//! Pipeline: [`compile`] loads the entry file and its imports through a
//! [`Loader`] (the compiler itself does no other I/O), resolves names,
//! type-checks every expression and action against the builtin registry of
//! `weir-stdlib`, computes each rule's [`Stage`](weir_stdlib::Stage), and
//! lowers everything to an IR. [`Ruleset::evaluate`] runs the IR on one
//! [`Transaction`] and returns a [`Decision`]; it is the specification of
//! Flow's meaning (docs/language.md ("Expressions" to "Rules and actions")), and always terminates.
//!
//! API contract (used by the `weir` binary and later the daemon):
//!
//! ```no_run
//! use weir_compiler::{compile, FsLoader, EvalOptions, MemoryRates};
//! let compiled = compile(std::path::Path::new("rules.flow"), &FsLoader);
//! for d in &compiled.diagnostics {
//!     eprintln!("{}", compiled.render(d));
//! }
//! let ruleset = compiled.ruleset.expect("rules compile");
//! # let tx: weir_stdlib::Transaction = todo!();
//! let decision = ruleset.evaluate(&tx, &mut MemoryRates::default(), &EvalOptions::default());
//! ```
//!
//! Module map: `load` (files and lists), `names` (scopes), `check` (types
//! and lowering), `ir` (the lowered form), `stage` (stages), `eval` and
//! `compare` (the interpreter), `native` (the same rules as
//! Cranelift-generated code, [`NativeRuleset`]), `evaluator` (the facade
//! every caller evaluates through: [`Evaluator`], [`compile_ruleset`],
//! [`run_case`]), `testcase` (`test` blocks), `codes`
//! (diagnostic codes), `warnings` (lints).

pub mod codes;
pub mod decision;
mod evaluator;
pub mod loader;
pub mod model;
mod rates;
pub mod report;
mod testcase;
mod types_at;

mod autoreply;
mod check;
mod compare;
mod eval;
mod filing;
pub mod hints;
mod ir;
mod load;
mod names;
mod native;
mod prefetch;
mod stage;
mod threads;
mod warnings;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use weir_grammar::Diagnostic;
use weir_grammar::ast::Span;
use weir_stdlib::{Stage, Transaction};

pub use check::ClassifierInfo;
pub use decision::{Action, Decision, Reply, SmolStr, Taken, TakenKind, Verdict};
pub use evaluator::{
    Engine, Envelope, Evaluator, compile_ruleset, compile_ruleset_for, now, run_case, transaction,
    transaction_at,
};
pub use load::relative_to;
pub use loader::{FsLoader, Loader, MemoryLoader};
pub use native::{NativeError, NativeRuleset, fix_allocator_thresholds, release_free_memory};
pub use rates::{MemoryRates, RateCounter, within_window};
pub use testcase::{TestCase, TestMessage, TestWorld};
pub use threads::limit_compile_threads;
pub use types_at::ExprTypes;

/// The result of compiling a ruleset: the ruleset when there is no error,
/// and every diagnostic of every file.
#[derive(Debug)]
pub struct Compiled {
    /// The checked ruleset; `None` when there are errors.
    pub ruleset: Option<Ruleset>,
    /// Errors and warnings of all files, sorted by file then position, deduplicated.
    pub diagnostics: Vec<Diagnostic>,
    /// File name (as in `Diagnostic::file`) to text, for rendering.
    pub sources: BTreeMap<String, String>,
    /// The type of each checked expression, by file and span (the editor's
    /// hover and member completion).
    pub types: ExprTypes,
}

impl Compiled {
    /// Renders one diagnostic with its source excerpt (as `weir check` prints it).
    pub fn render(&self, d: &Diagnostic) -> String {
        let source = self.sources.get(&d.file).map_or("", String::as_str);
        weir_grammar::diagnostic::render_with(d, source, &|file| self.sources.get(file).cloned())
    }

    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Options of one evaluation.
#[derive(Debug, Clone, Copy, Default)]
pub struct EvalOptions {
    /// Fill [`Decision::trace`] (which rules held, and why).
    pub explain: bool,
    /// A dry run (`/v1/check`): `rate()` counts nothing.
    pub dry_run: bool,
}

/// What the API reports of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// Its name.
    pub name: String,
    /// The latest stage of everything it reads (docs/language.md ("Stages")).
    pub stage: Stage,
    /// Its priority (100 unless written).
    pub priority: i64,
    /// Whether it is a `shadow` rule.
    pub shadow: bool,
    /// Whether it can end evaluation (a verdict or `stop` in a rule that
    /// is not `shadow`): only such a rule can be a decision's
    /// `decided_by`, so the milter skips a stage whose evaluable rules
    /// have none (its decision could not be final).
    pub can_decide: bool,
    /// The LMTP-only fields and actions it uses (`recipient`, `flag`),
    /// sorted: the daemon warns when only the milter serves it.
    pub lmtp_only: Vec<&'static str>,
    /// The file it is declared in.
    pub file: String,
    /// Its declaration's span in that file.
    pub span: Span,
    /// The 1-based line of its declaration.
    pub line: usize,
}

/// A file the ruleset was built from, with a hash of its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Its name, as in diagnostics (`rules/main.flow`, `stdlib/bulk.flow`,
    /// `rules/lists/blocked.txt`).
    pub name: String,
    /// FNV-1a 64-bit hash of its content, 16 hex digits.
    pub hash: String,
}

/// A checked, lowered ruleset. Cheap to clone and share between threads.
#[derive(Debug, Clone)]
pub struct Ruleset {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    program: eval::Program,
    /// Which of the program's roots reach `rate()` (`prefetch.rs`).
    rate_roots: Vec<usize>,
    /// Whether evaluation may ask its counter ([`Ruleset::asks_counter`]).
    asks_counter: bool,
    rules: Vec<RuleInfo>,
    tests: Vec<TestCase>,
    files: Vec<SourceFile>,
    hash: String,
    /// The prefilter's analyses of the regex literals, made while the
    /// checker parsed them, until the first native compile takes them.
    regex_analyses: Mutex<native::Analyses>,
}

/// What a ruleset needs from the daemon's configuration
/// ([`Ruleset::config_needs`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigNeeds {
    /// The `notify` channels named as literals.
    pub channels: BTreeSet<String>,
    /// The rules that `reply`: an auto-reply goes out through a relay.
    pub replies: BTreeSet<String>,
    /// The rules that `redirect` or `add_rcpt`: the milter does these as
    /// envelope edits, but LMTP delivery sends the copies through a relay.
    pub forwards: BTreeSet<String>,
}

impl Ruleset {
    /// Evaluates the rules on one transaction. Never panics, always terminates.
    pub fn evaluate(
        &self,
        tx: &Transaction,
        rates: &mut dyn RateCounter,
        opts: &EvalOptions,
    ) -> Decision {
        eval::evaluate(&self.inner.program, tx, rates, opts)
    }

    /// Its learned classifiers (`classifier NAME = learned [...]`), in
    /// load order: what the caller computes answers for before evaluation
    /// (docs/language.md ("Classifiers")).
    pub fn classifiers(&self) -> &[ClassifierInfo] {
        &self.inner.program.classifiers
    }

    /// The tags its rules set with constant text (`tag "vip"`, not
    /// `tag "${subject}"`): the bounded set of `tag` labels the daemon's
    /// metrics use.
    pub fn literal_tags(&self) -> BTreeSet<String> {
        let mut tags = BTreeSet::new();
        for rule in &self.inner.program.rules {
            let blocks = std::iter::once(&rule.then).chain(rule.otherwise.as_ref());
            for stmt in blocks.flatten() {
                stmt.each_action(&mut |action| {
                    if let ir::Action::Tag(ir::Expr::Const(value)) = action {
                        tags.insert(value.to_text());
                    }
                });
            }
        }
        tags
    }

    /// What the rules need the daemon's configuration to provide: the
    /// `notify` channels they name as literals, and the rules that send
    /// mail (`reply`; `redirect` and `add_rcpt` in delivery) and so need a
    /// relay. A server checks both before it runs the rules.
    pub fn config_needs(&self) -> ConfigNeeds {
        let mut needs = ConfigNeeds::default();
        for rule in &self.inner.program.rules {
            let blocks = std::iter::once(&rule.then).chain(rule.otherwise.as_ref());
            for stmt in blocks.flatten() {
                stmt.each_action(&mut |action| match action {
                    ir::Action::Notify {
                        channel: ir::Expr::Const(value),
                        ..
                    } => {
                        needs.channels.insert(value.to_text());
                    }
                    ir::Action::Reply(..) => {
                        needs.replies.insert(rule.name.to_string());
                    }
                    ir::Action::Redirect(_) | ir::Action::AddRcpt(_) => {
                        needs.forwards.insert(rule.name.to_string());
                    }
                    _ => {}
                });
            }
        }
        needs
    }

    /// Whether evaluating a message can depend on the messages evaluated
    /// before it: some rule, `fn` or template calls `rate()` or
    /// `duplicate()`. `weir run` evaluates such a ruleset in input order on
    /// one thread, so its counters see the messages as one stream.
    pub fn counts_messages(&self) -> bool {
        let prog = &self.inner.program;
        let mut exprs = prog.roots();
        exprs.extend(prog.functions.iter().map(|f| &f.body));
        while let Some(e) = exprs.pop() {
            if matches!(e, ir::Expr::Rate { .. } | ir::Expr::Duplicate { .. }) {
                return true;
            }
            exprs.extend(e.children());
        }
        false
    }

    /// Whether an evaluation may call its [`RateCounter`] (some rule or
    /// `fn` uses `rate()` or `duplicate()`): a caller whose counters are
    /// across the network runs such evaluations where it may block.
    pub fn asks_counter(&self) -> bool {
        self.inner.asks_counter
    }

    /// The `(key, window in seconds)` of every `rate()` call whose key can
    /// be computed from `tx` before evaluation (it reads only the message,
    /// envelope, connection, classifier answers and constants, possibly
    /// through a `fn`'s parameters), once each. A caller whose counters
    /// are remote reads all these counts in one round trip before
    /// [`Ruleset::evaluate`]; keys not listed (they depend on `score`,
    /// captures, `matched()` or a `some`/`every` element) are asked of the
    /// [`RateCounter`] during evaluation as before. Listing a key counts
    /// nothing: a call under a condition that does not hold is listed but
    /// never counted.
    pub fn rate_keys(&self, tx: &Transaction) -> Vec<(String, u64)> {
        prefetch::rate_keys(&self.inner.program, &self.inner.rate_roots, tx)
    }

    /// The regex analyses made while checking ([`Inner::regex_analyses`]),
    /// taken: the first native compile uses them, a later one analyses
    /// every regex itself, with the same outcome.
    pub(crate) fn take_regex_analyses(&self) -> native::Analyses {
        self.inner
            .regex_analyses
            .lock()
            .map(|mut analyses| std::mem::take(&mut *analyses))
            .unwrap_or_default()
    }

    /// The lowered program, for the native engine.
    pub(crate) fn program(&self) -> &eval::Program {
        &self.inner.program
    }

    /// Builds now every regex of the ruleset, which the interpreter runs
    /// on any message that reaches it. Regexes are otherwise built the
    /// first time a message needs them (`weir_stdlib::pattern`); a server,
    /// which loads off its hot path, calls this so that no message after a
    /// (re)load waits for them. Native code needs fewer built:
    /// [`NativeRuleset::build_regexes`].
    pub fn build_regexes(&self) {
        for regex in &self.inner.program.regexes {
            regex.regex();
        }
    }

    /// Drops the search caches its regexes kept between messages
    /// ([`weir_stdlib::Regex::forget_caches`]): a server does when it goes
    /// quiet, to give that memory back.
    pub fn forget_regex_caches(&self) {
        for regex in &self.inner.program.regexes {
            regex.forget_caches();
        }
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[RuleInfo] {
        &self.inner.rules
    }

    /// The `test` blocks of the entry file.
    pub fn tests(&self) -> &[TestCase] {
        &self.inner.tests
    }

    /// Every file loaded: the entry, imports and list files.
    pub fn files(&self) -> &[SourceFile] {
        &self.inner.files
    }

    /// A hash over every file's name and content.
    pub fn hash(&self) -> String {
        self.inner.hash.clone()
    }
}

/// FNV-1a, 64 bits.
fn fnv(bytes: &[u8], mut hash: u64) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// What a ruleset is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Purpose {
    /// Evaluating with native code (`weir run`, `weir test`, `weir
    /// serve`): the checker's helper threads also analyse the regexes for
    /// the prefilter, which the first native compile takes.
    #[default]
    Native,
    /// Checking, or evaluating with the interpreter (`weir check`, `weir
    /// diff`, the language server, `weir run --engine interp`): no
    /// analyses, which would take CPU and be kept with the ruleset for
    /// nothing.
    Check,
}

/// Compiles the ruleset whose entry file is `entry`, reading every file
/// through `loader`, for native code ([`Purpose::Native`]).
pub fn compile(entry: &Path, loader: &dyn Loader) -> Compiled {
    compile_for(entry, loader, Purpose::Native)
}

/// [`compile`] for `purpose`.
pub fn compile_for(entry: &Path, loader: &dyn Loader, purpose: Purpose) -> Compiled {
    let loaded = load::load(entry, loader);
    // Regex literals are parsed on other threads while names resolve and
    // rules are checked (`check/regexes.rs`).
    let literals = check::RegexLiterals::of(&loaded, purpose == Purpose::Native);
    let (compiled, scopes) = std::thread::scope(|s| {
        literals.parse_aside(s);
        let done = check_loaded(&loaded, &literals);
        literals.stop();
        done
    });
    free_aside((scopes, loaded));
    if let Some(ruleset) = &compiled.ruleset
        && let Ok(mut analyses) = ruleset.inner.regex_analyses.lock()
    {
        *analyses = literals.into_analyses();
    }
    compiled
}

/// Resolves, checks and lowers what was loaded: the compile, with the
/// scopes, which the caller frees.
fn check_loaded(
    loaded: &load::Loaded,
    literals: &check::RegexLiterals,
) -> (Compiled, names::Scopes) {
    let mut diagnostics = loaded.diagnostics.clone();
    let scopes = names::Scopes::build(loaded, &mut diagnostics);
    let mut checker = check::Checker::new(loaded, &scopes, literals);
    let rules = checker.rules();
    checker.check_declarations();
    let classifiers = checker.classifiers();
    let tests = check::check_tests(&mut checker);
    let used = std::mem::take(&mut checker.used);
    let types = ExprTypes::new(std::mem::take(&mut checker.types), |unit| {
        loaded.units[unit].name.clone()
    });
    diagnostics.append(&mut checker.diags);
    diagnostics.extend(warnings::unused(loaded, &scopes, &used));

    let sources: BTreeMap<String, String> = loaded.files.iter().cloned().collect();
    let all_rules: Option<Vec<ir::Rule>> = rules.into_iter().collect();
    let mut ruleset = None;
    if let Some(mut rules) = all_rules {
        rules.sort_by_key(|r| (r.priority, r.id));
        let mut program = eval::Program {
            rule_count: rules.len(),
            rules,
            functions: std::mem::take(&mut checker.functions),
            templates: std::mem::take(&mut checker.templates_ir),
            regexes: checker.take_regexes(),
            classifiers,
        };
        stage::assign(&mut program);
        diagnostics.extend(warnings::unreachable(loaded, &program));
        diagnostics.extend(filing::redirect_after_fileinto(loaded, &program));
        diagnostics.extend(warnings::stage_order(loaded, &program));
        diagnostics.extend(warnings::score_order(loaded, &program));
        ruleset = Some(build(program, tests, loaded));
    }
    diagnostics.sort_by(|a, b| {
        (&a.file, a.span.start, a.span.end, a.code, &a.message).cmp(&(
            &b.file,
            b.span.start,
            b.span.end,
            b.code,
            &b.message,
        ))
    });
    diagnostics.dedup();
    if diagnostics.iter().any(Diagnostic::is_error) {
        ruleset = None;
    }
    drop(checker);
    let compiled = Compiled {
        ruleset,
        diagnostics,
        sources,
        types,
    };
    (compiled, scopes)
}

/// Drops `value` on a thread of its own: the syntax trees of thousands of
/// rules take milliseconds to free, which the caller (next, code
/// generation) need not wait for. Where no thread can start, or a
/// compile may use only one ([`threads::limit_compile_threads`]), here.
fn free_aside<T: Send + 'static>(value: T) {
    if threads::compile_threads() == 1 {
        return drop(value);
    }
    // A thread that cannot start drops its closure, and `value`, here.
    let _ = std::thread::Builder::new().spawn(move || drop(value));
}

/// Whether `rule` has a verdict or `stop` that ends evaluation.
fn can_decide(rule: &ir::Rule) -> bool {
    let mut ends = false;
    let body = rule.then.iter().chain(rule.otherwise.iter().flatten());
    for stmt in body {
        stmt.each_action(&mut |a| {
            ends |= matches!(a, ir::Action::Verdict { .. } | ir::Action::Stop);
        });
    }
    ends && !rule.shadow
}

fn build(program: eval::Program, tests: Vec<TestCase>, loaded: &load::Loaded) -> Ruleset {
    let rules = program
        .rules
        .iter()
        .map(|r| RuleInfo {
            name: r.name.to_string(),
            stage: r.stage,
            priority: r.priority,
            shadow: r.shadow,
            can_decide: can_decide(r),
            lmtp_only: r.lmtp_only.clone(),
            file: r.file.clone(),
            span: r.span,
            line: r.line,
        })
        .collect();
    let mut all = FNV_OFFSET;
    let files = loaded
        .files
        .iter()
        .map(|(name, text)| {
            all = fnv(text.as_bytes(), fnv(&[0], fnv(name.as_bytes(), all)));
            SourceFile {
                name: name.clone(),
                hash: format!("{:016x}", fnv(text.as_bytes(), FNV_OFFSET)),
            }
        })
        .collect();
    // A root that reaches `rate()` asks the counter: without any that
    // does (most rulesets), there is no root to look for.
    let asks_counter = prefetch::asks_counter(&program);
    let rate_roots = if asks_counter {
        prefetch::rate_roots(&program)
    } else {
        Vec::new()
    };
    Ruleset {
        inner: Arc::new(Inner {
            rate_roots,
            asks_counter,
            program,
            rules,
            tests,
            files,
            hash: format!("{all:016x}"),
            regex_analyses: Mutex::default(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With enough regex literals to be parsed on other threads, the
    /// diagnostics are each invalid literal's, every time, in order, and
    /// each regex written twice is one regex.
    #[test]
    fn regex_literals_parsed_aside_give_the_same_result_every_time() {
        let mut text = String::new();
        for i in 0..400 {
            let pattern = match i % 4 {
                0 => format!("open({i}"),
                1 => "twice (is|was)".to_string(),
                _ => format!("w{i}[0-9]+"),
            };
            text.push_str(&format!(
                "rule r{i} {{ when subject matches /{pattern}/ then tag \"t\" }}\n"
            ));
        }
        let mut loader: MemoryLoader = MemoryLoader::new();
        loader.insert("main.flow", text.as_str());
        let first = compile(Path::new("main.flow"), &loader);
        let errors: Vec<usize> = first
            .diagnostics
            .iter()
            .map(|d| {
                assert_eq!(d.code, codes::INVALID_REGEX, "{d:?}");
                first.sources["main.flow"][..d.span.start].lines().count()
            })
            .collect();
        assert_eq!(errors, (0..100).map(|i| 4 * i + 1).collect::<Vec<_>>());
        for _ in 0..4 {
            assert_eq!(
                compile(Path::new("main.flow"), &loader).diagnostics,
                first.diagnostics
            );
        }
        let fixed = text.replace("/open(", "/open");
        loader.insert("main.flow", fixed.as_str());
        let ruleset = compile(Path::new("main.flow"), &loader)
            .ruleset
            .expect("compiles");
        assert_eq!(ruleset.program().regexes.len(), 100 + 1 + 200);
    }

    #[test]
    fn regexes_are_built_on_first_use_or_all_at_once() {
        let mut loader: MemoryLoader = MemoryLoader::new();
        let text = "rule a { when subject matches /ticket #[0-9]+/i then tag \"a\" }\n\
                    rule b { when body matches /(refund|invoice)/ then tag \"b\" }\n\
                    rule c { when subject matches /ticket #[0-9]+/i then tag \"c\" }\n\
                    rule d { when subject matches /[0-9]{5}/ then tag \"d\" }\n\
                    rule e { when subject matches /order ([0-9]+)/ as m then tag \"e\" }\n";
        loader.insert("rules.flow", text);
        let compiled = compile(Path::new("rules.flow"), &loader);
        let ruleset = compiled.ruleset.expect("the rules compile");
        let built = |ruleset: &Ruleset| {
            let mut built: Vec<String> = ruleset
                .program()
                .regexes
                .iter()
                .filter(|r| r.is_built())
                .map(|r| r.as_str().to_string())
                .collect();
            built.sort_unstable();
            built
        };
        assert_eq!(
            ruleset.program().regexes.len(),
            4,
            "one per distinct literal"
        );
        assert!(built(&ruleset).is_empty());
        let native = NativeRuleset::compile(&ruleset).expect("native code");
        native.build_regexes();
        // What the prefilter runs alone, and what it never sees (a test
        // with captures), is built at load; what it filters is not.
        assert_eq!(built(&ruleset), ["[0-9]{5}", "order ([0-9]+)"]);
        // The interpreter runs every regex.
        ruleset.build_regexes();
        assert_eq!(built(&ruleset).len(), 4);
    }

    #[test]
    fn literal_tags_are_the_constant_tags_of_rules() {
        let mut loader: MemoryLoader = MemoryLoader::new();
        let text = r#"
rule a { then { tag "vip"; tag "x-${subject}" } }
rule b {
  when subject contains "x"
  then { if size > 1K { tag "big" } }
  else tag "small"
}
test "t" {
  message """Subject: x

hi"""
  expect tag "vip"
  expect not tag "billing"
}
"#;
        loader.insert("rules.flow", text);
        let compiled = compile(Path::new("rules.flow"), &loader);
        let messages: Vec<String> = compiled
            .diagnostics
            .iter()
            .map(|d| compiled.render(d))
            .collect();
        let ruleset = compiled
            .ruleset
            .unwrap_or_else(|| panic!("{}", messages.join("\n")));
        let tags: Vec<String> = ruleset.literal_tags().into_iter().collect();
        assert_eq!(tags, ["big", "small", "vip"]);
    }
}
