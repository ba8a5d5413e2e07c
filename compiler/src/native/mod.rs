//! Native evaluation: a [`Ruleset`] compiled to machine code with
//! Cranelift. This module is the only one that imports Cranelift, and the
//! only place in the crate with `unsafe` code.
//!
//! The generated code is the ruleset's control flow: rules in evaluation
//! order, each condition's `and`/`or`/`not` as short-circuit branches, and
//! an early return when a verdict or `stop` ends evaluation. Everything
//! else (leaf tests, action blocks, shadow rules, `matched()`, captures)
//! runs in host functions that call the interpreter's own steps, so the two
//! engines agree by construction where they share code; the differential
//! test (`tests/differential.rs`) checks the control flow between them.
//! Literal and regex tests on fields are answered by the prefilter
//! (`prefilter.rs`): all patterns of a field matched in one pass per
//! message, the code reading one answer per test.
//!
//! One JIT module per ruleset generation: its code is freed when the
//! [`NativeRuleset`] is dropped, which Rust's borrow rules make safe (an
//! evaluation borrows the ruleset for its whole duration). The daemon keeps
//! it in an `Arc`, so the code lives as long as the last message using it.

mod codegen;
mod cond;
mod heap;
mod host;
mod prefilter;
mod skip;

pub use heap::{fix_allocator_thresholds, release_free_memory};
pub(crate) use prefilter::{Analyses, Analysis, analysis};

use std::ffi::c_void;
use std::fmt;
use std::panic::catch_unwind;
use std::sync::Mutex;

use cranelift_jit::JITModule;
use weir_stdlib::{Stage, Transaction};

use crate::decision::Decision;
use crate::eval::{self, Machine};
use crate::{EvalOptions, RateCounter, Ruleset};

use codegen::RulePlan;
use cond::{Cond, Leaf, Leaves};
use host::EvalCtx;
use prefilter::{Prefilter, Scan};

/// Why a ruleset could not be compiled to native code. The caller falls
/// back to the interpreter ([`Ruleset::evaluate`]), which gives the same
/// decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NativeError {
    /// The host's instruction set is not supported by Cranelift.
    Unsupported(String),
    /// The operating system refused executable memory (for example
    /// systemd's `MemoryDenyWriteExecute=yes`).
    ExecutableMemory(String),
    /// Code generation failed (a bug: please report it).
    Codegen(String),
}

impl fmt::Display for NativeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NativeError::Unsupported(e) => write!(f, "unsupported host for native code: {e}"),
            NativeError::ExecutableMemory(e) => write!(f, "executable memory refused: {e}"),
            NativeError::Codegen(e) => write!(f, "native code generation failed: {e}"),
        }
    }
}

impl std::error::Error for NativeError {}

/// The most per-message scans a ruleset keeps between messages: more than
/// the threads that evaluate at once on any machine it runs on.
const MAX_SPARE_SCANS: usize = 256;

/// The signature of the generated functions: `evaluate_K(ctx, bits) -> u32`
/// (1 when a verdict or `stop` ended evaluation, else 0). `bits` is the
/// prefilter's answers by leaf id (0: not known, 1: false, 2: true), one
/// byte per leaf, which the code reads (`codegen.rs`).
type Entry = extern "C" fn(*mut c_void, *const u8) -> u32;

/// A ruleset compiled to native code. Same decisions as the
/// [`Ruleset`] it was compiled from; `Send + Sync`, so one compiled
/// generation can serve every connection.
pub struct NativeRuleset {
    /// The generated functions, one per chunk of rules, in evaluation
    /// order. Valid while `code` is alive: only called from
    /// [`NativeRuleset::evaluate`], which borrows `self`.
    entries: Vec<Entry>,
    /// The host-evaluated tests, by the ids the code passes.
    leaves: Vec<Leaf>,
    /// The multi-pattern automata answering the literal tests.
    prefilter: Prefilter,
    /// By rule: the latest stage among the rules up to it, which the
    /// rules the code did not `begin` (quiet rules that failed) would
    /// have recorded.
    stages: Vec<Stage>,
    /// The IR the host functions run (rules, functions, templates).
    ruleset: Ruleset,
    /// Per-message prefilter state kept between messages, cleared before
    /// reuse, so that evaluating allocates none of it (one per thread that
    /// evaluates at the same time, at most [`MAX_SPARE_SCANS`]).
    spare_scans: Mutex<Vec<Scan>>,
    /// The JIT module owning the code, held only to free it on drop
    /// (fields drop in order, so after everything else).
    _code: Code,
}

