//! The Playground: an edited copy of the ruleset's entry file, checked,
//! run on a message, backtested against the recent kept messages, and
//! deployed through the reload gate (compile, `test` blocks, what
//! `weir.toml` must configure). Everything but deploy is a dry run.
//!
//! The edited text replaces the entry file (`rules`) for the compiler; its
//! imports and lists are read from disk as for a reload. A ruleset that is
//! a directory cannot be edited here (there is no one file to replace).

use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use serde_json::{Value, json};
use weir_compiler::Loader;

use super::api::PlaygroundRequest;
use super::explain;
use crate::reload::{self, Candidate, ReloadError};
use crate::state::{Daemon, unix_now};
use weir_compiler::Envelope;

/// The default number of kept messages a backtest looks at.
const DEFAULT_BACKTEST: usize = 100;

/// The compiler's files, with the entry file's text replaced.
struct Overlay<'a> {
    entry: &'a Path,
    text: &'a str,
}

impl Loader for Overlay<'_> {
    fn load(&self, path: &Path) -> std::io::Result<String> {
        if path == self.entry {
            Ok(self.text.to_string())
        } else {
            weir_compiler::FsLoader.load(path)
        }
    }

    fn load_bytes(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        if path == self.entry {
            Ok(self.text.as_bytes().to_vec())
        } else {
            weir_compiler::FsLoader.load_bytes(path)
        }
    }

    fn flow_files(&self, path: &Path) -> Option<Vec<PathBuf>> {
        weir_compiler::FsLoader.flow_files(path)
    }
}

/// The entry file the Playground edits, or why there is none.
fn entry_file(daemon: &Daemon) -> Result<PathBuf, String> {
    let rules = daemon.config().rules.clone();
    if rules.is_dir() {
        return Err(format!(
            "rules is the directory {}: the Playground edits a ruleset of one file",
            rules.display()
        ));
    }
    Ok(rules)
}

/// The edited ruleset through the reload gate.
fn gate(daemon: &Daemon, source: &str) -> Result<Result<Candidate, ReloadError>, String> {
    let entry = entry_file(daemon)?;
    let overlay = Overlay {
        entry: &entry,
        text: source,
    };
    Ok(reload::prepare(&entry, &overlay).and_then(|candidate| {
        match reload::check_needs(&candidate.needs, candidate.ruleset(), &daemon.config()) {
            Some(e) => Err(e),
            None => Ok(candidate),
        }
    }))
}

/// A refusal by the gate as JSON: `kind`, `rendered`, `diagnostics`,
/// `tests` (as `POST /v1/reload` answers them).
fn refusal_json(e: &ReloadError) -> Value {
    let mut body = serde_json::to_value(e).unwrap_or_else(|_| json!({}));
    body["ok"] = json!(false);
    body
}

/// `POST /v1/playground/check`: the gate's result, without installing.
pub fn check(daemon: &Daemon, request: PlaygroundRequest) -> (StatusCode, Value) {
    match gate(daemon, &request.source) {
        Err(message) => (StatusCode::CONFLICT, json!({"error": message})),
        Ok(Err(e)) => (StatusCode::OK, refusal_json(&e)),
        Ok(Ok(candidate)) => (
            StatusCode::OK,
            json!({
                "ok": true,
                "rules": candidate.ruleset().rules().len(),
                "diagnostics": [],
                "tests": [],
                "rendered": "",
            }),
        ),
    }
}

/// `POST /v1/playground/run`: the edited ruleset on one message, with
/// the explain trace and the located matching bytes.
pub fn run(daemon: &Daemon, request: PlaygroundRequest) -> (StatusCode, Value) {
    let Some(message) = request.message.as_deref() else {
        return (
            StatusCode::BAD_REQUEST,
            json!({"error": "expected \"message\": the message's text"}),
        );
    };
    let candidate = match gate(daemon, &request.source) {
        Err(message) => return (StatusCode::CONFLICT, json!({"error": message})),
        Ok(Err(e)) => return (StatusCode::UNPROCESSABLE_ENTITY, refusal_json(&e)),
        Ok(Ok(c)) => c,
    };
    let envelope = Envelope {
        from: request.from.clone(),
        to: request.to.clone(),
        ..Envelope::default()
    };
    let bytes = message.replace("\r\n", "\n").replace('\n', "\r\n");
    match explain::explain_bytes(daemon, &candidate.evaluator, &envelope, bytes.as_bytes()) {
        Ok((decision, source, marks)) => {
            let mut body = weir_compiler::report::decision_json(&decision);
            body.insert(
                "trace".into(),
                weir_compiler::report::trace_json(&decision.trace),
            );
            body.insert("source".into(), json!(source.text));
            body.insert("highlights".into(), explain::marks_json(&marks));
            (StatusCode::OK, Value::Object(body))
        }
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": format!("the message exceeds a limit: {e}")}),
        ),
    }
}

