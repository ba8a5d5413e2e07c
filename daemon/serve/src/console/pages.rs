//! The Overview, Live, Message and Quarantine pages.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::Value;

use super::Session;
use super::explain::{Explained, Mark, Source};
use super::layout::{self, Page, text, verdict};
use crate::access::Role;
use crate::clock::format_time;
use crate::http::Api;
use crate::state::{AuditEntry, unix_now};
use crate::store::QuarantineEntry;

/// `GET /console/`: figures, graphs, top rules; refreshed by the script
/// from `/v1/stats`.
pub async fn overview(State(api): State<Api>, Session(caller): Session) -> Markup {
    let store = crate::health::probe(&api.daemon)
        .await
        .map_err(|e| e.to_string());
    let daemon = api.daemon.clone();
    let stats = tokio::task::spawn_blocking(move || super::stats::stats(&daemon, store))
        .await
        .unwrap_or_default();
    let s = |path: &str| text(stats.pointer(path));
    let content = html! {
        section.cards aria-label="Figures" {
            div.card { h2 { "Ruleset" } p { "version " strong data-stat="/ruleset/version" { (s("/ruleset/version")) } }
                p.small { "loaded " span data-stat="/ruleset/loaded_at" { (s("/ruleset/loaded_at")) } }
                p.small { "last reload: " span data-stat="/ruleset/last_reload" { (s("/ruleset/last_reload")) } } }
            div.card { h2 { "Evaluation" } p { "p50 " span data-stat="/eval_seconds/p50" data-unit="s" { (s("/eval_seconds/p50")) } }
                p { "p99 " span data-stat="/eval_seconds/p99" data-unit="s" { (s("/eval_seconds/p99")) } } }
            div.card { h2 { "Last 24 h" } p { strong data-stat="/decided_last_day" { (s("/decided_last_day")) } " decisions" } }
            div.card { h2 { "Quarantine" } p { strong data-stat="/quarantine/held" { (s("/quarantine/held")) } " held" } }
            div.card { h2 { "Outbox" } p { strong data-stat="/outbox/pending" { (s("/outbox/pending")) } " pending, "
                strong data-stat="/outbox/dead" { (s("/outbox/dead")) } " dead" } }
            div.card { h2 { "Store" } p { strong data-stat="/store" { (s("/store")) } } }
        }
        section aria-labelledby="h-hour" {
            h2 #h-hour { "Messages per minute, last hour" }
            div.chart #chart-hour role="img" aria-label="Messages per minute by verdict over the last hour" {}
        }
        section aria-labelledby="h-day" {
            h2 #h-day { "Messages per minute, last day (10-minute means)" }
            div.chart #chart-day role="img" aria-label="Messages per minute by verdict over the last day" {}
        }
        section aria-labelledby="h-top" {
            h2 #h-top { "Top rules by hits, last day" }
            table #top-rules { thead { tr { th scope="col" { "Rule" } th scope="col" { "Hits" } } }
                tbody { @for r in stats["top_rules"].as_array().into_iter().flatten() {
                    tr { td { (text(r.get("rule"))) } td { (text(r.get("hits"))) } } } } }
        }
        @if let Some(e) = stats.pointer("/ruleset/last_error").and_then(Value::as_str) {
            section { h2 { "Last failed reload" } pre.diag { (e) } }
        }
    };
    let page = Page {
        title: "Overview",
        nav: "Overview",
        script: "overview",
        charts: true,
    };
    layout::page(&caller, &page, content)
}

/// `GET /console/live`: decisions as they happen, filtered, pausable.
pub async fn live(Session(caller): Session) -> Markup {
    let content = html! {
        form #live-filter.filters aria-label="Filter the decisions" {
            label { "Verdict " select name="verdict" {
                option value="" { "any" }
                @for v in super::stats::VERDICTS { option value=(v) { (v) } } } }
            label { "Rule " input type="text" name="rule" autocomplete="off"; }
            label { "Tag " input type="text" name="tag" autocomplete="off"; }
            label { "Sender " input type="text" name="from" autocomplete="off"; }
            label { "Recipient " input type="text" name="to" autocomplete="off"; }
            button #live-pause type="button" aria-pressed="false" { "Pause" }
        }
        p #live-status.small role="status" aria-live="polite" { "Connecting…" }
        div.scroll {
            table #live-table {
                thead { tr { th scope="col" { "Time" } th scope="col" { "Verdict" } th scope="col" { "Sender" }
                    th scope="col" { "Recipients" } th scope="col" { "Rules" } th scope="col" { "Tags" } th scope="col" { "Message" } } }
                tbody #live-rows {}
            }
        }
    };
    let page = Page::section("Live", "live");
    layout::page(&caller, &page, content)
}

