//! The model: for each feature, how many learned messages of each class
//! had it, and how many messages each class learned. A message is
//! classified as SpamAssassin's Bayes does, one class against the rest:
//! each known feature's probability is Robinson's smoothed ratio of its
//! frequencies in the class and in the others, the strongest features are
//! combined with Fisher's chi-square method into an indicator per class,
//! and the indicators, raised to a fixed power (the sharpness) and
//! normalised, are the classes' probabilities. With two classes and a
//! sharpness of 1 this is exactly SpamAssassin's combining; the power
//! only stretches the scale, so the order of messages by probability is
//! the same.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use weir_stdlib::Classification;

/// Each declared class must have learned this many messages before the
/// classifier answers (docs/language.md ("Classifiers")).
pub const MIN_PER_CLASS: u64 = 10;

/// `.class` is the most probable class when its probability is at least
/// this; below, the classifier is unsure and `.class` is `""`.
pub const CUT: f64 = 0.9;

/// The constants of the combining, measured on the SpamAssassin corpus
/// (benches/README.md).
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Robinson's strength of the prior belief (`s`).
    pub s: f64,
    /// Robinson's prior probability of an unseen feature (`x`).
    pub x: f64,
    /// Features whose probability is within this of 0.5 are left out.
    pub min_strength: f64,
    /// At most this many features, the strongest, decide.
    pub max_features: usize,
    /// The indicators are raised to this power before they are
    /// normalised: a monotone stretch that puts [`CUT`] where few false
    /// positives remain (the indicators of a small `s` crowd near 0.5).
    pub sharpness: f64,
}

/// The tuning every caller uses.
pub const TUNING: Tuning = Tuning {
    s: 0.4,
    x: 0.5,
    min_strength: 0.346,
    max_features: 150,
    sharpness: 4.0,
};

/// The features are hashes already: a multiply is hashing enough.
#[derive(Default)]
pub(crate) struct FeatureHasher(u64);

impl Hasher for FeatureHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Index = HashMap<u64, u32, BuildHasherDefault<FeatureHasher>>;

/// What one classifier learned.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// The classes learned so far, in the order first learned.
    pub(crate) classes: Vec<String>,
    /// Messages learned per class.
    pub(crate) messages: Vec<u64>,
    /// Feature → its row in `counts`.
    index: Index,
    /// Rows of `classes.len()` counts, one row per feature.
    counts: Vec<u32>,
}

impl Model {
    /// The classes it learned, with how many messages each.
    pub fn learned(&self) -> impl Iterator<Item = (&str, u64)> {
        self.classes
            .iter()
            .map(String::as_str)
            .zip(self.messages.iter().copied())
    }

    /// How many distinct features it keeps.
    pub fn vocabulary(&self) -> usize {
        self.index.len()
    }

    /// The column of `class`, added when new.
    pub(crate) fn class_index(&mut self, class: &str) -> usize {
        if let Some(i) = self.classes.iter().position(|c| c == class) {
            return i;
        }
        let old = self.classes.len();
        let new = old + 1;
        let mut counts = Vec::with_capacity(self.index.len() * new);
        for row in self.counts.chunks(old.max(1)).take(self.index.len()) {
            counts.extend_from_slice(&row[..old]);
            counts.push(0);
        }
        self.counts = counts;
        self.classes.push(class.to_string());
        self.messages.push(0);
        old
    }

    /// Adds (`delta` 1) or removes (`delta` -1) one message of `class`
    /// with these distinct features.
    pub fn add(&mut self, class: &str, features: &[u64], delta: i32) {
        let column = self.class_index(class);
        let width = self.classes.len();
        self.messages[column] = self.messages[column].saturating_add_signed(i64::from(delta));
        for &f in features {
            let row = match self.index.get(&f) {
                Some(&row) => row as usize,
                None if delta < 0 => continue,
                None => {
                    let row = self.index.len();
                    self.index.insert(f, row as u32);
                    self.counts.resize(self.counts.len() + width, 0);
                    row
                }
            };
            let cell = &mut self.counts[row * width + column];
            *cell = cell.saturating_add_signed(delta);
        }
    }

    /// The counts of a feature, by class (in [`Model::learned`]'s order).
    pub fn counts(&self, feature: u64) -> Option<&[u32]> {
        self.row(feature)
    }

    /// The counts of a feature, by column.
    fn row(&self, feature: u64) -> Option<&[u32]> {
        let width = self.classes.len();
        let row = *self.index.get(&feature)? as usize;
        self.counts.get(row * width..(row + 1) * width)
    }

