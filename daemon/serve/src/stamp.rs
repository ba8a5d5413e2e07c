//! The decision stamp: how the milter hands its per-recipient decisions to
//! LMTP delivery when one daemon runs both, so a message is decided once.
//!
//! At the end of the message the milter evaluates the rules once per
//! envelope recipient (`recipient` bound, as LMTP would), carries out at
//! SMTP level what all recipients agree on, and adds one header field,
//! [`STAMP_HEADER`], holding a [`Stamp`]: the outcome for each recipient,
//! the ruleset version and the audit entry, authenticated with
//! HMAC-SHA256 under a key kept in `state_dir/stamp-key`. LMTP delivery
//! removes every copy of the field; given one whose MAC verifies under the
//! key and whose envelope sender matches, it carries out the stamped
//! outcome of each recipient without evaluating again. Anything else (no
//! stamp, another daemon's key, a forged or damaged one) is ignored: the
//! message is evaluated as if it had none.
//!
//! Wire form: `1.<payload>.<mac>`, both base64url without padding, the
//! payload the JSON of the [`Stamp`], the MAC over `weir-stamp-1.` and the
//! payload's base64 text. It is folded at 76 characters; whitespace is
//! ignored when reading, so re-folding by an MTA does no harm.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use weir_compiler::{Action, Decision, Reply, Taken, TakenKind, Verdict};
use weir_stdlib::Stage;

/// The header field that carries the stamp.
pub const STAMP_HEADER: &str = "X-Weir-Stamp";

/// The stamp format's version (the first dot-separated part).
const FORMAT: &str = "1";

/// What the MAC covers before the payload, so a MAC over something else
/// made with the same key can never pass for a stamp.
const MAC_CONTEXT: &[u8] = b"weir-stamp-1.";

/// The length of a generated key, in bytes.
const KEY_LEN: usize = 32;

/// The key that signs and verifies stamps.
#[derive(Clone)]
pub struct StampKey {
    bytes: Vec<u8>,
}

impl std::fmt::Debug for StampKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StampKey(..)")
    }
}

/// Why the stamp key cannot be had.
#[derive(Debug)]
pub struct KeyError {
    /// The key file.
    pub file: PathBuf,
    /// What failed.
    pub source: std::io::Error,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot read or create the stamp key {}: {}",
            self.file.display(),
            self.source
        )
    }
}

impl std::error::Error for KeyError {}

impl StampKey {
    /// A key from its bytes (a real key comes from [`StampKey::load`]).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn from_bytes(bytes: &[u8]) -> StampKey {
        StampKey {
            bytes: bytes.to_vec(),
        }
    }

    /// The key in `state_dir/stamp-key`, created (random, mode 0600) when
    /// missing. The same key across restarts keeps stamps on messages
    /// still in the MTA's queue valid.
    pub fn load(state_dir: &Path) -> Result<StampKey, KeyError> {
        let file = state_dir.join("stamp-key");
        let fail = |source| KeyError {
            file: file.clone(),
            source,
        };
        match std::fs::read(&file) {
            Ok(bytes) if bytes.len() >= KEY_LEN => return Ok(StampKey { bytes }),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(e)),
        }
        let mut bytes = vec![0u8; KEY_LEN];
        {
            use std::io::Read;
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut bytes))
                .map_err(fail)?;
        }
        write_private(&file, &bytes).map_err(fail)?;
        Ok(StampKey { bytes })
    }

    /// A stamp header value whose payload is `json`, signed with this key
    /// whatever it holds: the fuzzer reaches the payload's decoding
    /// through it, past the MAC no forgery passes.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn sign_raw(&self, json: &[u8]) -> String {
        let payload = URL_SAFE_NO_PAD.encode(json);
        let mac = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        format!("{FORMAT}.{payload}.{mac}")
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.bytes)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(MAC_CONTEXT);
        mac.update(payload.as_bytes());
        mac
    }
}

/// Writes `bytes` to `file` readable by the owner only, durably.
fn write_private(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)
}

