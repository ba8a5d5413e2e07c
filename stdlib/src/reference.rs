//! The Markdown reference of everything built in: fields, members,
//! functions, actions (from the [registry](crate::registry)) and the
//! `stdlib/*.flow` modules (from their doc comments). `docs/reference.md`
//! is this text; a test fails when the two differ, so the docs cannot drift.

use std::fmt::Write;

use crate::modules::MODULES;
use crate::registry::{ParamType, members, registry};
use crate::types::Type;

/// Escapes text for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The parameter list and return type of a function: `(string, int) -> bool`.
fn signature(params: &[ParamType], ret: &Type) -> String {
    let params: Vec<String> = params
        .iter()
        .map(|p| match p {
            ParamType::Exact(t) => t.to_string(),
            ParamType::AnyList => "list".to_string(),
            ParamType::RuleName => "rule".to_string(),
        })
        .collect();
    format!("({}) -> {ret}", params.join(", "))
}

/// A declaration of a Flow module with the doc comment above it.
#[derive(Debug, PartialEq, Eq)]
pub struct ModuleItem {
    /// The declaration's head: `fn is_bulk()`, `rule spam_score priority 50`.
    pub head: String,
    /// The `#` comment lines immediately above it, without the `#`.
    pub doc: Vec<String>,
}

/// The `fn` and `rule` declarations of a module's source, each with the
/// comment lines immediately above it. Plain string scanning: the reference
/// must not depend on the grammar crate.
pub fn module_items(source: &str) -> Vec<ModuleItem> {
    let lines: Vec<&str> = source.lines().collect();
    let mut items = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        let head = if line.starts_with("fn ") {
            line.split_once(" =").map_or(line, |(head, _)| head)
        } else if line.starts_with("rule ") {
            line.split_once('{').map_or(line, |(head, _)| head)
        } else {
            continue;
        };
        let mut doc = Vec::new();
        for above in lines[..i].iter().rev() {
            let Some(text) = above.trim().strip_prefix('#') else {
                break;
            };
            doc.push(
                text.strip_prefix(' ')
                    .unwrap_or(text)
                    .trim_end()
                    .to_string(),
            );
        }
        doc.reverse();
        items.push(ModuleItem {
            head: head.trim().to_string(),
            doc,
        });
    }
    items
}

/// How the message model reads mail, where docs/language.md leaves a choice.
const MESSAGE_NOTES: &str = "
### How messages are read

