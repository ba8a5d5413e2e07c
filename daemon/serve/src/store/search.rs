//! The audit log search's criteria beyond `since`, `rule` and `verdict`
//! (`GET /v1/actions`, the console's Search page).

use crate::state::AuditEntry;
use serde_json::Value;

/// Further criteria of [`super::AuditFilter`]; all given ones must hold.
#[derive(Debug, Clone, Default)]
pub struct AuditSearch {
    /// Only entries with a smaller id (the next page of a search).
    pub before_id: Option<u64>,
    /// Only entries before this time (seconds since the epoch).
    pub until_time: Option<i64>,
    /// The envelope sender contains this (ASCII case-insensitive).
    pub sender: Option<String>,
    /// An envelope recipient contains this (ASCII case-insensitive).
    pub recipient: Option<String>,
    /// The Message-ID contains this (angle brackets ignored).
    pub message_id: Option<String>,
    /// The MTA's queue id is this.
    pub queue_id: Option<String>,
    /// The decision has this tag.
    pub tag: Option<String>,
}

impl AuditSearch {
    /// Whether `e` meets every criterion given.
    pub fn matches(&self, e: &AuditEntry) -> bool {
        let d = &e.decision;
        self.before_id.is_none_or(|id| e.id < id)
            && self.until_time.is_none_or(|t| e.time < t)
            && self.sender.as_deref().is_none_or(|s| {
                d.get("from")
                    .and_then(Value::as_str)
                    .is_some_and(|f| contains(f, s))
            })
            && self
                .recipient
                .as_deref()
                .is_none_or(|r| recipients(d).any(|to| contains(to, r)))
            && self.message_id.as_deref().is_none_or(|m| {
                let m = m.trim_matches(|c| c == '<' || c == '>');
                contains(&e.message_id, m)
            })
            && self.queue_id.as_deref().is_none_or(|q| e.queue_id == q)
            && self.tag.as_deref().is_none_or(|t| {
                d.get("tags")
                    .and_then(Value::as_array)
                    .is_some_and(|tags| tags.iter().any(|x| x.as_str() == Some(t)))
            })
    }
}

/// The entry's recipients: `to` (milter) and `recipient` (LMTP).
fn recipients(d: &Value) -> impl Iterator<Item = &str> {
    let to = d.get("to").and_then(Value::as_array).into_iter().flatten();
    let one = d.get("recipient").into_iter();
    to.chain(one).filter_map(Value::as_str)
}

fn contains(haystack: &str, needle: &str) -> bool {
    haystack
        .to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Source;
    use serde_json::json;

    fn entry(id: u64) -> AuditEntry {
        AuditEntry {
            id,
            time: 1000,
            source: Source::Lmtp,
            queue_id: "4AB".into(),
            message_id: "<x1@example.com>".into(),
            ruleset_version: 1,
            host: String::new(),
            decision: json!({"from": "Alice@Example.com", "recipient": "bob@example.org", "tags": ["spam"]}),
        }
    }

    #[test]
    fn every_given_criterion_must_hold() {
        let e = entry(5);
        assert!(AuditSearch::default().matches(&e));
        let s = |f: fn(&mut AuditSearch)| {
            let mut s = AuditSearch::default();
            f(&mut s);
            s.matches(&e)
        };
        assert!(s(|s| s.sender = Some("alice@example".into())));
        assert!(!s(|s| s.sender = Some("carol".into())));
        assert!(s(|s| s.recipient = Some("BOB@".into())));
        assert!(s(|s| s.message_id = Some("<x1@example.com>".into())));
        assert!(s(|s| s.queue_id = Some("4AB".into())));
        assert!(!s(|s| s.queue_id = Some("4A".into())));
        assert!(s(|s| s.tag = Some("spam".into())));
        assert!(!s(|s| s.tag = Some("ham".into())));
        assert!(s(|s| s.before_id = Some(6)));
        assert!(!s(|s| s.before_id = Some(5)));
        assert!(!s(|s| s.until_time = Some(1000)));
    }
}
