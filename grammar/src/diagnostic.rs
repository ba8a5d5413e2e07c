//! The one diagnostic type of Weir, and its rendering.
//!
//! Parse errors (here), checker errors and warnings (in the compiler) and
//! the language server all use [`Diagnostic`]. Rendering follows
//! LANGUAGE.md §7: a stable code, `file:line:col`, the source excerpt with a
//! caret under the span, and a hint where one exists.

use crate::ast::Span;

/// How serious a diagnostic is. Warnings never change an exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// The ruleset cannot be used.
    Error,
    /// Something is probably wrong, but the ruleset is usable.
    Warning,
}

/// A secondary location that explains a diagnostic ("first declared here").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    /// The file the span is in (as given to the compiler).
    pub file: String,
    /// Where.
    pub span: Span,
    /// What this place has to do with the diagnostic.
    pub message: String,
}

/// One error or warning about a `.flow` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The stable code: `E0xxx` for errors, `W0xxx` for warnings
    /// (listed in `docs/diagnostics.md`).
    pub code: &'static str,
    /// One sentence saying what is wrong.
    pub message: String,
    /// The file it is about (as given to the compiler, e.g. a relative path).
    pub file: String,
    /// The primary span the caret points at.
    pub span: Span,
    /// The label printed under the caret, if any.
    pub label: Option<String>,
    /// A hint such as "did you mean 'envelope.from'?".
    pub hint: Option<String>,
    /// Other places that explain the diagnostic.
    pub related: Vec<Related>,
}

impl Diagnostic {
    /// An error with a code, a message, and where it is.
    pub fn error(code: &'static str, message: impl Into<String>, file: &str, span: Span) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            file: file.to_string(),
            span,
            label: None,
            hint: None,
            related: Vec::new(),
        }
    }

    /// A warning with a code, a message, and where it is.
    pub fn warning(code: &'static str, message: impl Into<String>, file: &str, span: Span) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message, file, span)
        }
    }

    /// Adds the label under the caret.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a related location.
    pub fn with_related(mut self, file: &str, span: Span, message: impl Into<String>) -> Self {
        self.related.push(Related {
            file: file.to_string(),
            span,
            message: message.into(),
        });
        self
    }

    /// Whether this is an error (as opposed to a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// 1-based line and column (in characters) of a byte offset in `source`.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..floor_char_boundary(source, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
