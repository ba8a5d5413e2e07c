//! Parsing raw bytes into the message model (docs/language.md ("The message model")).
//!
//! The top-level header block is read by [`crate::headers`]; the MIME tree
//! by mail-parser, which is given only the MIME fields of that block (so
//! the body starts where Weir's header scan says) and whose charset tables
//! (the WHATWG labels: `iso-8859-1` and `us-ascii` are windows-1252) decode
//! text. A message that is one text leaf is read without mail-parser's
//! scan of its body ([`one_text_leaf`]). Transfer encodings (base64,
//! quoted-printable, x-uuencode) are undone by Weir from the part as
//! written, leniently, as mail readers do ([`crate::charset`]):
//! mail-parser keeps the raw text of a part whose closing boundary is
//! missing. Weir then walks the tree itself to decide
//! what is body and what is an attachment:
//! - A `multipart/*` part is a container. In `multipart/alternative`, the
//!   chosen alternative is the first `text/plain` one, else the first
//!   `text/html` one (a nested multipart counts as what it holds), else the
//!   first. The other alternatives add nothing to `body`, but their HTML
//!   still counts for `body.html`, and their non-text leaves (an image in a
//!   `multipart/related`) are still attachments, so nothing hides in an
//!   unread alternative.
//! - A `text/*` leaf (or a leaf with no Content-Type) is body unless its
//!   Content-Disposition is `attachment`. `text/html` is converted by
//!   [`crate::html`] for `body` and kept as is for `body.html`.
//! - A `text/html` leaf with a file name (Content-Disposition `filename` or
//!   Content-Type `name`) is an attachment even when shown `inline`: an
//!   HTML file is a file (HTML smuggling), not body text.
//! - Any other leaf is an attachment, including `message/rfc822`: the
//!   enclosed message is one attachment of type `message/rfc822` whose size
//!   is the enclosed message's length. Its own attachments follow it, with
//!   `archive` set to its name, down to [`MAX_ENCLOSED_LEVELS`] enclosed
//!   messages deep; its text adds nothing to `body`.
//! - A ZIP attachment ([`is_zip_attachment`]) is followed by its entries,
//!   read from the central directory ([`zip_entries`]).
//! - Plain body text is one paragraph per line ([`join_paragraphs`]): the
//!   line breaks inside a paragraph become spaces. HTML converted to text
//!   is already one block per line. Parts that are empty or all whitespace
//!   are left out of the join.
//! - `body.lines` is the text as Pigeonhole's `body :text` reads it: the
//!   parts of `body` and every other alternative too, plain text as
//!   decoded, line breaks as written (CRLF or LF; nothing is joined or
//!   trimmed), HTML as text with the source's whitespace kept
//!   ([`html_to_lines`]). The walk keeps its pieces ([`LinePiece`]);
//!   they are put together, and the HTML converted, the first time a rule
//!   reads `body.lines`, so mail no rule reads that way pays nothing.
//! - A `multipart/*` part without a usable boundary is read as text.
//!
//! MIME depth: the top-level entity has depth 0; a part inside a multipart
//! or an enclosed message is one deeper than its container. A part deeper
//! than `max_mime_depth` refuses the message.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};

use mail_parser::{Encoding, MessageParser, MessagePart, MimeHeaders, PartType};

use crate::address;
use crate::charset;
use crate::headers::{self, HeaderField};
use crate::html::{html_to_lines, html_to_text};
use crate::message::{Address, Attachment, Limits, MessageError};
use mail_parser::decoders::charsets::map::charset_decoder;

mod deferred;

use deferred::{Attachments, Decoding, Listed, Source};

/// `parts` that are not all blank, one per line; a single one as it is.
fn joined(mut parts: Vec<String>) -> String {
    parts.retain(|p| !p.trim().is_empty());
    if parts.len() == 1 {
        return parts.pop().unwrap_or_default();
    }
    parts.join("\n")
}

/// What the body walk produces.
#[derive(Debug, Default)]
struct Body {
    text: String,
    /// What `body.lines` is made of, in document order.
    line_pieces: Vec<LinePiece>,
    /// `body.lines`, put together on first use.
    lines: OnceLock<String>,
    html: String,
    attachments: Attachments,
}

/// A parsed message. Cheap to clone: everything is shared.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parsed {
    raw: Arc<[u8]>,
    /// Where the body starts in `raw`: after the header block.
    body_start: usize,
    fields: Arc<[HeaderField]>,
    body: Arc<Body>,
}

