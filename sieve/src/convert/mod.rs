//! The converter: a Sieve script to Flow declarations.
//!
//! Each top-level `if`/`elsif`/`else` chain becomes one rule (`when` the
//! `if` test, `else` the rest as nested `if`s); consecutive top-level
//! actions become one rule without `when`. A rule that holds a construct
//! Flow cannot express is written as the Sieve text, commented, under a
//! `# not converted:` line, and every such place is a [`Note`].

use std::collections::{BTreeSet, HashSet};

use weir_grammar::ast::{Item, Rule, Span};

mod actions;
mod args;
mod build;
mod conditions;
mod matching;
mod metadata;
mod vars;

use crate::ast::{Command, Script};
use crate::emit::Piece;
use actions::{Path, chain_end};
use vars::Scope;

/// Why a construct was not converted.
#[derive(Debug, Clone)]
pub struct Unsupported {
    span: Span,
    construct: String,
    reason: String,
}

impl Unsupported {
    fn new(span: Span, construct: impl Into<String>, reason: impl Into<String>) -> Self {
        Unsupported {
            span,
            construct: construct.into(),
            reason: reason.into(),
        }
    }
}

/// One place of the Sieve script the conversion says something about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The Sieve file (the script or an included one).
    pub file: String,
    /// 1-based line in it.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The construct (`fileinto :copy`, `test \`hasflag\``, ...).
    pub construct: String,
    /// What was done and why.
    pub message: String,
    /// The Flow file does not do what the script did here (exit status 1).
    pub lossy: bool,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.lossy { "not converted" } else { "note" };
        write!(
            f,
            "{}:{}:{}: {kind}: {}: {}",
            self.file, self.line, self.column, self.construct, self.message
        )
    }
}

/// Reads an included script by name: its file name and text.
pub type IncludeLoader<'a> = &'a dyn Fn(&str) -> Option<(String, String)>;

/// The state of one conversion.
pub(crate) struct Converter<'a> {
    /// The file being converted now (includes change it).
    file: String,
    source: String,
    include: IncludeLoader<'a>,
    included: Vec<String>,
    scope: Scope,
    path: Path,
    /// What may have happened where the test being converted runs
    /// (`hasflag` reads its flags).
    test_path: Path,
    pieces: Vec<Piece>,
    templates: Vec<Item>,
    imports: BTreeSet<String>,
    names: HashSet<String>,
    template_count: usize,
    notes: Vec<Note>,
    /// Comment lines for the rule being converted.
    pending: Vec<String>,
    /// The groups of the rule's capture binding, once converted.
    bound_groups: Option<usize>,
}

/// Converts a parsed script; the Flow text (not yet formatted) and notes.
pub(crate) fn convert(
    script: &Script,
    file: &str,
    source: &str,
    include: IncludeLoader<'_>,
) -> Result<(Vec<Piece>, Vec<Note>), crate::ImportError> {
    let mut c = Converter {
        file: file.to_string(),
        source: source.to_string(),
        include,
        included: vec![file.to_string()],
        scope: Scope {
            capture_name: "m".to_string(),
            ..Scope::default()
        },
        path: Path::default(),
        test_path: Path::default(),
        pieces: Vec::new(),
        templates: Vec::new(),
        imports: BTreeSet::new(),
        names: HashSet::new(),
        template_count: 0,
        notes: Vec::new(),
        pending: Vec::new(),
        bound_groups: None,
    };
    c.script(script)?;
    let mut out: Vec<Piece> = c
        .imports
        .iter()
        .map(|i| Piece {
            comments: vec![],
            item: Some(Item::Import(weir_grammar::ast::Import {
                path: i.clone(),
                path_span: Span::default(),
                span: Span::default(),
            })),
            disabled: false,
        })
        .collect();
    if c.imports.contains("stdlib/spam") {
        out.push(Piece {
            comments: vec!["The authserv-ids of your own servers (see stdlib/auth).".into()],
            item: Some(Item::Let(weir_grammar::ast::Let {
                name: build::ident("trusted_authserv"),
                value: build::expr(weir_grammar::ast::ExprKind::List(vec![])),
                span: Span::default(),
            })),
            disabled: false,
        });
    }
    out.extend(c.templates.drain(..).map(|t| Piece {
        comments: vec![],
        item: Some(t),
        disabled: false,
    }));
    out.append(&mut c.pieces);
    Ok((out, c.notes))
}

