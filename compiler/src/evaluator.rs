//! The evaluation facade every caller uses: a ruleset compiled for the
//! chosen [`Engine`], the envelope a message is evaluated with, compiling a
//! ruleset that is a file or a directory, and running one `test` block.
//! The command line, the daemon and the language server all go through it,
//! so a test block means the same thing in `weir test`, on reload and in
//! the editor.

use std::path::Path;

use weir_stdlib::{Address, Limits, Message, MessageError, Transaction};

use crate::loader::{Loader, MemoryLoader};
use crate::{
    Compiled, Decision, EvalOptions, MemoryRates, NativeError, NativeRuleset, Purpose, RateCounter,
    Ruleset, TestCase, TestMessage, Verdict, compile_for,
};

/// Which engine evaluates a ruleset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// Native code made by Cranelift; the interpreter where executable
    /// memory is refused.
    #[default]
    Native,
    /// The reference interpreter.
    Interpreter,
}

/// The envelope and connection a message is evaluated with.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// The envelope sender (`MAIL FROM`).
    pub from: Option<String>,
    /// The envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The client's address.
    pub client_ip: Option<std::net::IpAddr>,
    /// The client's HELO name.
    pub helo: Option<String>,
}

/// The current time in seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Parses a message into the transaction it is evaluated as, at the
/// current time.
pub fn transaction(bytes: &[u8], envelope: &Envelope) -> Result<Transaction, MessageError> {
    transaction_at(bytes, envelope, now())
}

/// [`transaction`] with the clock set to `now` (seconds since the epoch):
/// `weir run --now`, a test's `now` line.
pub fn transaction_at(
    bytes: &[u8],
    envelope: &Envelope,
    now: i64,
) -> Result<Transaction, MessageError> {
    let message = Message::parse(bytes, &Limits::default())?;
    Ok(Transaction::with_defaults(
        message,
        envelope.from.as_deref(),
        &envelope.to,
        envelope.client_ip,
        envelope.helo.as_deref(),
        now,
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
    /// Compiles `ruleset` for `engine`. When native code was asked for but
    /// could not be made, the interpreter is returned with the reason, so
    /// the caller can say so where its users look (stderr, the daemon's
    /// log).
    pub fn compile(ruleset: &Ruleset, engine: Engine) -> (Evaluator, Option<NativeError>) {
        if engine == Engine::Interpreter {
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

    /// Builds now every regex a message can need before the first message
    /// does: [`NativeRuleset::build_regexes`] or [`Ruleset::build_regexes`].
    pub fn build_regexes(&self) {
        match self {
            Evaluator::Interp(r) => r.build_regexes(),
            Evaluator::Native(n) => n.build_regexes(),
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

    /// Parses a message and evaluates it. A message it accepts (any
    /// verdict but `reject` and `tempfail`) counts as delivered to its
    /// `recipient`: its `duplicate()` keys are recorded in `rates`, so a
    /// later message of a `weir run` can be its duplicate.
    pub fn decide(
        &self,
        bytes: &[u8],
        envelope: &Envelope,
        rates: &mut dyn RateCounter,
        opts: &EvalOptions,
    ) -> Result<Decision, MessageError> {
        let tx = transaction(bytes, envelope)?;
        Ok(self.decide_transaction(&tx, rates, opts))
    }

    /// [`Evaluator::decide`] on a transaction already made (with its clock
    /// and recipient set by the caller).
    pub fn decide_transaction(
        &self,
        tx: &Transaction,
        rates: &mut dyn RateCounter,
        opts: &EvalOptions,
    ) -> Decision {
        let decision = self.evaluate(tx, rates, opts);
        if !matches!(decision.verdict, Verdict::Reject | Verdict::Tempfail) {
            let scope = crate::eval::duplicate_scope(tx);
            rates.record_delivered(&scope, &decision.duplicates, tx.now);
        }
        decision
    }
}

/// Compiles the ruleset at `path`: a `.flow` file, or a directory whose
/// `.flow` files (found through `loader`, in byte order of their paths) are
/// loaded together as if one file imported them all. For native code
/// ([`Purpose::Native`]).
pub fn compile_ruleset(path: &Path, loader: &dyn Loader) -> Compiled {
    compile_ruleset_for(path, loader, Purpose::Native)
}

/// [`compile_ruleset`] for `purpose`.
pub fn compile_ruleset_for(path: &Path, loader: &dyn Loader, purpose: Purpose) -> Compiled {
    let Some(files) = loader.flow_files(path) else {
        return compile_for(path, loader, purpose);
    };
    let entry = path.join(".weir-ruleset.flow");
    let mut text = String::from("# every .flow file of the directory\n");
    for file in files {
        if let Ok(rel) = file.strip_prefix(path) {
            text.push_str(&format!("import {:?}\n", rel.display().to_string()));
        }
    }
    let mut memory = MemoryLoader::with_fallback(loader);
    memory.insert(&entry, text);
    compile_for(&entry, &memory, purpose)
}

/// Evaluates one test case with fresh rate counters (tests do not see
/// each other's counts) and the world the test sets (clock, recipient,
/// counts, delivered keys); the failures are the unmet expectations, or
/// why the message could not be read.
pub fn run_case(
    evaluator: &Evaluator,
    case: &TestCase,
    loader: &dyn Loader,
) -> Result<(), Vec<String>> {
    let bytes = match &case.message {
        TestMessage::File(path) => read_message(path, loader)?,
        TestMessage::Text(text) => text.clone().into_bytes(),
    };
    let envelope = Envelope {
        from: case.envelope_from.clone(),
        to: case.envelope_to.clone().unwrap_or_default(),
        client_ip: case.client_ip,
        helo: case.helo.clone(),
    };
    let world = &case.world;
    let mut tx = transaction_at(&bytes, &envelope, world.now.unwrap_or_else(now))
        .map_err(|e| vec![format!("message refused: {e}")])?;
    if let Some(r) = &world.recipient {
        tx.envelope.recipient = Some(Address::parse(r));
    }
    tx.classes = weir_stdlib::Classifications::new(world.classes.clone());
    let mut rates = MemoryRates::default();
    for (key, n) in &world.rates {
        rates.preset(key, *n, tx.now);
    }
    let scope = crate::eval::duplicate_scope(&tx);
    rates.record_delivered(&scope, &world.duplicates, tx.now);
    let decision = evaluator.decide_transaction(&tx, &mut rates, &EvalOptions::default());
    let failures = case.check(&decision);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

fn read_message(path: &Path, loader: &dyn Loader) -> Result<Vec<u8>, Vec<String>> {
    loader
        .load_bytes(path)
        .map_err(|e| vec![format!("cannot read message {}: {e}", path.display())])
}
