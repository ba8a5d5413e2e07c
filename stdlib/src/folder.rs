//! How a `fileinto` folder name becomes a Maildir++ directory, the way
//! Dovecot stores it (docs/language.md, "Folder names").
//!
//! One rule, shared by `weir check` (a literal folder that cannot be
//! stored is an error) and the LMTP server (a folder built at run time
//! that cannot be stored goes to INBOX with a warning):
//!
//! 1. Surrounding whitespace is dropped; `""` and `INBOX` (any case) are
//!    INBOX.
//! 2. A leading `INBOX.` (any case) means Dovecot's `.`-separated spelling:
//!    it is dropped and `.` separates levels in the rest. Otherwise a
//!    leading `INBOX/` is dropped and `/` separates levels.
//! 3. Inside a level, the characters Maildir++ cannot hold are escaped as
//!    Dovecot's listescape plugin does (`\` + two lower-case hex digits):
//!    `.` is `\2e`, `/` is `\2f`, `\` is `\5c`, and a leading `~` is
//!    `\7e`.
//! 4. Each level is encoded in IMAP's modified UTF-7 (RFC 3501 §5.1.3),
//!    as Dovecot's Maildir++ layout stores names, unless UTF-8 names are
//!    asked for (`[lmtp] utf8_folders = true`).
//! 5. The directory is `.` + the levels joined with `.`.
//!
//! A name cannot be stored when a level is empty (`a//b`, `Archive/`),
//! holds a control character, or when the directory name is longer than
//! [`MAX_DIR_NAME`] bytes.

use base64::Engine as _;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};

/// The longest Maildir++ directory name, in bytes (`NAME_MAX` of common
/// file systems: the whole hierarchy is one directory name).
pub const MAX_DIR_NAME: usize = 255;

/// Why a folder name cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderError {
    /// A level of the name is empty.
    EmptyLevel,
    /// A level holds a control character.
    ControlCharacter,
    /// The directory name would be longer than [`MAX_DIR_NAME`] bytes.
    TooLong(usize),
}

impl std::fmt::Display for FolderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FolderError::EmptyLevel => write!(f, "a level of the name is empty"),
            FolderError::ControlCharacter => write!(f, "it holds a control character"),
            FolderError::TooLong(n) => write!(
                f,
                "its Maildir++ directory name would be {n} bytes, over the limit of {MAX_DIR_NAME}"
            ),
        }
    }
}

impl std::error::Error for FolderError {}

/// The Maildir++ directory (`.Folder.Sub`) of a `fileinto` folder, or
/// `None` for INBOX; `utf8` keeps non-ASCII names in UTF-8 instead of
/// modified UTF-7.
pub fn maildir_name(folder: &str, utf8: bool) -> Result<Option<String>, FolderError> {
    let folder = folder.trim();
    if folder.is_empty() || folder.eq_ignore_ascii_case("INBOX") {
        return Ok(None);
    }
    let (rest, separator) = match strip_prefix_ignore_case(folder, "INBOX.") {
        Some(rest) => (rest, '.'),
        None => (
            strip_prefix_ignore_case(folder, "INBOX/").unwrap_or(folder),
            '/',
        ),
    };
    let mut name = String::new();
    for level in rest.split(separator) {
        if level.is_empty() {
            return Err(FolderError::EmptyLevel);
        }
        if level.chars().any(char::is_control) {
            return Err(FolderError::ControlCharacter);
        }
        let escaped = escape_level(level);
        name.push('.');
        if utf8 {
            name.push_str(&escaped);
        } else {
            name.push_str(&modified_utf7(&escaped));
        }
    }
    if name.len() > MAX_DIR_NAME {
        return Err(FolderError::TooLong(name.len()));
    }
    Ok(Some(name))
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Dovecot's listescape: the characters a Maildir++ level cannot hold.
fn escape_level(level: &str) -> String {
    let mut out = String::with_capacity(level.len());
    for (i, c) in level.chars().enumerate() {
        match c {
            '.' | '/' | '\\' => out.push_str(&format!("\\{:02x}", c as u32)),
            '~' if i == 0 => out.push_str("\\7e"),
            c => out.push(c),
        }
    }
    out
}

/// IMAP's modified UTF-7 (RFC 3501 §5.1.3): printable ASCII as itself
/// (`&` as `&-`), any run of other characters as `&` + the modified
/// base64 of its UTF-16BE + `-`.
fn modified_utf7(text: &str) -> String {
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::IMAP_MUTF7,
        GeneralPurposeConfig::new().with_encode_padding(false),
    );
    let mut out = String::with_capacity(text.len());
    let mut run: Vec<u8> = Vec::new();
    let flush = |run: &mut Vec<u8>, out: &mut String| {
        if !run.is_empty() {
            out.push('&');
            out.push_str(&ENGINE.encode(&run));
            out.push('-');
            run.clear();
        }
    };
    for c in text.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut run, &mut out);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                run.extend_from_slice(&unit.to_be_bytes());
            }
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(folder: &str) -> Option<String> {
        maildir_name(folder, false).unwrap()
    }

    #[test]
    fn inbox_and_its_spellings() {
        for inbox in ["", "  ", "INBOX", "inbox", " Inbox "] {
            assert_eq!(name(inbox), None, "{inbox:?}");
        }
        assert_eq!(name("INBOX.Archive").as_deref(), Some(".Archive"));
        assert_eq!(name("inbox.Archive.2024").as_deref(), Some(".Archive.2024"));
        assert_eq!(name("INBOX/Archive").as_deref(), Some(".Archive"));
        assert_eq!(name("Support/Billing").as_deref(), Some(".Support.Billing"));
    }

    #[test]
    fn dots_and_unsafe_characters_are_escaped() {
        assert_eq!(
            name("Tags/amazon.com").as_deref(),
            Some(".Tags.amazon\\2ecom")
        );
        assert_eq!(name("..").as_deref(), Some(".\\2e\\2e"));
        assert_eq!(name("a\\b").as_deref(), Some(".a\\5cb"));
        assert_eq!(name("~x/y~").as_deref(), Some(".\\7ex.y~"));
        assert_eq!(name("INBOX.a/b").as_deref(), Some(".a\\2fb"));
    }

    #[test]
    fn non_ascii_is_modified_utf7_unless_utf8_is_asked_for() {
        // RFC 3501's own example, and Dovecot's names on disk.
        assert_eq!(
            name("~peter/mail/台北/日本語").as_deref(),
            Some(".\\7epeter.mail.&U,BTFw-.&ZeVnLIqe-")
        );
        assert_eq!(name("Entwürfe").as_deref(), Some(".Entw&APw-rfe"));
        assert_eq!(name("R&D").as_deref(), Some(".R&-D"));
        assert_eq!(
            maildir_name("Entwürfe", true).unwrap().as_deref(),
            Some(".Entwürfe")
        );
    }

    #[test]
    fn what_cannot_be_stored() {
        assert_eq!(maildir_name("a//b", false), Err(FolderError::EmptyLevel));
        assert_eq!(
            maildir_name("Archive/", false),
            Err(FolderError::EmptyLevel)
        );
        assert_eq!(maildir_name("INBOX.", false), Err(FolderError::EmptyLevel));
        assert_eq!(
            maildir_name("x\ny", false),
            Err(FolderError::ControlCharacter)
        );
        let long = "x".repeat(255);
        assert_eq!(maildir_name(&long, false), Err(FolderError::TooLong(256)));
        assert!(maildir_name(&"x".repeat(254), false).is_ok());
    }
}
