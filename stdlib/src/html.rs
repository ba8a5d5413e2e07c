//! HTML to plain text for `body` (docs/language.md ("The message model")): one linear pass.
//!
//! - Tags are removed. Inline tags (`b`, `a`, `span`, ...) add nothing, so
//!   `<b>fr</b>ee` reads `free`; `<br>` and block elements (`p div li tr h1`
//!   … `table ul ol blockquote pre hr` …) become a line break; table cells
//!   (`td th`) become a space.
//! - `script`, `style`, `title`, `template` and `noscript` are dropped with
//!   their content (as a browser with scripting hides them, to the end of
//!   the text when their closing tag is missing); comments, `<!DOCTYPE>`,
//!   CDATA and processing instructions are dropped. `head` is not: its
//!   other elements hold no text, and text in it is shown by browsers,
//!   which end the head at the first element or text that belongs to a
//!   body. (Dropping `head` to its closing tag hid whole messages that
//!   open `<head>` and never close it.)
//! - Entities are decoded: `&#NNN;`, `&#xHH;` and the common named ones;
//!   `&nbsp;` is an ordinary space. An unknown or unterminated entity stays
//!   as written (`AT&T`).
//! - Whitespace is collapsed: a run of spaces, tabs and source line breaks
//!   is one space, a run of line breaks from tags is one `\n`, and the text
//!   is trimmed. `<pre>` is not special.

/// What an element does to the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    /// Starts a new line (`br`, `p`, `div`, `li`, `tr`, headings, ...).
    Block,
    /// A table cell (`td`, `th`): a space.
    Cell,
    /// Dropped with its content to its closing tag (`script`, `style`,
    /// `title`, `template`, `noscript`); the name is lower-case.
    Dropped(&'static str),
    /// Any other: adds nothing.
    Inline,
}

/// The [`Element`] of a tag name as written (ASCII case-insensitive).
fn element(name: &[u8]) -> Element {
    // The longest name that does something has ten letters.
    let mut lower = [0u8; 10];
    let Some(lower) = lower.get_mut(..name.len()) else {
        return Element::Inline;
    };
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    match &*lower {
        b"address" | b"article" | b"aside" | b"blockquote" | b"br" | b"caption" | b"dd"
        | b"details" | b"dialog" | b"div" | b"dl" | b"dt" | b"fieldset" | b"figcaption"
        | b"figure" | b"footer" | b"form" | b"h1" | b"h2" | b"h3" | b"h4" | b"h5" | b"h6"
        | b"header" | b"hr" | b"li" | b"main" | b"nav" | b"ol" | b"p" | b"pre" | b"section"
        | b"summary" | b"table" | b"tbody" | b"tfoot" | b"thead" | b"tr" | b"ul" => Element::Block,
        b"td" | b"th" => Element::Cell,
        b"script" => Element::Dropped("script"),
        b"style" => Element::Dropped("style"),
        b"title" => Element::Dropped("title"),
        b"template" => Element::Dropped("template"),
        b"noscript" => Element::Dropped("noscript"),
        _ => Element::Inline,
    }
}

/// Builds the output with whitespace collapsed.
struct Out {
    text: String,
    space: bool,
    newline: bool,
    /// Whitespace in the source's text is kept as written (`body.lines`,
    /// as Pigeonhole's HTML-to-text keeps it) instead of collapsed.
    keep_breaks: bool,
    /// With `keep_breaks`: the whitespace read since the last character.
    pending: String,
}

impl Out {
    /// Appends one character that is not whitespace.
    fn push(&mut self, c: char) {
        self.separate();
        self.text.push(c);
    }

