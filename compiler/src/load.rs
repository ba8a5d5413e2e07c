//! Loading a ruleset's files: the entry file, its imports (depth first,
//! each file once, cycles refused) and the files of `list … = file` and
//! `map … = file` declarations (docs/language.md ("Lists and maps")). Everything is read through the [`Loader`]; `stdlib/NAME`
//! modules come from `weir_stdlib::modules`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use weir_grammar::Diagnostic;
use weir_grammar::ast::{self, Item, Span};
use weir_stdlib::value::fold;
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

/// A map, read (from its file or its literal) and ready to look up.
pub(crate) struct MapValue {
    /// `[key, value]` pairs sorted by case-folded key, each key folded
    /// (the layout [`map_get`] searches).
    pub pairs: Value,
    /// The keys as written, for `key in MAP` (compared as `in` compares).
    pub keys: Value,
}

/// A bad line of a list or map file: its 1-based number, the byte span of
/// its text in the file, and what is wrong.
pub(crate) struct BadLine {
    pub line: usize,
    pub span: Span,
    pub message: String,
}

/// Everything loaded.
pub(crate) struct Loaded {
    /// Every `.flow` file; the entry is unit 0.
    pub units: Vec<Unit>,
    /// Rules in load order: (unit, item index).
    pub rule_order: Vec<(usize, usize)>,
    /// Lists that loaded, by (unit, item index).
    pub lists: HashMap<(usize, usize), ListFile>,
    /// Maps that loaded, by (unit, item index).
    pub maps: HashMap<(usize, usize), MapValue>,
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
            maps: HashMap::new(),
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
        let threads = crate::threads::compile_threads();
        let (ast, diagnostics) = weir_grammar::parse_on_threads(&source, &name, threads);
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
                Item::Map(map) => {
                    let map = map.clone();
                    self.map(id, index, &map);
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
        let Some((path, text)) = self.data_file(unit, &list.path, list.path_span, "list") else {
            return;
        };
        match parse_list(&text) {
            Ok(value) => {
                self.loaded.lists.insert((unit, index), value);
            }
            Err(bad) => self.bad_line(unit, list.path_span, &path, "list", bad),
        }
    }

    fn map(&mut self, unit: usize, index: usize, map: &ast::MapDecl) {
        let parsed = match &map.source {
            ast::MapSource::File(relative, path_span) => {
                let Some((path, text)) = self.data_file(unit, relative, *path_span, "map") else {
                    return;
                };
                match parse_map_file(&text) {
                    Ok(entries) => map_value(entries),
                    Err(bad) => return self.bad_line(unit, *path_span, &path, "map", bad),
                }
            }
            ast::MapSource::Literal(pairs) => match literal_map(pairs) {
                Ok(value) => value,
                Err((span, message)) => {
                    let file = self.loaded.units[unit].name.clone();
                    self.loaded.diagnostics.push(
                        Diagnostic::error(codes::LIST_FILE, message, &file, span)
                            .with_label("repeated key"),
                    );
                    return;
                }
            },
        };
        self.loaded.maps.insert((unit, index), parsed);
    }

    /// Reads the data file of a `list` or `map` declared in `unit`: its
    /// path as the compiler names it and its text (a byte-order mark
    /// removed), or `None` after reporting why it cannot be read.
    fn data_file(
        &mut self,
        unit: usize,
        relative: &str,
        path_span: Span,
        what: &str,
    ) -> Option<(String, String)> {
        let from_name = self.loaded.units[unit].name.clone();
        let Some(base) = self.loaded.units[unit].path.clone() else {
            self.loaded.diagnostics.push(Diagnostic::error(
                codes::LIST_FILE,
                format!("a stdlib module cannot read {what} files"),
                &from_name,
                path_span,
            ));
            return None;
        };
        let path = relative_to(&base, relative);
        match self.loader.load(&path) {
            Ok(text) => {
                let name = path.display().to_string();
                self.loaded.files.push((name.clone(), text.clone()));
                Some((name, text))
            }
            Err(e) => {
                self.loaded.diagnostics.push(
                    Diagnostic::error(
                        codes::LIST_FILE,
                        format!("cannot read {what} file `{}`: {e}", path.display()),
                        &from_name,
                        path_span,
                    )
                    .with_label(format!("{what} file named here")),
                );
                None
            }
        }
    }

