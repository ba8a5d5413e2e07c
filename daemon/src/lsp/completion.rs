//! Completion. While the user types, the file rarely parses, so the
//! context is read from the text before the cursor: after a `.`, the
//! members of what precedes it (a field path, a `fn` parameter, a call);
//! after `template`, templates; in `matched(` and `expect matched`, rules;
//! at the start of a statement in a rule, actions; in a test block, test
//! words; at the start of a top-level line, declaration keywords; anywhere
//! else in an expression, fields, builtin functions, names in scope and
//! operator keywords. Names in scope come from the parsed declarations of
//! the file and its imports.

use std::collections::BTreeSet;
use std::rc::Rc;

use lsp_types::{CompletionItem, CompletionItemKind, Documentation, MarkupContent, MarkupKind};
use weir_grammar::ast::Item;
use weir_stdlib::registry::{self, registry as reg};
use weir_stdlib::{Stage, Type};

use super::hover::{action_doc, comment_above, field_doc, function_doc};
use super::occurrences::{self, field_prefix, member_type};
use super::text::line_at;
use super::workspace::{DeclKind, ParsedFile, Resolved, World};

use weir_grammar::keywords::DECLARATION_KEYWORDS;

/// Operators and literals usable in an expression.
const EXPRESSION_KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "under",
    "contains",
    "starts_with",
    "ends_with",
    "matches",
    "as",
    "exists",
    "all",
    "any",
    "true",
    "false",
];

/// The words that start a line of a test block.
const TEST_WORDS: &[&str] = &[
    "message",
    "envelope",
    "client",
    "now",
    "recipient",
    "rate",
    "duplicate",
    "expect",
];

/// What may follow `expect` (besides action words).
const EXPECT_WORDS: &[&str] = &[
    "not", "verdict", "stage", "tag", "matched", "folder", "score",
];

/// The completions at `offset` in `file`.
pub(crate) fn complete(
    world: &World<'_>,
    file: &Rc<ParsedFile>,
    offset: usize,
) -> Vec<CompletionItem> {
    let text = file.text.as_str();
    let offset = floor_boundary(text, offset.min(text.len()));
    let word_start = offset
        - text[..offset]
            .bytes()
            .rev()
            .take_while(|&b| is_ident(b))
            .count();
    let line_start = text[..word_start].rfind('\n').map_or(0, |i| i + 1);
    let before = text[line_start..word_start].trim();
    let enclosing = enclosing_declaration(file, text, offset, line_start);

    let params = fn_params(text, line_start);
    if word_start > 0 && text.as_bytes()[word_start - 1] == b'.' {
        return members_after(receiver_before(text, word_start - 1), &params);
    }
    if word_start == line_start {
        return keywords(DECLARATION_KEYWORDS);
    }
    let visible = world.visible(file);
    if DECLARATION_KEYWORDS.contains(&before) {
        return Vec::new(); // a new name is being declared
    }
    if ends_with_word(before, "template") {
        return decls(&visible, &[DeclKind::Template]);
    }
    if before.ends_with("matched(") || ends_with_word(before, "matched") {
        return decls(&visible, &[DeclKind::Rule]);
    }
    match enclosing {
        Some("test") => return test_words(before),
        Some("import") | Some("list") | Some("map") => return Vec::new(),
        _ => {}
    }
    let mut out = Vec::new();
    if enclosing == Some("rule") && action_position(text, line_start, before) {
        out.extend(reg().actions.iter().map(|a| {
            item(
                a.name,
                CompletionItemKind::METHOD,
                Some(a.usage),
                action_doc(a.name),
            )
        }));
        out.extend(keywords(&["if", "else", "when", "then"]));
    }
    out.extend(expression_items(&visible, &params));
    out
}