impl Parsed {
    pub(crate) fn parse(bytes: &[u8], limits: &Limits) -> Result<Parsed, MessageError> {
        Parsed::parse_as(bytes, limits, Parse::Lazy)
    }

    fn parse_as(bytes: &[u8], limits: &Limits, how: Parse) -> Result<Parsed, MessageError> {
        let size = bytes.len() as u64;
        if size > limits.max_message_size {
            return Err(MessageError::TooLarge {
                size,
                limit: limits.max_message_size,
            });
        }
        let block = headers::scan(bytes, limits.max_headers);
        if block.fields.len() > limits.max_headers {
            return Err(MessageError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        let body = if block.fields.is_empty() {
            // No header block (or an empty one): plain text, as RFC 2045
            // defaults a part without Content-Type.
            let text = charset::utf8_lossy(bytes.get(block.body_start..).unwrap_or_default());
            Body::plain(&text)
        } else {
            mime_body(bytes, &block, limits, how)?
        };
        Ok(Parsed {
            raw: Arc::from(bytes),
            body_start: block.body_start.min(bytes.len()),
            fields: Arc::from(block.fields),
            body: Arc::new(body),
        })
    }

    fn fields_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a HeaderField> + 'a {
        self.fields
            .iter()
            .filter(move |f| f.name_is(&self.raw, name))
    }

    pub(crate) fn header(&self, name: &str) -> Vec<String> {
        self.fields_named(name)
            .map(|f| f.decoded(&self.raw).to_string())
            .collect()
    }

    pub(crate) fn header_raw(&self, name: &str) -> Vec<String> {
        self.fields_named(name)
            .map(|f| f.raw(&self.raw).to_string())
            .collect()
    }

    pub(crate) fn headers(&self) -> Vec<(String, String)> {
        self.fields
            .iter()
            .map(|f| {
                let name = f.name(&self.raw).to_string();
                (name, f.decoded(&self.raw).to_string())
            })
            .collect()
    }

    pub(crate) fn message_id(&self) -> String {
        let Some(field) = self.fields_named("Message-ID").next() else {
            return String::new();
        };
        let value = field.decoded(&self.raw);
        let inner = value
            .find('<')
            .and_then(|open| {
                let rest = &value[open + 1..];
                rest.find('>').map(|close| &rest[..close])
            })
            .unwrap_or(value);
        inner.trim().to_string()
    }

    pub(crate) fn addresses(&self, header: &str) -> Vec<Address> {
        let mut out = Vec::new();
        for field in self.fields_named(header) {
            address::header_addresses(field.raw(&self.raw), &mut out);
        }
        out
    }

    pub(crate) fn date(&self) -> Option<i64> {
        let field = self.fields_named("Date").next()?;
        // RFC 5322 with its obsolete forms first; then mail-parser, which
        // reads some forms outside the RFC that mail readers accept too.
        let value = field.decoded(&self.raw);
        crate::time::parse_date_header(value).or_else(|| {
            let dt = mail_parser::DateTime::parse_rfc822(value)?;
            dt.is_valid().then(|| dt.to_timestamp())
        })
    }

    pub(crate) fn body_text(&self) -> &str {
        &self.body.text
    }

    pub(crate) fn body_lines(&self) -> &str {
        self.body.lines.get_or_init(|| {
            let mut texts: Vec<Cow<'_, str>> = self
                .body
                .line_pieces
                .iter()
                .map(|p| match p {
                    LinePiece::Plain(t) => Cow::Borrowed(t.as_str()),
                    LinePiece::Html(h) => Cow::Owned(html_to_lines(h)),
                })
                .collect();
            // Empty parts add nothing, as in `body`.
            texts.retain(|t| !t.trim().is_empty());
            texts.join("\n")
        })
    }

    /// The body as received: the bytes after the header block.
    pub(crate) fn body_raw(&self) -> &[u8] {
        self.raw.get(self.body_start..).unwrap_or_default()
    }

    pub(crate) fn body_html(&self) -> &str {
        &self.body.html
    }

    pub(crate) fn attachments(&self) -> &[Attachment] {
        self.body.attachments.resolve(&self.raw)
    }

    pub(crate) fn size(&self) -> u64 {
        self.raw.len() as u64
    }

    pub(crate) fn raw(&self) -> &[u8] {
        &self.raw
    }
}

impl Body {
    /// A body that is one plain text and nothing else.
    fn plain(text: &str) -> Body {
        Body {
            text: join_paragraphs(text),
            line_pieces: vec![LinePiece::Plain(text.to_string())],
            ..Body::default()
        }
    }
}

/// `\r\n` → `\n` (a lone `\r` stays).
fn normalize_newlines(s: &str) -> String {
    if s.contains("\r\n") {
        s.replace("\r\n", "\n")
    } else {
        s.to_string()
    }
}

/// Plain text as `body` gives it, one paragraph per line, as
/// SpamAssassin's body rules see text: each line loses the blanks (spaces,
/// tabs) at its start and end, and a line break (LF, or CRLF) inside a
/// paragraph becomes one space, so a phrase a mailer wrapped across lines
/// is still one phrase. A paragraph ends at an empty line or a line of
/// only blanks; paragraphs are separated by one `\n`, and empty lines at
/// the start and the end go. A lone CR is not a line break and stays.
fn join_paragraphs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // Whether the last line read was part of a paragraph still open.
    let mut open = false;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = line.trim_matches([' ', '\t']);
        if line.is_empty() {
            open = false;
            continue;
        }
        if open {
            out.push(' ');
            out.push_str(line);
        } else {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(line);
            open = true;
        }
    }
    out
}