impl fmt::Debug for NativeRuleset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeRuleset")
            .field("hash", &self.ruleset.hash())
            .field("rules", &self.ruleset.rules().len())
            .field("leaves", &self.leaves.len())
            .finish_non_exhaustive()
    }
}

/// Owns a finalized JIT module and frees its memory on drop.
///
/// `JITModule` is neither `Send` nor `Sync` (it holds raw pointers and a
/// `RefCell` for symbol lookups). After `finalize_definitions` this wrapper
/// never touches the module again except to free it in `drop`, which has
/// exclusive access; it exposes no method at all.
struct Code {
    module: Option<JITModule>,
}

// SAFETY: `Code` has no methods, so a shared `&Code` gives access to
// nothing: sharing it between threads cannot race.
unsafe impl Sync for Code {}

// SAFETY: the module's state is plain owned memory (mmap'd code regions,
// declarations, an ISA behind an `Arc`) with no thread affinity; moving it
// to another thread and freeing it there is sound. The symbol `RefCell` is
// only used during finalization, before the module is wrapped.
unsafe impl Send for Code {}

impl Drop for Code {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            // SAFETY: `Code` is only owned by a `NativeRuleset`, whose
            // `evaluate` borrows it for the whole time the code runs; when
            // it is dropped no call into the code can be in progress, and
            // its `entries` pointers are dropped with it, never called again.
            unsafe { module.free_memory() };
        }
    }
}

impl NativeRuleset {
    /// Compiles `ruleset` to native code: one JIT module for this ruleset
    /// generation. Fails when Cranelift does not support the host or the
    /// operating system refuses executable memory.
    pub fn compile(ruleset: &Ruleset) -> Result<NativeRuleset, NativeError> {
        Self::compile_with(ruleset, true)
    }

    /// Like [`NativeRuleset::compile`], but every test is evaluated by the
    /// host, one by one, as the interpreter does: no prefilter. Same
    /// decisions, slower with many rules; for benchmarks and tests that
    /// measure or check the prefilter against its absence.
    pub fn compile_without_prefilter(ruleset: &Ruleset) -> Result<NativeRuleset, NativeError> {
        Self::compile_with(ruleset, false)
    }

    fn compile_with(ruleset: &Ruleset, prefilter: bool) -> Result<NativeRuleset, NativeError> {
        let prog = ruleset.program();
        let mut leaves = Leaves::default();
        let conds: Vec<Option<Cond>> = prog
            .rules
            .iter()
            .map(|r| r.when.as_ref().map(|w| leaves.split(w)).transpose())
            .collect::<Result<_, _>>()
            .map_err(|_| NativeError::Codegen("too many tests".into()))?;
        let mut prefilter = if prefilter {
            Prefilter::build(&leaves.table, ruleset.take_regex_analyses())
        } else {
            Prefilter::default()
        };
        let plans: Vec<RulePlan> = prog
            .rules
            .iter()
            .zip(conds)
            .map(|(rule, cond)| RulePlan {
                otherwise: rule.otherwise.is_some(),
                cond,
            })
            .collect();
        let stages = prog
            .rules
            .iter()
            .scan(Stage::Connect, |latest, rule| {
                *latest = (*latest).max(rule.stage);
                Some(*latest)
            })
            .collect();
        let runs = match prefilter.skips_from() {
            Some(from) => skip::plan(&plans, &|leaf| prefilter.answer(leaf), codegen::CHUNK, from),
            None => Vec::new(),
        };
        prefilter.wake(&runs);
        let skips = match prefilter.every_group_byte() {
            Some(every_group) => skip::Skips { runs, every_group },
            None => skip::Skips::default(),
        };
        let answer = |leaf: u32| prefilter.answer(leaf);
        // Cranelift reports errors as values but asserts on internal
        // invariants; a panic there must not take the caller down.
        let compiled = catch_unwind(|| codegen::Jit::new()?.compile(&plans, &answer, &skips))
            .map_err(|_| NativeError::Codegen("the code generator panicked".into()))??;
        let entries = compiled
            .entries
            .iter()
            // SAFETY: each is the finalized address of a function the
            // translator built with exactly the signature `Entry` (two
            // pointer arguments, a `u32` result, the platform's C calling
            // convention, the module's default). It stays valid while
            // `compiled.module` is alive, which `Code` guarantees for as
            // long as `entries` is kept.
            .map(|&f| unsafe { std::mem::transmute::<*const u8, Entry>(f) })
            .collect();
        // Kept for the ruleset's life: not the doubling's spare room.
        leaves.table.shrink_to_fit();
        Ok(NativeRuleset {
            entries,
            leaves: leaves.table,
            prefilter,
            stages,
            ruleset: ruleset.clone(),
            spare_scans: Mutex::new(Vec::new()),
            _code: Code {
                module: Some(compiled.module),
            },
        })
    }

