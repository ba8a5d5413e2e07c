//! Evaluation semantics (docs/language.md ("Expressions" to "Stages")), one test per row or rule of
//! the language's tables, on inline messages.

use crate::common::*;
use weir_compiler::decision::{Action, TakenKind};
use weir_compiler::{EvalOptions, MemoryRates, RateCounter, Verdict};
use weir_stdlib::Stage;

/// Whether `cond` holds on `message` (a rule tagging "yes").
fn holds_on(cond: &str, message: &str) -> bool {
    let r = rules(&format!(
        "rule t {{\n  when {cond}\n  then tag \"yes\"\n}}\n"
    ));
    decide(&r, message).tags == ["yes"]
}

fn holds(cond: &str) -> bool {
    holds_on(cond, MAIL)
}

#[test]
fn string_equality_ignores_case() {
    assert!(holds(r#"subject == "INVOICE 42 FOR TICKET #1234""#));
    assert!(!holds(r#"subject == "Invoice 42""#));
    assert!(holds(r#"subject != "Invoice 42""#));
}

#[test]
fn contains_starts_and_ends_with() {
    assert!(holds(r#"subject contains "TICKET""#));
    assert!(holds(r#"subject starts_with "invoice""#));
    assert!(holds(r##"subject ends_with "#1234""##));
    assert!(!holds(r#"subject ends_with "invoice""#));
    assert!(holds(r#"body contains any ["nothing", "payment failed"]"#));
    assert!(!holds(r#"body contains any ["nothing", "else"]"#));
}

#[test]
fn matches_is_case_sensitive_unless_flag_i() {
    assert!(holds(r"subject matches /Invoice \d+/"));
    assert!(!holds(r"subject matches /invoice \d+/"));
    assert!(holds(r"subject matches /invoice \d+/i"));
    assert!(holds(r"subject matches /^Invoice/"));
}

#[test]
fn regex_flags_m_s_x() {
    // Two paragraphs: `body` has one per line.
    let m = mail("Subject: x", "line one\n\nline two\n");
    assert!(holds_on(r"body matches /^line two$/m", &m));
    assert!(!holds_on(r"body matches /^line two$/", &m));
    assert!(holds_on(r"body matches /one.line/s", &m));
    assert!(!holds_on(r"body matches /one.line/", &m));
    assert!(holds_on(r"body matches /l i n e/x", &m));
}

#[test]
fn list_on_the_left_means_any() {
    assert!(holds(r#"to.domain == "other.net""#));
    assert!(holds(r#"to.domain != "nowhere.net""#));
    // A negated operator negates the whole test: no To domain is other.net.
    assert!(!holds(r#"to.domain != "other.net""#));
}

#[test]
fn all_demands_every_element_and_is_false_on_empty() {
    assert!(holds(r#"all to.domain in ["example.org", "other.net"]"#));
    assert!(!holds(r#"all to.domain in ["example.org"]"#));
    assert!(!holds(r#"all reply_to.domain == "x""#));
    assert!(!holds(r#"reply_to.domain == "x""#));
    assert!(holds(r#"not (reply_to.domain == "x")"#));
}

#[test]
fn list_on_the_right_means_any_item() {
    assert!(holds(r#"from.domain == ["nope.com", "EXAMPLE.com"]"#));
    assert!(holds(r#"subject starts_with ["x", "inv"]"#));
    assert!(holds(r#"subject ends_with any ["x", "1234"]"#));
}

#[test]
fn in_is_case_insensitive_equality_not_substring() {
    assert!(holds(r#"from.domain in ["example.com"]"#));
    assert!(holds(r#"from.address in ["ALICE+news@example.com"]"#));
    assert!(!holds(r#"from.domain in ["ample.com"]"#));
    assert!(
        holds(r#"from in ["alice+news@example.com"]"#),
        "an address in strings compares .address"
    );
}

#[test]
fn ip_in_cidrs() {
    let m = MAIL;
    let r = rules(
        "let nets = [10.0.0.0/8, 192.0.2.7, 2001:db8::/32]\nrule t {\n  when client.ip in nets\n  then tag \"yes\"\n}\n",
    );
    let check = |ip: &str| {
        let d = r.evaluate(
            &tx_with(m, None, &[], Some(ip)),
            &mut MemoryRates::default(),
            &EvalOptions::default(),
        );
        d.tags == ["yes"]
    };
    assert!(check("10.1.2.3"));
    assert!(check("192.0.2.7"));
    assert!(!check("192.0.2.8"));
    assert!(check("2001:db8::1"));
    assert!(!check("2001:db9::1"));
    assert!(!check("127.0.0.1"));
}

#[test]
fn numbers_sizes_and_promotion() {
    assert!(holds("size > 100"));
    assert!(holds("size < 10K"));
    assert!(holds("count(to) == 2"));
    assert!(holds("count(to) >= 1.5"));
    assert!(holds("len(subject) <= 27 and len(subject) > 26"));
    assert!(holds("1 + 2 == 3 and 2.5 - 1 == 1.5"));
    assert!(holds("-1 < 0"));
}

#[test]
fn string_concatenation_and_interpolation() {
    assert!(holds(
        r#"envelope.from.local + "@" + envelope.from.domain == "ALICE+news@example.com""#
    ));
    let r = rules(
        "rule t {\n  then log \"${from.name}|${to.domain}|${count(to)}|${9.5}|${date}|${subject + \"!\"}\"\n}\n",
    );
    let d = decide(&r, MAIL);
    let TakenKind::Action(Action::Log(text)) = &d.actions[0].what else {
        panic!("log expected")
    };
    assert_eq!(
        text,
        "Alice Example|example.org, other.net|2|9.5|2026-11-22T06:00:00Z|Invoice 42 for ticket #1234!"
    );
}

#[test]
fn address_members() {
    assert!(holds(r#"from.detail == "news""#));
    assert!(holds(r#"from.local == "alice+news""#));
    assert!(holds(r#"from.name == "alice example""#));
    assert!(holds(r#"envelope.from.domain == "example.com""#));
    assert!(holds(r#"envelope.to.address contains "bob@""#));
}

#[test]
fn headers_exist_and_raw() {
    assert!(holds(r#"header("x-mailer") exists"#));
    assert!(!holds(r#"header("X-Missing") exists"#));
    assert!(holds(r#"header("X-Mailer") == "test2""#));
    assert!(holds(r#"count(header("X-Mailer")) == 2"#));
    let m = mail("Subject: =?utf-8?q?caf=C3=A9?=", "x");
    assert!(holds_on(r#"subject == "café""#, &m));
    assert!(holds_on(
        r#"header("Subject").raw starts_with "=?utf-8?""#,
        &m
    ));
}

#[test]
fn time_fields_and_arithmetic() {
    assert!(holds(r#"now.hour == 7"#));
    assert!(holds(r#"now - date == 1h"#));
    assert!(holds(r#"now - date > 30m"#));
    assert!(!holds(r#"now - date > 2h"#));
}

#[test]
fn attachments_project_over_lists() {
    let m = "From: a@b.c\r\nSubject: files\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--XX\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"run.EXE\"\r\n\r\nMZ\r\n--XX--\r\n";
    assert!(holds_on(
        r#"attachments.name ends_with [".exe", ".scr"]"#,
        m
    ));
    assert!(holds_on(
        r#"attachments.type == "application/octet-stream""#,
        m
    ));
    assert!(holds_on(r#"count(attachments) == 1"#, m));
    assert!(!holds_on(r#"body contains "MZ""#, m));
    assert!(holds_on(r#"body contains "see attached""#, m));
}

#[test]
fn envelope_and_client_defaults() {
    assert!(holds(r#"envelope.from == "alice+news@example.com""#));
    assert!(holds(r#"envelope.to.address == "dave@example.com""#));
    assert!(holds(r#"client.ip == 127.0.0.1 and helo == "localhost""#));
    assert!(holds(r#"recipient.address == "bob@example.org""#));
    assert!(holds(r#"auth.user == "" and not tls"#));
}

#[test]
fn null_sender_has_empty_parts() {
    let r = rules(
        "rule t {\n  when envelope.from.address == \"\" and envelope.from.domain == \"\"\n  then tag \"null\"\n}\n",
    );
    let d = r.evaluate(
        &tx_with(MAIL, Some("<>"), &["x@y.z"], None),
        &mut MemoryRates::default(),
        &EvalOptions::default(),
    );
    assert_eq!(d.tags, ["null"]);
}

#[test]
fn verdict_defaults_and_codes() {
    let cases = [
        (
            "reject",
            Verdict::Reject,
            Some((550, "5.7.1", "Message rejected")),
        ),
        (
            "reject \"go away\"",
            Verdict::Reject,
            Some((550, "5.7.1", "go away")),
        ),
        (
            "reject 554 \"no\"",
            Verdict::Reject,
            Some((554, "5.7.1", "no")),
        ),
        (
            "reject 554 \"5.7.0\" \"no\"",
            Verdict::Reject,
            Some((554, "5.7.0", "no")),
        ),
        (
            "tempfail",
            Verdict::Tempfail,
            Some((451, "4.7.1", "Try again later")),
        ),
        (
            "tempfail 421 \"4.3.2\" \"busy\"",
            Verdict::Tempfail,
            Some((421, "4.3.2", "busy")),
        ),
        (
            "tempfail 450",
            Verdict::Tempfail,
            Some((450, "4.7.1", "Try again later")),
        ),
        ("accept", Verdict::Accept, None),
        ("discard", Verdict::Discard, None),
        ("quarantine \"held\"", Verdict::Quarantine, None),
    ];
    for (action, verdict, reply) in cases {
        let r = rules(&format!("rule v {{\n  then {action}\n}}\n"));
        let d = decide(&r, MAIL);
        assert_eq!(d.verdict, verdict, "{action}");
        assert_eq!(d.decided_by.as_deref(), Some("v"));
        let got = d
            .reply
            .as_ref()
            .map(|r| (r.code, r.status.as_str(), r.text.as_str()));
        assert_eq!(got, reply, "{action}");
        if verdict == Verdict::Quarantine {
            assert_eq!(d.quarantine_reason.as_deref(), Some("held"));
        }
    }
}

#[test]
fn no_verdict_accepts() {
    let r = rules("rule t {\n  when subject == \"nope\"\n  then reject\n}\n");
    let d = decide(&r, MAIL);
    assert_eq!(d.verdict, Verdict::Accept);
    assert!(d.reply.is_none() && d.decided_by.is_none() && d.matched.is_empty());
}

#[test]
fn accumulating_actions_in_order() {
    let r = rules(
        r#"rule a {
  then {
    add_header "X-A" "1"
    set_header "X-B" "2"
    remove_header "X-C"
    prepend_subject "[x] "
    add_rcpt "archive@example.com"
    remove_rcpt "bob@example.org"
    redirect "other@example.com"
    fileinto "One"
    flag "\\Seen"
    keep
    tag "t1"
    score +1.5
    notify "slack" with {text: "hi ${from.address}"}
    log "logged"
    fileinto "Two/Sub"
    tag "t2"
    tag "t1"
    score -0.5
  }
}
"#,
    );
    let d = decide(&r, MAIL);
    let words: Vec<&str> = d
        .actions
        .iter()
        .map(|t| match &t.what {
            TakenKind::Action(a) => a.name(),
            TakenKind::ShadowVerdict(_) => "shadow",
        })
        .collect();
    assert_eq!(
        words,
        [
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
            "log",
            "fileinto",
            "tag",
            "tag",
            "score"
        ]
    );
    assert_eq!(d.tags, ["t1", "t2"]);
    assert_eq!(d.score, 1.0);
    assert_eq!(d.folder.as_deref(), Some("Two/Sub"));
    assert!(d.actions.iter().all(|t| t.rule == "a" && !t.shadow));
    let TakenKind::Action(Action::Flag(flag)) = &d.actions[8].what else {
        panic!()
    };
    assert_eq!(flag, "\\Seen");
    let TakenKind::Action(Action::Notify {
        channel,
        with,
        template,
    }) = &d.actions[12].what
    else {
        panic!()
    };
    assert_eq!(channel, "slack");
    assert_eq!(
        with,
        &vec![("text".to_string(), "hi alice+news@Example.com".to_string())]
    );
    assert!(template.is_none());
}

#[test]
fn actions_before_a_verdict_keep_effect() {
    let r = rules(
        "rule a {\n  then {\n    add_header \"X-A\" \"1\"\n    quarantine \"q\"\n  }\n}\nrule b {\n  then tag \"never\"\n}\n",
    );
    let c = compile_files(&[(
        "rules.flow",
        "rule a {\n  then {\n    add_header \"X-A\" \"1\"\n    quarantine \"q\"\n  }\n}\nrule b {\n  then tag \"never\"\n}\n",
    )]);
    assert!(c.diagnostics.iter().any(|d| d.code == "W0201"));
    let d = decide(&r, MAIL);
    assert_eq!(d.verdict, Verdict::Quarantine);
    assert!(took(&d, "add_header"));
    assert!(d.tags.is_empty());
}

#[test]
fn tags_are_kept_once_in_first_applied_order_however_many() {
    // Past eight tags the duplicate check is a set, below it a scan: both
    // are crossed here, with repeats before and after.
    let applied = [
        "a0", "a1", "a0", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a3", "a9", "a8", "b", "a0",
    ];
    let source: String = applied
        .iter()
        .enumerate()
        .map(|(i, t)| format!("rule r{i} {{\n  then tag \"{t}\"\n}}\n"))
        .collect();
    let d = decide(&rules(&source), MAIL);
    let want = [
        "a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "b",
    ];
    assert_eq!(d.tags, want);
    assert_eq!(d.actions.len(), applied.len());
}

#[test]
fn priorities_then_load_order() {
    let r = rules(
        "rule late {\n  then tag \"late\"\n}\nrule early priority 5 {\n  then tag \"early\"\n}\nrule mid priority 100 {\n  then tag \"mid\"\n}\nrule first priority -1 {\n  then tag \"first\"\n}\n",
    );
    let names: Vec<&str> = r.rules().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["first", "early", "late", "mid"]);
    assert_eq!(decide(&r, MAIL).tags, ["first", "early", "late", "mid"]);
    assert_eq!(r.rules()[0].priority, -1);
    assert_eq!(r.rules()[2].priority, 100);
}

#[test]
fn first_verdict_in_priority_order_wins() {
    let r = rules(
        "rule b {\n  then reject \"b\"\n}\nrule a priority 10 {\n  when subject contains \"invoice\"\n  then tempfail\n}\n",
    );
    let d = decide(&r, MAIL);
    assert_eq!(d.verdict, Verdict::Tempfail);
    assert_eq!(d.matched, ["a"]);
}

#[test]
fn stop_ends_evaluation_and_accepts() {
    let r = rules("rule a {\n  then { tag \"a\"; stop }\n}\nrule b {\n  then reject\n}\n");
    let d = decide(&r, MAIL);
    assert_eq!(d.verdict, Verdict::Accept);
    assert_eq!(d.tags, ["a"]);
    assert_eq!(d.matched, ["a"]);
}

#[test]
fn if_else_nest_in_actions() {
    let r = rules(
        r#"rule a {
  when subject contains "invoice"
  then {
    if from.domain == "nope" {
      tag "x"
    } else if body contains "payment" {
      tag "payment"
      if size > 1M { tag "big" } else { tag "small" }
    } else {
      tag "z"
    }
  }
  else tag "no"
}
"#,
    );
    assert_eq!(decide(&r, MAIL).tags, ["payment", "small"]);
    assert_eq!(decide(&r, &mail("Subject: hi", "x")).tags, ["no"]);
}

#[test]
fn else_runs_when_condition_is_false_and_is_not_matched() {
    let r = rules(
        "rule a {\n  when subject == \"x\"\n  then tag \"then\"\n  else tag \"else\"\n}\nrule b {\n  when matched(a)\n  then tag \"b\"\n}\n",
    );
    let d = decide(&r, MAIL);
    assert_eq!(d.tags, ["else"]);
    assert!(d.matched.is_empty());
}

#[test]
fn matched_sees_earlier_rules() {
    let r = rules(
        "rule a priority 1 {\n  when subject contains \"invoice\"\n  then tag \"a\"\n}\nrule b {\n  when matched(a)\n  then tag \"b\"\n}\n",
    );
    let d = decide(&r, MAIL);
    assert_eq!(d.tags, ["a", "b"]);
    assert_eq!(d.matched, ["a", "b"]);
}

#[test]
fn shadow_rules_record_without_effect() {
    let r = rules(
        r#"rule s shadow {
  when subject contains "invoice"
  then { tag "shadowed"; score +5; fileinto "S"; reject 554 "no" }
}
rule after {
  when not matched(s) and score == 0
  then tag "after"
}
"#,
    );
    let d = decide(&r, MAIL);
    assert_eq!(d.verdict, Verdict::Accept);
    assert_eq!(d.matched, ["s", "after"]);
    assert_eq!(d.tags, ["after"]);
    assert_eq!(d.score, 0.0);
    assert_eq!(d.folder, None);
    let shadow: Vec<_> = d.actions.iter().filter(|t| t.shadow).collect();
    assert_eq!(shadow.len(), 4);
    let TakenKind::ShadowVerdict(v) = &shadow[3].what else {
        panic!("shadow verdict expected")
    };
    assert_eq!(v.verdict, Verdict::Reject);
    assert_eq!(v.reply.as_ref().map(|r| r.code), Some(554));
    assert!(r.rules()[0].shadow);
}

#[test]
fn score_accumulates_and_is_readable() {
    let r = rules(
        "rule a {\n  then score +3\n}\nrule b {\n  when subject contains \"invoice\"\n  then score +2.5\n}\nrule c {\n  when score >= 5\n  then tag \"spam ${score}\"\n}\n",
    );
    let d = decide(&r, MAIL);
    assert_eq!(d.score, 5.5);
    assert_eq!(d.tags, ["spam 5.5"]);
}

#[test]
fn captures_bind_in_then() {
    let r = rules(
        r#"rule t {
  when subject matches /ticket #(\d+)/i as m and from.domain matches /^(\w+)\.(com)$/ as d
  then {
    add_header "X-Ticket" m[1]
    add_header "X-Whole" m[0]
    add_header "X-Domain" "${d[1]}-${d[2]}"
  }
}
"#,
    );
    let d = decide(&r, MAIL);
    let values: Vec<String> = d
        .actions
        .iter()
        .filter_map(|t| match &t.what {
            TakenKind::Action(Action::AddHeader { value, .. }) => Some(value.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(values, ["1234", "ticket #1234", "Example-com"]);
}

#[test]
fn captures_on_a_list_come_from_the_first_match() {
    let r = rules(
        "rule t {\n  when to.address matches /^(\\w+)@.*\\.(net|com)$/ as m\n  then tag m[1]\n}\n",
    );
    assert_eq!(decide(&r, MAIL).tags, ["carol"]);
}

#[test]
fn capture_from_let_regex() {
    let r = rules(
        "let ticket = /#(\\d+)/\nrule t {\n  when subject matches ticket as m\n  then tag m[1]\n}\n",
    );
    assert_eq!(decide(&r, MAIL).tags, ["1234"]);
}

#[test]
fn index_out_of_range_is_empty() {
    let r = rules(
        "rule t {\n  then tag \"[${header(\"X-None\")[3]}][${to[5].address}][${to[1].domain}]\"\n}\n",
    );
    assert_eq!(decide(&r, MAIL).tags, ["[][][other.net]"]);
}

#[test]
fn user_functions() {
    let r = rules(
        "let internal = [\"example.com\", \"example.org\"]\nfn is_internal(a: address) = a.domain in internal\nfn shout(s: string) = upper(s) + \"!\"\nrule t {\n  when is_internal(envelope.from) and not is_internal(to[1])\n  then tag shout(\"hi\")\n}\n",
    );
    assert_eq!(decide(&r, MAIL).tags, ["HI!"]);
}

#[test]
fn templates_render_at_use() {
    let r = rules(
        r#"template ack {
  subject = "Re: ${subject}"
  body = """
    Thanks ${from.name}.
    Score ${score}.
    """
}
rule a {
  then { score +1; reply template ack; notify "ops" template ack }
}
"#,
    );
    let d = decide(&r, MAIL);
    let TakenKind::Action(Action::Reply { template: t, .. }) = &d.actions[1].what else {
        panic!("reply expected")
    };
    assert_eq!(t.name, "ack");
    assert_eq!(t.subject, "Re: Invoice 42 for ticket #1234");
    assert_eq!(t.body, "Thanks Alice Example.\nScore 1.\n");
    let TakenKind::Action(Action::Notify {
        template: Some(t), ..
    }) = &d.actions[2].what
    else {
        panic!("notify expected")
    };
    assert_eq!(t.subject, "Re: Invoice 42 for ticket #1234");
}

#[test]
fn rate_counts_once_per_message_and_never_in_shadow_or_dry_run() {
    let r = rules(
        "rule s shadow {\n  when rate(\"k\", 1h) > 100\n  then tag \"s\"\n}\nrule a {\n  when rate(\"k\", 1h) >= 2 or rate(\"k\", 1h) > 50\n  then tag \"burst\"\n}\n",
    );
    let mut rates = MemoryRates::default();
    let opts = EvalOptions::default();
    let t = tx(MAIL);
    assert!(r.evaluate(&t, &mut rates, &opts).tags.is_empty());
    assert_eq!(r.evaluate(&t, &mut rates, &opts).tags, ["burst"]);
    assert_eq!(
        rates.hit("k", 3600, NOW, false),
        2,
        "counted once per message, not in the shadow rule"
    );
    let dry = EvalOptions {
        dry_run: true,
        ..EvalOptions::default()
    };
    r.evaluate(&t, &mut rates, &dry);
    assert_eq!(
        rates.hit("k", 3600, NOW, false),
        2,
        "a dry run counts nothing"
    );
}

#[test]
fn rate_window_slides() {
    let mut rates = MemoryRates::default();
    assert_eq!(rates.hit("k", 60, 1000, true), 1);
    assert_eq!(rates.hit("k", 60, 1030, true), 2);
    assert_eq!(rates.hit("k", 60, 1070, true), 2);
    assert_eq!(rates.hit("k", 60, 2000, false), 0);
}

#[test]
fn stages_follow_fields() {
    let r = rules(
        r#"rule c { when client.ip in [10.0.0.0/8] then tag "c" }
rule h { when helo == "x" then tag "h" }
rule m { when envelope.from.domain == "x" then tag "m" }
rule r { when envelope.to.domain == "x" then tag "r" }
rule hd { when subject == "x" then tag "hd" }
rule b { when body contains "x" then tag "b" }
rule k { then tag "k" }
rule n { when now.hour > 25 then tag "n" }
rule act { when client.ip in [10.0.0.0/8] then add_header "X" subject }
rule mt { when matched(hd) then tag "mt" }
rule sc1 { when helo == "y" then score +1 }
rule sc2 { when score > 1 then tag "sc2" }
rule hdr { when header("X") exists then tag "x" }
rule els { when helo == "x" then tag "a" else tag "${size}" }
"#,
    );
    let stages: Vec<(String, Stage)> = r
        .rules()
        .iter()
        .map(|r| (r.name.clone(), r.stage))
        .collect();
    let expect = [
        ("c", Stage::Connect),
        ("h", Stage::Helo),
        ("m", Stage::Mail),
        ("r", Stage::Rcpt),
        ("hd", Stage::Header),
        ("b", Stage::Body),
        ("k", Stage::Connect),
        ("n", Stage::Connect),
        ("act", Stage::Header),
        ("mt", Stage::Header),
        ("sc1", Stage::Helo),
        ("sc2", Stage::Helo),
        ("hdr", Stage::Header),
        ("els", Stage::Body),
    ];
    for ((name, stage), (want_name, want)) in stages.iter().zip(expect) {
        assert_eq!((name.as_str(), *stage), (want_name, want));
    }
}

#[test]
fn decision_stage_is_latest_up_to_the_deciding_rule() {
    let r = rules(
        "rule m priority 1 {\n  when envelope.from.domain == \"example.com\"\n  then reject\n}\nrule b {\n  when body contains \"x\"\n  then tag \"b\"\n}\n",
    );
    assert_eq!(decide(&r, MAIL).stage, Stage::Mail);
    assert_eq!(
        decide(&r, &mail("From: a@other.com", "y")).stage,
        Stage::Body
    );
    let empty = rules("# nothing\n");
    assert_eq!(decide(&empty, MAIL).stage, Stage::Connect);
    let fn_stage = rules("fn big() = size > 10\nrule f {\n  when big()\n  then tag \"f\"\n}\n");
    assert_eq!(fn_stage.rules()[0].stage, Stage::Body);
}

#[test]
fn explain_gives_evidence() {
    let r = rules(
        "rule t {\n  when subject contains \"TICKET\" and from.domain == \"example.com\"\n  then tag \"x\"\n}\nrule u {\n  when subject == \"no\"\n  then tag \"y\"\n}\n",
    );
    let opts = EvalOptions {
        explain: true,
        ..EvalOptions::default()
    };
    let d = r.evaluate(&tx(MAIL), &mut MemoryRates::default(), &opts);
    assert_eq!(d.trace.len(), 2);
    assert!(d.trace[0].held && !d.trace[1].held);
    let e = d.trace[0].evidence.as_ref().expect("evidence");
    assert_eq!(e.expr, "subject");
    assert_eq!(e.value, "Invoice 42 for ticket #1234");
    assert_eq!(&e.value[e.span.0..e.span.1], "ticket");
    let plain = decide(&r, MAIL);
    assert!(plain.trace.is_empty());
}

#[test]
fn list_files_are_typed() {
    let files = [
        (
            "dir/rules.flow",
            "list blocked = file \"lists/blocked.txt\"\nlist nets = file \"nets.txt\"\nrule b {\n  when from.domain in blocked or client.ip in nets\n  then reject\n}\n",
        ),
        (
            "dir/lists/blocked.txt",
            "# blocked\n\n  EXAMPLE.com  \nspam.test\n",
        ),
        ("dir/nets.txt", "10.0.0.0/8\n127.0.0.1\n"),
    ];
    let r = rules_files(&files);
    assert_eq!(decide(&r, MAIL).verdict, Verdict::Reject);
    let other = mail("From: x@fine.org", "y");
    let d = r.evaluate(
        &tx_with(&other, None, &[], Some("10.9.9.9")),
        &mut MemoryRates::default(),
        &EvalOptions::default(),
    );
    assert_eq!(d.verdict, Verdict::Reject);
    let d = r.evaluate(
        &tx_with(&other, None, &[], Some("192.0.2.1")),
        &mut MemoryRates::default(),
        &EvalOptions::default(),
    );
    assert_eq!(d.verdict, Verdict::Accept);
    let names: Vec<&str> = r.files().iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["dir/rules.flow", "dir/lists/blocked.txt", "dir/nets.txt"]
    );
    assert!(r.files().iter().all(|f| f.hash.len() == 16));
}

#[test]
fn imports_place_rules_at_first_import_depth_first() {
    let files = [
        (
            "main.flow",
            "rule m1 {\n  then tag \"m1\"\n}\nimport \"a\"\nimport \"b.flow\"\nrule m2 {\n  when is_a()\n  then tag \"m2\"\n}\n",
        ),
        (
            "a.flow",
            "import \"c\"\nfn is_a() = true\nrule a1 {\n  then tag \"a1\"\n}\n",
        ),
        ("b.flow", "import \"c\"\nrule b1 {\n  then tag \"b1\"\n}\n"),
        ("c.flow", "rule c1 {\n  then tag \"c1\"\n}\n"),
    ];
    let r = rules_files(&files);
    let names: Vec<&str> = r.rules().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["m1", "c1", "a1", "b1", "m2"]);
    assert_eq!(r.files().len(), 4);
}

#[test]
fn stdlib_imports_resolve() {
    let r = rules("import \"stdlib/bulk\"\nrule t {\n  then tag \"x\"\n}\n");
    assert!(r.files().iter().any(|f| f.name == "stdlib/bulk.flow"));
}

#[test]
fn hash_changes_with_content() {
    let a = rules("rule t {\n  then tag \"a\"\n}\n");
    let b = rules("rule t {\n  then tag \"b\"\n}\n");
    assert_ne!(a.hash(), b.hash());
    assert_eq!(a.hash(), rules("rule t {\n  then tag \"a\"\n}\n").hash());
}

#[test]
fn test_blocks_check_decisions() {
    let r = rules(
        r#"rule billing {
  when subject contains "invoice"
  then { tag "billing"; fileinto "Billing"; add_header "X-Priority" "1"; score +2 }
}
test "billing mail" {
  message """
    From: a@b.c
    Subject: Invoice

    x
    """
  envelope from "a@b.c" to ["c@d.e"]
  client ip 192.0.2.1 helo "mx.b.c"
  expect verdict accept
  expect tag "billing"
  expect not tag "vip"
  expect matched billing
  expect folder "Billing"
  expect add_header "x-priority" "1"
  expect score >= 2
  expect stage header
}
test "failing" {
  message "mail/x.eml"
  expect verdict reject 550
  expect tag "nope"
}
"#,
    );
    let tests = r.tests();
    assert_eq!(tests.len(), 2);
    assert_eq!(tests[0].envelope_to, Some(vec!["c@d.e".to_string()]));
    assert_eq!(tests[0].client_ip, Some("192.0.2.1".parse().expect("ip")));
    assert_eq!(tests[0].helo.as_deref(), Some("mx.b.c"));
    assert_eq!(
        tests[1].message,
        weir_compiler::TestMessage::File("mail/x.eml".into())
    );
    let weir_compiler::TestMessage::Text(text) = &tests[0].message else {
        panic!("inline message")
    };
    let t = tx_with(
        text,
        tests[0].envelope_from.as_deref(),
        &["c@d.e"],
        Some("192.0.2.1"),
    );
    let d = r.evaluate(&t, &mut MemoryRates::default(), &EvalOptions::default());
    assert_eq!(tests[0].check(&d), Vec::<String>::new());
    let failures = tests[1].check(&d);
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures[0].contains("verdict reject 550"), "{failures:?}");
}

#[test]
fn evaluation_handles_messages_without_headers() {
    let r = rules(
        "rule t {\n  when subject == \"\" and body contains \"garbage\" and count(from) == 0\n  then tag \"empty\"\n}\n",
    );
    assert_eq!(
        decide(&r, "\x00\x01garbage without headers").tags,
        ["empty"]
    );
}

#[test]
fn rule_names_do_not_hide_fields() {
    let r = rules(
        "rule size {\n  when size > 10\n  then tag \"big\"\n}\nrule subject {\n  when subject contains \"invoice\"\n  then tag \"x\"\n}\n",
    );
    assert_eq!(decide(&r, MAIL).tags, ["big", "x"]);
}

#[test]
fn rulesets_are_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<weir_compiler::Ruleset>();
}

#[test]
fn under_holds_at_a_label_boundary_only() {
    let under = |d: &str, list: &str| holds(&format!("\"{d}\" under {list}"));
    assert!(under("spam.example", r#"["spam.example"]"#));
    assert!(under("a.spam.example", r#"["spam.example"]"#));
    assert!(under("A.Spam.Example.", r#"["spam.EXAMPLE"]"#));
    assert!(under("b.a.spam.example", r#"[".spam.example."]"#));
    assert!(!under("notspam.example", r#"["spam.example"]"#));
    assert!(!under("spam.example", r#"["a.spam.example"]"#));
    assert!(!under("", r#"["spam.example"]"#));
    assert!(!under("spam.example", r#"["", "."]"#));
    assert!(under("x.example", r#""example""#));
    // A list on the left means any element; `all` every element.
    assert!(holds(
        r#"["a.org", "b.spam.example"] under ["spam.example"]"#
    ));
    assert!(!holds(
        r#"all ["a.org", "b.spam.example"] under ["spam.example"]"#
    ));
}

#[test]
fn maps_look_up_keys_case_insensitively() {
    let r = rules(
        "map teams = {\"EXAMPLE.com\": \"sales\", \"other.net\": \"\"}\n\
         rule t {\n  when from.domain in teams\n  then tag \"team:${teams[from[0].domain]}\"\n}\n\
         rule u {\n  when \"other.NET\" in teams and teams[\"nowhere\"] == \"\" and teams[\"OTHER.net\"] == \"\"\n  then tag \"empty\"\n}\n",
    );
    let d = decide(&r, MAIL);
    assert!(d.tags.iter().any(|t| t == "team:sales"), "{:?}", d.tags);
    assert!(d.tags.iter().any(|t| t == "empty"), "{:?}", d.tags);
}

#[test]
fn map_and_list_files_report_their_bad_line() {
    let c = compile_files(&[
        (
            "r.flow",
            "list nets = file \"nets.txt\"\nrule r {\n  when client.ip in nets\n  then reject\n}\n",
        ),
        ("nets.txt", "10.0.0.0/8\n\n10.0.0.300\n"),
    ]);
    let d = &c.diagnostics[0];
    assert_eq!((d.file.as_str(), d.code), ("nets.txt", "E0124"));
    assert!(
        d.message.starts_with("nets.txt:3: `10.0.0.300`"),
        "{}",
        d.message
    );

    let c = compile_files(&[
        (
            "r.flow",
            "map m = file \"m.map\"\nrule r {\n  when \"a\" in m\n  then tag m[\"a\"]\n}\n",
        ),
        ("m.map", "\u{feff}a 1\nb   two words  \n# c\nA again\n"),
    ]);
    let d = &c.diagnostics[0];
    assert_eq!(d.file, "m.map");
    assert!(
        d.message
            .contains("m.map:4: the key `A` is already given on line 1"),
        "{}",
        d.message
    );

    // A byte-order mark is not part of the first entry.
    let r = rules_files(&[
        (
            "r.flow",
            "list l = file \"l.txt\"\nmap m = file \"m.map\"\nrule r {\n  when \"example.org\" in l and m[\"k\"] == \"v w\"\n  then tag \"ok\"\n}\n",
        ),
        ("l.txt", "\u{feff}example.org\n"),
        ("m.map", "\u{feff}k   v w \n"),
    ]);
    assert_eq!(decide(&r, MAIL).tags, ["ok"]);
}

#[test]
fn some_and_every_bind_one_element_at_a_time() {
    let m = "From: a@example.com\r\nTo: b@example.org, c@other.net\r\nSubject: s\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
Content-Type: text/plain\r\n\r\nhi\r\n--b\r\n\
Content-Type: application/pdf; name=\"real.pdf\"\r\nContent-Disposition: attachment; filename=\"real.pdf\"\r\n\r\n%PDF\r\n--b\r\n\
Content-Type: application/octet-stream; name=\"setup.exe\"\r\nContent-Disposition: attachment; filename=\"setup.exe\"\r\n\r\nMZ\r\n--b--\r\n";
    // The lists tested apart pass; one attachment with both properties does not exist.
    assert!(holds_on(
        r#"attachments.name ends_with ".pdf" and attachments.type == "application/octet-stream""#,
        m
    ));
    assert!(!holds_on(
        r#"some(attachments, a => a.name ends_with ".pdf" and a.type == "application/octet-stream")"#,
        m
    ));
    assert!(!holds_on(
        r#"some(attachments, a => a.name ends_with ".pdf" and a.type != "application/pdf")"#,
        m
    ));
    assert!(holds_on(
        r#"some(attachments, a => a.name ends_with ".exe" and a.type == "application/octet-stream")"#,
        m
    ));
    assert!(holds_on(r#"every(attachments, a => a.size < 1K)"#, m));
    assert!(!holds_on(
        r#"every(attachments, a => a.name ends_with ".pdf")"#,
        m
    ));
    // Lists of strings and of addresses.
    assert!(holds_on(r#"some(to, t => t.domain == "other.net")"#, m));
    assert!(holds_on(
        r#"every(to.domain, d => d ends_with ".net" or d ends_with ".org")"#,
        m
    ));
    assert!(!holds_on(r#"every(to.domain, d => d ends_with ".net")"#, m));
    // Over an empty list: `every` holds, `some` does not.
    assert!(holds_on(r#"every(header("X-None"), h => h == "x")"#, m));
    assert!(!holds_on(r#"some(header("X-None"), h => true)"#, m));
    // Inside a `fn`, and a `fn` called from a lambda.
    let r = rules(
        "fn is_exe(n: string) = n ends_with \".exe\"\n\
         fn any_exe() = some(attachments.name, n => is_exe(n))\n\
         rule t {\n  when any_exe()\n  then tag \"exe\"\n}\n",
    );
    assert_eq!(decide(&r, m).tags, ["exe"]);
}

#[test]
fn lambdas_are_checked() {
    assert_eq!(
        codes(r#"rule r { when some(attachments, a => a.size) then tag "x" }"#),
        ["E0108"]
    );
    assert_eq!(
        codes(r#"rule r { when some(subject, a => true) then tag "x" }"#),
        ["E0108"]
    );
    assert_eq!(
        codes(r#"rule r { when some(attachments, true) then tag "x" }"#),
        ["E0132"]
    );
    assert_eq!(
        codes(r#"rule r { when count(a => true) > 0 then tag "x" }"#),
        ["E0132"]
    );
    assert_eq!(
        codes(r#"rule r { when some(to, t => some(cc, c => c.domain == t.domain)) then tag "x" }"#),
        ["E0132"]
    );
    assert_eq!(
        codes(
            "fn f(d: string) = some(cc.domain, c => c == d)\nrule r { when some(to.domain, t => f(t)) then tag \"x\" }"
        ),
        ["E0132"]
    );
    assert_eq!(
        codes(r#"rule r { when some(attachments, a => a.nam == "x") then tag "x" }"#),
        ["E0109"]
    );
    // The captures of `matches … as` are not visible in a lambda.
    assert_eq!(
        codes(
            "rule r {\n  when subject matches /(\\w+)/ as m\n  then if some(to, t => t.local == m[1]) { tag \"x\" }\n}\n"
        ),
        ["E0132"]
    );
}

#[test]
fn local_reads_time_members_in_a_zone() {
    // NOW is 2026-11-22T07:00:00Z, a Sunday.
    assert!(holds(r#"local(now, "Europe/Berlin").hour == 8"#));
    assert!(holds(r#"local(now, "America/New_York").hour == 2"#));
    assert!(holds(
        r#"local(now, "Pacific/Kiritimati").hour == 21 and local(now, "Pacific/Kiritimati").weekday == "sunday""#
    ));
    assert!(holds(
        r#"local(now, "Pacific/Pago_Pago").weekday == "saturday" and local(now, "Pacific/Pago_Pago").day == 21"#
    ));
    assert!(holds(r#"local(now, "Asia/Kolkata").minute == 30"#));
    assert!(holds(r#"local(date, "Europe/Berlin").hour == 7"#));
    // Arithmetic keeps the zone; comparisons use the instant.
    assert!(holds(r#"(local(now, "Europe/Berlin") + 1h).hour == 9"#));
    assert!(holds(r#"local(now, "Asia/Tokyo") == now"#));
    assert!(holds(r#"local(now, "Asia/Tokyo") - now == 0s"#));
    // A zone known only at run time that is not a zone leaves UTC.
    assert!(holds(r#"local(now, subject).hour == 7"#));
}

#[test]
fn time_literals_compare_with_now() {
    assert!(holds(r#"now == time("2026-11-22T08:00:00+01:00")"#));
    assert!(holds(r#"now < time("2026-11-22T07:00:01Z")"#));
    assert!(holds(r#"now >= time("2026-11-22T07:00:00Z")"#));
    assert!(!holds(r#"now > time("2026-11-22T07:00:00Z")"#));
    assert!(holds(r#"time("2026-11-22T00:00:00+01:00").hour == 23"#));
    assert!(holds(r#"now - time("2026-11-21T07:00:00Z") == 1d"#));
    // A time literal is a constant: a `let` may hold it.
    let r = rules(
        "let deadline = time(\"2026-11-22T08:00:00+01:00\")\nrule t {\n  when now >= deadline\n  then tag \"due\"\n}\n",
    );
    assert_eq!(decide(&r, MAIL).tags, ["due"]);
    assert_eq!(
        codes(
            "let t = local(time(\"2026-11-22T08:00:00Z\"), \"UTC\")\nrule r {\n  when now == t\n  then tag \"x\"\n}\n"
        ),
        ["E0125"]
    );
}

#[test]
fn times_render_with_their_zone() {
    let r = rules(
        "rule t {\n  then tag \"${local(now, \"Europe/Berlin\")} ${now} ${time(\"2024-12-20T00:00:00+01:00\")}\"\n}\n",
    );
    assert_eq!(
        decide(&r, MAIL).tags,
        ["2026-11-22T08:00:00+01:00 2026-11-22T07:00:00Z 2024-12-19T23:00:00Z"]
    );
}

#[test]
fn bad_zones_and_time_literals_are_check_errors() {
    let rule = |cond: &str| format!("rule t {{\n  when {cond}\n  then tag \"x\"\n}}\n");
    assert_eq!(
        codes(&rule(r#"local(now, "Mars/Base").hour == 1"#)),
        ["E0140"]
    );
    assert_eq!(codes(&rule(r#"now < time("2024-12-20")"#)), ["E0140"]);
    assert_eq!(codes(&rule(r#"now < time(subject)"#)), ["E0140"]);
    assert_eq!(codes(&rule(r#"now < time(42)"#)), ["E0108"]);
    assert!(codes(&rule(r#"local(now, "UTC").hour == 1"#)).is_empty());
}

/// The test blocks of `source`, run by both engines: each failure list.
fn run_tests(source: &str) -> Vec<Result<(), Vec<String>>> {
    use weir_compiler::{Engine, Evaluator, run_case};
    let c = compile_files(&[("rules.flow", source)]);
    assert!(!c.has_errors(), "{}", rendered(&c));
    let ruleset = c.ruleset.expect("a ruleset");
    let loader: weir_compiler::loader::MemoryLoader = weir_compiler::loader::MemoryLoader::new();
    let mut out = Vec::new();
    for engine in [Engine::Interpreter, Engine::Native] {
        let (ev, _) = Evaluator::compile(&ruleset, engine);
        out.extend(
            ruleset
                .tests()
                .iter()
                .map(|case| run_case(&ev, case, &loader)),
        );
    }
    out
}

const WORLD_RULES: &str = r#"
rule slow_down {
  when rate("from:${envelope.from.address}", 1h) > 20
  then tempfail
}
rule dup {
  when duplicate(message_id, 1d)
  then discard
}
rule evening {
  when local(now, "Europe/Berlin").hour >= 18
  then tag "evening"
}
rule for_bob {
  when recipient.detail == "orders"
  then fileinto "Orders"
}
"#;

const WORLD_MAIL: &str = "  message \"\"\"\n    From: a@example.org\n    To: bob@example.com\n    Message-ID: <m1@example.org>\n\n    hi\n    \"\"\"\n";

#[test]
fn test_blocks_set_clock_recipient_counts_and_deliveries() {
    let tests = [
        "  rate \"from:a@example.org\" = 20\n  expect verdict tempfail\n",
        "  rate \"from:a@example.org\" = 19\n  expect verdict accept\n",
        "  recipient \"bob+orders@example.com\"\n  duplicate \"m1@example.org\"\n  expect verdict discard\n",
        "  duplicate \"m2@example.org\"\n  expect verdict accept\n",
        "  now \"2024-12-20T17:00:00Z\"\n  expect tag \"evening\"\n",
        "  now \"2024-12-20T16:59:00Z\"\n  expect not tag \"evening\"\n",
        "  recipient \"bob+orders@example.com\"\n  expect folder \"Orders\"\n",
        "  expect not folder \"Orders\"\n  expect verdict accept\n",
    ];
    let mut source = WORLD_RULES.to_string();
    for (i, body) in tests.iter().enumerate() {
        source.push_str(&format!("test \"t{i}\" {{\n{WORLD_MAIL}{body}}}\n"));
    }
    for (i, result) in run_tests(&source).into_iter().enumerate() {
        assert_eq!(result, Ok(()), "test t{}", i % tests.len());
    }
    // The same expectations without the world line fail.
    let wrong = format!("{WORLD_RULES}test \"w\" {{\n{WORLD_MAIL}  expect verdict tempfail\n}}\n");
    assert!(run_tests(&wrong).iter().all(Result::is_err));
}
