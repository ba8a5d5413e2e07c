//! The milter server embedded in another process, for the benchmarks.

use crate::config::Config;
use crate::state::Daemon;

/// The milter server of `weir serve`, embedded in the calling process on a
/// free loopback port: the same daemon (ruleset compiled and tested, store,
/// audit log, metrics) and the same protocol code, without the HTTP API,
/// reload triggers or signal handling. The milter benchmark measures the
/// milter path with it, so no daemon has to be built and started first.
#[derive(Debug)]
pub struct EmbeddedMilter {
    addr: std::net::SocketAddr,
    daemon: std::sync::Arc<Daemon>,
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
        let mut config = Config::defaults(rules);
        config.state_dir = state_dir.to_path_buf();
        // Compiling and opening the store block; keep them off the runtime.
        let daemon = tokio::task::spawn_blocking(move || Daemon::new(config)).await??;
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(crate::milter::serve(
            daemon.clone(),
            crate::Listener::Tcp(listener),
            crate::shutdown_signal(&stopped),
        ));
        Ok(EmbeddedMilter {
            addr,
            daemon,
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
        self.daemon.store.flush()
    }
}
