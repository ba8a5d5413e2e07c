//! Weir's runtime library: what compiled rules read and call.
//!
//! - [`message`]: the message model over mail-parser (headers, addresses,
//!   body text, attachments), the envelope and the connection.
//! - [`types`] and [`value`]: Flow's static types, stages and run-time values.
//! - [`registry`]: one table of every field, builtin function and action,
//!   with signatures, stages, docs and implementations.
//! - [`modules`]: the `stdlib/*.flow` modules (`import "stdlib/bulk"`).

pub mod message;
pub mod registry;
pub mod types;
pub mod value;

mod builtins;
mod mime;
pub mod modules;

pub use message::{Address, Attachment, Connection, Envelope, Limits, Message, MessageError, Transaction};
pub use registry::registry;
pub use types::{Stage, Type};
pub use value::Value;
