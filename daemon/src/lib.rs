//! `weir`: check, run, test, format and compare Flow rulesets, and serve
//! them to an MTA (`weir serve`).
//!
//! The crate is a library so that the integration tests can share code
//! with the command: the `weir` binary (`main.rs`) only calls [`main`].
//! Everything the language means lives in `weir-compiler` and
//! `weir-stdlib`, and the daemon in `weir-serve`; the modules here stay
//! crate-private.

use std::process::ExitCode;

mod cli;
mod commands;
mod inputs;
mod lsp;
mod report;

/// The milter client of `weir-serve`, re-exported for the daemon's
/// integration tests, which drive the `weir` binary with it.
pub use weir_serve::milter_client;

/// The `weir` command: parses the command line and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    ExitCode::from(commands::dispatch(cli))
}
