//! `weir`: check, run, test, format and compare Flow rulesets, and serve
//! them to an MTA (`weir serve`).
//!
//! The crate is a library so that the benchmarks and integration tests can
//! share code with the daemon: the `weir` binary (`main.rs`) only calls
//! [`main`]. Everything the language means lives in `weir-compiler` and
//! `weir-stdlib`; the modules here stay crate-private, and the public
//! surface is deliberately small.

use std::process::ExitCode;

mod cli;
mod commands;
mod inputs;
mod lsp;
mod report;
mod serve;

/// A milter *client* (the MTA side of the protocol, over TCP): connect,
/// negotiate, send a message stage by stage and read the filter's replies
/// and edits. The load tool (`weir-benches`' `milter-load`), the milter
/// benchmark and the daemon's tests drive `weir serve` with it, so no MTA is
/// needed in the loop.
pub use serve::milter::client as milter_client;

/// The `weir` command: parses the command line and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    ExitCode::from(commands::dispatch(cli))
}

/// The milter server of `weir serve`, embedded in the calling process on a
/// free loopback port: the same engine (ruleset compiled and tested, store,
/// audit log, metrics) and the same protocol code, without the HTTP API,
/// reload triggers or signal handling. The milter benchmark measures the
/// milter path with it, so no daemon has to be built and started first.
#[derive(Debug)]
pub struct EmbeddedMilter {
    addr: std::net::SocketAddr,
    engine: std::sync::Arc<serve::Engine>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl EmbeddedMilter {
    /// Compiles `rules` (a `.flow` file or a directory, as `weir serve
    /// --rules` takes it) and runs its `test` blocks, opens the store in
    /// `state_dir`, and serves the milter protocol on `127.0.0.1` (a free
    /// port) on the current tokio runtime.
    pub async fn start(
        rules: &std::path::Path,
        state_dir: &std::path::Path,
    ) -> anyhow::Result<EmbeddedMilter> {
        let mut config = serve::Config::defaults(rules);
        config.state_dir = state_dir.to_path_buf();
        // Compiling and opening the store block; keep them off the runtime.
        let engine = tokio::task::spawn_blocking(move || serve::Engine::new(config)).await??;
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(serve::milter::serve(
            engine.clone(),
            serve::Listener::Tcp(listener),
            serve::shutdown_signal(&stopped),
        ));
        Ok(EmbeddedMilter {
            addr,
            engine,
            stop,
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Stops accepting, lets the sessions in flight finish their current
    /// command, and flushes the store.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await??;
        self.engine.store.flush()
    }
}
