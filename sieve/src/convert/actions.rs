//! Sieve commands inside a rule (RFC 5228 §4 and extensions) as Flow
//! actions, with what the script did so far on each path (`Path`) so
//! that implicit keep, copies and flags keep their meaning.

use weir_grammar::ast::{Block, Expr, ExprKind, Item, Span, Stmt, StrPart, TemplateField};

use super::args::{Args, string, strings};
use super::build::{self, action, call, expr, ident, if_stmt, str_lit, text};
use super::conditions::{self, sets_captures};
use super::{Converter, Unsupported};
use crate::ast::{Argument, Command};

/// What may have happened on the way to a command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path {
    /// A `fileinto` or `keep` may have been taken.
    pub delivered: bool,
    /// A `redirect` may have been taken.
    pub redirected: bool,
    /// The flags that may have been set (lower-case).
    pub flags: std::collections::BTreeSet<String>,
    /// A flag read at run time may have been set.
    pub unknown_flags: bool,
    /// Evaluation ended on this path (`stop` or a verdict).
    pub ended: bool,
}

impl Path {
    /// Whether any flag may have been set.
    pub fn flagged(&self) -> bool {
        self.unknown_flags || !self.flags.is_empty()
    }

    fn add_flags(&mut self, flags: &[Expr]) {
        for f in flags {
            match &f.kind {
                ExprKind::Str(l) if l.as_plain().is_some() => {
                    self.flags
                        .insert(l.as_plain().unwrap_or_default().to_lowercase());
                }
                _ => self.unknown_flags = true,
            }
        }
    }

    /// The paths of two branches, merged where evaluation goes on.
    pub fn join(self, other: Path) -> Path {
        if self.ended {
            return other;
        }
        if other.ended {
            return self;
        }
        Path {
            ended: false,
            delivered: self.delivered || other.delivered,
            redirected: self.redirected || other.redirected,
            flags: self.flags.union(&other.flags).cloned().collect(),
            unknown_flags: self.unknown_flags || other.unknown_flags,
        }
    }
}

/// Whether a block ends evaluation (a verdict or `stop` was written).
enum Flow {
    Continues,
    Ends,
}

