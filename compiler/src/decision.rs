//! What evaluating a ruleset on one message decides: the verdict, the
//! actions to carry out, and the facts the audit log and `weir run --json`
//! report. Evaluation is sans-IO: it returns a [`Decision`] and the caller
//! (CLI or daemon) carries it out.

pub use smol_str::SmolStr;
use weir_stdlib::Stage;

/// The outcome for the message (docs/language.md ("Rules and actions")).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Deliver (the default, `accept`, or `stop`).
    Accept,
    /// Refuse with a 5xx reply.
    Reject,
    /// Refuse with a 4xx reply.
    Tempfail,
    /// Accept, then drop.
    Discard,
    /// Accept into the quarantine (hold queue or Weir's store).
    Quarantine,
}

impl Verdict {
    /// Every verdict, in the order the docs list them.
    pub const ALL: [Verdict; 5] = [
        Verdict::Accept,
        Verdict::Reject,
        Verdict::Tempfail,
        Verdict::Discard,
        Verdict::Quarantine,
    ];

    /// The SMTP reply a `reject` or `tempfail` gives when the rule names
    /// none (`550 5.7.1 Message rejected`, `451 4.7.1 Try again later`);
    /// `None` for verdicts that refuse nothing.
    pub fn default_reply(self) -> Option<Reply> {
        let (code, status, text) = match self {
            Verdict::Reject => (550, "5.7.1", "Message rejected"),
            Verdict::Tempfail => (451, "4.7.1", "Try again later"),
            _ => return None,
        };
        Some(Reply {
            code,
            status: status.to_string(),
            text: text.to_string(),
        })
    }

    /// The verdict's word (`reject`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Reject => "reject",
            Verdict::Tempfail => "tempfail",
            Verdict::Discard => "discard",
            Verdict::Quarantine => "quarantine",
        }
    }

    /// The verdict named `word`, if any.
    pub fn from_name(word: &str) -> Option<Verdict> {
        Some(match word {
            "accept" => Verdict::Accept,
            "reject" => Verdict::Reject,
            "tempfail" => Verdict::Tempfail,
            "discard" => Verdict::Discard,
            "quarantine" => Verdict::Quarantine,
            _ => return None,
        })
    }
}

/// The SMTP reply of a `reject` or `tempfail`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// `550`, `451`, ...
    pub code: u16,
    /// Enhanced status code, `5.7.1`.
    pub status: String,
    /// The text.
    pub text: String,
}

/// A rendered template (`reply template NAME`, `notify ... template NAME`).
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedTemplate {
    /// The template's name.
    pub name: String,
    /// Its interpolated subject (`""` if it has none).
    pub subject: String,
    /// Its interpolated body (`""` if it has none).
    pub body: String,
    /// Its interpolated `from` (`""` if it has none): an auto-reply's sender.
    pub from: String,
    /// The addresses of its `addresses` field (comma-separated), each the
    /// `.address` of its entry: the recipient's other addresses.
    pub addresses: Vec<String>,
}

/// A non-verdict action with its arguments evaluated.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `add_header N V`.
    AddHeader {
        /// Header name.
        name: String,
        /// Header value.
        value: String,
    },
    /// `set_header N V`.
    SetHeader {
        /// Header name.
        name: String,
        /// Header value.
        value: String,
    },
    /// `remove_header N`.
    RemoveHeader {
        /// Header name.
        name: String,
    },
    /// `prepend_subject "T"`.
    PrependSubject(String),
    /// `add_rcpt A`.
    AddRcpt(String),
    /// `remove_rcpt A`.
    RemoveRcpt(String),
    /// `redirect A`.
    Redirect(String),
    /// `fileinto "Folder/Sub"`.
    Fileinto(String),
    /// `flag "\\Seen"`.
    Flag(String),
    /// `keep`.
    Keep,
    /// `tag "label"` (a [`SmolStr`], as [`Decision::tags`]).
    Tag(SmolStr),
    /// `score +N`.
    Score(f64),
    /// `notify CHANNEL [with {...}] [template NAME]`.
    Notify {
        /// The configured channel's name.
        channel: String,
        /// The `with` map, values rendered as text, in source order.
        with: Vec<(String, String)>,
        /// The rendered template, if one was named.
        template: Option<RenderedTemplate>,
    },
    /// `reply template NAME`.
    Reply {
        /// The rendered template.
        template: RenderedTemplate,
        /// `every DURATION`: the period in seconds, else `[reply] period`.
        every: Option<i64>,
        /// Why the daemon will not send it (`"auto-submitted"`,
        /// `"discarded"`, …; see docs/language.md), or `None`.
        skipped: Option<String>,
    },
    /// `log "text"`.
    Log(String),
}

