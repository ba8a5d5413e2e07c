//! One module per subcommand, and what they share: loading a ruleset with
//! its diagnostics printed, and evaluating one message.

use std::collections::BTreeSet;
use std::path::Path;

use weir_compiler::{Compiled, Evaluator, FsLoader, Purpose, Ruleset};
use weir_grammar::Diagnostic;

use crate::cli::{Cli, Command, Engine, ImportCommand};

mod check;
mod diff;
mod fmt;
mod import;
mod learn;
mod run;
mod test;

/// Runs a parsed command line; returns the exit status.
pub fn dispatch(cli: Cli) -> u8 {
    match cli.command {
        Command::Check { paths } => check::run(&paths),
        Command::Run(args) => run::run(&args),
        Command::Diff {
            old,
            new,
            messages,
            json,
        } => diff::run(&old, &new, &messages, json),
        Command::Test { paths } => test::run(&paths),
        Command::Fmt { check, paths } => fmt::run(&paths, check),
        Command::Serve { config, rules } => weir_serve::run(config.as_deref(), rules.as_deref()),
        Command::Import(ImportCommand::Sieve {
            script,
            output,
            allow_partial,
        }) => import::sieve(script.as_deref(), output.as_deref(), allow_partial),
        Command::Lsp => crate::lsp::run(),
        Command::Learn(args) => learn::run(&args),
    }
}

/// Prints diagnostics to standard error, each once, in order.
pub struct DiagnosticPrinter {
    seen: BTreeSet<(String, usize, usize, &'static str, String)>,
    /// Errors printed so far.
    pub errors: usize,
    /// Warnings printed so far.
    pub warnings: usize,
}

impl DiagnosticPrinter {
    /// A printer that has printed nothing.
    pub fn new() -> Self {
        DiagnosticPrinter {
            seen: BTreeSet::new(),
            errors: 0,
            warnings: 0,
        }
    }

    /// Prints the diagnostics of a compilation not printed before (an
    /// imported file compiled from several entries reports once).
    pub fn print(&mut self, compiled: &Compiled) {
        for d in &compiled.diagnostics {
            self.print_one(d, &compiled.render(d));
        }
    }

    /// Prints one rendered diagnostic unless already printed.
    pub fn print_one(&mut self, d: &Diagnostic, rendered: &str) {
        let key = (
            d.file.clone(),
            d.span.start,
            d.span.end,
            d.code,
            d.message.clone(),
        );
        if !self.seen.insert(key) {
            return;
        }
        if d.is_error() {
            self.errors += 1;
        } else {
            self.warnings += 1;
        }
        eprintln!("{}", rendered.trim_end());
        eprintln!();
    }
}

/// Compiles the ruleset at `path` (a `.flow` file or a directory of
/// them) from the filesystem, for `purpose`.
pub fn compile_ruleset(path: &Path, purpose: Purpose) -> Compiled {
    weir_compiler::compile_ruleset_for(path, &FsLoader, purpose)
}

/// Compiles a ruleset for `purpose` and prints its diagnostics; `None`
/// when it has errors.
pub fn load_ruleset(path: &Path, purpose: Purpose) -> Option<Ruleset> {
    let compiled = compile_ruleset(path, purpose);
    let mut printer = DiagnosticPrinter::new();
    printer.print(&compiled);
    if compiled.has_errors() {
        None
    } else {
        compiled.ruleset
    }
}

/// Compiles `ruleset` for the engine chosen on the command line; where
/// native code is refused, warns on standard error and interprets.
pub fn evaluator(ruleset: &Ruleset, engine: Engine) -> Evaluator {
    let engine = match engine {
        Engine::Jit => weir_compiler::Engine::Native,
        Engine::Interp => weir_compiler::Engine::Interpreter,
    };
    let (evaluator, refused) = Evaluator::compile(ruleset, engine);
    if let Some(e) = refused {
        eprintln!("warning: {e}; using the interpreter");
    }
    evaluator
}
