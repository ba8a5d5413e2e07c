//! The canonical formatter behind `weir fmt`.
//!
//! It parses the file, then prints the tree in the canonical style:
//! - two-space indentation; `rule NAME priority N shadow {`, then the `when`
//!   line, the `then` line (`then ACTION` for a single unbraced action,
//!   `then {` with one action per line otherwise) and the `else` line;
//! - one blank line between declarations, except that `import`, `let`,
//!   `list` and `fn` declarations keep the user's choice of zero or one
//!   blank line between them, so groups stay together; at most one blank
//!   line is kept between statements (and between list items) where the
//!   user had any;
//! - single spaces around operators, `[a, b]` lists, `{k: v}` maps, `f(a, b)`
//!   calls; parentheses are kept where the user wrote them;
//! - line breaks are kept where they help reading and dropped elsewhere
//!   (see [`layout`]): between the operands of an `and`/`or` chain anywhere
//!   (continuation lines start with the operator, except where a newline
//!   would end a `let` value or `fn` body), inside parentheses written over
//!   lines, and in lists and `with` maps written over lines (one item per
//!   line, each with a trailing comma, so comments can sit beside items);
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

mod layout;
mod lines;

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::lexer;
use crate::parser::{MAX_PARSE_THREADS, parse_full};
use layout::{FREE, IF, LINE};
use lines::Lines;

