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

use weir_compiler::{Decision, RateCounter, Reply, Ruleset, Verdict};
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
    /// `deciding[s]`: how many rules before `boundary[s]` can end
    /// evaluation (`RuleInfo::can_decide`).
    deciding: [usize; 6],
}

fn stage_index(stage: Stage) -> usize {
    Stage::ALL.iter().position(|s| *s == stage).unwrap_or(5)
}

impl StagePlan {
    /// The plan of a ruleset.
    pub fn new(ruleset: &Ruleset) -> StagePlan {
        let rules = ruleset.rules();
        let mut boundary = [rules.len(); 6];
        let mut deciding = [0; 6];
        for (i, stage) in Stage::ALL.iter().enumerate() {
            if let Some(pos) = rules.iter().position(|r| r.stage > *stage) {
                boundary[i] = pos;
            }
            deciding[i] = rules[..boundary[i]].iter().filter(|r| r.can_decide).count();
        }
        StagePlan {
            boundary,
            rules: rules.len(),
            deciding,
        }
    }

    /// The index of the first rule whose stage is later than `stage`.
    pub fn boundary(&self, stage: Stage) -> usize {
        self.boundary[stage_index(stage)]
    }

    /// Whether an evaluation at `stage` may be worth running, given that the
    /// last one ran at a stage whose boundary was `last` (`None`: none ran).
    /// It is not when no rule became evaluable since: the rules before the
    /// boundary, and so the verdict, would be the same. Nor is it when
    /// later rules remain and no rule before the boundary can end
    /// evaluation: its decision could not be final (every rule only tags,
    /// scores or edits, say), so it would be thrown away.
    pub fn worth_evaluating(&self, stage: Stage, last: Option<usize>) -> bool {
        let b = self.boundary(stage);
        if b < self.rules && self.deciding[stage_index(stage)] == 0 {
            return false;
        }
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

    /// Whether an evaluation at `stage` can end with a refusal that one at
    /// `after` (an earlier stage; `None`: no evaluation before) could not:
    /// whether a rule that can end evaluation becomes evaluable between
    /// them. When none does, the milter answers `stage` `continue` whatever
    /// the message (the rules before were decided at `after` already), and
    /// may negotiate its reply away (`milter::no_reply_opts`).
    pub fn may_end_at(&self, stage: Stage, after: Option<Stage>) -> bool {
        let before = after.map_or(0, |a| self.deciding[stage_index(a)]);
        self.deciding[stage_index(stage)] > before
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
    /// What the store answered for each `(key, window)`: read once per
    /// message, however many stages evaluate it; the keys known before
    /// evaluation all in one round trip ([`StagedRates::prefetch`]), the
    /// others when first asked.
    seen: HashMap<(String, u64), u64>,
}

impl StagedRates {
    /// Counters for one message.
    pub fn new(store: Store) -> StagedRates {
        StagedRates {
            store,
            pending: HashMap::new(),
            now: 0,
            committed: false,
            seen: HashMap::new(),
        }
    }

    /// Reads, in one round trip, the counts of `keys` not read yet for
    /// this message: the `rate()` keys known before evaluation
    /// (`Ruleset::rate_keys` of each transaction about to be evaluated).
    /// The evaluations that follow find them in `seen`, exactly as if each
    /// had been read when first asked; keys known only mid-evaluation are
    /// still read when asked.
    pub fn prefetch(&mut self, keys: impl IntoIterator<Item = (String, u64)>, now: i64) {
        if self.committed {
            return;
        }
        let mut missing = Vec::new();
        for key in keys {
            if !self.seen.contains_key(&key) && !missing.contains(&key) {
                missing.push(key);
            }
        }
        if missing.is_empty() {
            return;
        }
        let counts = self.store.rate_counts(&missing, now);
        self.seen.extend(missing.into_iter().zip(counts));
    }

    /// [`StagedRates::prefetch`] of the keys `ruleset` can ask of `tx`
    /// before evaluation, for each of `recipients` as `recipient` (each
    /// is evaluated alone), or for `tx` as it is when there are none: one
    /// round trip for all of them. `tx` is left as it was.
    pub fn prefetch_for(
        &mut self,
        ruleset: &Ruleset,
        tx: &mut Transaction,
        recipients: &[Address],
    ) {
        if recipients.is_empty() {
            let keys = ruleset.rate_keys(tx);
            return self.prefetch(keys, tx.now);
        }
        let was = tx.envelope.recipient.take();
        let mut keys = Vec::new();
        for recipient in recipients {
            tx.envelope.recipient = Some(recipient.clone());
            keys.extend(ruleset.rate_keys(tx));
        }
        tx.envelope.recipient = was;
        self.prefetch(keys, tx.now);
    }

    /// Forgets the hits of a non-final evaluation.
    pub fn discard(&mut self) {
        if !self.committed {
            self.pending.clear();
        }
    }

    /// Whether [`StagedRates::commit`] has hits to write to the store
    /// (when not, it does no I/O and needs no blocking thread).
    pub fn has_pending(&self) -> bool {
        !self.committed && !self.pending.is_empty()
    }

    /// Writes the hits of the final evaluation to the store (once).
    pub fn commit(&mut self) {
        if self.committed {
            return;
        }
        self.committed = true;
        if self.pending.is_empty() {
            return;
        }
        let hits: Vec<(String, u64)> = self.pending.drain().collect();
        self.store.rate_hits(&hits, self.now);
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
        let store = &self.store;
        let seen = *self
            .seen
            .entry((key.to_string(), window_secs))
            .or_insert_with(|| store.rate_hit(key, window_secs, now, false));
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
            classes: Default::default(),
        })
    }

