//! Any bytes are a message: parsing and every accessor never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use weir_stdlib::{Limits, Message};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data, &Limits::default()) {
        let _ = (m.subject(), m.message_id(), m.date(), m.headers());
        let _ = (m.addresses("From"), m.addresses("To"), m.header("Received"), m.header_raw("Subject"));
        let _ = (m.body_text(), m.body_html(), m.attachments(), m.size());
    }
});
