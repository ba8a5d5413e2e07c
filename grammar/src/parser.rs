//! From text to [`ast::File`]: runs the pest grammar (`flow.pest`) one
//! declaration at a time and builds the syntax tree with exact byte spans.
//!
//! Architecture invariant: parsing never fails and never panics. It returns
//! the declarations that parsed and a diagnostic for each syntax error. When
//! a declaration does not parse, the parser reports it and resynchronises at
//! the next line that starts with a declaration keyword, so that one file
//! reports as many errors as possible.

mod errors;
mod expr;
mod literal;
mod stmt;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use pest::Parser as _;
use pest::iterators::Pair;

use crate::ast::{self, Span};
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::keywords::DECLARATION_KEYWORDS;

/// The pest parser generated from `flow.pest`.
#[derive(pest_derive::Parser)]
#[grammar = "flow.pest"]
pub(crate) struct FlowParser;

/// What the formatter needs besides the tree.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// The tree.
    pub file: ast::File,
    /// Syntax errors, in source order.
    pub diagnostics: Vec<Diagnostic>,
    /// The spans (parentheses included) of the expressions the user wrote in
    /// parentheses, so the formatter can keep them, each with the span the
    /// expression had inside them (where a literal's text is).
    pub parens: HashMap<Span, Span>,
}

/// Parses one `.flow` file: the declarations that parsed, and one
/// diagnostic per syntax error (empty when the file is valid).
pub fn parse(source: &str, file: &str) -> (ast::File, Vec<Diagnostic>) {
    parse_on_threads(source, file, MAX_PARSE_THREADS)
}

/// [`parse`] on at most `threads` threads, the calling one included (at
/// least one): what a compile limited by `weir run --jobs` asks for.
pub fn parse_on_threads(source: &str, file: &str, threads: usize) -> (ast::File, Vec<Diagnostic>) {
    let parsed = parse_full(source, file, threads);
    (parsed.file, parsed.diagnostics)
}

/// [`parse_on_threads`], keeping what the formatter needs; no more
/// threads than the machine has cores.
///
/// A large file is parsed in stretches on several threads (see
/// [`split_points`]), each from a line that starts with a declaration
/// keyword. A stretch's result is kept only if the parse before it ended
/// exactly where it starts, after at least one declaration: then the
/// parse of one thread would have gone on from there in the same state,
/// so the result is the same declarations, diagnostics and spans in the
/// same order. Otherwise that stretch is parsed again, after the one
/// before it.
pub(crate) fn parse_full(source: &str, file: &str, threads: usize) -> Parsed {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(threads)
        .clamp(1, MAX_PARSE_THREADS);
    parse_on(source, file, threads, MIN_STRETCH)
}

