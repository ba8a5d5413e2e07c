//! The syntax tree of one `.flow` file.
//!
//! Every node carries the [`Span`] of the source text it was parsed from, so
//! that the checker, the formatter and the language server can point back at
//! the user's text. The tree is purely syntactic: names are not resolved and
//! nothing is typed; that is the compiler's job.
//!
//! Equality (`PartialEq`) ignores nothing: two trees parsed from texts that
//! differ only in layout differ in their spans. Use [`File::strip_spans`]
//! before comparing trees for meaning (the formatter's property tests do).

use std::net::IpAddr;

use crate::visit::VisitMut;

/// A half-open byte range `start..end` into the source text of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// A name written by the user, with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    /// The name as written (`snake_case`).
    pub name: String,
    /// Where it was written.
    pub span: Span,
}

/// One parsed `.flow` file.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    /// Declarations, in source order.
    pub items: Vec<Item>,
    /// The whole file.
    pub span: Span,
}

/// A top-level declaration (docs/language.md ("Declarations")).
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `import "path"`
    Import(Import),
    /// `let NAME = EXPR`
    Let(Let),
    /// `list NAME = file "PATH"`
    List(ListDecl),
    /// `map NAME = file "PATH"` or `map NAME = {"k": "v", ...}`
    Map(MapDecl),
    /// `classifier NAME = learned ["class1", "class2", ...]`
    Classifier(ClassifierDecl),
    /// `fn NAME(p: TYPE, ...) = EXPR`
    Fn(FnDecl),
    /// `template NAME { subject = STR  body = STR }`
    Template(Template),
    /// `rule NAME [priority N] [shadow] { ... }`
    Rule(Rule),
    /// `test "name" { ... }`
    Test(TestBlock),
}

impl Item {
    /// The span of the whole declaration.
    pub fn span(&self) -> Span {
        match self {
            Item::Import(i) => i.span,
            Item::Let(i) => i.span,
            Item::List(i) => i.span,
            Item::Map(i) => i.span,
            Item::Classifier(i) => i.span,
            Item::Fn(i) => i.span,
            Item::Template(i) => i.span,
            Item::Rule(i) => i.span,
            Item::Test(i) => i.span,
        }
    }
}

/// `import "path"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    /// The path as written, escapes resolved (`"stdlib/bulk"`, `"lists/common"`).
    pub path: String,
    /// The span of the string literal.
    pub path_span: Span,
    /// The whole declaration.
    pub span: Span,
}

/// `let NAME = EXPR`.
#[derive(Debug, Clone, PartialEq)]
pub struct Let {
    /// The constant's name.
    pub name: Ident,
    /// Its value.
    pub value: Expr,
    /// The whole declaration.
    pub span: Span,
}

/// `list NAME = file "PATH"`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListDecl {
    /// The list's name.
    pub name: Ident,
    /// The path as written, escapes resolved.
    pub path: String,
    /// The span of the path's string literal.
    pub path_span: Span,
    /// The whole declaration.
    pub span: Span,
}

/// `map NAME = file "PATH"` or `map NAME = {"key": "value", ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct MapDecl {
    /// The map's name.
    pub name: Ident,
    /// Where its entries come from.
    pub source: MapSource,
    /// The whole declaration.
    pub span: Span,
}

/// The entries of a `map`: a file or a literal.
#[derive(Debug, Clone, PartialEq)]
pub enum MapSource {
    /// `file "PATH"`: the path as written, escapes resolved, and the span
    /// of its string literal.
    File(String, Span),
    /// `{"key": "value", ...}`: each key and value with its literal's span.
    Literal(Vec<MapPair>),
}

/// One `"key": "value"` of a literal map.
#[derive(Debug, Clone, PartialEq)]
pub struct MapPair {
    /// The key, escapes resolved.
    pub key: String,
    /// The span of the key's literal.
    pub key_span: Span,
    /// The value, escapes resolved.
    pub value: String,
    /// The span of the value's literal.
    pub value_span: Span,
}

/// `classifier NAME = learned ["class1", "class2", ...]`
/// (docs/language.md ("Classifiers")).
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierDecl {
    /// The classifier's name.
    pub name: Ident,
    /// Its classes in order, each with its literal's span (the checker
    /// wants two or more, distinct and not empty).
    pub classes: Vec<(String, Span)>,
    /// The whole declaration.
    pub span: Span,
}

