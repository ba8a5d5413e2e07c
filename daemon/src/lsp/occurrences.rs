//! What each word of a file means: a walk over the syntax tree that lists
//! every field, member, builtin call, action word, declaration and use of a
//! declared name, with its span. Hover, go to definition and find
//! references all start from "the smallest occurrence under the cursor".
//!
//! Names resolve as the checker resolves them: a `fn` parameter or a
//! `matches … as` binding first, then a declared name (this file's or an
//! import's), then a field of the registry (`envelope.from.domain`: the
//! longest dotted prefix that is a field, then members).

use std::collections::HashSet;

use weir_compiler::ExprTypes;
use weir_grammar::ast::{self, Action, Expr, ExprKind, Ident, Item, Span};
use weir_grammar::visit::{Visit, walk};
use weir_stdlib::Type;
use weir_stdlib::registry::{self, ParamType, registry as reg};

use super::workspace::{DeclKind, FileKey, ParsedFile};

/// How a declared name is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefKind {
    /// As a value (a `let` or `list`).
    Value,
    /// Called (`is_internal(...)`).
    Call,
    /// After `template` in an action.
    Template,
    /// In `matched(NAME)`.
    Matched,
    /// In a test's `expect [not] matched NAME` (a rule anywhere in the ruleset).
    TestMatched,
}

/// What one occurrence is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Occ {
    /// A field of the registry, the whole dotted path (`envelope.from`).
    Field(String),
    /// `.name` on a value of type `owner`.
    Member {
        /// The type of the value the member is read from.
        owner: Type,
        /// The member.
        name: String,
    },
    /// `.raw` after `header("...")`.
    HeaderRaw,
    /// A call of a builtin function.
    Builtin(String),
    /// An action word (also a verdict in `expect verdict`).
    Action(String),
    /// The name in a declaration.
    Decl(DeclKind, String),
    /// A use of a declared name.
    Ref(RefKind, String),
    /// A `fn` parameter (its declaration or a use).
    Param {
        /// Its name.
        name: String,
        /// Its type as written.
        ty: String,
        /// The span of `name: type` in the `fn`.
        decl: Span,
    },
    /// A `matches … as NAME` binding (where bound, or a use).
    Capture {
        /// Its name.
        name: String,
        /// The span of the name after `as`.
        decl: Span,
    },
    /// The path of an `import`.
    Import(FileKey),
}

/// One occurrence: what, and where.
#[derive(Debug, Clone)]
pub(crate) struct Occurrence {
    /// The text it covers.
    pub span: Span,
    /// What it is.
    pub occ: Occ,
}

/// Every occurrence in a file, in walk order. `declared` is the set of
/// names the file sees (its own and its imports'); `types` are the
/// compiler's types of the file's expressions, when it compiled.
pub(crate) fn collect(
    file: &ParsedFile,
    declared: &HashSet<String>,
    types: Option<&ExprTypes>,
) -> Vec<Occurrence> {
    let mut walker = Walker {
        declared,
        key: &file.key,
        types,
        file_name: file.key.display_name(),
        params: Vec::new(),
        captures: Vec::new(),
        out: Vec::new(),
    };
    walker.visit_file(&file.ast);
    walker.out
}

/// The occurrence under `offset`: the smallest containing it, preferring
/// one that starts at or before the offset and ends after it (the cursor
/// just after a word still counts for that word).
pub(crate) fn at(occurrences: &[Occurrence], offset: usize) -> Option<&Occurrence> {
    let inside = occurrences
        .iter()
        .filter(|o| o.span.start <= offset && offset < o.span.end)
        .min_by_key(|o| o.span.end - o.span.start);
    inside.or_else(|| {
        occurrences
            .iter()
            .filter(|o| o.span.start < offset && offset == o.span.end)
            .min_by_key(|o| o.span.end - o.span.start)
    })
}

/// The type a `fn` parameter annotation names.
pub(crate) fn type_of_annotation(ty: &ast::TypeExpr) -> Option<Type> {
    if ty.name.name == "list" {
        return ty.args.first().and_then(type_of_annotation).map(Type::list);
    }
    Type::from_name(&ty.name.name)
}

/// `list<address>` as written.
fn annotation_text(ty: &ast::TypeExpr) -> String {
    if ty.args.is_empty() {
        return ty.name.name.clone();
    }
    let args: Vec<String> = ty.args.iter().map(annotation_text).collect();
    format!("{}<{}>", ty.name.name, args.join(", "))
}

