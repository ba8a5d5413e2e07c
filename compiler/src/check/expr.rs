//! Typing and lowering of expressions (docs/language.md ("Expressions")).

use std::sync::Arc;

use weir_grammar::ast::{self, CompareOp, ExprKind, Ident, Span, StrPart};
use weir_grammar::visit::{Visit, walk};
use weir_stdlib::registry::{AUTH_RESULT_PROPERTIES, FunctionDef, FunctionImpl, ParamType};
use weir_stdlib::{Address, Attachment, AuthResult, Regex, RegexError, Type, Value};

use super::{Annotate, Binding, Checker, Ctx, Place};
use crate::codes;
use crate::hints;
use crate::ir::{self, Arith, CmpOp, Expr};
use crate::names::{Decl, DeclKind, Resolution};

/// A typed, lowered expression.
pub(crate) type Typed = (Expr, Type);

fn is_text(t: &Type) -> bool {
    matches!(t, Type::String | Type::Address)
}

fn is_num(t: &Type) -> bool {
    matches!(t, Type::Int | Type::Float)
}

/// The element type of a list, or the type itself.
fn elem(t: &Type) -> &Type {
    t.item().unwrap_or(t)
}

/// The value an out-of-range index yields for an item type.
fn empty_value(t: &Type) -> Value {
    match t {
        Type::Bool => Value::Bool(false),
        Type::Int => Value::Int(0),
        Type::Float => Value::Float(0.0),
        Type::Address => Value::Address(Arc::new(Address::default())),
        Type::Ip => Value::Ip([0, 0, 0, 0].into()),
        Type::Cidr => Value::Cidr([0, 0, 0, 0].into(), 32),
        Type::Time => Value::utc(0),
        Type::Duration => Value::Duration(0),
        Type::List(_) => Value::list(Vec::new()),
        Type::Attachment => Value::Attachment(Arc::new(Attachment::default())),
        Type::Captures => Value::Captures(Arc::new(Vec::new())),
        Type::AuthResult => Value::AuthResult(Arc::new(AuthResult::default())),
        Type::String | Type::Regex => Value::str(""),
    }
}

fn to_float(args: &[Value]) -> Value {
    Value::Float(args.first().and_then(Value::as_f64).unwrap_or(0.0))
}

fn to_float_list(args: &[Value]) -> Value {
    let items = args.first().and_then(Value::as_list).unwrap_or(&[]);
    Value::list(
        items
            .iter()
            .map(|v| Value::Float(v.as_f64().unwrap_or(0.0)))
            .collect(),
    )
}

/// The dotted path of `a.b.c` when its root is a bare name.
fn path_of(e: &ast::Expr) -> Option<Vec<&Ident>> {
    match &e.kind {
        ExprKind::Name(id) => Some(vec![id]),
        ExprKind::Field(base, member) => {
            let mut path = path_of(base)?;
            path.push(member);
            Some(path)
        }
        _ => None,
    }
}

