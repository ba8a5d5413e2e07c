//! The daemon's learned classifiers (docs/classifiers.md): the models
//! the rules read, loaded from the store at start and on reload and kept
//! in memory, and
//! learning through the API. The counts live behind
//! [`weir_classify::LearnedState`] (the store's `classifiers` tree), so
//! another store with the same key-value operations can hold them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use weir_classify::{LearnedState, LoggedLearn, Model, Outcome, StateError};
use weir_compiler::Ruleset;
use weir_stdlib::{Classifications, Message};

/// Fold the per-message log into the model's shards after this many
/// messages learned through the API.
const FOLD_AFTER: usize = 500;

/// The models of the classifiers, by name, and where they are kept.
pub struct Learned {
    state: Box<dyn LearnedState>,
    models: RwLock<HashMap<String, Arc<Model>>>,
    /// One learn at a time: each reads a digest record and writes it.
    learning: Mutex<u64>,
}

impl std::fmt::Debug for Learned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Learned").finish_non_exhaustive()
    }
}

impl Learned {
    /// The classifiers kept in `state`, loaded on first use.
    pub fn new(state: Box<dyn LearnedState>) -> Learned {
        Learned {
            state,
            models: RwLock::default(),
            learning: Mutex::new(0),
        }
    }

    /// The model of `name`, loaded from the state the first time.
    fn model(&self, name: &str) -> Result<Arc<Model>, StateError> {
        if let Some(m) = self.read().get(name) {
            return Ok(Arc::clone(m));
        }
        let loaded = Arc::new(weir_classify::state::load(&*self.state, name)?);
        let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
        Ok(Arc::clone(models.entry(name.to_string()).or_insert(loaded)))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Model>>> {
        self.models.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the models of the ruleset's classifiers from the store (at
    /// start and on reload, so no message waits for it); a model that
    /// cannot be read is logged and read again when a message needs it.
    pub fn preload(&self, ruleset: &Ruleset) {
        for c in ruleset.classifiers() {
            if let Err(e) = self.model(&c.name) {
                tracing::warn!("classifier {}: cannot read what it learned: {e}", c.name);
            }
        }
    }

    /// The answers of the ruleset's classifiers for one message (nothing
    /// computed when it declares none). A model that cannot be read
    /// answers as one that learned nothing, with a warning.
    pub fn answers(&self, ruleset: &Ruleset, message: &Message) -> Classifications {
        let declared = ruleset.classifiers();
        if declared.is_empty() {
            return Classifications::default();
        }
        let mut models = weir_classify::Models::default();
        for c in declared {
            match self.model(&c.name) {
                Ok(m) => models.set(&c.name, m),
                Err(e) => tracing::warn!("classifier {}: cannot read what it learned: {e}", c.name),
            }
        }
        models.answers(
            declared
                .iter()
                .map(|c| (c.name.as_str(), c.classes.as_slice())),
            message,
        )
    }

    /// Learns (or, with `forget`, unlearns) `message` as `class` of
    /// classifier `name`: durable before it returns, and read by the next
    /// message.
    pub fn learn(
        &self,
        name: &str,
        class: &str,
        message: &Message,
        forget: bool,
    ) -> Result<Outcome, StateError> {
        let features = weir_classify::tokens::features(message);
        self.learn_features(name, class, &features, forget)
    }

    /// Autolearn (`autolearn.rs`): learns `message` as `class` of `name`
    /// (whose classes are `classes`) unless the classifier already gives
    /// it `skip_above` or more (`None`: not learned).
    pub fn autolearn(
        &self,
        name: &str,
        class: &str,
        classes: &[String],
        message: &Message,
        skip_above: f64,
    ) -> Result<Option<Outcome>, StateError> {
        let features = weir_classify::tokens::features(message);
        let answer = self.model(name)?.classify(classes, &features);
        if answer.probability(class) >= skip_above {
            return Ok(None);
        }
        self.learn_features(name, class, &features, false).map(Some)
    }

    fn learn_features(
        &self,
        name: &str,
        class: &str,
        features: &[u64],
        forget: bool,
    ) -> Result<Outcome, StateError> {
        let mut seq = self.learning.lock().unwrap_or_else(|e| e.into_inner());
        let mut model = (*self.model(name)?).clone();
        // Log entries sort by sequence: the clock, kept increasing.
        *seq = (*seq + 2).max(crate::clock::unix_now().max(0) as u64 * 1_000_000);
        let outcome = weir_classify::learn_logged(
            &*self.state,
            name,
            &mut model,
            &LoggedLearn {
                features,
                class,
                forget,
                seq: *seq,
                fold_after: FOLD_AFTER,
            },
        )?;
        self.models
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), Arc::new(model));
        Ok(outcome)
    }
}
