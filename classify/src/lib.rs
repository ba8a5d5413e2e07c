//! Learned classifiers (docs/language.md ("Classifiers"),
//! docs/classifiers.md): what `classifier NAME = learned [...]` reads.
//!
//! - [`tokens`]: the features of a message, from Weir's message model.
//! - [`model`]: counts per feature and class, and the Bayes classifier
//!   (Robinson's feature probabilities, Fisher's chi-square combining).
//! - [`mbox`]: an mbox file split into messages, for `weir learn`.
//! - [`state`]: where the counts and the digest records are kept, behind
//!   the small key-value interface [`LearnedState`].
//!
//! ```
//! use weir_classify::{Learner, MemoryState, model::MIN_PER_CLASS};
//! use weir_stdlib::{Limits, Message};
//!
//! let state = MemoryState::default();
//! let mut learner = Learner::open(&state, "spam").unwrap();
//! // Messages differing only in digits are one message to a classifier.
//! let words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"];
//! assert_eq!(words.len() as u64, MIN_PER_CLASS);
//! for w in words {
//!     let spam = format!("Subject: cheap pills {w}\r\n\r\nbuy cheap pills now offer {w}\r\n");
//!     let ham = format!("Subject: meeting {w}\r\n\r\nthe agenda for our project meeting {w}\r\n");
//!     learner.learn(&Message::parse(spam.as_bytes(), &Limits::default()).unwrap(), "spam", false).unwrap();
//!     learner.learn(&Message::parse(ham.as_bytes(), &Limits::default()).unwrap(), "ham", false).unwrap();
//! }
//! learner.save().unwrap();
//! let classes = vec!["spam".to_string(), "ham".to_string()];
//! let models = weir_classify::Models::load(&state, ["spam"]).unwrap();
//! let m = Message::parse(b"Subject: cheap pills\r\n\r\nbuy cheap pills now\r\n", &Limits::default()).unwrap();
//! let answers = models.answers([("spam", classes.as_slice())], &m);
//! assert_eq!(answers.get("spam").unwrap().class, "spam");
//! ```
//!
//! Nothing here reads the disk but [`SledState`], over a tree the caller
//! opened.

pub mod mbox;
pub mod model;
pub mod state;
pub mod tokens;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use weir_stdlib::{Classification, Classifications, Message};

pub use model::Model;
pub use state::{LearnedState, MemoryState, SledState, StateError};

/// The most features a classifier keeps: beyond, the rarest are pruned
/// when the model is written whole (docs/classifiers.md, "Storage").
pub const MAX_VOCABULARY: usize = 2_000_000;

/// The digest a message is recorded under: SHA-256 of its features, so
/// the same message learned again (with other `Received` lines, say) is
/// recognised, and what is recorded is exactly what was learned.
pub fn digest(features: &[u64]) -> String {
    let mut h = Sha256::new();
    for f in features {
        h.update(f.to_le_bytes());
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in h.finalize() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// What learning one message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Learned as the class asked.
    Learned,
    /// It was learned as this class already: nothing changed.
    AlreadyLearned,
    /// It was learned as another class (named): moved to this one.
    Moved(String),
    /// Forgotten (it was learned as the named class).
    Forgotten(String),
    /// Asked to forget a message that was never learned: nothing changed.
    NotLearned,
}

/// Learning into one classifier's model, recorded in a [`LearnedState`].
pub struct Learner<'s> {
    state: &'s dyn LearnedState,
    name: String,
    model: Model,
    /// Digest records changed since the last save (`None`: forgotten).
    digests: BTreeMap<String, Option<String>>,
}

