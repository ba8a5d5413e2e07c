//! Hot reload: compile the rules and run their `test` blocks off the hot
//! path, then swap the running ruleset atomically — or keep the old one
//! and say why.
//!
//! Triggers: `POST /v1/reload`, and those of `triggers.rs` (SIGHUP, a
//! change to a file of the ruleset). One reload runs at a time. Messages in flight keep the `Arc<LoadedRuleset>` they started
//! with; the old ruleset is freed when the last of them is done.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use weir_compiler::{
    ConfigNeeds, Engine as EvalEngine, Evaluator, Loader, Ruleset, compile_ruleset, run_case,
};
use weir_grammar::diagnostic::line_col;

use super::config::Config;
use super::metrics::Metrics;
use super::state::{Daemon, LoadedRuleset, unix_now};
use super::systemd::sd_notify;

/// A ruleset that compiled and passed its tests, ready to be swapped in.
#[derive(Debug)]
pub struct Candidate {
    /// The ruleset compiled to native code (or, where executable memory
    /// is refused, the interpreter): what the daemon evaluates with.
    pub evaluator: Evaluator,
    /// The literal tags written in its files (the bounded `tag` labels).
    pub tags: HashSet<String>,
    /// What it needs from `weir.toml`: each `notify` channel it names
    /// must be a `[notify.NAME]`, and a rule that sends mail needs `[relay]`.
    pub needs: ConfigNeeds,
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

    /// Makes `metrics` show it as ruleset `version`: its rule names and
    /// literal tags become the bounded `rule` and `tag` labels.
    pub fn show_in(&self, metrics: &Metrics, version: u64) {
        let rules = self.ruleset().rules().iter().map(|r| r.name.as_str());
        metrics.set_ruleset(version, rules, self.tags.iter().map(String::as_str));
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
    /// What failed.
    pub kind: ReloadErrorKind,
    /// The diagnostics as `weir check` prints them.
    pub rendered: String,
    /// The diagnostics, structured.
    pub diagnostics: Vec<DiagnosticJson>,
    /// The failing `test` blocks.
    pub tests: Vec<TestFailure>,
    /// When (seconds since the epoch; RFC 3339 in JSON, as every time of
    /// the API).
    #[serde(serialize_with = "rfc3339")]
    pub time: i64,
    /// The files involved, to keep watching (a fix to any of them retries).
    #[serde(skip)]
    pub watch: Vec<PathBuf>,
}

/// What made a reload fail (`kind` in `/v1/reload` and `/v1/ruleset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReloadErrorKind {
    /// The ruleset does not compile (diagnostics).
    Compile,
    /// `test` blocks failed.
    Test,
    /// A file could not be read, or the reload task failed.
    Io,
    /// `weir.toml` does not load, or does not configure what the rules
    /// name (a `notify` channel).
    Config,
}

fn rfc3339<S: serde::Serializer>(secs: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&crate::clock::format_time(*secs))
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
    pub(crate) watch: tokio::sync::watch::Sender<Vec<PathBuf>>,
    /// The version announced by other hosts that this host could not load
    /// at start, and why (`cluster::start_version`), until the follower
    /// takes it to report.
    start_refusal: Mutex<Option<(u64, String)>>,
}

impl ReloadState {
    /// State for a ruleset built from `watch`.
    pub fn new(watch: Vec<PathBuf>) -> ReloadState {
        ReloadState {
            running: tokio::sync::Mutex::new(()),
            last_error: Mutex::new(None),
            watch: tokio::sync::watch::Sender::new(watch),
            start_refusal: Mutex::new(None),
        }
    }

    /// Remembers the announced version refused at start.
    pub(crate) fn set_start_refusal(&self, refused: Option<(u64, String)>) {
        if let Ok(mut r) = self.start_refusal.lock() {
            *r = refused;
        }
    }