    /// The length of [`MessageFacts::header_block`], without building it.
    pub fn header_block_len(&self) -> u64 {
        let fields: usize = self
            .headers
            .iter()
            .map(|(name, value)| {
                let lines = value.split('\n');
                let text: usize = lines.map(|l| l.trim_end_matches('\r').len() + 2).sum();
                name.len() + 2 + text
            })
            .sum();
        (fields + 2) as u64
    }

    /// The message's size in bytes so far: header block and body.
    pub fn size(&self) -> u64 {
        self.header_block_len() + self.body_size
    }

    /// What the audit log and the quarantine index keep of the message.
    pub fn summary(&self) -> MessageSummary {
        MessageSummary {
            message_id: message_id(&self.headers),
            from: self.from.clone(),
            to: self.to.clone(),
            subject: first_header(&self.headers, "Subject"),
            size: self.size(),
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

/// A reply from its parts.
pub(crate) fn reply(code: u16, status: &str, text: &str) -> Reply {
    Reply {
        code,
        status: status.to_string(),
        text: text.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::Path;
    use weir_compiler::{EvalOptions, MemoryLoader, compile};

    pub(crate) fn ruleset(text: &str) -> Ruleset {
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

    pub(crate) fn facts() -> MessageFacts {
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

    pub(crate) fn eval_at(rs: &Ruleset, f: &MessageFacts, stage: Stage) -> (Decision, bool) {
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
    fn a_stage_whose_rules_cannot_decide_is_not_evaluated() {
        // Tags only (as the generated benchmark rules): an evaluation at the
        // end of the headers could never be final, so only the body's runs.
        let rs = ruleset(
            r#"
rule h { when subject contains "a" then tag "h" }
rule b { when body contains "b" then tag "b" }
rule s priority 200 shadow { when subject contains "c" then reject "no" }
"#,
        );
        let plan = StagePlan::new(&rs);
        assert!(!plan.worth_evaluating(Stage::Mail, None));
        assert!(!plan.worth_evaluating(Stage::Header, None));
        assert!(plan.worth_evaluating(Stage::Body, None));
        // A header rule that can stop makes the header stage worth it.
        let rs = ruleset(
            r#"
rule h { when subject contains "a" then { tag "h"; stop } }
rule b { when body contains "b" then tag "b" }
"#,
        );
        let plan = StagePlan::new(&rs);
        assert!(plan.worth_evaluating(Stage::Header, None));
        // With nothing left for a later stage, a stage is evaluated
        // whatever its rules do (its decision is final).
        let rs = ruleset(r#"rule h { when subject contains "a" then tag "h" }"#);
        assert!(StagePlan::new(&rs).worth_evaluating(Stage::Header, None));
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
    fn the_header_block_length_is_counted_without_building_it() {
        let mut f = facts();
        f.headers
            .push(("X-Folded".into(), "one\r\n\ttwo\n\tthree".into()));
        f.headers.push(("X-Empty".into(), String::new()));
        assert_eq!(f.header_block_len(), f.header_block().len() as u64);
        assert_eq!(f.size(), f.header_block().len() as u64 + 10);
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
