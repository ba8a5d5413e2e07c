//! A construct laid out over one or more output lines, before printing.
//!
//! Expressions, actions and maps are first laid out as [`Lines`], each line
//! remembering where its code came from in the source, so that the printer
//! can put comments back beside the right line and keep blank lines.

/// One output line of a laid-out construct.
#[derive(Debug, Clone)]
pub(super) struct Frag {
    /// Indentation, in levels, relative to the construct's first line.
    pub(super) depth: usize,
    pub(super) text: String,
    /// Where the line's code starts in the source: comments before it are
    /// printed above it.
    pub(super) start: usize,
    /// Where the line's code ends in the source: a comment after it on the
    /// same source line stays at the end of this line.
    pub(super) end: usize,
    /// A blank line before it in the source is kept.
    pub(super) blank_ok: bool,
    /// A closing bracket: comments before it belong to the lines inside the
    /// brackets, so they are printed one level deeper than the bracket.
    pub(super) closing: bool,
}

/// A construct laid out as lines; never empty.
#[derive(Debug, Clone)]
pub(super) struct Lines {
    frags: Vec<Frag>,
}

impl Lines {
    /// One line of text covering `start..end` in the source.
    pub(super) fn text(text: impl Into<String>, start: usize, end: usize) -> Lines {
        Lines {
            frags: vec![Frag {
                depth: 0,
                text: text.into(),
                start,
                end,
                blank_ok: false,
                closing: false,
            }],
        }
    }

    /// A closing bracket on a line of its own.
    pub(super) fn closing(text: &str, start: usize, end: usize) -> Lines {
        let mut lines = Lines::text(text, start, end);
        lines.last_mut().closing = true;
        lines
    }

    /// Appends text to the last line.
    pub(super) fn push_str(&mut self, text: &str) {
        self.last_mut().text.push_str(text);
    }

    /// Records that the last line's code reaches `end` in the source.
    pub(super) fn reach(&mut self, end: usize) {
        let last = self.last_mut();
        last.end = last.end.max(end);
    }

    /// Continues the last line with `other`'s first line; `other`'s further
    /// lines keep their indentation relative to the line they continue.
    pub(super) fn append(&mut self, other: Lines) {
        let mut rest = other.frags.into_iter();
        let Some(first) = rest.next() else {
            return;
        };
        let last = self.last_mut();
        let base = last.depth;
        last.text.push_str(&first.text);
        last.end = last.end.max(first.end);
        self.frags.extend(rest.map(|mut f| {
            f.depth += base;
            f
        }));
    }

    /// Starts a new line at `depth` (relative to the first line) with
    /// `prefix` and `other`'s first line; `other`'s further lines follow,
    /// shifted by the same depth.
    pub(super) fn push_line(&mut self, depth: usize, other: Lines, prefix: &str, blank_ok: bool) {
        let mut frags = other.frags;
        if let Some(first) = frags.first_mut() {
            first.text.insert_str(0, prefix);
            first.blank_ok = blank_ok;
        }
        self.frags.extend(frags.into_iter().map(|mut f| {
            f.depth += depth;
            f
        }));
    }

    /// The lines, first to last.
    pub(super) fn into_frags(self) -> Vec<Frag> {
        self.frags
    }

    fn last_mut(&mut self) -> &mut Frag {
        // `Lines` is never empty: every constructor makes one line and no
        // method removes any.
        let last = self.frags.len() - 1;
        &mut self.frags[last]
    }
}