/// `fn NAME(p: TYPE, ...) = EXPR`.
#[derive(Debug, Clone, PartialEq)]
pub struct FnDecl {
    /// The function's name.
    pub name: Ident,
    /// Its parameters, in order.
    pub params: Vec<Param>,
    /// Its body.
    pub body: Expr,
    /// The whole declaration.
    pub span: Span,
}

/// One parameter of a `fn`: `a: address`.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The parameter's name.
    pub name: Ident,
    /// Its declared type.
    pub ty: TypeExpr,
    /// `name: type`.
    pub span: Span,
}

/// A type as written: `string`, `address`, `list<string>`.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeExpr {
    /// The type's name (`list`, `string`, ...).
    pub name: Ident,
    /// Type arguments: one for `list<T>`, none otherwise.
    pub args: Vec<TypeExpr>,
    /// The whole type.
    pub span: Span,
}

/// `template NAME { subject = STR  body = STR }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The template's name.
    pub name: Ident,
    /// Its fields in source order (`subject`, `body`; the checker rejects others).
    pub fields: Vec<TemplateField>,
    /// The whole declaration.
    pub span: Span,
}

/// One `key = "text"` line of a template.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateField {
    /// `subject` or `body`.
    pub key: Ident,
    /// The text, with its interpolations.
    pub value: StrLit,
    /// The whole line.
    pub span: Span,
}

/// `rule NAME [priority N] [shadow] { [when EXPR] then ACTIONS [else ACTIONS] }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The rule's name.
    pub name: Ident,
    /// `priority N`, with the span of `N`.
    pub priority: Option<(i64, Span)>,
    /// `shadow` was written.
    pub shadow: bool,
    /// The `when` condition; `None` means the rule always holds.
    pub when: Option<Expr>,
    /// The actions after `then`.
    pub then: Block,
    /// The actions after `else`, if any.
    pub otherwise: Option<Block>,
    /// The whole declaration.
    pub span: Span,
}

/// A sequence of actions: either one action on its own (`then tag "x"`) or a
/// braced block (`then { tag "x"; stop }`).
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// The statements, in order.
    pub stmts: Vec<Stmt>,
    /// Whether the block was written with braces.
    pub braced: bool,
    /// The whole block (braces included when braced).
    pub span: Span,
}

/// One statement of an action block.
#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    /// An action, including verdicts and `stop`.
    Action(Action),
    /// `if EXPR { ... } [else { ... }]` (or `else if ...`).
    If(IfStmt),
}

impl Stmt {
    /// The span of the whole statement.
    pub fn span(&self) -> Span {
        match self {
            Stmt::Action(a) => a.span,
            Stmt::If(i) => i.span,
        }
    }
}

/// An action: its word followed by its arguments, all on one line.
///
/// The grammar does not know which words are actions; the checker does
/// (`reject 550 "5.7.1" "text"`, `score +2`, `notify "ch" with {k: v}
/// template t`, `reply template ack`).
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// The action's word (`tag`, `reject`, `add_header`, ...).
    pub name: Ident,
    /// Positional arguments, in order.
    pub args: Vec<Expr>,
    /// `with {k: v, ...}`, if written.
    pub with: Option<MapLit>,
    /// `template NAME`, if written.
    pub template: Option<Ident>,
    /// `every DURATION` after `template NAME` (`reply`'s period), if written.
    pub every: Option<Expr>,
    /// The whole action.
    pub span: Span,
}

/// `if EXPR { ... } [else { ... }]`.
#[derive(Debug, Clone, PartialEq)]
pub struct IfStmt {
    /// The condition.
    pub cond: Expr,
    /// The braced actions run when it holds.
    pub then: Block,
    /// The actions run otherwise. `else if c { }` is stored as an unbraced
    /// block holding one `Stmt::If`.
    pub otherwise: Option<Block>,
    /// The whole statement.
    pub span: Span,
}

/// `{key: value, ...}` after `with`.
#[derive(Debug, Clone, PartialEq)]
pub struct MapLit {
    /// Entries in source order.
    pub entries: Vec<(Ident, Expr)>,
    /// The whole map, braces included.
    pub span: Span,
}

