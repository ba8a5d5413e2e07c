//! Rules, action blocks, `if`, actions, and `test` blocks.

use pest::iterators::Pair;

use super::expr::compare_op_of;
use super::{Builder, Rule, is_string_pair};
use crate::ast::{
    Action, Block, CompareOp, Expectation, IfStmt, MapLit, Rule as RuleDecl, Stmt, TestBlock,
    TestStmt, TestStmtKind,
};
use crate::codes;

impl Builder<'_> {
    pub(super) fn rule(&self, pair: Pair<'_, Rule>) -> Option<RuleDecl> {
        let span = self.span(&pair);
        let mut name = None;
        let mut priority = None;
        let mut shadow = false;
        let mut when = None;
        let mut then = None;
        let mut otherwise = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(&p)),
                Rule::priority => {
                    priority = p
                        .into_inner()
                        .find(|p| p.as_rule() == Rule::int_lit)
                        .and_then(|p| self.integer(&p));
                }
                Rule::shadow => shadow = true,
                Rule::when_clause => {
                    when = p
                        .into_inner()
                        .find(|p| p.as_rule() == Rule::cond_expr)
                        .map(|p| self.expr(p));
                }
                Rule::then_clause => then = self.clause_body(p),
                Rule::else_clause => otherwise = self.clause_body(p),
                _ => {}
            }
        }
        Some(RuleDecl {
            name: name?,
            priority,
            shadow,
            when,
            then: then?,
            otherwise,
            span,
        })
    }

    /// The block or single statement after `then` or `else`.
    fn clause_body(&self, pair: Pair<'_, Rule>) -> Option<Block> {
        let body = pair
            .into_inner()
            .find(|p| matches!(p.as_rule(), Rule::block | Rule::if_stmt | Rule::action))?;
        self.body(body)
    }

    /// A braced block, or a single statement as an unbraced block.
    fn body(&self, pair: Pair<'_, Rule>) -> Option<Block> {
        let span = self.span(&pair);
        if pair.as_rule() == Rule::block {
            let stmts = pair.into_inner().filter_map(|p| self.stmt(p)).collect();
            return Some(Block {
                stmts,
                braced: true,
                span,
            });
        }
        Some(Block {
            stmts: vec![self.stmt(pair)?],
            braced: false,
            span,
        })
    }

    fn stmt(&self, pair: Pair<'_, Rule>) -> Option<Stmt> {
        match pair.as_rule() {
            Rule::action => self.action(pair).map(Stmt::Action),
            Rule::if_stmt => self.if_stmt(pair).map(Stmt::If),
            _ => None,
        }
    }

    fn if_stmt(&self, pair: Pair<'_, Rule>) -> Option<IfStmt> {
        let span = self.span(&pair);
        let mut cond = None;
        let mut then = None;
        let mut otherwise = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::cond_expr => cond = Some(self.expr(p)),
                Rule::block if then.is_none() => then = self.body(p),
                Rule::block | Rule::if_stmt => otherwise = self.body(p),
                _ => {}
            }
        }
        Some(IfStmt {
            cond: cond?,
            then: then?,
            otherwise,
            span,
        })
    }

    pub(super) fn action(&self, pair: Pair<'_, Rule>) -> Option<Action> {
        let span = self.span(&pair);
        let mut name = None;
        let mut args = Vec::new();
        let mut with = None;
        let mut template = None;
        let mut every = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(&p)),
                Rule::arg => args.push(self.arg(p)),
                Rule::with_clause => {
                    with = p
                        .into_inner()
                        .find(|p| p.as_rule() == Rule::map)
                        .map(|m| self.map(m))
                }
                Rule::template_clause => {
                    for p in p.into_inner() {
                        match p.as_rule() {
                            Rule::ident => template = Some(self.ident(&p)),
                            Rule::every_clause => {
                                every = p
                                    .into_inner()
                                    .find(|p| p.as_rule() == Rule::arg)
                                    .map(|p| self.arg(p));
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Some(Action {
            name: name?,
            args,
            with,
            template,
            every,
            span,
        })
    }

    fn map(&self, pair: Pair<'_, Rule>) -> MapLit {
        let span = self.span(&pair);
        let mut entries = Vec::new();
        for entry in pair.into_inner().filter(|p| p.as_rule() == Rule::map_entry) {
            let mut key = None;
            let mut value = None;
            for p in entry.into_inner() {
                match p.as_rule() {
                    Rule::ident => key = Some(self.ident(&p)),
                    Rule::cond_expr => value = Some(self.expr(p)),
                    _ => {}
                }
            }
            if let (Some(k), Some(v)) = (key, value) {
                entries.push((k, v));
            }
        }
        MapLit { entries, span }
    }

    pub(super) fn test(&self, pair: Pair<'_, Rule>) -> Option<TestBlock> {
        let span = self.span(&pair);
        let mut name = None;
        let mut stmts = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                _ if is_string_pair(&p) => {
                    let name_span = self.span(&p);
                    name = Some((self.plain_string(p, "a test name")?, name_span));
                }
                Rule::t_message
                | Rule::t_envelope
                | Rule::t_client
                | Rule::t_now
                | Rule::t_recipient
                | Rule::t_rate
                | Rule::t_duplicate
                | Rule::t_classify
                | Rule::t_expect => {
                    if let Some(s) = self.test_stmt(p) {
                        stmts.push(s);
                    }
                }
                _ => {}
            }
        }
        let (name, name_span) = name?;
        Some(TestBlock {
            name,
            name_span,
            stmts,
            span,
        })
    }

    fn test_stmt(&self, pair: Pair<'_, Rule>) -> Option<TestStmt> {
        let span = self.span(&pair);
        let kind = pair.as_rule();
        let mut inner = pair.into_inner().peekable();
        let kind = match kind {
            Rule::t_message => {
                let lit = inner.find(is_string_pair)?;
                if lit.as_rule() == Rule::raw_tstring {
                    TestStmtKind::MessageText(self.string(lit).as_plain().unwrap_or_default())
                } else {
                    TestStmtKind::MessageFile(self.plain_string(lit, "a message path")?)
                }
            }
            Rule::t_now | Rule::t_recipient | Rule::t_rate | Rule::t_duplicate => {
                let mut values = inner
                    .filter(|p| p.as_rule() == Rule::arg)
                    .map(|p| self.arg(p));
                let first = values.next()?;
                match kind {
                    Rule::t_now => TestStmtKind::Now(first),
                    Rule::t_recipient => TestStmtKind::Recipient(first),
                    Rule::t_duplicate => TestStmtKind::Duplicate(first),
                    _ => TestStmtKind::Rate {
                        key: first,
                        count: values.next()?,
                    },
                }
            }
            Rule::t_classify => {
                let name = inner.find(|p| p.as_rule() == Rule::ident)?;
                let name = self.ident(&name);
                let mut values = inner
                    .filter(|p| p.as_rule() == Rule::arg)
                    .map(|p| self.arg(p));
                TestStmtKind::Classify {
                    name,
                    class: values.next()?,
                    confidence: values.next()?,
                }
            }
            Rule::t_envelope | Rule::t_client => {
                let mut first = None;
                let mut second = None;
                while let Some(p) = inner.next() {
                    let slot = match p.as_rule() {
                        Rule::cw_from | Rule::cw_ip => &mut first,
                        Rule::cw_to | Rule::cw_helo => &mut second,
                        _ => continue,
                    };
                    if let Some(arg) = inner.next_if(|a| a.as_rule() == Rule::arg) {
                        *slot = Some(self.arg(arg));
                    }
                }
                if kind == Rule::t_envelope {
                    TestStmtKind::Envelope {
                        from: first,
                        to: second,
                    }
                } else {
                    TestStmtKind::Client {
                        ip: first,
                        helo: second,
                    }
                }
            }
            _ => {
                let mut negated = false;
                let mut what = None;
                for p in inner {
                    match p.as_rule() {
                        Rule::negated => negated = true,
                        Rule::e_verdict
                        | Rule::e_stage
                        | Rule::e_score
                        | Rule::e_matched
                        | Rule::action => {
                            what = self.expectation(p);
                        }
                        _ => {}
                    }
                }
                TestStmtKind::Expect {
                    negated,
                    what: what?,
                }
            }
        };
        Some(TestStmt { kind, span })
    }

    fn expectation(&self, pair: Pair<'_, Rule>) -> Option<Expectation> {
        let kind = pair.as_rule();
        if kind == Rule::action {
            return self.action(pair).map(Expectation::Action);
        }
        let mut ident = None;
        let mut code = None;
        let mut op = None;
        let mut value = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident => ident = Some(self.ident(&p)),
                Rule::int_lit => code = self.integer(&p),
                Rule::cmp_sym => {
                    let parsed = compare_op_of(p.as_str());
                    if !matches!(
                        parsed,
                        Some(
                            CompareOp::Eq
                                | CompareOp::Ne
                                | CompareOp::Lt
                                | CompareOp::Le
                                | CompareOp::Gt
                                | CompareOp::Ge
                        )
                    ) {
                        self.report(
                            self.error(
                                codes::INVALID_SCORE_OPERATOR,
                                format!("`expect score` cannot use `{}`", p.as_str()),
                                self.span(&p),
                            )
                            .with_hint("compare the score with == != < <= > or >="),
                        );
                        return None;
                    }
                    op = parsed;
                }
                Rule::arg => value = Some(self.arg(p)),
                _ => {}
            }
        }
        Some(match kind {
            Rule::e_verdict => Expectation::Verdict {
                verdict: ident?,
                code,
            },
            Rule::e_stage => Expectation::Stage(ident?),
            Rule::e_matched => Expectation::Matched(ident?),
            _ => Expectation::Score {
                op: op?,
                value: value?,
            },
        })
    }
}
