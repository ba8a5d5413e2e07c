//! Warnings (docs/language.md ("Diagnostics")): unused declarations and rules that can never
//! run. Warnings never stop a ruleset from loading. Declarations of stdlib
//! modules never warn: a module offers more than any one importer uses.

use std::collections::HashSet;

use weir_grammar::Diagnostic;
use weir_stdlib::Value;

use crate::codes;
use crate::eval::Program;
use crate::ir::{Action, Expr, Stmt};
use crate::load::Loaded;
use crate::names::{DeclId, DeclKind, Scopes};

/// A `let`, `list`, `fn` or `template` of a non-stdlib file nothing uses.
pub(crate) fn unused(loaded: &Loaded, scopes: &Scopes, used: &HashSet<DeclId>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for decl in scopes.all() {
        if decl.kind == DeclKind::Rule
            || used.contains(&decl.id)
            || loaded.units[decl.id.unit].stdlib
        {
            continue;
        }
        let unit = &loaded.units[decl.id.unit];
        out.push(
            Diagnostic::warning(
                codes::UNUSED,
                format!("{} `{}` is never used", decl.kind.word(), decl.name),
                &unit.name,
                decl.span,
            )
            .with_label("declared here")
            .with_hint("remove it, or use it in a rule"),
        );
    }
    out
}

/// Whether a rule always ends evaluation: no `when` (or `when true`), not
/// shadow, and a verdict or `stop` at the top level of its `then`.
fn always_ends(rule: &crate::ir::Rule) -> bool {
    let unconditional = matches!(rule.when, None | Some(Expr::Const(Value::Bool(true))));
    let ends = rule
        .then
        .iter()
        .any(|s| matches!(s, Stmt::Action(Action::Verdict { .. } | Action::Stop)));
    unconditional && ends && !rule.shadow
}

/// Rules after one that always ends evaluation.
pub(crate) fn unreachable(loaded: &Loaded, prog: &Program) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut ender: Option<&crate::ir::Rule> = None;
    for rule in &prog.rules {
        if let Some(first) = ender {
            let stdlib = loaded.units.iter().any(|u| u.stdlib && u.name == rule.file);
            if !stdlib {
                out.push(
                    Diagnostic::warning(
                        codes::UNREACHABLE_RULE,
                        format!(
                            "rule `{}` can never run: rule `{}` always ends evaluation before it",
                            rule.name, first.name
                        ),
                        &rule.file,
                        rule.span,
                    )
                    .with_label("never evaluated")
                    .with_related(
                        &first.file,
                        first.span,
                        "this rule has no condition and ends evaluation",
                    )
                    .with_hint(
                        "give this rule a lower priority number, or add a `when` to the other rule",
                    ),
                );
            }
        } else if always_ends(rule) {
            ender = Some(rule);
        }
    }
    out
}

/// Whether some path through `stmts` gives `reject` or `tempfail`.
fn refuses(stmts: &[Stmt]) -> bool {
    stmts.iter().any(|s| match s {
        Stmt::Action(Action::Verdict { verdict, .. }) => {
            matches!(verdict, crate::Verdict::Reject | crate::Verdict::Tempfail)
        }
        Stmt::Action(_) => false,
        Stmt::If {
            then, otherwise, ..
        } => refuses(then) || refuses(otherwise),
    })
}

/// Rules that could refuse at an earlier stage than a rule placed before
/// them reads: the daemon answers only once that stage is reached (an
/// envelope `reject` after a body rule waits for the end of the message).
pub(crate) fn stage_order(loaded: &Loaded, prog: &Program) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut latest: Option<&crate::ir::Rule> = None;
    for rule in &prog.rules {
        let stdlib = loaded.units.iter().any(|u| u.stdlib && u.name == rule.file);
        let can_refuse = refuses(&rule.then) || rule.otherwise.as_deref().is_some_and(refuses);
        if let Some(before) = latest
            && rule.stage < before.stage
            && can_refuse
            && !rule.shadow
            && !stdlib
        {
            out.push(
                Diagnostic::warning(
                    codes::LATE_STAGE,
                    format!(
                        "rule `{}` reads only the {} stage, but runs after rule `{}`, which reads the {} stage: its refusal waits for that stage",
                        rule.name, rule.stage, before.name, before.stage
                    ),
                    &rule.file,
                    rule.span,
                )
                .with_label("answered late")
                .with_related(&before.file, before.span, "reads a later stage")
                .with_hint(format!(
                    "give `{}` a lower priority number than `{}` (priority {}) so it is answered at {}",
                    rule.name,
                    before.name,
                    before.priority,
                    rule.stage
                )),
            );
        }
        if latest.is_none_or(|b| rule.stage > b.stage) {
            latest = Some(rule);
        }
    }
    out
}

/// Whether `expr` reads `score` (through the operators a threshold test
/// is written with).
fn reads_score(expr: &Expr) -> bool {
    match expr {
        Expr::Score => true,
        Expr::Not(e) | Expr::Neg(e) | Expr::Exists(e) => reads_score(e),
        Expr::And(a, b) | Expr::Or(a, b) | Expr::Arith(_, a, b) => reads_score(a) || reads_score(b),
        Expr::Compare(c) => reads_score(&c.lhs) || reads_score(&c.rhs),
        _ => false,
    }
}

/// Whether some path through `stmts` adds to the score.
fn scores(stmts: &[Stmt]) -> bool {
    stmts.iter().any(|s| match s {
        Stmt::Action(action) => matches!(action, Action::Score(_)),
        Stmt::If {
            then, otherwise, ..
        } => scores(then) || scores(otherwise),
    })
}

/// A rule testing `score` that runs before a rule that adds to it: the
/// test sees only what the rules before it added.
pub(crate) fn score_order(loaded: &Loaded, prog: &Program) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (i, rule) in prog.rules.iter().enumerate() {
        let stdlib = loaded.units.iter().any(|u| u.stdlib && u.name == rule.file);
        if stdlib || !rule.when.as_ref().is_some_and(reads_score) {
            continue;
        }
        let later = prog.rules[i + 1..]
            .iter()
            .find(|r| !r.shadow && (scores(&r.then) || r.otherwise.as_deref().is_some_and(scores)));
        let Some(later) = later else {
            continue;
        };
        out.push(
            Diagnostic::warning(
                codes::SCORE_BEFORE_SCORING,
                format!(
                    "rule `{}` tests `score` before rule `{}` adds to it",
                    rule.name, later.name
                ),
                &rule.file,
                rule.span,
            )
            .with_label("sees only the score added before it")
            .with_related(&later.file, later.span, "adds to the score later")
            .with_hint(format!(
                "give `{}` a higher priority number than `{}` (priority {}) so it runs after it",
                rule.name, later.name, later.priority
            )),
        );
    }
    out
}
