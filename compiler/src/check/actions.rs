//! Checking rules and their actions (docs/language.md ("Rules and actions")).

use weir_grammar::ast::{self, ExprKind, Ident, Item, Span};
use weir_stdlib::registry::{ActionArgs, ActionDef, TemplateClause};
use weir_stdlib::{Type, Value};

use super::{Annotate, Checker, Ctx, Place};
use crate::codes;
use crate::decision::{SmolStr, Verdict};
use crate::hints;
use crate::ir::{self, Action, Expr, Stmt};
use crate::names::{DeclKind, Resolution};

/// The usage line of an action word, from the builtin registry.
pub(crate) fn usage(word: &str) -> Option<&'static str> {
    weir_stdlib::registry().action(word).map(|d| d.usage)
}

/// The text of a string literal without interpolation.
fn plain(e: &ast::Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Str(s) => s.as_plain(),
        _ => None,
    }
}

/// Whether `text` is an enhanced status code `d.d.d`.
fn is_status(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && parts.iter().enumerate().all(|(i, p)| {
            let max = if i == 0 { 1 } else { 3 };
            !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit())
        })
}

impl Checker<'_> {
    /// Checks every rule, in load order (index = rule id).
    pub(crate) fn rules(&mut self) -> Vec<Option<ir::Rule>> {
        let order = self.loaded.rule_order.clone();
        order
            .iter()
            .enumerate()
            .map(
                |(id, &(unit, item))| match &self.loaded.units[unit].ast.items[item] {
                    Item::Rule(r) => self.rule(id, unit, r),
                    _ => None,
                },
            )
            .collect()
    }

    fn rule(&mut self, id: usize, unit: usize, r: &ast::Rule) -> Option<ir::Rule> {
        self.begin_rule();
        let when = r.when.as_ref().map(|w| {
            self.bool_expr(
                Ctx {
                    unit,
                    place: Place::When(id),
                    neg: false,
                },
                w,
            )
        });
        let cx = Ctx {
            unit,
            place: Place::Actions(id),
            neg: false,
        };
        self.show_captures(true);
        let then = self.block(cx, &r.then);
        self.show_captures(false);
        let otherwise = r.otherwise.as_ref().map(|b| {
            if r.when.is_none() {
                self.error(codes::ELSE_WITHOUT_WHEN, unit, b.span, "`else` on a rule without `when`")
                    .set_label("never runs")
                    .set_hint("a rule without `when` always holds; add a `when` condition or remove the `else`");
            }
            self.block(cx, b)
        });
        let captures = self.capture_slots();
        let when = match when {
            Some(w) => Some(w?.0),
            None => None,
        };
        let otherwise = match otherwise {
            Some(o) => Some(o?),
            None => None,
        };
        if r.otherwise.is_some() && r.when.is_none() {
            return None;
        }
        let line = self.loaded.units[unit].line_of(r.span.start);
        Some(ir::Rule {
            id,
            name: SmolStr::new(&r.name.name),
            priority: r.priority.map_or(100, |(p, _)| p),
            shadow: r.shadow,
            stage: weir_stdlib::Stage::Connect,
            lmtp_only: Vec::new(),
            file: self.file(unit).to_string(),
            span: r.span,
            line,
            when,
            then: then?,
            otherwise,
            captures,
        })
    }

    fn block(&mut self, cx: Ctx, block: &ast::Block) -> Option<Vec<Stmt>> {
        // At most one statement each, and kept for the ruleset's life: a
        // growing Vec's spare room (three `Stmt`s for a one-action rule)
        // came to 3 MB at 10,000 rules.
        let mut out = Vec::with_capacity(block.stmts.len());
        let mut ok = true;
        let mut ended: Option<(String, Span)> = None;
        for stmt in &block.stmts {
            if let Some((word, span)) = &ended {
                let file = self.file(cx.unit);
                let after = if word == "stop" {
                    "`stop`".to_string()
                } else {
                    format!("the verdict `{word}`")
                };
                self.error(
                    codes::AFTER_VERDICT,
                    cx.unit,
                    stmt.span(),
                    format!("this action comes after {after} and can never run"),
                )
                .set_label("unreachable action")
                .add_related(file, *span, "evaluation ends here")
                .set_hint("move it before the verdict: actions taken before a verdict keep effect");
                ok = false;
                break;
            }
            match stmt {
                ast::Stmt::Action(a) => {
                    let word = a.name.name.as_str();
                    if word == "stop" || Verdict::from_name(word).is_some() {
                        ended = Some((word.to_string(), a.span));
                    }
                    match self.action(cx, a) {
                        Some(a) => out.push(Stmt::Action(a)),
                        None => ok = false,
                    }
                }
                ast::Stmt::If(i) => match self.if_stmt(cx, i) {
                    Some(s) => out.push(s),
                    None => ok = false,
                },
            }
        }
        ok.then_some(out)
    }

    fn if_stmt(&mut self, cx: Ctx, i: &ast::IfStmt) -> Option<Stmt> {
        let cond = self.bool_expr(
            Ctx {
                place: if let Place::Actions(r) = cx.place {
                    Place::Actions(r)
                } else {
                    cx.place
                },
                ..cx
            },
            &i.cond,
        );
        let then = self.block(cx, &i.then);
        let otherwise = i.otherwise.as_ref().map(|b| self.block(cx, b));
        let otherwise = match otherwise {
            Some(o) => o?,
            None => Vec::new(),
        };
        Some(Stmt::If {
            cond: cond?.0,
            then: then?,
            otherwise,
        })
    }

    /// An argument rendered as text (strings, addresses, numbers, ...).
    fn text_arg(&mut self, cx: Ctx, e: &ast::Expr) -> Option<Expr> {
        let before = self.diags.len();
        let typed = self.expr(cx, e);
        let Some((lowered, t)) = typed else {
            self.bare_word_hint(before, e);
            return None;
        };
        if matches!(t, Type::Regex | Type::Captures | Type::Bool) {
            self.mismatch(cx.unit, e.span, "text (a string, address or number)", &t);
            return None;
        }
        Some(lowered)
    }

    /// A bare word where a string is expected (`fileinto Junk`, `tag
    /// billing`) that is no name in scope: its "unknown name" error
    /// suggests the string, before any other name it resembles.
    pub(crate) fn bare_word_hint(&mut self, before: usize, e: &ast::Expr) {
        let ast::ExprKind::Name(id) = &e.kind else {
            return;
        };
        let Some(d) = self.diags[before..]
            .iter_mut()
            .find(|d| d.code == codes::UNKNOWN_NAME && d.span == id.span)
        else {
            return;
        };
        let string = format!("did you mean the string \"{}\"?", id.name);
        d.hint = Some(match d.hint.take() {
            Some(other) => format!(
                "{string} (or {})",
                other
                    .trim_start_matches("did you mean ")
                    .trim_end_matches('?')
            ),
            None => string,
        });
    }

    fn bad_args(&mut self, cx: Ctx, a: &ast::Action, why: &str) {
        let word = a.name.name.as_str();
        self.error(
            codes::ACTION_ARGUMENTS,
            cx.unit,
            a.span,
            format!("wrong arguments for `{word}`: {why}"),
        )
        .set_label("wrong arguments")
        .set_hint(format!("write `{}`", usage(word).unwrap_or(word)));
    }

    /// Exactly `n` positional arguments, else an error.
    fn arity(&mut self, cx: Ctx, a: &ast::Action, n: usize) -> bool {
        if a.args.len() == n {
            return true;
        }
        let why = match n {
            0 => "it takes no arguments".to_string(),
            1 => format!("it takes one argument, not {}", a.args.len()),
            n => format!("it takes {n} arguments, not {}", a.args.len()),
        };
        self.bad_args(cx, a, &why);
        false
    }

    fn action(&mut self, cx: Ctx, a: &ast::Action) -> Option<Action> {
        let word = a.name.name.as_str();
        let Some(def) = self.reg.action(word) else {
            let hint = hints::did_you_mean(word, self.reg.actions.iter().map(|d| d.name));
            self.error(
                codes::UNKNOWN_ACTION,
                cx.unit,
                a.name.span,
                format!("unknown action `{word}`"),
            )
            .set_label("not an action")
            .maybe_hint(hint);
            return None;
        };
        if !self.clauses(cx, a, def) || !self.arguments(cx, a, def) {
            return None;
        }
        self.lower_action(cx, a)
    }

    /// The `with` map and `template` clause, as the registry allows them.
    fn clauses(&mut self, cx: Ctx, a: &ast::Action, def: &ActionDef) -> bool {
        let word = def.name;
        if let Some(with) = &a.with
            && !def.with
        {
            let takes = self.actions_taking(|d| d.with);
            self.error(
                codes::ACTION_CLAUSE,
                cx.unit,
                with.span,
                format!("`{word}` takes no `with` map"),
            )
            .set_label(format!("only {takes} takes `with`"));
            return false;
        }
        if let Some(every) = &a.every
            && word != "reply"
        {
            self.error(
                codes::ACTION_CLAUSE,
                cx.unit,
                every.span,
                format!("`{word}` takes no `every` period"),
            )
            .set_label("only `reply template NAME` takes `every`");
            return false;
        }
        if let Some(t) = &a.template
            && def.template == TemplateClause::None
        {
            let takes = self.actions_taking(|d| d.template != TemplateClause::None);
            self.error(
                codes::ACTION_CLAUSE,
                cx.unit,
                t.span,
                format!("`{word}` takes no template"),
            )
            .set_label(format!("only {takes} take a template"));
            return false;
        }
        if a.template.is_none() && def.template == TemplateClause::Required {
            self.error(
                codes::NOT_A_TEMPLATE,
                cx.unit,
                a.span,
                format!("`{word}` needs a template"),
            )
            .set_label("no template named")
            .set_hint(format!("write `{}`", def.usage));
            return false;
        }
        true
    }

    /// The actions for which `takes` holds, as prose: "`notify` and `reply`".
    fn actions_taking(&self, takes: impl Fn(&ActionDef) -> bool) -> String {
        let words: Vec<String> = self
            .reg
            .actions
            .iter()
            .filter(|d| takes(d))
            .map(|d| format!("`{}`", d.name))
            .collect();
        match words.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => words.concat(),
        }
    }

    /// The number of positional arguments, as the registry gives it (a
    /// reply verdict's arguments are checked by [`Self::reply_verdict`]).
    fn arguments(&mut self, cx: Ctx, a: &ast::Action, def: &ActionDef) -> bool {
        match def.args {
            ActionArgs::Exact(n) => self.arity(cx, a, n),
            ActionArgs::Optional => a.args.len() <= 1 || self.arity(cx, a, 1),
            ActionArgs::Reply => true,
        }
    }

    /// The IR of an action whose word, clauses and argument count are
    /// checked: each argument typed.
    fn lower_action(&mut self, cx: Ctx, a: &ast::Action) -> Option<Action> {
        let word = a.name.name.as_str();
        let text = |this: &mut Self, i: usize| this.text_arg(cx, &a.args[i]);
        let verdict = |verdict, text| Action::Verdict {
            verdict,
            code: 0,
            status: String::new(),
            text,
        };
        Some(match word {
            "accept" => verdict(Verdict::Accept, None),
            "discard" => verdict(Verdict::Discard, None),
            "quarantine" => {
                let reason = match a.args.len() {
                    0 => None,
                    _ => Some(text(self, 0)?),
                };
                verdict(Verdict::Quarantine, reason)
            }
            "reject" | "tempfail" => return self.reply_verdict(cx, a),
            "add_header" | "set_header" => {
                self.literal_header_name(cx, word, &a.args[0]);
                let (name, value) = (text(self, 0), text(self, 1));
                let (name, value) = (name?, value?);
                if word == "add_header" {
                    Action::AddHeader(name, value)
                } else {
                    Action::SetHeader(name, value)
                }
            }
            "remove_header" => {
                self.literal_header_name(cx, word, &a.args[0]);
                Action::RemoveHeader(text(self, 0)?)
            }
            "prepend_subject" => Action::PrependSubject(text(self, 0)?),
            "add_rcpt" => Action::AddRcpt(text(self, 0)?),
            "remove_rcpt" => Action::RemoveRcpt(text(self, 0)?),
            "redirect" => Action::Redirect(text(self, 0)?),
            "fileinto" => {
                self.literal_folder(cx, &a.args[0]);
                Action::Fileinto(text(self, 0)?)
            }
            "flag" => Action::Flag(text(self, 0)?),
            "tag" => Action::Tag(text(self, 0)?),
            "log" => Action::Log(text(self, 0)?),
            "keep" => Action::Keep,
            "stop" => Action::Stop,
            "score" => {
                let typed = self.expr(cx, &a.args[0])?;
                Action::Score(self.coerce(
                    cx.unit,
                    a.args[0].span,
                    typed,
                    &Type::Float,
                    "a number (`score +2`)",
                )?)
            }
            "notify" => return self.notify(cx, a),
            "reply" => return self.reply(cx, a),
            _ => return None,
        })
    }

    /// `reply template NAME [every DURATION]`.
    fn reply(&mut self, cx: Ctx, a: &ast::Action) -> Option<Action> {
        let every = match &a.every {
            Some(e) => {
                let typed = self.expr(cx, e);
                Some(self.coerce(
                    cx.unit,
                    e.span,
                    typed?,
                    &Type::Duration,
                    "a period such as `7d`",
                )?)
            }
            None => None,
        };
        Some(Action::Reply(
            self.template_ref(cx, a.template.as_ref()?)?,
            every,
        ))
    }

    /// `notify CHANNEL [with {...}] [template NAME]`.
    fn notify(&mut self, cx: Ctx, a: &ast::Action) -> Option<Action> {
        let before = self.diags.len();
        let typed = self.expr(cx, &a.args[0]);
        if typed.is_none() {
            self.bare_word_hint(before, &a.args[0]);
        }
        let channel = self.coerce(
            cx.unit,
            a.args[0].span,
            typed?,
            &Type::String,
            "a channel name (string)",
        );
        let mut with = Vec::new();
        let mut ok = true;
        for (key, value) in a.with.iter().flat_map(|m| &m.entries) {
            match self.text_arg(cx, value) {
                Some(v) => with.push((key.name.clone(), v)),
                None => ok = false,
            }
        }
        let template = match &a.template {
            Some(t) => Some(self.template_ref(cx, t)?),
            None => None,
        };
        if !ok {
            return None;
        }
        Some(Action::Notify {
            channel: channel?,
            with,
            template,
        })
    }

    /// `reject [CODE] [STATUS] "text"` and `tempfail [CODE] [STATUS] ["text"]`.
    fn reply_verdict(&mut self, cx: Ctx, a: &ast::Action) -> Option<Action> {
        let verdict = if a.name.name == "reject" {
            Verdict::Reject
        } else {
            Verdict::Tempfail
        };
        let default = verdict.default_reply()?;
        let mut args = a.args.as_slice();
        let mut code = default.code;
        if let Some(first) = args.first()
            && let ExprKind::Int(n) = first.kind
        {
            code = self.reply_code(cx, a, verdict, n, first.span)?;
            args = &args[1..];
        }
        let (status_arg, text_arg) = match args {
            [] => (None, None),
            [one] if plain(one).is_some_and(|s| is_status(&s)) => (Some(one), None),
            [one] => (None, Some(one)),
            [status, text] => (Some(status), Some(text)),
            _ => {
                self.bad_args(cx, a, "too many arguments");
                return None;
            }
        };
        let status = match status_arg {
            Some(s) => self.reply_status(cx, a, s, &default.status)?,
            None => default.status,
        };
        let text = match text_arg {
            Some(t) => self.text_arg(cx, t)?,
            None => Expr::Const(Value::str(&default.text)),
        };
        Some(Action::Verdict {
            verdict,
            code,
            status,
            text: Some(text),
        })
    }

    /// The SMTP code written first: of the verdict's class.
    fn reply_code(
        &mut self,
        cx: Ctx,
        a: &ast::Action,
        verdict: Verdict,
        n: i64,
        span: Span,
    ) -> Option<u16> {
        let reject = verdict == Verdict::Reject;
        let class = if reject { 5 } else { 4 };
        if n / 100 == class
            && let Ok(code) = u16::try_from(n)
        {
            return Some(code);
        }
        let class_word = if reject { "5xx" } else { "4xx" };
        self.error(
            codes::REPLY_CODE,
            cx.unit,
            span,
            format!("`{}` needs a {class_word} code, not {n}", a.name.name),
        )
        .set_label(format!("not a {class_word} code"))
        .set_hint(if reject {
            "use `tempfail` for a temporary (4xx) failure"
        } else {
            "use `reject` for a permanent (5xx) failure"
        });
        None
    }

    /// The enhanced status code: a literal `d.d.d` of the verdict's class
    /// (the class is the first digit of `default`).
    fn reply_status(
        &mut self,
        cx: Ctx,
        a: &ast::Action,
        s: &ast::Expr,
        default: &str,
    ) -> Option<String> {
        let Some(text) = plain(s) else {
            self.error(
                codes::REPLY_STATUS,
                cx.unit,
                s.span,
                "the enhanced status code must be a string literal such as \"5.7.1\"",
            )
            .set_label("not a literal status");
            return None;
        };
        if !is_status(&text) {
            self.error(
                codes::REPLY_STATUS,
                cx.unit,
                s.span,
                format!("malformed enhanced status code \"{text}\""),
            )
            .set_label("expected CLASS.SUBJECT.DETAIL")
            .set_hint(format!("write it as digits: \"{default}\""));
            return None;
        }
        let class = &default[..1];
        if !text.starts_with(class) {
            self.error(
                codes::REPLY_STATUS,
                cx.unit,
                s.span,
                format!(
                    "status \"{text}\" does not match the {class}xx class of `{}`",
                    a.name.name
                ),
            )
            .set_label(format!("must start with {class}"))
            .set_hint(format!("for example \"{default}\""));
            return None;
        }
        Some(text)
    }

    /// `template NAME`: the lowered template's index.
    fn template_ref(&mut self, cx: Ctx, id: &Ident) -> Option<usize> {
        match self.scopes.resolve(cx.unit, &id.name) {
            Resolution::Found(decl) if decl.kind == DeclKind::Template => {
                let decl = decl.clone();
                self.used.insert(decl.id);
                self.template(&decl)
            }
            Resolution::Found(decl) => {
                let kind = decl.kind;
                self.error(
                    codes::NOT_A_TEMPLATE,
                    cx.unit,
                    id.span,
                    format!("`{}` is a {}, not a template", id.name, kind.word()),
                )
                .set_label("not a template");
                None
            }
            Resolution::Ambiguous(a, b) => {
                let (a, b) = (a.clone(), b.clone());
                self.ambiguous(cx.unit, id, &a, &b);
                None
            }
            Resolution::NotFound => {
                let templates: Vec<String> = self
                    .scopes
                    .visible(cx.unit)
                    .iter()
                    .filter(|d| d.kind == DeclKind::Template)
                    .map(|d| d.name.clone())
                    .collect();
                let hint = hints::did_you_mean(&id.name, templates.iter().map(String::as_str));
                self.error(
                    codes::NOT_A_TEMPLATE,
                    cx.unit,
                    id.span,
                    format!("unknown template `{}`", id.name),
                )
                .set_label("no template of this name in scope")
                .maybe_hint(hint.or_else(|| {
                    Some("declare it: `template NAME { subject = \"...\"  body = \"...\" }`".into())
                }));
                None
            }
        }
    }
}
