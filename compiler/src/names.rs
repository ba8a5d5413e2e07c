//! Name resolution (docs/language.md ("Declarations")): one namespace for rules, constants,
//! lists, functions and templates; a file sees its own names and those its
//! direct imports declare; a local name shadows an imported one (with a
//! warning); a name two imports both declare is ambiguous where it is used.

use std::collections::HashMap;

use weir_grammar::Diagnostic;
use weir_grammar::ast::{Item, Span};

use crate::codes;
use crate::load::Loaded;

/// What kind of thing a name declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum DeclKind {
    Let,
    List,
    Fn,
    Template,
    Rule,
}

impl DeclKind {
    /// The word for messages.
    pub(crate) fn word(self) -> &'static str {
        match self {
            DeclKind::Let => "constant",
            DeclKind::List => "list",
            DeclKind::Fn => "function",
            DeclKind::Template => "template",
            DeclKind::Rule => "rule",
        }
    }
}

/// A declaration: which item of which file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct DeclId {
    pub unit: usize,
    pub item: usize,
}

/// A declared name.
#[derive(Debug, Clone)]
pub(crate) struct Decl {
    pub id: DeclId,
    pub kind: DeclKind,
    pub name: String,
    /// The span of the name where it is declared.
    pub span: Span,
}

/// What a name means in a file.
pub(crate) enum Resolution<'a> {
    Found(&'a Decl),
    Ambiguous(&'a Decl, &'a Decl),
    NotFound,
}

/// The declarations of every file.
pub(crate) struct Scopes {
    /// Per unit: its own declarations by name.
    locals: Vec<HashMap<String, Decl>>,
    /// Per unit: its direct imports.
    imports: Vec<Vec<usize>>,
}

impl Scopes {
    /// Collects declarations; reports duplicates in a file, rule names
    /// repeated across files, and local names shadowing imported ones.
    pub(crate) fn build(loaded: &Loaded, diagnostics: &mut Vec<Diagnostic>) -> Scopes {
        let mut locals = Vec::new();
        for (unit_index, unit) in loaded.units.iter().enumerate() {
            let mut names: HashMap<String, Decl> = HashMap::new();
            for (item_index, item) in unit.ast.items.iter().enumerate() {
                let (kind, ident) = match item {
                    Item::Let(d) => (DeclKind::Let, &d.name),
                    Item::List(d) => (DeclKind::List, &d.name),
                    Item::Fn(d) => (DeclKind::Fn, &d.name),
                    Item::Template(d) => (DeclKind::Template, &d.name),
                    Item::Rule(d) => (DeclKind::Rule, &d.name),
                    Item::Import(_) | Item::Test(_) => continue,
                };
                if let Some(first) = names.get(&ident.name) {
                    diagnostics.push(
                        Diagnostic::error(
                            codes::DUPLICATE_NAME,
                            format!("`{}` is declared twice in this file", ident.name),
                            &unit.name,
                            ident.span,
                        )
                        .with_label(format!("second declaration, as a {}", kind.word()))
                        .with_related(&unit.name, first.span, format!("first declared here, as a {}", first.kind.word()))
                        .with_hint("names of rules, constants, lists, functions and templates share one namespace"),
                    );
                    continue;
                }
                let id = DeclId {
                    unit: unit_index,
                    item: item_index,
                };
                names.insert(
                    ident.name.clone(),
                    Decl {
                        id,
                        kind,
                        name: ident.name.clone(),
                        span: ident.span,
                    },
                );
            }
            locals.push(names);
        }
        let scopes = Scopes {
            locals,
            imports: loaded.units.iter().map(|u| u.imports.clone()).collect(),
        };
        scopes.check_rule_names(loaded, diagnostics);
        scopes.check_shadowing(loaded, diagnostics);
        scopes
    }

    fn check_rule_names(&self, loaded: &Loaded, diagnostics: &mut Vec<Diagnostic>) {
        let mut seen: HashMap<&str, &Decl> = HashMap::new();
        for &(unit, item) in &loaded.rule_order {
            let Some(Item::Rule(rule)) = loaded.units[unit].ast.items.get(item) else {
                continue;
            };
            let Some(decl) = self.locals[unit].get(&rule.name.name) else {
                continue;
            };
            if decl.id != (DeclId { unit, item }) {
                continue; // a duplicate within the file, already reported
            }
            if let Some(first) = seen.get(decl.name.as_str()) {
                if first.id.unit != unit {
                    diagnostics.push(
                        Diagnostic::error(
                            codes::DUPLICATE_RULE,
                            format!("a rule named `{}` already exists in `{}`", decl.name, loaded.units[first.id.unit].name),
                            &loaded.units[unit].name,
                            decl.span,
                        )
                        .with_label("second rule with this name")
                        .with_related(&loaded.units[first.id.unit].name, first.span, "first rule with this name")
                        .with_hint("rule names are unique across the whole ruleset: `matched()`, the audit log and metrics use them"),
                    );
                }
                continue;
            }
            seen.insert(decl.name.as_str(), decl);
        }
    }

    fn check_shadowing(&self, loaded: &Loaded, diagnostics: &mut Vec<Diagnostic>) {
        for (unit, names) in self.locals.iter().enumerate() {
            if loaded.units[unit].stdlib {
                continue;
            }
            let mut sorted: Vec<&Decl> = names.values().collect();
            sorted.sort_by_key(|d| d.span.start);
            for decl in sorted {
                let Some(imported) = self.imports[unit]
                    .iter()
                    .find_map(|&i| self.locals[i].get(&decl.name))
                else {
                    continue;
                };
                if decl.kind == DeclKind::Rule && imported.kind == DeclKind::Rule {
                    continue; // two rules of one name: an error of its own
                }
                diagnostics.push(
                    Diagnostic::warning(
                        codes::SHADOWED_NAME,
                        format!(
                            "`{}` shadows the {} of the same name in `{}`",
                            decl.name,
                            imported.kind.word(),
                            loaded.units[imported.id.unit].name
                        ),
                        &loaded.units[unit].name,
                        decl.span,
                    )
                    .with_label("this declaration hides the imported one in this file")
                    .with_related(
                        &loaded.units[imported.id.unit].name,
                        imported.span,
                        "imported declaration",
                    ),
                );
            }
        }
    }

    /// What `name` means in `unit`.
    pub(crate) fn resolve(&self, unit: usize, name: &str) -> Resolution<'_> {
        if let Some(decl) = self.locals[unit].get(name) {
            return Resolution::Found(decl);
        }
        let mut found: Option<&Decl> = None;
        for &import in &self.imports[unit] {
            if let Some(decl) = self.locals[import].get(name) {
                match found {
                    Some(first) if first.id != decl.id => {
                        return Resolution::Ambiguous(first, decl);
                    }
                    _ => found = Some(decl),
                }
            }
        }
        found.map_or(Resolution::NotFound, Resolution::Found)
    }

    /// Every name visible in `unit` (for "did you mean" hints).
    pub(crate) fn visible(&self, unit: usize) -> Vec<&Decl> {
        let mut all: Vec<&Decl> = self.locals[unit].values().collect();
        for &import in &self.imports[unit] {
            all.extend(self.locals[import].values());
        }
        all
    }

    /// Every declaration of every file.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Decl> {
        self.locals.iter().flat_map(|m| m.values())
    }

    /// The declaration of a rule with this name anywhere in the ruleset.
    pub(crate) fn rule_anywhere(&self, name: &str) -> Option<&Decl> {
        self.locals
            .iter()
            .filter_map(|m| m.get(name))
            .find(|d| d.kind == DeclKind::Rule)
    }
}