/// Fields, functions, values in scope, parameters and operator keywords.
fn expression_items(visible: &[Resolved], params: &[(String, String)]) -> Vec<CompletionItem> {
    let mut out = Vec::new();
    for (name, ty) in params {
        out.push(item(
            name,
            CompletionItemKind::VARIABLE,
            Some(&format!("(parameter) {ty}")),
            None,
        ));
    }
    out.extend(decls(
        visible,
        &[DeclKind::Let, DeclKind::List, DeclKind::Map, DeclKind::Fn],
    ));
    for field in &reg().fields {
        let stage = field.stage.map_or("", Stage::as_str);
        out.push(item(
            field.path,
            CompletionItemKind::FIELD,
            Some(&format!("{} · {stage}", field.ty)),
            field_doc(field.path),
        ));
    }
    for f in &reg().functions {
        out.push(item(
            f.name,
            CompletionItemKind::FUNCTION,
            Some(&occurrences::signature(f)),
            function_doc(f.name),
        ));
    }
    for (name, doc) in QUANTIFIERS {
        out.push(item(
            name,
            CompletionItemKind::FUNCTION,
            Some(&format!("{name}(list, x => bool) -> bool")),
            Some(doc.to_string()),
        ));
    }
    out.extend(keywords(EXPRESSION_KEYWORDS));
    out
}

/// `some` and `every`: forms of the language, not registry functions.
const QUANTIFIERS: [(&str, &str); 2] = [
    (
        "some",
        "Whether the condition holds for at least one element, bound to `x` in turn (false over an empty list).",
    ),
    (
        "every",
        "Whether the condition holds for every element, bound to `x` in turn (true over an empty list).",
    ),
];

/// The words of a test line, by what precedes the cursor on it.
fn test_words(before: &str) -> Vec<CompletionItem> {
    let words: Vec<&str> = before.split_whitespace().collect();
    match words.as_slice() {
        [] => keywords(TEST_WORDS),
        ["expect"] | ["expect", "not"] => {
            let mut out = keywords(EXPECT_WORDS);
            out.extend(reg().actions.iter().filter(|a| !a.verdict).map(|a| {
                item(
                    a.name,
                    CompletionItemKind::METHOD,
                    Some(a.usage),
                    action_doc(a.name),
                )
            }));
            out
        }
        ["expect", "verdict"] => reg()
            .actions
            .iter()
            .filter(|a| a.verdict)
            .map(|a| {
                item(
                    a.name,
                    CompletionItemKind::ENUM_MEMBER,
                    Some(a.usage),
                    action_doc(a.name),
                )
            })
            .collect(),
        ["expect", "stage"] => Stage::ALL
            .iter()
            .map(|s| item(s.as_str(), CompletionItemKind::ENUM_MEMBER, None, None))
            .collect(),
        _ => Vec::new(),
    }
}

/// Declarations in scope of the given kinds.
fn decls(visible: &[Resolved], kinds: &[DeclKind]) -> Vec<CompletionItem> {
    visible
        .iter()
        .filter(|r| kinds.contains(&r.decl.kind))
        .map(|r| {
            let text = &r.file.text;
            let start = r.decl.span.start.min(text.len());
            let comment = comment_above(text, start);
            let kind = match r.decl.kind {
                DeclKind::Let | DeclKind::List | DeclKind::Map | DeclKind::Classifier => {
                    CompletionItemKind::CONSTANT
                }
                DeclKind::Fn => CompletionItemKind::FUNCTION,
                DeclKind::Template => CompletionItemKind::STRUCT,
                DeclKind::Rule => CompletionItemKind::EVENT,
            };
            item(
                &r.decl.name,
                kind,
                Some(line_at(text, start).trim()),
                (!comment.is_empty()).then_some(comment),
            )
        })
        .collect()
}

fn keywords(words: &[&str]) -> Vec<CompletionItem> {
    words
        .iter()
        .map(|w| item(w, CompletionItemKind::KEYWORD, None, None))
        .collect()
}

fn item(
    label: &str,
    kind: CompletionItemKind,
    detail: Option<&str>,
    doc: Option<String>,
) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail: detail.map(str::to_string),
        documentation: doc.map(|value| {
            Documentation::MarkupContent(MarkupContent {
                kind: MarkupKind::Markdown,
                value,
            })
        }),
        ..CompletionItem::default()
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn floor_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Whether `text` ends with the whole word `word`.
fn ends_with_word(text: &str, word: &str) -> bool {
    text.strip_suffix(word)
        .is_some_and(|rest| !rest.bytes().next_back().is_some_and(is_ident))
}