/// How mail-parser reads the MIME structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parse {
    /// Without decoding part bodies, unless the message encloses messages
    /// ([`deferred`]).
    Lazy,
    /// Decoding every part body (what the lazy parse must equal).
    #[cfg(test)]
    Eager,
}

/// Parses the MIME structure with mail-parser and walks it.
fn mime_body(
    bytes: &[u8],
    block: &headers::HeaderBlock,
    limits: &Limits,
    how: Parse,
) -> Result<Body, MessageError> {
    // mail-parser reads the MIME structure only: the top-level header block
    // is Weir's. It is given the MIME fields of that block as Weir read
    // them, a blank line and the body, so it sees the body start where
    // Weir does: its own header parsers can read past the end of the block
    // (a `Date` ending in an unknown zone took the body's first lines with
    // it), and they never see a line Weir took as the first of the body.
    // mail-parser is not supposed to panic, but it has debug assertions and
    // index arithmetic on hostile input; a panic must not take the daemon
    // down, so the body then falls back to the raw text.
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let raw_body = bytes.get(block.body_start..).unwrap_or_default();
        let mut input = mime_fields(bytes, block);
        if how == Parse::Lazy
            && let Some(body) = one_text_leaf(&input, raw_body)
        {
            return Ok(Some(body));
        }
        let body_start = input.len();
        input.extend_from_slice(raw_body);
        if how == Parse::Lazy {
            match deferred::lazy_parser().parse(&input) {
                Some(message) if !deferred::encloses_messages(&message) => {
                    check_depth(&message, limits.max_mime_depth)?;
                    let lazy = RawMap {
                        prefix: body_start,
                        body_start: block.body_start,
                    };
                    return Ok(Some(walk(&message, &input, Some(lazy))));
                }
                Some(_) => {}
                None => return Ok(None),
            }
        }
        match MessageParser::new().parse(&input) {
            Some(message) => {
                check_depth(&message, limits.max_mime_depth)?;
                Ok(Some(walk(&message, &input, None)))
            }
            None => Ok(None),
        }
    }));
    match outcome {
        Ok(Ok(Some(body))) => Ok(body),
        Ok(Ok(None)) => Ok(Body::default()),
        Ok(Err(error)) => Err(error),
        Err(_) => {
            let text = charset::utf8_lossy(bytes.get(block.body_start..).unwrap_or_default());
            Ok(Body::plain(&text))
        }
    }
}

