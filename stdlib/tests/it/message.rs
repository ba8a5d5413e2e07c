//! The message model (docs/language.md ("The message model")) on hand-written messages.

use weir_stdlib::{Address, Limits, Message, MessageError, Transaction};

fn parse(text: &str) -> Message {
    parse_bytes(text.as_bytes())
}

fn parse_bytes(bytes: &[u8]) -> Message {
    match Message::parse(bytes, &Limits::default()) {
        Ok(m) => m,
        Err(e) => panic!("refused: {e}"),
    }
}

/// Writes a message with CRLF line endings from lines.
fn crlf(lines: &[&str]) -> String {
    lines.join("\r\n")
}

#[test]
fn header_is_unfolded_decoded_and_trimmed_per_occurrence() {
    let m = parse(&crlf(&[
        "Received: from a",
        "\tby b",
        "Subject: =?utf-8?q?Caf=C3=A9?= =?utf-8?B?IGF1IGxhaXQ=?=  and  more ",
        "X-Tag:   one",
        "x-tag: two",
        "From: Jane <jane@x>",
        "",
        "body",
    ]));
    assert_eq!(m.header("Received"), ["from a\tby b"]);
    assert_eq!(m.header("SUBJECT"), ["Café au lait  and  more"]);
    assert_eq!(m.subject(), "Café au lait  and  more");
    assert_eq!(m.header("X-Tag"), ["one", "two"]);
    assert_eq!(m.header("From"), ["Jane <jane@x>"]);
    assert!(m.header("Missing").is_empty());
    assert_eq!(
        m.header_raw("Subject"),
        ["=?utf-8?q?Caf=C3=A9?= =?utf-8?B?IGF1IGxhaXQ=?=  and  more"]
    );
    assert_eq!(m.headers().len(), 5);
    assert_eq!(m.headers()[1].0, "Subject");
}

#[test]
fn subject_and_message_id_take_the_first_occurrence() {
    let m = parse("Subject: one\nSubject: two\nMessage-ID:  <abc@host>\nMessage-ID: <z@z>\n\nx");
    assert_eq!(m.subject(), "one");
    assert_eq!(m.message_id(), "abc@host");
    let none = parse("X: y\n\nx");
    assert_eq!(none.subject(), "");
    assert_eq!(none.message_id(), "");
}

#[test]
fn address_headers_every_occurrence_groups_flattened() {
    let m = parse(&crlf(&[
        "From: =?utf-8?q?J=C3=B6rg?= <joerg+lists@Example.COM>",
        "To: a@x, \"Doe, John\" <john@y>",
        "To: friends: b@z, c@z;",
        "Cc: undisclosed-recipients:;",
        "Reply-To: r@x (Replies)",
        "Sender: s@x",
        "",
        "",
    ]));
    let from = m.from();
    assert_eq!(from.len(), 1);
    assert_eq!(
        from[0],
        Address {
            address: "joerg+lists@Example.COM".into(),
            local: "joerg+lists".into(),
            domain: "Example.COM".into(),
            detail: "lists".into(),
            name: "Jörg".into(),
        }
    );
    let to: Vec<_> = m
        .to()
        .into_iter()
        .map(|a| (a.address.to_string(), a.name.to_string()))
        .collect();
    assert_eq!(
        to,
        [
            ("a@x".to_string(), String::new()),
            ("john@y".into(), "Doe, John".into()),
            ("b@z".into(), String::new()),
            ("c@z".into(), String::new())
        ]
    );
    assert!(m.cc().is_empty());
    assert_eq!(m.reply_to()[0].address, "r@x");
    assert_eq!(m.sender()[0].address, "s@x");
}

