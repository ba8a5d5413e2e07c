//! `weir test PATH...`: run the `test` blocks of rule files.

use std::path::PathBuf;

use weir_compiler::{FsLoader, Purpose, run_case};

use super::{DiagnosticPrinter, compile_ruleset, evaluator};
use crate::cli::Engine;
use crate::inputs::{self, Input};

/// Prints one line per test and a closing `N passed, N failed` line; exit
/// 1 when a test fails or a file does not compile.
pub fn run(paths: &[PathBuf]) -> u8 {
    let mut printer = DiagnosticPrinter::new();
    let (mut passed, mut failed, mut broken) = (0usize, 0usize, 0usize);
    for input in inputs::expand(paths, inputs::flow_file) {
        let Input::File(path) = input else {
            eprintln!("error: weir test reads rule files, not standard input");
            return 1;
        };
        let compiled = compile_ruleset(&path, Purpose::Native);
        printer.print(&compiled);
        let Some(ruleset) = compiled
            .ruleset
            .filter(|_| !compiled.diagnostics.iter().any(|d| d.is_error()))
        else {
            println!("FAIL {}: does not compile", path.display());
            broken += 1;
            continue;
        };
        // Tests run on the engine `weir run` and `weir serve` use.
        let evaluator = evaluator(&ruleset, Engine::default());
        for case in ruleset.tests() {
            match run_case(&evaluator, case, &FsLoader) {
                Ok(()) => {
                    passed += 1;
                    println!("ok   {}:{}: {}", case.file, case.line, case.name);
                }
                Err(reasons) => {
                    failed += 1;
                    println!("FAIL {}:{}: {}", case.file, case.line, case.name);
                    for reason in reasons {
                        println!("       {reason}");
                    }
                }
            }
        }
    }
    if broken > 0 {
        println!(
            "{broken} file{} did not compile",
            if broken == 1 { "" } else { "s" }
        );
    }
    println!("{passed} passed, {} failed", failed + broken);
    u8::from(failed + broken > 0)
}
