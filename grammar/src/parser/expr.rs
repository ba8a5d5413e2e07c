//! Expressions: precedence with pest's Pratt parser, primaries, and the
//! simple expressions that actions take as arguments.

use std::sync::LazyLock;

use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};

use super::{Builder, MAX_DEPTH, Rule};
use crate::ast::{Compare, CompareOp, Expr, ExprKind, Ident, Span};
use crate::codes;

/// Operator precedence, loosest first (docs/language.md ("Expressions")). `as NAME` sits just
/// above `not` so that it applies to a whole `matches` test; `all` binds the
/// left side of a comparison, hence just above the comparisons.
static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::op_or, Assoc::Left))
        .op(Op::infix(Rule::op_and, Assoc::Left))
        .op(Op::prefix(Rule::op_not))
        .op(Op::postfix(Rule::op_as))
        .op(Op::infix(Rule::op_cmp, Assoc::Left))
        .op(Op::prefix(Rule::op_all) | Op::postfix(Rule::op_exists))
        .op(Op::infix(Rule::op_add, Assoc::Left) | Op::infix(Rule::op_sub, Assoc::Left))
        .op(Op::prefix(Rule::op_neg) | Op::prefix(Rule::op_pos))
        .op(Op::postfix(Rule::op_field) | Op::postfix(Rule::op_index))
});

/// At most this many prefix operators in a row (the Pratt parser recurses
/// once per prefix operator).
const MAX_PREFIX_RUN: usize = 64;

/// An expression while the Pratt parser combines it.
struct Partial {
    expr: Expr,
    /// `all` was written before it (and awaits a comparison).
    all: Option<Span>,
    /// It was written in parentheses.
    paren: bool,
    /// Depth of the tree, to stop runaway operator chains.
    depth: u32,
}

impl Partial {
    fn leaf(expr: Expr) -> Partial {
        Partial {
            expr,
            all: None,
            paren: false,
            depth: 1,
        }
    }
}

