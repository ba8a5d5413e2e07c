//! The native engine on hand-written rulesets: each test evaluates under
//! both engines and checks the decision is the same, plus what the
//! decision must be, so a bug shared by both engines fails too.

use std::sync::Arc;

use crate::common::*;
use weir_compiler::{Decision, EvalOptions, MemoryRates, NativeRuleset, Ruleset, Verdict};
use weir_stdlib::Transaction;

/// Evaluates under both engines (fresh counters each) and asserts the
/// decisions are equal; returns the native one.
fn both(r: &Ruleset, tx: &Transaction, opts: &EvalOptions) -> Decision {
    let native = NativeRuleset::compile(r).expect("native code on this host");
    let interp = r.evaluate(tx, &mut MemoryRates::default(), opts);
    let jit = native.evaluate(tx, &mut MemoryRates::default(), opts);
    assert_eq!(jit, interp);
    jit
}

fn explain() -> EvalOptions {
    EvalOptions {
        explain: true,
        dry_run: false,
    }
}

#[test]
fn verdict_ends_evaluation_and_earlier_actions_keep_effect() {
    let r = rules(
        r#"
rule a { then { tag "one"; score +2 } }
rule b { when subject contains "invoice" then { add_header "X-A" "1"; reject 551 "5.7.2" "no ${score}" } }
rule c { then tag "never" }
"#,
    );
    let d = both(&r, &tx(MAIL), &explain());
    assert_eq!(d.verdict, Verdict::Reject);
    assert_eq!(d.reply.as_ref().map(|r| r.text.as_str()), Some("no 2"));
    assert_eq!(d.tags, ["one"]);
    assert_eq!(d.decided_by.as_deref(), Some("b"));
    assert_eq!(d.matched, ["a", "b"]);
    assert_eq!(d.trace.len(), 2);
}

#[test]
fn shadow_rules_record_but_change_nothing() {
    let r = rules(
        r#"
rule s shadow { when subject contains "invoice" then { tag "s"; score +5; quarantine "q" } }
rule t { when matched(s) then tag "bad" else tag "ok" }
rule u { when score > 1 then tag "scored" }
"#,
    );
    let d = both(&r, &tx(MAIL), &explain());
    assert_eq!(d.verdict, Verdict::Accept);
    assert_eq!(d.tags, ["ok"]);
    assert_eq!(d.matched, ["s"]);
    assert_eq!(d.actions.len(), 4);
}

#[test]
fn stop_ends_evaluation_with_accept() {
    let r = rules(
        r#"
rule a priority 5 { when not (subject == "x") and (from.domain == "nope" or to.domain == "other.net") then { tag "a"; stop } }
rule b priority 1 { when false then tag "b" else { if score == 0 { tag "else" } } }
rule c { then discard }
"#,
    );
    let d = both(&r, &tx(MAIL), &explain());
    assert_eq!(d.verdict, Verdict::Accept);
    assert_eq!(d.tags, ["else", "a"]);
    assert_eq!(d.decided_by.as_deref(), Some("a"));
}

