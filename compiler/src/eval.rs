//! The reference interpreter: runs the lowered rules on one transaction
//! (docs/language.md ("Expressions" to "Rules and actions")). It is the specification of Flow's meaning; other
//! engines must agree with it.
//!
//! Choices where the language is silent, all documented in
//! `docs/language.md`: an index out of range yields the item type's empty
//! value (`""` for strings and captures, `0`, an empty address); integer
//! arithmetic saturates; a negative index is out of range.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use weir_stdlib::{Stage, Transaction, Value};

use crate::EvalOptions;
use crate::compare;
use crate::decision::{
    self, Decision, Evidence, RenderedTemplate, Reply, RuleTrace, ShadowVerdict, SmolStr, Taken,
    TakenKind, Verdict,
};
use crate::ir::{Action, Arith, ClassMember, Compare, Expr, Part, Rule, Stmt};
use crate::ir::{Function, Template};
use crate::rates::{NoRates, RateCounter};

/// Everything the interpreter runs.
#[derive(Debug, Default)]
pub(crate) struct Program {
    /// Rules in evaluation order (priority, then load order).
    pub rules: Vec<Rule>,
    /// User functions by index.
    pub functions: Vec<Function>,
    /// Templates by index.
    pub templates: Vec<Template>,
    /// How many rules there are (rule ids are `0..rule_count`).
    pub rule_count: usize,
    /// Every distinct regex literal of the ruleset (built on first use;
    /// see [`crate::Ruleset::build_regexes`]).
    pub regexes: Vec<std::sync::Arc<weir_stdlib::Regex>>,
    /// The learned classifiers, in load order.
    pub classifiers: Vec<crate::ClassifierInfo>,
}

impl Program {
    /// The outermost expressions: every rule's condition and action
    /// arguments and every template's parts (a `fn`'s body is reached
    /// through its calls).
    pub(crate) fn roots(&self) -> Vec<&Expr> {
        let mut exprs: Vec<&Expr> = Vec::new();
        for rule in &self.rules {
            exprs.extend(&rule.when);
            let blocks = std::iter::once(&rule.then).chain(rule.otherwise.as_ref());
            for stmt in blocks.flatten() {
                stmt.each_expr(&mut |e| exprs.push(e));
            }
        }
        for t in &self.templates {
            exprs.extend(
                [&t.subject, &t.body, &t.from, &t.addresses]
                    .into_iter()
                    .flatten(),
            );
        }
        exprs
    }
}

/// Up to this many tags, a new tag is compared with each; beyond, looked
/// up in a set.
const TAGS_SCANNED: usize = 8;

/// Whether evaluation goes on after a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// A verdict or `stop` ended evaluation (or, in a shadow rule, its actions).
    End,
}

/// The state of one evaluation. The interpreter drives it with its own
/// control flow; the native engine drives the same steps from generated
/// code, so both share every leaf test and every action.
pub(crate) struct Machine<'a> {
    prog: &'a Program,
    tx: &'a Transaction,
    rates: &'a mut dyn RateCounter,
    opts: &'a EvalOptions,
    /// Cached field values, by registry index.
    fields: Vec<Option<Value>>,
    /// The sum of the `score` actions in thousandths: fixed point, so that
    /// decimals with up to three fractional digits add exactly.
    score: i64,
    /// Whether each rule (by id) held, for `matched()`, one bit a rule
    /// (zeroed per message: 1.25 KB at 10,000 rules); shadow rules never
    /// count.
    matched: Vec<u64>,
    /// The captures of the rule being evaluated, by slot.
    captures: Vec<Option<Arc<Vec<String>>>>,
    /// Arguments of the user functions being evaluated, innermost last.
    frames: Vec<Vec<Value>>,
    /// The elements bound by the `some`/`every` being evaluated, innermost last.
    elements: Vec<Value>,
    /// Whether the rule being evaluated is a shadow rule.
    shadow: bool,
    /// The latest stage among the rules visited so far.
    stage: Stage,
    /// Rate keys already counted for this message.
    counted: HashSet<String>,
    /// The decision's tags once there are more than [`TAGS_SCANNED`], for
    /// the duplicate check (at 10,000 rules some 40 tags per message).
    tag_set: HashSet<SmolStr, foldhash::fast::RandomState>,
    /// How many `not`s enclose the expression being evaluated.
    negations: usize,
    /// The first test that held in the current condition (when explaining).
    evidence: Option<Evidence>,
    decision: Decision,
}

