//! The `test` blocks of a ruleset's entry file (docs/language.md ("Tests")), checked
//! at compile time and run by `weir test` (and on reload by the daemon).

use std::net::IpAddr;
use std::path::PathBuf;

use weir_stdlib::Stage;

use crate::decision::{Action, Decision, SmolStr, TakenKind, Verdict};

/// One `test "name" { ... }` block.
#[derive(Debug, Clone)]
pub struct TestCase {
    /// The test's name.
    pub name: String,
    /// The file it is written in (as in diagnostics).
    pub file: String,
    /// The 1-based line of `test`.
    pub line: usize,
    /// The message to evaluate.
    pub message: TestMessage,
    /// `envelope from`, if given.
    pub envelope_from: Option<String>,
    /// `envelope to`, if given.
    pub envelope_to: Option<Vec<String>>,
    /// `client ip`, if given.
    pub client_ip: Option<IpAddr>,
    /// `client helo`, if given.
    pub helo: Option<String>,
    /// What the test sets of the world: clock, recipient, counters.
    pub world: TestWorld,
    /// The `expect` lines, in order.
    pub(crate) expectations: Vec<Expectation>,
}

/// The world a test block sets (docs/language.md ("Tests")): what a live
/// daemon would know from its clock, its LMTP recipient and its store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestWorld {
    /// `now "RFC 3339"`: the evaluation clock, seconds since the epoch.
    pub now: Option<i64>,
    /// `recipient "addr"`: the copy being delivered (binds `recipient`).
    pub recipient: Option<String>,
    /// `rate "KEY" = N`: the count under KEY before this message.
    pub rates: Vec<(String, u64)>,
    /// `duplicate "KEY"`: keys already delivered to the recipient.
    pub duplicates: Vec<String>,
    /// `classify NAME "class" C`: the classifiers' answers, by name (a
    /// classifier without a line has learned nothing).
    pub classes: std::collections::BTreeMap<String, weir_stdlib::Classification>,
}

/// Where a test's message comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestMessage {
    /// `message "path.eml"`, resolved relative to the test's file.
    File(PathBuf),
    /// `message """raw text"""`.
    Text(String),
}

/// One `expect [not] ...` line.
#[derive(Debug, Clone)]
pub(crate) struct Expectation {
    pub negated: bool,
    pub what: Expect,
}

/// What an `expect` line checks.
#[derive(Debug, Clone)]
pub(crate) enum Expect {
    Verdict {
        verdict: Verdict,
        code: Option<u16>,
    },
    Stage(Stage),
    Score {
        op: &'static str,
        value: f64,
    },
    Matched(String),
    Tag(String),
    Folder(String),
    /// Any non-verdict action: its word, the leading arguments given, and
    /// the template named, if any.
    Action {
        word: String,
        args: Vec<String>,
        template: Option<String>,
    },
    /// `expect quarantine "reason"` and other verdict words used as actions.
    VerdictAction {
        verdict: Verdict,
        args: Vec<String>,
    },
}