/// `GET /console/message/{id}`: one decision in full, explained on its
/// kept bytes when the ring has them.
pub async fn message(
    State(api): State<Api>,
    Session(caller): Session,
    Path(id): Path<String>,
) -> Response {
    let entry = match super::api::find_entry(&api.daemon, &id) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let daemon = api.daemon.clone();
    let kept = daemon.recent.get(entry.id);
    let for_explain = entry.clone();
    let explained = match kept {
        Some(k) => tokio::task::spawn_blocking(move || {
            super::explain::explain_entry(&daemon, &for_explain, &k.bytes)
        })
        .await
        .ok(),
        None => None,
    };
    let held = api
        .daemon
        .store
        .quarantine_entries()
        .into_iter()
        .find(|q| q.audit_id == entry.id);
    let content = html! {
        (decision_summary(&entry, held.as_ref()))
        (recipients(&entry))
        (actions(&entry))
        section aria-labelledby="h-explain" {
            h2 #h-explain { "Explain" }
            @match explained {
                Some(Ok(e)) => (explain_view(&e)),
                Some(Err(e)) => p.error { "Cannot explain: " (e) },
                None => p { "The message's bytes are not kept, so its decision cannot be explained here. Set "
                    code { "[http] keep_messages" } " to keep recent messages." },
            }
        }
    };
    let title = format!("Message {}", entry.id);
    let page = Page {
        title: &title,
        nav: "Search",
        script: "message",
        charts: false,
    };
    layout::page(&caller, &page, content).into_response()
}

fn decision_summary(entry: &AuditEntry, held: Option<&QuarantineEntry>) -> Markup {
    let d = &entry.decision;
    let client = d.get("client");
    html! {
        section aria-labelledby="h-env" {
            h2 #h-env { "Envelope and verdict" }
            dl.facts {
                dt { "Verdict" } dd { (verdict(&text(d.get("verdict")))) @if let Some(q) = d.get("quarantine").and_then(Value::as_str) { " " (q) } }
                dt { "Reply" } dd { (text(d.pointer("/reply/code"))) " " (text(d.pointer("/reply/text"))) }
                dt { "Time" } dd { (format_time(entry.time)) }
                dt { "Source" } dd { (serde_json::to_value(entry.source).ok().as_ref().map_or(String::new(), |v| text(Some(v)))) }
                dt { "Queue id" } dd { code { (entry.queue_id) } }
                dt { "Message-ID" } dd { code { (entry.message_id) } }
                dt { "Sender" } dd { (text(d.get("from"))) }
                dt { "Recipients" } dd { (text(d.get("to"))) (text(d.get("recipient"))) }
                dt { "Client" } dd { (text(client.and_then(|c| c.get("ip")))) " " (text(client.and_then(|c| c.get("name"))))
                    @let helo = text(client.and_then(|c| c.get("helo")));
                    @if !helo.is_empty() { " HELO " (helo) } }
                dt { "Authenticated" } dd { (text(d.get("auth_user"))) }
                dt { "Size" } dd { (text(d.get("size"))) }
                dt { "Rules matched" } dd { (text(d.get("matched"))) }
                dt { "Tags" } dd { (text(d.get("tags"))) }
                dt { "Score" } dd { (text(d.get("score"))) }
                dt { "Folder" } dd { (text(d.get("folder"))) }
                dt { "Stage" } dd { (text(d.get("stage"))) }
                dt { "Ruleset version" } dd { (entry.ruleset_version) }
                @if let Some(q) = held { dt { "Quarantine" } dd { a href=(format!("/console/quarantine/{}", q.queue_id)) { "held as " (q.queue_id) } } }
            }
        }
    }
}

fn recipients(entry: &AuditEntry) -> Markup {
    let d = &entry.decision;
    let list: Vec<&Value> = d
        .get("recipients")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    html! {
        section aria-labelledby="h-rcpt" {
            h2 #h-rcpt { "Per-recipient outcomes" }
            @if list.is_empty() && d.get("recipient").is_none() {
                p { "One decision for every recipient." }
            } @else {
                table { thead { tr { th scope="col" { "Recipient" } th scope="col" { "Verdict" } th scope="col" { "Delivery" } th scope="col" { "Folder" } th scope="col" { "Reply" } } }
                    tbody {
                        @for r in &list { tr { td { (text(r.get("recipient"))) } td { (verdict(&text(r.get("verdict")))) } td { (text(r.get("delivery"))) }
                            td { (text(r.get("folder"))) } td { (text(r.pointer("/reply/code"))) " " (text(r.pointer("/reply/text"))) } } }
                        @if list.is_empty() { tr { td { (text(d.get("recipient"))) } td { (verdict(&text(d.get("verdict")))) } td { (text(d.get("delivery"))) }
                            td { (text(d.get("folder"))) } td { (text(d.pointer("/reply/code"))) " " (text(d.pointer("/reply/text"))) } } }
                    } }
            }
        }
    }
}

