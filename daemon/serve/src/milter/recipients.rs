//! The end of a message when one daemon is both the milter and the LMTP
//! delivery agent (`[lmtp]` configured): one decision per envelope
//! recipient, carried out once. Sans-IO: [`settle`] turns the decisions
//! into what to tell the MTA and the [`Stamp`] LMTP delivery will follow
//! (`stamp.rs`).
//!
//! What is carried out where:
//! - every recipient refused alike (same verdict and reply): the SMTP
//!   reply, as the milter alone gives it;
//! - every recipient discarded: `SMFIR_DISCARD`;
//! - every recipient quarantined: Postfix's hold queue; the stamp says
//!   `held`, so the copies are delivered once the message is released;
//! - otherwise the message is accepted and LMTP carries out each
//!   recipient's outcome from the stamp (a refused recipient is refused at
//!   delivery, and the MTA bounces it, as with LMTP alone);
//! - header edits: made here when they are the same for every copy that
//!   will be delivered (so mail relayed elsewhere carries them too), else
//!   by LMTP for each copy;
//! - `redirect`, `remove_rcpt` of the recipient itself and `add_rcpt` are
//!   envelope edits here (the MTA forwards); an added recipient that is
//!   delivered locally gets the adding recipient's header edits, in INBOX;
//! - side effects (`notify`, `reply`), `rate()` counts, the audit entry and
//!   metrics: once, by the milter.

use weir_compiler::{Action, Decision, TakenKind, Verdict};

use crate::edits::{self, Answer, Edit, FOLDER_HEADER, TAGS_HEADER};
use crate::stages::{self, MessageFacts};
use crate::stamp::{STAMP_HEADER, Stamp, StampKey, StampedOutcome};

/// The decisions of one message, one per envelope recipient, in order.
#[derive(Debug, Clone)]
pub struct RecipientDecisions<'a> {
    /// `facts.to[i]` was decided by `decisions[i]`.
    pub decisions: &'a [Decision],
    /// The message.
    pub facts: &'a MessageFacts,
}

/// What to do at the end of the message.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    /// One answer for the whole message, with no stamp: `Reject`,
    /// `Tempfail` (all recipients refused alike) or `Discard`.
    Whole(Answer),
    /// Edits (the stamp last), then the answer (`Accept` or `Quarantine`).
    Stamped {
        /// Header and envelope edits, in order.
        edits: Vec<Edit>,
        /// The answer after them.
        answer: Answer,
        /// The stamp, still to be sealed with the audit entry's id.
        stamp: Box<Stamp>,
    },
}

/// The decision all recipients agree on, when they agree exactly
/// (verdict, reply, quarantine reason).
pub fn agreed(decisions: &[Decision]) -> Option<&Decision> {
    let first = decisions.first()?;
    decisions
        .iter()
        .all(|d| {
            d.verdict == first.verdict
                && d.reply == first.reply
                && d.quarantine_reason == first.quarantine_reason
        })
        .then_some(first)
}

/// Whether every recipient is refused alike: then the SMTP reply says it.
pub fn agreed_refusal(decisions: &[Decision]) -> Option<&Decision> {
    agreed(decisions).filter(|d| matches!(d.verdict, Verdict::Reject | Verdict::Tempfail))
}

/// One decision per recipient: `decisions` as they are when there is one
/// per recipient, else the first (a decision for the whole message, made
/// before the recipients were known or by policy) for each.
pub fn expand(decisions: &[Decision], recipients: usize) -> Vec<Decision> {
    if decisions.len() == recipients {
        return decisions.to_vec();
    }
    match decisions.first() {
        Some(first) => vec![first.clone(); recipients],
        None => Vec::new(),
    }
}

/// The decision the audit entry and the metrics show for the whole
/// message: the recipients' verdict when they share one (with the first
/// one's reply and reason), else `accept` (the MTA takes the message;
/// delivery refuses whom it must); every matched rule and tag once.
pub fn message_decision(decisions: &[Decision]) -> Decision {
    let Some(first) = decisions.first() else {
        return crate::stages::policy_decision(
            crate::config::OnError::Accept,
            weir_stdlib::Stage::Body,
            crate::stages::PolicyCause::Error,
        );
    };
    let mut whole = first.clone();
    if decisions.iter().any(|d| d.verdict != first.verdict) {
        whole.verdict = Verdict::Accept;
        whole.reply = None;
        whole.quarantine_reason = None;
        whole.decided_by = None;
    }
    for d in &decisions[1..] {
        for rule in &d.matched {
            if !whole.matched.contains(rule) {
                whole.matched.push(rule.clone());
            }
        }
        for tag in &d.tags {
            if !whole.tags.contains(tag) {
                whole.tags.push(tag.clone());
            }
        }
        whole.score = whole.score.max(d.score);
    }
    whole
}

