//! A [`Decision`] as JSON: the `weir run --json` object of
//! `docs/cli.md`, which the daemon's audit log, `/v1/check` and
//! `weir diff` also use, so every consumer sees one shape.

use crate::decision::{Action, Decision, Reply, RuleTrace, ShadowVerdict, TakenKind, Verdict};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value, json};

/// A number as JSON: integral values without a fraction (`8`, not `8.0`).
pub fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

/// [`number`] without building a [`Value`]: the same text once written.
struct Number(f64);

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let x = self.0;
        if x.fract() == 0.0 && x.abs() < 9.0e15 {
            s.serialize_i64(x as i64)
        } else {
            s.serialize_f64(x)
        }
    }
}

/// A map from a view that serializes as one (every view below does).
fn object(view: impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(view) {
        Ok(Value::Object(map)) => map,
        // Not reached: the views serialize maps with string keys, which
        // `to_value` cannot refuse.
        _ => Map::new(),
    }
}

/// The `weir run --json` object for one decision, its keys in the order
/// `docs/cli.md` lists them: [`DecisionView`] as a map, for callers that
/// add keys or compare decisions.
pub fn decision_json(d: &Decision) -> Map<String, Value> {
    object(DecisionView(d))
}

/// One decision as [`decision_json`]'s object, serialized straight from the
/// borrowed decision: the same bytes as writing that object, without
/// building it (`weir run --json` writes one per message).
pub struct DecisionView<'a>(pub &'a Decision);

impl DecisionView<'_> {
    /// Writes the object's entries into an open map, so that a caller can
    /// add its own after them (`weir run`'s `file`).
    pub fn serialize_entries<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        let d = self.0;
        map.serialize_entry("verdict", d.verdict.as_str())?;
        map.serialize_entry("reply", &d.reply.as_ref().map(ReplyView))?;
        map.serialize_entry("stage", d.stage.as_str())?;
        map.serialize_entry("matched", &d.matched)?;
        map.serialize_entry("tags", &d.tags)?;
        map.serialize_entry("score", &Number(d.score))?;
        map.serialize_entry("folder", &d.folder)?;
        map.serialize_entry("actions", &ActionsView(d))?;
        if d.verdict == Verdict::Quarantine {
            let reason = d.quarantine_reason.as_deref().unwrap_or_default();
            map.serialize_entry("reason", reason)?;
        }
        if !d.warnings.is_empty() {
            map.serialize_entry("warnings", &d.warnings)?;
        }
        Ok(())
    }
}

impl Serialize for DecisionView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        self.serialize_entries(&mut map)?;
        map.end()
    }
}

struct ReplyView<'a>(&'a Reply);

impl Serialize for ReplyView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("code", &self.0.code)?;
        map.serialize_entry("status", &self.0.status)?;
        map.serialize_entry("text", &self.0.text)?;
        map.end()
    }
}

/// A decision's actions, each with its rule and, for a shadow rule,
/// `"shadow": true`.
struct ActionsView<'a>(&'a Decision);

impl Serialize for ActionsView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.actions.len()))?;
        for taken in &self.0.actions {
            seq.serialize_element(&TakenView(taken))?;
        }
        seq.end()
    }
}

struct TakenView<'a>(&'a crate::decision::Taken);

impl Serialize for TakenView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let taken = self.0;
        let mut map = s.serialize_map(None)?;
        match &taken.what {
            TakenKind::Action(action) => ActionView(action).serialize_entries(&mut map)?,
            TakenKind::ShadowVerdict(v) => shadow_verdict_entries(v, &mut map)?,
        }
        map.serialize_entry("rule", &taken.rule)?;
        if taken.shadow {
            map.serialize_entry("shadow", &true)?;
        }
        map.end()
    }
}

/// One action with its arguments, as in `weir run --json`.
pub fn action_json(action: &Action) -> Map<String, Value> {
    object(ActionView(action))
}

/// One action as [`action_json`]'s object, without building it.
struct ActionView<'a>(&'a Action);

