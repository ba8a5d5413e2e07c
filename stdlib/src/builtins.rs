//! The contents of the registry: every field of docs/language.md ("Expressions"), the
//! builtin functions, and every action of docs/language.md ("Rules and actions"), with their docs. The
//! generated reference (`docs/reference.md`) is rendered from this table.

use std::sync::Arc;

use crate::message::{Address, Transaction};
use crate::registry::{
    ActionArgs, ActionDef, FieldDef, FunctionDef, FunctionImpl, ParamType, Registry, TemplateClause,
};
use crate::types::{Stage, Type};
use crate::value::Value;

pub(crate) fn build_registry() -> Registry {
    Registry {
        fields: fields(),
        functions: functions(),
        actions: actions(),
    }
}

fn addresses(list: Vec<Address>) -> Value {
    Value::list(list.into_iter().map(Value::address).collect())
}

fn field(
    path: &'static str,
    ty: Type,
    stage: Stage,
    doc: &'static str,
    get: fn(&Transaction) -> Value,
) -> FieldDef {
    FieldDef {
        path,
        ty,
        stage: Some(stage),
        lmtp_only: false,
        doc,
        get: Some(get),
    }
}

fn fields() -> Vec<FieldDef> {
    let addr_list = || Type::list(Type::Address);
    vec![
        field(
            "client.ip",
            Type::Ip,
            Stage::Connect,
            "The IP address of the SMTP client.",
            |tx| Value::Ip(tx.connection.ip),
        ),
        field(
            "client.name",
            Type::String,
            Stage::Connect,
            "The client's host name as the MTA reports it (reverse DNS), or `\"\"`.",
            |tx| Value::str(&tx.connection.name),
        ),
        field(
            "client.port",
            Type::Int,
            Stage::Connect,
            "The client's TCP port.",
            |tx| Value::Int(i64::from(tx.connection.port)),
        ),
        field(
            "helo",
            Type::String,
            Stage::Helo,
            "The name the client gave in HELO/EHLO.",
            |tx| Value::str(&tx.connection.helo),
        ),
        field(
            "auth.user",
            Type::String,
            Stage::Mail,
            "The SMTP AUTH user name, or `\"\"` when the client did not authenticate.",
            |tx| Value::str(&tx.connection.auth_user),
        ),
        field(
            "tls",
            Type::Bool,
            Stage::Mail,
            "Whether the SMTP session is encrypted with TLS.",
            |tx| Value::Bool(tx.connection.tls),
        ),
        field(
            "envelope.from",
            Type::Address,
            Stage::Mail,
            "The envelope sender (MAIL FROM). The null sender `<>` has every part `\"\"`.",
            |tx| Value::address(tx.envelope.from.clone()),
        ),
        field(
            "envelope.to",
            addr_list(),
            Stage::Rcpt,
            "The envelope recipients (RCPT TO), complete after the last RCPT.",
            |tx| addresses(tx.envelope.to.clone()),
        ),
        FieldDef {
            path: "recipient",
            ty: Type::Address,
            stage: Some(Stage::Rcpt),
            lmtp_only: true,
            doc: "LMTP only: the recipient this copy is delivered to (rules run once per \
                  recipient). Elsewhere the first envelope recipient; every part `\"\"` if none.",
            get: Some(|tx| Value::address(tx.envelope.recipient.clone().unwrap_or_default())),
        },
        field(
            "subject",
            Type::String,
            Stage::Header,
            "The first `Subject` header, unfolded and RFC 2047-decoded, or `\"\"`.",
            |tx| Value::str(tx.message.subject()),
        ),
        field(
            "message_id",
            Type::String,
            Stage::Header,
            "The first `Message-ID` header without its angle brackets, or `\"\"`.",
            |tx| Value::str(tx.message.message_id()),
        ),
        field(
            "from",
            addr_list(),
            Stage::Header,
            "Every address of every `From` header (groups flattened, display names decoded).",
            |tx| addresses(tx.message.from()),
        ),
        field(
            "to",
            addr_list(),
            Stage::Header,
            "Every address of every `To` header.",
            |tx| addresses(tx.message.to()),
        ),
        field(
            "cc",
            addr_list(),
            Stage::Header,
            "Every address of every `Cc` header.",
            |tx| addresses(tx.message.cc()),
        ),
        field(
            "reply_to",
            addr_list(),
            Stage::Header,
            "Every address of every `Reply-To` header.",
            |tx| addresses(tx.message.reply_to()),
        ),
        field(
            "sender",
            addr_list(),
            Stage::Header,
            "Every address of every `Sender` header.",
            |tx| addresses(tx.message.sender()),
        ),
        field(
            "date",
            Type::Time,
            Stage::Header,
            "The first `Date` header, in UTC; RFC 5322's obsolete forms (no seconds, `GMT`, \
             `EST`, …) parse. A message without a `Date` that parses is taken as sent `now`.",
            |tx| Value::utc(tx.message.date().unwrap_or(tx.now)),
        ),
        field(
            "body",
            Type::String,
            Stage::Body,
            "The text of the parts that are not attachments, decoded and joined with `\\n`; \
             in `multipart/alternative` the plain-text alternative, else the HTML one as text.",
            |tx| Value::str(tx.message.body_text()),
        ),
        field(
            "body.lines",
            Type::String,
            Stage::Body,
            "The text as Sieve's `body :text` reads it: the parts of `body` and every other \
             alternative (a `multipart/alternative`'s HTML too), plain text as decoded with \
             its line breaks as written (CRLF or LF, lines neither joined nor trimmed), so a \
             phrase wrapped across two lines is not one phrase.",
            |tx| Value::str(tx.message.body_lines()),
        ),
        field(
            "body.raw",
            Type::String,
            Stage::Body,
            "The body as received, not decoded: every byte after the header block, MIME \
             boundaries, part headers and base64 or quoted-printable text included (invalid \
             UTF-8 as U+FFFD). Sieve's `body :raw` reads this.",
            |tx| Value::str(crate::charset::utf8_lossy(tx.message.body_raw())),
        ),
        field(
            "body.html",
            Type::String,
            Stage::Body,
            "The HTML parts that are not attachments, decoded to UTF-8 with their tags, \
             joined with `\\n`; `\"\"` if none.",
            |tx| Value::str(tx.message.body_html()),
        ),
        field(
            "attachments",
            Type::list(Type::Attachment),
            Stage::Body,
            "The leaf parts that are not body, each `{name, type, size, archive, encrypted}`; \
             an enclosed message is an attachment of type `message/rfc822` followed by its \
             own attachments, a ZIP archive is followed by its entries, each with `archive` \
             set to the container's name.",
            |tx| {
                Value::list(
                    tx.message
                        .attachments()
                        .iter()
                        .map(|a| Value::Attachment(Arc::new(a.clone())))
                        .collect(),
                )
            },
        ),
        field(
            "size",
            Type::Int,
            Stage::Body,
            "The size of the whole message in bytes, as received.",
            |tx| Value::Int(i64::try_from(tx.message.size()).unwrap_or(i64::MAX)),
        ),
        FieldDef {
            path: "score",
            ty: Type::Float,
            stage: None,
            lmtp_only: false,
            doc: "The sum of the `score` actions taken so far. Its stage is the latest stage \
                  of the earlier rules with `score` actions.",
            get: None,
        },
        field(
            "now",
            Type::Time,
            Stage::Connect,
            "The time of evaluation, in UTC: `now.hour`, `now.weekday`, …; `local(now, \"Europe/Berlin\")` reads it in a zone.",
            |tx| Value::utc(tx.now),
        ),
    ]
}

