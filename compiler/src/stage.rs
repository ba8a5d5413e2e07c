//! Stage analysis (docs/language.md ("Stages")): a rule's stage is the latest stage of
//! everything it reads, anywhere in it. The same walk notes the LMTP-only
//! fields and actions a rule uses (the load-time warning of docs/language.md, "Diagnostics").

use std::cell::RefCell;

use weir_stdlib::Stage;

use crate::eval::Program;
use crate::ir::{Action, Expr, Part, Rule, Stmt};

/// Sets the stage of every rule of a program (rules in evaluation order).
pub(crate) fn assign(prog: &mut Program) {
    let mut rule_stages = vec![Stage::Connect; prog.rule_count];
    let mut score_stage = Stage::Connect;
    let mut stages = Vec::with_capacity(prog.rules.len());
    let mut lmtp_only = Vec::with_capacity(prog.rules.len());
    for rule in &prog.rules {
        let cx = Cx {
            prog,
            rule_stages: &rule_stages,
            score_stage,
            lmtp_only: RefCell::default(),
        };
        let stage = cx.rule(rule);
        let mut uses = cx.lmtp_only.into_inner();
        uses.sort_unstable();
        uses.dedup();
        lmtp_only.push(uses);
        if let Some(s) = rule_stages.get_mut(rule.id) {
            *s = stage;
        }
        if !rule.shadow && has_score(&rule.then) | rule.otherwise.as_deref().is_some_and(has_score)
        {
            score_stage = score_stage.max(stage);
        }
        stages.push(stage);
    }
    for ((rule, stage), uses) in prog.rules.iter_mut().zip(stages).zip(lmtp_only) {
        rule.stage = stage;
        rule.lmtp_only = uses;
    }
}

fn has_score(stmts: &[Stmt]) -> bool {
    stmts.iter().any(|s| match s {
        Stmt::Action(Action::Score(_)) => true,
        Stmt::Action(_) => false,
        Stmt::If {
            then, otherwise, ..
        } => has_score(then) || has_score(otherwise),
    })
}

struct Cx<'a> {
    prog: &'a Program,
    rule_stages: &'a [Stage],
    score_stage: Stage,
    /// LMTP-only names met on the way (a side record of the walk).
    lmtp_only: RefCell<Vec<&'static str>>,
}

impl Cx<'_> {
    fn rule(&self, rule: &Rule) -> Stage {
        let when = rule
            .when
            .as_ref()
            .map_or(Stage::Connect, |w| self.expr(w, 0));
        let otherwise = rule
            .otherwise
            .as_deref()
            .map_or(Stage::Connect, |o| self.block(o));
        when.max(self.block(&rule.then)).max(otherwise)
    }

    fn block(&self, stmts: &[Stmt]) -> Stage {
        stmts
            .iter()
            .map(|s| match s {
                Stmt::Action(a) => self.action(a),
                Stmt::If {
                    cond,
                    then,
                    otherwise,
                } => self
                    .expr(cond, 0)
                    .max(self.block(then))
                    .max(self.block(otherwise)),
            })
            .max()
            .unwrap_or(Stage::Connect)
    }

    fn template(&self, index: usize) -> Stage {
        self.prog.templates.get(index).map_or(Stage::Connect, |t| {
            [&t.subject, &t.body, &t.from, &t.addresses]
                .into_iter()
                .flatten()
                .map(|e| self.expr(e, 0))
                .fold(Stage::Connect, Stage::max)
        })
    }

    fn action(&self, a: &Action) -> Stage {
        let e = |x: &Expr| self.expr(x, 0);
        if let Action::Flag(_) = a
            && weir_stdlib::registry()
                .action("flag")
                .is_some_and(|d| d.lmtp_only)
        {
            self.lmtp_only.borrow_mut().push("flag");
        }
        match a {
            Action::Verdict { text, .. } => text.as_ref().map_or(Stage::Connect, e),
            Action::AddHeader(a, b) | Action::SetHeader(a, b) => e(a).max(e(b)),
            Action::RemoveHeader(x)
            | Action::PrependSubject(x)
            | Action::AddRcpt(x)
            | Action::RemoveRcpt(x)
            | Action::Redirect(x)
            | Action::Fileinto(x)
            | Action::Flag(x)
            | Action::Tag(x)
            | Action::Score(x)
            | Action::Log(x) => e(x),
            Action::Keep | Action::Stop => Stage::Connect,
            Action::Notify {
                channel,
                with,
                template,
            } => {
                let mut s = e(channel);
                for (_, v) in with {
                    s = s.max(e(v));
                }
                s.max(template.map_or(Stage::Connect, |t| self.template(t)))
            }
            Action::Reply(t, every) => self
                .template(*t)
                .max(every.as_ref().map_or(Stage::Connect, e)),
        }
    }

    /// The stage of an expression; `depth` bounds descent into functions.
    fn expr(&self, e: &Expr, depth: usize) -> Stage {
        let reg = weir_stdlib::registry();
        let sub = |x: &Expr| self.expr(x, depth);
        match e {
            Expr::Const(_) | Expr::Param(_) | Expr::Element | Expr::Captures(_) => Stage::Connect,
            Expr::Field(i) => {
                let field = reg.fields.get(*i);
                if let Some(f) = field.filter(|f| f.lmtp_only) {
                    self.lmtp_only.borrow_mut().push(f.path);
                }
                field.and_then(|f| f.stage).unwrap_or(Stage::Connect)
            }
            Expr::Score => self.score_stage,
            Expr::Header { name, .. } => {
                sub(name).max(reg.function("header").map_or(Stage::Header, |f| f.stage))
            }
            Expr::Matched(id) => self.rule_stages.get(*id).copied().unwrap_or(Stage::Connect),
            // A classifier reads the whole message.
            Expr::Classifier(..) => Stage::Body,
            Expr::CallUser { func, args } => {
                let body = match self.prog.functions.get(*func) {
                    Some(f) if depth < 64 => self.expr(&f.body, depth + 1),
                    _ => Stage::Connect,
                };
                args.iter().map(sub).fold(body, Stage::max)
            }
            Expr::Member(x, _) | Expr::Not(x) | Expr::Neg(x) | Expr::Exists(x) => sub(x),
            Expr::Index(a, b, _) | Expr::And(a, b) | Expr::Or(a, b) | Expr::Arith(_, a, b) => {
                sub(a).max(sub(b))
            }
            Expr::Rate { key, window } | Expr::Duplicate { key, window } => {
                sub(key).max(sub(window))
            }
            Expr::Quantified { list, body, .. } => sub(list).max(sub(body)),
            Expr::Builtin { args, .. } | Expr::List(args) => {
                args.iter().map(sub).max().unwrap_or(Stage::Connect)
            }
            Expr::Compare(c) => sub(&c.lhs).max(sub(&c.rhs)),
            Expr::Interp(parts) => parts
                .iter()
                .map(|p| match p {
                    Part::Text(_) => Stage::Connect,
                    Part::Expr(x) => sub(x),
                })
                .max()
                .unwrap_or(Stage::Connect),
        }
    }
}
