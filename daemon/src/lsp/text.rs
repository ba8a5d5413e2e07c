//! Positions in a document: LSP speaks in lines and UTF-16 columns, the
//! parser and the compiler in byte offsets. [`LineIndex`] converts both
//! ways without ever panicking on a position the client got wrong (it is
//! clamped to the nearest valid place).

use lsp_types::{Position, Range, TextDocumentContentChangeEvent};
use weir_grammar::ast::Span;

/// The start offset of every line of one text.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes `text`.
    pub(crate) fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    /// The LSP position of a byte offset (clamped to the text).
    pub(crate) fn position(&self, offset: usize) -> Position {
        let offset = floor_boundary(self.text, offset.min(self.text.len()));
        let line = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let start = self.starts[line];
        let column = self.text[start..offset].encode_utf16().count();
        Position::new(to_u32(line), to_u32(column))
    }

    /// The LSP range of a span.
    pub(crate) fn range(&self, span: Span) -> Range {
        Range::new(
            self.position(span.start),
            self.position(span.end.max(span.start)),
        )
    }

    /// The byte offset of an LSP position; a column past the end of its line
    /// means the end of the line, a line past the end the end of the text.
    pub(crate) fn offset(&self, position: Position) -> usize {
        let Some(&start) = self.starts.get(position.line as usize) else {
            return self.text.len();
        };
        let line_end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        let mut units = 0usize;
        for (i, c) in self.text[start..line_end].char_indices() {
            if units >= position.character as usize {
                return start + i;
            }
            units += c.len_utf16();
        }
        line_end
    }

    /// The byte span of an LSP range.
    pub(crate) fn span(&self, range: Range) -> Span {
        let (a, b) = (self.offset(range.start), self.offset(range.end));
        Span::new(a.min(b), a.max(b))
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn floor_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Applies one `didChange` event: a whole new text, or a ranged edit.
pub(crate) fn apply_change(text: &mut String, change: TextDocumentContentChangeEvent) {
    match change.range {
        None => *text = change.text,
        Some(range) => {
            let span = LineIndex::new(text).span(range);
            text.replace_range(span.start..span.end, &change.text);
        }
    }
}

/// The text of the line holding `offset`, without its newline.
pub(crate) fn line_at(text: &str, offset: usize) -> &str {
    let offset = floor_boundary(text, offset.min(text.len()));
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    &text[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_utf16_units() {
        let text = "a\n\u{e9}t\u{1F600}x\n";
        let index = LineIndex::new(text);
        // `x` is after `é` (2 bytes, 1 unit), `t`, and an emoji (4 bytes, 2 units).
        let x = text.find('x').unwrap_or_default();
        assert_eq!(index.position(x), Position::new(1, 4));
        assert_eq!(index.offset(Position::new(1, 4)), x);
        assert_eq!(index.offset(Position::new(1, 99)), x + 1);
        assert_eq!(index.offset(Position::new(9, 0)), text.len());
        assert_eq!(index.position(text.len()), Position::new(2, 0));
    }

    #[test]
    fn ranged_changes_edit_in_place() {
        let mut text = String::from("rule a {\n  then tag \"x\"\n}\n");
        apply_change(
            &mut text,
            TextDocumentContentChangeEvent {
                range: Some(Range::new(Position::new(1, 12), Position::new(1, 13))),
                range_length: None,
                text: "yz".to_string(),
            },
        );
        assert_eq!(text, "rule a {\n  then tag \"yz\"\n}\n");
    }
}