/// Decides what to tell the MTA (see the module documentation).
/// `queue_id` and `version` go into the stamp.
pub fn settle(message: &RecipientDecisions<'_>, queue_id: &str, version: u64) -> Settled {
    let decisions = message.decisions;
    if let Some(refused) = agreed_refusal(decisions) {
        return Settled::Whole(edits::plan(refused, message.facts).answer);
    }
    if decisions.iter().all(|d| d.verdict == Verdict::Discard) {
        return Settled::Whole(Answer::Discard);
    }
    let held = decisions.iter().all(|d| d.verdict == Verdict::Quarantine);
    let answer = match decisions.first() {
        Some(first) if held => edits::plan(first, message.facts).answer,
        _ => Answer::Accept,
    };
    let mut stamp = Stamp {
        ruleset_version: version,
        queue_id: queue_id.to_string(),
        audit_id: 0,
        from: message.facts.from.clone(),
        edits_applied: false,
        held,
        outcomes: Vec::new(),
        recipients: Vec::new(),
    };
    let (mut edits, applied) = header_edits(message);
    stamp.edits_applied = applied;
    let envelope = envelope_edits(message, &mut stamp);
    edits.extend(envelope);
    Settled::Stamped {
        edits,
        answer,
        stamp: Box::new(stamp),
    }
}

/// The copies that will be delivered: every recipient not refused or
/// discarded.
fn delivered(d: &Decision) -> bool {
    matches!(d.verdict, Verdict::Accept | Verdict::Quarantine)
}

/// The header edits of the milter: those of every delivered copy when
/// they are all the same (then `true`), else only the removal of incoming
/// `X-Weir-*` fields (LMTP makes each copy's edits).
fn header_edits(message: &RecipientDecisions<'_>) -> (Vec<Edit>, bool) {
    let header_only = |d: &Decision| -> Vec<Edit> {
        let mut accepted = d.clone();
        // Edits as for an accepted copy: a held copy gets them on release.
        accepted.verdict = Verdict::Accept;
        edits::plan(&accepted, message.facts)
            .edits
            .into_iter()
            .filter(|e| matches!(e, Edit::AddHeader(..) | Edit::ChangeHeader(..)))
            .collect()
    };
    let mut copies = message
        .decisions
        .iter()
        .filter(|d| delivered(d))
        .map(header_only);
    let first = copies.next().unwrap_or_default();
    if copies.all(|e| e == first) {
        return (first, true);
    }
    let mut edits = Vec::new();
    for name in [TAGS_HEADER, FOLDER_HEADER, STAMP_HEADER] {
        let count = message
            .facts
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count();
        for index in (1..=count).rev() {
            edits.push(Edit::ChangeHeader(
                name.to_string(),
                i32::try_from(index).unwrap_or(i32::MAX),
                None,
            ));
        }
    }
    (edits, false)
}

/// Stamps every recipient's outcome and returns the envelope edits:
/// `redirect` and `remove_rcpt` of the recipient itself remove it,
/// `redirect` and `add_rcpt` add their address (stamped with the adding
/// recipient's copy).
fn envelope_edits(message: &RecipientDecisions<'_>, stamp: &mut Stamp) -> Vec<Edit> {
    let mut edits = Vec::new();
    let mut present: Vec<String> = message
        .facts
        .to
        .iter()
        .map(|r| r.to_ascii_lowercase())
        .collect();
    let mut added = Vec::new();
    for (rcpt, decision) in message.facts.to.iter().zip(message.decisions) {
        let outcome = StampedOutcome::of(decision);
        stamp.push(rcpt, outcome.clone());
        if !delivered(decision) {
            continue;
        }
        for taken in decision.actions.iter().filter(|t| !t.shadow) {
            let TakenKind::Action(action) = &taken.what else {
                continue;
            };
            let (remove_self, add) = match action {
                Action::Redirect(a) => (true, Some(a)),
                Action::AddRcpt(a) => (false, Some(a)),
                Action::RemoveRcpt(a) => {
                    (stages::strip_brackets(a).eq_ignore_ascii_case(rcpt), None)
                }
                _ => continue,
            };
            let lower = rcpt.to_ascii_lowercase();
            if remove_self && present.contains(&lower) {
                edits.push(Edit::DeleteRcpt(format!("<{rcpt}>")));
                present.retain(|r| *r != lower);
            }
            if let Some(address) = add.map(|a| stages::strip_brackets(a))
                && !address.is_empty()
                && !present.contains(&address.to_ascii_lowercase())
            {
                edits.push(Edit::AddRcpt(format!("<{address}>")));
                present.push(address.to_ascii_lowercase());
                added.push((address, outcome.forwarded()));
            }
        }
    }
    for (address, outcome) in added {
        stamp.push(&address, outcome);
    }
    edits
}

