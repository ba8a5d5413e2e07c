//! Turns pest's errors into readable diagnostics: the rules pest expected
//! become words a user knows ("expected `then` after the condition"), and
//! the span points at the offending token.

use pest::error::{ErrorVariant, InputLocation};

use super::Rule;
use crate::ast::Span;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::keywords::RESERVED;

/// The one diagnostic for a file that starts with Sieve's `require` at
/// `at`: it is a Sieve script, and `docs/sieve.md` says how to write it in
/// Flow.
pub(super) fn sieve_script(source: &str, at: usize, file: &str) -> Diagnostic {
    let line_end = source[at..].find('\n').map_or(source.len(), |i| at + i);
    let line = source[at..line_end].trim_end();
    Diagnostic::error(
        codes::SIEVE_SCRIPT,
        "this looks like a Sieve script: Flow has no `require`",
        file,
        Span::new(at, at + line.len()),
    )
    .with_label("Sieve's `require`")
    .with_hint("convert the script with `weir import sieve SCRIPT -o RULES.flow`; Flow needs no `require`: every action and test is always available. docs/sieve.md shows the Flow for each Sieve construct")
}

/// A diagnostic for a declaration starting at `item_start` that pest could
/// not parse.
pub(super) fn syntax_error(
    error: &pest::error::Error<Rule>,
    source: &str,
    item_start: usize,
    file: &str,
) -> Diagnostic {
    let at = item_start
        + match error.location {
            InputLocation::Pos(p) => p,
            InputLocation::Span((s, _)) => s,
        };
    let at = at.min(source.len());
    let positives: Vec<Rule> = match &error.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.clone(),
        ErrorVariant::CustomError { .. } => Vec::new(),
    };
    let token = token_at(source, at);
    let found = Found {
        file,
        source,
        at,
        token,
        span: Span::new(at, at + token.len()),
        found: describe_token(token),
        positives,
    };
    if at == item_start {
        return found.not_a_declaration();
    }
    found
        .reserved_word()
        .or_else(|| found.unclosed_triple_string())
        .or_else(|| found.missing_then())
        .or_else(|| found.not_a_test_statement())
        .unwrap_or_else(|| found.unexpected())
}

/// Where pest stopped, and what it wanted there.
struct Found<'a> {
    file: &'a str,
    source: &'a str,
    at: usize,
    token: &'a str,
    span: Span,
    /// The token as a message names it.
    found: String,
    positives: Vec<Rule>,
}

impl Found<'_> {
    fn error(&self, code: &'static str, message: String) -> Diagnostic {
        Diagnostic::error(code, message, self.file, self.span)
    }

    fn not_a_declaration(&self) -> Diagnostic {
        self.error(
            codes::EXPECTED_DECLARATION,
            format!("expected a declaration, found {}", self.found),
        )
        .with_label("not a declaration")
        .with_hint("a file holds `import`, `let`, `list`, `map`, `fn`, `template`, `rule` and `test` declarations")
    }

    fn reserved_word(&self) -> Option<Diagnostic> {
        let wants_name = self
            .positives
            .iter()
            .any(|r| matches!(r, Rule::ident | Rule::name));
        (RESERVED.contains(&self.token) && wants_name).then(|| {
            self.error(
                codes::RESERVED_WORD,
                format!(
                    "`{}` is a reserved word and cannot be used as a name",
                    self.token
                ),
            )
            .with_label("reserved word")
            .with_hint("choose another name")
        })
    }

    fn unclosed_triple_string(&self) -> Option<Diagnostic> {
        let rest = &self.source[self.at..];
        (rest.starts_with("\"\"\"") && !rest[3..].contains("\"\"\"")).then(|| {
            Diagnostic::error(
                codes::UNTERMINATED_TRIPLE_STRING,
                "this `\"\"\"` string is never closed",
                self.file,
                Span::new(self.at, self.at + 3),
            )
            .with_hint("close it with `\"\"\"`")
        })
    }

    fn missing_then(&self) -> Option<Diagnostic> {
        if !self.positives.contains(&Rule::kw_then) {
            return None;
        }
        let found = &self.found;
        let message = if self.positives.contains(&Rule::kw_when) {
            format!("expected `when` or `then` in the rule, found {found}")
        } else {
            format!("expected `then` after the condition, found {found}")
        };
        let hint = if self.token == "{" {
            "write `then {` to start a block of actions"
        } else {
            hint_for(self.token, &self.positives)
                .unwrap_or("a rule reads `when CONDITION then ACTIONS`; a condition may span lines")
        };
        Some(
            self.error(codes::EXPECTED_THEN, message)
                .with_label("expected `then`")
                .with_hint(hint),
        )
    }

    fn not_a_test_statement(&self) -> Option<Diagnostic> {
        let in_test = self
            .positives
            .iter()
            .any(|r| matches!(r, Rule::t_message | Rule::cw_message));
        in_test.then(|| {
            self.error(
                codes::INVALID_TEST_STATEMENT,
                format!(
                    "expected `message`, `envelope`, `client` or `expect` in the test, found {}",
                    self.found
                ),
            )
            .with_label("not a test statement")
        })
    }

    fn unexpected(&self) -> Diagnostic {
        let expected = expected_words(&self.positives);
        let message = if expected.is_empty() {
            format!("unexpected {}", self.found)
        } else {
            format!("expected {}, found {}", join_or(&expected), self.found)
        };
        if self.at >= self.source.len() {
            return self
                .error(codes::UNEXPECTED_EOF, message)
                .with_label("the file ends here")
                .with_hint("check for an unclosed `{`, `(`, `[` or string");
        }
        let diagnostic = self
            .error(codes::UNEXPECTED, message)
            .with_label("unexpected");
        match hint_for(self.token, &self.positives) {
            Some(hint) => diagnostic.with_hint(hint),
            None => diagnostic,
        }
    }
}

