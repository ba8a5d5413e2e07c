//! `notify`: the JSON body and its POST to the configured channel's URL
//! (never a URL from mail: the channel name is all a rule gives), over
//! hyper's client, which axum already brings into the tree.

use std::sync::OnceLock;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value, json};
use weir_compiler::Decision;
use weir_compiler::decision::RenderedTemplate;

use super::{Failure, Origin};
use crate::config::NotifyChannel;

/// The webhook body: the message summary, the rule, the decision's tags,
/// the `with` map and the template's text (`text` is the template body,
/// else the `with` map's `text`, else `""`). The `id` (idempotency key)
/// is added by the caller.
pub fn body(
    origin: &Origin,
    decision: &Decision,
    rule: &str,
    with: &[(String, String)],
    template: Option<&RenderedTemplate>,
) -> Value {
    let with_map: Map<String, Value> = with.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let text = template
        .map(|t| t.body.clone())
        .or_else(|| {
            with_map
                .get("text")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default();
    json!({
        "rule": rule,
        "message": {
            "from": origin.sender,
            "to": origin.recipients,
            "subject": origin.subject,
            "message_id": origin.message_id,
        },
        "tags": decision.tags,
        "with": with_map,
        "template": template.map(|t| json!({"name": t.name, "subject": t.subject, "body": t.body})),
        "text": text,
    })
}

/// One HTTP/1.1 client for the whole daemon (it keeps connections).
fn client() -> &'static Client<HttpConnector, Full<Bytes>> {
    static CLIENT: OnceLock<Client<HttpConnector, Full<Bytes>>> = OnceLock::new();
    CLIENT.get_or_init(|| Client::builder(TokioExecutor::new()).build_http())
}

/// POSTs `body` to `channel` with `Idempotency-Key: key`, within the
/// channel's `timeout`. Any 2xx is success; anything else is retried.
pub async fn post(channel: &NotifyChannel, key: &str, body: &Value) -> Result<(), Failure> {
    if channel.url.starts_with("https://") {
        return Err(Failure::Permanent(
            "https:// webhooks need TLS, which this build does not include".into(),
        ));
    }
    let uri: hyper::Uri = channel
        .url
        .parse()
        .map_err(|e| Failure::Permanent(format!("bad URL {:?}: {e}", channel.url)))?;
    let request = hyper::Request::post(uri)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", key)
        .header(hyper::header::USER_AGENT, "weir-outbox")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| Failure::Permanent(format!("cannot build the request: {e}")))?;
    let exchange = async {
        let response = client()
            .request(request)
            .await
            .map_err(|e| format!("{e}: {}", source_chain(&e)))?;
        let status = response.status();
        // Read the answer so the connection can be used again.
        let answer = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            Ok(())
        } else {
            let text = String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
            Err(format!("HTTP {status}: {}", text.trim()))
        }
    };
    match tokio::time::timeout(channel.timeout, exchange).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure::Retry(e)),
        Err(_) => Err(Failure::Retry(format!(
            "no answer within the channel's timeout ({:?})",
            channel.timeout
        ))),
    }
}

/// The causes under an error, for a useful `last_error`.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out.join(": ")
}