/// [`parse_full`] on at most `threads` threads, each given at least
/// `min_stretch` bytes.
fn parse_on(source: &str, file: &str, threads: usize, min_stretch: usize) -> Parsed {
    let start = skip_separators(source, 0);
    let points = split_points(source, start, threads, min_stretch);
    let stop = |i: usize| points.get(i + 1).copied().unwrap_or(source.len());
    // Each stretch is parsed by whichever takes it first: its own thread,
    // or this one once it has parsed everything before it, so a thread the
    // machine has no core for yet delays nothing.
    let taken: Vec<AtomicBool> = points.iter().map(|_| AtomicBool::new(false)).collect();
    let (points, taken) = (&points, &taken);
    let whole = std::thread::scope(|s| {
        // A thread the system refuses leaves its stretch to this one. The
        // stack is a main thread's, as pest stops at a fixed distance from
        // its end.
        let helpers: Vec<_> = (1..points.len())
            .map(|i| {
                std::thread::Builder::new()
                    .stack_size(PARSE_STACK)
                    .spawn_scoped(s, move || {
                        (!taken[i].swap(true, Ordering::AcqRel))
                            .then(|| Run::parse(source, file, points[i], stop(i), true))
                    })
                    .ok()
            })
            .collect();
        let mut whole = Run::parse(source, file, start, stop(0), false);
        for (i, helper) in (1..).zip(helpers) {
            if whole.ended {
                break;
            }
            let guessed = match helper {
                Some(helper) if taken[i].swap(true, Ordering::AcqRel) => match helper.join() {
                    Ok(run) => run,
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                _ => None,
            };
            match guessed {
                Some(run) if whole.pos == points[i] && !whole.items.is_empty() => {
                    whole.append(run);
                }
                _ => {
                    let after = !whole.items.is_empty();
                    whole.append(Run::parse(source, file, whole.pos, stop(i), after));
                }
            }
        }
        whole
    });
    let mut diagnostics = whole.diagnostics;
    diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
    Parsed {
        file: ast::File {
            items: whole.items,
            span: Span::new(0, source.len()),
        },
        diagnostics,
        parens: whole.parens,
    }
}

/// The least source, in bytes, that each thread of a parse is given: a
/// thread costs tens of microseconds, a kilobyte of rules about as much
/// to parse.
const MIN_STRETCH: usize = 64 * 1024;

/// The most threads one file is parsed on.
pub(crate) const MAX_PARSE_THREADS: usize = 4;

/// The stack of a thread parsing a stretch: Linux's default for a main
/// thread.
const PARSE_STACK: usize = 8 << 20;

/// Where the stretches of a parse on `threads` threads of at least
/// `min_stretch` bytes start: `start`,
/// then for a large file, near each equal share of the rest, the next line that starts (in its
/// first column) with a declaration keyword. A guess that proves wrong (a
/// keyword at the start of a line inside a multi-line string) costs only
/// time: [`parse_full`] then parses that stretch again.
fn split_points(source: &str, start: usize, threads: usize, min_stretch: usize) -> Vec<usize> {
    let threads = threads.min(source.len() / min_stretch.max(1)).max(1);
    let mut points = vec![start];
    for k in 1..threads {
        let near = source.len() * k / threads;
        let Some(line) = source[near..].find("\n").map(|i| near + i + 1) else {
            break;
        };
        // `resync` looks from the line after the one holding its start.
        let point = if starts_with_declaration_keyword(&source[line..]) {
            line
        } else {
            resync(source, line)
        };
        if point < source.len() && point > *points.last().unwrap_or(&0) {
            points.push(point);
        }
    }
    points
}

/// The declarations parsed from one position on, with what the builder
/// recorded.
struct Run {
    items: Vec<ast::Item>,
    diagnostics: Vec<Diagnostic>,
    parens: HashMap<Span, Span>,
    /// Where the next declaration would start.
    pos: usize,
    /// The parse stopped before the end of the source for good (a Sieve
    /// script, or nothing left that pest reads as a declaration).
    ended: bool,
}

impl Run {
    /// Parses declarations from `pos` (after separators) while they start
    /// before `stop`. `after_items`: declarations parsed before `pos`,
    /// which rules out the Sieve script diagnostic.
    fn parse(source: &str, file: &str, mut pos: usize, stop: usize, after_items: bool) -> Run {
        let builder = Builder::new(source, file);
        let mut items = Vec::new();
        let mut ended = false;
        while pos < source.len() && pos < stop {
            match FlowParser::parse(Rule::item, &source[pos..]) {
                Ok(mut pairs) => {
                    let Some(pair) = pairs.find(|p| p.as_rule() != Rule::EOI) else {
                        ended = true;
                        break;
                    };
                    let end = pos + pair.as_span().end();
                    builder.offset.set(pos);
                    if let Some(item) = builder.item(pair) {
                        items.push(item);
                    }
                    // A declaration always consumes something; guard anyway so a
                    // grammar mistake cannot loop forever.
                    pos = skip_separators(source, end.max(pos + 1));
                }
                Err(_)
                    if !after_items
                        && items.is_empty()
                        && starts_with_word(&source[pos..], "require") =>
                {
                    // A Sieve script: every later line would be one more
                    // syntax error, so report the one thing that helps.
                    builder.report(errors::sieve_script(source, pos, file));
                    ended = true;
                    break;
                }
                Err(error) => {
                    builder.report(errors::syntax_error(&error, source, pos, file));
                    pos = skip_separators(source, resync(source, pos));
                }
            }
        }
        Run {
            items,
            diagnostics: builder.diagnostics.into_inner(),
            parens: builder.parens.into_inner(),
            pos,
            ended,
        }
    }

    /// Adds the run that goes on from where this one stopped.
    fn append(&mut self, next: Run) {
        self.items.extend(next.items);
        self.diagnostics.extend(next.diagnostics);
        self.parens.extend(next.parens);
        self.pos = next.pos;
        self.ended = next.ended;
    }
}

/// Skips blank space, newlines, `;` and comments between declarations.
fn skip_separators(source: &str, mut pos: usize) -> usize {
    let bytes = source.as_bytes();
    while pos < bytes.len() {
        match bytes[pos] {
            b' ' | b'\t' | b'\r' | b'\n' | b';' => pos += 1,
            b'#' => {
                while pos < bytes.len() && bytes[pos] != b'\n' {
                    pos += 1;
                }
            }
            _ if source[pos..].starts_with('\u{FEFF}') => pos += '\u{FEFF}'.len_utf8(),
            _ => break,
        }
    }
    pos
}

/// The start of the first line after the one holding `pos` that begins
/// (after blanks) with a declaration keyword; the end of the source if none.
fn resync(source: &str, pos: usize) -> usize {
    let mut line_start = match source[pos..].find('\n') {
        Some(i) => pos + i + 1,
        None => return source.len(),
    };
    while line_start < source.len() {
        let line_end = source[line_start..]
            .find('\n')
            .map_or(source.len(), |i| line_start + i);
        let line = &source[line_start..line_end];
        let trimmed = line.trim_start_matches([' ', '\t']);
        if starts_with_declaration_keyword(trimmed) {
            return line_start + (line.len() - trimmed.len());
        }
        line_start = line_end + 1;
    }
    source.len()
}

fn starts_with_declaration_keyword(text: &str) -> bool {
    DECLARATION_KEYWORDS
        .iter()
        .any(|kw| starts_with_word(text, kw))
}

/// Whether `text` starts with the word `word` (not a longer name).
fn starts_with_word(text: &str, word: &str) -> bool {
    text.strip_prefix(word)
        .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
}

/// How deeply expressions may nest (parentheses, lists, interpolations,
/// operator chains): deeper input is reported, not recursed into, so that
/// no later pass can overflow its stack.
const MAX_DEPTH: u32 = 200;

/// Builds AST nodes from pest pairs of one declaration. Methods take `&self`
/// because the Pratt parser's closures share the builder.
pub(crate) struct Builder<'s> {
    source: &'s str,
    file: &'s str,
    /// Where the text handed to pest starts in `source`.
    offset: Cell<usize>,
    /// Current nesting depth of expressions being built.
    depth: Cell<u32>,
    diagnostics: RefCell<Vec<Diagnostic>>,
    parens: RefCell<HashMap<Span, Span>>,
}

