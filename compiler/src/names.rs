//! Name resolution (docs/language.md ("Declarations")): one namespace for rules, constants,
//! lists, functions and templates; a file sees its own names and those its
//! direct imports declare; a local name shadows an imported one (with a
//! warning); a name two imports both declare is ambiguous where it is used.
//! A stdlib module may also read names the files importing it must declare
//! (`stdlib/auth`'s `trusted_authserv`: `weir_stdlib::modules::requires`).

use weir_grammar::Diagnostic;
use weir_grammar::ast::{Item, Span};

use crate::codes;
use crate::load::Loaded;
use crate::model::{self, Declaration, Declarations, Scope};
use weir_stdlib::modules::{self, Requirement};

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
    /// Per unit: the units that import it directly, in load order.
    importers: Vec<Vec<usize>>,
    /// Per unit: the names a stdlib module requires of its importers, its
    /// own and those of the stdlib modules it imports.
    required: Vec<Vec<Requirement>>,
    /// Per unit: whether it is a stdlib module.
    stdlib: Vec<bool>,
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
        let imports: Vec<Vec<usize>> = loaded.units.iter().map(|u| u.imports.clone()).collect();
        let importers = (0..loaded.units.len())
            .map(|u| {
                (0..imports.len())
                    .filter(|&i| imports[i].contains(&u))
                    .collect()
            })
            .collect();
        let scopes = Scopes {
            files,
            required: requirements(loaded, &imports),
            imports,
            importers,
            stdlib: loaded.units.iter().map(|u| u.stdlib).collect(),
        };
        scopes.check_requirements(loaded, diagnostics);
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

    /// The declaration of `name` that a stdlib module requires, in the
    /// first file importing it that declares it (through the stdlib modules
    /// that import it, for `stdlib/spam`, which imports `stdlib/auth`), of
    /// any kind.
    fn declared_for(&self, unit: usize, name: &str) -> Option<Decl> {
        if !self.required[unit].iter().any(|r| r.name == name) {
            return None;
        }
        self.importers[unit].iter().find_map(|&i| {
            self.local(i, name)
                .or_else(|| self.stdlib[i].then(|| self.declared_for(i, name)).flatten())
        })
    }

    /// The constant or list meeting a stdlib module's requirement `name`.
    fn required_decl(&self, unit: usize, name: &str) -> Option<Decl> {
        self.declared_for(unit, name)
            .filter(|d| matches!(d.kind, DeclKind::Let | DeclKind::List))
    }

    /// Whether `name` is a requirement of stdlib module `unit` that no
    /// importer met (the error is reported at the import).
    pub(crate) fn is_missing_requirement(&self, unit: usize, name: &str) -> bool {
        self.required[unit].iter().any(|r| r.name == name)
            && self.required_decl(unit, name).is_none()
    }

    /// A stdlib module's requirement no importer declares is an error at
    /// each `import` of the module; so is one declared as something other
    /// than a constant or a list.
    fn check_requirements(&self, loaded: &Loaded, diagnostics: &mut Vec<Diagnostic>) {
        for (unit, required) in self.required.iter().enumerate() {
            let module = loaded.units[unit].name.trim_end_matches(".flow");
            for req in required {
                if self.required_decl(unit, req.name).is_some() {
                    continue;
                }
                let found = self.declared_for(unit, req.name);
                for &importer in &self.importers[unit] {
                    if self.stdlib[importer] {
                        continue; // reported where that module is imported
                    }
                    let Some(span) =
                        loaded.units[importer]
                            .ast
                            .items
                            .iter()
                            .find_map(|item| match item {
                                Item::Import(i) if i.path == module => Some(i.span),
                                _ => None,
                            })
                    else {
                        continue;
                    };
                    let message = match &found {
                        Some(decl) => format!(
                            "`{module}` needs `{}` to be a `let` or a `list`, not a {}",
                            req.name,
                            decl.kind.word()
                        ),
                        None => format!(
                            "`{module}` needs `{}`, which this file does not declare",
                            req.name
                        ),
                    };
                    diagnostics.push(
                        Diagnostic::error(
                            codes::UNKNOWN_NAME,
                            message,
                            &loaded.units[importer].name,
                            span,
                        )
                        .with_label(format!(
                            "`{module}` reads `{}` from the file that imports it",
                            req.name
                        ))
                        .with_hint(format!("declare `{}`: {}", req.example, req.why)),
                    );
                }
            }
        }
    }

    fn check_rule_names(&self, loaded: &Loaded, diagnostics: &mut Vec<Diagnostic>) {
        let mut seen: foldhash::HashMap<&str, Decl> = foldhash::HashMap::default();
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
            seen.insert(&rule.name.name, decl);
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
            model::Resolution::NotFound => self
                .required_decl(unit, name)
                .map_or(Resolution::NotFound, Resolution::Found),
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

/// Per unit, the names it requires of its importers: a stdlib module's own
/// (`weir_stdlib::modules::requires`) and those of the stdlib modules it
/// imports; none for the ruleset's own files.
fn requirements(loaded: &Loaded, imports: &[Vec<usize>]) -> Vec<Vec<Requirement>> {
    let mut required: Vec<Vec<Requirement>> = loaded
        .units
        .iter()
        .map(|u| {
            let module = u
                .name
                .trim_start_matches("stdlib/")
                .trim_end_matches(".flow");
            if u.stdlib {
                modules::requires(module).to_vec()
            } else {
                Vec::new()
            }
        })
        .collect();
    // Imports form no cycle, so this settles within one pass per unit.
    for _ in 0..loaded.units.len() {
        let mut changed = false;
        for unit in 0..loaded.units.len() {
            if !loaded.units[unit].stdlib {
                continue;
            }
            for &i in &imports[unit] {
                for req in required[i].clone() {
                    if !required[unit].contains(&req) {
                        required[unit].push(req);
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    required
}
