//! Maildir++ delivery: where a recipient's mailbox is (`[lmtp] maildir`
//! with `{domain}`, `{local}`, `{detail}`), which directory a `fileinto`
//! folder is, and a durable write of one message into it.
//!
//! Durability (the LMTP `250` is sent only after this returns): the file is
//! written under `tmp/`, `fsync`ed, renamed into `new/` (or `cur/` when it
//! carries flags), and the directory it was renamed into is `fsync`ed, as
//! are directories created on the way. A crash leaves at most a stray file
//! in `tmp/`, which mail readers ignore.
//!
//! Nothing taken from mail may leave the configured root: the recipient's
//! address parts are checked before they are put in the path, and folder
//! directory names (mapped from `fileinto` folders by `folder.rs`) are
//! checked to be one component under the mailbox ([`folder_dir`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a message cannot be delivered where the rules asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaildirError {
    /// The recipient's address cannot name a mailbox directory.
    BadAddress(String),
    /// A `fileinto` folder name that is not allowed.
    BadFolder(String),
    /// The file system refused.
    Io(String),
}

impl std::fmt::Display for MaildirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaildirError::BadAddress(why) => write!(f, "recipient address: {why}"),
            MaildirError::BadFolder(why) => write!(f, "folder: {why}"),
            MaildirError::Io(why) => write!(f, "maildir: {why}"),
        }
    }
}

impl std::error::Error for MaildirError {}

impl From<io::Error> for MaildirError {
    fn from(e: io::Error) -> Self {
        MaildirError::Io(e.to_string())
    }
}

/// One path component taken from an address: not empty, not `.` or `..`,
/// no `/`, `\`, NUL, control characters, or `{`/`}` (which could read as
/// a placeholder).
fn safe_component(what: &str, text: &str) -> Result<(), MaildirError> {
    if text.is_empty() {
        return Err(MaildirError::BadAddress(format!("empty {what}")));
    }
    if text == "." || text == ".." || text.starts_with('.') {
        return Err(MaildirError::BadAddress(format!(
            "{what} {text:?} starts with a dot"
        )));
    }
    if text
        .chars()
        .any(|c| matches!(c, '/' | '\\' | '{' | '}') || c.is_control())
    {
        return Err(MaildirError::BadAddress(format!(
            "{what} {text:?} holds '/', '\\', '{{', '}}' or a control character"
        )));
    }
    Ok(())
}

/// How the recipient's address fills `[lmtp] maildir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressCase {
    /// `[lmtp] lowercase_local`: `{local}` and `{detail}` lower-cased, so
    /// `Bob@` and `bob@` share a Maildir.
    pub lowercase_local: bool,
}

/// The recipient's mailbox (its INBOX Maildir): `pattern` with `{domain}`
/// (lower-cased), `{local}` (without `+detail`) and `{detail}` replaced in
/// one pass, so text put in never reads as a placeholder. An address that
/// could escape the pattern's fixed directory (the part before the first
/// placeholder) is refused, symbolic links below it included.
pub fn mailbox_dir(
    pattern: &str,
    recipient: &str,
    case: AddressCase,
) -> Result<PathBuf, MaildirError> {
    let address = recipient.trim();
    let Some((local_part, domain)) = address.rsplit_once('@') else {
        return Err(MaildirError::BadAddress(format!(
            "{address:?} has no domain"
        )));
    };
    let (local, detail) = match local_part.split_once('+') {
        Some((l, d)) => (l, d),
        None => (local_part, ""),
    };
    let domain = domain.to_ascii_lowercase();
    let (local, detail) = if case.lowercase_local {
        (local.to_lowercase(), detail.to_lowercase())
    } else {
        (local.to_string(), detail.to_string())
    };
    safe_component("domain", &domain)?;
    safe_component("local part", &local)?;
    if !detail.is_empty() {
        safe_component("detail", &detail)?;
    }
    let path = PathBuf::from(substitute(pattern, &domain, &local, &detail));
    ensure_under(&fixed_dir(pattern), &path)?;
    Ok(path)
}

