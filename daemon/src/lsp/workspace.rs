//! The files the server knows: open buffers (the truth while the user
//! edits), the files on disk they import, and the `stdlib/NAME` modules
//! built into the binary; parsed on demand, with the declarations and
//! imports of each, and name resolution as docs/language.md ("Declarations") states it (a file
//! sees its own names and those its direct imports declare).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use lsp_types::Url;
use weir_compiler::loader::MemoryLoader;
use weir_compiler::model::{Declarations, Resolution, Scope};
use weir_compiler::{FsLoader, Loader, relative_to};
use weir_grammar::ast::{self, Item};

/// A file that may be parsed: a path (open or on disk) or a stdlib module.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum FileKey {
    /// A file, by its absolute path.
    Path(PathBuf),
    /// `stdlib/NAME`, by `NAME`.
    Stdlib(String),
}

impl FileKey {
    /// How the compiler names the file in diagnostics.
    pub(crate) fn display_name(&self) -> String {
        match self {
            FileKey::Path(p) => p.display().to_string(),
            FileKey::Stdlib(name) => format!("stdlib/{name}.flow"),
        }
    }

    /// The file an `import "..."` in this file names.
    pub(crate) fn import(&self, written: &str) -> Option<FileKey> {
        if let Some(module) = written.strip_prefix("stdlib/") {
            return Some(FileKey::Stdlib(
                module.strip_suffix(".flow").unwrap_or(module).to_string(),
            ));
        }
        let FileKey::Path(base) = self else {
            return None;
        };
        let mut relative = written.to_string();
        if !relative.ends_with(".flow") {
            relative.push_str(".flow");
        }
        Some(FileKey::Path(relative_to(base, &relative)))
    }
}

/// One open buffer.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    /// The URI the client named it by.
    pub uri: Url,
    /// The client's version of the text.
    pub version: i32,
    /// The current text.
    pub text: String,
}

/// The open buffers, by the path the compiler will know them by.
#[derive(Debug, Default)]
pub(crate) struct Documents {
    open: BTreeMap<PathBuf, Document>,
}

impl Documents {
    /// The path of a URI: its file path, or for another scheme a stable
    /// made-up path (imports relative to it then resolve nowhere useful,
    /// which is right for an unsaved, untitled buffer).
    pub(crate) fn path_of(uri: &Url) -> PathBuf {
        if uri.scheme() == "file"
            && let Ok(path) = uri.to_file_path()
        {
            return path;
        }
        PathBuf::from(format!(
            "/{}/{}",
            uri.scheme(),
            uri.path().trim_start_matches('/')
        ))
    }

    /// Opens (or replaces) a buffer.
    pub(crate) fn open(&mut self, uri: Url, version: i32, text: String) -> PathBuf {
        let path = Self::path_of(&uri);
        self.open
            .insert(path.clone(), Document { uri, version, text });
        path
    }

    /// Closes a buffer.
    pub(crate) fn close(&mut self, uri: &Url) -> Option<PathBuf> {
        let path = Self::path_of(uri);
        self.open.remove(&path).map(|_| path)
    }

    /// The open buffer at `path`.
    pub(crate) fn get(&self, path: &Path) -> Option<&Document> {
        self.open.get(path)
    }

    /// The open buffer of a URI.
    pub(crate) fn get_mut(&mut self, uri: &Url) -> Option<&mut Document> {
        self.open.get_mut(&Self::path_of(uri))
    }

    /// Every open buffer, by path.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&PathBuf, &Document)> {
        self.open.iter()
    }

    /// A loader serving the open buffers, and the disk for everything else.
    pub(crate) fn loader(&self) -> MemoryLoader<FsLoader> {
        let mut loader = MemoryLoader::with_fallback(FsLoader);
        for (path, doc) in &self.open {
            loader.insert(path.clone(), doc.text.clone());
        }
        loader
    }

    /// The text of a file: its buffer when open, else the disk or the stdlib.
    pub(crate) fn text_of(&self, key: &FileKey) -> Option<String> {
        match key {
            FileKey::Path(path) => match self.open.get(path) {
                Some(doc) => Some(doc.text.clone()),
                None => FsLoader.load(path).ok(),
            },
            FileKey::Stdlib(name) => weir_stdlib::modules::source(name).map(str::to_string),
        }
    }

    /// The URI to show a location in a file by (none for stdlib modules,
    /// which exist only inside the binary).
    pub(crate) fn uri_of(&self, key: &FileKey) -> Option<Url> {
        let FileKey::Path(path) = key else {
            return None;
        };
        if let Some(doc) = self.open.get(path) {
            return Some(doc.uri.clone());
        }
        Url::from_file_path(path).ok()
    }
}

/// What a top-level name declares, and one declared name: the compiler's
/// own model, so the editor resolves names as `weir check` does.
pub(crate) use weir_compiler::model::{DeclKind, Declaration as Decl};

/// A parsed file with its declarations and imports.
#[derive(Debug)]
pub(crate) struct ParsedFile {
    /// Which file.
    pub key: FileKey,
    /// Its text.
    pub text: String,
    /// Its syntax tree (whatever parsed).
    pub ast: ast::File,
    /// Its declarations in source order (the first of a duplicated name wins).
    pub decls: Declarations,
    /// The files it imports directly, in order.
    pub imports: Vec<FileKey>,
}

impl ParsedFile {
    /// Parses `text` as the file `key`.
    pub(crate) fn parse(key: FileKey, text: String) -> ParsedFile {
        let (ast, _) = weir_grammar::parse(&text, &key.display_name());
        let decls = Declarations::of(&ast);
        let imports = ast
            .items
            .iter()
            .filter_map(|item| match item {
                Item::Import(import) => key.import(&import.path),
                _ => None,
            })
            .collect();
        ParsedFile {
            key,
            text,
            ast,
            decls,
            imports,
        }
    }
}

