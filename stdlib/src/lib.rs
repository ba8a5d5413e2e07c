//! Weir's runtime library: what compiled rules read and call.
//!
//! - [`message`]: the message model over mail-parser (headers, addresses,
//!   body text, attachments), the envelope and the connection.
//! - [`types`] and [`value`]: Flow's static types, stages and run-time values.
//! - [`pattern`]: regex literals, checked at load and built on first use.
//! - [`registry`]: one table of every field, builtin function and action,
//!   with signatures, stages, docs and implementations.
//! - [`modules`]: the `stdlib/*.flow` modules (`import "stdlib/bulk"`).
//! - [`reference`]: the Markdown reference generated from the registry
//!   (`docs/reference.md`).
//! - [`html`]: the HTML-to-text conversion behind `body`.
//! - [`authres`]: `Authentication-Results` (RFC 8601) read into records.
//! - [`classes`]: the answers of learned classifiers for one message.
//! - [`time`]: times in IANA zones (`local()`), time literals and `Date:`.
//!
//! ```
//! use weir_stdlib::{registry, Limits, Message, Transaction};
//!
//! let raw = b"From: Jane <jane+news@example.com>\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\n\r\nHello";
//! let message = Message::parse(raw, &Limits::default()).expect("within the limits");
//! assert_eq!(message.subject(), "Café");
//! assert_eq!(message.from()[0].detail, "news");
//!
//! // Fields are read through the registry, as the interpreter does.
//! let tx = Transaction::with_defaults(message, None, &[], None, None, 0);
//! let body = registry().field("body").and_then(|f| f.get).expect("body has a getter");
//! assert_eq!(body(&tx).to_text(), "Hello");
//! ```
//!
//! Architecture invariants: parsing never fails on content and never
//! panics (only [`Limits`] refuse a message); every function here is linear
//! in its input; nothing in this crate does I/O.
//!
//! Internal modules: `headers` reads the top-level header block as written
//! and decodes RFC 2047; `mime` walks mail-parser's part tree to decide body
//! and attachments; `address` splits addresses; `charset` holds the byte
//! decoders; `builtins` fills the registry.

pub mod authres;
pub mod classes;
pub mod folder;
pub mod message;
pub mod pattern;
pub mod registry;
pub mod time;
pub mod types;
pub mod value;

mod address;
mod builtins;
mod charset;
mod headers;
pub mod html;
mod mime;
pub mod modules;
pub mod reference;

pub use authres::AuthResult;
pub use classes::{Classification, Classifications};
pub use headers::valid_header_name;
pub use headers::{HeaderLayout, header_layout};
pub use message::{
    Address, Attachment, Connection, Envelope, Limits, Message, MessageError, Transaction,
};
pub use pattern::{Regex, RegexError};
pub use registry::registry;
pub use types::{Stage, Type};
pub use value::Value;
