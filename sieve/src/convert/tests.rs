//! The converter's choices, one construct at a time (whole scripts are in
//! `tests/sieve/`, compared with Pigeonhole by the daemon's tests).

fn convert(script: &str) -> crate::Conversion {
    let include = |name: &str| match name {
        "common" => Some((
            "common.sieve".to_string(),
            "require \"fileinto\";\nif exists \"X-Common\" { fileinto \"Common\"; }\n".to_string(),
        )),
        "loop" => Some((
            "loop.sieve".to_string(),
            "require \"include\";\ninclude \"loop\";\n".to_string(),
        )),
        _ => None,
    };
    crate::import(script, "t.sieve", &include).unwrap()
}

fn lossy(c: &crate::Conversion) -> Vec<String> {
    c.notes
        .iter()
        .filter(|n| n.lossy)
        .map(|n| n.to_string())
        .collect()
}

#[test]
fn a_redirect_after_a_delivery_keeps_the_local_copy() {
    let c = convert("require \"fileinto\";\nfileinto \"A\";\nredirect \"x@example.com\";\n");
    assert!(c.flow.contains("add_rcpt \"x@example.com\""), "{}", c.flow);
    assert!(c.exact(), "{:?}", lossy(&c));
    let c = convert("redirect \"x@example.com\";\n");
    assert!(c.flow.contains("redirect \"x@example.com\""), "{}", c.flow);
}

#[test]
fn captures_bind_only_in_a_rules_condition() {
    let c = convert(
        "require [\"variables\", \"imap4flags\"];\nif header :matches \"Subject\" \"a*\" { addflag \"${1}\"; }\n",
    );
    assert!(c.flow.contains("matches /^a(.*?)$/is as m"), "{}", c.flow);
    assert!(
        c.flow.contains("flag m[1]") || c.flow.contains("flag \"${m[1]}\""),
        "{}",
        c.flow
    );
    let c = convert(
        "require [\"variables\", \"imap4flags\"];\nif true { } elsif header :matches \"Subject\" \"a*\" { addflag \"${1}\"; }\n",
    );
    assert_eq!(lossy(&c).len(), 1, "{}", c.flow);
    assert!(
        lossy(&c)[0].contains("t.sieve:2:60: not converted: match variable ${1}"),
        "{:?}",
        lossy(&c)
    );
    let c = convert(
        "require [\"variables\", \"imap4flags\"];\nif anyof (header :matches \"Subject\" \"a*\", true) { addflag \"${1}\"; }\n",
    );
    assert!(!c.exact());
    assert!(
        c.flow
            .contains("# not converted: t.sieve:2:4: match variables"),
        "{}",
        c.flow
    );
}

#[test]
fn flags_are_added_never_removed() {
    let c = convert("require \"imap4flags\";\nremoveflag \"b\";\nsetflag \"\\\\Seen a\";\n");
    assert!(c.exact(), "{:?}", lossy(&c));
    assert!(
        c.flow.contains("flag \"\\\\Seen\"") && c.flow.contains("flag \"a\""),
        "{}",
        c.flow
    );
    let c = convert("require \"imap4flags\";\naddflag \"a\";\nsetflag \"b\";\n");
    assert!(lossy(&c)[0].contains("setflag"), "{:?}", lossy(&c));
    // What may be set is known: a superset is added, the others removed.
    let c =
        convert("require \"imap4flags\";\naddflag \"A\";\nsetflag \"a b\";\nremoveflag \"c\";\n");
    assert!(c.exact(), "{:?}", lossy(&c));
    let c = convert("require \"imap4flags\";\nif true { addflag \"a\"; }\nremoveflag \"a\";\n");
    assert!(lossy(&c)[0].contains("removeflag"), "{:?}", lossy(&c));
}

#[test]
fn includes_are_inlined_once() {
    let c = convert(
        "require \"include\";\ninclude \"common\";\ninclude :once \"common\";\ninclude \"loop\";\n",
    );
    assert!(c.flow.contains("fileinto \"Common\""), "{}", c.flow);
    assert_eq!(c.flow.matches("fileinto \"Common\"").count(), 1);
    let missing = crate::import("include \"absent\";\n", "t.sieve", &|_| None).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "t.sieve:1: include \"absent\": the script cannot be read"
    );
    let optional = crate::import("include :optional \"absent\";\n", "t.sieve", &|_| None).unwrap();
    assert!(optional.exact());
}

