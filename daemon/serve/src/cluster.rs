//! One ruleset across hosts sharing a Redis store (docs/serve.md "Several
//! hosts"). A reload on one host (file, API, SIGHUP) that installs a new
//! version announces it: the version, the host, and the text of every
//! file the ruleset was built from, relative to its rules directory. Every
//! other host polls the announcement each second; a newer version is
//! compiled from those texts and its `test` blocks run, through the same
//! gate as a local reload (`reload::follow`), and installed under the same
//! version number. A host that cannot load it keeps its running version
//! and says so: in `/v1/ruleset` (`hosts`, each host's version and error)
//! and in `weir_ruleset_in_sync 0`.
//!
//! Polling rather than pub/sub: a host that was disconnected, or started
//! later, finds the last announcement all the same.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::state::{Daemon, unix_now};

/// The key of the last announcement.
const ANNOUNCED: &str = "ruleset:announced";
/// The hash of every host's ruleset state, by host.
const HOSTS: &str = "ruleset:hosts";
/// How often a host looks for an announcement and reports its state.
const POLL: Duration = Duration::from_secs(1);

/// A version announced by the host that loaded it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Announcement {
    /// The version.
    pub version: u64,
    /// The `[store] host` that loaded it.
    pub host: String,
    /// The entry (file or directory) relative to the rules directory.
    pub entry: String,
    /// Every file read, relative to the rules directory, with its text;
    /// `None` when one could not be shared (outside the rules directory,
    /// not UTF-8): followers then report that they cannot load it.
    pub sources: Option<BTreeMap<String, String>>,
}

/// One host's ruleset, as `/v1/ruleset` lists it under `hosts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostRuleset {
    /// The `[store] host`.
    pub host: String,
    /// The version it runs.
    pub version: u64,
    /// Its ruleset hash.
    pub hash: String,
    /// Whether it runs the last announced version.
    pub in_sync: bool,
    /// Why it could not load the announced version, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it last reported (RFC 3339).
    pub updated: String,
}

/// The directory the rules' relative names start from: the rules path
/// itself when it is a directory, else its parent.
fn rules_root(rules: &Path) -> PathBuf {
    if rules.is_dir() {
        rules.to_path_buf()
    } else {
        rules.parent().map(Path::to_path_buf).unwrap_or_default()
    }
}

/// Announces `version`, just installed from `files`, to the other hosts.
/// Blocking (Redis). Nothing with sled.
pub fn announce(daemon: &Daemon, version: u64, files: &[PathBuf]) {
    if daemon.store.backend() != "redis" {
        return;
    }
    let rules = daemon.config().rules.clone();
    let root = rules_root(&rules);
    let relative =
        |p: &Path| -> Option<String> { Some(p.strip_prefix(&root).ok()?.to_str()?.to_string()) };
    let entry = relative(&rules).unwrap_or_default();
    let sources: Option<BTreeMap<String, String>> = files
        .iter()
        // A file asked for but missing (a list not yet created) is not part
        // of the ruleset.
        .filter(|p| p.is_file())
        .map(|p| Some((relative(p)?, std::fs::read_to_string(p).ok()?)))
        .collect();
    let announcement = Announcement {
        version,
        host: daemon.store.host().to_string(),
        entry,
        sources,
    };
    let stored = serde_json::to_vec(&announcement)
        .map_err(anyhow::Error::from)
        .and_then(|bytes| daemon.store.shared_set(ANNOUNCED, &bytes));
    match stored {
        Ok(()) => tracing::info!("ruleset version {version} announced to the other hosts"),
        Err(e) => tracing::error!("cannot announce ruleset version {version}: {e:#}"),
    }
}

/// A loader over the announced texts, placed under this host's rules
/// directory.
pub struct Shipped {
    files: BTreeMap<PathBuf, String>,
}

impl Shipped {
    /// The announced files under `root`; `None` when they were not shared.
    pub fn new(announcement: &Announcement, root: &Path) -> Option<Shipped> {
        let sources = announcement.sources.as_ref()?;
        Some(Shipped {
            files: sources
                .iter()
                .map(|(name, text)| (root.join(name), text.clone()))
                .collect(),
        })
    }
}

impl weir_compiler::Loader for Shipped {
    fn load(&self, path: &Path) -> std::io::Result<String> {
        self.files.get(path).cloned().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not part of the announced ruleset",
            )
        })
    }

    fn flow_files(&self, path: &Path) -> Option<Vec<PathBuf>> {
        let files: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| {
                p.as_path() != path
                    && p.starts_with(path)
                    && p.extension().is_some_and(|e| e == "flow")
            })
            .cloned()
            .collect();
        (!files.is_empty()).then_some(files)
    }
}

/// Where the announced entry is on this host, whose `rules` is `rules`.
pub fn entry_here(rules: &Path, announcement: &Announcement) -> PathBuf {
    rules_root(rules).join(&announcement.entry)
}

/// What a starting host runs.
pub struct StartVersion {
    /// The ruleset.
    pub candidate: crate::reload::Candidate,
    /// Its version number.
    pub version: u64,
    /// The announced version this host could not load, and why.
    pub refused: Option<(u64, String)>,
}

