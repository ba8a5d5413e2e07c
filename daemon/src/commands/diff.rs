//! `weir diff OLD.flow NEW.flow DIR`: which messages two rulesets decide
//! differently, and how.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use weir_compiler::{EvalOptions, MemoryRates, Purpose};

use weir_compiler::Envelope;

use super::load_ruleset;
use crate::inputs;

/// Prints, per message whose outcome differs, each part of the outcome
/// that differs (`verdict`, `reply`, `stage`, `matched`, `tags`, `score`,
/// `folder`, `actions`) with its old and new value, then a summary line.
/// Exit status as diff(1): 0 when no outcome differs, 1 when some do, 2
/// when a ruleset does not compile or a message cannot be read.
pub fn run(old: &Path, new: &Path, messages: &[PathBuf], as_json: bool) -> u8 {
    let (Some(old_rules), Some(new_rules)) = (
        load_ruleset(old, Purpose::Check),
        load_ruleset(new, Purpose::Check),
    ) else {
        return 2;
    };
    let envelope = Envelope::default();
    let opts = EvalOptions::default();
    let (mut old_rates, mut new_rates) = (MemoryRates::default(), MemoryRates::default());
    let (mut total, mut differing, mut status) = (0usize, 0usize, 0u8);
    for input in inputs::expand(messages, inputs::any_file) {
        let bytes = match input.read() {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: {}: {e}", input.display());
                status = 2;
                continue;
            }
        };
        total += 1;
        // One parse serves both rulesets.
        let decisions = weir_compiler::transaction(&bytes, &envelope).map(|tx| {
            (
                old_rules.evaluate(&tx, &mut old_rates, &opts),
                new_rules.evaluate(&tx, &mut new_rates, &opts),
            )
        });
        let (before, after) = match decisions {
            Ok((b, a)) => (
                weir_compiler::report::decision_json(&b),
                weir_compiler::report::decision_json(&a),
            ),
            Err(e) => {
                eprintln!("error: {}: {e}", input.display());
                status = 2;
                continue;
            }
        };
        let changes = weir_compiler::report::differences(&before, &after);
        if changes.is_empty() {
            continue;
        }
        differing += 1;
        if as_json {
            println!(
                "{}",
                json!({"file": input.display(), "changes": Value::Object(changes)})
            );
        } else {
            println!("{}", input.display());
            for (key, change) in &changes {
                println!("  {key}: {} -> {}", change["old"], change["new"]);
            }
        }
    }
    if !as_json {
        println!("{differing} of {total} messages differ");
    }
    if status != 0 {
        status
    } else {
        u8::from(differing > 0)
    }
}
