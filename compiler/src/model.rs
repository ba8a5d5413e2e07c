//! The compiler's model of names, read-only, for every tool that needs to
//! know what a name means: what a file declares ([`Declarations`]) and how
//! a name resolves in a file ([`Scope`]). The checker resolves through it,
//! and so does the language server, so the editor and `weir check` never
//! disagree about a name.
//!
//! The rules (docs/language.md, "Declarations"): rules, constants, lists, maps,
//! functions and templates share one namespace; a file sees its own names
//! and those its direct imports declare; its own name wins over an
//! imported one; a name that two imports both declare is ambiguous.

use std::collections::HashSet;

use weir_grammar::ast::{self, Item, Span};

/// What kind of thing a name declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeclKind {
    /// `let NAME = ...`
    Let,
    /// `list NAME = file "..."`
    List,
    /// `map NAME = file "..."` or `map NAME = {...}`
    Map,
    /// `classifier NAME = learned [...]`
    Classifier,
    /// `fn NAME(...) = ...`
    Fn,
    /// `template NAME { ... }`
    Template,
    /// `rule NAME { ... }`
    Rule,
}

impl DeclKind {
    /// The word for messages (`constant`, `list`, `function`, ...).
    pub fn word(self) -> &'static str {
        match self {
            DeclKind::Let => "constant",
            DeclKind::List => "list",
            DeclKind::Map => "map",
            DeclKind::Classifier => "classifier",
            DeclKind::Fn => "function",
            DeclKind::Template => "template",
            DeclKind::Rule => "rule",
        }
    }
}

/// One declared name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declaration {
    /// What it declares.
    pub kind: DeclKind,
    /// The name.
    pub name: String,
    /// Where the name is written in the declaration.
    pub name_span: Span,
    /// The whole declaration.
    pub span: Span,
    /// Its index among the file's items.
    pub item: usize,
}

/// What one file declares, in source order.
#[derive(Debug, Clone, Default)]
pub struct Declarations {
    /// The first declaration of each name.
    list: Vec<Declaration>,
    /// foldhash: looked up for every name resolved, much cheaper than
    /// SipHash on short names.
    by_name: foldhash::HashMap<String, usize>,
    /// Later declarations of a name already declared, each with the index
    /// (in `list`) of the first.
    duplicates: Vec<(Declaration, usize)>,
}

impl Declarations {
    /// The declarations of a parsed file.
    pub fn of(file: &ast::File) -> Declarations {
        let mut out = Declarations::default();
        for (item, decl) in file.items.iter().enumerate() {
            let (kind, ident) = match decl {
                Item::Let(d) => (DeclKind::Let, &d.name),
                Item::List(d) => (DeclKind::List, &d.name),
                Item::Map(d) => (DeclKind::Map, &d.name),
                Item::Classifier(d) => (DeclKind::Classifier, &d.name),
                Item::Fn(d) => (DeclKind::Fn, &d.name),
                Item::Template(d) => (DeclKind::Template, &d.name),
                Item::Rule(d) => (DeclKind::Rule, &d.name),
                Item::Import(_) | Item::Test(_) => continue,
            };
            let declaration = Declaration {
                kind,
                name: ident.name.clone(),
                name_span: ident.span,
                span: decl.span(),
                item,
            };
            match out.by_name.get(&ident.name) {
                Some(&first) => out.duplicates.push((declaration, first)),
                None => {
                    out.by_name.insert(ident.name.clone(), out.list.len());
                    out.list.push(declaration);
                }
            }
        }
        out
    }

    /// The file's own declaration of `name` (the first, if repeated).
    pub fn get(&self, name: &str) -> Option<&Declaration> {
        self.by_name.get(name).map(|&i| &self.list[i])
    }

    /// How many names the file declares.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the file declares nothing.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The first declaration of each name, in source order.
    pub fn iter(&self) -> impl Iterator<Item = &Declaration> {
        self.list.iter()
    }

