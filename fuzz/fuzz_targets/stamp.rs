//! `weir_serve::fuzz::stamp` under libFuzzer (see fuzz/README.md).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| weir_serve::fuzz::stamp(data));
