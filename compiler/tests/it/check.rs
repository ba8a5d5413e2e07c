//! Name resolution, scoping and checking rules (docs/language.md ("Declarations" to "Rules and actions")) seen
//! through `compile`: which programs are refused, with which codes.

use crate::common::*;

fn file_codes(files: &[(&str, &str)]) -> Vec<(String, &'static str)> {
    compile_files(files)
        .diagnostics
        .iter()
        .map(|d| (d.file.clone(), d.code))
        .collect()
}

#[test]
fn errors_mean_no_ruleset_and_warnings_do_not() {
    let bad = compile_files(&[(
        "r.flow",
        "rule r {\n  when subjct == \"x\"\n  then tag \"x\"\n}\n",
    )]);
    assert!(bad.has_errors() && bad.ruleset.is_none());
    let warned = compile_files(&[("r.flow", "let unused = 1\nrule r {\n  then tag \"x\"\n}\n")]);
    assert!(!warned.has_errors() && warned.ruleset.is_some());
    assert_eq!(warned.diagnostics[0].code, "W0203");
}

#[test]
fn imports_are_not_transitive() {
    let files = [
        (
            "main.flow",
            "import \"a\"\nrule r {\n  when from.domain in from_c\n  then tag \"x\"\n}\n",
        ),
        (
            "a.flow",
            "import \"c\"\nrule ra {\n  when from.domain in from_c\n  then tag \"a\"\n}\n",
        ),
        ("c.flow", "let from_c = [\"x.org\"]\n"),
    ];
    assert_eq!(file_codes(&files), [("main.flow".to_string(), "E0102")]);
}

#[test]
fn cycles_name_the_files() {
    let c = compile_files(&[("a.flow", "import \"b\"\n"), ("b.flow", "import \"a\"\n")]);
    assert_eq!(c.diagnostics.len(), 1);
    assert_eq!(c.diagnostics[0].code, "E0101");
    assert!(
        c.diagnostics[0]
            .message
            .contains("`a.flow` -> `b.flow` -> `a.flow`"),
        "{}",
        c.diagnostics[0].message
    );
}

#[test]
fn every_error_of_every_file_is_reported_sorted() {
    let files = [
        (
            "main.flow",
            "import \"lib\"\nrule r {\n  when subjct == 1\n  then tagg \"x\"\n}\nrule s {\n  then reject 450\n}\n",
        ),
        (
            "lib.flow",
            "fn f() = size + \"x\"\nrule t {\n  when f()\n  then tag \"t\"\n}\n",
        ),
    ];
    let c = compile_files(&files);
    let got: Vec<(&str, &str)> = c
        .diagnostics
        .iter()
        .map(|d| (d.file.as_str(), d.code))
        .collect();
    assert_eq!(
        got,
        [
            ("lib.flow", "E0108"),
            ("main.flow", "E0102"),
            ("main.flow", "E0116"),
            ("main.flow", "E0118")
        ]
    );
}

#[test]
fn local_names_shadow_imports_with_a_warning() {
    let files = [
        (
            "main.flow",
            "import \"lib\"\nlet vip = [\"b@b.b\"]\nrule r {\n  when from.address in vip\n  then tag \"x\"\n}\n",
        ),
        (
            "lib.flow",
            "let vip = [\"a@a.a\"]\nrule uses {\n  when from.address in vip\n  then tag \"y\"\n}\n",
        ),
    ];
    let c = compile_files(&files);
    assert!(!c.has_errors(), "{}", rendered(&c));
    assert_eq!(
        c.diagnostics.iter().map(|d| d.code).collect::<Vec<_>>(),
        ["W0202"]
    );
    let r = c.ruleset.expect("ruleset");
    assert_eq!(decide(&r, &mail("From: b@b.b", "x")).tags, ["x"]);
    assert_eq!(decide(&r, &mail("From: a@a.a", "x")).tags, ["y"]);
}

#[test]
fn stdlib_declarations_never_warn_unused() {
    let c = compile_files(&[(
        "r.flow",
        "import \"stdlib/bulk\"\nimport \"stdlib/auth\"\nlet trusted_authserv = [\"mx\"]\nrule r {\n  then tag \"x\"\n}\n",
    )]);
    assert!(
        c.diagnostics.iter().all(|d| !d.file.starts_with("stdlib/")),
        "{}",
        rendered(&c)
    );
}

#[test]
fn matched_must_refer_to_an_earlier_rule() {
    assert_eq!(
        codes("rule a {\n  when matched(b)\n  then tag \"a\"\n}\nrule b {\n  then tag \"b\"\n}\n"),
        ["E0114"]
    );
    assert_eq!(
        codes("rule a {\n  when matched(a)\n  then tag \"a\"\n}\n"),
        ["E0114"]
    );
    assert!(codes("rule b priority 1 {\n  then tag \"b\"\n}\nrule a {\n  when matched(b)\n  then tag \"a\"\n}\n").is_empty());
}

