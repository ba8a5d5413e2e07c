//! Runs of rules the generated code passes over with one test: most of a
//! large ruleset is rules like `when subject contains "x" then tag "y"`,
//! of which a message holds a few dozen among thousands. Walking each one
//! costs a few loads and branches (at 10,000 rules, a tenth to a fifth of
//! an evaluation); a run of them, a *skip*, costs one byte and its
//! groups' flags when none of its rules can hold.
//!
//! A rule can be in a skip when it is quiet (every test answered by the
//! prefilter, no `else`: it needs the host only when its condition holds,
//! `codegen.rs`) and its condition has *triggers*: leaves answered
//! [`Answer::Scanned`] (true exactly when a value of their group passed
//! them) such that, with all of them false, the condition is false
//! ([`triggers`]). A skip's byte in the answer table, after the groups',
//! is written 2 by the host when a trigger of one of its rules passes
//! (`prefilter::Scan::write_passed`). The code tests it and then the
//! flags of the groups its triggers belong to:
//!
//! ```text
//! if skip byte != 2 and every group of its triggers scanned { jump past it }
//! <its rules, as without the skip>
//! ```
//!
//! One more byte, after the skips', is 1 once every group some skip
//! tests has been scanned, which a few rules into the ruleset is most
//! often so: the test is then two bytes, whatever the groups.
//!
//! **Invariant**: a skip is jumped over only when every trigger of its
//! rules is known false, so every one of its rules would fail, and a quiet
//! rule that fails does nothing the interpreter could observe (the stage
//! it reaches is added by the host after the run). A group not yet
//! scanned makes the code walk the rules, which then scan it as before:
//! which groups a message scans, and when, does not change.

use super::codegen::RulePlan;
use super::cond::Cond;
use super::prefilter::Answer;

/// Fewer rules in a run than this are walked as they are: testing the
/// skip would cost about what it saves.
const MIN_RULES: usize = 4;

/// The most rules in one skip: a skip any of whose rules may hold walks
/// them all, but each skip costs its test. At 10,000 generated rules the
/// generated code's share of an evaluation was 13 % with 8, 7 % with 16
/// and 5 % with 32 (`benches/README.md`, round sixteen).
const MAX_RULES: usize = 32;

/// The most groups one skip tests the flags of.
const MAX_GROUPS: usize = 8;

/// A ruleset's skips, and where the code reads whether every group they
/// test has been scanned (a skip then need not test its groups' flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Skips {
    /// In evaluation order.
    pub runs: Vec<Skip>,
    /// The answer-table byte that is 1 once every group some skip tests
    /// has been scanned.
    pub every_group: u32,
}

/// A run of consecutive rules the code may pass over in one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skip {
    /// Its first rule, by index in evaluation order.
    pub first: usize,
    /// How many rules it holds.
    pub len: usize,
    /// Its byte in the answer table: 2 once a trigger of one of its rules
    /// passed.
    pub byte: u32,
    /// The answer-table bytes of the groups its triggers belong to: each
    /// must say "scanned" before the skip's byte can be trusted.
    pub groups: Vec<u32>,
    /// The triggers of its rules, by leaf id.
    pub triggers: Vec<u32>,
}

/// The skips of `rules` (in evaluation order, none across a multiple of
/// `chunk`, where one generated function ends and the next begins), their
/// bytes numbered from `first_byte` on.
pub(crate) fn plan(
    rules: &[RulePlan],
    answer: &dyn Fn(u32) -> Answer,
    chunk: usize,
    first_byte: u32,
) -> Vec<Skip> {
    let mut skips = Vec::new();
    let mut run: Option<Skip> = None;
    for (index, rule) in rules.iter().enumerate() {
        let found = skippable(rule, answer);
        let fits = |s: &Skip, (_, groups): &(Vec<u32>, Vec<u32>)| {
            index % chunk != 0 && s.len < MAX_RULES && union_len(&s.groups, groups) <= MAX_GROUPS
        };
        match (run.as_mut(), found) {
            (Some(s), Some(found)) if fits(s, &found) => {
                s.len += 1;
                s.triggers.extend(found.0);
                for g in found.1 {
                    if !s.groups.contains(&g) {
                        s.groups.push(g);
                    }
                }
            }
            (_, found) => {
                close(&mut run, &mut skips, first_byte);
                run = found.map(|(triggers, groups)| Skip {
                    first: index,
                    len: 1,
                    byte: 0,
                    groups,
                    triggers,
                });
            }
        }
    }
    close(&mut run, &mut skips, first_byte);
    skips
}

/// Keeps the run in `run`, if long enough, with the next byte.
fn close(run: &mut Option<Skip>, skips: &mut Vec<Skip>, first_byte: u32) {
    let Some(mut s) = run.take().filter(|s| s.len >= MIN_RULES) else {
        return;
    };
    let Some(byte) = u32::try_from(skips.len())
        .ok()
        .and_then(|n| first_byte.checked_add(n))
    else {
        return;
    };
    s.byte = byte;
    skips.push(s);
}

/// How many distinct groups `a` and `b` have together.
fn union_len(a: &[u32], b: &[u32]) -> usize {
    a.len() + b.iter().filter(|g| !a.contains(g)).count()
}

/// A rule's triggers and their groups' bytes, if it can be in a skip.
fn skippable(rule: &RulePlan, answer: &dyn Fn(u32) -> Answer) -> Option<(Vec<u32>, Vec<u32>)> {
    if !rule.quiet(answer) {
        return None;
    }
    let leaves = triggers(rule.cond.as_ref()?, answer)?;
    let mut groups = Vec::new();
    // Triggers are answered `Scanned`: each has its group's byte.
    for &leaf in &leaves {
        if let Answer::Scanned { scanned } = answer(leaf)
            && !groups.contains(&scanned)
        {
            groups.push(scanned);
        }
    }
    Some((leaves, groups))
}

