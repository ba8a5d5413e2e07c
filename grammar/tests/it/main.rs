//! The integration tests of weir-grammar, one binary (a module per area).

mod canonical;
mod fmt_golden;
mod parse;
mod prop;