impl Builder<'_> {
    /// Builds a `cond_expr` or `line_expr`.
    pub(super) fn expr(&self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        if !self.enter(span) {
            self.leave();
            return placeholder(span);
        }
        let partial = self.pratt(pair, span);
        self.leave();
        self.finish(partial)
    }

    fn pratt(&self, pair: Pair<'_, Rule>, span: Span) -> Partial {
        let pairs: Vec<Pair<'_, Rule>> = pair.into_inner().collect();
        let mut run = 0;
        for p in &pairs {
            if matches!(
                p.as_rule(),
                Rule::op_not | Rule::op_all | Rule::op_neg | Rule::op_pos
            ) {
                run += 1;
                if run > MAX_PREFIX_RUN {
                    self.report(self.error(
                        codes::TOO_DEEP,
                        "too many prefix operators in a row",
                        span,
                    ));
                    return Partial::leaf(placeholder(span));
                }
            } else {
                run = 0;
            }
        }
        if pairs.is_empty() {
            return Partial::leaf(placeholder(span));
        }
        PRATT
            .map_primary(|p| self.primary(p))
            .map_prefix(|op, rhs| self.prefix(op, rhs))
            .map_postfix(|lhs, op| self.postfix(lhs, op))
            .map_infix(|lhs, op, rhs| self.infix(lhs, op, rhs))
            .parse(pairs.into_iter())
    }

    /// Reports an `all` left without a comparison, and returns the tree.
    fn finish(&self, partial: Partial) -> Expr {
        if let Some(all) = partial.all {
            self.report(
                self.error(
                    codes::MISPLACED_ALL,
                    "`all` must come before a comparison",
                    all,
                )
                .with_hint("write `all LIST OP VALUE`, e.g. `all envelope.to.domain in internal`"),
            );
        }
        partial.expr
    }

    fn primary(&self, pair: Pair<'_, Rule>) -> Partial {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::paren => {
                let inner = pair.into_inner().find(|p| p.as_rule() == Rule::cond_expr);
                let mut expr = match inner {
                    Some(e) => self.expr(e),
                    None => placeholder(span),
                };
                self.parens.borrow_mut().insert(span, expr.span);
                expr.span = span;
                Partial {
                    expr,
                    all: None,
                    paren: true,
                    depth: 1,
                }
            }
            _ => Partial::leaf(self.atom(pair)),
        }
    }

    /// A primary expression other than a parenthesised one.
    pub(super) fn atom(&self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::paren => return self.primary(pair).expr,
            Rule::list => {
                if !self.enter(span) {
                    self.leave();
                    return placeholder(span);
                }
                let items = pair
                    .into_inner()
                    .filter(|p| p.as_rule() == Rule::cond_expr)
                    .map(|p| self.expr(p))
                    .collect();
                self.leave();
                ExprKind::List(items)
            }
            Rule::string | Rule::tstring | Rule::unterminated_string => {
                ExprKind::Str(self.string(pair))
            }
            Rule::regex => return self.regex(pair),
            Rule::unterminated_regex => return self.unterminated_regex(&pair),
            Rule::ipv4 | Rule::ipv6 => return self.ip(&pair),
            Rule::number => return self.number(&pair),
            Rule::boolean => ExprKind::Bool(pair.as_str().starts_with('t')),
            Rule::call => {
                let mut inner = pair.into_inner();
                let name = match inner.next() {
                    Some(p) => self.ident(&p),
                    None => return placeholder(span),
                };
                let args = inner
                    .flat_map(|args| args.into_inner())
                    .filter_map(|p| match p.as_rule() {
                        Rule::cond_expr => Some(self.expr(p)),
                        Rule::lambda => Some(self.lambda(p)),
                        _ => None,
                    })
                    .collect();
                ExprKind::Call(name, args)
            }
            Rule::name => match pair.into_inner().next() {
                Some(p) => ExprKind::Name(self.ident(&p)),
                None => return placeholder(span),
            },
            _ => return placeholder(span),
        };
        Expr { kind, span }
    }

    /// `x => EXPR`.
    fn lambda(&self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        let mut param = None;
        let mut body = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident => param = Some(self.ident(&p)),
                Rule::cond_expr => body = Some(self.expr(p)),
                _ => {}
            }
        }
        match (param, body) {
            (Some(param), Some(body)) => Expr {
                span: Span::new(span.start, body.span.end),
                kind: ExprKind::Lambda(param, Box::new(body)),
            },
            _ => placeholder(span),
        }
    }

    fn prefix(&self, op: Pair<'_, Rule>, rhs: Partial) -> Partial {
        let op_span = self.span(&op);
        let span = op_span.to(rhs.expr.span);
        match op.as_rule() {
            Rule::op_all => {
                if rhs.all.is_some() {
                    self.report(self.error(
                        codes::MISPLACED_ALL,
                        "`all` is written twice",
                        op_span,
                    ));
                }
                Partial {
                    all: Some(op_span),
                    ..rhs
                }
            }
            Rule::op_pos => {
                // `+2` is the number itself; its span keeps the sign so the
                // formatter, which prints literals as written, keeps it too.
                let paren = rhs.paren;
                let mut expr = self.finish(rhs);
                let numeric = matches!(
                    expr.kind,
                    ExprKind::Int(_)
                        | ExprKind::Float(_)
                        | ExprKind::Size(_)
                        | ExprKind::Duration(_)
                );
                if numeric && !paren {
                    expr.span = span;
                }
                Partial {
                    paren,
                    ..Partial::leaf(expr)
                }
            }
            Rule::op_not => self.wrap(rhs, span, |e| ExprKind::Not(Box::new(e))),
            _ => self.wrap(rhs, span, |e| ExprKind::Neg(Box::new(e))),
        }
    }

    /// Wraps an operand into a new node one level deeper.
    fn wrap(&self, operand: Partial, span: Span, make: impl FnOnce(Expr) -> ExprKind) -> Partial {
        let depth = operand.depth + 1;
        let expr = self.finish(operand);
        self.checked(
            Expr {
                kind: make(expr),
                span,
            },
            depth,
        )
    }

    /// Replaces a tree deeper than [`MAX_DEPTH`] by a placeholder (reported).
    fn checked(&self, expr: Expr, depth: u32) -> Partial {
        if depth > MAX_DEPTH {
            if depth == MAX_DEPTH + 1 {
                self.report(
                    self.error(
                        codes::TOO_DEEP,
                        "this expression is nested too deeply",
                        expr.span,
                    )
                    .with_hint("split it with `let` constants or `fn` functions"),
                );
            }
            return Partial {
                expr: placeholder(expr.span),
                all: None,
                paren: false,
                depth,
            };
        }
        Partial {
            expr,
            all: None,
            paren: false,
            depth,
        }
    }

    fn postfix(&self, lhs: Partial, op: Pair<'_, Rule>) -> Partial {
        let op_span = self.span(&op);
        let span = lhs.expr.span.to(op_span);
        match op.as_rule() {
            Rule::op_field => {
                let mut inner = op.into_inner();
                let Some(name) = inner.next().map(|p| self.ident(&p)) else {
                    return lhs;
                };
                match inner.next() {
                    Some(call_args) => {
                        let args = call_args
                            .into_inner()
                            .filter(|p| p.as_rule() == Rule::cond_expr)
                            .map(|p| self.expr(p))
                            .collect();
                        self.keep_all(lhs, span, |e| ExprKind::Method(Box::new(e), name, args))
                    }
                    None => self.keep_all(lhs, span, |e| ExprKind::Field(Box::new(e), name)),
                }
            }
            Rule::op_index => {
                let index = match op.into_inner().find(|p| p.as_rule() == Rule::cond_expr) {
                    Some(e) => self.expr(e),
                    None => placeholder(op_span),
                };
                self.keep_all(lhs, span, |e| ExprKind::Index(Box::new(e), Box::new(index)))
            }
            Rule::op_exists => self.keep_all(lhs, span, |e| ExprKind::Exists(Box::new(e))),
            _ => self.bind(lhs, op, span),
        }
    }

    /// A postfix operator that binds tighter than `all`: the `all` stays
    /// pending for the comparison to come.
    fn keep_all(&self, lhs: Partial, span: Span, make: impl FnOnce(Expr) -> ExprKind) -> Partial {
        let all = lhs.all;
        let depth = lhs.depth + 1;
        let mut out = self.checked(
            Expr {
                kind: make(lhs.expr),
                span,
            },
            depth,
        );
        out.all = all;
        out
    }

    /// `... matches REGEX as NAME`.
    fn bind(&self, lhs: Partial, op: Pair<'_, Rule>, span: Span) -> Partial {
        let op_span = self.span(&op);
        let name: Option<Ident> = op
            .into_inner()
            .find(|p| p.as_rule() == Rule::ident)
            .map(|p| self.ident(&p));
        let depth = lhs.depth;
        let mut expr = self.finish(lhs);
        match (&mut expr.kind, name) {
            (ExprKind::Compare(cmp), Some(name))
                if cmp.op == CompareOp::Matches && cmp.bind.is_none() =>
            {
                cmp.bind = Some(name);
                expr.span = span;
            }
            _ => {
                self.report(
                    self.error(
                        codes::MISPLACED_AS,
                        "`as NAME` must follow a `matches` test",
                        op_span,
                    )
                    .with_hint("write `FIELD matches /regex/ as NAME` to bind the captures"),
                );
            }
        }
        Partial {
            expr,
            all: None,
            paren: false,
            depth,
        }
    }

    fn infix(&self, lhs: Partial, op: Pair<'_, Rule>, rhs: Partial) -> Partial {
        let span = lhs.expr.span.to(rhs.expr.span);
        let depth = lhs.depth.max(rhs.depth) + 1;
        if op.as_rule() == Rule::op_cmp {
            return self.compare(lhs, op, rhs, depth);
        }
        let lhs = self.finish(lhs);
        let rhs = self.finish(rhs);
        let (l, r) = (Box::new(lhs), Box::new(rhs));
        let kind = match op.as_rule() {
            Rule::op_or => ExprKind::Or(l, r),
            Rule::op_and => ExprKind::And(l, r),
            Rule::op_add => ExprKind::Add(l, r),
            _ => ExprKind::Sub(l, r),
        };
        self.checked(Expr { kind, span }, depth)
    }

    fn compare(&self, lhs: Partial, op: Pair<'_, Rule>, rhs: Partial, depth: u32) -> Partial {
        let op_span = self.span(&op);
        let mut compare_op = CompareOp::Eq;
        let mut any = None;
        for p in op.into_inner() {
            match p.as_rule() {
                Rule::cmp_sym => compare_op = compare_op_of(p.as_str()).unwrap_or(CompareOp::Eq),
                Rule::kw_any => any = Some(self.span(&p)),
                _ => {}
            }
        }
        if let Some(any_span) = any
            && !matches!(
                compare_op,
                CompareOp::Contains | CompareOp::StartsWith | CompareOp::EndsWith | CompareOp::Eq
            )
        {
            self.report(
                self.error(
                    codes::MISPLACED_ANY,
                    format!("`any` cannot follow `{}`", compare_op.as_str()),
                    any_span,
                )
                .with_hint("`any` may follow contains, starts_with, ends_with and =="),
            );
        }
        if matches!(lhs.expr.kind, ExprKind::Compare(_)) && !lhs.paren {
            self.report(
                self.error(
                    codes::CHAINED_COMPARISON,
                    "comparisons cannot be chained",
                    op_span,
                )
                .with_hint("combine comparisons with `and` or `or`, or add parentheses"),
            );
        }
        let all = lhs.all;
        let start = all.map_or(lhs.expr.span.start, |a| a.start);
        let rhs_expr = self.finish(rhs);
        let span = Span::new(start, rhs_expr.span.end.max(lhs.expr.span.end));
        let compare = Compare {
            op: compare_op,
            all: all.is_some(),
            any: any.is_some(),
            lhs: lhs.expr,
            rhs: rhs_expr,
            bind: None,
        };
        self.checked(
            Expr {
                kind: ExprKind::Compare(Box::new(compare)),
                span,
            },
            depth,
        )
    }

    /// An action argument: a signed number, or a primary with field access
    /// and indexing.
    pub(super) fn arg(&self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let Some(first) = inner.next() else {
            return placeholder(span);
        };
        if first.as_rule() == Rule::signed_num {
            let mut parts = first.into_inner();
            let sign = parts.next().map(|p| p.as_rule());
            let Some(number) = parts.next() else {
                return placeholder(span);
            };
            let mut value = self.number(&number);
            if sign == Some(Rule::op_neg) {
                return Expr {
                    kind: ExprKind::Neg(Box::new(value)),
                    span,
                };
            }
            value.span = span;
            return value;
        }
        let mut partial = self.primary(first);
        for op in inner {
            partial = self.postfix(partial, op);
        }
        partial.expr
    }
}

/// The operator a `cmp_sym` spells.
pub(super) fn compare_op_of(text: &str) -> Option<CompareOp> {
    Some(match text {
        "==" => CompareOp::Eq,
        "!=" => CompareOp::Ne,
        "<" => CompareOp::Lt,
        "<=" => CompareOp::Le,
        ">" => CompareOp::Gt,
        ">=" => CompareOp::Ge,
        "contains" => CompareOp::Contains,
        "starts_with" => CompareOp::StartsWith,
        "ends_with" => CompareOp::EndsWith,
        "matches" => CompareOp::Matches,
        "in" => CompareOp::In,
        "under" => CompareOp::Under,
        _ => return None,
    })
}

/// Stands in for an expression that could not be built (an error has been
/// reported): `false`, so that nothing downstream trips over it.
fn placeholder(span: Span) -> Expr {
    Expr {
        kind: ExprKind::Bool(false),
        span,
    }
}