#[test]
fn address_parse_forms() {
    let a = Address::parse("\"Jane Doe\" <jane+news+x@example.com>");
    assert_eq!(a.local, "jane+news+x");
    assert_eq!(a.detail, "news+x");
    assert_eq!(a.domain, "example.com");
    assert_eq!(a.name, "Jane Doe");
    assert_eq!(Address::parse("Jane <a@b>").name, "Jane");
    assert_eq!(Address::parse("<a@b>").address, "a@b");
    assert_eq!(Address::parse(" a@b ").address, "a@b");
    assert_eq!(Address::parse("=?utf-8?q?Z=C3=BC?= <z@b>").name, "Zü");
    for null in ["", "<>", "  <>  "] {
        assert_eq!(Address::parse(null), Address::default(), "{null:?}");
    }
    let no_at = Address::parse("postmaster");
    assert_eq!(
        (no_at.local.as_str(), no_at.domain.as_str()),
        ("postmaster", "")
    );
}

#[test]
fn date_parses_to_unix_seconds() {
    let m = parse("Date: Sun, 22 Nov 2026 08:00:00 +0100\n\nx");
    assert_eq!(m.date(), Some(1_795_330_800));
    assert_eq!(parse("Date: not a date\n\nx").date(), None);
    assert_eq!(parse("X: y\n\nx").date(), None);
}

#[test]
fn quoted_printable_and_base64_bodies() {
    let qp = parse(&crlf(&[
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        "Caf=C3=A9 au =",
        "lait",
    ]));
    assert_eq!(qp.body_text(), "Café au lait");
    let b64 = parse(&crlf(&[
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: base64",
        "",
        "SGVsbG8sIHfDtnJsZCE=",
    ]));
    assert_eq!(b64.body_text().trim_end(), "Hello, wörld!");
}

#[test]
fn body_lines_keeps_the_line_breaks_body_joins() {
    let m = parse(&crlf(&[
        "Subject: wrapped",
        "",
        "  Your password",
        "expires today.\t",
        "",
        "",
        "Bye",
    ]));
    assert_eq!(m.body_text(), "Your password expires today.\nBye");
    assert_eq!(
        m.body_lines(),
        "  Your password\r\nexpires today.\t\r\n\r\n\r\nBye"
    );
    // Quoted-printable soft breaks are decoding, not line breaks.
    let qp = parse(&crlf(&[
        "Content-Transfer-Encoding: quoted-printable",
        "",
        "pass=",
        "word",
        "expires",
    ]));
    assert_eq!(qp.body_lines(), "password\r\nexpires");
    // Every alternative, in order, HTML as text, as Sieve's `body :text`.
    let alt = parse(ALTERNATIVE);
    assert_eq!(alt.body_text(), "Hello plain");
    assert_eq!(alt.body_lines(), "Hello HTML\nHello plain");
    // No header block: every byte is body.
    assert_eq!(parse("just\r\ntext").body_lines(), "just\r\ntext");
}

#[test]
fn body_raw_is_the_body_as_received() {
    let b64 = parse(&crlf(&[
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: base64",
        "",
        "SGVsbG8sIHfDtnJsZCE=",
        "",
    ]));
    assert_eq!(b64.body_raw(), b"SGVsbG8sIHfDtnJsZCE=\r\n");
    let alt = parse(ALTERNATIVE);
    assert!(
        alt.body_raw()
            .starts_with(b"preamble\r\n--b1\r\nContent-Type: text/html")
    );
    assert!(alt.body_raw().ends_with(b"--b1--\r\n"));
    assert_eq!(parse("no headers\n").body_raw(), b"no headers\n");
    assert_eq!(parse("Subject: only headers").body_raw(), b"");
}