impl ActionView<'_> {
    fn serialize_entries<M: SerializeMap>(&self, a: &mut M) -> Result<(), M::Error> {
        let action = self.0;
        a.serialize_entry("action", action.name())?;
        match action {
            Action::AddHeader { name, value } | Action::SetHeader { name, value } => {
                a.serialize_entry("name", name)?;
                a.serialize_entry("value", value)?;
            }
            Action::RemoveHeader { name } => a.serialize_entry("name", name)?,
            Action::PrependSubject(v)
            | Action::AddRcpt(v)
            | Action::RemoveRcpt(v)
            | Action::Redirect(v)
            | Action::Fileinto(v)
            | Action::Flag(v)
            | Action::Log(v) => a.serialize_entry("value", v)?,
            Action::Tag(v) => a.serialize_entry("value", v)?,
            Action::Score(x) => a.serialize_entry("value", &Number(*x))?,
            Action::Keep => {}
            Action::Notify {
                channel,
                with,
                template,
            } => {
                // Built as a map, as before: a repeated key keeps its first
                // place and its last value. Rare enough not to matter.
                let with: Map<String, Value> =
                    with.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                a.serialize_entry("channel", channel)?;
                a.serialize_entry("with", &with)?;
                a.serialize_entry("template", &template.as_ref().map(|t| &t.name))?;
            }
            Action::Reply {
                template,
                every,
                skipped,
            } => {
                a.serialize_entry("template", &template.name)?;
                if let Some(secs) = every {
                    a.serialize_entry("every", secs)?;
                }
                if let Some(why) = skipped {
                    a.serialize_entry("skipped", why)?;
                }
            }
        }
        Ok(())
    }
}

impl Serialize for ActionView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        self.serialize_entries(&mut map)?;
        map.end()
    }
}

fn shadow_verdict_entries<M: SerializeMap>(v: &ShadowVerdict, a: &mut M) -> Result<(), M::Error> {
    a.serialize_entry("action", v.verdict.as_str())?;
    if let Some(r) = &v.reply {
        a.serialize_entry("code", &r.code)?;
        a.serialize_entry("status", &r.status)?;
        a.serialize_entry("text", &r.text)?;
    }
    if let Some(reason) = &v.reason {
        a.serialize_entry("reason", reason)?;
    }
    Ok(())
}

/// The parts of two decision objects ([`decision_json`]) that differ, each
/// as `{"old": …, "new": …}` (`weir diff`, the console's backtest).
pub fn differences(before: &Map<String, Value>, after: &Map<String, Value>) -> Map<String, Value> {
    let mut changes = Map::new();
    for key in before.keys().chain(after.keys()) {
        let (b, a) = (before.get(key), after.get(key));
        if b != a && !changes.contains_key(key) {
            changes.insert(key.clone(), json!({"old": b, "new": a}));
        }
    }
    changes
}

