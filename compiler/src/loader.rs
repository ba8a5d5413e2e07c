//! How the compiler reads the files a ruleset names (imports, `list … =
//! file`). The compiler does no I/O of its own: it asks a [`Loader`], so the
//! daemon, the CLI, tests and the language server can each supply files
//! their own way (from disk, from an editor's unsaved buffers, from memory).

use std::io;
use std::path::{Path, PathBuf};

/// Supplies file contents to the compiler.
pub trait Loader {
    /// The text of the file at `path`.
    fn load(&self, path: &Path) -> io::Result<String>;

    /// The bytes of the file at `path` (a test block's message file, which
    /// need not be UTF-8).
    fn load_bytes(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.load(path).map(String::into_bytes)
    }

    /// When `path` is a directory, its `.flow` files (recursively, following
    /// symlinked directories), in byte order of their paths; `None` when it
    /// is not a directory.
    fn flow_files(&self, path: &Path) -> Option<Vec<PathBuf>> {
        let _ = path;
        None
    }
}

impl<T: Loader + ?Sized> Loader for &T {
    fn load(&self, path: &Path) -> io::Result<String> {
        (**self).load(path)
    }

    fn load_bytes(&self, path: &Path) -> io::Result<Vec<u8>> {
        (**self).load_bytes(path)
    }

    fn flow_files(&self, path: &Path) -> Option<Vec<PathBuf>> {
        (**self).flow_files(path)
    }
}

/// Reads files from the filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsLoader;

impl Loader for FsLoader {
    fn load(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn load_bytes(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn flow_files(&self, path: &Path) -> Option<Vec<PathBuf>> {
        path.is_dir()
            .then(|| files_under(path, |p| p.extension().is_some_and(|e| e == "flow")))
    }
}

/// The files under `dir` that `keep` accepts, recursively (following
/// symlinked directories), in byte order of their paths: the order in
/// which `weir` reads a directory of rules or of messages. Unreadable
/// entries are skipped (a file that cannot be read is reported when it is
/// read).
pub fn files_under(dir: &Path, keep: fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    walk(dir, keep, &mut found);
    found.sort_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    found
}

fn walk(dir: &Path, keep: fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() || (kind.is_symlink() && path.is_dir()) {
            walk(&path, keep, out);
        } else if keep(&path) {
            out.push(path);
        }
    }
}

/// Serves files from memory, falling back to another loader (used by the
/// language server for unsaved buffers, and by tests).
#[derive(Debug, Default)]
pub struct MemoryLoader<L = FsLoader> {
    files: Vec<(PathBuf, String)>,
    fallback: Option<L>,
}

impl<L: Loader> MemoryLoader<L> {
    /// A loader that serves only what is added to it.
    pub fn new() -> Self {
        MemoryLoader {
            files: Vec::new(),
            fallback: None,
        }
    }

    /// A loader that serves what is added, and asks `fallback` for the rest.
    pub fn with_fallback(fallback: L) -> Self {
        MemoryLoader {
            files: Vec::new(),
            fallback: Some(fallback),
        }
    }

    /// Adds (or replaces) a file.
    pub fn insert(&mut self, path: impl Into<PathBuf>, text: impl Into<String>) {
        let path = path.into();
        self.files.retain(|(p, _)| *p != path);
        self.files.push((path, text.into()));
    }
}

impl<L: Loader> Loader for MemoryLoader<L> {
    fn load(&self, path: &Path) -> io::Result<String> {
        if let Some((_, text)) = self.files.iter().find(|(p, _)| p == path) {
            return Ok(text.clone());
        }
        match &self.fallback {
            Some(l) => l.load(path),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no such file")),
        }
    }

    fn load_bytes(&self, path: &Path) -> io::Result<Vec<u8>> {
        if let Some((_, text)) = self.files.iter().find(|(p, _)| p == path) {
            return Ok(text.clone().into_bytes());
        }
        match &self.fallback {
            Some(l) => l.load_bytes(path),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no such file")),
        }
    }

    fn flow_files(&self, path: &Path) -> Option<Vec<PathBuf>> {
        self.fallback.as_ref()?.flow_files(path)
    }
}