- **Header block.** A message has headers only if its first line is a header field (`Name:` \
with a name of printable ASCII). Otherwise there is no header block and every byte is body \
(binary data, a bare text file). A first empty line is an empty header block: the body is what \
follows it. A leading mbox `From ` line is skipped. The header block ends at the first empty \
line, or at the first line that is neither a field nor a continuation (that line starts the \
body).
- **`header(\"Name\")`** is the field as written: the text after the colon, unfolded (a line \
break before a space or tab disappears, the space or tab stays), RFC 2047-decoded (whitespace \
between two encoded words is dropped), trimmed. Invalid UTF-8 becomes U+FFFD. Only the \
top-level header block counts.
- **`body`**: one paragraph per line. In plain text each line loses its leading and trailing \
spaces and tabs, and a line break (LF or CRLF) inside a paragraph becomes one space; a \
paragraph ends at an empty or \
blank line; paragraphs are separated by one `\\n`. Parts that are empty or all whitespace are \
left out; each part read is a paragraph boundary. In \
`multipart/alternative` the first alternative holding plain text is read, else the first \
holding HTML, else the first. Other alternatives add nothing to `body`, but their HTML counts \
for `body.html` and their non-text parts are still attachments. A `text/*` part is body unless \
its Content-Disposition is `attachment` or it is `text/html` with a file name (HTML \
smuggling); any other leaf is an attachment. A `multipart` part \
without a boundary is read as text.
- **`body.lines`**: every text part `body` reads and every other alternative of a \
`multipart/alternative`, in document order: plain text as decoded, its line breaks as written \
(CRLF or LF), no line joined, trimmed or dropped; HTML as text, as for `body` but with the \
whitespace of the source's text kept as written (not collapsed). Parts are joined \
with `\\n`; empty or all-whitespace parts are left out.
- **`body.raw`**: every byte after the header block as received, not decoded (CRLF stays \
CRLF; invalid UTF-8 becomes U+FFFD); a message without a header block is all body.
- **HTML as text**: tags removed (inline tags add nothing; `<br>`, `<p>`, `<div>`, `<li>`, \
`<tr>`, headings, lists, tables and other block elements become line breaks; table cells a \
space); `head`, `script`, `style` and `title` dropped; entities decoded (`&nbsp;` is a space); \
runs of spaces become one space and runs of line breaks one line break; trimmed.
- **Enclosed messages** (`message/rfc822`) are one attachment each, of type `message/rfc822`, \
whose size is the enclosed message's length, followed by their own attachments (`archive` set to \
the enclosed message's name, else its type), down to 3 levels of enclosed messages.
- **ZIP archives** (type `application/zip`, `application/x-zip-compressed`, `application/x-zip`, \
or a name ending in `.zip`) are followed by their file entries from the central directory \
(`archive` the archive's name, `type` `application/octet-stream`, `size` as declared, \
`encrypted` the entry's flag): at most 1,000 entries, archives up to 10 MiB; one that does not \
read is listed as itself only.
- **Limits**: a message over `max_message_size` bytes, with more than `max_headers` top-level \
header fields, or with a part nested deeper than `max_mime_depth` (the top-level entity is \
depth 0; each multipart or enclosed message adds one) is refused with the configured outcome.
- **Addresses**: `.domain` is what follows the last `@`; `.detail` what follows the first `+` of \
the local part. `<>` and `\"\"` are the null sender, every part `\"\"`.
- **Case**: comparisons fold case by Unicode lowercase mapping (final `ς` folds to `σ`).
- **Text of values** (`${...}`): numbers in shortest form (`8`, `9.5`), times in RFC 3339 (in UTC, or with the zone's offset after `local()`), \
durations as a Flow literal in the largest exact unit (`90s`, `5m`, `7d`), lists joined with \
`, `, addresses as `.address`, attachments as their name, authentication results as \
`method=result`.
";

/// The comment block at the top of a module's source, without the `#`.
pub fn module_intro(source: &str) -> Vec<String> {
    source
        .lines()
        .map_while(|line| line.trim().strip_prefix('#'))
        .map(|text| {
            text.strip_prefix(' ')
                .unwrap_or(text)
                .trim_end()
                .to_string()
        })
        .collect()
}

/// Comment lines as Markdown: lines indented by two or more spaces (code
/// examples) go into a fenced `flow` block, the others are text.
fn comment_markdown(lines: &[String]) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for line in lines {
        let is_code = line.starts_with("  ");
        if is_code && !in_code {
            out.push_str("\n```flow\n");
        } else if !is_code && in_code {
            out.push_str("```\n\n");
        }
        in_code = is_code;
        if is_code {
            let _ = writeln!(out, "{}", line.strip_prefix("  ").unwrap_or(line));
        } else {
            let _ = writeln!(out, "{line}");
        }
    }
    if in_code {
        out.push_str("```\n");
    }
    // A blank comment line next to a fence would leave two empty lines.
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    out.trim().to_string()
}

/// The forms the checker knows by their shape rather than from the
/// registry: lambdas, maps, `under` and named captures.
const LANGUAGE_FORMS: &str = "
## Forms of the language

These read like functions and operators but are part of the language itself (the language reference states their rules).

### `some(list, x => bool) -> bool`, `every(list, x => bool) -> bool`

Whether the condition holds for at least one element (`some`; false over an empty list) or for every element (`every`; true over an empty list), with `x` bound to each element in turn: `some(attachments, a => a.name ends_with \".pdf\" and a.type != \"application/pdf\")`. Lambdas do not nest and do not read `matches … as` captures.

### `NAME[key] -> string`, `key in NAME`

For `map NAME = file \"PATH\"` or `map NAME = {\"k\": \"v\"}`: the value of the key, or `\"\"`; whether the map has the key. Keys compare ignoring case.

### `domain under list -> bool`

Whether the domain equals an entry or is a subdomain of it at a label boundary (`a.spam.example` is under `spam.example`, `notspam.example` is not), ignoring case and a trailing dot.

### `m[\"name\"] -> string`

The named group `(?P<name>…)` of a `matches … as m` binding; `m[1]` by number still works.
";