#[test]
fn charsets_become_utf8() {
    let latin1 = parse_bytes(b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\nd\xe9j\xe0 vu");
    assert_eq!(latin1.body_text(), "déjà vu");
    let utf8 = parse_bytes("Content-Type: text/plain; charset=UTF-8\r\n\r\nnaïve".as_bytes());
    assert_eq!(utf8.body_text(), "naïve");
    let invalid = parse_bytes(b"Content-Type: text/plain; charset=utf-8\r\n\r\nok \xff\xfe end");
    assert_eq!(invalid.body_text(), "ok \u{fffd}\u{fffd} end");
    let header = parse_bytes(b"Subject: caf\xc3\xa9 \xff\n\nx");
    assert_eq!(header.subject(), "café \u{fffd}");
}

const ALTERNATIVE: &str = "From: a@x\r
Content-Type: multipart/alternative; boundary=\"b1\"\r
\r
preamble\r
--b1\r
Content-Type: text/html; charset=utf-8\r
\r
<p>Hello <b>HTML</b></p>\r
--b1\r
Content-Type: text/plain; charset=utf-8\r
\r
Hello plain\r
--b1--\r
";

#[test]
fn alternative_prefers_plain_text_and_keeps_html() {
    let m = parse(ALTERNATIVE);
    assert_eq!(m.body_text(), "Hello plain");
    assert_eq!(m.body_html(), "<p>Hello <b>HTML</b></p>");
    assert!(m.attachments().is_empty());
}

#[test]
fn html_only_mail_becomes_text() {
    let m = parse(&crlf(&[
        "Content-Type: text/html; charset=utf-8",
        "",
        "<html><head><title>x</title><style>p {color: red}</style></head>",
        "<body><p>Dear   customer,</p><p>Pay&nbsp;now &amp; <a href=\"http://x\">save</a>!<br>Thanks</p>",
        "<script>alert(1)</script></body></html>",
    ]));
    assert_eq!(m.body_text(), "Dear customer,\nPay now & save!\nThanks");
    assert!(m.body_html().contains("<p>Dear   customer,</p>"));
}

#[test]
fn alternative_with_only_html_uses_it() {
    let m = parse(
        "Content-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/html\n\n<div>only</div><div>html</div>\n--b--\n",
    );
    assert_eq!(m.body_text(), "only\nhtml");
}

const MIXED: &str = "From: a@x\r
Content-Type: multipart/mixed; boundary=\"outer\"\r
\r
--outer\r
Content-Type: multipart/alternative; boundary=\"inner\"\r
\r
--inner\r
Content-Type: text/plain\r
\r
See attached.\r
--inner\r
Content-Type: multipart/related; boundary=\"rel\"\r
\r
--rel\r
Content-Type: text/html\r
\r
<p>See <img src=\"cid:logo\"></p>\r
--rel\r
Content-Type: image/png\r
Content-Transfer-Encoding: base64\r
\r
iVBORw0KGgo=\r
--rel--\r
--inner--\r
--outer\r
Content-Type: application/pdf; name=\"ignored.pdf\"\r
Content-Disposition: attachment;\r
 filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r
Content-Transfer-Encoding: base64\r
\r
JVBERi0xLjQK\r
--outer\r
Content-Type: text/plain; name=\"notes.txt\"\r
Content-Disposition: attachment\r
\r
secret notes\r
--outer\r
Content-Type: application/octet-stream; name=\"=?utf-8?q?d=C3=A9j=C3=A0.bin?=\"\r
\r
xyz\r
--outer\r
Content-Type: text/plain\r
\r
Footer text\r
--outer--\r
";

#[test]
fn attachments_and_body_of_a_mixed_message() {
    let m = parse(MIXED);
    assert_eq!(m.body_text(), "See attached.\nFooter text");
    assert_eq!(m.body_html(), "<p>See <img src=\"cid:logo\"></p>");
    let got: Vec<_> = m
        .attachments()
        .iter()
        .map(|a| (a.name.as_str(), a.content_type.as_str(), a.size))
        .collect();
    assert_eq!(
        got,
        [
            ("", "image/png", 8),
            ("résumé.pdf", "application/pdf", 9),
            ("notes.txt", "text/plain", 12),
            ("déjà.bin", "application/octet-stream", 3),
        ]
    );
}

#[test]
fn enclosed_message_is_one_attachment() {
    let inner = "Subject: inner\r\nContent-Type: text/plain\r\n\r\ninner body text\r\n";
    let m = parse(&format!(
        "Subject: outer\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nouter body\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n{inner}--b--\r\n"
    ));
    assert_eq!(m.subject(), "outer");
    assert_eq!(m.body_text(), "outer body");
    assert_eq!(m.attachments().len(), 1);
    assert_eq!(m.attachments()[0].content_type, "message/rfc822");
    let size = m.attachments()[0].size as usize;
    assert!(
        size.abs_diff(inner.len()) <= 2,
        "size {size} vs {}",
        inner.len()
    );
}

#[test]
fn non_text_single_part_is_an_attachment() {
    let m = parse("Content-Type: image/jpeg\nContent-Transfer-Encoding: base64\n\n/9j/4AAQ\n");
    assert_eq!(m.body_text(), "");
    assert_eq!(m.attachments().len(), 1);
    assert_eq!(m.attachments()[0].content_type, "image/jpeg");
    assert_eq!(m.attachments()[0].size, 6);
}

#[test]
fn no_header_block_means_everything_is_body() {
    let garbage = parse("just some words\nand: more\n");
    assert!(garbage.headers().is_empty());
    assert_eq!(garbage.body_text(), "just some words and: more");
    let blank_first = parse("\r\nSubject: not a header\r\n");
    assert!(blank_first.headers().is_empty());
    assert_eq!(blank_first.subject(), "");
    assert_eq!(blank_first.body_text(), "Subject: not a header");
    let binary = parse_bytes(&[0xff, 0x00, b':', 0x80, b'\n', b'x']);
    assert!(binary.headers().is_empty());
    assert_eq!(binary.body_text(), "\u{fffd}\0:\u{fffd} x");
    let empty = parse("");
    assert_eq!((empty.body_text(), empty.size()), ("", 0));
}

#[test]
fn missing_separator_starts_the_body_at_the_first_non_header_line() {
    let m = parse("Subject: hi\nthis line is body\nX-Not: header\n");
    assert_eq!(m.header("Subject"), ["hi"]);
    assert!(m.header("X-Not").is_empty());
    assert_eq!(m.body_text(), "this line is body X-Not: header");
}

#[test]
fn mbox_from_line_is_skipped() {
    let m = parse("From jane@x Mon Jan  1 12:00:00 2026\nSubject: hi\n\nbody\n");
    assert_eq!(m.subject(), "hi");
    assert_eq!(m.body_text(), "body");
}

#[test]
fn truncated_multipart_is_read_as_far_as_it_goes() {
    let m = parse(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nfirst part\n--b\nContent-Type: application/zip; name=a.zip\nContent-Transfer-Encoding: base64\n\nUEsDBAoAAAAA",
    );
    assert!(m.body_text().contains("first part"), "{:?}", m.body_text());
    assert_eq!(m.attachments().len(), 1);
    assert_eq!(m.attachments()[0].name, "a.zip");
}

#[test]
fn size_and_raw_are_the_bytes_received() {
    let text = "Subject: x\r\n\r\nbody\r\n";
    let m = parse(text);
    assert_eq!(m.size(), text.len() as u64);
    assert_eq!(m.raw(), text.as_bytes());
    assert_eq!(m.body_text(), "body");
}

#[test]
fn limits_refuse_large_many_headers_and_deep_messages() {
    let small = Limits {
        max_message_size: 10,
        ..Limits::default()
    };
    assert_eq!(
        Message::parse(b"Subject: too long\n\n", &small).err(),
        Some(MessageError::TooLarge {
            size: 19,
            limit: 10
        })
    );
    let few = Limits {
        max_headers: 3,
        ..Limits::default()
    };
    let three = "A: 1\nB: 2\nC: 3\n\nx";
    assert!(Message::parse(three.as_bytes(), &few).is_ok());
    let four = "A: 1\nB: 2\nC: 3\nD: 4\n\nx";
    assert_eq!(
        Message::parse(four.as_bytes(), &few).err(),
        Some(MessageError::TooManyHeaders { limit: 3 })
    );
}

/// A message whose innermost text part is `depth` multiparts deep.
fn nested(depth: usize) -> String {
    let mut msg = String::from("Subject: deep\r\n");
    for level in 0..depth {
        msg.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n"
        ));
    }
    msg.push_str("Content-Type: text/plain\r\n\r\ninnermost\r\n");
    for level in (0..depth).rev() {
        msg.push_str(&format!("--b{level}--\r\n"));
    }
    msg
}

