//! `[lmtp] owner` and `group`: a user or group name, or a numeric id,
//! resolved once at load through the system's user database (NSS).

use nix::unistd::{Group, User};

/// The uid of a user name or numeric id.
pub(super) fn user(text: &str) -> Result<u32, String> {
    if let Ok(id) = text.parse::<u32>() {
        return Ok(id);
    }
    match User::from_name(text) {
        Ok(Some(user)) => Ok(user.uid.as_raw()),
        Ok(None) => Err(format!("no such user {text:?}")),
        Err(e) => Err(format!("cannot look up user {text:?}: {e}")),
    }
}

/// The gid of a group name or numeric id.
pub(super) fn group(text: &str) -> Result<u32, String> {
    if let Ok(id) = text.parse::<u32>() {
        return Ok(id);
    }
    match Group::from_name(text) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err(format!("no such group {text:?}")),
        Err(e) => Err(format!("cannot look up group {text:?}: {e}")),
    }
}
