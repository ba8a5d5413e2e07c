//! The integration tests of weir-compiler, one binary (a module per area).
//! Kept apart, each in a process of its own: native_memory (memory is measured for the whole process), native_wx (re-runs itself under PR_SET_MDWE) and native_timing (a timing run alone, in release).

#[path = "../common/mod.rs"]
mod common;

mod check;
mod diagnostics_golden;
mod differential;
mod eval;
mod native_eval;
mod native_prefilter;
mod prop;
mod rate_keys;