fn pure(
    name: &'static str,
    params: Vec<ParamType>,
    ret: Type,
    doc: &'static str,
    f: fn(&[Value]) -> Value,
) -> FunctionDef {
    FunctionDef {
        name,
        params,
        ret,
        stage: Stage::Connect,
        doc,
        imp: FunctionImpl::Pure(f),
    }
}

fn string() -> ParamType {
    ParamType::Exact(Type::String)
}

/// The text of argument `i` (a string, or an address's `.address`), or `""`.
fn text(args: &[Value], i: usize) -> &str {
    args.get(i).and_then(Value::as_text).unwrap_or("")
}

/// The number of argument `i`, or 0.
fn number(args: &[Value], i: usize) -> f64 {
    args.get(i).and_then(Value::as_f64).unwrap_or(0.0)
}

/// `auth_results(TRUSTED)`: `args` are the raw `Authentication-Results`
/// occurrences, then the trusted authserv-ids.
fn auth_results(args: &[Value]) -> Value {
    let texts = |i: usize| -> Vec<&str> {
        args.get(i)
            .and_then(Value::as_list)
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_text)
            .collect()
    };
    let trusted = texts(1);
    Value::list(
        crate::authres::trusted_results(texts(0), &trusted)
            .into_iter()
            .map(|r| Value::AuthResult(Arc::new(r)))
            .collect(),
    )
}

