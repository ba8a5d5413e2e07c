//! The parser and the formatter never panic, and formatting is idempotent.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = weir_grammar::parse(text, "fuzz.flow");
    if let Ok(once) = weir_grammar::format::format(text, "fuzz.flow") {
        let twice = weir_grammar::format::format(&once, "fuzz.flow").expect("formatted text parses");
        assert_eq!(once, twice);
    }
});
