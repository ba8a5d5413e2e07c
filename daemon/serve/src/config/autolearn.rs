//! `[classifiers.NAME.autolearn.CLASS]` (docs/classifiers.md
//! "Autolearn"): which of the daemon's own decisions teach a class of a
//! learned classifier. Off unless configured. Checked here for what the
//! file alone can say; the classifier, its classes and the rule names are
//! checked against the ruleset at load and reload (`autolearn.rs`).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;
use weir_compiler::{Decision, Verdict};

use super::check::Checker;

type S = Spanned<String>;

/// The default `skip_above`: a message the classifier already puts in the
/// class with at least this probability teaches it nothing new.
pub const DEFAULT_SKIP_ABOVE: f64 = 0.95;

/// `[classifiers.NAME]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassifierConfig {
    /// `[classifiers.NAME.autolearn.CLASS]`, by class (empty: autolearn
    /// is off for this classifier).
    pub autolearn: BTreeMap<String, LearnWhen>,
}

/// `[classifiers.NAME.autolearn.CLASS]`: the decisions that teach CLASS.
/// A decision teaches it when any one condition holds.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnWhen {
    /// `verdict`: the decision's verdict is one of these.
    pub verdicts: Vec<Verdict>,
    /// `rule`: one of these (non-shadow) rules matched.
    pub rules: Vec<String>,
    /// `tag`: one of these tags was applied.
    pub tags: Vec<String>,
    /// `min_score`: the decision's score is at least this.
    pub min_score: Option<f64>,
    /// `max_score`: the decision's score is at most this.
    pub max_score: Option<f64>,
    /// `skip_above`: not learned when the classifier already gives the
    /// class this probability or more.
    pub skip_above: f64,
}