/// Evaluates a program on one transaction.
pub(crate) fn evaluate(
    prog: &Program,
    tx: &Transaction,
    rates: &mut dyn RateCounter,
    opts: &EvalOptions,
) -> Decision {
    let mut m = Machine::new(prog, tx, rates, opts);
    m.run();
    m.finish()
}

/// The value of a constant expression, or `None` if it reads anything
/// (fields, parameters, captures, functions, counters).
pub(crate) fn constant(e: &Expr) -> Option<Value> {
    if !is_constant(e) {
        return None;
    }
    if let Expr::Const(v) = e {
        return Some(v.clone());
    }
    let prog = Program::default();
    let tx = Transaction {
        connection: Default::default(),
        envelope: Default::default(),
        message: weir_stdlib::Message::empty(),
        now: 0,
        classes: Default::default(),
    };
    let opts = EvalOptions {
        explain: false,
        dry_run: true,
    };
    let mut rates = NoRates;
    let mut m = Machine::new(&prog, &tx, &mut rates, &opts);
    Some(m.eval(e))
}

fn is_constant(e: &Expr) -> bool {
    match e {
        Expr::Const(_) => true,
        Expr::Field(_)
        | Expr::Score
        | Expr::Header { .. }
        | Expr::Param(_)
        | Expr::Element
        | Expr::Quantified { .. }
        | Expr::Captures(_)
        | Expr::CallUser { .. }
        | Expr::Rate { .. }
        | Expr::Duplicate { .. }
        | Expr::Classifier(..)
        | Expr::Matched(_) => false,
        Expr::Member(e, _) | Expr::Not(e) | Expr::Neg(e) | Expr::Exists(e) => is_constant(e),
        Expr::Index(a, b, _) | Expr::And(a, b) | Expr::Or(a, b) | Expr::Arith(_, a, b) => {
            is_constant(a) && is_constant(b)
        }
        Expr::Builtin { args, .. } | Expr::List(args) => args.iter().all(is_constant),
        Expr::Compare(c) => is_constant(&c.lhs) && is_constant(&c.rhs),
        Expr::Interp(parts) => parts.iter().all(|p| match p {
            Part::Text(_) => true,
            Part::Expr(e) => is_constant(e),
        }),
    }
}

/// A score amount in thousandths, rounded half away from zero; not a
/// number counts as 0, and the amount saturates rather than overflowing.
pub(crate) fn thousandths(n: f64) -> i64 {
    if n.is_finite() {
        // `as` saturates at the bounds of i64.
        (n * 1000.0).round() as i64
    } else {
        0
    }
}

/// The float closest to `milli / 1000`: both are exact in an f64 below
/// 2^53, and the division is correctly rounded, so `4000` gives exactly
/// `4.0` and `300` the same float as the literal `0.3`.
pub(crate) fn from_thousandths(milli: i64) -> f64 {
    milli as f64 / 1000.0
}

/// Whose deliveries `duplicate()` looks at: the lower-cased `recipient`
/// (LMTP: the recipient being delivered; elsewhere the first envelope
/// recipient, so one record per message), `""` when there is none.
pub(crate) fn duplicate_scope(tx: &Transaction) -> String {
    tx.envelope
        .recipient
        .as_ref()
        .map(|a| a.address.to_lowercase())
        .unwrap_or_default()
}

/// What a rule reads of a classifier's answer; a classifier without an
/// answer has learned nothing: `""`, 0, 0 (docs/language.md ("Classifiers")).
fn classifier_value(tx: &Transaction, name: &str, member: &ClassMember) -> Value {
    let answer = tx.classes.get(name);
    match member {
        ClassMember::Class => Value::str(answer.map_or("", |a| a.class.as_str())),
        ClassMember::Confidence => Value::Float(answer.map_or(0.0, |a| a.confidence)),
        ClassMember::Probability(class) => {
            Value::Float(answer.map_or(0.0, |a| a.probability(class)))
        }
    }
}

/// The text of a value as interpolation renders it.
pub(crate) fn text(v: &Value) -> String {
    v.to_text()
}

