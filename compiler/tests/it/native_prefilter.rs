//! The native engine's prefilter on its edge cases: case folding,
//! non-ASCII text, empty needles, several values on the left (headers
//! occurring more than once, address lists), `all`, `!=`, missing fields,
//! anchored tests whose needle also occurs elsewhere. Each rule tags its
//! name when it holds; the tags are checked against what docs/language.md says,
//! and against the interpreter and the native engine without prefilter,
//! with and without `--explain` (which the interpreter evaluates).

use crate::common::*;
use weir_compiler::{Decision, EvalOptions, MemoryRates, NativeRuleset, Ruleset};
use weir_stdlib::Transaction;

/// A message exercising the edge cases: an RFC 2047 subject with `ü`,
/// `ß`, a final sigma and a dotted capital I, repeated headers, an
/// address list, and a body.
const MAIL: &str = "From: Alice <Alice@Example.COM>\r\n\
To: bob@a.org, Carol <carol@B.Org>\r\n\
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=9CNCHEN_=CE=9F=CE=94=CE=9F=CE=A3_=C4=B0stanbul?=\r\n\
Received: from mx1.relay.example by mx.example.net\r\n\
Received: from mx2.relay.example by mx.example.net\r\n\
X-Tag: alpha\r\n\
X-Tag: beta\r\n\
X-Empty:\r\n\
\r\n\
abab Invoice attached\r\n";

/// Every rule of `source` is `rule NAME { when TEST then tag "NAME" }`.
fn ruleset(tests: &[(&str, &str)]) -> Ruleset {
    let source: String = tests
        .iter()
        .map(|(name, test)| format!("rule {name} {{ when {test} then tag \"{name}\" }}\n"))
        .collect();
    rules(&source)
}

/// The decision of every engine must be the same; returns it.
fn decide_all(r: &Ruleset, tx: &Transaction) -> Decision {
    let native = NativeRuleset::compile(r).expect("native code on this host");
    let host = NativeRuleset::compile_without_prefilter(r).expect("native code on this host");
    assert_eq!(host.prefiltered_count(), 0);
    let mut first = None;
    for explain in [false, true] {
        let opts = EvalOptions {
            explain,
            dry_run: false,
        };
        let interp = r.evaluate(tx, &mut MemoryRates::default(), &opts);
        let jit = native.evaluate(tx, &mut MemoryRates::default(), &opts);
        let slow = host.evaluate(tx, &mut MemoryRates::default(), &opts);
        assert_eq!(jit, interp, "prefilter vs interpreter, explain {explain}");
        assert_eq!(
            slow, interp,
            "host leaves vs interpreter, explain {explain}"
        );
        first.get_or_insert(jit);
    }
    first.expect("two runs")
}

/// Checks that the prefilter decides every one of `tests`, and that
/// exactly the `held` ones hold on `MAIL`.
fn check(tests: &[(&str, &str)], held: &[&str]) {
    check_on(tests, MAIL, held);
}

/// Checks that the prefilter decides every one of `tests`, and that
/// exactly the `held` ones hold on the message `mail`.
fn check_on(tests: &[(&str, &str)], mail: &str, held: &[&str]) {
    let r = ruleset(tests);
    let native = NativeRuleset::compile(&r).expect("native code on this host");
    assert_eq!(
        native.prefiltered_count(),
        native.leaf_count(),
        "the prefilter must decide every test here, or this test proves nothing about it"
    );
    let d = decide_all(&r, &tx(mail));
    assert_eq!(d.tags, held);
}

