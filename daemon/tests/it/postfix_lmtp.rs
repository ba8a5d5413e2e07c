//! `weir serve` as Postfix's LMTP delivery agent (issue #5): a private
//! Postfix on loopback whose `local_transport` is `lmtp:inet:` to the
//! daemon; mail submitted over SMTP must land in the right Maildir++
//! folder with the right headers, and a per-recipient refusal must reach
//! Postfix as that recipient's bounce or deferral.
//!
//! Needs `postfix`, `postqueue`, `script` and root; without them the test
//! prints `skipped: ...` and passes, unless `WEIR_REQUIRE_MAIL_TOOLS=1`
//! (CI), where it fails.

use crate::postfix_support;
use crate::serve_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use postfix_support::{Postfix, missing_mail_tools, send};
use serve_support::{Daemon, files, free_port, header_values, lmtp_table, temp_dir, write_config};

const TOOLS: &[&str] = &["postfix", "postqueue", "script"];

/// How long Postfix gets to deliver (a bound, not a timing assertion).
const PATIENCE: Duration = Duration::from_secs(40);

/// Rules that only LMTP acts on (`recipient`), plus header edits that show
/// in the delivered copy. The milter runs the same rules; its headers are
/// replaced by LMTP's, so the copy carries each `X-Weir-*` header once.
const RULES: &str = r#"
rule closed {
  when recipient.local == "closed"
  then reject 550 "5.1.1" "Mailbox closed by weir"
}
rule support {
  when subject contains "ticket" and recipient.local == "support"
  then {
    fileinto "Support/Tickets"
    flag "\\Flagged"
    tag "ticket"
    add_header "X-Queue" "support"
  }
}
"#;

/// Waits until `dir` holds a file; its path.
fn wait_file(dir: &Path, context: &dyn Fn() -> String) -> PathBuf {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(f) = files(dir).into_iter().next() {
            return f;
        }
        assert!(
            Instant::now() < deadline,
            "nothing delivered into {}:\n{}",
            dir.display(),
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn postfix_delivers_over_lmtp_into_maildir_folders() {
    if missing_mail_tools(TOOLS, true).is_some() {
        return;
    }
    let dir = temp_dir("postfix-lmtp");
    std::fs::write(dir.join("rules.flow"), RULES).expect("rules");
    let lmtp = free_port();
    let extra = lmtp_table(&dir, &format!("inet:127.0.0.1:{lmtp}"));
    let (http, milter) = write_config(&dir, "", &extra);
    let daemon = Daemon::start(&dir, http, milter);
    let postfix = Postfix::start(&dir.join("postfix"), free_port(), milter, lmtp);
    let context = || {
        format!(
            "--- postfix.log:\n{}\n--- weir log:\n{}",
            postfix.log(),
            daemon.log()
        )
    };

    let message = "From: Customer <customer@example.org>\r\nTo: support@example.test\r\nSubject: New ticket: printer\r\nMessage-ID: <ticket-1@example.org>\r\n\r\nThe printer is on fire.\r\n.\r\n..and a dotted line\r\n";
    let sent = send(
        postfix.smtp,
        "customer@example.org",
        // The milter binds `recipient` to the first recipient: alice
        // first keeps the milter from adding `X-Queue` itself.
        &[
            "alice@example.test",
            "support@example.test",
            "closed@example.test",
        ],
        message,
    );
    assert!(
        sent.queue_id.is_some(),
        "Postfix took the message: {sent:?}"
    );

    // support: the folder, the flag, the headers.
    let folder = dir.join("mail/example.test/support/.Support.Tickets");
    let copy = wait_file(&folder.join("cur"), &context);
    assert!(copy.to_string_lossy().ends_with(":2,F"), "{copy:?}");
    assert!(folder.join("maildirfolder").exists());
    let text = std::fs::read_to_string(&copy).expect("support's copy");
    assert_eq!(header_values(&text, "X-Weir-Tags"), ["ticket"], "{text}");
    assert_eq!(
        header_values(&text, "X-Weir-Folder"),
        ["Support/Tickets"],
        "{text}"
    );
    assert_eq!(header_values(&text, "X-Queue"), ["support"], "{text}");
    assert!(
        !header_values(&text, "Received").is_empty(),
        "Postfix's trace header"
    );
    assert!(
        text.contains("\n\nThe printer is on fire.\n.\n..and a dotted line\n"),
        "{text}"
    );

    // alice: INBOX, no rule headers.
    let inbox = wait_file(&dir.join("mail/example.test/alice/new"), &context);
    let text = std::fs::read_to_string(&inbox).expect("alice's copy");
    assert!(header_values(&text, "X-Weir-Tags").is_empty(), "{text}");
    assert!(header_values(&text, "X-Weir-Folder").is_empty(), "{text}");

    // closed: refused at end of DATA for that recipient only.
    let line = {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let log = postfix.log();
            if let Some(l) = log
                .lines()
                .find(|l| l.contains("to=<closed@example.test>") && l.contains("status=bounced"))
            {
                break l.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no bounce for closed:\n{}",
                context()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert!(line.contains("Mailbox closed by weir"), "{line}");
    assert!(!dir.join("mail/example.test/closed").exists());
    let delivered = postfix
        .log()
        .lines()
        .filter(|l| l.contains("/lmtp[") && l.contains("status=sent"))
        .count();
    assert!(delivered >= 2, "{}", context());
}
