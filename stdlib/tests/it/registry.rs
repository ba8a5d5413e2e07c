//! The builtin registry (docs/language.md ("Expressions" to "Rules and actions")) and value helpers.

use std::sync::Arc;

use weir_stdlib::registry::{FunctionImpl, ParamType, member_value, members};
use weir_stdlib::value::fold;
use weir_stdlib::{
    Address, Attachment, Limits, Message, Stage, Transaction, Type, Value, registry,
};

#[test]
fn every_field_of_the_language_is_registered_with_its_stage() {
    let expected: &[(&str, Type, Option<Stage>)] = &[
        ("client.ip", Type::Ip, Some(Stage::Connect)),
        ("client.name", Type::String, Some(Stage::Connect)),
        ("client.port", Type::Int, Some(Stage::Connect)),
        ("helo", Type::String, Some(Stage::Helo)),
        ("auth.user", Type::String, Some(Stage::Mail)),
        ("tls", Type::Bool, Some(Stage::Mail)),
        ("envelope.from", Type::Address, Some(Stage::Mail)),
        ("envelope.to", Type::list(Type::Address), Some(Stage::Rcpt)),
        ("recipient", Type::Address, Some(Stage::Rcpt)),
        ("subject", Type::String, Some(Stage::Header)),
        ("message_id", Type::String, Some(Stage::Header)),
        ("from", Type::list(Type::Address), Some(Stage::Header)),
        ("to", Type::list(Type::Address), Some(Stage::Header)),
        ("cc", Type::list(Type::Address), Some(Stage::Header)),
        ("reply_to", Type::list(Type::Address), Some(Stage::Header)),
        ("sender", Type::list(Type::Address), Some(Stage::Header)),
        ("date", Type::Time, Some(Stage::Header)),
        ("body", Type::String, Some(Stage::Body)),
        ("body.lines", Type::String, Some(Stage::Body)),
        ("body.raw", Type::String, Some(Stage::Body)),
        ("body.html", Type::String, Some(Stage::Body)),
        (
            "attachments",
            Type::list(Type::Attachment),
            Some(Stage::Body),
        ),
        ("size", Type::Int, Some(Stage::Body)),
        ("score", Type::Float, None),
        ("now", Type::Time, Some(Stage::Connect)),
    ];
    let reg = registry();
    assert_eq!(reg.fields.len(), expected.len());
    for (path, ty, stage) in expected {
        let f = reg
            .field(path)
            .unwrap_or_else(|| panic!("missing field {path}"));
        assert_eq!(&f.ty, ty, "{path}");
        assert_eq!(&f.stage, stage, "{path}");
        assert_eq!(f.lmtp_only, *path == "recipient", "{path}");
        assert_eq!(f.get.is_none(), *path == "score", "{path}");
        assert!(!f.doc.is_empty());
    }
}

fn transaction() -> Transaction {
    let raw = "From: Boss <boss+x@Example.com>\r\nTo: a@y\r\nCc: c@z\r\nSubject: Hi\r\nMessage-ID: <id@h>\r\n\
               Date: Sun, 22 Nov 2026 07:00:00 +0000\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
               --b\r\nContent-Type: text/html\r\n\r\n<p>Hello</p>\r\n--b\r\nContent-Type: application/pdf\r\n\
               Content-Disposition: attachment; filename=x.pdf\r\n\r\nPDF\r\n--b--\r\n";
    let m = Message::parse(raw.as_bytes(), &Limits::default()).expect("parse");
    Transaction::with_defaults(m, None, &[], None, Some("mx.example"), 1_795_330_800)
}

fn get(tx: &Transaction, path: &str) -> Value {
    let f = registry().field(path).unwrap_or_else(|| panic!("{path}"));
    (f.get.unwrap_or_else(|| panic!("{path} has no getter")))(tx)
}

#[test]
fn field_getters_read_the_transaction() {
    let tx = transaction();
    assert_eq!(get(&tx, "subject").to_text(), "Hi");
    assert_eq!(get(&tx, "message_id").to_text(), "id@h");
    assert_eq!(get(&tx, "from").to_text(), "boss+x@Example.com");
    assert_eq!(get(&tx, "envelope.from").to_text(), "boss+x@Example.com");
    assert_eq!(get(&tx, "envelope.to").to_text(), "a@y, c@z");
    assert_eq!(get(&tx, "recipient").to_text(), "a@y");
    assert_eq!(get(&tx, "helo").to_text(), "mx.example");
    assert_eq!(get(&tx, "client.ip").to_text(), "127.0.0.1");
    assert_eq!(get(&tx, "date").to_text(), "2026-11-22T07:00:00Z");
    assert_eq!(get(&tx, "now").to_text(), "2026-11-22T07:00:00Z");
    assert_eq!(get(&tx, "body").to_text(), "Hello");
    assert_eq!(get(&tx, "body.html").to_text(), "<p>Hello</p>");
    assert_eq!(get(&tx, "body.lines").to_text(), "Hello");
    assert!(
        get(&tx, "body.raw")
            .to_text()
            .starts_with("--b\r\nContent-Type: text/html\r\n\r\n<p>Hello</p>\r\n--b\r\n")
    );
    assert_eq!(get(&tx, "attachments").to_text(), "x.pdf");
    assert_eq!(get(&tx, "size").as_f64(), Some(tx.message.size() as f64));
    assert_eq!(get(&tx, "tls").as_bool(), Some(false));
}