    /// Appends text: its runs without whitespace whole, the whitespace
    /// between them collapsed (or kept, with `keep_breaks`).
    fn push_str(&mut self, s: &str) {
        let bytes = s.as_bytes();
        let mut run = 0;
        let mut i = 0;
        while i < bytes.len() {
            // ASCII decided from the byte (`char::is_whitespace` there is
            // tab to carriage return, and space); other characters decoded.
            let c = match bytes[i] {
                b @ 0..0x80 => char::from(b),
                _ => s[i..].chars().next().unwrap_or_default(),
            };
            let at = i;
            i += c.len_utf8();
            if !c.is_whitespace() {
                continue;
            }
            if run < at {
                self.separate();
                self.text.push_str(&s[run..at]);
            }
            if self.keep_breaks {
                self.pending.push(c);
            } else {
                self.space = true;
            }
            run = i;
        }
        if run < s.len() {
            self.separate();
            self.text.push_str(&s[run..]);
        }
    }

    /// Writes what separates the text so far from what comes next: the
    /// line break, the kept whitespace or the one space read since, if any
    /// (nothing before the first character).
    fn separate(&mut self) {
        if !self.text.is_empty() {
            if self.newline {
                self.text.push('\n');
            } else if !self.pending.is_empty() {
                self.text.push_str(&self.pending);
            } else if self.space {
                self.text.push(' ');
            }
        }
        self.space = false;
        self.newline = false;
        self.pending.clear();
    }
}

/// Whether `haystack` at `at` starts with `needle`, ASCII case-insensitively.
fn starts_with_ci(haystack: &[u8], at: usize, needle: &[u8]) -> bool {
    haystack
        .get(at..at + needle.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(needle))
}

