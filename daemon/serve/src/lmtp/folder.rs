//! Where an LMTP copy is filed: the decision's `fileinto` folder mapped to
//! its Maildir++ directory by the one rule of `weir_stdlib::folder`, and,
//! when the name cannot be stored, INBOX with a warning (Pigeonhole's
//! implicit keep). A folder name is never a reason to defer mail.

use weir_stdlib::folder::maildir_name;

/// The directory a copy goes into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The Maildir++ directory name (`.Folder.Sub`), `None` for INBOX.
    pub dir: Option<String>,
    /// Why the copy goes to INBOX instead of the folder the rules named.
    pub warning: Option<String>,
}

/// The target of `folder` (the decision's last `fileinto`, `None` for
/// INBOX); `utf8` is `[lmtp] utf8_folders`.
pub fn resolve(folder: Option<&str>, utf8: bool) -> Target {
    let Some(folder) = folder else {
        return Target {
            dir: None,
            warning: None,
        };
    };
    match maildir_name(folder, utf8) {
        Ok(dir) => Target { dir, warning: None },
        Err(e) => Target {
            dir: None,
            warning: Some(format!(
                "folder {folder:?} cannot be stored ({e}); delivered to INBOX"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_that_cannot_be_stored_is_inbox_with_a_warning() {
        let t = resolve(Some("Tags//x"), false);
        assert_eq!(t.dir, None);
        assert!(t.warning.unwrap().contains("\"Tags//x\" cannot be stored"));
        let t = resolve(Some("INBOX.Archive"), false);
        assert_eq!(t.dir.as_deref(), Some(".Archive"));
        assert_eq!(t.warning, None);
        assert_eq!(resolve(None, false).dir, None);
    }
}
