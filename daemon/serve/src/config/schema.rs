//! The keys `weir.toml` knows and the kind of value each takes. The whole
//! document is walked before any value is checked, so every unknown or
//! misspelled key and every value of the wrong kind is reported in one run,
//! each with its place and, for a near miss, a did-you-mean.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The kind of value a key takes.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A string (also sizes, durations, paths, commands, listeners).
    Text,
    /// An integer.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A number, whole or decimal.
    Number,
    /// An array of strings (`[store] cluster`, `[store.sentinel] addresses`).
    TextList,
    /// A table with these keys.
    Table(&'static [Key]),
    /// A table of named tables (`[notify.NAME]`), each with these keys.
    Tables(&'static [Key]),
}

type Key = (&'static str, Kind);

use Kind::{Boolean, Integer, Number, Table, Tables, Text, TextList};

const MILTER: &[Key] = &[
    ("listen", Text),
    ("on_error", Text),
    ("release", Text),
    ("delete", Text),
    ("queue", Text),
    ("max_connections", Integer),
    ("idle_timeout", Text),
];
const LMTP: &[Key] = &[
    ("listen", Text),
    ("maildir", Text),
    ("lowercase_local", Boolean),
    ("on_error", Text),
    ("utf8_folders", Boolean),
    ("owner", Text),
    ("group", Text),
    ("max_connections", Integer),
    ("idle_timeout", Text),
];
const HTTP: &[Key] = &[
    ("listen", Text),
    ("token_file", Text),
    ("readonly_token_file", Text),
    ("keep_messages", Integer),
    ("keep_for", Text),
    ("max_connections", Integer),
    ("idle_timeout", Text),
];
const LIMITS: &[Key] = &[
    ("max_message_size", Text),
    ("max_headers", Integer),
    ("max_mime_depth", Integer),
    ("eval_timeout", Text),
    ("on_limit", Text),
];
const AUDIT: &[Key] = &[("retention", Text)];
const NOTIFY: &[Key] = &[("url", Text), ("timeout", Text), ("retries", Integer)];
const RELAY: &[Key] = &[("host", Text), ("from", Text)];
const REPLY: &[Key] = &[("period", Text)];
const OUTBOX: &[Key] = &[
    ("backoff", Text),
    ("max_backoff", Text),
    ("mail_retries", Integer),
];
const AUTOLEARN: &[Key] = &[
    ("verdict", TextList),
    ("rule", TextList),
    ("tag", TextList),
    ("min_score", Number),
    ("max_score", Number),
    ("skip_above", Number),
];
const CLASSIFIER: &[Key] = &[("autolearn", Tables(AUTOLEARN))];
const SENTINEL: &[Key] = &[
    ("master", Text),
    ("addresses", TextList),
    ("password", Text),
];
const STORE: &[Key] = &[
    ("backend", Text),
    ("url", Text),
    ("sentinel", Table(SENTINEL)),
    ("cluster", TextList),
    ("prefix", Text),
    ("connect_timeout", Text),
    ("timeout", Text),
    ("pool_size", Integer),
    ("host", Text),
    ("audit_max_length", Integer),
    ("claim_timeout", Text),
    ("tls_ca_file", Text),
    ("tls_cert_file", Text),
    ("tls_key_file", Text),
];
const TOP: &[Key] = &[
    ("rules", Text),
    ("state_dir", Text),
    ("milter", Table(MILTER)),
    ("lmtp", Table(LMTP)),
    ("http", Table(HTTP)),
    ("limits", Table(LIMITS)),
    ("audit", Table(AUDIT)),
    ("notify", Tables(NOTIFY)),
    ("relay", Table(RELAY)),
    ("reply", Table(REPLY)),
    ("outbox", Table(OUTBOX)),
    ("classifiers", Tables(CLASSIFIER)),
    ("store", Table(STORE)),
];

/// A key that is not known, or a value of the wrong kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Mismatch {
    /// The table it is in (`milter`, `notify.x`), `None` at the top.
    pub table: Option<String>,
    /// The key.
    pub key: String,
    /// Where the key (unknown) or the value (wrong kind) is.
    pub span: Range<usize>,
    /// What is wrong.
    pub message: String,
}

/// Every mismatch between the document and the keys `weir.toml` knows.
pub(super) fn check(document: &DeTable<'_>) -> Vec<Mismatch> {
    let mut found = Vec::new();
    walk(None, document, TOP, &mut found);
    found
}

fn walk(table: Option<&str>, entries: &DeTable<'_>, keys: &[Key], found: &mut Vec<Mismatch>) {
    for (key, value) in entries {
        let name: &str = key.get_ref();
        let Some((_, kind)) = keys.iter().find(|(k, _)| *k == name) else {
            found.push(Mismatch {
                table: table.map(str::to_string),
                key: name.to_string(),
                span: key.span(),
                message: unknown(name, keys),
            });
            continue;
        };
        let mut mismatch = |message: String| {
            found.push(Mismatch {
                table: table.map(str::to_string),
                key: name.to_string(),
                span: value.span(),
                message,
            })
        };
        match (kind, value.get_ref()) {
            (Text, DeValue::String(_))
            | (Integer, DeValue::Integer(_))
            | (Boolean, DeValue::Boolean(_))
            | (Number, DeValue::Integer(_) | DeValue::Float(_)) => {}
            (TextList, DeValue::Array(items)) => {
                if let Some(item) = items
                    .iter()
                    .find(|i| !matches!(i.get_ref(), DeValue::String(_)))
                {
                    found.push(Mismatch {
                        table: table.map(str::to_string),
                        key: name.to_string(),
                        span: item.span(),
                        message: format!("expected an array of strings, got {} in it", what(item)),
                    });
                }
            }
            // A table inside a table is named by its path (`store.sentinel`).
            (Table(inner), DeValue::Table(t)) => walk(Some(&path(table, name)), t, inner, found),
            (Tables(inner), DeValue::Table(t)) => named_tables(&path(table, name), t, inner, found),
            (kind, _) => mismatch(format!("expected {}, got {}", describe(*kind), what(value))),
        }
    }
}

/// The dotted name of table `name` inside `table`.
fn path(table: Option<&str>, name: &str) -> String {
    table.map_or_else(|| name.to_string(), |t| format!("{t}.{name}"))
}

/// `[notify.NAME]`: each entry of the outer table is itself a table.
fn named_tables(outer: &str, entries: &DeTable<'_>, keys: &[Key], found: &mut Vec<Mismatch>) {
    for (name, value) in entries {
        let table = format!("{outer}.{}", name.get_ref());
        match value.get_ref() {
            DeValue::Table(t) => walk(Some(&table), t, keys, found),
            _ => found.push(Mismatch {
                table: Some(outer.to_string()),
                key: name.get_ref().to_string(),
                span: value.span(),
                message: format!("expected a table [{table}], got {}", what(value)),
            }),
        }
    }
}

/// "unknown key, did you mean `token_file`?", or the keys the table takes
/// when nothing is close.
fn unknown(name: &str, keys: &[Key]) -> String {
    let names = keys.iter().map(|(k, _)| *k);
    match weir_compiler::hints::closest(name, names.clone()) {
        Some(near) => format!("unknown key, did you mean `{near}`?"),
        None => {
            let all: Vec<String> = names.map(|k| format!("`{k}`")).collect();
            format!("unknown key, expected one of {}", all.join(", "))
        }
    }
}

fn describe(kind: Kind) -> &'static str {
    match kind {
        Text => "a string (in quotes)",
        Integer => "a whole number",
        Boolean => "true or false",
        Number => "a number",
        TextList => "an array of strings",
        Table(_) | Tables(_) => "a table",
    }
}

fn what(value: &Spanned<DeValue<'_>>) -> &'static str {
    match value.get_ref() {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a decimal number",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}
