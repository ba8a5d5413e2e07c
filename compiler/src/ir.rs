//! The lowered form the interpreter runs: names, fields and functions are
//! resolved to indices and values at compile time, types are checked, and
//! every comparison knows its operator's exact meaning. The AST is not
//! consulted at run time. A later engine (the JIT) compiles this same IR,
//! and the interpreter over it is the specification it must agree with.

use weir_grammar::ast::Span;
use weir_stdlib::{Stage, Value};

use crate::decision::{SmolStr, Verdict};

/// An expression.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    /// A value known at compile time (literals, `let`s, `list`s).
    Const(Value),
    /// A field of the message model: an index into the registry's fields.
    Field(usize),
    /// `score`: the sum of the `score` actions so far.
    Score,
    /// `header(NAME)`, or `header(NAME).raw`.
    Header { name: Box<Expr>, raw: bool },
    /// A parameter of the `fn` being evaluated.
    Param(usize),
    /// The element bound by the innermost `some`/`every` being evaluated.
    Element,
    /// `some(LIST, x => BODY)` (`every: false`) or `every(...)`: BODY is
    /// evaluated once per element of LIST, with [`Expr::Element`] bound to
    /// it, until the answer is known.
    Quantified {
        every: bool,
        list: Box<Expr>,
        body: Box<Expr>,
    },
    /// The captures bound by `matches … as NAME` (a slot of the rule).
    Captures(usize),
    /// `.member` of an address, attachment or time, applied to every item
    /// of a list (projection).
    Member(Box<Expr>, &'static str),
    /// `list[i]` or `m[i]`; out of range gives the item type's empty value.
    Index(Box<Expr>, Box<Expr>, Value),
    /// A pure builtin.
    Builtin {
        imp: fn(&[Value]) -> Value,
        args: Vec<Expr>,
    },
    /// A user `fn`: its index.
    CallUser { func: usize, args: Vec<Expr> },
    /// `rate(KEY, WINDOW)`.
    Rate { key: Box<Expr>, window: Box<Expr> },
    /// `duplicate(KEY, WINDOW)`.
    Duplicate { key: Box<Expr>, window: Box<Expr> },
    /// `matched(rule)`: the rule's index in declaration order.
    Matched(usize),
    /// `NAME.class`, `NAME.confidence`, `NAME.probability("c")`: a learned
    /// classifier's answer, read from the transaction.
    Classifier(std::sync::Arc<str>, ClassMember),
    /// `not e`.
    Not(Box<Expr>),
    /// `a and b`.
    And(Box<Expr>, Box<Expr>),
    /// `a or b`.
    Or(Box<Expr>, Box<Expr>),
    /// `a + b`, `a - b` with the operation fixed by the operands' types.
    Arith(Arith, Box<Expr>, Box<Expr>),
    /// `-e` (numbers and durations).
    Neg(Box<Expr>),
    /// A comparison or test.
    Compare(Box<Compare>),
    /// `e exists`.
    Exists(Box<Expr>),
    /// `[a, b]` with non-constant items.
    List(Vec<Expr>),
    /// A string with interpolations.
    Interp(Vec<Part>),
}

impl Expr {
    /// The expressions directly inside this one, in order (a called
    /// `fn`'s body is not inside the call).
    pub(crate) fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Const(_)
            | Expr::Field(_)
            | Expr::Score
            | Expr::Param(_)
            | Expr::Element
            | Expr::Captures(_)
            | Expr::Classifier(..)
            | Expr::Matched(_) => Vec::new(),
            Expr::Header { name: x, .. }
            | Expr::Member(x, _)
            | Expr::Not(x)
            | Expr::Neg(x)
            | Expr::Exists(x) => vec![x],
            Expr::Index(a, b, _)
            | Expr::And(a, b)
            | Expr::Or(a, b)
            | Expr::Arith(_, a, b)
            | Expr::Rate { key: a, window: b }
            | Expr::Duplicate { key: a, window: b }
            | Expr::Quantified {
                list: a, body: b, ..
            } => vec![a, b],
            Expr::Compare(c) => vec![&c.lhs, &c.rhs],
            Expr::Builtin { args, .. } | Expr::CallUser { args, .. } | Expr::List(args) => {
                args.iter().collect()
            }
            Expr::Interp(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    Part::Text(_) => None,
                    Part::Expr(e) => Some(e),
                })
                .collect(),
        }
    }
}

/// What a rule reads of a classifier's answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ClassMember {
    /// `.class`: a string.
    Class,
    /// `.confidence`: a float.
    Confidence,
    /// `.probability("c")`: a float.
    Probability(String),
}

/// One piece of an interpolated string.
#[derive(Debug, Clone)]
pub(crate) enum Part {
    /// Literal text.
    Text(String),
    /// `${expr}`, rendered with `Value::to_text`.
    Expr(Expr),
}

/// The arithmetic operations, chosen by the checker from the operand types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arith {
    /// int + int.
    AddInt,
    /// number + number, one of them a float.
    AddFloat,
    /// string + string.
    Concat,
    /// int - int.
    SubInt,
    /// number - number, one of them a float.
    SubFloat,
    /// time - time: a duration.
    TimeDiff,
    /// time + duration.
    TimePlus,
    /// time - duration.
    TimeMinus,
    /// duration + duration.
    DurAdd,
    /// duration - duration.
    DurSub,
}

