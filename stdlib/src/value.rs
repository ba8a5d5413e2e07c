//! Run-time values of Flow expressions.

use std::net::IpAddr;
use std::sync::Arc;

use crate::message::{Address, Attachment};

/// A run-time value. Cheap to clone: compound values are shared.
#[derive(Debug, Clone)]
pub enum Value {
    /// `bool`.
    Bool(bool),
    /// `int`.
    Int(i64),
    /// `float`.
    Float(f64),
    /// `string`.
    Str(Arc<str>),
    /// `address`.
    Address(Arc<Address>),
    /// `ip`.
    Ip(IpAddr),
    /// `cidr`: network address and prefix length.
    Cidr(IpAddr, u8),
    /// `time`: seconds since the Unix epoch, UTC.
    Time(i64),
    /// `duration`: seconds (negative when the first time was earlier).
    Duration(i64),
    /// `regex`.
    Regex(Arc<regex::Regex>),
    /// `list<T>`.
    List(Arc<Vec<Value>>),
    /// An attachment record.
    Attachment(Arc<Attachment>),
    /// Captures of `matches ... as m`: `m[0]` the whole match, then groups
    /// (a group that did not take part is `""`).
    Captures(Arc<Vec<String>>),
}

impl Value {
    /// A string value.
    pub fn str(s: impl AsRef<str>) -> Value {
        Value::Str(Arc::from(s.as_ref()))
    }

    /// A list value.
    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Arc::new(items))
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The number as a float (ints promoted), if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The text of a string, or the `.address` of an address.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Address(a) => Some(&a.address),
            _ => None,
        }
    }

    /// The items of a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
}
