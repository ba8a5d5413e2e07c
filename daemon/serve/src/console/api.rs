//! The `/v1` endpoints the console is built on (docs/serve.md "HTTP
//! API"): who is logged in, one audit entry and its explanation, the
//! Overview's figures, the running ruleset's source and history, a held
//! copy's bytes, and the Playground (check, run, backtest, deploy). Every
//! mutation is recorded in the audit log with the caller's role
//! ([`record_act`]).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::explain;
use super::playground;
use crate::access::Caller;
use crate::clock::format_time;
use crate::http::{Api, entry_json, error};
use crate::state::{AuditEntry, Daemon, Source, unix_now};

/// The console's `/v1` routes (merged into the API's router, behind its
/// authentication).
pub fn routes(max_body: usize) -> Router<Api> {
    // A playground request carries a ruleset and a message.
    let playground_body = DefaultBodyLimit::max(max_body.saturating_add(1024 * 1024));
    Router::new()
        .route("/v1/session", get(session))
        .route("/v1/actions/{id}", get(action))
        .route("/v1/actions/{id}/explain", get(action_explain))
        .route("/v1/stats", get(stats))
        .route("/v1/ruleset/source", get(ruleset_source))
        .route("/v1/ruleset/history", get(ruleset_history))
        .route("/v1/ruleset/history/{version}", get(ruleset_version))
        .route("/v1/quarantine/{id}/message", get(quarantine_message))
        .route(
            "/v1/playground/check",
            post(playground_check).layer(playground_body),
        )
        .route(
            "/v1/playground/run",
            post(playground_run).layer(playground_body),
        )
        .route(
            "/v1/playground/backtest",
            post(playground_backtest).layer(playground_body),
        )
        .route(
            "/v1/playground/deploy",
            post(playground_deploy).layer(playground_body),
        )
}

/// Records an operator's act (reload, outbox retry, deploy) as an audit
/// entry of source `api`, and publishes it. The act is done either way: a
/// failure here is only logged.
pub async fn record_act(daemon: &Arc<Daemon>, act: Value) {
    let entry = AuditEntry {
        host: String::new(),
        id: 0,
        time: unix_now(),
        source: Source::Api,
        queue_id: String::new(),
        message_id: String::new(),
        ruleset_version: daemon.current().version,
        decision: act,
    };
    daemon.record_act(entry, "an operator's act").await;
}

async fn session(Extension(caller): Extension<Caller>) -> Response {
    axum::Json(json!({"role": caller.role, "via": caller.via})).into_response()
}

/// One audit entry by id, or the 404 answer.
pub(crate) fn find_entry(daemon: &Daemon, id: &str) -> Result<AuditEntry, Box<Response>> {
    id.parse::<u64>()
        .ok()
        .and_then(|n| daemon.store.audit_entry(n))
        .ok_or_else(|| {
            Box::new(error(
                StatusCode::NOT_FOUND,
                format!("no audit entry {id:?}"),
            ))
        })
}

async fn action(State(api): State<Api>, Path(id): Path<String>) -> Response {
    match find_entry(&api.daemon, &id) {
        Ok(entry) => {
            let mut body = entry_json(&entry);
            body["kept"] = json!(api.daemon.recent.get(entry.id).is_some());
            axum::Json(body).into_response()
        }
        Err(r) => *r,
    }
}

