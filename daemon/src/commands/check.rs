//! `weir check PATH...`: parse and type-check, print diagnostics.

use std::path::PathBuf;

use weir_compiler::Purpose;

use super::{DiagnosticPrinter, compile_ruleset};
use crate::inputs::{self, Input};

/// Checks every `.flow` file named or found below a named directory, each
/// as the entry of a ruleset. Exit 0 when no file has errors, 1 otherwise.
pub fn run(paths: &[PathBuf]) -> u8 {
    let mut printer = DiagnosticPrinter::new();
    let mut files = 0;
    for input in inputs::expand(paths, inputs::flow_file) {
        let Input::File(path) = input else {
            eprintln!("error: weir check reads rule files, not standard input");
            return 1;
        };
        files += 1;
        printer.print(&compile_ruleset(&path, Purpose::Check));
    }
    if files == 0 {
        eprintln!("error: no .flow files found");
        return 1;
    }
    eprintln!(
        "checked {files} file{}: {} error{}, {} warning{}",
        plural(files),
        printer.errors,
        plural(printer.errors),
        printer.warnings,
        plural(printer.warnings)
    );
    u8::from(printer.errors > 0)
}

/// `"s"` unless there is exactly one.
pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
