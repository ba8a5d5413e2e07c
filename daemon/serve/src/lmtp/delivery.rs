//! Storing one recipient's copy: into its Maildir, once per message,
//! recipient and folder (the delivery index), or into the quarantine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use weir_compiler::{Decision, Verdict};

use super::quarantine::{mailbox, write_held};
use super::{Delivery, folder, maildir, rewrite};
use crate::audit;
use crate::outbox;
use crate::stages;
use crate::state::{Daemon, unix_now};
use crate::store::{DeliveryRecord, LmtpHold, MessageSummary, QuarantineEntry};

/// Where a copy of a decision filing into `folder` goes, under the
/// configured `[lmtp] utf8_folders`.
pub(super) fn target(daemon: &Daemon, folder: Option<&str>) -> folder::Target {
    let utf8 = daemon
        .config()
        .lmtp
        .as_ref()
        .is_some_and(|l| l.utf8_folders);
    folder::resolve(folder, utf8)
}

/// Where a copy went.
pub(super) enum Stored {
    /// Into the Maildir: the file.
    Delivered(PathBuf),
    /// Into the quarantine: the index entry to record.
    Held(Box<QuarantineEntry>),
}

/// The delivery index key of one recipient's copy: the digest of the
/// message as received (`Origin::digest`), the lower-cased recipient, and
/// the target folder's directory. The directory, not the folder's name, so
/// that `INBOX` and no folder are one, and two spellings of a recipient
/// that the `[lmtp] maildir` pattern keeps apart (its local part is
/// case-sensitive) are two copies. The decision's flags and header edits
/// are not part of it: a copy the MTA sends again is the same copy even if
/// the rules changed meanwhile.
fn delivery_key(message_digest: &str, rcpt: &str, dir: &Path) -> String {
    outbox::digest(&[
        b"lmtp-delivery",
        message_digest.as_bytes(),
        rcpt.trim().to_ascii_lowercase().as_bytes(),
        dir.as_os_str().as_encoded_bytes(),
    ])
}

/// Delivers `content` into the Maildir folder directory `folder` (see
/// `maildir::folder_dir`), once per message, recipient and
/// folder (see the module documentation and [`delivery_key`]): a copy
/// already delivered is found and returned instead; otherwise a new name
/// is recorded in the store (flushed) before the file is written.
fn deliver_once(
    daemon: &Daemon,
    message_digest: &str,
    rcpt: &str,
    mailbox: &maildir::Mailbox,
    folder: Option<&str>,
    flags: &[String],
    content: &[u8],
) -> anyhow::Result<PathBuf> {
    let dir = maildir::folder_dir(&mailbox.dir, folder)?;
    let key = &delivery_key(message_digest, rcpt, &dir);
    if let Some(record) = daemon.store.delivery(key)?
        && let Some(path) =
            maildir::find_delivered(&record.dir, &record.base).with_context(|| {
                format!(
                    "cannot look for {} in {}",
                    record.base,
                    record.dir.display()
                )
            })?
    {
        tracing::info!(
            "<{rcpt}>: the same message was delivered already as {}; not delivered again",
            path.display()
        );
        return Ok(path);
    }
    let base = maildir::new_base_name(content.len());
    let record = DeliveryRecord {
        dir,
        base: base.clone(),
        time: unix_now(),
    };
    daemon.store.put_delivery(key, &record)?;
    Ok(maildir::deliver_as(mailbox, folder, flags, content, &base)?)
}

/// Stores one recipient's copy: into its Maildir (once per message when
/// the digest of the message as received is known: see [`deliver_once`]),
/// or (quarantine) into the quarantine directory, returning the index
/// entry to record. The copy gets `Return-Path:` and `Delivered-To:` on
/// top, as Dovecot's LMTP adds them, and the decision's header edits
/// unless the milter made them already.
pub(super) async fn store_copy(
    daemon: &Arc<Daemon>,
    delivery: &Delivery<'_>,
    decision: &Decision,
    rcpt: &str,
    summary: &MessageSummary,
) -> anyhow::Result<Stored> {
    let (wire, recipients) = delivery.message.context("the message was not kept")?;
    let edited = if delivery.stamped.as_ref().is_some_and(|s| s.edits_applied) {
        wire.to_vec()
    } else {
        // Rewriting copies the whole message: off the async threads.
        let (wire, decision, recipients) = (wire.clone(), decision.clone(), recipients.to_vec());
        tokio::task::spawn_blocking(move || rewrite::delivered_copy(&wire, &decision, &recipients))
            .await
            .context("the copy task failed")?
    };
    let mut copy = trace_fields(&summary.from, rcpt);
    copy.extend_from_slice(&edited);
    let message_digest = delivery.origin.map(|o| o.digest.clone());
    // The held copy keeps the folder's name: it is mapped when released.
    let folder = decision.folder.clone();
    let dir_name = target(daemon, folder.as_deref()).dir;
    let flags = audit::flags(decision);
    let daemon = daemon.clone();
    let rcpt = rcpt.to_string();
    let quarantine = decision.verdict == Verdict::Quarantine;
    let rule = decision.decided_by.clone().unwrap_or_default();
    let reason = decision.quarantine_reason.clone().unwrap_or_default();
    let summary = summary.clone();
    tokio::task::spawn_blocking(move || {
        let config = daemon.config();
        let lmtp = config.lmtp.as_ref().context("[lmtp] is not configured")?;
        // The folder is checked before anything is written, also for a
        // quarantined copy, so a release cannot fail on it later.
        let mailbox = mailbox(lmtp, &rcpt)?;
        maildir::folder_dir(&mailbox.dir, dir_name.as_deref())?;
        if !quarantine {
            let content = maildir::to_lf(&copy);
            let path = match &message_digest {
                Some(digest) => deliver_once(
                    &daemon,
                    digest,
                    &rcpt,
                    &mailbox,
                    dir_name.as_deref(),
                    &flags,
                    &content,
                )?,
                None => maildir::deliver(&mailbox, dir_name.as_deref(), &flags, &content)?,
            };
            return Ok(Stored::Delivered(path));
        }
        let id = format!("L{}", daemon.store.generate_id()?);
        let file = write_held(&daemon.config().state_dir, &id, &copy)?;
        // Shared with the other hosts (Redis), so any of them can release it.
        daemon.store.put_held_copy(&id, &copy)?;
        Ok(Stored::Held(Box::new(QuarantineEntry {
            host: String::new(),
            queue_id: id,
            audit_id: 0,
            rule,
            reason,
            time: unix_now(),
            summary,
            lmtp: Some(LmtpHold {
                recipient: rcpt,
                file,
                folder,
                flags,
            }),
            gone: None,
        })))
    })
    .await
    .context("the delivery task failed")?
}

/// `Return-Path:` (the envelope sender) and `Delivered-To:` (the
/// recipient) as a delivery agent puts them on top of a copy. CR and LF in
/// an address (which the LMTP parser does not let through) would be
/// header injection: they become spaces.
fn trace_fields(from: &str, rcpt: &str) -> Vec<u8> {
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    let from = clean(&stages::strip_brackets(from));
    format!("Return-Path: <{from}>\r\nDelivered-To: {}\r\n", clean(rcpt)).into_bytes()
}
