//! `time("...")` and `local(TIME, ZONE)`: what the checker knows of them
//! beyond their types (docs/language.md ("Times and zones")).

use weir_grammar::ast::Span;
use weir_stdlib::Value;

use super::{Annotate, Checker};
use crate::codes;
use crate::eval;
use crate::hints;
use crate::ir::Expr;

impl Checker<'_> {
    /// Checks a call of `time` or `local` whose arguments are lowered:
    /// `time`'s argument must be a constant RFC 3339 time and becomes that
    /// constant; a constant zone of `local` must be in the tz database.
    /// Other calls are returned as they are.
    pub(super) fn time_call(
        &mut self,
        unit: usize,
        name: &str,
        spans: &[Span],
        call: Expr,
    ) -> Option<Expr> {
        let Expr::Builtin { args, .. } = &call else {
            return Some(call);
        };
        match (name, args.as_slice(), spans) {
            ("time", [text], [span]) => self.time_literal(unit, *span, text).map(Expr::Const),
            ("local", [_, zone], [_, span]) => {
                if let Some(v) = eval::constant(zone) {
                    self.known_zone(unit, *span, &v.to_text())?;
                }
                Some(call)
            }
            _ => Some(call),
        }
    }

    /// The value of `time(TEXT)`, or an error at TEXT.
    fn time_literal(&mut self, unit: usize, span: Span, text: &Expr) -> Option<Value> {
        let Some(v) = eval::constant(text) else {
            self.error(
                codes::INVALID_TIME,
                unit,
                span,
                "`time()` takes a constant string",
            )
            .set_label("known only at run time")
            .set_hint("write the time literally: time(\"2024-12-20T18:00:00Z\")");
            return None;
        };
        match weir_stdlib::time::parse_rfc3339(&v.to_text()) {
            Some(secs) => Some(Value::utc(secs)),
            None => {
                self.error(
                    codes::INVALID_TIME,
                    unit,
                    span,
                    format!("`{}` is not an RFC 3339 time", v.to_text()),
                )
                .set_label("not a time")
                .set_hint(
                    "write a date, `T`, a time with seconds and an offset: \
                     \"2024-12-20T18:00:00Z\" or \"2024-12-20T19:00:00+01:00\"",
                );
                None
            }
        }
    }

    /// Whether `name` is a zone of the tz database; an error with the
    /// closest name otherwise.
    fn known_zone(&mut self, unit: usize, span: Span, name: &str) -> Option<()> {
        if weir_stdlib::time::zone(name).is_some() {
            return Some(());
        }
        let same_but_case =
            weir_stdlib::time::zone_names().find(|z| z.eq_ignore_ascii_case(name.trim()));
        let hint = match same_but_case {
            Some(z) => Some(format!("did you mean '{z}'?")),
            None => hints::did_you_mean(name, weir_stdlib::time::zone_names()),
        };
        self.error(
            codes::INVALID_TIME,
            unit,
            span,
            format!("unknown time zone `{name}`"),
        )
        .set_label("not in the tz database")
        .maybe_hint(hint.or_else(|| {
            Some("zones are IANA names such as \"Europe/Berlin\" or \"America/New_York\"".into())
        }));
        None
    }
}