impl Action {
    /// The action's word as in `weir run --json` (`add_header`).
    pub fn name(&self) -> &'static str {
        match self {
            Action::AddHeader { .. } => "add_header",
            Action::SetHeader { .. } => "set_header",
            Action::RemoveHeader { .. } => "remove_header",
            Action::PrependSubject(_) => "prepend_subject",
            Action::AddRcpt(_) => "add_rcpt",
            Action::RemoveRcpt(_) => "remove_rcpt",
            Action::Redirect(_) => "redirect",
            Action::Fileinto(_) => "fileinto",
            Action::Flag(_) => "flag",
            Action::Keep => "keep",
            Action::Tag(_) => "tag",
            Action::Score(_) => "score",
            Action::Notify { .. } => "notify",
            Action::Reply { .. } => "reply",
            Action::Log(_) => "log",
        }
    }
}

/// What a `shadow` rule's verdict would have been.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowVerdict {
    /// The verdict.
    pub verdict: Verdict,
    /// Its reply, for `reject` and `tempfail`.
    pub reply: Option<Reply>,
    /// The `quarantine` reason.
    pub reason: Option<String>,
}

/// One action taken, in order, with the rule that took it.
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    /// The rule's name (a [`SmolStr`], as [`Decision::matched`]).
    pub rule: SmolStr,
    /// Whether that rule is a `shadow` rule (the action had no effect).
    pub shadow: bool,
    /// The action, or for a shadow rule possibly its verdict.
    pub what: TakenKind,
}

/// An accumulating action, or a verdict a shadow rule would have given.
#[derive(Debug, Clone, PartialEq)]
pub enum TakenKind {
    /// A non-verdict action.
    Action(Action),
    /// A verdict of a shadow rule (recorded, with no effect).
    ShadowVerdict(ShadowVerdict),
}

/// How one rule fared, for `weir run --explain`.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleTrace {
    /// The rule's name.
    pub rule: String,
    /// Whether its condition held.
    pub held: bool,
    /// The test that decided it, when a field's value made it hold.
    pub evidence: Option<Evidence>,
}

/// Which field value and byte span made a test hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// The expression tested, as written (`subject`, `from.domain`).
    pub expr: String,
    /// The value (one list element when the field is a list), possibly
    /// shortened around the match.
    pub value: String,
    /// The byte range of the match within the full value.
    pub span: (usize, usize),
}

/// The result of evaluating a ruleset on one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The verdict.
    pub verdict: Verdict,
    /// The SMTP reply for `reject`/`tempfail`, else `None`.
    pub reply: Option<Reply>,
    /// The reason given to `quarantine`.
    pub quarantine_reason: Option<String>,
    /// The rule whose verdict ended evaluation, if any.
    pub decided_by: Option<String>,
    /// The decision's stage (docs/language.md ("Stages")).
    pub stage: Stage,
    /// Rules whose condition held, in evaluation order (shadow rules
    /// included). [`SmolStr`]s, as the tags and each action's rule: with
    /// 10,000 rules some 40 hold per message, and a name or tag of up to
    /// 23 bytes is copied without allocating (a longer one is shared).
    pub matched: Vec<SmolStr>,
    /// Tags in the order first applied, without duplicates.
    pub tags: Vec<SmolStr>,
    /// The sum of the `score` actions.
    pub score: f64,
    /// The last `fileinto` folder.
    pub folder: Option<String>,
    /// Actions in the order taken (`stop` and non-shadow verdicts excluded).
    pub actions: Vec<Taken>,
    /// Per-rule trace, filled only when explaining.
    pub trace: Vec<RuleTrace>,
    /// What the daemon could not do as the rules said and did instead (a
    /// folder that cannot be stored, delivered to INBOX): for the audit
    /// entry. Evaluation leaves it empty.
    pub warnings: Vec<String>,
    /// The keys `duplicate()` was asked about (shadow rules and dry runs
    /// aside): the caller records them for the recipient once this copy is
    /// delivered or accepted, never when it is deferred or refused.
    pub duplicates: Vec<String>,
}

impl Decision {
    /// A decision with this verdict, reply and stage, and nothing else:
    /// no rule matched, no action, score 0.
    pub fn new(verdict: Verdict, reply: Option<Reply>, stage: Stage) -> Decision {
        Decision {
            verdict,
            reply,
            quarantine_reason: None,
            decided_by: None,
            stage,
            matched: Vec::new(),
            tags: Vec::new(),
            score: 0.0,
            folder: None,
            actions: Vec::new(),
            trace: Vec::new(),
            warnings: Vec::new(),
            duplicates: Vec::new(),
        }
    }

    /// The SMTP reply that refuses this message: the rule's own, else the
    /// language's default for its verdict (`550 5.7.1 Message rejected`,
    /// `451 4.7.1 Try again later`; the tempfail default for a verdict that
    /// refuses nothing).
    pub fn refusal(&self) -> Reply {
        self.reply
            .clone()
            .or_else(|| self.verdict.default_reply())
            .or_else(|| Verdict::Tempfail.default_reply())
            .unwrap_or_default()
    }
}