impl<'s> Builder<'s> {
    fn new(source: &'s str, file: &'s str) -> Self {
        Builder {
            source,
            file,
            offset: Cell::new(0),
            depth: Cell::new(0),
            diagnostics: RefCell::new(Vec::new()),
            parens: RefCell::new(HashMap::new()),
        }
    }

    /// The span of a pair in the whole source, without the blanks and
    /// comments pest's implicit whitespace leaves at the end of a rule that
    /// ends with an optional part (`ident ~ arg*` covers a trailing comment).
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        Span::new(
            self.offset.get() + s.start(),
            self.offset.get() + exact_end(pair),
        )
    }

    /// Records a diagnostic.
    fn report(&self, diagnostic: Diagnostic) {
        self.diagnostics.borrow_mut().push(diagnostic);
    }

    /// Records an error with a code, message and span.
    fn error(&self, code: &'static str, message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic::error(code, message, self.file, span)
    }

    /// An identifier from an `ident`, `field_name` or `type_name` pair.
    fn ident(&self, pair: &Pair<'_, Rule>) -> ast::Ident {
        ast::Ident {
            name: pair.as_str().to_string(),
            span: self.span(pair),
        }
    }

    /// Enters one level of nesting; false (after reporting) when too deep.
    fn enter(&self, span: Span) -> bool {
        let depth = self.depth.get() + 1;
        self.depth.set(depth);
        if depth == MAX_DEPTH + 1 {
            self.report(
                self.error(
                    codes::TOO_DEEP,
                    "this expression is nested too deeply",
                    span,
                )
                .with_hint(format!("Flow allows at most {MAX_DEPTH} levels of nesting")),
            );
        }
        depth <= MAX_DEPTH
    }

    /// Leaves a level entered with [`Builder::enter`].
    fn leave(&self) {
        self.depth.set(self.depth.get().saturating_sub(1));
    }

    /// Builds one top-level declaration.
    fn item(&self, pair: Pair<'_, Rule>) -> Option<ast::Item> {
        match pair.as_rule() {
            Rule::import => self.import(pair).map(ast::Item::Import),
            Rule::let_decl => self.let_decl(pair).map(ast::Item::Let),
            Rule::list_decl => self.list_decl(pair).map(ast::Item::List),
            Rule::map_decl => self.map_decl(pair).map(ast::Item::Map),
            Rule::classifier_decl => self.classifier_decl(pair).map(ast::Item::Classifier),
            Rule::fn_decl => self.fn_decl(pair).map(ast::Item::Fn),
            Rule::template => self.template(pair).map(ast::Item::Template),
            Rule::rule => self.rule(pair).map(ast::Item::Rule),
            Rule::test => self.test(pair).map(ast::Item::Test),
            _ => None,
        }
    }

    fn import(&self, pair: Pair<'_, Rule>) -> Option<ast::Import> {
        let span = self.span(&pair);
        let lit = pair.into_inner().find(is_string_pair)?;
        let path_span = self.span(&lit);
        let path = self.plain_string(lit, "an import path")?;
        // The pair also covers a trailing comment; the declaration does not.
        let span = Span::new(span.start, path_span.end);
        Some(ast::Import {
            path,
            path_span,
            span,
        })
    }

    fn let_decl(&self, pair: Pair<'_, Rule>) -> Option<ast::Let> {
        let span = self.span(&pair);
        let mut name = None;
        let mut value = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(&p)),
                Rule::line_expr => value = Some(self.expr(p)),
                _ => {}
            }
        }
        let value: ast::Expr = value?;
        Some(ast::Let {
            name: name?,
            span: Span::new(span.start, value.span.end),
            value,
        })
    }

    fn list_decl(&self, pair: Pair<'_, Rule>) -> Option<ast::ListDecl> {
        let span = self.span(&pair);
        let mut name = None;
        let mut path = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(&p)),
                _ if is_string_pair(&p) => {
                    let path_span = self.span(&p);
                    path = Some((self.plain_string(p, "a list path")?, path_span));
                }
                _ => {}
            }
        }
        let (path, path_span) = path?;
        Some(ast::ListDecl {
            name: name?,
            path,
            path_span,
            span: Span::new(span.start, path_span.end),
        })
    }

    fn map_decl(&self, pair: Pair<'_, Rule>) -> Option<ast::MapDecl> {
        let span = self.span(&pair);
        let mut name = None;
        let mut source = None;
        let mut end = span.end;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(&p)),
                Rule::map_lit => {
                    end = self.span(&p).end;
                    let mut pairs = Vec::new();
                    for entry in p.into_inner().filter(|e| e.as_rule() == Rule::map_pair) {
                        pairs.push(self.map_pair(entry)?);
                    }
                    source = Some(ast::MapSource::Literal(pairs));
                }
                _ if is_string_pair(&p) => {
                    let path_span = self.span(&p);
                    end = path_span.end;
                    let path = self.plain_string(p, "a map path")?;
                    source = Some(ast::MapSource::File(path, path_span));
                }
                _ => {}
            }
        }
        Some(ast::MapDecl {
            name: name?,
            source: source?,
            span: Span::new(span.start, end),
        })
    }

    /// `classifier NAME = learned ["a", "b"]`: the classes are plain strings.
    fn classifier_decl(&self, pair: Pair<'_, Rule>) -> Option<ast::ClassifierDecl> {
        let span = self.span(&pair);
        let mut name = None;
        let mut classes = Vec::new();
        let mut end = span.end;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(&p)),
                Rule::class_list => {
                    end = self.span(&p).end;
                    for lit in p.into_inner().filter(is_string_pair) {
                        let lit_span = self.span(&lit);
                        classes.push((self.plain_string(lit, "a class name")?, lit_span));
                    }
                }
                _ => {}
            }
        }
        Some(ast::ClassifierDecl {
            name: name?,
            classes,
            span: Span::new(span.start, end),
        })
    }

    /// One `"key": "value"` of a literal map: both plain strings.
    fn map_pair(&self, pair: Pair<'_, Rule>) -> Option<ast::MapPair> {
        let mut strings = pair.into_inner().filter(is_string_pair);
        let key = strings.next()?;
        let value = strings.next()?;
        let (key_span, value_span) = (self.span(&key), self.span(&value));
        Some(ast::MapPair {
            key: self.plain_string(key, "a map key")?,
            key_span,
            value: self.plain_string(value, "a map value")?,
            value_span,
        })
    }

    fn fn_decl(&self, pair: Pair<'_, Rule>) -> Option<ast::FnDecl> {
        let span = self.span(&pair);
        let mut name = None;
        let mut params = Vec::new();
        let mut body = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(&p)),
                Rule::param => params.push(self.param(p)?),
                Rule::line_expr => body = Some(self.expr(p)),
                _ => {}
            }
        }
        let body: ast::Expr = body?;
        Some(ast::FnDecl {
            name: name?,
            params,
            span: Span::new(span.start, body.span.end),
            body,
        })
    }

    fn param(&self, pair: Pair<'_, Rule>) -> Option<ast::Param> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(&inner.next()?);
        let ty = self.type_expr(inner.find(|p| p.as_rule() == Rule::type_expr)?)?;
        Some(ast::Param { name, ty, span })
    }

    fn type_expr(&self, pair: Pair<'_, Rule>) -> Option<ast::TypeExpr> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(&inner.next()?);
        let mut args = Vec::new();
        for p in inner.filter(|p| p.as_rule() == Rule::type_expr) {
            args.push(self.type_expr(p)?);
        }
        Some(ast::TypeExpr { name, args, span })
    }

    fn template(&self, pair: Pair<'_, Rule>) -> Option<ast::Template> {
        let span = self.span(&pair);
        let mut name = None;
        let mut fields = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(&p)),
                Rule::template_field => {
                    let field_span = self.span(&p);
                    let mut inner = p.into_inner();
                    let key = self.ident(&inner.next()?);
                    let value = self.string(inner.find(is_string_pair)?);
                    fields.push(ast::TemplateField {
                        key,
                        value,
                        span: field_span,
                    });
                }
                _ => {}
            }
        }
        Some(ast::Template {
            name: name?,
            fields,
            span,
        })
    }

    /// The text of a string literal that must not interpolate (paths, names).
    fn plain_string(&self, pair: Pair<'_, Rule>, what: &str) -> Option<String> {
        let lit = self.string(pair);
        match lit.as_plain() {
            Some(text) => Some(text),
            None => {
                self.report(
                    self.error(
                        codes::INTERPOLATION_NOT_ALLOWED,
                        format!("{what} cannot contain `${{...}}`"),
                        lit.span,
                    )
                    .with_hint("write the text literally, or escape the dollar sign as `\\$`"),
                );
                None
            }
        }
    }
}

