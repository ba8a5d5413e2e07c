//! Splits a rule's condition into the part compiled to native control flow
//! (`and`, `or`, `not`, constant booleans) and its leaves, the tests the
//! host evaluates (comparisons, `exists`, `matched()`, calls, fields).
//!
//! A leaf is named by its index in one table for the whole ruleset, so the
//! prefilter (`prefilter.rs`) can answer some leaves with a match bit that
//! the generated code reads instead of running the test: only the leaf's
//! call changes, never the shape of the condition.

use weir_stdlib::Value;

use crate::ir::Expr;

/// A condition as the generated code sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cond {
    /// A constant truth value.
    Const(bool),
    /// `a and b`, short-circuit.
    And(Box<Cond>, Box<Cond>),
    /// `a or b`, short-circuit.
    Or(Box<Cond>, Box<Cond>),
    /// `not a`.
    Not(Box<Cond>),
    /// A host-evaluated test: an index into the leaf table.
    Leaf(u32),
}

impl Cond {
    /// Whether `pred` holds for every leaf of the condition.
    pub(crate) fn all_leaves(&self, pred: &dyn Fn(u32) -> bool) -> bool {
        match self {
            Cond::Const(_) => true,
            Cond::And(a, b) | Cond::Or(a, b) => a.all_leaves(pred) && b.all_leaves(pred),
            Cond::Not(a) => a.all_leaves(pred),
            Cond::Leaf(id) => pred(*id),
        }
    }
}

/// One host-evaluated test.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    /// The expression, whose truth is the test (only `true` holds).
    pub expr: Expr,
    /// How many `not`s of the rule's condition enclose it: the interpreter
    /// only records `--explain` evidence outside any `not`.
    pub negations: usize,
}

/// Builds the leaf table of a whole ruleset, one condition at a time.
#[derive(Debug, Default)]
pub(crate) struct Leaves {
    /// The leaves by index.
    pub table: Vec<Leaf>,
}

/// Too many leaves to index with a `u32` (never in practice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooManyLeaves;

impl Leaves {
    /// The native form of `e`, adding its leaves to the table.
    pub(crate) fn split(&mut self, e: &Expr) -> Result<Cond, TooManyLeaves> {
        self.split_under(e, 0)
    }

    fn split_under(&mut self, e: &Expr, negations: usize) -> Result<Cond, TooManyLeaves> {
        Ok(match e {
            Expr::And(a, b) => Cond::And(
                Box::new(self.split_under(a, negations)?),
                Box::new(self.split_under(b, negations)?),
            ),
            Expr::Or(a, b) => Cond::Or(
                Box::new(self.split_under(a, negations)?),
                Box::new(self.split_under(b, negations)?),
            ),
            Expr::Not(inner) => Cond::Not(Box::new(self.split_under(inner, negations + 1)?)),
            // Only `true` is truthy: any other constant is false, as in
            // the interpreter.
            Expr::Const(v) => Cond::Const(matches!(v, Value::Bool(true))),
            other => {
                let id = u32::try_from(self.table.len()).map_err(|_| TooManyLeaves)?;
                self.table.push(Leaf {
                    expr: other.clone(),
                    negations,
                });
                Cond::Leaf(id)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connectives_are_native_and_tests_are_leaves() {
        let e = Expr::Or(
            Box::new(Expr::Not(Box::new(Expr::Matched(0)))),
            Box::new(Expr::And(
                Box::new(Expr::Const(Value::Bool(true))),
                Box::new(Expr::Not(Box::new(Expr::Not(Box::new(Expr::Score))))),
            )),
        );
        let mut leaves = Leaves::default();
        let cond = leaves.split(&e).expect("few leaves");
        assert_eq!(
            cond,
            Cond::Or(
                Box::new(Cond::Not(Box::new(Cond::Leaf(0)))),
                Box::new(Cond::And(
                    Box::new(Cond::Const(true)),
                    Box::new(Cond::Not(Box::new(Cond::Not(Box::new(Cond::Leaf(1))))))
                ))
            )
        );
        let negations: Vec<usize> = leaves.table.iter().map(|l| l.negations).collect();
        assert_eq!(negations, [1, 2]);
    }

    #[test]
    fn non_boolean_constants_are_false() {
        let mut leaves = Leaves::default();
        let cond = leaves
            .split(&Expr::Const(Value::Int(1)))
            .expect("no leaves");
        assert_eq!(cond, Cond::Const(false));
        assert!(leaves.table.is_empty());
    }
}
