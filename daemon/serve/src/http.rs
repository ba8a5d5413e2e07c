//! The HTTP control API (docs/serve.md "HTTP control API"), on axum.
//!
//! `/healthz` and `/metrics` are open; everything under `/v1/` needs
//! `Authorization: Bearer TOKEN` (compared in constant time). Unknown paths
//! answer 404 and wrong methods 405, both with a JSON `{"error": ...}`.
//! `/v1/actions` lists audit entries oldest first (the newest `limit` of
//! those matching), so a client polls with `since=<last id seen>`.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use weir_compiler::{EvalOptions, RateCounter};
use weir_stdlib::{Limits, Message, MessageError, Transaction};

mod learn;

use super::Listener;
use super::access::{Access, Caller, Refusal};
use super::audit::QuarantineAct;
use super::clock::{format_time, parse_time};
use super::config::Config;
use super::conn::Capped;
use super::holdqueue;
use super::reload::{self, ReloadErrorKind};
use super::state::{AuditEntry, Daemon, Source, unix_now};
use super::store::{AuditFilter, MessageRates, QuarantineEntry};

/// The default and the largest `limit` of `/v1/actions`.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

/// What every handler shares (the console's too).
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) daemon: Arc<Daemon>,
    pub(crate) access: Arc<Access>,
    pub(crate) stop: tokio::sync::watch::Receiver<bool>,
    in_flight: InFlight,
}

/// The shortest API token accepted from a file (a generated one has 64
/// characters).
pub const MIN_TOKEN_LEN: usize = 12;

/// The API token: read from `[http] token_file`, or (without one) from
/// `state_dir/api-token`, generated there on first start. The token is
/// never logged: only where it is. A token file that its group or other
/// users can read or write, or a token shorter than [`MIN_TOKEN_LEN`], is
/// refused, as ssh refuses a private key others can read.
pub fn api_token(config: &Config) -> anyhow::Result<String> {
    if let Some(file) = &config.http.token_file {
        return read_token(file, "[http] token_file: ");
    }
    let file = config.state_dir.join("api-token");
    if file.exists() {
        let token = read_token(&file, "")?;
        tracing::info!("API token in {}", file.display());
        return Ok(token);
    }
    let mut random = [0u8; 32];
    {
        use std::io::Read;
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut random))
            .context("cannot read /dev/urandom for the API token")?;
    }
    let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(&config.state_dir)?;
    write_private(&file, &token)
        .with_context(|| format!("cannot write the API token to {}", file.display()))?;
    eprintln!(
        "weir serve: generated an API token into {} (mode 0600)",
        file.display()
    );
    Ok(token)
}

/// The tokens of both roles: the admin token ([`api_token`]) and, with
/// `[http] readonly_token_file`, the read-only one (same rules as the
/// admin's file).
pub fn api_access(config: &Config) -> anyhow::Result<Access> {
    let admin = api_token(config)?;
    let readonly = match &config.http.readonly_token_file {
        Some(file) => Some(read_token(file, "[http] readonly_token_file: ")?),
        None => None,
    };
    Ok(Access::new(admin, readonly))
}

/// Reads a token file, refusing one that others may read and a short token.
fn read_token(file: &std::path::Path, what: &str) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(file).with_context(|| format!("{what}cannot read {}", file.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "{what}{} has mode {mode:04o}: the token must be readable by its owner only (chmod 600 {})",
            file.display(),
            file.display()
        );
    }
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("{what}cannot read {}", file.display()))?;
    let token = text.trim().to_string();
    if token.chars().count() < MIN_TOKEN_LEN {
        anyhow::bail!(
            "{what}the token in {} is shorter than {MIN_TOKEN_LEN} characters",
            file.display()
        );
    }
    Ok(token)
}