async fn action_explain(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let entry = match find_entry(&api.daemon, &id) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let Some(kept) = api.daemon.recent.get(entry.id) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "the bytes of audit entry {} are not kept ([http] keep_messages, keep_for)",
                entry.id
            ),
        );
    };
    let daemon = api.daemon.clone();
    let explained =
        tokio::task::spawn_blocking(move || explain::explain_entry(&daemon, &entry, &kept.bytes))
            .await;
    match explained {
        Ok(Ok(e)) => axum::Json(e.to_json()).into_response(),
        Ok(Err(message)) => error(StatusCode::UNPROCESSABLE_ENTITY, message),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn stats(State(api): State<Api>) -> Response {
    let store = crate::health::probe(&api.daemon)
        .await
        .map_err(|e| e.to_string());
    let daemon = api.daemon.clone();
    match tokio::task::spawn_blocking(move || super::stats::stats(&daemon, store)).await {
        Ok(body) => axum::Json(body).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn ruleset_source(State(api): State<Api>) -> Response {
    let daemon = api.daemon.clone();
    let files = tokio::task::spawn_blocking(move || super::history::running_source(&daemon)).await;
    match files {
        Ok(files) => axum::Json(json!({
            "version": api.daemon.current().version,
            "files": files,
        }))
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn ruleset_history(State(api): State<Api>) -> Response {
    let list: Vec<Value> = super::history::versions(&api.daemon)
        .iter()
        .map(|v| {
            json!({
                "version": v.version,
                "hash": v.hash,
                "loaded_at": format_time(v.loaded_at),
            })
        })
        .collect();
    axum::Json(Value::Array(list)).into_response()
}

async fn ruleset_version(State(api): State<Api>, Path(version): Path<String>) -> Response {
    let found = version
        .parse::<u64>()
        .ok()
        .and_then(|v| super::history::version(&api.daemon, v));
    match found {
        Some(v) => axum::Json(json!({
            "version": v.version,
            "hash": v.hash,
            "loaded_at": format_time(v.loaded_at),
            "files": v.files,
        }))
        .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no ruleset version {version:?} in this daemon's history"),
        ),
    }
}

async fn quarantine_message(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let daemon = api.daemon.clone();
    let bytes = tokio::task::spawn_blocking(move || super::quarantine::held_bytes(&daemon, &id));
    match bytes.await {
        Ok(Ok(bytes)) => ([(header::CONTENT_TYPE, "message/rfc822")], bytes).into_response(),
        Ok(Err(message)) => error(StatusCode::NOT_FOUND, message),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The body of the Playground's requests.
#[derive(Debug, Deserialize)]
pub(crate) struct PlaygroundRequest {
    /// The edited entry file's text.
    pub source: String,
    /// `run`: the message.
    #[serde(default)]
    pub message: Option<String>,
    /// `run`: the envelope sender.
    #[serde(default)]
    pub from: Option<String>,
    /// `run`: the envelope recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// `backtest`: how many recent kept messages (default 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Reads a Playground request's JSON body; the error is the 400 answer.
fn playground_request(body: &Bytes) -> Result<PlaygroundRequest, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("expected a JSON object with \"source\": {e}"),
        ))
    })
}

/// Runs one Playground computation off the async threads.
async fn blocking(
    api: &Api,
    body: Bytes,
    job: fn(&Daemon, PlaygroundRequest) -> (StatusCode, Value),
) -> Response {
    let request = match playground_request(&body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let daemon = api.daemon.clone();
    match tokio::task::spawn_blocking(move || job(&daemon, request)).await {
        Ok((status, body)) => (status, axum::Json(body)).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn playground_check(State(api): State<Api>, body: Bytes) -> Response {
    blocking(&api, body, playground::check).await
}

async fn playground_run(State(api): State<Api>, body: Bytes) -> Response {
    blocking(&api, body, playground::run).await
}

async fn playground_backtest(State(api): State<Api>, body: Bytes) -> Response {
    blocking(&api, body, playground::backtest).await
}

async fn playground_deploy(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let request = match playground_request(&body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let (status, answer) = playground::deploy(&api.daemon, request).await;
    let result = if status.is_success() {
        "deployed"
    } else {
        "refused"
    };
    let act = json!({
        "act": "deploy",
        "result": result,
        "version": answer.get("version"),
        "by": caller.audit_json(),
    });
    record_act(&api.daemon, act).await;
    (status, axum::Json(answer)).into_response()
}