/// The body of a message that is one text leaf (no Content-Type, or
/// `text/*`, not an attachment), as [`walk`] makes it from the lazy parse,
/// without that parse: mail-parser reads only the MIME fields (`fields`,
/// [`mime_fields`]), and Weir decodes the body (`raw`) itself. Most mail
/// is such a message, and mail-parser's scan of the body for boundaries
/// it does not have, and its decoding of the text a `char` at a time,
/// were most of the time spent reading it. `None` for any other message.
/// A unit test holds it to the eager walk.
fn one_text_leaf(fields: &[u8], raw: &[u8]) -> Option<Body> {
    let message = deferred::lazy_parser().parse_headers(fields)?;
    let part = message.parts.first()?;
    // mail-parser reads any other type as a container, an enclosed message
    // or an attachment.
    if part.content_type().is_some_and(|ct| ct.ctype() != "text") {
        return None;
    }
    let leaf = classify_leaf(part);
    if leaf == Leaf::Attachment {
        return None;
    }
    let charset = part.content_type().and_then(|ct| ct.attribute("charset"));
    let text = match declared_transfer(part, fields) {
        // As mail-parser decodes a text part it is given whole, for the
        // walk: its label as written (`" iso-8859-1 "` is no charset
        // there), not [`charset::decode`]'s trimmed one.
        Transfer::Identity => match charset.and_then(|c| charset_decoder(c.as_bytes())) {
            Some(decoder) => charset::decode_with(decoder, raw),
            None => charset::utf8_lossy(raw).into_owned(),
        },
        transfer => charset::decode(
            charset.unwrap_or(""),
            &decode_transfer_raw(raw, transfer, true),
        ),
    };
    let mut walker = Walker::default();
    walker.text_leaf(leaf, Cow::Owned(text), true);
    Some(walker.into_body())
}

/// The MIME fields of the top-level block (`Content-*` and `MIME-Version`)
/// of `bytes`, unfolded, then a blank line: what mail-parser reads before
/// the body. A block without them gets `MIME-Version: 1.0`, which changes
/// nothing but is a field. Room is made for the body to follow.
fn mime_fields(bytes: &[u8], block: &headers::HeaderBlock) -> Vec<u8> {
    let body = bytes.len().saturating_sub(block.body_start);
    let mut input = Vec::with_capacity(body + 256);
    for field in &block.fields {
        let name = field.name(bytes);
        let is_mime = name
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("content-"))
            || name.eq_ignore_ascii_case("mime-version");
        if is_mime {
            input.extend_from_slice(name.as_bytes());
            input.extend_from_slice(b": ");
            input.extend_from_slice(field.raw(bytes).as_bytes());
            input.extend_from_slice(b"\r\n");
        }
    }
    if input.is_empty() {
        // mail-parser reads nothing without a header field.
        input.extend_from_slice(b"MIME-Version: 1.0\r\n");
    }
    input.extend_from_slice(b"\r\n");
    input
}

/// Refuses a message whose parts nest deeper than `max_depth` (see the
/// module docs), walking the tree without recursion.
fn check_depth(message: &mail_parser::Message<'_>, max_depth: usize) -> Result<(), MessageError> {
    let mut stack: Vec<(&mail_parser::Message<'_>, u32, usize)> = vec![(message, 0, 0)];
    while let Some((msg, id, depth)) = stack.pop() {
        if depth > max_depth {
            return Err(MessageError::TooDeep { limit: max_depth });
        }
        let Some(part) = msg.parts.get(id as usize) else {
            continue;
        };
        match &part.body {
            PartType::Multipart(children) => {
                // Part ids only grow from parent to child, which rules out
                // cycles in a malformed tree.
                stack.extend(
                    children
                        .iter()
                        .filter(|&&c| c > id)
                        .map(|&c| (msg, c, depth + 1)),
                )
            }
            PartType::Message(inner) => stack.push((inner, 0, depth + 1)),
            _ => {}
        }
    }
    Ok(())
}

/// The declared lower-case `type` and `subtype` of a part; `None` when it
/// has no Content-Type.
fn declared_type(part: &MessagePart<'_>) -> Option<(String, String)> {
    let ct = part.content_type()?;
    Some((
        ct.ctype().trim().to_ascii_lowercase(),
        ct.subtype().unwrap_or("").trim().to_ascii_lowercase(),
    ))
}

fn is_disposition_attachment(part: &MessagePart<'_>) -> bool {
    part.content_disposition()
        .is_some_and(|d| d.is_attachment())
}

/// What a leaf is to the body walk.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Leaf {
    Plain,
    Html,
    Attachment,
}