fn write_private(file: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(file)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// Serves the API on `listener` until `stop` turns true.
pub async fn serve(
    daemon: Arc<Daemon>,
    listener: Listener,
    access: Access,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let shutdown = super::shutdown_signal(&stop);
    let limits = daemon.config().http.connections;
    let app = router(daemon, access, stop);
    match listener {
        Listener::Tcp(l) => {
            axum::serve(Capped::new(l, limits), app)
                .with_graceful_shutdown(shutdown)
                .await?
        }
        Listener::Unix(l) => {
            axum::serve(Capped::new(l, limits), app)
                .with_graceful_shutdown(shutdown)
                .await?
        }
    }
    Ok(())
}

/// The API's routes.
fn router(daemon: Arc<Daemon>, access: Access, stop: tokio::sync::watch::Receiver<bool>) -> Router {
    let max_body = usize::try_from(daemon.config().limits.max_message_size).unwrap_or(usize::MAX);
    let api = Api {
        daemon,
        access: Arc::new(access),
        stop,
        in_flight: InFlight::default(),
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/ruleset", get(ruleset))
        .route("/v1/reload", post(reload_now))
        .route(
            "/v1/check",
            post(check).layer(DefaultBodyLimit::max(max_body)),
        )
        .route("/v1/actions", get(actions))
        .route("/v1/quarantine", get(quarantine_list))
        .route(
            "/v1/quarantine/{id}",
            get(quarantine_get).delete(quarantine_delete),
        )
        .route("/v1/quarantine/{id}/release", post(quarantine_release))
        .route(
            "/v1/learn/{name}/{class}",
            post(learn::learn).layer(DefaultBodyLimit::max(max_body)),
        )
        .route("/v1/outbox", get(outbox))
        .route("/v1/outbox/{id}/retry", post(outbox_retry))
        .route("/v1/events", get(events))
        .merge(super::console::api::routes(max_body))
        .merge(super::console::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(api.clone(), auth))
        .with_state(api)
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint")
}

async fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

/// Demands a token or a session on `/v1/*`, and the admin role for a
/// mutation (`access.rs`); the caller goes to the handler as an extension.
async fn auth(State(api): State<Api>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == "/v1" || path.starts_with("/v1/") {
        match api
            .access
            .authorize(request.method(), path, request.headers())
        {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
            }
            Err(Refusal::Unauthenticated) => {
                let mut response =
                    error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"weir\""),
                );
                return response;
            }
            Err(Refusal::ReadOnly) => {
                return error(
                    StatusCode::FORBIDDEN,
                    "the read-only role may not do this (an admin token is needed)",
                );
            }
            Err(Refusal::Csrf) => {
                return error(
                    StatusCode::FORBIDDEN,
                    "a session's request that changes something needs its X-CSRF-Token",
                );
            }
        }
    }
    next.run(request).await
}

/// `ok` with the running ruleset, or `503` when the store does not take
/// a write (a probe, `health.rs`): nothing could be recorded, so mail is
/// tempfailed.
async fn healthz(State(api): State<Api>) -> Response {
    let current = api.daemon.current();
    let ruleset = json!({"version": current.version, "hash": current.hash()});
    let backend = api.daemon.store.backend();
    match super::health::probe(&api.daemon).await {
        Ok(()) => axum::Json(json!({"status": "ok", "store_backend": backend, "ruleset": ruleset}))
            .into_response(),
        Err(e) => {
            let mut body = json!({"status": "failing", "store": e.to_string(),
                "store_backend": backend, "ruleset": ruleset});
            if let super::store::Health::Down { since, .. } = api.daemon.store.health() {
                body["store_down_since"] = json!(super::clock::format_time(since));
            }
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}

async fn metrics(State(api): State<Api>) -> Response {
    let store = &api.daemon.store;
    api.daemon.metrics.set_store(
        store.health() == super::store::Health::Up,
        store.round_trips(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        api.daemon.metrics.render(),
    )
        .into_response()
}

async fn ruleset(State(api): State<Api>) -> Response {
    let current = api.daemon.current();
    let loaded_at = current
        .loaded_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let files: Vec<Value> = current
        .ruleset()
        .files()
        .iter()
        .map(|f| json!({"name": f.name, "hash": f.hash}))
        .collect();
    let rules: Vec<Value> = current
        .ruleset()
        .rules()
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "stage": r.stage.as_str(),
                "priority": r.priority,
                "shadow": r.shadow,
                "file": r.file,
                "line": r.line,
            })
        })
        .collect();
    axum::Json(json!({
        "version": current.version,
        "hash": current.hash(),
        "loaded_at": format_time(loaded_at),
        "rules_path": api.daemon.config().rules.display().to_string(),
        // "native", or "interpreter" where executable memory is refused.
        "engine": if current.evaluator.is_native() { "native" } else { "interpreter" },
        "files": files,
        "rules": rules,
        "last_error": api.daemon.reload.last_error(),
        "host": api.daemon.store.host(),
        // Every host sharing the store, with the version it runs.
        "hosts": super::cluster::hosts(&api.daemon),
    }))
    .into_response()
}

