//! A decision explained on its message: the kept bytes evaluated again
//! (a dry run, as `POST /v1/check`) with the explain trace, and each
//! test's matching bytes located in the message's headers and decoded
//! body, for the Message page to highlight.

use serde_json::{Map, Value, json};
use weir_compiler::decision::RuleTrace;
use weir_compiler::{Envelope, EvalOptions, Evaluator};
use weir_stdlib::{Limits, Message, Transaction};

use crate::state::{AuditEntry, Daemon, unix_now};

/// A message's text as the Message page shows it: header fields (decoded)
/// then, after an empty line, the decoded body text.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// The text.
    pub text: String,
    /// Where each header field's value starts in `text`, with the value.
    values: Vec<(usize, String)>,
    /// Where the body starts in `text`.
    body_at: usize,
}

impl Source {
    /// The source of `message`.
    pub fn of(message: &Message) -> Source {
        let mut text = String::new();
        let mut values = Vec::new();
        for (name, value) in message.headers() {
            text.push_str(&name);
            text.push_str(": ");
            values.push((text.len(), value.clone()));
            text.push_str(&value);
            text.push('\n');
        }
        text.push('\n');
        let body_at = text.len();
        text.push_str(message.body_text());
        Source {
            text,
            values,
            body_at,
        }
    }

    /// Where in the text a test's matching bytes are: the `span` of a
    /// field `value`, found as a header field's whole value, else in the
    /// body, else anywhere.
    pub fn locate(&self, value: &str, span: (usize, usize)) -> Option<(usize, usize)> {
        let matched = value.get(span.0..span.1)?;
        if matched.is_empty() {
            return None;
        }
        let at = self
            .values
            .iter()
            .find(|(_, v)| v == value)
            .map(|(at, _)| at + span.0)
            .or_else(|| {
                let body = &self.text[self.body_at..];
                body.find(value).map(|i| self.body_at + i + span.0)
            })
            .or_else(|| self.text.find(matched))?;
        Some((at, at + matched.len()))
    }
}

/// One test's evidence located in the source.
#[derive(Debug, Clone)]
pub struct Mark {
    /// The rule whose test held.
    pub rule: String,
    /// Byte range in [`Source::text`].
    pub range: (usize, usize),
}

/// A decision explained.
#[derive(Debug, Clone)]
pub struct Explained {
    /// The audit entry's id.
    pub audit_id: u64,
    /// The ruleset version that explained it (the running one).
    pub version: u64,
    /// The version that decided.
    pub decided_by_version: u64,
    /// The `weir run --json` object of the new evaluation.
    pub decision: Map<String, Value>,
    /// The trace.
    pub trace: Vec<RuleTrace>,
    /// The message's text.
    pub source: Source,
    /// The located evidence, in trace order.
    pub marks: Vec<Mark>,
}

impl Explained {
    /// As `GET /v1/actions/{id}/explain` answers it.
    pub fn to_json(&self) -> Value {
        let marks = marks_json(&self.marks);
        json!({
            "id": self.audit_id,
            "ruleset_version": self.version,
            "decided_by_version": self.decided_by_version,
            "decision": self.decision,
            "trace": weir_compiler::report::trace_json(&self.trace),
            "source": self.source.text,
            "highlights": marks,
        })
    }
}

/// The envelope an audit entry records: sender, recipients, client.
pub fn envelope(entry: &AuditEntry) -> Envelope {
    let d = &entry.decision;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let mut to: Vec<String> = d
        .get("to")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(r) = text(d.get("recipient")) {
        to.push(r);
    }
    let client = d.get("client");
    Envelope {
        from: text(d.get("from")),
        to,
        client_ip: text(client.and_then(|c| c.get("ip"))).and_then(|i| i.parse().ok()),
        helo: text(client.and_then(|c| c.get("helo"))).filter(|s| !s.is_empty()),
    }
}

