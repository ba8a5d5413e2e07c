//! The command line of docs/cli.md.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Weir: a mail rule engine for Flow rules.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The evaluation engine of `weir run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Engine {
    /// Native code (falls back to the interpreter where not available).
    #[default]
    Jit,
    /// The reference interpreter.
    Interp,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and type-check rules; print diagnostics. Exit 0 when clean, 1 on errors.
    Check {
        /// Rule files or directories (every `.flow` below, recursively).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Evaluate messages with a ruleset.
    Run(RunArgs),
    /// Show the messages whose outcome differs between two rulesets.
    Diff {
        /// The old ruleset.
        old: PathBuf,
        /// The new ruleset.
        new: PathBuf,
        /// Messages or directories of messages.
        #[arg(required = true)]
        messages: Vec<PathBuf>,
        /// One JSON object per differing message.
        #[arg(long)]
        json: bool,
    },
    /// Run the `test` blocks of rule files.
    Test {
        /// Rule files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Format rule files canonically, in place (`-` formats stdin to stdout).
    Fmt {
        /// Change nothing; exit 1 if a file would change.
        #[arg(long)]
        check: bool,
        /// Rule files or directories, or `-`.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// The daemon: milter, LMTP and the HTTP control API.
    Serve {
        /// The configuration file (`weir.toml`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The rules to serve (overrides `rules` of the configuration;
        /// without `--config`, runs with docs/serve.md's defaults).
        #[arg(long)]
        rules: Option<PathBuf>,
    },
    /// The language server, on stdio (for editors).
    Lsp,
    /// Convert rules written for another filter to Flow.
    #[command(subcommand)]
    Import(ImportCommand),

    /// Teach a learned classifier: messages (files, directories, mbox
    /// files) as examples of one class.
    Learn(LearnArgs),
}

/// Arguments of `weir learn`.
#[derive(Debug, clap::Args)]
pub struct LearnArgs {
    /// The classifier's name, as declared (`classifier NAME = learned [...]`).
    pub name: String,
    /// The class the messages are examples of.
    pub class: String,
    /// Messages: files, directories (every file below), mbox files, or
    /// `-` for one message on stdin.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The state directory (weir serve's `state_dir`; the daemon must be
    /// stopped, or learn through its API).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/weir")]
    pub state: PathBuf,
    /// Unlearn the messages instead (they were learned as CLASS or another class).
    #[arg(long)]
    pub forget: bool,
}

/// The formats `weir import` reads.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A Sieve script (RFC 5228) to Flow; notes on stderr. Exit 0 when
    /// exact, 1 when something did not convert, 2 on unreadable input.
    Sieve {
        /// The script (stdin when absent or `-`).
        script: Option<PathBuf>,
        /// Write the Flow file here (stdout when absent or `-`).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        /// Exit 0 even when some constructs did not convert.
        #[arg(long)]
        allow_partial: bool,
    },
}

/// Arguments of `weir run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The ruleset: a `.flow` file (or a directory: all its `.flow` files together).
    pub rules: PathBuf,
    /// Messages, directories of messages, or `-` for one message on stdin.
    #[arg(required = true)]
    pub messages: Vec<PathBuf>,
    /// Envelope sender (default: the first `From` address).
    #[arg(long)]
    pub from: Option<String>,
    /// Envelope recipient, repeatable (default: the `To` and `Cc` addresses).
    #[arg(long)]
    pub to: Vec<String>,
    /// Client IP address (default 127.0.0.1).
    #[arg(long = "client-ip")]
    pub client_ip: Option<IpAddr>,
    /// HELO name (default `localhost`).
    #[arg(long)]
    pub helo: Option<String>,
    /// The evaluation clock (`now`), an RFC 3339 time such as
    /// `2024-12-20T18:00:00Z` (default: the current time).
    #[arg(long, value_name = "TIME", value_parser = parse_now)]
    pub now: Option<i64>,
    /// Evaluation engine.
    #[arg(long, value_enum, default_value_t)]
    pub engine: Engine,
    /// One JSON object per message, one per line.
    #[arg(long)]
    pub json: bool,
    /// Show each rule, whether it held, and what made it hold.
    #[arg(long)]
    pub explain: bool,
    /// Per-rule hit counts, verdict totals and rules that never fired.
    #[arg(long)]
    pub stats: bool,
    /// The state directory whose learned classifiers the rules read
    /// (`weir learn --state`, weir serve's `state_dir`); without it,
    /// every classifier has learned nothing.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Threads compiling the rules and evaluating messages (default: one
    /// per core); the output is the same whatever the number.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
}

/// `--now TIME`: RFC 3339, to seconds since the epoch.
fn parse_now(text: &str) -> Result<i64, String> {
    weir_stdlib::time::parse_rfc3339(text).ok_or_else(|| {
        format!("`{text}` is not an RFC 3339 time (write e.g. 2024-12-20T18:00:00Z)")
    })
}

impl Cli {
    /// Parses the process arguments. Usage errors exit with status 1 (a bad
    /// option is status 1 for `weir run`, docs/cli.md), `--help` and
    /// `--version` with 0.
    pub fn try_parse_args() -> Result<Cli, ExitCode> {
        Cli::try_parse().map_err(|e| {
            let _ = e.print();
            if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        })
    }
}
