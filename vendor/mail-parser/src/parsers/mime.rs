/*
 * SPDX-FileCopyrightText: 2020 Stalwart Labs LLC <hello@stalw.art>
 *
 * SPDX-License-Identifier: Apache-2.0 OR MIT
 */

use std::borrow::Cow;

use super::MessageStream;

impl<'x> MessageStream<'x> {
    pub fn seek_next_part(&mut self, boundary: &[u8]) -> bool {
        if !boundary.is_empty() {
            let mut last_ch = 0;

            self.checkpoint();

            while let Some(&ch) = self.next() {
                if ch == b'-' && last_ch == b'-' && self.try_skip(boundary) {
                    return true;
                }

                last_ch = ch;
            }

            self.restore();
        }

        false
    }

    pub fn seek_next_part_offset(&mut self, boundary: &[u8]) -> Option<usize> {
        let mut last_ch = b'\n';
        let mut offset_pos = self.offset();
        self.checkpoint();

        while let Some(&ch) = self.next() {
            if ch == b'\n' {
                offset_pos = if last_ch == b'\r' {
                    self.offset() - 2
                } else {
                    self.offset() - 1
                };
            } else if ch == b'-' && last_ch == b'-' && self.try_skip(boundary) {
                return offset_pos.into();
            }

            last_ch = ch;
        }

        self.restore();

        None
    }

    pub fn mime_part(&mut self, boundary: &[u8]) -> (usize, Cow<'x, [u8]>) {
        let start_pos = self.offset();
        self.checkpoint();

        if boundary.is_empty() {
            self.seek_end();
            return (self.offset(), self.bytes(start_pos..self.len()).into());
        }
        match self.find_boundary(start_pos, boundary) {
            Some((end_pos, next_pos)) => {
                self.seek(next_pos);
                (end_pos, self.bytes(start_pos..end_pos).into())
            }
            None => {
                self.restore();
                (usize::MAX, self.bytes(start_pos..self.len()).into())
            }
        }
    }

    pub fn seek_part_end(&mut self, boundary: Option<&[u8]>) -> (usize, bool) {
        let start_pos = self.offset();
        if let Some(boundary) = boundary {
            match self.find_boundary(start_pos, boundary) {
                Some((end_pos, next_pos)) => {
                    self.seek(next_pos);
                    (end_pos, true)
                }
                None => {
                    self.seek_end();
                    (self.offset(), false)
                }
            }
        } else {
            self.seek_end();
            (self.offset(), true)
        }
    }

    /// The first `--boundary` at or after `start_pos`, wherever it is on
    /// its line: where the part before it ends (the line break before it,
    /// or the dashes themselves when it is not at the start of a line) and
    /// where the stream goes on (after the boundary). The same as a scan a
    /// byte at a time that keeps the last two bytes read, found by `memmem`.
    fn find_boundary(&self, start_pos: usize, boundary: &[u8]) -> Option<(usize, usize)> {
        let hay = self.bytes(start_pos..self.len());
        let at = if boundary.len() + 2 <= 256 {
            let mut needle = [0u8; 256];
            needle[0] = b'-';
            needle[1] = b'-';
            needle[2..boundary.len() + 2].copy_from_slice(boundary);
            memchr::memmem::find(hay, &needle[..boundary.len() + 2])?
        } else {
            let mut needle = Vec::with_capacity(boundary.len() + 2);
            needle.extend_from_slice(b"--");
            needle.extend_from_slice(boundary);
            memchr::memmem::find(hay, &needle)?
        };
        let end = match at.checked_sub(1).map(|i| hay[i]) {
            None => 0,
            Some(b'\n') if at >= 2 && hay[at - 2] == b'\r' => at - 2,
            Some(b'\n') => at - 1,
            Some(_) => at,
        };
        Some((start_pos + end, start_pos + at + 2 + boundary.len()))
    }

    pub fn is_multipart_end(&mut self) -> bool {
        self.checkpoint();

        match (self.next(), self.peek()) {
            (Some(b'\r'), Some(b'\n')) => {
                self.next();
                false
            }
            (Some(b'-'), Some(b'-')) => {
                self.next();
                true
            }
            (Some(b'\n'), _) => false,
            (Some(&a), _) if a.is_ascii_whitespace() => {
                self.skip_crlf();
                false
            }
            _ => {
                self.restore();
                false
            }
        }
    }

    #[inline(always)]
    pub fn skip_crlf(&mut self) {
        while let Some(ch) = self.peek() {
            match ch {
                b'\r' | b' ' | b'\t' => {
                    self.next();
                }
                b'\n' => {
                    self.next();
                    break;
                }
                _ => break,
            }
        }
    }
}