impl LearnWhen {
    /// Whether `decision` teaches the class; `shadow` tells the ruleset's
    /// shadow rules (their matches have no effect, so teach nothing).
    pub fn holds(&self, decision: &Decision, shadow: impl Fn(&str) -> bool) -> bool {
        self.verdicts.contains(&decision.verdict)
            || decision
                .matched
                .iter()
                .any(|r| self.rules.iter().any(|x| x == r) && !shadow(r))
            || decision
                .tags
                .iter()
                .any(|t| self.tags.iter().any(|x| x == t))
            || self.min_score.is_some_and(|m| decision.score >= m)
            || self.max_score.is_some_and(|m| decision.score <= m)
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RawClassifier {
    #[serde(default)]
    autolearn: BTreeMap<String, RawLearnWhen>,
}

#[derive(Debug, Deserialize)]
struct RawLearnWhen {
    verdict: Option<Vec<S>>,
    rule: Option<Vec<S>>,
    tag: Option<Vec<S>>,
    min_score: Option<Spanned<f64>>,
    max_score: Option<Spanned<f64>>,
    skip_above: Option<Spanned<f64>>,
}

impl Checker<'_> {
    /// `[classifiers.NAME]`.
    pub(super) fn classifier(&self, name: &str, raw: RawClassifier) -> ClassifierConfig {
        let autolearn = raw
            .autolearn
            .into_iter()
            .map(|(class, w)| {
                let table = format!("classifiers.{name}.autolearn.{class}");
                let when = self.learn_when(&table, w);
                (class, when)
            })
            .collect();
        ClassifierConfig { autolearn }
    }

    fn learn_when(&self, t: &str, w: RawLearnWhen) -> LearnWhen {
        let given = w.verdict.as_ref().is_some_and(|v| !v.is_empty())
            || w.rule.as_ref().is_some_and(|v| !v.is_empty())
            || w.tag.as_ref().is_some_and(|v| !v.is_empty())
            || w.min_score.is_some()
            || w.max_score.is_some();
        if !given {
            self.errors.borrow_mut().push(super::ConfigError {
                file: self.name.to_string(),
                table: Some(t.to_string()),
                key: None,
                line: None,
                column: None,
                message: "names no decision that teaches the class: add verdict, rule, tag, \
                          min_score or max_score"
                    .into(),
            });
        }
        let verdicts = w
            .verdict
            .iter()
            .flatten()
            .filter_map(|v| {
                autolearn_verdict(v.get_ref())
                    .map_err(|m| self.report(t, "verdict", v, m))
                    .ok()
            })
            .collect();
        let names = |list: Option<Vec<S>>, key: &str| -> Vec<String> {
            list.into_iter()
                .flatten()
                .filter_map(|v| {
                    nonblank(v.get_ref())
                        .map_err(|m| self.report(t, key, &v, m))
                        .ok()
                })
                .collect()
        };
        let rules = names(w.rule, "rule");
        let tags = names(w.tag, "tag");
        let score = |v: Option<Spanned<f64>>, key: &str| {
            v.and_then(|v| {
                if v.get_ref().is_finite() {
                    Some(*v.get_ref())
                } else {
                    self.report(
                        t,
                        key,
                        &v,
                        format!("expected a number, got {}", v.get_ref()),
                    );
                    None
                }
            })
        };
        let min_score = score(w.min_score, "min_score");
        let max_score = score(w.max_score, "max_score");
        let skip_above = match w.skip_above {
            Some(v) if *v.get_ref() > 0.0 && *v.get_ref() <= 1.0 => *v.get_ref(),
            Some(v) => {
                let m = format!(
                    "expected a probability above 0 and at most 1, got {}",
                    v.get_ref()
                );
                self.report(t, "skip_above", &v, m);
                DEFAULT_SKIP_ABOVE
            }
            None => DEFAULT_SKIP_ABOVE,
        };
        LearnWhen {
            verdicts,
            rules,
            tags,
            min_score,
            max_score,
            skip_above,
        }
    }
}

/// A verdict that can teach a class. `tempfail` cannot: the MTA brings a
/// deferred message back, and it is decided again then.
fn autolearn_verdict(word: &str) -> Result<Verdict, String> {
    match Verdict::ALL.iter().find(|v| v.as_str() == word) {
        Some(Verdict::Tempfail) => Err(
            "tempfail teaches nothing (a deferred message comes back and is decided again): \
             expected one of accept, reject, discard, quarantine"
                .into(),
        ),
        Some(v) => Ok(*v),
        None => Err(format!(
            "expected one of accept, reject, discard, quarantine, got {word:?}"
        )),
    }
}

fn nonblank(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("expected a name, got \"\"".into())
    } else {
        Ok(text.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    const BASE: &str = "rules = \"a.flow\"\nstate_dir = \"s\"\n";

    fn parse(extra: &str) -> Result<Config, String> {
        Config::parse(&format!("{BASE}{extra}"), "weir.toml", Path::new(""), None)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn autolearn_is_off_unless_configured() {
        assert!(parse("").expect("valid").classifiers.is_empty());
    }

    #[test]
    fn each_class_names_the_decisions_that_teach_it() {
        let c = parse(
            "[classifiers.spam.autolearn.spam]\nverdict = [\"reject\", \"quarantine\"]\nrule = [\"dnsbl\"]\nmin_score = 10\n\
             [classifiers.spam.autolearn.ham]\nmax_score = -2.5\nskip_above = 0.9\ntag = [\"trusted\"]\n",
        )
        .expect("valid");
        let spam = &c.classifiers["spam"].autolearn;
        assert_eq!(
            spam["spam"],
            LearnWhen {
                verdicts: vec![Verdict::Reject, Verdict::Quarantine],
                rules: vec!["dnsbl".into()],
                tags: vec![],
                min_score: Some(10.0),
                max_score: None,
                skip_above: DEFAULT_SKIP_ABOVE,
            }
        );
        assert_eq!(spam["ham"].max_score, Some(-2.5));
        assert_eq!(spam["ham"].skip_above, 0.9);
        assert_eq!(spam["ham"].tags, vec!["trusted".to_string()]);
    }

    #[test]
    fn a_condition_holds_for_a_matching_decision_and_shadow_rules_teach_nothing() {
        let when = LearnWhen {
            verdicts: vec![Verdict::Reject],
            rules: vec!["dnsbl".into()],
            tags: vec![],
            min_score: Some(5.0),
            max_score: None,
            skip_above: 0.95,
        };
        let mut d = Decision::new(Verdict::Accept, None, weir_stdlib::Stage::Body);
        assert!(!when.holds(&d, |_| false));
        d.score = 5.0;
        assert!(when.holds(&d, |_| false));
        d.score = 0.0;
        d.matched = vec!["dnsbl".into()];
        assert!(when.holds(&d, |_| false));
        assert!(
            !when.holds(&d, |_| true),
            "a shadow rule's match teaches nothing"
        );
        d.verdict = Verdict::Reject;
        assert!(when.holds(&d, |_| true));
    }

    #[test]
    fn bad_autolearn_values_are_each_reported_with_their_place() {
        let err = parse(
            "[classifiers.spam.autolearn.spam]\nverdict = [\"tempfail\", \"rejct\"]\nskip_above = 1.5\n\
             [classifiers.spam.autolearn.ham]\nskip_above = 0.5\n",
        )
        .expect_err("bad values");
        for want in [
            "[classifiers.spam.autolearn.spam] verdict: tempfail teaches nothing",
            "[classifiers.spam.autolearn.spam] verdict: expected one of accept, reject, discard, quarantine, got \"rejct\" (line 4,",
            "[classifiers.spam.autolearn.spam] skip_above: expected a probability above 0 and at most 1, got 1.5 (line 5,",
            "[classifiers.spam.autolearn.ham] names no decision that teaches the class",
        ] {
            assert!(err.contains(want), "{want}\n---\n{err}");
        }
    }

    #[test]
    fn unknown_autolearn_keys_and_wrong_kinds_are_each_reported() {
        let err = parse(
            "[classifiers.spam.autolearn.spam]\nrules = [\"x\"]\n\
             [classifiers.triage.autolearn.billing]\nverdict = \"reject\"\ntag = [\"a\", 3]\n\
             [classifiers.triage]\nautolern = 1\n",
        )
        .expect_err("bad keys");
        for want in [
            "[classifiers.spam.autolearn.spam] rules: unknown key, did you mean `rule`? (line 4,",
            "[classifiers.triage.autolearn.billing] verdict: expected an array of strings, got a string (line 6,",
            "[classifiers.triage.autolearn.billing] tag: expected an array of strings, got an integer in it (line 7,",
            "[classifiers.triage] autolern: unknown key, did you mean `autolearn`? (line 9,",
        ] {
            assert!(err.contains(want), "{want}\n---\n{err}");
        }
    }

    /// The first ```toml block after `heading` in a doc.
    fn toml_block<'a>(doc: &'a str, heading: &str) -> &'a str {
        let from = &doc[doc.find(heading).expect("heading")..];
        let start = from.find("```toml\n").expect("a toml block") + 8;
        let len = from[start..].find("```").expect("its end");
        &from[start..start + len]
    }

    #[test]
    fn the_documented_autolearn_tables_parse() {
        let serve = include_str!("../../../../docs/serve.md");
        // The example's Maildir owner need not exist on this machine.
        let example = toml_block(serve, "## Configuration").replace("\"vmail\"", "\"0\"");
        let c = Config::parse(&example, "weir.toml", Path::new(""), None)
            .expect("docs/serve.md's example parses");
        assert_eq!(c.classifiers["spam"].autolearn["ham"].max_score, Some(-5.0));
        let classifiers = include_str!("../../../../docs/classifiers.md");
        let c = parse(toml_block(classifiers, "## Autolearn")).expect("classifiers.md's parses");
        assert_eq!(
            c.classifiers["spam"].autolearn["spam"].verdicts,
            vec![Verdict::Reject, Verdict::Quarantine]
        );
    }
}
