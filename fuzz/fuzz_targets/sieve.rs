//! `weir_sieve::fuzz_script` under libFuzzer (see fuzz/README.md): the
//! Sieve parser and converter on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| weir_sieve::fuzz_script(data));
