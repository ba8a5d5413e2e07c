//! A held message's bytes and its safe rendering: text as text, HTML
//! through ammonia (a whitelist sanitiser: no scripts, no event handlers,
//! no forms, no styles, no remote images), shown in a sandboxed frame
//! whose own Content-Security-Policy loads nothing either.

use crate::state::Daemon;

/// The bytes of the held message `id`: an LMTP copy from its file, a
/// milter hold from the ring of recent messages when kept there.
pub fn held_bytes(daemon: &Daemon, id: &str) -> Result<Vec<u8>, String> {
    let valid = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric());
    let entry = valid
        .then(|| daemon.store.quarantine_entry(id))
        .flatten()
        .ok_or_else(|| format!("no quarantined message {id:?}"))?;
    if let Some(hold) = &entry.lmtp {
        return std::fs::read(&hold.file)
            .map_err(|e| format!("cannot read the held copy {}: {e}", hold.file.display()));
    }
    daemon
        .recent
        .get(entry.audit_id)
        .map(|k| k.bytes.to_vec())
        .ok_or_else(|| {
            format!(
                "{id} is in Postfix's hold queue and its bytes are not kept by Weir (postcat -q {id})"
            )
        })
}

/// `html` with everything that could run, submit or load removed.
pub fn sanitise_html(html: &str) -> String {
    let mut builder = ammonia::Builder::default();
    builder
        .rm_tags(["img"])
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer nofollow"));
    builder.clean(html).to_string()
}

/// The Content-Security-Policy of the frame a sanitised body is shown
/// in: nothing may load or run.
pub const BODY_CSP: &str =
    "default-src 'none'; form-action 'none'; frame-ancestors 'self'; base-uri 'none'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_handlers_forms_and_remote_loads_are_removed() {
        let dirty = r#"<p onclick="steal()">Hi<script>alert(1)</script></p>
<img src="https://tracker.example/p.gif"><form action="https://x.example"><input name=a></form>
<a href="javascript:alert(1)">x</a><iframe src="https://x.example"></iframe>
<style>body{background:url(https://x.example/b)}</style><a href="https://ok.example/">ok</a>"#;
        let clean = sanitise_html(dirty);
        for bad in [
            "script",
            "onclick",
            "img",
            "tracker",
            "form",
            "input",
            "javascript",
            "iframe",
            "style",
            "x.example",
        ] {
            assert!(!clean.contains(bad), "{bad} left in {clean}");
        }
        assert!(clean.contains("Hi"));
        assert!(clean.contains("https://ok.example/"));
    }
}
