//! The one diagnostic type of Weir, and its rendering.
//!
//! Parse errors (here), checker errors and warnings (in the compiler) and
//! the language server all use [`Diagnostic`]. Rendering follows
//! docs/language.md ("Diagnostics"): a stable code, `file:line:col`, the source excerpt with a
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

/// Renders a diagnostic rustc-style (ASCII, no colour): the header with the
/// code, `--> file:line:col`, the source excerpt with carets under the span
/// and its label, related locations in the same file, and the hint.
///
/// Related locations in other files are listed as notes; use
/// [`render_with`] to show their excerpts too.
pub fn render(diag: &Diagnostic, source: &str) -> String {
    render_with(diag, source, &|_| None)
}

/// [`render`], looking up the text of other files named by related
/// locations through `source_of` (given a file name, its text, if known).
pub fn render_with(
    diag: &Diagnostic,
    source: &str,
    source_of: &dyn Fn(&str) -> Option<String>,
) -> String {
    use codespan_reporting::diagnostic::{Diagnostic as Report, Label};
    use codespan_reporting::files::SimpleFiles;
    use codespan_reporting::term::{self, Chars, Config};

    let mut files = SimpleFiles::new();
    let main = files.add(diag.file.clone(), source.to_string());
    let mut primary = Label::primary(main, clamp(source, diag.span));
    if let Some(label) = &diag.label {
        primary = primary.with_message(label.clone());
    }
    let mut labels = vec![primary];
    let mut notes = Vec::new();
    for related in &diag.related {
        let text = if related.file == diag.file {
            Some(source.to_string())
        } else {
            source_of(&related.file)
        };
        match text {
            Some(text) => {
                let range = clamp(&text, related.span);
                let id = if related.file == diag.file {
                    main
                } else {
                    files.add(related.file.clone(), text)
                };
                labels.push(Label::secondary(id, range).with_message(related.message.clone()));
            }
            None => notes.push(format!("note: {} ({})", related.message, related.file)),
        }
    }
    if let Some(hint) = &diag.hint {
        notes.push(format!("hint: {hint}"));
    }
    let report = match diag.severity {
        Severity::Error => Report::error(),
        Severity::Warning => Report::warning(),
    }
    .with_code(diag.code)
    .with_message(diag.message.clone())
    .with_labels(labels)
    .with_notes(notes);
    let config = Config {
        chars: Chars::ascii(),
        ..Config::default()
    };
    match term::emit_into_string(&config, &files, &report) {
        Ok(text) => text,
        Err(_) => render_plain(diag, source),
    }
}

/// A minimal rendering without excerpt, should codespan refuse the input.
fn render_plain(diag: &Diagnostic, source: &str) -> String {
    let (line, col) = line_col(source, diag.span.start);
    let kind = if diag.is_error() { "error" } else { "warning" };
    let mut out = format!(
        "{kind}[{}]: {}\n  --> {}:{line}:{col}\n",
        diag.code, diag.message, diag.file
    );
    if let Some(hint) = &diag.hint {
        out.push_str(&format!("   = hint: {hint}\n"));
    }
    out
}

/// A span made valid for `source`: inside it and on character boundaries.
fn clamp(source: &str, span: Span) -> std::ops::Range<usize> {
    let start = floor_char_boundary(source, span.start.min(source.len()));
    let mut end = span.end.clamp(start, source.len());
    while end < source.len() && !source.is_char_boundary(end) {
        end += 1;
    }
    start..end
}