/// The whole reference as Markdown.
pub fn reference_markdown() -> String {
    let mut out = String::new();
    out.push_str(
        "# Weir reference\n\n\
         <!-- Generated from the builtin registry of weir-stdlib and the stdlib/*.flow modules \
         by `reference_markdown()`; do not edit. Regenerate with \
         `UPDATE_EXPECT=1 cargo test -p weir-stdlib --test it reference`. -->\n\n\
         Everything a rule can read or do without declaring it: the fields of the message \
         model, the members of their values, the builtin functions, the actions, and the \
         standard library modules (`import \"stdlib/NAME\"`). The language itself is described \
         in the language reference.\n\n",
    );

    fields_section(&mut out);
    members_section(&mut out);
    functions_section(&mut out);
    out.push_str(LANGUAGE_FORMS);
    actions_section(&mut out);
    modules_section(&mut out);
    out
}

/// The fields of the message model.
fn fields_section(out: &mut String) {
    let reg = registry();
    out.push_str("## Fields\n\n");
    out.push_str(
        "The stage is the first milter stage at which the field is known (`—`: it depends on \
         the rules).\n\n| field | type | stage | description |\n| --- | --- | --- | --- |\n",
    );
    for f in &reg.fields {
        let stage = f.stage.map_or("—", |s| s.as_str());
        let lmtp = if f.lmtp_only { " (LMTP only)" } else { "" };
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {stage}{lmtp} | {} |",
            f.path,
            cell(&f.ty.to_string()),
            cell(f.doc)
        );
    }

    out.push_str(MESSAGE_NOTES);
}

/// The members of values.
fn members_section(out: &mut String) {
    out.push_str("\n## Members\n\n");
    out.push_str(
        "`value.member` reads a part of a value. On a list, the member of every item gives a \
         list: `attachments.name` is a `list<string>`.\n",
    );
    for ty in [
        Type::Address,
        Type::Attachment,
        Type::AuthResult,
        Type::Time,
        Type::Duration,
    ] {
        let _ = writeln!(
            out,
            "\n### {ty}\n\n| member | type | description |\n| --- | --- | --- |"
        );
        for (name, mty, doc) in members(&ty) {
            let _ = writeln!(
                out,
                "| `.{name}` | `{}` | {} |",
                cell(&mty.to_string()),
                cell(doc)
            );
        }
    }
}

/// The builtin functions.
fn functions_section(out: &mut String) {
    let reg = registry();
    out.push_str("\n## Functions\n");
    for f in &reg.functions {
        let _ = writeln!(
            out,
            "\n### `{}{}`\n\nStage: {}.\n\n{}",
            f.name,
            signature(&f.params, &f.ret),
            f.stage,
            f.doc
        );
    }
}

/// The actions.
fn actions_section(out: &mut String) {
    let reg = registry();
    out.push_str("\n## Actions\n\n");
    out.push_str("A verdict ends evaluation; the other actions accumulate in order.\n");
    for a in &reg.actions {
        let mut notes = Vec::new();
        if a.verdict {
            notes.push("verdict");
        }
        if a.lmtp_only {
            notes.push("LMTP only");
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join(", "))
        };
        let _ = writeln!(out, "\n### `{}`{notes}\n\n{}", a.usage, a.doc);
    }
}

/// The `stdlib/NAME` modules and their documented items.
fn modules_section(out: &mut String) {
    out.push_str("\n## Standard library modules\n");
    for (name, source) in MODULES {
        let _ = writeln!(out, "\n### `stdlib/{name}`");
        let intro = comment_markdown(&module_intro(source));
        if !intro.is_empty() {
            let _ = writeln!(out, "\n{intro}");
        }
        let items = module_items(source);
        if items.is_empty() {
            out.push_str("\nNo functions or rules yet.\n");
        }
        for item in items {
            let _ = writeln!(out, "\n#### `{}`\n", item.head);
            if item.doc.is_empty() {
                out.push_str("Undocumented.\n");
            } else {
                let _ = writeln!(out, "{}", comment_markdown(&item.doc));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_items_take_the_comments_right_above() {
        let src = "# header\n\n# Is it bulk?\n# Really.\nfn is_bulk() = true\nlet x = 1\nrule r priority 5 {\n}\n";
        let items = module_items(src);
        assert_eq!(
            items,
            [
                ModuleItem {
                    head: "fn is_bulk()".into(),
                    doc: vec!["Is it bulk?".into(), "Really.".into()]
                },
                ModuleItem {
                    head: "rule r priority 5".into(),
                    doc: vec![]
                },
            ]
        );
    }
}