/// `POST /v1/playground/backtest`: the running and the edited ruleset on
/// the last `limit` kept messages; the decisions that differ, as
/// `weir diff --json` shows them.
pub fn backtest(daemon: &Daemon, request: PlaygroundRequest) -> (StatusCode, Value) {
    let candidate = match gate(daemon, &request.source) {
        Err(message) => return (StatusCode::CONFLICT, json!({"error": message})),
        Ok(Err(e)) => return (StatusCode::UNPROCESSABLE_ENTITY, refusal_json(&e)),
        Ok(Ok(c)) => c,
    };
    let current = daemon.current();
    let limit = request.limit.unwrap_or(DEFAULT_BACKTEST).clamp(1, 10_000);
    let keep_for = daemon.config().http.keep_for;
    let kept = daemon.recent.latest(limit, unix_now(), keep_for);
    let mut changed = Vec::new();
    let mut compared = 0;
    for k in &kept {
        let Some(entry) = daemon.store.audit_entry(k.audit_id) else {
            continue;
        };
        let envelope = explain::envelope(&entry);
        let eval = |e: &weir_compiler::Evaluator| {
            explain::evaluate(daemon, e, &envelope, &k.bytes, false)
                .map(|(d, _)| weir_compiler::report::decision_json(&d))
        };
        let (Ok(before), Ok(after)) = (eval(&current.evaluator), eval(&candidate.evaluator)) else {
            continue;
        };
        compared += 1;
        let changes = weir_compiler::report::differences(&before, &after);
        if !changes.is_empty() {
            changed.push(json!({
                "id": entry.id,
                "message_id": entry.message_id,
                "from": entry.decision.get("from"),
                "time": crate::clock::format_time(entry.time),
                "changes": changes,
            }));
        }
    }
    let body = json!({
        "running_version": current.version,
        "kept": kept.len(),
        "compared": compared,
        "changed": changed,
    });
    (StatusCode::OK, body)
}

/// `POST /v1/playground/deploy`: the edited ruleset through the gate,
/// then written to the rules file (atomically) and reloaded. A refusal
/// changes nothing: the file and the running version stay.
pub async fn deploy(
    daemon: &std::sync::Arc<Daemon>,
    request: PlaygroundRequest,
) -> (StatusCode, Value) {
    let refused = |status, mut body: Value| {
        body["error"] = json!(format!(
            "deploy refused: {}",
            body.get("error")
                .and_then(Value::as_str)
                .unwrap_or("the gate failed")
        ));
        body["version"] = json!(daemon.current().version);
        (status, body)
    };
    let gated = {
        let daemon = daemon.clone();
        let source = request.source.clone();
        tokio::task::spawn_blocking(move || gate(&daemon, &source).map(|r| r.map(|_| ())))
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
    };
    match gated {
        Err(message) => return refused(StatusCode::CONFLICT, json!({"error": message})),
        Ok(Err(e)) => {
            let mut body = refusal_json(&e);
            body["error"] = json!(match e.kind {
                crate::reload::ReloadErrorKind::Test => "test blocks failed",
                crate::reload::ReloadErrorKind::Config =>
                    "weir.toml does not configure what the rules name",
                _ => "the ruleset does not compile",
            });
            return refused(StatusCode::UNPROCESSABLE_ENTITY, body);
        }
        Ok(Ok(())) => {}
    }
    let entry = match entry_file(daemon) {
        Ok(e) => e,
        Err(message) => return refused(StatusCode::CONFLICT, json!({"error": message})),
    };
    let old = std::fs::read_to_string(&entry).unwrap_or_default();
    if let Err(e) = write_atomically(&entry, &request.source) {
        let body = json!({"error": format!("cannot write {}: {e}", entry.display())});
        return refused(StatusCode::INTERNAL_SERVER_ERROR, body);
    }
    match reload::reload(daemon).await {
        Ok(version) => (StatusCode::OK, json!({"ok": true, "version": version})),
        Err(e) => {
            // Changed on disk meanwhile (an import): put the file back.
            if let Err(w) = write_atomically(&entry, &old) {
                tracing::error!("deploy: cannot restore {}: {w}", entry.display());
            }
            refused(StatusCode::UNPROCESSABLE_ENTITY, refusal_json(&e))
        }
    }
}

/// Writes `text` to `path` through a temporary file renamed over it, so
/// a reader (the file watcher, a crash) sees the old or the new file.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".weir-deploy");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(&tmp, meta.permissions())?;
    }
    std::fs::rename(&tmp, path)
}