async fn reload_now(State(api): State<Api>, Extension(caller): Extension<Caller>) -> Response {
    let response = reload_answer(&api).await;
    let result = if response.status().is_success() {
        "reloaded"
    } else {
        "refused"
    };
    let act = json!({"act": "reload", "result": result, "by": caller.audit_json()});
    super::console::api::record_act(&api.daemon, act).await;
    response
}

/// Reloads `weir.toml` and the rules; the API's answer.
async fn reload_answer(api: &Api) -> Response {
    let config = match reload::reload_config(&api.daemon) {
        Ok(c) => c,
        Err(e) => {
            let body = json!({
                "error": "weir.toml could not be loaded; the running configuration stays",
                "kind": "config",
                "rendered": e,
                "time": format_time(unix_now()),
                "version": api.daemon.current().version,
            });
            return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response();
        }
    };
    match reload::reload(&api.daemon).await {
        Ok(version) => axum::Json(json!({"version": version, "config": config})).into_response(),
        Err(e) => {
            let mut body = serde_json::to_value(&e).unwrap_or_else(|_| json!({}));
            body["error"] = json!(match e.kind {
                ReloadErrorKind::Compile => "the ruleset does not compile",
                ReloadErrorKind::Test => "test blocks failed",
                ReloadErrorKind::Io => "the ruleset could not be loaded",
                ReloadErrorKind::Config => "weir.toml does not configure what the rules name",
            });
            body["version"] = json!(api.daemon.current().version);
            (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response()
        }
    }
}

/// Rate counters for a dry run: they read the real counts and count nothing.
pub(crate) struct DryRates(MessageRates);

/// Dry-run rate counters over the daemon's store.
pub(crate) fn dry_rates(daemon: &Daemon) -> DryRates {
    DryRates(daemon.message_rates())
}

impl RateCounter for DryRates {
    fn hit(&mut self, key: &str, window_secs: u64, now: i64, _count: bool) -> u64 {
        self.0.hit(key, window_secs, now, false)
    }

    fn duplicate(&mut self, scope: &str, key: &str, window_secs: u64, now: i64) -> bool {
        self.0.duplicate(scope, key, window_secs, now)
    }
}

/// The query parameters of `POST /v1/check`.
#[derive(Debug, Default)]
struct CheckQuery {
    from: Option<String>,
    to: Vec<String>,
    client_ip: Option<IpAddr>,
    helo: Option<String>,
    explain: bool,
}

impl CheckQuery {
    /// Parses the query; the error names the parameter.
    fn parse(query: Option<&str>) -> Result<CheckQuery, String> {
        let mut q = CheckQuery::default();
        for (key, value) in query_pairs(query) {
            match key.as_str() {
                "from" => q.from = Some(value),
                "to" => q.to.push(value),
                "client_ip" => {
                    let ip = value.parse();
                    q.client_ip =
                        Some(ip.map_err(|_| format!("client_ip: not an IP address: {value:?}"))?);
                }
                "helo" => q.helo = Some(value),
                "explain" => q.explain = value != "false" && value != "0",
                other => {
                    return Err(format!(
                        "unknown parameter {other:?} (expected from, to, client_ip, helo, explain)"
                    ));
                }
            }
        }
        Ok(q)
    }
}

async fn check(
    State(api): State<Api>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the message is larger than [limits] max_message_size ({} bytes)",
                    api.daemon.config().limits.max_message_size
                ),
            );
        }
        Err(r) => return error(StatusCode::BAD_REQUEST, r.body_text()),
    };
    let CheckQuery {
        from,
        to,
        client_ip,
        helo,
        explain,
    } = match CheckQuery::parse(query.as_deref()) {
        Ok(q) => q,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let limits = &api.daemon.config().limits;
    let limits = Limits {
        max_message_size: limits.max_message_size,
        max_headers: limits.max_headers,
        max_mime_depth: limits.max_mime_depth,
    };
    let current = api.daemon.current();
    let mut rates = DryRates(api.daemon.message_rates());
    let learner = Arc::clone(&api.daemon);
    let evaluated = tokio::task::spawn_blocking(move || {
        let message = Message::parse(&body, &limits)?;
        let mut tx = Transaction::with_defaults(
            message,
            from.as_deref(),
            &to,
            client_ip,
            helo.as_deref(),
            unix_now(),
        );
        let opts = EvalOptions {
            explain,
            dry_run: true,
        };
        tx.classes = learner
            .learned
            .answers(current.evaluator.ruleset(), &tx.message);
        Ok::<_, MessageError>(current.evaluator.evaluate(&tx, &mut rates, &opts))
    })
    .await;
    match evaluated {
        Ok(Ok(decision)) => {
            let mut obj = weir_compiler::report::decision_json(&decision);
            if explain {
                obj.insert(
                    "trace".into(),
                    weir_compiler::report::trace_json(&decision.trace),
                );
            }
            axum::Json(Value::Object(obj)).into_response()
        }
        Ok(Err(MessageError::TooLarge { .. })) => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the message is larger than [limits] max_message_size",
        ),
        Ok(Err(e)) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the message exceeds a limit: {e:?}"),
        ),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("evaluation failed: {e}"),
        ),
    }
}

