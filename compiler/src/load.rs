//! Loading a ruleset's files: the entry file, its imports (depth first,
//! each file once, cycles refused) and the files of `list … = file`
//! declarations. Everything is read through the [`Loader`]; `stdlib/NAME`
//! modules come from `weir_stdlib::modules`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use weir_grammar::Diagnostic;
use weir_grammar::ast::{self, Item, Span};
use weir_stdlib::{Type, Value};

use crate::codes;
use crate::loader::Loader;

/// One `.flow` file of the ruleset.
pub(crate) struct Unit {
    /// The name diagnostics use (`rules/main.flow`, `stdlib/bulk.flow`).
    pub name: String,
    /// The path other paths in it are relative to (`None` for stdlib modules).
    pub path: Option<PathBuf>,
    /// Whether this is a `stdlib/NAME` module.
    pub stdlib: bool,
    /// Its text.
    pub source: String,
    /// Its syntax tree.
    pub ast: ast::File,
    /// The files it imports directly (those that loaded), in order.
    pub imports: Vec<usize>,
    /// Byte offsets where lines start, for line numbers in linear time.
    line_starts: Vec<usize>,
}

impl Unit {
    /// The 1-based line of a byte offset.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.line_starts
            .partition_point(|&start| start <= offset)
            .max(1)
    }
}

/// An external list, read and typed.
pub(crate) struct ListFile {
    /// The list as a value.
    pub value: Value,
    /// `list<cidr>` or `list<string>`.
    pub ty: Type,
}

/// Everything loaded.
pub(crate) struct Loaded {
    /// Every `.flow` file; the entry is unit 0.
    pub units: Vec<Unit>,
    /// Rules in load order: (unit, item index).
    pub rule_order: Vec<(usize, usize)>,
    /// Lists that loaded, by (unit, item index).
    pub lists: HashMap<(usize, usize), ListFile>,
    /// Every file read, with its text: `.flow` files and list files.
    pub files: Vec<(String, String)>,
    /// Load and syntax diagnostics.
    pub diagnostics: Vec<Diagnostic>,
}

/// Loads the entry file and everything it names.
pub(crate) fn load(entry: &Path, loader: &dyn Loader) -> Loaded {
    let mut state = State {
        loader,
        loaded: Loaded {
            units: Vec::new(),
            rule_order: Vec::new(),
            lists: HashMap::new(),
            files: Vec::new(),
            diagnostics: Vec::new(),
        },
        by_key: HashMap::new(),
        stack: Vec::new(),
    };
    let name = entry.display().to_string();
    match loader.load(entry) {
        Ok(source) => {
            state.load_unit(name, Some(entry.to_path_buf()), false, source);
        }
        Err(e) => {
            state.loaded.diagnostics.push(
                Diagnostic::error(
                    codes::CANNOT_READ,
                    format!("cannot read `{name}`: {e}"),
                    &name,
                    Span::default(),
                )
                .with_label("the entry file"),
            );
        }
    }
    state.loaded
}

struct State<'a> {
    loader: &'a dyn Loader,
    loaded: Loaded,
    /// Unit index by file name (each file loads once).
    by_key: HashMap<String, usize>,
    /// The files being loaded, outermost first (for cycle detection).
    stack: Vec<usize>,
}

