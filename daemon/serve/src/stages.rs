//! Stage-wise evaluation for the milter (docs/language.md ("Stages")), without changing
//! the compiler: at each milter stage the whole ruleset is evaluated on what
//! is known so far, and the result is kept only when it is *final*, that is
//! when no rule that reads a later stage could have changed it.
//!
//! The rule: rules run in a fixed order (`Ruleset::rules()`). At stage S let
//! `boundary(S)` be the index of the first rule whose stage is later than S.
//! An evaluation at S is final iff it was ended by a rule (a verdict or
//! `stop`, `Decision::decided_by`) placed before `boundary(S)`, or iff there
//! is no rule past the boundary at all. Every rule before the boundary reads
//! only fields already known, so the decision is exactly the one a single
//! evaluation of the complete message would give.
//!
//! `rate()` must count once per message, and only with the key a complete
//! evaluation computes. An early evaluation may run later-stage rules on
//! incomplete data (an empty `from`, say), so [`StagedRates`] counts
//! *tentatively*: it answers as if the hit were counted, remembers the key,
//! and writes the hits to the store only when the decision is final
//! ([`StagedRates::commit`]); a non-final evaluation's hits are dropped
//! ([`StagedRates::discard`]). Every evaluation therefore sees the values a
//! single complete evaluation would see, and the store counts the message
//! once.
//!
//! This module is sans-IO except for the rate store: the milter server
//! (`milter.rs`) feeds it facts and carries out the [`Plan`] it returns.

use std::collections::HashMap;
use std::net::IpAddr;

use weir_compiler::{Action, Decision, RateCounter, Reply, Ruleset, TakenKind, Verdict};
use weir_stdlib::{
    Address, Connection, Envelope, Limits, Message, MessageError, Stage, Transaction,
};

use super::config::OnError;
use super::store::{MessageSummary, Store};

/// Where, in evaluation order, each stage's rules end: `boundary[s]` is the
/// index of the first rule whose stage is later than stage `s`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagePlan {
    boundary: [usize; 6],
    rules: usize,
}

fn stage_index(stage: Stage) -> usize {
    Stage::ALL.iter().position(|s| *s == stage).unwrap_or(5)
}

impl StagePlan {
    /// The plan of a ruleset.
    pub fn new(ruleset: &Ruleset) -> StagePlan {
        let rules = ruleset.rules();
        let mut boundary = [rules.len(); 6];
        for (i, stage) in Stage::ALL.iter().enumerate() {
            if let Some(pos) = rules.iter().position(|r| r.stage > *stage) {
                boundary[i] = pos;
            }
        }
        StagePlan {
            boundary,
            rules: rules.len(),
        }
    }

    /// The index of the first rule whose stage is later than `stage`.
    pub fn boundary(&self, stage: Stage) -> usize {
        self.boundary[stage_index(stage)]
    }

    /// Whether an evaluation at `stage` may be worth running, given that the
    /// last one ran at a stage whose boundary was `last` (`None`: none ran).
    /// It is not when no rule became evaluable since: the rules before the
    /// boundary, and so the verdict, would be the same.
    pub fn worth_evaluating(&self, stage: Stage, last: Option<usize>) -> bool {
        let b = self.boundary(stage);
        match last {
            None => b > 0 || b == self.rules,
            Some(last) => b > last,
        }
    }

    /// Whether `decision`, evaluated at `stage`, is final (see the module
    /// documentation).
    pub fn is_final(&self, ruleset: &Ruleset, decision: &Decision, stage: Stage) -> bool {
        let boundary = self.boundary(stage);
        if boundary == self.rules {
            return true;
        }
        decision.decided_by.as_ref().is_some_and(|rule| {
            ruleset
                .rules()
                .iter()
                .take(boundary)
                .any(|r| &r.name == rule)
        })
    }

    /// Whether some rule reads the body (`body`, `attachments`, `size`):
    /// when none does, the milter asks the MTA to skip the body.
    pub fn needs_body(&self) -> bool {
        self.boundary(Stage::Header) < self.rules
    }
}

/// A [`RateCounter`] over the store that counts tentatively (see the module
/// documentation): hits become durable only on [`StagedRates::commit`].
#[derive(Debug, Clone)]
pub struct StagedRates {
    store: Store,
    /// Keys this message counts, with the largest window asked for each.
    pending: HashMap<String, u64>,
    /// The time of the hits (the message's `now`).
    now: i64,
    committed: bool,
}

