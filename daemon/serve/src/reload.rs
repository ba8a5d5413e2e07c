//! Hot reload: compile the rules and run their `test` blocks off the hot
//! path, then swap the running ruleset atomically — or keep the old one
//! and say why.
//!
//! Triggers: `POST /v1/reload`, SIGHUP, and a change to any file the
//! ruleset was built from (the parent directories are watched, since
//! editors replace files rather than write them in place). One reload runs
//! at a time. Messages in flight keep the `Arc<LoadedRuleset>` they started
//! with; the old ruleset is freed when the last of them is done.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use weir_compiler::{Engine as EvalEngine, Evaluator, Loader, Ruleset, compile_ruleset, run_case};
use weir_grammar::diagnostic::line_col;

use super::state::{Daemon, LoadedRuleset, unix_now};

/// A ruleset that compiled and passed its tests, ready to be swapped in.
#[derive(Debug)]
pub struct Candidate {
    /// The ruleset compiled to native code (or, where executable memory
    /// is refused, the interpreter): what the daemon evaluates with.
    pub evaluator: Evaluator,
    /// The literal tags written in its files (the bounded `tag` labels).
    pub tags: HashSet<String>,
    /// Every file it was built from, on disk (to watch for changes).
    pub watch: Vec<PathBuf>,
}

impl Candidate {
    /// The checked ruleset.
    pub fn ruleset(&self) -> &Ruleset {
        self.evaluator.ruleset()
    }

    /// Logs [`lmtp_only_warnings`] for a daemon that does or does not serve
    /// LMTP.
    pub fn warn_lmtp_only(&self, serves_lmtp: bool) {
        for warning in lmtp_only_warnings(serves_lmtp, self.ruleset()) {
            tracing::warn!("{warning}");
        }
    }

    /// The names of its rules (the bounded `rule` labels).
    pub fn rule_names(&self) -> HashSet<String> {
        self.ruleset()
            .rules()
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }
}

/// One diagnostic, structured for the API.
#[derive(Debug, Clone, Serialize)]
pub struct DiagnosticJson {
    /// `error` or `warning`.
    pub severity: &'static str,
    /// The stable code (`E0102`).
    pub code: &'static str,
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
    /// A hint, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// A `test` block that failed.
#[derive(Debug, Clone, Serialize)]
pub struct TestFailure {
    /// The test's name.
    pub test: String,
    /// Its file.
    pub file: String,
    /// Its line.
    pub line: usize,
    /// What did not hold.
    pub failures: Vec<String>,
}

/// Why a ruleset was not (re)loaded.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadError {
    /// `compile` (diagnostics), `test` (failing tests) or `io`.
    pub kind: &'static str,
    /// The diagnostics as `weir check` prints them.
    pub rendered: String,
    /// The diagnostics, structured.
    pub diagnostics: Vec<DiagnosticJson>,
    /// The failing `test` blocks.
    pub tests: Vec<TestFailure>,
    /// When (seconds since the epoch).
    pub time: i64,
    /// The files involved, to keep watching (a fix to any of them retries).
    #[serde(skip)]
    pub watch: Vec<PathBuf>,
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.rendered.trim_end())
    }
}

impl std::error::Error for ReloadError {}

/// Reload bookkeeping kept in the [`Daemon`].
#[derive(Debug)]
pub struct ReloadState {
    /// Held while a reload runs: one at a time.
    running: tokio::sync::Mutex<()>,
    /// The last failed reload, cleared by a successful one.
    last_error: Mutex<Option<ReloadError>>,
    /// The files to watch, replaced after every reload attempt.
    watch: tokio::sync::watch::Sender<Vec<PathBuf>>,
}

impl ReloadState {
    /// State for a ruleset built from `watch`.
    pub fn new(watch: Vec<PathBuf>) -> ReloadState {
        ReloadState {
            running: tokio::sync::Mutex::new(()),
            last_error: Mutex::new(None),
            watch: tokio::sync::watch::Sender::new(watch),
        }
    }

    /// The last failed reload since the last successful one.
    pub fn last_error(&self) -> Option<ReloadError> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    fn set_watch(&self, files: Vec<PathBuf>) {
        self.watch.send_if_modified(|old| {
            let changed = *old != files;
            *old = files;
            changed
        });
    }
}

