//! `W0204`: a `redirect` that can run after a `fileinto` in the same
//! decision. In LMTP, `redirect` drops the local copy, so the folder the
//! earlier `fileinto` chose receives nothing; the author usually meant
//! `add_rcpt` (forward a copy and keep the filed one).

use weir_grammar::Diagnostic;

use crate::codes;
use crate::eval::Program;
use crate::ir::{Action, Rule, Stmt};
use crate::load::Loaded;

/// What one walk of a block found.
#[derive(Default, Clone, Copy)]
struct Walk {
    /// A `fileinto` may have been taken by the end of the block.
    filed: bool,
    /// A `redirect` may run after a `fileinto`.
    redirect_after: bool,
}

/// Walks `stmts` in order; `filed` says whether a `fileinto` may already
/// have been taken. The two branches of an `if` are walked apart, so a
/// `fileinto` in one and a `redirect` in the other are no conflict.
fn walk(stmts: &[Stmt], mut filed: bool) -> Walk {
    let mut redirect_after = false;
    for stmt in stmts {
        match stmt {
            Stmt::Action(Action::Fileinto(_)) => filed = true,
            Stmt::Action(Action::Redirect(_)) => redirect_after |= filed,
            Stmt::Action(_) => {}
            Stmt::If {
                then, otherwise, ..
            } => {
                let a = walk(then, filed);
                let b = walk(otherwise, filed);
                filed = a.filed || b.filed;
                redirect_after |= a.redirect_after || b.redirect_after;
            }
        }
    }
    Walk {
        filed,
        redirect_after,
    }
}

/// The `W0204` warnings of a program, one per rule whose `redirect` can
/// follow a `fileinto` of the same rule or of an earlier one.
pub(crate) fn redirect_after_fileinto(loaded: &Loaded, prog: &Program) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut filer: Option<&Rule> = None;
    for rule in prog.rules.iter().filter(|r| !r.shadow) {
        let before = filer.is_some();
        let then = walk(&rule.then, before);
        let otherwise = walk(rule.otherwise.as_deref().unwrap_or(&[]), before);
        let stdlib = loaded.units.iter().any(|u| u.stdlib && u.name == rule.file);
        if (then.redirect_after || otherwise.redirect_after) && !stdlib {
            let mut d = Diagnostic::warning(
                codes::REDIRECT_AFTER_FILEINTO,
                format!(
                    "rule `{}` may `redirect` after a `fileinto`: the filed copy is dropped",
                    rule.name
                ),
                &rule.file,
                rule.span,
            )
            .with_label("redirect replaces the local copy")
            .with_hint("use `add_rcpt` to forward a copy and keep the filed one");
            if let Some(first) = filer.filter(|f| f.id != rule.id) {
                d = d.with_related(&first.file, first.span, "this rule may `fileinto` first");
            }
            out.push(d);
        }
        if filer.is_none() && (then.filed || otherwise.filed) {
            filer = Some(rule);
        }
    }
    out
}