impl StagedRates {
    /// Counters for one message.
    pub fn new(store: Store) -> StagedRates {
        StagedRates {
            store,
            pending: HashMap::new(),
            now: 0,
            committed: false,
        }
    }

    /// Forgets the hits of a non-final evaluation.
    pub fn discard(&mut self) {
        if !self.committed {
            self.pending.clear();
        }
    }

    /// Writes the hits of the final evaluation to the store (once).
    pub fn commit(&mut self) {
        if self.committed {
            return;
        }
        self.committed = true;
        for (key, window) in self.pending.drain() {
            self.store.rate_hit(&key, window, self.now, true);
        }
    }
}

impl RateCounter for StagedRates {
    fn hit(&mut self, key: &str, window_secs: u64, now: i64, count: bool) -> u64 {
        if self.committed {
            // Evaluated again after the final decision: see, never count.
            return self.store.rate_hit(key, window_secs, now, false);
        }
        self.now = now;
        let mine = if count {
            let window = self.pending.entry(key.to_string()).or_insert(0);
            *window = (*window).max(window_secs);
            true
        } else {
            self.pending.contains_key(key)
        };
        let seen = self.store.rate_hit(key, window_secs, now, false);
        // As if this message's hit were already in the store.
        if mine { seen + 1 } else { seen }
    }

    fn duplicate(&mut self, scope: &str, key: &str, window_secs: u64, now: i64) -> bool {
        self.store.duplicate_seen(scope, key, window_secs, now)
    }
}

/// What the milter has learnt about the client (connect, HELO, macros).
#[derive(Debug, Clone)]
pub struct ClientFacts {
    /// `client.ip`.
    pub ip: IpAddr,
    /// `client.name` (`""` when the MTA knows no name).
    pub name: String,
    /// `client.port`.
    pub port: u16,
    /// `helo`.
    pub helo: String,
}

impl Default for ClientFacts {
    fn default() -> Self {
        ClientFacts {
            ip: IpAddr::from([0, 0, 0, 0]),
            name: String::new(),
            port: 0,
            helo: String::new(),
        }
    }
}

/// One message as received so far.
#[derive(Debug, Clone, Default)]
pub struct MessageFacts {
    /// `auth.user`.
    pub auth_user: String,
    /// `tls`.
    pub tls: bool,
    /// The envelope sender as given to MAIL FROM (angle brackets removed).
    pub from: String,
    /// The envelope recipients as given to RCPT TO (angle brackets removed).
    pub to: Vec<String>,
    /// Header fields in order: name and value as the MTA sent them.
    pub headers: Vec<(String, String)>,
    /// The body as received (CRLF line ends), while within the size limit.
    pub body: Vec<u8>,
    /// Body bytes received (also those past the limit).
    pub body_size: u64,
}