/// `pattern` with its placeholders replaced, left to right in one pass;
/// an unknown `{word}` stays as written.
fn substitute(pattern: &str, domain: &str, local: &str, detail: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + domain.len() + local.len());
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let value = [
            ("{domain}", domain),
            ("{local}", local),
            ("{detail}", detail),
        ]
        .into_iter()
        .find(|(name, _)| after.starts_with(name));
        match value {
            Some((name, value)) => {
                out.push_str(value);
                rest = &after[name.len()..];
            }
            None => {
                out.push('{');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The directory every mailbox of `pattern` lies under: the pattern up to
/// the last `/` before its first placeholder.
fn fixed_dir(pattern: &str) -> PathBuf {
    let before = pattern.find('{').map_or(pattern, |i| &pattern[..i]);
    match before.rfind('/') {
        Some(0) => PathBuf::from("/"),
        Some(i) => PathBuf::from(&before[..i]),
        None => PathBuf::from("."),
    }
}

/// Refuses `path` unless it stays under `root`: no `..` component, and the
/// deepest part of it that exists, with symbolic links resolved, is `root`
/// (resolved) or below it.
fn ensure_under(root: &Path, path: &Path) -> Result<(), MaildirError> {
    use std::path::Component;
    let escape = || {
        MaildirError::BadAddress(format!(
            "the mailbox {} would leave {}",
            path.display(),
            root.display()
        ))
    };
    if path.components().any(|c| c == Component::ParentDir) || !path.starts_with(root) {
        return Err(escape());
    }
    let Ok(real_root) = root.canonicalize() else {
        // Nothing under a root that does not exist yet can be a link.
        return Ok(());
    };
    let mut existing = path;
    while !existing.exists() {
        match existing.parent() {
            Some(parent) => existing = parent,
            None => return Ok(()),
        }
    }
    let real = existing.canonicalize()?;
    if real.starts_with(&real_root) {
        Ok(())
    } else {
        Err(escape())
    }
}

/// Checks a Maildir++ directory name (`.Folder.Sub`, as `folder.rs`
/// maps a `fileinto` folder) before it is joined to a mailbox path: it
/// must start with `.`, be one path component (no `/`, not `.` or `..`),
/// hold no control character and be at most 255 bytes.
fn check_dir_name(name: &str) -> Result<(), MaildirError> {
    let bad = !name.starts_with('.')
        || name == "."
        || name == ".."
        || name.len() > weir_stdlib::folder::MAX_DIR_NAME
        || name.chars().any(|c| c == '/' || c.is_control());
    if bad {
        return Err(MaildirError::BadFolder(format!(
            "{name:?} is not a Maildir++ folder directory"
        )));
    }
    Ok(())
}

/// The directory of a folder under `mailbox`: `dir_name` is its Maildir++
/// directory name (see `folder.rs`), `None` for INBOX.
pub fn folder_dir(mailbox: &Path, dir_name: Option<&str>) -> Result<PathBuf, MaildirError> {
    match dir_name {
        None => Ok(mailbox.to_path_buf()),
        Some(name) => {
            check_dir_name(name)?;
            Ok(mailbox.join(name))
        }
    }
}

/// The Maildir info letters of IMAP system flags, in the order Maildir
/// wants them (ASCII); flags with no letter (keywords) are left out.
pub fn info_flags(flags: &[String]) -> String {
    let mut letters: Vec<char> = flags
        .iter()
        .filter_map(|f| match f.trim().to_ascii_lowercase().as_str() {
            "\\seen" | "seen" => Some('S'),
            "\\answered" | "answered" => Some('R'),
            "\\flagged" | "flagged" => Some('F'),
            "\\deleted" | "deleted" => Some('T'),
            "\\draft" | "draft" => Some('D'),
            _ => None,
        })
        .collect();
    letters.sort_unstable();
    letters.dedup();
    letters.into_iter().collect()
}

/// Who the files and directories Weir creates in a Maildir belong to
/// (`[lmtp] owner` and `group`, as Dovecot's `mail_uid` and `mail_gid`);
/// `None`: the daemon's own user or group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owner {
    /// The user id.
    pub uid: Option<u32>,
    /// The group id.
    pub gid: Option<u32>,
}

impl Owner {
    /// Gives `path` (just created by Weir) to the owner.
    fn apply(self, path: &Path) -> io::Result<()> {
        if self.uid.is_none() && self.gid.is_none() {
            return Ok(());
        }
        std::os::unix::fs::chown(path, self.uid, self.gid)
    }
}

/// A recipient's Maildir: its directory ([`mailbox_dir`]) and who what is
/// created in it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The Maildir's directory.
    pub dir: PathBuf,
    /// The owner of new files and directories.
    pub owner: Owner,
}