/// A `limit` parameter: a positive number, at most `MAX_LIMIT`.
pub(crate) fn parse_limit(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n.min(MAX_LIMIT)),
        _ => Err(format!("limit: expected a positive number, got {value:?}")),
    }
}

/// An audit entry as the API shows it: the decision's fields at the top
/// level, with the time in RFC 3339.
pub(crate) fn entry_json(entry: &AuditEntry) -> Value {
    let mut obj = Map::new();
    obj.insert("id".into(), json!(entry.id));
    obj.insert("time".into(), json!(format_time(entry.time)));
    obj.insert("source".into(), json!(entry.source));
    obj.insert("queue_id".into(), json!(entry.queue_id));
    obj.insert("message_id".into(), json!(entry.message_id));
    obj.insert("ruleset_version".into(), json!(entry.ruleset_version));
    obj.insert("host".into(), json!(entry.host));
    if let Value::Object(decision) = &entry.decision {
        for (k, v) in decision {
            obj.insert(k.clone(), v.clone());
        }
    }
    Value::Object(obj)
}

async fn actions(State(api): State<Api>, RawQuery(query): RawQuery) -> Response {
    let mut filter = AuditFilter::default();
    let mut limit = DEFAULT_LIMIT;
    for (key, value) in query_pairs(query.as_deref()) {
        match key.as_str() {
            "since" if value.is_empty() => {}
            "since" => {
                if let Ok(id) = value.parse::<u64>() {
                    filter.after_id = Some(id);
                } else if let Some(t) = parse_time(&value) {
                    filter.since_time = Some(t);
                } else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("since: expected an entry id or an RFC 3339 time, got {value:?}"),
                    );
                }
            }
            "limit" => match parse_limit(&value) {
                Ok(n) => limit = n,
                Err(message) => return error(StatusCode::BAD_REQUEST, message),
            },
            "rule" => filter.rule = Some(value),
            "verdict" => {
                if weir_compiler::Verdict::from_name(&value).is_none() {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "verdict: expected accept, reject, tempfail, discard or quarantine, got {value:?}"
                        ),
                    );
                }
                filter.verdict = Some(value);
            }
            "before" => match value.parse::<u64>() {
                Ok(id) => filter.search.before_id = Some(id),
                Err(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("before: expected an entry id, got {value:?}"),
                    );
                }
            },
            "until" => match parse_time(&value) {
                Some(t) => filter.search.until_time = Some(t),
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("until: expected an RFC 3339 time, got {value:?}"),
                    );
                }
            },
            "from" => filter.search.sender = Some(value),
            "to" => filter.search.recipient = Some(value),
            "message_id" => filter.search.message_id = Some(value),
            "queue_id" => filter.search.queue_id = Some(value),
            "tag" => filter.search.tag = Some(value),
            other => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unknown parameter {other:?} (expected since, until, before, limit, rule, verdict, tag, from, to, message_id, queue_id)"
                    ),
                );
            }
        }
    }
    let store = api.daemon.store.clone();
    let entries = tokio::task::spawn_blocking(move || store.audit_entries(&filter, limit))
        .await
        .unwrap_or_default();
    axum::Json(Value::Array(entries.iter().map(entry_json).collect())).into_response()
}

