//! `weir serve`, the daemon, as a library: the `weir` binary calls
//! [`run`]; the benchmarks embed the milter server ([`EmbeddedMilter`]) and
//! drive it with the [`milter_client`].
//!
//! One [`Daemon`](state::Daemon) holds the running ruleset, the durable
//! store, the metrics and the event stream; the milter server (`milter.rs`,
//! with `stages.rs` for the earliest-stage decision), the LMTP server
//! (`lmtp/`), the HTTP control API (`http.rs`), the reload watcher
//! (`reload.rs`) and the outbox worker (`outbox/`) all share it.
//!
//! Start-up order: configuration (a bad key exits 1 naming it), rules
//! (compiled and tested; errors exit 2 with diagnostics), store, listeners
//! (bound before anything is served, so a busy port fails the start), then
//! the servers, reload triggers and the retention task. SIGTERM or SIGINT
//! stops accepting, drains connections for at most [`DRAIN`], flushes the
//! store and exits 0.

#![forbid(unsafe_code)]

mod access;
mod audit;
mod autolearn;
#[cfg(feature = "bench")]
pub mod bench;
mod classifiers;
mod clock;
mod cluster;
mod config;
mod conn;
mod console;
mod edits;
mod embedded;
mod evalpool;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
mod health;
mod holdqueue;
mod http;
mod lmtp;
mod memory;
mod metrics;
mod milter;
mod outbox;
mod recent;
mod reload;
mod stages;
mod stamp;
mod state;
mod store;
mod systemd;
mod triggers;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use config::{Config, ListenAddr};
pub use embedded::EmbeddedMilter;
use state::Daemon;

/// A milter *client* (the MTA side of the protocol, over TCP): connect,
/// negotiate, send a message stage by stage and read the filter's replies
/// and edits. The load tool (`weir-benches`' `milter-load`), the milter
/// benchmark and the daemon's tests drive `weir serve` with it, so no MTA is
/// needed in the loop.
pub use milter::client as milter_client;

/// How long in-flight connections may take to finish after SIGTERM.
pub const DRAIN: Duration = Duration::from_secs(10);

/// How often old audit entries are deleted.
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// A bound listening socket, ready to accept.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(tokio::net::TcpListener),
    /// A Unix-domain socket.
    Unix(tokio::net::UnixListener),
}

impl Listener {
    /// Binds `addr`. A stale Unix socket file is replaced (any other kind
    /// of file there is an error, never removed); a new socket gets mode
    /// 0660 whatever the umask: its owner and group (Postfix in Weir's
    /// group) may connect, other local users may not.
    pub async fn bind(addr: &ListenAddr) -> std::io::Result<Listener> {
        match addr {
            ListenAddr::Inet { host, port } => {
                let listener = tokio::net::TcpListener::bind((host.as_str(), *port)).await?;
                Ok(Listener::Tcp(listener))
            }
            ListenAddr::Unix(path) => {
                if let Some(dir) = path.parent()
                    && !dir.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(dir)?;
                }
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    use std::os::unix::fs::FileTypeExt;
                    if !meta.file_type().is_socket() {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::AlreadyExists,
                            format!("{} exists and is not a socket", path.display()),
                        ));
                    }
                    std::fs::remove_file(path)?;
                }
                let listener = tokio::net::UnixListener::bind(path)?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
                Ok(Listener::Unix(listener))
            }
        }
    }

    /// Where it listens, in the listener syntax (`inet:127.0.0.1:8890`).
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map(|a| match a {
                    std::net::SocketAddr::V4(v4) => format!("inet:{v4}"),
                    std::net::SocketAddr::V6(v6) => format!("inet:[{}]:{}", v6.ip(), v6.port()),
                })
                .unwrap_or_else(|_| "inet:?".into()),
            Listener::Unix(l) => l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
                .unwrap_or_else(|| "unix:?".into()),
        }
    }
}

