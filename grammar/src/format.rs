//! The canonical formatter behind `weir fmt`.
//!
//! It parses the file, then prints the tree in the canonical style:
//! - two-space indentation; `rule NAME priority N shadow {`, then the `when`
//!   line, the `then` line (`then ACTION` for a single unbraced action,
//!   `then {` with one action per line otherwise) and the `else` line;
//! - one blank line between declarations, except that single-line
//!   declarations (`import`, `let`, `list`, `fn`) keep the user's choice of
//!   zero or one blank line between them, so groups stay together; at most
//!   one blank line is kept between statements where the user had any;
//! - single spaces around operators, `[a, b]` lists, `{k: v}` maps, `f(a, b)`
//!   calls; parentheses are kept where the user wrote them;
//! - a `when` or `if` condition keeps the user's line breaks between the
//!   operands of its top-level `and`/`or` chain: each continuation line starts
//!   with the operator, indented two more spaces than `when`;
//! - a `let` whose value is a list written over several lines prints one
//!   item per line with a trailing comma (so comments can sit beside items);
//! - literals (strings, `"""` strings, regexes, numbers with suffixes, IPs)
//!   are printed exactly as written.
//!
//! Comments: full-line comments stay before the line they preceded, at its
//! indentation; a trailing comment stays at the end of its line, at its
//! column when the line still fits before it. A comment in the middle of an
//! expression printed on one line moves before the next line.
//!
//! Formatting is idempotent and preserves meaning: `parse(format(x))`
//! equals `parse(x)` up to spans.

use std::collections::HashMap;

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::lexer;
use crate::parser::parse_full;

/// Formats a `.flow` file in the canonical style; the syntax errors if it
/// does not parse.
pub fn format(source: &str, file: &str) -> Result<String, Vec<Diagnostic>> {
    let parsed = parse_full(source, file);
    if parsed.diagnostics.iter().any(Diagnostic::is_error) {
        return Err(parsed.diagnostics);
    }
    let mut printer = Printer {
        src: source,
        parens: &parsed.parens,
        comments: lexer::comments(source),
        next_comment: 0,
        out: String::new(),
        indent: 0,
        last_end: 0,
        force_blank: false,
        suppress_blank: true,
    };
    printer.file(&parsed.file);
    Ok(printer.out)
}

/// Writes the canonical text line by line, interleaving comments.
struct Printer<'a> {
    src: &'a str,
    parens: &'a HashMap<Span, Span>,
    comments: Vec<Span>,
    /// The first comment not yet printed.
    next_comment: usize,
    out: String,
    indent: usize,
    /// Where in the source the last printed thing ended.
    last_end: usize,
    /// The next line gets a blank line before it.
    force_blank: bool,
    /// The next line gets no blank line before it (start of a block).
    suppress_blank: bool,
}

/// Words that may stand between code and a comment still counted as
/// trailing that code's line.
const GLUE: &[&str] = &["and", "or", "then", "else", ";", ",", "{", "(", "["];

