//! The daemon's learned classifiers (docs/classifiers.md): the models
//! the rules read, loaded from the store at start and on reload and kept
//! in memory, and learning through the API and autolearn. With sled the
//! counts live in the store's `classifiers` tree, behind
//! [`weir_classify::LearnedState`]; with Redis every host shares them
//! (`store/redis/learned.rs`): a host learns with one script, applies
//! what it learned at once, and applies what the other hosts learned
//! every [`FOLLOW`], so every host classifies with what any host learned
//! within a second, with no round trip per message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use weir_classify::{LearnedState, LoggedLearn, Model, Outcome, StateError};
use weir_compiler::Ruleset;
use weir_stdlib::{Classifications, Message};

use crate::state::Daemon;
use crate::store::{EventId, LearnedStore, NewEvents, SharedLearned};

/// Fold the per-message log into the model's shards (sled) or the
/// snapshot (Redis) after this many messages learned.
const FOLD_AFTER: u64 = 500;

/// How often a host reads what the other hosts learned (Redis): docs
/// promise within a second.
pub const FOLLOW: Duration = Duration::from_millis(250);

/// A model in memory and, with Redis, the last learn event it includes.
#[derive(Clone)]
struct Loaded {
    model: Arc<Model>,
    seen: Option<EventId>,
}

/// The models of the classifiers, by name, and where they are kept.
pub struct Learned {
    store: LearnedStore,
    models: RwLock<HashMap<String, Loaded>>,
    /// One change of the models at a time (learning, or applying other
    /// hosts' events): each reads a model and replaces it.
    learning: Mutex<u64>,
    /// Whether the last [`Learned::follow_once`] failed (logged once).
    following_failed: AtomicBool,
}

impl std::fmt::Debug for Learned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Learned").finish_non_exhaustive()
    }
}

fn state_error(e: anyhow::Error) -> StateError {
    StateError(format!("{e:#}"))
}

impl Learned {
    /// The classifiers kept in `store`, loaded on first use.
    pub fn new(store: LearnedStore) -> Learned {
        Learned {
            store,
            models: RwLock::default(),
            learning: Mutex::new(0),
            following_failed: AtomicBool::new(false),
        }
    }

    /// The model of `name`, loaded from the store the first time.
    fn model(&self, name: &str) -> Result<Arc<Model>, StateError> {
        if let Some(m) = self.read().get(name) {
            return Ok(Arc::clone(&m.model));
        }
        let loaded = self.load(name)?;
        let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
        Ok(Arc::clone(
            &models.entry(name.to_string()).or_insert(loaded).model,
        ))
    }

    fn load(&self, name: &str) -> Result<Loaded, StateError> {
        let (model, seen) = match &self.store {
            LearnedStore::Local(state) => (weir_classify::state::load(state, name)?, None),
            LearnedStore::Shared(shared) => shared.load(name).map_err(state_error)?,
        };
        Ok(Loaded {
            model: Arc::new(model),
            seen,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Loaded>> {
        self.models.read().unwrap_or_else(|e| e.into_inner())
    }

    fn replace(&self, name: &str, loaded: Loaded) {
        self.models
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), loaded);
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
        match &self.store {
            LearnedStore::Local(state) => self.learn_local(state, name, class, features, forget),
            LearnedStore::Shared(shared) => self.learn_shared(
                shared,
                name,
                &Lesson {
                    class,
                    features,
                    forget,
                },
            ),
        }
    }

    fn learn_local(
        &self,
        state: &dyn LearnedState,
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
            state,
            name,
            &mut model,
            &LoggedLearn {
                features,
                class,
                forget,
                seq: *seq,
                fold_after: FOLD_AFTER as usize,
            },
        )?;
        self.replace(
            name,
            Loaded {
                model: Arc::new(model),
                seen: None,
            },
        );
        Ok(outcome)
    }

    /// Learns through Redis, then applies the new events (this one's and
    /// any other host's before it) to the model in memory, so the next
    /// message here reads it; folds the events into the snapshot when
    /// enough wait.
    fn learn_shared(
        &self,
        shared: &SharedLearned,
        name: &str,
        lesson: &Lesson<'_>,
    ) -> Result<Outcome, StateError> {
        let _changing = self.learning.lock().unwrap_or_else(|e| e.into_inner());
        self.model(name)?;
        let digest = weir_classify::digest(lesson.features);
        let (outcome, pending) = shared
            .change(name, &digest, lesson.class, lesson.forget, lesson.features)
            .map_err(state_error)?;
        if matches!(outcome, Outcome::AlreadyLearned | Outcome::NotLearned) {
            return Ok(outcome);
        }
        // Learned and durable: what fails from here on is caught up by
        // the next [`FOLLOW`] (or the next fold), so it is only logged.
        if let Err(e) = self.catch_up(shared, name) {
            tracing::warn!("classifier {name}: cannot read what was learned: {e}");
        } else if pending >= FOLD_AFTER
            && let Err(e) = self.fold(shared, name)
        {
            tracing::warn!("classifier {name}: cannot write the snapshot: {e}");
        }
        Ok(outcome)
    }

