//! Golden evaluation tests: for every `tests/eval/NAME.flow`, the output of
//! `weir run --json NAME.flow tests/eval/mail/` must equal
//! `tests/eval/NAME.expected` (re-bless with `UPDATE_EXPECT=1`).

use crate::common;

use common::{golden, root, stderr, stdout, weir};

#[test]
fn every_eval_case_matches_its_expected_output() {
    let dir = root().join("tests/eval");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "flow"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for case in &cases {
        let rel = case.strip_prefix(root()).unwrap().display().to_string();
        for engine in ["interp", "jit"] {
            let out = weir(
                &[
                    "run",
                    "--json",
                    "--engine",
                    engine,
                    &rel,
                    "tests/eval/mail/",
                ],
                None,
            );
            if out.status.code() != Some(0) {
                failures.push(format!(
                    "{rel} ({engine}): exit {:?}\n{}",
                    out.status.code(),
                    stderr(&out)
                ));
                continue;
            }
            // The JIT must really run here, not fall back to the interpreter.
            if stderr(&out).contains("using the interpreter") {
                failures.push(format!("{rel} ({engine}): fell back: {}", stderr(&out)));
            }
            if let Err(e) = golden(&case.with_extension("expected"), &stdout(&out)) {
                failures.push(format!("{rel} ({engine}): {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