impl<'a> Machine<'a> {
    /// A fresh evaluation of `prog` on `tx`.
    pub(crate) fn new(
        prog: &'a Program,
        tx: &'a Transaction,
        rates: &'a mut dyn RateCounter,
        opts: &'a EvalOptions,
    ) -> Self {
        Machine {
            prog,
            tx,
            rates,
            opts,
            fields: vec![None; weir_stdlib::registry().fields.len()],
            score: 0,
            matched: vec![0; prog.rule_count.div_ceil(64)],
            captures: Vec::new(),
            frames: Vec::new(),
            elements: Vec::new(),
            shadow: false,
            stage: Stage::Connect,
            counted: HashSet::new(),
            tag_set: HashSet::default(),
            negations: 0,
            evidence: None,
            decision: Decision::new(Verdict::Accept, None, Stage::Connect),
        }
    }

    fn run(&mut self) {
        let prog = self.prog;
        for rule in &prog.rules {
            self.begin_rule(rule);
            let held = match &rule.when {
                None => true,
                Some(w) => self.test(w, 0),
            };
            let ended = if held {
                self.rule_held(rule)
            } else {
                self.rule_failed(rule)
            };
            if ended {
                break;
            }
        }
    }

    /// Prepares the evaluation of `rule`'s condition (the steps every
    /// engine takes before a rule, in this order).
    pub(crate) fn begin_rule(&mut self, rule: &Rule) {
        self.stage = self.stage.max(rule.stage);
        self.shadow = rule.shadow;
        // Reused, not reallocated: at 10,000 rules hundreds of rules begin
        // per message.
        self.captures.clear();
        self.captures.resize(rule.captures, None);
        self.evidence = None;
        self.negations = 0;
    }

    /// Counts `stage` as reached, as [`Machine::begin_rule`] does with its
    /// rule's: for the native engine, which does not `begin` a rule whose
    /// condition failed without needing the host.
    pub(crate) fn reach_stage(&mut self, stage: Stage) {
        self.stage = self.stage.max(stage);
    }

    /// The truth of a condition or part of one, evaluated inside
    /// `negations` enclosing `not`s of the rule's condition (which only
    /// matters for `--explain` evidence).
    pub(crate) fn test(&mut self, e: &Expr, negations: usize) -> bool {
        let saved = std::mem::replace(&mut self.negations, negations);
        let held = truthy(&self.eval(e));
        self.negations = saved;
        held
    }

    /// Records that `rule`'s condition held and runs its `then` block.
    /// Returns whether evaluation ends here.
    pub(crate) fn rule_held(&mut self, rule: &Rule) -> bool {
        self.trace(rule, true);
        self.decision.matched.push(rule.name.clone());
        if !rule.shadow
            && let Some(word) = self.matched.get_mut(rule.id / 64)
        {
            *word |= 1 << (rule.id % 64);
        }
        let flow = self.block(rule, &rule.then);
        self.end_rule(rule, flow)
    }

    /// Records that `rule`'s condition did not hold and runs its `else`
    /// block, if any. Returns whether evaluation ends here.
    pub(crate) fn rule_failed(&mut self, rule: &Rule) -> bool {
        self.trace(rule, false);
        let flow = match &rule.otherwise {
            Some(otherwise) => self.block(rule, otherwise),
            None => Flow::Continue,
        };
        self.end_rule(rule, flow)
    }

    fn trace(&mut self, rule: &Rule, held: bool) {
        if self.opts.explain {
            let evidence = if held { self.evidence.take() } else { None };
            self.decision.trace.push(RuleTrace {
                rule: rule.name.to_string(),
                held,
                evidence,
            });
        }
    }

    /// Whether a block's outcome ends evaluation (a shadow rule's verdict
    /// or `stop` does not).
    fn end_rule(&mut self, rule: &Rule, flow: Flow) -> bool {
        if flow == Flow::End && !rule.shadow {
            if self.decision.decided_by.is_none() {
                self.decision.decided_by = Some(rule.name.to_string());
            }
            return true;
        }
        false
    }

    /// The decision, once the rules have run (or evaluation ended).
    pub(crate) fn finish(mut self) -> Decision {
        self.decision.stage = self.stage;
        self.decision.score = from_thousandths(self.score);
        crate::autoreply::apply_verdict(&mut self.decision);
        self.decision
    }

    fn block(&mut self, rule: &Rule, stmts: &[Stmt]) -> Flow {
        for stmt in stmts {
            let flow = match stmt {
                Stmt::Action(a) => self.action(rule, a),
                Stmt::If {
                    cond,
                    then,
                    otherwise,
                } => {
                    if truthy(&self.eval(cond)) {
                        self.block(rule, then)
                    } else {
                        self.block(rule, otherwise)
                    }
                }
            };
            if flow == Flow::End {
                return Flow::End;
            }
        }
        Flow::Continue
    }

