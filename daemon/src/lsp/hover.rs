//! Hover: the documentation of the word under the cursor, from the builtin
//! registry for fields, members, functions and actions, and from the
//! source for the user's declarations (the declaration's first line and
//! the `#` comment block above it).

use std::rc::Rc;

use lsp_types::{Hover, HoverContents, MarkupContent, MarkupKind};
use weir_stdlib::registry::{self, FunctionImpl, registry as reg};

use super::navigation::occurrences_in;
use super::occurrences::{self, Occ, RefKind};
use super::text::LineIndex;
use super::workspace::{FileKey, ParsedFile, Resolved, World};

/// The hover at `offset` in `file`, if the word there means something.
pub(crate) fn hover(world: &World<'_>, file: &Rc<ParsedFile>, offset: usize) -> Option<Hover> {
    let all = occurrences_in(world, file);
    let found = occurrences::at(&all, offset)?;
    let markdown = match &found.occ {
        Occ::Field(path) => field_doc(path)?,
        Occ::Member { owner, name } => {
            let (_, ty, doc) = registry::members(owner)
                .into_iter()
                .find(|(n, _, _)| n == name)?;
            format!("```flow\n({owner}).{name}: {ty}\n```\n{doc}")
        }
        Occ::HeaderRaw => {
            "```flow\nheader(\"Name\").raw: list<string>\n```\nEvery occurrence of the header, \
                           as written: unfolded and trimmed, but not RFC 2047-decoded."
                .to_string()
        }
        Occ::Builtin(name) => function_doc(name)?,
        Occ::Action(name) => action_doc(name)?,
        Occ::Decl(_, name) | Occ::Ref(_, name) => {
            let resolved = world.resolve(file, name).or_else(|| match &found.occ {
                Occ::Ref(RefKind::TestMatched, _) => {
                    super::navigation::rule_anywhere(world, file, name)
                }
                _ => None,
            })?;
            declaration_doc(&resolved, &file.key)
        }
        Occ::Param { name, ty, .. } => format!("```flow\n(parameter) {name}: {ty}\n```"),
        Occ::Capture { name, .. } => format!(
            "```flow\n(capture) {name}\n```\nThe groups of the `matches … as {name}` regex: `{name}[0]` is the whole \
             match, `{name}[1]` the first group. Visible in the rule's `then` actions."
        ),
        Occ::Import(key) => import_doc(world, key),
    };
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: markdown,
        }),
        range: Some(LineIndex::new(&file.text).range(found.span)),
    })
}

/// A field's type, doc and stage.
pub(crate) fn field_doc(path: &str) -> Option<String> {
    let field = reg().field(path)?;
    let stage = match field.stage {
        Some(stage) => format!("stage: `{stage}`"),
        None => "stage: the latest of the earlier rules with `score` actions".to_string(),
    };
    let lmtp = if field.lmtp_only { " · LMTP only" } else { "" };
    Some(format!(
        "```flow\n{path}: {}\n```\n{}\n\n{stage}{lmtp}",
        field.ty, field.doc
    ))
}

/// A builtin function's signature and doc.
pub(crate) fn function_doc(name: &str) -> Option<String> {
    let f = reg().function(name)?;
    // Pure functions are known when their arguments are; the others read
    // the message or the evaluation, and set the rule's stage.
    let stage = match f.imp {
        FunctionImpl::Pure(_) => String::new(),
        FunctionImpl::Matched => "\n\nstage: that of the rule named".to_string(),
        _ => format!("\n\nstage: `{}`", f.stage),
    };
    Some(format!(
        "```flow\n{}\n```\n{}{stage}",
        occurrences::signature(f),
        f.doc
    ))
}

/// An action's usage and doc.
pub(crate) fn action_doc(name: &str) -> Option<String> {
    let a = reg().action(name)?;
    let mut notes = Vec::new();
    if a.verdict {
        notes.push("verdict: ends evaluation");
    }
    if a.lmtp_only {
        notes.push("LMTP only");
    }
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!("\n\n{}", notes.join(" · "))
    };
    Some(format!("```flow\n{}\n```\n{}{notes}", a.usage, a.doc))
}

/// The first line of a declaration and the comment block above it.
pub(crate) fn declaration_doc(resolved: &Resolved, from: &FileKey) -> String {
    let text = &resolved.file.text;
    let start = resolved.decl.span.start.min(text.len());
    let first_line = super::text::line_at(text, start).trim_end();
    let comment = comment_above(text, start);
    let mut out = format!("```flow\n{first_line}\n```");
    if !comment.is_empty() {
        out.push('\n');
        out.push_str(&comment);
    }
    if &resolved.file.key != from {
        out.push_str(&format!(
            "\n\n*declared in `{}`*",
            short_name(&resolved.file.key)
        ));
    }
    out
}

/// The `#` lines right above the line holding `offset`, without the `#`.
pub(crate) fn comment_above(text: &str, offset: usize) -> String {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let mut lines: Vec<&str> = Vec::new();
    for line in text[..line_start].lines().rev() {
        let trimmed = line.trim_start();
        let Some(comment) = trimmed.strip_prefix('#') else {
            break;
        };
        lines.push(comment.strip_prefix(' ').unwrap_or(comment));
    }
    lines.reverse();
    lines.join("\n").trim().to_string()
}

/// A file's name for humans: a stdlib module by its import path, a file by
/// its file name.
fn short_name(key: &FileKey) -> String {
    match key {
        FileKey::Stdlib(name) => format!("stdlib/{name}"),
        FileKey::Path(path) => path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
    }
}

/// An imported file: where it is and its opening comment.
fn import_doc(world: &World<'_>, key: &FileKey) -> String {
    let Some(file) = world.file(key) else {
        return format!("`{}`: cannot be read", key.display_name());
    };
    let mut header: Vec<&str> = Vec::new();
    for line in file.text.lines() {
        let Some(comment) = line.trim_start().strip_prefix('#') else {
            break;
        };
        header.push(comment.strip_prefix(' ').unwrap_or(comment));
    }
    const SHOWN: usize = 12;
    let mut names: Vec<String> = file
        .decls
        .iter()
        .take(SHOWN)
        .map(|d| format!("`{}`", d.name))
        .collect();
    if file.decls.len() > SHOWN {
        names.push(format!("and {} more", file.decls.len() - SHOWN));
    }
    let mut out = format!("`{}`", key.display_name());
    if !header.is_empty() {
        out.push_str("\n\n");
        out.push_str(header.join("\n").trim());
    }
    if !names.is_empty() {
        out.push_str(&format!("\n\ndeclares {}", names.join(", ")));
    }
    out
}
