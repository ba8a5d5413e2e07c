//! `weir`: check, run, test, format and compare Flow rulesets.
//!
//! The binary is thin: everything, argument parsing included, lives in the
//! `weir` library (`lib.rs`), which the benchmarks share.

use std::process::ExitCode;

fn main() -> ExitCode {
    weir::main()
}