impl Converter<'_> {
    fn script(&mut self, script: &Script) -> Result<(), crate::ImportError> {
        let cmds = &script.commands;
        let mut gap_start = 0;
        let mut i = 0;
        while i < cmds.len() {
            let c = &cmds[i];
            let meta = metadata::read(&self.source[gap_start..c.span.start.max(gap_start)]);
            self.meta_notes(&meta, gap_start);
            let end = match c.name.as_str() {
                "if" => chain_end(cmds, i),
                "require" | "set" | "include" => i + 1,
                _ => {
                    let mut e = i + 1;
                    while e < cmds.len()
                        && !matches!(
                            cmds[e].name.as_str(),
                            "if" | "require" | "set" | "include" | "elsif" | "else"
                        )
                    {
                        e += 1;
                    }
                    e
                }
            };
            let group = &cmds[i..end];
            gap_start = group.last().map_or(gap_start, |l| l.span.end);
            match c.name.as_str() {
                "require" => self.require(c),
                "set" => self.top_level_set(c, &meta.comments),
                "include" => self.inline(c)?,
                _ => {
                    let mut meta = meta;
                    meta.disabled_test = self.disabled_test(c);
                    self.rule(group, meta)
                }
            }
            i = end;
        }
        let trailing = metadata::read(&self.source[gap_start..]);
        self.meta_notes(&trailing, gap_start);
        if !trailing.comments.is_empty() {
            self.pieces.push(Piece {
                comments: trailing.comments,
                item: None,
                disabled: false,
            });
        }
        Ok(())
    }

    /// The test Roundcube keeps in a comment after `if false`.
    fn disabled_test(&self, c: &Command) -> Option<String> {
        let t = c.args.tests.first().filter(|_| is_if_false(c))?;
        // The test's span runs over the comment after `false`.
        let rest = &self.source[t.span.start + "false".len()..c.span.end];
        let line = rest.split('\n').next()?;
        let comment = line.trim_start().strip_prefix('#')?;
        Some(comment.trim().to_string()).filter(|s| !s.is_empty())
    }

    fn require(&mut self, c: &Command) {
        let caps: Vec<String> = c
            .args
            .args
            .iter()
            .flat_map(conditions::list_strings)
            .collect();
        if caps.iter().any(|x| x.eq_ignore_ascii_case("variables")) {
            self.scope.enabled = true;
        }
    }

    fn top_level_set(&mut self, c: &Command, comments: &[String]) {
        let args = args::Args::read(&c.args);
        if let Err(u) = self.set(c, &args) {
            self.not_converted(std::slice::from_ref(c), u, comments.to_vec(), None);
        }
    }

    /// `include` (RFC 6609): the included script's rules, in place.
    fn inline(&mut self, c: &Command) -> Result<(), crate::ImportError> {
        let args = args::Args::read(&c.args);
        let Some(name) = args.positional.first().and_then(|a| args::string(a)) else {
            self.not_converted(
                std::slice::from_ref(c),
                Unsupported::new(c.span, "include", "the script name is missing"),
                vec![],
                None,
            );
            return Ok(());
        };
        let Some((file, text)) = (self.include)(&name.value) else {
            if args.has("optional") {
                return Ok(());
            }
            return Err(crate::ImportError::Include {
                file: self.file.clone(),
                line: self.line_col(c.span).0,
                name: name.value.clone(),
            });
        };
        if self.included.contains(&file) {
            if !args.has("once") {
                self.warn(
                    c.span,
                    "include",
                    "a script already included is not included again",
                );
            }
            return Ok(());
        }
        let script = crate::parse::parse(&text).map_err(|e| crate::ImportError::Parse {
            file: file.clone(),
            error: e,
        })?;
        let saved = (
            std::mem::replace(&mut self.file, file.clone()),
            std::mem::replace(&mut self.source, text),
        );
        self.included.push(file);
        // An included script has its own `require` (RFC 6609 §3.1).
        let enabled = std::mem::replace(&mut self.scope.enabled, false);
        let result = self.script(&script);
        self.scope.enabled = enabled;
        (self.file, self.source) = saved;
        result
    }

    /// One rule from an `if` chain or a run of actions.
    fn rule(&mut self, group: &[Command], meta: metadata::Meta) {
        let name = self.rule_name(meta.name.as_deref(), group[0].span);
        let disabled = meta.disabled_test.is_some() || is_if_false(&group[0]);
        let saved = (self.scope.clone(), self.path.clone());
        let notes_before = self.notes.len();
        self.pending.clear();
        let converted = if let (true, Some(test)) = (disabled, &meta.disabled_test) {
            self.disabled_rule(group, test, &name)
        } else {
            self.enabled_rule(group, &name)
        };
        let mut comments = meta.comments;
        if disabled {
            // A disabled rule does nothing in either language: what its
            // conversion found is no difference.
            self.notes.truncate(notes_before);
            self.pending.clear();
        }
        match converted {
            Err(u) if disabled => {
                (self.scope, self.path) = saved;
                comments.push(format!(
                    "disabled in Sieve (`if false`), not converted ({}): rule {name}",
                    u.reason
                ));
                let start = group[0].span.start;
                let end = group.last().map_or(start, |c| c.span.end);
                comments.extend(self.source[start..end].lines().map(|l| format!("  {l}")));
                self.pieces.push(Piece {
                    comments,
                    item: None,
                    disabled: false,
                });
            }
            Ok(rule) if disabled => {
                (self.scope, self.path) = saved;
                comments.push(format!("disabled in Sieve (`if false`): rule {name}"));
                comments.append(&mut self.pending);
                self.pieces.push(Piece {
                    comments,
                    item: Some(Item::Rule(rule)),
                    disabled: true,
                });
            }
            Ok(rule) => {
                comments.append(&mut self.pending);
                self.pieces.push(Piece {
                    comments,
                    item: Some(Item::Rule(rule)),
                    disabled: false,
                });
            }
            Err(u) => {
                // The rule is a comment: Flow does none of what it did.
                (self.scope, self.path) = saved;
                let pending = std::mem::take(&mut self.pending);
                let mut all = comments;
                all.extend(pending);
                self.not_converted(group, u, all, Some(&name));
            }
        }
    }

    fn enabled_rule(&mut self, group: &[Command], name: &str) -> Result<Rule, Unsupported> {
        let first = &group[0];
        self.bound_groups = None;
        self.scope.captures = None;
        if first.name != "if" {
            let mut path = self.path.clone();
            let stmts = self.block(group, &mut path)?;
            self.path = path;
            return Ok(rule(name, None, stmts, None));
        }
        let test = first
            .args
            .tests
            .first()
            .ok_or_else(|| Unsupported::new(first.span, "if", "the test is missing"))?;
        let body = first.block.as_deref().unwrap_or(&[]);
        let bind = if body.iter().any(refs_captures) {
            Some(conditions::bind_target(test)?)
        } else {
            None
        };
        // Copied only when read: the flags may be thousands.
        if conditions::reads_flags(test) {
            self.test_path = self.path.clone();
        }
        let when = self.test(test, bind)?;
        self.scope.captures = self.bound_groups;
        let mut then_path = self.path.clone();
        let then = self.scoped_block(body, &mut then_path);
        self.scope.captures = None;
        let then = then?;
        // A test converted to `false` (`hasflag`) never runs its block.
        then_path.ended |= matches!(when.kind, weir_grammar::ast::ExprKind::Bool(false));
        let mut else_path = self.path.clone();
        let otherwise = if group.len() > 1 {
            let stmts = self.else_chain(&group[1..], &mut else_path)?;
            Some(build::block(stmts))
        } else {
            None
        };
        self.path = then_path.join(else_path);
        let when = match when.kind {
            weir_grammar::ast::ExprKind::Bool(true) if otherwise.is_none() => None,
            _ => Some(when),
        };
        Ok(rule(name, when, then, otherwise))
    }

    /// `elsif ...` / `else` after the rule's `if`, as the rule's `else` block.
    fn else_chain(
        &mut self,
        chain: &[Command],
        path: &mut Path,
    ) -> Result<Vec<weir_grammar::ast::Stmt>, Unsupported> {
        if chain[0].name == "else" {
            return self.scoped_block(chain[0].block.as_deref().unwrap_or(&[]), path);
        }
        let mut as_if = chain.to_vec();
        as_if[0].name = "if".into();
        self.block(&as_if, path)
    }

    /// A Roundcube rule disabled as `if false # TEST`: converted from the
    /// test in the comment, written commented out.
    fn disabled_rule(
        &mut self,
        group: &[Command],
        test: &str,
        name: &str,
    ) -> Result<Rule, Unsupported> {
        let parsed = crate::parse::parse(&format!("if {test} {{}}"))
            .ok()
            .and_then(|s| s.commands.into_iter().next())
            .and_then(|c| c.args.tests.into_iter().next());
        let mut cmd = group[0].clone();
        if let Some(t) = parsed {
            cmd.args.tests = vec![t];
        }
        let mut g = group.to_vec();
        g[0] = cmd;
        self.enabled_rule(&g, name)
    }

    fn not_converted(
        &mut self,
        group: &[Command],
        u: Unsupported,
        mut comments: Vec<String>,
        name: Option<&str>,
    ) {
        let (line, column) = self.line_col(u.span);
        self.notes.push(Note {
            file: self.file.clone(),
            line,
            column,
            construct: u.construct.clone(),
            message: format!("{}; the rule is kept as a comment", u.reason),
            lossy: true,
        });
        comments.push(format!(
            "not converted: {}:{line}:{column}: {}: {}",
            self.file, u.construct, u.reason
        ));
        if let Some(n) = name {
            comments.push(format!("rule {n}, as written in Sieve:"));
        }
        let start = group[0].span.start;
        let end = group.last().map_or(start, |c| c.span.end);
        let line_start = self.source[..start].rfind('\n').map_or(0, |p| p + 1);
        let indent = start - line_start;
        for (k, l) in self.source[start..end].lines().enumerate() {
            let l = if k == 0 {
                l
            } else {
                l.get(indent.min(leading_ws(l))..).unwrap_or(l)
            };
            comments.push(format!("  {l}"));
        }
        self.pieces.push(Piece {
            comments,
            item: None,
            disabled: false,
        });
    }

    /// A lossy difference in a converted rule: a note and a comment above it.
    fn warn(&mut self, span: Span, construct: &str, message: &str) {
        self.note(span, construct, message, true);
    }

    /// An informational note (the conversion stays exact).
    fn info(&mut self, span: Span, construct: &str, message: &str) {
        self.note(span, construct, message, false);
    }

    fn note(&mut self, span: Span, construct: &str, message: &str, lossy: bool) {
        let (line, column) = self.line_col(span);
        let kind = if lossy { "not converted" } else { "note" };
        self.pending.push(format!(
            "{kind}: {}:{line}:{column}: {construct}: {message}",
            self.file
        ));
        self.notes.push(Note {
            file: self.file.clone(),
            line,
            column,
            construct: construct.to_string(),
            message: message.to_string(),
            lossy,
        });
    }

    fn meta_notes(&mut self, meta: &metadata::Meta, offset: usize) {
        for (at, what) in &meta.dropped {
            let span = Span::new(offset + at, offset + at);
            let (line, column) = self.line_col(span);
            self.notes.push(Note {
                file: self.file.clone(),
                line,
                column,
                construct: what.clone(),
                message: "editor metadata, dropped".into(),
                lossy: false,
            });
        }
    }

    fn line_col(&self, span: Span) -> (usize, usize) {
        weir_grammar::diagnostic::line_col(&self.source, span.start)
    }

    fn rule_name(&mut self, given: Option<&str>, span: Span) -> String {
        let base = match given.map(identifier) {
            Some(n) if !n.is_empty() => n,
            _ => format!("line_{}", self.line_col(span).0),
        };
        let mut name = base.clone();
        let mut k = 2;
        while !self.names.insert(name.clone()) {
            name = format!("{base}_{k}");
            k += 1;
        }
        name
    }

    fn fresh_template(&mut self) -> String {
        self.template_count += 1;
        if self.template_count == 1 {
            "vacation".into()
        } else {
            format!("vacation_{}", self.template_count)
        }
    }
}