    /// Reports a bad line at the data file's own line, with the
    /// declaration that names the file as a related location.
    fn bad_line(&mut self, unit: usize, path_span: Span, path: &str, what: &str, bad: BadLine) {
        let from_name = self.loaded.units[unit].name.clone();
        self.loaded.diagnostics.push(
            Diagnostic::error(
                codes::LIST_FILE,
                format!("{path}:{}: {}", bad.line, bad.message),
                path,
                bad.span,
            )
            .with_label("bad line")
            .with_related(
                &from_name,
                path_span,
                format!("the {what} file is named here"),
            ),
        );
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

/// The entries of a data file (a list or map file): each non-blank line
/// that does not start with `#`, trimmed, with its 1-based line number and
/// byte span. A UTF-8 byte-order mark at the start is ignored (the loader
/// keeps it in the text so spans stay exact).
fn data_lines(text: &str) -> impl Iterator<Item = (usize, Span, &str)> {
    let bom = if text.starts_with('\u{FEFF}') { 3 } else { 0 };
    let mut offset = 0;
    text.split_inclusive('\n')
        .enumerate()
        .filter_map(move |(i, raw)| {
            let start = offset;
            offset += raw.len();
            let skip = if i == 0 { bom } else { 0 };
            let line = &raw[skip..];
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                return None;
            }
            let lead = line.len() - line.trim_start().len();
            let at = start + skip + lead;
            Some((i + 1, Span::new(at, at + trimmed.len()), trimmed))
        })
}

/// The entries of a list file: lines trimmed, blank and `#` lines skipped;
/// CIDRs when every entry is an IP or a CIDR, else strings. An entry
/// written as an address (digits and dots, or hex digits and colons, with
/// an optional `/LEN`) must be a valid IP or CIDR: `10.0.0.0/33` and
/// `10.0.0.300` are errors at their line, never silently strings.
pub(crate) fn parse_list(text: &str) -> Result<ListFile, BadLine> {
    let mut entries = Vec::new();
    let mut nets = Vec::new();
    for (line, span, entry) in data_lines(text) {
        match parse_net(entry) {
            Some(net) => nets.push(net),
            None if looks_like_address(entry) => {
                return Err(BadLine {
                    line,
                    span,
                    message: format!("`{entry}` is not a valid IP address or CIDR"),
                });
            }
            None => {}
        }
        entries.push(entry);
    }
    Ok(if !entries.is_empty() && nets.len() == entries.len() {
        ListFile {
            value: Value::list(nets),
            ty: Type::list(Type::Cidr),
        }
    } else {
        ListFile {
            value: Value::list(entries.iter().map(Value::str).collect()),
            ty: Type::list(Type::String),
        }
    })
}

/// Whether an entry is written as an IP address or a CIDR (so a typo in
/// one is reported rather than read as a name): digits and dots (IPv4),
/// or hex digits, colons and dots with at least two colons (IPv6), then
/// optionally `/` and anything.
fn looks_like_address(entry: &str) -> bool {
    let addr = entry.split_once('/').map_or(entry, |(a, _)| a);
    let v4 = !addr.is_empty()
        && addr.contains('.')
        && addr.chars().all(|c| c.is_ascii_digit() || c == '.');
    let v6 = addr.matches(':').count() >= 2
        && addr
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
    v4 || v6
}

/// The entries of a map file: one `KEY VALUE` a line, the key up to the
/// first blank, the value the rest of the line trimmed; blank and `#`
/// lines skipped. A key without a value, or a key repeated (keys compare
/// case-insensitively), is an error at its line.
pub(crate) fn parse_map_file(text: &str) -> Result<Vec<(String, String)>, BadLine> {
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (line, span, entry) in data_lines(text) {
        let Some((key, value)) = entry.split_once(char::is_whitespace) else {
            return Err(BadLine {
                line,
                span,
                message: format!("`{entry}` has a key but no value: write `KEY VALUE`"),
            });
        };
        if let Some(first) = seen.insert(fold(key), line) {
            return Err(BadLine {
                line,
                span,
                message: format!("the key `{key}` is already given on line {first}"),
            });
        }
        entries.push((key.to_string(), value.trim().to_string()));
    }
    Ok(entries)
}

/// A literal map's entries; the span of a repeated key (case-insensitive)
/// with the message.
fn literal_map(pairs: &[ast::MapPair]) -> Result<MapValue, (Span, String)> {
    let mut seen: HashMap<String, Span> = HashMap::new();
    for pair in pairs {
        if seen.insert(fold(&pair.key), pair.key_span).is_some() {
            return Err((
                pair.key_span,
                format!("the key \"{}\" is given twice in this map", pair.key),
            ));
        }
    }
    Ok(map_value(
        pairs
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect(),
    ))
}

/// The lookup form of a map's entries.
fn map_value(entries: Vec<(String, String)>) -> MapValue {
    let keys = Value::list(entries.iter().map(|(k, _)| Value::str(k)).collect());
    let mut folded: Vec<(String, String)> =
        entries.into_iter().map(|(k, v)| (fold(&k), v)).collect();
    folded.sort_by(|a, b| a.0.cmp(&b.0));
    let pairs = Value::list(
        folded
            .into_iter()
            .map(|(k, v)| Value::list(vec![Value::str(k), Value::str(v)]))
            .collect(),
    );
    MapValue { pairs, keys }
}

/// `MAP[key]`: the value of the key (compared case-insensitively), or `""`.
/// Its arguments are the map's sorted pairs ([`MapValue::pairs`]) and the key.
pub(crate) fn map_get(args: &[Value]) -> Value {
    let (Some(pairs), Some(key)) = (
        args.first().and_then(Value::as_list),
        args.get(1).and_then(Value::as_text),
    ) else {
        return Value::str("");
    };
    let key = fold(key);
    let found = pairs.binary_search_by(|pair| {
        let k = pair
            .as_list()
            .and_then(|p| p.first())
            .and_then(Value::as_text)
            .unwrap_or("");
        k.cmp(key.as_str())
    });
    found
        .ok()
        .and_then(|i| pairs[i].as_list()?.get(1).cloned())
        .unwrap_or_else(|| Value::str(""))
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