    /// Every feature with its counts (for storage).
    pub(crate) fn rows(&self) -> impl Iterator<Item = (u64, &[u32])> {
        let width = self.classes.len().max(1);
        self.index.iter().map(move |(&f, &row)| {
            (
                f,
                &self.counts[row as usize * width..(row as usize + 1) * width],
            )
        })
    }

    /// Makes room for `features` more features (loading from storage).
    pub(crate) fn reserve(&mut self, features: usize) {
        self.index.reserve(features);
        self.counts.reserve(features * self.classes.len());
    }

    /// Sets a feature's counts (loading from storage); `row` is by column.
    pub(crate) fn set_row(&mut self, feature: u64, row: &[u32]) {
        let width = self.classes.len();
        let at = match self.index.get(&feature) {
            Some(&r) => r as usize,
            None => {
                let r = self.index.len();
                self.index.insert(feature, r as u32);
                self.counts.resize(self.counts.len() + width, 0);
                r
            }
        };
        for (i, n) in row.iter().enumerate().take(width) {
            self.counts[at * width + i] = *n;
        }
    }

    /// Keeps at most `max` features: those seen in the fewest messages go
    /// first (a word seen once says least), and features whose counts
    /// fell to zero always go. Returns how many were dropped.
    pub fn prune(&mut self, max: usize) -> usize {
        let width = self.classes.len().max(1);
        let total = |row: &[u32]| row.iter().map(|&n| u64::from(n)).sum::<u64>();
        let mut floor = 0u64;
        let kept = loop {
            let kept = self.rows().filter(|(_, row)| total(row) > floor).count();
            if kept <= max || floor > u64::from(u32::MAX) {
                break kept;
            }
            floor += 1;
        };
        let before = self.index.len();
        if kept == before {
            // Nothing to drop: keep the index rather than build it again.
            return 0;
        }
        let mut index = Index::default();
        let mut counts = Vec::new();
        for (f, row) in self.rows() {
            if total(row) > floor {
                index.insert(f, (counts.len() / width) as u32);
                counts.extend_from_slice(row);
            }
        }
        self.index = index;
        self.counts = counts;
        before - self.index.len()
    }

    /// The answer for a message with these distinct features, over the
    /// declared classes (a class the model never learned has learned
    /// nothing).
    pub fn classify(&self, declared: &[String], features: &[u64]) -> Classification {
        self.classify_tuned(declared, features, &TUNING)
    }

    /// [`Model::classify`] with other constants (for measuring them).
    pub fn classify_tuned(
        &self,
        declared: &[String],
        features: &[u64],
        t: &Tuning,
    ) -> Classification {
        let columns: Vec<Option<usize>> = declared
            .iter()
            .map(|c| self.classes.iter().position(|k| k == c))
            .collect();
        let learned: Vec<u64> = columns
            .iter()
            .map(|c| c.map_or(0, |i| self.messages[i]))
            .collect();
        if declared.len() < 2 || learned.iter().any(|&n| n < MIN_PER_CLASS) {
            return Classification {
                class: String::new(),
                confidence: 0.0,
                probabilities: declared.iter().map(|c| (c.clone(), 0.0)).collect(),
            };
        }
        let total: u64 = learned.iter().sum();
        let mut indicators = Vec::with_capacity(declared.len());
        let mut probs = Vec::with_capacity(t.max_features * 2);
        for (k, column) in columns.iter().enumerate() {
            probs.clear();
            let column = column.unwrap_or(0);
            let ours = learned[k] as f64;
            let theirs = (total - learned[k]) as f64;
            for &f in features {
                let Some(row) = self.row(f) else { continue };
                let mine = f64::from(row[column]);
                let others: f64 = columns
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != k)
                    .map(|(_, c)| c.map_or(0.0, |c| f64::from(row[c])))
                    .sum();
                let n = mine + others;
                if n == 0.0 {
                    continue;
                }
                let b = mine / ours;
                let g = others / theirs;
                let p = b / (b + g);
                let f = (t.s * t.x + n * p) / (t.s + n);
                if (f - 0.5).abs() >= t.min_strength {
                    probs.push(f);
                }
            }
            indicators.push(combine(&mut probs, t.max_features));
        }
        for i in &mut indicators {
            *i = i.powf(t.sharpness);
        }
        let sum: f64 = indicators.iter().sum();
        let probabilities: Vec<(String, f64)> = declared
            .iter()
            .zip(&indicators)
            .map(|(c, i)| (c.clone(), if sum > 0.0 { i / sum } else { 0.0 }))
            .collect();
        let (best, confidence) =
            probabilities.iter().fold(
                ("", 0.0),
                |acc, (c, p)| if *p > acc.1 { (c.as_str(), *p) } else { acc },
            );
        Classification {
            class: if confidence >= CUT {
                best.to_string()
            } else {
                String::new()
            },
            confidence,
            probabilities,
        }
    }
}

