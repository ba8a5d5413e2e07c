//! `weir_serve::fuzz::lmtp_bytes` under libFuzzer (see fuzz/README.md).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = weir_serve::fuzz::lmtp_bytes(data);
});