/// Where a pair's last token ends: the end of its last inner pair, for
/// rules whose own end may include trailing blanks and comments. Every
/// closing token of a non-atomic rule is a named pair for this reason.
fn exact_end(pair: &Pair<'_, Rule>) -> usize {
    let own = pair.as_span().end();
    if matches!(
        pair.as_rule(),
        Rule::string
            | Rule::tstring
            | Rule::raw_tstring
            | Rule::regex
            | Rule::call
            | Rule::op_field
            | Rule::op_cmp
    ) {
        return own;
    }
    let mut end = own;
    let mut current = pair.clone();
    // Follow the last child down; iterative so depth costs no stack.
    // `next_back` takes the last child without stepping through the others.
    while let Some(last) = current.clone().into_inner().next_back() {
        end = last.as_span().end();
        if matches!(
            last.as_rule(),
            Rule::string
                | Rule::tstring
                | Rule::raw_tstring
                | Rule::regex
                | Rule::call
                | Rule::op_field
                | Rule::op_cmp
        ) {
            break;
        }
        current = last;
    }
    end.min(own)
}

/// Whether a pair is a string literal of any form.
fn is_string_pair(pair: &Pair<'_, Rule>) -> bool {
    matches!(
        pair.as_rule(),
        Rule::string | Rule::tstring | Rule::raw_tstring | Rule::unterminated_string
    )
}