/// The edit that adds the sealed stamp.
pub fn stamp_edit(stamp: &Stamp, key: &StampKey) -> Edit {
    Edit::AddHeader(STAMP_HEADER.to_string(), stamp.seal(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_compiler::{Reply, Taken};
    use weir_stdlib::Stage;

    fn decision(verdict: Verdict, actions: Vec<Action>) -> Decision {
        Decision {
            verdict,
            reply: (verdict == Verdict::Reject).then(|| Reply {
                code: 550,
                status: "5.7.1".into(),
                text: "no".into(),
            }),
            quarantine_reason: None,
            decided_by: Some("r".into()),
            stage: Stage::Body,
            matched: vec!["r".into()],
            tags: Vec::new(),
            score: 0.0,
            folder: None,
            actions: actions
                .into_iter()
                .map(|a| Taken {
                    rule: "r".into(),
                    shadow: false,
                    what: TakenKind::Action(a),
                })
                .collect(),
            trace: Vec::new(),
            duplicates: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn facts(to: &[&str]) -> MessageFacts {
        MessageFacts {
            from: "a@example.org".into(),
            to: to.iter().map(|s| s.to_string()).collect(),
            headers: vec![
                ("Subject".into(), "You have won".into()),
                ("X-Weir-Stamp".into(), "forged".into()),
            ],
            ..MessageFacts::default()
        }
    }

    #[test]
    fn common_edits_are_made_once_by_the_milter() {
        let f = facts(&["b@x.test", "c@x.test"]);
        let spam = decision(
            Verdict::Accept,
            vec![Action::PrependSubject("[SPAM] ".into())],
        );
        let ds = [spam.clone(), spam];
        let settled = settle(
            &RecipientDecisions {
                decisions: &ds,
                facts: &f,
            },
            "Q1",
            4,
        );
        let Settled::Stamped {
            edits,
            answer,
            stamp,
        } = settled
        else {
            panic!("stamped")
        };
        assert_eq!(answer, Answer::Accept);
        assert!(stamp.edits_applied);
        assert_eq!(stamp.outcomes.len(), 1);
        assert_eq!(
            edits,
            vec![
                Edit::ChangeHeader("X-Weir-Stamp".into(), 1, None),
                Edit::ChangeHeader("Subject".into(), 1, Some("[SPAM] You have won".into())),
            ]
        );
    }

    #[test]
    fn differing_recipients_are_left_to_delivery() {
        let f = facts(&["b@x.test", "c@x.test", "d@x.test"]);
        let mut filed = decision(Verdict::Accept, vec![Action::Fileinto("Work".into())]);
        filed.folder = Some("Work".into());
        let ds = [
            filed,
            decision(Verdict::Reject, vec![]),
            decision(Verdict::Accept, vec![Action::Redirect("e@y.test".into())]),
        ];
        let Settled::Stamped {
            edits,
            answer,
            stamp,
        } = settle(
            &RecipientDecisions {
                decisions: &ds,
                facts: &f,
            },
            "Q1",
            4,
        )
        else {
            panic!("stamped")
        };
        assert_eq!(answer, Answer::Accept);
        assert!(!stamp.edits_applied);
        assert_eq!(
            edits,
            vec![
                Edit::ChangeHeader("X-Weir-Stamp".into(), 1, None),
                Edit::DeleteRcpt("<d@x.test>".into()),
                Edit::AddRcpt("<e@y.test>".into()),
            ]
        );
        assert_eq!(
            stamp.outcome_for("C@x.test").map(|o| o.verdict.as_str()),
            Some("reject")
        );
        assert_eq!(
            stamp.outcome_for("e@y.test").map(|o| o.verdict.as_str()),
            Some("accept")
        );
    }

    #[test]
    fn agreeing_refusals_and_discards_need_no_stamp() {
        let f = facts(&["b@x.test", "c@x.test"]);
        let ds = [
            decision(Verdict::Reject, vec![]),
            decision(Verdict::Reject, vec![]),
        ];
        let whole = settle(
            &RecipientDecisions {
                decisions: &ds,
                facts: &f,
            },
            "Q",
            1,
        );
        assert!(matches!(whole, Settled::Whole(Answer::Reject(_))));
        let ds = [
            decision(Verdict::Discard, vec![]),
            decision(Verdict::Discard, vec![]),
        ];
        let whole = settle(
            &RecipientDecisions {
                decisions: &ds,
                facts: &f,
            },
            "Q",
            1,
        );
        assert_eq!(whole, Settled::Whole(Answer::Discard));
    }
}
