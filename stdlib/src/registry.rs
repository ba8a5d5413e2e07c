//! The builtin registry: every field, function and action of Flow with its
//! signature, stage, documentation and (for fields and pure functions) its
//! implementation. The checker, the interpreter, the generated reference in
//! `docs/`, and later the JIT and the language server all read this one table.

use std::sync::LazyLock;

use crate::message::Transaction;
use crate::types::{Stage, Type};
use crate::value::Value;

/// A field of the message model: `envelope.from`, `subject`, `client.ip`.
#[derive(Debug, Clone)]
pub struct FieldDef {
    /// The dotted path as written in rules.
    pub path: &'static str,
    /// Its static type.
    pub ty: Type,
    /// The first stage at which it is known; `None` for `score`, whose
    /// stage depends on the rules (LANGUAGE.md §6).
    pub stage: Option<Stage>,
    /// Known only under LMTP (`recipient`).
    pub lmtp_only: bool,
    /// One or two sentences for docs and hover.
    pub doc: &'static str,
    /// Reads the field; `None` for `score`, which the evaluator keeps.
    pub get: Option<fn(&Transaction) -> Value>,
}

/// The type a function parameter accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamType {
    /// Exactly this type (or one that [`Type::fits`] it).
    Exact(Type),
    /// Any list.
    AnyList,
    /// The name of a rule (`matched(rule)`): not an expression.
    RuleName,
}

/// How a function is carried out.
#[derive(Debug, Clone, Copy)]
pub enum FunctionImpl {
    /// A pure function of its arguments.
    Pure(fn(&[Value]) -> Value),
    /// `header("Name")`: reads the message; `.raw` gives the undecoded form.
    Header,
    /// `rate(KEY, WINDOW)`: reads and updates the rate counters.
    Rate,
    /// `matched(rule)`: reads the evaluation so far.
    Matched,
}

/// A builtin function: `count`, `lower`, `header`, `rate`, `matched`, ...
#[derive(Debug, Clone)]
pub struct FunctionDef {
    /// Its name.
    pub name: &'static str,
    /// Its parameters in order.
    pub params: Vec<ParamType>,
    /// What it returns.
    pub ret: Type,
    /// The earliest stage its result is known at (`header` → `Header`;
    /// pure functions → `Connect`: their arguments decide).
    pub stage: Stage,
    /// Documentation: one or two sentences, then an example.
    pub doc: &'static str,
    /// How it is evaluated.
    pub imp: FunctionImpl,
}

/// A builtin action word: `reject`, `tag`, `notify`, ...
#[derive(Debug, Clone)]
pub struct ActionDef {
    /// Its word.
    pub name: &'static str,
    /// Its usage as written in docs (`reject [CODE] [STATUS] "text"`).
    pub usage: &'static str,
    /// Ends evaluation (`accept reject tempfail discard quarantine`).
    pub verdict: bool,
    /// Has an effect only under LMTP (the daemon warns for milter-only use).
    pub lmtp_only: bool,
    /// Documentation.
    pub doc: &'static str,
}

/// The whole registry.
#[derive(Debug)]
pub struct Registry {
    /// Every field.
    pub fields: Vec<FieldDef>,
    /// Every builtin function.
    pub functions: Vec<FunctionDef>,
    /// Every action.
    pub actions: Vec<ActionDef>,
}

impl Registry {
    /// The field with this dotted path.
    pub fn field(&self, path: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.path == path)
    }

    /// The function with this name.
    pub fn function(&self, name: &str) -> Option<&FunctionDef> {
        self.functions.iter().find(|f| f.name == name)
    }

    /// The action with this word.
    pub fn action(&self, name: &str) -> Option<&ActionDef> {
        self.actions.iter().find(|a| a.name == name)
    }
}

/// The registry, built once.
pub fn registry() -> &'static Registry {
    static REGISTRY: LazyLock<Registry> = LazyLock::new(crate::builtins::build_registry);
    &REGISTRY
}
