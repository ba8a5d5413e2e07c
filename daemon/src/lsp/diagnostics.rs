//! Diagnostics from the real compiler, as `weir check` reports them: every
//! open buffer is compiled as an entry file through a loader that serves
//! all open buffers (and the disk for the rest), and each diagnostic is
//! published on the file it is about, with its code, its hint appended to
//! the message, and its related locations.
//!
//! A buffer's own diagnostics come from compiling that buffer; a file that
//! is imported but not open gets those its importers' compilations report
//! about it. A file that had diagnostics and has none any more is published
//! with an empty list, which clears it in the editor.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use lsp_types::{
    Diagnostic as LspDiagnostic, DiagnosticRelatedInformation, DiagnosticSeverity, DiagnosticTag,
    Location, NumberOrString, Url,
};
use weir_compiler::{Compiled, Purpose, compile_for};
use weir_grammar::{Diagnostic, Severity};

use super::text::LineIndex;
use super::workspace::{Documents, FileKey};

/// What to publish: per URI, the version of the buffer (when open) and its diagnostics.
pub(crate) type Publication = BTreeMap<Url, (Option<i32>, Vec<LspDiagnostic>)>;

/// Compiles the open buffer at `path`; `None` if the compiler panicked
/// (a bug there must not take the editor's server down).
pub(crate) fn compile_open(docs: &Documents, path: &Path) -> Option<Compiled> {
    let loader = docs.loader();
    match catch_unwind(AssertUnwindSafe(|| {
        compile_for(path, &loader, Purpose::Check)
    })) {
        Ok(compiled) => Some(compiled),
        Err(_) => {
            eprintln!("weir lsp: the compiler failed on {}", path.display());
            None
        }
    }
}

/// The diagnostics of every open buffer and of the files they import.
pub(crate) fn compute(docs: &Documents) -> Publication {
    let mut out: Publication = BTreeMap::new();
    for (path, doc) in docs.iter() {
        out.entry(doc.uri.clone())
            .or_insert_with(|| (Some(doc.version), Vec::new()));
        let Some(compiled) = compile_open(docs, path) else {
            continue;
        };
        for d in &compiled.diagnostics {
            let Some(file) = file_path(&d.file) else {
                continue;
            };
            if &file != path && docs.get(&file).is_some() {
                continue; // reported by compiling that buffer itself
            }
            let Some(uri) = docs.uri_of(&FileKey::Path(file.clone())) else {
                continue;
            };
            let version = docs.get(&file).map(|doc| doc.version);
            let converted = convert(d, &compiled, docs);
            let list = &mut out.entry(uri).or_insert_with(|| (version, Vec::new())).1;
            if !list.contains(&converted) {
                list.push(converted);
            }
        }
    }
    out
}

/// The path of a file named in a diagnostic; `None` for stdlib modules,
/// which the user cannot open.
fn file_path(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(name);
    path.is_absolute().then_some(path)
}

/// One compiler diagnostic as LSP shows it.
pub(crate) fn convert(d: &Diagnostic, compiled: &Compiled, docs: &Documents) -> LspDiagnostic {
    let range_in = |file: &str, span| {
        let text = compiled.sources.get(file).cloned().or_else(|| {
            let path = file_path(file)?;
            docs.text_of(&FileKey::Path(path))
        });
        LineIndex::new(text.as_deref().unwrap_or("")).range(span)
    };
    let mut message = d.message.clone();
    if let Some(hint) = &d.hint {
        message.push_str("\nhint: ");
        message.push_str(hint);
    }
    let related: Vec<DiagnosticRelatedInformation> = d
        .related
        .iter()
        .filter_map(|r| {
            let uri = docs.uri_of(&FileKey::Path(file_path(&r.file)?))?;
            Some(DiagnosticRelatedInformation {
                location: Location::new(uri, range_in(&r.file, r.span)),
                message: r.message.clone(),
            })
        })
        .collect();
    let unnecessary = matches!(
        d.code,
        weir_compiler::codes::UNUSED | weir_compiler::codes::UNREACHABLE_RULE
    );
    LspDiagnostic {
        range: range_in(&d.file, d.span),
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(d.code.to_string())),
        code_description: None,
        source: Some("weir".to_string()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        tags: unnecessary.then(|| vec![DiagnosticTag::UNNECESSARY]),
        data: None,
    }
}