/// The last line at or before the line at `line_start` that starts a
/// declaration (a declaration keyword at column 0). Lines of a multi-line
/// string may start at column 0 too, but rarely with a keyword.
fn enclosing_line(text: &str, line_start: usize) -> Option<&str> {
    let end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    text[..end].lines().rev().find(|line| {
        let word = line
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .next()
            .unwrap_or("");
        DECLARATION_KEYWORDS.contains(&word) && line.len() > word.len()
    })
}

/// The keyword of the declaration enclosing `offset`: the parsed item
/// around it, else (the item being edited rarely parses) the text's.
fn enclosing_declaration<'t>(
    file: &ParsedFile,
    text: &'t str,
    offset: usize,
    line_start: usize,
) -> Option<&'t str> {
    let parsed = file
        .ast
        .items
        .iter()
        .find(|item| item.span().start < offset && offset < item.span().end);
    if let Some(item) = parsed {
        return Some(match item {
            Item::Import(_) => "import",
            Item::Let(_) => "let",
            Item::List(_) => "list",
            Item::Map(_) => "map",
            Item::Classifier(_) => "classifier",
            Item::Fn(_) => "fn",
            Item::Template(_) => "template",
            Item::Rule(_) => "rule",
            Item::Test(_) => "test",
        });
    }
    let line = enclosing_line(text, line_start)?;
    line.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .next()
}

/// Whether an action may start where the cursor is, inside a rule.
fn action_position(text: &str, line_start: usize, before: &str) -> bool {
    let opens = |s: &str| {
        ends_with_word(s, "then")
            || ends_with_word(s, "else")
            || s.ends_with('{')
            || s.ends_with(';')
    };
    if !before.is_empty() {
        return opens(before);
    }
    let previous = text[..line_start]
        .lines()
        .rev()
        .map(|l| l.split(" #").next().unwrap_or("").trim())
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    let Some(previous) = previous else {
        return false;
    };
    let first = previous.split_whitespace().next().unwrap_or("");
    opens(previous) || first == "}" || reg().action(first).is_some()
}

/// The parameters of the `fn` enclosing the cursor: (name, type as written).
fn fn_params(text: &str, line_start: usize) -> Vec<(String, String)> {
    let Some(decl_line) = enclosing_line(text, line_start).filter(|l| l.starts_with("fn ")) else {
        return Vec::new();
    };
    let Some(open) = decl_line.find('(') else {
        return Vec::new();
    };
    let close = decl_line[open..]
        .find(')')
        .map_or(decl_line.len(), |i| open + i);
    decl_line[open + 1..close]
        .split(',')
        .filter_map(|p| {
            let (name, ty) = p.split_once(':')?;
            Some((name.trim().to_string(), ty.trim().to_string()))
        })
        .filter(|(n, _)| !n.is_empty())
        .collect()
}

/// The type named by an annotation as written (`list<address>`).
fn type_from_text(text: &str) -> Option<Type> {
    let text = text.trim();
    if let Some(inner) = text.strip_prefix("list<").and_then(|t| t.strip_suffix('>')) {
        return type_from_text(inner).map(Type::list);
    }
    Type::from_name(text)
}

/// The chain before a `.` at `dot`: `envelope.from`, `header("X")`, `attachments[0]`.
fn receiver_before(text: &str, dot: usize) -> &str {
    let bytes = text.as_bytes();
    let mut i = dot;
    while i > 0 {
        let c = bytes[i - 1];
        if is_ident(c) || c == b'.' {
            i -= 1;
            continue;
        }
        if c == b')' || c == b']' {
            let open = if c == b')' { b'(' } else { b'[' };
            let mut depth = 0usize;
            let mut j = i;
            let mut found = None;
            while j > 0 {
                j -= 1;
                if bytes[j] == c {
                    depth += 1;
                } else if bytes[j] == open {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        found = Some(j);
                        break;
                    }
                }
            }
            match found {
                Some(j) => {
                    i = j;
                    continue;
                }
                None => break,
            }
        }
        break;
    }
    &text[i..dot]
}