impl State<'_> {
    fn load_unit(
        &mut self,
        name: String,
        path: Option<PathBuf>,
        stdlib: bool,
        source: String,
    ) -> usize {
        let (ast, diagnostics) = weir_grammar::parse(&source, &name);
        self.loaded.diagnostics.extend(diagnostics);
        let id = self.loaded.units.len();
        self.loaded.files.push((name.clone(), source.clone()));
        self.by_key.insert(name.clone(), id);
        let line_starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        self.loaded.units.push(Unit {
            name,
            path,
            stdlib,
            source,
            ast,
            imports: Vec::new(),
            line_starts,
        });
        self.stack.push(id);
        let items = self.loaded.units[id].ast.items.len();
        for index in 0..items {
            match &self.loaded.units[id].ast.items[index] {
                Item::Import(import) => {
                    let import = import.clone();
                    if let Some(target) = self.import(id, &import)
                        && !self.loaded.units[id].imports.contains(&target)
                    {
                        self.loaded.units[id].imports.push(target);
                    }
                }
                Item::Rule(_) => self.loaded.rule_order.push((id, index)),
                Item::List(list) => {
                    let list = list.clone();
                    self.list(id, index, &list);
                }
                _ => {}
            }
        }
        self.stack.pop();
        id
    }

    /// Resolves and loads one import; the unit it names, if it loaded.
    fn import(&mut self, from: usize, import: &ast::Import) -> Option<usize> {
        let (name, path) = self.import_target(from, import)?;
        if let Some(&existing) = self.by_key.get(&name) {
            if self.stack.contains(&existing) {
                self.import_cycle(from, import, existing, &name);
                return None;
            }
            return Some(existing);
        }
        let stdlib = path.is_none();
        let source = match &path {
            None => self.stdlib_source(from, import, &name)?,
            Some(path) => match self.loader.load(path) {
                Ok(s) => s,
                Err(e) => {
                    self.loaded.diagnostics.push(
                        Diagnostic::error(
                            codes::CANNOT_READ,
                            format!("cannot read `{name}`: {e}"),
                            &self.loaded.units[from].name,
                            import.path_span,
                        )
                        .with_label("imported here"),
                    );
                    return None;
                }
            },
        };
        Some(self.load_unit(name, path, stdlib, source))
    }

    /// The name an import is known by and its path on disk (`None` for a
    /// `stdlib/NAME` module); `None` with a diagnostic when a stdlib module
    /// imports a file.
    fn import_target(
        &mut self,
        from: usize,
        import: &ast::Import,
    ) -> Option<(String, Option<PathBuf>)> {
        if let Some(module) = import.path.strip_prefix("stdlib/") {
            let module = module.strip_suffix(".flow").unwrap_or(module);
            return Some((format!("stdlib/{module}.flow"), None));
        }
        let Some(base) = self.loaded.units[from].path.clone() else {
            self.loaded.diagnostics.push(Diagnostic::error(
                codes::CANNOT_READ,
                format!(
                    "a stdlib module can import only other stdlib modules, not `{}`",
                    import.path
                ),
                &self.loaded.units[from].name,
                import.path_span,
            ));
            return None;
        };
        let mut relative = import.path.clone();
        if !relative.ends_with(".flow") {
            relative.push_str(".flow");
        }
        let path = relative_to(&base, &relative);
        Some((path.display().to_string(), Some(path)))
    }

    /// Reports an import of a file that is still being loaded.
    fn import_cycle(&mut self, from: usize, import: &ast::Import, existing: usize, name: &str) {
        let pos = self.stack.iter().position(|&u| u == existing).unwrap_or(0);
        let mut cycle: Vec<String> = self.stack[pos..]
            .iter()
            .map(|&u| format!("`{}`", self.loaded.units[u].name))
            .collect();
        cycle.push(format!("`{name}`"));
        self.loaded.diagnostics.push(
            Diagnostic::error(
                codes::IMPORT_CYCLE,
                format!("import cycle: {}", cycle.join(" -> ")),
                &self.loaded.units[from].name,
                import.path_span,
            )
            .with_label("this import closes the cycle")
            .with_hint("move what both files need into a third file that both import"),
        );
    }

    /// The text of the stdlib module `name` (`stdlib/NAME.flow`).
    fn stdlib_source(&mut self, from: usize, import: &ast::Import, name: &str) -> Option<String> {
        let module = name.trim_start_matches("stdlib/").trim_end_matches(".flow");
        if let Some(s) = weir_stdlib::modules::source(module) {
            return Some(s.to_string());
        }
        let known: Vec<String> = weir_stdlib::modules::MODULES
            .iter()
            .map(|(n, _)| format!("stdlib/{n}"))
            .collect();
        self.loaded.diagnostics.push(
            Diagnostic::error(
                codes::UNKNOWN_MODULE,
                format!("no stdlib module `{}`", import.path),
                &self.loaded.units[from].name,
                import.path_span,
            )
            .with_label("unknown module")
            .with_hint(format!("the stdlib modules are {}", known.join(", "))),
        );
        None
    }

    fn list(&mut self, unit: usize, index: usize, list: &ast::ListDecl) {
        let from_name = self.loaded.units[unit].name.clone();
        let Some(base) = self.loaded.units[unit].path.clone() else {
            self.loaded.diagnostics.push(Diagnostic::error(
                codes::LIST_FILE,
                "a stdlib module cannot read list files",
                &from_name,
                list.path_span,
            ));
            return;
        };
        let path = relative_to(&base, &list.path);
        match self.loader.load(&path) {
            Ok(text) => {
                self.loaded.lists.insert((unit, index), parse_list(&text));
                self.loaded.files.push((path.display().to_string(), text));
            }
            Err(e) => self.loaded.diagnostics.push(
                Diagnostic::error(
                    codes::LIST_FILE,
                    format!("cannot read list file `{}`: {e}", path.display()),
                    &from_name,
                    list.path_span,
                )
                .with_label("list file named here"),
            ),
        }
    }
}

/// `relative` resolved against the directory of `file`, normalised
/// lexically (`a/./b/../c` is `a/c`) so each file has one name. This is how
/// imports, list files and test messages are named; tools that must name
/// files as the compiler does (the language server) use it too.
pub fn relative_to(file: &Path, relative: &str) -> PathBuf {
    let joined = match file.parent() {
        Some(dir) if Path::new(relative).is_relative() => dir.join(relative),
        _ => PathBuf::from(relative),
    };
    let mut out = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                let last_is_normal =
                    matches!(out.components().next_back(), Some(Component::Normal(_)));
                if last_is_normal {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The entries of a list file: lines trimmed, blank and `#` lines skipped;
/// CIDRs when every entry is an IP or a CIDR, else strings.
pub(crate) fn parse_list(text: &str) -> ListFile {
    let entries: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let nets: Option<Vec<Value>> = entries.iter().map(|e| parse_net(e)).collect();
    match nets {
        Some(nets) if !nets.is_empty() => ListFile {
            value: Value::list(nets),
            ty: Type::list(Type::Cidr),
        },
        _ => ListFile {
            value: Value::list(entries.iter().map(Value::str).collect()),
            ty: Type::list(Type::String),
        },
    }
}

/// An IP (as a /32 or /128) or a CIDR.
pub(crate) fn parse_net(text: &str) -> Option<Value> {
    if let Some((ip, len)) = text.split_once('/') {
        let ip: IpAddr = ip.trim().parse().ok()?;
        let len: u8 = len.trim().parse().ok()?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        return (len <= max).then_some(Value::Cidr(ip, len));
    }
    let ip: IpAddr = text.parse().ok()?;
    Some(Value::Cidr(ip, if ip.is_ipv4() { 32 } else { 128 }))
}