#[test]
fn variables_set_in_a_branch_are_not_read_after_it() {
    let c = convert(
        "require [\"variables\", \"fileinto\"];\nif true { set \"f\" \"A\"; }\nfileinto \"${f}\";\n",
    );
    assert!(lossy(&c)[0].contains("variable ${f}"), "{:?}", lossy(&c));
    let c = convert(
        "require [\"variables\", \"fileinto\"];\nset :upper \"f\" \"a\";\nfileinto \"x${f}\";\n",
    );
    assert!(c.flow.contains("fileinto \"xA\""), "{}", c.flow);
}

#[test]
fn without_variables_a_dollar_is_text() {
    let c = convert("require \"fileinto\";\nfileinto \"${x}\";\n");
    assert!(c.flow.contains("fileinto \"\\${x}\""), "{}", c.flow);
}

#[test]
fn names_are_flow_identifiers_and_unique() {
    let c = convert(
        "# rule:[2 Spam & Ham]\nkeep;\n# rule:[2 spam ham]\nif true { stop; }\n# rule:[when]\ndiscard;\n",
    );
    for n in [
        "rule rule_2_spam_ham {",
        "rule rule_2_spam_ham_2 {",
        "rule when_rule {",
    ] {
        assert!(c.flow.contains(n), "{n}\n{}", c.flow);
    }
}

#[test]
fn a_disabled_rule_without_its_test_is_kept_as_sieve() {
    let c = convert("if false { fileinto \"X\"; }\n");
    assert!(c.exact());
    assert!(
        c.flow
            .contains("# disabled in Sieve (`if false`): rule line_1"),
        "{}",
        c.flow
    );
}

#[test]
fn hasflag_is_false_until_a_flag_it_tests_may_be_set() {
    let c = convert(
        "require [\"imap4flags\", \"fileinto\"];\nif hasflag \"\\\\Seen\" { fileinto \"Read\"; }\n",
    );
    assert!(c.flow.contains("when false"), "{}", c.flow);
    assert!(c.exact(), "{:?}", lossy(&c));
    // Set on the way: the answer depends on the message.
    let c = convert(
        "require [\"imap4flags\", \"fileinto\"];\nif size :over 1K { addflag \"$Big\"; }\nif hasflag :is \"$big\" { fileinto \"Big\"; }\n",
    );
    assert!(!c.exact(), "{}", c.flow);
    assert!(
        lossy(&c)[0].contains("t.sieve:3:4: not converted: hasflag"),
        "{:?}",
        lossy(&c)
    );
    // Another flag set before, or a flag set after: still false.
    let c = convert(
        "require [\"imap4flags\", \"fileinto\"];\naddflag \"a\";\nif hasflag \"b\" { addflag \"b\"; }\nif true { addflag \"c\"; if hasflag :contains \"x\" { keep; } }\n",
    );
    assert!(c.flow.contains("when false"), "{}", c.flow);
    assert!(
        !c.exact(),
        "`:contains` with a flag set is not decided: {}",
        c.flow
    );
    // Variable names are imap4flags' other form.
    let c = convert("require [\"imap4flags\", \"variables\"];\nif hasflag \"v\" \"x\" { keep; }\n");
    assert!(!c.exact(), "{}", c.flow);
}

#[test]
fn address_on_any_header_reads_its_addresses() {
    let c = convert(
        "require \"imap4flags\";\nif address :domain :is [\"Resent-From\", \"bcc\"] \"x.example\" { addflag \"r\"; }\n",
    );
    assert!(
        c.flow
            .contains("addresses(header(\"Resent-From\").raw).domain == \"x.example\""),
        "{}",
        c.flow
    );
    assert!(
        c.flow.contains("addresses(header(\"bcc\").raw).domain"),
        "{}",
        c.flow
    );
    assert!(c.exact(), "{:?}", lossy(&c));
}

#[test]
fn body_text_is_body_lines_and_raw_is_body_raw() {
    let c = convert(
        "require [\"body\", \"imap4flags\"];\nif body :text :contains \"a b\" { addflag \"t\"; }\nif body :raw :contains \"=3D\" { addflag \"r\"; }\n",
    );
    assert!(c.flow.contains("body.lines contains \"a b\""), "{}", c.flow);
    assert!(c.flow.contains("body.raw contains \"=3D\""), "{}", c.flow);
    assert!(c.exact(), "{:?}", lossy(&c));
}