    /// Builds now every regex that can run on a message without the
    /// prefilter having found its strings in the value: the ones it runs
    /// alone, and those outside its tests. Regexes are otherwise built the
    /// first time a message needs them (`weir_stdlib::pattern`), which
    /// keeps loading fast; a server, which loads off its hot path, calls
    /// this so that no message after a (re)load waits for them.
    ///
    /// A regex the prefilter filters is left to be built on first use: it
    /// runs only on a value holding its strings, which most mail never
    /// does, and a built regex costs about 22 KB (at 10,000 generated
    /// rules, 1,792 regexes took a daemon from 47 MB to 90 MB).
    pub fn build_regexes(&self) {
        let filtered = self.prefilter.filtered_regexes();
        for regex in &self.ruleset.program().regexes {
            if !filtered.contains(&regex.inline()) {
                regex.regex();
            }
        }
    }

    /// Evaluates the rules on one transaction: the same decision as
    /// [`Ruleset::evaluate`]. Never panics, always terminates. With
    /// `--explain` ([`EvalOptions::explain`]), which traces every rule and
    /// records the evidence of every test, the interpreter evaluates.
    ///
    /// Should a host function ever panic (a bug), the message is evaluated
    /// again by the interpreter; `rate()` keys counted before the panic are
    /// then counted by the interpreter too.
    pub fn evaluate(
        &self,
        tx: &Transaction,
        rates: &mut dyn RateCounter,
        opts: &EvalOptions,
    ) -> Decision {
        let prog = self.ruleset.program();
        if opts.explain {
            return eval::evaluate(prog, tx, rates, opts);
        }
        let mut ctx = EvalCtx {
            machine: Machine::new(prog, tx, &mut *rates, opts),
            rules: &prog.rules,
            leaves: &self.leaves,
            prefilter: &self.prefilter,
            scan: self.take_scan(),
            ended: None,
            failed: false,
        };
        // The code reads bytes at leaf and group indices within the table.
        // `Cell`s: the host writes them while the code holds the pointer.
        let bits = ctx.scan.bits().as_ptr().cast::<u8>();
        // The code only hands the pointer back to the host functions,
        // which catch every panic; it cannot unwind or trap.
        let ctx_ptr = std::ptr::from_mut(&mut ctx).cast::<c_void>();
        for entry in &self.entries {
            if entry(ctx_ptr, bits) != 0 {
                break;
            }
        }
        if ctx.failed {
            drop(ctx);
            return eval::evaluate(prog, tx, rates, opts);
        }
        // Every rule up to the one that ended evaluation (or the last) was
        // visited, `begin`-ed or not.
        let last = ctx
            .ended
            .map_or(self.stages.len().checked_sub(1), |r| Some(r as usize));
        if let Some(&stage) = last.and_then(|r| self.stages.get(r)) {
            ctx.machine.reach_stage(stage);
        }
        let decision = ctx.machine.finish();
        self.give_back_scan(ctx.scan);
        decision
    }

    /// A cleared scan from the spares, or a new one.
    fn take_scan(&self) -> Scan {
        let spare = self.spare_scans.lock().ok().and_then(|mut s| s.pop());
        spare.unwrap_or_else(|| self.prefilter.scan(self.leaves.len()))
    }

    /// Clears `scan` and keeps it for the next message (a scan dropped
    /// in a panic is simply not kept).
    fn give_back_scan(&self, mut scan: Scan) {
        scan.clear();
        if let Ok(mut spares) = self.spare_scans.lock()
            && spares.len() < MAX_SPARE_SCANS
        {
            spares.push(scan);
        }
    }

    /// The ruleset this was compiled from.
    pub fn ruleset(&self) -> &Ruleset {
        &self.ruleset
    }

    /// How many tests the host evaluates (the leaf table's size).
    pub fn leaf_count(&self) -> usize {
        self.leaves.len()
    }

    /// How many of those tests the prefilter answers (literal string
    /// tests matched in one pass per field).
    pub fn prefiltered_count(&self) -> usize {
        self.prefilter.decided()
    }

    /// How many runs of rules the code passes over in one test when none
    /// of their rules can hold (`skip.rs`).
    pub fn skip_count(&self) -> usize {
        self.prefilter.skip_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn native_ruleset_is_send_and_sync() {
        assert_send_sync::<NativeRuleset>();
    }
}