    fn take(&mut self, rule: &Rule, action: decision::Action) {
        if !rule.shadow {
            match &action {
                decision::Action::Tag(t) => self.add_tag(t),
                decision::Action::Score(n) => {
                    self.score = self.score.saturating_add(thousandths(*n));
                }
                decision::Action::Fileinto(f) => self.decision.folder = Some(f.clone()),
                _ => {}
            }
        }
        self.decision.actions.push(Taken {
            rule: rule.name.clone(),
            shadow: rule.shadow,
            what: TakenKind::Action(action),
        });
    }

    /// Adds `tag` to the decision's tags unless it is there already.
    fn add_tag(&mut self, tag: &SmolStr) {
        let tags = &mut self.decision.tags;
        let new = if tags.len() < TAGS_SCANNED {
            !tags.contains(tag)
        } else {
            if self.tag_set.is_empty() {
                self.tag_set.reserve(4 * TAGS_SCANNED);
                self.tag_set.extend(tags.iter().cloned());
            }
            self.tag_set.insert(tag.clone())
        };
        if new {
            tags.push(tag.clone());
        }
    }

    fn text_of(&mut self, e: &Expr) -> String {
        let v = self.eval(e);
        text(&v)
    }

    /// [`Machine::text_of`] as a tag: a string value is not copied again
    /// (kept inline when short, else shared with the ruleset's literal).
    fn tag_of(&mut self, e: &Expr) -> SmolStr {
        match self.eval(e) {
            Value::Str(s) => SmolStr::from(s),
            v => SmolStr::from(text(&v)),
        }
    }

    fn action(&mut self, rule: &Rule, a: &Action) -> Flow {
        use decision::Action as D;
        let action = match a {
            Action::Verdict {
                verdict,
                code,
                status,
                text,
            } => {
                self.verdict(rule, *verdict, (*code, status), text.as_ref());
                return Flow::End;
            }
            Action::Stop => return Flow::End,
            Action::AddHeader(n, v) => D::AddHeader {
                name: self.text_of(n),
                value: self.text_of(v),
            },
            Action::SetHeader(n, v) => D::SetHeader {
                name: self.text_of(n),
                value: self.text_of(v),
            },
            Action::RemoveHeader(n) => D::RemoveHeader {
                name: self.text_of(n),
            },
            Action::PrependSubject(t) => D::PrependSubject(self.text_of(t)),
            Action::AddRcpt(t) => D::AddRcpt(self.text_of(t)),
            Action::RemoveRcpt(t) => D::RemoveRcpt(self.text_of(t)),
            Action::Redirect(t) => D::Redirect(self.text_of(t)),
            Action::Fileinto(t) => D::Fileinto(self.text_of(t)),
            Action::Flag(t) => D::Flag(self.text_of(t)),
            Action::Keep => D::Keep,
            Action::Tag(t) => D::Tag(self.tag_of(t)),
            Action::Score(n) => {
                let n = self.eval(n).as_f64().unwrap_or(0.0);
                D::Score(from_thousandths(thousandths(n)))
            }
            Action::Log(t) => D::Log(self.text_of(t)),
            Action::Notify {
                channel,
                with,
                template,
            } => {
                let channel = self.text_of(channel);
                let with = with
                    .iter()
                    .map(|(k, v)| (k.clone(), self.text_of(v)))
                    .collect();
                let template = template.map(|t| self.render(t));
                D::Notify {
                    channel,
                    with,
                    template,
                }
            }
            Action::Reply(t, every) => self.reply(*t, every.as_ref()),
        };
        self.take(rule, action);
        Flow::Continue
    }

    /// A verdict: the decision's, or for a shadow rule a verdict it would
    /// have given, recorded beside the actions.
    fn verdict(
        &mut self,
        rule: &Rule,
        verdict: Verdict,
        (code, status): (u16, &str),
        text: Option<&Expr>,
    ) {
        let text = text.map(|t| self.text_of(t));
        let reply = matches!(verdict, Verdict::Reject | Verdict::Tempfail).then(|| Reply {
            code,
            status: status.to_string(),
            text: text.clone().unwrap_or_default(),
        });
        let reason = (verdict == Verdict::Quarantine).then(|| text.unwrap_or_default());
        if rule.shadow {
            let what = TakenKind::ShadowVerdict(ShadowVerdict {
                verdict,
                reply,
                reason,
            });
            self.decision.actions.push(Taken {
                rule: rule.name.clone(),
                shadow: true,
                what,
            });
        } else {
            self.decision.verdict = verdict;
            self.decision.reply = reply;
            self.decision.quarantine_reason = reason;
            self.decision.decided_by = Some(rule.name.to_string());
        }
    }