fn quarantine_json(q: &QuarantineEntry) -> Value {
    let mut body = json!({
        "id": q.queue_id,
        "queue_id": q.queue_id,
        "audit_id": q.audit_id,
        "rule": q.rule,
        "reason": q.reason,
        "time": format_time(q.time),
        "source": "milter",
        "status": if q.gone.is_some() { "gone" } else { "held" },
        "host": q.host,
        "message_id": q.summary.message_id,
        "from": q.summary.from,
        "to": q.summary.to,
        "subject": q.summary.subject,
        "size": q.summary.size,
    });
    // An LMTP copy is held by Weir itself, not in the MTA's queue.
    if let Some(hold) = &q.lmtp {
        body["source"] = json!("lmtp");
        body["queue_id"] = json!("");
        body["recipient"] = json!(hold.recipient);
        body["folder"] = json!(hold.folder.as_deref().unwrap_or("INBOX"));
        body["flags"] = json!(hold.flags);
    }
    body
}

async fn quarantine_list(State(api): State<Api>) -> Response {
    let mut list = api.daemon.store.quarantine_entries();
    refresh_gone(&api, &mut list).await;
    axum::Json(Value::Array(list.iter().map(quarantine_json).collect())).into_response()
}

/// How long after the milter's reply a held message may still be on its
/// way into Postfix's hold queue (cleanup finishes the queue file after
/// the milter answers, and `postqueue` does not list it before): an entry
/// younger than this that Postfix does not list is answered as gone but
/// not recorded as such, so it is held again once Postfix lists it.
const HOLD_GRACE_SECS: i64 = 60;

/// Marks the milter entries whose message is not in Postfix's hold queue
/// as gone, with one queue listing for all. When the queue cannot be read
/// the entries keep their last known state (logged).
async fn refresh_gone(api: &Api, entries: &mut [QuarantineEntry]) {
    // Only this host's MTA can tell whether its hold queue still has one.
    let host = api.daemon.store.host().to_string();
    let unsettled = |e: &QuarantineEntry| {
        e.lmtp.is_none() && e.gone.is_none() && (e.host.is_empty() || e.host == host)
    };
    if !entries.iter().any(unsettled) {
        return;
    }
    let queue = match holdqueue::list(&api.daemon.config().milter.queue).await {
        Ok(queue) => queue,
        Err(e) => {
            tracing::warn!("quarantine: cannot list Postfix's queue: {e}");
            return;
        }
    };
    let now = unix_now();
    for entry in entries.iter_mut().filter(|e| unsettled(e)) {
        if left_hold(entry, &queue) {
            mark_gone(api, entry, now);
        }
    }
}

/// Whether the message `entry` describes is not in the hold queue of
/// `queue` (or its id could never name one).
fn left_hold(entry: &QuarantineEntry, queue: &[holdqueue::QueuedMessage]) -> bool {
    !holdqueue::valid_queue_id(&entry.queue_id)
        || holdqueue::whereabouts(queue, &entry.queue_id, &entry.summary.from)
            == holdqueue::Whereabouts::Gone
}

/// Marks a held message gone, and records it once it is past
/// [`HOLD_GRACE_SECS`].
fn mark_gone(api: &Api, entry: &mut QuarantineEntry, now: i64) {
    entry.gone = Some(now);
    if now - entry.time < HOLD_GRACE_SECS && holdqueue::valid_queue_id(&entry.queue_id) {
        return;
    }
    tracing::warn!(
        "quarantine: {} is not in Postfix's hold queue (released, deleted or expired outside Weir): listed as gone",
        entry.queue_id
    );
    if let Err(e) = api
        .daemon
        .store
        .put_quarantine(entry)
        .and_then(|()| api.daemon.store.flush())
    {
        tracing::error!(
            "quarantine: cannot record that {} is gone: {e:#}",
            entry.queue_id
        );
    }
}

