//! Editor support stays in step with the language.
//!
//! - Drift checks: every reserved word of `grammar/src/flow.pest` and every
//!   action, field and function of the builtin registry must appear in the
//!   VS Code TextMate grammar, the Vim syntax file and the tree-sitter
//!   highlight queries, so that a new word cannot ship unhighlighted.
//! - The editors' own test suites: `editor-support/vscode/test.sh`
//!   (vscode-tmgrammar-test over annotated samples),
//!   `editor-support/tree-sitter-flow/test.sh` (`tree-sitter test`, then a
//!   parse of every `.flow` file under `examples/` without an ERROR node), and
//!   `editor-support/vim/test.sh` highlights a sample in a headless Vim and
//!   compares the syntax groups with a golden file.
//!   They need `node`/`npm`, `tree-sitter` and `vim` on the PATH; without them the test
//!   prints a notice and passes, unless `WEIR_REQUIRE_EDITOR_TOOLS=1` (CI).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root (the daemon crate's parent).
fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// The words a piece of pattern text mentions: `\.` becomes `.` (so that
/// `client\.ip` yields `client.ip`), any other backslash escape (`\b`, `\<`,
/// `\s`) separates words, and a word is a run of letters, digits, `_` and `.`.
fn words_of_pattern(pattern: &str, into: &mut BTreeSet<String>) {
    let mut cleaned = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('.') => cleaned.push('.'),
                _ => cleaned.push(' '),
            }
        } else {
            cleaned.push(c);
        }
    }
    for word in cleaned.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')) {
        let word = word.trim_matches('.');
        if !word.is_empty() {
            into.insert(word.to_string());
        }
    }
}

/// The words of every `match`, `begin`, `end` and `while` regex of a
/// TextMate grammar.
fn textmate_words(grammar: &serde_json::Value) -> BTreeSet<String> {
    fn walk(value: &serde_json::Value, words: &mut BTreeSet<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        (
                            "match" | "begin" | "end" | "while",
                            serde_json::Value::String(pattern),
                        ) => {
                            words_of_pattern(pattern, words);
                        }
                        _ => walk(value, words),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, words)),
            _ => {}
        }
    }
    let mut words = BTreeSet::new();
    walk(grammar, &mut words);
    words
}

/// The words of the `syn` commands of a Vim syntax file (comments and other
/// commands do not count).
fn vim_words(source: &str) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    for line in source.lines().map(str::trim_start) {
        if line.starts_with("syn ") || line.starts_with("syntax ") {
            words_of_pattern(line, &mut words);
        }
    }
    words
}

/// The quoted strings of a tree-sitter query, outside `;` comments.
fn query_words(source: &str) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    for line in source.lines() {
        let mut in_string = false;
        let mut current = String::new();
        for c in line.chars() {
            match (in_string, c) {
                (false, ';') => break,
                (false, '"') => in_string = true,
                (true, '"') => {
                    words.insert(std::mem::take(&mut current));
                    in_string = false;
                }
                (true, c) => current.push(c),
                (false, _) => {}
            }
        }
    }
    words
}

/// The body of the pest rule `name = ... { body }`, braces balanced.
fn pest_rule_body<'a>(source: &'a str, name: &str) -> Option<&'a str> {
    let mut offset = 0;
    while let Some(found) = source[offset..].find(name) {
        let start = offset + found;
        offset = start + name.len();
        let at_line_start = source[..start]
            .chars()
            .next_back()
            .is_none_or(|c| c == '\n');
        let rest = &source[offset..];
        if !at_line_start || !rest.trim_start().starts_with('=') {
            continue;
        }
        let open = offset + rest.find('{')?;
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        for (index, c) in source[open..].char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_string => escaped = true,
                '"' => in_string = !in_string,
                '{' if !in_string => depth += 1,
                '}' if !in_string => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(&source[open + 1..open + index]);
                    }
                }
                _ => {}
            }
        }
        return None;
    }
    None
}

/// The quoted lower-case words of a piece of pest source.
fn pest_quoted_words(source: &str) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    for (index, piece) in source.split('"').enumerate() {
        let is_word = piece.len() > 1 && piece.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        if index % 2 == 1 && is_word {
            words.insert(piece.to_string());
        }
    }
    words
}

/// The quoted words of the pest rule `name` and of the rules its body names
/// (`reserved = _{ kw_import | kw_let | ... }` with `kw_let = @{ "let" ~ ... }`).
fn pest_rule_words(pest: &str, name: &str) -> Option<BTreeSet<String>> {
    let body = pest_rule_body(pest, name)?;
    let mut words = pest_quoted_words(body);
    for referenced in body.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if !referenced.is_empty()
            && referenced != name
            && let Some(inner) = pest_rule_body(pest, referenced)
        {
            words.extend(pest_quoted_words(inner));
        }
    }
    Some(words)
}

