//! The decision object of an audit entry (docs/serve.md `/v1/actions`): the
//! decision as `weir run --json` prints it, then what the transaction was
//! and, per recipient, what delivery made of it. Built from these types in
//! one place, never patched key by key.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weir_compiler::{Action, Decision, Reply, TakenKind};

/// The decision object of a milter or LMTP audit entry.
#[derive(Debug, Clone, Serialize)]
pub struct AuditDecision {
    /// The `weir run --json` object (`weir_compiler::report`).
    #[serde(flatten)]
    pub decision: Map<String, Value>,
    /// The envelope sender.
    pub from: String,
    /// Every envelope recipient (milter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<String>>,
    /// The SMTP client.
    pub client: Client,
    /// The authenticated user (milter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_user: Option<String>,
    /// The message's size in bytes.
    pub size: u64,
    /// LMTP: the recipient of this copy and what became of it (its
    /// `folder` and `reply` are the decision's, above).
    #[serde(flatten)]
    pub delivery: Option<Delivery>,
    /// Milter with LMTP delivery: each recipient's outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<RecipientOutcome>>,
}

impl AuditDecision {
    /// The object for `decision`, `from` the envelope sender, with no
    /// transaction details yet.
    pub fn new(decision: &Decision, from: &str) -> AuditDecision {
        AuditDecision {
            decision: weir_compiler::report::decision_json(decision),
            from: from.to_string(),
            to: None,
            client: Client::default(),
            auth_user: None,
            size: 0,
            delivery: None,
            recipients: None,
        }
    }

    /// Adds what delivery made of an LMTP copy. The copy's folder and
    /// reply replace the decision's (one key each in the object).
    pub fn with_delivery(mut self, mut delivery: Delivery) -> AuditDecision {
        if let Some(folder) = delivery.folder.take() {
            self.decision.insert("folder".into(), Value::String(folder));
        }
        if let Some(reply) = delivery.reply.take() {
            let reply = serde_json::to_value(reply).unwrap_or(Value::Null);
            self.decision.insert("reply".into(), reply);
        }
        self.delivery = Some(delivery);
        self
    }

    /// As stored and shown.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The SMTP client of a transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// Its IP address (`""` when unknown).
    pub ip: String,
    /// Its reverse DNS name (`""` when unknown).
    pub name: String,
    /// What it said in HELO/EHLO.
    pub helo: String,
}

impl Client {
    /// A `Received:` field's `from` part: `HELO (name [ip])`.
    pub fn from_received(from: &str) -> Client {
        let (helo, rest) = from.split_once(' ').unwrap_or((from, ""));
        let inner = rest.trim().trim_start_matches('(').trim_end_matches(')');
        let (name, ip) = match inner.split_once('[') {
            Some((name, ip)) => (name.trim(), ip.split(']').next().unwrap_or("")),
            None => (inner.trim(), ""),
        };
        let name = if name == "unknown" { "" } else { name };
        Client {
            ip: ip.to_string(),
            name: name.to_string(),
            helo: helo.to_string(),
        }
    }
}

/// What delivery made of one recipient's copy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The recipient.
    pub recipient: String,
    /// `delivered`, `quarantined`, `refused` or `discarded`.
    pub delivery: String,
    /// The folder of a stored copy (`None`: INBOX).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// The flags of a stored copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<String>>,
    /// The quarantine id of a held copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine_id: Option<String>,
    /// The reply a refused copy got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<ReplyJson>,
}

/// An SMTP reply as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyJson {
    /// The code (`550`).
    pub code: u16,
    /// The enhanced status (`5.7.1`).
    pub status: String,
    /// The text.
    pub text: String,
}

impl From<&Reply> for ReplyJson {
    fn from(r: &Reply) -> ReplyJson {
        ReplyJson {
            code: r.code,
            status: r.status.clone(),
            text: r.text.clone(),
        }
    }
}

/// One recipient's decision in a milter entry, and its delivery once LMTP
/// has carried it out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientOutcome {
    /// The recipient.
    pub recipient: String,
    /// Its verdict.
    pub verdict: String,
    /// Its reply.
    pub reply: Option<ReplyJson>,
    /// The quarantine reason.
    pub reason: Option<String>,
    /// The rule that decided.
    pub rule: Option<String>,
    /// The folder.
    pub folder: Option<String>,
    /// The flags.
    pub flags: Vec<String>,
    /// The tags.
    pub tags: Vec<String>,
    /// The score.
    pub score: Value,
    /// What delivery made of it (`delivered`, …), once LMTP has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    /// The quarantine id of a held copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_id: Option<String>,
}

