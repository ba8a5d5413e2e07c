//! The Flow compiler: from parsed files to a checked [`Ruleset`] that the
//! reference interpreter evaluates.
//!
//! Pipeline: [`compile`] loads the entry file and its imports through a
//! [`Loader`] (the compiler itself does no other I/O), resolves names,
//! type-checks every expression and action against the builtin registry of
//! `weir-stdlib`, computes each rule's [`Stage`](weir_stdlib::Stage), and
//! lowers everything to an IR. [`Ruleset::evaluate`] runs the IR on one
//! [`Transaction`] and returns a [`Decision`]; it is the specification of
//! Flow's meaning (LANGUAGE.md §4–§5), and always terminates.
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

pub mod decision;
pub mod loader;

pub use decision::{Action, Decision, Reply, Taken, TakenKind, Verdict};
pub use loader::{FsLoader, Loader};