/// Leaves answered [`Answer::Scanned`] such that, when none of them holds,
/// `c` does not hold; `None` when there is no such set (a `not`, a leaf
/// answered otherwise, a constant `true`).
pub(crate) fn triggers(c: &Cond, answer: &dyn Fn(u32) -> Answer) -> Option<Vec<u32>> {
    match c {
        Cond::Const(false) => Some(Vec::new()),
        Cond::Const(true) | Cond::Not(_) => None,
        Cond::Leaf(id) => matches!(answer(*id), Answer::Scanned { .. }).then(|| vec![*id]),
        // Either side false makes `a and b` false: the side with fewer.
        Cond::And(a, b) => match (triggers(a, answer), triggers(b, answer)) {
            (Some(x), Some(y)) => Some(if y.len() < x.len() { y } else { x }),
            (x, y) => x.or(y),
        },
        // Both sides must be false.
        Cond::Or(a, b) => {
            let mut x = triggers(a, answer)?;
            x.extend(triggers(b, answer)?);
            Some(x)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Leaves 0 to 9 scanned in group byte 100 + leaf / 4; 10 and up
    /// answered by their byte alone.
    fn answer(leaf: u32) -> Answer {
        if leaf < 10 {
            Answer::Scanned {
                scanned: 100 + leaf / 4,
            }
        } else {
            Answer::Byte
        }
    }

    fn leaf(id: u32) -> Box<Cond> {
        Box::new(Cond::Leaf(id))
    }

    #[test]
    fn triggers_are_leaves_whose_falsity_makes_the_condition_false() {
        let t = |c: &Cond| triggers(c, &answer);
        assert_eq!(t(&Cond::Leaf(3)), Some(vec![3]));
        assert_eq!(t(&Cond::Leaf(12)), None);
        assert_eq!(t(&Cond::And(leaf(12), leaf(3))), Some(vec![3]));
        assert_eq!(
            t(&Cond::And(Box::new(Cond::Or(leaf(1), leaf(2))), leaf(3))),
            Some(vec![3])
        );
        assert_eq!(t(&Cond::Or(leaf(1), leaf(2))), Some(vec![1, 2]));
        assert_eq!(t(&Cond::Or(leaf(1), leaf(12))), None);
        assert_eq!(t(&Cond::Not(leaf(1))), None);
        assert_eq!(t(&Cond::Const(false)), Some(vec![]));
        assert_eq!(t(&Cond::Const(true)), None);
    }

    /// With every trigger false, the condition is false, whatever the
    /// other leaves are: checked on every assignment of the five leaves
    /// the conditions use.
    #[test]
    fn a_condition_without_a_true_trigger_fails() {
        fn holds(c: &Cond, truth: u32) -> bool {
            match c {
                Cond::Const(b) => *b,
                Cond::And(a, b) => holds(a, truth) && holds(b, truth),
                Cond::Or(a, b) => holds(a, truth) || holds(b, truth),
                Cond::Not(a) => !holds(a, truth),
                Cond::Leaf(id) => truth & (1 << id) != 0,
            }
        }
        let conds = [
            Cond::And(leaf(1), Box::new(Cond::Or(leaf(2), leaf(12)))),
            Cond::Or(Box::new(Cond::And(leaf(1), leaf(13))), leaf(2)),
            Cond::And(Box::new(Cond::Not(leaf(3))), leaf(2)),
            Cond::Or(leaf(1), Box::new(Cond::Const(false))),
            Cond::And(leaf(13), Box::new(Cond::Or(leaf(3), leaf(1)))),
        ];
        let leaves = [1u32, 2, 3, 12, 13];
        for c in &conds {
            let t = triggers(c, &answer).expect("has triggers");
            for assignment in 0..1u32 << leaves.len() {
                let truth = (0..leaves.len())
                    .filter(|k| assignment & (1 << k) != 0)
                    .fold(0, |truth, k| truth | (1 << leaves[k]));
                if t.iter().all(|&l| truth & (1 << l) == 0) {
                    assert!(!holds(c, truth), "{c:?} with {truth:b}");
                }
            }
        }
    }

    fn quiet(cond: Cond) -> RulePlan {
        RulePlan {
            cond: Some(cond),
            otherwise: false,
        }
    }

    #[test]
    fn skips_hold_runs_of_quiet_rules_within_a_chunk() {
        let mut rules: Vec<RulePlan> = (0..6).map(|i| quiet(Cond::Leaf(i % 10))).collect();
        // A rule with an `else` ends a run; one answered by its byte too.
        rules.push(RulePlan {
            cond: Some(Cond::Leaf(1)),
            otherwise: true,
        });
        rules.extend((0..3).map(|i| quiet(Cond::Leaf(i))));
        rules.push(quiet(Cond::Leaf(11)));
        rules.extend((0..40).map(|i| quiet(Cond::Leaf(i % 10))));
        let skips = plan(&rules, &answer, 48, 500);
        let spans: Vec<(usize, usize, u32)> =
            skips.iter().map(|s| (s.first, s.len, s.byte)).collect();
        // 0..6; 7..10 is too short; 11..51 in runs of at most 32, none
        // across rule 48, and the last three too few.
        assert_eq!(spans, [(0, 6, 500), (11, MAX_RULES, 501), (43, 5, 502)]);
        assert_eq!(skips[0].groups, [100, 101]);
        assert_eq!(skips[0].triggers, [0, 1, 2, 3, 4, 5]);
    }
}
