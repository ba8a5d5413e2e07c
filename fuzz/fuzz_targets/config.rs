//! `weir_serve::fuzz::config_toml` under libFuzzer (see fuzz/README.md).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| weir_serve::fuzz::config_toml(data));
