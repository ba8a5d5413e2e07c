//! Rules never lose or defer mail forever, against a live `weir serve`
//! over LMTP: folder names are mapped the way Dovecot stores them (a name
//! that still cannot be stored goes to INBOX with a warning in the audit
//! entry), and `rate()` does not count a deferred copy.

use crate::serve_support;

use std::path::{Path, PathBuf};

use serve_support::{
    Daemon, TempDir, files, free_port, lmtp_deliver, lmtp_table, temp_dir, write_config,
};

/// A daemon with `[lmtp]` on TCP, the Maildir root and the LMTP port.
struct Lmtp {
    daemon: Daemon,
    mail: PathBuf,
    port: u16,
    /// Removed after the daemon stops.
    _dir: TempDir,
}

fn start(name: &str, rules: &str, lmtp_extra: &str) -> Lmtp {
    let dir = temp_dir(&format!("lmtp-sem-{name}"));
    std::fs::write(dir.join("rules.flow"), rules).expect("rules");
    let port = free_port();
    let table = format!(
        "{}{lmtp_extra}\n",
        lmtp_table(&dir, &format!("inet:127.0.0.1:{port}"))
    );
    let (http, milter) = write_config(&dir, "", &table);
    let daemon = Daemon::start(&dir, http, milter);
    Lmtp {
        mail: dir.join("mail"),
        port,
        daemon,
        _dir: dir,
    }
}

fn message(subject: &str) -> String {
    format!(
        "From: s@example.test\nTo: x@example.test\nSubject: {subject}\nMessage-ID: <{subject}@t>\n\nbody\n"
    )
}

/// The messages delivered into one folder directory (`new/`).
fn delivered(dir: &Path) -> usize {
    files(&dir.join("new")).len()
}

const FOLDER_RULES: &str = r#"
rule dovecot_spelling {
  when subject contains "archive"
  then fileinto "INBOX.Archive"
}
rule by_detail {
  when subject contains "tags"
  then fileinto "Tags/${recipient.detail}"
}
rule unstorable {
  when subject contains "broken"
  then fileinto "Tags/${recipient.detail}/x"
}
rule umlaut {
  when subject contains "drafts"
  then fileinto "Entwürfe"
}
"#;

#[test]
fn folder_names_never_defer_mail() {
    let l = start("folders", FOLDER_RULES, "");
    let carol = l.mail.join("example.test/carol");

    let r = lmtp_deliver(
        l.port,
        "s@example.test",
        &["carol@example.test"],
        &message("archive"),
    );
    assert!(r[0].starts_with("250"), "{r:?}");
    assert_eq!(delivered(&carol.join(".Archive")), 1);

    let r = lmtp_deliver(
        l.port,
        "s@example.test",
        &["carol+amazon.com@example.test"],
        &message("tags"),
    );
    assert!(r[0].starts_with("250"), "{r:?}");
    assert_eq!(delivered(&carol.join(".Tags.amazon\\2ecom")), 1);

    let r = lmtp_deliver(
        l.port,
        "s@example.test",
        &["carol@example.test"],
        &message("drafts"),
    );
    assert!(r[0].starts_with("250"), "{r:?}");
    assert_eq!(delivered(&carol.join(".Entw&APw-rfe")), 1);

    // `Tags//x` cannot be stored: INBOX, with a warning in the audit entry.
    let r = lmtp_deliver(
        l.port,
        "s@example.test",
        &["carol@example.test"],
        &message("broken"),
    );
    assert!(r[0].starts_with("250"), "{r:?}");
    assert_eq!(delivered(&carol), 1, "the copy is in INBOX");
    let audit = l.daemon.get("/v1/actions?since=0").json();
    let entry = audit
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["message_id"] == "broken@t")
        .expect("an entry for the broken folder")
        .clone();
    assert_eq!(entry["folder"], "Tags//x");
    let warning = entry["warnings"][0].as_str().unwrap_or_default();
    assert!(
        warning.contains("\"Tags//x\" cannot be stored") && warning.contains("INBOX"),
        "{entry}"
    );
    assert!(l.daemon.log().contains("cannot be stored"), "logged too");
}

