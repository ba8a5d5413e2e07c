use super::*;

fn strings(script: &Script) -> Vec<String> {
    let mut out = Vec::new();
    for c in &script.commands {
        for a in &c.args.args {
            match a {
                Argument::Str(s) => out.push(s.value.clone()),
                Argument::List(l, _) => out.extend(l.iter().map(|s| s.value.clone())),
                _ => {}
            }
        }
    }
    out
}

#[test]
fn every_lexical_form_parses() {
    let src = "require [\"fileinto\", \"body\"]; # a comment\r\n\
               /* a bracket\n comment */ IF size :OVER 10K { fileinto \"a\\\"b\\\\c\\d\"; }\n\
               elsif anyof (not exists \"x\", true) { stop; }\n\
               else { reject text: # note\n  line one\n..dot\n.\n; }";
    let script = parse(src).unwrap();
    assert_eq!(script.commands.len(), 4);
    assert_eq!(script.commands[1].name, "if");
    let test = &script.commands[1].args.tests[0];
    assert_eq!(
        test.args.args[0],
        Argument::Tag("over".into(), test.args.args[0].span())
    );
    assert!(matches!(test.args.args[1], Argument::Number(10240, _)));
    let block = script.commands[1].block.as_ref().unwrap();
    assert_eq!(
        strings(&Script {
            commands: block.clone()
        }),
        vec!["a\"b\\cd"]
    );
    let anyof = &script.commands[2].args.tests[0];
    assert_eq!(anyof.args.tests.len(), 2);
    assert_eq!(anyof.args.tests[0].args.tests[0].name, "exists");
    let reject = &script.commands[3].block.as_ref().unwrap()[0];
    assert_eq!(
        strings(&Script {
            commands: vec![reject.clone()]
        }),
        vec!["  line one\n.dot\n"]
    );
}

#[test]
fn numbers_take_quantifiers_and_saturate() {
    let s = parse("size :under 2g; size :over 99999999999999999999999;").unwrap();
    assert!(matches!(
        s.commands[0].args.args[1],
        Argument::Number(2147483648, _)
    ));
    assert!(matches!(
        s.commands[1].args.args[1],
        Argument::Number(u64::MAX, _)
    ));
}

#[test]
fn errors_give_line_and_column() {
    let e = parse("require \"x\";\nif header :is \"a\" \"b\" {\n  keep\n}\n").unwrap_err();
    assert_eq!((e.line, e.column), (4, 1), "{e}");
    assert!(e.message.contains("`;`"), "{e}");
    let e = parse("fileinto \"open").unwrap_err();
    assert_eq!((e.line, e.column), (1, 10), "{e}");
    let e = parse("keep; /* never closed").unwrap_err();
    assert_eq!(e.line, 1, "{e}");
}

#[test]
fn a_multiline_string_may_end_the_file() {
    let s = parse("vacation text:\nhi\n.").unwrap_err();
    assert_eq!(s.line, 3, "a command still needs its `;`: {s}");
    let s = parse("vacation text:\nhi\n.\n;").unwrap();
    assert_eq!(strings(&s), vec!["hi\n"]);
}
