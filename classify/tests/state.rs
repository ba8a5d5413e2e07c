//! The learned state round-trips: whatever sequence of learns, moves and
//! forgets goes through the daemon's logged path (with the log folded
//! now and then) or through `Learner`, loading the state gives the model
//! that was learned in memory.

use proptest::prelude::*;
use weir_classify::{Learner, LoggedLearn, MemoryState, Model, learn_logged, state};

/// A message: a few distinct features from a small space, so messages
/// repeat (learned twice, moved).
fn message() -> impl Strategy<Value = Vec<u64>> {
    proptest::collection::btree_set(0u64..40, 1..6).prop_map(|s| s.into_iter().collect())
}

fn step() -> impl Strategy<Value = (Vec<u64>, &'static str, bool)> {
    (
        message(),
        prop_oneof![Just("spam"), Just("ham")],
        any::<bool>(),
    )
}

fn answers(model: &Model, probes: &[Vec<u64>]) -> Vec<String> {
    let classes = vec!["spam".to_string(), "ham".to_string()];
    probes
        .iter()
        .map(|p| format!("{:?}", model.classify(&classes, p)))
        .collect()
}

proptest! {
    #[test]
    fn logged_learning_and_folding_round_trip(steps in proptest::collection::vec(step(), 1..60)) {
        let state = MemoryState::default();
        let mut model = Model::default();
        for (i, (features, class, forget)) in steps.iter().enumerate() {
            let update = LoggedLearn {
                features,
                class,
                forget: *forget && i % 3 == 0,
                seq: 2 * i as u64 + 2,
                fold_after: 4,
            };
            learn_logged(&state, "spam", &mut model, &update).unwrap();
        }
        let loaded = state::load(&state, "spam").unwrap();
        let probes: Vec<Vec<u64>> = (0..40u64).map(|f| vec![f, (f + 7) % 40]).collect();
        prop_assert_eq!(answers(&loaded, &probes), answers(&model, &probes));
        prop_assert_eq!(loaded.learned().collect::<Vec<_>>(), model.learned().collect::<Vec<_>>());
    }

    #[test]
    fn learner_counts_each_message_once(steps in proptest::collection::vec(step(), 1..60)) {
        let state = MemoryState::default();
        let mut learner = Learner::open(&state, "spam").unwrap();
        let mut last: std::collections::BTreeMap<Vec<u64>, &str> = Default::default();
        for (features, class, _) in &steps {
            learner.learn_features(features, class, false).unwrap();
            last.insert(features.clone(), class);
        }
        learner.save().unwrap();
        let loaded = state::load(&state, "spam").unwrap();
        let count = |c: &str| last.values().filter(|v| **v == c).count() as u64;
        let learned: Vec<(String, u64)> = loaded.learned().map(|(c, n)| (c.to_string(), n)).collect();
        for (class, n) in learned {
            prop_assert_eq!(n, count(&class), "{}", class);
        }
    }
}