/// An index id as the store keys it: a Postfix queue id or an LMTP `L…`
/// id, letters and digits only.
fn valid_index_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn find_held(api: &Api, id: &str) -> Result<QuarantineEntry, Box<Response>> {
    if !valid_index_id(id) {
        return Err(Box::new(error(
            StatusCode::NOT_FOUND,
            format!("no quarantined message {id:?} (queue ids are letters and digits)"),
        )));
    }
    api.daemon.store.quarantine_entry(id).ok_or_else(|| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            format!("no quarantined message {id:?}"),
        ))
    })
}

async fn quarantine_get(State(api): State<Api>, Path(id): Path<String>) -> Response {
    match find_held(&api, &id) {
        Ok(q) => {
            let mut one = [q];
            refresh_gone(&api, &mut one).await;
            let [q] = one;
            let mut body = quarantine_json(&q);
            if let Some(entry) = api.daemon.store.audit_entry(q.audit_id) {
                body["decision"] = entry_json(&entry);
            }
            axum::Json(body).into_response()
        }
        Err(r) => *r,
    }
}

/// What an operator asked for a held message.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Act {
    Release,
    Delete,
}

impl Act {
    /// The `status` of the answer and the audit entry.
    fn done(self) -> &'static str {
        match self {
            Act::Release => "released",
            Act::Delete => "deleted",
        }
    }
}

/// Ids with a release or delete under way. A second request for the same
/// id meanwhile answers 409, so two concurrent releases never deliver a
/// message twice.
#[derive(Clone, Default)]
struct InFlight(Arc<std::sync::Mutex<std::collections::HashSet<String>>>);

/// Removes its id from [`InFlight`] when the request is done.
struct InFlightGuard {
    set: InFlight,
    id: String,
}

impl InFlight {
    fn claim(&self, id: &str) -> Option<InFlightGuard> {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        set.insert(id.to_string()).then(|| InFlightGuard {
            set: self.clone(),
            id: id.to_string(),
        })
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut set = self.set.0.lock().unwrap_or_else(|p| p.into_inner());
        set.remove(&self.id);
    }
}

async fn quarantine_release(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    quarantine_act(api, caller, id, Act::Release).await
}

async fn quarantine_delete(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    quarantine_act(api, caller, id, Act::Delete).await
}

/// Releases or deletes a held message, one request per id at a time.
async fn quarantine_act(api: Api, caller: Caller, id: String, act: Act) -> Response {
    let Some(_guard) = api.in_flight.claim(&id) else {
        return error(
            StatusCode::CONFLICT,
            format!("a release or delete of {id:?} is under way"),
        );
    };
    // Read under the claim: a request that waited sees the first one's end.
    let held = match find_held(&api, &id) {
        Ok(q) => q,
        Err(r) => return *r,
    };
    if held.lmtp.is_some() {
        lmtp_act(api, held, act, caller).await
    } else {
        milter_act(api, held, act, caller).await
    }
}

