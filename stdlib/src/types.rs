//! Static types of Flow values and the milter stages at which data is known.

use std::fmt;

/// The static type of a Flow value (docs/language.md ("Expressions")).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Type {
    /// `true` / `false`.
    Bool,
    /// A 64-bit signed integer (sizes are ints too).
    Int,
    /// A 64-bit float; an `int` is promoted where a float is expected.
    Float,
    /// UTF-8 text.
    String,
    /// A mail address with `.address .local .domain .detail .name`.
    Address,
    /// An IPv4 or IPv6 address.
    Ip,
    /// An IP network, `10.0.0.0/8`.
    Cidr,
    /// A point in time (`date`, `now`), with `.hour` and `.weekday`.
    Time,
    /// A length of time (`5m`, `time - time`).
    Duration,
    /// A compiled regular expression.
    Regex,
    /// A list of values of one type.
    List(Box<Type>),
    /// An attachment: `{name: string, type: string, size: int}`.
    Attachment,
    /// The captures bound by `matches ... as m`: `m[i]` is a string.
    Captures,
    /// One result of an `Authentication-Results` header
    /// (`auth_results(...)`): `.method`, `.result`, `.header.from`, ...
    AuthResult,
}

impl Type {
    /// `list<T>`.
    pub fn list(item: Type) -> Type {
        Type::List(Box::new(item))
    }

    /// The element type of a list, or `None` for a scalar.
    pub fn item(&self) -> Option<&Type> {
        match self {
            Type::List(t) => Some(t),
            _ => None,
        }
    }

    /// Whether a value of type `self` may be used where `want` is expected
    /// (equal, or `int` promoted to `float`).
    pub fn fits(&self, want: &Type) -> bool {
        match (self, want) {
            (a, b) if a == b => true,
            (Type::Int, Type::Float) => true,
            (Type::List(a), Type::List(b)) => a.fits(b),
            _ => false,
        }
    }

    /// The type named by a `fn` parameter annotation (`string`, `address`,
    /// ...). `list` needs its argument, so it is built by the caller.
    pub fn from_name(name: &str) -> Option<Type> {
        Some(match name {
            "bool" => Type::Bool,
            "int" => Type::Int,
            "float" => Type::Float,
            "string" => Type::String,
            "address" => Type::Address,
            "ip" => Type::Ip,
            "cidr" => Type::Cidr,
            "time" => Type::Time,
            "duration" => Type::Duration,
            "regex" => Type::Regex,
            "attachment" => Type::Attachment,
            "auth_result" => Type::AuthResult,
            _ => return None,
        })
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Bool => f.write_str("bool"),
            Type::Int => f.write_str("int"),
            Type::Float => f.write_str("float"),
            Type::String => f.write_str("string"),
            Type::Address => f.write_str("address"),
            Type::Ip => f.write_str("ip"),
            Type::Cidr => f.write_str("cidr"),
            Type::Time => f.write_str("time"),
            Type::Duration => f.write_str("duration"),
            Type::Regex => f.write_str("regex"),
            Type::List(t) => write!(f, "list<{t}>"),
            Type::Attachment => f.write_str("attachment"),
            Type::Captures => f.write_str("captures"),
            Type::AuthResult => f.write_str("auth_result"),
        }
    }
}

/// The milter stages, in the order the MTA reaches them (docs/language.md ("Stages")).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// The client connected: `client.*`, `now`, constants.
    Connect,
    /// `HELO`/`EHLO`: `helo`.
    Helo,
    /// `MAIL FROM`: `envelope.from`, `auth.user`, `tls`.
    Mail,
    /// `RCPT TO`: `envelope.to`, `recipient`.
    Rcpt,
    /// The header block: `subject`, `from`, `header(...)`, ...
    Header,
    /// The body: `body`, `attachments`, `size`.
    Body,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 6] = [
        Stage::Connect,
        Stage::Helo,
        Stage::Mail,
        Stage::Rcpt,
        Stage::Header,
        Stage::Body,
    ];

    /// The stage's name as written in tests and reports (`rcpt`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Helo => "helo",
            Stage::Mail => "mail",
            Stage::Rcpt => "rcpt",
            Stage::Header => "header",
            Stage::Body => "body",
        }
    }

    /// The stage named `name`, if any.
    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