fn rule(
    name: &str,
    when: Option<weir_grammar::ast::Expr>,
    then: Vec<weir_grammar::ast::Stmt>,
    otherwise: Option<weir_grammar::ast::Block>,
) -> Rule {
    Rule {
        name: build::ident(name),
        priority: None,
        shadow: false,
        when,
        then: build::block(then),
        otherwise,
        span: Span::default(),
    }
}

fn leading_ws(l: &str) -> usize {
    l.len() - l.trim_start().len()
}

fn is_if_false(c: &Command) -> bool {
    c.name == "if" && c.args.tests.first().is_some_and(|t| t.name == "false")
}

/// Whether a command (or one inside it) reads `${N}`.
fn refs_captures(c: &Command) -> bool {
    let in_args = c.args.args.iter().any(|a| {
        conditions::list_strings(a).iter().any(|s| {
            vars::pieces(s)
                .iter()
                .any(|p| matches!(p, vars::Piece::Match(_)))
        })
    });
    in_args || c.block.iter().flatten().any(refs_captures)
}

/// A Flow identifier from an editor's rule name: lower-case snake_case.
fn identifier(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    let mut out = out.trim_end_matches('_').to_string();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "rule_");
    }
    if weir_grammar::keywords::RESERVED.contains(&out.as_str()) {
        out.push_str("_rule");
    }
    out
}

#[cfg(test)]
mod tests;