/// Releases (delivers into its Maildir folder) or deletes a copy held by
/// LMTP in Weir's own quarantine.
async fn lmtp_act(api: Api, held: QuarantineEntry, act: Act, caller: Caller) -> Response {
    let daemon = api.daemon.clone();
    let entry = held.clone();
    let result = tokio::task::spawn_blocking(move || match act {
        Act::Release => super::lmtp::release_held(&daemon, &entry).map(|_| ()),
        Act::Delete => super::lmtp::delete_held(&daemon, &entry),
    })
    .await;
    match result {
        Ok(Ok(())) => {
            record_quarantine_act(&api.daemon, &held, act.done(), &caller).await;
            axum::Json(json!({"id": held.queue_id, "status": act.done()})).into_response()
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Writes an audit entry for an operator's release or delete, so the log
/// shows what became of every held message (the delivery it may cause
/// included). The act is done either way: a failure here is only logged.
async fn record_quarantine_act(
    daemon: &Arc<Daemon>,
    held: &QuarantineEntry,
    done: &'static str,
    caller: &Caller,
) {
    let source = if held.lmtp.is_some() {
        Source::Lmtp
    } else {
        Source::Milter
    };
    let entry = AuditEntry {
        host: String::new(),
        id: 0,
        time: unix_now(),
        source,
        queue_id: held.queue_id.clone(),
        message_id: held.summary.message_id.clone(),
        ruleset_version: daemon.current().version,
        decision: serde_json::to_value(QuarantineAct {
            quarantine: done,
            rule: held.rule.clone(),
            recipient: held.lmtp.as_ref().map(|h| h.recipient.clone()),
            held_by_audit_id: held.audit_id,
            by: caller.audit_json(),
        })
        .unwrap_or_default(),
    };
    daemon
        .record_act(entry, &format!("the quarantine {done}"))
        .await;
}

/// The answer for a held message Postfix no longer holds.
fn gone_answer(id: &str) -> Response {
    (
        StatusCode::CONFLICT,
        axum::Json(json!({
            "error": format!("{id} is no longer in Postfix's hold queue (released, deleted or expired outside Weir)"),
            "id": id,
            "status": "gone",
        })),
    )
        .into_response()
}

/// The answer when Postfix's queue or a command failed.
fn command_failed(error: &holdqueue::HoldError, argv: &[String]) -> Response {
    let mut body = json!({"error": error.to_string(), "command": argv});
    if let Some(stderr) = error.stderr() {
        body["stderr"] = json!(stderr);
    }
    (StatusCode::BAD_GATEWAY, axum::Json(body)).into_response()
}

/// Runs the configured release or delete command for a message in
/// Postfix's hold queue: only when Postfix holds it now with the sender
/// the entry recorded, and reports success only when Postfix's queue shows
/// that it moved (released: out of hold; deleted: out of every queue).
async fn milter_act(api: Api, mut held: QuarantineEntry, act: Act, caller: Caller) -> Response {
    let queue_command = &api.daemon.config().milter.queue;
    if held.gone.is_some() {
        return gone_answer(&held.queue_id);
    }
    if !held.host.is_empty() && held.host != api.daemon.store.host() {
        return error(
            StatusCode::CONFLICT,
            format!(
                "{} is in the Postfix hold queue of host {:?}: release or delete it through that host's API",
                held.queue_id, held.host
            ),
        );
    }
    let before = match holdqueue::list(queue_command).await {
        Ok(queue) => queue,
        Err(e) => return command_failed(&e, queue_command),
    };
    if left_hold(&held, &before) {
        mark_gone(&api, &mut held, unix_now());
        return gone_answer(&held.queue_id);
    }
    let command = match act {
        Act::Release => &api.daemon.config().milter.release,
        Act::Delete => &api.daemon.config().milter.delete,
    };
    let argv: Vec<String> = command
        .iter()
        .map(|a| a.replace("{queue_id}", &held.queue_id))
        .collect();
    if let Err(e) = holdqueue::run(&argv).await {
        return command_failed(&e, &argv);
    }
    let after = match holdqueue::list(queue_command).await {
        Ok(queue) => queue,
        Err(e) => return command_failed(&e, queue_command),
    };
    let moved = match act {
        Act::Release => !holdqueue::in_hold(&after, &held.queue_id),
        Act::Delete => !holdqueue::queued(&after, &held.queue_id),
    };
    if !moved {
        return error(
            StatusCode::BAD_GATEWAY,
            format!(
                "{argv:?} exited with success but Postfix still has {} in its queue",
                held.queue_id
            ),
        );
    }
    if let Err(e) = api.daemon.store.remove_quarantine(&held.queue_id) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"));
    }
    tracing::info!("quarantine: {} {}", held.queue_id, act.done());
    record_quarantine_act(&api.daemon, &held, act.done(), &caller).await;
    axum::Json(json!({"id": held.queue_id, "status": act.done()})).into_response()
}

/// Pending and dead-lettered side effects in queue order, a page at a
/// time: `limit` items (default and cap as `/v1/actions`) after position
/// `after` (the `seq` of the last item seen). A full page carries a
/// `Link: <…>; rel="next"` header to the next one.
async fn outbox(State(api): State<Api>, RawQuery(query): RawQuery) -> Response {
    let mut after = 0u64;
    let mut limit = DEFAULT_LIMIT;
    for (key, value) in query_pairs(query.as_deref()) {
        match key.as_str() {
            "after" => match value.parse::<u64>() {
                Ok(n) => after = n,
                Err(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("after: expected an item's seq, got {value:?}"),
                    );
                }
            },
            "limit" => match parse_limit(&value) {
                Ok(n) => limit = n,
                Err(message) => return error(StatusCode::BAD_REQUEST, message),
            },
            other => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown parameter {other:?} (expected after, limit)"),
                );
            }
        }
    }
    let store = api.daemon.store.clone();
    let items = tokio::task::spawn_blocking(move || store.outbox_page(after, limit))
        .await
        .unwrap_or_default();
    let next = (items.len() == limit)
        .then(|| items.last().map(|i| i.seq))
        .flatten();
    let body = Value::Array(items.iter().map(|i| i.to_json()).collect());
    let mut response = axum::Json(body).into_response();
    if let Some(seq) = next {
        let link = format!("</v1/outbox?after={seq}&limit={limit}>; rel=\"next\"");
        if let Ok(value) = axum::http::HeaderValue::from_str(&link) {
            response
                .headers_mut()
                .insert(axum::http::header::LINK, value);
        }
    }
    response
}

