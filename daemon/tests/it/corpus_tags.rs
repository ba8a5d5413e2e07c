//! A correctness check at scale: over the deterministic synthetic corpus,
//! the rules of `tests/corpus/gen_rules.py` set exactly as many tags as
//! Dovecot Pigeonhole sets with the equivalent Sieve scripts (4 for 10
//! rules, 104 for 100 rules; see `tests/corpus/README.md`).

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use common::{stderr, stdout, weir};

fn generated() -> Option<PathBuf> {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("corpus");
    let gen_dir = common::root().join("tests/corpus");
    if !out.join("rules/rules_100.flow").exists() {
        let ok = Command::new("python3")
            .arg(gen_dir.join("gen_corpus.py"))
            .arg(&out)
            .status()
            .ok()?
            .success()
            && Command::new("python3")
                .arg(gen_dir.join("gen_rules.py"))
                .arg(&out)
                .arg(out.join("rules"))
                .args(["1234", "10", "100"])
                .status()
                .ok()?
                .success();
        if !ok {
            return None;
        }
    }
    Some(out)
}

fn tags_set(rules: &str) -> usize {
    let dir = generated().expect("python3 generates the corpus");
    let rules = dir.join("rules").join(rules);
    let out = weir(
        &[
            "run",
            "--json",
            "--engine",
            "interp",
            rules.to_str().unwrap(),
            dir.join("synth").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["tags"].as_array().map(|t| t.len()).unwrap_or(0)
        })
        .sum()
}

#[test]
fn ten_generated_rules_set_the_tags_pigeonhole_sets() {
    assert_eq!(tags_set("rules_10.flow"), 4);
}

#[test]
fn a_hundred_generated_rules_set_the_tags_pigeonhole_sets() {
    assert_eq!(tags_set("rules_100.flow"), 104);
}
