//! Flow syntax trees to Flow text, fed to the grammar's formatter.
//!
//! `weir_grammar::format` prints a file from its source text (literals as
//! written, comments where they were), so the converter's tree is first
//! written out here, plainly and fully parenthesised where precedence needs
//! it, then parsed and laid out by the formatter.

use weir_grammar::ast::{
    Action, Block, Expr, ExprKind, IfStmt, Item, RegexLit, Rule, Stmt, StrLit, StrPart, Template,
};

/// One declaration of the output with the comment lines above it (each
/// without its `#`), or comment lines alone.
#[derive(Debug, Clone)]
pub struct Piece {
    /// Comment lines printed before the item, `# ` added.
    pub comments: Vec<String>,
    /// The declaration, if any.
    pub item: Option<Item>,
    /// The declaration is printed commented out (a disabled rule).
    pub disabled: bool,
}

/// Writes the pieces as one `.flow` text, one blank line between pieces.
pub fn file(pieces: &[Piece]) -> String {
    let mut out = String::new();
    for piece in pieces {
        if !out.is_empty() {
            out.push('\n');
        }
        for c in &piece.comments {
            push_comment(&mut out, c);
        }
        if let Some(item) = &piece.item {
            let text = self::item(item);
            if piece.disabled {
                for line in text.lines() {
                    push_comment(&mut out, line);
                }
            } else {
                out.push_str(&text);
            }
        }
    }
    out
}

/// Writes `# line`; a line break of any kind inside it starts another
/// comment line, so no text escapes the comment.
fn push_comment(out: &mut String, text: &str) {
    for line in text.split([
        '\r', '\n', '\u{b}', '\u{c}', '\u{85}', '\u{2028}', '\u{2029}',
    ]) {
        out.push('#');
        if !line.trim().is_empty() {
            out.push(' ');
            out.push_str(line.trim_end());
        }
        out.push('\n');
    }
}

/// One declaration, ending with a newline.
pub fn item(item: &Item) -> String {
    match item {
        Item::Import(i) => format!("import {}\n", string(&i.path)),
        Item::Let(l) => format!("let {} = {}\n", l.name.name, expr(&l.value, 0)),
        Item::Template(t) => template(t),
        Item::Rule(r) => rule(r),
        // The converter makes no other declarations.
        _ => String::new(),
    }
}

fn template(t: &Template) -> String {
    let mut out = format!("template {} {{\n", t.name.name);
    for f in &t.fields {
        out.push_str(&format!("  {} = {}\n", f.key.name, str_lit(&f.value)));
    }
    out.push_str("}\n");
    out
}

fn rule(r: &Rule) -> String {
    let mut out = format!("rule {} {{\n", r.name.name);
    if let Some(when) = &r.when {
        out.push_str(&format!("  when {}\n", expr(when, 0)));
    }
    out.push_str(&format!("  then {}\n", block(&r.then, 1)));
    if let Some(otherwise) = &r.otherwise {
        out.push_str(&format!("  else {}\n", block(otherwise, 1)));
    }
    out.push_str("}\n");
    out
}

fn block(b: &Block, depth: usize) -> String {
    let pad = "  ".repeat(depth + 1);
    let mut out = String::from("{\n");
    for s in &b.stmts {
        out.push_str(&pad);
        out.push_str(&stmt(s, depth + 1));
        out.push('\n');
    }
    out.push_str(&"  ".repeat(depth));
    out.push('}');
    out
}

fn stmt(s: &Stmt, depth: usize) -> String {
    match s {
        Stmt::Action(a) => action(a),
        Stmt::If(i) => if_stmt(i, depth),
    }
}

fn if_stmt(i: &IfStmt, depth: usize) -> String {
    let mut out = format!("if {} {}", expr(&i.cond, 0), block(&i.then, depth));
    if let Some(otherwise) = &i.otherwise {
        match otherwise.stmts.as_slice() {
            [Stmt::If(inner)] if !otherwise.braced => {
                out.push_str(" else ");
                out.push_str(&if_stmt(inner, depth));
            }
            _ => {
                out.push_str(" else ");
                out.push_str(&block(otherwise, depth));
            }
        }
    }
    out
}

fn action(a: &Action) -> String {
    let mut out = a.name.name.clone();
    for arg in &a.args {
        out.push(' ');
        out.push_str(&expr(arg, ATOM));
    }
    if let Some(t) = &a.template {
        out.push_str(" template ");
        out.push_str(&t.name);
    }
    if let Some(every) = &a.every {
        out.push_str(" every ");
        out.push_str(&expr(every, ATOM));
    }
    out
}

/// The binding strength of atoms (literals, names, fields, calls).
const ATOM: u8 = 7;

fn precedence(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Or(..) => 1,
        ExprKind::And(..) => 2,
        ExprKind::Not(_) => 3,
        ExprKind::Compare(_) | ExprKind::Exists(_) => 4,
        ExprKind::Add(..) | ExprKind::Sub(..) => 5,
        ExprKind::Neg(_) => 6,
        ExprKind::Lambda(..) => 0,
        _ => ATOM,
    }
}