/// A loader that remembers every path asked for, found or not, so a
/// missing list file is watched too and its creation triggers a reload.
struct RecordingLoader<'a> {
    inner: &'a dyn Loader,
    asked: RefCell<BTreeSet<PathBuf>>,
}

impl Loader for RecordingLoader<'_> {
    fn load(&self, path: &Path) -> io::Result<String> {
        self.asked.borrow_mut().insert(path.to_path_buf());
        self.inner.load(path)
    }

    fn load_bytes(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.asked.borrow_mut().insert(path.to_path_buf());
        self.inner.load_bytes(path)
    }

    fn flow_files(&self, path: &Path) -> Option<Vec<PathBuf>> {
        let files = self.inner.flow_files(path)?;
        // A new file in the directory is a change too.
        self.asked.borrow_mut().insert(path.to_path_buf());
        Some(files)
    }
}

/// Compiles the ruleset at `rules` (a `.flow` file or a directory of them,
/// as `weir run` takes it), reading through `loader`, and runs its `test`
/// blocks. Blocking: call it from `spawn_blocking`.
pub fn prepare(rules: &Path, loader: &dyn Loader) -> Result<Candidate, ReloadError> {
    let recording = RecordingLoader {
        inner: loader,
        asked: RefCell::new(BTreeSet::new()),
    };
    let compiled = compile_ruleset(rules, &recording);
    let asked = recording.asked.borrow().clone();
    let watch: Vec<PathBuf> = asked.into_iter().collect();

    let error = |kind: &'static str| ReloadError {
        kind,
        rendered: String::new(),
        diagnostics: Vec::new(),
        tests: Vec::new(),
        time: unix_now(),
        watch: watch.clone(),
    };
    let Some(ruleset) = compiled.ruleset.clone().filter(|_| !compiled.has_errors()) else {
        let mut e = error("compile");
        for d in compiled.diagnostics.iter().filter(|d| d.is_error()) {
            e.rendered.push_str(compiled.render(d).trim_end());
            e.rendered.push_str("\n\n");
        }
        if e.rendered.is_empty() {
            e.rendered = format!("{}: the ruleset could not be loaded\n", rules.display());
        }
        e.diagnostics = compiled
            .diagnostics
            .iter()
            .map(|d| {
                let source = compiled.sources.get(&d.file).map_or("", String::as_str);
                let (line, col) = line_col(source, d.span.start);
                DiagnosticJson {
                    severity: if d.is_error() { "error" } else { "warning" },
                    code: d.code,
                    file: d.file.clone(),
                    line,
                    col,
                    message: d.message.clone(),
                    hint: d.hint.clone(),
                }
            })
            .collect();
        return Err(e);
    };
    for d in &compiled.diagnostics {
        tracing::warn!("{}", compiled.render(d).trim_end());
    }

    // Native code and every regex are made here, off the hot path, and the
    // tests run on them: what passed is exactly what will serve, and no
    // message after the switch waits for a regex to be built.
    let (evaluator, refused) = Evaluator::compile(&ruleset, EvalEngine::Native);
    ruleset.build_regexes();
    if let Some(e) = refused {
        tracing::warn!("{e}; this ruleset runs on the interpreter");
    }
    let mut failed = Vec::new();
    for case in ruleset.tests() {
        if let Err(failures) = run_case(&evaluator, case, &recording) {
            failed.push(TestFailure {
                test: case.name.clone(),
                file: case.file.clone(),
                line: case.line,
                failures,
            });
        }
    }
    if !failed.is_empty() {
        let mut e = error("test");
        for t in &failed {
            e.rendered.push_str(&format!(
                "test {:?} failed ({}:{}):\n",
                t.test, t.file, t.line
            ));
            for f in &t.failures {
                e.rendered.push_str(&format!("  {f}\n"));
            }
        }
        e.tests = failed;
        return Err(e);
    }
    let tags = ruleset.literal_tags().into_iter().collect();
    Ok(Candidate {
        evaluator,
        tags,
        watch,
    })
}

