//! A decision as the edits and answer the milter sends the MTA at the end
//! of a message (docs/language.md ("Rules and actions"), milter column).
//! The LMTP side applies the same edits to its copies (`lmtp/rewrite.rs`),
//! so both make one message.

use std::collections::HashMap;

use weir_compiler::{Action, Decision, Reply, TakenKind, Verdict};

use crate::stages::{MessageFacts, strip_brackets};

/// One modification the milter asks the MTA for at the end of the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// SMFIR_ADDHEADER: append a header field.
    AddHeader(String, String),
    /// SMFIR_CHGHEADER: replace occurrence `index` (1-based) of a header,
    /// or delete it (`None`).
    ChangeHeader(String, i32, Option<String>),
    /// SMFIR_ADDRCPT.
    AddRcpt(String),
    /// SMFIR_DELRCPT.
    DeleteRcpt(String),
}

/// The final answer to the MTA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// SMFIR_ACCEPT (after the edits).
    Accept,
    /// SMFIR_ACCEPT after SMFIR_QUARANTINE with this reason.
    Quarantine(String),
    /// SMFIR_DISCARD.
    Discard,
    /// A 5xx reply.
    Reject(Reply),
    /// A 4xx reply.
    Tempfail(Reply),
}

/// What to send the MTA for a decision: the edits, then the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Header and envelope edits, in order.
    pub edits: Vec<Edit>,
    /// The verdict.
    pub answer: Answer,
}

/// The headers Weir writes; an incoming copy is removed so a sender cannot
/// forge them.
pub const TAGS_HEADER: &str = "X-Weir-Tags";
/// See [`TAGS_HEADER`].
pub const FOLDER_HEADER: &str = "X-Weir-Folder";

/// Tracks the header fields as the MTA will have them after the edits sent
/// so far, to compute occurrence indexes.
struct HeaderView {
    /// Lower-case name → current values, in order.
    values: HashMap<String, Vec<String>>,
}

impl HeaderView {
    fn new(headers: &[(String, String)]) -> HeaderView {
        let mut values: HashMap<String, Vec<String>> = HashMap::new();
        for (name, value) in headers {
            values
                .entry(name.to_ascii_lowercase())
                .or_default()
                .push(value.clone());
        }
        HeaderView { values }
    }

    fn count(&self, name: &str) -> usize {
        self.values
            .get(&name.to_ascii_lowercase())
            .map_or(0, Vec::len)
    }

    fn add(&mut self, edits: &mut Vec<Edit>, name: &str, value: &str) {
        edits.push(Edit::AddHeader(name.to_string(), value.to_string()));
        self.values
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value.to_string());
    }

    fn remove(&mut self, edits: &mut Vec<Edit>, name: &str) {
        // From the last occurrence down, so earlier indexes stay valid.
        for index in (1..=self.count(name)).rev() {
            edits.push(Edit::ChangeHeader(name.to_string(), index_i32(index), None));
        }
        self.values.remove(&name.to_ascii_lowercase());
    }

    /// Leaves exactly one occurrence with `value`.
    fn set(&mut self, edits: &mut Vec<Edit>, name: &str, value: &str) {
        let n = self.count(name);
        if n == 0 {
            self.add(edits, name, value);
            return;
        }
        for index in (2..=n).rev() {
            edits.push(Edit::ChangeHeader(name.to_string(), index_i32(index), None));
        }
        edits.push(Edit::ChangeHeader(
            name.to_string(),
            1,
            Some(value.to_string()),
        ));
        self.values
            .insert(name.to_ascii_lowercase(), vec![value.to_string()]);
    }

    fn first(&self, name: &str) -> Option<&str> {
        self.values
            .get(&name.to_ascii_lowercase())
            .and_then(|v| v.first())
            .map(String::as_str)
    }
}

fn index_i32(index: usize) -> i32 {
    i32::try_from(index).unwrap_or(i32::MAX)
}

/// A header name the MTA accepts: printable ASCII without `:` or space.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

/// A header value on one line: CR and LF (header injection) become spaces.
fn one_line(value: &str) -> String {
    value.replace(['\r', '\n'], " ")
}

/// An address as MAIL/RCPT arguments carry it.
fn bracketed(address: &str) -> String {
    format!("<{}>", strip_brackets(address))
}