/// Makes an outbox item (typically a dead one) due now, with a fresh
/// retry budget.
async fn outbox_retry(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let response = outbox_retry_answer(&api, id.clone()).await;
    if response.status().is_success() {
        let act = json!({"act": "outbox_retry", "item": id, "by": caller.audit_json()});
        super::console::api::record_act(&api.daemon, act).await;
    }
    response
}

/// Makes the item due now; the API's answer.
async fn outbox_retry_answer(api: &Api, id: String) -> Response {
    let daemon = api.daemon.clone();
    let lookup = id.clone();
    let result =
        tokio::task::spawn_blocking(move || super::outbox::retry_now(&daemon, &lookup)).await;
    match result {
        Ok(Ok(Some(item))) => axum::Json(item.to_json()).into_response(),
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, format!("no outbox entry {id:?}")),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn events(State(api): State<Api>) -> Response {
    let receiver = api.daemon.events.subscribe();
    let stream = futures_util::stream::unfold(
        (receiver, api.stop.clone()),
        |(mut rx, mut stop)| async move {
            use tokio::sync::broadcast::error::RecvError;
            let received = tokio::select! {
                _ = stop.wait_for(|s| *s) => return None,
                received = rx.recv() => received,
            };
            let event = match received {
                Ok(entry) => Event::default()
                    .event("decision")
                    .id(entry.id.to_string())
                    .data(entry_json(&entry).to_string()),
                // A slow client missed some: say so rather than stop.
                Err(RecvError::Lagged(n)) => Event::default()
                    .event("lagged")
                    .data(json!({"missed": n}).to_string()),
                Err(RecvError::Closed) => return None,
            };
            Some((Ok::<Event, Infallible>(event), (rx, stop)))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The `key=value` pairs of a query string, percent-decoded.
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_decoded() {
        assert_eq!(
            query_pairs(Some("to=a%40b.c&to=d+e&x")),
            vec![
                ("to".into(), "a@b.c".into()),
                ("to".into(), "d e".into()),
                ("x".into(), String::new())
            ]
        );
        assert_eq!(
            query_pairs(Some("a=100%")),
            vec![("a".into(), "100%".into())]
        );
        assert_eq!(query_pairs(Some("a=%4")), vec![("a".into(), "%4".into())]);
    }

    #[test]
    fn index_ids_are_letters_and_digits() {
        assert!(valid_index_id("4Kx2Qb3fQzz1"));
        assert!(valid_index_id("L17"));
        assert!(!valid_index_id("a;rm"));
        assert!(!valid_index_id(""));
        assert!(!valid_index_id("-d"));
    }
}