/// Reloads the rules: compile and test off the hot path, then swap. Returns
/// the new version, or why the old ruleset stays.
pub async fn reload(daemon: &Arc<Daemon>) -> Result<u64, ReloadError> {
    let _one_at_a_time = daemon.reload.running.lock().await;
    sd_notify("RELOADING=1");
    let rules = daemon.config.rules.clone();
    let prepared = tokio::task::spawn_blocking(move || prepare(&rules, &weir_compiler::FsLoader))
        .await
        .unwrap_or_else(|e| {
            Err(ReloadError {
                kind: "io",
                rendered: format!("the reload task failed: {e}"),
                diagnostics: Vec::new(),
                tests: Vec::new(),
                time: unix_now(),
                watch: Vec::new(),
            })
        });
    let result = match prepared {
        Ok(candidate) => install(daemon, candidate),
        Err(e) => {
            if !e.watch.is_empty() {
                daemon.reload.set_watch(e.watch.clone());
            }
            daemon.metrics.reloaded(false);
            tracing::error!(
                "reload failed, keeping version {}:\n{e}",
                daemon.current().version
            );
            if let Ok(mut last) = daemon.reload.last_error.lock() {
                *last = Some(e.clone());
            }
            Err(e)
        }
    };
    sd_notify("READY=1");
    result
}

/// docs/language.md ("Diagnostics"): one warning per rule that uses LMTP-only fields or
/// actions when this daemon serves no LMTP (the milter cannot file into
/// folders with flags or bind `recipient`).
pub fn lmtp_only_warnings(serves_lmtp: bool, ruleset: &Ruleset) -> Vec<String> {
    if serves_lmtp {
        return Vec::new();
    }
    ruleset
        .rules()
        .iter()
        .filter(|r| !r.lmtp_only.is_empty())
        .map(|r| {
            format!(
                "{}:{}: rule {} uses {}, which only LMTP delivery carries out; \
                 this daemon serves the milter only ([lmtp] is not configured)",
                r.file,
                r.line,
                r.name,
                r.lmtp_only.join(", ")
            )
        })
        .collect()
}

fn install(daemon: &Arc<Daemon>, candidate: Candidate) -> Result<u64, ReloadError> {
    candidate.warn_lmtp_only(daemon.config.lmtp.is_some());
    let version = daemon
        .store
        .next_ruleset_version()
        .map_err(|e| ReloadError {
            kind: "io",
            rendered: format!("cannot store the ruleset version: {e:#}"),
            diagnostics: Vec::new(),
            tests: Vec::new(),
            time: unix_now(),
            watch: candidate.watch.clone(),
        })?;
    daemon
        .metrics
        .set_ruleset(version, candidate.rule_names(), candidate.tags.clone());
    daemon.swap(LoadedRuleset::new(candidate.evaluator, version));
    daemon.reload.set_watch(candidate.watch);
    daemon.metrics.reloaded(true);
    if let Ok(mut last) = daemon.reload.last_error.lock() {
        *last = None;
    }
    tracing::info!("ruleset version {version} loaded");
    Ok(version)
}

/// Reloads on every SIGHUP, until the process ends.
pub fn spawn_sighup(daemon: Arc<Daemon>) -> anyhow::Result<()> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
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

/// Tells systemd (`Type=notify`) about the daemon's state, when started by
/// it (`$NOTIFY_SOCKET` set): `READY=1`, `RELOADING=1`, `STOPPING=1`.
pub fn sd_notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(datagram) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = socket.as_encoded_bytes();
    let result = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| datagram.send_to_addr(state.as_bytes(), &addr))
    } else {
        datagram.send_to(state.as_bytes(), Path::new(&socket))
    };
    if let Err(e) = result {
        tracing::warn!("cannot notify systemd ({state}): {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lmtp_only_rules_are_named_when_no_lmtp_serves_them() {
        let dir = std::env::temp_dir().join(format!("weir-lmtp-only-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let rules = dir.join("rules.flow");
        std::fs::write(
            &rules,
            "rule seen { when recipient.local == \"a\" then flag \"\\\\Seen\" }\n\
             rule plain { when subject contains \"x\" then tag \"x\" }\n",
        )
        .expect("rules");
        let candidate = prepare(&rules, &weir_compiler::FsLoader).expect("compiles");
        let warnings = lmtp_only_warnings(false, candidate.ruleset());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("rule seen uses flag, recipient"),
            "{warnings:?}"
        );
        assert!(lmtp_only_warnings(true, candidate.ruleset()).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