/// Finds `needle` (ASCII, case-insensitive) in `haystack` from `from`.
fn find_ci(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let first = needle.first()?.to_ascii_lowercase();
    let mut i = from;
    while i < haystack.len() {
        let rel = haystack[i..]
            .iter()
            .position(|b| b.to_ascii_lowercase() == first)?;
        i += rel;
        if starts_with_ci(haystack, i, needle) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Converts HTML to text (see the module docs).
pub fn html_to_text(html: &str) -> String {
    convert(html, false)
}

/// [`html_to_text`], but the whitespace of the source's text is kept as
/// written (line breaks, runs of spaces): `body.lines`, where Sieve's
/// `body :text` finds no phrase the HTML source wraps or double-spaces.
pub fn html_to_lines(html: &str) -> String {
    convert(html, true)
}

fn convert(html: &str, keep_breaks: bool) -> String {
    let bytes = html.as_bytes();
    let mut out = Out {
        text: String::with_capacity(html.len() / 2),
        space: false,
        newline: false,
        keep_breaks,
        pending: String::new(),
    };
    let mut i = 0;
    // Start of the pending run of plain text.
    let mut text_start = 0;
    // Only `<` and `&` start anything but text.
    while let Some(offset) = memchr::memchr2(b'<', b'&', &bytes[i..]) {
        i += offset;
        match bytes[i] {
            b'<' => {
                let Some(end) = markup_end(bytes, i) else {
                    i += 1;
                    continue;
                };
                out.push_str(&html[text_start..i]);
                let (name, closing) = tag_name(&bytes[i + 1..end]);
                let mut next = end + 1;
                match element(name) {
                    Element::Block => out.newline = true,
                    Element::Cell => out.space = true,
                    Element::Dropped(name) if !closing => {
                        next = dropped_end(bytes, next, name);
                        out.space = true;
                    }
                    Element::Dropped(_) | Element::Inline => {}
                }
                i = next;
                text_start = i;
            }
            _ => {
                // `&`: an entity, or an ampersand as written.
                out.push_str(&html[text_start..i]);
                match entity(&html[i..]) {
                    Some((decoded, len)) => {
                        if decoded.is_whitespace() {
                            // `&nbsp;` included: it is an ordinary space here.
                            out.space = true;
                        } else if decoded != '\u{ad}' {
                            out.push(decoded);
                        }
                        i += len;
                    }
                    None => {
                        out.push('&');
                        i += 1;
                    }
                }
                text_start = i;
            }
        }
    }
    out.push_str(&html[text_start..]);
    out.text
}

/// The index of the `>` ending the markup that starts with `<` at `at`, or
/// `None` when `<` does not start markup (then it is text).
fn markup_end(bytes: &[u8], at: usize) -> Option<usize> {
    let next = *bytes.get(at + 1)?;
    if bytes[at + 1..].starts_with(b"!--") {
        return Some(find_ci(bytes, at + 4, b"-->").map_or(bytes.len() - 1, |e| e + 2));
    }
    if !(next.is_ascii_alphabetic() || next == b'/' || next == b'!' || next == b'?') {
        return None;
    }
    // A tag: up to `>`, skipping quoted attribute values.
    let mut i = at + 1;
    while let Some(offset) = memchr::memchr3(b'>', b'"', b'\'', &bytes[i..]) {
        i += offset;
        let quote = bytes[i];
        if quote == b'>' {
            return Some(i);
        }
        match memchr::memchr(quote, &bytes[i + 1..]) {
            Some(len) => i += len + 2,
            None => break,
        }
    }
    // An unterminated tag swallows the rest of the input.
    Some(bytes.len() - 1)
}

/// The element name of the markup between `<` and `>` as written, and
/// whether it is a closing tag.
fn tag_name(inner: &[u8]) -> (&[u8], bool) {
    let (closing, rest) = match inner.first() {
        Some(b'/') => (true, &inner[1..]),
        _ => (false, inner),
    };
    let len = rest
        .iter()
        .position(|b| !b.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    (&rest[..len], closing)
}

/// Where the content of a dropped element `name` that starts at `from`
/// ends: after its closing tag, or the end.
fn dropped_end(bytes: &[u8], from: usize, name: &str) -> usize {
    let closing = format!("</{name}");
    match find_ci(bytes, from, closing.as_bytes()) {
        Some(e) => bytes[e..]
            .iter()
            .position(|&b| b == b'>')
            .map_or(bytes.len(), |gt| e + gt + 1),
        None => bytes.len(),
    }
}

/// Decodes the entity at the start of `s` (which starts with `&`): the
/// character and the entity's length in bytes.
fn entity(s: &str) -> Option<(char, usize)> {
    // Entity names are short ASCII; `;` is ASCII, so slicing at it is safe.
    let window = &s.as_bytes()[1..s.len().min(34)];
    let semi = window.iter().position(|&b| b == b';')?;
    let name = s.get(1..1 + semi)?;
    let len = semi + 2;
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse::<u32>().ok()?,
        };
        let c = char::from_u32(code)
            .filter(|&c| c != '\0')
            .unwrap_or('\u{fffd}');
        return Some((c, len));
    }
    NAMED
        .binary_search_by(|(n, _)| n.cmp(&name))
        .ok()
        .map(|i| (NAMED[i].1, len))
}

/// Common named entities, sorted by name (binary search).
const NAMED: &[(&str, char)] = &[
    ("AElig", 'Æ'),
    ("Aacute", 'Á'),
    ("Acirc", 'Â'),
    ("Agrave", 'À'),
    ("Aring", 'Å'),
    ("Atilde", 'Ã'),
    ("Auml", 'Ä'),
    ("Ccedil", 'Ç'),
    ("Eacute", 'É'),
    ("Ecirc", 'Ê'),
    ("Egrave", 'È'),
    ("Euml", 'Ë'),
    ("Iacute", 'Í'),
    ("Icirc", 'Î'),
    ("Igrave", 'Ì'),
    ("Iuml", 'Ï'),
    ("Ntilde", 'Ñ'),
    ("Oacute", 'Ó'),
    ("Ocirc", 'Ô'),
    ("Ograve", 'Ò'),
    ("Oslash", 'Ø'),
    ("Otilde", 'Õ'),
    ("Ouml", 'Ö'),
    ("Uacute", 'Ú'),
    ("Ucirc", 'Û'),
    ("Ugrave", 'Ù'),
    ("Uuml", 'Ü'),
    ("Yacute", 'Ý'),
    ("aacute", 'á'),
    ("acirc", 'â'),
    ("aelig", 'æ'),
    ("agrave", 'à'),
    ("amp", '&'),
    ("apos", '\''),
    ("aring", 'å'),
    ("atilde", 'ã'),
    ("auml", 'ä'),
    ("bdquo", '„'),
    ("bull", '•'),
    ("ccedil", 'ç'),
    ("cent", '¢'),
    ("copy", '©'),
    ("dagger", '†'),
    ("deg", '°'),
    ("divide", '÷'),
    ("eacute", 'é'),
    ("ecirc", 'ê'),
    ("egrave", 'è'),
    ("emsp", ' '),
    ("ensp", ' '),
    ("euml", 'ë'),
    ("euro", '€'),
    ("frac12", '½'),
    ("frac14", '¼'),
    ("frac34", '¾'),
    ("gt", '>'),
    ("hellip", '…'),
    ("iacute", 'í'),
    ("icirc", 'î'),
    ("iexcl", '¡'),
    ("igrave", 'ì'),
    ("iquest", '¿'),
    ("iuml", 'ï'),
    ("laquo", '«'),
    ("ldquo", '“'),
    ("lsaquo", '‹'),
    ("lsquo", '‘'),
    ("lt", '<'),
    ("mdash", '—'),
    ("middot", '·'),
    ("nbsp", '\u{a0}'),
    ("ndash", '–'),
    ("not", '¬'),
    ("ntilde", 'ñ'),
    ("oacute", 'ó'),
    ("ocirc", 'ô'),
    ("ograve", 'ò'),
    ("oslash", 'ø'),
    ("otilde", 'õ'),
    ("ouml", 'ö'),
    ("para", '¶'),
    ("plusmn", '±'),
    ("pound", '£'),
    ("quot", '"'),
    ("raquo", '»'),
    ("rdquo", '”'),
    ("reg", '®'),
    ("rsaquo", '›'),
    ("rsquo", '’'),
    ("sbquo", '‚'),
    ("sect", '§'),
    ("shy", '\u{ad}'),
    ("szlig", 'ß'),
    ("thinsp", ' '),
    ("times", '×'),
    ("trade", '™'),
    ("uacute", 'ú'),
    ("ucirc", 'û'),
    ("ugrave", 'ù'),
    ("uuml", 'ü'),
    ("yacute", 'ý'),
    ("yen", '¥'),
    ("yuml", 'ÿ'),
    ("zwj", '\u{200d}'),
    ("zwnj", '\u{200c}'),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_entities_are_sorted() {
        assert!(NAMED.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn lines_keep_the_sources_line_breaks() {
        let html = "<p>limited time\r\n  offer, <b>now</b>\n\n\nor never</p><p>x</p>";
        assert_eq!(html_to_text(html), "limited time offer, now or never\nx");
        assert_eq!(
            html_to_lines(html),
            "limited time\r\n  offer, now\n\n\nor never\nx"
        );
        assert_eq!(
            html_to_lines("<p>dear customer  verify</p>"),
            "dear customer  verify"
        );
    }

    #[test]
    fn converts() {
        assert_eq!(
            html_to_text("<p>Hello <b>wor</b>ld</p><p>Two&nbsp;&amp;&#33;&#x21;</p>"),
            "Hello world\nTwo &!!"
        );
        assert_eq!(
            html_to_text(
                "<html><head><title>T</title><style>p{}</style></head><body>A<br>B<script>x<y</script> C</body>"
            ),
            "A\nB C"
        );
        // An unclosed head hides nothing (the browser ends it at the div).
        assert_eq!(
            html_to_text("<html><head><title>T</title><meta x=y>\n<div>CLICK HERE!</div></body>"),
            "CLICK HERE!"
        );
        assert_eq!(
            html_to_text("a < b &bogus; AT&T <!-- <p>x</p> --> end"),
            "a < b &bogus; AT&T end"
        );
        assert_eq!(
            html_to_text("<a href='x>y'>link</a>\n\n  text"),
            "link text"
        );
        assert_eq!(
            html_to_text("<ul><li>one</li><li>two</li></ul>"),
            "one\ntwo"
        );
        assert_eq!(
            html_to_text("<table><tr><td>a</td><td>b</td></tr></table>"),
            "a b"
        );
    }
}