/// Formats a `.flow` file in the canonical style; the syntax errors if it
/// does not parse.
pub fn format(source: &str, file: &str) -> Result<String, Vec<Diagnostic>> {
    let parsed = parse_full(source, file, MAX_PARSE_THREADS);
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

    fn slice(&self, span: Span) -> &str {
        self.src.get(span.start..span.end).unwrap_or("")
    }

    // ------------------------------------------------------------ emitting

    /// Prints laid-out lines at the current indentation. `blank_ok`: a
    /// blank line before the first one in the source is kept.
    fn emit(&mut self, lines: Lines, blank_ok: bool) {
        for (i, frag) in lines.into_frags().into_iter().enumerate() {
            if frag.closing {
                self.indent += frag.depth + 1;
                self.leading(frag.start);
                self.indent -= frag.depth + 1;
            }
            self.indent += frag.depth;
            let blank_ok = if i == 0 { blank_ok } else { frag.blank_ok };
            self.line(frag.start, frag.end, &frag.text, blank_ok);
            self.indent -= frag.depth;
        }
    }

    // ------------------------------------------------------------ declarations

    fn file(&mut self, file: &File) {
        let mut previous_single: Option<bool> = None;
        for item in &file.items {
            // Short declarations keep the user's grouping; the others
            // always stand apart.
            let single = matches!(
                item,
                Item::Import(_) | Item::Let(_) | Item::List(_) | Item::Fn(_) | Item::Classifier(_)
            ) || matches!(item, Item::Map(m) if matches!(m.source, MapSource::File(..)));
            if previous_single.is_some_and(|prev| !(prev && single)) {
                self.force_blank = true;
            }
            previous_single = Some(single);
            self.item(item);
        }
        self.suppress_blank = self.out.is_empty();
        self.leading(usize::MAX);
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Import(i) => {
                let text = format!("import {}", self.slice(i.path_span));
                self.line(i.span.start, i.span.end, &text, true);
            }
            Item::Let(l) => {
                let prefix = format!("let {} = ", l.name.name);
                let mut lines = self.prefixed(&prefix, l.span.start, self.layout(&l.value, LINE));
                lines.reach(l.span.end);
                self.emit(lines, true);
            }
            Item::List(l) => {
                let text = format!("list {} = file {}", l.name.name, self.slice(l.path_span));
                self.line(l.span.start, l.span.end, &text, true);
            }
            Item::Map(m) => self.map_decl(m),
            Item::Classifier(c) => {
                let classes: Vec<&str> = c.classes.iter().map(|(_, s)| self.slice(*s)).collect();
                let text = format!(
                    "classifier {} = learned [{}]",
                    c.name.name,
                    classes.join(", ")
                );
                self.line(c.span.start, c.span.end, &text, true);
            }
            Item::Fn(f) => {
                let params: Vec<String> = f
                    .params
                    .iter()
                    .map(|p| format!("{}: {}", p.name.name, type_text(&p.ty)))
                    .collect();
                let prefix = format!("fn {}({}) = ", f.name.name, params.join(", "));
                let mut lines = self.prefixed(&prefix, f.span.start, self.layout(&f.body, LINE));
                lines.reach(f.span.end);
                self.emit(lines, true);
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

    /// `map NAME = file "PATH"` on one line; a literal map one pair a line.
    fn map_decl(&mut self, m: &MapDecl) {
        let pairs = match &m.source {
            MapSource::File(_, path_span) => {
                let text = format!("map {} = file {}", m.name.name, self.slice(*path_span));
                self.line(m.span.start, m.span.end, &text, true);
                return;
            }
            MapSource::Literal(pairs) if pairs.is_empty() => {
                let text = format!("map {} = {{}}", m.name.name);
                self.line(m.span.start, m.span.end, &text, true);
                return;
            }
            MapSource::Literal(pairs) => pairs,
        };
        let header_end = self.open_brace_end(m.name.span.end, pairs[0].key_span.start);
        self.line(
            m.span.start,
            header_end,
            &format!("map {} = {{", m.name.name),
            true,
        );
        self.indent += 1;
        self.suppress_blank = true;
        for pair in pairs {
            let text = format!(
                "{}: {},",
                self.slice(pair.key_span),
                self.slice(pair.value_span)
            );
            let end = self.comma_end(pair.value_span.end, m.span.end);
            self.line(pair.key_span.start, end, &text, true);
        }
        self.close(m.span.end);
    }

    /// The end of the `,` right after `from` (blanks and newlines between),
    /// or `from` when none follows before `limit`.
    fn comma_end(&self, from: usize, limit: usize) -> usize {
        let rest = &self.src[from..limit.max(from).min(self.src.len())];
        let skipped = rest.len() - rest.trim_start().len();
        if rest[skipped..].starts_with(',') {
            from + skipped + 1
        } else {
            from
        }
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
            let lines = self.prefixed("when ", when.span.start, self.layout(when, FREE));
            self.emit(lines, false);
        }
        self.clause("then", &r.then);
        if let Some(otherwise) = &r.otherwise {
            self.clause("else", otherwise);
        }
        self.close(r.span.end);
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
            let lines = self.prefixed(&format!("{keyword} "), a.span.start, self.action_layout(a));
            self.emit(lines, false);
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
                let lines = self.action_layout(a);
                self.emit(lines, true);
            }
            Stmt::If(i) => self.if_stmt(i, "if", true),
        }
    }

    /// `KEYWORD COND {`, the statements, `}` and any `else`.
    fn if_stmt(&mut self, i: &IfStmt, keyword: &str, blank_ok: bool) {
        let mut lines = self.prefixed(
            &format!("{keyword} "),
            i.cond.span.start,
            self.layout(&i.cond, IF),
        );
        lines.push_str(" {");
        // The `then` block of an `if` is always braced.
        lines.reach(i.then.span.start + 1);
        self.emit(lines, blank_ok);
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
            let mut lines = self.test_stmt(stmt);
            lines.reach(stmt.span.end);
            self.emit(lines, true);
        }
        self.close(t.span.end);
    }

    fn test_stmt(&self, stmt: &TestStmt) -> Lines {
        let start = stmt.span.start;
        match &stmt.kind {
            TestStmtKind::MessageFile(_) | TestStmtKind::MessageText(_) => {
                // The literal as written: the statement minus its keyword.
                let text = self.slice(stmt.span);
                let text = format!(
                    "message {}",
                    text.trim_start_matches("message").trim_start()
                );
                Lines::text(text, start, stmt.span.end)
            }
            TestStmtKind::Envelope { from, to } => {
                let mut lines = Lines::text("envelope", start, start);
                self.clause_arg(&mut lines, " from ", from.as_ref());
                self.clause_arg(&mut lines, " to ", to.as_ref());
                lines
            }
            TestStmtKind::Client { ip, helo } => {
                let mut lines = Lines::text("client", start, start);
                self.clause_arg(&mut lines, " ip ", ip.as_ref());
                self.clause_arg(&mut lines, " helo ", helo.as_ref());
                lines
            }
            TestStmtKind::Now(e) => self.prefixed("now ", start, self.layout(e, FREE)),
            TestStmtKind::Recipient(e) => self.prefixed("recipient ", start, self.layout(e, FREE)),
            TestStmtKind::Duplicate(e) => self.prefixed("duplicate ", start, self.layout(e, FREE)),
            TestStmtKind::Classify {
                name,
                class,
                confidence,
            } => {
                let prefix = format!("classify {} ", name.name);
                let mut lines = self.prefixed(&prefix, start, self.layout(class, FREE));
                lines.push_str(" ");
                lines.append(self.layout(confidence, FREE));
                lines
            }
            TestStmtKind::Rate { key, count } => {
                let mut lines = self.prefixed("rate ", start, self.layout(key, FREE));
                lines.push_str(" = ");
                lines.append(self.layout(count, FREE));
                lines
            }
            TestStmtKind::Expect { negated, what } => {
                let keyword = if *negated { "expect not " } else { "expect " };
                match what {
                    Expectation::Verdict { verdict, code } => {
                        let mut text = format!("{keyword}verdict {}", verdict.name);
                        if let Some((_, span)) = code {
                            text.push_str(&format!(" {}", self.slice(*span)));
                        }
                        Lines::text(text, start, stmt.span.end)
                    }
                    Expectation::Stage(s) => {
                        Lines::text(format!("{keyword}stage {}", s.name), start, stmt.span.end)
                    }
                    Expectation::Score { op, value } => {
                        let prefix = format!("{keyword}score {} ", op.as_str());
                        self.prefixed(&prefix, start, self.layout(value, FREE))
                    }
                    Expectation::Matched(m) => {
                        Lines::text(format!("{keyword}matched {}", m.name), start, stmt.span.end)
                    }
                    Expectation::Action(a) => self.prefixed(keyword, start, self.action_layout(a)),
                }
            }
        }
    }

    /// Appends ` KEYWORD VALUE` to a test statement when the value is there.
    fn clause_arg(&self, lines: &mut Lines, keyword: &str, value: Option<&Expr>) {
        if let Some(e) = value {
            lines.push_str(keyword);
            lines.append(self.layout(e, FREE));
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
