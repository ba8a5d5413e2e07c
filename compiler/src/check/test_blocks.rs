//! Checking the `test` blocks of the entry file (docs/language.md ("Tests")).

use weir_grammar::ast::{self, CompareOp, Expectation as AstExpect, Item, TestStmtKind};
use weir_stdlib::{Stage, Value};

use super::{Annotate, Checker, Ctx, Place};
use crate::codes;
use crate::decision::Verdict;
use crate::eval;
use crate::hints;
use crate::load::relative_to;
use crate::testcase::{Expect, Expectation, TestCase, TestMessage};

/// The test cases of the entry file (unit 0).
pub(crate) fn check_tests(checker: &mut Checker<'_>) -> Vec<TestCase> {
    let Some(unit) = checker.loaded.units.first() else {
        return Vec::new();
    };
    unit.ast
        .items
        .iter()
        .filter_map(|item| match item {
            Item::Test(t) => checker.test(0, t),
            _ => None,
        })
        .collect()
}

impl Checker<'_> {
    /// A test argument: an expression without fields, evaluated now.
    pub(super) fn constant_arg(&mut self, unit: usize, e: &ast::Expr) -> Option<Value> {
        let (lowered, _) = self.expr(
            Ctx {
                unit,
                place: Place::Test,
                neg: false,
            },
            e,
        )?;
        let v = eval::constant(&lowered);
        if v.is_none() {
            self.error(codes::BAD_TEST, unit, e.span, "a test takes literal values")
                .set_label("not a constant");
        }
        v
    }

    pub(super) fn constant_text(&mut self, unit: usize, e: &ast::Expr) -> Option<String> {
        let v = self.constant_arg(unit, e)?;
        match &v {
            Value::List(_) | Value::Regex(_) | Value::Captures(_) | Value::AuthResult(_) => {
                self.error(codes::BAD_TEST, unit, e.span, "expected a single value")
                    .set_label("not a single value");
                None
            }
            other => Some(eval::text(other)),
        }
    }

    fn test(&mut self, unit: usize, t: &ast::TestBlock) -> Option<TestCase> {
        let loaded = self.loaded;
        let file = &loaded.units[unit];
        let mut case = TestCase {
            name: t.name.clone(),
            file: file.name.clone(),
            line: weir_grammar::diagnostic::line_col(&file.source, t.span.start).0,
            message: TestMessage::Text(String::new()),
            envelope_from: None,
            envelope_to: None,
            client_ip: None,
            helo: None,
            world: Default::default(),
            expectations: Vec::new(),
        };
        let mut message = None;
        let mut ok = true;
        for stmt in &t.stmts {
            if matches!(
                stmt.kind,
                TestStmtKind::MessageFile(_) | TestStmtKind::MessageText(_)
            ) && message.is_some()
            {
                // One message per test: a second line silently replacing
                // the first would test another message than the reader sees.
                self.error(codes::BAD_TEST, unit, stmt.span, "a test has one `message`")
                    .set_label("second `message`")
                    .set_hint("write another `test` block for another message");
                ok = false;
                continue;
            }
            match &stmt.kind {
                TestStmtKind::MessageFile(path) => {
                    let resolved = match &file.path {
                        Some(base) => relative_to(base, path),
                        None => path.into(),
                    };
                    message = Some(TestMessage::File(resolved));
                }
                TestStmtKind::MessageText(text) => message = Some(TestMessage::Text(text.clone())),
                TestStmtKind::Envelope { from, to } => {
                    ok &= self.envelope_stmt(unit, from.as_ref(), to.as_ref(), &mut case);
                }
                TestStmtKind::Client { ip, helo } => {
                    ok &= self.client_stmt(unit, ip.as_ref(), helo.as_ref(), &mut case);
                }
                TestStmtKind::Now(_)
                | TestStmtKind::Recipient(_)
                | TestStmtKind::Rate { .. }
                | TestStmtKind::Duplicate(_)
                | TestStmtKind::Classify { .. } => {
                    ok &= self.world_stmt(unit, stmt, &mut case.world).is_some();
                }
                TestStmtKind::Expect { negated, what } => match self.expectation(unit, what) {
                    Some(what) => case.expectations.push(Expectation {
                        negated: *negated,
                        what,
                    }),
                    None => ok = false,
                },
            }
        }
        match message {
            Some(m) => case.message = m,
            None => {
                self.error(
                    codes::BAD_TEST,
                    unit,
                    t.name_span,
                    format!("test \"{}\" has no `message`", t.name),
                )
                .set_label("no message to evaluate")
                .set_hint("add `message \"path.eml\"` or `message \"\"\"raw message\"\"\"`");
                ok = false;
            }
        }
        ok.then_some(case)
    }

    /// `envelope from … to …`: the envelope of the test's message; false
    /// after an error.
    fn envelope_stmt(
        &mut self,
        unit: usize,
        from: Option<&ast::Expr>,
        to: Option<&ast::Expr>,
        case: &mut TestCase,
    ) -> bool {
        let mut ok = true;
        if let Some(from) = from {
            case.envelope_from = self.constant_text(unit, from);
            ok &= case.envelope_from.is_some();
        }
        if let Some(to) = to {
            match self.constant_arg(unit, to) {
                Some(Value::List(items)) => {
                    case.envelope_to = Some(items.iter().map(eval::text).collect())
                }
                Some(v) => case.envelope_to = Some(vec![eval::text(&v)]),
                None => ok = false,
            }
        }
        ok
    }

    /// `client ip … helo …`: the SMTP client of the test's message; false
    /// after an error.
    fn client_stmt(
        &mut self,
        unit: usize,
        ip: Option<&ast::Expr>,
        helo: Option<&ast::Expr>,
        case: &mut TestCase,
    ) -> bool {
        let mut ok = true;
        if let Some(ip) = ip {
            let addr = match self.constant_arg(unit, ip) {
                Some(Value::Ip(addr)) => Some(addr),
                Some(v) => eval::text(&v).trim().parse().ok().or_else(|| {
                    self.error(
                        codes::BAD_TEST,
                        unit,
                        ip.span,
                        "`client ip` needs an IP address",
                    )
                    .set_label("not an IP address");
                    None
                }),
                None => None,
            };
            ok &= addr.is_some();
            case.client_ip = addr.or(case.client_ip);
        }
        if let Some(helo) = helo {
            case.helo = self.constant_text(unit, helo);
            ok &= case.helo.is_some();
        }
        ok
    }

    fn expectation(&mut self, unit: usize, what: &AstExpect) -> Option<Expect> {
        match what {
            AstExpect::Verdict { verdict, code } => self.expect_verdict(unit, verdict, *code),
            AstExpect::Stage(s) => self.expect_stage(unit, s),
            AstExpect::Score { op, value } => self.expect_score(unit, *op, value),
            AstExpect::Matched(rule) => self.expect_matched(unit, rule),
            AstExpect::Action(a) => self.expect_action(unit, a),
        }
    }

    /// `expect reject [CODE]`.
    fn expect_verdict(
        &mut self,
        unit: usize,
        verdict: &ast::Ident,
        code: Option<(i64, ast::Span)>,
    ) -> Option<Expect> {
        let Some(v) = Verdict::from_name(&verdict.name) else {
            let names = Verdict::ALL.map(Verdict::as_str);
            let hint = hints::did_you_mean(&verdict.name, names);
            self.error(
                codes::BAD_TEST,
                unit,
                verdict.span,
                format!("unknown verdict `{}`", verdict.name),
            )
            .set_label("not a verdict")
            .maybe_hint(hint.or_else(|| Some(format!("the verdicts are {}", names.join(", ")))));
            return None;
        };
        let code = match code {
            Some((c, span)) => match u16::try_from(c) {
                Ok(c) => Some(c),
                Err(_) => {
                    self.error(codes::BAD_TEST, unit, span, "not an SMTP code")
                        .set_label("out of range");
                    return None;
                }
            },
            None => None,
        };
        Some(Expect::Verdict { verdict: v, code })
    }

    /// `expect stage STAGE`.
    fn expect_stage(&mut self, unit: usize, s: &ast::Ident) -> Option<Expect> {
        if let Some(stage) = Stage::from_name(&s.name) {
            return Some(Expect::Stage(stage));
        }
        let names = Stage::ALL.map(Stage::as_str);
        let hint = hints::did_you_mean(&s.name, names);
        self.error(
            codes::BAD_TEST,
            unit,
            s.span,
            format!("unknown stage `{}`", s.name),
        )
        .set_label("not a stage")
        .maybe_hint(hint.or_else(|| Some(format!("the stages are {}", names.join(", ")))));
        None
    }

    /// `expect score OP NUMBER`.
    fn expect_score(&mut self, unit: usize, op: CompareOp, value: &ast::Expr) -> Option<Expect> {
        let v = self.constant_arg(unit, value)?;
        let Some(n) = v.as_f64() else {
            self.error(
                codes::BAD_TEST,
                unit,
                value.span,
                "`expect score` compares with a number",
            )
            .set_label("not a number");
            return None;
        };
        let op = match op {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            _ => {
                self.error(
                    codes::BAD_TEST,
                    unit,
                    value.span,
                    "`expect score` takes == != < <= > or >=",
                );
                return None;
            }
        };
        Some(Expect::Score { op, value: n })
    }

    /// `expect matched RULE`: the rule exists somewhere in the ruleset.
    fn expect_matched(&mut self, unit: usize, rule: &ast::Ident) -> Option<Expect> {
        if self.scopes.rule_anywhere(&rule.name).is_some() {
            return Some(Expect::Matched(rule.name.clone()));
        }
        let rules: Vec<String> = self
            .scopes
            .all()
            .filter(|d| d.kind == crate::names::DeclKind::Rule)
            .map(|d| d.name.clone())
            .collect();
        let hint = hints::did_you_mean(&rule.name, rules.iter().map(String::as_str));
        self.error(
            codes::BAD_TEST,
            unit,
            rule.span,
            format!("no rule named `{}` in this ruleset", rule.name),
        )
        .set_label("unknown rule")
        .maybe_hint(hint);
        None
    }

    /// `expect WORD ARGS...`: a verdict with its reply, `tag`, `folder`, or
    /// an action of the registry.
    fn expect_action(&mut self, unit: usize, a: &ast::Action) -> Option<Expect> {
        let word = a.name.name.as_str();
        let mut args = Vec::new();
        for arg in &a.args {
            args.push(self.constant_text(unit, arg)?);
        }
        if let Some(verdict) = Verdict::from_name(word) {
            return Some(Expect::VerdictAction { verdict, args });
        }
        if word == "tag" || word == "folder" {
            let [one] = args.as_slice() else {
                self.error(
                    codes::BAD_TEST,
                    unit,
                    a.span,
                    format!("`expect {word}` takes one string"),
                )
                .set_label("wrong arguments");
                return None;
            };
            return Some(if word == "tag" {
                Expect::Tag(one.clone())
            } else {
                Expect::Folder(one.clone())
            });
        }
        if word == "stop" || super::actions::usage(word).is_none() {
            self.unknown_expectation(unit, &a.name);
            return None;
        }
        Some(Expect::Action {
            word: word.to_string(),
            args,
            template: a.template.as_ref().map(|t| t.name.clone()),
        })
    }

    /// `expect WORD` where WORD is nothing a test can check.
    fn unknown_expectation(&mut self, unit: usize, name: &ast::Ident) {
        /// Expectations with a form of their own (the verdicts are listed
        /// under `verdict`; `stop` leaves no trace to check).
        const OWN: [&str; 6] = ["verdict", "stage", "score", "matched", "tag", "folder"];
        let actions = self
            .reg
            .actions
            .iter()
            .filter(|d| !d.verdict && !OWN.contains(&d.name) && d.name != "stop")
            .map(|d| d.name);
        let hint = hints::did_you_mean(&name.name, OWN.into_iter().chain(actions));
        self.error(
            codes::BAD_TEST,
            unit,
            name.span,
            format!("`expect {}` is not something a test can check", name.name),
        )
        .set_label("unknown expectation")
        .maybe_hint(hint.or_else(|| {
            Some("expect verdict, stage, score, matched, tag, folder or an action".into())
        }));
    }
}
