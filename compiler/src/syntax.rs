//! The one place the compiler calls the parser and the renderer of
//! `weir-grammar`, so the rest of the crate depends on their signatures in
//! one spot only.

use weir_grammar::Diagnostic;
use weir_grammar::ast;

/// Parses one file: the declarations that parsed, and syntax diagnostics.
pub(crate) fn parse(source: &str, file: &str) -> (ast::File, Vec<Diagnostic>) {
    weir_grammar::parse(source, file)
}

/// Renders a diagnostic with its excerpt; related locations in other files
/// are looked up through `source_of`.
pub(crate) fn render(
    d: &Diagnostic,
    source: &str,
    source_of: &dyn Fn(&str) -> Option<String>,
) -> String {
    weir_grammar::diagnostic::render_with(d, source, source_of)
}
