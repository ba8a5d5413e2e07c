//! The delivered copy: the received message with the header edits of the
//! decision applied. The edits are the milter's ([`edits::plan`]), so a
//! message gets the same `X-Weir-Tags`, `X-Weir-Folder` and rule headers
//! whether Weir filtered it as a milter or delivered it over LMTP; this
//! module only carries them out on raw bytes, as the MTA would.

use weir_compiler::Decision;

use crate::edits::{self, Edit};
use crate::stages::MessageFacts;

/// A message split into its header fields (each with its folded
/// continuation lines and line end, byte for byte) and the rest, by the
/// message model's own splitter ([`weir_stdlib::header_layout`]), so the
/// copy's header block is the one the rules read. Joined again without an
/// edit it is the received bytes, unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// What comes before the header block (an mbox `From ` line), kept.
    pub prefix: Vec<u8>,
    /// Header fields: the name and the whole field as received.
    pub fields: Vec<(String, Vec<u8>)>,
    /// Everything after the header fields (the empty line included when
    /// there was one).
    pub rest: Vec<u8>,
}

impl RawMessage {
    /// Splits `wire` (CRLF line ends). A message that does not start with a
    /// header field has no header block: every byte is body.
    pub fn split(wire: &[u8]) -> RawMessage {
        let layout = weir_stdlib::header_layout(wire);
        RawMessage {
            prefix: wire[..layout.start].to_vec(),
            fields: layout
                .fields
                .into_iter()
                .map(|(name, span)| (name, wire[span].to_vec()))
                .collect(),
            rest: wire[layout.end..].to_vec(),
        }
    }

    /// The header fields as the milter would have received them: name and
    /// value (after the colon, leading blanks removed, folding kept as
    /// `\n`-separated lines), for [`edits::plan`].
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

    /// The message as bytes again: without edits, the bytes it was split
    /// from. The rest follows the fields as it did (a body whose first line
    /// is not a field stays the body with or without a blank line before
    /// it), except where a blank line must now separate them: after a
    /// last field without a line end, or before a rest that would read as
    /// a continuation of the fields (a message that had no header block).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.prefix.clone();
        let count = self.fields.len();
        for (i, (_, field)) in self.fields.iter().enumerate() {
            out.extend_from_slice(field);
            if !field.ends_with(b"\n") && (i + 1 < count || !self.rest.is_empty()) {
                out.extend_from_slice(b"\r\n");
            }
        }
        if count > 0 && (self.rest.starts_with(b" ") || self.rest.starts_with(b"\t")) {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&self.rest);
        out
    }
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
    let plan = edits::plan(decision, &facts);
    for edit in &plan.edits {
        raw.apply(edit);
    }
    raw.to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages;

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
    fn a_space_before_the_colon_keeps_the_header_block_whole() {
        let wire = b"Subject : hi\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\
Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nAuto-Submitted: auto-replied\r\n\r\nbody\r\n";
        let raw = RawMessage::split(wire);
        let names: Vec<&str> = raw.fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "Subject",
                "MIME-Version",
                "Content-Type",
                "Date",
                "Auto-Submitted"
            ]
        );
        assert_eq!(raw.to_bytes(), wire, "unedited, byte for byte");
        let decision = stages::policy_decision(
            crate::config::OnError::Accept,
            weir_stdlib::Stage::Body,
            stages::PolicyCause::Error,
        );
        assert_eq!(delivered_copy(wire, &decision, &[]), wire);
    }

    #[test]
    fn unusual_messages_come_back_byte_for_byte() {
        for wire in [
            &b"From alice@example.org Mon Jan  1 00:00:00 2024\r\nSubject: x\r\n\r\nb\r\n"[..],
            b"Subject: no separator\r\nthis line is body\r\n",
            b"Subject: no line end",
            b"\r\nonly a body\r\n",
            b"X-Bin\xff: v\r\nSubject: a\n b\n\nlf only\n",
            b"",
        ] {
            assert_eq!(RawMessage::split(wire).to_bytes(), wire, "{wire:?}");
        }
        let mut raw = RawMessage::split(b"Subject: no line end");
        raw.apply(&Edit::AddHeader("X-Weir-Tags".into(), "a".into()));
        assert_eq!(
            raw.to_bytes(),
            b"Subject: no line end\r\nX-Weir-Tags: a\r\n"
        );
        let mut raw = RawMessage::split(b" not a header\r\n");
        raw.apply(&Edit::AddHeader("X-Weir-Tags".into(), "a".into()));
        assert_eq!(raw.to_bytes(), b"X-Weir-Tags: a\r\n\r\n not a header\r\n");
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
