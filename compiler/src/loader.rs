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
}

/// Reads files from the filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsLoader;

impl Loader for FsLoader {
    fn load(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
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
}
