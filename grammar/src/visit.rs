//! Walking a syntax tree: [`Visit`] reads it, [`VisitMut`] may change it.
//!
//! A visitor overrides the `visit_*` methods for the nodes it cares about
//! and calls the matching `walk_*` function to go on into the children;
//! everything else is walked by the defaults, so a pass names only what it
//! looks at. Every node with a span passes it to `visit_span` after its
//! children. Both traits come from one definition below, so they walk the
//! same children in the same order.
//!
//! ```
//! use weir_grammar::ast::Ident;
//! use weir_grammar::visit::{self, Visit};
//!
//! /// Every name written in a file.
//! #[derive(Default)]
//! struct Names(Vec<String>);
//!
//! impl Visit for Names {
//!     fn visit_ident(&mut self, id: &Ident) {
//!         self.0.push(id.name.clone());
//!     }
//! }
//!
//! let (file, _) = weir_grammar::parse("rule r { when subject contains x then tag \"a\" }", "f.flow");
//! let mut names = Names::default();
//! names.visit_file(&file);
//! assert_eq!(names.0, ["r", "subject", "x", "tag"]);
//! ```

use crate::ast::*;

/// Defines a visitor trait and its walk functions; `$($mut)?` makes the
/// mutable one.
macro_rules! visitor {
    ($(#[$doc:meta])* $Visit:ident, $walk:ident $(, $mut:tt)?) => {
        $(#[$doc])*
        pub trait $Visit {
            /// A whole file.
            fn visit_file(&mut self, file: &$($mut)? File) {
                $walk::walk_file(self, file);
            }
            /// A top-level declaration.
            fn visit_item(&mut self, item: &$($mut)? Item) {
                $walk::walk_item(self, item);
            }
            /// A block of statements.
            fn visit_block(&mut self, block: &$($mut)? Block) {
                $walk::walk_block(self, block);
            }
            /// An action statement, or an expectation about one.
            fn visit_action(&mut self, action: &$($mut)? Action) {
                $walk::walk_action(self, action);
            }
            /// A line of a `test` block.
            fn visit_test_stmt(&mut self, stmt: &$($mut)? TestStmt) {
                $walk::walk_test_stmt(self, stmt);
            }
            /// A type annotation.
            fn visit_type(&mut self, ty: &$($mut)? TypeExpr) {
                $walk::walk_type(self, ty);
            }
            /// A string literal, with its interpolations.
            fn visit_str(&mut self, s: &$($mut)? StrLit) {
                $walk::walk_str(self, s);
            }
            /// An expression.
            fn visit_expr(&mut self, expr: &$($mut)? Expr) {
                $walk::walk_expr(self, expr);
            }
            /// A name as written: declared, referred to, a field, an
            /// action word, a binding.
            fn visit_ident(&mut self, id: &$($mut)? Ident) {
                self.visit_span(&$($mut)? id.span);
            }
            /// Every span of the tree, after the node's children.
            fn visit_span(&mut self, span: &$($mut)? Span) {
                let _ = span;
            }
        }

        /// The default walks of
        #[doc = concat!("[`", stringify!($Visit), "`]:")]
        /// each visits a node's children in source order.
        pub mod $walk {
            use super::*;

            /// The items of a file.
            pub fn walk_file<V: $Visit + ?Sized>(v: &mut V, file: &$($mut)? File) {
                for item in &$($mut)? file.items {
                    v.visit_item(item);
                }
                v.visit_span(&$($mut)? file.span);
            }

            /// The parts of a declaration.
            pub fn walk_item<V: $Visit + ?Sized>(v: &mut V, item: &$($mut)? Item) {
                match item {
                    Item::Import(i) => {
                        v.visit_span(&$($mut)? i.path_span);
                        v.visit_span(&$($mut)? i.span);
                    }
                    Item::Let(l) => {
                        v.visit_ident(&$($mut)? l.name);
                        v.visit_expr(&$($mut)? l.value);
                        v.visit_span(&$($mut)? l.span);
                    }
                    Item::List(l) => {
                        v.visit_ident(&$($mut)? l.name);
                        v.visit_span(&$($mut)? l.path_span);
                        v.visit_span(&$($mut)? l.span);
                    }
                    Item::Map(m) => {
                        v.visit_ident(&$($mut)? m.name);
                        match &$($mut)? m.source {
                            MapSource::File(_, span) => v.visit_span(span),
                            MapSource::Literal(pairs) => {
                                for pair in pairs {
                                    v.visit_span(&$($mut)? pair.key_span);
                                    v.visit_span(&$($mut)? pair.value_span);
                                }
                            }
                        }
                        v.visit_span(&$($mut)? m.span);
                    }
                    Item::Classifier(c) => {
                        v.visit_ident(&$($mut)? c.name);
                        for (_, span) in &$($mut)? c.classes {
                            v.visit_span(span);
                        }
                        v.visit_span(&$($mut)? c.span);
                    }
                    Item::Fn(f) => {
                        v.visit_ident(&$($mut)? f.name);
                        for p in &$($mut)? f.params {
                            v.visit_ident(&$($mut)? p.name);
                            v.visit_type(&$($mut)? p.ty);
                            v.visit_span(&$($mut)? p.span);
                        }
                        v.visit_expr(&$($mut)? f.body);
                        v.visit_span(&$($mut)? f.span);
                    }
                    Item::Template(t) => {
                        v.visit_ident(&$($mut)? t.name);
                        for field in &$($mut)? t.fields {
                            v.visit_ident(&$($mut)? field.key);
                            v.visit_str(&$($mut)? field.value);
                            v.visit_span(&$($mut)? field.span);
                        }
                        v.visit_span(&$($mut)? t.span);
                    }
                    Item::Rule(r) => walk_rule(v, r),
                    Item::Test(t) => {
                        v.visit_span(&$($mut)? t.name_span);
                        for stmt in &$($mut)? t.stmts {
                            v.visit_test_stmt(stmt);
                        }
                        v.visit_span(&$($mut)? t.span);
                    }
                }
            }

            /// A rule's name, condition and blocks.
            fn walk_rule<V: $Visit + ?Sized>(v: &mut V, r: &$($mut)? Rule) {
                v.visit_ident(&$($mut)? r.name);
                if let Some((_, span)) = &$($mut)? r.priority {
                    v.visit_span(span);
                }
                if let Some(when) = &$($mut)? r.when {
                    v.visit_expr(when);
                }
                v.visit_block(&$($mut)? r.then);
                if let Some(otherwise) = &$($mut)? r.otherwise {
                    v.visit_block(otherwise);
                }
                v.visit_span(&$($mut)? r.span);
            }

            /// The statements of a block, `if` branches included.
            pub fn walk_block<V: $Visit + ?Sized>(v: &mut V, block: &$($mut)? Block) {
                for stmt in &$($mut)? block.stmts {
                    match stmt {
                        Stmt::Action(a) => v.visit_action(a),
                        Stmt::If(i) => {
                            v.visit_expr(&$($mut)? i.cond);
                            v.visit_block(&$($mut)? i.then);
                            if let Some(otherwise) = &$($mut)? i.otherwise {
                                v.visit_block(otherwise);
                            }
                            v.visit_span(&$($mut)? i.span);
                        }
                    }
                }
                v.visit_span(&$($mut)? block.span);
            }

            /// An action's word, arguments, `with` map, template and `every`.
            pub fn walk_action<V: $Visit + ?Sized>(v: &mut V, a: &$($mut)? Action) {
                v.visit_ident(&$($mut)? a.name);
                for arg in &$($mut)? a.args {
                    v.visit_expr(arg);
                }
                if let Some(map) = &$($mut)? a.with {
                    for (key, value) in &$($mut)? map.entries {
                        v.visit_ident(key);
                        v.visit_expr(value);
                    }
                    v.visit_span(&$($mut)? map.span);
                }
                if let Some(t) = &$($mut)? a.template {
                    v.visit_ident(t);
                }
                if let Some(every) = &$($mut)? a.every {
                    v.visit_expr(every);
                }
                v.visit_span(&$($mut)? a.span);
            }

            /// The expressions and names of a test line.
            pub fn walk_test_stmt<V: $Visit + ?Sized>(v: &mut V, s: &$($mut)? TestStmt) {
                match &$($mut)? s.kind {
                    TestStmtKind::MessageFile(_) | TestStmtKind::MessageText(_) => {}
                    TestStmtKind::Envelope { from: a, to: b }
                    | TestStmtKind::Client { ip: a, helo: b } => {
                        for e in [a, b].into_iter().flatten() {
                            v.visit_expr(e);
                        }
                    }
                    TestStmtKind::Now(e)
                    | TestStmtKind::Recipient(e)
                    | TestStmtKind::Duplicate(e) => v.visit_expr(e),
                    TestStmtKind::Rate { key, count } => {
                        v.visit_expr(key);
                        v.visit_expr(count);
                    }
                    TestStmtKind::Classify { name, class, confidence } => {
                        v.visit_ident(name);
                        v.visit_expr(class);
                        v.visit_expr(confidence);
                    }
                    TestStmtKind::Expect { what, .. } => match what {
                        Expectation::Verdict { verdict, code } => {
                            v.visit_ident(verdict);
                            if let Some((_, span)) = code {
                                v.visit_span(span);
                            }
                        }
                        Expectation::Stage(i) | Expectation::Matched(i) => v.visit_ident(i),
                        Expectation::Score { value, .. } => v.visit_expr(value),
                        Expectation::Action(a) => v.visit_action(a),
                    },
                }
                v.visit_span(&$($mut)? s.span);
            }

            /// A type's name and arguments.
            pub fn walk_type<V: $Visit + ?Sized>(v: &mut V, ty: &$($mut)? TypeExpr) {
                v.visit_ident(&$($mut)? ty.name);
                for arg in &$($mut)? ty.args {
                    v.visit_type(arg);
                }
                v.visit_span(&$($mut)? ty.span);
            }

            /// The interpolated expressions of a string.
            pub fn walk_str<V: $Visit + ?Sized>(v: &mut V, s: &$($mut)? StrLit) {
                for part in &$($mut)? s.parts {
                    if let StrPart::Interp(e) = part {
                        v.visit_expr(e);
                    }
                }
                v.visit_span(&$($mut)? s.span);
            }

            /// The operands, names and strings of an expression.
            pub fn walk_expr<V: $Visit + ?Sized>(v: &mut V, e: &$($mut)? Expr) {
                match &$($mut)? e.kind {
                    ExprKind::Bool(_)
                    | ExprKind::Int(_)
                    | ExprKind::Float(_)
                    | ExprKind::Size(_)
                    | ExprKind::Duration(_)
                    | ExprKind::Regex(_)
                    | ExprKind::Ip(_)
                    | ExprKind::Cidr(..) => {}
                    ExprKind::Str(s) => v.visit_str(s),
                    ExprKind::List(items) => {
                        for item in items {
                            v.visit_expr(item);
                        }
                    }
                    ExprKind::Name(n) => v.visit_ident(n),
                    ExprKind::Field(base, member) => {
                        v.visit_expr(base);
                        v.visit_ident(member);
                    }
                    ExprKind::Method(base, member, args) => {
                        v.visit_expr(base);
                        v.visit_ident(member);
                        for arg in args {
                            v.visit_expr(arg);
                        }
                    }
                    ExprKind::Index(a, b)
                    | ExprKind::And(a, b)
                    | ExprKind::Or(a, b)
                    | ExprKind::Add(a, b)
                    | ExprKind::Sub(a, b) => {
                        v.visit_expr(a);
                        v.visit_expr(b);
                    }
                    ExprKind::Call(name, args) => {
                        v.visit_ident(name);
                        for arg in args {
                            v.visit_expr(arg);
                        }
                    }
                    ExprKind::Not(a) | ExprKind::Neg(a) | ExprKind::Exists(a) => v.visit_expr(a),
                    ExprKind::Lambda(param, body) => {
                        v.visit_ident(param);
                        v.visit_expr(body);
                    }
                    ExprKind::Compare(c) => {
                        v.visit_expr(&$($mut)? c.lhs);
                        v.visit_expr(&$($mut)? c.rhs);
                        if let Some(bind) = &$($mut)? c.bind {
                            v.visit_ident(bind);
                        }
                    }
                }
                v.visit_span(&$($mut)? e.span);
            }
        }
    };
}

visitor!(
    /// Reads a syntax tree; see the module documentation.
    Visit,
    walk
);

visitor!(
    /// Changes a syntax tree in place (e.g. [`File::strip_spans`]).
    VisitMut,
    walk_mut,
    mut
);