impl MessageFacts {
    /// The header block as bytes, ending with the empty line.
    pub fn header_block(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            // Postfix sends folded values with bare LF; the message model
            // takes both, but keep the wire form canonical.
            for (i, line) in value.split('\n').enumerate() {
                if i > 0 {
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(line.trim_end_matches('\r').as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The message known at `stage`: empty before the header stage, the
    /// headers with an empty body at the header stage, everything at the
    /// body stage.
    pub fn message(&self, stage: Stage, limits: &Limits) -> Result<Message, MessageError> {
        match stage {
            Stage::Connect | Stage::Helo | Stage::Mail | Stage::Rcpt => Ok(Message::empty()),
            Stage::Header => Message::parse(&self.header_block(), limits),
            Stage::Body => {
                let mut bytes = self.header_block();
                bytes.extend_from_slice(&self.body);
                Message::parse(&bytes, limits)
            }
        }
    }

    /// The transaction to evaluate at `stage`.
    pub fn transaction(
        &self,
        client: &ClientFacts,
        stage: Stage,
        now: i64,
        limits: &Limits,
    ) -> Result<Transaction, MessageError> {
        let to: Vec<Address> = self.to.iter().map(|a| Address::parse(a)).collect();
        Ok(Transaction {
            connection: Connection {
                ip: client.ip,
                name: client.name.clone(),
                port: client.port,
                helo: client.helo.clone(),
                auth_user: self.auth_user.clone(),
                tls: self.tls,
            },
            envelope: Envelope {
                from: Address::parse(&self.from),
                recipient: to.first().cloned(),
                to,
            },
            message: self.message(stage, limits)?,
            now,
        })
    }

    /// What the audit log and the quarantine index keep of the message.
    pub fn summary(&self) -> MessageSummary {
        MessageSummary {
            message_id: message_id(&self.headers),
            from: self.from.clone(),
            to: self.to.clone(),
            subject: first_header(&self.headers, "Subject"),
            size: self.header_block().len() as u64 + self.body_size,
        }
    }
}

/// The first header field called `name` (any case), trimmed, or `""`.
pub fn first_header(headers: &[(String, String)], name: &str) -> String {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

/// The Message-ID without its angle brackets, or `""`.
pub fn message_id(headers: &[(String, String)]) -> String {
    first_header(headers, "Message-ID")
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// Removes the angle brackets (and ESMTP parameters are passed separately
/// by the MTA) from a MAIL FROM or RCPT TO argument.
pub fn strip_brackets(arg: &str) -> String {
    let t = arg.trim();
    t.strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(t)
        .to_string()
}

/// A decision made without the rules: evaluation failed or a limit was
/// exceeded, and the configured policy (`on_error`, `on_limit`) applies.
pub fn policy_decision(policy: OnError, stage: Stage, why: PolicyCause) -> Decision {
    let (verdict, reply) = match (policy, why) {
        (OnError::Accept, _) => (Verdict::Accept, None),
        (OnError::Tempfail, PolicyCause::Error) => (
            Verdict::Tempfail,
            Some(reply(451, "4.3.0", "Mail filter failed; try again later")),
        ),
        (OnError::Reject, PolicyCause::Error) => (
            Verdict::Reject,
            Some(reply(550, "5.3.0", "Mail filter failed")),
        ),
        (OnError::Tempfail, PolicyCause::Limit) => (
            Verdict::Tempfail,
            Some(reply(452, "4.3.4", "Message exceeds the filter's limits")),
        ),
        (OnError::Reject, PolicyCause::Limit) => (
            Verdict::Reject,
            Some(reply(552, "5.3.4", "Message exceeds the filter's limits")),
        ),
    };
    Decision::new(verdict, reply, stage)
}

/// Why a policy decision was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyCause {
    /// Evaluation failed (panic, timeout, an unrecordable decision).
    Error,
    /// `[limits]` exceeded.
    Limit,
}

fn reply(code: u16, status: &str, text: &str) -> Reply {
    Reply {
        code,
        status: status.to_string(),
        text: text.to_string(),
    }
}

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
    let answer = match decision.verdict {
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
    };
    let mut edits = Vec::new();
    if !matches!(answer, Answer::Accept | Answer::Quarantine(_)) {
        return Plan { edits, answer };
    }
    let mut headers = HeaderView::new(&facts.headers);
    let mut rcpts: Vec<String> = facts.to.iter().map(|a| strip_brackets(a)).collect();
    headers.remove(&mut edits, TAGS_HEADER);
    headers.remove(&mut edits, FOLDER_HEADER);
    headers.remove(&mut edits, crate::stamp::STAMP_HEADER);
    for taken in &decision.actions {
        if taken.shadow {
            continue;
        }
        let TakenKind::Action(action) = &taken.what else {
            continue;
        };
        match action {
            Action::AddHeader { name, value } if valid_header_name(name) => {
                headers.add(&mut edits, name, &one_line(value));
            }
            Action::SetHeader { name, value } if valid_header_name(name) => {
                headers.set(&mut edits, name, &one_line(value));
            }
            Action::RemoveHeader { name } if valid_header_name(name) => {
                headers.remove(&mut edits, name);
            }
            Action::PrependSubject(prefix) => {
                let prefix = one_line(prefix);
                match headers.first("Subject").map(str::to_string) {
                    Some(old) => {
                        let new = format!("{prefix}{old}");
                        edits.push(Edit::ChangeHeader("Subject".into(), 1, Some(new.clone())));
                        if let Some(v) = headers.values.get_mut("subject")
                            && let Some(first) = v.first_mut()
                        {
                            *first = new;
                        }
                    }
                    None => headers.add(&mut edits, "Subject", prefix.trim_end()),
                }
            }
            Action::AddRcpt(address) => {
                let address = strip_brackets(address);
                if !address.is_empty() && !rcpts.contains(&address) {
                    edits.push(Edit::AddRcpt(bracketed(&address)));
                    rcpts.push(address);
                }
            }
            Action::RemoveRcpt(address) => {
                let address = strip_brackets(address);
                if rcpts.iter().any(|r| r.eq_ignore_ascii_case(&address)) {
                    for r in rcpts.iter().filter(|r| r.eq_ignore_ascii_case(&address)) {
                        edits.push(Edit::DeleteRcpt(bracketed(r)));
                    }
                    rcpts.retain(|r| !r.eq_ignore_ascii_case(&address));
                }
            }
            Action::Redirect(address) => {
                let address = strip_brackets(address);
                if address.is_empty() {
                    continue;
                }
                for r in rcpts.drain(..) {
                    edits.push(Edit::DeleteRcpt(bracketed(&r)));
                }
                edits.push(Edit::AddRcpt(bracketed(&address)));
                rcpts.push(address);
            }
            // Header edits with an invalid name are dropped (the audit log
            // still shows them); the other actions are not milter edits:
            // tags and folder become headers below, notify/reply/log are
            // recorded in the audit log.
            _ => {}
        }
    }
    if !decision.tags.is_empty() {
        let tags: Vec<String> = decision.tags.iter().map(|t| one_line(t)).collect();
        headers.set(&mut edits, TAGS_HEADER, &tags.join(", "));
    }
    if let Some(folder) = &decision.folder {
        headers.set(&mut edits, FOLDER_HEADER, &one_line(folder));
    }
    Plan { edits, answer }
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
    use std::path::Path;
    use weir_compiler::{EvalOptions, MemoryLoader, compile};

    fn ruleset(text: &str) -> Ruleset {
        let mut loader: MemoryLoader = MemoryLoader::new();
        loader.insert("main.flow", text);
        let compiled = compile(Path::new("main.flow"), &loader);
        let errors: Vec<String> = compiled
            .diagnostics
            .iter()
            .map(|d| compiled.render(d))
            .collect();
        compiled
            .ruleset
            .unwrap_or_else(|| panic!("rules compile: {errors:?}"))
    }

    fn facts() -> MessageFacts {
        MessageFacts {
            from: "alice@example.org".into(),
            to: vec!["bob@example.test".into(), "carol@example.test".into()],
            headers: vec![
                ("From".into(), "alice@example.org".into()),
                ("Subject".into(), "hello".into()),
                ("X-Weir-Tags".into(), "forged".into()),
                ("X-Old".into(), "1".into()),
                ("X-Old".into(), "2".into()),
            ],
            body: b"Hi there\r\n".to_vec(),
            body_size: 10,
            ..MessageFacts::default()
        }
    }

    const RULES: &str = r#"
rule from_blocked { when envelope.from.domain == "blocked.test" then reject 550 "5.7.1" "blocked" }
rule to_blocked { when envelope.to.local == "nobody" then reject 551 "5.7.2" "no such" }
rule subject_hit { when subject contains "spam" then quarantine "spammy" }
rule body_hit { when body contains "virus" then discard }
rule mark { then { tag "seen"; add_header "X-Checked" "yes" } }
"#;

    fn eval_at(rs: &Ruleset, f: &MessageFacts, stage: Stage) -> (Decision, bool) {
        let plan = StagePlan::new(rs);
        let tx = f
            .transaction(&ClientFacts::default(), stage, 1000, &Limits::default())
            .expect("within limits");
        let mut rates = weir_compiler::MemoryRates::default();
        let d = rs.evaluate(&tx, &mut rates, &EvalOptions::default());
        let fin = plan.is_final(rs, &d, stage);
        (d, fin)
    }

    #[test]
    fn boundaries_follow_rule_stages() {
        let rs = ruleset(RULES);
        let plan = StagePlan::new(&rs);
        assert_eq!(plan.boundary(Stage::Connect), 0);
        assert_eq!(plan.boundary(Stage::Mail), 1);
        assert_eq!(plan.boundary(Stage::Rcpt), 2);
        assert_eq!(plan.boundary(Stage::Header), 3);
        assert_eq!(plan.boundary(Stage::Body), 5);
        assert!(plan.needs_body());
        assert!(!plan.worth_evaluating(Stage::Helo, None));
        assert!(plan.worth_evaluating(Stage::Mail, None));
        assert!(!plan.worth_evaluating(Stage::Mail, Some(1)));
        assert!(plan.worth_evaluating(Stage::Rcpt, Some(1)));
    }

    #[test]
    fn an_envelope_reject_is_final_at_mail() {
        let rs = ruleset(RULES);
        let mut f = facts();
        f.from = "x@blocked.test".into();
        let (d, fin) = eval_at(&rs, &f, Stage::Mail);
        assert_eq!(d.verdict, Verdict::Reject);
        assert!(fin);
    }

    #[test]
    fn a_later_rule_keeps_the_decision_open() {
        let rs = ruleset(RULES);
        // At MAIL the rcpt rule sees no recipients: accepted, but not final.
        let mut f = facts();
        f.to = Vec::new();
        let (d, fin) = eval_at(&rs, &f, Stage::Mail);
        assert_eq!(d.verdict, Verdict::Accept);
        assert!(!fin);
        f.to = vec!["nobody@example.test".into()];
        let (d, fin) = eval_at(&rs, &f, Stage::Rcpt);
        assert_eq!(d.verdict, Verdict::Reject);
        assert_eq!(d.reply.as_ref().map(|r| r.code), Some(551));
        assert!(fin);
        // A header rule: decided at EOH, not before.
        let mut f = facts();
        f.headers[1].1 = "buy spam now".into();
        assert!(!eval_at(&rs, &f, Stage::Rcpt).1);
        let (d, fin) = eval_at(&rs, &f, Stage::Header);
        assert_eq!(d.verdict, Verdict::Quarantine);
        assert!(fin);
        // Accepted by default: final only at the body.
        let f = facts();
        assert!(!eval_at(&rs, &f, Stage::Header).1);
        let (d, fin) = eval_at(&rs, &f, Stage::Body);
        assert_eq!(d.verdict, Verdict::Accept);
        assert!(fin);
    }

    #[test]
    fn early_and_complete_evaluations_agree() {
        // Whatever stage a decision becomes final at, it equals the
        // decision of one evaluation of the complete message.
        let rs = ruleset(RULES);
        let variants = [
            ("x@blocked.test", "bob@example.test", "hi", "clean"),
            ("a@ok.test", "nobody@example.test", "hi", "clean"),
            ("a@ok.test", "bob@example.test", "spam!", "clean"),
            ("a@ok.test", "bob@example.test", "hi", "a virus"),
            ("a@ok.test", "bob@example.test", "hi", "clean"),
        ];
        for (from, to, subject, body) in variants {
            let mut f = facts();
            f.from = from.into();
            f.to = vec![to.into()];
            f.headers[1].1 = subject.into();
            f.body = format!("{body}\r\n").into_bytes();
            let complete = eval_at(&rs, &f, Stage::Body).0;
            let early = Stage::ALL
                .iter()
                .map(|s| eval_at(&rs, &f, *s))
                .find(|(_, fin)| *fin)
                .map(|(d, _)| d);
            assert_eq!(
                early.as_ref(),
                Some(&complete),
                "{from} {to} {subject} {body}"
            );
        }
    }

    #[test]
    fn rates_count_once_and_only_when_final() {
        let rules = r#"
rule noisy_sender { when rate(envelope.from.address, 1h) > 2 then tempfail }
rule per_subject { when rate(subject, 1h) > 100 then reject "never" }
"#;
        let rs = ruleset(rules);
        let dir = std::env::temp_dir().join(format!("weir-stages-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).expect("store");
        let plan = StagePlan::new(&rs);
        let mut verdicts = Vec::new();
        for _ in 0..4 {
            let f = facts();
            let mut rates = StagedRates::new(store.clone());
            let mut decided = None;
            for stage in [Stage::Mail, Stage::Rcpt, Stage::Header, Stage::Body] {
                let tx = f
                    .transaction(&ClientFacts::default(), stage, 5000, &Limits::default())
                    .expect("tx");
                let d = rs.evaluate(&tx, &mut rates, &EvalOptions::default());
                if plan.is_final(&rs, &d, stage) {
                    rates.commit();
                    decided = Some(d);
                    break;
                }
                rates.discard();
            }
            verdicts.push(decided.map(|d| d.verdict));
        }
        // Counted once per message: the third message is the third hit.
        assert_eq!(
            verdicts,
            vec![
                Some(Verdict::Accept),
                Some(Verdict::Accept),
                Some(Verdict::Tempfail),
                Some(Verdict::Tempfail)
            ]
        );
        // The subject key was counted with the real subject only: the
        // early evaluations' empty subject left no trace.
        assert_eq!(store.rate_hit("", 3600, 5000, false), 0);
        assert_eq!(store.rate_hit("hello", 3600, 5000, false), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

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

    #[test]
    fn policy_decisions() {
        let d = policy_decision(OnError::Tempfail, Stage::Body, PolicyCause::Error);
        assert_eq!(d.verdict, Verdict::Tempfail);
        assert_eq!(d.reply.map(|r| r.code), Some(451));
        let d = policy_decision(OnError::Reject, Stage::Header, PolicyCause::Limit);
        assert_eq!(d.reply.map(|r| r.code), Some(552));
        let d = policy_decision(OnError::Accept, Stage::Header, PolicyCause::Limit);
        assert_eq!((d.verdict, d.reply), (Verdict::Accept, None));
    }
}
