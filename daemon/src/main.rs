//! `weir`: check, run, test, format and compare Flow rulesets.
//!
//! The binary is thin: argument parsing and output live here, everything
//! the language means lives in `weir-compiler` and `weir-stdlib`.

use std::process::ExitCode;

mod cli;
mod commands;
mod inputs;
mod lsp;
mod report;
mod serve;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    ExitCode::from(commands::dispatch(cli))
}