/// One step of a receiver chain: a name, whether it is called, how many
/// times it is indexed.
struct Segment<'a> {
    name: &'a str,
    called: bool,
    indexed: usize,
}

fn segments(receiver: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let bytes = receiver.as_bytes();
    for (i, &b) in bytes
        .iter()
        .enumerate()
        .chain(std::iter::once((bytes.len(), &b'.')))
    {
        match b {
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth = depth.saturating_sub(1),
            b'.' if depth == 0 => {
                let part = &receiver[start..i];
                let name_len = part.bytes().take_while(|&c| is_ident(c)).count();
                let rest = &part[name_len..];
                out.push(Segment {
                    name: &part[..name_len],
                    called: rest.starts_with('('),
                    indexed: rest.matches('[').count(),
                });
                start = i + 1;
            }
            _ => {}
        }
    }
    out
}

/// The completions after `receiver.`.
fn members_after(receiver: &str, params: &[(String, String)]) -> Vec<CompletionItem> {
    let segs = segments(receiver);
    let Some(first) = segs.first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let plain = segs.iter().all(|s| !s.called && s.indexed == 0);
    if plain {
        let prefix = format!(
            "{}.",
            segs.iter().map(|s| s.name).collect::<Vec<_>>().join(".")
        );
        for field in &reg().fields {
            let Some(rest) = field.path.strip_prefix(&prefix) else {
                continue;
            };
            let next = rest.split('.').next().unwrap_or(rest);
            if seen.insert(next.to_string()) {
                let doc = (next == rest).then(|| field_doc(field.path)).flatten();
                out.push(item(
                    next,
                    CompletionItemKind::FIELD,
                    Some(&field.ty.to_string()),
                    doc,
                ));
            }
        }
    }
    if segs.len() == 1 && first.called && first.indexed == 0 && first.name == "header" {
        out.push(item(
            "raw",
            CompletionItemKind::FIELD,
            Some("list<string>"),
            Some("The header as written, not RFC 2047-decoded.".to_string()),
        ));
        return out;
    }
    let Some(ty) = chain_type(&segs, params) else {
        return out;
    };
    for (name, ty, doc) in registry::members(&ty) {
        if seen.insert(name.to_string()) {
            out.push(item(
                name,
                CompletionItemKind::FIELD,
                Some(&ty.to_string()),
                Some(doc.to_string()),
            ));
        }
    }
    out
}

/// The type of a receiver chain, where it can be known from the text.
fn chain_type(segs: &[Segment<'_>], params: &[(String, String)]) -> Option<Type> {
    let first = segs.first()?;
    let index = |mut ty: Type, times: usize| {
        for _ in 0..times {
            ty = ty.item()?.clone();
        }
        Some(ty)
    };
    let (mut ty, consumed) =
        if let Some((_, written)) = params.iter().find(|(n, _)| n == first.name) {
            (index(type_from_text(written)?, first.indexed)?, 1)
        } else if first.called {
            (
                index(reg().function(first.name)?.ret.clone(), first.indexed)?,
                1,
            )
        } else {
            let plain: Vec<&str> = segs
                .iter()
                .take_while(|s| !s.called)
                .map(|s| s.name)
                .collect();
            let k = field_prefix(&plain)?;
            if segs[..k - 1].iter().any(|s| s.indexed > 0) {
                return None;
            }
            (
                index(
                    reg().field(&plain[..k].join("."))?.ty.clone(),
                    segs[k - 1].indexed,
                )?,
                k,
            )
        };
    for seg in &segs[consumed..] {
        if seg.called {
            return None;
        }
        ty = index(member_type(&ty, seg.name)?, seg.indexed)?;
    }
    Some(ty)
}
