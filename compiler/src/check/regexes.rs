//! Regex literals parsed before the checker runs, on several threads.
//!
//! Parsing a regex literal ([`Regex::new`]) is a pure function of its
//! pattern and flags, and with thousands of rules it was a third of the
//! checker's time on the calling thread. So every distinct literal of
//! every file is parsed up front, on several threads (`par.rs`), and
//! [`Checker::regex`](super::Checker::regex) takes the result where it
//! meets the literal: the diagnostics, their order and the ruleset's
//! regexes are those of parsing each literal where it is met, whatever
//! the threads' timing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use weir_grammar::ast::{Expr, ExprKind};
use weir_grammar::visit::{Visit, walk};
use weir_stdlib::{Regex, RegexError};

use crate::load::Loaded;
use crate::par;

/// A regex literal's pattern and flags, as written.
pub(crate) type Key = (String, String);

/// The outcome of parsing one literal.
pub(crate) type Parsed = Result<Arc<Regex>, RegexError>;

/// Literals a thread takes at a time: about 0.3 ms of parsing, well
/// over what taking them costs.
const BATCH: usize = 32;

/// Parses every distinct regex literal of `loaded`'s files.
pub(crate) fn prepare(loaded: &Loaded) -> HashMap<Key, Parsed> {
    let mut literals = Literals::default();
    for unit in &loaded.units {
        literals.visit_file(&unit.ast);
    }
    let parsed = par::map(&literals.keys, BATCH, parse);
    literals.keys.into_iter().zip(parsed).collect()
}

/// Parses one literal, as the checker would where it meets it.
fn parse((pattern, flags): &Key) -> Parsed {
    Regex::new(pattern, flags).map(Arc::new)
}

/// The distinct regex literals of the files walked, in the order first met.
#[derive(Default)]
struct Literals {
    keys: Vec<Key>,
    seen: HashSet<Key>,
}

impl Visit for Literals {
    fn visit_expr(&mut self, expr: &Expr) {
        if let ExprKind::Regex(r) = &expr.kind {
            let key = (r.pattern.clone(), r.flags.clone());
            if !self.seen.contains(&key) {
                self.seen.insert(key.clone());
                self.keys.push(key);
            }
        }
        walk::walk_expr(self, expr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryLoader;

    /// Every distinct literal of every file is found, once, in the order
    /// first met, and parsed as alone, errors included.
    #[test]
    fn every_distinct_literal_is_parsed_as_alone() {
        let mut loader: MemoryLoader = MemoryLoader::new();
        let mut rules = String::from("import \"lib.flow\"\n");
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
        loader.insert("lib.flow", "fn f(s: string) = s matches /lib[0-9]+/q\n");
        let loaded = crate::load::load(std::path::Path::new("main.flow"), &loader);
        let mut literals = Literals::default();
        for unit in &loaded.units {
            literals.visit_file(&unit.ast);
        }
        assert_eq!(literals.keys.len(), 1 + 60 + 180 + 1);
        assert_eq!(
            literals.keys[0],
            ("unclosed(0".to_string(), "i".to_string())
        );
        let prepared = prepare(&loaded);
        assert_eq!(prepared.len(), literals.keys.len());
        for key in &literals.keys {
            let alone = outcome(&parse(key));
            assert_eq!(outcome(&prepared[key]), alone, "{key:?}");
        }
    }

    fn outcome(parsed: &Parsed) -> String {
        match parsed {
            Ok(re) => format!("{re:?} {} {:?}", re.captures_len(), re.capture_names()),
            Err(e) => format!("error {e}"),
        }
    }
}
