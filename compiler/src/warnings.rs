//! Warnings (docs/language.md ("Diagnostics")): unused declarations and rules that can never
//! run. Warnings never stop a ruleset from loading. Declarations of stdlib
//! modules never warn: a module offers more than any one importer uses.

use weir_grammar::Diagnostic;
use weir_stdlib::Value;

use crate::codes;
use crate::eval::Program;
use crate::ir::{Action, Expr, Stmt};
use crate::load::Loaded;
use crate::names::{DeclId, DeclKind, Scopes};

mod order;
pub(crate) use order::{score_order, stage_order};

/// A `let`, `list`, `fn` or `template` of a non-stdlib file nothing uses.
pub(crate) fn unused(
    loaded: &Loaded,
    scopes: &Scopes,
    used: &foldhash::HashSet<DeclId>,
) -> Vec<Diagnostic> {
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
