//! How a [`Decision`] is printed for a person: the summary `weir run`
//! prints without `--json`. The JSON object is `weir_compiler::report`.

use serde_json::Value;
use weir_compiler::decision::RuleTrace;
use weir_compiler::report::{action_json, number};
use weir_compiler::{Action, Decision, SmolStr, TakenKind};

/// A human-readable summary of one decision (several lines).
pub fn decision_text(d: &Decision) -> String {
    let mut out = String::new();
    out.push_str(d.verdict.as_str());
    if let Some(r) = &d.reply {
        out.push_str(&format!(" {} {} {}", r.code, r.status, r.text));
    }
    if let Some(reason) = &d.quarantine_reason {
        out.push_str(&format!(" ({reason})"));
    }
    out.push_str(&format!("  stage={}", d.stage));
    if let Some(rule) = &d.decided_by {
        out.push_str(&format!("  by={rule}"));
    }
    out.push('\n');
    let list = |xs: &[SmolStr]| {
        if xs.is_empty() {
            "-".to_string()
        } else {
            xs.join(", ")
        }
    };
    out.push_str(&format!("  matched: {}\n", list(&d.matched)));
    out.push_str(&format!("  tags:    {}\n", list(&d.tags)));
    out.push_str(&format!("  score:   {}\n", number(d.score)));
    if let Some(f) = &d.folder {
        out.push_str(&format!("  folder:  {f}\n"));
    }
    for taken in &d.actions {
        let what = match &taken.what {
            TakenKind::Action(a) => action_text(a),
            TakenKind::ShadowVerdict(v) => v.verdict.as_str().to_string(),
        };
        let shadow = if taken.shadow { " [shadow]" } else { "" };
        out.push_str(&format!("  - {what}  ({}){shadow}\n", taken.rule));
    }
    out
}

fn action_text(a: &Action) -> String {
    let args = action_json(a);
    let mut parts = vec![a.name().to_string()];
    for (k, v) in &args {
        if k == "action" {
            continue;
        }
        match v {
            Value::Null => {}
            Value::String(s) => parts.push(format!("{s:?}")),
            other => parts.push(other.to_string()),
        }
    }
    parts.join(" ")
}

/// The `--explain` trace, one line per rule evaluated.
pub fn trace_text(trace: &[RuleTrace]) -> String {
    let mut out = String::new();
    for t in trace {
        let mark = if t.held { "held" } else { "    " };
        out.push_str(&format!("  {mark}  {}", t.rule));
        if let Some(e) = &t.evidence {
            out.push_str(&format!(
                "  by {} = {:?} at bytes {}..{}",
                e.expr, e.value, e.span.0, e.span.1
            ));
        }
        out.push('\n');
    }
    out
}
