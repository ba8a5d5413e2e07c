//! A [`Decision`] as JSON: the `weir run --json` object of
//! `docs/cli.md`, which the daemon's audit log, `/v1/check` and
//! `weir diff` also use, so every consumer sees one shape.

use crate::decision::{Action, Decision, Reply, RuleTrace, ShadowVerdict, TakenKind, Verdict};
use serde_json::{Map, Value, json};

/// A number as JSON: integral values without a fraction (`8`, not `8.0`).
pub fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

fn reply_json(reply: &Option<Reply>) -> Value {
    match reply {
        Some(r) => json!({"code": r.code, "status": r.status, "text": r.text}),
        None => Value::Null,
    }
}

/// The `weir run --json` object for one decision, its keys in the order
/// `docs/cli.md` lists them.
pub fn decision_json(d: &Decision) -> Map<String, Value> {
    let mut obj = Map::new();
    obj.insert("verdict".into(), json!(d.verdict.as_str()));
    obj.insert("reply".into(), reply_json(&d.reply));
    obj.insert("stage".into(), json!(d.stage.as_str()));
    obj.insert("matched".into(), json!(d.matched));
    obj.insert("tags".into(), json!(d.tags));
    obj.insert("score".into(), number(d.score));
    obj.insert("folder".into(), json!(d.folder));
    let actions: Vec<Value> = d
        .actions
        .iter()
        .map(|taken| {
            let mut a = match &taken.what {
                TakenKind::Action(action) => action_json(action),
                TakenKind::ShadowVerdict(v) => shadow_verdict_json(v),
            };
            a.insert("rule".into(), json!(taken.rule));
            if taken.shadow {
                a.insert("shadow".into(), json!(true));
            }
            Value::Object(a)
        })
        .collect();
    obj.insert("actions".into(), Value::Array(actions));
    if d.verdict == Verdict::Quarantine {
        obj.insert(
            "reason".into(),
            json!(d.quarantine_reason.clone().unwrap_or_default()),
        );
    }
    if !d.warnings.is_empty() {
        obj.insert("warnings".into(), json!(d.warnings));
    }
    obj
}

/// One action with its arguments, as in `weir run --json`.
pub fn action_json(action: &Action) -> Map<String, Value> {
    let mut a = Map::new();
    a.insert("action".into(), json!(action.name()));
    match action {
        Action::AddHeader { name, value } | Action::SetHeader { name, value } => {
            a.insert("name".into(), json!(name));
            a.insert("value".into(), json!(value));
        }
        Action::RemoveHeader { name } => {
            a.insert("name".into(), json!(name));
        }
        Action::PrependSubject(v)
        | Action::AddRcpt(v)
        | Action::RemoveRcpt(v)
        | Action::Redirect(v)
        | Action::Fileinto(v)
        | Action::Flag(v)
        | Action::Tag(v)
        | Action::Log(v) => {
            a.insert("value".into(), json!(v));
        }
        Action::Score(x) => {
            a.insert("value".into(), number(*x));
        }
        Action::Keep => {}
        Action::Notify {
            channel,
            with,
            template,
        } => {
            let with: Map<String, Value> =
                with.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            a.insert("channel".into(), json!(channel));
            a.insert("with".into(), Value::Object(with));
            a.insert("template".into(), json!(template.as_ref().map(|t| &t.name)));
        }
        Action::Reply {
            template,
            every,
            skipped,
        } => {
            a.insert("template".into(), json!(template.name));
            if let Some(secs) = every {
                a.insert("every".into(), json!(secs));
            }
            if let Some(why) = skipped {
                a.insert("skipped".into(), json!(why));
            }
        }
    }
    a
}

fn shadow_verdict_json(v: &ShadowVerdict) -> Map<String, Value> {
    let mut a = Map::new();
    a.insert("action".into(), json!(v.verdict.as_str()));
    if let Some(r) = &v.reply {
        a.insert("code".into(), json!(r.code));
        a.insert("status".into(), json!(r.status));
        a.insert("text".into(), json!(r.text));
    }
    if let Some(reason) = &v.reason {
        a.insert("reason".into(), json!(reason));
    }
    a
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
