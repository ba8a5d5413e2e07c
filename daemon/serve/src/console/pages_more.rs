//! The Search, Rules, Playground and Outbox pages.

use axum::extract::{RawQuery, State};
use maud::{Markup, html};

use super::Session;
use super::layout::{self, Page, text, verdict};
use crate::access::Role;
use crate::clock::{format_time, parse_time};
use crate::http::{Api, entry_json, query_pairs};
use crate::store::AuditFilter;

/// Entries per Search page.
const PAGE: usize = 50;

/// The Search form's fields: name, label.
const FIELDS: &[(&str, &str)] = &[
    ("since", "From (time)"),
    ("until", "Until (time)"),
    ("from", "Sender"),
    ("to", "Recipient"),
    ("message_id", "Message-ID"),
    ("queue_id", "Queue id"),
    ("rule", "Rule"),
    ("tag", "Tag"),
];

/// A time from the form: RFC 3339, or a browser's `datetime-local`
/// (`2026-12-06T08:00`, read as UTC).
fn form_time(value: &str) -> Option<i64> {
    parse_time(value)
        .or_else(|| parse_time(&format!("{value}:00Z")))
        .or_else(|| parse_time(&format!("{value}Z")))
}

/// The audit filter of the Search form, and the problems found.
fn search_filter(pairs: &[(String, String)]) -> (AuditFilter, Vec<String>) {
    let mut f = AuditFilter::default();
    let mut problems = Vec::new();
    for (key, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        let v = value.trim().to_string();
        match key.as_str() {
            "since" => match form_time(&v) {
                Some(t) => f.since_time = Some(t),
                None => problems.push(format!("From: not a time: {v:?}")),
            },
            "until" => match form_time(&v) {
                Some(t) => f.search.until_time = Some(t),
                None => problems.push(format!("Until: not a time: {v:?}")),
            },
            "before" => f.search.before_id = v.parse().ok(),
            "from" => f.search.sender = Some(v),
            "to" => f.search.recipient = Some(v),
            "message_id" => f.search.message_id = Some(v),
            "queue_id" => f.search.queue_id = Some(v),
            "rule" => f.rule = Some(v),
            "tag" => f.search.tag = Some(v),
            "verdict" => f.verdict = Some(v),
            _ => {}
        }
    }
    (f, problems)
}

/// `GET /console/search`: the audit log, filtered, newest first, a page
/// at a time (`before` = the oldest id shown).
pub async fn search(
    State(api): State<Api>,
    Session(caller): Session,
    RawQuery(query): RawQuery,
) -> Markup {
    let pairs = query_pairs(query.as_deref());
    let value = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (filter, problems) = search_filter(&pairs);
    let store = api.daemon.store.clone();
    let mut entries = tokio::task::spawn_blocking(move || store.audit_entries(&filter, PAGE))
        .await
        .unwrap_or_default();
    entries.reverse();
    let older = (entries.len() == PAGE)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    let mut next_query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().filter(|(k, _)| k != "before"))
        .finish();
    if !next_query.is_empty() {
        next_query.push('&');
    }
    let content = html! {
        form.filters method="get" action="/console/search" aria-label="Search the audit log" {
            @for (name, label) in FIELDS {
                label { (label) " " input type="text" name=(name) value=(value(name)); }
            }
            label { "Verdict " select name="verdict" { option value="" { "any" }
                @for v in super::stats::VERDICTS { option value=(v) selected[value("verdict") == *v] { (v) } } } }
            button type="submit" { "Search" }
        }
        @for p in &problems { p.error role="alert" { (p) } }
        p.small { "Times: RFC 3339 (" code { "2026-12-06T08:00:00Z" } ") or " code { "2026-12-06T08:00" } " (UTC)." }
        div.scroll { table #search-results {
            thead { tr { th scope="col" { "Id" } th scope="col" { "Time" } th scope="col" { "Verdict" } th scope="col" { "Sender" }
                th scope="col" { "Recipients" } th scope="col" { "Rules" } th scope="col" { "Tags" } th scope="col" { "Message-ID" } } }
            tbody { @for e in &entries { @let j = entry_json(e); tr {
                td { a href=(format!("/console/message/{}", e.id)) { (e.id) } }
                td { (format_time(e.time)) }
                td { (verdict(&text(j.get("verdict").or(j.get("act")).or(j.get("quarantine"))))) }
                td { (text(j.get("from"))) } td { (text(j.get("to"))) (text(j.get("recipient"))) }
                td { (text(j.get("matched"))) } td { (text(j.get("tags"))) } td { code { (e.message_id) } }
            } } }
        } }
        @if entries.is_empty() { p { "No entry matches." } }
        @if let Some(id) = older { p { a rel="next" href=(format!("/console/search?{next_query}before={id}")) { "Older entries" } } }
    };
    let page = Page::section("Search", "search");
    layout::page(&caller, &page, content)
}

