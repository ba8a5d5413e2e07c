//! Postfix's hold queue, where a milter `quarantine` leaves a message.
//!
//! The quarantine index is keyed by the queue id the milter client sent
//! (macro `i`), so it is a claim, not a fact: any local process that speaks
//! the milter protocol can plant an entry. Before a release or delete
//! command runs, Postfix itself is asked (`[milter] queue`, `postqueue -j`)
//! whether a message with that id is in the hold queue now and whether its
//! sender is the one the entry recorded; only then does the id reach
//! `postsuper`, and afterwards Postfix is asked again whether the message
//! really moved. An id is never one Postfix would read as a keyword (`ALL`,
//! `-`): it must have the shape of a Postfix queue id.

use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;

/// How long a queue listing or a release or delete command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Postfix's long queue ids are written in this base-52 alphabet (digits
/// and consonants), so no vowel, hence no keyword such as `ALL`, fits.
const LONG_ID_ALPHABET: &[u8] = b"0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz";

/// Whether `id` has the shape of a Postfix queue id: a short id (upper-case
/// hexadecimal, as `929FC9901D5`) or a long one (`enable_long_queue_ids`:
/// base-52 time, `z`, base-51 inode). `ALL`, `-`, options and anything
/// with a shell or path character are not.
pub fn valid_queue_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    if bytes.len() < 6 || bytes.len() > 32 {
        return false;
    }
    let short = bytes
        .iter()
        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b));
    let long = bytes.len() >= 10
        && bytes[1..].contains(&b'z')
        && bytes.iter().all(|b| LONG_ID_ALPHABET.contains(b));
    short || long
}

/// Why Postfix's queue could not be read or a command failed.
#[derive(Debug)]
pub enum HoldError {
    /// The command could not be started.
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The command ran past [`COMMAND_TIMEOUT`].
    Timeout {
        /// The program.
        program: String,
    },
    /// The command exited with a failure status.
    Failed {
        /// The program.
        program: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it wrote to standard error.
        stderr: String,
    },
    /// No command is configured.
    Empty,
}

impl std::fmt::Display for HoldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HoldError::Spawn { program, source } => write!(f, "cannot run {program:?}: {source}"),
            HoldError::Timeout { program } => {
                write!(f, "{program:?} did not finish within {COMMAND_TIMEOUT:?}")
            }
            HoldError::Failed {
                program, status, ..
            } => write!(f, "{program:?} failed ({status})"),
            HoldError::Empty => write!(f, "no command configured"),
        }
    }
}

impl std::error::Error for HoldError {}

impl HoldError {
    /// What the command wrote to standard error, when it ran and failed.
    pub fn stderr(&self) -> Option<&str> {
        match self {
            HoldError::Failed { stderr, .. } => Some(stderr),
            _ => None,
        }
    }
}

/// One message as `postqueue -j` lists it (the fields Weir reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct QueuedMessage {
    /// `hold`, `incoming`, `active`, `deferred` or `maildrop`.
    pub queue_name: String,
    /// The queue id.
    pub queue_id: String,
    /// The envelope sender (empty for the null sender).
    #[serde(default)]
    pub sender: String,
}

/// Where the message a quarantine entry describes is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whereabouts {
    /// In the hold queue, with the sender the entry recorded.
    Held,
    /// Not in the hold queue any more, or the id now names another
    /// message: it left the hold queue without Weir.
    Gone,
}

