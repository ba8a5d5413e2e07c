//! Property tests: the parser never panics, and on generated valid files
//! the formatter is idempotent and preserves meaning.

use proptest::prelude::*;
use weir_grammar::keywords::RESERVED;
use weir_grammar::{format::format, parse};

fn operand() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("subject".to_string()),
        Just("envelope.from.domain".to_string()),
        Just("header(\"X-A\")".to_string()),
        Just("m[1]".to_string()),
        Just("count(to)".to_string()),
        Just("10K".to_string()),
        Just("5m".to_string()),
        Just("2.5".to_string()),
        Just("-3".to_string()),
        Just("192.0.2.0/24".to_string()),
        Just("\"a ${subject} \\\"q\\\" # not a comment\"".to_string()),
        Just("[\"x\", \"y\"]".to_string()),
        Just("[\n  \"x\",\n\n  \"y\"]".to_string()),
        Just("/a\\/b #c/i".to_string()),
        "[a-z]{1,6}".prop_filter("not reserved", |s| !RESERVED.contains(&s.as_str())),
    ];
    leaf.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone(), prop::bool::ANY)
                .prop_map(|(a, b, plus)| format!("{a} {} {b}", if plus { "+" } else { "-" })),
            inner.prop_map(|a| format!("({a})")),
        ]
    })
}

fn atom() -> impl Strategy<Value = String> {
    let op = prop::sample::select(vec![
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "contains",
        "starts_with",
        "ends_with",
        "in",
        "contains any",
        "matches",
    ]);
    let compare = (operand(), op, operand(), prop::bool::ANY).prop_map(|(a, op, b, all)| {
        format!(
            "{}{a} {op} {b}",
            if all && op == "in" { "all " } else { "" }
        )
    });
    let leaf = prop_oneof![
        compare,
        operand().prop_map(|a| format!("{a} exists")),
        Just("is_bulk()".to_string()),
        Just("subject matches /(\\d+)/ as m".to_string()),
        Just("true".to_string()),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|a| format!("not {a}")),
            inner.clone().prop_map(|a| format!("(\n{a}\n)")),
            (inner.clone(), inner, prop::bool::ANY, 0..3usize).prop_map(|(a, b, or, layout)| {
                let op = if or { "or" } else { "and" };
                match layout {
                    0 => format!("{a} {op} {b}"),
                    1 => format!("{a}\n      {op} {b}"),
                    _ => format!("{a} {op}   # why\n  {b}"),
                }
            }),
        ]
    })
}

fn action() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "tag \"t\"",
        "score +2",
        "score -1.5",
        "add_header \"X-T\" m[1]",
        "notify \"c\" with {text: \"hi ${subject}\", n: 1} template ack",
        "notify \"c\" with {\n      text: \"hi\",   # why\n      n: [1,\n 2]\n    }",
        "reply template ack",
        "fileinto \"A/B\"",
        "stop",
        "reject 550 \"5.7.1\" \"no\"",
    ])
    .prop_map(str::to_string)
}

fn block() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((action(), 0..4usize), 1..4),
        0..3usize,
    )
        .prop_map(|(actions, style)| {
            if actions.len() == 1 && style == 0 {
                return actions[0].0.clone();
            }
            let mut out = String::from("{");
            for (a, sep) in actions {
                out.push_str(match sep {
                    0 => "\n    ",
                    1 => "; ",
                    2 => "\n\n    # note\n    ",
                    _ => "   # trailing\n    ",
                });
                out.push_str(&a);
            }
            out.push_str(if style == 2 { " }" } else { "\n  }" });
            out
        })
}

fn rule() -> impl Strategy<Value = String> {
    (
        "[a-z]{1,4}_r",
        prop::option::of(0..500i64),
        prop::bool::ANY,
        prop::option::of(atom()),
        block(),
        prop::option::of(block()),
        prop::bool::ANY,
    )
        .prop_map(|(name, priority, shadow, when, then, otherwise, oneline)| {
            let mut out = format!("rule {name}");
            if let Some(p) = priority {
                out.push_str(&format!(" priority {p}"));
            }
            if shadow {
                out.push_str(" shadow");
            }
            out.push_str(" {\n");
            if let Some(w) = &when {
                out.push_str(&format!("  when {w}\n"));
            }
            out.push_str(&format!(
                "  then{}{then}\n",
                if oneline { " " } else { "\n    " }
            ));
            if let (Some(o), Some(_)) = (otherwise, &when) {
                out.push_str(&format!("  else {o}\n"));
            }
            out.push('}');
            out
        })
}