impl Converter<'_> {
    /// A block of commands as Flow statements.
    pub(super) fn block(
        &mut self,
        cmds: &[Command],
        path: &mut Path,
    ) -> Result<Vec<Stmt>, Unsupported> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < cmds.len() {
            let c = &cmds[i];
            if c.name == "if" {
                let end = chain_end(cmds, i);
                out.push(self.nested_if(&cmds[i..end], path)?);
                i = end;
                continue;
            }
            if c.name == "elsif" || c.name == "else" {
                return Err(Unsupported::new(
                    c.span,
                    c.name.clone(),
                    "without a preceding if",
                ));
            }
            if let Flow::Ends = self.command(c, path, &mut out)? {
                path.ended = true;
                for rest in &cmds[i + 1..] {
                    if rest.name != "stop" {
                        self.warn(
                            rest.span,
                            &rest.name,
                            "dropped: it follows a command that ends evaluation in Flow",
                        );
                    }
                }
                break;
            }
            i += 1;
        }
        Ok(out)
    }

    /// `if`/`elsif`/`else` inside a block as Flow's `if`/`else if`/`else`.
    fn nested_if(&mut self, chain: &[Command], path: &mut Path) -> Result<Stmt, Unsupported> {
        let mut after: Option<Path> = None;
        let mut branches = Vec::new();
        for c in chain {
            let cond = match c.args.tests.first() {
                Some(t) if c.name != "else" => {
                    if self.scope.captures.is_some() && sets_captures(t) {
                        return Err(Unsupported::new(
                            t.span,
                            "a nested :matches or :regex test",
                            "it changes the match variables the rule's actions read; Flow binds captures only in a rule's condition",
                        ));
                    }
                    if conditions::reads_flags(t) {
                        self.test_path = path.clone();
                    }
                    Some(self.test(t, None)?)
                }
                _ => None,
            };
            let mut branch_path = path.clone();
            let stmts = self.scoped_block(c.block.as_deref().unwrap_or(&[]), &mut branch_path)?;
            // A test converted to `false` (`hasflag`) never runs its block.
            branch_path.ended |= cond
                .as_ref()
                .is_some_and(|e| matches!(e.kind, ExprKind::Bool(false)));
            after = Some(match after {
                Some(a) => a.join(branch_path),
                None => branch_path,
            });
            branches.push((cond, stmts));
        }
        let has_else = chain.last().is_some_and(|c| c.name == "else");
        let after = after.unwrap_or_else(|| path.clone());
        *path = if has_else {
            after
        } else {
            after.join(path.clone())
        };
        let mut otherwise: Option<Block> = None;
        for (cond, stmts) in branches.into_iter().rev() {
            otherwise = Some(match cond {
                None => build::block(stmts),
                Some(cond) => Block {
                    stmts: vec![if_stmt(cond, stmts, otherwise)],
                    braced: false,
                    span: Span::default(),
                },
            });
        }
        let first = otherwise.map(|b| b.stmts).unwrap_or_default();
        match first.into_iter().next() {
            Some(stmt @ Stmt::If(_)) => Ok(stmt),
            _ => Err(Unsupported::new(chain[0].span, "if", "malformed if chain")),
        }
    }

    /// A block whose variable assignments stay inside it.
    pub(super) fn scoped_block(
        &mut self,
        cmds: &[Command],
        path: &mut Path,
    ) -> Result<Vec<Stmt>, Unsupported> {
        let saved = self.scope.clone();
        let result = self.block(cmds, path);
        let inner = std::mem::replace(&mut self.scope, saved);
        for (k, v) in &inner.vars {
            if self.scope.vars.get(k) != Some(v) {
                self.scope.tainted.insert(k.clone());
            }
        }
        self.scope.tainted.extend(inner.tainted);
        result
    }

    fn command(
        &mut self,
        c: &Command,
        path: &mut Path,
        out: &mut Vec<Stmt>,
    ) -> Result<Flow, Unsupported> {
        let args = Args::read(&c.args);
        match c.name.as_str() {
            "keep" => {
                args.only(&["flags"], "keep")?;
                self.flags_tag(&args, path, out)?;
                self.delivery(c, path);
                out.push(action("keep", vec![]));
            }
            "fileinto" => self.fileinto(c, &args, path, out)?,
            "redirect" => {
                args.only(&["copy"], "redirect")?;
                let to = self.one_string(c, &args)?;
                let word = if args.has("copy") || path.redirected || path.delivered {
                    "add_rcpt"
                } else {
                    path.redirected = true;
                    "redirect"
                };
                out.push(action(word, vec![to]));
            }
            "discard" => {
                if path.delivered || path.redirected {
                    self.warn(
                        c.span,
                        "discard",
                        "Flow's discard also drops the copies filed or forwarded before it",
                    );
                }
                out.push(action("discard", vec![]));
                return Ok(Flow::Ends);
            }
            "reject" | "ereject" => {
                let reason = self.one_string(c, &args)?;
                out.push(action("reject", vec![one_line(reason)]));
                return Ok(Flow::Ends);
            }
            "stop" => {
                out.push(action("stop", vec![]));
                return Ok(Flow::Ends);
            }
            "addflag" | "setflag" | "removeflag" => self.flag_command(c, &args, path, out)?,
            "addheader" => {
                args.only(&["last"], "addheader")?;
                let (n, v) = self.two_strings(c, &args)?;
                out.push(action("add_header", vec![n, v]));
            }
            "deleteheader" => {
                args.only(&[], "deleteheader")?;
                if args.positional.len() != 1 {
                    return Err(Unsupported::new(
                        c.span,
                        "deleteheader with value patterns",
                        "Flow's remove_header removes every occurrence of a name",
                    ));
                }
                let n = self.one_string(c, &args)?;
                out.push(action("remove_header", vec![n]));
            }
            "set" => self.set(c, &args)?,
            "vacation" => self.vacation(c, &args, out)?,
            other => {
                return Err(Unsupported::new(
                    c.span,
                    format!("command `{other}`"),
                    "Flow has no equivalent action",
                ));
            }
        }
        Ok(Flow::Continues)
    }

    fn delivery(&mut self, c: &Command, path: &mut Path) {
        if path.delivered {
            self.warn(
                c.span,
                &c.name,
                "when an earlier fileinto or keep also ran, Sieve stores one more copy; Flow delivers one copy, into the folder of the last fileinto (or INBOX)",
            );
        }
        if path.redirected {
            self.warn(
                c.span,
                &c.name,
                "Flow's redirect drops the local copy this command keeps",
            );
        }
        path.delivered = true;
    }

    fn fileinto(
        &mut self,
        c: &Command,
        args: &Args,
        path: &mut Path,
        out: &mut Vec<Stmt>,
    ) -> Result<(), Unsupported> {
        args.only(&["copy", "flags", "create"], "fileinto")?;
        self.flags_tag(args, path, out)?;
        if args.has("copy") {
            self.warn(
                c.span,
                "fileinto :copy",
                "converted as fileinto: Flow delivers one copy, so the INBOX copy Sieve keeps is not made",
            );
        }
        self.delivery(c, path);
        let folder = args
            .positional
            .first()
            .and_then(|a| string(a))
            .ok_or_else(|| Unsupported::new(c.span, "fileinto", "the folder is missing"))?;
        let e = self.scope.string(folder)?;
        out.push(action("fileinto", vec![self.folder(e, folder.span)?]));
        Ok(())
    }

    /// A Dovecot folder name (levels separated by `.`) in Flow's spelling
    /// (levels separated by `/`); a value read at run time has its dots
    /// replaced by `/` too.
    fn folder(&mut self, e: Expr, span: Span) -> Result<Expr, Unsupported> {
        let e = unwrap_interp(e);
        let ExprKind::Str(lit) = e.kind else {
            return Ok(e);
        };
        if let Some(plain) = lit.as_plain() {
            if plain.to_ascii_uppercase().starts_with("INBOX.")
                || plain.eq_ignore_ascii_case("inbox")
            {
                return Ok(text(&plain));
            }
            let flow = plain.replace('.', "/");
            if flow.split('/').any(str::is_empty) || flow.chars().any(char::is_control) {
                return Err(Unsupported::new(
                    span,
                    format!("folder \"{plain}\""),
                    "a level of the name is empty or holds a control character",
                ));
            }
            return Ok(text(&flow));
        }
        let parts = lit
            .parts
            .into_iter()
            .map(|p| match p {
                StrPart::Text(t) => StrPart::Text(t.replace('.', "/")),
                StrPart::Interp(x) => StrPart::Interp(call(
                    "replace",
                    vec![unwrap_interp_ref(x), text("."), text("/")],
                )),
            })
            .collect();
        Ok(expr(ExprKind::Str(str_lit(parts))))
    }

    fn flags_tag(
        &mut self,
        args: &Args,
        path: &mut Path,
        out: &mut Vec<Stmt>,
    ) -> Result<(), Unsupported> {
        if let Some(a) = args.value("flags") {
            if path.flagged() {
                self.warn(
                    a.span(),
                    ":flags",
                    "Flow adds these flags to those set before; Sieve replaces them for this copy",
                );
            }
            let flags = self.flag_list(a)?;
            path.add_flags(&flags);
            for f in flags {
                out.push(action("flag", vec![f]));
            }
        }
        Ok(())
    }

    fn flag_list(&mut self, a: &Argument) -> Result<Vec<Expr>, Unsupported> {
        let list =
            strings(a).ok_or_else(|| Unsupported::new(a.span(), "flags", "expects strings"))?;
        let mut out = Vec::new();
        for s in list {
            match self.scope.constant(s) {
                Some(c) => out.extend(c.split_whitespace().map(text)),
                None => out.push(self.scope.string(s)?),
            }
        }
        Ok(out)
    }

    fn flag_command(
        &mut self,
        c: &Command,
        args: &Args,
        path: &mut Path,
        out: &mut Vec<Stmt>,
    ) -> Result<(), Unsupported> {
        args.only(&[], &c.name)?;
        if args.positional.len() != 1 {
            return Err(Unsupported::new(
                c.span,
                format!("{} with a variable name", c.name),
                "Flow's flags are not variables",
            ));
        }
        let flags = self.flag_list(args.positional[0])?;
        let named: Option<std::collections::BTreeSet<String>> = flags
            .iter()
            .map(|f| match &f.kind {
                ExprKind::Str(l) => l.as_plain().map(|p| p.to_lowercase()),
                _ => None,
            })
            .collect();
        match (c.name.as_str(), &named) {
            // Removing a flag that cannot be set changes nothing.
            ("removeflag", Some(names)) if !path.unknown_flags && path.flags.is_disjoint(names) => {
                return Ok(());
            }
            ("removeflag", _) => {
                return Err(Unsupported::new(
                    c.span,
                    "removeflag",
                    "a flag it removes may be set, and Flow cannot remove a flag once set",
                ));
            }
            // Setting a superset of what may be set is adding to it.
            ("setflag", Some(names)) if !path.unknown_flags && path.flags.is_subset(names) => {}
            ("setflag", _) => {
                return Err(Unsupported::new(
                    c.span,
                    "setflag",
                    "it replaces flags that may be set before; Flow only adds flags",
                ));
            }
            _ => {}
        }
        if path.delivered {
            self.warn(
                c.span,
                &c.name,
                "in Sieve this flag does not reach the copy filed before it; in Flow it does",
            );
        }
        path.add_flags(&flags);
        for f in flags {
            out.push(action("flag", vec![f]));
        }
        Ok(())
    }

    fn one_string(&mut self, c: &Command, args: &Args) -> Result<Expr, Unsupported> {
        let s = args
            .positional
            .last()
            .and_then(|a| string(a))
            .ok_or_else(|| {
                Unsupported::new(c.span, c.name.clone(), "a string argument is missing")
            })?;
        self.scope.string(s)
    }

    fn two_strings(&mut self, c: &Command, args: &Args) -> Result<(Expr, Expr), Unsupported> {
        match args.positional.as_slice() {
            [a, b] => {
                let a = string(a)
                    .ok_or_else(|| Unsupported::new(c.span, c.name.clone(), "expects strings"))?;
                let b = string(b)
                    .ok_or_else(|| Unsupported::new(c.span, c.name.clone(), "expects strings"))?;
                Ok((self.scope.string(a)?, self.scope.string(b)?))
            }
            _ => Err(Unsupported::new(
                c.span,
                c.name.clone(),
                "expects a name and a value",
            )),
        }
    }

    /// `set [modifiers] NAME VALUE` (RFC 5229): the value is remembered
    /// and written where the variable is read.
    pub(super) fn set(&mut self, c: &Command, args: &Args) -> Result<(), Unsupported> {
        let (n, v) = match args.positional.as_slice() {
            [n, v] => (string(n), string(v)),
            _ => (None, None),
        };
        let (Some(n), Some(v)) = (n, v) else {
            return Err(Unsupported::new(
                c.span,
                "set",
                "expects a name and a value",
            ));
        };
        let mut value = self.scope.string(v)?;
        // Modifiers apply from the highest precedence down (RFC 5229 §4.1).
        let order = [
            "lower",
            "upper",
            "lowerfirst",
            "upperfirst",
            "quotewildcard",
            "quoteregex",
            "encodeurl",
            "length",
        ];
        let mut mods: Vec<&str> = args.tags.iter().map(|(t, _, _)| *t).collect();
        mods.sort_by_key(|m| order.iter().position(|o| o == m).unwrap_or(0));
        for m in mods {
            value = self.modifier(m, value, c.span)?;
        }
        self.scope.vars.insert(n.value.to_ascii_lowercase(), value);
        self.scope.tainted.remove(&n.value.to_ascii_lowercase());
        Ok(())
    }

    fn modifier(&mut self, m: &str, value: Expr, span: Span) -> Result<Expr, Unsupported> {
        let constant = match &value.kind {
            ExprKind::Str(l) => l.as_plain(),
            _ => None,
        };
        if let Some(c) = constant {
            let folded = match m {
                "lower" => Some(c.to_ascii_lowercase()),
                "upper" => Some(c.to_ascii_uppercase()),
                "lowerfirst" => Some(first_char(&c, char::to_ascii_lowercase)),
                "upperfirst" => Some(first_char(&c, char::to_ascii_uppercase)),
                "length" => Some(c.chars().count().to_string()),
                "quoteregex" => Some(regex::escape(&c)),
                _ => None,
            };
            if let Some(f) = folded {
                return Ok(text(&f));
            }
        }
        let f = match m {
            "lower" => "lower",
            "upper" => "upper",
            "length" => "len",
            other => {
                return Err(Unsupported::new(
                    span,
                    format!("set :{other}"),
                    "Flow has no such function for a value read at run time",
                ));
            }
        };
        Ok(expr(ExprKind::Str(str_lit(vec![StrPart::Interp(call(
            f,
            vec![unwrap_interp(value)],
        ))]))))
    }

    /// The template fields of a `vacation`: subject (RFC 5230's default
    /// `Auto: ` and the subject), body, from and addresses, all constants.
    fn vacation_fields(
        &self,
        args: &Args,
        reason: &crate::ast::SieveString,
    ) -> Result<Vec<(&'static str, Expr)>, Unsupported> {
        let constant = |this: &Self, s: &crate::ast::SieveString| {
            this.scope.constant(s).ok_or_else(|| {
                Unsupported::new(
                    s.span,
                    "vacation text with variables",
                    "a Flow template is read outside the rule and cannot use its variables",
                )
            })
        };
        let mut fields = Vec::new();
        let subject = match args.value("subject").and_then(string) {
            Some(s) => text(&constant(self, s)?),
            None => expr(ExprKind::Str(str_lit(vec![
                StrPart::Text("Auto: ".into()),
                StrPart::Interp(build::name("subject")),
            ]))),
        };
        fields.push(("subject", subject));
        fields.push(("body", text(&constant(self, reason)?)));
        if let Some(f) = args.value("from").and_then(string) {
            fields.push(("from", text(&constant(self, f)?)));
        }
        if let Some(a) = args.value("addresses") {
            let list = strings(a).unwrap_or_default();
            let all = list
                .iter()
                .map(|s| constant(self, s))
                .collect::<Result<Vec<_>, _>>()?;
            fields.push(("addresses", text(&all.join(", "))));
        }
        Ok(fields)
    }

    /// `vacation` (RFC 5230) as a template and `reply template NAME every PERIOD`.
    fn vacation(
        &mut self,
        c: &Command,
        args: &Args,
        out: &mut Vec<Stmt>,
    ) -> Result<(), Unsupported> {
        args.only(
            &["days", "seconds", "subject", "from", "addresses", "handle"],
            "vacation",
        )?;
        let reason = args
            .positional
            .last()
            .and_then(|a| string(a))
            .ok_or_else(|| Unsupported::new(c.span, "vacation", "the reason is missing"))?;
        let fields = self.vacation_fields(args, reason)?;
        if args.has("handle") {
            self.info(
                c.span,
                "vacation :handle",
                "dropped: Weir counts replies per template, sender and recipient",
            );
        }
        let seconds = match (args.value("seconds"), args.value("days")) {
            (Some(Argument::Number(s, _)), _) => *s,
            (_, Some(Argument::Number(d, _))) => d.saturating_mul(86_400),
            _ => VACATION_PERIOD,
        };
        let name = self.fresh_template();
        self.templates
            .push(Item::Template(weir_grammar::ast::Template {
                name: ident(&name),
                fields: fields
                    .into_iter()
                    .map(|(k, v)| TemplateField {
                        key: ident(k),
                        value: match v.kind {
                            ExprKind::Str(l) => l,
                            _ => str_lit(vec![]),
                        },
                        span: Span::default(),
                    })
                    .collect(),
                span: Span::default(),
            }));
        let Stmt::Action(mut reply) = action("reply", vec![]) else {
            unreachable!("action builds an action")
        };
        reply.template = Some(ident(&name));
        reply.every = Some(expr(ExprKind::Duration(seconds.max(1))));
        out.push(Stmt::Action(reply));
        Ok(())
    }
}