/// A comparison operator with negation factored out (`!=` is `not ==`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    StartsWith,
    EndsWith,
    Matches,
    In,
    /// `under`: a domain equal to an entry or below it at a label boundary.
    Under,
}

/// `[all] lhs OP rhs [as NAME]`.
#[derive(Debug, Clone)]
pub(crate) struct Compare {
    pub op: CmpOp,
    /// The whole test is negated (`!=`).
    pub negated: bool,
    /// `all`: every element of the left side must pass (and there must be one).
    pub all: bool,
    pub lhs: Expr,
    pub rhs: Expr,
    /// For `matches … as NAME`: the capture slot to fill.
    pub bind: Option<usize>,
    /// The left side as written, for `--explain`.
    pub source: String,
}

/// A statement of an action block.
#[derive(Debug, Clone)]
pub(crate) enum Stmt {
    Action(Action),
    If {
        cond: Expr,
        then: Vec<Stmt>,
        otherwise: Vec<Stmt>,
    },
}

impl Stmt {
    /// Calls `f` on every action of the statement, in branches too.
    pub(crate) fn each_action(&self, f: &mut dyn FnMut(&Action)) {
        match self {
            Stmt::Action(a) => f(a),
            Stmt::If {
                then, otherwise, ..
            } => {
                for stmt in then.iter().chain(otherwise) {
                    stmt.each_action(f);
                }
            }
        }
    }
}

impl Stmt {
    /// Calls `f` on every expression of the statement: conditions of
    /// `if`s and the arguments of every action, in branches too.
    pub(crate) fn each_expr<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        match self {
            Stmt::Action(a) => a.exprs().into_iter().for_each(f),
            Stmt::If {
                cond,
                then,
                otherwise,
            } => {
                f(cond);
                for stmt in then.iter().chain(otherwise) {
                    stmt.each_expr(f);
                }
            }
        }
    }
}

impl Action {
    /// The expressions among its arguments (a template's are its own).
    pub(crate) fn exprs(&self) -> Vec<&Expr> {
        match self {
            Action::Verdict { text, .. } => text.iter().collect(),
            Action::AddHeader(a, b) | Action::SetHeader(a, b) => vec![a, b],
            Action::RemoveHeader(e)
            | Action::PrependSubject(e)
            | Action::AddRcpt(e)
            | Action::RemoveRcpt(e)
            | Action::Redirect(e)
            | Action::Fileinto(e)
            | Action::Flag(e)
            | Action::Tag(e)
            | Action::Score(e)
            | Action::Log(e) => vec![e],
            Action::Notify { channel, with, .. } => std::iter::once(channel)
                .chain(with.iter().map(|(_, e)| e))
                .collect(),
            Action::Reply(_, every) => every.iter().collect(),
            Action::Keep | Action::Stop => Vec::new(),
        }
    }
}

/// An action with its arguments lowered.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// A verdict; `code`/`status`/`text` already defaulted where the
    /// language gives defaults.
    Verdict {
        verdict: Verdict,
        code: u16,
        status: String,
        text: Option<Expr>,
    },
    AddHeader(Expr, Expr),
    SetHeader(Expr, Expr),
    RemoveHeader(Expr),
    PrependSubject(Expr),
    AddRcpt(Expr),
    RemoveRcpt(Expr),
    Redirect(Expr),
    Fileinto(Expr),
    Flag(Expr),
    Keep,
    Tag(Expr),
    Score(Expr),
    Notify {
        channel: Expr,
        with: Vec<(String, Expr)>,
        template: Option<usize>,
    },
    /// `reply template NAME [every DURATION]`: the template's index and the
    /// period, when written.
    Reply(usize, Option<Expr>),
    Log(Expr),
    Stop,
}

/// A rule, lowered.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    /// Index in declaration (load) order, used by `matched()`.
    pub id: usize,
    /// A `SmolStr`, as in the decision: recording it there when the rule
    /// holds copies no text.
    pub name: SmolStr,
    pub priority: i64,
    pub shadow: bool,
    pub stage: Stage,
    /// The LMTP-only fields and actions it uses (docs/language.md ("Diagnostics"): the
    /// daemon warns when only the milter serves such a rule).
    pub lmtp_only: Vec<&'static str>,
    pub file: String,
    pub span: Span,
    pub line: usize,
    pub when: Option<Expr>,
    pub then: Vec<Stmt>,
    pub otherwise: Option<Vec<Stmt>>,
    /// How many capture slots the rule uses.
    pub captures: usize,
}

/// A user `fn`, lowered.
#[derive(Debug, Clone)]
pub(crate) struct Function {
    pub body: Expr,
}

/// A template, lowered.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub name: String,
    pub subject: Option<Expr>,
    pub body: Option<Expr>,
    /// `from`: the auto-reply's sender, in place of the recipient.
    pub from: Option<Expr>,
    /// `addresses`: more of the recipient's addresses, comma-separated.
    pub addresses: Option<Expr>,
}