fn classify_leaf(part: &MessagePart<'_>) -> Leaf {
    let textual = match declared_type(part) {
        None => !matches!(part.body, PartType::Message(_)),
        // A multipart without a usable boundary is read as text.
        Some((ty, _)) => ty == "text" || ty == "multipart",
    };
    if !textual || is_disposition_attachment(part) {
        return Leaf::Attachment;
    }
    // HTML smuggling: an HTML file shown `inline` is still a file.
    let is_html = declared_type(part).is_some_and(|(ty, sub)| ty == "text" && sub == "html");
    if is_html && part.attachment_name().is_some_and(|n| !n.trim().is_empty()) {
        return Leaf::Attachment;
    }
    match part.body {
        PartType::Html(_) => Leaf::Html,
        // A text/html part mail-parser could not decode is kept as text.
        PartType::Text(_) if declared_type(part).is_some_and(|(_, sub)| sub == "html") => {
            Leaf::Html
        }
        // mail-parser keeps a multipart without a boundary as bytes.
        PartType::Text(_) | PartType::Binary(_) | PartType::InlineBinary(_) => Leaf::Plain,
        _ => Leaf::Attachment,
    }
}

/// A transfer encoding.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Transfer {
    Identity,
    Base64,
    QuotedPrintable,
    UuEncode,
}

/// The transfer encoding a part declares; `input` holds the field as
/// written when a lazy parse skipped it ([`deferred`]).
fn declared_transfer(part: &MessagePart<'_>, input: &[u8]) -> Transfer {
    let encoding = match part.content_transfer_encoding() {
        Some(encoding) => Cow::Borrowed(encoding),
        None => match deferred::skipped_transfer_encoding(part, input) {
            Some(encoding) => Cow::Owned(encoding),
            None => return Transfer::Identity,
        },
    };
    let encoding = encoding.trim();
    if encoding.eq_ignore_ascii_case("base64") {
        Transfer::Base64
    } else if encoding.eq_ignore_ascii_case("quoted-printable") {
        Transfer::QuotedPrintable
    } else if ["x-uuencode", "uuencode", "x-uue", "uue"]
        .iter()
        .any(|uu| encoding.eq_ignore_ascii_case(uu))
    {
        Transfer::UuEncode
    } else {
        Transfer::Identity
    }
}

/// The bytes of a leaf's body as written, before any decoding.
fn raw_body<'a>(part: &MessagePart<'_>, input: &'a [u8]) -> &'a [u8] {
    let start = part.offset_body as usize;
    let end = (part.offset_end as usize).min(input.len());
    input.get(start..end.max(start)).unwrap_or_default()
}

/// Decodes a leaf's transfer encoding from its body as written, leniently,
/// as mail readers do (see [`charset::base64_body_decode`] and
/// [`charset::quoted_printable_decode`]). Weir does this itself rather than
/// take mail-parser's decoding: mail-parser gives up and keeps the raw
/// text when base64 or quoted-printable data runs to the end of the message
/// without its closing boundary, when a mailing list appended a text footer
/// to base64 data, or on a malformed escape (`==`); it drops a lone CR in
/// quoted-printable, which joins words (`by<CR>state` read `bystate`); and
/// it decodes base64 lines of odd length differently from mail readers.
/// mail-parser does not decode `x-uuencode` at all. Base64 data followed by
/// text gives the data, a line break and the text (`with_trailing_text`),
/// or the data alone.
fn decode_transfer(part: &MessagePart<'_>, input: &[u8], with_trailing_text: bool) -> Vec<u8> {
    decode_transfer_raw(
        raw_body(part, input),
        declared_transfer(part, input),
        with_trailing_text,
    )
}

/// [`decode_transfer`] of a body as written.
fn decode_transfer_raw(raw: &[u8], transfer: Transfer, with_trailing_text: bool) -> Vec<u8> {
    match transfer {
        Transfer::Base64 => {
            let (mut data, rest) = charset::base64_body_decode(raw);
            if with_trailing_text && !rest.trim_ascii().is_empty() {
                if !data.is_empty() {
                    data.push(b'\n');
                }
                data.extend_from_slice(rest);
            }
            data
        }
        Transfer::QuotedPrintable => charset::quoted_printable_decode(raw),
        // Without a `begin` line, the body is read as written.
        Transfer::UuEncode => charset::uudecode(raw).unwrap_or_else(|| raw.to_vec()),
        Transfer::Identity => raw.to_vec(),
    }
}