/// `"${x}"` as `x`.
pub fn unwrap_interp(e: Expr) -> Expr {
    match e.kind {
        ExprKind::Str(l) if l.parts.len() == 1 && matches!(l.parts[0], StrPart::Interp(_)) => {
            match l.parts.into_iter().next() {
                Some(StrPart::Interp(x)) => x,
                _ => unreachable!("one interpolation"),
            }
        }
        other => expr(other),
    }
}

/// Pigeonhole's `sieve_vacation_default_period`: 7 days (RFC 5230 §4.1).
pub const VACATION_PERIOD: u64 = 7 * 86_400;

fn first_char(s: &str, f: fn(&char) -> char) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => std::iter::once(f(&c)).chain(chars).collect(),
        None => String::new(),
    }
}

/// An SMTP reply is one line: line breaks become spaces.
fn one_line(e: Expr) -> Expr {
    match e.kind {
        ExprKind::Str(mut l) => {
            for p in &mut l.parts {
                if let StrPart::Text(t) = p {
                    *t = t
                        .split(['\r', '\n'])
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ");
                }
            }
            expr(ExprKind::Str(l))
        }
        other => expr(other),
    }
}

/// The index one past the `if`'s `elsif`/`else` chain starting at `i`.
pub fn chain_end(cmds: &[Command], i: usize) -> usize {
    let mut end = i + 1;
    while end < cmds.len() && cmds[end].name == "elsif" {
        end += 1;
    }
    if end < cmds.len() && cmds[end].name == "else" {
        end += 1;
    }
    end
}

fn unwrap_interp_ref(e: Expr) -> Expr {
    unwrap_interp(e)
}
