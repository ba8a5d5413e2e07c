//! Parser tests: literals, operators and precedence, newline rules, action
//! forms, test blocks, errors with their codes and spans, and recovery.

use weir_grammar::ast::*;
use weir_grammar::{Diagnostic, parse};

/// Parses a file that must be valid.
fn ok(source: &str) -> File {
    let (file, diagnostics) = parse(source, "t.flow");
    assert!(
        diagnostics.is_empty(),
        "unexpected diagnostics for {source:?}: {diagnostics:#?}"
    );
    file
}

/// The diagnostics of a file that must be invalid.
fn errors(source: &str) -> Vec<Diagnostic> {
    let (_, diagnostics) = parse(source, "t.flow");
    assert!(!diagnostics.is_empty(), "expected errors for {source:?}");
    diagnostics
}

/// The value of `let x = EXPR`.
fn let_value(expr: &str) -> Expr {
    let file = ok(&format!("let x = {expr}\n"));
    match file.items.into_iter().next() {
        Some(Item::Let(l)) => l.value,
        other => panic!("not a let: {other:?}"),
    }
}

/// The condition of `rule r { when COND then stop }`.
fn cond(c: &str) -> Expr {
    match ok(&format!("rule r {{ when {c} then stop }}"))
        .items
        .into_iter()
        .next()
    {
        Some(Item::Rule(r)) => r.when.expect("a condition"),
        other => panic!("not a rule: {other:?}"),
    }
}

fn rule(source: &str) -> Rule {
    match ok(source).items.into_iter().next() {
        Some(Item::Rule(r)) => r,
        other => panic!("not a rule: {other:?}"),
    }
}

fn actions(block: &Block) -> Vec<&Action> {
    block
        .stmts
        .iter()
        .filter_map(|s| match s {
            Stmt::Action(a) => Some(a),
            Stmt::If(_) => None,
        })
        .collect()
}

/// A compact rendering of an expression's structure, for precedence tests.
fn show(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Int(i) => i.to_string(),
        ExprKind::Float(f) => f.to_string(),
        ExprKind::Size(s) => format!("{s}B"),
        ExprKind::Duration(d) => format!("{d}s"),
        ExprKind::Str(s) => format!("{:?}", s.as_plain().unwrap_or_default()),
        ExprKind::Regex(r) => format!("/{}/{}", r.pattern, r.flags),
        ExprKind::Ip(ip) => ip.to_string(),
        ExprKind::Cidr(ip, n) => format!("{ip}/{n}"),
        ExprKind::List(items) => format!(
            "[{}]",
            items.iter().map(show).collect::<Vec<_>>().join(", ")
        ),
        ExprKind::Name(n) => n.name.clone(),
        ExprKind::Field(b, n) => format!("{}.{}", show(b), n.name),
        ExprKind::Method(b, n, args) => format!(
            "{}.{}({})",
            show(b),
            n.name,
            args.iter().map(show).collect::<Vec<_>>().join(", ")
        ),
        ExprKind::Index(b, i) => format!("{}[{}]", show(b), show(i)),
        ExprKind::Call(n, args) => format!(
            "{}({})",
            n.name,
            args.iter().map(show).collect::<Vec<_>>().join(", ")
        ),
        ExprKind::Not(a) => format!("(not {})", show(a)),
        ExprKind::Neg(a) => format!("(-{})", show(a)),
        ExprKind::And(a, b) => format!("({} and {})", show(a), show(b)),
        ExprKind::Or(a, b) => format!("({} or {})", show(a), show(b)),
        ExprKind::Add(a, b) => format!("({} + {})", show(a), show(b)),
        ExprKind::Sub(a, b) => format!("({} - {})", show(a), show(b)),
        ExprKind::Exists(a) => format!("({} exists)", show(a)),
        ExprKind::Lambda(p, b) => format!("({} => {})", p.name, show(b)),
        ExprKind::Compare(c) => format!(
            "({}{} {}{} {}{})",
            if c.all { "all " } else { "" },
            show(&c.lhs),
            c.op.as_str(),
            if c.any { " any" } else { "" },
            show(&c.rhs),
            c.bind
                .as_ref()
                .map(|b| format!(" as {}", b.name))
                .unwrap_or_default()
        ),
    }
}

// ------------------------------------------------------------------ literals

