//! Golden tests of the formatter: every `tests/fmt/NAME.flow` formats to
//! `NAME.expected` beside it; every expected file is a fixed point; and
//! formatting keeps the meaning (`parse` equal up to spans).
//! Re-bless with `UPDATE_EXPECT=1 cargo test -p weir-grammar --test it fmt_golden`.

use std::path::PathBuf;

fn cases() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fmt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "flow"))
        .collect();
    files.sort();
    files
}

fn stripped(source: &str) -> weir_grammar::ast::File {
    let (mut file, diagnostics) = weir_grammar::parse(source, "x.flow");
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    file.strip_spans();
    file
}

#[test]
fn formatter_golden_files() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let cases = cases();
    assert!(
        cases.len() >= 12,
        "expected at least 12 formatter cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for input in cases {
        let name = input
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let source = std::fs::read_to_string(&input).expect("readable case");
        let formatted = match weir_grammar::format::format(&source, &name) {
            Ok(f) => f,
            Err(d) => panic!("{name} does not parse: {d:?}"),
        };
        assert_eq!(
            stripped(&source),
            stripped(&formatted),
            "{name}: formatting changed the meaning"
        );
        let expected_path = input.with_extension("expected");
        if update {
            std::fs::write(&expected_path, &formatted).expect("writable expected file");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != formatted {
            failures.push(format!(
                "{name}: output differs from {}\n--- got ---\n{formatted}",
                expected_path.display()
            ));
        }
        let again = weir_grammar::format::format(&expected, &name).expect("expected file parses");
        if again != expected {
            failures.push(format!(
                "{name}: the expected file is not a fixed point\n--- got ---\n{again}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