/// The text of a text leaf, decoded from its transfer encoding by Weir
/// (see [`decode_transfer`]) and from its charset by mail-parser's tables.
fn leaf_text<'a>(part: &'a MessagePart<'_>, input: &[u8]) -> Cow<'a, str> {
    if declared_transfer(part, input) != Transfer::Identity {
        let charset = part
            .content_type()
            .and_then(|ct| ct.attribute("charset"))
            .unwrap_or("");
        return Cow::Owned(charset::decode(
            charset,
            &decode_transfer(part, input, true),
        ));
    }
    match &part.body {
        PartType::Text(t) | PartType::Html(t) => Cow::Borrowed(t.as_ref()),
        PartType::Binary(b) | PartType::InlineBinary(b) => charset::utf8_lossy(b),
        _ => Cow::Borrowed(""),
    }
}

/// Whether the subtree at `id` holds a body leaf of kind `want`.
fn subtree_has(message: &mail_parser::Message<'_>, id: u32, want: Leaf) -> bool {
    let mut stack = vec![id];
    while let Some(id) = stack.pop() {
        let Some(part) = message.parts.get(id as usize) else {
            continue;
        };
        match &part.body {
            PartType::Multipart(children) => stack.extend(children.iter().filter(|&&c| c > id)),
            _ if classify_leaf(part) == want => return true,
            _ => {}
        }
    }
    false
}

/// The alternative chosen for `body` among `children`.
fn chosen_alternative(message: &mail_parser::Message<'_>, children: &[u32]) -> Option<u32> {
    let find = |want| {
        children
            .iter()
            .copied()
            .find(|&c| subtree_has(message, c, want))
    };
    find(Leaf::Plain)
        .or_else(|| find(Leaf::Html))
        .or_else(|| children.first().copied())
}

/// Enclosed messages (`message/rfc822`) opened for `attachments`: an
/// attachment of the message, of an attachment of it, and so on, down to
/// this many levels. A deeper enclosed message is listed, not opened.
pub(crate) const MAX_ENCLOSED_LEVELS: usize = 3;

/// ZIP archives larger than this (decoded) are listed, not opened.
pub(crate) const MAX_ZIP_SIZE: usize = 10 * 1024 * 1024;

/// At most this many entries of one ZIP archive are listed.
pub(crate) const MAX_ZIP_ENTRIES: usize = 1_000;

/// Walks the part tree of the message and collects the body and the
/// attachments (see the module docs).
/// `lazy` is set when mail-parser left the bodies as written.
fn walk(message: &mail_parser::Message<'_>, input: &[u8], lazy: Option<RawMap>) -> Body {
    let mut walker = Walker {
        lazy,
        ..Walker::default()
    };
    walker.walk(
        message,
        input,
        &Scope {
            archive: "",
            level: 0,
        },
    );
    walker.into_body()
}

/// Where mail-parser's input (Weir's MIME fields, then the body) maps into
/// the message's bytes: input offset `prefix` is byte `body_start`.
#[derive(Debug, Clone, Copy)]
struct RawMap {
    prefix: usize,
    body_start: usize,
}

impl RawMap {
    fn to_raw(self, offset: usize) -> usize {
        offset.saturating_sub(self.prefix) + self.body_start
    }
}

/// A part of `body.lines` as the walk finds it.
#[derive(Debug)]
enum LinePiece {
    /// Plain text, decoded, line breaks as written.
    Plain(String),
    /// HTML, decoded, converted to text when `body.lines` is first read.
    Html(String),
}

/// Where a walk is: the top-level message (`level` 0, `archive` `""`), or
/// a message enclosed in the attachment named `archive`, which adds
/// attachments only.
struct Scope<'a> {
    archive: &'a str,
    level: usize,
}

/// What the walk collects.
#[derive(Default)]
struct Walker {
    text: Vec<String>,
    line_pieces: Vec<LinePiece>,
    html: Vec<String>,
    attachments: Vec<Listed>,
    /// Set for a lazy parse: attachments that need decoding are deferred.
    lazy: Option<RawMap>,
}

