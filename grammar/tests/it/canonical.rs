//! The shipped Flow files (`examples/` and `stdlib/flow/`) are already in
//! canonical form: `weir fmt` would change nothing. Reformat them with
//! `weir fmt examples/ stdlib/flow/` when the formatter changes.

use std::path::{Path, PathBuf};

/// Every `.flow` file under `dir`, recursively, sorted.
fn flow_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            flow_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "flow") {
            out.push(path);
        }
    }
    out.sort();
}

#[test]
fn shipped_flow_files_are_formatted() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    flow_files(&root.join("examples"), &mut files);
    let examples = files.len();
    flow_files(&root.join("stdlib/flow"), &mut files);
    assert!(
        examples >= 8,
        "expected the example rule files, found {examples}"
    );
    assert!(files.len() > examples, "expected the stdlib/flow modules");
    let mut unformatted = Vec::new();
    for path in &files {
        let source = std::fs::read_to_string(path).expect("readable .flow file");
        let name = path.display().to_string();
        match weir_grammar::format::format(&source, &name) {
            Ok(formatted) if formatted == source => {}
            Ok(formatted) => unformatted.push(format!(
                "{name}:\n{}",
                first_difference(&source, &formatted)
            )),
            Err(diagnostics) => unformatted.push(format!("{name} does not parse: {diagnostics:?}")),
        }
    }
    assert!(
        unformatted.is_empty(),
        "not in canonical form (run `weir fmt examples/ stdlib/flow/`):\n{}",
        unformatted.join("\n")
    );
}

/// The first line that differs, as written and as formatted.
fn first_difference(source: &str, formatted: &str) -> String {
    let mut written = source.lines();
    let mut canonical = formatted.lines();
    for number in 1.. {
        match (written.next(), canonical.next()) {
            (None, None) => break,
            (a, b) if a == b => {}
            (a, b) => {
                return format!(
                    "  line {number}\n  written:   {}\n  formatted: {}",
                    a.unwrap_or("<end>"),
                    b.unwrap_or("<end>")
                );
            }
        }
    }
    "  only the final newline differs".to_string()
}