/// Maps a decision to milter edits and an answer (docs/language.md ("Rules and actions"), milter
/// column). `facts` are the message's received headers and recipients.
/// Edits are sent for `accept` and `quarantine` only: a rejected, failed or
/// discarded message is not delivered, so editing it is pointless.
pub fn plan(decision: &Decision, facts: &MessageFacts) -> Plan {
    let answer = answer(decision);
    if !matches!(answer, Answer::Accept | Answer::Quarantine(_)) {
        return Plan {
            edits: Vec::new(),
            answer,
        };
    }
    let mut editor = Editor {
        headers: HeaderView::new(&facts.headers),
        rcpts: facts.to.iter().map(|a| strip_brackets(a)).collect(),
        edits: Vec::new(),
    };
    for name in [TAGS_HEADER, FOLDER_HEADER, crate::stamp::STAMP_HEADER] {
        editor.headers.remove(&mut editor.edits, name);
    }
    for taken in &decision.actions {
        if let (false, TakenKind::Action(action)) = (taken.shadow, &taken.what) {
            editor.apply(action);
        }
    }
    let Editor {
        mut headers,
        mut edits,
        ..
    } = editor;
    if !decision.tags.is_empty() {
        let tags: Vec<String> = decision.tags.iter().map(|t| one_line(t)).collect();
        headers.set(&mut edits, TAGS_HEADER, &tags.join(", "));
    }
    if let Some(folder) = &decision.folder {
        headers.set(&mut edits, FOLDER_HEADER, &one_line(folder));
    }
    Plan { edits, answer }
}

/// The answer a decision's verdict gives the MTA.
fn answer(decision: &Decision) -> Answer {
    match decision.verdict {
        Verdict::Accept => Answer::Accept,
        Verdict::Quarantine => {
            let reason = decision
                .quarantine_reason
                .as_deref()
                .map(one_line)
                .filter(|r| !r.trim().is_empty())
                .unwrap_or_else(|| "quarantined by weir".to_string());
            Answer::Quarantine(reason)
        }
        Verdict::Discard => Answer::Discard,
        Verdict::Reject => Answer::Reject(decision.refusal()),
        Verdict::Tempfail => Answer::Tempfail(decision.refusal()),
    }
}

/// The edits so far, with the headers and recipients as the MTA will have
/// them after those edits.
struct Editor {
    headers: HeaderView,
    rcpts: Vec<String>,
    edits: Vec<Edit>,
}

impl Editor {
    /// Adds the edits of one action. Header edits with an invalid name are
    /// dropped (the audit log still shows them); the other actions are not
    /// milter edits: tags and folder become headers, notify/reply/log are
    /// recorded in the audit log.
    fn apply(&mut self, action: &Action) {
        let edits = &mut self.edits;
        match action {
            Action::AddHeader { name, value } if valid_header_name(name) => {
                self.headers.add(edits, name, &one_line(value));
            }
            Action::SetHeader { name, value } if valid_header_name(name) => {
                self.headers.set(edits, name, &one_line(value));
            }
            Action::RemoveHeader { name } if valid_header_name(name) => {
                self.headers.remove(edits, name);
            }
            Action::PrependSubject(prefix) => self.prepend_subject(&one_line(prefix)),
            Action::AddRcpt(address) => {
                let address = strip_brackets(address);
                if !address.is_empty() && !self.rcpts.contains(&address) {
                    edits.push(Edit::AddRcpt(bracketed(&address)));
                    self.rcpts.push(address);
                }
            }
            Action::RemoveRcpt(address) => {
                let address = strip_brackets(address);
                for r in self
                    .rcpts
                    .iter()
                    .filter(|r| r.eq_ignore_ascii_case(&address))
                {
                    edits.push(Edit::DeleteRcpt(bracketed(r)));
                }
                self.rcpts.retain(|r| !r.eq_ignore_ascii_case(&address));
            }
            Action::Redirect(address) => {
                let address = strip_brackets(address);
                if address.is_empty() {
                    return;
                }
                for r in self.rcpts.drain(..) {
                    edits.push(Edit::DeleteRcpt(bracketed(&r)));
                }
                edits.push(Edit::AddRcpt(bracketed(&address)));
                self.rcpts.push(address);
            }
            _ => {}
        }
    }

