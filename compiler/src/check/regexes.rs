//! Regex literals parsed on other threads while the checker runs.
//!
//! Parsing a regex literal ([`Regex::new`]) is a pure function of its
//! pattern and flags, and with thousands of rules it was a third of the
//! checker's time. So [`RegexLiterals::of`] lists every distinct literal
//! of every file, helper threads parse them from the last one back
//! ([`RegexLiterals::parse_aside`]) while names are resolved and rules
//! checked, and the checker, going forwards, takes each parse where it
//! meets the literal ([`RegexLiterals::get`]), parsing it itself when no
//! helper has yet. Each literal is parsed once, by whichever gets there
//! first, with the same outcome: the diagnostics, their order and the
//! ruleset's regexes do not depend on the threads' timing.
//!
//! Once every literal is parsed, the helpers make the native prefilter's
//! analysis of each regex ([`RegexLiterals::into_analyses`]) while the
//! calling thread finishes the compile (the rest of the checker, stages,
//! warnings), when native code is to be built from the ruleset
//! ([`crate::Purpose::Native`]). The prefilter, which runs after the
//! compile on the calling thread, then analyses only the regexes they did
//! not reach.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Scope;

use weir_grammar::ast::{Expr, ExprKind};
use weir_grammar::visit::{Visit, walk};
use weir_stdlib::{Regex, RegexError};

use crate::load::Loaded;
use crate::native::{Analyses, Analysis, analysis};

/// A regex literal's pattern and flags, as written.
pub(crate) type Key = (String, String);

/// The outcome of parsing one literal.
pub(crate) type Parsed = Result<Arc<Regex>, RegexError>;

/// Literals a helper takes at a time: about 0.25 ms of parsing, well
/// over what taking them costs.
const BATCH: usize = 32;

/// With fewer literals than this the checker parses them all: starting a
/// thread costs about as much as parsing a few dozen.
const MIN_ASIDE: usize = 4 * BATCH;

/// Every distinct regex literal of a ruleset's files, each parsed once.
pub(crate) struct RegexLiterals {
    /// The literals, in the order first met in the files.
    keys: Vec<Key>,
    /// The index of each in `keys`.
    index: HashMap<Key, usize>,
    /// Each literal's outcome, once parsed, by index.
    parsed: Vec<OnceLock<Parsed>>,
    /// The prefilter's analysis of each valid literal, once made, by index.
    analysed: Vec<OnceLock<Option<Analysis>>>,
    /// How many literals, counted from the last, helpers have taken to
    /// parse.
    taken: AtomicUsize,
    /// How many literals, counted from the last, helpers have taken to
    /// analyse.
    analysis_taken: AtomicUsize,
    /// Set when the checker needs no more parses.
    stop: AtomicBool,
    /// Whether the helpers go on to analyse the literals for the prefilter.
    analyse: bool,
}

impl RegexLiterals {
    /// The distinct regex literals of `loaded`'s files, none parsed yet;
    /// `analyse`: whether the helpers analyse them for the prefilter too.
    pub(crate) fn of(loaded: &Loaded, analyse: bool) -> RegexLiterals {
        let mut walk = Walk::default();
        for unit in &loaded.units {
            walk.visit_file(&unit.ast);
        }
        let Walk { keys, index } = walk;
        RegexLiterals {
            parsed: keys.iter().map(|_| OnceLock::new()).collect(),
            analysed: keys.iter().map(|_| OnceLock::new()).collect(),
            keys,
            index,
            taken: AtomicUsize::new(0),
            analysis_taken: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            analyse,
        }
    }

    /// Starts helper threads in `scope` (one fewer than a compile may
    /// use: [`crate::threads::compile_threads`]) that parse the literals
    /// from the last one back until all are parsed or
    /// [`RegexLiterals::stop`] is called. A thread the system refuses
    /// leaves its literals to the checker.
    pub(crate) fn parse_aside<'scope>(&'scope self, scope: &'scope Scope<'scope, '_>) {
        if self.keys.len() < MIN_ASIDE {
            return;
        }
        let helpers = crate::threads::compile_threads() - 1;
        for _ in 0..helpers {
            let _ = std::thread::Builder::new().spawn_scoped(scope, || self.help());
        }
    }

    /// One helper: takes [`BATCH`] literals at a time from the back and
    /// parses those nobody has; once none is left to take, analyses them
    /// for the prefilter (if asked to), again from the back.
    fn help(&self) {
        self.take_each(&self.taken, |i| {
            self.parsed[i].get_or_init(|| parse(&self.keys[i]));
        });
        if !self.analyse {
            return;
        }
        // A literal another helper took may not be parsed yet: parsed
        // here then (or waited for, if that helper is parsing it).
        self.take_each(&self.analysis_taken, |i| {
            self.analysed[i].get_or_init(|| {
                match self.parsed[i].get_or_init(|| parse(&self.keys[i])) {
                    Ok(re) => re.hir().as_ref().map(analysis),
                    Err(_) => None,
                }
            });
        });
    }

    /// Calls `each` on every literal index, [`BATCH`] at a time from the
    /// last, taking batches through `taken` (shared by the helpers) until
    /// none is left or [`RegexLiterals::stop`] is called.
    fn take_each(&self, taken: &AtomicUsize, each: impl Fn(usize)) {
        let len = self.keys.len();
        loop {
            let done = taken.fetch_add(BATCH, Ordering::Relaxed);
            if done >= len {
                return;
            }
            let end = len - done;
            for i in (end.saturating_sub(BATCH)..end).rev() {
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                each(i);
            }
        }
    }

    /// Tells the helpers to stop: nothing more will be asked.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// The outcome of parsing `key`: a helper's, or parsed here now (a
    /// literal not listed, which does not happen, is parsed here too).
    pub(crate) fn get(&self, key: &Key) -> Parsed {
        match self.index.get(key) {
            Some(&i) => self.parsed[i].get_or_init(|| parse(key)).clone(),
            None => parse(key),
        }
    }

    /// The prefilter's analyses of the valid literals, by pattern with
    /// flags inline, as far as the helpers made them.
    pub(crate) fn into_analyses(self) -> Analyses {
        self.parsed
            .into_iter()
            .zip(self.analysed)
            .filter_map(
                |(parsed, analysed)| match (parsed.into_inner()?, analysed.into_inner()?) {
                    (Ok(re), Some(analysis)) => Some((re.inline(), analysis)),
                    _ => None,
                },
            )
            .collect()
    }
}