/// The dotted path of `a.b.c` (names only), if it is one.
fn path_of(e: &Expr) -> Option<Vec<&Ident>> {
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

/// The longest prefix of `names` that is a registry field: its length.
pub(crate) fn field_prefix(names: &[&str]) -> Option<usize> {
    (1..=names.len())
        .rev()
        .find(|&k| reg().field(&names[..k].join(".")).is_some())
}

/// The type of member `name` of a value of type `owner`.
pub(crate) fn member_type(owner: &Type, name: &str) -> Option<Type> {
    registry::members(owner)
        .into_iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, t, _)| t)
}

/// A parameter in scope: name, type, type text, declaration span.
type ParamInfo = (String, Option<Type>, String, Span);

struct Walker<'a> {
    declared: &'a HashSet<String>,
    key: &'a FileKey,
    /// The checker's types, by span (`weir_compiler::ExprTypes`).
    types: Option<&'a ExprTypes>,
    /// The file's name as the compiler knows it.
    file_name: String,
    params: Vec<ParamInfo>,
    captures: Vec<(String, Span)>,
    out: Vec<Occurrence>,
}

impl Walker<'_> {
    fn push(&mut self, span: Span, occ: Occ) {
        self.out.push(Occurrence { span, occ });
    }

    fn decl(&mut self, kind: DeclKind, name: &Ident) {
        self.push(name.span, Occ::Decl(kind, name.name.clone()));
    }

    /// A `fn`'s parameters, in scope for its body.
    fn params(&mut self, params: &[ast::Param]) {
        for p in params {
            let ty = annotation_text(&p.ty);
            self.push(
                p.name.span,
                Occ::Param {
                    name: p.name.name.clone(),
                    ty: ty.clone(),
                    decl: p.span,
                },
            );
            self.params
                .push((p.name.name.clone(), type_of_annotation(&p.ty), ty, p.span));
        }
    }

    /// `base.member` that is not a path from a name: a member of the
    /// base's type, or `.raw` of `header(...)`.
    fn member_of(&mut self, base: &Expr, member: &Ident) {
        self.visit_expr(base);
        if member.name == "raw" && matches!(&base.kind, ExprKind::Call(n, _) if n.name == "header")
        {
            self.push(member.span, Occ::HeaderRaw);
        } else if let Some(owner) = self.type_at(base.span) {
            self.push(
                member.span,
                Occ::Member {
                    owner,
                    name: member.name.clone(),
                },
            );
        }
    }

    fn call(&mut self, name: &Ident, args: &[Expr]) {
        let user = self.declared.contains(&name.name);
        if user {
            self.push(name.span, Occ::Ref(RefKind::Call, name.name.clone()));
        } else if reg().function(&name.name).is_some() {
            self.push(name.span, Occ::Builtin(name.name.clone()));
        }
        if matches!(name.name.as_str(), "some" | "every")
            && !user
            && let [list, lambda] = args
            && let ExprKind::Lambda(param, body) = &lambda.kind
        {
            self.lambda(list, param, body);
            return;
        }
        if name.name == "matched" && !user {
            for arg in args {
                if let ExprKind::Name(rule) = &arg.kind {
                    self.push(rule.span, Occ::Ref(RefKind::Matched, rule.name.clone()));
                } else {
                    self.visit_expr(arg);
                }
            }
            return;
        }
        for arg in args {
            self.visit_expr(arg);
        }
    }

    /// The list and lambda of `some`/`every`: the lambda's name is a
    /// parameter of the list's item type within its body.
    fn lambda(&mut self, list: &Expr, param: &Ident, body: &Expr) {
        self.visit_expr(list);
        let item = self.type_at(list.span).and_then(|t| t.item().cloned());
        let text = item
            .as_ref()
            .map_or_else(|| "element".to_string(), Type::to_string);
        self.push(
            param.span,
            Occ::Param {
                name: param.name.clone(),
                ty: text.clone(),
                decl: param.span,
            },
        );
        self.params
            .push((param.name.clone(), item, text, param.span));
        self.visit_expr(body);
        self.params.pop();
    }

    /// A bare name or a dotted path.
    fn path(&mut self, e: &Expr) {
        let Some(path) = path_of(e) else { return };
        let root = path[0];
        if let Some((name, ty, text, decl)) = self.params.iter().find(|p| p.0 == root.name).cloned()
        {
            self.push(
                root.span,
                Occ::Param {
                    name,
                    ty: text,
                    decl,
                },
            );
            self.members(ty, &path[1..]);
        } else if let Some((name, decl)) = self.captures.iter().find(|c| c.0 == root.name).cloned()
        {
            self.push(root.span, Occ::Capture { name, decl });
        } else if self.declared.contains(&root.name) {
            self.push(root.span, Occ::Ref(RefKind::Value, root.name.clone()));
        } else {
            let names: Vec<&str> = path.iter().map(|i| i.name.as_str()).collect();
            let Some(k) = field_prefix(&names) else {
                // A name the checker bound (a lambda's element, say).
                let ty = self.type_at(root.span);
                self.members(ty, &path[1..]);
                return;
            };
            let joined = names[..k].join(".");
            let ty = reg().field(&joined).map(|f| f.ty.clone());
            self.push(root.span.to(path[k - 1].span), Occ::Field(joined));
            self.members(ty, &path[k..]);
        }
    }

    /// Members read one after the other from a value of type `ty`.
    fn members(&mut self, mut ty: Option<Type>, members: &[&Ident]) {
        for member in members {
            let Some(owner) = ty else { return };
            ty = member_type(&owner, &member.name);
            self.push(
                member.span,
                Occ::Member {
                    owner,
                    name: member.name.clone(),
                },
            );
        }
    }

    /// The type the checker gave the expression at `span`.
    fn type_at(&self, span: Span) -> Option<Type> {
        self.types?.at(&self.file_name, span).cloned()
    }
}