    /// `reply template T [every D]`, with why the daemon would skip it.
    fn reply(&mut self, index: usize, every: Option<&Expr>) -> decision::Action {
        let template = self.render(index);
        let skipped = crate::autoreply::message_reason(self.tx, &template.addresses);
        decision::Action::Reply {
            every: every.map(|e| match self.eval(e) {
                Value::Duration(d) => d.max(0),
                _ => 0,
            }),
            skipped: skipped.map(str::to_string),
            template,
        }
    }

    fn render(&mut self, index: usize) -> RenderedTemplate {
        let prog = self.prog;
        let Some(t) = prog.templates.get(index) else {
            return RenderedTemplate {
                name: String::new(),
                subject: String::new(),
                body: String::new(),
                from: String::new(),
                addresses: Vec::new(),
            };
        };
        let mut text = |e: &Option<Expr>| e.as_ref().map(|e| self.text_of(e)).unwrap_or_default();
        let (subject, body, from) = (text(&t.subject), text(&t.body), text(&t.from));
        let addresses = text(&t.addresses)
            .split(',')
            .map(|a| weir_stdlib::Address::parse(a.trim()).address.to_string())
            .filter(|a| !a.is_empty())
            .collect();
        RenderedTemplate {
            name: t.name.clone(),
            subject,
            body,
            from,
            addresses,
        }
    }

    fn field(&mut self, index: usize) -> Value {
        if let Some(Some(v)) = self.fields.get(index) {
            return v.clone();
        }
        let reg = weir_stdlib::registry();
        let v = reg
            .fields
            .get(index)
            .and_then(|f| f.get)
            .map_or_else(|| Value::str(""), |get| get(self.tx));
        if let Some(slot) = self.fields.get_mut(index) {
            *slot = Some(v.clone());
        }
        v
    }

    /// Evaluates an expression. Never panics: ill-typed values (which the
    /// checker rules out) give empty results.
    pub(crate) fn eval(&mut self, e: &Expr) -> Value {
        match e {
            Expr::Const(v) => v.clone(),
            Expr::Field(i) => self.field(*i),
            Expr::Score => Value::Float(from_thousandths(self.score)),
            Expr::Header { name, raw } => self.header(name, *raw),
            Expr::Param(i) => self
                .frames
                .last()
                .and_then(|f| f.get(*i))
                .cloned()
                .unwrap_or_else(|| Value::str("")),
            Expr::Element => self
                .elements
                .last()
                .cloned()
                .unwrap_or_else(|| Value::str("")),
            Expr::Quantified { every, list, body } => self.quantified(*every, list, body),
            Expr::Captures(slot) => Value::Captures(
                self.captures
                    .get(*slot)
                    .cloned()
                    .flatten()
                    .unwrap_or_default(),
            ),
            Expr::Member(base, member) => {
                let v = self.eval(base);
                project(&v, member)
            }
            Expr::Index(base, index, empty) => self.index(base, index, empty),
            Expr::Builtin { imp, args } => {
                let args: Vec<Value> = args.iter().map(|a| self.eval(a)).collect();
                imp(&args)
            }
            Expr::CallUser { func, args } => self.call_user(*func, args),
            Expr::Rate { key, window } => self.rate(key, window),
            Expr::Duplicate { key, window } => self.duplicate(key, window),
            Expr::Matched(id) => Value::Bool(
                self.matched
                    .get(id / 64)
                    .is_some_and(|word| word >> (id % 64) & 1 == 1),
            ),
            Expr::Classifier(name, member) => classifier_value(self.tx, name, member),
            Expr::Not(inner) => {
                self.negations += 1;
                let v = truthy(&self.eval(inner));
                self.negations -= 1;
                Value::Bool(!v)
            }
            Expr::And(a, b) => Value::Bool(truthy(&self.eval(a)) && truthy(&self.eval(b))),
            Expr::Or(a, b) => Value::Bool(truthy(&self.eval(a)) || truthy(&self.eval(b))),
            Expr::Arith(op, a, b) => {
                let (a, b) = (self.eval(a), self.eval(b));
                arith(*op, &a, &b)
            }
            Expr::Neg(inner) => match self.eval(inner) {
                Value::Int(i) => Value::Int(i.saturating_neg()),
                Value::Float(f) => Value::Float(-f),
                Value::Duration(d) => Value::Duration(d.saturating_neg()),
                other => other,
            },
            Expr::Compare(c) => self.compare(c),
            Expr::Exists(inner) => Value::Bool(match self.eval(inner) {
                Value::List(l) => !l.is_empty(),
                Value::Str(s) => !s.is_empty(),
                _ => false,
            }),
            Expr::List(items) => Value::list(items.iter().map(|i| self.eval(i)).collect()),
            Expr::Interp(parts) => self.interpolate(parts),
        }
    }