/// The milter's decisions for one message, as LMTP delivery needs them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    /// The version of the ruleset that decided (it stands even if the
    /// rules are reloaded before delivery).
    pub ruleset_version: u64,
    /// The MTA's queue id at the milter (`i`).
    pub queue_id: String,
    /// The milter's audit entry for the message.
    pub audit_id: u64,
    /// The envelope sender (angle brackets removed); LMTP checks it.
    pub from: String,
    /// Whether the milter already made the header edits (they were the
    /// same for every recipient); else LMTP makes each recipient's.
    pub edits_applied: bool,
    /// Whether the milter put the message in the MTA's hold queue: it
    /// reaches delivery only once released, and is then delivered.
    pub held: bool,
    /// The distinct outcomes.
    pub outcomes: Vec<StampedOutcome>,
    /// Lower-cased recipient → index into `outcomes`.
    pub recipients: Vec<(String, usize)>,
}

/// One recipient's outcome: what carrying out its decision needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StampedOutcome {
    /// `accept`, `reject`, `tempfail`, `discard` or `quarantine`.
    pub verdict: String,
    /// The reply of a refusal: code, enhanced status, text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<(u16, String, String)>,
    /// The `quarantine` reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The rule whose verdict ended evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The `fileinto` folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// The tags (for `X-Weir-Tags`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The actions that shape the delivered copy, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<CopyAction>,
}

/// An action that shapes a recipient's copy (side effects are not here:
/// the milter carried them out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyAction {
    /// `add_header`.
    AddHeader(String, String),
    /// `set_header`.
    SetHeader(String, String),
    /// `remove_header`.
    RemoveHeader(String),
    /// `prepend_subject`.
    PrependSubject(String),
    /// `flag`.
    Flag(String),
    /// `redirect` (drops the local copy).
    Redirect(String),
    /// `remove_rcpt` (drops the local copy of that recipient).
    RemoveRcpt(String),
}

impl StampedOutcome {
    /// The part of `decision` delivery needs.
    pub fn of(decision: &Decision) -> StampedOutcome {
        let actions = decision
            .actions
            .iter()
            .filter(|t| !t.shadow)
            .filter_map(|t| match &t.what {
                TakenKind::Action(action) => copy_action(action),
                TakenKind::ShadowVerdict(_) => None,
            })
            .collect();
        StampedOutcome {
            verdict: decision.verdict.as_str().to_string(),
            reply: decision
                .reply
                .as_ref()
                .map(|r| (r.code, r.status.clone(), r.text.clone())),
            reason: decision.quarantine_reason.clone(),
            rule: decision.decided_by.clone(),
            folder: decision.folder.clone(),
            tags: decision.tags.iter().map(ToString::to_string).collect(),
            actions,
        }
    }

    /// The outcome of a recipient a rule added (`add_rcpt`, `redirect`):
    /// the adding recipient's header edits, into INBOX, no flags.
    pub fn forwarded(&self) -> StampedOutcome {
        StampedOutcome {
            verdict: "accept".into(),
            reply: None,
            reason: None,
            rule: None,
            folder: None,
            tags: self.tags.clone(),
            actions: self
                .actions
                .iter()
                .filter(|a| {
                    !matches!(
                        a,
                        CopyAction::Flag(_) | CopyAction::Redirect(_) | CopyAction::RemoveRcpt(_)
                    )
                })
                .cloned()
                .collect(),
        }
    }

    /// A decision LMTP delivery carries out as if it had evaluated it
    /// (`None` for an unknown verdict word).
    pub fn decision(&self) -> Option<Decision> {
        let verdict = Verdict::from_name(&self.verdict)?;
        let rule = self.rule.clone().unwrap_or_default();
        let actions = self
            .actions
            .iter()
            .map(|a| Taken {
                rule: rule.as_str().into(),
                shadow: false,
                what: TakenKind::Action(a.action()),
            })
            .collect();
        Some(Decision {
            verdict,
            reply: self
                .reply
                .clone()
                .map(|(code, status, text)| Reply { code, status, text }),
            quarantine_reason: self.reason.clone(),
            decided_by: self.rule.clone(),
            stage: Stage::Body,
            matched: Vec::new(),
            tags: self.tags.iter().map(Into::into).collect(),
            score: 0.0,
            folder: self.folder.clone(),
            actions,
            trace: Vec::new(),
            duplicates: Vec::new(),
            warnings: Vec::new(),
        })
    }
}