/// A hint for a few common mistakes.
fn hint_for(token: &str, positives: &[Rule]) -> Option<&'static str> {
    let wants_end = positives.iter().any(|r| matches!(r, Rule::rbrace));
    if token == "=" && !positives.contains(&Rule::equals) {
        return Some("compare with `==`");
    }
    if token.starts_with(|c: char| c.is_ascii_alphabetic()) && positives.contains(&Rule::kw_else) {
        return Some("more than one action after `then` or `else` needs braces: `then { ... }`");
    }
    if token.starts_with(|c: char| c.is_ascii_alphabetic()) && wants_end {
        return Some("each action goes on its own line, or after `;`");
    }
    None
}

/// The token at a byte offset: a word, a number, an operator or one
/// character; empty at the end of the input or of a line.
fn token_at(source: &str, at: usize) -> &str {
    let rest = &source[at..];
    let Some(first) = rest.chars().next() else {
        return "";
    };
    if first == '\n' || first == '\r' {
        return "";
    }
    if first.is_alphanumeric() || first == '_' {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(rest.len());
        let word = &rest[..end];
        // `a.b` is two tokens unless it is a number.
        if !first.is_ascii_digit()
            && let Some(dot) = word.find('.')
        {
            return &word[..dot];
        }
        return word;
    }
    for op in ["==", "!=", "<=", ">=", "\"\"\"", "${"] {
        if rest.starts_with(op) {
            return &rest[..op.len()];
        }
    }
    &rest[..first.len_utf8()]
}

fn describe_token(token: &str) -> String {
    match token {
        "" => "the end of the line".to_string(),
        t if t.starts_with(|c: char| c.is_ascii_digit()) => format!("the number `{t}`"),
        t => format!("`{t}`"),
    }
}

/// Readable words for the rules pest expected, deduplicated, in a stable
/// order.
fn expected_words(positives: &[Rule]) -> Vec<&'static str> {
    let mut words: Vec<&'static str> = Vec::new();
    for kind in positives {
        if let Some(word) = describe_rule(*kind)
            && !words.contains(&word)
        {
            words.push(word);
        }
    }
    words
}

fn describe_rule(kind: Rule) -> Option<&'static str> {
    Some(match kind {
        Rule::ident | Rule::name => "a name",
        Rule::field_name => "a field name",
        Rule::type_name | Rule::type_expr => "a type",
        Rule::lbrace => "`{`",
        Rule::rbrace => "`}`",
        Rule::lparen => "`(`",
        Rule::rparen => "`)`",
        Rule::lbracket => "`[`",
        Rule::rbracket => "`]`",
        Rule::equals => "`=`",
        Rule::colon => "`:`",
        Rule::comma => "`,`",
        Rule::string | Rule::unterminated_string => "a string",
        Rule::tstring | Rule::raw_tstring => "a string",
        Rule::int_lit => "a whole number",
        Rule::number | Rule::signed_num => "a number",
        Rule::cond_expr
        | Rule::line_expr
        | Rule::paren
        | Rule::list
        | Rule::regex
        | Rule::ipv4
        | Rule::ipv6
        | Rule::boolean
        | Rule::call
        | Rule::op_not
        | Rule::op_all
        | Rule::op_neg
        | Rule::op_pos => "an expression",
        Rule::arg => "an argument",
        Rule::op_or
        | Rule::op_and
        | Rule::op_cmp
        | Rule::cmp_sym
        | Rule::op_add
        | Rule::op_sub
        | Rule::op_exists
        | Rule::op_as
        | Rule::op_field
        | Rule::op_index => "an operator",
        Rule::action => "an action",
        Rule::if_stmt | Rule::kw_if => "`if`",
        Rule::block => "`{`",
        Rule::kw_when | Rule::when_clause => "`when`",
        Rule::kw_then | Rule::then_clause => "`then`",
        Rule::kw_else | Rule::else_clause => "`else`",
        Rule::priority | Rule::kw_priority => "`priority`",
        Rule::shadow | Rule::kw_shadow => "`shadow`",
        Rule::kw_file => "`file`",
        Rule::with_clause | Rule::kw_with => "`with`",
        Rule::template_clause | Rule::kw_template => "`template`",
        Rule::every_clause | Rule::cw_every => "`every`",
        Rule::template_field => "a template field (`subject = \"...\"`)",
        Rule::map => "`{`",
        Rule::map_entry => "a map entry (`key: value`)",
        Rule::param => "a parameter (`name: type`)",
        Rule::cw_from => "`from`",
        Rule::cw_to => "`to`",
        Rule::cw_ip => "`ip`",
        Rule::cw_helo => "`helo`",
        Rule::e_verdict | Rule::cw_verdict => "`verdict`",
        Rule::EOI => "the end of the file",
        _ => return None,
    })
}

fn join_or(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}