    /// The announced version refused at start, once.
    pub(crate) fn take_start_refusal(&self) -> Option<(u64, String)> {
        self.start_refusal.lock().ok().and_then(|mut r| r.take())
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

    let error = |kind: ReloadErrorKind| ReloadError {
        kind,
        rendered: String::new(),
        diagnostics: Vec::new(),
        tests: Vec::new(),
        time: unix_now(),
        watch: watch.clone(),
    };
    let Some(ruleset) = compiled.ruleset.clone().filter(|_| !compiled.has_errors()) else {
        let mut e = error(ReloadErrorKind::Compile);
        e.rendered = rendered_errors(&compiled, rules);
        e.diagnostics = diagnostics_json(&compiled);
        return Err(e);
    };
    for d in &compiled.diagnostics {
        tracing::warn!("{}", compiled.render(d).trim_end());
    }

    // Native code and every regex are made here, off the hot path, and the
    // tests run on them: what passed is exactly what will serve, and no
    // message after the switch waits for a regex to be built.
    let (evaluator, refused) = Evaluator::compile(&ruleset, EvalEngine::Native);
    evaluator.build_regexes();
    if let Some(e) = refused {
        tracing::warn!("{e}; this ruleset runs on the interpreter");
    }
    let failed = failed_tests(&evaluator, &ruleset, &recording);
    if !failed.is_empty() {
        let mut e = error(ReloadErrorKind::Test);
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
    let needs = ruleset.config_needs();
    Ok(Candidate {
        evaluator,
        tags,
        needs,
        watch,
    })
}

/// Every error of a compilation, rendered as `weir check` prints them.
fn rendered_errors(compiled: &weir_compiler::Compiled, rules: &Path) -> String {
    let mut rendered = String::new();
    for d in compiled.diagnostics.iter().filter(|d| d.is_error()) {
        rendered.push_str(compiled.render(d).trim_end());
        rendered.push_str("\n\n");
    }
    if rendered.is_empty() {
        rendered = format!("{}: the ruleset could not be loaded\n", rules.display());
    }
    rendered
}

/// Every diagnostic of a compilation, as `/v1/reload` and `/v1/ruleset`
/// show them.
fn diagnostics_json(compiled: &weir_compiler::Compiled) -> Vec<DiagnosticJson> {
    compiled
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
        .collect()
}

/// The ruleset's `test` blocks that fail on `evaluator`.
fn failed_tests(evaluator: &Evaluator, ruleset: &Ruleset, loader: &dyn Loader) -> Vec<TestFailure> {
    let mut failed = Vec::new();
    for case in ruleset.tests() {
        if let Err(failures) = run_case(evaluator, case, loader) {
            failed.push(TestFailure {
                test: case.name.clone(),
                file: case.file.clone(),
                line: case.line,
                failures,
            });
        }
    }
    failed
}

/// The error for what a ruleset needs that `config` does not configure
/// (`notify` channels, `[relay]`): found at load and reload rather than as
/// a dead letter when mail arrives.
pub fn check_needs(needs: &ConfigNeeds, ruleset: &Ruleset, config: &Config) -> Option<ReloadError> {
    let mut rendered = String::new();
    for e in crate::autolearn::check(ruleset, config) {
        rendered.push_str(&format!("error: weir.toml: {e}\n"));
    }
    let known: Vec<&str> = config.notify.keys().map(String::as_str).collect();
    for name in needs
        .channels
        .iter()
        .filter(|c| !config.notify.contains_key(*c))
    {
        rendered.push_str(&format!(
            "error: the rules notify channel \"{name}\", which weir.toml does not configure: add [notify.{name}] with its url (configured: {})\n",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        ));
    }
    let mut senders: Vec<&str> = needs.replies.iter().map(String::as_str).collect();
    if config.lmtp.is_some() {
        senders.extend(needs.forwards.iter().map(String::as_str));
    }
    if config.relay.is_none() && !senders.is_empty() {
        senders.sort_unstable();
        senders.dedup();
        rendered.push_str(&format!(
            "error: rule {} sends mail (reply, or redirect/add_rcpt in LMTP delivery), which needs [relay] in weir.toml: add [relay] with its host and from\n",
            senders.join(", ")
        ));
    }
    if rendered.is_empty() {
        return None;
    }
    Some(ReloadError {
        kind: ReloadErrorKind::Config,
        rendered,
        diagnostics: Vec::new(),
        tests: Vec::new(),
        time: unix_now(),
        watch: Vec::new(),
    })
}

/// Reloads the rules: compile and test off the hot path, then swap. Returns
/// the new version, or why the old ruleset stays.
pub async fn reload(daemon: &Arc<Daemon>) -> Result<u64, ReloadError> {
    let _one_at_a_time = daemon.reload.running.lock().await;
    sd_notify("RELOADING=1");
    let rules = daemon.config().rules.clone();
    let prepared = tokio::task::spawn_blocking(move || prepare(&rules, &weir_compiler::FsLoader))
        .await
        .unwrap_or_else(|e| {
            Err(ReloadError {
                kind: ReloadErrorKind::Io,
                rendered: format!("the reload task failed: {e}"),
                diagnostics: Vec::new(),
                tests: Vec::new(),
                time: unix_now(),
                watch: Vec::new(),
            })
        });
    let result = match prepared {
        Ok(candidate) => install(daemon, candidate, None),
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

/// Reloads the version another host announced (`cluster.rs`): compiled
/// from the announced files and tested like a local reload, then installed
/// under the announced version. The running ruleset stays when it fails.
pub async fn follow(
    daemon: &Arc<Daemon>,
    announced: &crate::cluster::Announcement,
) -> Result<u64, ReloadError> {
    let _one_at_a_time = daemon.reload.running.lock().await;
    let failed = |rendered: String| ReloadError {
        kind: ReloadErrorKind::Io,
        rendered,
        diagnostics: Vec::new(),
        tests: Vec::new(),
        time: unix_now(),
        watch: Vec::new(),
    };
    let rules = daemon.config().rules.clone();
    let announcement = announced.clone();
    let prepared = tokio::task::spawn_blocking(move || prepare_announced(&rules, &announcement))
        .await
        .unwrap_or_else(|e| Err(failed(format!("the reload task failed: {e}"))));
    let result = prepared.and_then(|c| install(daemon, c, Some(announced.version)));
    match &result {
        Ok(v) => tracing::info!(
            "ruleset version {v} loaded, as announced by {}",
            announced.host
        ),
        Err(e) => {
            daemon.metrics.reloaded(false);
            tracing::error!(
                "cannot load ruleset version {} announced by {}, keeping version {}:\n{e}",
                announced.version,
                announced.host,
                daemon.current().version
            );
        }
    }
    result
}

/// Compiles the version another host announced from its files, placed
/// under this host's rules directory (`rules` is this host's `rules`), and
/// runs its `test` blocks, as [`prepare`] does. Blocking.
pub fn prepare_announced(
    rules: &Path,
    announced: &crate::cluster::Announcement,
) -> Result<Candidate, ReloadError> {
    let entry = crate::cluster::entry_here(rules, announced);
    let Some(shipped) = crate::cluster::Shipped::new(announced, &entry_root(&entry, announced))
    else {
        return Err(ReloadError {
            kind: ReloadErrorKind::Io,
            rendered: format!(
                "host {} could not share its files (one outside its rules directory, or not UTF-8): reload this host itself",
                announced.host
            ),
            diagnostics: Vec::new(),
            tests: Vec::new(),
            time: unix_now(),
            watch: Vec::new(),
        });
    };
    prepare(&entry, &shipped)
}

/// The rules directory the announced entry's relative names start from.
fn entry_root(entry: &Path, announced: &crate::cluster::Announcement) -> PathBuf {
    let mut root = entry.to_path_buf();
    for _ in Path::new(&announced.entry).components() {
        root.pop();
    }
    root
}

/// Installs a tested candidate: under a new version, announced to the
/// other hosts, or (`follow`) under the version another host announced.
fn install(
    daemon: &Arc<Daemon>,
    candidate: Candidate,
    follow: Option<u64>,
) -> Result<u64, ReloadError> {
    if let Some(mut e) = check_needs(&candidate.needs, candidate.ruleset(), &daemon.config()) {
        e.watch = candidate.watch.clone();
        return Err(e);
    }
    candidate.warn_lmtp_only(daemon.config().lmtp.is_some());
    let next = match follow {
        Some(v) => Ok(v),
        None => daemon.store.next_ruleset_version(),
    };
    let version = next.map_err(|e| ReloadError {
        kind: ReloadErrorKind::Io,
        rendered: format!("cannot store the ruleset version: {e:#}"),
        diagnostics: Vec::new(),
        tests: Vec::new(),
        time: unix_now(),
        watch: candidate.watch.clone(),
    })?;
    candidate.show_in(&daemon.metrics, version);
    // Off the hot path: a classifier the new rules declare is read from
    // the store now, not by the first message.
    daemon.learned.preload(candidate.evaluator.ruleset());
    let mut loaded = LoadedRuleset::new(candidate.evaluator, version);
    loaded.needs = candidate.needs;
    daemon.swap(loaded);
    // The compile's freed memory would otherwise stay resident.
    weir_compiler::release_free_memory();
    if follow.is_none() {
        crate::cluster::announce(daemon, version, &candidate.watch);
        daemon.reload.set_watch(candidate.watch);
    }
    daemon.metrics.reloaded(true);
    if let Ok(mut last) = daemon.reload.last_error.lock() {
        *last = None;
    }
    tracing::info!("ruleset version {version} loaded");
    Ok(version)
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

/// What a reload of `weir.toml` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigReload {
    /// Whether the file was read again (not when the daemon runs without
    /// one, `--rules` alone).
    pub reloaded: bool,
    /// The settings that changed in the file but need a restart; their
    /// running values stay.
    pub restart_needed: Vec<&'static str>,
}

/// Reads `weir.toml` again (SIGHUP, `POST /v1/reload`): notify channels,
/// relay, limits, `on_error`, release/delete commands, the maildir
/// pattern, reply period, outbox and retention change at once; listeners,
/// `state_dir`, `token_file` and the rules path need a restart and keep
/// their running values (each named in the log and the answer). An
/// unreadable or invalid file changes nothing: the error is returned.
pub fn reload_config(daemon: &Daemon) -> Result<ConfigReload, String> {
    let old = daemon.config();
    let Some(file) = old.file.clone() else {
        return Ok(ConfigReload::default());
    };
    let mut new = Config::load(&file, None).map_err(|e| e.to_string())?;
    let current = daemon.current();
    if let Some(e) = check_needs(&current.needs, current.evaluator.ruleset(), &new) {
        return Err(format!("{}: {}", file.display(), e.rendered.trim_end()));
    }
    let mut restart_needed = Vec::new();
    let mut keep = |changed: bool, name: &'static str| {
        if changed {
            restart_needed.push(name);
        }
        changed
    };
    if keep(new.rules != old.rules, "rules") {
        new.rules = old.rules.clone();
    }
    if keep(new.state_dir != old.state_dir, "state_dir") {
        new.state_dir = old.state_dir.clone();
    }
    if keep(new.milter.listen != old.milter.listen, "[milter] listen") {
        new.milter.listen = old.milter.listen.clone();
    }
    if keep(new.http.listen != old.http.listen, "[http] listen") {
        new.http.listen = old.http.listen.clone();
    }
    if keep(
        new.http.token_file != old.http.token_file,
        "[http] token_file",
    ) {
        new.http.token_file = old.http.token_file.clone();
    }
    if keep(
        new.http.readonly_token_file != old.http.readonly_token_file,
        "[http] readonly_token_file",
    ) {
        new.http.readonly_token_file = old.http.readonly_token_file.clone();
    }
    match (&mut new.lmtp, &old.lmtp) {
        (Some(n), Some(o)) => {
            if keep(n.listen != o.listen, "[lmtp] listen") {
                n.listen = o.listen.clone();
            }
        }
        (None, None) => {}
        _ => {
            keep(true, "[lmtp]");
            new.lmtp = old.lmtp.clone();
        }
    }
    for name in &restart_needed {
        tracing::warn!(
            "{}: {name} changed; it takes effect at the next restart (the running value stays)",
            file.display()
        );
    }
    tracing::info!("{}: configuration reloaded", file.display());
    daemon.swap_config(new);
    Ok(ConfigReload {
        reloaded: true,
        restart_needed,
    })
}