impl Walker {
    /// Walks one message's parts in document order, without recursion
    /// (enclosed messages recurse, at most [`MAX_ENCLOSED_LEVELS`] deep).
    fn walk(&mut self, message: &mail_parser::Message<'_>, input: &[u8], scope: &Scope<'_>) {
        let top = scope.level == 0;
        // (part id, whether it counts for `body`, the enclosing boundary).
        let mut stack: Vec<(u32, bool, &[u8])> = vec![(0, top, b"")];
        while let Some((id, in_body, boundary)) = stack.pop() {
            let Some(part) = message.parts.get(id as usize) else {
                continue;
            };
            if let PartType::Multipart(children) = &part.body {
                let children: Vec<u32> = children.iter().copied().filter(|&c| c > id).collect();
                let is_alternative =
                    declared_type(part).is_some_and(|(_, sub)| sub == "alternative");
                let chosen = if is_alternative {
                    chosen_alternative(message, &children)
                } else {
                    None
                };
                let inner = part
                    .content_type()
                    .and_then(|ct| ct.attribute("boundary"))
                    .unwrap_or("")
                    .as_bytes();
                for &child in children.iter().rev() {
                    let child_in_body = in_body && (!is_alternative || Some(child) == chosen);
                    stack.push((child, child_in_body, inner));
                }
                continue;
            }
            match classify_leaf(part) {
                Leaf::Attachment => self.attachment(part, input, scope, boundary),
                leaf if top => self.text_leaf(leaf, leaf_text(part, input), in_body),
                // An enclosed message's text adds nothing.
                _ => {}
            }
        }
    }

    /// Adds a plain or HTML leaf of the top-level message, decoded: to
    /// `body.lines` always, to `body` if `in_body`, to `body.html` if HTML.
    fn text_leaf(&mut self, leaf: Leaf, text: Cow<'_, str>, in_body: bool) {
        if leaf == Leaf::Html {
            if in_body {
                self.text.push(html_to_text(&text));
            }
            self.html.push(normalize_newlines(&text));
            self.line_pieces.push(LinePiece::Html(text.into_owned()));
        } else {
            if in_body {
                self.text.push(join_paragraphs(&text));
            }
            self.line_pieces.push(LinePiece::Plain(text.into_owned()));
        }
    }

    /// The body the walk collected. Empty parts add nothing, not even a
    /// separating line break.
    fn into_body(self) -> Body {
        Body {
            text: joined(self.text),
            line_pieces: self.line_pieces,
            lines: OnceLock::new(),
            html: joined(self.html),
            attachments: Attachments::new(self.attachments),
        }
    }

    /// Lists an attachment, then what it holds: the attachments of an
    /// enclosed message, or the entries of a ZIP archive.
    fn attachment(
        &mut self,
        part: &MessagePart<'_>,
        input: &[u8],
        scope: &Scope<'_>,
        boundary: &[u8],
    ) {
        if let Some(map) = self.lazy
            && let Some(decoding) = lazy_decoding(part, input)
        {
            let record = attachment_record(part, scope.archive);
            let zip_container = is_zip_attachment(&record).then(|| container_name(&record));
            let source = Source {
                start: map.to_raw(part.offset_body as usize),
                end: map.to_raw((part.offset_end as usize).min(input.len())),
                decoding,
                boundary: boundary.to_vec(),
            };
            self.attachments.push(Listed::Deferred {
                record,
                source,
                zip_container,
            });
            return;
        }
        let record = Attachment {
            size: decoded_size(part, input),
            ..attachment_record(part, scope.archive)
        };
        let container = container_name(&record);
        let is_zip = is_zip_attachment(&record);
        self.attachments.push(Listed::Ready(record));
        match &part.body {
            PartType::Message(inner) if scope.level < MAX_ENCLOSED_LEVELS => {
                let scope = Scope {
                    archive: &container,
                    level: scope.level + 1,
                };
                self.walk(inner, inner.raw_message.as_ref(), &scope);
            }
            PartType::Message(_) => {}
            _ if is_zip => {
                let data = attachment_data(part, input);
                let entries = zip_entries(&data, &container);
                self.attachments
                    .extend(entries.into_iter().map(Listed::Ready));
            }
            _ => {}
        }
    }
}

/// What the parts inside an attachment are listed under: its name, else its type.
fn container_name(record: &Attachment) -> String {
    if record.name.is_empty() {
        record.content_type.clone()
    } else {
        record.name.clone()
    }
}

/// How a lazy parse decodes an attachment's data when it is read, or
/// `None` when it needs no decoding (its data is as written, or, for an
/// enclosed message or a multipart, not decoded by Weir).
fn lazy_decoding(part: &MessagePart<'_>, input: &[u8]) -> Option<Decoding> {
    let transfer = declared_transfer(part, input);
    match &part.body {
        PartType::Binary(_) | PartType::InlineBinary(_) if !part.is_encoding_problem => {
            matches!(transfer, Transfer::Base64 | Transfer::QuotedPrintable)
                .then_some(Decoding::MailParser(transfer))
        }
        PartType::Message(_) | PartType::Multipart(_) => None,
        _ => (transfer != Transfer::Identity).then_some(Decoding::Weir(transfer)),
    }
}