    /// `header(NAME)` or `header(NAME).raw`: every value of that header.
    fn header(&mut self, name: &Expr, raw: bool) -> Value {
        let name = self.text_of(name);
        let values = if raw {
            self.tx.message.header_raw(&name)
        } else {
            self.tx.message.header(&name)
        };
        Value::list(values.into_iter().map(Value::str).collect())
    }

    /// `base[index]`: an item of a list or a capture group; `empty` when
    /// there is none.
    fn index(&mut self, base: &Expr, index: &Expr, empty: &Value) -> Value {
        let base = self.eval(base);
        let i = match self.eval(index) {
            Value::Int(i) => usize::try_from(i).ok(),
            _ => None,
        };
        match (&base, i) {
            (Value::List(items), Some(i)) => items.get(i).cloned().unwrap_or_else(|| empty.clone()),
            (Value::Captures(c), Some(i)) => {
                c.get(i).map(Value::str).unwrap_or_else(|| empty.clone())
            }
            _ => empty.clone(),
        }
    }

    /// `some`/`every`: the body once per element, stopping at the first
    /// element that decides (`some` over an empty list is false, `every`
    /// true). Lambdas do not nest (checked), so this is linear in the list.
    fn quantified(&mut self, every: bool, list: &Expr, body: &Expr) -> Value {
        let items = match self.eval(list) {
            Value::List(items) => items,
            other => std::sync::Arc::new(vec![other]),
        };
        for item in items.iter() {
            self.elements.push(item.clone());
            let held = truthy(&self.eval(body));
            self.elements.pop();
            if held != every {
                return Value::Bool(!every);
            }
        }
        Value::Bool(every)
    }

    /// A call of the ruleset's `fn` number `func`.
    fn call_user(&mut self, func: usize, args: &[Expr]) -> Value {
        let args: Vec<Value> = args.iter().map(|a| self.eval(a)).collect();
        let prog = self.prog;
        let Some(f) = prog.functions.get(func) else {
            return Value::Bool(false);
        };
        // No recursion (checked), so the depth is bounded by the number of functions.
        self.frames.push(args);
        let v = self.eval(&f.body);
        self.frames.pop();
        v
    }

    /// `rate(KEY, WINDOW)`: counts this message once per key, unless the
    /// rule is a shadow or the evaluation a dry run.
    fn rate(&mut self, key: &Expr, window: &Expr) -> Value {
        let (key, window) = self.rate_key(key, window);
        let count = !self.shadow && !self.opts.dry_run && !self.counted.contains(&key);
        if count {
            self.counted.insert(key.clone());
        }
        let n = self.rates.hit(&key, window, self.tx.now, count);
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }

    /// The key and window in seconds of `rate(KEY, WINDOW)`: what the
    /// counter is asked, here and in the prefetch (`prefetch.rs`).
    pub(crate) fn rate_key(&mut self, key: &Expr, window: &Expr) -> (String, u64) {
        let key = self.text_of(key);
        let window = match self.eval(window) {
            Value::Duration(d) => u64::try_from(d).unwrap_or(0),
            _ => 0,
        };
        (key, window)
    }

    /// Binds `args` as the parameters of a `fn` being entered, as a call
    /// does (the prefetch walks a `fn`'s body with its call's arguments);
    /// [`Machine::leave_fn`] unbinds them.
    pub(crate) fn enter_fn(&mut self, args: Vec<Value>) {
        self.frames.push(args);
    }