#[cfg(test)]
mod split_tests {
    use super::*;

    /// `rules` rules, a third of them with a syntax error, about 90 bytes each.
    fn rules(rules: usize, broken: bool) -> String {
        (0..rules)
            .map(|i| {
                let op = if broken && i % 3 == 0 {
                    "contains contains"
                } else {
                    "contains"
                };
                format!(
                    "rule r{i} {{\n  when subject {op} \"w{i}\" # c\n  then tag (\"r{i}\")\n}}\n"
                )
            })
            .collect()
    }

    /// Small stretches, so that small sources are split.
    const STRETCH: usize = 1024;

    /// The parse on four threads is the parse on one.
    fn same_as_one_thread(source: &str) {
        assert_eq!(
            split_points(source, 0, 4, STRETCH).len(),
            4,
            "the test splits"
        );
        let one = parse_on(source, "f.flow", 1, STRETCH);
        let four = parse_on(source, "f.flow", 4, STRETCH);
        assert_eq!(one.file, four.file);
        assert_eq!(one.diagnostics, four.diagnostics);
        assert_eq!(one.parens, four.parens);
    }

    /// A parse limited to one thread is one stretch (no thread started),
    /// and a limit of none is read as one.
    #[test]
    fn one_thread_asked_is_one_stretch() {
        let source = rules(2000, false);
        assert!(source.len() > 2 * MIN_STRETCH);
        assert_eq!(split_points(&source, 0, 2, MIN_STRETCH).len(), 2);
        assert_eq!(split_points(&source, 0, 1, MIN_STRETCH).len(), 1);
        let limited = parse_on_threads(&source, "f.flow", 0);
        assert_eq!(limited, parse(&source, "f.flow"));
    }