fn quoted(items: &[SmolStr]) -> String {
    if items.is_empty() {
        return "none".to_string();
    }
    items
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A number as `weir run --json` prints it, so a failed expectation and
/// the output it is compared with read alike.
fn number(x: f64) -> String {
    crate::report::number(x).to_string()
}

/// The arguments of an action as `expect` compares them.
fn action_args(a: &Action) -> (Vec<String>, Option<String>) {
    match a {
        Action::AddHeader { name, value } | Action::SetHeader { name, value } => {
            (vec![name.clone(), value.clone()], None)
        }
        Action::RemoveHeader { name } => (vec![name.clone()], None),
        Action::PrependSubject(v)
        | Action::AddRcpt(v)
        | Action::RemoveRcpt(v)
        | Action::Redirect(v)
        | Action::Fileinto(v)
        | Action::Flag(v)
        | Action::Log(v) => (vec![v.clone()], None),
        Action::Tag(v) => (vec![v.to_string()], None),
        Action::Score(x) => (vec![number(*x)], None),
        Action::Keep => (Vec::new(), None),
        Action::Notify {
            channel, template, ..
        } => (
            vec![channel.clone()],
            template.as_ref().map(|t| t.name.clone()),
        ),
        Action::Reply { template, .. } => (Vec::new(), Some(template.name.clone())),
    }
}

/// Whether an expected argument equals an actual one: exact, except that
/// header names (first argument of header actions) ignore case and numbers
/// compare by value.
fn arg_matches(word: &str, index: usize, want: &str, got: &str) -> bool {
    if want == got {
        return true;
    }
    if index == 0 && word.ends_with("_header") {
        return want.eq_ignore_ascii_case(got);
    }
    matches!((want.parse::<f64>(), got.parse::<f64>()), (Ok(a), Ok(b)) if a == b)
}

impl TestCase {
    /// Checks a decision against the expectations: one human sentence per
    /// failed expectation; empty when the test passes.
    pub fn check(&self, d: &Decision) -> Vec<String> {
        self.expectations
            .iter()
            .filter_map(|e| e.check(d))
            .collect()
    }
}

/// An expectation's outcome: whether it held, what was expected, what
/// the decision had instead.
type Outcome = (bool, String, String);

impl Expectation {
    fn check(&self, d: &Decision) -> Option<String> {
        let not = if self.negated { "not " } else { "" };
        let (held, expected, got) = match &self.what {
            Expect::Verdict { verdict, code } => verdict_outcome(d, *verdict, *code),
            Expect::Stage(s) => (
                d.stage == *s,
                format!("stage {s}"),
                format!("got {}", d.stage),
            ),
            Expect::Score { op, value } => score_outcome(d, op, *value),
            Expect::Matched(rule) => (
                d.matched.iter().any(|m| m == rule),
                format!("matched {rule}"),
                format!("matched: {}", quoted(&d.matched)),
            ),
            Expect::Tag(tag) => (
                d.tags.iter().any(|t| t == tag),
                format!("tag {tag:?}"),
                format!("tags: {}", quoted(&d.tags)),
            ),
            Expect::Folder(folder) => (
                d.folder.as_deref() == Some(folder.as_str()),
                format!("folder {folder:?}"),
                format!(
                    "folder: {}",
                    d.folder
                        .as_deref()
                        .map_or("none".to_string(), |f| format!("{f:?}"))
                ),
            ),
            Expect::Action {
                word,
                args,
                template,
            } => action_outcome(d, word, args, template.as_deref()),
            Expect::VerdictAction { verdict, args } => verdict_action_outcome(d, *verdict, args),
        };
        if held == self.negated {
            Some(format!("expected {not}{expected}; {got}"))
        } else {
            None
        }
    }
}

/// `expect VERDICT [CODE]`.
fn verdict_outcome(d: &Decision, verdict: Verdict, code: Option<u16>) -> Outcome {
    let actual_code = d.reply.as_ref().map(|r| r.code);
    let held = d.verdict == verdict && code.is_none_or(|c| actual_code == Some(c));
    let want = match code {
        Some(c) => format!("verdict {} {c}", verdict.as_str()),
        None => format!("verdict {}", verdict.as_str()),
    };
    let got = match actual_code {
        Some(c) => format!("{} {c}", d.verdict.as_str()),
        None => d.verdict.as_str().to_string(),
    };
    (held, want, format!("got {got}"))
}

/// `expect score OP VALUE`.
fn score_outcome(d: &Decision, op: &str, value: f64) -> Outcome {
    let s = d.score;
    let held = match op {
        "==" => s == value,
        "!=" => s != value,
        "<" => s < value,
        "<=" => s <= value,
        ">" => s > value,
        _ => s >= value,
    };
    (
        held,
        format!("score {op} {}", number(value)),
        format!("got {}", number(s)),
    )
}

/// `expect ACTION ARGS... [template NAME]`: some action of that word (not
/// a shadow rule's) whose leading arguments match.
fn action_outcome(d: &Decision, word: &str, args: &[String], template: Option<&str>) -> Outcome {
    let mut seen = Vec::new();
    let held = d.actions.iter().any(|t| {
        let TakenKind::Action(a) = &t.what else {
            return false;
        };
        if t.shadow || a.name() != word {
            return false;
        }
        // A reply the daemon would not send is not a reply taken.
        if let Action::Reply {
            skipped: Some(why), ..
        } = a
        {
            seen.push(format!("reply (skipped: {why})"));
            return false;
        }
        let (got, got_template) = action_args(a);
        let shown: Vec<String> = got.iter().map(|s| format!("{s:?}")).collect();
        seen.push(format!("{word} {}", shown.join(" ")).trim_end().to_string());
        args.len() <= got.len()
            && args
                .iter()
                .zip(&got)
                .enumerate()
                .all(|(i, (w, g))| arg_matches(word, i, w, g))
            && template.is_none_or(|t| got_template.as_deref() == Some(t))
    });
    let mut want = word.to_string();
    for a in args {
        want.push_str(&format!(" {a:?}"));
    }
    if let Some(t) = template {
        want.push_str(&format!(" template {t}"));
    }
    let got = if seen.is_empty() {
        format!("no `{word}` action was taken")
    } else {
        format!("got {}", seen.join("; "))
    };
    (held, want, got)
}

/// `expect reject "text"`, `expect quarantine "reason"`, ...
fn verdict_action_outcome(d: &Decision, verdict: Verdict, args: &[String]) -> Outcome {
    let detail = match verdict {
        Verdict::Quarantine => d.quarantine_reason.clone(),
        _ => d.reply.as_ref().map(|r| r.text.clone()),
    };
    let held = d.verdict == verdict
        && args
            .first()
            .is_none_or(|a| detail.as_deref() == Some(a.as_str()));
    let mut want = verdict.as_str().to_string();
    for a in args {
        want.push_str(&format!(" {a:?}"));
    }
    let got = match detail {
        Some(text) => format!("got {} {text:?}", d.verdict.as_str()),
        None => format!("got {}", d.verdict.as_str()),
    };
    (held, want, got)
}
