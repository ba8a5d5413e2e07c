//! One module per subcommand, and what they share: loading a ruleset with
//! its diagnostics printed, and evaluating one message.

use std::collections::BTreeSet;
use std::path::Path;

use weir_compiler::loader::MemoryLoader;
use weir_compiler::{
    Compiled, Decision, EvalOptions, FsLoader, NativeError, NativeRuleset, RateCounter, Ruleset,
    compile,
};
use weir_grammar::Diagnostic;
use weir_stdlib::{Limits, Message, MessageError, Transaction};

use crate::cli::{Cli, Command, Engine};
use crate::inputs;

mod check;
mod diff;
mod fmt;
mod run;
pub mod test;

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
        Command::Serve { config, rules } => crate::serve::run(config.as_deref(), rules.as_deref()),
        Command::Lsp => crate::lsp::run(),
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

/// Compiles the ruleset at `path`: a `.flow` file, or a directory whose
/// `.flow` files are loaded together, in path order, as if one file
/// imported them all.
pub fn compile_ruleset(path: &Path) -> Compiled {
    if !path.is_dir() {
        return compile(path, &FsLoader);
    }
    let entry = path.join(".weir-ruleset.flow");
    let mut text = String::from("# every .flow file of the directory\n");
    for input in inputs::expand(&[path.to_path_buf()], inputs::flow_file) {
        if let inputs::Input::File(file) = input
            && let Ok(rel) = file.strip_prefix(path)
        {
            text.push_str(&format!("import {:?}\n", rel.display().to_string()));
        }
    }
    let mut loader = MemoryLoader::with_fallback(FsLoader);
    loader.insert(&entry, text);
    compile(&entry, &loader)
}

/// Compiles a ruleset and prints its diagnostics; `None` when it has errors.
pub fn load_ruleset(path: &Path) -> Option<Ruleset> {
    let compiled = compile_ruleset(path);
    let mut printer = DiagnosticPrinter::new();
    printer.print(&compiled);
    if compiled.has_errors() {
        None
    } else {
        compiled.ruleset
    }
}

/// The envelope and connection a message is evaluated with.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// `--from`.
    pub from: Option<String>,
    /// `--to`, repeatable.
    pub to: Vec<String>,
    /// `--client-ip`.
    pub client_ip: Option<std::net::IpAddr>,
    /// `--helo`.
    pub helo: Option<String>,
}

/// The current time in seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Parses a message and evaluates it with the interpreter.
pub fn decide(
    ruleset: &Ruleset,
    bytes: &[u8],
    envelope: &Envelope,
    rates: &mut dyn RateCounter,
    opts: &EvalOptions,
) -> Result<Decision, MessageError> {
    let tx = transaction(bytes, envelope)?;
    Ok(ruleset.evaluate(&tx, rates, opts))
}

/// Parses a message into the transaction it is evaluated as.
fn transaction(bytes: &[u8], envelope: &Envelope) -> Result<Transaction, MessageError> {
    let message = Message::parse(bytes, &Limits::default())?;
    Ok(Transaction::with_defaults(
        message,
        envelope.from.as_deref(),
        &envelope.to,
        envelope.client_ip,
        envelope.helo.as_deref(),
        now(),
    ))
}

/// A ruleset ready to evaluate with the chosen engine.
#[derive(Debug)]
pub enum Evaluator {
    /// The reference interpreter.
    Interp(Ruleset),
    /// Native code (same decisions).
    Native(Box<NativeRuleset>),
}

impl Evaluator {
    /// Compiles `ruleset` for `engine`; where native code is refused or
    /// unsupported, warns once on standard error and interprets.
    pub fn new(ruleset: &Ruleset, engine: Engine) -> Evaluator {
        let (evaluator, refused) = Evaluator::compile(ruleset, engine);
        if let Some(e) = refused {
            eprintln!("warning: {e}; using the interpreter");
        }
        evaluator
    }

    /// Compiles `ruleset` for `engine`. When native code was asked for but
    /// could not be made, the interpreter is returned with the reason, so
    /// the caller can say so where its users look (stderr, the daemon's
    /// log).
    pub fn compile(ruleset: &Ruleset, engine: Engine) -> (Evaluator, Option<NativeError>) {
        if engine == Engine::Interp {
            return (Evaluator::Interp(ruleset.clone()), None);
        }
        match NativeRuleset::compile(ruleset) {
            Ok(native) => (Evaluator::Native(Box::new(native)), None),
            Err(e) => (Evaluator::Interp(ruleset.clone()), Some(e)),
        }
    }

    /// The ruleset it evaluates.
    pub fn ruleset(&self) -> &Ruleset {
        match self {
            Evaluator::Interp(r) => r,
            Evaluator::Native(n) => n.ruleset(),
        }
    }

    /// Whether it runs native code (else the interpreter).
    pub fn is_native(&self) -> bool {
        matches!(self, Evaluator::Native(_))
    }

    /// Evaluates the rules on one transaction.
    pub fn evaluate(
        &self,
        tx: &Transaction,
        rates: &mut dyn RateCounter,
        opts: &EvalOptions,
    ) -> Decision {
        match self {
            Evaluator::Interp(r) => r.evaluate(tx, rates, opts),
            Evaluator::Native(n) => n.evaluate(tx, rates, opts),
        }
    }

    /// Parses a message and evaluates it.
    pub fn decide(
        &self,
        bytes: &[u8],
        envelope: &Envelope,
        rates: &mut dyn RateCounter,
        opts: &EvalOptions,
    ) -> Result<Decision, MessageError> {
        let tx = transaction(bytes, envelope)?;
        Ok(self.evaluate(&tx, rates, opts))
    }
}
