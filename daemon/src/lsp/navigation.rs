//! Go to definition, find references and document symbols.
//!
//! Definitions resolve in this file and its imports (docs/language.md ("Declarations")); a
//! test's `expect matched NAME` may name a rule anywhere in the ruleset, so
//! it falls back to any rule of that name nearby. References are searched
//! in the open buffers, the `.flow` files beside the file and the
//! declaration, and everything those import.

use std::collections::HashSet;
use std::rc::Rc;

use lsp_types::{DocumentSymbol, Location, Range, SymbolKind};
use weir_grammar::ast::{Item, Span};

use super::occurrences::{self, Occ, Occurrence, RefKind};
use super::text::LineIndex;
use super::workspace::{DeclKind, ParsedFile, Resolved, World};

/// Every occurrence in `file`, names resolved against what it sees.
pub(crate) fn occurrences_in(world: &World<'_>, file: &Rc<ParsedFile>) -> Vec<Occurrence> {
    let declared: HashSet<String> = world
        .visible(file)
        .into_iter()
        .map(|r| r.decl.name)
        .collect();
    let types = world.types(file);
    occurrences::collect(file, &declared, types.as_deref())
}

/// A rule named `name` in `file`'s scope, else in any file nearby.
pub(crate) fn rule_anywhere(
    world: &World<'_>,
    file: &Rc<ParsedFile>,
    name: &str,
) -> Option<Resolved> {
    if let Some(found) = world
        .resolve(file, name)
        .filter(|r| r.decl.kind == DeclKind::Rule)
    {
        return Some(found);
    }
    world
        .neighbourhood(std::slice::from_ref(&file.key))
        .into_iter()
        .find_map(|f| {
            let decl = f
                .decls
                .iter()
                .find(|d| d.kind == DeclKind::Rule && d.name == name)?
                .clone();
            Some(Resolved { file: f, decl })
        })
}

/// What a declared-name occurrence refers to, in `file`.
fn target(world: &World<'_>, file: &Rc<ParsedFile>, occ: &Occ) -> Option<Resolved> {
    match occ {
        Occ::Ref(RefKind::TestMatched, name) => rule_anywhere(world, file, name),
        Occ::Ref(_, name) | Occ::Decl(_, name) => world.resolve(file, name),
        _ => None,
    }
}

fn location(world: &World<'_>, file: &ParsedFile, span: Span) -> Option<Location> {
    let uri = world.docs().uri_of(&file.key)?;
    Some(Location::new(uri, LineIndex::new(&file.text).range(span)))
}

/// Where the name under `offset` is declared.
pub(crate) fn definition(
    world: &World<'_>,
    file: &Rc<ParsedFile>,
    offset: usize,
) -> Option<Location> {
    let all = occurrences_in(world, file);
    let found = occurrences::at(&all, offset)?;
    match &found.occ {
        Occ::Param { decl, .. } | Occ::Capture { decl, .. } => location(world, file, *decl),
        Occ::Import(key) => {
            let imported = world.file(key)?;
            location(world, &imported, Span::default())
        }
        occ => {
            let resolved = target(world, file, occ)?;
            location(world, &resolved.file, resolved.decl.name_span)
        }
    }
}

/// Every place the name under `offset` is used (and declared, if asked).
pub(crate) fn references(
    world: &World<'_>,
    file: &Rc<ParsedFile>,
    offset: usize,
    include_declaration: bool,
) -> Vec<Location> {
    let all = occurrences_in(world, file);
    let Some(found) = occurrences::at(&all, offset) else {
        return Vec::new();
    };
    match &found.occ {
        Occ::Param { decl, .. } | Occ::Capture { decl, .. } => all
            .iter()
            .filter(|o| match &o.occ {
                Occ::Param { decl: d, .. } | Occ::Capture { decl: d, .. } => d == decl,
                _ => false,
            })
            .filter(|o| include_declaration || o.span.start != decl.start)
            .filter_map(|o| location(world, file, o.span))
            .collect(),
        occ => {
            let Some(wanted) = target(world, file, occ) else {
                return Vec::new();
            };
            let near = [file.key.clone(), wanted.file.key.clone()];
            let mut out = Vec::new();
            for other in world.neighbourhood(&near) {
                for o in occurrences_in(world, &other) {
                    let is_decl = matches!(o.occ, Occ::Decl(..));
                    if (is_decl && !include_declaration)
                        || !matches!(o.occ, Occ::Decl(..) | Occ::Ref(..))
                    {
                        continue;
                    }
                    let Some(resolved) = target(world, &other, &o.occ) else {
                        continue;
                    };
                    if resolved.file.key == wanted.file.key
                        && resolved.decl.name_span == wanted.decl.name_span
                        && let Some(loc) = location(world, &other, o.span)
                    {
                        out.push(loc);
                    }
                }
            }
            out
        }
    }
}

/// The outline of a file: every declaration and test, in order (imports
/// are not declarations: they name no symbol).
pub(crate) fn symbols(file: &ParsedFile) -> Vec<DocumentSymbol> {
    let index = LineIndex::new(&file.text);
    let mut out = Vec::new();
    for item in &file.ast.items {
        let (name, name_span, kind, detail) = match item {
            Item::Import(_) => continue,
            Item::Let(d) => (
                d.name.name.clone(),
                d.name.span,
                SymbolKind::CONSTANT,
                "let",
            ),
            Item::List(d) => (d.name.name.clone(), d.name.span, SymbolKind::ARRAY, "list"),
            Item::Map(d) => (d.name.name.clone(), d.name.span, SymbolKind::OBJECT, "map"),
            Item::Classifier(d) => (
                d.name.name.clone(),
                d.name.span,
                SymbolKind::OBJECT,
                "classifier",
            ),
            Item::Fn(d) => (d.name.name.clone(), d.name.span, SymbolKind::FUNCTION, "fn"),
            Item::Template(d) => (
                d.name.name.clone(),
                d.name.span,
                SymbolKind::OBJECT,
                "template",
            ),
            Item::Rule(d) => (d.name.name.clone(), d.name.span, SymbolKind::EVENT, "rule"),
            Item::Test(t) => (t.name.clone(), t.name_span, SymbolKind::METHOD, "test"),
        };
        let range: Range = index.range(item.span());
        #[allow(deprecated)] // `deprecated` is a required field of the type
        out.push(DocumentSymbol {
            name,
            detail: Some(detail.to_string()),
            kind,
            tags: None,
            deprecated: None,
            range,
            selection_range: index.range(name_span),
            children: None,
        });
    }
    out
}
