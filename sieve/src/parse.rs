//! Sieve text to [`ast::Script`](crate::ast::Script), through the pest
//! grammar `sieve.pest`.

use pest::Parser;
use pest::iterators::Pair;
use weir_grammar::ast::Span;

use crate::ast::{Argument, Arguments, Command, Script, SieveString, Test};

#[derive(pest_derive::Parser)]
#[grammar = "sieve.pest"]
struct SieveParser;

/// A syntax error: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Byte offset of the error.
    pub offset: usize,
    /// What is wrong, for a person.
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses a Sieve script. Never panics; any text that is not a script
/// gives a [`ParseError`] with its line and column.
pub fn parse(source: &str) -> Result<Script, ParseError> {
    let mut pairs = SieveParser::parse(Rule::script, source).map_err(|e| error(source, e))?;
    let script = pairs.next().expect("the script rule");
    let commands = script
        .into_inner()
        .filter(|p| p.as_rule() == Rule::command)
        .map(command)
        .collect();
    Ok(Script { commands })
}

fn error(source: &str, e: pest::error::Error<Rule>) -> ParseError {
    let offset = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let (line, column) = weir_grammar::diagnostic::line_col(source, offset);
    let message = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            let mut wanted: Vec<&str> = positives.iter().filter_map(|r| describe(*r)).collect();
            wanted.sort();
            wanted.dedup();
            if wanted.is_empty() {
                "unexpected text".to_string()
            } else {
                format!("expected {}", wanted.join(" or "))
            }
        }
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
    };
    let found = source[offset.min(source.len())..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .take(20)
        .collect::<String>();
    let message = if found.is_empty() {
        format!("{message}, found the end of the script")
    } else {
        format!("{message}, found `{found}`")
    };
    ParseError {
        line,
        column,
        offset,
        message,
    }
}

/// A grammar rule as a user names it.
fn describe(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::command | Rule::identifier => "a command or test name",
        Rule::semicolon => "`;`",
        Rule::block => "`{`",
        Rule::test | Rule::test_list => "a test",
        Rule::string_list => "a string list",
        Rule::quoted | Rule::multiline => "a string",
        Rule::number => "a number",
        Rule::tag => "a tag",
        Rule::EOI => "the end of the script",
        _ => return None,
    })
}

fn span(pair: &Pair<Rule>) -> Span {
    Span::new(pair.as_span().start(), pair.as_span().end())
}

fn command(pair: Pair<Rule>) -> Command {
    let whole = span(&pair);
    let mut inner = pair.into_inner();
    let name = inner.next().expect("name").as_str().to_ascii_lowercase();
    let args = arguments(inner.next().expect("arguments"));
    let block = inner
        .next()
        .filter(|p| p.as_rule() == Rule::block)
        .map(|b| b.into_inner().map(command).collect());
    Command {
        name,
        args,
        block,
        span: whole,
    }
}

fn arguments(pair: Pair<Rule>) -> Arguments {
    let mut out = Arguments::default();
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::test => out.tests.push(test(p)),
            Rule::test_list => out.tests.extend(p.into_inner().map(test)),
            _ => out.args.push(argument(p)),
        }
    }
    out
}

fn test(pair: Pair<Rule>) -> Test {
    let whole = span(&pair);
    let mut inner = pair.into_inner();
    let name = inner.next().expect("name").as_str().to_ascii_lowercase();
    let args = arguments(inner.next().expect("arguments"));
    Test {
        name,
        args,
        span: whole,
    }
}

fn argument(pair: Pair<Rule>) -> Argument {
    let s = span(&pair);
    match pair.as_rule() {
        Rule::tag => Argument::Tag(pair.as_str()[1..].to_ascii_lowercase(), s),
        Rule::number => Argument::Number(number(pair.as_str()), s),
        Rule::string_list => Argument::List(pair.into_inner().map(string).collect(), s),
        _ => Argument::Str(string(pair)),
    }
}

fn number(text: &str) -> u64 {
    let (digits, factor) = match text.as_bytes().last().map(u8::to_ascii_uppercase) {
        Some(b'K') => (&text[..text.len() - 1], 1u64 << 10),
        Some(b'M') => (&text[..text.len() - 1], 1 << 20),
        Some(b'G') => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    digits
        .bytes()
        .fold(0u64, |n, d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        })
        .saturating_mul(factor)
}

fn string(pair: Pair<Rule>) -> SieveString {
    let s = span(&pair);
    let value = match pair.as_rule() {
        Rule::quoted => unescape(pair.into_inner().next().map_or("", |p| p.as_str())),
        _ => multiline(pair.into_inner().next().map_or("", |p| p.as_str())),
    };
    SieveString { value, span: s }
}

/// RFC 5228 §2.4.2: `\` followed by any character is that character.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The lines of a `text:` string, with a leading `..` (dot-stuffing)
/// turned back into `.`. Line ends are kept as written.
fn multiline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        out.push_str(line.strip_prefix("..").map_or(line, |_| &line[1..]));
    }
    out
}

#[cfg(test)]
mod tests;