#[test]
fn case_folding_on_both_sides() {
    check(
        &[
            ("upper_needle", r#"subject contains "MÜNCHEN""#),
            ("lower_needle", r#"subject contains "grüße""#),
            ("sharp_s_is_not_ss", r#"subject contains "grüsse""#),
            ("final_sigma", r#"subject contains "οδος""#),
            ("capital_sigma", r#"subject contains "ΟΔΟΣ""#),
            ("dotted_i", r#"subject contains "İSTANBUL""#),
            ("eq_folds", r#"from.domain == "EXAMPLE.com""#),
            ("address_as_text", r#"from == "alice@example.com""#),
            ("in_folds", r#"from.local in ["bob", "ALICE"]"#),
            ("eq_is_whole", r#"from.domain == "example""#),
        ],
        &[
            "upper_needle",
            "lower_needle",
            "final_sigma",
            "capital_sigma",
            "dotted_i",
            "eq_folds",
            "address_as_text",
            "in_folds",
        ],
    );
}

#[test]
fn empty_needles_and_missing_fields() {
    check(
        &[
            ("contains_empty", r#"subject contains """#),
            ("starts_empty", r#"body starts_with """#),
            ("ends_empty", r#"body ends_with """#),
            (
                "missing_header_contains_empty",
                r#"header("X-Nothing") contains """#,
            ),
            ("missing_header_ne", r#"header("X-Nothing") != "x""#),
            ("missing_all", r#"all header("X-Nothing") contains """#),
            ("empty_header_eq_empty", r#"header("X-Empty") == """#),
            ("missing_in_empty_list", r#"header("X-Nothing") in [""]"#),
            ("empty_eq_nonempty", r#"header("X-Empty") == "a""#),
        ],
        &[
            "contains_empty",
            "starts_empty",
            "ends_empty",
            "missing_header_ne",
            "empty_header_eq_empty",
        ],
    );
}

#[test]
fn several_values_any_and_all() {
    check(
        &[
            (
                "second_received",
                r#"header("Received") contains "mx2.relay""#,
            ),
            (
                "all_received",
                r#"all header("Received") contains "MX.example.net""#,
            ),
            (
                "not_all_received",
                r#"all header("Received") contains "mx2""#,
            ),
            ("second_tag_starts", r#"header("X-Tag") starts_with "be""#),
            ("to_domain", r#"to.domain == "b.org""#),
            ("all_to_domain", r#"all to.domain in ["a.org", "b.org"]"#),
            ("not_all_to_domain", r#"all to.domain == "a.org""#),
            ("ne_any_value", r#"header("X-Tag") != "alpha""#),
            ("ne_no_value", r#"header("X-Tag") != "gamma""#),
            ("any_of_list", r#"subject contains any ["nope", "aus"]"#),
            ("none_of_list", r#"subject contains any ["nope", "never"]"#),
        ],
        &[
            "second_received",
            "all_received",
            "second_tag_starts",
            "to_domain",
            "all_to_domain",
            "ne_no_value",
            "any_of_list",
        ],
    );
}

#[test]
fn anchors_and_overlapping_needles() {
    anchors_and_overlaps(&[]);
    // Enough other needles on the same fields that they are searched with
    // an automaton rather than one by one.
    let padding: Vec<(String, String)> = (0..12)
        .flat_map(|i| {
            [
                (format!("pad_body{i}"), format!(r#"body contains "zq{i}x""#)),
                (
                    format!("pad_received{i}"),
                    format!(r#"header("Received") contains "zq{i}x""#),
                ),
                (
                    format!("pad_tag{i}"),
                    format!(r#"header("X-Tag") contains "zq{i}x""#),
                ),
            ]
        })
        .collect();
    let padding: Vec<(&str, &str)> = padding
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    anchors_and_overlaps(&padding);
}

/// The anchored and overlapping needles, with `padding` (tests that do
/// not hold) added.
fn anchors_and_overlaps(padding: &[(&str, &str)]) {
    let tests = [
        ("starts_yes", r#"body starts_with "ABAB""#),
        ("starts_later_only", r#"body starts_with "invoice""#),
        ("ends_yes", r#"header("Received") ends_with "EXAMPLE.NET""#),
        (
            "ends_earlier_only",
            r#"header("Received") ends_with "relay.example""#,
        ),
        ("overlap_a", r#"body contains "aba""#),
        ("overlap_b", r#"body contains "bab""#),
        (
            "same_needle_twice",
            r#"body contains "aba" and body starts_with "aba""#,
        ),
        ("ends_with_all", r#"all header("X-Tag") ends_with "a""#),
        (
            "starts_with_list",
            r#"header("X-Tag") starts_with ["x", "AL"]"#,
        ),
    ];
    let tests: Vec<(&str, &str)> = tests.iter().chain(padding).copied().collect();
    check(
        &tests,
        &[
            "starts_yes",
            "ends_yes",
            "overlap_a",
            "overlap_b",
            "same_needle_twice",
            "ends_with_all",
            "starts_with_list",
        ],
    );
}

#[test]
fn regexes_on_several_values() {
    check(
        &[
            ("re_exact_case", r#"subject matches /MÜNCHEN/"#),
            ("re_wrong_case", r#"subject matches /münchen/"#),
            ("re_flag_i", r#"subject matches /münchen/i"#),
            (
                "re_second_value",
                r#"header("Received") matches /mx2\.relay/"#,
            ),
            ("re_all", r#"all header("X-Tag") matches /^[a-z]+$/"#),
            ("re_not_all", r#"all header("X-Tag") matches /^a/"#),
            ("re_missing", r#"header("X-Nothing") matches /.*/"#),
            ("re_all_missing", r#"all header("X-Nothing") matches /.*/"#),
            ("re_address", r#"to matches /^carol@/"#),
            (
                "re_and_literal",
                r#"body matches /ab(ab)?/ and body contains "invoice""#,
            ),
        ],
        &[
            "re_exact_case",
            "re_flag_i",
            "re_second_value",
            "re_all",
            "re_address",
            "re_and_literal",
        ],
    );
}

#[test]
fn regex_sets_keep_each_regexs_flags() {
    // Each pattern appears with one flag string only, and `subject` has
    // enough of them for a regex set: they go into it with their flags
    // written inline; flags must keep applying across alternation, and
    // `x` must still ignore spaces.
    check(
        &[
            ("alt_i", r#"subject matches /nomatch|münchen/i"#),
            ("alt_case", r#"subject matches /nomatch|grÜsse/"#),
            (
                "x_flag",
                r#"subject matches /m ü n c h e n  # a comment/ix"#,
            ),
            ("x_flag_no_i", r#"subject matches /M Ü N C H E N/x"#),
            ("no_x", r#"subject matches /M Ü N/"#),
            ("lit_miss", r#"subject matches /zzz/"#),
            ("class", r#"subject matches /[ÜX]N/"#),
            ("word_case", r#"subject matches /\bAUS\b/"#),
            ("s_flag", r#"body matches /abab.invoice/is"#),
            ("dot_no_newline", r#"body matches /attached.x/s"#),
            ("m_flag", r#"header("X-Tag") matches /^beta$/m"#),
            ("anchored_miss", r#"all header("X-Tag") matches /^alpha$/"#),
            // Simple case folding: σ, ς and Σ are one letter under `i`.
            ("sigma_i", r#"subject matches /οδος/i"#),
        ],
        &[
            "alt_i",
            "x_flag",
            "x_flag_no_i",
            "class",
            "s_flag",
            "m_flag",
            "sigma_i",
        ],
    );
}

#[test]
fn tests_the_prefilter_cannot_decide_stay_exact() {
    // Captures, numbers and `score` go through the host; mixed with
    // prefiltered tests in one condition they still combine.
    let r = rules(
        r#"
rule caps { when subject matches /(M\w+)/ as m and from.domain == "example.com" then tag "${m[1]}" }
rule scored { when score > 0 or body contains "invoice" then tag "scored" }
rule neg { when not (body contains "nothing here") and size > 10 then tag "neg" }
"#,
    );
    let native = NativeRuleset::compile(&r).expect("native code on this host");
    assert_eq!(native.prefiltered_count(), 3);
    assert_eq!(native.leaf_count(), 6);
    let d = decide_all(&r, &tx(MAIL));
    assert_eq!(d.tags, ["MÜNCHEN", "scored", "neg"]);
}

/// A body with the Kelvin sign (`K`, U+212A) and the long s (`ſ`, U+017F),
/// which case-insensitive regexes match for `k` and `s`.
const ODD_LETTERS: &str = "Subject: plain\r\n\
\r\n\
the \u{212A}ubazi offer and the ſecurity99 notice\r\n";

#[test]
fn regexes_run_only_on_values_with_a_required_string() {
    // The required strings (`kubazi`, `security`, `offer`…) are folded;
    // a value holding a letter that only a case-insensitive regex equates
    // with an ASCII one (Kelvin sign, long s) must still run the regex.
    let tests = [
        ("kelvin_i", r#"body matches /kubazi (offer|deal)s?/i"#),
        ("kelvin_case", r#"body matches /kubazi/"#),
        ("long_s_i", r#"body matches /security[0-9]{2}/i"#),
        ("long_s_case", r#"body matches /security[0-9]{2}/"#),
        ("alternatives", r#"body matches /(notice|warning) *$/im"#),
        ("no_required", r#"body matches /[a-z]{3}[0-9]/"#),
        ("repeated", r#"body matches /9{2}\s+not/"#),
        ("missing", r#"body matches /(absent|gone)[0-9]+/i"#),
        ("subject_miss", r#"subject matches /security/i"#),
    ];
    check_on(
        &tests,
        ODD_LETTERS,
        &[
            "kelvin_i",
            "long_s_i",
            "alternatives",
            "no_required",
            "repeated",
        ],
    );
    // And the same regexes on a message without those letters.
    check_on(
        &tests,
        "Subject: x\r\n\r\nKUBAZI deals, SECURITY12 and notice\r\n",
        &["kelvin_i", "long_s_i", "alternatives"],
    );
}

#[test]
fn ascii_languages_decide_on_ascii_values_only() {
    // These regexes match a finite set of strings: on an ASCII value the
    // automaton alone decides them. A value that is not ASCII still runs
    // the regex (`é` is in `[eé]` but in none of the ASCII strings).
    let tests = [
        ("resume", r#"body matches /r[eé]sum[eé] (is|was) here/i"#),
        ("cafe", r#"subject matches /caf[eé]/i"#),
        ("short", r#"body matches /(ab|cd)e/i"#),
        ("ticket", r#"body matches /(invoice|ticket) #?\d/i"#),
        ("case", r#"body matches /(ab|cd)E/"#),
        ("none", r#"body matches /(gift|deal)s? card/i"#),
    ];
    let ascii = "Subject: CAFE\r\n\r\nResume WAS here, xcdE and TICKET #7.\r\n";
    check_on(
        &tests,
        ascii,
        &["resume", "cafe", "short", "ticket", "case"],
    );
    let accented = "Subject: =?UTF-8?Q?Caf=C3=A9?=\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
                    R\u{e9}sum\u{c9} is here, \u{dc} ABE, invoice 9\r\n";
    check_on(&tests, accented, &["resume", "cafe", "short", "ticket"]);
}

#[test]
fn rules_answered_by_bits_alone_keep_stage_and_else() {
    // Rules whose tests are all prefilter bits and that have no `else`
    // skip the host when they fail; the stage they reach must still count
    // (up to the rule that ends evaluation, not beyond), and a rule with
    // an `else` block still runs it.
    let r = rules(
        r#"
rule a { when subject contains "nothing" then tag "a" }
rule b { when body contains "nothing" then tag "b" }
rule c { when subject contains "nothing" then tag "c" else tag "c_else" }
rule d { when from.domain == "example.com" then tag "d" }
"#,
    );
    let d = decide_all(&r, &tx(MAIL));
    assert_eq!(d.tags, ["c_else", "d"]);
    assert_eq!(d.stage, weir_stdlib::Stage::Body);
    let r = rules(
        r#"
rule a { when subject contains "nothing" then tag "a" }
rule stop { when from.domain == "example.com" then discard }
rule late { when body contains "nothing" then tag "late" }
"#,
    );
    let d = decide_all(&r, &tx(MAIL));
    assert_eq!(d.stage, weir_stdlib::Stage::Header);
}

#[test]
fn runs_of_rules_passed_over_in_one_test_decide_as_the_interpreter() {
    // Runs of quiet rules (`skip.rs`) on several groups, with `and`/`or`
    // conditions, broken by a `not`, an `else` and a test the host runs;
    // a verdict inside a run ends evaluation. Each message wakes some runs
    // and leaves others to be passed over, or finds a group not yet
    // scanned when a run is reached.
    let tests = [
        "subject contains \"nothing\"",
        "from.domain == \"example.com\"",
        "body contains \"invoice\"",
        "header(\"X-Tag\") contains \"beta\"",
        "subject matches /gr(ü|u)(ß|ss)e/i",
        "body contains \"absent\" and subject contains \"grüße\"",
        "subject contains \"nope\" or body contains \"abab\"",
        "header(\"Received\") contains \"mx9\"",
        "from.domain == \"other.org\"",
        "body matches /zz(y|q) (is|was) here/i",
    ];
    let mut source = String::new();
    for i in 0..90 {
        let test = tests[(i * 7) % tests.len()];
        let rule = match i {
            30 => format!("rule r{i} {{ when not ({test}) then tag \"r{i}\" }}\n"),
            45 => format!("rule r{i} {{ when {test} then tag \"r{i}\" else tag \"e{i}\" }}\n"),
            60 => format!("rule r{i} {{ when score > 3 then tag \"r{i}\" }}\n"),
            _ => format!("rule r{i} {{ when {test} then tag \"r{i}\" }}\n"),
        };
        source.push_str(&rule);
    }
    source.push_str("rule ends { when body contains \"the end\" then discard }\n");
    source.push_str("rule after { when subject contains \"grüße\" then tag \"after\" }\n");
    // Without it, every group is scanned after the first rules and a run
    // is passed over on its byte alone; with it, one group is scanned
    // only at the end, and each run tests its own groups.
    let late = format!(
        "{source}rule late {{ when header(\"X-Late\") contains \"x\" then tag \"late\" }}\n"
    );
    for source in [source, late] {
        runs_decide_as_the_interpreter(&source);
    }
}

fn runs_decide_as_the_interpreter(source: &str) {
    let r = rules(source);
    let native = NativeRuleset::compile(&r).expect("native code on this host");
    assert!(
        native.skip_count() >= 4,
        "only {} runs: this test proves little",
        native.skip_count()
    );
    let plain = "From: x@other.org\r\nSubject: hello\r\n\r\nnothing to see\r\n";
    let ending = "From: x@example.com\r\nSubject: Gruesse\r\n\r\nthe end zzq is here\r\n";
    for mail in [MAIL, plain, ending, "Subject: only a subject\r\n\r\n"] {
        let d = decide_all(&r, &tx(mail));
        let ended = d.verdict == weir_compiler::Verdict::Discard;
        assert_eq!(ended, mail == ending, "{:?}", d.tags);
        let after = d.tags.iter().any(|t| t == "after");
        assert_eq!(after, mail == MAIL, "{:?}", d.tags);
    }
}

/// One compiled ruleset evaluating message after message decides each as
/// the interpreter does: what the prefilter remembers of a message (which
/// value last counted for a leaf, which regexes a value marked) never
/// counts for the next. Values that match several needles of one leaf,
/// `all` over several values and filtered regexes are where it would.
#[test]
fn message_after_message_each_decided_as_alone() {
    let r = ruleset(&[
        (
            "all_received",
            r#"all header("Received") contains any ["mx.example", "relay"]"#,
        ),
        (
            "some_tag",
            r#"header("X-Tag") contains any ["al", "ph", "be"]"#,
        ),
        ("all_tags", r#"all header("X-Tag") contains any ["a", "e"]"#),
        ("re_all", r#"all header("X-Tag") matches /^[a-z]+a$/"#),
        (
            "re_body",
            r#"body matches /ab(ab)?/ and body contains "invoice""#,
        ),
    ]);
    let other = MAIL
        .replace("X-Tag: beta", "X-Tag: gamma")
        .replace("mx2.relay.example", "mx2.elsewhere");
    let bare = "Subject: nothing here\r\n\r\nabab\r\n";
    let native = NativeRuleset::compile(&r).expect("native code on this host");
    let opts = EvalOptions::default();
    for round in 0..3 {
        for mail in [MAIL, other.as_str(), bare, MAIL] {
            let tx = tx(mail);
            let alone = decide_all(&r, &tx);
            let after = native.evaluate(&tx, &mut MemoryRates::default(), &opts);
            assert_eq!(after, alone, "round {round}, after the messages before");
        }
    }
}
