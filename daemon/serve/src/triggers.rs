//! What starts a reload besides `POST /v1/reload`: SIGHUP (which re-reads
//! `weir.toml` too) and a change to any file the ruleset was built from
//! (the parent directories are watched, since editors replace files
//! rather than write them in place).

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::reload::{reload, reload_config};
use super::state::Daemon;

/// Reloads on every SIGHUP, until the process ends.
pub fn spawn_sighup(daemon: Arc<Daemon>) -> anyhow::Result<()> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading weir.toml and the rules");
            if let Err(e) = reload_config(&daemon) {
                tracing::error!("{e}; keeping the running configuration");
            }
            let _ = reload(&daemon).await;
        }
    });
    Ok(())
}

/// How long the files must be quiet before a change triggers a reload
/// (editors write a file in several steps).
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Watches the parent directories of every file of the ruleset and reloads
/// when one of those files changes.
pub fn spawn_watcher(daemon: Arc<Daemon>) -> anyhow::Result<()> {
    use notify::{RecursiveMode, Watcher};

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<notify::Event>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            let _ = tx.send(event);
        }
    })?;
    let mut files_rx = daemon.reload.watch.subscribe();
    tokio::spawn(async move {
        let mut watched_dirs: BTreeSet<PathBuf> = BTreeSet::new();
        let mut files: HashSet<PathBuf> = HashSet::new();
        let mut refresh = true;
        loop {
            if refresh {
                refresh = false;
                let list = files_rx.borrow_and_update().clone();
                files = list.iter().map(|p| absolute(p)).collect();
                let dirs: BTreeSet<PathBuf> = files
                    .iter()
                    .filter_map(|f| {
                        if f.is_dir() {
                            Some(f.clone())
                        } else {
                            f.parent().map(Path::to_path_buf)
                        }
                    })
                    .collect();
                for gone in watched_dirs.difference(&dirs) {
                    let _ = watcher.unwatch(gone);
                }
                for dir in dirs.difference(&watched_dirs) {
                    if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                        tracing::warn!("cannot watch {}: {e}", dir.display());
                    }
                }
                watched_dirs = dirs;
            }
            tokio::select! {
                changed = files_rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    refresh = true;
                }
                event = rx.recv() => {
                    let Some(event) = event else { return };
                    if !relevant(&event, &files) {
                        continue;
                    }
                    // Wait until the files are quiet.
                    loop {
                        match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                            Ok(Some(_)) => continue,
                            Ok(None) => return,
                            Err(_) => break,
                        }
                    }
                    tracing::info!("rule files changed: reloading");
                    let _ = reload(&daemon).await;
                }
            }
        }
    });
    Ok(())
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Whether a file-system event touches a file of the ruleset (or adds a
/// `.flow` file to a watched rules directory).
fn relevant(event: &notify::Event, files: &HashSet<PathBuf>) -> bool {
    if matches!(event.kind, notify::EventKind::Access(_)) {
        return false;
    }
    event.paths.iter().any(|p| {
        files.contains(p)
            || p.extension().is_some_and(|e| e == "flow")
                && p.parent().is_some_and(|dir| files.contains(dir))
    })
}
