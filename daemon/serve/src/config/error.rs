//! `ConfigError`: one problem in `weir.toml`, with where it is.

use std::fmt;

/// One problem in a configuration file: the file, the `[table]` and key it
/// concerns (when there is one), its position (when known) and what is
/// wrong. Displayed as
/// `weir.toml: [milter] on_error: expected one of …, got "maybe" (line 6, column 12)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, as named to the daemon.
    pub file: String,
    /// The table (`milter`, `notify.slack`), `None` at the top level.
    pub table: Option<String>,
    /// The key, `None` for an error about the file or a table as a whole.
    pub key: Option<String>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong, as one sentence without the place.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if let Some(table) = &self.table {
            write!(f, "[{table}] ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)?;
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, " (line {line}, column {column})"),
            (Some(line), None) => write!(f, " (line {line})"),
            _ => Ok(()),
        }
    }
}

/// Every problem found in one reading of a configuration file, in file
/// order: an admin fixes them all in one pass, as `weir check` lets them
/// fix rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// One error about the file as a whole (it cannot be read).
    pub fn file(file: &str, message: String) -> ConfigErrors {
        ConfigErrors(vec![ConfigError {
            file: file.to_string(),
            table: None,
            key: None,
            line: None,
            column: None,
            message,
        }])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
