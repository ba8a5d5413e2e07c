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

pub mod ast;
pub mod diagnostic;

pub use diagnostic::{Diagnostic, Severity};
