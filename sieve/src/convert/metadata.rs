//! Comments between top-level commands, and what editors store in them:
//! Roundcube's `# rule:[NAME]` (the rule's name), RainLoop's and
//! SnappyMail's filter blocks and avelsieve's rule markers (recognised and
//! dropped: they describe the script for the editor, not the mail).

/// What the comments before one command say.
#[derive(Debug, Default)]
pub struct Meta {
    /// A rule name given by an editor.
    pub name: Option<String>,
    /// The comments to keep, one line each, without `#`.
    pub comments: Vec<String>,
    /// Editor metadata dropped: offset in the gap and what it was.
    pub dropped: Vec<(usize, String)>,
    /// The original test of a rule disabled as `if false # TEST`.
    pub disabled_test: Option<String>,
}

/// Reads the comments of the text between two commands.
pub fn read(gap: &str) -> Meta {
    let mut meta = Meta::default();
    let mut i = 0;
    let bytes = gap.as_bytes();
    while i < bytes.len() {
        if gap[i..].starts_with('#') {
            let end = gap[i..].find('\n').map_or(gap.len(), |e| i + e);
            hash_line(&mut meta, &gap[i + 1..end], i);
            i = end;
        } else if gap[i..].starts_with("/*") {
            let end = gap[i + 2..].find("*/").map_or(gap.len(), |e| i + 2 + e + 2);
            bracket(&mut meta, &gap[i + 2..end.saturating_sub(2).max(i + 2)], i);
            i = end;
        } else {
            i += gap[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    meta
}

fn hash_line(meta: &mut Meta, body: &str, at: usize) {
    let text = body.trim_end_matches('\r');
    let trimmed = text.trim();
    if let Some(rest) = trimmed.strip_prefix("rule:[") {
        meta.name = Some(rest.trim_end_matches(']').to_string());
    }
    let marker = ["START_SIEVE_RULE", "END_SIEVE_RULE", "AVELSIEVE"]
        .iter()
        .any(|m| trimmed.to_ascii_uppercase().contains(m));
    if marker {
        meta.dropped.push((at, "avelsieve rule marker".into()));
        return;
    }
    if rainloop(trimmed) {
        meta.dropped
            .push((at, "RainLoop/SnappyMail filter data".into()));
        return;
    }
    meta.comments
        .push(text.strip_prefix(' ').unwrap_or(text).to_string());
}

fn rainloop(text: &str) -> bool {
    let upper = text.to_ascii_uppercase();
    [
        "BEGIN:FILTER",
        "END:FILTER",
        "BEGIN:HEADER",
        "END:HEADER",
        "RAINLOOP",
        "SNAPPYMAIL",
    ]
    .iter()
    .any(|m| upper.contains(m))
}

fn bracket(meta: &mut Meta, body: &str, at: usize) {
    if rainloop(body) {
        meta.dropped
            .push((at, "RainLoop/SnappyMail filter data".into()));
        return;
    }
    for line in body.lines() {
        let line = line.trim_end_matches('\r');
        let line = line.trim_start().trim_start_matches('*').trim_start();
        if !line.trim().is_empty() {
            meta.comments.push(line.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundcube_names_are_read_and_kept() {
        let m = read("\n# rule:[Move lists]\n");
        assert_eq!(m.name.as_deref(), Some("Move lists"));
        assert_eq!(m.comments, vec!["rule:[Move lists]"]);
    }

    #[test]
    fn rainloop_and_avelsieve_data_are_dropped() {
        let m = read(
            "/*\nBEGIN:FILTER:1\nBEGIN:HEADER\neyJhIjoxfQ==\nEND:HEADER\n*/\n#START_SIEVE_RULE1&2END_SIEVE_RULE\n# kept\n",
        );
        assert_eq!(m.dropped.len(), 2);
        assert_eq!(m.comments, vec!["kept"]);
    }
}
