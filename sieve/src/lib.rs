//! Sieve scripts (RFC 5228 and the extensions of docs/sieve.md) to Flow:
//! the parser (`sieve.pest`, [`parse`]) and the converter behind
//! `weir import sieve` ([`import`]).
//!
//! The converter builds Flow syntax trees (`weir_grammar::ast`), writes
//! them out and lays them out with the grammar's formatter, so the result
//! is what `weir fmt` would print. It depends on the grammar crate, never
//! the other way round.
//!
//! ```
//! let out = weir_sieve::import(
//!     "require \"fileinto\";\nif header :contains \"Subject\" \"invoice\" { fileinto \"Billing\"; }\n",
//!     "s.sieve",
//!     &|_| None,
//! ).unwrap();
//! assert!(out.flow.contains("when header(\"Subject\") contains \"invoice\""));
//! assert!(out.exact());
//! ```

pub mod ast;
mod convert;
mod emit;
pub mod parse;

pub use convert::{IncludeLoader, Note};
pub use parse::{ParseError, parse};

/// The result of [`import`]: the Flow text and what did not convert.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The Flow file, in `weir fmt` layout.
    pub flow: String,
    /// Every place the conversion says something about, in order.
    pub notes: Vec<Note>,
}

impl Conversion {
    /// Whether the Flow file does what the script does (no lossy note).
    pub fn exact(&self) -> bool {
        !self.notes.iter().any(|n| n.lossy)
    }
}

/// Why a script could not be converted at all.
#[derive(Debug, Clone)]
pub enum ImportError {
    /// The script (or an included one) is not Sieve.
    Parse {
        /// The file.
        file: String,
        /// Where and what.
        error: ParseError,
    },
    /// An `include` names a script that cannot be read.
    Include {
        /// The including file.
        file: String,
        /// The line of the `include`.
        line: usize,
        /// The name included.
        name: String,
    },
    /// The converter wrote Flow the formatter refuses: a bug in Weir.
    Internal(String),
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportError::Parse { file, error } => write!(f, "{file}:{error}"),
            ImportError::Include { file, line, name } => {
                write!(
                    f,
                    "{file}:{line}: include \"{name}\": the script cannot be read"
                )
            }
            ImportError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for ImportError {}

/// Converts a Sieve script to a formatted Flow file. `include` reads a
/// script named by `include` (its file name and text).
pub fn import(
    source: &str,
    file: &str,
    include: IncludeLoader<'_>,
) -> Result<Conversion, ImportError> {
    let script = parse(source).map_err(|error| ImportError::Parse {
        file: file.to_string(),
        error,
    })?;
    let (pieces, notes) = convert::convert(&script, file, source, include)?;
    let header = format!("Converted from {file} by `weir import sieve`.");
    let mut all = vec![emit::Piece {
        comments: vec![header],
        item: None,
        disabled: false,
    }];
    all.extend(pieces);
    let text = emit::file(&all);
    let flow = weir_grammar::format::format(&text, "import.flow").map_err(|d| {
        let first = d.first().map(|d| d.message.clone()).unwrap_or_default();
        ImportError::Internal(format!(
            "the converted text does not parse: {first}\n{text}"
        ))
    })?;
    Ok(Conversion { flow, notes })
}

/// The fuzz target `sieve` (`fuzz/`, and replayed on stable by
/// `daemon/tests/fuzz_replay.rs`): any bytes read as a script never panic,
/// and a script that parses converts to Flow the formatter accepts.
pub fn fuzz_script(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if parse(&text).is_err() {
        return;
    }
    let include = |_: &str| Some(("included.sieve".to_string(), "keep;".to_string()));
    if let Err(ImportError::Internal(m)) = import(&text, "fuzz.sieve", &include) {
        panic!("{m}");
    }
}