fn copy_action(action: &Action) -> Option<CopyAction> {
    Some(match action {
        Action::AddHeader { name, value } => CopyAction::AddHeader(name.clone(), value.clone()),
        Action::SetHeader { name, value } => CopyAction::SetHeader(name.clone(), value.clone()),
        Action::RemoveHeader { name } => CopyAction::RemoveHeader(name.clone()),
        Action::PrependSubject(p) => CopyAction::PrependSubject(p.clone()),
        Action::Flag(f) => CopyAction::Flag(f.clone()),
        Action::Redirect(a) => CopyAction::Redirect(a.clone()),
        Action::RemoveRcpt(a) => CopyAction::RemoveRcpt(a.clone()),
        _ => return None,
    })
}

impl CopyAction {
    fn action(&self) -> Action {
        match self.clone() {
            CopyAction::AddHeader(name, value) => Action::AddHeader { name, value },
            CopyAction::SetHeader(name, value) => Action::SetHeader { name, value },
            CopyAction::RemoveHeader(name) => Action::RemoveHeader { name },
            CopyAction::PrependSubject(p) => Action::PrependSubject(p),
            CopyAction::Flag(f) => Action::Flag(f),
            CopyAction::Redirect(a) => Action::Redirect(a),
            CopyAction::RemoveRcpt(a) => Action::RemoveRcpt(a),
        }
    }
}

impl Stamp {
    /// The outcome stamped for `rcpt` (any case), if it was stamped.
    pub fn outcome_for(&self, rcpt: &str) -> Option<&StampedOutcome> {
        let rcpt = rcpt.trim().to_ascii_lowercase();
        self.recipients
            .iter()
            .find(|(r, _)| *r == rcpt)
            .and_then(|(_, i)| self.outcomes.get(*i))
    }

    /// Adds `rcpt` with `outcome` (an equal outcome is stored once).
    pub fn push(&mut self, rcpt: &str, outcome: StampedOutcome) {
        let rcpt = rcpt.trim().to_ascii_lowercase();
        if self.recipients.iter().any(|(r, _)| *r == rcpt) {
            return;
        }
        let index = match self.outcomes.iter().position(|o| *o == outcome) {
            Some(i) => i,
            None => {
                self.outcomes.push(outcome);
                self.outcomes.len() - 1
            }
        };
        self.recipients.push((rcpt, index));
    }

    /// The header value: signed, folded with `\n\t` as the milter protocol
    /// folds (LF only; the MTA writes its own line ends).
    pub fn seal(&self, key: &StampKey) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let payload = URL_SAFE_NO_PAD.encode(json);
        let mac = URL_SAFE_NO_PAD.encode(key.mac(&payload).finalize().into_bytes());
        let text = format!("{FORMAT}.{payload}.{mac}");
        let chunks: Vec<&str> = text
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect();
        chunks.join("\n\t")
    }

    /// Reads and verifies a header value.
    pub fn open(value: &str, key: &StampKey) -> Result<Stamp, StampError> {
        let text: String = value.chars().filter(|c| !c.is_whitespace()).collect();
        let mut parts = text.split('.');
        let (Some(format), Some(payload), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(StampError::Malformed);
        };
        if format != FORMAT {
            return Err(StampError::Malformed);
        }
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| StampError::Malformed)?;
        key.mac(payload)
            .verify_slice(&mac)
            .map_err(|_| StampError::BadMac)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| StampError::Malformed)?;
        serde_json::from_slice(&json).map_err(|_| StampError::Malformed)
    }
}

/// Why a stamp was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StampError {
    /// Not in the stamp's form.
    Malformed,
    /// Signed with another key, or changed.
    BadMac,
    /// Valid, but made for a message from another envelope sender.
    OtherSender,
    /// More than one stamp: the message carries a copy it should not.
    Several,
}

impl std::fmt::Display for StampError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StampError::Malformed => "malformed",
            StampError::BadMac => "not signed with this daemon's key",
            StampError::OtherSender => "made for another envelope sender",
            StampError::Several => "present more than once",
        })
    }
}