/// Fisher's combining of the strongest feature probabilities into
/// Robinson's indicator: near 1 when they say "this class", near 0 when
/// they say "another", 0.5 with no evidence.
fn combine(probs: &mut Vec<f64>, max: usize) -> f64 {
    if probs.is_empty() {
        return 0.5;
    }
    if probs.len() > max {
        let cut = probs.len() - max;
        probs.select_nth_unstable_by(cut, |a, b| (a - 0.5).abs().total_cmp(&(b - 0.5).abs()));
        probs.drain(..cut);
    }
    let n = probs.len();
    let ln_p: f64 = probs.iter().map(|p| p.max(1e-200).ln()).sum();
    let ln_q: f64 = probs.iter().map(|p| (1.0 - p).max(1e-200).ln()).sum();
    let h = chi2q(-2.0 * ln_p, 2 * n);
    let s = chi2q(-2.0 * ln_q, 2 * n);
    (1.0 + h - s) / 2.0
}

/// The probability that a chi-square variable with `v` (even) degrees of
/// freedom is at least `x2`.
fn chi2q(x2: f64, v: usize) -> f64 {
    let m = x2 / 2.0;
    let mut term = (-m).exp();
    let mut sum = term;
    for i in 1..v / 2 {
        term *= m / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Vec<String> {
        vec!["spam".into(), "ham".into()]
    }

    #[test]
    fn too_little_learned_gives_no_answer() {
        let mut m = Model::default();
        for i in 0..MIN_PER_CLASS {
            m.add("spam", &[1, 2, i + 100], 1);
        }
        let a = m.classify(&classes(), &[1, 2]);
        assert_eq!(a.class, "");
        assert_eq!(a.confidence, 0.0);
    }

    #[test]
    fn learns_and_forgets() {
        let mut m = Model::default();
        for i in 0..20 {
            m.add("spam", &[1, 2, 3, 1000 + i], 1);
            m.add("ham", &[7, 8, 9, 2000 + i], 1);
        }
        let a = m.classify(&classes(), &[1, 2, 3]);
        assert_eq!(a.class, "spam");
        assert!(a.confidence > 0.99, "{a:?}");
        assert!((a.probability("spam") + a.probability("ham") - 1.0).abs() < 1e-9);
        let b = m.classify(&classes(), &[7, 8, 9]);
        assert_eq!(b.class, "ham");
        let unknown = m.classify(&classes(), &[55, 56]);
        assert_eq!(unknown.class, "");
        assert!((unknown.confidence - 0.5).abs() < 1e-9);
        for i in 0..20 {
            m.add("spam", &[1, 2, 3, 1000 + i], -1);
        }
        assert_eq!(m.classify(&classes(), &[1, 2, 3]).class, "");
    }

    #[test]
    fn three_classes_sum_to_one() {
        let mut m = Model::default();
        for i in 0..12 {
            m.add("billing", &[1, 2, 100 + i], 1);
            m.add("technical", &[3, 4, 200 + i], 1);
            m.add("sales", &[5, 6, 300 + i], 1);
        }
        let declared: Vec<String> = ["billing", "technical", "sales"].map(String::from).to_vec();
        let a = m.classify(&declared, &[3, 4]);
        assert_eq!(a.class, "technical", "{a:?}");
        let sum: f64 = a.probabilities.iter().map(|(_, p)| p).sum();
        assert!((sum - 1.0).abs() < 1e-9);
    }

    #[test]
    fn prune_drops_the_rarest_first() {
        let mut m = Model::default();
        m.add("spam", &[1, 2, 3], 1);
        m.add("spam", &[1, 2], 1);
        m.add("spam", &[1], 1);
        assert_eq!(m.vocabulary(), 3);
        assert_eq!(m.prune(2), 1);
        assert!(m.row(3).is_none() && m.row(2).is_some());
        assert_eq!(m.prune(1), 1);
        assert!(m.row(1).is_some());
    }

    #[test]
    fn chi2q_matches_known_values() {
        assert!((chi2q(0.0, 4) - 1.0).abs() < 1e-12);
        // P(chi2_2 >= 2) = e^-1.
        assert!((chi2q(2.0, 2) - (-1.0f64).exp()).abs() < 1e-12);
    }
}
