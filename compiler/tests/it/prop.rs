//! Evaluation never panics, whatever the message: random bytes, mutated
//! real messages, odd envelopes, on a ruleset using every kind of test.

use crate::common::*;
use proptest::prelude::*;
use weir_compiler::{EvalOptions, MemoryRates};
use weir_stdlib::{Limits, Message, Transaction};

const RULES: &str = r#"
let nets = [10.0.0.0/8, 2001:db8::/32, 192.0.2.1]
let words = ["invoice", "refund", "ünïcödé"]
fn has(s: string) = subject contains s or body contains s
template t {
  subject = "Re: ${subject} ${from} ${date} ${now - date}"
  body = """
    ${body}
    ${attachments.name} ${header("X").raw} ${to[7].domain}
    """
}
rule a priority 1 {
  when subject matches /(\w+) #(\d+)/i as m and all to.domain ends_with [".com", ".org"]
  then { add_header "X-T" m[2]; tag m[1]; score +1.5 }
}
rule b shadow {
  when rate("${envelope.from}", 1h) > 1
  then { reject 554 "5.7.0" "slow down ${envelope.from.domain}"; }
}
rule c {
  when client.ip in nets or has("payment") or body.html contains "<b>" or from.detail != ""
  then {
    if score > 1 and matched(a) { notify "x" with {s: "${score}", d: "${date}"} template t } else { reply template t }
    fileinto "A/${from.domain}"
  }
  else log "${size} ${count(cc)} ${message_id} ${reply_to.name} ${sender.local} ${lower(subject)}"
}
rule d {
  when all attachments.size < 10M and attachments.type == "text/plain" and now - date > 1d and subject in words
  then quarantine "${attachments.name}"
}
rule e {
  when header("Received") exists and not (header("X-Spam") == "yes") and len(subject) > 3 and upper(trim(subject)) starts_with "A"
  then stop
}
"#;

const SAMPLE: &str = "From: \"A\" <a+b@example.com>\r\nTo: x@y.org, =?utf-8?q?Z=C3=A9?= <z@w.com>\r\nSubject: =?utf-8?b?SW52b2ljZSAjMTI=?=\r\nDate: Tue, 1 Nov 2022 10:00:00 +0100\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>hi <b>there</b></p>\r\n--b\r\nContent-Type: application/pdf; name=\"x.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n";

/// Evaluates with and without `explain`, checking the trace's spans;
/// the decision without `explain`, or `None` when the message is refused.
fn run(
    bytes: &[u8],
    from: Option<&str>,
    to: &[String],
    ip: Option<std::net::IpAddr>,
) -> Option<weir_compiler::Decision> {
    let r = rules(RULES);
    let message = Message::parse(bytes, &Limits::default()).ok()?;
    let tx = Transaction::with_defaults(message, from, to, ip, Some("h"), NOW);
    let mut rates = MemoryRates::default();
    let mut first = None;
    for explain in [false, true] {
        let d = r.evaluate(
            &tx,
            &mut rates,
            &EvalOptions {
                explain,
                dry_run: false,
            },
        );
        for t in &d.trace {
            if let Some(e) = &t.evidence {
                assert!(e.span.0 <= e.span.1 && e.span.1 <= e.value.len());
            }
        }
        first.get_or_insert(d);
    }
    first
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000), from in proptest::option::of(".{0,20}")) {
        let _ = run(&bytes, from.as_deref(), &[], None);
    }

    #[test]
    fn mutated_messages_never_panic(cuts in proptest::collection::vec((0usize..400, any::<u8>()), 0..20), ip in any::<[u8; 4]>(), to in proptest::collection::vec("[a-z@.]{0,12}", 0..3)) {
        let mut bytes = SAMPLE.as_bytes().to_vec();
        for (at, b) in cuts {
            if bytes.is_empty() { break; }
            let at = at % bytes.len();
            if b % 3 == 0 { bytes.truncate(at); } else { bytes[at] = b; }
        }
        let _ = run(&bytes, None, &to, Some(std::net::IpAddr::from(ip)));
    }
}

#[test]
fn sample_message_evaluates() {
    // The subject decodes to "Invoice #12" and every `To` domain ends in
    // .org or .com: rule `a` holds and tags the captured word; the HTML
    // part holds `<b>`, so `c` holds and files by the sender's domain.
    let d = run(SAMPLE.as_bytes(), None, &[], None).expect("the sample parses");
    assert!(d.matched.iter().any(|m| m == "a"), "{:?}", d.matched);
    assert_eq!(d.tags, vec!["Invoice".to_string()]);
    assert_eq!(d.folder.as_deref(), Some("A/example.com"));
    // An empty message from the null sender: no subject, so `a` cannot hold.
    let empty = run(b"", Some("<>"), &[], None).expect("an empty message parses");
    assert!(
        !empty.matched.iter().any(|m| m == "a"),
        "{:?}",
        empty.matched
    );
}