fn functions() -> Vec<FunctionDef> {
    vec![
        pure(
            "count",
            vec![ParamType::AnyList],
            Type::Int,
            "The number of items of a list. `count(envelope.to) > 10`",
            |args| {
                Value::Int(
                    args.first()
                        .and_then(Value::as_list)
                        .map_or(0, |l| l.len() as i64),
                )
            },
        ),
        pure(
            "len",
            vec![string()],
            Type::Int,
            "The number of characters (Unicode scalar values) of a string. `len(subject) > 200`",
            |args| Value::Int(text(args, 0).chars().count() as i64),
        ),
        pure(
            "lower",
            vec![string()],
            Type::String,
            "The string in lower case. `lower(subject)`",
            |args| Value::str(text(args, 0).to_lowercase()),
        ),
        pure(
            "upper",
            vec![string()],
            Type::String,
            "The string in upper case. `upper(subject)`",
            |args| Value::str(text(args, 0).to_uppercase()),
        ),
        pure(
            "trim",
            vec![string()],
            Type::String,
            "The string without leading and trailing whitespace. `trim(header(\"X-Tag\")[0])`",
            |args| Value::str(text(args, 0).trim()),
        ),
        pure(
            "split",
            vec![string(), string()],
            Type::list(Type::String),
            "The pieces of a string between occurrences of a separator; an empty separator \
             gives the string itself. `split(\"a,b\", \",\")` is `[\"a\", \"b\"]`.",
            |args| {
                let (s, sep) = (text(args, 0), text(args, 1));
                if sep.is_empty() {
                    return Value::list(vec![Value::str(s)]);
                }
                Value::list(s.split(sep).map(Value::str).collect())
            },
        ),
        pure(
            "join",
            vec![ParamType::Exact(Type::list(Type::String)), string()],
            Type::String,
            "The items of a list of strings joined with a separator. `join(to.domain, \" \")`",
            |args| {
                let items = args.first().and_then(Value::as_list).unwrap_or_default();
                let parts: Vec<String> = items.iter().map(Value::to_text).collect();
                Value::str(parts.join(text(args, 1)))
            },
        ),
        pure(
            "replace",
            vec![string(), string(), string()],
            Type::String,
            "The string with every occurrence of the second argument (exact, case-sensitive) \
             replaced by the third. `replace(subject, \"[EXT] \", \"\")`",
            |args| {
                let (s, from) = (text(args, 0), text(args, 1));
                if from.is_empty() {
                    return Value::str(s);
                }
                Value::str(s.replace(from, text(args, 2)))
            },
        ),
        pure(
            "first",
            vec![ParamType::Exact(Type::list(Type::String))],
            Type::String,
            "The first item of a list of strings, or `\"\"` when it is empty. \
             `first(header(\"X-Spam-Flag\")) == \"YES\"`",
            |args| {
                let items = args.first().and_then(Value::as_list).unwrap_or_default();
                Value::str(items.first().map(Value::to_text).unwrap_or_default())
            },
        ),
        pure(
            "addresses",
            vec![ParamType::Exact(Type::list(Type::String))],
            Type::list(Type::Address),
            "Every address written in a list of header values (groups flattened, display \
             names RFC 2047-decoded), read as `from` reads `From`: for headers Weir has no \
             field for. `addresses(header(\"Resent-From\").raw).domain == \"example.com\"`",
            |args| {
                let mut out = Vec::new();
                for value in args.first().and_then(Value::as_list).unwrap_or_default() {
                    crate::address::header_addresses(&value.to_text(), &mut out);
                }
                addresses(out)
            },
        ),
        pure(
            "number",
            vec![string()],
            Type::Float,
            "The number written in a string (surrounding whitespace ignored), or 0 when it is \
             not a number. `number(first(header(\"X-Spam-Score\"))) > 5`",
            |args| {
                let n = text(args, 0)
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite());
                Value::Float(n.unwrap_or(0.0))
            },
        ),
        pure(
            "max",
            vec![ParamType::Exact(Type::Float), ParamType::Exact(Type::Float)],
            Type::Float,
            "The larger of two numbers. `max(score, 0)`",
            |args| Value::Float(number(args, 0).max(number(args, 1))),
        ),
        pure(
            "min",
            vec![ParamType::Exact(Type::Float), ParamType::Exact(Type::Float)],
            Type::Float,
            "The smaller of two numbers. `min(count(to), 10)`",
            |args| Value::Float(number(args, 0).min(number(args, 1))),
        ),
        pure(
            "local",
            vec![ParamType::Exact(Type::Time), string()],
            Type::Time,
            "The same instant with its members (`.hour`, `.weekday`, …) read in an IANA time \
             zone, daylight saving included; comparisons are unchanged. An unknown literal \
             zone is a check error; one built at run time that is unknown leaves the time's \
             zone unchanged. \
             `local(now, \"Europe/Berlin\").hour >= 18`",
            |args| match args.first() {
                Some(Value::Time(secs, zone)) => {
                    Value::Time(*secs, crate::time::zone(text(args, 1)).unwrap_or(*zone))
                }
                _ => Value::utc(0),
            },
        ),
        pure(
            "time",
            vec![string()],
            Type::Time,
            "A time literal: an RFC 3339 date-time with an offset, in UTC, checked when the \
             rules are compiled (the argument must be a constant). \
             `now < time(\"2024-12-20T00:00:00+01:00\")`",
            |args| Value::utc(crate::time::parse_rfc3339(text(args, 0)).unwrap_or(0)),
        ),
        FunctionDef {
            name: "header",
            params: vec![string()],
            ret: Type::list(Type::String),
            stage: Stage::Header,
            doc: "Every occurrence of a header in the top-level header block, in order: the text \
                  after the colon, unfolded, RFC 2047-decoded and trimmed; `[]` when absent. The \
                  name is case-insensitive. `.raw` gives the same undecoded: \
                  `header(\"Subject\").raw`. `header(\"List-Id\") exists`",
            imp: FunctionImpl::Header,
        },
        FunctionDef {
            name: "auth_results",
            params: vec![ParamType::Exact(Type::list(Type::String))],
            ret: Type::list(Type::AuthResult),
            stage: Stage::Header,
            doc: "The results of every `Authentication-Results` header (RFC 8601) whose \
                  authserv-id (its first word) is in the list, ignoring case, in header order: \
                  one record per `method=result`, with `.method`, `.result`, `.reason`, \
                  `.policy` and properties such as `.header.from`, `.header.d` and \
                  `.smtp.mailfrom`. A header written by anyone else counts for nothing. \
                  `auth_results([\"mx.example.com\"]).method contains \"dmarc\"`",
            imp: FunctionImpl::OverHeader {
                header: "Authentication-Results",
                imp: auth_results,
            },
        },
        FunctionDef {
            name: "rate",
            params: vec![string(), ParamType::Exact(Type::Duration)],
            ret: Type::Int,
            stage: Stage::Connect,
            doc: "Counts this message under a key and returns how many messages carried the key \
                  within the sliding window, this one included. Counts once per message, only \
                  when evaluated, never in a `shadow` rule or a dry run. \
                  `rate(\"from:${envelope.from}\", 1h) > 100`",
            imp: FunctionImpl::Rate,
        },
        FunctionDef {
            name: "duplicate",
            params: vec![string(), ParamType::Exact(Type::Duration)],
            ret: Type::Bool,
            stage: Stage::Connect,
            doc: "Whether a copy carrying the key was delivered within the window to the same \
                  recipient (LMTP; per message in the milter), as RFC 7352's `duplicate`. The key \
                  is recorded only when this copy is delivered or accepted, never when it is \
                  deferred or refused, nor by a `shadow` rule or a dry run. \
                  `duplicate(message_id, 7d)`",
            imp: FunctionImpl::Duplicate,
        },
        FunctionDef {
            name: "matched",
            params: vec![ParamType::RuleName],
            ret: Type::Bool,
            stage: Stage::Connect,
            doc: "Whether an earlier rule's condition held (a rule whose `else` ran, or a \
                  `shadow` rule, is not matched). Its stage is that rule's stage. \
                  `matched(block_blocked)`",
            imp: FunctionImpl::Matched,
        },
    ]
}