/// A future that completes when shutdown begins.
pub fn shutdown_signal(
    rx: &tokio::sync::watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// The log filter: `WEIR_LOG` (comma-separated `LEVEL` and `TARGET=LEVEL`
/// directives, tracing's `filter::Targets` syntax), `info` by default.
/// Cranelift logs every generated function at `info`; that stays quiet
/// unless `WEIR_LOG` names it.
fn log_filter() -> tracing_subscriber::filter::Targets {
    const QUIET_JIT: &str = "cranelift_jit=warn,cranelift_codegen=warn";
    // `WEIR_LOG=debug` is about Weir's own steps: the storage engine's
    // internals stay at warnings unless named.
    const QUIET_STORE: &str = "sled=warn";
    let mut spec = std::env::var("WEIR_LOG").unwrap_or_else(|_| "info".to_string());
    if !spec.contains("cranelift") {
        spec = format!("{spec},{QUIET_JIT}");
    }
    if !spec.contains("sled") {
        spec = format!("{spec},{QUIET_STORE}");
    }
    spec.parse().unwrap_or_else(|_| {
        format!("info,{QUIET_JIT},{QUIET_STORE}")
            .parse()
            .unwrap_or_default()
    })
}

/// Runs the daemon until SIGTERM; returns the exit status.
pub fn run(config_path: Option<&Path>, rules: Option<&Path>) -> u8 {
    // Before any thread of the runtime allocates.
    weir_compiler::fix_allocator_thresholds();
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(log_filter())
        .try_init();
    let config = match (config_path, rules) {
        (Some(file), rules) => match Config::load(file, rules) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return 1;
            }
        },
        (None, Some(rules)) => Config::defaults(rules),
        (None, None) => {
            eprintln!("weir serve: give --config FILE or --rules FILE");
            return 1;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("weir serve: cannot start the runtime: {e}");
            return 1;
        }
    };
    let status = runtime.block_on(serve(config));
    // Connections that outlived the drain are cut here.
    runtime.shutdown_timeout(Duration::from_secs(1));
    status
}

async fn serve(config: Config) -> u8 {
    let daemon = match tokio::task::spawn_blocking(move || Daemon::new(config)).await {
        Ok(Ok(daemon)) => daemon,
        Ok(Err(e)) => {
            eprintln!("{e}");
            return e.exit_code();
        }
        Err(e) => {
            eprintln!("weir serve: {e}");
            return 1;
        }
    };
    warn_root_delivery(&daemon.config());
    let listeners = match Listeners::bind(&daemon.config()).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("weir serve: {e}");
            return 1;
        }
    };
    // Only once every listener is bound: a start that fails on a busy port
    // generates and prints no token.
    let access = match http::api_access(&daemon.config()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("weir serve: {e:#}");
            return 1;
        }
    };
    tracing::info!(
        "ruleset version {} ({}); {}",
        daemon.current().version,
        daemon.current().hash(),
        listeners.describe()
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let servers = Servers::start(&daemon, listeners, access, &stop_rx);
    systemd::sd_notify("READY=1");

    let store_fault = tokio::select! {
        () = wait_for_termination() => false,
        () = health::watch_store(daemon.clone()) => true,
    };
    tracing::info!("stopping: draining connections");
    systemd::sd_notify("STOPPING=1");
    let _ = stop_tx.send(true);
    servers.drain().await;
    if store_fault {
        return health::STORE_FAULT_EXIT;
    }
    if let Err(e) = daemon.store.flush() {
        tracing::error!("{e:#}");
        return 1;
    }
    tracing::info!("stopped");
    0
}

/// The daemon's listening sockets, all bound before anything is served.
struct Listeners {
    http: Listener,
    milter: Listener,
    lmtp: Option<Listener>,
}

impl Listeners {
    /// Binds every configured listener; the error names the one that failed.
    async fn bind(config: &Config) -> Result<Listeners, String> {
        let bind = |table: &'static str, addr: &ListenAddr| {
            let addr = addr.clone();
            async move {
                Listener::bind(&addr)
                    .await
                    .map_err(|e| format!("[{table}] listen {addr}: {e}"))
            }
        };
        let http = bind("http", &config.http.listen).await?;
        let milter = bind("milter", &config.milter.listen).await?;
        let lmtp = match &config.lmtp {
            Some(lmtp) => Some(bind("lmtp", &lmtp.listen).await?),
            None => None,
        };
        Ok(Listeners { http, milter, lmtp })
    }

    /// "HTTP on …; milter on …[; LMTP on …]" for the start-up log line.
    fn describe(&self) -> String {
        let lmtp = self
            .lmtp
            .as_ref()
            .map(|l| format!("; LMTP on {}", l.describe()));
        format!(
            "HTTP on {}; milter on {}{}",
            self.http.describe(),
            self.milter.describe(),
            lmtp.unwrap_or_default()
        )
    }
}

/// The running servers and the outbox worker.
struct Servers {
    milter: tokio::task::JoinHandle<anyhow::Result<()>>,
    lmtp: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    http: tokio::task::JoinHandle<anyhow::Result<()>>,
    outbox: tokio::task::JoinHandle<()>,
}

