//! Golden diagnostics: every `tests/diagnostics/NNNN_name.flow` (at the
//! workspace root) is compiled as the entry of a ruleset, and the rendered
//! output of every diagnostic, as `weir check` prints it, is compared with
//! `NNNN_name.expected` beside it. `UPDATE_EXPECT=1` rewrites the expected
//! files. Files in subfolders are helpers (imports, lists), not entries.

use std::io;
use std::path::{Path, PathBuf};

use weir_compiler::{Loader, compile};

/// Reads paths relative to the diagnostics folder, so that file names in
/// the output do not depend on where the repository is.
struct DirLoader(PathBuf);

impl Loader for DirLoader {
    fn load(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(self.0.join(path))
    }
}

fn render_all(dir: &Path, entry: &str) -> String {
    let compiled = compile(Path::new(entry), &DirLoader(dir.to_path_buf()));
    let mut out = String::new();
    for d in &compiled.diagnostics {
        out.push_str(compiled.render(d).trim_end());
        out.push_str("\n\n");
    }
    out
}

#[test]
fn diagnostics_match_expected_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/diagnostics");
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut entries: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/diagnostics exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".flow") && n.as_bytes().first().is_some_and(u8::is_ascii_digit))
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "no golden files found");
    let mut failures = Vec::new();
    for entry in &entries {
        let actual = render_all(&dir, entry);
        let expected_path = dir.join(entry.replace(".flow", ".expected"));
        if update {
            std::fs::write(&expected_path, &actual).expect("write expected file");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "--- {entry}: expected\n{expected}\n--- actual\n{actual}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden file(s) differ (UPDATE_EXPECT=1 re-blesses):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every code the compiler can emit has at least one golden file.
#[test]
fn every_code_has_a_golden_file() {
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        return; // the expected files are being rewritten concurrently
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/diagnostics");
    let mut all = String::new();
    for entry in std::fs::read_dir(&dir)
        .expect("tests/diagnostics exists")
        .flatten()
    {
        if entry.file_name().to_string_lossy().ends_with(".expected") {
            all.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    for code in weir_compiler::codes::ALL.iter().map(|(c, _)| c) {
        assert!(
            all.contains(&format!("[{code}]")),
            "no golden file shows {code}"
        );
    }
}
