//! The tagged and positional arguments of one command or test.

use weir_grammar::ast::Span;

use super::Unsupported;
use crate::ast::{Argument, Arguments, SieveString};

/// Tags that take the argument after them as their value.
const VALUED: &[&str] = &[
    "comparator",
    "days",
    "seconds",
    "subject",
    "from",
    "addresses",
    "handle",
    "flags",
    "index",
    "uniqueid",
    "header",
    "value",
    "count",
    "zone",
    "specialuse",
    "fcc",
    "mailboxid",
    "content",
    "method",
    "options",
    "message",
    "importance",
];

/// One command's or test's arguments, tags apart.
#[derive(Debug)]
pub struct Args<'a> {
    /// `:tag` and its value, if it takes one, in order.
    pub tags: Vec<(&'a str, Span, Option<&'a Argument>)>,
    /// The other arguments, in order.
    pub positional: Vec<&'a Argument>,
}

impl<'a> Args<'a> {
    /// Splits the arguments.
    pub fn read(args: &'a Arguments) -> Args<'a> {
        let mut tags = Vec::new();
        let mut positional = Vec::new();
        let mut it = args.args.iter().peekable();
        while let Some(a) = it.next() {
            match a {
                Argument::Tag(t, span) => {
                    let value = if VALUED.contains(&t.as_str()) {
                        it.next()
                    } else {
                        None
                    };
                    tags.push((t.as_str(), *span, value));
                }
                other => positional.push(other),
            }
        }
        Args { tags, positional }
    }

    /// Whether `:tag` was given.
    pub fn has(&self, tag: &str) -> bool {
        self.tags.iter().any(|(t, _, _)| *t == tag)
    }

    /// The value of `:tag`, if given.
    pub fn value(&self, tag: &str) -> Option<&'a Argument> {
        self.tags
            .iter()
            .find(|(t, _, _)| *t == tag)
            .and_then(|(_, _, v)| *v)
    }

    /// The first tag not in `known`, as an [`Unsupported`].
    pub fn only(&self, known: &[&str], what: &str) -> Result<(), Unsupported> {
        match self.tags.iter().find(|(t, _, _)| !known.contains(t)) {
            Some((t, span, _)) => Err(Unsupported::new(
                *span,
                format!("{what} :{t}"),
                "this argument has no Flow equivalent",
            )),
            None => Ok(()),
        }
    }
}

/// A string or a string list as its strings.
pub fn strings(a: &Argument) -> Option<Vec<&SieveString>> {
    match a {
        Argument::Str(s) => Some(vec![s]),
        Argument::List(l, _) => Some(l.iter().collect()),
        _ => None,
    }
}

/// A single string (a list of one string counts).
pub fn string(a: &Argument) -> Option<&SieveString> {
    match a {
        Argument::Str(s) => Some(s),
        Argument::List(l, _) if l.len() == 1 => Some(&l[0]),
        _ => None,
    }
}

/// The positional argument `i`, as strings, or an error naming `what`.
pub fn nth_strings<'a>(
    args: &Args<'a>,
    i: usize,
    span: Span,
    what: &str,
) -> Result<Vec<&'a SieveString>, Unsupported> {
    args.positional
        .get(i)
        .and_then(|a| strings(a))
        .ok_or_else(|| Unsupported::new(span, what.to_string(), "a string argument is missing"))
}