/// A string literal, `"..."` or `"""..."""`, split into literal text and
/// `${...}` interpolations.
#[derive(Debug, Clone, PartialEq)]
pub struct StrLit {
    /// Text and interpolations in order. Escapes are resolved; for a
    /// triple-quoted string the indentation rule of docs/language.md ("Lexical structure") has been
    /// applied. A string without interpolation is one `Text` part (or none
    /// when empty).
    pub parts: Vec<StrPart>,
    /// Whether it was written `"""..."""`.
    pub triple: bool,
    /// The literal, quotes included.
    pub span: Span,
}

impl StrLit {
    /// The text when the literal has no interpolation.
    pub fn as_plain(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                StrPart::Text(t) => out.push_str(t),
                StrPart::Interp(_) => return None,
            }
        }
        Some(out)
    }
}

/// A piece of a string literal.
#[derive(Debug, Clone, PartialEq)]
pub enum StrPart {
    /// Literal text, escapes resolved.
    Text(String),
    /// `${expr}`.
    Interp(Expr),
}

/// An expression with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What kind of expression.
    pub kind: ExprKind,
    /// Where it was written.
    pub span: Span,
}

/// The forms of expression (docs/language.md ("Expressions")).
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// `true`, `false`.
    Bool(bool),
    /// `42`.
    Int(i64),
    /// `2.5`.
    Float(f64),
    /// `10K`, `5M`: the size in bytes (powers of 1024).
    Size(u64),
    /// `5m`, `7d`: the duration in seconds.
    Duration(u64),
    /// A string literal.
    Str(StrLit),
    /// `/pattern/flags`.
    Regex(RegexLit),
    /// `192.0.2.1`, `2001:db8::1`.
    Ip(IpAddr),
    /// `10.0.0.0/8`, `2001:db8::/32`.
    Cidr(IpAddr, u8),
    /// `[a, b, c]`.
    List(Vec<Expr>),
    /// A bare name: a field root (`subject`, `envelope`), a constant, a
    /// list, a parameter, a capture binding, or a rule name in `matched()`.
    Name(Ident),
    /// `expr.name`: field access (`envelope.from`, `m.domain`,
    /// `header("X").raw`, `now.hour`).
    Field(Box<Expr>, Ident),
    /// `expr.name(args...)`: a member function (`spam.probability("ham")`).
    Method(Box<Expr>, Ident, Vec<Expr>),
    /// `expr[index]`.
    Index(Box<Expr>, Box<Expr>),
    /// `name(args...)`: a builtin or a user `fn`.
    Call(Ident, Vec<Expr>),
    /// `not expr`.
    Not(Box<Expr>),
    /// `-expr` (and `+expr`, stored as the operand itself).
    Neg(Box<Expr>),
    /// `a and b`.
    And(Box<Expr>, Box<Expr>),
    /// `a or b`.
    Or(Box<Expr>, Box<Expr>),
    /// `a + b`.
    Add(Box<Expr>, Box<Expr>),
    /// `a - b`.
    Sub(Box<Expr>, Box<Expr>),
    /// A comparison or test: `[all] lhs OP rhs [as NAME]`.
    Compare(Box<Compare>),
    /// `expr exists`.
    Exists(Box<Expr>),
    /// `x => EXPR`: the element binding and condition of `some(LIST, x =>
    /// EXPR)` and `every(...)`; the checker allows it nowhere else.
    Lambda(Ident, Box<Expr>),
}

/// `[all] lhs OP rhs [as NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Compare {
    /// The operator.
    pub op: CompareOp,
    /// `all` was written before the comparison.
    pub all: bool,
    /// `any` was written after `contains`/`starts_with`/`ends_with`/`==`
    /// (`contains any [...]`); it changes nothing but is kept for the formatter.
    pub any: bool,
    /// The left side.
    pub lhs: Expr,
    /// The right side (for `matches`, a regex literal or a name bound to one).
    pub rhs: Expr,
    /// `matches ... as NAME`.
    pub bind: Option<Ident>,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `contains`
    Contains,
    /// `starts_with`
    StartsWith,
    /// `ends_with`
    EndsWith,
    /// `matches`
    Matches,
    /// `in`
    In,
    /// `under`: a domain equal to or below an entry of a list.
    Under,
}