/// A declaration and the file it is in.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The declaring file.
    pub file: Rc<ParsedFile>,
    /// The declaration.
    pub decl: Decl,
}

/// Parsed files for the duration of one request (each parsed once).
pub(crate) struct World<'a> {
    docs: &'a Documents,
    cache: RefCell<HashMap<FileKey, Option<Rc<ParsedFile>>>>,
    /// The compiler's expression types, per file, compiled once per request.
    types: RefCell<HashMap<FileKey, Option<Rc<weir_compiler::ExprTypes>>>>,
}

impl<'a> World<'a> {
    /// The compiler's types of `file`'s expressions: the file compiled as
    /// an entry, as its diagnostics are (`None` for a stdlib module), once
    /// per request however many times it is asked.
    pub(crate) fn types(&self, file: &ParsedFile) -> Option<Rc<weir_compiler::ExprTypes>> {
        if let Some(known) = self.types.borrow().get(&file.key) {
            return known.clone();
        }
        let types = match &file.key {
            FileKey::Path(path) => {
                super::diagnostics::compile_open(self.docs, path).map(|c| Rc::new(c.types))
            }
            FileKey::Stdlib(_) => None,
        };
        self.types
            .borrow_mut()
            .insert(file.key.clone(), types.clone());
        types
    }

    /// A world over the open buffers and the disk.
    pub(crate) fn new(docs: &'a Documents) -> Self {
        World {
            docs,
            cache: RefCell::new(HashMap::new()),
            types: RefCell::new(HashMap::new()),
        }
    }

    /// The buffers.
    pub(crate) fn docs(&self) -> &'a Documents {
        self.docs
    }

    /// The parsed file, if it can be read.
    pub(crate) fn file(&self, key: &FileKey) -> Option<Rc<ParsedFile>> {
        if let Some(found) = self.cache.borrow().get(key) {
            return found.clone();
        }
        let parsed = self
            .docs
            .text_of(key)
            .map(|text| Rc::new(ParsedFile::parse(key.clone(), text)));
        self.cache.borrow_mut().insert(key.clone(), parsed.clone());
        parsed
    }

    /// The files `file` imports that could be read, in import order.
    fn imported(&self, file: &Rc<ParsedFile>) -> Vec<Rc<ParsedFile>> {
        file.imports
            .iter()
            .filter_map(|key| self.file(key))
            .collect()
    }

    /// What `name` means in `file`, as the compiler resolves it: its own
    /// declaration, else its imports' (of two, the first: where the
    /// compiler reports the name as ambiguous, the editor still goes to
    /// one of them).
    pub(crate) fn resolve(&self, file: &Rc<ParsedFile>, name: &str) -> Option<Resolved> {
        let imported = self.imported(file);
        let scope = Scope {
            own: &file.decls,
            imports: imported.iter().map(|f| &f.decls).collect(),
        };
        let (import, decl) = match scope.resolve(name) {
            Resolution::Found(import, decl) => (import, decl.clone()),
            Resolution::Ambiguous((i, decl), _) => (Some(i), decl.clone()),
            Resolution::NotFound => return None,
        };
        let file = import.map_or_else(|| file.clone(), |i| imported[i].clone());
        Some(Resolved { file, decl })
    }

    /// Every name visible in `file`, its own first.
    pub(crate) fn visible(&self, file: &Rc<ParsedFile>) -> Vec<Resolved> {
        let imported = self.imported(file);
        let scope = Scope {
            own: &file.decls,
            imports: imported.iter().map(|f| &f.decls).collect(),
        };
        scope
            .visible()
            .into_iter()
            .map(|(import, decl)| Resolved {
                file: import.map_or_else(|| file.clone(), |i| imported[i].clone()),
                decl: decl.clone(),
            })
            .collect()
    }

    /// The files a search for references looks at: the open buffers, the
    /// `.flow` files beside `near`, and everything those import,
    /// transitively.
    pub(crate) fn neighbourhood(&self, near: &[FileKey]) -> Vec<Rc<ParsedFile>> {
        const MAX_FILES: usize = 500;
        let mut todo: Vec<FileKey> = self
            .docs
            .iter()
            .map(|(p, _)| FileKey::Path(p.clone()))
            .collect();
        for key in near {
            todo.push(key.clone());
            if let FileKey::Path(path) = key
                && let Some(dir) = path.parent()
                && let Ok(entries) = std::fs::read_dir(dir)
            {
                let mut siblings: Vec<PathBuf> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "flow"))
                    .collect();
                siblings.sort();
                todo.extend(siblings.into_iter().take(MAX_FILES).map(FileKey::Path));
            }
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        while let Some(key) = todo.pop() {
            if out.len() >= MAX_FILES || !seen.insert(key.clone()) {
                continue;
            }
            if let Some(file) = self.file(&key) {
                todo.extend(file.imports.iter().cloned());
                out.push(file);
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_resolve_like_the_compiler() {
        let main = FileKey::Path(PathBuf::from("/rules/main.flow"));
        assert_eq!(
            main.import("lib"),
            Some(FileKey::Path(PathBuf::from("/rules/lib.flow")))
        );
        assert_eq!(
            main.import("../x/./y.flow"),
            Some(FileKey::Path(PathBuf::from("/x/y.flow")))
        );
        assert_eq!(
            main.import("stdlib/bulk"),
            Some(FileKey::Stdlib("bulk".to_string()))
        );
        assert_eq!(FileKey::Stdlib("bulk".to_string()).import("x"), None);
    }
}