    /// Unbinds the parameters bound by the last [`Machine::enter_fn`].
    pub(crate) fn leave_fn(&mut self) {
        self.frames.pop();
    }

    /// `duplicate(KEY, WINDOW)`: reads the records of delivered copies and
    /// lists the key for the caller to record once this copy is delivered
    /// (never from a shadow rule or a dry run).
    fn duplicate(&mut self, key: &Expr, window: &Expr) -> Value {
        let key = self.text_of(key);
        let window = match self.eval(window) {
            Value::Duration(d) => u64::try_from(d).unwrap_or(0),
            _ => 0,
        };
        let scope = duplicate_scope(self.tx);
        let seen = self.rates.duplicate(&scope, &key, window, self.tx.now);
        let record = !self.shadow && !self.opts.dry_run;
        if record && !self.decision.duplicates.contains(&key) {
            self.decision.duplicates.push(key);
        }
        Value::Bool(seen)
    }

    /// A comparison: binds its captures, and records the first evidence
    /// of a held rule for `--explain`.
    fn compare(&mut self, c: &Compare) -> Value {
        let lhs = self.eval(&c.lhs);
        let rhs = self.eval(&c.rhs);
        let outcome = compare::test(c, &lhs, &rhs);
        if let (Some(slot), Some(caps)) = (c.bind, &outcome.captures)
            && let Some(s) = self.captures.get_mut(slot)
        {
            *s = Some(Arc::new(caps.clone()));
        }
        let held = outcome.held != c.negated;
        if held
            && !c.negated
            && self.negations == 0
            && self.opts.explain
            && self.evidence.is_none()
            && let Some((value, span)) = outcome.evidence
        {
            self.evidence = Some(Evidence {
                expr: c.source.clone(),
                value,
                span,
            });
        }
        Value::Bool(held)
    }

    /// An interpolated string.
    fn interpolate(&mut self, parts: &[Part]) -> Value {
        let mut out = String::new();
        for part in parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Expr(e) => out.push_str(&self.text_of(e)),
            }
        }
        Value::str(out)
    }
}

fn truthy(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}

/// `.member` of a value, or of every item of a list.
fn project(v: &Value, member: &str) -> Value {
    match v {
        Value::List(items) => Value::list(items.iter().map(|i| project(i, member)).collect()),
        other => {
            weir_stdlib::registry::member_value(other, member).unwrap_or_else(|| Value::str(""))
        }
    }
}

fn arith(op: Arith, a: &Value, b: &Value) -> Value {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let i = |v: &Value| match v {
        Value::Int(i) | Value::Time(i, _) | Value::Duration(i) => *i,
        _ => 0,
    };
    // Time arithmetic keeps the time's zone (`local(now, Z) + 1d` is read
    // in Z, with that day's offset).
    let zone = |v: &Value| match v {
        Value::Time(_, z) => *z,
        _ => weir_stdlib::time::Zone::UTC,
    };
    match op {
        Arith::AddInt => Value::Int(i(a).saturating_add(i(b))),
        Arith::SubInt => Value::Int(i(a).saturating_sub(i(b))),
        Arith::AddFloat => Value::Float(f(a) + f(b)),
        Arith::SubFloat => Value::Float(f(a) - f(b)),
        Arith::Concat => Value::str(format!("{}{}", text(a), text(b))),
        Arith::TimeDiff => Value::Duration(i(a).saturating_sub(i(b))),
        Arith::TimePlus => Value::Time(i(a).saturating_add(i(b)), zone(a)),
        Arith::TimeMinus => Value::Time(i(a).saturating_sub(i(b)), zone(a)),
        Arith::DurAdd => Value::Duration(i(a).saturating_add(i(b))),
        Arith::DurSub => Value::Duration(i(a).saturating_sub(i(b))),
    }
}

/// Whether `ip` is inside the network `net/len` (an IPv4 never matches an
/// IPv6 network, except through its IPv4-mapped form).
pub(crate) fn contains_ip(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        (IpAddr::V4(_), IpAddr::V6(a)) => a
            .to_ipv4_mapped()
            .is_some_and(|a| contains_ip(net, len, IpAddr::V4(a))),
        (IpAddr::V6(n), IpAddr::V4(a)) => n
            .to_ipv4_mapped()
            .is_some_and(|n| contains_ip(IpAddr::V4(n), len.saturating_sub(96), IpAddr::V4(a))),
    }
}