/// Whether an attachment is opened as a ZIP archive: its type is
/// `application/zip` (or `x-zip-compressed`, `x-zip`) or its name ends in
/// `.zip`. Other formats built on ZIP (`.docx`, `.jar`) are not opened.
fn is_zip_attachment(record: &Attachment) -> bool {
    matches!(
        record.content_type.as_str(),
        "application/zip" | "application/x-zip-compressed" | "application/x-zip"
    ) || record
        .name
        .get(record.name.len().saturating_sub(4)..)
        .is_some_and(|ext| ext.eq_ignore_ascii_case(".zip"))
}

/// The decoded bytes of an attachment.
fn attachment_data<'a>(part: &'a MessagePart<'_>, input: &[u8]) -> Cow<'a, [u8]> {
    match &part.body {
        PartType::Binary(b) | PartType::InlineBinary(b) if !part.is_encoding_problem => {
            Cow::Borrowed(b.as_ref())
        }
        _ => Cow::Owned(decode_transfer(part, input, false)),
    }
}

/// The entries of a ZIP archive, from its central directory, each an
/// attachment record with `archive` set to `container`: files only (not
/// directories), at most [`MAX_ZIP_ENTRIES`], none for an archive larger
/// than [`MAX_ZIP_SIZE`] or one that does not read (a corrupt archive is
/// still listed as the attachment itself). Nothing is decompressed: `size`
/// is the uncompressed size the archive declares, `type` is
/// `application/octet-stream`, and `encrypted` is the entry's flag.
fn zip_entries(data: &[u8], container: &str) -> Vec<Attachment> {
    if data.len() > MAX_ZIP_SIZE {
        return Vec::new();
    }
    // The zip crate is not supposed to panic, but hostile archives are its
    // input: a panic must not lose the rest of the message.
    catch_unwind(AssertUnwindSafe(|| {
        let Ok(archive) = zip::ZipArchive::new(std::io::Cursor::new(data)) else {
            return Vec::new();
        };
        (0..archive.len())
            .filter_map(|i| archive.by_index_data(i).ok())
            .filter(|entry| !entry.is_dir())
            .take(MAX_ZIP_ENTRIES)
            .map(|entry| Attachment {
                name: entry
                    .name()
                    .map(|n| n.trim().to_string())
                    .unwrap_or_else(|_| String::from_utf8_lossy(entry.name_raw()).into_owned()),
                content_type: "application/octet-stream".to_string(),
                size: entry.size(),
                archive: container.to_string(),
                encrypted: entry.encrypted(),
            })
            .collect()
    }))
    .unwrap_or_default()
}

/// The attachment record of a leaf, listed under `archive`, without its
/// size (see [`decoded_size`]).
fn attachment_record(part: &MessagePart<'_>, archive: &str) -> Attachment {
    let content_type = match (declared_type(part), &part.body) {
        (Some((ty, sub)), _) if !sub.is_empty() => format!("{ty}/{sub}"),
        (Some((ty, _)), _) => ty,
        (None, PartType::Message(_)) => "message/rfc822".to_string(),
        (None, _) => "text/plain".to_string(),
    };
    let name = part.attachment_name().unwrap_or("").trim().to_string();
    Attachment {
        name,
        content_type,
        size: 0,
        archive: archive.to_string(),
        encrypted: false,
    }
}

/// The decoded size in bytes of a leaf: after the transfer encoding is
/// undone, before any charset conversion.
fn decoded_size(part: &MessagePart<'_>, input: &[u8]) -> u64 {
    let size = match &part.body {
        PartType::Message(inner) if part.encoding != Encoding::None => inner.raw_message.len(),
        PartType::Message(_) => raw_body(part, input).len(),
        PartType::Multipart(_) => 0,
        // mail-parser decoded it: its length is the size, without decoding
        // an attachment (megabytes, often) a second time.
        PartType::Binary(b) | PartType::InlineBinary(b) if !part.is_encoding_problem => b.len(),
        _ => decode_transfer(part, input, false).len(),
    };
    size as u64
}

/// Parses an address as written in an envelope or by a user.
pub(crate) fn parse_address(text: &str) -> Address {
    address::parse(text)
}
