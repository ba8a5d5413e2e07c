//! `weir import sieve [SCRIPT.sieve] [-o OUT.flow] [--allow-partial]`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Converts a Sieve script (a file, or stdin when none or `-`) to Flow,
/// written to OUT or stdout. Notes go to stderr, one per line with the
/// Sieve file's line and column. Exit 0 when the conversion is exact, 1
/// when something did not convert (0 with `--allow-partial`), 2 when the
/// script cannot be read or parsed or OUT cannot be written.
pub fn sieve(script: Option<&Path>, out: Option<&Path>, allow_partial: bool) -> u8 {
    let (name, source) = match read(script) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let dir = script
        .filter(|p| *p != Path::new("-"))
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let include = move |n: &str| include(&dir, n);
    let conversion = match weir_sieve::import(&source, &name, &include) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    for note in &conversion.notes {
        eprintln!("{note}");
    }
    let written = match out {
        Some(path) if path != Path::new("-") => std::fs::write(path, &conversion.flow)
            .map_err(|e| format!("cannot write {}: {e}", path.display())),
        _ => std::io::stdout()
            .write_all(conversion.flow.as_bytes())
            .map_err(|e| format!("cannot write to standard output: {e}")),
    };
    if let Err(e) = written {
        eprintln!("error: {e}");
        return 2;
    }
    let lossy = conversion.notes.iter().filter(|n| n.lossy).count();
    if lossy > 0 {
        eprintln!("{name}: {lossy} construct(s) not converted exactly");
        if !allow_partial {
            return 1;
        }
    }
    0
}

fn read(script: Option<&Path>) -> Result<(String, String), String> {
    match script.filter(|p| *p != Path::new("-")) {
        Some(p) => {
            let bytes =
                std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("{}: a Sieve script is UTF-8 (RFC 5228 §2.2)", p.display()))?;
            Ok((p.display().to_string(), text))
        }
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            Ok(("-".to_string(), text))
        }
    }
}

/// `include "NAME"` reads NAME or NAME.sieve beside the script (Pigeonhole's
/// personal scripts); a name with a path separator is refused.
fn include(dir: &Path, name: &str) -> Option<(String, String)> {
    if name.contains('/') || name.is_empty() || name.starts_with('.') {
        return None;
    }
    [name.to_string(), format!("{name}.sieve")]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .and_then(|p: PathBuf| {
            let text = std::fs::read_to_string(&p).ok()?;
            Some((p.display().to_string(), text))
        })
}