    /// Applies the events after the last one the model of `name` includes
    /// (reloading it whole when some were trimmed before this host read
    /// them). The caller holds `learning`.
    fn catch_up(&self, shared: &SharedLearned, name: &str) -> Result<(), StateError> {
        loop {
            let Some(current) = self.read().get(name).cloned() else {
                return Ok(());
            };
            let events = match shared
                .events_after(name, current.seen)
                .map_err(state_error)?
            {
                NewEvents::Missed => {
                    let loaded = self.load(name)?;
                    self.replace(name, loaded);
                    return Ok(());
                }
                NewEvents::Events(events) if events.is_empty() => return Ok(()),
                NewEvents::Events(events) => events,
            };
            let mut model = (*current.model).clone();
            let mut seen = current.seen;
            for e in &events {
                model.add(&e.class, &e.features, e.delta);
                seen = Some(e.id);
            }
            self.replace(
                name,
                Loaded {
                    model: Arc::new(model),
                    seen,
                },
            );
        }
    }

    /// Writes the model of `name` as the shared snapshot (pruned to
    /// [`weir_classify::MAX_VOCABULARY`]). The caller holds `learning`.
    fn fold(&self, shared: &SharedLearned, name: &str) -> Result<(), StateError> {
        let Some(Loaded {
            model,
            seen: Some(seen),
        }) = self.read().get(name).cloned()
        else {
            return Ok(());
        };
        let written = if model.vocabulary() > weir_classify::MAX_VOCABULARY {
            let mut pruned = (*model).clone();
            pruned.prune(weir_classify::MAX_VOCABULARY);
            shared.fold(name, seen, &pruned)
        } else {
            shared.fold(name, seen, &model)
        };
        written.map(drop).map_err(state_error)
    }

    /// Applies what the other hosts learned to every model in memory
    /// (Redis; nothing with sled). A failure is logged and tried again
    /// next time.
    pub fn follow_once(&self) {
        let LearnedStore::Shared(shared) = &self.store else {
            return;
        };
        let _changing = self.learning.lock().unwrap_or_else(|e| e.into_inner());
        let names: Vec<String> = self.read().keys().cloned().collect();
        let mut failed = false;
        for name in names {
            if let Err(e) = self.catch_up(shared, &name) {
                // Once per outage, not four times a second.
                if !self.following_failed.swap(true, Ordering::Relaxed) {
                    tracing::warn!("classifier {name}: cannot read what other hosts learned: {e}");
                }
                failed = true;
            }
        }
        if !failed && self.following_failed.swap(false, Ordering::Relaxed) {
            tracing::info!("classifiers: reading what other hosts learned again");
        }
    }
}

/// One message to learn or forget.
struct Lesson<'a> {
    class: &'a str,
    features: &'a [u64],
    forget: bool,
}