impl Printer<'_> {
    // ------------------------------------------------------------ lines

    /// Prints one line of code that starts at `start` and ends at `end` in
    /// the source. `blank_ok`: a blank line before it in the source is kept.
    fn line(&mut self, start: usize, end: usize, text: &str, blank_ok: bool) {
        self.leading(start);
        self.blank_before(start, blank_ok);
        let line_start = self.out.len();
        self.push_indent();
        self.out.push_str(text);
        self.last_end = self.last_end.max(end);
        if let Some(&c) = self.comments.get(self.next_comment)
            && c.start >= end
            && self.trails(end, c.start)
        {
            let width = self.out[line_start..].chars().count();
            let column = self.column(c.start);
            let pad = if column > width { column - width } else { 1 };
            self.out.extend(std::iter::repeat_n(' ', pad));
            self.out.push_str(self.src[c.start..c.end].trim_end());
            self.next_comment += 1;
            self.last_end = c.end;
        }
        self.out.push('\n');
    }

    /// Prints the comments that start before `pos` on their own lines.
    fn leading(&mut self, pos: usize) {
        while let Some(&c) = self.comments.get(self.next_comment) {
            if c.start >= pos {
                break;
            }
            self.blank_before(c.start, true);
            self.push_indent();
            self.out.push_str(self.src[c.start..c.end].trim_end());
            self.out.push('\n');
            self.next_comment += 1;
            self.last_end = c.end;
        }
    }

    /// Writes a blank line if one is forced, or allowed and in the source.
    fn blank_before(&mut self, start: usize, allowed: bool) {
        let had_blank = self
            .src
            .get(self.last_end..start)
            .is_some_and(|between| between.matches('\n').count() >= 2);
        let wanted = self.force_blank || (allowed && had_blank && !self.suppress_blank);
        if wanted && !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
        self.force_blank = false;
        self.suppress_blank = false;
    }

    /// Whether only glue words stand between `end` and a comment at `at`.
    fn trails(&self, end: usize, at: usize) -> bool {
        let between = &self.src[end..at];
        !between.contains('\n') && between.split_whitespace().all(|w| GLUE.contains(&w))
    }

    /// The column (in characters, from 0) of a source offset.
    fn column(&self, at: usize) -> usize {
        let line_start = self.src[..at].rfind('\n').map_or(0, |i| i + 1);
        self.src[line_start..at].chars().count()
    }

    fn push_indent(&mut self) {
        for _ in 0..self.indent {
            self.out.push_str("  ");
        }
    }

    /// Where a literal's own text is, inside any parentheses around it.
    fn literal_span(&self, mut span: Span) -> Span {
        // Each step strictly shrinks the span, so this ends.
        while let Some(inner) = self.parens.get(&span) {
            if *inner == span {
                break;
            }
            span = *inner;
        }
        span
    }

    fn slice(&self, span: Span) -> &str {
        self.src.get(span.start..span.end).unwrap_or("")
    }

    // ------------------------------------------------------------ declarations

    fn file(&mut self, file: &File) {
        let mut previous_single: Option<bool> = None;
        for item in &file.items {
            let single = matches!(
                item,
                Item::Import(_) | Item::Let(_) | Item::List(_) | Item::Fn(_)
            ) && !self.multi_line_let(item);
            if previous_single.is_some_and(|prev| !(prev && single)) {
                self.force_blank = true;
            }
            previous_single = Some(single);
            self.item(item);
        }
        self.suppress_blank = self.out.is_empty();
        self.leading(usize::MAX);
    }

    fn multi_line_let(&self, item: &Item) -> bool {
        match item {
            Item::Let(l) => self.is_multi_line_list(&l.value),
            _ => false,
        }
    }

    fn is_multi_line_list(&self, expr: &Expr) -> bool {
        matches!(&expr.kind, ExprKind::List(items) if !items.is_empty())
            && !self.parens.contains_key(&expr.span)
            && self.slice(expr.span).contains('\n')
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Import(i) => {
                let text = format!("import {}", self.slice(i.path_span));
                self.line(i.span.start, i.span.end, &text, true);
            }
            Item::Let(l) => self.let_decl(l),
            Item::List(l) => {
                let text = format!("list {} = file {}", l.name.name, self.slice(l.path_span));
                self.line(l.span.start, l.span.end, &text, true);
            }
            Item::Fn(f) => {
                let params: Vec<String> = f
                    .params
                    .iter()
                    .map(|p| format!("{}: {}", p.name.name, type_text(&p.ty)))
                    .collect();
                let text = format!(
                    "fn {}({}) = {}",
                    f.name.name,
                    params.join(", "),
                    self.expr(&f.body)
                );
                self.line(f.span.start, f.span.end, &text, true);
            }
            Item::Template(t) => {
                let header_end = t.fields.first().map_or(t.name.span.end, |f| f.span.start);
                self.line(
                    t.span.start,
                    self.open_brace_end(t.name.span.end, header_end),
                    &format!("template {} {{", t.name.name),
                    true,
                );
                self.indent += 1;
                self.suppress_blank = true;
                for field in &t.fields {
                    let text = format!("{} = {}", field.key.name, self.slice(field.value.span));
                    self.line(field.span.start, field.span.end, &text, true);
                }
                self.close(t.span.end);
            }
            Item::Rule(r) => self.rule(r),
            Item::Test(t) => self.test(t),
        }
    }

    fn let_decl(&mut self, l: &Let) {
        if self.is_multi_line_list(&l.value)
            && let ExprKind::List(items) = &l.value.kind
        {
            let open = l.value.span.start + 1;
            self.line(
                l.span.start,
                open,
                &format!("let {} = [", l.name.name),
                true,
            );
            self.indent += 1;
            self.suppress_blank = true;
            for item in items {
                let text = format!("{},", self.expr(item));
                self.line(item.span.start, item.span.end, &text, true);
            }
            self.indent -= 1;
            self.line(l.value.span.end - 1, l.value.span.end, "]", false);
            return;
        }
        let text = format!("let {} = {}", l.name.name, self.expr(&l.value));
        self.line(l.span.start, l.span.end, &text, true);
    }

    /// The end of the `{` that opens a declaration's body, searched for
    /// between the header and the first inner line.
    fn open_brace_end(&self, from: usize, to: usize) -> usize {
        let to = to.max(from).min(self.src.len());
        let mut depth_free = from;
        for (tok, span) in lexer::tokens(&self.src[from..to]) {
            if tok == lexer::Token::Punct && self.src[from + span.start..from + span.end] == *"{" {
                return from + span.end;
            }
            depth_free = from + span.end;
        }
        depth_free
    }

    /// Closes a block: remaining comments inside it, then `}`.
    fn close(&mut self, end: usize) {
        self.leading(end.saturating_sub(1));
        self.indent = self.indent.saturating_sub(1);
        self.line(end.saturating_sub(1), end, "}", false);
    }

    fn rule(&mut self, r: &Rule) {
        let mut header = format!("rule {}", r.name.name);
        let mut header_end = r.name.span.end;
        if let Some((_, span)) = r.priority {
            header.push_str(&format!(" priority {}", self.slice(span)));
            header_end = span.end;
        }
        if r.shadow {
            header.push_str(" shadow");
        }
        header.push_str(" {");
        let first = r.when.as_ref().map_or(r.then.span.start, |w| w.span.start);
        let open = self.open_brace_end(header_end, first);
        self.line(r.span.start, open, &header, true);
        self.indent += 1;
        self.suppress_blank = true;
        if let Some(when) = &r.when {
            self.condition("when", when, "", false);
        }
        self.clause("then", &r.then);
        if let Some(otherwise) = &r.otherwise {
            self.clause("else", otherwise);
        }
        self.close(r.span.end);
    }

    /// `when COND` or `if COND {`, keeping line breaks of the top-level
    /// `and`/`or` chain.
    fn condition(&mut self, keyword: &str, cond: &Expr, suffix: &str, blank_ok: bool) {
        let mut operands = Vec::new();
        let mut ops = Vec::new();
        self.flatten(cond, &mut operands, &mut ops);
        let mut text = format!("{keyword} {}", self.expr(operands[0]));
        let mut start = cond.span.start;
        let mut end = operands[0].span.end;
        for (op, operand) in ops.iter().zip(&operands[1..]) {
            let broken = self
                .src
                .get(end..operand.span.start)
                .is_some_and(|s| s.contains('\n'));
            if broken {
                self.line(start, end, &text, blank_ok);
                self.indent += 1;
                self.leading(operand.span.start);
                self.indent -= 1;
                text = format!("  {op} {}", self.expr(operand));
                start = operand.span.start;
            } else {
                text.push_str(&format!(" {op} {}", self.expr(operand)));
            }
            end = operand.span.end;
        }
        text.push_str(suffix);
        let line_end = if suffix.is_empty() {
            end
        } else {
            self.open_brace_end(end, usize::MAX)
        };
        self.line(start, line_end, &text, blank_ok);
    }

    /// The operands and operators of an unparenthesised `and`/`or` chain.
    fn flatten<'e>(&self, e: &'e Expr, operands: &mut Vec<&'e Expr>, ops: &mut Vec<&'static str>) {
        if !self.parens.contains_key(&e.span) {
            match &e.kind {
                ExprKind::Or(l, r) | ExprKind::And(l, r) => {
                    self.flatten(l, operands, ops);
                    ops.push(if matches!(e.kind, ExprKind::Or(..)) {
                        "or"
                    } else {
                        "and"
                    });
                    self.flatten(r, operands, ops);
                    return;
                }
                _ => {}
            }
        }
        operands.push(e);
    }

    /// `then ...` / `else ...` in a rule.
    fn clause(&mut self, keyword: &str, block: &Block) {
        self.leading(block.span.start);
        if block.braced {
            self.line(
                block.span.start,
                block.span.start + 1,
                &format!("{keyword} {{"),
                false,
            );
            self.block_body(block);
        } else if let Some(Stmt::Action(a)) = block.stmts.first() {
            let text = format!("{keyword} {}", self.action(a));
            self.line(a.span.start, a.span.end, &text, false);
        } else if let Some(Stmt::If(i)) = block.stmts.first() {
            self.if_stmt(i, &format!("{keyword} if"), false);
        }
    }

    /// The statements of a braced block, then its `}`.
    fn block_body(&mut self, block: &Block) {
        self.indent += 1;
        self.suppress_blank = true;
        for stmt in &block.stmts {
            self.stmt(stmt);
        }
        self.close(block.span.end);
    }

    fn stmt(&mut self, stmt: &Stmt) {
        match stmt {
            Stmt::Action(a) => {
                let text = self.action(a);
                self.line(a.span.start, a.span.end, &text, true);
            }
            Stmt::If(i) => self.if_stmt(i, "if", true),
        }
    }

    fn if_stmt(&mut self, i: &IfStmt, keyword: &str, blank_ok: bool) {
        self.condition(keyword, &i.cond, " {", blank_ok);
        self.indent += 1;
        self.suppress_blank = true;
        for stmt in &i.then.stmts {
            self.stmt(stmt);
        }
        self.leading(i.then.span.end.saturating_sub(1));
        self.indent -= 1;
        match &i.otherwise {
            None => self.line(i.then.span.end - 1, i.then.span.end, "}", false),
            Some(other) => match other.stmts.as_slice() {
                [Stmt::If(nested)] if !other.braced => {
                    self.last_end = self.last_end.max(i.then.span.end);
                    self.if_stmt(nested, "} else if", false);
                }
                _ => {
                    self.line(other.span.start, other.span.start + 1, "} else {", false);
                    self.block_body(other);
                }
            },
        }
    }

    fn action(&self, a: &Action) -> String {
        let mut text = a.name.name.clone();
        for arg in &a.args {
            text.push(' ');
            text.push_str(&self.expr(arg));
        }
        if let Some(map) = &a.with {
            text.push_str(" with ");
            text.push_str(&self.map(map));
        }
        if let Some(t) = &a.template {
            text.push_str(" template ");
            text.push_str(&t.name);
        }
        text
    }

    fn map(&self, map: &MapLit) -> String {
        let entries: Vec<String> = map
            .entries
            .iter()
            .map(|(k, v)| format!("{}: {}", k.name, self.expr(v)))
            .collect();
        format!("{{{}}}", entries.join(", "))
    }

    fn test(&mut self, t: &TestBlock) {
        let first = t.stmts.first().map_or(t.span.end, |s| s.span.start);
        let open = self.open_brace_end(t.name_span.end, first);
        self.line(
            t.span.start,
            open,
            &format!("test {} {{", self.slice(t.name_span)),
            true,
        );
        self.indent += 1;
        self.suppress_blank = true;
        for stmt in &t.stmts {
            let text = self.test_stmt(stmt);
            self.line(stmt.span.start, stmt.span.end, &text, true);
        }
        self.close(t.span.end);
    }

    fn test_stmt(&self, stmt: &TestStmt) -> String {
        match &stmt.kind {
            TestStmtKind::MessageFile(_) | TestStmtKind::MessageText(_) => {
                // The literal as written: the statement minus its keyword.
                let text = self.slice(stmt.span);
                format!(
                    "message {}",
                    text.trim_start_matches("message").trim_start()
                )
            }
            TestStmtKind::Envelope { from, to } => {
                let mut text = "envelope".to_string();
                if let Some(e) = from {
                    text.push_str(&format!(" from {}", self.expr(e)));
                }
                if let Some(e) = to {
                    text.push_str(&format!(" to {}", self.expr(e)));
                }
                text
            }
            TestStmtKind::Client { ip, helo } => {
                let mut text = "client".to_string();
                if let Some(e) = ip {
                    text.push_str(&format!(" ip {}", self.expr(e)));
                }
                if let Some(e) = helo {
                    text.push_str(&format!(" helo {}", self.expr(e)));
                }
                text
            }
            TestStmtKind::Expect { negated, what } => {
                let mut text = if *negated {
                    "expect not ".to_string()
                } else {
                    "expect ".to_string()
                };
                match what {
                    Expectation::Verdict { verdict, code } => {
                        text.push_str(&format!("verdict {}", verdict.name));
                        if let Some((_, span)) = code {
                            text.push_str(&format!(" {}", self.slice(*span)));
                        }
                    }
                    Expectation::Stage(s) => text.push_str(&format!("stage {}", s.name)),
                    Expectation::Score { op, value } => {
                        text.push_str(&format!("score {} {}", op.as_str(), self.expr(value)));
                    }
                    Expectation::Matched(m) => text.push_str(&format!("matched {}", m.name)),
                    Expectation::Action(a) => text.push_str(&self.action(a)),
                }
                text
            }
        }
    }

    // ------------------------------------------------------------ expressions

    /// An expression on one line, parentheses where the user wrote them.
    fn expr(&self, e: &Expr) -> String {
        let inner = self.expr_inner(e);
        if self.parens.contains_key(&e.span) {
            format!("({inner})")
        } else {
            inner
        }
    }

    fn expr_inner(&self, e: &Expr) -> String {
        match &e.kind {
            ExprKind::Bool(b) => b.to_string(),
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Size(_) | ExprKind::Duration(_) => {
                self.slice(self.literal_span(e.span))
                    .split_whitespace()
                    .collect()
            }
            ExprKind::Str(s) => self.slice(s.span).to_string(),
            ExprKind::Regex(_) | ExprKind::Ip(_) | ExprKind::Cidr(..) => {
                self.slice(self.literal_span(e.span)).to_string()
            }
            ExprKind::List(items) => {
                let items: Vec<String> = items.iter().map(|i| self.expr(i)).collect();
                format!("[{}]", items.join(", "))
            }
            ExprKind::Name(n) => n.name.clone(),
            ExprKind::Field(base, name) => format!("{}.{}", self.expr(base), name.name),
            ExprKind::Index(base, index) => format!("{}[{}]", self.expr(base), self.expr(index)),
            ExprKind::Call(name, args) => {
                let args: Vec<String> = args.iter().map(|a| self.expr(a)).collect();
                format!("{}({})", name.name, args.join(", "))
            }
            ExprKind::Not(inner) => format!("not {}", self.expr(inner)),
            ExprKind::Neg(inner) => format!("-{}", self.expr(inner)),
            ExprKind::And(l, r) => format!("{} and {}", self.expr(l), self.expr(r)),
            ExprKind::Or(l, r) => format!("{} or {}", self.expr(l), self.expr(r)),
            ExprKind::Add(l, r) => format!("{} + {}", self.expr(l), self.expr(r)),
            ExprKind::Sub(l, r) => format!("{} - {}", self.expr(l), self.expr(r)),
            ExprKind::Exists(inner) => format!("{} exists", self.expr(inner)),
            ExprKind::Compare(c) => {
                let mut text = String::new();
                if c.all {
                    text.push_str("all ");
                }
                text.push_str(&self.expr(&c.lhs));
                text.push(' ');
                text.push_str(c.op.as_str());
                if c.any {
                    text.push_str(" any");
                }
                text.push(' ');
                text.push_str(&self.expr(&c.rhs));
                if let Some(bind) = &c.bind {
                    text.push_str(" as ");
                    text.push_str(&bind.name);
                }
                text
            }
        }
    }
}

fn type_text(t: &TypeExpr) -> String {
    if t.args.is_empty() {
        t.name.name.clone()
    } else {
        let args: Vec<String> = t.args.iter().map(type_text).collect();
        format!("{}<{}>", t.name.name, args.join(", "))
    }
}
