//! Mail from the outbox: RFC 3834 auto-replies, forwarded copies, and
//! sending them through `[relay]` with lettre's SMTP client.

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use std::time::Duration;

use lettre::AsyncTransport;
use lettre::address::{Address, Envelope};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use weir_compiler::decision::RenderedTemplate;

use super::{Failure, Origin};
use crate::config::{ListenAddr, RelayConfig};

/// How long one SMTP exchange with the relay may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a message must get no auto-reply (RFC 3834 §2), or `None`: the
/// null sender, `MAILER-DAEMON`, mailing-list mail (`List-*`), bulk mail
/// (`Precedence: bulk|list|junk`) and automatic mail (`Auto-Submitted`
/// other than `no`).
pub fn no_reply_reason(sender: &str, headers: &[(String, String)]) -> Option<String> {
    if sender.is_empty() {
        return Some("null sender".into());
    }
    let local = sender.rsplit_once('@').map_or(sender, |(l, _)| l);
    if local.eq_ignore_ascii_case("mailer-daemon") {
        return Some("MAILER-DAEMON".into());
    }
    for (name, value) in headers {
        let value = value.trim().to_ascii_lowercase();
        if name.len() > 5 && name[..5].eq_ignore_ascii_case("list-") {
            return Some(format!("mailing-list mail ({name})"));
        }
        if name.eq_ignore_ascii_case("Precedence")
            && matches!(value.as_str(), "bulk" | "list" | "junk")
        {
            return Some(format!("Precedence: {value}"));
        }
        if name.eq_ignore_ascii_case("Auto-Submitted")
            && value.split(';').next().map(str::trim) != Some("no")
        {
            return Some(format!("Auto-Submitted: {value}"));
        }
    }
    None
}

/// The auto-reply to `origin`'s sender: From the relay's `from`, Subject
/// the template's (or `Re: ` and the original's), `In-Reply-To` and
/// `References`, `Auto-Submitted: auto-replied`, and a Message-ID made of
/// the idempotency key, so a copy sent twice is recognisably one reply.
pub fn auto_reply(
    origin: &Origin,
    template: &RenderedTemplate,
    from: &str,
    key: &str,
    now: i64,
) -> Vec<u8> {
    let subject = if !template.subject.trim().is_empty() {
        template.subject.clone()
    } else if origin.subject.to_ascii_lowercase().starts_with("re:") {
        origin.subject.clone()
    } else {
        format!("Re: {}", origin.subject)
    };
    let domain = from.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let mut out = String::new();
    let mut header = |name: &str, value: &str| {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(&one_line(value));
        out.push_str("\r\n");
    };
    header("From", &format!("<{from}>"));
    header("To", &format!("<{}>", origin.sender));
    header("Subject", &encode_word(&subject));
    header("Date", &crate::clock::rfc5322_date(now));
    header("Message-ID", &format!("<weir-{key}@{domain}>"));
    if !origin.message_id.is_empty() {
        let id = format!("<{}>", origin.message_id);
        header("In-Reply-To", &id);
        let references = if origin.references.is_empty() {
            id
        } else {
            format!("{} {id}", origin.references)
        };
        header("References", &references);
    }
    header("Auto-Submitted", "auto-replied");
    header("X-Weir-Idempotency-Key", key);
    header("MIME-Version", "1.0");
    header("Content-Type", "text/plain; charset=utf-8");
    header("Content-Transfer-Encoding", "8bit");
    out.push_str("\r\n");
    for line in template.body.lines() {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// A forwarded copy: the copy as delivered with `X-Weir-Idempotency-Key`
/// prepended (its own Message-ID stays, the original's).
pub fn forwarded(copy: &[u8], key: &str) -> Vec<u8> {
    let mut out = format!("X-Weir-Idempotency-Key: {key}\r\n").into_bytes();
    out.extend_from_slice(copy);
    out
}

/// Sends `data` through the relay. An SMTP 5xx is permanent.
pub async fn send(
    relay: &RelayConfig,
    reverse_path: &str,
    to: &str,
    data: &[u8],
) -> Result<(), Failure> {
    let ListenAddr::Inet { host, port } = &relay.host else {
        return Err(Failure::Permanent(
            "[relay] host must be inet:HOST:PORT (no unix: SMTP client)".into(),
        ));
    };
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        Failure::Permanent(format!("{what} is not a valid address: {e}"))
    };
    let from = if reverse_path.is_empty() {
        None
    } else {
        Some(
            reverse_path
                .parse::<Address>()
                .map_err(|e| bad(reverse_path, &e))?,
        )
    };
    let rcpt = to.parse::<Address>().map_err(|e| bad(to, &e))?;
    let envelope = Envelope::new(from, vec![rcpt]).map_err(|e| bad(to, &e))?;
    let hello = relay
        .from
        .rsplit_once('@')
        .map_or("localhost", |(_, d)| d)
        .to_string();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
        .port(*port)
        .hello_name(ClientId::Domain(hello))
        .timeout(Some(SMTP_TIMEOUT))
        .build();
    match transport.send_raw(&envelope, data).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => Err(Failure::Permanent(format!("relay refused: {e}"))),
        Err(e) => Err(Failure::Retry(format!("relay: {e}"))),
    }
}

/// A header value on one line (a template value could hold line breaks,
/// which must not start a new header).
fn one_line(value: &str) -> String {
    value
        .split(['\r', '\n'])
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// RFC 2047 `=?utf-8?b?...?=` for a non-ASCII header text.
fn encode_word(text: &str) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    format!(
        "=?utf-8?b?{}?=",
        BASE64_STANDARD.encode(one_line(text).as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> (String, String) {
        (name.to_string(), value.to_string())
    }

    #[test]
    fn no_reply_to_automatic_mail() {
        assert!(no_reply_reason("", &[]).is_some());
        assert!(no_reply_reason("MAILER-DAEMON@x.test", &[]).is_some());
        assert!(no_reply_reason("a@x.test", &[h("List-Id", "<l.x.test>")]).is_some());
        assert!(no_reply_reason("a@x.test", &[h("Precedence", "Bulk")]).is_some());
        assert!(no_reply_reason("a@x.test", &[h("Auto-Submitted", "auto-generated")]).is_some());
        assert!(no_reply_reason("a@x.test", &[h("Auto-Submitted", "no")]).is_none());
        assert!(no_reply_reason("a@x.test", &[h("Subject", "hi")]).is_none());
    }

    #[test]
    fn dates_and_words() {
        assert_eq!(encode_word("Re: hé"), "=?utf-8?b?UmU6IGjDqQ==?=");
    }
}
