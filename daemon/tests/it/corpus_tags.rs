//! A correctness check at scale: over the deterministic synthetic corpus,
//! the rules of `tests/corpus/gen_rules.py` set exactly as many tags as
//! Dovecot Pigeonhole sets with the equivalent Sieve scripts (4 for 10
//! rules, 104 for 100 rules; see `tests/corpus/README.md`).

use crate::common;

use common::{stderr, stdout, weir};

fn tags_set(rules: &str) -> usize {
    // Generated once (Python 3), shared with the benchmarks.
    let dir = weir_benches::corpus_dir();
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
