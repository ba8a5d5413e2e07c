//! Python's email test messages: every one parses, and a few are read
//! exactly as a mail reader would.

use crate::common;
use weir_stdlib::{Limits, Message};

#[test]
fn every_python_test_message_parses() {
    let messages = common::python_messages();
    if messages.is_empty() {
        eprintln!("skipped: Python's test/test_email/data is not installed");
        return;
    }
    for (name, bytes) in &messages {
        let m = match Message::parse(bytes, &Limits::default()) {
            Ok(m) => m,
            Err(e) => panic!("{name}: refused: {e}"),
        };
        common::touch_everything(&m);
        assert!(!m.body_text().contains("\r\n"), "{name}: body keeps CRLF");
        // Parsing is a function of the bytes.
        let again = Message::parse(bytes, &Limits::default()).ok();
        assert_eq!(
            again.as_ref().map(|a| a.body_text()),
            Some(m.body_text()),
            "{name}"
        );
        assert_eq!(again.map(|a| a.headers()), Some(m.headers()), "{name}");
    }
}

fn python_message(name: &str) -> Option<Message> {
    let (_, bytes) = common::python_messages()
        .into_iter()
        .find(|(n, _)| n == name)?;
    Message::parse(&bytes, &Limits::default()).ok()
}

#[test]
fn python_messages_read_as_expected() {
    if common::python_email_data().is_none() {
        eprintln!("skipped: Python's test/test_email/data is not installed");
        return;
    }
    // msg_01: a plain message; the display name is a comment.
    let m = python_message("msg_01.txt").expect("msg_01.txt");
    assert_eq!(m.subject(), "This is a test message");
    assert_eq!(m.from()[0].address, "bbb@ddd.com");
    assert_eq!(m.from()[0].name, "John X. Doe");
    assert_eq!(m.message_id(), "15090.61304.110929.45684@aaa.zzz.org");
    assert!(
        m.body_text().contains("Hi,\nDo you like this message?"),
        "{:?}",
        m.body_text()
    );
    // msg_02: a multipart/digest of enclosed messages.
    let digest = python_message("msg_02.txt").expect("msg_02.txt");
    assert!(
        digest
            .attachments()
            .iter()
            .any(|a| a.content_type == "message/rfc822")
    );
}
