//! `rate()` through the milter of a live `weir serve`: a message whose
//! decision is a tempfail is not counted, so an MTA's retries never lock
//! the sender out (docs/language.md, `rate()`).

use crate::serve_support;

use serve_support::{Daemon, milter_send, temp_dir, write_config};

const RULES: &str = r#"
rule too_many {
  when rate("from:${envelope.from}", 1h) > 2
  then reject 550 "5.7.1" "Too many"
}
rule greylisted {
  when subject contains "defer"
  then tempfail
}
"#;

#[test]
fn tempfailed_messages_are_not_counted() {
    let dir = temp_dir("milter-rates");
    std::fs::write(dir.join("rules.flow"), RULES).expect("rules");
    let (http, milter) = write_config(&dir, "", "");
    let daemon = Daemon::start(&dir, http, milter);
    // rate() runs first and sees each of these, but they are deferred.
    for n in 0..4 {
        let r = milter_send(
            daemon.milter,
            "a@example.test",
            "defer me",
            &format!("d{n}"),
        );
        assert!(r.contains("451") || r.contains("Tempfail"), "{r}");
    }
    for n in 0..2 {
        let r = milter_send(daemon.milter, "a@example.test", "hello", &format!("ok{n}"));
        assert!(
            r.contains("Accept") || r.contains("Continue"),
            "message {n}: {r}"
        );
    }
    let r = milter_send(daemon.milter, "a@example.test", "hello", "third");
    assert!(
        r.contains("550"),
        "the third counted message is refused: {r}"
    );
}
