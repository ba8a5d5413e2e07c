//! The ruleset versions this daemon ran, with their source: what the
//! Rules page shows and diffs. Each version's files are read from disk
//! when it is installed (just after they compiled). In memory, the last
//! [`MAX_VERSIONS`]; a restart starts the list again with the running
//! version.

use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

use crate::state::{Daemon, LoadedRuleset};

/// How many versions are remembered.
pub const MAX_VERSIONS: usize = 50;

/// One file of a version.
#[derive(Debug, Clone, Serialize)]
pub struct File {
    /// Its path as configured (`rules`, or a file of the `rules` directory).
    pub name: String,
    /// Its text.
    pub text: String,
}

/// One installed ruleset version.
#[derive(Debug, Clone)]
pub struct Version {
    /// The version number.
    pub version: u64,
    /// `Ruleset::hash()`.
    pub hash: String,
    /// When it was installed (seconds since the epoch).
    pub loaded_at: i64,
    /// Its `.flow` files.
    pub files: Vec<File>,
}

/// The remembered versions, oldest first.
#[derive(Debug, Default)]
pub struct History {
    versions: Mutex<Vec<Version>>,
}

impl History {
    /// Remembers `loaded`, whose files are under `rules`.
    pub fn remember(&self, loaded: &LoadedRuleset, rules: &Path) {
        let loaded_at = loaded
            .loaded_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let version = Version {
            version: loaded.version,
            hash: loaded.hash(),
            loaded_at,
            files: read_files(rules),
        };
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        versions.retain(|v| v.version != version.version);
        versions.push(version);
        let excess = versions.len().saturating_sub(MAX_VERSIONS);
        versions.drain(..excess);
    }

    fn list(&self) -> Vec<Version> {
        self.versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The `.flow` files of `rules` (a file, or a directory's files as the
/// compiler reads them), as text; unreadable ones are left out.
fn read_files(rules: &Path) -> Vec<File> {
    use weir_compiler::Loader;
    let paths = weir_compiler::FsLoader
        .flow_files(rules)
        .unwrap_or_else(|| vec![rules.to_path_buf()]);
    paths
        .iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(p).ok()?;
            Some(File {
                name: p.display().to_string(),
                text,
            })
        })
        .collect()
}

/// Every remembered version, oldest first.
pub fn versions(daemon: &Daemon) -> Vec<Version> {
    daemon.history.list()
}

/// One remembered version.
pub fn version(daemon: &Daemon, version: u64) -> Option<Version> {
    daemon
        .history
        .list()
        .into_iter()
        .find(|v| v.version == version)
}

/// The running version's files (read now if it is not remembered).
pub fn running_source(daemon: &Daemon) -> Vec<File> {
    version(daemon, daemon.current().version)
        .map(|v| v.files)
        .unwrap_or_else(|| read_files(&daemon.config().rules))
}

/// The lines of `old` and `new` as a line diff: `(' ' | '-' | '+', line)`.
pub fn line_diff<'a>(old: &'a str, new: &'a str) -> Vec<(char, &'a str)> {
    use similar::ChangeTag;
    similar::TextDiff::from_lines(old, new)
        .iter_all_changes()
        .map(|c| {
            let sign = match c.tag() {
                ChangeTag::Equal => ' ',
                ChangeTag::Delete => '-',
                ChangeTag::Insert => '+',
            };
            (sign, c.value().trim_end_matches(['\n', '\r']))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_diff_shows_what_changed() {
        let d = line_diff("a\nb\nc\n", "a\nx\nc\nd\n");
        assert_eq!(
            d,
            [(' ', "a"), ('-', "b"), ('+', "x"), (' ', "c"), ('+', "d")]
        );
    }

    #[test]
    fn equal_texts_have_no_change() {
        assert!(line_diff("a\nb", "a\nb").iter().all(|(c, _)| *c == ' '));
    }
}
