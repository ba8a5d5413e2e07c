//! The integration tests of weir-stdlib, one binary (a module per area).

mod common;

mod corpus;
mod linear;
mod message;
mod never_panics;
mod reference;
mod registry;
