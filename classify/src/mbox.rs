//! Splitting an mbox file into its messages (RFC 4155): a message starts
//! at a line beginning `From ` at the start of the file or after a blank
//! line; `>From ` lines (mboxrd and mboxo quoting) lose one `>`.

/// Whether `bytes` look like an mbox: the first line is a `From ` line.
pub fn is_mbox(bytes: &[u8]) -> bool {
    bytes.starts_with(b"From ")
}

/// The messages of an mbox, each without its `From ` separator line.
pub fn split(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    let mut previous_blank = true;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"From ") && previous_blank {
            if let Some(m) = current.take() {
                out.push(trim_separator(m));
            }
            current = Some(Vec::new());
            previous_blank = false;
            continue;
        }
        previous_blank = line == b"\n" || line == b"\r\n";
        let Some(m) = current.as_mut() else { continue };
        let quoted = line.iter().position(|&b| b != b'>');
        match quoted {
            Some(n) if n > 0 && line[n..].starts_with(b"From ") => m.extend_from_slice(&line[1..]),
            _ => m.extend_from_slice(line),
        }
    }
    if let Some(m) = current {
        out.push(trim_separator(m));
    }
    out.retain(|m| !m.iter().all(u8::is_ascii_whitespace));
    out
}

/// Drops the blank line that separates a message from the next `From `.
fn trim_separator(mut m: Vec<u8>) -> Vec<u8> {
    if m.ends_with(b"\r\n\r\n") {
        m.truncate(m.len() - 2);
    } else if m.ends_with(b"\n\n") {
        m.truncate(m.len() - 1);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_unquotes() {
        let mbox = b"From a@b Mon Dec  2 20:00:00 2024\nSubject: one\n\nhello\n>From the start\n\nFrom c@d Mon Dec  2 20:01:00 2024\nSubject: two\n\n>From here, quoted\n";
        let messages = split(mbox);
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert_eq!(messages[0], b"Subject: one\n\nhello\nFrom the start\n");
        assert_eq!(messages[1], b"Subject: two\n\nFrom here, quoted\n");
        assert!(is_mbox(mbox));
        assert!(!is_mbox(b"Subject: x\n\nFrom y\n"));
    }
}