/// An expression, in parentheses when it binds looser than `min`.
pub fn expr(e: &Expr, min: u8) -> String {
    let text = match &e.kind {
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Int(n) => n.to_string(),
        ExprKind::Float(f) => f.to_string(),
        ExprKind::Size(n) => size(*n),
        ExprKind::Duration(s) => duration(*s),
        ExprKind::Str(s) => str_lit(s),
        ExprKind::Regex(r) => regex(r),
        ExprKind::Ip(ip) => ip.to_string(),
        ExprKind::Cidr(ip, len) => format!("{ip}/{len}"),
        ExprKind::List(items) => {
            let items: Vec<String> = items.iter().map(|i| expr(i, 1)).collect();
            format!("[{}]", items.join(", "))
        }
        ExprKind::Name(n) => n.name.clone(),
        ExprKind::Field(x, name) => format!("{}.{}", expr(x, ATOM), name.name),
        ExprKind::Method(x, name, args) => {
            let args: Vec<String> = args.iter().map(|a| expr(a, 0)).collect();
            format!("{}.{}({})", expr(x, ATOM), name.name, args.join(", "))
        }
        ExprKind::Index(x, i) => format!("{}[{}]", expr(x, ATOM), expr(i, 1)),
        ExprKind::Call(f, args) => {
            let args: Vec<String> = args.iter().map(|a| expr(a, 0)).collect();
            format!("{}({})", f.name, args.join(", "))
        }
        ExprKind::Not(x) => format!("not {}", expr(x, 3)),
        ExprKind::Neg(x) => format!("-{}", expr(x, 6)),
        ExprKind::And(a, b) => format!("{} and {}", expr(a, 2), expr(b, 3)),
        ExprKind::Or(a, b) => format!("{} or {}", expr(a, 1), expr(b, 2)),
        ExprKind::Add(a, b) => format!("{} + {}", expr(a, 5), expr(b, 6)),
        ExprKind::Sub(a, b) => format!("{} - {}", expr(a, 5), expr(b, 6)),
        ExprKind::Compare(c) => {
            let mut out = String::new();
            if c.all {
                out.push_str("all ");
            }
            out.push_str(&format!(
                "{} {} {}",
                expr(&c.lhs, 5),
                c.op.as_str(),
                expr(&c.rhs, 5)
            ));
            if let Some(bind) = &c.bind {
                out.push_str(" as ");
                out.push_str(&bind.name);
            }
            out
        }
        ExprKind::Exists(x) => format!("{} exists", expr(x, 5)),
        ExprKind::Lambda(x, body) => format!("{} => {}", x.name, expr(body, 1)),
    };
    if precedence(e) < min {
        format!("({text})")
    } else {
        text
    }
}

fn size(n: u64) -> String {
    for (suffix, unit) in [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
        if n >= unit && n.is_multiple_of(unit) {
            return format!("{}{suffix}", n / unit);
        }
    }
    n.to_string()
}

fn duration(s: u64) -> String {
    for (suffix, unit) in [("d", 86_400u64), ("h", 3_600), ("m", 60)] {
        if s >= unit && s.is_multiple_of(unit) {
            return format!("{}{suffix}", s / unit);
        }
    }
    format!("{s}s")
}

/// A plain string literal.
pub fn string(text: &str) -> String {
    let mut out = String::from("\"");
    escape_into(&mut out, text);
    out.push('"');
    out
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
}

fn str_lit(s: &StrLit) -> String {
    let mut out = String::from("\"");
    for part in &s.parts {
        match part {
            StrPart::Text(t) => escape_into(&mut out, t),
            StrPart::Interp(e) => {
                out.push_str("${");
                out.push_str(&expr(e, 0));
                out.push('}');
            }
        }
    }
    out.push('"');
    out
}

/// `/pattern/flags`, with an unescaped `/` escaped and line breaks
/// written as regex escapes (a literal stays on one line).
fn regex(r: &RegexLit) -> String {
    let mut out = String::from("/");
    let mut chars = r.pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                if let Some(next) = chars.next() {
                    push_regex_char(&mut out, next, true);
                }
            }
            '/' => out.push_str("\\/"),
            c => push_regex_char(&mut out, c, false),
        }
    }
    out.push('/');
    out.push_str(&r.flags);
    out
}

fn push_regex_char(out: &mut String, c: char, escaped: bool) {
    match c {
        '\n' if escaped => out.push('n'),
        '\n' => out.push_str("\\n"),
        '\r' if escaped => out.push('r'),
        '\r' => out.push_str("\\r"),
        c if c.is_control() => {
            if escaped {
                // `\<control>` has no meaning; the character itself is meant.
                out.pop();
            }
            out.push_str(&format!("\\x{{{:x}}}", c as u32));
        }
        c => out.push(c),
    }
}