impl Checker<'_> {
    /// Types and lowers an expression; `None` after reporting an error.
    /// The type is recorded for the language server (`types_at`).
    pub(crate) fn expr(&mut self, cx: Ctx, e: &ast::Expr) -> Option<Typed> {
        let typed = self.lower(cx, e)?;
        self.types.push((cx.unit, e.span, typed.1.clone()));
        Some(typed)
    }

    fn lower(&mut self, cx: Ctx, e: &ast::Expr) -> Option<Typed> {
        let span = e.span;
        match &e.kind {
            ExprKind::Bool(b) => Some((Expr::Const(Value::Bool(*b)), Type::Bool)),
            ExprKind::Int(i) => Some((Expr::Const(Value::Int(*i)), Type::Int)),
            ExprKind::Float(f) => Some((Expr::Const(Value::Float(*f)), Type::Float)),
            ExprKind::Size(n) => Some((
                Expr::Const(Value::Int(i64::try_from(*n).unwrap_or(i64::MAX))),
                Type::Int,
            )),
            ExprKind::Duration(n) => Some((
                Expr::Const(Value::Duration(i64::try_from(*n).unwrap_or(i64::MAX))),
                Type::Duration,
            )),
            ExprKind::Str(s) => self.str_lit(cx, s).map(|e| (e, Type::String)),
            ExprKind::Regex(r) => self
                .regex(cx.unit, span, r)
                .map(|r| (Expr::Const(Value::Regex(r)), Type::Regex)),
            ExprKind::Ip(ip) => Some((Expr::Const(Value::Ip(*ip)), Type::Ip)),
            ExprKind::Cidr(ip, len) => {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                if *len > max {
                    self.error(
                        codes::TYPE_MISMATCH,
                        cx.unit,
                        span,
                        format!("a prefix length of {len} is too long"),
                    )
                    .set_label(format!("at most {max} for this address"));
                    return None;
                }
                Some((Expr::Const(Value::Cidr(*ip, *len)), Type::Cidr))
            }
            ExprKind::List(items) => self.list(cx, span, items),
            ExprKind::Name(id) => self.name(cx, id),
            ExprKind::Field(base, member) => self.field(cx, e, base, member),
            ExprKind::Method(base, member, args) => self.method(cx, base, member, args),
            ExprKind::Index(base, index) => self.index(cx, base, index),
            ExprKind::Call(name, args) => self.call(cx, span, name, args),
            ExprKind::Not(inner) => {
                let (e, _) = self.bool_expr(Ctx { neg: true, ..cx }, inner)?;
                Some((Expr::Not(Box::new(e)), Type::Bool))
            }
            ExprKind::And(a, b) => {
                let a = self.bool_expr(cx, a);
                let b = self.bool_expr(cx, b);
                Some((Expr::And(Box::new(a?.0), Box::new(b?.0)), Type::Bool))
            }
            ExprKind::Or(a, b) => {
                let cx = Ctx { neg: true, ..cx };
                let a = self.bool_expr(cx, a);
                let b = self.bool_expr(cx, b);
                Some((Expr::Or(Box::new(a?.0), Box::new(b?.0)), Type::Bool))
            }
            ExprKind::Neg(inner) => {
                let (e, t) = self.expr(cx, inner)?;
                if !matches!(t, Type::Int | Type::Float | Type::Duration) {
                    self.mismatch(cx.unit, inner.span, "a number or a duration", &t);
                    return None;
                }
                Some((Expr::Neg(Box::new(e)), t))
            }
            ExprKind::Add(a, b) => self.arith(cx, true, a, b),
            ExprKind::Sub(a, b) => self.arith(cx, false, a, b),
            ExprKind::Compare(c) => self.compare(cx, c),
            ExprKind::Lambda(..) => {
                self.lambda_out_of_place(cx, span);
                None
            }
            ExprKind::Exists(inner) => {
                let (e, t) = self.expr(cx, inner)?;
                if !matches!(t, Type::List(_) | Type::String) {
                    self.mismatch(
                        cx.unit,
                        inner.span,
                        "a list (such as `header(\"X\")`) or a string",
                        &t,
                    );
                    return None;
                }
                Some((Expr::Exists(Box::new(e)), Type::Bool))
            }
        }
    }

    /// An expression that must be a `bool`.
    pub(crate) fn bool_expr(&mut self, cx: Ctx, e: &ast::Expr) -> Option<Typed> {
        let (lowered, t) = self.expr(cx, e)?;
        if t != Type::Bool {
            self.mismatch(cx.unit, e.span, "bool", &t);
            return None;
        }
        Some((lowered, t))
    }

    /// Reports "expected X, found Y".
    pub(crate) fn mismatch(&mut self, unit: usize, span: Span, expected: &str, found: &Type) {
        self.error(
            codes::TYPE_MISMATCH,
            unit,
            span,
            format!("expected {expected}, found {found}"),
        )
        .set_label(format!("this is a {found}"));
    }

    /// Converts a typed expression to `want` where the language allows it
    /// (equal types, int to float, address to its `.address` string).
    pub(crate) fn coerce(
        &mut self,
        unit: usize,
        span: Span,
        (e, t): Typed,
        want: &Type,
        expected: &str,
    ) -> Option<Expr> {
        if t == *want {
            return Some(e);
        }
        match (&t, want) {
            (Type::Int, Type::Float) => Some(Expr::Builtin {
                imp: to_float,
                args: vec![e],
            }),
            (Type::Address, Type::String) => Some(Expr::Member(Box::new(e), "address")),
            (Type::List(a), Type::List(b)) if **a == Type::Address && **b == Type::String => {
                Some(Expr::Member(Box::new(e), "address"))
            }
            (Type::List(a), Type::List(b)) if **a == Type::Int && **b == Type::Float => {
                Some(Expr::Builtin {
                    imp: to_float_list,
                    args: vec![e],
                })
            }
            _ => {
                self.mismatch(unit, span, expected, &t);
                None
            }
        }
    }

    /// A string literal, possibly interpolated.
    pub(crate) fn str_lit(&mut self, cx: Ctx, s: &ast::StrLit) -> Option<Expr> {
        if let Some(text) = s.as_plain() {
            return Some(Expr::Const(Value::str(text)));
        }
        let mut parts = Vec::new();
        let mut ok = true;
        for part in &s.parts {
            match part {
                StrPart::Text(t) => parts.push(ir::Part::Text(t.clone())),
                StrPart::Interp(e) => match self.expr(cx, e) {
                    Some((e, Type::Regex)) => {
                        let _ = e;
                        self.error(
                            codes::TYPE_MISMATCH,
                            cx.unit,
                            s.span,
                            "a regex cannot be interpolated",
                        );
                        ok = false;
                    }
                    Some((e, _)) => parts.push(ir::Part::Expr(e)),
                    None => ok = false,
                },
            }
        }
        ok.then_some(Expr::Interp(parts))
    }

    /// Checks a regex literal with its flags (built on first use, see
    /// [`weir_stdlib::pattern`]).
    pub(crate) fn regex(
        &mut self,
        unit: usize,
        span: Span,
        r: &ast::RegexLit,
    ) -> Option<Arc<Regex>> {
        let key = (r.pattern.clone(), r.flags.clone());
        if let Some(known) = self.regexes.get(&key) {
            return Some(Arc::clone(known));
        }
        match self.literals.get(&key) {
            Ok(re) => {
                self.regexes.insert(key, Arc::clone(&re));
                Some(re)
            }
            Err(RegexError::UnknownFlag(other)) => {
                self.error(
                    codes::INVALID_REGEX,
                    unit,
                    span,
                    format!("unknown regex flag `{other}`"),
                )
                .set_hint(format!("the flags are {}", weir_stdlib::pattern::FLAGS));
                None
            }
            Err(RegexError::Invalid(detail)) => {
                let reason = detail
                    .lines()
                    .rev()
                    .find(|l| l.starts_with("error:"))
                    .unwrap_or("")
                    .trim_start_matches("error:")
                    .trim();
                let reason = if reason.is_empty() {
                    detail.lines().last().unwrap_or("").trim()
                } else {
                    reason
                };
                self.error(codes::INVALID_REGEX, unit, span, format!("invalid regex: {reason}"))
                    .set_label("this regex does not compile")
                    .set_hint("regexes use Rust `regex` syntax: no back-references or look-around; write `/` as `\\/`");
                None
            }
        }
    }

    fn list(&mut self, cx: Ctx, span: Span, items: &[ast::Expr]) -> Option<Typed> {
        let mut lowered = Vec::new();
        let mut ok = true;
        for item in items {
            match self.expr(cx, item) {
                Some((e, t)) => lowered.push((e, t, item.span)),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let Some(first) = lowered.first().map(|(_, t, _)| t.clone()) else {
            return Some((
                Expr::Const(Value::list(Vec::new())),
                Type::list(Type::String),
            ));
        };
        // The item type: one type for all, with int+float as float and
        // ip+cidr as cidr (an IP is a /32 or /128).
        let mut item_ty = first;
        for (_, t, s) in &lowered {
            item_ty = match (&item_ty, t) {
                (a, b) if a == b => item_ty,
                (Type::Int, Type::Float) | (Type::Float, Type::Int) => Type::Float,
                (Type::Ip, Type::Cidr) | (Type::Cidr, Type::Ip) => Type::Cidr,
                (Type::String, Type::Address) | (Type::Address, Type::String) => Type::String,
                _ => {
                    self.error(
                        codes::TYPE_MISMATCH,
                        cx.unit,
                        *s,
                        format!("a list holds one type: expected {item_ty}, found {t}"),
                    )
                    .set_label("this item differs from the first");
                    return None;
                }
            };
        }
        let mut exprs = Vec::new();
        for (e, t, _) in lowered {
            let e = match (&item_ty, &t, e) {
                (Type::Cidr, Type::Ip, Expr::Const(Value::Ip(ip))) => {
                    Expr::Const(Value::Cidr(ip, if ip.is_ipv4() { 32 } else { 128 }))
                }
                (Type::Float, Type::Int, e) => Expr::Builtin {
                    imp: to_float,
                    args: vec![e],
                },
                (Type::String, Type::Address, e) => Expr::Member(Box::new(e), "address"),
                (Type::Cidr, Type::Ip, _) => {
                    self.error(
                        codes::TYPE_MISMATCH,
                        cx.unit,
                        span,
                        "a list of networks needs literal IP addresses",
                    );
                    return None;
                }
                (_, _, e) => e,
            };
            exprs.push(e);
        }
        let ty = Type::list(item_ty);
        let consts: Option<Vec<Value>> = exprs
            .iter()
            .map(|e| match e {
                Expr::Const(v) => Some(v.clone()),
                _ => None,
            })
            .collect();
        match consts {
            Some(values) => Some((Expr::Const(Value::list(values)), ty)),
            None => Some((Expr::List(exprs), ty)),
        }
    }

    /// Whether a bare name is local to the expression (a parameter or a
    /// visible capture), so `name.member` is not a field path.
    fn is_local(&self, name: &str) -> bool {
        self.lambda.as_ref().is_some_and(|(n, _)| n == name)
            || self.params.iter().any(|(n, _)| n == name)
            || self.visible.iter().any(|b| b.name == name)
    }

    fn name(&mut self, cx: Ctx, id: &Ident) -> Option<Typed> {
        if let Some((name, ty)) = &self.lambda
            && *name == id.name
        {
            return Some((Expr::Element, ty.clone()));
        }
        if self.lambda.is_some() && self.visible.iter().any(|b| b.name == id.name) {
            self.lambda_captures(cx, id);
            return None;
        }
        if let Some(i) = self.params.iter().position(|(n, _)| *n == id.name) {
            return Some((Expr::Param(i), self.params[i].1.clone()));
        }
        if let Some(b) = self.visible.iter().find(|b| b.name == id.name) {
            return Some((Expr::Captures(b.slot), Type::Captures));
        }
        match self.scopes.resolve(cx.unit, &id.name) {
            // A rule, template or function is never a value, so a field of
            // the same name (`rule size`) stays readable.
            Resolution::Found(decl)
                if matches!(
                    decl.kind,
                    DeclKind::Rule | DeclKind::Template | DeclKind::Fn
                ) && self.reg.field(&id.name).is_some() =>
            {
                self.field_path(cx, &[id], id.span)
            }
            Resolution::Found(decl) => {
                let decl = decl.clone();
                self.used.insert(decl.id);
                self.declared_value(cx, id, &decl)
            }
            Resolution::Ambiguous(a, b) => {
                let (a, b) = (a.clone(), b.clone());
                self.ambiguous(cx.unit, id, &a, &b);
                None
            }
            // Reported once, at the module's import.
            Resolution::NotFound if self.scopes.is_missing_requirement(cx.unit, &id.name) => None,
            Resolution::NotFound => self.field_path(cx, &[id], id.span),
        }
    }

    /// A declared name used as a value: a `let`'s or a list's value; a map,
    /// function, template or rule is not one (an error saying how to use it).
    fn declared_value(&mut self, cx: Ctx, id: &Ident, decl: &Decl) -> Option<Typed> {
        let (what, hint) = match decl.kind {
            DeclKind::Let => {
                let (v, t) = self.let_value(decl, cx.unit, id.span)?;
                return Some((Expr::Const(v), t));
            }
            DeclKind::List => {
                let list = self.loaded.lists.get(&(decl.id.unit, decl.id.item))?;
                return Some((Expr::Const(list.value.clone()), list.ty.clone()));
            }
            DeclKind::Map => (
                "map",
                format!(
                    "look a key up with `{0}[key]`, or test `key in {0}`",
                    id.name
                ),
            ),
            DeclKind::Fn => ("function", format!("call it: `{}(...)`", id.name)),
            DeclKind::Classifier => (
                "classifier",
                format!(
                    "read `{0}.class`, `{0}.confidence` or `{0}.probability(\"class\")`",
                    id.name
                ),
            ),
            DeclKind::Template => (
                "template",
                format!("use it in an action: `reply template {}`", id.name),
            ),
            DeclKind::Rule => (
                "rule",
                format!("to test whether it held, write `matched({})`", id.name),
            ),
        };
        self.error(
            codes::NOT_A_VALUE,
            cx.unit,
            id.span,
            format!("`{}` is a {what}, not a value", id.name),
        )
        .set_label(format!("a {what}"))
        .set_hint(hint);
        None
    }

    pub(crate) fn ambiguous(
        &mut self,
        unit: usize,
        id: &Ident,
        a: &crate::names::Decl,
        b: &crate::names::Decl,
    ) {
        // Both are meant to be used; only the ambiguity is the error.
        self.used.insert(a.id);
        self.used.insert(b.id);
        let (fa, fb) = (self.file(a.id.unit), self.file(b.id.unit));
        self.error(
            codes::AMBIGUOUS_NAME,
            unit,
            id.span,
            format!(
                "`{}` is declared by two imports: `{fa}` and `{fb}`",
                id.name
            ),
        )
        .set_label("ambiguous name")
        .add_related(fa, a.span, "declared here")
        .add_related(fb, b.span, "and here")
        .set_hint("declare it locally, or import only one of the two files");
    }

    /// A field of the registry written as a dotted path, followed by
    /// members (`envelope.from.domain`).
    fn field_path(&mut self, cx: Ctx, path: &[&Ident], span: Span) -> Option<Typed> {
        let names: Vec<&str> = path.iter().map(|i| i.name.as_str()).collect();
        for k in (1..=names.len()).rev() {
            let joined = names[..k].join(".");
            let Some(index) = self.reg.fields.iter().position(|f| f.path == joined) else {
                continue;
            };
            let def = &self.reg.fields[index];
            if cx.place == Place::Let {
                self.error(
                    codes::NOT_CONSTANT,
                    cx.unit,
                    span,
                    format!("a `let` cannot read the field `{joined}`"),
                )
                .set_label("a message field")
                .set_hint("use a `fn` for a value computed from the message");
                return None;
            }
            let mut typed = if def.get.is_none() && def.path == "score" {
                (Expr::Score, def.ty.clone())
            } else {
                (Expr::Field(index), def.ty.clone())
            };
            for member in &path[k..] {
                typed = self.member(cx, typed, member)?;
            }
            return Some(typed);
        }
        // Unknown: report the shortest prefix no field starts with.
        let fields: Vec<&str> = self.reg.fields.iter().map(|f| f.path).collect();
        let mut k = 1;
        while k < names.len() {
            let prefix = format!("{}.", names[..k].join("."));
            if !fields.iter().any(|f| f.starts_with(&prefix)) {
                break;
            }
            k += 1;
        }
        let wrong = names[..k].join(".");
        let wrong_span = path[0].span.to(path[k - 1].span);
        let binding_hint = self.binds.iter().any(|b| b.name == names[0]).then(|| {
            format!(
                "`{}` is bound by `matches … as {}` and visible only in the rule's `then` actions",
                names[0], names[0]
            )
        });
        let binding_hint = binding_hint.or_else(|| self.binding_elsewhere(names[0]));
        let mut candidates: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        if k == 1 {
            candidates.extend(self.scopes.visible(cx.unit).iter().map(|d| d.name.clone()));
            candidates.extend(self.params.iter().map(|(n, _)| n.clone()));
        }
        let hint = binding_hint
            .or_else(|| hints::did_you_mean(&wrong, candidates.iter().map(String::as_str)));
        let is_field_like = k > 1 || fields.iter().any(|f| f.starts_with(&format!("{wrong}.")));
        let what = if is_field_like { "field" } else { "name" };
        let label = if fields.iter().any(|f| f.starts_with(&format!("{wrong}."))) {
            "not a field by itself".to_string()
        } else {
            format!("unknown {what}")
        };
        self.error(
            codes::UNKNOWN_NAME,
            cx.unit,
            wrong_span,
            format!("unknown {what} `{wrong}`"),
        )
        .set_label(label)
        .maybe_hint(hint);
        None
    }

    /// Where another rule binds `name` with `matches … as NAME`, as a hint
    /// for a use outside that rule.
    fn binding_elsewhere(&self, name: &str) -> Option<String> {
        /// Finds the first `as NAME` binding of a condition.
        struct FindBind<'n>(&'n str, Option<Span>);
        impl Visit for FindBind<'_> {
            fn visit_expr(&mut self, e: &ast::Expr) {
                if let ExprKind::Compare(c) = &e.kind
                    && let Some(bind) = &c.bind
                    && bind.name == self.0
                    && self.1.is_none()
                {
                    self.1 = Some(bind.span);
                }
                walk::walk_expr(self, e);
            }
        }
        for &(unit, item) in &self.loaded.rule_order {
            let Some(ast::Item::Rule(rule)) = self.loaded.units[unit].ast.items.get(item) else {
                continue;
            };
            let Some(when) = &rule.when else {
                continue;
            };
            let mut find = FindBind(name, None);
            find.visit_expr(when);
            if let Some(span) = find.1 {
                let u = &self.loaded.units[unit];
                return Some(format!(
                    "`{name}` is bound by `matches … as {name}` in rule `{}` ({}:{}), and is visible only in that rule's `then` actions",
                    rule.name.name,
                    u.name,
                    u.line_of(span.start)
                ));
            }
        }
        None
    }

    fn field(
        &mut self,
        cx: Ctx,
        whole: &ast::Expr,
        base: &ast::Expr,
        member: &Ident,
    ) -> Option<Typed> {
        if member.name == "raw"
            && let ExprKind::Call(name, args) = &base.kind
            && name.name == "header"
            && !self.is_user_fn(cx.unit, "header")
        {
            let (e, _) = self.header_call(cx, base.span, args)?;
            if let Expr::Header { name, .. } = e {
                return Some((Expr::Header { name, raw: true }, Type::list(Type::String)));
            }
            return None;
        }
        if let ExprKind::Name(root) = &base.kind
            && !self.is_local(&root.name)
            && let Some(info) = self.classifier_named(cx, base)
        {
            return self.classifier_field(cx, &info, member);
        }
        if let Some(path) = path_of(whole) {
            let root = &path[0].name;
            let declared = match self.scopes.resolve(cx.unit, root) {
                Resolution::Found(d) => {
                    matches!(d.kind, DeclKind::Let | DeclKind::List | DeclKind::Map)
                }
                Resolution::Ambiguous(..) => true,
                Resolution::NotFound => false,
            };
            if !self.is_local(root) && !declared {
                return self.field_path(cx, &path, whole.span);
            }
        }
        if let ExprKind::Field(inner, ptype) = &base.kind
            && AUTH_RESULT_PROPERTIES
                .iter()
                .any(|(n, _)| n.split('.').next() == Some(ptype.name.as_str()))
        {
            return self.dotted_member(cx, inner, ptype, member);
        }
        let typed = self.expr(cx, base)?;
        self.member(cx, typed, member)
    }

    /// `base.name(args)`: only classifiers have member functions
    /// (`spam.probability("ham")`).
    fn method(
        &mut self,
        cx: Ctx,
        base: &ast::Expr,
        member: &Ident,
        args: &[ast::Expr],
    ) -> Option<Typed> {
        if let ExprKind::Name(root) = &base.kind
            && !self.is_local(&root.name)
            && let Some(info) = self.classifier_named(cx, base)
        {
            return self.classifier_method(cx, &info, member, args);
        }
        let (_, t) = self.expr(cx, base)?;
        self.error(
            codes::UNKNOWN_MEMBER,
            cx.unit,
            member.span,
            format!("a {t} has no member function `{}`", member.name),
        )
        .set_label("not a function")
        .set_hint("only classifiers have one: `NAME.probability(\"class\")`");
        None
    }

    /// `r.header.from`: on an authentication result, a property named
    /// `ptype.property` is one member; on anything else, two members.
    fn dotted_member(
        &mut self,
        cx: Ctx,
        inner: &ast::Expr,
        ptype: &Ident,
        member: &Ident,
    ) -> Option<Typed> {
        let typed = self.expr(cx, inner)?;
        let item = match &typed.1 {
            Type::List(t) => &**t,
            t => t,
        };
        if *item == Type::AuthResult {
            let joined = Ident {
                name: format!("{}.{}", ptype.name, member.name),
                span: ptype.span.to(member.span),
            };
            return self.member(cx, typed, &joined);
        }
        let typed = self.member(cx, typed, ptype)?;
        self.member(cx, typed, member)
    }

    /// `.member` on an address, attachment or time, or projected over a list of them.
    fn member(&mut self, cx: Ctx, (e, t): Typed, member: &Ident) -> Option<Typed> {
        let (inner, is_list) = match &t {
            Type::List(inner) => (&**inner, true),
            other => (other, false),
        };
        let members = weir_stdlib::registry::members(inner);
        if let Some((name, mty, _)) = members.iter().find(|(n, _, _)| *n == member.name) {
            let ty = if is_list {
                Type::list(mty.clone())
            } else {
                mty.clone()
            };
            return Some((Expr::Member(Box::new(e), name), ty));
        }
        let hint = hints::did_you_mean(&member.name, members.iter().map(|(n, _, _)| *n));
        let hint = hint.or_else(|| {
            (!members.is_empty()).then(|| {
                format!(
                    "the members of {inner} are {}",
                    members
                        .iter()
                        .map(|(n, _, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        });
        self.error(
            codes::UNKNOWN_MEMBER,
            cx.unit,
            member.span,
            format!("{t} has no member `{}`", member.name),
        )
        .set_label("unknown member")
        .maybe_hint(hint);
        None
    }

    /// The map a bare name refers to, if it names one in this file.
    fn map_named(&mut self, cx: Ctx, e: &ast::Expr) -> Option<&crate::load::MapValue> {
        let ExprKind::Name(id) = &e.kind else {
            return None;
        };
        if self.is_local(&id.name) {
            return None;
        }
        let Resolution::Found(decl) = self.scopes.resolve(cx.unit, &id.name) else {
            return None;
        };
        if decl.kind != DeclKind::Map {
            return None;
        }
        self.used.insert(decl.id);
        self.loaded.maps.get(&(decl.id.unit, decl.id.item))
    }

    /// `MAP[key]`: the value, or `""` (keys compare case-insensitively).
    fn map_lookup(&mut self, cx: Ctx, pairs: Value, index: &ast::Expr) -> Option<Typed> {
        let typed = self.expr(cx, index)?;
        let key = self.coerce(cx.unit, index.span, typed, &Type::String, "a string key")?;
        Some((
            Expr::Builtin {
                imp: crate::load::map_get,
                args: vec![Expr::Const(pairs), key],
            },
            Type::String,
        ))
    }

    fn index(&mut self, cx: Ctx, base: &ast::Expr, index: &ast::Expr) -> Option<Typed> {
        if let ExprKind::Name(id) = &base.kind
            && !self.is_local(&id.name)
            && matches!(self.scopes.resolve(cx.unit, &id.name), Resolution::Found(d) if d.kind == DeclKind::Map)
        {
            // A map whose file did not load has been reported already.
            let pairs = self.map_named(cx, base)?.pairs.clone();
            return self.map_lookup(cx, pairs, index);
        }
        let (b, bt) = self.expr(cx, base)?;
        if bt == Type::Captures
            && let ExprKind::Str(_) = &index.kind
        {
            let group = self.capture_by_name(cx, &b, index)?;
            return Some((
                Expr::Index(
                    Box::new(b),
                    Box::new(Expr::Const(Value::Int(group))),
                    Value::str(""),
                ),
                Type::String,
            ));
        }
        let (i, it) = self.expr(cx, index)?;
        if it != Type::Int {
            self.mismatch(cx.unit, index.span, "an int index", &it);
            return None;
        }
        match bt {
            Type::Captures => {
                let groups = match &b {
                    Expr::Captures(slot) => self
                        .visible
                        .iter()
                        .find(|x| x.slot == *slot)
                        .map_or(usize::MAX, |x| x.groups),
                    _ => usize::MAX,
                };
                if let Expr::Const(Value::Int(n)) = i
                    && (n < 0 || n as u64 >= groups as u64)
                {
                    let groups_text = groups.saturating_sub(1);
                    self.error(
                        codes::CAPTURE_INDEX,
                        cx.unit,
                        index.span,
                        format!("capture index {n} is out of range: the regex has {groups_text} group{}", if groups_text == 1 { "" } else { "s" }),
                    )
                    .set_label("no such group")
                    .set_hint(format!("valid indexes are 0 (the whole match) to {groups_text}"));
                    return None;
                }
                Some((
                    Expr::Index(Box::new(b), Box::new(i), Value::str("")),
                    Type::String,
                ))
            }
            Type::List(item) => {
                let empty = empty_value(&item);
                Some((Expr::Index(Box::new(b), Box::new(i), empty), *item))
            }
            other => {
                self.mismatch(cx.unit, base.span, "a list or captures to index", &other);
                None
            }
        }
    }

    /// The index of the group `m["NAME"]` names; an error listing the
    /// regex's group names when it has no such group.
    fn capture_by_name(&mut self, cx: Ctx, captures: &Expr, index: &ast::Expr) -> Option<i64> {
        let ExprKind::Str(lit) = &index.kind else {
            return None;
        };
        let Some(wanted) = lit.as_plain() else {
            self.error(
                codes::CAPTURE_INDEX,
                cx.unit,
                index.span,
                "a capture group name must be written as plain text",
            )
            .set_label("interpolated");
            return None;
        };
        let binding = match captures {
            Expr::Captures(slot) => self.visible.iter().find(|x| x.slot == *slot).cloned(),
            _ => None,
        };
        let names = binding.and_then(|b| b.names).unwrap_or_default();
        if let Some((_, group)) = names.iter().find(|(n, _)| *n == wanted) {
            return i64::try_from(*group).ok();
        }
        let hint = if names.is_empty() {
            "the regex has no named groups: name one with `(?P<name>...)`, or use its number (`m[1]`)".to_string()
        } else {
            let known: Vec<String> = names.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            format!("the regex's named groups are {}", known.join(", "))
        };
        self.error(
            codes::CAPTURE_INDEX,
            cx.unit,
            index.span,
            format!("the regex has no group named \"{wanted}\""),
        )
        .set_label("no such group")
        .set_hint(hint);
        None
    }

    fn is_user_fn(&self, unit: usize, name: &str) -> bool {
        matches!(self.scopes.resolve(unit, name), Resolution::Found(d) if d.kind == DeclKind::Fn)
    }

    fn call(&mut self, cx: Ctx, span: Span, name: &Ident, args: &[ast::Expr]) -> Option<Typed> {
        match self.scopes.resolve(cx.unit, &name.name) {
            Resolution::Found(decl) if decl.kind == DeclKind::Fn => {
                let decl = decl.clone();
                return self.user_call(cx, span, name, &decl, args);
            }
            Resolution::Found(decl) => {
                let kind = decl.kind;
                self.error(
                    codes::NOT_A_VALUE,
                    cx.unit,
                    name.span,
                    format!("`{}` is a {}, not a function", name.name, kind.word()),
                )
                .set_label("cannot be called");
                return None;
            }
            Resolution::Ambiguous(a, b) => {
                let (a, b) = (a.clone(), b.clone());
                self.ambiguous(cx.unit, name, &a, &b);
                return None;
            }
            Resolution::NotFound => {}
        }
        if matches!(name.name.as_str(), "some" | "every") {
            return self.quantified(cx, span, name, args);
        }
        let Some(def) = self.reg.function(&name.name) else {
            self.unknown_function(cx, name);
            return None;
        };
        // `time("…")` is a literal (folded here), so a `let` may hold one.
        if cx.place == Place::Let && def.name != "time" {
            self.call_in_let(cx, span);
            return None;
        }
        match def.imp {
            FunctionImpl::Header => self.header_call(cx, span, args),
            FunctionImpl::Matched => self.matched_call(cx, span, args),
            FunctionImpl::Rate | FunctionImpl::Duplicate => self.rate_call(cx, span, def, args),
            FunctionImpl::Pure(imp) => self.pure_call(cx, span, def, imp, args),
            FunctionImpl::OverHeader { header, imp } => {
                let (lowered, ty) = self.pure_call(cx, span, def, imp, args)?;
                let Expr::Builtin { imp, mut args } = lowered else {
                    return None;
                };
                // The header's occurrences as written come first.
                let occurrences = Expr::Header {
                    name: Box::new(Expr::Const(Value::str(header))),
                    raw: true,
                };
                args.insert(0, occurrences);
                Some((Expr::Builtin { imp, args }, ty))
            }
        }
    }

    /// A call of a `fn` of the ruleset.
    fn user_call(
        &mut self,
        cx: Ctx,
        span: Span,
        name: &Ident,
        decl: &Decl,
        args: &[ast::Expr],
    ) -> Option<Typed> {
        self.used.insert(decl.id);
        let lowered: Vec<Option<Typed>> = args.iter().map(|a| self.expr(cx, a)).collect();
        let sig = self.fn_sig(decl, cx.unit, name.span)?;
        if self.lambda.is_some() && self.function_quantifies(sig.index) {
            self.nested_lambda(cx, span, &name.name);
            return None;
        }
        if cx.place == Place::Let {
            self.call_in_let(cx, span);
            return None;
        }
        if args.len() != sig.params.len() {
            self.arg_count(cx.unit, span, &name.name, sig.params.len(), args.len());
            return None;
        }
        let mut out = Vec::new();
        for ((arg, typed), want) in args.iter().zip(lowered).zip(&sig.params) {
            out.push(self.coerce(cx.unit, arg.span, typed?, want, &want.to_string())?);
        }
        Some((
            Expr::CallUser {
                func: sig.index,
                args: out,
            },
            sig.ret,
        ))
    }

    /// A `let` calls a function: constants cannot.
    fn call_in_let(&mut self, cx: Ctx, span: Span) {
        self.error(
            codes::NOT_CONSTANT,
            cx.unit,
            span,
            "a `let` cannot call a function",
        )
        .set_hint("use a `fn` for a computed value");
    }

    /// A call of a name that is neither a builtin nor a `fn` in scope.
    fn unknown_function(&mut self, cx: Ctx, name: &Ident) {
        let mut candidates: Vec<String> = self
            .reg
            .functions
            .iter()
            .map(|f| f.name.to_string())
            .collect();
        candidates.extend(
            self.scopes
                .visible(cx.unit)
                .iter()
                .filter(|d| d.kind == DeclKind::Fn)
                .map(|d| d.name.clone()),
        );
        let hint = hints::did_you_mean(&name.name, candidates.iter().map(String::as_str));
        self.error(
            codes::UNKNOWN_FUNCTION,
            cx.unit,
            name.span,
            format!("unknown function `{}`", name.name),
        )
        .set_label("not a builtin or a `fn` in scope")
        .maybe_hint(hint);
    }

    /// `rate(KEY, WINDOW)` and `duplicate(KEY, WINDOW)`: a string key and a
    /// duration window.
    fn rate_call(
        &mut self,
        cx: Ctx,
        span: Span,
        def: &FunctionDef,
        args: &[ast::Expr],
    ) -> Option<Typed> {
        if args.len() != 2 {
            self.arg_count(cx.unit, span, def.name, 2, args.len());
            return None;
        }
        let key = self.expr(cx, &args[0]);
        let window = self.expr(cx, &args[1]);
        let key = self.coerce(cx.unit, args[0].span, key?, &Type::String, "a string key")?;
        let window = self.coerce(
            cx.unit,
            args[1].span,
            window?,
            &Type::Duration,
            "a duration window (`10m`)",
        )?;
        let (key, window) = (Box::new(key), Box::new(window));
        let lowered = if matches!(def.imp, FunctionImpl::Rate) {
            Expr::Rate { key, window }
        } else {
            Expr::Duplicate { key, window }
        };
        Some((lowered, def.ret.clone()))
    }

    /// A builtin evaluated by its implementation in the registry.
    fn pure_call(
        &mut self,
        cx: Ctx,
        span: Span,
        def: &FunctionDef,
        imp: fn(&[Value]) -> Value,
        args: &[ast::Expr],
    ) -> Option<Typed> {
        if args.len() != def.params.len() {
            self.arg_count(cx.unit, span, def.name, def.params.len(), args.len());
            return None;
        }
        let lowered: Vec<Option<Typed>> = args.iter().map(|a| self.expr(cx, a)).collect();
        let mut out = Vec::new();
        for ((arg, typed), param) in args.iter().zip(lowered).zip(&def.params) {
            out.push(self.builtin_arg(cx, arg.span, typed?, param)?);
        }
        let spans: Vec<Span> = args.iter().map(|a| a.span).collect();
        let call = self.time_call(cx.unit, def.name, &spans, Expr::Builtin { imp, args: out })?;
        Some((call, def.ret.clone()))
    }

    /// One argument of a builtin, checked against its parameter.
    fn builtin_arg(
        &mut self,
        cx: Ctx,
        span: Span,
        typed: Typed,
        param: &ParamType,
    ) -> Option<Expr> {
        match param {
            ParamType::Exact(want) => self.coerce(cx.unit, span, typed, want, &want.to_string()),
            ParamType::AnyList => {
                if !matches!(typed.1, Type::List(_)) {
                    self.mismatch(cx.unit, span, "a list", &typed.1);
                    return None;
                }
                Some(typed.0)
            }
            ParamType::RuleName => {
                self.error(codes::TYPE_MISMATCH, cx.unit, span, "expected a rule name");
                None
            }
        }
    }

    pub(crate) fn arg_count(
        &mut self,
        unit: usize,
        span: Span,
        name: &str,
        want: usize,
        got: usize,
    ) {
        self.error(
            codes::ARGUMENT_COUNT,
            unit,
            span,
            format!(
                "`{name}` takes {want} argument{}, but {got} {} given",
                if want == 1 { "" } else { "s" },
                if got == 1 { "was" } else { "were" }
            ),
        )
        .set_label("wrong number of arguments");
    }

    fn header_call(&mut self, cx: Ctx, span: Span, args: &[ast::Expr]) -> Option<Typed> {
        if args.len() != 1 {
            self.arg_count(cx.unit, span, "header", 1, args.len());
            return None;
        }
        let typed = self.expr(cx, &args[0])?;
        let name = self.coerce(
            cx.unit,
            args[0].span,
            typed,
            &Type::String,
            "a header name (string)",
        )?;
        Some((
            Expr::Header {
                name: Box::new(name),
                raw: false,
            },
            Type::list(Type::String),
        ))
    }

    fn matched_call(&mut self, cx: Ctx, span: Span, args: &[ast::Expr]) -> Option<Typed> {
        let [arg] = args else {
            self.arg_count(cx.unit, span, "matched", 1, args.len());
            return None;
        };
        let ExprKind::Name(id) = &arg.kind else {
            self.error(
                codes::MATCHED_ORDER,
                cx.unit,
                arg.span,
                "`matched` takes the name of a rule",
            )
            .set_label("not a rule name");
            return None;
        };
        let current = match cx.place {
            Place::When(r) | Place::Actions(r) => r,
            _ => {
                self.error(
                    codes::MATCHED_ORDER,
                    cx.unit,
                    span,
                    "`matched()` can only be used in a rule",
                )
                .set_label("outside a rule")
                .set_hint(
                    "whether a rule held depends on the rule asking; test it in the rule itself",
                );
                return None;
            }
        };
        let decl = self.rule_named(cx, id)?;
        self.used.insert(decl.id);
        let target = *self.rule_ids.get(&decl.id)?;
        if self.rule_keys[target] >= self.rule_keys[current] {
            self.matched_later(cx, id, &decl, target, current);
            return None;
        }
        Some((Expr::Matched(target), Type::Bool))
    }

    /// The rule `matched(NAME)` names, as the file sees it.
    fn rule_named(&mut self, cx: Ctx, id: &Ident) -> Option<Decl> {
        match self.scopes.resolve(cx.unit, &id.name) {
            Resolution::Found(d) if d.kind == DeclKind::Rule => Some(d),
            Resolution::Found(d) => {
                self.error(
                    codes::MATCHED_ORDER,
                    cx.unit,
                    id.span,
                    format!("`{}` is a {}, not a rule", id.name, d.kind.word()),
                )
                .set_label("not a rule");
                None
            }
            Resolution::Ambiguous(a, b) => {
                self.ambiguous(cx.unit, id, &a, &b);
                None
            }
            Resolution::NotFound => {
                self.unknown_rule(cx, id);
                None
            }
        }
    }

    /// `matched(NAME)` where no rule NAME is in scope.
    fn unknown_rule(&mut self, cx: Ctx, id: &Ident) {
        let hint = match self.scopes.rule_anywhere(&id.name) {
            Some(d) => Some(format!(
                "the rule is declared in `{}`, which this file does not import",
                self.file(d.id.unit)
            )),
            None => {
                let rules: Vec<String> = self
                    .scopes
                    .visible(cx.unit)
                    .iter()
                    .filter(|d| d.kind == DeclKind::Rule)
                    .map(|d| d.name.clone())
                    .collect();
                hints::did_you_mean(&id.name, rules.iter().map(String::as_str))
            }
        };
        self.error(
            codes::UNKNOWN_NAME,
            cx.unit,
            id.span,
            format!("unknown rule `{}`", id.name),
        )
        .set_label("no rule of this name in scope")
        .maybe_hint(hint);
    }

    /// `matched(NAME)` where NAME does not run before the current rule.
    fn matched_later(&mut self, cx: Ctx, id: &Ident, decl: &Decl, target: usize, current: usize) {
        let (tp, cp) = (self.rule_keys[target].0, self.rule_keys[current].0);
        let why = if target == current {
            "a rule cannot test whether it matched itself".to_string()
        } else if tp > cp {
            format!(
                "`{}` has priority {tp}, so it runs after this rule (priority {cp})",
                id.name
            )
        } else {
            format!(
                "`{}` has the same priority ({tp}) and is loaded after this rule",
                id.name
            )
        };
        let file = self.file(decl.id.unit);
        self.error(
            codes::MATCHED_ORDER,
            cx.unit,
            id.span,
            format!(
                "`matched({})` refers to a rule that does not run earlier",
                id.name
            ),
        )
        .set_label("runs later")
        .add_related(file, decl.span, "the rule is declared here")
        .set_hint(format!("{why}; give it a lower priority number"));
    }

    fn arith(&mut self, cx: Ctx, add: bool, a: &ast::Expr, b: &ast::Expr) -> Option<Typed> {
        let ta = self.expr(cx, a);
        let tb = self.expr(cx, b);
        let ((ea, ta), (eb, tb)) = (ta?, tb?);
        use Type as T;
        let (op, ty) = match (add, &ta, &tb) {
            (true, T::Int, T::Int) => (Arith::AddInt, T::Int),
            (true, x, y) if is_num(x) && is_num(y) => (Arith::AddFloat, T::Float),
            (true, T::String, T::String) => (Arith::Concat, T::String),
            (true, T::Time, T::Duration) => (Arith::TimePlus, T::Time),
            (true, T::Duration, T::Duration) => (Arith::DurAdd, T::Duration),
            (false, T::Int, T::Int) => (Arith::SubInt, T::Int),
            (false, x, y) if is_num(x) && is_num(y) => (Arith::SubFloat, T::Float),
            (false, T::Time, T::Time) => (Arith::TimeDiff, T::Duration),
            (false, T::Time, T::Duration) => (Arith::TimeMinus, T::Time),
            (false, T::Duration, T::Duration) => (Arith::DurSub, T::Duration),
            _ => {
                let (word, expected) = if add {
                    ("add", "numbers or strings on both sides of `+`")
                } else {
                    (
                        "subtract",
                        "numbers, times or durations on both sides of `-`",
                    )
                };
                self.error(
                    codes::TYPE_MISMATCH,
                    cx.unit,
                    a.span.to(b.span),
                    format!("cannot {word} {ta} and {tb}: expected {expected}"),
                )
                .set_label(format!("{ta} and {tb}"));
                return None;
            }
        };
        Some((Expr::Arith(op, Box::new(ea), Box::new(eb)), ty))
    }

    fn compare(&mut self, cx: Ctx, c: &ast::Compare) -> Option<Typed> {
        let lhs = self.expr(cx, &c.lhs);
        let rhs = if matches!(c.op, CompareOp::In | CompareOp::Under)
            && let ExprKind::Name(id) = &c.rhs.kind
            && !self.is_local(&id.name)
            && matches!(self.scopes.resolve(cx.unit, &id.name), Resolution::Found(d) if d.kind == DeclKind::Map)
        {
            // `key in MAP` tests the map's keys as `in` tests a list.
            self.map_named(cx, &c.rhs)
                .map(|m| (Expr::Const(m.keys.clone()), Type::list(Type::String)))
        } else {
            self.expr(cx, &c.rhs)
        };
        let ((le, lt), (re, rt)) = (lhs?, rhs?);
        let (op, negated) = match c.op {
            CompareOp::Eq => (CmpOp::Eq, false),
            CompareOp::Ne => (CmpOp::Eq, true),
            CompareOp::Lt => (CmpOp::Lt, false),
            CompareOp::Le => (CmpOp::Le, false),
            CompareOp::Gt => (CmpOp::Gt, false),
            CompareOp::Ge => (CmpOp::Ge, false),
            CompareOp::Contains => (CmpOp::Contains, false),
            CompareOp::StartsWith => (CmpOp::StartsWith, false),
            CompareOp::EndsWith => (CmpOp::EndsWith, false),
            CompareOp::Matches => (CmpOp::Matches, false),
            CompareOp::In => (CmpOp::In, false),
            CompareOp::Under => (CmpOp::Under, false),
        };
        if !self.comparable(cx, c, op, &lt, &rt)? {
            self.incomparable(cx, c, op, &lt, &rt);
            return None;
        }
        let bind = match &c.bind {
            None => None,
            Some(name) => Some(self.bind(cx, name, &re)?),
        };
        let source = self.text(cx.unit, c.lhs.span).to_string();
        let cmp = ir::Compare {
            op,
            negated,
            all: c.all,
            lhs: le,
            rhs: re,
            bind,
            source,
        };
        Some((Expr::Compare(Box::new(cmp)), Type::Bool))
    }

    /// Whether `op` compares these types (`all`/`any` sides compare their
    /// items); `None` after an error about the right side's shape.
    fn comparable(
        &mut self,
        cx: Ctx,
        c: &ast::Compare,
        op: CmpOp,
        lt: &Type,
        rt: &Type,
    ) -> Option<bool> {
        let l = elem(lt);
        let word = c.op.as_str();
        Some(match op {
            CmpOp::Eq => {
                let r = elem(rt);
                (is_text(l) && is_text(r))
                    || (is_num(l) && is_num(r))
                    || (l == r
                        && !matches!(
                            l,
                            Type::Regex | Type::Captures | Type::AuthResult | Type::List(_)
                        ))
            }
            CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => {
                if matches!(rt, Type::List(_)) {
                    let expected = format!("a single value on the right of `{word}`");
                    self.mismatch(cx.unit, c.rhs.span, &expected, rt);
                    return None;
                }
                (is_num(l) && is_num(rt)) || (l == rt && matches!(l, Type::Time | Type::Duration))
            }
            CmpOp::Contains | CmpOp::StartsWith | CmpOp::EndsWith => {
                is_text(l) && is_text(elem(rt))
            }
            CmpOp::Matches => {
                if *rt != Type::Regex {
                    let expected = "a regex (`/.../`) or a `let` bound to one";
                    self.mismatch(cx.unit, c.rhs.span, expected, rt);
                    return None;
                }
                is_text(l)
            }
            CmpOp::Under => {
                if *l == Type::Address {
                    self.mismatch(
                        cx.unit,
                        c.lhs.span,
                        "a domain (a string; for an address, its `.domain`)",
                        lt,
                    );
                    return None;
                }
                *l == Type::String && is_text(elem(rt))
            }
            CmpOp::In => {
                let Type::List(r) = rt else {
                    self.mismatch(cx.unit, c.rhs.span, "a list on the right of `in`", rt);
                    return None;
                };
                (is_text(l) && is_text(r))
                    || (*l == Type::Ip && matches!(**r, Type::Ip | Type::Cidr))
                    || (is_num(l) && is_num(r))
                    || (*l == **r && !matches!(l, Type::List(_)))
            }
        })
    }

    /// Reports a comparison of types `op` cannot compare.
    fn incomparable(&mut self, cx: Ctx, c: &ast::Compare, op: CmpOp, lt: &Type, rt: &Type) {
        let (l, r) = (elem(lt), elem(rt));
        let word = c.op.as_str();
        let expected = match op {
            CmpOp::Contains | CmpOp::StartsWith | CmpOp::EndsWith | CmpOp::Matches => {
                "strings on both sides".to_string()
            }
            CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => {
                "numbers, times or durations on both sides".to_string()
            }
            CmpOp::In => format!("a list of {l} (or of CIDRs for an ip)"),
            CmpOp::Under => {
                "a domain (string) on the left and a list of domains on the right".to_string()
            }
            CmpOp::Eq => format!("a value comparable with {l}"),
        };
        self.error(
            codes::TYPE_MISMATCH,
            cx.unit,
            c.lhs.span.to(c.rhs.span),
            format!("cannot compare {lt} `{word}` {rt}: expected {expected}"),
        )
        .set_label(format!("{l} `{word}` {r}"));
    }

    /// Records a `matches … as NAME` binding; its slot.
    fn bind(&mut self, cx: Ctx, name: &Ident, regex: &Expr) -> Option<usize> {
        if !matches!(cx.place, Place::When(_)) {
            self.error(
                codes::CAPTURE_PLACE,
                cx.unit,
                name.span,
                "`as` can bind captures only in a rule's `when` condition",
            )
            .set_label("binding not allowed here");
            return None;
        }
        if cx.neg {
            self.error(codes::CAPTURE_UNDER_NOT_OR, cx.unit, name.span, format!("`as {}` cannot bind under `not` or `or`", name.name))
                .set_label("captures may not exist here")
                .set_hint("the captures are used in `then`; bind them where the match must have happened (joined only by `and`)");
            return None;
        }
        if self.binds.iter().any(|b| b.name == name.name) {
            self.error(
                codes::DUPLICATE_NAME,
                cx.unit,
                name.span,
                format!("`{}` is bound twice in this condition", name.name),
            );
            return None;
        }
        let (groups, names) = match regex {
            Expr::Const(Value::Regex(r)) => (r.captures_len(), Some(r.capture_names())),
            _ => (usize::MAX, None),
        };
        let slot = self.binds.len();
        self.binds.push(Binding {
            name: name.name.clone(),
            slot,
            groups,
            names,
        });
        Some(slot)
    }

    /// Starts checking a rule: no captures bound yet.
    pub(crate) fn begin_rule(&mut self) {
        self.binds.clear();
        self.visible.clear();
        self.params.clear();
    }

    /// Makes the captures bound by the `when` visible (for `then`), or hides them.
    pub(crate) fn show_captures(&mut self, show: bool) {
        self.visible = if show { self.binds.clone() } else { Vec::new() };
    }

    /// How many capture slots the rule being checked uses.
    pub(crate) fn capture_slots(&self) -> usize {
        self.binds.len()
    }
}
