//! When an auto-reply is skipped, decided where the reply is taken so that
//! `weir run`, `weir test` and the daemon agree (RFC 3834, RFC 5230 §4.5
//! and §4.6, docs/language.md "Auto-replies"). The reason is the value of
//! `"skipped"` in the JSON action.

use weir_stdlib::Transaction;

use crate::decision::{Action, Decision, TakenKind, Verdict};

/// Why a reply to this message is never sent, whatever the verdict: the
/// sender cannot or must not get one, or neither the recipient nor one of
/// the template's `addresses` was addressed openly (`To`, `Cc`, `Bcc`,
/// `Resent-To`), so the message came through a list or an alias.
pub(crate) fn message_reason(tx: &Transaction, addresses: &[String]) -> Option<&'static str> {
    let sender = &tx.envelope.from;
    if sender.address.is_empty() {
        return Some("null-sender");
    }
    let local = sender.local.to_ascii_lowercase();
    if local == "mailer-daemon" || local.starts_with("owner-") || local.ends_with("-request") {
        return Some("mailer-daemon");
    }
    for (name, value) in tx.message.headers() {
        let value = value.trim().to_ascii_lowercase();
        if name.len() > 5 && name[..5].eq_ignore_ascii_case("list-") {
            return Some("list");
        }
        if name.eq_ignore_ascii_case("Precedence")
            && matches!(value.as_str(), "bulk" | "list" | "junk")
        {
            return Some("precedence");
        }
        if name.eq_ignore_ascii_case("Auto-Submitted")
            && value.split(';').next().map(str::trim) != Some("no")
        {
            return Some("auto-submitted");
        }
    }
    if !addressed(tx, addresses) {
        return Some("not-addressed");
    }
    None
}

/// Whether the recipient (`recipient`) or one of `addresses` is in `To`,
/// `Cc`, `Bcc` or `Resent-To`.
fn addressed(tx: &Transaction, addresses: &[String]) -> bool {
    let mut mine: Vec<String> = addresses.iter().map(|a| a.to_lowercase()).collect();
    if let Some(recipient) = &tx.envelope.recipient {
        mine.push(recipient.address.to_lowercase());
    }
    mine.retain(|a| !a.is_empty());
    ["To", "Cc", "Bcc", "Resent-To"].iter().any(|h| {
        tx.message
            .addresses(h)
            .iter()
            .any(|a| mine.contains(&a.address.to_lowercase()))
    })
}

/// Why no reply goes out with this verdict: replies answer mail that was
/// delivered, never mail dropped, held, refused or deferred (backscatter).
fn verdict_reason(verdict: Verdict) -> Option<&'static str> {
    match verdict {
        Verdict::Accept => None,
        Verdict::Discard => Some("discarded"),
        Verdict::Quarantine => Some("quarantined"),
        Verdict::Reject => Some("refused"),
        Verdict::Tempfail => Some("deferred"),
    }
}

/// Marks every reply of a finished decision that its verdict forbids.
pub(crate) fn apply_verdict(decision: &mut Decision) {
    let Some(reason) = verdict_reason(decision.verdict) else {
        return;
    };
    for taken in &mut decision.actions {
        if let TakenKind::Action(Action::Reply { skipped, .. }) = &mut taken.what
            && skipped.is_none()
        {
            *skipped = Some(reason.to_string());
        }
    }
}