#[test]
fn captures_and_evidence_match_under_not() {
    let r = rules(
        r#"
rule a { when not (subject matches /zzz/) and subject matches /ticket #(\d+)/i as m then tag "t${m[1]}" }
rule b { when not not (to.domain == "other.net") then tag "b" }
"#,
    );
    let d = both(&r, &tx(MAIL), &explain());
    assert_eq!(d.tags, ["t1234", "b"]);
    assert!(d.trace.iter().all(|t| t.held));
    assert!(d.trace[0].evidence.is_some());
}

#[test]
fn rates_count_the_same_over_many_messages() {
    let r = rules(
        r#"
rule r { when rate("${from.domain}", 1h) > 2 then tag "busy" }
rule s shadow { when rate("x", 1h) > 0 then tag "x" }
"#,
    );
    let native = NativeRuleset::compile(&r).expect("native code");
    let (mut a, mut b) = (MemoryRates::default(), MemoryRates::default());
    let t = tx(MAIL);
    let mut busy = 0;
    for _ in 0..5 {
        let i = r.evaluate(&t, &mut a, &EvalOptions::default());
        let n = native.evaluate(&t, &mut b, &EvalOptions::default());
        assert_eq!(n, i);
        busy += usize::from(n.tags == ["busy"]);
    }
    assert_eq!(busy, 3);
}

#[test]
fn one_compiled_ruleset_serves_many_threads() {
    let r = rules(r#"rule a { when subject contains "42" then { tag "x"; fileinto "A/B" } }"#);
    let native = Arc::new(NativeRuleset::compile(&r).expect("native code"));
    let expected = r.evaluate(
        &tx(MAIL),
        &mut MemoryRates::default(),
        &EvalOptions::default(),
    );
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let native = Arc::clone(&native);
            std::thread::spawn(move || {
                let t = tx(MAIL);
                (0..50)
                    .map(|_| {
                        native.evaluate(&t, &mut MemoryRates::default(), &EvalOptions::default())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        for d in t.join().expect("no panic") {
            assert_eq!(d, expected);
        }
    }
    assert_eq!(expected.folder.as_deref(), Some("A/B"));
}

#[test]
fn empty_ruleset_accepts() {
    let r = rules("let x = 1\n");
    let d = both(&r, &tx(MAIL), &explain());
    assert_eq!(d.verdict, Verdict::Accept);
    assert!(d.matched.is_empty());
}

#[test]
fn leaves_are_the_non_boolean_tests() {
    let r = rules(
        r#"
rule a { then tag "a" }
rule b { when true and (subject == "a" or not matched(a)) then tag "x" }
"#,
    );
    let native = NativeRuleset::compile(&r).expect("native code");
    assert_eq!(native.leaf_count(), 2);
}

/// Both engines read a classifier's answer from the transaction: class,
/// confidence and any class's probability, through the prefilter's
/// equality tables and through ordinary leaf tests; a classifier without
/// an answer reads as one that has learned nothing.
#[test]
fn classifier_answers_are_read_by_both_engines() {
    use std::collections::BTreeMap;
    use weir_stdlib::{Classification, Classifications};
    let r = rules(
        r#"
classifier spam = learned ["spam", "ham"]
classifier triage = learned ["billing", "technical", "sales"]
rule junk { when spam.class == "spam" then fileinto "Junk" }
rule sure { when spam.confidence >= 0.9 then tag "sure ${spam.confidence}" }
rule p { when spam.probability("ham") > 0.5 then tag "hammy" }
rule route { when triage.class in ["billing", "sales"] then tag "queue ${triage.class}" }
rule none { when triage.class == "" then tag "no triage" }
"#,
    );
    assert_eq!(r.classifiers().len(), 2);
    assert_eq!(
        r.classifiers()[1].classes,
        ["billing", "technical", "sales"]
    );
    let mut t = tx(MAIL);
    let d = both(&r, &t, &EvalOptions::default());
    assert_eq!(d.tags, ["no triage"]);
    assert_eq!(d.folder, None);
    let mut answers = BTreeMap::new();
    answers.insert(
        "spam".to_string(),
        Classification {
            class: "spam".into(),
            confidence: 0.95,
            probabilities: vec![("spam".into(), 0.95), ("ham".into(), 0.05)],
        },
    );
    t.classes = Classifications::new(answers.clone());
    let d = both(&r, &t, &EvalOptions::default());
    assert_eq!(d.folder.as_deref(), Some("Junk"));
    assert_eq!(d.tags, ["sure 0.95", "no triage"]);
    answers.insert(
        "spam".to_string(),
        Classification {
            class: "".into(),
            confidence: 0.6,
            probabilities: vec![("spam".into(), 0.4), ("ham".into(), 0.6)],
        },
    );
    answers.insert(
        "triage".to_string(),
        Classification {
            class: "sales".into(),
            confidence: 0.8,
            probabilities: vec![],
        },
    );
    t.classes = Classifications::new(answers);
    let d = both(&r, &t, &EvalOptions::default());
    assert_eq!(d.folder, None);
    assert_eq!(d.tags, ["hammy", "queue sales"]);
}
