//! The builtin registry: every field, function and action of Flow with its
//! signature, stage, documentation and (for fields and pure functions) its
//! implementation. The checker, the interpreter (whose machine the native
//! code's host calls use), the language server and the generated reference
//! in `docs/` all read this one table.

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
    /// stage depends on the rules (docs/language.md ("Stages")).
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
    /// `duplicate(KEY, WINDOW)`: reads the records of delivered copies;
    /// the caller records the key once this copy is delivered.
    Duplicate,
    /// `matched(rule)`: reads the evaluation so far.
    Matched,
    /// A pure function of a header's occurrences as written
    /// (`header(NAME).raw`, which the checker passes first) and of the
    /// arguments the rule gives: `auth_results(TRUSTED)`.
    OverHeader {
        /// The header read.
        header: &'static str,
        /// The function: `[occurrences, args...]`.
        imp: fn(&[Value]) -> Value,
    },
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
    /// The arguments it takes.
    pub args: ActionArgs,
    /// Whether it takes a `with {key: value, ...}` map (`notify`).
    pub with: bool,
    /// Whether it takes a `template NAME` clause.
    pub template: TemplateClause,
    /// Documentation.
    pub doc: &'static str,
}

/// The arguments an action takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionArgs {
    /// Exactly this many.
    Exact(usize),
    /// None or one (`quarantine ["reason"]`).
    Optional,
    /// An SMTP reply: `[CODE] [STATUS] ["text"]` (`reject`, `tempfail`).
    Reply,
}

/// Whether an action takes a `template NAME` clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateClause {
    /// It takes none.
    None,
    /// It may take one (`notify`).
    Optional,
    /// It must have one (`reply`).
    Required,
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

/// The member fields of values of type `ty` (`a.domain`, `now.hour`,
/// `attachments.name`): (name, type, doc). On a list, the members of its
/// items, each giving a list (`attachments.name` is a `list<string>`).
pub fn members(ty: &Type) -> Vec<(&'static str, Type, &'static str)> {
    if let Type::List(item) = ty {
        return members(item)
            .into_iter()
            .map(|(name, t, doc)| (name, Type::list(t), doc))
            .collect();
    }
    match ty {
        Type::Address => vec![
            (
                "address",
                Type::String,
                "`local@domain` (`\"\"` for the null sender).",
            ),
            (
                "local",
                Type::String,
                "The whole local part, `+detail` included.",
            ),
            (
                "domain",
                Type::String,
                "The domain, as written (comparisons ignore case).",
            ),
            (
                "detail",
                Type::String,
                "What follows the first `+` in the local part, or `\"\"`.",
            ),
            (
                "name",
                Type::String,
                "The display name, RFC 2047-decoded, or `\"\"`.",
            ),
        ],
        Type::Attachment => vec![
            (
                "name",
                Type::String,
                "The file name (RFC 2231 and RFC 2047 decoded), else the Content-Type `name`, else `\"\"`.",
            ),
            (
                "type",
                Type::String,
                "Lower-case `type/subtype`, without parameters (`application/pdf`).",
            ),
            (
                "size",
                Type::Int,
                "Decoded size in bytes (a ZIP entry: the uncompressed size the archive declares).",
            ),
            (
                "archive",
                Type::String,
                "The name of the attachment this one is inside (an enclosed message or a ZIP \
                 archive; its type when it has no name), `\"\"` for a part of the message itself.",
            ),
            (
                "encrypted",
                Type::Bool,
                "Whether this is an encrypted entry of a ZIP archive.",
            ),
        ],
        Type::AuthResult => auth_result_members(),
        Type::Time => vec![
            (
                "hour",
                Type::Int,
                "Hour of the day, 0-23, in the time's zone (UTC unless made by `local()`).",
            ),
            (
                "minute",
                Type::Int,
                "Minute of the hour, 0-59, in the time's zone.",
            ),
            ("second", Type::Int, "Second of the minute, 0-59."),
            (
                "weekday",
                Type::String,
                "Day of the week in the time's zone, a lower-case English name: `\"monday\"` … `\"sunday\"`.",
            ),
            (
                "day",
                Type::Int,
                "Day of the month, 1-31, in the time's zone.",
            ),
            ("month", Type::Int, "Month, 1-12, in the time's zone."),
            ("year", Type::Int, "Year, in the time's zone."),
        ],
        Type::Duration => vec![
            ("seconds", Type::Int, "The duration in whole seconds."),
            (
                "hours",
                Type::Float,
                "The duration in hours (`90m.hours` is 1.5).",
            ),
            (
                "days",
                Type::Float,
                "The duration in days (`36h.days` is 1.5).",
            ),
        ],
        _ => Vec::new(),
    }
}

