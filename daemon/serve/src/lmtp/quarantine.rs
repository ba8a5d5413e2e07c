//! Quarantined LMTP copies: written under `state_dir/quarantine/`,
//! released into the Maildir where the decision said, deleted, and pruned
//! when no index entry names them.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::delivery::target;
use super::maildir;
use crate::config::LmtpConfig;
use crate::state::Daemon;
use crate::store::QuarantineEntry;

/// The directory of quarantined LMTP copies.
fn quarantine_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("quarantine")
}

/// How old a quarantine file that no index entry names must be before it
/// is deleted: younger ones may belong to a delivery in flight (the file
/// is written before its entry).
const ORPHAN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Deletes the files in `state_dir/quarantine` that no quarantine entry
/// names (left by a crash between the file and its entry, or by a
/// release cut short) once they are older than [`ORPHAN_AGE`].
pub fn prune_orphaned_copies(daemon: &Daemon) {
    let dir = quarantine_dir(&daemon.config().state_dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    // Without the index (Redis not answering) every file would look
    // orphaned: prune nothing then.
    let Ok(entries_now) = daemon.store.try_quarantine_entries() else {
        return;
    };
    let named: std::collections::HashSet<PathBuf> = entries_now
        .into_iter()
        .filter_map(|e| e.lmtp.map(|h| h.file))
        .collect();
    for entry in entries.flatten() {
        let path = entry.path();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= ORPHAN_AGE));
        if old && !named.contains(&path) {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!("retention: deleted the orphaned {}", path.display()),
                Err(e) => tracing::warn!("retention: cannot delete {}: {e}", path.display()),
            }
        }
    }
}

/// Writes a quarantined copy durably (temporary name, fsync, rename, fsync
/// of the directory); returns its path.
pub(super) fn write_held(state_dir: &Path, id: &str, copy: &[u8]) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    let dir = quarantine_dir(state_dir);
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::File::open(state_dir)?.sync_all()?;
    }
    let tmp = dir.join(format!("{id}.tmp"));
    let file = dir.join(format!("{id}.eml"));
    // Held mail is for the operator alone, whatever the process umask.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(copy)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &file)?;
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(file)
}

/// Releases a quarantined LMTP copy: delivers it where its decision said
/// (folder, flags; headers were edited when it was held), then forgets it.
/// Returns the delivered file.
pub fn release_held(daemon: &Daemon, entry: &QuarantineEntry) -> anyhow::Result<PathBuf> {
    let hold = entry
        .lmtp
        .as_ref()
        .context("not an LMTP quarantine entry")?;
    let config = daemon.config();
    let lmtp = config
        .lmtp
        .as_ref()
        .context("[lmtp] is not configured: cannot deliver")?;
    let copy = read_held(daemon, &entry.queue_id, &hold.file)?;
    let target = target(daemon, hold.folder.as_deref());
    if let Some(warning) = &target.warning {
        tracing::warn!(
            "quarantine: {} <{}>: {warning}",
            entry.queue_id,
            hold.recipient
        );
    }
    let mailbox = mailbox(lmtp, &hold.recipient)?;
    let path = maildir::deliver(
        &mailbox,
        target.dir.as_deref(),
        &hold.flags,
        &maildir::to_lf(&copy),
    )?;
    // Delivered first: a crash now leaves it listed (a second release would
    // deliver it again) rather than lost.
    // Removed from the shared index by exactly one host: another host
    // releasing it at the same moment finds it gone and delivers nothing
    // (it may have delivered already: see docs/serve.md "Several hosts").
    if !daemon.store.remove_quarantine(&entry.queue_id)? {
        tracing::warn!(
            "quarantine: {} was released or deleted meanwhile by another host",
            entry.queue_id
        );
    }
    daemon.store.remove_held_copy(&entry.queue_id)?;
    let _ = std::fs::remove_file(&hold.file);
    tracing::info!(
        "quarantine: {} released to <{}> ({})",
        entry.queue_id,
        hold.recipient,
        path.display()
    );
    Ok(path)
}

/// A held copy: the file on the host that held it, or, on another host
/// sharing a Redis store, the copy kept there.
fn read_held(daemon: &Daemon, id: &str, file: &Path) -> anyhow::Result<Vec<u8>> {
    match std::fs::read(file) {
        Ok(bytes) => Ok(bytes),
        Err(e) => match daemon.store.held_copy(id)? {
            Some(bytes) => Ok(bytes),
            None => Err(anyhow::Error::new(e)
                .context(format!("cannot read the held copy {}", file.display()))),
        },
    }
}

/// The Maildir `[lmtp]` delivers `rcpt`'s copies into.
pub(super) fn mailbox(
    lmtp: &LmtpConfig,
    rcpt: &str,
) -> Result<maildir::Mailbox, maildir::MaildirError> {
    let case = maildir::AddressCase {
        lowercase_local: lmtp.lowercase_local,
    };
    Ok(maildir::Mailbox {
        dir: maildir::mailbox_dir(&lmtp.maildir, rcpt, case)?,
        owner: maildir::Owner {
            uid: lmtp.owner,
            gid: lmtp.group,
        },
    })
}

/// Deletes a quarantined LMTP copy: index entry, then file.
pub fn delete_held(daemon: &Daemon, entry: &QuarantineEntry) -> anyhow::Result<()> {
    let hold = entry
        .lmtp
        .as_ref()
        .context("not an LMTP quarantine entry")?;
    daemon.store.remove_quarantine(&entry.queue_id)?;
    daemon.store.remove_held_copy(&entry.queue_id)?;
    match std::fs::remove_file(&hold.file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove {}: {e}", hold.file.display()),
    }
    tracing::info!("quarantine: {} deleted", entry.queue_id);
    Ok(())
}