#[test]
fn integers_decimals_sizes_and_durations() {
    assert_eq!(show(&let_value("42")), "42");
    assert_eq!(show(&let_value("2.5")), "2.5");
    assert_eq!(
        show(&let_value("[10K, 5M, 1G]")),
        "[10240B, 5242880B, 1073741824B]"
    );
    assert_eq!(
        show(&let_value("[30s, 5m, 2h, 7d]")),
        "[30s, 300s, 7200s, 604800s]"
    );
    assert_eq!(show(&let_value("1.5K")), "1536B");
}

#[test]
fn lower_case_size_suffix_is_an_error_with_a_hint() {
    let source = "let x = 10k\n";
    let d = &errors(source)[0];
    assert_eq!(d.code, "E0006");
    assert_eq!(&source[d.span.start..d.span.end], "10k");
    assert_eq!(
        d.hint.as_deref(),
        Some("sizes take upper-case K M G; durations take s m h d")
    );
}

#[test]
fn number_out_of_range_is_reported() {
    assert_eq!(errors("let x = 99999999999999999999\n")[0].code, "E0007");
    assert_eq!(errors("let x = 1.5s\n")[0].code, "E0007");
}

#[test]
fn strings_resolve_escapes() {
    let e = let_value(r#""a\nb\r\t\"\\\$\u{e9}""#);
    match e.kind {
        ExprKind::Str(s) => assert_eq!(s.as_plain().as_deref(), Some("a\nb\r\t\"\\$é")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_escape_is_an_error_at_its_span() {
    let source = "let x = \"a\\qb\"\n";
    let d = &errors(source)[0];
    assert_eq!(d.code, "E0003");
    assert_eq!(&source[d.span.start..d.span.end], "\\q");
}

#[test]
fn bad_unicode_escape_is_an_error() {
    assert_eq!(errors("let x = \"\\u{110000}\"\n")[0].code, "E0017");
}

#[test]
fn interpolation_splits_text_and_expressions() {
    let e = let_value(r#""Re: ${subject} from ${from.address}!""#);
    let ExprKind::Str(s) = e.kind else { panic!() };
    assert_eq!(s.parts.len(), 5);
    assert!(matches!(&s.parts[0], StrPart::Text(t) if t == "Re: "));
    assert!(matches!(&s.parts[1], StrPart::Interp(e) if show(e) == "subject"));
    assert!(matches!(&s.parts[3], StrPart::Interp(e) if show(e) == "from.address"));
    assert!(matches!(&s.parts[4], StrPart::Text(t) if t == "!"));
}

#[test]
fn triple_quoted_strings_are_dedented() {
    let source =
        "template t {\n  body = \"\"\"\n    Hello ${name},\n\n      indented\n    \"\"\"\n}\n";
    let Some(Item::Template(t)) = ok(source).items.into_iter().next() else {
        panic!()
    };
    let parts = &t.fields[0].value.parts;
    assert!(t.fields[0].value.triple);
    assert!(matches!(&parts[0], StrPart::Text(x) if x == "Hello "));
    assert!(
        matches!(&parts[2], StrPart::Text(x) if x == ",\n\n  indented\n"),
        "{parts:?}"
    );
}

#[test]
fn triple_quoted_string_on_one_line_is_kept() {
    let e = let_value(r#""""say "hi" """"#);
    let ExprKind::Str(s) = e.kind else { panic!() };
    assert_eq!(s.as_plain().as_deref(), Some("say \"hi\" "));
}

#[test]
fn regex_literals_with_flags_and_escaped_slash() {
    assert_eq!(show(&let_value(r"/a\/b #c/im")), "/a/b #c/im");
    let d = &errors("let x = /a/q\n")[0];
    assert_eq!(d.code, "E0005");
}

#[test]
fn unterminated_string_and_regex_are_reported() {
    assert_eq!(errors("let x = \"abc\n")[0].code, "E0002");
    assert_eq!(errors("let x = /abc\n")[0].code, "E0004");
}

#[test]
fn ip_and_cidr_literals() {
    assert_eq!(
        show(&let_value(
            "[192.0.2.1, 10.0.0.0/8, 2001:db8::/32, ::1, fe80::1]"
        )),
        "[192.0.2.1, 10.0.0.0/8, 2001:db8::/32, ::1, fe80::1]"
    );
    assert_eq!(errors("let x = 10.0.0.0/33\n")[0].code, "E0008");
    assert_eq!(errors("let x = 300.1.1.1\n")[0].code, "E0008");
}

#[test]
fn booleans_and_lists() {
    assert_eq!(
        show(&let_value("[true, false, [1, 2,],]")),
        "[true, false, [1, 2]]"
    );
}

// ------------------------------------------------------------------ operators

#[test]
fn precedence_or_and_not() {
    assert_eq!(show(&cond("a or b and not c")), "(a or (b and (not c)))");
    assert_eq!(show(&cond("not a == b")), "(not (a == b))");
    assert_eq!(show(&cond("(a or b) and c")), "((a or b) and c)");
}

#[test]
fn every_comparison_operator() {
    for op in [
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "contains",
        "starts_with",
        "ends_with",
        "matches",
        "in",
        "under",
    ] {
        assert_eq!(show(&cond(&format!("a {op} b"))), format!("(a {op} b)"));
    }
}

#[test]
fn arithmetic_binds_tighter_than_comparison() {
    assert_eq!(
        show(&cond("size + 1 - 2 > -3")),
        "(((size + 1) - 2) > (-3))"
    );
}

#[test]
fn field_access_indexing_and_calls() {
    assert_eq!(
        show(&cond("header(\"X\").raw[0] == lower(subject)")),
        "(header(\"X\").raw[0] == lower(subject))"
    );
    assert_eq!(
        show(&cond("envelope.from.domain in blocked")),
        "(envelope.from.domain in blocked)"
    );
}

#[test]
fn all_any_exists_and_as() {
    assert_eq!(
        show(&cond("all envelope.to.domain in internal")),
        "(all envelope.to.domain in internal)"
    );
    assert_eq!(
        show(&cond("body contains any [\"a\", \"b\"]")),
        "(body contains any [\"a\", \"b\"])"
    );
    assert_eq!(
        show(&cond("header(\"X\") exists and b")),
        "((header(\"X\") exists) and b)"
    );
    assert_eq!(
        show(&cond("subject matches /t #(\\d+)/i as m")),
        "(subject matches /t #(\\d+)/i as m)"
    );
}

#[test]
fn compare_span_covers_all_and_binding() {
    let source = "rule r { when all to.domain in x then stop }";
    let c = rule(source).when.unwrap();
    assert_eq!(&source[c.span.start..c.span.end], "all to.domain in x");
}

#[test]
fn chained_comparison_is_an_error() {
    let source = "rule r { when a == b == c then stop }";
    let d = &errors(source)[0];
    assert_eq!(d.code, "E0009");
    assert_eq!(&source[d.span.start..d.span.end], "==");
    assert!(
        parse("rule r { when (a == b) == c then stop }", "t")
            .1
            .is_empty()
    );
}

#[test]
fn misplaced_all_any_as_are_errors() {
    assert_eq!(errors("rule r { when all a then stop }")[0].code, "E0010");
    assert_eq!(
        errors("rule r { when a in any b then stop }")[0].code,
        "E0012"
    );
    assert_eq!(
        errors("rule r { when a contains b as m then stop }")[0].code,
        "E0011"
    );
}

// ------------------------------------------------------------------ newline rules

#[test]
fn conditions_span_lines() {
    let r = rule("rule r {\n  when a\n    or b and\n    c\n  then\n    tag \"x\"\n}");
    assert_eq!(show(&r.when.unwrap()), "(a or (b and c))");
    assert_eq!(actions(&r.then)[0].name.name, "tag");
}

#[test]
fn newlines_inside_brackets_parens_and_maps() {
    let v = let_value("[\n  1,\n  2\n]");
    assert_eq!(show(&v), "[1, 2]");
    let v = let_value("count(\n  [1]\n) + (\n 2\n)");
    assert_eq!(show(&v), "(count([1]) + 2)");
    let r = rule("rule r { then notify \"c\" with {\n  text: \"a\",\n  b: 1\n} template t }");
    let a = actions(&r.then)[0];
    assert_eq!(a.with.as_ref().unwrap().entries.len(), 2);
    assert_eq!(a.template.as_ref().unwrap().name, "t");
}

#[test]
fn a_let_continues_after_a_trailing_operator_only() {
    assert_eq!(show(&let_value("1 +\n  2")), "(1 + 2)");
    let d = errors("let x = 1\n  + 2\n");
    assert_eq!(d[0].code, "E0014");
}

#[test]
fn actions_end_at_newlines_and_semicolons() {
    let r = rule("rule r {\n  then {\n    tag \"a\"\n    tag \"b\"; stop\n  }\n}");
    let names: Vec<&str> = actions(&r.then)
        .iter()
        .map(|a| a.name.name.as_str())
        .collect();
    assert_eq!(names, ["tag", "tag", "stop"]);
}

#[test]
fn then_block_may_start_on_the_next_line() {
    let r = rule("rule r {\n  when a\n  then\n  {\n    stop\n  }\n}");
    assert!(r.then.braced);
}

// ------------------------------------------------------------------ actions

#[test]
fn action_forms() {
    let r = rule(concat!(
        "rule r {\n then {\n",
        "  reject 550 \"5.7.1\" \"text\"\n",
        "  score +2\n",
        "  score -1.5\n",
        "  add_header \"X\" m[1]\n",
        "  reply template ack\n",
        "  stop\n",
        "} }"
    ));
    let a = actions(&r.then);
    assert_eq!(a[0].args.len(), 3);
    assert_eq!(show(&a[1].args[0]), "2");
    assert_eq!(show(&a[2].args[0]), "(-1.5)");
    assert_eq!(show(&a[3].args[1]), "m[1]");
    assert!(a[4].args.is_empty() && a[4].template.is_some());
    assert!(a[5].args.is_empty());
}

#[test]
fn test_blocks_set_the_world() {
    let file = ok(concat!(
        "test \"t\" {\n",
        "  now \"2024-12-20T18:00:00Z\"\n",
        "  recipient \"bob@example.com\"\n",
        "  rate \"from:${envelope.from}\" = 20\n",
        "  duplicate \"<id@b>\"\n",
        "  expect tag \"x\"\n",
        "}\n"
    ));
    let Some(Item::Test(t)) = file.items.first() else {
        panic!()
    };
    let kinds: Vec<&TestStmtKind> = t.stmts.iter().map(|s| &s.kind).collect();
    assert!(matches!(kinds[0], TestStmtKind::Now(_)));
    assert!(matches!(kinds[1], TestStmtKind::Recipient(_)));
    assert!(matches!(kinds[2], TestStmtKind::Rate { .. }));
    assert!(matches!(kinds[3], TestStmtKind::Duplicate(_)));
    assert!(matches!(kinds[4], TestStmtKind::Expect { .. }));
    // `rate` needs its count, `now` its time.
    errors("test \"t\" {\n  rate \"k\"\n}\n");
    errors("test \"t\" {\n  now\n}\n");
    // The words stay names outside test blocks.
    let names = ok("let now_ = 1\nlet rate = 2\nlet duplicate = 3\nlet recipient = 4\n");
    assert_eq!(names.items.len(), 4);
}

#[test]
fn contextual_words_are_identifiers() {
    let file = ok(
        "let from = 1\nlet message = 2\nlet score = 3\nlet expect = 4\nlet name = 5\nlet body = 6\n",
    );
    assert_eq!(file.items.len(), 6);
}

#[test]
fn no_reserved_word_starts_another() {
    // flow.pest tries them in order and stops at the first that matches.
    for a in weir_grammar::keywords::RESERVED {
        for b in weir_grammar::keywords::RESERVED {
            assert!(a == b || !b.starts_with(a), "`{a}` starts `{b}`");
        }
    }
}

#[test]
fn reserved_words_are_not_identifiers() {
    for word in weir_grammar::keywords::RESERVED {
        let d = errors(&format!("let {word} = 1\n"));
        assert_eq!(d[0].code, "E0016", "{word}");
    }
    // Words that start like one, or are one with more letters, are names.
    for word in [
        "a",
        "andy",
        "assert",
        "alls",
        "t",
        "tests",
        "thence",
        "iff",
        "ins",
        "fns",
        "files",
        "notice",
        "order",
        "within",
        "whence",
        "trueish",
        "falsey",
        "lets",
        "rules",
        "e",
        "elsewhere",
    ] {
        let file = ok(&format!("let {word} = 1\n"));
        assert_eq!(file.items.len(), 1, "{word}");
    }
}

#[test]
fn rule_header_and_else() {
    let r = rule("rule r priority 10 shadow {\n  when a\n  then tag \"a\"\n  else tag \"b\"\n}");
    assert_eq!(r.priority.map(|p| p.0), Some(10));
    assert!(r.shadow);
    assert!(!r.then.braced);
    assert_eq!(actions(r.otherwise.as_ref().unwrap())[0].args.len(), 1);
}

#[test]
fn nested_if_and_else_if() {
    let r = rule(
        "rule r { then {\n if a { tag \"a\" } else if b { tag \"b\" } else { tag \"c\" }\n} }",
    );
    let Stmt::If(i) = &r.then.stmts[0] else {
        panic!()
    };
    let other = i.otherwise.as_ref().unwrap();
    assert!(!other.braced);
    let Stmt::If(nested) = &other.stmts[0] else {
        panic!()
    };
    assert!(nested.otherwise.as_ref().unwrap().braced);
}

#[test]
fn declarations() {
    let file = ok(concat!(
        "import \"stdlib/bulk\"\n",
        "list blocked = file \"lists/b.txt\"\n",
        "fn f(a: address, l: list<string>) = a.domain in l\n",
        "template t { subject = \"s\"  body = \"b\" }\n",
    ));
    let [
        Item::Import(i),
        Item::List(l),
        Item::Fn(f),
        Item::Template(t),
    ] = file.items.as_slice()
    else {
        panic!("{:?}", file.items)
    };
    assert_eq!(i.path, "stdlib/bulk");
    assert_eq!(l.path, "lists/b.txt");
    assert_eq!(f.params[1].ty.name.name, "list");
    assert_eq!(f.params[1].ty.args[0].name.name, "string");
    assert_eq!(t.fields.len(), 2);
}

#[test]
fn spans_are_exact() {
    let source = "rule r {\n  then tag \"x\"   # note\n}\n";
    let r = rule(source);
    let a = actions(&r.then)[0];
    assert_eq!(&source[a.span.start..a.span.end], "tag \"x\"");
    assert_eq!(&source[r.span.start..r.span.end], source.trim_end());
}

// ------------------------------------------------------------------ tests

#[test]
fn test_blocks() {
    let file = ok(concat!(
        "test \"t\" {\n",
        "  message \"m.eml\"\n",
        "  message \"\"\"\n    From: a@b\n\n    hi\n    \"\"\"\n",
        "  envelope from \"a@b\" to [\"c@d\"]\n",
        "  client ip 192.0.2.1 helo \"mx\"\n",
        "  expect verdict reject 550\n",
        "  expect not stage rcpt\n",
        "  expect score >= 8\n",
        "  expect not matched billing\n",
        "  expect add_header \"X-Priority\" \"1\"\n",
        "}\n"
    ));
    let Some(Item::Test(t)) = file.items.first() else {
        panic!()
    };
    let kinds: Vec<&TestStmtKind> = t.stmts.iter().map(|s| &s.kind).collect();
    assert!(matches!(kinds[0], TestStmtKind::MessageFile(p) if p == "m.eml"));
    assert!(matches!(kinds[1], TestStmtKind::MessageText(m) if m == "From: a@b\n\nhi\n"));
    assert!(matches!(
        kinds[2],
        TestStmtKind::Envelope {
            from: Some(_),
            to: Some(_)
        }
    ));
    assert!(matches!(
        kinds[3],
        TestStmtKind::Client {
            ip: Some(_),
            helo: Some(_)
        }
    ));
    assert!(matches!(
        kinds[4],
        TestStmtKind::Expect {
            negated: false,
            what: Expectation::Verdict {
                code: Some((550, _)),
                ..
            }
        }
    ));
    assert!(matches!(
        kinds[5],
        TestStmtKind::Expect {
            negated: true,
            what: Expectation::Stage(_)
        }
    ));
    assert!(matches!(
        kinds[6],
        TestStmtKind::Expect {
            what: Expectation::Score {
                op: CompareOp::Ge,
                ..
            },
            ..
        }
    ));
    assert!(matches!(
        kinds[7],
        TestStmtKind::Expect {
            negated: true,
            what: Expectation::Matched(_)
        }
    ));
    assert!(
        matches!(kinds[8], TestStmtKind::Expect { what: Expectation::Action(a), .. } if a.args.len() == 2)
    );
}

#[test]
fn unknown_test_statement_is_reported() {
    assert_eq!(errors("test \"t\" {\n  foo bar\n}\n")[0].code, "E0020");
}

// ------------------------------------------------------------------ errors and recovery

#[test]
fn missing_then_is_reported_at_the_offending_token() {
    let source = "rule r {\n  when subject contains \"x\" tag \"y\"\n}\n";
    let d = &errors(source)[0];
    assert_eq!(d.code, "E0015");
    assert!(
        d.message.starts_with("expected `then` after the condition"),
        "{}",
        d.message
    );
    assert_eq!(&source[d.span.start..d.span.end], "tag");
}

#[test]
fn garbage_at_top_level_is_not_a_declaration() {
    let d = &errors("rul r {}\n")[0];
    assert_eq!(d.code, "E0014");
    assert_eq!(d.span, Span::new(0, 3));
}

#[test]
fn unexpected_end_of_file() {
    assert_eq!(
        errors("rule r { when a then {\n tag \"x\"\n")[0].code,
        "E0019"
    );
}

#[test]
fn recovery_reports_several_errors_and_keeps_good_items() {
    let source = concat!(
        "let a = [1, 2\n",
        "rule good1 { then stop }\n",
        "rule bad { when x tag \"y\" }\n",
        "let in = 3\n",
        "rule good2 {\n  then stop\n}\n",
        "test \"t\" { foo }\n",
    );
    let (file, diagnostics) = parse(source, "t.flow");
    let codes: Vec<&str> = diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        ["E0001", "E0015", "E0016", "E0020"],
        "{diagnostics:#?}"
    );
    let names: Vec<&str> = file
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Rule(r) => Some(r.name.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["good1", "good2"]);
}

#[test]
fn diagnostics_render_like_rustc() {
    let source = "rule r {\n  when a = b then stop\n}\n";
    let (_, diagnostics) = parse(source, "rules.flow");
    let text = weir_grammar::diagnostic::render(&diagnostics[0], source);
    assert!(
        text.starts_with("error[E0015]: expected `then` after the condition"),
        "{text}"
    );
    assert!(text.contains("--> rules.flow:2:10"), "{text}");
    assert!(text.contains("2 |   when a = b then stop"), "{text}");
    assert!(text.contains("^ expected `then`"), "{text}");
    assert!(text.contains("= hint: compare with `==`"), "{text}");
}

#[test]
fn rendering_shows_related_locations_in_other_files() {
    let d = Diagnostic::warning(
        "W0201",
        "name `x` shadows an import",
        "a.flow",
        Span::new(4, 5),
    )
    .with_related("b.flow", Span::new(4, 5), "declared here");
    let text = weir_grammar::diagnostic::render_with(&d, "let x = 1\n", &|f| {
        (f == "b.flow").then(|| "let x = 2\n".to_string())
    });
    assert!(text.starts_with("warning[W0201]"), "{text}");
    assert!(
        text.contains("--> a.flow:1:5")
            && text.contains("b.flow:1:5")
            && text.contains("declared here"),
        "{text}"
    );
    let text = weir_grammar::diagnostic::render(&d, "let x = 1\n");
    assert!(text.contains("note: declared here (b.flow)"), "{text}");
}

#[test]
fn error_codes_are_documented() {
    for (i, (code, meaning)) in weir_grammar::codes::ALL.iter().enumerate() {
        assert_eq!(*code, format!("E{:04}", i + 1));
        assert!(!meaning.is_empty());
    }
}

#[test]
fn deep_nesting_is_reported_not_overflowing() {
    let deep = format!("let x = {}1{}\n", "(".repeat(5000), ")".repeat(5000));
    let (_, diagnostics) = parse(&deep, "t.flow");
    assert!(!diagnostics.is_empty());
    let chain = format!("let x = {}1\n", "1 + ".repeat(20000));
    let (_, diagnostics) = parse(&chain, "t.flow");
    assert_eq!(diagnostics[0].code, "E0013");
    let nots = format!("rule r {{ when {}a then stop }}", "not ".repeat(5000));
    assert!(!parse(&nots, "t.flow").1.is_empty());
}

#[test]
fn language_example_parses() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fmt/language_example.flow"
    );
    let source = std::fs::read_to_string(path).expect("the example");
    let file = ok(&source);
    assert_eq!(file.items.len(), 15);
}

#[test]
fn every_syntax_error_renders_with_a_location() {
    for source in [
        "rule r { when a then {\n",
        "let x = \"abc",
        "rule",
        "test \"t\" { message \"\"\"abc",
        "\u{e9}\u{e9} = 1",
    ] {
        for d in parse(source, "e.flow").1 {
            let text = weir_grammar::diagnostic::render(&d, source);
            assert!(text.contains("--> e.flow:"), "{text}");
        }
    }
}

/// Every span the visitor shows, to check `strip_spans` reaches them all.
#[derive(Default)]
struct Spans(Vec<weir_grammar::ast::Span>);

impl weir_grammar::visit::Visit for Spans {
    fn visit_span(&mut self, span: &weir_grammar::ast::Span) {
        self.0.push(*span);
    }
}

#[test]
fn strip_spans_empties_every_span_the_visitor_walks() {
    use weir_grammar::visit::Visit;
    let text = r#"import "stdlib/bulk"
let nets = [10.0.0.0/8]
list blocked = file "b.txt"
fn f(a: address, l: list<string>) = a.domain in l
template t { subject = "Re: ${subject}" }
rule r priority 5 {
  when subject matches /x (\d+)/ as m and not (size > 1K)
  then { if score > 1 { notify "ops" with {k: "${m[1]}"} template t } else { reject 550 "5.7.1" "no" } }
  else tag "a"
}
test "x" {
  message """Subject: x

hi"""
  envelope from "a@b" to ["c@d"]
  expect reject 550
  expect matched r
  expect score >= 1
  expect tag "a"
}
"#;
    let (mut file, diagnostics) = weir_grammar::parse(text, "t.flow");
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let mut before = Spans::default();
    before.visit_file(&file);
    assert!(before.0.len() > 50, "{} spans", before.0.len());
    assert!(before.0.iter().any(|s| s.end > 0));
    file.strip_spans();
    let mut after = Spans::default();
    after.visit_file(&file);
    assert_eq!(after.0.len(), before.0.len());
    assert!(
        after
            .0
            .iter()
            .all(|s| *s == weir_grammar::ast::Span::default())
    );
}

#[test]
fn lambdas_maps_and_under_parse() {
    assert_eq!(
        show(&cond(
            "some(attachments, a => a.name ends_with \".pdf\" and a.size > 1)"
        )),
        "some(attachments, (a => ((a.name ends_with \".pdf\") and (a.size > 1))))"
    );
    assert_eq!(
        show(&cond("every(to,\n  t =>\n  t.domain under [\"x\"])")),
        "every(to, (t => (t.domain under [\"x\"])))"
    );
    assert_eq!(show(&cond("m[\"id\"] in teams")), "(m[\"id\"] in teams)");
    let file = ok("map a = file \"a.map\"\nmap b = {\n  \"k\": \"v\",\n  \"k2\": \"v2\",\n}\n");
    let Item::Map(b) = &file.items[1] else {
        panic!("a map")
    };
    let MapSource::Literal(pairs) = &b.source else {
        panic!("a literal map")
    };
    assert_eq!(
        (pairs[1].key.as_str(), pairs[1].value.as_str()),
        ("k2", "v2")
    );
    assert!(
        matches!(&file.items[0], Item::Map(m) if matches!(&m.source, MapSource::File(p, _) if p == "a.map"))
    );
    // `map` and `under` are reserved.
    assert_eq!(errors("let map = 1\n")[0].code, "E0016");
    assert_eq!(errors("let under = 1\n")[0].code, "E0016");
}

#[test]
fn classifier_declaration_lists_its_classes() {
    let file = ok("classifier spam = learned [\"spam\", \"ham\"]\n");
    let Item::Classifier(c) = &file.items[0] else {
        panic!("not a classifier: {:?}", file.items[0]);
    };
    assert_eq!(c.name.name, "spam");
    let classes: Vec<&str> = c.classes.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(classes, ["spam", "ham"]);
}

#[test]
fn classifier_class_cannot_be_interpolated() {
    let diags = errors("classifier spam = learned [\"a${subject}\", \"b\"]\n");
    assert!(!diags.is_empty());
}

#[test]
fn member_function_call_parses() {
    assert_eq!(
        show(&cond("spam.probability(\"spam\") > 0.9")),
        "(spam.probability(\"spam\") > 0.9)"
    );
    assert_eq!(
        show(&cond("spam.class == \"spam\"")),
        "(spam.class == \"spam\")"
    );
}

#[test]
fn classify_line_in_a_test_block() {
    let file = ok("test \"t\" {\n  classify spam \"spam\" 0.97\n}\n");
    let Item::Test(t) = &file.items[0] else {
        panic!("not a test");
    };
    let TestStmtKind::Classify { name, .. } = &t.stmts[0].kind else {
        panic!("not a classify line: {:?}", t.stmts[0]);
    };
    assert_eq!(name.name, "spam");
}

#[test]
fn classifier_is_reserved() {
    assert!(!errors("let classifier = 1\n").is_empty());
}
