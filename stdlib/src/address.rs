//! Mail addresses: splitting `local@domain`, envelope and user-written
//! forms (`Address::parse`), and header address lists (through
//! mail-parser's RFC 5322 address parser: groups, comments, quoted names).

use mail_parser::parsers::MessageStream;
use mail_parser::{Addr, HeaderValue};

use crate::headers::decode_rfc2047;
use crate::message::Address;

/// Builds an [`Address`] from `local@domain` as written and a display name.
/// The domain is what follows the last `@` (a quoted local part may hold
/// an `@`); without `@` the whole text is the local part.
pub(crate) fn from_parts(address: &str, name: &str) -> Address {
    let address = address.trim();
    let (local, domain) = match address.rfind('@') {
        Some(at) => (&address[..at], &address[at + 1..]),
        None => (address, ""),
    };
    let detail = local.split_once('+').map_or("", |(_, detail)| detail);
    // Each part up to 23 bytes (nearly every one) is held inline.
    Address {
        address: address.into(),
        local: local.into(),
        domain: domain.into(),
        detail: detail.into(),
        name: name.trim().into(),
    }
}

/// Parses an address as written in an envelope or by a user:
/// `"Name" <a+b@c>`, `Name <a@b>`, `<a@b>`, `a@b`, `""` and `<>` (the null
/// sender: every part `""`). The display name is unquoted and RFC 2047
/// decoded.
pub(crate) fn parse(text: &str) -> Address {
    let text = text.trim();
    match text.find('<') {
        Some(open) => {
            let inner = &text[open + 1..];
            let addr = inner.find('>').map_or(inner, |close| &inner[..close]);
            let name = text[..open].trim();
            let name = name
                .strip_prefix('"')
                .and_then(|n| n.strip_suffix('"'))
                .map_or_else(
                    || name.to_string(),
                    |n| n.replace("\\\"", "\"").replace("\\\\", "\\"),
                );
            from_parts(addr, &decode_rfc2047(&name))
        }
        None => from_parts(text, ""),
    }
}

/// Every address of one address header value (raw, unfolded), groups
/// flattened. Entries without an address (a bare group name) are skipped.
pub(crate) fn header_addresses(raw_value: &str, out: &mut Vec<Address>) {
    let mut bytes = Vec::with_capacity(raw_value.len() + 2);
    bytes.extend_from_slice(raw_value.as_bytes());
    bytes.extend_from_slice(b"\r\n");
    let value = MessageStream::new(&bytes).parse_address();
    let HeaderValue::Address(list) = value else {
        return;
    };
    let mut push = |addr: &Addr<'_>| {
        if let Some(address) = addr.address.as_deref()
            && !address.trim().is_empty()
        {
            out.push(from_parts(address, addr.name.as_deref().unwrap_or("")));
        }
    };
    match list {
        mail_parser::Address::List(addrs) => addrs.iter().for_each(&mut push),
        mail_parser::Address::Group(groups) => groups
            .iter()
            .flat_map(|g| g.addresses.iter())
            .for_each(&mut push),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_envelope_forms() {
        let a = parse("\"Jane Doe\" <jane+news@Example.com>");
        assert_eq!(
            (
                a.address.as_str(),
                a.local.as_str(),
                a.domain.as_str(),
                a.detail.as_str(),
                a.name.as_str()
            ),
            (
                "jane+news@Example.com",
                "jane+news",
                "Example.com",
                "news",
                "Jane Doe"
            )
        );
        assert_eq!(parse("<>"), Address::default());
        assert_eq!(parse(""), Address::default());
        assert_eq!(parse("a@b").domain, "b");
        assert_eq!(parse("<a@b>").address, "a@b");
    }

    #[test]
    fn parses_header_lists() {
        let mut out = Vec::new();
        header_addresses("A <a@x>, \"B, b\" <b@y>, team: c@z, d@z;", &mut out);
        let got: Vec<_> = out
            .iter()
            .map(|a| (a.address.as_str(), a.name.as_str()))
            .collect();
        assert_eq!(
            got,
            [("a@x", "A"), ("b@y", "B, b"), ("c@z", ""), ("d@z", "")]
        );
    }
}