/// A builtin's signature as written in docs: `header(string) -> list<string>`.
pub(crate) fn signature(f: &registry::FunctionDef) -> String {
    let params: Vec<String> = f
        .params
        .iter()
        .map(|p| match p {
            ParamType::Exact(t) => t.to_string(),
            ParamType::AnyList => "list<T>".to_string(),
            ParamType::RuleName => "rule".to_string(),
        })
        .collect();
    format!("{}({}) -> {}", f.name, params.join(", "), f.ret)
}

impl Visit for Walker<'_> {
    fn visit_item(&mut self, item: &Item) {
        match item {
            Item::Import(import) => {
                if let Some(key) = self.key.import(&import.path) {
                    self.push(import.path_span, Occ::Import(key));
                }
            }
            Item::Let(d) => self.decl(DeclKind::Let, &d.name),
            Item::List(d) => self.decl(DeclKind::List, &d.name),
            Item::Map(d) => self.decl(DeclKind::Map, &d.name),
            Item::Classifier(d) => self.decl(DeclKind::Classifier, &d.name),
            Item::Fn(d) => {
                self.decl(DeclKind::Fn, &d.name);
                self.params(&d.params);
            }
            Item::Template(d) => self.decl(DeclKind::Template, &d.name),
            Item::Rule(d) => self.decl(DeclKind::Rule, &d.name),
            Item::Test(_) => {}
        }
        walk::walk_item(self, item);
        // Parameters and bindings are scoped to their declaration.
        self.params.clear();
        self.captures.clear();
    }

    fn visit_test_stmt(&mut self, stmt: &ast::TestStmt) {
        use ast::{Expectation, TestStmtKind};
        match &stmt.kind {
            TestStmtKind::Expect {
                what: Expectation::Verdict { verdict, .. },
                ..
            } => {
                if reg().action(&verdict.name).is_some() {
                    self.push(verdict.span, Occ::Action(verdict.name.clone()));
                }
            }
            TestStmtKind::Expect {
                what: Expectation::Matched(rule),
                ..
            } => self.push(rule.span, Occ::Ref(RefKind::TestMatched, rule.name.clone())),
            _ => walk::walk_test_stmt(self, stmt),
        }
    }

    fn visit_action(&mut self, action: &Action) {
        if reg().action(&action.name.name).is_some() {
            self.push(action.name.span, Occ::Action(action.name.name.clone()));
        }
        if let Some(template) = &action.template {
            self.push(
                template.span,
                Occ::Ref(RefKind::Template, template.name.clone()),
            );
        }
        walk::walk_action(self, action);
    }

    fn visit_expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Name(_) => self.path(e),
            ExprKind::Field(..) if path_of(e).is_some() => self.path(e),
            ExprKind::Field(base, member) => self.member_of(base, member),
            ExprKind::Call(name, args) => self.call(name, args),
            ExprKind::Compare(c) => {
                self.visit_expr(&c.lhs);
                self.visit_expr(&c.rhs);
                if let Some(bind) = &c.bind {
                    self.push(
                        bind.span,
                        Occ::Capture {
                            name: bind.name.clone(),
                            decl: bind.span,
                        },
                    );
                    self.captures.push((bind.name.clone(), bind.span));
                }
            }
            _ => walk::walk_expr(self, e),
        }
    }
}
