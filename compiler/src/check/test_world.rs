//! The lines of a `test` block that set the world: `now`, `recipient`,
//! `rate "KEY" = N`, `duplicate "KEY"` and `classify NAME "class" C`
//! (docs/language.md ("Tests")).

use weir_grammar::ast::{self, Span, TestStmt, TestStmtKind};
use weir_stdlib::{Address, Value};

use weir_stdlib::Classification;

use super::{Annotate, Checker, Ctx, Place};
use crate::codes;
use crate::testcase::TestWorld;

impl Checker<'_> {
    /// Checks one world line into `world`; `None` after an error.
    pub(super) fn world_stmt(
        &mut self,
        unit: usize,
        stmt: &TestStmt,
        world: &mut TestWorld,
    ) -> Option<()> {
        match &stmt.kind {
            TestStmtKind::Now(e) => {
                self.once(unit, stmt.span, "now", world.now.is_some())?;
                world.now = Some(self.test_time(unit, e)?);
            }
            TestStmtKind::Recipient(e) => {
                self.once(unit, stmt.span, "recipient", world.recipient.is_some())?;
                world.recipient = Some(self.test_address(unit, e)?);
            }
            TestStmtKind::Rate { key, count } => {
                let key_text = self.constant_text(unit, key)?;
                let seen = world.rates.iter().any(|(k, _)| *k == key_text);
                self.once_per_key(unit, key.span, "rate", &key_text, seen)?;
                let n = self.test_count(unit, count)?;
                world.rates.push((key_text, n));
            }
            TestStmtKind::Duplicate(key) => {
                let key_text = self.constant_text(unit, key)?;
                let seen = world.duplicates.contains(&key_text);
                self.once_per_key(unit, key.span, "duplicate", &key_text, seen)?;
                world.duplicates.push(key_text);
            }
            TestStmtKind::Classify {
                name,
                class,
                confidence,
            } => {
                let answer = self.test_classify(unit, name, class, confidence)?;
                let seen = world.classes.contains_key(&name.name);
                self.once_per_key(unit, name.span, "classify", &name.name, seen)?;
                world.classes.insert(name.name.clone(), answer);
            }
            _ => {}
        }
        Some(())
    }

    /// `classify NAME "class" C`: NAME a classifier, the class one of its
    /// own (or `""`, unsure), C a number from 0 to 1. The class gets
    /// probability C and the others share the rest equally; with `""`
    /// every class has probability 1/N (docs/language.md ("Tests")).
    fn test_classify(
        &mut self,
        unit: usize,
        name: &ast::Ident,
        class: &ast::Expr,
        confidence: &ast::Expr,
    ) -> Option<Classification> {
        let as_name = ast::Expr {
            kind: ast::ExprKind::Name(name.clone()),
            span: name.span,
        };
        let cx = Ctx {
            unit,
            place: Place::Test,
            neg: false,
        };
        let Some(info) = self.classifier_named(cx, &as_name) else {
            self.error(
                codes::BAD_TEST,
                unit,
                name.span,
                format!("`{}` is not a classifier", name.name),
            )
            .set_label("not declared with `classifier`")
            .set_hint("declare it: `classifier NAME = learned [\"a\", \"b\"]`");
            return None;
        };
        let class_text = self.constant_text(unit, class)?;
        if !class_text.is_empty() {
            self.known_class(unit, class.span, &info, &class_text)?;
        }
        let c = match self.constant_arg(unit, confidence)? {
            Value::Int(n) => n as f64,
            Value::Float(f) => f,
            _ => f64::NAN,
        };
        if !(0.0..=1.0).contains(&c) {
            self.error(
                codes::BAD_TEST,
                unit,
                confidence.span,
                "`classify` needs a confidence from 0 to 1",
            )
            .set_label("not a number from 0 to 1")
            .set_hint("write it as a decimal: classify spam \"spam\" 0.97");
            return None;
        }
        Some(test_answer(&info.classes, class_text, c))
    }

    /// `now` and `recipient` may appear once in a test.
    fn once(&mut self, unit: usize, span: Span, word: &str, seen: bool) -> Option<()> {
        if !seen {
            return Some(());
        }
        self.error(
            codes::BAD_TEST,
            unit,
            span,
            format!("a test has one `{word}`"),
        )
        .set_label(format!("second `{word}`"))
        .set_hint("write another `test` block for another setting");
        None
    }

    /// `rate` and `duplicate` may repeat, each key once.
    fn once_per_key(
        &mut self,
        unit: usize,
        span: Span,
        word: &str,
        key: &str,
        seen: bool,
    ) -> Option<()> {
        if !seen {
            return Some(());
        }
        self.error(
            codes::BAD_TEST,
            unit,
            span,
            format!("`{word} \"{key}\"` is set twice in this test"),
        )
        .set_label("key already set")
        .set_hint("keep one line per key");
        None
    }

    /// `now TIME`: an RFC 3339 string (or a `time(...)`).
    fn test_time(&mut self, unit: usize, e: &ast::Expr) -> Option<i64> {
        let v = self.constant_arg(unit, e)?;
        let secs = match &v {
            Value::Time(secs, _) => Some(*secs),
            other => weir_stdlib::time::parse_rfc3339(&other.to_text()),
        };
        if secs.is_none() {
            self.error(
                codes::BAD_TEST,
                unit,
                e.span,
                format!("`now` needs an RFC 3339 time, not `{}`", v.to_text()),
            )
            .set_label("not a time")
            .set_hint("write it as \"2024-12-20T18:00:00Z\" or with an offset, \"…+01:00\"");
        }
        secs
    }

    /// `recipient ADDRESS`: `local@domain`.
    fn test_address(&mut self, unit: usize, e: &ast::Expr) -> Option<String> {
        let text = self.constant_text(unit, e)?;
        let a = Address::parse(&text);
        if !a.local.is_empty() && !a.domain.is_empty() {
            return Some(a.address.into());
        }
        self.error(
            codes::BAD_TEST,
            unit,
            e.span,
            format!("`recipient` needs an address, not `{text}`"),
        )
        .set_label("not local@domain")
        .set_hint("write it as \"bob@example.com\"");
        None
    }

    /// The `N` of `rate "KEY" = N`: a whole number, 0 or more.
    fn test_count(&mut self, unit: usize, e: &ast::Expr) -> Option<u64> {
        let v = self.constant_arg(unit, e)?;
        if let Value::Int(n) = v
            && let Ok(n) = u64::try_from(n)
        {
            return Some(n);
        }
        self.error(
            codes::BAD_TEST,
            unit,
            e.span,
            format!("`rate` needs a count of messages, not `{}`", v.to_text()),
        )
        .set_label("not a whole number, 0 or more")
        .set_hint("write how many messages carried the key before this one: rate \"KEY\" = 20");
        None
    }
}

/// The answer a `classify` line sets (see [`Checker::test_classify`]).
fn test_answer(classes: &[String], class: String, confidence: f64) -> Classification {
    let n = classes.len() as f64;
    let rest = if n > 1.0 {
        (1.0 - confidence) / (n - 1.0)
    } else {
        0.0
    };
    let probabilities = classes
        .iter()
        .map(|c| {
            let p = if class.is_empty() {
                1.0 / n
            } else if *c == class {
                confidence
            } else {
                rest
            };
            (c.clone(), p)
        })
        .collect();
    Classification {
        class,
        confidence,
        probabilities,
    }
}