/// The daemon's limits for parsing a message.
pub fn limits(daemon: &Daemon) -> Limits {
    let l = &daemon.config().limits;
    Limits {
        max_message_size: l.max_message_size,
        max_headers: l.max_headers,
        max_mime_depth: l.max_mime_depth,
    }
}

/// Evaluates `bytes` with `evaluator` as a dry run (with the trace when
/// `explain`) under `envelope`; the decision and the parsed message.
pub fn evaluate(
    daemon: &Daemon,
    evaluator: &Evaluator,
    envelope: &Envelope,
    bytes: &[u8],
    explain: bool,
) -> Result<(weir_compiler::Decision, Message), String> {
    let message = Message::parse(bytes, &limits(daemon)).map_err(|e| format!("{e:?}"))?;
    let kept = message.clone();
    let tx = Transaction::with_defaults(
        message,
        envelope.from.as_deref(),
        &envelope.to,
        envelope.client_ip,
        envelope.helo.as_deref(),
        unix_now(),
    );
    let mut rates = crate::http::dry_rates(daemon);
    let opts = EvalOptions {
        explain,
        dry_run: true,
    };
    Ok((evaluator.evaluate(&tx, &mut rates, &opts), kept))
}

/// Evaluates `bytes` with the trace and locates each held test's
/// matching bytes in the message's source.
pub fn explain_bytes(
    daemon: &Daemon,
    evaluator: &Evaluator,
    envelope: &Envelope,
    bytes: &[u8],
) -> Result<(weir_compiler::Decision, Source, Vec<Mark>), String> {
    let (decision, message) = evaluate(daemon, evaluator, envelope, bytes, true)?;
    let source = Source::of(&message);
    let marks = decision
        .trace
        .iter()
        .filter(|t| t.held)
        .filter_map(|t| {
            let e = t.evidence.as_ref()?;
            let range = source.locate(&e.value, e.span)?;
            Some(Mark {
                rule: t.rule.clone(),
                range,
            })
        })
        .collect();
    Ok((decision, source, marks))
}

/// Explains audit entry `entry` on its kept `bytes` with the running
/// ruleset.
pub fn explain_entry(
    daemon: &Daemon,
    entry: &AuditEntry,
    bytes: &[u8],
) -> Result<Explained, String> {
    let current = daemon.current();
    let (decision, source, marks) =
        explain_bytes(daemon, &current.evaluator, &envelope(entry), bytes)?;
    Ok(Explained {
        audit_id: entry.id,
        version: current.version,
        decided_by_version: entry.ruleset_version,
        decision: weir_compiler::report::decision_json(&decision),
        trace: decision.trace,
        source,
        marks,
    })
}

/// The JSON of located marks.
pub fn marks_json(marks: &[Mark]) -> Value {
    marks
        .iter()
        .map(|m| json!({"rule": m.rule, "start": m.range.0, "end": m.range.1}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Source {
        let bytes =
            b"From: a@example.com\r\nSubject: cheap pills now\r\n\r\nHello, buy cheap pills.\r\n";
        Source::of(&Message::parse(bytes, &Limits::default()).unwrap())
    }

    #[test]
    fn a_header_value_is_found_as_a_whole_value() {
        let s = source();
        let (start, end) = s.locate("cheap pills now", (6, 11)).unwrap();
        assert_eq!(&s.text[start..end], "pills");
        assert!(s.text[..start].ends_with("Subject: cheap "));
    }

    #[test]
    fn a_body_match_is_found_in_the_body() {
        let s = source();
        let value = "Hello, buy cheap pills.";
        let (start, end) = s.locate(value, (11, 16)).unwrap();
        assert_eq!(&s.text[start..end], "cheap");
        assert!(start > s.body_at);
    }

    #[test]
    fn a_span_off_the_value_is_not_located() {
        assert!(source().locate("abc", (2, 9)).is_none());
        assert!(source().locate("abc", (1, 1)).is_none());
    }
}