/// `GET /console/rules?a=V&b=W`: the running source, the versions, a
/// diff between two of them, and reload for the admin.
pub async fn rules(
    State(api): State<Api>,
    Session(caller): Session,
    RawQuery(query): RawQuery,
) -> Markup {
    let pairs = query_pairs(query.as_deref());
    let pick = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse::<u64>().ok())
    };
    let daemon = api.daemon.clone();
    let files = tokio::task::spawn_blocking(move || super::history::running_source(&daemon))
        .await
        .unwrap_or_default();
    let versions = super::history::versions(&api.daemon);
    let current = api.daemon.current();
    let (a, b) = (pick("a"), pick("b"));
    let diff = a.zip(b).and_then(|(a, b)| {
        let (va, vb) = (
            super::history::version(&api.daemon, a)?,
            super::history::version(&api.daemon, b)?,
        );
        let join = |v: &super::history::Version| {
            v.files
                .iter()
                .map(|f| format!("# {}\n{}", f.name, f.text))
                .collect::<String>()
        };
        Some((a, b, join(&va), join(&vb)))
    });
    let admin = caller.role == Role::Admin;
    let content = html! {
        p { "Running version " strong { (current.version) } " (" code { (current.hash()) } "), loaded " (format_time(current.loaded_at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64))) "." }
        @if admin { div.toolbar { button #reload type="button" { "Reload from disk" } } }
        div #reload-result role="status" aria-live="polite" {}
        @for f in &files { section { h2 { code { (f.name) } } pre.code { (layout::highlight_flow(&f.text)) } } }
        section aria-labelledby="h-versions" { h2 #h-versions { "Versions" }
            form.filters method="get" action="/console/rules" {
                label { "Compare " select name="a" { @for v in &versions { option value=(v.version) selected[a == Some(v.version)] { (v.version) } } } }
                label { " with " select name="b" { @for v in versions.iter().rev() { option value=(v.version) selected[b == Some(v.version)] { (v.version) } } } }
                button type="submit" { "Diff" }
            }
            table { thead { tr { th scope="col" { "Version" } th scope="col" { "Loaded" } th scope="col" { "Hash" } } }
                tbody { @for v in versions.iter().rev() { tr { td { (v.version) } td { (format_time(v.loaded_at)) } td { code { (v.hash) } } } } } }
        }
        @if let Some((a, b, old, new)) = diff {
            section aria-labelledby="h-diff" { h2 #h-diff { "Diff " (a) " → " (b) }
                pre.diff { @for (sign, line) in super::history::line_diff(&old, &new) {
                    @match sign { '+' => ins { "+" (line) "\n" }, '-' => del { "-" (line) "\n" }, _ => { " " (line) "\n" } }
                } } }
        }
    };
    let page = Page::section("Rules", "rules");
    layout::page(&caller, &page, content)
}

/// `GET /console/playground`: edit a copy of the entry file; check as
/// you type, run, backtest, deploy (admin).
pub async fn playground(State(api): State<Api>, Session(caller): Session) -> Markup {
    let daemon = api.daemon.clone();
    let files = tokio::task::spawn_blocking(move || super::history::running_source(&daemon))
        .await
        .unwrap_or_default();
    let source = files.first().map(|f| f.text.clone()).unwrap_or_default();
    let admin = caller.role == Role::Admin;
    let content = html! {
        div.play {
            div {
                label for="pg-source" { "Ruleset (a copy of " code { (api.daemon.config().rules.display().to_string()) } ")" }
                textarea #pg-source.code spellcheck="false" rows="24" { (source) }
                div #pg-diagnostics role="status" aria-live="polite" {}
            }
            div {
                label for="pg-message" { "Message (headers, empty line, body)" }
                textarea #pg-message.code spellcheck="false" rows="10" { "From: alice@example.com\nTo: bob@example.org\nSubject: hello\n\nHi Bob.\n" }
                label for="pg-file" { "or load a file" }
                input #pg-file type="file" accept=".eml,message/rfc822,text/plain";
                div.row { label { "Envelope sender " input #pg-from type="text" value="alice@example.com"; }
                    label { "Recipient " input #pg-to type="text" value="bob@example.org"; } }
                div.toolbar { button #pg-run type="button" { "Run" }
                    label { "Backtest on the last " input #pg-limit type="number" min="1" max="10000" value="100"; " kept messages" }
                    button #pg-backtest type="button" { "Backtest" }
                    @if admin { button #pg-deploy type="button" class="danger" { "Deploy" } } }
                div #pg-result role="status" aria-live="polite" {}
            }
        }
    };
    let page = Page::section("Playground", "playground");
    layout::page(&caller, &page, content)
}

/// `GET /console/outbox`: pending and dead items, retry for the admin.
pub async fn outbox(State(api): State<Api>, Session(caller): Session) -> Markup {
    let store = api.daemon.store.clone();
    let items = tokio::task::spawn_blocking(move || store.outbox_page(0, 1000))
        .await
        .unwrap_or_default();
    let admin = caller.role == Role::Admin;
    let content = html! {
        @if items.is_empty() { p { "The outbox is empty." } } @else {
            div.scroll { table #outbox-table {
                thead { tr { th scope="col" { "Seq" } th scope="col" { "Kind" } th scope="col" { "To / channel" } th scope="col" { "Rule" }
                    th scope="col" { "State" } th scope="col" { "Attempts" } th scope="col" { "Next attempt" } th scope="col" { "Last error" }
                    @if admin { th scope="col" { "Act" } } } }
                tbody { @for i in &items { @let j = i.to_json(); tr {
                    td { (text(j.get("seq"))) } td { (text(j.get("kind"))) } td { (text(j.get("to"))) (text(j.get("channel"))) }
                    td { (text(j.get("rule"))) } td { (text(j.get("state"))) } td { (text(j.get("attempts"))) }
                    td { (text(j.get("next_attempt"))) } td { (text(j.get("last_error"))) }
                    @if admin { td { button type="button" data-retry=(text(j.get("id"))) aria-label=(format!("Retry item {}", text(j.get("seq")))) { "Retry" } } }
                } } }
            } }
        }
        div #outbox-result role="status" aria-live="polite" {}
    };
    let page = Page::section("Outbox", "outbox");
    layout::page(&caller, &page, content)
}
