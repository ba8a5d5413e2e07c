//! The answers of a ruleset's learned classifiers for one message
//! (docs/language.md ("Classifiers")). Rules read them as
//! `NAME.class`, `NAME.confidence` and `NAME.probability("class")`; they
//! are computed before evaluation by the caller that holds the learned
//! state (`weir run --state`, `weir serve`) or set by a test's `classify`
//! line, so every engine reads the same values.

use std::collections::BTreeMap;
use std::sync::Arc;

/// One classifier's answer for one message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Classification {
    /// The most probable class, or `""` while the classifier has learned
    /// too little or is unsure.
    pub class: String,
    /// The probability of the most probable class (0 while it has learned
    /// too little).
    pub confidence: f64,
    /// Every class with its probability, in declaration order.
    pub probabilities: Vec<(String, f64)>,
}

impl Classification {
    /// The probability of `class`, 0 when it is not known.
    pub fn probability(&self, class: &str) -> f64 {
        self.probabilities
            .iter()
            .find(|(c, _)| c == class)
            .map_or(0.0, |(_, p)| *p)
    }
}

/// The answers of every classifier of a ruleset for one message, by name.
/// A classifier without an answer reads as one that has learned nothing:
/// class `""`, confidence 0, every probability 0.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Classifications(Arc<BTreeMap<String, Classification>>);

impl Classifications {
    /// The answers given.
    pub fn new(answers: BTreeMap<String, Classification>) -> Classifications {
        Classifications(Arc::new(answers))
    }

    /// The answer of the classifier `name`, if it gave one.
    pub fn get(&self, name: &str) -> Option<&Classification> {
        self.0.get(name)
    }

    /// Every answer, by classifier name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Classification)> {
        self.0.iter()
    }
}
