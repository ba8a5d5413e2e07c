//! Shared set-up for the benchmarks: the deterministic synthetic corpus and
//! the generated rule sets of `tests/corpus/`, generated once into
//! `target/bench-corpus/` (Python 3 runs the generators); and [`load`], the
//! milter load driver of the `milter-load` tool and the milter benchmark.

pub mod load;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The folder holding `synth/`, `cpython/` and `rules/rules_N.flow`.
///
/// # Panics
/// When Python 3 cannot run the generators: a benchmark without its corpus
/// measures nothing.
pub fn corpus_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let out = root.join("target/bench-corpus");
    if !out.join("rules/rules_10000.flow").exists() {
        let gen_dir = root.join("tests/corpus");
        let corpus = Command::new("python3")
            .arg(gen_dir.join("gen_corpus.py"))
            .arg(&out)
            .status();
        assert!(corpus.is_ok_and(|s| s.success()), "gen_corpus.py failed");
        let rules = Command::new("python3")
            .arg(gen_dir.join("gen_rules.py"))
            .arg(&out)
            .arg(out.join("rules"))
            .status();
        assert!(rules.is_ok_and(|s| s.success()), "gen_rules.py failed");
    }
    out
}

/// Every message of `synth/`, in path order.
pub fn synth_messages() -> Vec<Vec<u8>> {
    let dir = corpus_dir().join("synth");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("synth corpus")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read(p).expect("message"))
        .collect()
}

/// The path of `rules_N.flow`.
pub fn rules(n: usize) -> PathBuf {
    corpus_dir().join(format!("rules/rules_{n}.flow"))
}
