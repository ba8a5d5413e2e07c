//! A lossless token stream of Flow source, built with logos.
//!
//! The parser does not use it (pest reads the text directly); the formatter
//! uses it to find comments (a `#` inside a string or regex is not one), and
//! the language server to colour tokens. Concatenating the text of the
//! tokens of [`tokens`] gives back the source exactly.

use logos::Logos;

use crate::ast::Span;

/// One kind of token. Text the lexer does not recognise becomes
/// [`Token::Unknown`], so the stream always covers the whole source.
#[derive(Logos, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Token {
    /// `# ...` up to the end of the line.
    #[regex(r"#[^\n]*", allow_greedy = true)]
    Comment,
    /// Spaces, tabs and carriage returns.
    #[regex(r"[ \t\r\u{FEFF}]+")]
    Whitespace,
    /// A line feed.
    #[token("\n")]
    Newline,
    /// `"..."`, with escapes and `${...}` interpolations (possibly unterminated).
    #[token("\"", lex_string)]
    String,
    /// `"""..."""` (possibly unterminated).
    #[token("\"\"\"", lex_triple_string)]
    TripleString,
    /// `/pattern/flags` (Flow has no division, so `/` always starts one).
    #[token("/", lex_regex)]
    Regex,
    /// A reserved word (docs/language.md ("Lexical structure")).
    #[token("import")]
    #[token("let")]
    #[token("list")]
    #[token("map")]
    #[token("file")]
    #[token("fn")]
    #[token("template")]
    #[token("rule")]
    #[token("priority")]
    #[token("shadow")]
    #[token("when")]
    #[token("then")]
    #[token("else")]
    #[token("if")]
    #[token("test")]
    #[token("and")]
    #[token("or")]
    #[token("not")]
    #[token("in")]
    #[token("under")]
    #[token("contains")]
    #[token("starts_with")]
    #[token("ends_with")]
    #[token("matches")]
    #[token("as")]
    #[token("exists")]
    #[token("all")]
    #[token("any")]
    #[token("with")]
    #[token("true")]
    #[token("false")]
    Keyword,
    /// A name (identifiers, fields, actions, contextual words).
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*")]
    Ident,
    /// Numbers with their suffixes, IPv4 addresses and CIDR blocks.
    #[regex(r"[0-9][0-9A-Za-z_.]*(/[0-9]+)?")]
    Number,
    /// IPv6 addresses and CIDR blocks (at least two colons).
    #[regex(r"[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f:.]*(/[0-9]+)?")]
    Ipv6,
    /// `== != < <= > >= + -`.
    #[token("==")]
    #[token("!=")]
    #[token("<")]
    #[token("<=")]
    #[token(">")]
    #[token(">=")]
    #[token("+")]
    #[token("-")]
    Operator,
    /// `{ } ( ) [ ] , : ; . =`.
    #[token("{")]
    #[token("}")]
    #[token("(")]
    #[token(")")]
    #[token("[")]
    #[token("]")]
    #[token(",")]
    #[token(":")]
    #[token(";")]
    #[token(".")]
    #[token("=")]
    Punct,
    /// Anything else (one character at a time).
    Unknown,
}

/// Bumps past a `"..."` string: escapes skip a character, `${...}` nests
/// (its expression may hold strings), and the line end stops an
/// unterminated string.
fn lex_string(lex: &mut logos::Lexer<'_, Token>) {
    let len = string_len(lex.remainder(), false);
    lex.bump(len);
}

fn lex_triple_string(lex: &mut logos::Lexer<'_, Token>) {
    let len = string_len(lex.remainder(), true);
    lex.bump(len);
}

/// The length of a string's rest after its opening quote(s).
fn string_len(rest: &str, triple: bool) -> usize {
    let bytes = rest.as_bytes();
    let mut i = 0;
    let mut depth = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'$' if depth == 0 && bytes.get(i + 1) == Some(&b'{') => {
                depth = 1;
                i += 2;
            }
            b'{' if depth > 0 => {
                depth += 1;
                i += 1;
            }
            b'}' if depth > 0 => {
                depth -= 1;
                i += 1;
            }
            b'"' if depth > 0 => i += 1 + string_len(&rest[i + 1..], false),
            b'"' if triple && rest[i..].starts_with("\"\"\"") => return i + 3,
            b'"' if !triple => return i + 1,
            b'\n' if !triple && depth == 0 => return i,
            _ => i += 1,
        }
    }
    let mut end = bytes.len().min(i);
    while !rest.is_char_boundary(end) {
        end -= 1;
    }
    end
}

fn lex_regex(lex: &mut logos::Lexer<'_, Token>) {
    let rest = lex.remainder();
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if bytes.get(i + 1).is_some_and(|b| *b != b'\n') => i += 2,
            b'\n' => break,
            b'/' => {
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                break;
            }
            _ => i += 1,
        }
    }
    let mut end = i.min(bytes.len());
    while !rest.is_char_boundary(end) {
        end -= 1;
    }
    lex.bump(end);
}

/// The whole source as tokens with their spans, in order and without gaps.
pub fn tokens(source: &str) -> Vec<(Token, Span)> {
    let mut out = Vec::new();
    let mut lexer = Token::lexer(source);
    while let Some(result) = lexer.next() {
        let range = lexer.span();
        let token = result.unwrap_or(Token::Unknown);
        out.push((token, Span::new(range.start, range.end)));
    }
    out
}

/// The comments of a source, with their spans.
pub fn comments(source: &str) -> Vec<Span> {
    tokens(source)
        .into_iter()
        .filter(|(t, _)| *t == Token::Comment)
        .map(|(_, s)| s)
        .collect()
}