#[test]
fn type_rules_of_comparisons() {
    let ok = [
        "to.domain == \"x\"",
        "envelope.from == \"a@b\"",
        "size > 1.5",
        "now - date > 1h",
        "client.ip in [10.0.0.0/8, 192.0.2.1]",
        "count(to) in [1, 2]",
        "header(\"X\") exists",
        "subject matches /x/ as m",
        "all to.address ends_with \".org\"",
        "score >= 8",
    ];
    for cond in ok {
        let src = format!("rule r {{\n  when {cond}\n  then tag \"x\"\n}}\n");
        assert!(codes(&src).is_empty(), "{cond}: {:?}", codes(&src));
    }
    let bad = [
        "subject > 3",
        "size contains \"x\"",
        "subject in \"x\"",
        "client.ip == \"1.2.3.4\"",
        "now - date > 5",
        "subject matches \"x\"",
        "subject",
        "to exists and size",
        "subject + 1 == \"x\"",
    ];
    for cond in bad {
        let src = format!("rule r {{\n  when {cond}\n  then tag \"x\"\n}}\n");
        assert_eq!(codes(&src), ["E0108"], "{cond}");
    }
}

#[test]
fn verdict_must_end_its_block() {
    assert_eq!(
        codes("rule r {\n  then {\n    stop\n    tag \"x\"\n  }\n}\n"),
        ["E0120"]
    );
    assert!(codes("rule r {\n  then {\n    if size > 1 { reject } else { tag \"x\" }\n    tag \"y\"\n  }\n}\n").is_empty());
}

#[test]
fn verdict_inside_if_does_not_make_later_rules_unreachable() {
    assert!(codes("rule r {\n  then {\n    if size > 1 { reject }\n  }\n}\nrule s {\n  then tag \"y\"\n}\n").is_empty());
    assert_eq!(
        codes("rule r {\n  when true\n  then discard\n}\nrule s {\n  then tag \"y\"\n}\n"),
        ["W0201"]
    );
    assert!(
        codes("rule r shadow {\n  then discard\n}\nrule s {\n  then tag \"y\"\n}\n").is_empty()
    );
}

#[test]
fn a_missing_entry_file_is_an_error() {
    let c = compile_files(&[("other.flow", "")]);
    let c2 = weir_compiler::compile(
        std::path::Path::new("missing.flow"),
        &weir_compiler::MemoryLoader::<weir_compiler::FsLoader>::new(),
    );
    assert!(!c.has_errors());
    assert_eq!(c2.diagnostics[0].code, "E0100");
    assert!(c2.ruleset.is_none());
}

#[test]
fn rule_info_carries_location() {
    let r = rules("\n\nrule r priority 7 shadow {\n  then tag \"x\"\n}\n");
    let info = &r.rules()[0];
    assert_eq!(
        (
            info.name.as_str(),
            info.priority,
            info.shadow,
            info.file.as_str(),
            info.line
        ),
        ("r", 7, true, "rules.flow", 3)
    );
    assert_eq!(info.span.start, 2);
}

#[test]
fn stdlib_spam_needs_trusted_authserv_through_stdlib_auth() {
    let c = compile_files(&[(
        "r.flow",
        "import \"stdlib/spam\"\nrule r {\n  then tag \"x\"\n}\n",
    )]);
    let errors: Vec<_> = c.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{}", rendered(&c));
    assert_eq!(
        (errors[0].code, errors[0].file.as_str()),
        ("E0102", "r.flow")
    );
    assert!(
        errors[0]
            .message
            .contains("`stdlib/spam` needs `trusted_authserv`"),
        "{}",
        rendered(&c)
    );
    // Declared by a file that imports the module through another file.
    let c = compile_files(&[
        (
            "r.flow",
            "import \"lib.flow\"\nrule r {\n  when spam_flag()\n  then tag \"x\"\n}\n",
        ),
        (
            "lib.flow",
            "import \"stdlib/auth\"\nlet trusted_authserv = [\"mx\"]\nfn spam_flag() = dmarc_fail()\n",
        ),
    ]);
    assert!(
        c.diagnostics.iter().all(|d| !d.is_error()),
        "{}",
        rendered(&c)
    );
}

#[test]
fn dotted_members_are_properties_of_authentication_results_only() {
    let c = compile_files(&[(
        "r.flow",
        "rule r {\n  when auth_results([\"mx\"]).header.from == \"x.example\"\n    and auth_results([\"mx\"])[0].smtp.mailfrom == \"\"\n  then tag \"x\"\n}\n",
    )]);
    assert!(
        c.diagnostics.iter().all(|d| !d.is_error()),
        "{}",
        rendered(&c)
    );
    let c = compile_files(&[(
        "r.flow",
        "rule r {\n  when from.header.from == \"x\"\n  then tag \"x\"\n}\n",
    )]);
    assert!(
        c.diagnostics.iter().any(|d| d.code == "E0109"),
        "{}",
        rendered(&c)
    );
}
