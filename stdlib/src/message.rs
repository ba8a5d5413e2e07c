//! The message model: what a rule sees of one mail transaction
//! (docs/language.md ("The message model")), built over mail-parser.
//!
//! API contract used by the compiler and the daemon. Any bytes are a
//! message: parsing never fails and never panics; only the configured
//! [`Limits`] can refuse a message.

use std::net::IpAddr;

use smol_str::SmolStr;

/// A mail address split into the parts rules test.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    /// `local@domain` (just `local` when there is no `@`; `""` for the null sender).
    pub address: SmolStr,
    /// The whole local part, `+detail` included.
    pub local: SmolStr,
    /// The domain, as written (comparisons fold case).
    pub domain: SmolStr,
    /// What follows the first `+` in the local part, or `""`.
    pub detail: SmolStr,
    /// The display name, RFC 2047-decoded, or `""`.
    pub name: SmolStr,
}

/// A leaf MIME part that is not part of the body text, or what one holds
/// (a part of an enclosed message, an entry of a ZIP archive).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attachment {
    /// File name (RFC 2231 / RFC 2047 decoded), else the Content-Type
    /// `name`, else `""`.
    pub name: String,
    /// Lower-case `type/subtype`, without parameters.
    pub content_type: String,
    /// Decoded size in bytes (for a ZIP entry, the uncompressed size the
    /// archive declares).
    pub size: u64,
    /// The name of the attachment this one was found inside (an enclosed
    /// message or a ZIP archive; its type when it has no name), `""` for a
    /// part of the message itself.
    pub archive: String,
    /// Whether this is an encrypted entry of a ZIP archive.
    pub encrypted: bool,
}

/// Limits past which a message is refused instead of evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted, in bytes.
    pub max_message_size: u64,
    /// Most header fields accepted (top-level header block).
    pub max_headers: usize,
    /// Deepest MIME nesting accepted.
    pub max_mime_depth: usize,
}

impl Default for Limits {
    /// The defaults of `[limits]` in docs/serve.md: 50M, 1000 headers, depth 20.
    fn default() -> Self {
        Limits {
            max_message_size: 50 * 1024 * 1024,
            max_headers: 1000,
            max_mime_depth: 20,
        }
    }
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageError {
    /// The message is larger than `max_message_size`.
    TooLarge {
        /// The message's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The header block has more fields than `max_headers`.
    TooManyHeaders {
        /// The limit.
        limit: usize,
    },
    /// MIME parts nest deeper than `max_mime_depth`.
    TooDeep {
        /// The limit.
        limit: usize,
    },
}

impl std::fmt::Display for MessageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageError::TooLarge { size, limit } => {
                write!(
                    f,
                    "message of {size} bytes exceeds max_message_size ({limit} bytes)"
                )
            }
            MessageError::TooManyHeaders { limit } => {
                write!(
                    f,
                    "message has more than max_headers ({limit}) header fields"
                )
            }
            MessageError::TooDeep { limit } => {
                write!(
                    f,
                    "message nests MIME parts deeper than max_mime_depth ({limit})"
                )
            }
        }
    }
}

impl std::error::Error for MessageError {}

/// What the SMTP client told us about itself (connect, HELO, MAIL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `client.ip`.
    pub ip: IpAddr,
    /// `client.name` (reverse DNS name as the MTA reports it, or `""`).
    pub name: String,
    /// `client.port`.
    pub port: u16,
    /// `helo`.
    pub helo: String,
    /// `auth.user`, `""` if none.
    pub auth_user: String,
    /// `tls`.
    pub tls: bool,
}

impl Default for Connection {
    /// `weir run`'s defaults: 127.0.0.1, helo `localhost`.
    fn default() -> Self {
        Connection {
            ip: IpAddr::from([127, 0, 0, 1]),
            name: String::new(),
            port: 0,
            helo: "localhost".to_string(),
            auth_user: String::new(),
            tls: false,
        }
    }
}

/// The SMTP envelope.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// `envelope.from` (the null sender has every part `""`).
    pub from: Address,
    /// `envelope.to`.
    pub to: Vec<Address>,
    /// `recipient`: the recipient being delivered (LMTP), or the first
    /// envelope recipient.
    pub recipient: Option<Address>,
}

/// Everything one evaluation reads: connection, envelope, message and clock.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// Connect/HELO/MAIL facts.
    pub connection: Connection,
    /// The envelope.
    pub envelope: Envelope,
    /// The message (empty before the header stage).
    pub message: Message,
    /// `now`, seconds since the Unix epoch (UTC).
    pub now: i64,
    /// The learned classifiers' answers (computed by the caller before
    /// evaluation; empty when nothing was learned).
    pub classes: crate::Classifications,
}

/// One message, parsed. See the crate docs for what each accessor returns.
#[derive(Debug, Clone)]
pub struct Message {
    inner: crate::mime::Parsed,
}

impl Message {
    /// Parses any bytes as a message. Never panics; refuses only past `limits`.
    pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Message, MessageError> {
        crate::mime::Parsed::parse(bytes, limits).map(|inner| Message { inner })
    }

