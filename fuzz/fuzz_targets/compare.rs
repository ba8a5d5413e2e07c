//! Compile-and-compare: a random well-typed ruleset (from the same
//! generator as `compiler/tests/differential.rs`, driven by the input's
//! first bytes) evaluated on a message (the input's remaining bytes) by the
//! interpreter and by native code must give identical decisions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_flowgen as flowgen;

use weir_compiler::loader::MemoryLoader;
use weir_compiler::{EvalOptions, MemoryRates, NativeRuleset, compile};
use weir_stdlib::{Limits, Message, Transaction};

fuzz_target!(|data: &[u8]| {
    // The first byte says how many of the next bytes drive the generator
    // (two bytes per choice); the rest is the message.
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let split = (usize::from(n) * 2).min(rest.len());
    let (choices, message) = rest.split_at(split);
    let tape: Vec<u32> = choices
        .chunks(2)
        .map(|c| c.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
        .collect();
    let text = flowgen::ruleset(&mut flowgen::Tape::new(&tape));
    let mut loader: MemoryLoader = MemoryLoader::new();
    loader.insert("fuzz.flow", text.as_str());
    let compiled = compile(std::path::Path::new("fuzz.flow"), &loader);
    // The generator writes only valid rulesets; one that does not compile
    // is a generator bug that the differential test reports.
    let Some(ruleset) = compiled.ruleset else {
        return;
    };
    let Ok(native) = NativeRuleset::compile(&ruleset) else {
        return;
    };
    let Ok(message) = Message::parse(message, &Limits::default()) else {
        return;
    };
    let tx = Transaction::with_defaults(message, None, &[], None, Some("fuzz"), 1_795_330_800);
    for explain in [false, true] {
        let opts = EvalOptions {
            explain,
            dry_run: false,
        };
        let expected = ruleset.evaluate(&tx, &mut MemoryRates::default(), &opts);
        let got = native.evaluate(&tx, &mut MemoryRates::default(), &opts);
        assert_eq!(got, expected, "engines disagree with ruleset:\n{text}");
    }
});
