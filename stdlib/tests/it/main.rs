//! The integration tests of weir-stdlib, one binary (a module per area).

mod common;

mod corpus;
mod encodings;
mod linear;
mod message;
mod mime_cases;
mod never_panics;
mod reference;
mod registry;
mod spamassassin;
mod time;
mod vendored_mail_parser;