    /// Each repeated declaration with the first of its name.
    pub fn duplicates(&self) -> impl Iterator<Item = (&Declaration, &Declaration)> {
        self.duplicates
            .iter()
            .map(|(d, first)| (d, &self.list[*first]))
    }
}

/// What a name means in a file.
#[derive(Debug, Clone, Copy)]
pub enum Resolution<'a> {
    /// Declared by the file itself (`None`) or by its import number `i`.
    Found(Option<usize>, &'a Declaration),
    /// Declared by two of its imports (their numbers and declarations).
    Ambiguous((usize, &'a Declaration), (usize, &'a Declaration)),
    /// Not declared where the file can see it.
    NotFound,
}

/// The names one file sees: its own, then its direct imports'.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    /// The file's own declarations.
    pub own: &'a Declarations,
    /// Its direct imports' declarations, in import order.
    pub imports: Vec<&'a Declarations>,
}

impl<'a> Scope<'a> {
    /// What `name` means in the file.
    pub fn resolve(&self, name: &str) -> Resolution<'a> {
        if let Some(d) = self.own.get(name) {
            return Resolution::Found(None, d);
        }
        let mut found: Option<(usize, &'a Declarations, &'a Declaration)> = None;
        for (i, &import) in self.imports.iter().enumerate() {
            let Some(d) = import.get(name) else {
                continue;
            };
            match found {
                // The same file imported twice is one declaration.
                Some((first, file, fd)) if !std::ptr::eq(file, import) => {
                    return Resolution::Ambiguous((first, fd), (i, d));
                }
                Some(_) => {}
                None => found = Some((i, import, d)),
            }
        }
        found.map_or(Resolution::NotFound, |(i, _, d)| {
            Resolution::Found(Some(i), d)
        })
    }

    /// Every name the file sees, its own first, each name once (an
    /// imported name hidden by its own or an earlier import's is left
    /// out), with the import it comes from (`None`: the file's own).
    pub fn visible(&self) -> Vec<(Option<usize>, &'a Declaration)> {
        let mut seen: HashSet<&str> = self.own.iter().map(|d| d.name.as_str()).collect();
        let mut out: Vec<(Option<usize>, &'a Declaration)> =
            self.own.iter().map(|d| (None, d)).collect();
        for (i, import) in self.imports.iter().enumerate() {
            for d in import.iter() {
                if seen.insert(d.name.as_str()) {
                    out.push((Some(i), d));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decls(text: &str) -> Declarations {
        let (file, diagnostics) = weir_grammar::parse(text, "f.flow");
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        Declarations::of(&file)
    }

    #[test]
    fn own_names_win_then_imports_and_two_imports_are_ambiguous() {
        let own = decls("let a = 1\nlet a = 2\nrule r { then tag \"x\" }");
        let one = decls("let a = 3\nlet b = 4\nfn c(x: int) = x > 1");
        let two = decls("let b = 5");
        assert_eq!(own.len(), 2);
        let (second, first) = own.duplicates().next().expect("a repeated name");
        assert_eq!((second.item, first.item), (1, 0));

        let scope = Scope {
            own: &own,
            imports: vec![&one, &two],
        };
        assert!(matches!(scope.resolve("a"), Resolution::Found(None, d) if d.item == 0));
        assert!(
            matches!(scope.resolve("c"), Resolution::Found(Some(0), d) if d.kind == DeclKind::Fn)
        );
        assert!(matches!(
            scope.resolve("b"),
            Resolution::Ambiguous((0, _), (1, _))
        ));
        assert!(matches!(scope.resolve("zz"), Resolution::NotFound));
        let visible: Vec<&str> = scope
            .visible()
            .iter()
            .map(|(_, d)| d.name.as_str())
            .collect();
        assert_eq!(visible, ["a", "r", "b", "c"]);

        // One file reached twice is one declaration, not two.
        let twice = Scope {
            own: &own,
            imports: vec![&two, &two],
        };
        assert!(matches!(twice.resolve("b"), Resolution::Found(Some(0), _)));
    }
}