/// The names of the pest rules whose names start with `prefix`.
fn pest_rules_named(pest: &str, prefix: &str) -> Vec<String> {
    pest.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The words of the pest grammar, when it exists: its reserved words (the
/// rule `reserved`, `keyword`, `reserved_word` or `KEYWORD`), and the
/// contextual words of test blocks (the rules named `cw_*`).
fn pest_words() -> Option<(BTreeSet<String>, BTreeSet<String>)> {
    let path = repo_root().join("grammar/src/flow.pest");
    let Ok(pest) = std::fs::read_to_string(&path) else {
        println!(
            "note: {} not found; checking docs/language.md's reserved words only",
            path.display()
        );
        return None;
    };
    let reserved = ["reserved", "keyword", "reserved_word", "KEYWORD"]
        .iter()
        .find_map(|name| pest_rule_words(&pest, name).map(|words| (name, words)));
    let Some((name, reserved)) = reserved else {
        panic!(
            "grammar/src/flow.pest has no keyword rule (`reserved`, `keyword`, `reserved_word` or `KEYWORD`): \
             update pest_words() in daemon/tests/editor_support.rs to find the reserved words"
        );
    };
    assert!(
        reserved.len() >= 10,
        "the pest rule `{name}` gives only {reserved:?}: is it still the reserved-word list?"
    );
    let mut contextual = BTreeSet::new();
    for rule in pest_rules_named(&pest, "cw_") {
        contextual.extend(pest_rule_words(&pest, &rule).unwrap_or_default());
    }
    Some((reserved, contextual))
}

/// What each editor file must mention: (what, words).
fn required_words() -> Vec<(&'static str, BTreeSet<String>)> {
    let registry = weir_stdlib::registry();
    // The grammar crate's one list of reserved words, and whatever the pest
    // grammar reserves besides.
    let mut reserved: BTreeSet<String> = weir_grammar::keywords::RESERVED
        .iter()
        .map(|w| w.to_string())
        .collect();
    let mut contextual = BTreeSet::new();
    if let Some((from_pest, test_words)) = pest_words() {
        reserved.extend(from_pest);
        contextual = test_words;
    }
    vec![
        ("reserved word", reserved),
        ("test word", contextual),
        (
            "action",
            registry
                .actions
                .iter()
                .map(|a| a.name.to_string())
                .collect(),
        ),
        (
            "field",
            registry.fields.iter().map(|f| f.path.to_string()).collect(),
        ),
        (
            "function",
            registry
                .functions
                .iter()
                .map(|f| f.name.to_string())
                .collect(),
        ),
    ]
}

/// Fails listing every required word that `words` lacks.
fn assert_mentions(file: &str, words: &BTreeSet<String>) {
    let mut missing = Vec::new();
    for (what, required) in required_words() {
        for word in required.iter().filter(|word| !words.contains(*word)) {
            missing.push(format!("{what} `{word}`"));
        }
    }
    assert!(
        missing.is_empty(),
        "{file} does not highlight: {}",
        missing.join(", ")
    );
}

#[test]
fn textmate_grammar_mentions_every_word() {
    let file = "editor-support/vscode/syntaxes/flow.tmLanguage.json";
    let grammar: serde_json::Value =
        serde_json::from_str(&read(file)).expect("the TextMate grammar is JSON");
    assert_eq!(grammar["scopeName"], "source.flow");
    assert_mentions(file, &textmate_words(&grammar));
}

#[test]
fn vim_syntax_mentions_every_word() {
    let file = "editor-support/vim/syntax/flow.vim";
    assert_mentions(file, &vim_words(&read(file)));
}

#[test]
fn tree_sitter_highlights_mention_every_word() {
    let file = "editor-support/tree-sitter-flow/queries/highlights.scm";
    assert_mentions(file, &query_words(&read(file)));
}

#[test]
fn word_extraction_reads_each_format() {
    let mut words = BTreeSet::new();
    words_of_pattern(r"(?<![.\w])(client\.ip|helo)\b(?!\s*\()", &mut words);
    assert!(
        words.contains("client.ip") && words.contains("helo"),
        "{words:?}"
    );
    assert!(
        !words.contains("bhelo") && !words.contains("b"),
        "{words:?}"
    );

    let vim = "\" syn keyword flowAction commented\nsyn keyword flowAction tag keep\nsyn match flowField \"\\<envelope\\.from\\>\"\n";
    let words = vim_words(vim);
    assert!(
        words.contains("tag") && words.contains("keep") && words.contains("envelope.from"),
        "{words:?}"
    );
    assert!(!words.contains("commented"), "{words:?}");

    let query = "; \"ignored\"\n(#any-of? @x \"count\" \"len\")\n[\"rule\"] @keyword\n";
    let words = query_words(query);
    assert_eq!(
        words,
        ["count", "len", "rule"]
            .iter()
            .map(|w| w.to_string())
            .collect()
    );

    let pest = "ident = @{ !keyword ~ ASCII_ALPHA }\nkeyword = @{ (\"import\" | kw_let | \"}\") ~ !ASCII_ALPHA }\nkw_let = @{ \"let\" ~ !ident_char }\ncw_to = @{ \"to\" }\n";
    let words = pest_rule_words(pest, "keyword").expect("the rule is found");
    assert_eq!(
        words,
        ["import", "let"].iter().map(|w| w.to_string()).collect()
    );
    assert_eq!(pest_rules_named(pest, "cw_"), ["cw_to"]);
}

/// Runs an editor test script, or explains why it cannot.
fn run_editor_suite(script: &str, tools: &[&str]) {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|tool| !on_path(tool))
        .collect();
    if !missing.is_empty() {
        let required = std::env::var("WEIR_REQUIRE_EDITOR_TOOLS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "WEIR_REQUIRE_EDITOR_TOOLS=1 but {} not on the PATH",
            missing.join(", ")
        );
        println!(
            "SKIPPED {script}: {} not on the PATH (see docs/editing.md)",
            missing.join(", ")
        );
        return;
    }
    let path = repo_root().join(script);
    let output = Command::new("bash")
        .arg(&path)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", path.display()));
    assert!(
        output.status.success(),
        "{script} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Whether `tool` is an executable file in a directory of PATH.
fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

#[test]
fn vscode_grammar_tests_pass() {
    run_editor_suite("editor-support/vscode/test.sh", &["node", "npm"]);
}

#[test]
fn vim_syntax_tests_pass() {
    run_editor_suite("editor-support/vim/test.sh", &["vim"]);
}

#[test]
fn tree_sitter_tests_pass_and_examples_parse() {
    run_editor_suite(
        "editor-support/tree-sitter-flow/test.sh",
        &["tree-sitter", "cc"],
    );
}
