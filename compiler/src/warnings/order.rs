//! Warnings about rule order that changes what a rule means without an
//! error: a rule that could refuse early but waits for a later stage
//! because of a rule before it, and a threshold on `score` tested before
//! every rule that adds to the score has run.

use weir_grammar::Diagnostic;

use crate::codes;
use crate::eval::Program;
use crate::ir::{Action, Expr, Rule, Stmt};
use crate::load::Loaded;

/// Rules that end evaluation at an earlier stage than a rule before them:
/// the milter can only answer once every earlier rule could run, so the
/// verdict waits for that later stage (an envelope `reject` after a body
/// rule is given at end of DATA, after the whole message was sent).
pub(crate) fn stage_order(loaded: &Loaded, prog: &Program) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut latest: Option<&Rule> = None;
    for rule in &prog.rules {
        if let Some(before) = latest
            && before.stage > rule.stage
            && !rule.shadow
            && ends(rule)
            && !is_stdlib(loaded, &rule.file)
        {
            out.push(
                Diagnostic::warning(
                    codes::STAGE_ORDER,
                    format!(
                        "rule `{}` could decide at the {} stage, but rule `{}` before it needs the {} stage, so its verdict waits until then",
                        rule.name, rule.stage, before.name, before.stage
                    ),
                    &rule.file,
                    rule.span,
                )
                .with_label(format!("decided at the {} stage at the earliest", before.stage))
                .with_related(&before.file, before.span, format!("reads the {} stage", before.stage))
                .with_hint(format!(
                    "give `{}` a lower priority number than `{}` so it runs first",
                    rule.name, before.name
                )),
            );
        }
        if latest.is_none_or(|l| rule.stage > l.stage) {
            latest = Some(rule);
        }
    }
    out
}

/// Rules whose conditions test `score` before a later rule adds to it: the
/// later rule's points are not counted by the test.
pub(crate) fn score_order(loaded: &Loaded, prog: &Program) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (i, rule) in prog.rules.iter().enumerate() {
        if is_stdlib(loaded, &rule.file) || !tests_score(prog, rule) {
            continue;
        }
        let Some(scorer) = prog.rules[i + 1..]
            .iter()
            .find(|r| !r.shadow && blocks(r).any(adds_score))
        else {
            continue;
        };
        out.push(
            Diagnostic::warning(
                codes::SCORE_ORDER,
                format!(
                    "rule `{}` tests `score` before rule `{}` adds to it",
                    rule.name, scorer.name
                ),
                &rule.file,
                rule.span,
            )
            .with_label("the score is not final here")
            .with_related(&scorer.file, scorer.span, "adds to the score later")
            .with_hint(format!(
                "give `{}` a higher priority number than every rule that scores (e.g. `priority 1000`)",
                rule.name
            )),
        );
    }
    out
}

fn is_stdlib(loaded: &Loaded, file: &str) -> bool {
    loaded.units.iter().any(|u| u.stdlib && u.name == file)
}

/// The rule's blocks: `then`, and `else` if any.
fn blocks(rule: &Rule) -> impl Iterator<Item = &[Stmt]> {
    std::iter::once(rule.then.as_slice()).chain(rule.otherwise.as_deref())
}

/// Whether the rule can end evaluation: a verdict or `stop` in a block.
fn ends(rule: &Rule) -> bool {
    let mut ends = false;
    for stmt in blocks(rule).flatten() {
        stmt.each_action(&mut |a| {
            ends |= matches!(a, Action::Verdict { .. } | Action::Stop);
        });
    }
    ends
}

fn adds_score(stmts: &[Stmt]) -> bool {
    let mut adds = false;
    for stmt in stmts {
        stmt.each_action(&mut |a| adds |= matches!(a, Action::Score(_)));
    }
    adds
}

/// Whether the rule's `when`, or an `if` in its blocks, reads `score`.
fn tests_score(prog: &Program, rule: &Rule) -> bool {
    fn in_stmts(prog: &Program, stmts: &[Stmt]) -> bool {
        stmts.iter().any(|s| match s {
            Stmt::Action(_) => false,
            Stmt::If {
                cond,
                then,
                otherwise,
            } => reads_score(prog, cond, 0) || in_stmts(prog, then) || in_stmts(prog, otherwise),
        })
    }
    rule.when.as_ref().is_some_and(|w| reads_score(prog, w, 0))
        || blocks(rule).any(|b| in_stmts(prog, b))
}

/// Whether evaluating `e` reads `score`, through the `fn`s it calls too
/// (`depth` bounds the walk: `fn`s cannot recurse, so it never binds).
fn reads_score(prog: &Program, e: &Expr, depth: usize) -> bool {
    let in_body = |func: usize| {
        depth < prog.functions.len()
            && prog
                .functions
                .get(func)
                .is_some_and(|f| reads_score(prog, &f.body, depth + 1))
    };
    match e {
        Expr::Score => true,
        Expr::CallUser { func, .. } if in_body(*func) => true,
        _ => e
            .children()
            .into_iter()
            .any(|x| reads_score(prog, x, depth)),
    }
}