#[test]
fn mime_depth_limit() {
    let limits = Limits {
        max_mime_depth: 5,
        ..Limits::default()
    };
    let ok = Message::parse(nested(5).as_bytes(), &limits).map_err(|e| e.to_string());
    assert_eq!(
        ok.map(|m| m.body_text().trim().to_string()),
        Ok("innermost".to_string())
    );
    assert_eq!(
        Message::parse(nested(6).as_bytes(), &limits).err(),
        Some(MessageError::TooDeep { limit: 5 })
    );
    assert_eq!(
        Message::parse(nested(40).as_bytes(), &Limits::default()).err(),
        Some(MessageError::TooDeep { limit: 20 })
    );
}

#[test]
fn enclosed_messages_count_towards_depth() {
    let mut msg = String::from("Subject: s\r\nContent-Type: text/plain\r\n\r\nx\r\n");
    for _ in 0..4 {
        msg = format!("Subject: wrap\r\nContent-Type: message/rfc822\r\n\r\n{msg}");
    }
    let limits = Limits {
        max_mime_depth: 3,
        ..Limits::default()
    };
    assert_eq!(
        Message::parse(msg.as_bytes(), &limits).err(),
        Some(MessageError::TooDeep { limit: 3 })
    );
    assert!(
        Message::parse(
            msg.as_bytes(),
            &Limits {
                max_mime_depth: 4,
                ..Limits::default()
            }
        )
        .is_ok()
    );
}