impl RecipientOutcome {
    /// `decision`, made for `recipient`.
    pub fn new(recipient: &str, decision: &Decision) -> RecipientOutcome {
        RecipientOutcome {
            recipient: recipient.to_string(),
            verdict: decision.verdict.as_str().to_string(),
            reply: decision.reply.as_ref().map(ReplyJson::from),
            reason: decision.quarantine_reason.clone(),
            rule: decision.decided_by.clone(),
            folder: decision.folder.clone(),
            flags: flags(decision),
            tags: decision.tags.iter().map(ToString::to_string).collect(),
            score: weir_compiler::report::number(decision.score),
            delivery: None,
            quarantine_id: None,
        }
    }

    /// Takes in what delivery made of the copy.
    pub fn delivered(&mut self, delivery: &Delivery) {
        self.delivery = Some(delivery.delivery.clone());
        self.quarantine_id = delivery.quarantine_id.clone();
        if delivery.folder.is_some() {
            self.folder = delivery.folder.clone();
        }
        if let Some(flags) = &delivery.flags {
            self.flags = flags.clone();
        }
        if delivery.reply.is_some() {
            self.reply = delivery.reply.clone();
        }
    }
}

/// The audit entry of a quarantine release or delete.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantineAct {
    /// `released` or `deleted`.
    pub quarantine: &'static str,
    /// The rule that held the message.
    pub rule: String,
    /// The recipient of an LMTP copy (`None` for the milter's hold).
    pub recipient: Option<String>,
    /// The audit entry of the decision that held it.
    pub held_by_audit_id: u64,
    /// Who did it: `role` (`admin`) and `via` (`token` or `session`).
    pub by: Value,
}

/// The flags a decision sets (`flag` actions that are not shadowed).
pub fn flags(decision: &Decision) -> Vec<String> {
    decision
        .actions
        .iter()
        .filter(|t| !t.shadow)
        .filter_map(|t| match &t.what {
            TakenKind::Action(Action::Flag(f)) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

/// Adds one recipient's delivery to a milter entry's decision object: into
/// its entry of `recipients`, or as a new one (a recipient a rule added).
pub fn add_delivery(object: &mut Value, delivery: &Delivery) -> serde_json::Result<()> {
    let Some(list) = object.get_mut("recipients") else {
        return Ok(());
    };
    let mut outcomes: Vec<RecipientOutcome> = serde_json::from_value(list.take())?;
    match outcomes
        .iter_mut()
        .find(|o| o.recipient.eq_ignore_ascii_case(&delivery.recipient))
    {
        Some(outcome) => outcome.delivered(delivery),
        None => {
            let mut added = RecipientOutcome {
                recipient: delivery.recipient.clone(),
                verdict: String::new(),
                reply: None,
                reason: None,
                rule: None,
                folder: None,
                flags: Vec::new(),
                tags: Vec::new(),
                score: Value::from(0),
                delivery: None,
                quarantine_id: None,
            };
            added.delivered(delivery);
            outcomes.push(added);
        }
    }
    *list = serde_json::to_value(outcomes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_received_from_part_becomes_the_client() {
        assert_eq!(
            Client::from_received("client.test (mail.client.test [192.0.2.7])"),
            Client {
                ip: "192.0.2.7".into(),
                name: "mail.client.test".into(),
                helo: "client.test".into(),
            }
        );
        assert_eq!(Client::from_received("x (unknown [::1])").name, "");
    }

    #[test]
    fn a_delivery_joins_its_recipient_or_is_added() {
        let mut object = serde_json::json!({"verdict": "accept", "recipients": [
            {"recipient": "A@x.test", "verdict": "accept", "reply": null, "reason": null,
             "rule": null, "folder": "Work", "flags": [], "tags": [], "score": 0}
        ]});
        let held = Delivery {
            recipient: "a@x.test".into(),
            delivery: "quarantined".into(),
            quarantine_id: Some("L1".into()),
            ..Delivery::default()
        };
        add_delivery(&mut object, &held).unwrap();
        let added = Delivery {
            recipient: "b@x.test".into(),
            delivery: "delivered".into(),
            folder: Some("Other".into()),
            ..Delivery::default()
        };
        add_delivery(&mut object, &added).unwrap();
        let list = object["recipients"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["delivery"], "quarantined");
        assert_eq!(list[0]["quarantine_id"], "L1");
        assert_eq!(list[0]["folder"], "Work");
        assert_eq!(list[1]["recipient"], "b@x.test");
        assert_eq!(list[1]["folder"], "Other");
    }
}