fn item() -> impl Strategy<Value = String> {
    prop_oneof![
        rule(),
        operand().prop_map(|v| format!("let k = {v}   # value")),
        Just("import \"stdlib/bulk\"".to_string()),
        Just("list blocked = file \"lists/b.txt\"".to_string()),
        atom().prop_map(|b| format!("fn f(a: address, l: list<string>) = {}", b.replace("   # why\n", " ").replace('\n', " "))),
        atom().prop_map(|b| format!("fn g() = (\n{b}\n)")),
        operand().prop_map(|v| format!("let l = [\n  {v},   # first\n\n  [{v}]\n  # last\n]")),
        (atom(), atom()).prop_map(|(a, b)| format!("let c = {} or\n  {}", a.replace("   # why\n", " ").replace('\n', " "), b.replace("   # why\n", " ").replace('\n', " "))),
        Just("template ack {\n  subject = \"Re: ${subject}\"\n  body = \"\"\"\n    Hi ${from.name}\n\n      x\n    \"\"\"\n}".to_string()),
        Just("test \"t\" {\n  message \"m.eml\"\n  envelope from \"a@b\" to [\"c@d\"]\n  expect not tag \"x\"\n  expect score >= 8\n}".to_string()),
        Just("# a full-line comment".to_string()),
    ]
}

fn file() -> impl Strategy<Value = String> {
    prop::collection::vec((item(), 0..3usize), 1..6).prop_map(|items| {
        let mut out = String::new();
        for (item, blank) in items {
            out.push_str(&item);
            out.push_str(["\n", "\n\n", "\n\n\n"][blank]);
        }
        out
    })
}

fn meaning(source: &str) -> weir_grammar::ast::File {
    let (mut file, diagnostics) = parse(source, "p.flow");
    assert!(diagnostics.is_empty(), "{source}\n{diagnostics:#?}");
    file.strip_spans();
    file
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        for d in parse(&text, "p.flow").1 {
            let rendered = weir_grammar::diagnostic::render(&d, &text);
            prop_assert!(rendered.contains("--> p.flow:"), "{}", rendered);
        }
        let _ = format(&text, "p.flow");
    }

    #[test]
    fn parse_never_panics_on_flow_like_token_soup(tokens in prop::collection::vec(prop::sample::select(vec![
        "rule", "r", "{", "}", "when", "then", "else", "if", "and", "or", "not", "(", ")", "[", "]", ",", ";", "\n",
        "\"s\"", "\"\"\"", "${", "/x/", "1", "10K", "::1", "# c", "==", "in", "all", "any", "as", "m", "let", "=",
        "test", "expect", "message", "with", ":", "template", ".", "-", "+", "exists", "\\",
    ]), 0..60)) {
        let text = tokens.join(" ");
        let _ = parse(&text, "p.flow");
        if let Ok(once) = format(&text, "p.flow") {
            prop_assert_eq!(format(&once, "p.flow").ok(), Some(once.clone()));
        }
    }

    #[test]
    fn parse_never_panics_on_mutated_valid_files(source in file(), at in any::<prop::sample::Index>(), cut in 0..8usize, insert in "\\PC{0,3}") {
        let mut at = at.index(source.len() + 1);
        while !source.is_char_boundary(at) { at -= 1; }
        let mut end = (at + cut).min(source.len());
        while !source.is_char_boundary(end) { end -= 1; }
        let mutated = format!("{}{}{}", &source[..at], insert, &source[end.max(at)..]);
        let _ = parse(&mutated, "p.flow");
        if let Ok(once) = format(&mutated, "p.flow") {
            prop_assert_eq!(format(&once, "p.flow").ok(), Some(once.clone()));
        }
    }

    #[test]
    fn formatting_generated_files_is_idempotent_and_preserves_meaning(source in file()) {
        let once = format(&source, "p.flow").map_err(|d| TestCaseError::fail(format!("{source}\n{d:#?}")))?;
        let twice = format(&once, "p.flow").map_err(|d| TestCaseError::fail(format!("{once}\n{d:#?}")))?;
        prop_assert_eq!(&once, &twice, "not idempotent for\n{}", source);
        prop_assert_eq!(meaning(&source), meaning(&once), "meaning changed:\n{}\n---\n{}", source, once);
        prop_assert_eq!(once.matches('#').count(), source.matches('#').count(), "comments lost");
    }
}