    fn prepend_subject(&mut self, prefix: &str) {
        match self.headers.first("Subject").map(str::to_string) {
            Some(old) => {
                let new = format!("{prefix}{old}");
                self.edits
                    .push(Edit::ChangeHeader("Subject".into(), 1, Some(new.clone())));
                if let Some(v) = self.headers.values.get_mut("subject")
                    && let Some(first) = v.first_mut()
                {
                    *first = new;
                }
            }
            None => self
                .headers
                .add(&mut self.edits, "Subject", prefix.trim_end()),
        }
    }
}

/// An SMTP reply text safe for the milter protocol: Postfix reads `%` as
/// an escape (so it is doubled) and a line may not hold CR or LF.
pub fn reply_lines(text: &str) -> Vec<String> {
    let lines: Vec<String> = text
        .split('\n')
        .map(|l| l.trim_end_matches('\r').replace('%', "%%"))
        .map(|l| truncate(&l, 900))
        .take(32)
        .collect();
    if lines.iter().all(|l| l.is_empty()) {
        Vec::new()
    } else {
        lines
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::reply;
    use crate::stages::tests::{eval_at, facts, ruleset};
    use weir_stdlib::Stage;

    #[test]
    fn plan_maps_every_action() {
        let rules = r#"
rule edits {
  then {
    add_header "X-Added" "a"
    set_header "X-Old" "only"
    remove_header "From"
    prepend_subject "[x] "
    add_rcpt "dave@example.test"
    remove_rcpt "carol@example.test"
    tag "t1"
    tag "t2"
    fileinto "Support/Billing"
    log "audit only"
  }
}
"#;
        let rs = ruleset(rules);
        let (d, _) = eval_at(&rs, &facts(), Stage::Body);
        let p = plan(&d, &facts());
        assert_eq!(p.answer, Answer::Accept);
        let ch =
            |n: &str, i: i32, v: Option<&str>| Edit::ChangeHeader(n.into(), i, v.map(Into::into));
        assert_eq!(
            p.edits,
            vec![
                ch("X-Weir-Tags", 1, None),
                Edit::AddHeader("X-Added".into(), "a".into()),
                ch("X-Old", 2, None),
                ch("X-Old", 1, Some("only")),
                ch("From", 1, None),
                ch("Subject", 1, Some("[x] hello")),
                Edit::AddRcpt("<dave@example.test>".into()),
                Edit::DeleteRcpt("<carol@example.test>".into()),
                Edit::AddHeader("X-Weir-Tags".into(), "t1, t2".into()),
                Edit::AddHeader("X-Weir-Folder".into(), "Support/Billing".into()),
            ]
        );
    }

    #[test]
    fn plan_redirect_reject_and_quarantine() {
        let rs =
            ruleset(r#"rule r { then { add_header "X-A" "1\n2"; redirect "eve@example.test" } }"#);
        let (d, _) = eval_at(&rs, &facts(), Stage::Body);
        let p = plan(&d, &facts());
        assert_eq!(
            p.edits[1..],
            [
                Edit::AddHeader("X-A".into(), "1 2".into()),
                Edit::DeleteRcpt("<bob@example.test>".into()),
                Edit::DeleteRcpt("<carol@example.test>".into()),
                Edit::AddRcpt("<eve@example.test>".into()),
            ]
        );
        let rs =
            ruleset(r#"rule r { then { add_header "X-A" "1"; reject 554 "5.7.0" "go away" } }"#);
        let (d, _) = eval_at(&rs, &facts(), Stage::Body);
        let p = plan(&d, &facts());
        assert!(p.edits.is_empty(), "a rejected message is not edited");
        assert_eq!(p.answer, Answer::Reject(reply(554, "5.7.0", "go away")));
        let rs = ruleset(r#"rule r { then { add_header "X-A" "1"; quarantine "held" } }"#);
        let (d, _) = eval_at(&rs, &facts(), Stage::Body);
        let p = plan(&d, &facts());
        assert_eq!(p.answer, Answer::Quarantine("held".into()));
        assert!(p.edits.contains(&Edit::AddHeader("X-A".into(), "1".into())));
    }

    #[test]
    fn reply_text_is_escaped() {
        assert_eq!(reply_lines("100% sure"), vec!["100%% sure"]);
        assert_eq!(reply_lines("a\r\nb"), vec!["a", "b"]);
        assert!(reply_lines("").is_empty());
    }
}
