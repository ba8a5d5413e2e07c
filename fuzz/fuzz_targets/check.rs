//! The checker never panics, and a ruleset that compiles evaluates a fixed
//! message without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;
use weir_compiler::loader::MemoryLoader;
use weir_compiler::{EvalOptions, MemoryRates, compile};
use weir_stdlib::{Limits, Message, Transaction};

const MESSAGE: &[u8] = b"From: A <a+b@example.com>\r\nTo: c@example.org\r\nSubject: invoice #12\r\n\r\nhello\r\n";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut loader: MemoryLoader = MemoryLoader::new();
    loader.insert("fuzz.flow", text);
    let compiled = compile(std::path::Path::new("fuzz.flow"), &loader);
    if let Some(ruleset) = compiled.ruleset {
        let message = Message::parse(MESSAGE, &Limits::default()).unwrap();
        let tx = Transaction::with_defaults(message, None, &[], None, None, 0);
        let _ = ruleset.evaluate(&tx, &mut MemoryRates::default(), &EvalOptions::default());
    }
});