/// Applies what the other hosts learned every [`FOLLOW`], until `stop`.
/// Only with Redis.
pub async fn follow(daemon: Arc<Daemon>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(FOLLOW) => {}
        }
        let d = daemon.clone();
        let _ = tokio::task::spawn_blocking(move || d.learned.follow_once()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RedisTarget;
    use crate::store::suite::{StatesRemoved, redis_store};
    use crate::store::test_redis::{self, RedisCluster, RedisServer};

    fn learned(target: &RedisTarget, slug: &str, host: &str) -> Learned {
        let store = redis_store(target.clone(), slug, host);
        Learned::new(store.learned_store().expect("the learned store"))
    }

    fn counts(l: &Learned, feature: u64) -> Vec<(String, u64, Option<Vec<u32>>)> {
        let m = l.model("spam").expect("model");
        let row = m.counts(feature).map(<[u32]>::to_vec);
        m.learned()
            .map(|(c, n)| (c.to_string(), n, row.clone()))
            .collect()
    }

    /// Two hosts on one Redis: what one learns, moves and forgets the
    /// other applies; a snapshot folds the events and a host that missed
    /// them reloads it.
    fn two_hosts_share(target: &RedisTarget) {
        let a = learned(target, "learned", "host-a");
        let b = learned(target, "learned", "host-b");
        assert!(counts(&b, 1).is_empty(), "nothing learned yet");
        let spam = [1u64, 2, 3];
        let ham = [1u64, 4];
        assert_eq!(
            a.learn_features("spam", "spam", &spam, false).unwrap(),
            Outcome::Learned
        );
        assert_eq!(
            a.learn_features("spam", "ham", &ham, false).unwrap(),
            Outcome::Learned
        );
        // The same message learned on the other host counts once.
        assert_eq!(
            b.learn_features("spam", "spam", &spam, false).unwrap(),
            Outcome::AlreadyLearned
        );
        b.follow_once();
        let expect = |s: u64, h: u64, row: &[u32]| {
            vec![
                ("spam".to_string(), s, Some(row.to_vec())),
                ("ham".to_string(), h, Some(row.to_vec())),
            ]
        };
        assert_eq!(counts(&b, 1), expect(1, 1, &[1, 1]));
        assert_eq!(
            b.learn_features("spam", "ham", &spam, false).unwrap(),
            Outcome::Moved("spam".into())
        );
        a.follow_once();
        assert_eq!(counts(&a, 1), expect(0, 2, &[0, 2]));
        assert_eq!(
            a.learn_features("spam", "ham", &ham, true).unwrap(),
            Outcome::Forgotten("ham".into())
        );
        assert_eq!(
            a.learn_features("spam", "ham", &ham, true).unwrap(),
            Outcome::NotLearned
        );
        b.follow_once();
        assert_eq!(counts(&b, 1), expect(0, 1, &[0, 1]));
        assert_eq!(counts(&b, 4)[1].2, Some(vec![0, 0]));

        // A third host that never read the events, after a snapshot:
        // it loads the snapshot and the events after it.
        let LearnedStore::Shared(shared) = &a.store else {
            panic!("Redis")
        };
        let c = learned(target, "learned", "host-c");
        assert_eq!(counts(&c, 1), expect(0, 1, &[0, 1]));
        a.fold(shared, "spam").expect("fold");
        assert_eq!(
            a.learn_features("spam", "spam", &[9], false).unwrap(),
            Outcome::Learned
        );
        let d = learned(target, "learned", "host-d");
        assert_eq!(counts(&d, 9)[0], ("spam".to_string(), 1, Some(vec![1, 0])));
        assert_eq!(counts(&d, 1)[1], ("ham".to_string(), 1, Some(vec![0, 1])));
        // An older snapshot never replaces a newer one.
        let (model, _) = shared.load("spam").expect("load");
        let first = EventId { ms: 0, seq: 1 };
        assert!(!shared.fold("spam", first, &model).expect("fold"));
        // A host whose last event is gone, with a newer snapshot, reloads.
        b.fold(shared_of(&b), "spam").expect("fold");
        let stale = Learned::new(learned_store(target, "host-e"));
        let mut before = Model::default();
        before.add("spam", &[42], 1);
        stale.replace(
            "spam",
            Loaded {
                model: Arc::new(before),
                seen: Some(first),
            },
        );
        stale.follow_once();
        assert_eq!(
            counts(&stale, 9)[0],
            ("spam".to_string(), 1, Some(vec![1, 0]))
        );
        assert_eq!(counts(&stale, 42)[0].2, None, "reloaded, not patched");
    }

    fn shared_of(l: &Learned) -> &SharedLearned {
        match &l.store {
            LearnedStore::Shared(s) => s,
            LearnedStore::Local(_) => panic!("Redis"),
        }
    }

    fn learned_store(target: &RedisTarget, host: &str) -> LearnedStore {
        redis_store(target.clone(), "learned", host)
            .learned_store()
            .expect("the learned store")
    }

    #[test]
    fn hosts_sharing_a_redis_share_what_they_learned() {
        if !test_redis::available() {
            return;
        }
        let _states = StatesRemoved::new("learned");
        let server = RedisServer::start();
        let target = RedisTarget::Url(server.url());
        two_hosts_share(&target);
        // A snapshot that is not a model is refused with a clear error:
        // nothing is classified or learned from it.
        let key = format!("t{}:learned:{{learned:spam}}:snapshot", std::process::id());
        server
            .cli(&["HSET", &key, "model", "garbage"])
            .expect("cli");
        let broken = Learned::new(learned_store(&target, "host-f"));
        let e = broken.model("spam").expect_err("not a model").to_string();
        assert!(e.contains("is not a model"), "{e}");
        let e = broken
            .learn_features("spam", "spam", &[1], false)
            .expect_err("refused");
        assert!(e.to_string().contains("is not a model"), "{e}");
    }

    #[test]
    fn hosts_sharing_a_redis_cluster_share_what_they_learned() {
        if !test_redis::available() {
            return;
        }
        let _states = StatesRemoved::new("learned");
        let cluster = RedisCluster::start();
        two_hosts_share(&RedisTarget::Cluster(cluster.seeds()));
    }
}