#[test]
fn missing_date_is_now() {
    let m = Message::parse(b"Subject: x\n\ny", &Limits::default()).expect("parse");
    let tx = Transaction::with_defaults(m, None, &[], None, None, 1000);
    assert!(matches!(get(&tx, "date"), Value::Time(1000, _)));
}

#[test]
fn members_of_addresses_attachments_times_and_lists() {
    let tx = transaction();
    let from = get(&tx, "from");
    let first = from
        .as_list()
        .and_then(|l| l.first())
        .cloned()
        .expect("one From");
    let member = |v: &Value, m: &str| member_value(v, m).map(|v| v.to_text());
    assert_eq!(member(&first, "local").as_deref(), Some("boss+x"));
    assert_eq!(member(&first, "domain").as_deref(), Some("Example.com"));
    assert_eq!(member(&first, "detail").as_deref(), Some("x"));
    assert_eq!(member(&first, "name").as_deref(), Some("Boss"));
    assert_eq!(member(&first, "nope"), None);
    assert_eq!(member(&from, "domain").as_deref(), Some("Example.com"));
    let att = Value::Attachment(Arc::new(Attachment {
        name: "a.exe".into(),
        content_type: "application/x".into(),
        size: 7,
        archive: "bundle.zip".into(),
        encrypted: true,
    }));
    assert_eq!(member(&att, "archive").as_deref(), Some("bundle.zip"));
    assert!(matches!(
        member_value(&att, "encrypted"),
        Some(Value::Bool(true))
    ));
    assert_eq!(member(&att, "type").as_deref(), Some("application/x"));
    assert!(matches!(member_value(&att, "size"), Some(Value::Int(7))));
    // 2026-11-22 is a Sunday.
    let t = Value::utc(1_795_330_800 + 3_600 * 5 + 60 * 7 + 9);
    assert_eq!(member(&t, "hour").as_deref(), Some("12"));
    assert_eq!(member(&t, "minute").as_deref(), Some("7"));
    assert_eq!(member(&t, "second").as_deref(), Some("9"));
    assert_eq!(member(&t, "weekday").as_deref(), Some("sunday"));
    assert_eq!(member(&t, "year").as_deref(), Some("2026"));
    assert_eq!(
        member(&Value::utc(0), "weekday").as_deref(),
        Some("thursday")
    );
    assert_eq!(
        member(&Value::Duration(5400), "hours").as_deref(),
        Some("1.5")
    );

    let names: Vec<_> = members(&Type::Address)
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    assert_eq!(names, ["address", "local", "domain", "detail", "name"]);
    let att_members = members(&Type::list(Type::Attachment));
    assert!(att_members.contains(&("size", Type::list(Type::Int), att_members[2].2)));
    assert!(
        members(&Type::Time)
            .iter()
            .any(|(n, t, _)| *n == "weekday" && *t == Type::String)
    );
}

fn call(name: &str, args: &[Value]) -> Value {
    let f = registry()
        .function(name)
        .unwrap_or_else(|| panic!("{name}"));
    match f.imp {
        FunctionImpl::Pure(imp) => imp(args),
        _ => panic!("{name} is not pure"),
    }
}

#[test]
fn pure_functions() {
    let list = Value::list(vec![Value::str("a"), Value::str("b")]);
    assert!(matches!(
        call("count", std::slice::from_ref(&list)),
        Value::Int(2)
    ));
    assert!(matches!(call("len", &[Value::str("héllo")]), Value::Int(5)));
    let resent = Value::list(vec![
        Value::str("\"Lists, Bot\" <bot@lists.example.net>"),
        Value::str("G: a+x@y.example, =?utf-8?q?Caf=C3=A9?= <b@z.example>;"),
        Value::str("not an address"),
    ]);
    let found = call("addresses", std::slice::from_ref(&resent));
    assert_eq!(
        found.to_text(),
        "bot@lists.example.net, a+x@y.example, b@z.example"
    );
    let parts = member_value(&found, "name").expect("name");
    assert_eq!(parts.to_text(), "Lists, Bot, , Café");
    assert_eq!(call("addresses", &[Value::list(vec![])]).to_text(), "");
    assert_eq!(call("lower", &[Value::str("ÀB")]).to_text(), "àb");
    assert_eq!(call("upper", &[Value::str("àb")]).to_text(), "ÀB");
    assert_eq!(call("trim", &[Value::str("  x \n")]).to_text(), "x");
    assert_eq!(
        call("split", &[Value::str("a,b,,c"), Value::str(",")]).to_text(),
        "a, b, , c"
    );
    assert_eq!(
        call("join", &[list.clone(), Value::str("+")]).to_text(),
        "a+b"
    );
    assert_eq!(
        call(
            "replace",
            &[
                Value::str("[EXT] hi [EXT]"),
                Value::str("[EXT] "),
                Value::str("")
            ]
        )
        .to_text(),
        "hi [EXT]"
    );
    assert_eq!(call("first", &[list]).to_text(), "a");
    assert_eq!(call("first", &[Value::list(vec![])]).to_text(), "");
    assert_eq!(call("number", &[Value::str(" 5.5 ")]).to_text(), "5.5");
    assert_eq!(call("number", &[Value::str("five")]).to_text(), "0");
    assert_eq!(
        call("max", &[Value::Int(3), Value::Float(2.5)]).to_text(),
        "3"
    );
    assert_eq!(
        call("min", &[Value::Int(3), Value::Float(2.5)]).to_text(),
        "2.5"
    );
    // Wrong arguments never panic.
    for f in &registry().functions {
        if let FunctionImpl::Pure(imp) = f.imp {
            let _ = imp(&[]);
            let _ = imp(&[Value::Bool(true), Value::Int(1), Value::utc(0)]);
        }
    }
}

