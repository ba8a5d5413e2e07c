//! The host side of generated code: the per-call context and the one table
//! of `extern "C"` functions the code calls. Every function body runs the
//! interpreter's own steps ([`Machine`]), so leaf tests and actions mean
//! exactly what they mean in the interpreter; only the control flow
//! between them is native.
//!
//! Host functions never unwind: a panic is caught, marks the context as
//! failed (the caller then falls back to the interpreter), and the
//! function returns a value that ends evaluation.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::eval::Machine;
use crate::ir::Rule;

use super::cond::Leaf;
use super::prefilter::{Prefilter, Scan};

/// What the generated code's `ctx` pointer points to, for one evaluation.
pub(crate) struct EvalCtx<'a> {
    /// The interpreter state: fields, captures, score, the decision.
    pub machine: Machine<'a>,
    /// The rules in evaluation order, indexed by the code's rule ids.
    pub rules: &'a [Rule],
    /// The leaf table, indexed by the code's leaf ids.
    pub leaves: &'a [Leaf],
    /// The ruleset's prefilter.
    pub prefilter: &'a Prefilter,
    /// What the prefilter found in this message so far.
    pub scan: Scan,
    /// The rule whose `then` or `else` ended evaluation, if one did.
    pub ended: Option<u32>,
    /// A host function panicked: the decision is incomplete.
    pub failed: bool,
}

/// One host function as the code generator declares it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostFunction {
    /// Its symbol in the JIT module.
    pub name: &'static str,
    /// Its address.
    pub address: *const u8,
    /// Whether it returns a `u8` (all take `(ctx: ptr, index: u32)`).
    pub returns_u8: bool,
}

/// The table of host functions, one entry per kind of call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostFunctions {
    /// `begin(ctx, rule)`: before a rule's condition.
    pub begin: HostFunction,
    /// `test(ctx, leaf) -> u8`: a leaf's truth (1 or 0).
    pub test: HostFunction,
    /// `bit(ctx, leaf) -> u8`: the truth of a leaf the prefilter decides.
    pub bit: HostFunction,
    /// `then(ctx, rule) -> u8`: the condition held; 1 ends evaluation.
    pub then: HostFunction,
    /// `else(ctx, rule) -> u8`: the condition failed; 1 ends evaluation.
    pub otherwise: HostFunction,
    /// `fire(ctx, rule) -> u8`: `begin` then `then`, for a quiet rule
    /// whose condition held; 1 ends evaluation.
    pub fire: HostFunction,
}

impl HostFunctions {
    /// The table of this process's host functions.
    pub(crate) fn get() -> HostFunctions {
        HostFunctions {
            begin: HostFunction {
                name: "weir_host_begin",
                address: host_begin as *const u8,
                returns_u8: false,
            },
            test: HostFunction {
                name: "weir_host_test",
                address: host_test as *const u8,
                returns_u8: true,
            },
            bit: HostFunction {
                name: "weir_host_bit",
                address: host_bit as *const u8,
                returns_u8: true,
            },
            then: HostFunction {
                name: "weir_host_then",
                address: host_then as *const u8,
                returns_u8: true,
            },
            otherwise: HostFunction {
                name: "weir_host_else",
                address: host_else as *const u8,
                returns_u8: true,
            },
            fire: HostFunction {
                name: "weir_host_fire",
                address: host_fire as *const u8,
                returns_u8: true,
            },
        }
    }

    /// Every entry, for declaring them all.
    pub(crate) fn all(&self) -> [HostFunction; 6] {
        [
            self.begin,
            self.test,
            self.bit,
            self.then,
            self.otherwise,
            self.fire,
        ]
    }
}

/// Runs `body` on the context behind `ctx`, catching panics. Returns
/// `on_failure` if the context is missing, failed before, or fails now.
fn guarded<R>(ctx: *mut c_void, on_failure: R, body: impl FnOnce(&mut EvalCtx<'_>) -> R) -> R {
    // SAFETY: the generated code only passes back the pointer that
    // `NativeRuleset::evaluate` gave it: a live `EvalCtx` borrowed
    // exclusively for the whole call, and touched by nobody else while a
    // host function runs (the code itself never dereferences it).
    let Some(ctx) = (unsafe { ctx.cast::<EvalCtx<'_>>().as_mut() }) else {
        return on_failure;
    };
    if ctx.failed {
        return on_failure;
    }
    match catch_unwind(AssertUnwindSafe(|| body(&mut *ctx))) {
        Ok(r) => r,
        Err(_) => {
            ctx.failed = true;
            on_failure
        }
    }
}

/// The rule with the code's rule id, or a failure.
fn rule(rules: &[Rule], id: u32) -> Option<&Rule> {
    rules.get(usize::try_from(id).ok()?)
}

extern "C" fn host_begin(ctx: *mut c_void, rule_id: u32) {
    guarded(ctx, (), |c| match rule(c.rules, rule_id) {
        Some(r) => c.machine.begin_rule(r),
        None => c.failed = true,
    });
}

extern "C" fn host_test(ctx: *mut c_void, leaf_id: u32) -> u8 {
    guarded(ctx, 0, |c| {
        let Some(leaf) = usize::try_from(leaf_id).ok().and_then(|i| c.leaves.get(i)) else {
            c.failed = true;
            return 0;
        };
        u8::from(c.machine.test(&leaf.expr, leaf.negations))
    })
}

extern "C" fn host_bit(ctx: *mut c_void, leaf_id: u32) -> u8 {
    guarded(ctx, 0, |c| {
        let id = usize::try_from(leaf_id).unwrap_or(usize::MAX);
        let Some(slot) = c.prefilter.slot(id) else {
            c.failed = true;
            return 0;
        };
        u8::from(c.scan.test(c.prefilter, slot, &mut c.machine))
    })
}

extern "C" fn host_then(ctx: *mut c_void, rule_id: u32) -> u8 {
    held(ctx, rule_id, false)
}

extern "C" fn host_fire(ctx: *mut c_void, rule_id: u32) -> u8 {
    held(ctx, rule_id, true)
}

/// A rule's condition held: runs its `then` block (after `begin`, with
/// `begin`); 1 ends evaluation.
fn held(ctx: *mut c_void, rule_id: u32, begin: bool) -> u8 {
    guarded(ctx, 1, |c| match rule(c.rules, rule_id) {
        Some(r) => {
            if begin {
                c.machine.begin_rule(r);
            }
            let end = c.machine.rule_held(r);
            if end {
                c.ended = Some(rule_id);
            }
            u8::from(end)
        }
        None => {
            c.failed = true;
            1
        }
    })
}

extern "C" fn host_else(ctx: *mut c_void, rule_id: u32) -> u8 {
    guarded(ctx, 1, |c| match rule(c.rules, rule_id) {
        Some(r) => {
            let end = c.machine.rule_failed(r);
            if end {
                c.ended = Some(rule_id);
            }
            u8::from(end)
        }
        None => {
            c.failed = true;
            1
        }
    })
}
