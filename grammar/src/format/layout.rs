//! Lays out expressions, actions and maps as [`Lines`].
//!
//! Everything is printed on one line except where the user broke the line
//! at a place the canonical style keeps:
//! - between the operands of an `and`/`or` chain: the continuation line
//!   starts with the operator and hangs one level deeper than the chain's
//!   first line (two in an `if` condition, so that it stands apart from the
//!   block; inside parentheses it stays at the chain's level). Where a
//!   newline ends the expression (a `let` value or a `fn` body outside
//!   brackets) the operator ends the line instead, as the grammar requires;
//! - inside parentheses, right after `(` or before `)`, or when the chain
//!   they hold is broken: `(` ends the line, the inside is one level deeper,
//!   `)` stands on its own line;
//! - between the brackets of a list or a `with {k: v}` map: one item per
//!   line, one level deeper, each followed by a comma, and the closing
//!   bracket on its own line.

use super::Printer;
use super::lines::Lines;
use crate::ast::*;

/// Where an expression stands.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ctx {
    /// A newline would end the expression here (a `let` value or a `fn`
    /// body outside brackets): a broken chain puts its operator at the end
    /// of the line.
    line_mode: bool,
    /// The depth, relative to a chain's first line, of its continuation
    /// lines.
    hang: usize,
}

/// A condition, an argument, an item: newlines are free.
pub(super) const FREE: Ctx = Ctx {
    line_mode: false,
    hang: 1,
};

/// An `if` condition: its continuation lines hang two levels deep, so they
/// stand apart from the statements of its block.
pub(super) const IF: Ctx = Ctx {
    line_mode: false,
    hang: 2,
};

/// A `let` value or a `fn` body: a newline ends it unless an operator ends
/// the line.
pub(super) const LINE: Ctx = Ctx {
    line_mode: true,
    hang: 1,
};