/// The stamp of a message at delivery: every copy of [`STAMP_HEADER`] in
/// `headers` (name, value) is checked; exactly one, valid, for envelope
/// sender `from`, is the stamp. `None` when there is none at all.
pub fn find(
    headers: &[(String, String)],
    from: &str,
    key: &StampKey,
) -> Option<Result<Stamp, StampError>> {
    let mut values = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(STAMP_HEADER))
        .map(|(_, v)| v);
    let first = values.next()?;
    if values.next().is_some() {
        return Some(Err(StampError::Several));
    }
    let stamp = match Stamp::open(first, key) {
        Ok(stamp) => stamp,
        Err(e) => return Some(Err(e)),
    };
    let from = crate::stages::strip_brackets(from);
    if !stamp.from.eq_ignore_ascii_case(&from) {
        return Some(Err(StampError::OtherSender));
    }
    Some(Ok(stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> Stamp {
        let mut s = Stamp {
            ruleset_version: 3,
            queue_id: "4ABC".into(),
            audit_id: 7,
            from: "alice@example.org".into(),
            edits_applied: false,
            held: false,
            outcomes: Vec::new(),
            recipients: Vec::new(),
        };
        let out = StampedOutcome {
            verdict: "accept".into(),
            reply: None,
            reason: None,
            rule: Some("r".into()),
            folder: Some("Work".into()),
            tags: vec!["t".into()],
            actions: vec![CopyAction::PrependSubject("[SPAM] ".into())],
        };
        s.push("Bob@Example.test", out.clone());
        s.push("carol@example.test", out);
        s
    }

    fn key(b: u8) -> StampKey {
        StampKey::from_bytes(&[b; 32])
    }

    fn header(value: String) -> Vec<(String, String)> {
        vec![(STAMP_HEADER.to_string(), value)]
    }

    #[test]
    fn a_sealed_stamp_opens_with_its_key_even_refolded() {
        let s = stamp();
        assert_eq!(s.outcomes.len(), 1, "equal outcomes are stored once");
        let sealed = s.seal(&key(1));
        assert!(sealed.lines().all(|l| l.trim().len() <= 76));
        let refolded = sealed.replace("\n\t", "\r\n ");
        let got = find(&header(refolded), "<alice@example.org>", &key(1));
        assert_eq!(got, Some(Ok(s.clone())));
        let out = s.outcome_for("bob@example.TEST").expect("stamped");
        let d = out.decision().expect("decision");
        assert_eq!(d.folder.as_deref(), Some("Work"));
        assert_eq!(d.verdict, Verdict::Accept);
        assert!(s.outcome_for("dave@example.test").is_none());
    }

    #[test]
    fn forged_damaged_or_foreign_stamps_are_refused() {
        let s = stamp();
        let sealed = s.seal(&key(1));
        let from = "alice@example.org";
        assert_eq!(
            find(&header(s.seal(&key(2))), from, &key(1)),
            Some(Err(StampError::BadMac))
        );
        // A changed payload (another folder) with the old MAC.
        let mut forged = s.clone();
        forged.outcomes[0].folder = Some("INBOX".into());
        let forged_payload = forged.seal(&key(9));
        let (_, mac) = sealed.rsplit_once('.').expect("mac");
        let (head, _) = forged_payload.rsplit_once('.').expect("payload");
        assert_eq!(
            find(&header(format!("{head}.{mac}")), from, &key(1)),
            Some(Err(StampError::BadMac))
        );
        for junk in ["", "1", "1..", "2.a.b", "1.!!.??", "1.a.b.c", "garbage"] {
            assert!(
                matches!(
                    find(&header(junk.into()), from, &key(1)),
                    Some(Err(StampError::Malformed | StampError::BadMac))
                ),
                "{junk:?}"
            );
        }
        assert_eq!(
            find(&header(sealed.clone()), "mallory@example.org", &key(1)),
            Some(Err(StampError::OtherSender))
        );
        let mut two = header(sealed.clone());
        two.extend(header(sealed));
        assert_eq!(find(&two, from, &key(1)), Some(Err(StampError::Several)));
        assert_eq!(find(&[], from, &key(1)), None);
    }

    #[test]
    fn the_key_is_created_once_and_private() {
        let dir = std::env::temp_dir().join(format!("weir-stamp-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = StampKey::load(&dir).expect("created");
        let b = StampKey::load(&dir).expect("read back");
        assert_eq!(a.bytes, b.bytes);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("stamp-key"))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