#[test]
fn utf8_folders_keep_names_in_utf8() {
    let l = start("utf8", FOLDER_RULES, "utf8_folders = true");
    let r = lmtp_deliver(
        l.port,
        "s@example.test",
        &["dave@example.test"],
        &message("drafts"),
    );
    assert!(r[0].starts_with("250"), "{r:?}");
    assert_eq!(delivered(&l.mail.join("example.test/dave/.Entwürfe")), 1);
}

const RATE_AFTER_RULES: &str = r#"
rule too_many {
  when rate("from:${envelope.from}", 1h) > 2
  then reject 550 "5.7.1" "Too many"
}
rule full {
  when recipient.local == "full"
  then tempfail 452 "4.2.2" "Mailbox full"
}
"#;

#[test]
fn a_message_deferred_for_every_recipient_is_not_counted() {
    let l = start("rate-after", RATE_AFTER_RULES, "");
    // rate() ran (and would count) but every copy was deferred.
    for _ in 0..4 {
        let r = lmtp_deliver(
            l.port,
            "b@example.test",
            &["full@example.test"],
            &message("m"),
        );
        assert!(r[0].starts_with("452"), "{r:?}");
    }
    // One copy deferred, one delivered: the message counts once.
    let r = lmtp_deliver(
        l.port,
        "b@example.test",
        &["full@example.test", "u@example.test"],
        &message("m"),
    );
    assert!(r[0].starts_with("452") && r[1].starts_with("250"), "{r:?}");
    let r = lmtp_deliver(l.port, "b@example.test", &["u@example.test"], &message("m"));
    assert!(r[0].starts_with("250"), "second counted: {r:?}");
    let r = lmtp_deliver(l.port, "b@example.test", &["u@example.test"], &message("m"));
    assert!(r[0].starts_with("550"), "third counted: {r:?}");
}

const DUPLICATE_RULES: &str = r#"
rule dedupe {
  when duplicate(message_id, 1d)
  then { tag "duplicate"; discard }
}
rule greylisted {
  when subject contains "defer"
  then tempfail
}
"#;

fn with_id(id: &str, subject: &str) -> String {
    format!(
        "From: s@example.test\nTo: x@example.test\nSubject: {subject}\nMessage-ID: <{id}>\n\n{subject}\n"
    )
}

#[test]
fn duplicate_records_only_delivered_copies_per_recipient() {
    let l = start("duplicate", DUPLICATE_RULES, "");
    let bob = l.mail.join("example.test/bob");
    let carol = l.mail.join("example.test/carol");
    // Deferred: nothing recorded, so the retry is not its own duplicate.
    let r = lmtp_deliver(
        l.port,
        "s@example.test",
        &["bob@example.test"],
        &with_id("m1@t", "defer"),
    );
    assert!(r[0].starts_with("451"), "{r:?}");
    let r = lmtp_deliver(
        l.port,
        "s@example.test",
        &["bob@example.test"],
        &with_id("m1@t", "ok"),
    );
    assert!(r[0].starts_with("250"), "{r:?}");
    assert_eq!(delivered(&bob), 1, "the retry is delivered");
    // The same message again to bob is a duplicate; to carol it is not.
    let r = lmtp_deliver(
        l.port,
        "s@example.test",
        &["bob@example.test", "carol@example.test"],
        &with_id("m1@t", "ok"),
    );
    assert!(r[0].contains("not delivered"), "{r:?}");
    assert!(r[1].contains("delivered") && !r[1].contains("not"), "{r:?}");
    assert_eq!(delivered(&bob), 1, "bob's duplicate was discarded");
    assert_eq!(delivered(&carol), 1);
    // The audit log shows the one duplicate.
    let audit = l.daemon.get("/v1/actions?since=0").json();
    let tagged = audit
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["tags"][0] == "duplicate")
        .count();
    assert_eq!(tagged, 1, "{audit}");
}