/// The properties of an authentication result that are members of it
/// (`r.header.from`), as RFC 8601 and its registry name them.
pub const AUTH_RESULT_PROPERTIES: &[(&str, &str)] = &[
    (
        "header.from",
        "The `header.from` property: the From domain DMARC checked.",
    ),
    (
        "header.d",
        "The `header.d` property: the signing domain of a DKIM signature.",
    ),
    (
        "header.i",
        "The `header.i` property: the identity of a DKIM signature.",
    ),
    (
        "header.s",
        "The `header.s` property: the selector of a DKIM signature.",
    ),
    (
        "header.b",
        "The `header.b` property: the start of a DKIM signature.",
    ),
    (
        "smtp.mailfrom",
        "The `smtp.mailfrom` property: the envelope sender SPF checked.",
    ),
    (
        "smtp.helo",
        "The `smtp.helo` property: the HELO name SPF checked.",
    ),
    ("smtp.auth", "The `smtp.auth` property: the SMTP AUTH user."),
    (
        "policy.dmarc",
        "The `policy.dmarc` property (Stalwart): the DMARC policy.",
    ),
];

fn auth_result_members() -> Vec<(&'static str, Type, &'static str)> {
    let mut members = vec![
        (
            "method",
            Type::String,
            "The method, lower-case, without a version: `spf`, `dkim`, `dmarc`, `arc`, …",
        ),
        (
            "result",
            Type::String,
            "The result, lower-case: `pass`, `fail`, `softfail`, `neutral`, `none`, …",
        ),
        ("reason", Type::String, "The `reason=` text, or `\"\"`."),
        (
            "policy",
            Type::String,
            "The DMARC policy reported, lower-case: the `policy.dmarc` property, else \
             `policy=` or `p=` in a comment (`(policy=reject)`, `(p=reject dis=none)`); `\"\"` \
             if none.",
        ),
        (
            "comment",
            Type::String,
            "The text of the result's comments `( … )`, joined with `; `.",
        ),
        (
            "authserv",
            Type::String,
            "The authserv-id of the header the result is in.",
        ),
        (
            "properties",
            Type::list(Type::String),
            "Every property as `ptype.property=value`, in order.",
        ),
    ];
    members.extend(
        AUTH_RESULT_PROPERTIES
            .iter()
            .map(|(name, doc)| (*name, Type::String, *doc)),
    );
    members
}

/// The value of member `member` of `v` (see [`members`]); on a list, the
/// list of its items' members. `None` when `v` has no such member.
pub fn member_value(v: &Value, member: &str) -> Option<Value> {
    Some(match v {
        Value::List(items) => Value::list(
            items
                .iter()
                .map(|item| member_value(item, member))
                .collect::<Option<Vec<_>>>()?,
        ),
        Value::Address(a) => Value::str(match member {
            "address" => &a.address,
            "local" => &a.local,
            "domain" => &a.domain,
            "detail" => &a.detail,
            "name" => &a.name,
            _ => return None,
        }),
        Value::Attachment(a) => match member {
            "name" => Value::str(&a.name),
            "type" => Value::str(&a.content_type),
            "size" => Value::Int(i64::try_from(a.size).unwrap_or(i64::MAX)),
            "archive" => Value::str(&a.archive),
            "encrypted" => Value::Bool(a.encrypted),
            _ => return None,
        },
        Value::AuthResult(r) => match member {
            "method" => Value::str(&r.method),
            "result" => Value::str(&r.result),
            "reason" => Value::str(&r.reason),
            "policy" => Value::str(r.policy()),
            "comment" => Value::str(&r.comment),
            "authserv" => Value::str(&r.authserv),
            "properties" => Value::list(
                r.properties
                    .iter()
                    .map(|(k, v)| Value::str(format!("{k}={v}")))
                    .collect(),
            ),
            property if AUTH_RESULT_PROPERTIES.iter().any(|(n, _)| *n == property) => {
                Value::str(r.property(property))
            }
            _ => return None,
        },
        Value::Time(secs, zone) => {
            let t = crate::time::fields(*secs, *zone);
            match member {
                "hour" => Value::Int(i64::from(t.hour)),
                "minute" => Value::Int(i64::from(t.minute)),
                "second" => Value::Int(i64::from(t.second)),
                "weekday" => Value::str(weekday_name(t.weekday)),
                "day" => Value::Int(i64::from(t.day)),
                "month" => Value::Int(i64::from(t.month)),
                "year" => Value::Int(i64::from(t.year)),
                _ => return None,
            }
        }
        Value::Duration(secs) => match member {
            "seconds" => Value::Int(*secs),
            "hours" => Value::Float(*secs as f64 / 3_600.0),
            "days" => Value::Float(*secs as f64 / 86_400.0),
            _ => return None,
        },
        _ => return None,
    })
}

fn weekday_name(day: chrono::Weekday) -> &'static str {
    match day {
        chrono::Weekday::Mon => "monday",
        chrono::Weekday::Tue => "tuesday",
        chrono::Weekday::Wed => "wednesday",
        chrono::Weekday::Thu => "thursday",
        chrono::Weekday::Fri => "friday",
        chrono::Weekday::Sat => "saturday",
        chrono::Weekday::Sun => "sunday",
    }
}