impl Printer<'_> {
    /// Lays out an expression, parentheses where the user wrote them.
    pub(super) fn layout(&self, e: &Expr, ctx: Ctx) -> Lines {
        if self.parens.contains_key(&e.span) {
            self.paren(e)
        } else {
            self.layout_inner(e, ctx)
        }
    }

    /// What goes between a member's receiver and its dot: a space after a
    /// bare numeric or address literal, because `10.x` or `192.0.2.0/24.x`
    /// would lex the dot into the literal and no longer parse.
    fn member_gap(&self, base: &Expr) -> &'static str {
        let numeric = matches!(
            base.kind,
            ExprKind::Int(_)
                | ExprKind::Float(_)
                | ExprKind::Size(_)
                | ExprKind::Duration(_)
                | ExprKind::Ip(_)
                | ExprKind::Cidr(..)
        );
        if numeric && !self.parens.contains_key(&base.span) {
            " "
        } else {
            ""
        }
    }

    /// `e` in the parentheses the user wrote around it.
    fn paren(&self, e: &Expr) -> Lines {
        let own = self.own_span(e.span);
        let open = e.span.start;
        let close = e.span.end.saturating_sub(1);
        let broken = self.has_newline(open + 1, own.start)
            || self.has_newline(own.end, close)
            || self.chain_broken(e);
        let mut lines = Lines::text("(", open, open + 1);
        if broken {
            let inside = Ctx {
                line_mode: false,
                hang: 0,
            };
            lines.push_line(1, self.layout_inner(e, inside), "", false);
            lines.push_line(0, Lines::closing(")", close, e.span.end), "", false);
        } else {
            lines.append(self.layout_inner(e, FREE));
            lines.push_str(")");
            lines.reach(e.span.end);
        }
        lines
    }

    /// Lays out an expression without the parentheses around it.
    fn layout_inner(&self, e: &Expr, ctx: Ctx) -> Lines {
        let own = self.own_span(e.span);
        let mut lines = match &e.kind {
            ExprKind::And(..) | ExprKind::Or(..) => self.chain_layout(e, ctx),
            ExprKind::List(items) => self.list_layout(own, items),
            ExprKind::Call(name, args) => {
                let mut lines = Lines::text(format!("{}(", name.name), own.start, name.span.end);
                self.push_args(&mut lines, args);
                lines
            }
            ExprKind::Field(base, name) => {
                let mut lines = self.layout(base, FREE);
                lines.push_str(&format!("{}.{}", self.member_gap(base), name.name));
                lines
            }
            ExprKind::Method(base, name, args) => {
                let mut lines = self.layout(base, FREE);
                lines.push_str(&format!("{}.{}(", self.member_gap(base), name.name));
                self.push_args(&mut lines, args);
                lines
            }
            ExprKind::Index(base, index) => {
                let mut lines = self.layout(base, FREE);
                lines.push_str("[");
                lines.append(self.layout(index, FREE));
                lines.push_str("]");
                lines
            }
            ExprKind::Not(inner) => self.prefixed("not ", own.start, self.layout(inner, FREE)),
            ExprKind::Neg(inner) => self.prefixed("-", own.start, self.layout(inner, FREE)),
            ExprKind::Add(l, r) => self.infix(l, "+", r),
            ExprKind::Sub(l, r) => self.infix(l, "-", r),
            ExprKind::Exists(inner) => {
                let mut lines = self.layout(inner, FREE);
                lines.push_str(" exists");
                lines
            }
            ExprKind::Lambda(param, body) => self.prefixed(
                &format!("{} => ", param.name),
                own.start,
                self.layout(body, FREE),
            ),
            ExprKind::Compare(c) => {
                let mut lines = self.prefixed(
                    if c.all { "all " } else { "" },
                    own.start,
                    self.layout(&c.lhs, FREE),
                );
                lines.push_str(&format!(
                    " {}{} ",
                    c.op.as_str(),
                    if c.any { " any" } else { "" }
                ));
                lines.append(self.layout(&c.rhs, FREE));
                if let Some(bind) = &c.bind {
                    lines.push_str(&format!(" as {}", bind.name));
                }
                lines
            }
            _ => Lines::text(self.leaf(e, own), own.start, own.end),
        };
        lines.reach(own.end);
        lines
    }

    /// The text of a literal or a name, as written.
    fn leaf(&self, e: &Expr, own: Span) -> String {
        match &e.kind {
            ExprKind::Bool(b) => b.to_string(),
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Size(_) | ExprKind::Duration(_) => {
                self.slice(own).split_whitespace().collect()
            }
            ExprKind::Str(s) => self.slice(s.span).to_string(),
            ExprKind::Name(n) => n.name.clone(),
            _ => self.slice(own).to_string(),
        }
    }

    /// `prefix` then `lines`, the line starting at `start` in the source.
    pub(super) fn prefixed(&self, prefix: &str, start: usize, lines: Lines) -> Lines {
        let mut out = Lines::text(prefix, start, start);
        out.append(lines);
        out
    }

    fn infix(&self, l: &Expr, op: &str, r: &Expr) -> Lines {
        let mut lines = self.layout(l, FREE);
        lines.push_str(&format!(" {op} "));
        lines.append(self.layout(r, FREE));
        lines
    }

    /// An `and`/`or` chain, keeping the user's line breaks between operands.
    fn chain_layout(&self, e: &Expr, ctx: Ctx) -> Lines {
        let mut operands = Vec::new();
        let mut ops = Vec::new();
        self.flatten(e, true, &mut operands, &mut ops);
        let mut previous = operands[0];
        let mut lines = self.layout(previous, FREE);
        for (op, operand) in ops.iter().zip(&operands[1..]) {
            let next = self.layout(operand, FREE);
            if !self.has_newline(previous.span.end, operand.span.start) {
                lines.push_str(&format!(" {op} "));
                lines.append(next);
            } else if ctx.line_mode {
                lines.push_str(&format!(" {op}"));
                lines.push_line(ctx.hang, next, "", false);
            } else {
                lines.push_line(ctx.hang, next, &format!("{op} "), false);
            }
            previous = operand;
        }
        lines
    }

    /// Whether `e` (its own parentheses aside) is an `and`/`or` chain the
    /// user broke over lines.
    fn chain_broken(&self, e: &Expr) -> bool {
        let mut operands = Vec::new();
        let mut ops = Vec::new();
        self.flatten(e, true, &mut operands, &mut ops);
        operands
            .windows(2)
            .any(|pair| self.has_newline(pair[0].span.end, pair[1].span.start))
    }

    /// The operands and operators of an `and`/`or` chain; parentheses end
    /// it, except around the root.
    fn flatten<'e>(
        &self,
        e: &'e Expr,
        root: bool,
        operands: &mut Vec<&'e Expr>,
        ops: &mut Vec<&'static str>,
    ) {
        if root || !self.parens.contains_key(&e.span) {
            match &e.kind {
                ExprKind::Or(l, r) | ExprKind::And(l, r) => {
                    self.flatten(l, false, operands, ops);
                    ops.push(if matches!(e.kind, ExprKind::Or(..)) {
                        "or"
                    } else {
                        "and"
                    });
                    self.flatten(r, false, operands, ops);
                    return;
                }
                _ => {}
            }
        }
        operands.push(e);
    }

    /// A call's arguments after its `(`, comma-separated, and the `)`.
    fn push_args(&self, lines: &mut Lines, args: &[Expr]) {
        for (i, arg) in args.iter().enumerate() {
            if i > 0 {
                lines.push_str(", ");
            }
            lines.append(self.layout(arg, FREE));
        }
        lines.push_str(")");
    }

    /// `[a, b]`, or one item per line if the user broke the list.
    fn list_layout(&self, own: Span, items: &[Expr]) -> Lines {
        let spans: Vec<Span> = items.iter().map(|i| i.span).collect();
        let items: Vec<Lines> = items.iter().map(|i| self.layout(i, FREE)).collect();
        self.bracketed(own, "[", "]", &spans, items)
    }

    /// A `with` map: `{k: v}`, or one entry per line if the user broke it.
    pub(super) fn map_layout(&self, map: &MapLit) -> Lines {
        let spans: Vec<Span> = map.entries.iter().map(|(k, v)| k.span.to(v.span)).collect();
        let entries: Vec<Lines> = map
            .entries
            .iter()
            .map(|(k, v)| {
                self.prefixed(&format!("{}: ", k.name), k.span.start, self.layout(v, FREE))
            })
            .collect();
        self.bracketed(map.span, "{", "}", &spans, entries)
    }

    /// Items between brackets (`own` covers them), on one line unless a
    /// newline stands between the brackets and the items or between two
    /// items in the source.
    fn bracketed(
        &self,
        own: Span,
        open: &str,
        close: &str,
        spans: &[Span],
        items: Vec<Lines>,
    ) -> Lines {
        let close_at = own.end.saturating_sub(1);
        let mut bounds = vec![own.start + 1];
        for span in spans {
            bounds.push(span.start);
            bounds.push(span.end);
        }
        bounds.push(close_at);
        let broken =
            !spans.is_empty() && bounds.chunks(2).any(|gap| self.has_newline(gap[0], gap[1]));
        let mut lines = Lines::text(open, own.start, own.start + 1);
        if broken {
            for (i, mut item) in items.into_iter().enumerate() {
                item.push_str(",");
                lines.push_line(1, item, "", i > 0);
            }
            lines.push_line(0, Lines::closing(close, close_at, own.end), "", false);
        } else {
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    lines.push_str(", ");
                }
                lines.append(item);
            }
            lines.push_str(close);
            lines.reach(own.end);
        }
        lines
    }

    /// An action: name, arguments, `with` map, `template`.
    pub(super) fn action_layout(&self, a: &Action) -> Lines {
        let mut lines = Lines::text(a.name.name.clone(), a.span.start, a.name.span.end);
        for arg in &a.args {
            lines.push_str(" ");
            lines.append(self.layout(arg, FREE));
        }
        if let Some(map) = &a.with {
            lines.push_str(" with ");
            lines.append(self.map_layout(map));
        }
        if let Some(t) = &a.template {
            lines.push_str(&format!(" template {}", t.name));
        }
        if let Some(e) = &a.every {
            lines.push_str(" every ");
            lines.append(self.layout(e, FREE));
        }
        lines.reach(a.span.end);
        lines
    }

    /// Where an expression's own text is, inside any parentheses around it.
    pub(super) fn own_span(&self, mut span: Span) -> Span {
        // Each step strictly shrinks the span, so this ends.
        while let Some(inner) = self.parens.get(&span) {
            if *inner == span {
                break;
            }
            span = *inner;
        }
        span
    }

    /// Whether the source has a line break between `from` and `to`.
    fn has_newline(&self, from: usize, to: usize) -> bool {
        self.src.get(from..to).is_some_and(|s| s.contains('\n'))
    }
}
