//! The delivered copy: the received message with the header edits of the
//! decision applied. The edits are the milter's ([`stages::plan`]), so a
//! message gets the same `X-Weir-Tags`, `X-Weir-Folder` and rule headers
//! whether Weir filtered it as a milter or delivered it over LMTP; this
//! module only carries them out on raw bytes, as the MTA would.

use weir_compiler::Decision;

use crate::stages::{self, Edit, MessageFacts};

/// A message split into its header fields (each with its folded
/// continuation lines and line end, byte for byte) and the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// Header fields: the name and the whole field as received.
    pub fields: Vec<(String, Vec<u8>)>,
    /// Everything after the header block (the empty line included when
    /// there was one).
    pub rest: Vec<u8>,
}

impl RawMessage {
    /// Splits `wire` (CRLF line ends). A message that does not start with a
    /// header field has no header block: every byte is body.
    pub fn split(wire: &[u8]) -> RawMessage {
        let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
        let mut pos = 0;
        while pos < wire.len() {
            let end = wire[pos..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(wire.len(), |i| pos + i + 1);
            let line = &wire[pos..end];
            let bare = trim_line_end(line);
            if bare.is_empty() {
                break;
            }
            if matches!(bare[0], b' ' | b'\t') {
                match fields.last_mut() {
                    Some((_, field)) => field.extend_from_slice(line),
                    None => break,
                }
            } else {
                let Some(colon) = bare.iter().position(|&b| b == b':') else {
                    break;
                };
                let name = &bare[..colon];
                if name.is_empty() || !name.iter().all(|b| b.is_ascii_graphic()) {
                    break;
                }
                fields.push((String::from_utf8_lossy(name).into_owned(), line.to_vec()));
            }
            pos = end;
        }
        if fields.is_empty() {
            return RawMessage {
                fields,
                rest: wire.to_vec(),
            };
        }
        RawMessage {
            fields,
            rest: wire[pos..].to_vec(),
        }
    }

    /// The header fields as the milter would have received them: name and
    /// value (after the colon, leading blanks removed, folding kept as
    /// `\n`-separated lines), for [`stages::plan`].
    pub fn header_pairs(&self) -> Vec<(String, String)> {
        self.fields
            .iter()
            .map(|(name, field)| {
                let text = String::from_utf8_lossy(field);
                let value = text
                    .split_once(':')
                    .map_or("", |(_, v)| v)
                    .trim_start_matches([' ', '\t'])
                    .trim_end_matches(['\r', '\n'])
                    .replace("\r\n", "\n");
                (name.clone(), value)
            })
            .collect()
    }

    /// Applies one milter header edit (envelope edits are ignored here).
    pub fn apply(&mut self, edit: &Edit) {
        match edit {
            Edit::AddHeader(name, value) => {
                self.fields.push((name.clone(), render(name, value)));
            }
            Edit::ChangeHeader(name, index, value) => {
                let Ok(index) = usize::try_from(*index) else {
                    return;
                };
                let Some(pos) = self
                    .fields
                    .iter()
                    .enumerate()
                    .filter(|(_, (n, _))| n.eq_ignore_ascii_case(name))
                    .nth(index.saturating_sub(1))
                    .map(|(i, _)| i)
                else {
                    // Like the MTA: changing an absent occurrence adds it.
                    if let Some(value) = value {
                        self.fields.push((name.clone(), render(name, value)));
                    }
                    return;
                };
                match value {
                    Some(value) => {
                        let original = self.fields[pos].0.clone();
                        self.fields[pos].1 = render(&original, value);
                    }
                    None => {
                        self.fields.remove(pos);
                    }
                }
            }
            Edit::AddRcpt(_) | Edit::DeleteRcpt(_) => {}
        }
    }

    /// The message as bytes again.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (_, field) in &self.fields {
            out.extend_from_slice(field);
            if !field.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
        if !self.fields.is_empty()
            && !self.rest.starts_with(b"\r\n")
            && !self.rest.starts_with(b"\n")
        {
            // The header block needs its empty line to stay a header block.
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&self.rest);
        out
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `Name: value` with CRLF line ends; a multi-line value keeps its folding.
fn render(name: &str, value: &str) -> Vec<u8> {
    let mut out = format!("{name}: ").into_bytes();
    for (i, line) in value.split('\n').enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
            if !line.starts_with([' ', '\t']) {
                out.push(b'\t');
            }
        }
        out.extend_from_slice(line.trim_end_matches('\r').as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The copy to store for `decision`: `wire` (CRLF) with the decision's
/// header edits applied (and incoming `X-Weir-*` headers removed).
pub fn delivered_copy(wire: &[u8], decision: &Decision, recipients: &[String]) -> Vec<u8> {
    let mut raw = RawMessage::split(wire);
    let facts = MessageFacts {
        headers: raw.header_pairs(),
        to: recipients.to_vec(),
        ..MessageFacts::default()
    };
    let plan = stages::plan(decision, &facts);
    for edit in &plan.edits {
        raw.apply(edit);
    }
    raw.to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_join_are_lossless() {
        let wire = b"Subject: a\r\n  b\r\nFrom: x@y\r\n\r\nbody\r\n";
        let raw = RawMessage::split(wire);
        assert_eq!(raw.fields.len(), 2);
        assert_eq!(raw.to_bytes(), wire);
        assert_eq!(raw.header_pairs()[0].1, "a\n  b");
        let no_headers = b"just text\r\n";
        assert_eq!(RawMessage::split(no_headers).fields.len(), 0);
        assert_eq!(RawMessage::split(no_headers).to_bytes(), no_headers);
    }

    #[test]
    fn edits_change_add_and_remove_occurrences() {
        let mut raw = RawMessage::split(b"X-A: 1\r\nSubject: hi\r\nX-A: 2\r\n\r\nb\r\n");
        raw.apply(&Edit::ChangeHeader("x-a".into(), 2, None));
        raw.apply(&Edit::ChangeHeader(
            "Subject".into(),
            1,
            Some("[T] hi".into()),
        ));
        raw.apply(&Edit::AddHeader("X-Weir-Tags".into(), "a, b".into()));
        assert_eq!(
            raw.to_bytes(),
            b"X-A: 1\r\nSubject: [T] hi\r\nX-Weir-Tags: a, b\r\n\r\nb\r\n"
        );
    }
}
