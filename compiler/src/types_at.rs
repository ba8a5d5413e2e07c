//! The type the checker gave each expression, by file and span: what the
//! language server shows on hover and completes members of, so the editor
//! and the compiler never disagree about a type.

use std::collections::{BTreeMap, HashMap};

use weir_grammar::ast::Span;
use weir_stdlib::Type;

/// The checked expressions' types of every file of a compilation.
#[derive(Debug, Clone, Default)]
pub struct ExprTypes {
    files: BTreeMap<String, HashMap<(usize, usize), Type>>,
}

impl ExprTypes {
    /// The table of what the checker recorded: (file, span, type), files
    /// named by `file_name`.
    pub(crate) fn new(
        recorded: Vec<(usize, Span, Type)>,
        file_name: impl Fn(usize) -> String,
    ) -> ExprTypes {
        let mut files: BTreeMap<String, HashMap<(usize, usize), Type>> = BTreeMap::new();
        let mut by_unit: BTreeMap<usize, HashMap<(usize, usize), Type>> = BTreeMap::new();
        for (unit, span, ty) in recorded {
            by_unit
                .entry(unit)
                .or_default()
                .insert((span.start, span.end), ty);
        }
        for (unit, types) in by_unit {
            files.insert(file_name(unit), types);
        }
        ExprTypes { files }
    }

    /// The type of the expression spanning exactly `span` in `file` (the
    /// name diagnostics use), if the checker typed one there.
    pub fn at(&self, file: &str, span: Span) -> Option<&Type> {
        self.files.get(file)?.get(&(span.start, span.end))
    }
}