/// Creates `dir` (and its parents), syncing each parent whose entries
/// changed so the new directory survives a crash; each directory created
/// is given to `owner`.
fn create_dir_durable(dir: &Path, owner: Owner) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
    {
        create_dir_durable(parent, owner)?;
    }
    // 0700, as Dovecot makes them: mail is for its owner alone.
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        // Another delivery created it meanwhile.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    owner.apply(dir)?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

/// Makes `dir` a Maildir (`cur`, `new`, `tmp`); `subfolder` also writes the
/// Maildir++ `maildirfolder` marker.
fn ensure_maildir(dir: &Path, subfolder: bool, owner: Owner) -> io::Result<()> {
    for sub in ["cur", "new", "tmp"] {
        create_dir_durable(&dir.join(sub), owner)?;
    }
    if subfolder {
        let marker = dir.join("maildirfolder");
        if !marker.exists() {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&marker)?
                .sync_all()?;
            owner.apply(&marker)?;
            sync_dir(dir)?;
        }
    }
    Ok(())
}

/// A unique Maildir file name: `SECONDS.M<micros>P<pid>Q<counter>.HOST`.
fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
        // `/` and `:` have a meaning in Maildir names.
        .replace('/', "\\057")
        .replace(':', "\\072");
    format!(
        "{}.M{}P{}Q{}.{host}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The base name a new file for `content_len` bytes gets
/// (`UNIQUE,S=SIZE`); chosen before the write so the delivery index can
/// record it first (`lmtp/mod.rs`).
pub fn new_base_name(content_len: usize) -> String {
    format!("{},S={content_len}", unique_name())
}

/// Delivers `content` (the message as stored: LF line ends) into the
/// folder directory `folder` (see [`folder_dir`]) of the Maildir `mailbox`, with `flags`; returns the file's path once it
/// is durable.
pub fn deliver(
    mailbox: &Mailbox,
    folder: Option<&str>,
    flags: &[String],
    content: &[u8],
) -> Result<PathBuf, MaildirError> {
    deliver_as(
        mailbox,
        folder,
        flags,
        content,
        &new_base_name(content.len()),
    )
}

/// [`deliver`] under the base name `base` (from [`new_base_name`]).
pub fn deliver_as(
    mailbox: &Mailbox,
    folder: Option<&str>,
    flags: &[String],
    content: &[u8],
    base: &str,
) -> Result<PathBuf, MaildirError> {
    let dir = folder_dir(&mailbox.dir, folder)?;
    ensure_maildir(&mailbox.dir, false, mailbox.owner)?;
    if dir != mailbox.dir {
        ensure_maildir(&dir, true, mailbox.owner)?;
    }
    let tmp = dir.join("tmp").join(base);
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let written = mailbox
            .owner
            .apply(&tmp)
            .and_then(|()| file.write_all(content))
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
    }
    let info = info_flags(flags);
    let (sub, name) = if info.is_empty() {
        ("new", base.to_string())
    } else {
        ("cur", format!("{base}:2,{info}"))
    };
    let target = dir.join(sub).join(name);
    if let Err(e) = fs::rename(&tmp, &target) {
        let _ = fs::remove_file(&tmp);
        return Err(e.into());
    }
    sync_dir(&dir.join(sub))?;
    Ok(target)
}