/// Parses one literal, as the checker would where it meets it.
fn parse((pattern, flags): &Key) -> Parsed {
    Regex::new(pattern, flags).map(Arc::new)
}

/// The distinct regex literals of the files walked, in the order first
/// met, and the index of each.
#[derive(Default)]
struct Walk {
    keys: Vec<Key>,
    index: HashMap<Key, usize>,
}

impl Visit for Walk {
    fn visit_expr(&mut self, expr: &Expr) {
        if let ExprKind::Regex(r) = &expr.kind {
            let key = (r.pattern.clone(), r.flags.clone());
            if let Entry::Vacant(slot) = self.index.entry(key) {
                self.keys.push(slot.key().clone());
                slot.insert(self.keys.len() - 1);
            }
        }
        walk::walk_expr(self, expr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryLoader;

    /// Three helpers at once, with no checker, until they are done.
    fn help_on_three_threads(literals: &RegexLiterals) {
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| literals.help());
            }
        });
    }

    fn loaded() -> Loaded {
        let mut loader: MemoryLoader = MemoryLoader::new();
        let mut rules = String::from("import \"lib\"\n");
        for i in 0..300 {
            let pattern = match i % 5 {
                0 => format!("unclosed({i}"),
                1 => "shared (is|was)".to_string(),
                _ => format!("w{i} (?P<n>x)"),
            };
            rules.push_str(&format!(
                "rule r{i} {{ when subject matches /{pattern}/i then tag \"t\" }}\n"
            ));
        }
        loader.insert("main.flow", &rules);
        loader.insert("lib.flow", "fn f(s: string) = s matches /lib[0-9]+/x\n");
        crate::load::load(std::path::Path::new("main.flow"), &loader)
    }

    fn outcome(parsed: &Parsed) -> String {
        match parsed {
            Ok(re) => format!("{re:?} {} {:?}", re.captures_len(), re.capture_names()),
            Err(e) => format!("error {e}"),
        }
    }

    /// Every distinct literal of every file is listed once, in the order
    /// first met; asked in that order while helpers parse from the back,
    /// each gives the outcome of parsing it alone, errors included.
    #[test]
    fn every_literal_gives_its_own_parse_whoever_parsed_it() {
        let loaded = loaded();
        for round in 0..8 {
            let literals = RegexLiterals::of(&loaded, true);
            assert_eq!(literals.keys.len(), 1 + 60 + 180 + 1);
            assert_eq!(literals.keys[0], ("unclosed(0".into(), "i".into()));
            assert_eq!(literals.keys[241], ("lib[0-9]+".into(), "x".into()));
            let keys = literals.keys.clone();
            let got: Vec<String> = std::thread::scope(|s| {
                literals.parse_aside(s);
                let got = keys.iter().map(|k| outcome(&literals.get(k))).collect();
                // Half the rounds stop the helpers at once.
                if round % 2 == 0 {
                    literals.stop();
                }
                got
            });
            let alone: Vec<String> = keys.iter().map(|k| outcome(&parse(k))).collect();
            assert_eq!(got, alone, "round {round}");
        }
    }

    /// Helpers alone parse every literal, each once.
    #[test]
    fn helpers_parse_every_literal() {
        let loaded = loaded();
        let literals = RegexLiterals::of(&loaded, true);
        help_on_three_threads(&literals);
        assert!(literals.parsed.iter().all(|p| p.get().is_some()));
    }

    /// Helpers analyse every valid literal, those the checker parsed
    /// first included, each as a parse of its own would.
    #[test]
    fn helpers_analyse_every_valid_literal() {
        let loaded = loaded();
        let literals = RegexLiterals::of(&loaded, true);
        let keys = literals.keys.clone();
        for key in &keys[..50] {
            let _ = literals.get(key);
        }
        help_on_three_threads(&literals);
        let analyses = literals.into_analyses();
        let mut valid = 0;
        for key in &keys {
            if let Ok(re) = Regex::new(&key.0, &key.1) {
                let alone = re.hir().as_ref().map(analysis);
                assert_eq!(analyses.get(&re.inline()), alone.as_ref(), "{key:?}");
                valid += 1;
            }
        }
        assert_eq!(analyses.len(), valid);
    }

    /// A compile that builds no native code asks for no analyses: the
    /// helpers parse every literal and analyse none.
    #[test]
    fn helpers_not_asked_to_analyse_only_parse() {
        let loaded = loaded();
        let literals = RegexLiterals::of(&loaded, false);
        help_on_three_threads(&literals);
        assert!(literals.parsed.iter().all(|p| p.get().is_some()));
        assert!(literals.into_analyses().is_empty());
    }
}