    /// A message with no headers and no body (before the header stage).
    pub fn empty() -> Message {
        Message {
            inner: crate::mime::Parsed::default(),
        }
    }

    /// `header("Name")`: one string per occurrence, unfolded, RFC 2047
    /// decoded, trimmed; `[]` when absent. Name is case-insensitive.
    pub fn header(&self, name: &str) -> Vec<String> {
        self.inner.header(name)
    }

    /// `header("Name").raw`: the same, undecoded (unfolded and trimmed).
    pub fn header_raw(&self, name: &str) -> Vec<String> {
        self.inner.header_raw(name)
    }

    /// Every header field in order: (name as written, decoded value).
    pub fn headers(&self) -> Vec<(String, String)> {
        self.inner.headers()
    }

    /// `subject`: the first Subject, decoded, or `""`.
    pub fn subject(&self) -> String {
        self.header("Subject")
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// `message_id`: the first Message-ID without angle brackets, or `""`.
    pub fn message_id(&self) -> String {
        self.inner.message_id()
    }

    /// The addresses of an address header (`From`, `To`, `Cc`, `Reply-To`,
    /// `Sender`), every occurrence, groups flattened.
    pub fn addresses(&self, header: &str) -> Vec<Address> {
        self.inner.addresses(header)
    }

    /// `from`: every address of every `From` header.
    pub fn from(&self) -> Vec<Address> {
        self.addresses("From")
    }

    /// `to`: every address of every `To` header.
    pub fn to(&self) -> Vec<Address> {
        self.addresses("To")
    }

    /// `cc`: every address of every `Cc` header.
    pub fn cc(&self) -> Vec<Address> {
        self.addresses("Cc")
    }

    /// `reply_to`: every address of every `Reply-To` header.
    pub fn reply_to(&self) -> Vec<Address> {
        self.addresses("Reply-To")
    }

    /// `sender`: every address of every `Sender` header.
    pub fn sender(&self) -> Vec<Address> {
        self.addresses("Sender")
    }

    /// `date`: the first Date header, seconds since the epoch, if it parses.
    pub fn date(&self) -> Option<i64> {
        self.inner.date()
    }

    /// `body`: the text of the non-attachment parts (docs/language.md ("The message model")).
    pub fn body_text(&self) -> &str {
        self.inner.body_text()
    }

    /// `body.lines`: the text of every part that is not an attachment,
    /// every alternative included, plain text with the line breaks it was
    /// written with, CRLF or LF (docs/language.md ("The message model")).
    pub fn body_lines(&self) -> &str {
        self.inner.body_lines()
    }

    /// `body.raw`: the bytes after the header block, as received: MIME
    /// boundaries, part headers and transfer encodings included.
    pub fn body_raw(&self) -> &[u8] {
        self.inner.body_raw()
    }

    /// `body.html`: the HTML parts, decoded, tags kept, joined with `\n`.
    pub fn body_html(&self) -> &str {
        self.inner.body_html()
    }

    /// `attachments`.
    pub fn attachments(&self) -> &[Attachment] {
        self.inner.attachments()
    }

    /// `size`: bytes of the whole message as received.
    pub fn size(&self) -> u64 {
        self.inner.size()
    }

    /// The message's bytes as received.
    pub fn raw(&self) -> &[u8] {
        self.inner.raw()
    }
}

impl Transaction {
    /// A transaction with `weir run`'s defaults (docs/cli.md): without
    /// `from`, the envelope sender is the first `From` header address (or
    /// the null sender); without `to`, the recipients are the `To` and `Cc`
    /// addresses; `client.ip` is 127.0.0.1 and `helo` `localhost` unless
    /// given; `recipient` is the first envelope recipient.
    pub fn with_defaults(
        message: Message,
        from: Option<&str>,
        to: &[String],
        client_ip: Option<IpAddr>,
        helo: Option<&str>,
        now: i64,
    ) -> Transaction {
        let from = match from {
            Some(text) => Address::parse(text),
            None => message.from().into_iter().next().unwrap_or_default(),
        };
        let to: Vec<Address> = if to.is_empty() {
            let mut to = message.to();
            to.extend(message.cc());
            to
        } else {
            to.iter().map(|t| Address::parse(t)).collect()
        };
        let mut connection = Connection::default();
        if let Some(ip) = client_ip {
            connection.ip = ip;
        }
        if let Some(helo) = helo {
            connection.helo = helo.to_string();
        }
        let recipient = to.first().cloned();
        Transaction {
            connection,
            envelope: Envelope {
                from,
                to,
                recipient,
            },
            message,
            now,
            classes: Default::default(),
        }
    }
}

impl Address {
    /// Splits an address as written in an envelope or by a user
    /// (`"Name <a+b@c>"`, `<a@b>`, `a@b`, `""`, `<>`).
    pub fn parse(text: &str) -> Address {
        crate::mime::parse_address(text)
    }
}