impl Servers {
    /// Starts the servers on their listeners, the reload triggers, the
    /// retention task and the outbox worker; all stop when `stop` turns true.
    fn start(
        daemon: &Arc<Daemon>,
        listeners: Listeners,
        access: access::Access,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Servers {
        let http = tokio::spawn(http::serve(
            daemon.clone(),
            listeners.http,
            access,
            stop.clone(),
        ));
        let milter = tokio::spawn(milter::serve(
            daemon.clone(),
            listeners.milter,
            shutdown_signal(stop),
        ));
        let lmtp = listeners
            .lmtp
            .map(|listener| tokio::spawn(lmtp::serve(daemon.clone(), listener, stop.clone())));
        if let Err(e) = triggers::spawn_sighup(daemon.clone()) {
            tracing::error!("cannot handle SIGHUP: {e}");
        }
        if let Err(e) = triggers::spawn_watcher(daemon.clone()) {
            tracing::error!("cannot watch the rule files: {e}");
        }
        spawn_retention(daemon.clone());
        memory::spawn_release_after_bursts(daemon.clone());
        if daemon.store.backend() == "redis" {
            tokio::spawn(cluster::follow(daemon.clone(), stop.clone()));
            tokio::spawn(cluster::relay_events(daemon.clone(), stop.clone()));
            tokio::spawn(classifiers::follow(daemon.clone(), stop.clone()));
        }
        let outbox = outbox::spawn_worker(daemon.clone(), stop.clone());
        Servers {
            milter,
            lmtp,
            http,
            outbox,
        }
    }

    /// Waits at most [`DRAIN`] for the servers to finish their connections.
    async fn drain(self) {
        let drained = tokio::time::timeout(DRAIN, async {
            let tasks = [
                ("milter", Some(self.milter)),
                ("LMTP", self.lmtp),
                ("HTTP", Some(self.http)),
            ];
            for (name, task) in tasks {
                let Some(task) = task else { continue };
                match task.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!("{name} server: {e:#}"),
                    Err(e) => tracing::error!("{name} server: {e}"),
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("connections still open after {DRAIN:?}: closing them");
        }
        // Attempts in flight are dropped: their items stay pending and are
        // sent again (same idempotency key) at the next start.
        self.outbox.abort();
    }
}

/// Warns when LMTP delivery runs as root: every Maildir file would be
/// root's, and a flaw in path handling would write anywhere.
fn warn_root_delivery(config: &Config) {
    use std::os::unix::fs::MetadataExt;
    // The owner of /proc/self is the process's effective user.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if root && config.lmtp.is_some() {
        tracing::warn!(
            "running as root with [lmtp] delivery: Maildir files will belong to root; run weir as its own user (User=weir in daemon/weir.service) with write access to the Maildir root only"
        );
    }
}

async fn wait_for_termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, run until killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Enforces every retention rule (`retain`), at start and then every hour.
fn spawn_retention(daemon: Arc<Daemon>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RETENTION_INTERVAL);
        loop {
            tick.tick().await;
            let daemon = daemon.clone();
            let pruned =
                tokio::task::spawn_blocking(move || retain(&daemon, state::unix_now())).await;
            match pruned {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!("retention: deleted {n} old audit entries"),
                Ok(Err(e)) => tracing::error!("retention: {e:#}"),
                Err(e) => tracing::error!("retention: {e}"),
            }
        }
    });
}

/// Deletes what no rule needs any more (docs/serve.md "State"): audit
/// entries, delivered side-effect keys, LMTP delivery records, dead outbox
/// items and gone quarantine entries older than `[audit] retention`;
/// `rate()` keys no window can see; auto-reply times older than both
/// `[reply] period` and the retention; `duplicate()` records older than
/// the retention; quarantine files no entry names. Returns how many audit
/// entries went.
fn retain(daemon: &Daemon, now: i64) -> anyhow::Result<usize> {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let cutoff = now.saturating_sub(secs(daemon.config().audit.retention));
    // Delivered side-effect keys are kept as long as the audit log, so a
    // message sent again within it repeats none.
    daemon.store.prune_outbox_done(cutoff)?;
    // Likewise the LMTP delivery index: the window in which a copy sent
    // again is recognised and not delivered twice.
    daemon.store.prune_deliveries(cutoff)?;
    // And `duplicate()` records: a window longer than the retention sees
    // only the retention.
    daemon.store.prune_duplicates(cutoff)?;
    daemon.store.prune_dead_outbox(cutoff)?;
    // Held messages that left Postfix's hold queue without Weir.
    daemon.store.prune_gone_quarantine(cutoff)?;
    daemon.store.prune_rates(now)?;
    // A rule's `reply … every D` may be longer than `[reply] period`:
    // reply times are kept for the longer of that period and the audit
    // retention.
    let replies_cutoff = now
        .saturating_sub(secs(daemon.config().reply.period))
        .min(cutoff);
    daemon.store.prune_replies(replies_cutoff)?;
    lmtp::prune_orphaned_copies(daemon);
    daemon.store.prune_audit(cutoff)
}