fn actions(entry: &AuditEntry) -> Markup {
    let list = entry
        .decision
        .get("actions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    html! {
        section aria-labelledby="h-actions" {
            h2 #h-actions { "Actions" }
            @if list.is_empty() { p { "None." } } @else {
                ol.actions { @for a in &list { li { code { (a) } } } }
            }
        }
    }
}

/// The trace table and the source with the matching bytes marked.
fn explain_view(e: &Explained) -> Markup {
    html! {
        p.small { "Evaluated again on the kept bytes with the running ruleset, version " (e.version)
            @if e.version != e.decided_by_version { " (version " (e.decided_by_version) " decided)" } "." }
        table.trace { thead { tr { th scope="col" { "Rule" } th scope="col" { "Held" } th scope="col" { "Test" } th scope="col" { "Value" } } }
            tbody { @for t in &e.trace {
                tr class=(if t.held { "held" } else { "" }) {
                    td { (t.rule) } td { @if t.held { "yes" } @else { "no" } }
                    @if let Some(ev) = &t.evidence {
                        td { code { (ev.expr) } }
                        td { (ev.value.get(..ev.span.0).unwrap_or("")) mark { (ev.value.get(ev.span.0..ev.span.1).unwrap_or("")) } (ev.value.get(ev.span.1..).unwrap_or("")) }
                    } @else { td {} td {} }
                } } } }
        h3 { "Message (headers decoded, then the body text)" }
        pre.source #message-source { (marked_source(&e.source, &e.marks)) }
    }
}

/// The source text with each mark as `<mark>`; overlapping marks merge.
pub fn marked_source(source: &Source, marks: &[Mark]) -> Markup {
    let mut ranges: Vec<(usize, usize, String)> = marks
        .iter()
        .map(|m| (m.range.0, m.range.1, m.rule.clone()))
        .collect();
    ranges.sort();
    let text = &source.text;
    let mut pieces: Vec<(bool, &str, String)> = Vec::new();
    let mut at = 0;
    for (start, end, rule) in ranges {
        let start = start.max(at);
        if start >= end || !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            continue;
        }
        pieces.push((false, &text[at..start], String::new()));
        pieces.push((true, &text[start..end], rule));
        at = end;
    }
    pieces.push((false, &text[at..], String::new()));
    html! {
        @for (is_mark, piece, rule) in pieces {
            @if is_mark { mark title=(format!("matched by rule {rule}")) { (piece) } } @else { (piece) }
        }
    }
}

/// `GET /console/quarantine`: held messages, with release and delete for
/// the admin.
pub async fn quarantine_list(State(api): State<Api>, Session(caller): Session) -> Markup {
    let list: Vec<QuarantineEntry> = api.daemon.store.quarantine_entries();
    let admin = caller.role == Role::Admin;
    let now = unix_now();
    let content = html! {
        @if list.is_empty() { p { "Nothing is held." } } @else {
            @if admin { div.toolbar {
                button type="button" data-bulk="release" { "Release selected" }
                button type="button" data-bulk="delete" class="danger" { "Delete selected" }
            } }
            div.scroll { table #quarantine-table {
                thead { tr { @if admin { th scope="col" { span.sr-only { "Select" } } }
                    th scope="col" { "Id" } th scope="col" { "Age" } th scope="col" { "Reason" } th scope="col" { "Rule" }
                    th scope="col" { "Sender" } th scope="col" { "Recipient" } th scope="col" { "Subject" } th scope="col" { "Status" }
                    @if admin { th scope="col" { "Act" } } } }
                tbody { @for q in &list { (quarantine_row(q, admin, now)) } }
            } }
        }
    };
    let page = Page::section("Quarantine", "quarantine");
    layout::page(&caller, &page, content)
}

