//! The type the checker gave each expression, by file and span: what the
//! language server shows on hover and completes members of, so the editor
//! and the compiler never disagree about a type.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use weir_grammar::ast::Span;
use weir_stdlib::Type;

/// The checked expressions' types of every file of a compilation.
#[derive(Debug, Clone, Default)]
pub struct ExprTypes {
    /// What the checker recorded: (unit, span, type).
    recorded: Vec<(usize, Span, Type)>,
    /// Each recorded unit's file name, by unit.
    names: BTreeMap<usize, String>,
    /// By file name and span, the index in `recorded` of the type there.
    /// Built on the first lookup: only the language server looks types
    /// up, and with 10,000 rules building it was a few milliseconds of
    /// every (re)load.
    index: OnceLock<Index>,
}

/// By file name, then span (start, end): an index in the recorded types.
type Index = BTreeMap<String, HashMap<(usize, usize), usize>>;

impl ExprTypes {
    /// The table of what the checker recorded: (file, span, type), files
    /// named by `file_name`.
    pub(crate) fn new(
        recorded: Vec<(usize, Span, Type)>,
        file_name: impl Fn(usize) -> String,
    ) -> ExprTypes {
        let mut names = BTreeMap::new();
        for (unit, _, _) in &recorded {
            names.entry(*unit).or_insert_with(|| file_name(*unit));
        }
        ExprTypes {
            recorded,
            names,
            index: OnceLock::new(),
        }
    }

    /// The type of the expression spanning exactly `span` in `file` (the
    /// name diagnostics use), if the checker typed one there.
    pub fn at(&self, file: &str, span: Span) -> Option<&Type> {
        let i = *self.index().get(file)?.get(&(span.start, span.end))?;
        self.recorded.get(i).map(|(_, _, ty)| ty)
    }

    /// The index, built now if this is the first lookup: the latest type
    /// recorded at a span wins, and a unit's table replaces an earlier
    /// unit's of the same name.
    fn index(&self) -> &Index {
        self.index.get_or_init(|| {
            let mut by_unit: BTreeMap<usize, HashMap<(usize, usize), usize>> = BTreeMap::new();
            for (i, (unit, span, _)) in self.recorded.iter().enumerate() {
                by_unit
                    .entry(*unit)
                    .or_default()
                    .insert((span.start, span.end), i);
            }
            by_unit
                .into_iter()
                .filter_map(|(unit, spans)| Some((self.names.get(&unit)?.clone(), spans)))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Looked up by file name and exact span; the latest type recorded at
    /// a span wins; nothing at a span or file the checker did not type.
    #[test]
    fn types_are_found_by_file_and_span() {
        let names = ["main.flow", "lib.flow"];
        let types = ExprTypes::new(
            vec![
                (0, Span::new(1, 4), Type::Int),
                (1, Span::new(1, 4), Type::Bool),
                (0, Span::new(5, 9), Type::String),
                (0, Span::new(1, 4), Type::Float),
            ],
            |unit| names[unit].to_string(),
        );
        assert_eq!(types.at("main.flow", Span::new(1, 4)), Some(&Type::Float));
        assert_eq!(types.at("main.flow", Span::new(5, 9)), Some(&Type::String));
        assert_eq!(types.at("lib.flow", Span::new(1, 4)), Some(&Type::Bool));
        assert_eq!(types.at("lib.flow", Span::new(5, 9)), None);
        assert_eq!(types.at("other.flow", Span::new(1, 4)), None);
    }
}
