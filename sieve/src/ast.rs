//! The syntax tree of a Sieve script (RFC 5228 §8.2), with byte spans into
//! the script's text. Identifiers are lower-case (Sieve ignores their case).

use weir_grammar::ast::Span;

/// A whole script: its commands in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// The top-level commands.
    pub commands: Vec<Command>,
}

/// `identifier arguments (";" | block)`: a control command or an action.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// The command's name, lower-case (`if`, `fileinto`, ...).
    pub name: String,
    /// Its arguments and tests.
    pub args: Arguments,
    /// The braced block (for `if`, `elsif`, `else`), if any.
    pub block: Option<Vec<Command>>,
    /// The whole command, up to its `;` or closing brace.
    pub span: Span,
}

/// The arguments of a command or a test.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Arguments {
    /// Tags, numbers, strings and string lists, in order.
    pub args: Vec<Argument>,
    /// The tests: one (`not`, `if`) or a parenthesised list (`anyof`).
    pub tests: Vec<Test>,
}

/// A test: `identifier arguments`.
#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    /// The test's name, lower-case (`header`, `anyof`, ...).
    pub name: String,
    /// Its arguments and nested tests.
    pub args: Arguments,
    /// The whole test.
    pub span: Span,
}

/// One argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Argument {
    /// `:name`, lower-case, without the colon.
    Tag(String, Span),
    /// A number, its `K`/`M`/`G` quantifier applied (saturating).
    Number(u64, Span),
    /// A string (quoted or `text:`).
    Str(SieveString),
    /// `["a", "b"]`.
    List(Vec<SieveString>, Span),
}

impl Argument {
    /// Where the argument was written.
    pub fn span(&self) -> Span {
        match self {
            Argument::Tag(_, s) | Argument::Number(_, s) | Argument::List(_, s) => *s,
            Argument::Str(s) => s.span,
        }
    }
}

/// A string with its escapes (or dot-stuffing) undone.
#[derive(Debug, Clone, PartialEq)]
pub struct SieveString {
    /// The value.
    pub value: String,
    /// The literal as written.
    pub span: Span,
}
