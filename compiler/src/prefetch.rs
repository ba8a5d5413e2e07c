//! The `rate()` keys a message can ask for, computed before evaluation
//! ([`Ruleset::rate_keys`](crate::Ruleset::rate_keys)), so that a caller
//! whose counters live across the network (the daemon's Redis store) reads
//! all their counts in one round trip instead of one per key.
//!
//! A key is computed up front when its expression (and its window's) reads
//! only the transaction and constants: fields, headers, classifier answers,
//! pure builtins, and the parameters of a `fn` called with such arguments.
//! Its value is then the same before evaluation as at any point of it,
//! since evaluation changes nothing it reads. Keys that depend on what is
//! known only mid-evaluation (`score`, captures, `matched()`, a
//! `some`/`every` element, another counter) are left out: the counter
//! reads them when they are asked. Every call site counts, also under a
//! condition that will not hold: prefetching reads, it never counts.

use std::collections::HashSet;

use weir_stdlib::Transaction;

use crate::EvalOptions;
use crate::eval::{Machine, Program};
use crate::ir::Expr;
use crate::rates::NoRates;

/// Whether `e` reads only the transaction and constants. `params`: the
/// enclosing `fn`'s parameters are bound; `element`: a `some`/`every`
/// element is bound.
fn closed(e: &Expr, params: bool, element: bool) -> bool {
    match e {
        Expr::Score
        | Expr::Captures(_)
        | Expr::Rate { .. }
        | Expr::Duplicate { .. }
        | Expr::Matched(_)
        | Expr::CallUser { .. } => false,
        Expr::Param(_) => params,
        Expr::Element => element,
        Expr::Quantified { list, body, .. } => {
            closed(list, params, element) && closed(body, params, true)
        }
        _ => e.children().into_iter().all(|c| closed(c, params, element)),
    }
}

/// The walk over a program's expressions, evaluating the closed keys.
struct Walk<'a> {
    prog: &'a Program,
    machine: Machine<'a>,
    seen: HashSet<(String, u64)>,
    keys: Vec<(String, u64)>,
}

impl Walk<'_> {
    /// Collects the keys of every `rate()` inside `e`; `params`: whether
    /// the parameters of the `fn` being walked are bound.
    fn expr(&mut self, e: &Expr, params: bool) {
        match e {
            Expr::Rate { key, window }
                if closed(key, params, false) && closed(window, params, false) =>
            {
                let k = self.machine.rate_key(key, window);
                if self.seen.insert(k.clone()) {
                    self.keys.push(k);
                }
            }
            Expr::CallUser { func, args } => {
                for a in args {
                    self.expr(a, params);
                }
                let Some(f) = self.prog.functions.get(*func) else {
                    return;
                };
                if args.iter().all(|a| closed(a, params, false)) {
                    let values = args.iter().map(|a| self.machine.eval(a)).collect();
                    // `fn`s do not recurse (checked), so this ends.
                    self.machine.enter_fn(values);
                    self.expr(&f.body, true);
                    self.machine.leave_fn();
                } else {
                    self.expr(&f.body, false);
                }
            }
            _ => {
                for c in e.children() {
                    self.expr(c, params);
                }
            }
        }
    }
}

/// The positions in `prog.roots()` of the expressions that reach a
/// `rate()` call, directly or through a `fn`: computed once per ruleset,
/// so that a message walks only those (none, and no work, for a ruleset
/// without `rate()`).
pub(crate) fn rate_roots(prog: &Program) -> Vec<usize> {
    let mut memo = vec![None; prog.functions.len()];
    prog.roots()
        .into_iter()
        .enumerate()
        .filter(|(_, e)| reaches_rate(prog, e, &mut memo))
        .map(|(i, _)| i)
        .collect()
}

/// Whether some rule of `prog` may ask its counter (`rate()` or
/// `duplicate()`, directly or through a `fn`) when evaluated.
pub(crate) fn asks_counter(prog: &Program) -> bool {
    let mut memo = vec![None; prog.functions.len()];
    let counter = |e: &Expr| matches!(e, Expr::Rate { .. } | Expr::Duplicate { .. });
    prog.roots()
        .into_iter()
        .any(|e| reaches(prog, e, &mut memo, &counter))
}

/// Whether `e` calls `rate()`; `memo` holds the answer of each `fn`.
fn reaches_rate(prog: &Program, e: &Expr, memo: &mut Vec<Option<bool>>) -> bool {
    reaches(prog, e, memo, &|e| matches!(e, Expr::Rate { .. }))
}

/// Whether `e` holds an expression `hit` picks out, directly or through a
/// `fn`; `memo` holds the answer of each `fn`.
fn reaches(
    prog: &Program,
    e: &Expr,
    memo: &mut Vec<Option<bool>>,
    hit: &dyn Fn(&Expr) -> bool,
) -> bool {
    if hit(e) {
        return true;
    }
    match e {
        Expr::CallUser { func, args } => {
            if args.iter().any(|a| reaches(prog, a, memo, hit)) {
                return true;
            }
            if let Some(known) = memo.get(*func).copied().flatten() {
                return known;
            }
            // `fn`s do not recurse (checked), so this ends.
            let found = prog
                .functions
                .get(*func)
                .is_some_and(|f| reaches(prog, &f.body, memo, hit));
            if let Some(slot) = memo.get_mut(*func) {
                *slot = Some(found);
            }
            found
        }
        _ => e
            .children()
            .into_iter()
            .any(|c| reaches(prog, c, memo, hit)),
    }
}

/// Every `(key, window in seconds)` of a `rate()` call of `prog` whose key
/// can be computed from `tx` alone, once each, in program order; `roots`
/// from [`rate_roots`].
pub(crate) fn rate_keys(prog: &Program, roots: &[usize], tx: &Transaction) -> Vec<(String, u64)> {
    if roots.is_empty() {
        return Vec::new();
    }
    let opts = EvalOptions {
        explain: false,
        dry_run: true,
    };
    let mut rates = NoRates;
    let mut walk = Walk {
        prog,
        machine: Machine::new(prog, tx, &mut rates, &opts),
        seen: HashSet::new(),
        keys: Vec::new(),
    };
    let all = prog.roots();
    for e in roots.iter().filter_map(|&i| all.get(i)) {
        walk.expr(e, false);
    }
    walk.keys
}
