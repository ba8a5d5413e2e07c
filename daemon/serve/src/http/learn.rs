//! `POST /v1/learn/{NAME}/{CLASS}` (docs/serve.md): learn a message as a
//! class of one of the running ruleset's classifiers — the message in the
//! body, or, with `?quarantine=ID` or `?audit=ID` and no body, the copy
//! Weir's own quarantine keeps (for `?audit=`, also one in the ring of
//! recent messages) — or unlearn it with `?forget=true`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use weir_classify::Outcome;
use weir_stdlib::{Limits, Message};

use super::{Api, error};

/// Where the message to learn comes from.
enum Source {
    Body,
    Quarantine(String),
    Audit(u64),
}

/// The query of a learn request.
struct LearnQuery {
    forget: bool,
    source: Source,
}

impl LearnQuery {
    fn parse(query: Option<&str>) -> Result<LearnQuery, String> {
        let mut q = LearnQuery {
            forget: false,
            source: Source::Body,
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
            match key {
                "forget" => q.forget = value != "false" && value != "0",
                "quarantine" => q.source = Source::Quarantine(value.to_string()),
                "audit" => {
                    let id = value
                        .parse()
                        .map_err(|_| format!("audit={value:?} is not an audit id"))?;
                    q.source = Source::Audit(id);
                }
                other => {
                    return Err(format!(
                        "unknown parameter {other:?} (expected forget, quarantine, audit)"
                    ));
                }
            }
        }
        Ok(q)
    }
}

pub(super) async fn learn(
    State(api): State<Api>,
    Path((name, class)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let query = match LearnQuery::parse(query.as_deref()) {
        Ok(q) => q,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    if let Err(response) = known_class(&api, &name, &class) {
        return *response;
    }
    let bytes = match message_bytes(&api, &query.source, body) {
        Ok(b) => b,
        Err(response) => return *response,
    };
    let daemon = Arc::clone(&api.daemon);
    let limits = &daemon.config().limits;
    let limits = Limits {
        max_message_size: limits.max_message_size,
        max_headers: limits.max_headers,
        max_mime_depth: limits.max_mime_depth,
    };
    let forget = query.forget;
    let (n, c) = (name.clone(), class.clone());
    let learned = tokio::task::spawn_blocking(move || {
        let message = Message::parse(&bytes, &limits)
            .map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
        daemon.learned.learn(&n, &c, &message, forget).map_err(|e| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot store what was learned: {e}"),
            )
        })
    })
    .await;
    let outcome = match learned {
        Ok(Ok(o)) => o,
        Ok(Err((status, message))) => return error(status, message),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    tracing::info!("learn: {name} {class}: {outcome:?}");
    let (word, from) = match &outcome {
        Outcome::Learned => ("learned", None),
        Outcome::AlreadyLearned => ("already learned", None),
        Outcome::Moved(old) => ("moved", Some(old.clone())),
        Outcome::Forgotten(old) => ("forgotten", Some(old.clone())),
        Outcome::NotLearned => ("not learned", None),
    };
    axum::response::IntoResponse::into_response(axum::Json(json!({
        "classifier": name,
        "class": class,
        "outcome": word,
        "from": from,
    })))
}

/// The classifier must be declared by the running rules and the class be
/// one of its classes (404 and 422 otherwise, with a did-you-mean).
fn known_class(api: &Api, name: &str, class: &str) -> Result<(), Box<Response>> {
    let current = api.daemon.current();
    let declared = current.evaluator.ruleset().classifiers();
    let Some(info) = declared.iter().find(|c| c.name == name) else {
        let names = declared.iter().map(|c| c.name.as_str());
        let hint = weir_compiler::hints::did_you_mean(name, names)
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
        return Err(Box::new(error(
            StatusCode::NOT_FOUND,
            format!("the running rules declare no classifier {name:?}{hint}"),
        )));
    };
    if info.classes.iter().any(|c| c == class) {
        return Ok(());
    }
    let hint = weir_compiler::hints::did_you_mean(class, info.classes.iter().map(String::as_str))
        .map(|h| format!(" ({h})"))
        .unwrap_or_default();
    Err(Box::new(error(
        StatusCode::UNPROCESSABLE_ENTITY,
        format!(
            "classifier {name:?} has no class {class:?}{hint}; its classes are {}",
            info.classes.join(", ")
        ),
    )))
}

/// The message: the body, or the copy held in Weir's quarantine.
fn message_bytes(
    api: &Api,
    source: &Source,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<u8>, Box<Response>> {
    let entry = match source {
        Source::Body => {
            return match body {
                Ok(b) if b.is_empty() => Err(Box::new(error(
                    StatusCode::BAD_REQUEST,
                    "no message: send it as the body, or name a held one with ?quarantine=ID or ?audit=ID",
                ))),
                Ok(b) => Ok(b.to_vec()),
                Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(Box::new(error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the message is larger than [limits] max_message_size",
                ))),
                Err(r) => Err(Box::new(error(StatusCode::BAD_REQUEST, r.body_text()))),
            };
        }
        Source::Quarantine(id) => super::find_held(api, id).map_err(|r| Box::new(*r))?,
        Source::Audit(id) => {
            let held = api
                .daemon
                .store
                .quarantine_entries()
                .into_iter()
                .find(|q| q.audit_id == *id);
            // Weir's own held copy first, then the ring of recent messages
            // (`[http] keep_messages`); an entry held only in the MTA's
            // hold queue gets the 409 below.
            match (held, api.daemon.recent.get(*id)) {
                (Some(entry), _) if entry.lmtp.is_some() => entry,
                (_, Some(kept)) => return Ok(kept.bytes.to_vec()),
                (Some(entry), None) => entry,
                (None, None) => {
                    return Err(Box::new(error(
                        StatusCode::NOT_FOUND,
                        format!(
                            "audit entry {id} has no message kept by Weir: it keeps the copies held \
                             in its own quarantine and, with [http] keep_messages, recent messages; \
                             upload the message as the body"
                        ),
                    )));
                }
            }
        }
    };
    let Some(hold) = &entry.lmtp else {
        return Err(Box::new(error(
            StatusCode::CONFLICT,
            format!(
                "{} is held in the MTA's hold queue, where Weir keeps no copy: upload the message as the body",
                entry.queue_id
            ),
        )));
    };
    std::fs::read(&hold.file).map_err(|e| {
        Box::new(error(
            StatusCode::GONE,
            format!("the held copy of {} cannot be read: {e}", entry.queue_id),
        ))
    })
}