/// Picks what a starting host runs. With Redis and a version the running
/// hosts announced, that version: compiled from the announced files and
/// tested, as a follower does, and installed under the announced number,
/// so a host that starts or restarts joins the others instead of taking a
/// version of its own. Otherwise, or when the announced version does not
/// load here (then logged and reported by [`follow`]), `local` (this
/// host's own files) under a new version number. Blocking.
pub fn start_version(
    config: &crate::config::Config,
    store: &crate::store::Store,
    local: crate::reload::Candidate,
) -> anyhow::Result<StartVersion> {
    let announced = if store.backend() == "redis" {
        announcement(store)?
    } else {
        None
    };
    let mut refused = None;
    if let Some(a) = announced {
        match load_announced(config, &a) {
            Ok(candidate) => {
                tracing::info!(
                    "ruleset version {} adopted, as announced by {}",
                    a.version,
                    a.host
                );
                return Ok(StartVersion {
                    candidate,
                    version: a.version,
                    refused: None,
                });
            }
            Err(e) => {
                let why = format!(
                    "cannot load version {} announced by {}: {e}",
                    a.version, a.host
                );
                tracing::error!("{why}; running this host's own files");
                refused = Some((a.version, why));
            }
        }
    }
    Ok(StartVersion {
        candidate: local,
        version: store.next_ruleset_version()?,
        refused,
    })
}

/// The announced version compiled and tested here, and checked against
/// this host's `weir.toml` (the channels and relay its rules need).
fn load_announced(
    config: &crate::config::Config,
    announced: &Announcement,
) -> Result<crate::reload::Candidate, crate::reload::ReloadError> {
    let candidate = crate::reload::prepare_announced(&config.rules, announced)?;
    match crate::reload::check_needs(&candidate.needs, candidate.ruleset(), config) {
        Some(e) => Err(e),
        None => Ok(candidate),
    }
}

/// Follows announcements and reports this host's state, every [`POLL`],
/// until `stop`. Only with Redis.
pub async fn follow(daemon: Arc<Daemon>, mut stop: tokio::sync::watch::Receiver<bool>) {
    // A version refused at start is not tried again, but reported.
    let (mut tried, mut error) = daemon
        .reload
        .take_start_refusal()
        .map_or((0, None), |(v, e)| (v, Some(e)));
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(POLL) => {}
        }
        let d = daemon.clone();
        let announced = tokio::task::spawn_blocking(move || last_announcement(&d))
            .await
            .ok()
            .flatten();
        if let Some(a) = &announced
            && a.version > daemon.current().version
            && a.version != tried
        {
            tried = a.version;
            error = match crate::reload::follow(&daemon, a).await {
                Ok(_) => None,
                Err(e) => Some(format!(
                    "cannot load version {} announced by {}: {e}",
                    a.version, a.host
                )),
            };
        }
        let d = daemon.clone();
        let error = error.clone();
        let latest = announced.map_or(0, |a| a.version);
        let _ = tokio::task::spawn_blocking(move || report(&d, latest, error)).await;
    }
}

fn last_announcement(daemon: &Daemon) -> Option<Announcement> {
    announcement(&daemon.store).ok().flatten()
}

/// The last announcement; `None` when there is none, or it is unreadable.
fn announcement(store: &crate::store::Store) -> anyhow::Result<Option<Announcement>> {
    let Some(bytes) = store.shared_get(ANNOUNCED)? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice(&bytes).ok())
}

/// Writes this host's ruleset state for `/v1/ruleset`; sets
/// `weir_ruleset_in_sync`.
fn report(daemon: &Daemon, latest: u64, error: Option<String>) {
    let current = daemon.current();
    // Equal, not at least: a host that could not load the announced
    // version at start runs its own files under a newer number.
    let in_sync = latest == 0 || current.version == latest;
    daemon.metrics.set_ruleset_in_sync(in_sync);
    let state = HostRuleset {
        host: daemon.store.host().to_string(),
        version: current.version,
        hash: current.hash(),
        in_sync,
        error: if in_sync { None } else { error },
        updated: crate::clock::format_time(unix_now()),
    };
    let stored = serde_json::to_vec(&state)
        .map_err(anyhow::Error::from)
        .and_then(|bytes| daemon.store.shared_hset(HOSTS, &state.host, &bytes));
    if let Err(e) = stored {
        tracing::debug!("cannot report the ruleset state: {e:#}");
    }
}

/// Every host's ruleset state, by host name; empty with sled.
pub fn hosts(daemon: &Daemon) -> Vec<HostRuleset> {
    if daemon.store.backend() != "redis" {
        return Vec::new();
    }
    let all = daemon.store.shared_hgetall(HOSTS).unwrap_or_default();
    let mut out: Vec<HostRuleset> = all
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
        .collect();
    out.sort_by(|a, b| a.host.cmp(&b.host));
    out
}

/// How often the other hosts' decisions are read for `/v1/events`.
const EVENTS_POLL: Duration = Duration::from_millis(500);

/// Publishes the other hosts' decisions on this host's event stream
/// (`/v1/events`), read from the shared audit log every [`EVENTS_POLL`],
/// until `stop`. This host's own decisions are published as it records
/// them.
pub async fn relay_events(daemon: Arc<Daemon>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let d = daemon.clone();
    let newest = tokio::task::spawn_blocking(move || {
        let filter = crate::store::AuditFilter::default();
        d.store.audit_entries(&filter, 1).last().map_or(0, |e| e.id)
    });
    let mut last = newest.await.unwrap_or(0);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(EVENTS_POLL) => {}
        }
        let d = daemon.clone();
        let after = last;
        let read = tokio::task::spawn_blocking(move || {
            let filter = crate::store::AuditFilter {
                after_id: Some(after),
                ..Default::default()
            };
            d.store.audit_entries(&filter, 1000)
        });
        let Ok(entries) = read.await else { continue };
        let host = daemon.store.host();
        for entry in entries {
            last = last.max(entry.id);
            if entry.host != host {
                // No subscriber is not an error.
                let _ = daemon.events.send(entry);
            }
        }
    }
}