/// The `--explain` trace as JSON.
pub fn trace_json(trace: &[RuleTrace]) -> Value {
    Value::Array(
        trace
            .iter()
            .map(|t| {
                let mut o = json!({"rule": t.rule, "held": t.held});
                if let Some(e) = &t.evidence {
                    o["evidence"] =
                        json!({"expr": e.expr, "value": e.value, "span": [e.span.0, e.span.1]});
                }
                o
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{RenderedTemplate, Taken};
    use weir_stdlib::Stage;

    /// The first of [`decisions`] as written before the view existed.
    const PINNED: &str = concat!(
        "{\"verdict\":\"quarantine\",\"reply\":null,\"stage\":\"body\",\"matched\":[\"",
        "a\",\"b\\\\c\"],\"tags\":[\"spam\",\"tab\\there\"],\"score\":8,\"folder\":\"Junk/",
        "\u{dc}n\u{ef}code\",\"actions\":[{\"action\":\"add_header\",\"name\":\"X-A\",\"value\":",
        "\"1\",\"rule\":\"a\"},{\"action\":\"set_header\",\"name\":\"X-B\",\"value\":\"\u{7f}\u{2028}\"",
        ",\"rule\":\"a\"},{\"action\":\"remove_header\",\"name\":\"X-C\",\"rule\":\"a\"},",
        "{\"action\":\"prepend_subject\",\"value\":\"[SPAM] \",\"rule\":\"b\"},{\"acti",
        "on\":\"score\",\"value\":2.5,\"rule\":\"b\"},{\"action\":\"score\",\"value\":-3",
        ",\"rule\":\"b\"},{\"action\":\"keep\",\"rule\":\"b\",\"shadow\":true},{\"action",
        "\":\"notify\",\"channel\":\"ops\",\"with\":{\"k\":\"2\"},\"template\":\"t\",\"rule",
        "\":\"b\"},{\"action\":\"notify\",\"channel\":\"ops\",\"with\":{},\"template\":n",
        "ull,\"rule\":\"b\"},{\"action\":\"reply\",\"template\":\"away\",\"every\":8640",
        "0,\"skipped\":\"auto-submitted\",\"rule\":\"b\"},{\"action\":\"reply\",\"temp",
        "late\":\"away\",\"rule\":\"b\"},{\"action\":\"reject\",\"code\":550,\"status\":",
        "\"5.7.1\",\"text\":\"no\",\"reason\":\"why\",\"rule\":\"s\",\"shadow\":true}],\"r",
        "eason\":\"looks \\\"odd\\\"\\n\\u0001\u{e9}\",\"warnings\":[\"folder refused\"]}"
    );

    fn template(name: &str) -> RenderedTemplate {
        RenderedTemplate {
            name: name.into(),
            subject: String::new(),
            body: String::new(),
            from: String::new(),
            addresses: Vec::new(),
        }
    }

    fn taken(rule: &str, shadow: bool, action: Action) -> Taken {
        Taken {
            rule: rule.into(),
            shadow,
            what: TakenKind::Action(action),
        }
    }

    /// Every action kind, a shadow verdict, characters JSON escapes, and
    /// scores integral, fractional and not finite.
    fn decisions() -> Vec<Decision> {
        let mut d = Decision::new(Verdict::Quarantine, None, Stage::Body);
        d.quarantine_reason = Some("looks \"odd\"\n\u{1}é".into());
        d.matched = vec!["a".into(), "b\\c".into()];
        d.tags = vec!["spam".into(), "tab\there".into()];
        d.score = 8.0;
        d.folder = Some("Junk/Ünïcode".into());
        d.warnings = vec!["folder refused".into()];
        let header = |name: &str, value: &str| Action::AddHeader {
            name: name.into(),
            value: value.into(),
        };
        d.actions = vec![
            taken("a", false, header("X-A", "1")),
            taken(
                "a",
                false,
                Action::SetHeader {
                    name: "X-B".into(),
                    value: "\u{7f}\u{2028}".into(),
                },
            ),
            taken("a", false, Action::RemoveHeader { name: "X-C".into() }),
            taken("b", false, Action::PrependSubject("[SPAM] ".into())),
            taken("b", false, Action::Score(2.5)),
            taken("b", false, Action::Score(-3.0)),
            taken("b", true, Action::Keep),
            taken(
                "b",
                false,
                Action::Notify {
                    channel: "ops".into(),
                    with: vec![("k".into(), "1".into()), ("k".into(), "2".into())],
                    template: Some(template("t")),
                },
            ),
            taken(
                "b",
                false,
                Action::Notify {
                    channel: "ops".into(),
                    with: Vec::new(),
                    template: None,
                },
            ),
            taken(
                "b",
                false,
                Action::Reply {
                    template: template("away"),
                    every: Some(86_400),
                    skipped: Some("auto-submitted".into()),
                },
            ),
            taken(
                "b",
                false,
                Action::Reply {
                    template: template("away"),
                    every: None,
                    skipped: None,
                },
            ),
            Taken {
                rule: "s".into(),
                shadow: true,
                what: TakenKind::ShadowVerdict(ShadowVerdict {
                    verdict: Verdict::Reject,
                    reply: Some(Reply {
                        code: 550,
                        status: "5.7.1".into(),
                        text: "no".into(),
                    }),
                    reason: Some("why".into()),
                }),
            },
        ];
        let mut nan = Decision::new(
            Verdict::Reject,
            Verdict::Reject.default_reply(),
            Stage::Rcpt,
        );
        nan.score = f64::NAN;
        let mut big = Decision::new(Verdict::Accept, None, Stage::Body);
        big.score = 1.0e16;
        vec![d, nan, big]
    }

    #[test]
    fn the_view_writes_the_bytes_of_the_built_object() {
        for d in decisions() {
            let built = Value::Object(decision_json(&d)).to_string();
            let direct = serde_json::to_string(&DecisionView(&d)).expect("serializes");
            assert_eq!(direct, built);
        }
    }

    #[test]
    fn the_bytes_are_pinned() {
        let d = &decisions()[0];
        let text = serde_json::to_string(&DecisionView(d)).expect("serializes");
        assert_eq!(text, PINNED);
    }

    #[test]
    fn the_object_keeps_its_keys_and_values() {
        let d = &decisions()[0];
        let obj = decision_json(d);
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        let want = [
            "verdict", "reply", "stage", "matched", "tags", "score", "folder", "actions", "reason",
            "warnings",
        ];
        assert_eq!(keys, want);
        assert_eq!(obj["score"], json!(8));
        assert_eq!(
            obj["actions"][4],
            json!({"action": "score", "value": 2.5, "rule": "b"})
        );
        assert_eq!(
            obj["actions"][7]["with"],
            json!({"k": "2"}),
            "a repeated key keeps its last value"
        );
        assert_eq!(
            obj["actions"][11],
            json!({"action": "reject", "code": 550, "status": "5.7.1", "text": "no",
                   "reason": "why", "rule": "s", "shadow": true})
        );
        assert_eq!(
            Value::Object(action_json(&Action::Keep)),
            json!({"action": "keep"})
        );
    }
}