/// Runs `argv` without a shell, stdin closed, at most [`COMMAND_TIMEOUT`];
/// its output when it exits with success.
pub async fn run(argv: &[String]) -> Result<std::process::Output, HoldError> {
    let (program, args) = argv.split_first().ok_or(HoldError::Empty)?;
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(COMMAND_TIMEOUT, output).await {
        Ok(Ok(output)) => output,
        Ok(Err(source)) => {
            return Err(HoldError::Spawn {
                program: program.clone(),
                source,
            });
        }
        Err(_) => {
            return Err(HoldError::Timeout {
                program: program.clone(),
            });
        }
    };
    if !output.status.success() {
        return Err(HoldError::Failed {
            program: program.clone(),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(output)
}

/// Every message in Postfix's queues, from the `[milter] queue` command
/// (JSON lines, as `postqueue -j` prints them). Lines that are not such
/// an object are skipped.
pub async fn list(command: &[String]) -> Result<Vec<QueuedMessage>, HoldError> {
    let output = run(command).await?;
    Ok(parse_listing(&output.stdout))
}

/// Parses `postqueue -j` output.
pub fn parse_listing(text: &[u8]) -> Vec<QueuedMessage> {
    text.split(|&b| b == b'\n')
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect()
}

/// An envelope address as both sides write it: without angle brackets,
/// lower-cased (Postfix may have rewritten the case of the domain).
fn normal_address(address: &str) -> String {
    address
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_ascii_lowercase()
}

/// Where the message held as `queue_id` from `sender` is, by `queue`.
pub fn whereabouts(queue: &[QueuedMessage], queue_id: &str, sender: &str) -> Whereabouts {
    let held = queue.iter().any(|m| {
        m.queue_id == queue_id
            && m.queue_name == "hold"
            && normal_address(&m.sender) == normal_address(sender)
    });
    if held {
        Whereabouts::Held
    } else {
        Whereabouts::Gone
    }
}

/// Whether `queue_id` is in the hold queue of `queue` (whoever sent it).
pub fn in_hold(queue: &[QueuedMessage], queue_id: &str) -> bool {
    queue
        .iter()
        .any(|m| m.queue_id == queue_id && m.queue_name == "hold")
}

/// Whether `queue_id` is anywhere in `queue`.
pub fn queued(queue: &[QueuedMessage], queue_id: &str) -> bool {
    queue.iter().any(|m| m.queue_id == queue_id)
}

/// The default `[milter] queue` command for a `release` command: the
/// `postqueue` beside the `postsuper` it names (same directory, same
/// `-c CONFIG_DIR`), so both act on the same Postfix instance; plain
/// `postqueue -j` when `release` names no `postsuper`.
pub fn default_queue_command(release: &[String]) -> Vec<String> {
    let Some(at) = release
        .iter()
        .position(|a| std::path::Path::new(a).file_name() == Some("postsuper".as_ref()))
    else {
        return vec!["postqueue".into(), "-j".into()];
    };
    let postqueue = std::path::Path::new(&release[at]).with_file_name("postqueue");
    let mut argv = vec![postqueue.to_string_lossy().into_owned()];
    let rest = &release[at + 1..];
    if let Some(c) = rest.iter().position(|a| a == "-c")
        && let Some(dir) = rest.get(c + 1)
    {
        argv.extend(["-c".to_string(), dir.clone()]);
    }
    argv.push("-j".into());
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_ids_have_postfix_shapes_and_keywords_do_not() {
        for id in [
            "929FC9901D5",
            "4A1B2C3D4E",
            "4Kx2Qb3fQzz1",
            "4dMsKv0V0Hz3Rx",
        ] {
            assert!(valid_queue_id(id), "{id}");
        }
        for id in [
            "ALL",
            "all",
            "-",
            "-d",
            "",
            "a;rm",
            "4KQ1",
            "hold",
            "deferred",
            "ABC",
            "../x",
            "929fc9901d5",
            "ALLALLALLALL",
        ] {
            assert!(!valid_queue_id(id), "{id}");
        }
    }

    #[test]
    fn whereabouts_needs_the_hold_queue_and_the_same_sender() {
        let listing = br#"{"queue_name": "hold", "queue_id": "929FC9901D5", "arrival_time": 1, "message_size": 9, "forced_expire": false, "sender": "Alice@Example.org", "recipients": [{"address": "bob@example.test"}]}
{"queue_name": "deferred", "queue_id": "AAAA11112", "sender": "carol@example.org", "recipients": []}
not json
"#;
        let queue = parse_listing(listing);
        assert_eq!(queue.len(), 2);
        assert_eq!(
            whereabouts(&queue, "929FC9901D5", "<alice@example.org>"),
            Whereabouts::Held
        );
        assert_eq!(
            whereabouts(&queue, "929FC9901D5", "mallory@example.org"),
            Whereabouts::Gone,
            "the id now names someone else's message"
        );
        assert_eq!(
            whereabouts(&queue, "AAAA11112", "carol@example.org"),
            Whereabouts::Gone,
            "released outside Weir"
        );
        assert_eq!(whereabouts(&queue, "BBBB22223", "x@y"), Whereabouts::Gone);
    }

    #[test]
    fn the_queue_command_follows_the_release_command() {
        let argv = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            default_queue_command(&argv("postsuper -H {queue_id}")),
            argv("postqueue -j")
        );
        assert_eq!(
            default_queue_command(&argv(
                "sudo -n /usr/sbin/postsuper -c /etc/pf2 -H {queue_id}"
            )),
            argv("/usr/sbin/postqueue -c /etc/pf2 -j")
        );
        assert_eq!(
            default_queue_command(&argv("/opt/release.sh {queue_id}")),
            argv("postqueue -j")
        );
    }
}