/// The delivered file with base name `base` in the Maildir directory `dir`,
/// if there is one: in `new/`, or in `cur/` where mail readers move it and
/// append `:2,FLAGS` (some also add `,W=SIZE` to the base). `tmp/` is not
/// looked at: a file there was never delivered.
pub fn find_delivered(dir: &Path, base: &str) -> io::Result<Option<PathBuf>> {
    let exact = dir.join("new").join(base);
    if exact.is_file() {
        return Ok(Some(exact));
    }
    for sub in ["new", "cur"] {
        let entries = match fs::read_dir(dir.join(sub)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(base)) else {
                continue;
            };
            if rest.is_empty() || rest.starts_with(':') || rest.starts_with(',') {
                return Ok(Some(entry.path()));
            }
        }
    }
    Ok(None)
}

/// Converts CRLF line ends (the LMTP wire form) to LF (the Maildir form).
pub fn to_lf(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire.len());
    let mut i = 0;
    while i < wire.len() {
        if wire[i] == b'\r' && wire.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(wire[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_paths_expand_and_refuse_escapes() {
        let p = "/m/{domain}/{local}";
        let keep = AddressCase {
            lowercase_local: false,
        };
        let lower = AddressCase {
            lowercase_local: true,
        };
        assert_eq!(
            mailbox_dir(p, "Bob+lists@Example.TEST", keep).unwrap(),
            PathBuf::from("/m/example.test/Bob")
        );
        assert_eq!(
            mailbox_dir(p, "Bob+lists@Example.TEST", lower).unwrap(),
            PathBuf::from("/m/example.test/bob")
        );
        assert_eq!(
            mailbox_dir("/m/{local}-{detail}", "a+x@d", keep).unwrap(),
            PathBuf::from("/m/a-x")
        );
        for bad in [
            "../x@d",
            "a@..",
            "a/b@d",
            "x@",
            "@d",
            "nodomain",
            "a+../b@d",
            "{detail}..@{detail}..",
            "a+{domain}@d",
            "{local}@d",
        ] {
            assert!(mailbox_dir(p, bad, keep).is_err(), "{bad}");
        }
    }

    #[test]
    fn placeholders_are_replaced_in_one_pass() {
        assert_eq!(
            substitute("/m/{domain}/{local}/{x}", "{local}", "..", ""),
            "/m/{local}/../{x}"
        );
        assert_eq!(
            fixed_dir("/var/mail/{domain}/{local}"),
            PathBuf::from("/var/mail")
        );
        assert_eq!(fixed_dir("/var/mail/u-{local}"), PathBuf::from("/var/mail"));
        assert_eq!(fixed_dir("/{local}"), PathBuf::from("/"));
    }

    #[test]
    fn a_symbolic_link_out_of_the_root_is_refused() {
        let dir = std::env::temp_dir().join(format!("weir-maildir-link-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("root")).unwrap();
        fs::create_dir_all(dir.join("outside")).unwrap();
        std::os::unix::fs::symlink(dir.join("outside"), dir.join("root/evil.test")).unwrap();
        let pattern = format!("{}/root/{{domain}}/{{local}}", dir.display());
        let case = AddressCase {
            lowercase_local: true,
        };
        assert!(mailbox_dir(&pattern, "a@good.test", case).is_ok());
        assert!(mailbox_dir(&pattern, "a@evil.test", case).is_err());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn folder_directories_stay_one_component_under_the_mailbox() {
        let m = Path::new("/m/x");
        assert_eq!(folder_dir(m, None).unwrap(), PathBuf::from("/m/x"));
        assert_eq!(
            folder_dir(m, Some(".Support.Billing")).unwrap(),
            PathBuf::from("/m/x/.Support.Billing")
        );
        for bad in ["..", ".", "x", ".a/../b", "/abs", ".x\ny"] {
            assert!(folder_dir(m, Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_become_sorted_info_letters() {
        let flags = ["\\Seen", "\\Flagged", "$Junk", "\\Answered", "\\Seen"].map(String::from);
        assert_eq!(info_flags(&flags), "FRS");
    }

    #[test]
    fn delivery_writes_new_or_cur_and_marks_subfolders() {
        let dir = std::env::temp_dir().join(format!("weir-maildir-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mailbox = Mailbox {
            dir: dir.clone(),
            owner: Owner::default(),
        };
        let a = deliver(&mailbox, None, &[], b"Subject: a\n\nx\n").unwrap();
        assert_eq!(a.parent().unwrap(), dir.join("new"));
        let b = deliver(&mailbox, Some(".Work.Urgent"), &["\\Seen".into()], b"x\n").unwrap();
        assert_eq!(b.parent().unwrap(), dir.join(".Work.Urgent/cur"));
        assert!(b.to_string_lossy().ends_with(":2,S"));
        assert!(dir.join(".Work.Urgent/maildirfolder").exists());
        assert_eq!(fs::read(&b).unwrap(), b"x\n");
        assert!(fs::read_dir(dir.join("tmp")).unwrap().next().is_none());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn new_files_and_directories_go_to_the_configured_owner() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("weir-maildir-owner-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        // As root any owner can be given; otherwise the process's own
        // group is the one a user may give away to.
        let me = fs::metadata("/proc/self").unwrap();
        let (uid, gid) = if me.uid() == 0 {
            (4242, 4343)
        } else {
            (me.uid(), me.gid())
        };
        let mailbox = Mailbox {
            dir: dir.join("example.com/bob"),
            owner: Owner {
                uid: Some(uid),
                gid: Some(gid),
            },
        };
        let file = deliver(&mailbox, Some(".Work"), &[], b"x\n").unwrap();
        for path in [
            file.clone(),
            dir.join("example.com"),
            dir.join("example.com/bob/new"),
            dir.join("example.com/bob/.Work"),
            dir.join("example.com/bob/.Work/maildirfolder"),
        ] {
            let m = fs::metadata(&path).unwrap();
            assert_eq!((m.uid(), m.gid()), (uid, gid), "{}", path.display());
        }
        assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn delivered_files_are_found_in_new_or_cur_but_not_tmp() {
        let dir = std::env::temp_dir().join(format!("weir-maildir-find-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let base = new_base_name(2);
        assert_eq!(find_delivered(&dir, &base).unwrap(), None, "no Maildir yet");
        let mailbox = Mailbox {
            dir: dir.clone(),
            owner: Owner::default(),
        };
        let path = deliver_as(&mailbox, None, &[], b"x\n", &base).unwrap();
        assert_eq!(find_delivered(&dir, &base).unwrap(), Some(path.clone()));
        // A mail reader moved it to cur/ with flags.
        let moved = dir.join("cur").join(format!("{base}:2,S"));
        fs::rename(&path, &moved).unwrap();
        assert_eq!(find_delivered(&dir, &base).unwrap(), Some(moved.clone()));
        fs::remove_file(&moved).unwrap();
        // Left in tmp/ by a crash: not delivered.
        fs::write(dir.join("tmp").join(&base), b"x\n").unwrap();
        assert_eq!(find_delivered(&dir, &base).unwrap(), None);
        // A longer name sharing the prefix is another file.
        fs::write(dir.join("new").join(format!("{base}0")), b"x\n").unwrap();
        assert_eq!(find_delivered(&dir, &base).unwrap(), None);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn crlf_becomes_lf() {
        assert_eq!(to_lf(b"a\r\nb\rc\r\n"), b"a\nb\rc\n");
    }
}
