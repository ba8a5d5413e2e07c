//! The Flow language's syntax: the pest grammar (`src/flow.pest`, the single
//! source of truth for what parses), the parser that turns text into the
//! [`ast`] with a span on every node, the [`Diagnostic`] type every stage of
//! Weir reports with, and the formatter behind `weir fmt`.
//!
//! ```
//! let (file, diagnostics) = weir_grammar::parse("rule r { when subject contains \"x\" then tag \"x\" }", "r.flow");
//! assert!(diagnostics.is_empty());
//! assert_eq!(file.items.len(), 1);
//! ```
//!
//! Parsing never fails: [`parse`] returns the declarations that parsed and
//! a diagnostic (codes in [`codes`]) for every syntax error. Render one with
//! [`diagnostic::render`]; format a file with [`format::format`].

pub mod ast;
pub mod codes;
pub mod diagnostic;
pub mod format;
pub mod keywords;
pub mod lexer;
mod parser;
pub mod visit;

pub use diagnostic::{Diagnostic, Severity};
pub use parser::{parse, parse_on_threads};
