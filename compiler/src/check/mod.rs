//! The checker: resolves names, types every expression and action, and
//! lowers them to the [`ir`](crate::ir). Errors are collected, never
//! thrown: a failed sub-expression yields `None` and its parents stay
//! quiet, so one mistake gives one diagnostic.

mod actions;
mod classifiers;
mod expr;
mod lambda;
mod literals;
mod regexes;
mod test_blocks;
mod test_world;
mod times;

// The checker's maps are keyed by declaration ids and short strings, looked
// up for every name checked: foldhash, much cheaper than SipHash there.
use foldhash::{HashMap, HashSet};

use weir_grammar::Diagnostic;
use weir_grammar::ast::{self, Item, Span};
use weir_stdlib::registry::Registry;
use weir_stdlib::{Type, Value};

use crate::codes;
use crate::ir;
use crate::load::Loaded;
use crate::names::{Decl, DeclId, DeclKind, Scopes};

pub use classifiers::ClassifierInfo;
pub(crate) use regexes::RegexLiterals;
pub(crate) use test_blocks::check_tests;

/// The memo of a declaration checked on demand.
#[derive(Debug, Clone)]
enum Slot<T> {
    InProgress,
    Done(Option<T>),
}

/// What the checker knows of a user `fn` once checked.
#[derive(Debug, Clone)]
pub(crate) struct FnSig {
    pub params: Vec<Type>,
    pub ret: Type,
    pub index: usize,
}

/// Where an expression is written; decides what it may refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// A rule's `when` condition (rule id).
    When(usize),
    /// A rule's actions (rule id).
    Actions(usize),
    /// A `fn` body.
    Fn,
    /// A `let` value.
    Let,
    /// A template's text.
    Template,
    /// A `test` block.
    Test,
}

/// The context of one expression.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    /// The file it is written in.
    pub unit: usize,
    pub place: Place,
    /// Under `not` or `or` (where `as` may not bind).
    pub neg: bool,
}

/// A capture binding of the rule being checked.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub name: String,
    pub slot: usize,
    /// The regex's `captures_len()` (groups plus the whole match).
    pub groups: usize,
    /// The regex's named groups with their indexes (`None` when the regex
    /// is not known at compile time).
    pub names: Option<Vec<(String, usize)>>,
}

/// The checker's state across the whole ruleset.
pub(crate) struct Checker<'a> {
    pub loaded: &'a Loaded,
    pub scopes: &'a Scopes,
    pub reg: &'static Registry,
    pub diags: Vec<Diagnostic>,
    /// Declarations something refers to.
    pub used: HashSet<DeclId>,
    lets: HashMap<DeclId, Slot<(Value, Type)>>,
    fns: HashMap<DeclId, Slot<FnSig>>,
    fn_stack: Vec<String>,
    pub functions: Vec<ir::Function>,
    templates: HashMap<DeclId, Option<usize>>,
    pub templates_ir: Vec<ir::Template>,
    /// The regex literals checked so far, by pattern and flags: one
    /// literal written several times is one regex, built at most once.
    regexes: HashMap<(String, String), std::sync::Arc<weir_stdlib::Regex>>,
    /// Every regex literal of the ruleset, parsed on other threads while
    /// this one checks (`regexes.rs`).
    literals: &'a RegexLiterals,
    /// Rule id (load order) of each rule declaration.
    pub rule_ids: HashMap<DeclId, usize>,
    /// (priority, load index) of each rule id: evaluation order key.
    pub rule_keys: Vec<(i64, usize)>,
    /// Parameters of the `fn` being checked.
    params: Vec<(String, Type)>,
    /// Captures visible here (a rule's `then` actions).
    visible: Vec<Binding>,
    /// Captures bound so far by the rule being checked.
    binds: Vec<Binding>,
    /// The element name and type of the `some`/`every` lambda being checked.
    lambda: Option<(String, Type)>,
    /// The type of every expression checked (for the language server).
    pub types: Vec<(usize, Span, Type)>,
}