#[test]
fn special_functions_and_actions() {
    let reg = registry();
    let header = reg.function("header").expect("header");
    assert!(matches!(header.imp, FunctionImpl::Header));
    assert_eq!(header.stage, Stage::Header);
    assert_eq!(header.ret, Type::list(Type::String));
    assert!(matches!(
        reg.function("rate").map(|f| f.imp),
        Some(FunctionImpl::Rate)
    ));
    let matched = reg.function("matched").expect("matched");
    assert!(matches!(matched.imp, FunctionImpl::Matched));
    assert_eq!(matched.params, [ParamType::RuleName]);

    let verdicts = ["accept", "reject", "tempfail", "discard", "quarantine"];
    let others = [
        "add_header",
        "set_header",
        "remove_header",
        "prepend_subject",
        "add_rcpt",
        "remove_rcpt",
        "redirect",
        "fileinto",
        "flag",
        "keep",
        "tag",
        "score",
        "notify",
        "reply",
        "log",
        "stop",
    ];
    assert_eq!(reg.actions.len(), verdicts.len() + others.len());
    for name in verdicts {
        assert_eq!(reg.action(name).map(|a| a.verdict), Some(true), "{name}");
    }
    for name in others {
        let a = reg.action(name).unwrap_or_else(|| panic!("{name}"));
        assert!(!a.verdict, "{name}");
        assert_eq!(a.lmtp_only, name == "flag", "{name}");
    }
}

#[test]
fn to_text_renders_like_interpolation() {
    assert_eq!(Value::Float(9.5).to_text(), "9.5");
    assert_eq!(Value::Float(8.0).to_text(), "8");
    assert_eq!(Value::Float(-0.25).to_text(), "-0.25");
    assert_eq!(Value::Int(-3).to_text(), "-3");
    assert_eq!(Value::utc(1_795_330_800).to_text(), "2026-11-22T07:00:00Z");
    assert_eq!(Value::Duration(300).to_text(), "5m");
    assert_eq!(Value::Duration(90).to_text(), "90s");
    assert_eq!(Value::Duration(7 * 86_400).to_text(), "7d");
    assert_eq!(Value::Duration(-7_200).to_text(), "-2h");
    assert_eq!(Value::Duration(0).to_text(), "0s");
    assert_eq!(
        Value::Cidr("10.0.0.0".parse().unwrap(), 8).to_text(),
        "10.0.0.0/8"
    );
    assert_eq!(
        Value::Ip("2001:db8::1".parse().unwrap()).to_text(),
        "2001:db8::1"
    );
    assert_eq!(
        Value::address(Address::parse("Jane <j@x>")).to_text(),
        "j@x"
    );
    assert_eq!(
        Value::list(vec![Value::Int(1), Value::str("b")]).to_text(),
        "1, b"
    );
    assert_eq!(Value::Bool(true).to_text(), "true");
}

#[test]
fn fold_ignores_case() {
    assert_eq!(fold("Example.COM"), "example.com");
    assert_eq!(fold("ΣΊΣΥΦΟΣ"), fold("σίσυφος"));
    assert_eq!(fold("Straße"), "straße");
    assert_eq!(fold("ÉCOLE"), "école");
}

proptest::proptest! {
    /// The bulk path for ASCII runs folds exactly as the definition does,
    /// one character at a time, whatever the mix of scripts.
    #[test]
    fn fold_is_the_per_character_folding(s in "([A-Za-z0-9 .]{0,12}|[ÀÉÎßΣςİДжK€😀]{0,4}){0,8}") {
        let one_by_one: String = s
            .chars()
            .flat_map(|c| match c {
                'ς' => 'σ'.to_lowercase(),
                c => c.to_lowercase(),
            })
            .collect();
        proptest::prop_assert_eq!(fold(&s), one_by_one);
    }
}
