//! Parsing raw bytes into the message model (over mail-parser).
//! STUB: to be implemented.

use crate::message::{Address, Attachment, Limits, MessageError};

#[derive(Debug, Clone, Default)]
pub(crate) struct Parsed {
    raw: Vec<u8>,
}

impl Parsed {
    pub(crate) fn parse(bytes: &[u8], _limits: &Limits) -> Result<Parsed, MessageError> {
        Ok(Parsed { raw: bytes.to_vec() })
    }
    pub(crate) fn header(&self, _name: &str) -> Vec<String> {
        Vec::new()
    }
    pub(crate) fn header_raw(&self, _name: &str) -> Vec<String> {
        Vec::new()
    }
    pub(crate) fn headers(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    pub(crate) fn message_id(&self) -> String {
        String::new()
    }
    pub(crate) fn addresses(&self, _header: &str) -> Vec<Address> {
        Vec::new()
    }
    pub(crate) fn date(&self) -> Option<i64> {
        None
    }
    pub(crate) fn body_text(&self) -> &str {
        ""
    }
    pub(crate) fn body_html(&self) -> &str {
        ""
    }
    pub(crate) fn attachments(&self) -> &[Attachment] {
        &[]
    }
    pub(crate) fn size(&self) -> u64 {
        self.raw.len() as u64
    }
    pub(crate) fn raw(&self) -> &[u8] {
        &self.raw
    }
}

pub(crate) fn parse_address(text: &str) -> Address {
    Address { address: text.to_string(), ..Address::default() }
}
