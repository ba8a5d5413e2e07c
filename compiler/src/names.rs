//! Name resolution (docs/language.md ("Declarations")): one namespace for rules, constants,
//! lists, functions and templates; a file sees its own names and those its
//! direct imports declare; a local name shadows an imported one (with a
//! warning); a name two imports both declare is ambiguous where it is used.

use std::collections::HashMap;

use weir_grammar::Diagnostic;
use weir_grammar::ast::{Item, Span};

use crate::codes;
use crate::load::Loaded;
use crate::model::{self, Declaration, Declarations, Scope};

pub(crate) use crate::model::DeclKind;

/// A declaration: which item of which file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct DeclId {
    pub unit: usize,
    pub item: usize,
}

/// A declared name, with the file it is declared in.
#[derive(Debug, Clone)]
pub(crate) struct Decl {
    pub id: DeclId,
    pub kind: DeclKind,
    pub name: String,
    /// The span of the name where it is declared.
    pub span: Span,
}

impl Decl {
    fn new(unit: usize, d: &Declaration) -> Decl {
        Decl {
            id: DeclId { unit, item: d.item },
            kind: d.kind,
            name: d.name.clone(),
            span: d.name_span,
        }
    }
}

/// What a name means in a file.
pub(crate) enum Resolution {
    Found(Decl),
    Ambiguous(Decl, Decl),
    NotFound,
}

/// The declarations of every file, and what each file imports.
pub(crate) struct Scopes {
    /// Per unit: its declarations, by the model every tool shares.
    files: Vec<Declarations>,
    /// Per unit: its direct imports.
    imports: Vec<Vec<usize>>,
}

impl Scopes {
    /// Collects declarations; reports duplicates in a file, rule names
    /// repeated across files, and local names shadowing imported ones.
    pub(crate) fn build(loaded: &Loaded, diagnostics: &mut Vec<Diagnostic>) -> Scopes {
        let files: Vec<Declarations> = loaded
            .units
            .iter()
            .map(|u| Declarations::of(&u.ast))
            .collect();
        for (unit, decls) in loaded.units.iter().zip(&files) {
            for (second, first) in decls.duplicates() {
                diagnostics.push(
                    Diagnostic::error(
                        codes::DUPLICATE_NAME,
                        format!("`{}` is declared twice in this file", second.name),
                        &unit.name,
                        second.name_span,
                    )
                    .with_label(format!("second declaration, as a {}", second.kind.word()))
                    .with_related(&unit.name, first.name_span, format!("first declared here, as a {}", first.kind.word()))
                    .with_hint("names of rules, constants, lists, functions and templates share one namespace"),
                );
            }
        }
        let scopes = Scopes {
            files,
            imports: loaded.units.iter().map(|u| u.imports.clone()).collect(),
        };
        scopes.check_rule_names(loaded, diagnostics);
        scopes.check_shadowing(loaded, diagnostics);
        scopes
    }

    /// The names `unit` sees, as the shared model resolves them.
    fn scope(&self, unit: usize) -> Scope<'_> {
        Scope {
            own: &self.files[unit],
            imports: self.imports[unit].iter().map(|&i| &self.files[i]).collect(),
        }
    }

    /// The declaration of `name` in `unit` itself.
    fn local(&self, unit: usize, name: &str) -> Option<Decl> {
        self.files[unit].get(name).map(|d| Decl::new(unit, d))
    }

    fn check_rule_names(&self, loaded: &Loaded, diagnostics: &mut Vec<Diagnostic>) {
        let mut seen: HashMap<String, Decl> = HashMap::new();
        for &(unit, item) in &loaded.rule_order {
            let Some(Item::Rule(rule)) = loaded.units[unit].ast.items.get(item) else {
                continue;
            };
            let Some(decl) = self.local(unit, &rule.name.name) else {
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
            seen.insert(decl.name.clone(), decl);
        }
    }

    fn check_shadowing(&self, loaded: &Loaded, diagnostics: &mut Vec<Diagnostic>) {
        for (unit, names) in self.files.iter().enumerate() {
            if loaded.units[unit].stdlib {
                continue;
            }
            for decl in names.iter().map(|d| Decl::new(unit, d)) {
                let Some(imported) = self.imports[unit]
                    .iter()
                    .find_map(|&i| self.local(i, &decl.name))
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
    pub(crate) fn resolve(&self, unit: usize, name: &str) -> Resolution {
        let imports = &self.imports[unit];
        let at = |import: Option<usize>| import.map_or(unit, |i| imports[i]);
        match self.scope(unit).resolve(name) {
            model::Resolution::Found(import, d) => Resolution::Found(Decl::new(at(import), d)),
            model::Resolution::Ambiguous((i, a), (j, b)) => {
                Resolution::Ambiguous(Decl::new(imports[i], a), Decl::new(imports[j], b))
            }
            model::Resolution::NotFound => Resolution::NotFound,
        }
    }

    /// Every name visible in `unit` (for "did you mean" hints).
    pub(crate) fn visible(&self, unit: usize) -> Vec<Decl> {
        let imports = &self.imports[unit];
        self.scope(unit)
            .visible()
            .into_iter()
            .map(|(import, d)| Decl::new(import.map_or(unit, |i| imports[i]), d))
            .collect()
    }

    /// Every declaration of every file.
    pub(crate) fn all(&self) -> impl Iterator<Item = Decl> + '_ {
        self.files
            .iter()
            .enumerate()
            .flat_map(|(unit, decls)| decls.iter().map(move |d| Decl::new(unit, d)))
    }

    /// The declaration of a rule with this name anywhere in the ruleset.
    pub(crate) fn rule_anywhere(&self, name: &str) -> Option<Decl> {
        (0..self.files.len())
            .filter_map(|unit| self.local(unit, name))
            .find(|d| d.kind == DeclKind::Rule)
    }
}