/// An action that takes `args` text arguments and no clause.
fn action(name: &'static str, args: usize, usage: &'static str, doc: &'static str) -> ActionDef {
    ActionDef {
        name,
        usage,
        verdict: false,
        lmtp_only: false,
        args: ActionArgs::Exact(args),
        with: false,
        template: TemplateClause::None,
        doc,
    }
}

/// A verdict taking `args`.
fn verdict(
    name: &'static str,
    args: ActionArgs,
    usage: &'static str,
    doc: &'static str,
) -> ActionDef {
    ActionDef {
        verdict: true,
        args,
        ..action(name, 0, usage, doc)
    }
}

fn actions() -> Vec<ActionDef> {
    vec![
        verdict(
            "accept",
            ActionArgs::Exact(0),
            "accept",
            "Verdict: accept the message and skip later rules (LMTP: deliver).",
        ),
        verdict(
            "reject",
            ActionArgs::Reply,
            "reject [CODE] [STATUS] [\"text\"]",
            "Verdict: refuse with a 5xx reply; default `550`, `5.7.1`, `\"Message rejected\"`. \
             CODE must be 5xx and STATUS of class 5. LMTP: for that recipient.",
        ),
        verdict(
            "tempfail",
            ActionArgs::Reply,
            "tempfail [CODE] [STATUS] [\"text\"]",
            "Verdict: refuse for now with a 4xx reply; default `451`, `4.7.1`, `\"Try again \
             later\"`. CODE must be 4xx and STATUS of class 4. LMTP: for that recipient.",
        ),
        verdict(
            "discard",
            ActionArgs::Exact(0),
            "discard",
            "Verdict: accept, then drop the message (LMTP: store nothing).",
        ),
        verdict(
            "quarantine",
            ActionArgs::Optional,
            "quarantine \"reason\"",
            "Verdict: accept into the MTA's hold queue (milter) or Weir's quarantine (LMTP).",
        ),
        action(
            "add_header",
            2,
            "add_header NAME VALUE",
            "Adds a header field at the end of the message's headers.",
        ),
        action(
            "set_header",
            2,
            "set_header NAME VALUE",
            "Replaces every occurrence of a header with one field (adds it if absent).",
        ),
        action(
            "remove_header",
            1,
            "remove_header NAME",
            "Removes every occurrence of a header.",
        ),
        action(
            "prepend_subject",
            1,
            "prepend_subject \"text\"",
            "Puts the text in front of the Subject.",
        ),
        action(
            "add_rcpt",
            1,
            "add_rcpt ADDRESS",
            "Milter: adds an envelope recipient. LMTP: forwards a copy through the relay.",
        ),
        action(
            "remove_rcpt",
            1,
            "remove_rcpt ADDRESS",
            "Milter: removes an envelope recipient. LMTP: drops that recipient's copy.",
        ),
        action(
            "redirect",
            1,
            "redirect ADDRESS",
            "Milter: replaces all envelope recipients. LMTP: forwards a copy through the relay \
             and drops the local copy.",
        ),
        action(
            "fileinto",
            1,
            "fileinto \"Folder/Sub\"",
            "LMTP: delivers into the folder (the last `fileinto` wins; `/` separates levels, \
             Maildir++ `.Folder.Sub`). Milter: adds an `X-Weir-Folder` header.",
        ),
        ActionDef {
            lmtp_only: true,
            ..action(
                "flag",
                1,
                "flag \"\\\\Seen\"",
                "LMTP: sets an IMAP flag on the delivered copy (Maildir info flags). The milter \
                 cannot set flags, so the daemon warns when only the milter serves the rules.",
            )
        },
        action(
            "keep",
            0,
            "keep",
            "LMTP: delivers a copy into INBOX (the default without `fileinto`). Milter: no effect \
             beyond being recorded.",
        ),
        action(
            "tag",
            1,
            "tag \"label\"",
            "Labels the decision: audit log, metrics, and the milter header `X-Weir-Tags`.",
        ),
        action(
            "score",
            1,
            "score +N | score -N",
            "Adds N (which may be negative) to `score`.",
        ),
        ActionDef {
            with: true,
            template: TemplateClause::Optional,
            ..action(
                "notify",
                1,
                "notify CHANNEL [with {key: value, ...}] [template NAME]",
                "Posts a webhook to a channel of `weir.toml`: durable and asynchronous, never \
                 blocking mail.",
            )
        },
        ActionDef {
            template: TemplateClause::Required,
            ..action(
                "reply",
                0,
                "reply template NAME [every DURATION]",
                "Sends an RFC 3834 auto-reply as Sieve's vacation does: From the recipient (or the \
                 template's `from`), at most once per recipient and sender per `every` period \
                 (default `[reply] period`); skipped for list, bulk, auto-submitted or \
                 null-sender mail, mail not addressed to the recipient, and mail discarded, \
                 quarantined, refused or deferred.",
            )
        },
        action(
            "log",
            1,
            "log \"text\"",
            "Writes an entry in the audit log.",
        ),
        action(
            "stop",
            0,
            "stop",
            "Ends evaluation; the message is accepted.",
        ),
    ]
}