impl CompareOp {
    /// The operator as written in source.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Contains => "contains",
            CompareOp::StartsWith => "starts_with",
            CompareOp::EndsWith => "ends_with",
            CompareOp::Matches => "matches",
            CompareOp::In => "in",
            CompareOp::Under => "under",
        }
    }
}

/// `/pattern/flags`.
#[derive(Debug, Clone, PartialEq)]
pub struct RegexLit {
    /// The pattern with `\/` turned back into `/`; otherwise as written.
    pub pattern: String,
    /// The flags as written, each of `i m s x`.
    pub flags: String,
}

/// `test "name" { ... }` (docs/language.md ("Tests")).
#[derive(Debug, Clone, PartialEq)]
pub struct TestBlock {
    /// The test's name.
    pub name: String,
    /// The span of the name's literal.
    pub name_span: Span,
    /// Its statements in order.
    pub stmts: Vec<TestStmt>,
    /// The whole block.
    pub span: Span,
}

/// One line of a test block.
#[derive(Debug, Clone, PartialEq)]
pub struct TestStmt {
    /// What the line says.
    pub kind: TestStmtKind,
    /// The whole line.
    pub span: Span,
}

/// The forms of a test line.
#[derive(Debug, Clone, PartialEq)]
pub enum TestStmtKind {
    /// `message "path.eml"` (a path, relative to the file).
    MessageFile(String),
    /// `message """raw text"""` (the message itself, not interpolated).
    MessageText(String),
    /// `envelope [from EXPR] [to EXPR]`.
    Envelope {
        /// The envelope sender.
        from: Option<Expr>,
        /// The envelope recipients (a string or a list).
        to: Option<Expr>,
    },
    /// `client [ip EXPR] [helo EXPR]`.
    Client {
        /// The client address: an IP literal or a string.
        ip: Option<Expr>,
        /// The HELO name.
        helo: Option<Expr>,
    },
    /// `now "2024-12-20T18:00:00Z"`: the clock of the evaluation.
    Now(Expr),
    /// `recipient "bob@example.com"`: the copy being delivered.
    Recipient(Expr),
    /// `rate "KEY" = N`: the count under KEY before this message.
    Rate {
        /// The counter's key.
        key: Expr,
        /// How many messages carried it already.
        count: Expr,
    },
    /// `duplicate "KEY"`: a copy carrying KEY was already delivered.
    Duplicate(Expr),
    /// `classify NAME "class" CONFIDENCE`: the classifier's answer.
    Classify {
        /// The classifier.
        name: Ident,
        /// The class it answers.
        class: Expr,
        /// Its confidence, 0 to 1.
        confidence: Expr,
    },
    /// `expect [not] ...`.
    Expect {
        /// `not` was written.
        negated: bool,
        /// What is expected.
        what: Expectation,
    },
}

/// What an `expect` line checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Expectation {
    /// `expect verdict reject [550]`.
    Verdict {
        /// The verdict's word.
        verdict: Ident,
        /// The SMTP code, if written.
        code: Option<(i64, Span)>,
    },
    /// `expect stage rcpt`.
    Stage(Ident),
    /// `expect score >= 8`.
    Score {
        /// The comparison (`==`, `!=`, `<`, `<=`, `>`, `>=`).
        op: CompareOp,
        /// The number compared with (possibly signed).
        value: Expr,
    },
    /// `expect matched billing`.
    Matched(Ident),
    /// `expect ACTION ARGS...`: `tag "x"`, `folder "X"`,
    /// `add_header "N" "V"`, ... (the checker knows which words are valid).
    Action(Action),
}

impl File {
    /// Sets every span in the tree to `0..0`, so that two trees can be
    /// compared for meaning only (the formatter's tests compare
    /// `parse(format(x))` with `parse(x)` this way).
    pub fn strip_spans(&mut self) {
        /// Empties each span it is shown.
        struct Strip;
        impl VisitMut for Strip {
            fn visit_span(&mut self, span: &mut Span) {
                *span = Span::default();
            }
        }
        Strip.visit_file(self);
    }
}