impl<'s> Learner<'s> {
    /// Loads classifier `name`'s model from `state`.
    pub fn open(state: &'s dyn LearnedState, name: &str) -> Result<Learner<'s>, StateError> {
        Ok(Learner {
            state,
            name: name.to_string(),
            model: state::load(state, name)?,
            digests: BTreeMap::new(),
        })
    }

    /// The model as learned so far.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Learns `message` as `class` (or, with `forget`, unlearns it) in
    /// memory; [`Learner::save`] makes it durable.
    pub fn learn(
        &mut self,
        message: &Message,
        class: &str,
        forget: bool,
    ) -> Result<Outcome, StateError> {
        let features = tokens::features(message);
        self.learn_features(&features, class, forget)
    }

    /// [`Learner::learn`] on features already computed.
    pub fn learn_features(
        &mut self,
        features: &[u64],
        class: &str,
        forget: bool,
    ) -> Result<Outcome, StateError> {
        self.learn_digested(features, digest(features), class, forget)
    }

    /// [`Learner::learn_features`] with the features' [`digest`] already
    /// computed (`weir learn` computes it on every core).
    pub fn learn_digested(
        &mut self,
        features: &[u64],
        d: String,
        class: &str,
        forget: bool,
    ) -> Result<Outcome, StateError> {
        let before = match self.digests.get(&d) {
            Some(known) => known.clone(),
            None => state::digest_class(self.state, &self.name, &d)?,
        };
        let outcome = change(&mut self.model, before, class, forget, features);
        let after = match &outcome {
            Outcome::Learned | Outcome::Moved(_) => Some(class.to_string()),
            Outcome::Forgotten(_) => None,
            Outcome::AlreadyLearned | Outcome::NotLearned => return Ok(outcome),
        };
        self.digests.insert(d, after);
        Ok(outcome)
    }

    /// Prunes the model to `max` features (see [`Model::prune`]), then
    /// writes it whole with the digest records, durably.
    pub fn save_pruned(mut self, max: usize) -> Result<usize, StateError> {
        let dropped = self.model.prune(max);
        self.save_inner()?;
        Ok(dropped)
    }

    /// Writes the model whole with the digest records, durably.
    pub fn save(mut self) -> Result<(), StateError> {
        self.save_inner()
    }

    fn save_inner(&mut self) -> Result<(), StateError> {
        let digests: Vec<state::Write> = std::mem::take(&mut self.digests)
            .into_iter()
            .map(|(d, c)| state::digest_write(&self.name, &d, c.as_deref()))
            .collect();
        // Digests first: a crash between the two writes leaves messages
        // recorded but not counted, which relearning repairs; the other
        // order would count them twice.
        self.state.apply(digests)?;
        state::save(self.state, &self.name, &self.model)
    }
}

/// Applies one learn or forget to `model` given the class the message was
/// learned as before.
fn change(
    model: &mut Model,
    before: Option<String>,
    class: &str,
    forget: bool,
    features: &[u64],
) -> Outcome {
    match (before, forget) {
        (None, true) => Outcome::NotLearned,
        (Some(old), true) => {
            model.add(&old, features, -1);
            Outcome::Forgotten(old)
        }
        (Some(old), false) if old == class => Outcome::AlreadyLearned,
        (Some(old), false) => {
            model.add(&old, features, -1);
            model.add(class, features, 1);
            Outcome::Moved(old)
        }
        (None, false) => {
            model.add(class, features, 1);
            Outcome::Learned
        }
    }
}

/// Learns one message into a model held by a running daemon: the model
/// in memory is changed and one log entry and the digest record are
/// written, durably, before this returns; after `fold_after` logged
/// messages the model is pruned to [`MAX_VOCABULARY`], written whole and
/// the log folded in.
pub fn learn_logged(
    state: &dyn LearnedState,
    name: &str,
    model: &mut Model,
    update: &LoggedLearn<'_>,
) -> Result<Outcome, StateError> {
    let d = digest(update.features);
    let before = state::digest_class(state, name, &d)?;
    let outcome = change(
        model,
        before.clone(),
        update.class,
        update.forget,
        update.features,
    );
    let mut writes = Vec::new();
    match &outcome {
        Outcome::AlreadyLearned | Outcome::NotLearned => return Ok(outcome),
        Outcome::Learned => {
            writes.push(state::log_write(
                name,
                update.seq,
                update.class,
                1,
                update.features,
            ));
            writes.push(state::digest_write(name, &d, Some(update.class)));
        }
        Outcome::Moved(old) => {
            writes.push(state::log_write(name, update.seq, old, -1, update.features));
            writes.push(state::log_write(
                name,
                update.seq + 1,
                update.class,
                1,
                update.features,
            ));
            writes.push(state::digest_write(name, &d, Some(update.class)));
        }
        Outcome::Forgotten(old) => {
            writes.push(state::log_write(name, update.seq, old, -1, update.features));
            writes.push(state::digest_write(name, &d, None));
        }
    }
    state.apply(writes)?;
    if state::log_len(state, name)? >= update.fold_after {
        model.prune(MAX_VOCABULARY);
        state::save(state, name, model)?;
    }
    Ok(outcome)
}

/// One message for [`learn_logged`].
#[derive(Debug)]
pub struct LoggedLearn<'a> {
    /// Its features ([`tokens::features`]).
    pub features: &'a [u64],
    /// The class to learn it as (to forget: the class is ignored).
    pub class: &'a str,
    /// Forget rather than learn.
    pub forget: bool,
    /// A number larger than every earlier log entry's (two are used for
    /// a move): the daemon's clock in nanoseconds serves.
    pub seq: u64,
    /// Fold the log into the shards once it holds this many entries.
    pub fold_after: usize,
}

/// The models of several classifiers, to classify with.
#[derive(Debug, Clone, Default)]
pub struct Models {
    models: HashMap<String, Arc<Model>>,
}

impl Models {
    /// Loads the models of the classifiers named.
    pub fn load<'n>(
        state: &dyn LearnedState,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Result<Models, StateError> {
        let mut models = HashMap::new();
        for name in names {
            models.insert(name.to_string(), Arc::new(state::load(state, name)?));
        }
        Ok(Models { models })
    }

    /// The model of classifier `name`, if loaded.
    pub fn get(&self, name: &str) -> Option<&Arc<Model>> {
        self.models.get(name)
    }

    /// Replaces (or adds) the model of classifier `name`.
    pub fn set(&mut self, name: &str, model: Arc<Model>) {
        self.models.insert(name.to_string(), model);
    }

    /// The answers of the declared classifiers (name, classes) for one
    /// message; the features are computed once, and only when a
    /// classifier is declared.
    pub fn answers<'a>(
        &self,
        declared: impl IntoIterator<Item = (&'a str, &'a [String])>,
        message: &Message,
    ) -> Classifications {
        let mut features: Option<Vec<u64>> = None;
        let mut out = BTreeMap::new();
        for (name, classes) in declared {
            let answer = match self.models.get(name) {
                Some(model) => {
                    let f = features.get_or_insert_with(|| tokens::features(message));
                    model.classify(classes, f)
                }
                None => Classification {
                    class: String::new(),
                    confidence: 0.0,
                    probabilities: classes.iter().map(|c| (c.clone(), 0.0)).collect(),
                },
            };
            out.insert(name.to_string(), answer);
        }
        Classifications::new(out)
    }
}