    #[test]
    fn stretches_parsed_apart_give_the_one_thread_parse() {
        same_as_one_thread(&rules(400, false));
    }

    #[test]
    fn syntax_errors_are_the_same_and_in_order() {
        let source = rules(400, true);
        same_as_one_thread(&source);
        let (_, diagnostics) = parse(&source, "f.flow");
        assert_eq!(diagnostics.len(), 134);
        assert!(diagnostics.is_sorted_by_key(|d| d.span.start));
    }

    #[test]
    fn a_declaration_keyword_inside_a_string_is_parsed_again() {
        // Every line of this test message's text starts with `rule`, so
        // the guessed starts fall inside it and must be thrown away.
        let body: String = (0..500).map(|i| format!("rule x{i} {{\n")).collect();
        let source = format!(
            "{}test \"t\" {{\n  message \"\"\"Subject: a\n\n{body}\"\"\"\n}}\n{}",
            rules(10, false),
            rules(10, true)
        );
        same_as_one_thread(&source);
        let (file, _) = parse(&source, "f.flow");
        assert_eq!(file.items.len(), 1 + 10 + 6);
    }

    #[test]
    fn a_large_sieve_script_is_one_diagnostic() {
        let source = format!("require \"fileinto\";\n{}", rules(400, false));
        same_as_one_thread(&source);
        let (file, diagnostics) = parse(&source, "f.flow");
        assert!(file.items.is_empty());
        assert_eq!(diagnostics.len(), 1);
    }
}