impl<'a> Checker<'a> {
    /// The distinct regex literals checked, for the ruleset to keep.
    pub fn take_regexes(&mut self) -> Vec<std::sync::Arc<weir_stdlib::Regex>> {
        std::mem::take(&mut self.regexes).into_values().collect()
    }

    pub(crate) fn new(
        loaded: &'a Loaded,
        scopes: &'a Scopes,
        literals: &'a RegexLiterals,
    ) -> Checker<'a> {
        let mut rule_ids =
            HashMap::with_capacity_and_hasher(loaded.rule_order.len(), Default::default());
        let mut rule_keys = Vec::new();
        for (id, &(unit, item)) in loaded.rule_order.iter().enumerate() {
            rule_ids.insert(DeclId { unit, item }, id);
            let priority = match &loaded.units[unit].ast.items[item] {
                Item::Rule(r) => r.priority.map_or(100, |(p, _)| p),
                _ => 100,
            };
            rule_keys.push((priority, id));
        }
        Checker {
            loaded,
            scopes,
            reg: weir_stdlib::registry(),
            diags: Vec::new(),
            used: HashSet::default(),
            lets: HashMap::default(),
            fns: HashMap::default(),
            fn_stack: Vec::new(),
            functions: Vec::new(),
            templates: HashMap::default(),
            templates_ir: Vec::new(),
            regexes: HashMap::default(),
            literals,
            rule_ids,
            rule_keys,
            params: Vec::new(),
            visible: Vec::new(),
            binds: Vec::new(),
            lambda: None,
            types: Vec::new(),
        }
    }

    /// The name of a file, for diagnostics.
    pub(crate) fn file(&self, unit: usize) -> &'a str {
        &self.loaded.units[unit].name
    }

    /// The source text of a span.
    pub(crate) fn text(&self, unit: usize, span: Span) -> &'a str {
        self.loaded.units[unit]
            .source
            .get(span.start..span.end)
            .unwrap_or("")
    }

    /// Records an error.
    pub(crate) fn error(
        &mut self,
        code: &'static str,
        unit: usize,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let d = Diagnostic::error(code, message, self.file(unit), span);
        self.diags.push(d);
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    fn item(&self, id: DeclId) -> &'a Item {
        &self.loaded.units[id.unit].ast.items[id.item]
    }

    /// Checks every `let`, `fn` and template, used or not, so that their
    /// errors are reported.
    pub(crate) fn check_declarations(&mut self) {
        let mut decls: Vec<Decl> = self.scopes.all().collect();
        decls.sort_by_key(|d| d.id);
        for decl in decls {
            match decl.kind {
                DeclKind::Let => {
                    self.let_value(&decl, decl.id.unit, decl.span);
                }
                DeclKind::Fn => {
                    self.fn_sig(&decl, decl.id.unit, decl.span);
                }
                DeclKind::Template => {
                    self.template(&decl);
                }
                DeclKind::List | DeclKind::Map | DeclKind::Rule | DeclKind::Classifier => {}
            }
        }
    }

    /// The value and type of a `let`, computed once.
    pub(crate) fn let_value(
        &mut self,
        decl: &Decl,
        use_unit: usize,
        use_span: Span,
    ) -> Option<(Value, Type)> {
        match self.lets.get(&decl.id) {
            Some(Slot::Done(v)) => return v.clone(),
            Some(Slot::InProgress) => {
                self.error(
                    codes::NOT_CONSTANT,
                    use_unit,
                    use_span,
                    format!("`{}` is defined in terms of itself", decl.name),
                )
                .set_label("refers back to the constant being defined");
                return None;
            }
            None => {}
        }
        let Item::Let(l) = self.item(decl.id) else {
            return None;
        };
        self.lets.insert(decl.id, Slot::InProgress);
        let saved = (
            std::mem::take(&mut self.params),
            std::mem::take(&mut self.visible),
            self.lambda.take(),
        );
        let cx = Ctx {
            unit: decl.id.unit,
            place: Place::Let,
            neg: false,
        };
        let result = self.expr(cx, &l.value).and_then(|(e, ty)| match crate::eval::constant(&e) {
            Some(v) => Some((v, ty)),
            None => {
                self.error(codes::NOT_CONSTANT, decl.id.unit, l.value.span, format!("`{}` must be a compile-time constant", decl.name))
                    .set_label("reads the message or calls a function")
                    .set_hint("a `let` holds literals (strings, numbers, lists, regexes, CIDRs); use a `fn` for a computed value");
                None
            }
        });
        (self.params, self.visible, self.lambda) = saved;
        self.lets.insert(decl.id, Slot::Done(result.clone()));
        result
    }

    /// The signature of a user `fn`, checked once.
    pub(crate) fn fn_sig(&mut self, decl: &Decl, use_unit: usize, use_span: Span) -> Option<FnSig> {
        match self.fns.get(&decl.id) {
            Some(Slot::Done(v)) => return v.clone(),
            Some(Slot::InProgress) => {
                self.recursion(decl, use_unit, use_span);
                return None;
            }
            None => {}
        }
        let Item::Fn(f) = self.item(decl.id) else {
            return None;
        };
        self.fns.insert(decl.id, Slot::InProgress);
        self.fn_stack.push(decl.name.clone());
        let unit = decl.id.unit;
        let (params, ok) = self.fn_params(unit, &f.params);
        let saved = (
            std::mem::replace(&mut self.params, params.clone()),
            std::mem::take(&mut self.visible),
            self.lambda.take(),
        );
        let cx = Ctx {
            unit,
            place: Place::Fn,
            neg: false,
        };
        // With a parameter type unknown, the body's errors would only echo it.
        let body = if ok { self.expr(cx, &f.body) } else { None };
        (self.params, self.visible, self.lambda) = saved;
        self.fn_stack.pop();
        let sig = match body {
            Some((body, ret)) if ok => {
                let index = self.functions.len();
                self.functions.push(ir::Function { body });
                Some(FnSig {
                    params: params.into_iter().map(|(_, t)| t).collect(),
                    ret,
                    index,
                })
            }
            _ => None,
        };
        self.fns.insert(decl.id, Slot::Done(sig.clone()));
        sig
    }

    /// The error for a call that would make `decl` recurse.
    fn recursion(&mut self, decl: &Decl, use_unit: usize, use_span: Span) {
        let start = self
            .fn_stack
            .iter()
            .position(|n| *n == decl.name)
            .unwrap_or(0);
        let mut cycle: Vec<String> = self.fn_stack[start..].to_vec();
        cycle.push(decl.name.clone());
        let msg = if cycle.len() <= 2 {
            format!("function `{}` calls itself", decl.name)
        } else {
            format!(
                "functions call each other in a cycle: {}",
                cycle.join(" -> ")
            )
        };
        let d = self.error(codes::RECURSION, use_unit, use_span, msg);
        d.label = Some("recursive call".into());
        d.hint = Some("functions cannot recurse, so that evaluation always terminates".into());
    }

    /// A `fn`'s parameters with their types (`string` where a type is
    /// unknown), and whether all were well declared.
    fn fn_params(&mut self, unit: usize, declared: &[ast::Param]) -> (Vec<(String, Type)>, bool) {
        let mut params: Vec<(String, Type)> = Vec::new();
        let mut ok = true;
        for p in declared {
            if params.iter().any(|(n, _)| *n == p.name.name) {
                self.error(
                    codes::DUPLICATE_PARAM,
                    unit,
                    p.name.span,
                    format!("parameter `{}` is declared twice", p.name.name),
                );
                ok = false;
            }
            match self.type_expr(unit, &p.ty) {
                Some(t) => params.push((p.name.name.clone(), t)),
                None => {
                    ok = false;
                    params.push((p.name.name.clone(), Type::String));
                }
            }
        }
        (params, ok)
    }

    fn type_expr(&mut self, unit: usize, t: &ast::TypeExpr) -> Option<Type> {
        if t.name.name == "list" {
            if let [arg] = t.args.as_slice() {
                return self.type_expr(unit, arg).map(Type::list);
            }
            self.error(
                codes::UNKNOWN_TYPE,
                unit,
                t.span,
                "`list` takes one type argument: `list<string>`",
            );
            return None;
        }
        match Type::from_name(&t.name.name) {
            Some(ty) if t.args.is_empty() => Some(ty),
            _ => {
                let known = [
                    "bool",
                    "int",
                    "float",
                    "string",
                    "address",
                    "ip",
                    "cidr",
                    "time",
                    "duration",
                    "regex",
                    "attachment",
                    "list",
                ];
                let hint = crate::hints::did_you_mean(&t.name.name, known);
                let d = self.error(
                    codes::UNKNOWN_TYPE,
                    unit,
                    t.span,
                    format!("unknown type `{}`", self.text(unit, t.span)),
                );
                d.label = Some("not a type".into());
                d.hint = hint.or_else(|| Some(format!("the types are {}", known.join(", "))));
                None
            }
        }
    }

    /// The lowered template of a declaration, checked once.
    pub(crate) fn template(&mut self, decl: &Decl) -> Option<usize> {
        if let Some(done) = self.templates.get(&decl.id) {
            return *done;
        }
        self.templates.insert(decl.id, None);
        let Item::Template(t) = self.item(decl.id) else {
            return None;
        };
        let unit = decl.id.unit;
        let saved = (
            std::mem::take(&mut self.params),
            std::mem::take(&mut self.visible),
            self.lambda.take(),
        );
        let cx = Ctx {
            unit,
            place: Place::Template,
            neg: false,
        };
        let mut lowered = ir::Template {
            name: decl.name.clone(),
            subject: None,
            body: None,
            from: None,
            addresses: None,
        };
        let mut ok = true;
        for field in &t.fields {
            let value = self.str_lit(cx, &field.value);
            ok &= value.is_some();
            match field.key.name.as_str() {
                "subject" => lowered.subject = value,
                "body" => lowered.body = value,
                "from" => lowered.from = value,
                "addresses" => lowered.addresses = value,
                other => {
                    let hint =
                        crate::hints::did_you_mean(other, ["subject", "body", "from", "addresses"]);
                    let d = self.error(
                        codes::TEMPLATE_FIELD,
                        unit,
                        field.key.span,
                        format!("a template has no field `{other}`"),
                    );
                    d.label = Some("unknown template field".into());
                    d.hint = hint.or_else(|| {
                        Some("a template has only `subject`, `body`, `from` and `addresses`".into())
                    });
                    ok = false;
                }
            }
        }
        (self.params, self.visible, self.lambda) = saved;
        let index = ok.then(|| {
            self.templates_ir.push(lowered);
            self.templates_ir.len() - 1
        });
        self.templates.insert(decl.id, index);
        index
    }
}

/// Annotating a diagnostic already recorded.
pub(crate) trait Annotate {
    /// Sets the label under the caret.
    fn set_label(&mut self, text: impl Into<String>) -> &mut Self;
    /// Sets the hint.
    fn set_hint(&mut self, text: impl Into<String>) -> &mut Self;
    /// Sets the hint if there is one.
    fn maybe_hint(&mut self, text: Option<String>) -> &mut Self;
    /// Adds a related location.
    fn add_related(&mut self, file: &str, span: Span, text: impl Into<String>) -> &mut Self;
}

impl Annotate for Diagnostic {
    fn set_label(&mut self, text: impl Into<String>) -> &mut Self {
        self.label = Some(text.into());
        self
    }
    fn set_hint(&mut self, text: impl Into<String>) -> &mut Self {
        self.hint = Some(text.into());
        self
    }
    fn maybe_hint(&mut self, text: Option<String>) -> &mut Self {
        if text.is_some() {
            self.hint = text;
        }
        self
    }
    fn add_related(&mut self, file: &str, span: Span, text: impl Into<String>) -> &mut Self {
        self.related.push(weir_grammar::diagnostic::Related {
            file: file.to_string(),
            span,
            message: text.into(),
        });
        self
    }
}