fn quarantine_row(q: &QuarantineEntry, admin: bool, now: i64) -> Markup {
    let recipient = q
        .lmtp
        .as_ref()
        .map_or_else(|| q.summary.to.join(", "), |h| h.recipient.clone());
    let status = if q.gone.is_some() { "gone" } else { "held" };
    html! {
        tr data-id=(q.queue_id) {
            @if admin { td { input type="checkbox" class="select" value=(q.queue_id) aria-label=(format!("Select {}", q.queue_id)); } }
            td { a href=(format!("/console/quarantine/{}", q.queue_id)) { (q.queue_id) } }
            td { (age(now - q.time)) }
            td { (q.reason) } td { (q.rule) } td { (q.summary.from) } td { (recipient) } td { (q.summary.subject) } td { (status) }
            @if admin { td.acts { (act_buttons(&q.queue_id)) } }
        }
    }
}

/// Release and delete buttons (the script asks for confirmation).
fn act_buttons(id: &str) -> Markup {
    html! {
        button type="button" data-act="release" data-id=(id) aria-label=(format!("Release {id}")) { "Release" }
        " "
        button type="button" data-act="delete" data-id=(id) class="danger" aria-label=(format!("Delete {id}")) { "Delete" }
    }
}

/// A duration in seconds, short.
pub fn age(secs: i64) -> String {
    match secs.max(0) {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// `GET /console/quarantine/{id}`: headers and a safe rendering.
pub async fn quarantine_one(
    State(api): State<Api>,
    Session(caller): Session,
    Path(id): Path<String>,
) -> Response {
    let daemon = api.daemon.clone();
    let lookup = id.clone();
    let bytes =
        tokio::task::spawn_blocking(move || super::quarantine::held_bytes(&daemon, &lookup)).await;
    let held = api
        .daemon
        .store
        .quarantine_entry(&id)
        .filter(|_| id.bytes().all(|b| b.is_ascii_alphanumeric()));
    let Some(held) = held else {
        return (
            StatusCode::NOT_FOUND,
            format!("no quarantined message {id:?}"),
        )
            .into_response();
    };
    let message = match bytes {
        Ok(Ok(b)) => Ok(
            weir_stdlib::Message::parse(&b, &weir_stdlib::Limits::default())
                .map_err(|e| format!("{e:?}")),
        ),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(e.to_string()),
    }
    .and_then(|m| m);
    let admin = caller.role == Role::Admin;
    let content = html! {
        p { "Held by rule " strong { (held.rule) } " — " (held.reason) ". "
            a href=(format!("/console/message/{}", held.audit_id)) { "Its decision" } }
        @if admin { div.toolbar.acts { (act_buttons(&held.queue_id)) } }
        @match &message {
            Err(e) => p.error { (e) },
            Ok(m) => {
                section aria-labelledby="h-headers" { h2 #h-headers { "Headers" }
                    table.headers { tbody { @for (name, value) in m.headers() { tr { th scope="row" { (name) } td { (value) } } } } } }
                section aria-labelledby="h-body" { h2 #h-body { "Body" }
                    @if m.body_html().is_empty() { pre.body { (m.body_text()) } }
                    @else { p.small { "HTML, sanitised: no scripts, forms, styles or remote images." }
                        iframe.body src=(format!("/console/quarantine/{}/body", held.queue_id)) sandbox="" title="The message body, sanitised" {} }
                }
            }
        }
    };
    let title = format!("Held message {}", held.queue_id);
    let page = Page {
        title: &title,
        nav: "Quarantine",
        script: "quarantine",
        charts: false,
    };
    layout::page(&caller, &page, content).into_response()
}

/// `GET /console/quarantine/{id}/body`: the sanitised HTML body, for the
/// sandboxed frame, under a policy that loads and runs nothing.
pub async fn quarantine_body(
    State(api): State<Api>,
    Session(_): Session,
    Path(id): Path<String>,
) -> Response {
    let daemon = api.daemon.clone();
    let bytes =
        tokio::task::spawn_blocking(move || super::quarantine::held_bytes(&daemon, &id)).await;
    let html = match bytes {
        Ok(Ok(b)) => match weir_stdlib::Message::parse(&b, &weir_stdlib::Limits::default()) {
            Ok(m) => super::quarantine::sanitise_html(m.body_html()),
            Err(e) => return (StatusCode::UNPROCESSABLE_ENTITY, format!("{e:?}")).into_response(),
        },
        Ok(Err(e)) => return (StatusCode::NOT_FOUND, e).into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let doc = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body>{html}</body></html>"
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, super::quarantine::BODY_CSP),
        ],
        doc,
    )
        .into_response()
}