#[test]
fn fifty_megabytes_parse_quickly_and_a_small_limit_refuses_them() {
    let line =
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n";
    let mut msg = String::from(
        "Subject: big\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: text/plain\r\n\r\n",
    );
    let target = 50 * 1024 * 1024 - 1024;
    while msg.len() < target {
        msg.push_str(line);
    }
    msg.push_str("--b--\r\n");
    let started = std::time::Instant::now();
    let m = parse(&msg);
    let elapsed = started.elapsed();
    assert!(m.body_text().starts_with("hello\nLorem"));
    assert_eq!(m.size(), msg.len() as u64);
    // Generous for an unoptimized build on a shared machine; a quadratic
    // step would take minutes.
    assert!(elapsed.as_secs() < 60, "took {elapsed:?}");
    let small = Limits {
        max_message_size: 1024 * 1024,
        ..Limits::default()
    };
    assert!(matches!(
        Message::parse(msg.as_bytes(), &small),
        Err(MessageError::TooLarge { .. })
    ));
}

#[test]
fn transaction_defaults_come_from_the_headers() {
    let m = parse("From: Boss <boss@x>\nTo: a@y, b@y\nCc: c@z\n\nhi");
    let tx = Transaction::with_defaults(m.clone(), None, &[], None, None, 42);
    assert_eq!(tx.envelope.from.address, "boss@x");
    let to: Vec<_> = tx.envelope.to.iter().map(|a| a.address.as_str()).collect();
    assert_eq!(to, ["a@y", "b@y", "c@z"]);
    assert_eq!(
        tx.envelope.recipient.as_ref().map(|a| a.address.as_str()),
        Some("a@y")
    );
    assert_eq!(tx.connection.ip.to_string(), "127.0.0.1");
    assert_eq!(tx.connection.helo, "localhost");
    assert_eq!(tx.now, 42);

    let given = Transaction::with_defaults(
        m,
        Some("<>"),
        &["x@q".to_string()],
        Some("192.0.2.1".parse().unwrap()),
        Some("mx.b"),
        0,
    );
    assert_eq!(given.envelope.from, Address::default());
    assert_eq!(given.envelope.to.len(), 1);
    assert_eq!(
        given.envelope.recipient.map(|a| a.address.to_string()),
        Some("x@q".to_string())
    );
    assert_eq!(given.connection.ip.to_string(), "192.0.2.1");
    assert_eq!(given.connection.helo, "mx.b");
}

