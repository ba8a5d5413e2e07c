//! `some(LIST, x => EXPR)` and `every(LIST, x => EXPR)` (docs/language.md
//! ("One element at a time")): the element's type comes from the list, the
//! body is a `bool`, and evaluation stays linear: a lambda's body cannot
//! hold another `some`/`every`, directly or through a `fn`, and cannot read
//! the captures of `matches … as`.

use weir_grammar::ast::{self, ExprKind, Ident, Span};
use weir_stdlib::Type;

use super::{Annotate, Checker, Ctx};
use crate::codes;
use crate::ir::Expr;

use super::expr::Typed;

impl Checker<'_> {
    /// `some(LIST, x => EXPR)` or `every(...)`.
    pub(crate) fn quantified(
        &mut self,
        cx: Ctx,
        span: Span,
        name: &Ident,
        args: &[ast::Expr],
    ) -> Option<Typed> {
        let every = name.name == "every";
        let [list, lambda] = args else {
            self.arg_count(cx.unit, span, &name.name, 2, args.len());
            return None;
        };
        let ExprKind::Lambda(param, body) = &lambda.kind else {
            self.error(
                codes::LAMBDA,
                cx.unit,
                lambda.span,
                format!("the second argument of `{}` is a lambda", name.name),
            )
            .set_label("not a lambda")
            .set_hint(format!(
                "write `{}(LIST, x => CONDITION)`, with `x` each element in turn",
                name.name
            ));
            return None;
        };
        if self.lambda.is_some() {
            self.nested_lambda(cx, span, &name.name);
            return None;
        }
        let (list, list_ty) = self.expr(cx, list)?;
        let Type::List(item) = list_ty else {
            self.mismatch(cx.unit, args[0].span, "a list", &list_ty);
            return None;
        };
        self.lambda = Some((param.name.clone(), *item));
        let body = self.bool_expr(cx, body);
        self.lambda = None;
        let (body, _) = body?;
        Some((
            Expr::Quantified {
                every,
                list: Box::new(list),
                body: Box::new(body),
            },
            Type::Bool,
        ))
    }

    /// A lambda written anywhere but as the second argument of `some`/`every`.
    pub(crate) fn lambda_out_of_place(&mut self, cx: Ctx, span: Span) {
        self.error(
            codes::LAMBDA,
            cx.unit,
            span,
            "a lambda `x => …` is allowed only as the second argument of `some` or `every`",
        )
        .set_label("lambda out of place");
    }

    /// A `some`/`every` inside a lambda's body, directly or through `fn`.
    pub(crate) fn nested_lambda(&mut self, cx: Ctx, span: Span, what: &str) {
        self.error(
            codes::LAMBDA,
            cx.unit,
            span,
            format!("`{what}` inside the body of `some`/`every`: lambdas do not nest"),
        )
        .set_label("nested")
        .set_hint("a lambda inside a lambda would test every pair of elements; test the lists one after the other, joined with `and`");
    }

    /// A capture of `matches … as` read in a lambda's body.
    pub(crate) fn lambda_captures(&mut self, cx: Ctx, id: &Ident) {
        self.error(
            codes::LAMBDA,
            cx.unit,
            id.span,
            format!(
                "a lambda cannot read the captures `{}` of `matches … as`",
                id.name
            ),
        )
        .set_label("captures are not visible here")
        .set_hint(
            "test the captured text outside the lambda, or match the element itself inside it",
        );
    }

    /// Whether the `fn` numbered `index` evaluates a `some`/`every`,
    /// directly or through the functions it calls.
    pub(crate) fn function_quantifies(&self, index: usize) -> bool {
        let mut stack = vec![index];
        let mut seen = vec![false; self.functions.len()];
        while let Some(f) = stack.pop() {
            if seen.get(f).copied().unwrap_or(true) {
                continue;
            }
            seen[f] = true;
            let mut exprs = vec![&self.functions[f].body];
            while let Some(e) = exprs.pop() {
                match e {
                    Expr::Quantified { .. } => return true,
                    Expr::CallUser { func, .. } => stack.push(*func),
                    _ => {}
                }
                exprs.extend(e.children());
            }
        }
        false
    }
}
