//! Autolearn (docs/classifiers.md "Autolearn"): the daemon teaches its
//! classifiers from its own decisions, as `[classifiers.NAME.autolearn.CLASS]`
//! says. It runs after the decision is recorded, in a blocking task nobody
//! waits for, so it never delays, changes or fails a message: what it could
//! not learn is logged and counted (`weir_autolearn_total`). The digest
//! records make a message count once however many times it is learned.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use weir_compiler::{Decision, Ruleset};
use weir_stdlib::Message;

use crate::config::Config;
use crate::state::Daemon;

/// Autolearn tasks waiting or running at most; a message arriving while
/// this many are pending is not learned (`busy`), so a flood cannot pile
/// up threads.
const MAX_PENDING: usize = 64;

static PENDING: AtomicUsize = AtomicUsize::new(0);

/// What autolearn did with one message for one classifier: the
/// `outcome` label of `weir_autolearn_total`.
pub const OUTCOMES: [&str; 7] = [
    "learned",
    "moved",
    "already_learned",
    "skipped_confident",
    "conflict",
    "busy",
    "error",
];

/// One class to teach one classifier.
#[derive(Debug, Clone)]
struct Lesson {
    classifier: String,
    class: String,
    classes: Vec<String>,
    skip_above: f64,
}

/// The errors of `[classifiers]` against a ruleset: each classifier must
/// be one it declares, each class one of its classes, each `rule` one of
/// its rules. Checked at load and reload, like notify channels.
pub fn check(ruleset: &Ruleset, config: &Config) -> Vec<String> {
    let mut errors = Vec::new();
    let declared = ruleset.classifiers();
    let rules: Vec<&str> = ruleset.rules().iter().map(|r| r.name.as_str()).collect();
    let hint = |wrong: &str, names: &mut dyn Iterator<Item = &str>| {
        weir_compiler::hints::did_you_mean(wrong, names)
            .map(|h| format!(" ({h})"))
            .unwrap_or_default()
    };
    for (name, c) in config
        .classifiers
        .iter()
        .filter(|(_, c)| !c.autolearn.is_empty())
    {
        let Some(info) = declared.iter().find(|d| &d.name == name) else {
            let h = hint(name, &mut declared.iter().map(|d| d.name.as_str()));
            errors.push(format!(
                "[classifiers.{name}]: the rules declare no classifier {name:?}{h}"
            ));
            continue;
        };
        for (class, when) in &c.autolearn {
            if !info.classes.contains(class) {
                let h = hint(class, &mut info.classes.iter().map(String::as_str));
                errors.push(format!(
                    "[classifiers.{name}.autolearn.{class}]: classifier {name:?} has no class {class:?}{h}; its classes are {}",
                    info.classes.join(", ")
                ));
            }
            for rule in when.rules.iter().filter(|r| !rules.contains(&r.as_str())) {
                let h = hint(rule, &mut rules.iter().copied());
                errors.push(format!(
                    "[classifiers.{name}.autolearn.{class}] rule: the rules have no rule {rule:?}{h}"
                ));
            }
        }
    }
    errors
}

/// What the decisions of one message teach: per classifier, the one class
/// whose condition holds for some decision. A classifier for which two
/// classes hold learns nothing (`conflict`).
fn lessons(daemon: &Daemon, ruleset: &Ruleset, decisions: &[&Decision]) -> Vec<Lesson> {
    let config = daemon.config();
    let shadow = |rule: &str| ruleset.rules().iter().any(|r| r.name == rule && r.shadow);
    let mut out = Vec::new();
    for (name, c) in &config.classifiers {
        let Some(info) = ruleset.classifiers().iter().find(|d| &d.name == name) else {
            continue;
        };
        let held: Vec<(&String, f64)> = c
            .autolearn
            .iter()
            .filter(|(_, w)| decisions.iter().any(|d| w.holds(d, shadow)))
            .map(|(class, w)| (class, w.skip_above))
            .collect();
        match held.as_slice() {
            [] => {}
            [(class, skip_above)] => out.push(Lesson {
                classifier: name.clone(),
                class: (*class).clone(),
                classes: info.classes.clone(),
                skip_above: *skip_above,
            }),
            _ => {
                tracing::info!(
                    "autolearn: {name}: the decision teaches {} at once: learned nothing",
                    held.iter()
                        .map(|(c, _)| c.as_str())
                        .collect::<Vec<_>>()
                        .join(" and ")
                );
                for (class, _) in held {
                    daemon.metrics.autolearned(name, class, "conflict");
                }
            }
        }
    }
    out
}

/// After the decisions of one message are recorded: learns what they
/// teach, in a task of its own (`message` builds the message there).
/// Returns at once. Deferred decisions (`tempfail`) teach nothing, nor do
/// decisions no rule made (no rule matched: the daemon's own `on_error`
/// and `on_limit` answers among them).
pub fn after_decisions(
    daemon: &Arc<Daemon>,
    ruleset: &Ruleset,
    decisions: &[&Decision],
    message: impl FnOnce() -> Option<Arc<Message>> + Send + 'static,
) {
    if daemon.config().classifiers.is_empty() {
        return;
    }
    let decided: Vec<&Decision> = decisions
        .iter()
        .copied()
        .filter(|d| d.verdict != weir_compiler::Verdict::Tempfail && !d.matched.is_empty())
        .collect();
    let lessons = lessons(daemon, ruleset, &decided);
    if lessons.is_empty() {
        return;
    }
    if PENDING.fetch_add(1, Ordering::SeqCst) >= MAX_PENDING {
        PENDING.fetch_sub(1, Ordering::SeqCst);
        for l in &lessons {
            daemon.metrics.autolearned(&l.classifier, &l.class, "busy");
        }
        tracing::warn!("autolearn: {MAX_PENDING} messages waiting to be learned: this one is not");
        return;
    }
    let daemon = Arc::clone(daemon);
    tokio::task::spawn_blocking(move || {
        match message() {
            Some(m) => {
                for lesson in &lessons {
                    learn(&daemon, lesson, &m);
                }
            }
            None => {
                for l in &lessons {
                    daemon.metrics.autolearned(&l.classifier, &l.class, "error");
                }
            }
        }
        PENDING.fetch_sub(1, Ordering::SeqCst);
    });
}

/// Learns one lesson unless the classifier already gives the class
/// `skip_above` or more; logs and counts what happened.
fn learn(daemon: &Daemon, lesson: &Lesson, message: &Message) {
    let (name, class) = (&lesson.classifier, &lesson.class);
    let outcome =
        daemon
            .learned
            .autolearn(name, class, &lesson.classes, message, lesson.skip_above);
    let word = match outcome {
        Ok(None) => "skipped_confident",
        Ok(Some(weir_classify::Outcome::Learned)) => "learned",
        Ok(Some(weir_classify::Outcome::Moved(_))) => "moved",
        Ok(Some(_)) => "already_learned",
        Err(e) => {
            tracing::error!("autolearn: {name} {class}: cannot store what was learned: {e}");
            "error"
        }
    };
    tracing::debug!("autolearn: {name} {class}: {word}");
    daemon.metrics.autolearned(name, class, word);
}