#[test]
fn empty_message_has_nothing() {
    let m = Message::empty();
    assert!(m.headers().is_empty());
    assert_eq!((m.body_text(), m.body_html(), m.size()), ("", "", 0));
    assert!(m.attachments().is_empty());
}

#[test]
fn rfc2231_continuations_and_charsets_in_file_names() {
    let m = parse(&crlf(&[
        "Content-Type: multipart/mixed; boundary=b",
        "",
        "--b",
        "Content-Type: application/octet-stream",
        "Content-Disposition: attachment;",
        " filename*0*=utf-8''%C3%A9t;",
        " filename*1*=%C3%A9.txt",
        "",
        "abc",
        "--b",
        "Content-Type: application/octet-stream",
        "Content-Disposition: attachment; filename*=iso-8859-1'fr'caf%E9.txt",
        "",
        "abc",
        "--b",
        "Content-Type: application/octet-stream; name=\"plain name.bin\"",
        "",
        "abc",
        "--b--",
        "",
    ]));
    let names: Vec<_> = m.attachments().iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["été.txt", "café.txt", "plain name.bin"]);
}

#[test]
fn text_attachment_size_is_the_transfer_decoded_length() {
    let m = parse(&crlf(&[
        "Content-Type: multipart/mixed; boundary=b",
        "",
        "--b",
        "Content-Type: text/plain; charset=iso-8859-1",
        "Content-Disposition: attachment; filename=a.txt",
        "Content-Transfer-Encoding: base64",
        "",
        "Y2Fm6Q==",
        "--b--",
        "",
    ]));
    assert_eq!(m.body_text(), "");
    assert_eq!(m.attachments().len(), 1);
    // "caf\xe9": four bytes before charset conversion.
    assert_eq!(m.attachments()[0].size, 4);
}

/// A message with one base64 ZIP attachment holding `entries` empty files
/// and a directory, built with the zip crate's writer.
fn zip_message(entries: usize) -> Message {
    use base64::Engine as _;
    use std::io::Write as _;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    writer.add_directory("dir/", options).expect("a directory");
    for i in 0..entries {
        writer
            .start_file(format!("dir/f{i}.exe"), options)
            .expect("an entry");
        writer.write_all(b"MZ").expect("written");
    }
    let bytes = writer.finish().expect("finished").into_inner();
    let data = base64::engine::general_purpose::STANDARD.encode(bytes);
    parse(&format!(
        "Subject: z\nContent-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\n\nsee\n--B\nContent-Type: application/octet-stream; name=\"a.ZIP\"\nContent-Transfer-Encoding: base64\n\n{data}\n--B--\n"
    ))
}

#[test]
fn zip_entries_are_listed_up_to_a_thousand_without_directories() {
    let m = zip_message(3);
    let names: Vec<&str> = m.attachments().iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["a.ZIP", "dir/f0.exe", "dir/f1.exe", "dir/f2.exe"]);
    assert!(
        m.attachments()[1..]
            .iter()
            .all(|a| a.archive == "a.ZIP" && a.size == 2)
    );
    assert_eq!(m.attachments()[0].archive, "");
    let big = zip_message(1_005);
    assert_eq!(big.attachments().len(), 1 + 1_000);
    assert_eq!(big.body_text(), "see");
}
