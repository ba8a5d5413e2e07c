//! Checking `weir.toml`'s values: serde reads the raw tables (their keys
//! and kinds already checked by `schema`), then each value is parsed with
//! its key's name. Every problem is collected, not only the first, and a
//! value in error takes its default so the rest can still be checked.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

mod store;

use super::{
    AuditConfig, Config, ConfigError, Connections, HTTP_CONNECTIONS, HttpConfig, LMTP_CONNECTIONS,
    LimitsConfig, ListenAddr, LmtpConfig, MILTER_CONNECTIONS, MilterConfig, NotifyChannel, OnError,
    OutboxConfig, RelayConfig, ReplyConfig, owner, parse_duration, parse_size, split_command,
};

type S = Spanned<String>;
type N = Spanned<i64>;

#[derive(Debug, Deserialize)]
pub(super) struct RawConfig {
    rules: Option<S>,
    state_dir: Option<S>,
    milter: Option<RawMilter>,
    lmtp: Option<RawLmtp>,
    http: Option<RawHttp>,
    limits: Option<RawLimits>,
    audit: Option<RawAudit>,
    #[serde(default)]
    notify: BTreeMap<String, RawNotify>,
    relay: Option<RawRelay>,
    reply: Option<RawReply>,
    outbox: Option<RawOutbox>,
    #[serde(default)]
    classifiers: BTreeMap<String, super::autolearn::RawClassifier>,
    store: Option<store::RawStore>,
}

#[derive(Debug, Deserialize)]
struct RawMilter {
    listen: Option<S>,
    on_error: Option<S>,
    release: Option<S>,
    delete: Option<S>,
    queue: Option<S>,
    max_connections: Option<N>,
    idle_timeout: Option<S>,
}

#[derive(Debug, Deserialize)]
struct RawLmtp {
    listen: Option<S>,
    maildir: Option<S>,
    lowercase_local: Option<bool>,
    on_error: Option<S>,
    utf8_folders: Option<bool>,
    owner: Option<S>,
    group: Option<S>,
    max_connections: Option<N>,
    idle_timeout: Option<S>,
}

#[derive(Debug, Deserialize)]
struct RawHttp {
    listen: Option<S>,
    token_file: Option<S>,
    readonly_token_file: Option<S>,
    keep_messages: Option<N>,
    keep_for: Option<S>,
    max_connections: Option<N>,
    idle_timeout: Option<S>,
}

#[derive(Debug, Deserialize)]
struct RawLimits {
    max_message_size: Option<S>,
    max_headers: Option<N>,
    max_mime_depth: Option<N>,
    eval_timeout: Option<S>,
    on_limit: Option<S>,
}

#[derive(Debug, Deserialize)]
struct RawAudit {
    retention: Option<S>,
}

#[derive(Debug, Deserialize)]
struct RawNotify {
    url: Option<S>,
    timeout: Option<S>,
    retries: Option<N>,
}

#[derive(Debug, Deserialize)]
struct RawRelay {
    host: Option<S>,
    from: Option<S>,
}

#[derive(Debug, Deserialize)]
struct RawReply {
    period: Option<S>,
}

#[derive(Debug, Deserialize)]
struct RawOutbox {
    backoff: Option<S>,
    max_backoff: Option<S>,
    mail_retries: Option<N>,
}

/// Checks raw values, naming the file, table and key in every error, and
/// keeps every error it finds.
pub(super) struct Checker<'a> {
    pub text: &'a str,
    pub name: &'a str,
    pub base: &'a Path,
    pub errors: RefCell<Vec<ConfigError>>,
}

impl Checker<'_> {
    /// An error at a byte range of the file.
    pub fn at(
        &self,
        table: Option<&str>,
        key: Option<&str>,
        span: std::ops::Range<usize>,
        message: String,
    ) -> ConfigError {
        let (line, column) = weir_grammar::diagnostic::line_col(self.text, span.start);
        ConfigError {
            file: self.name.to_string(),
            table: table.map(str::to_string),
            key: key.map(str::to_string),
            line: Some(line),
            column: Some(column),
            message,
        }
    }

    pub(super) fn report<T>(&self, table: &str, key: &str, value: &Spanned<T>, message: String) {
        let table = (!table.is_empty()).then_some(table);
        let error = self.at(table, Some(key), value.span(), message);
        self.errors.borrow_mut().push(error);
    }

    /// A value parsed by `parse`, or `default` (absent, or in error).
    fn value<T>(
        &self,
        (table, key): (&str, &str),
        value: Option<&S>,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> T {
        match value {
            None => default,
            Some(v) => parse(v.get_ref()).unwrap_or_else(|m| {
                self.report(table, key, v, m);
                default
            }),
        }
    }

    /// A required value; `None` (and an error) when absent or wrong.
    fn required<T>(
        &self,
        (table, key): (&str, &str),
        value: Option<&S>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let Some(v) = value else {
            self.errors.borrow_mut().push(ConfigError {
                file: self.name.to_string(),
                table: (!table.is_empty()).then(|| table.to_string()),
                key: Some(key.to_string()),
                line: None,
                column: None,
                message: "missing (this setting is required)".into(),
            });
            return None;
        };
        parse(v.get_ref())
            .map_err(|m| self.report(table, key, v, m))
            .ok()
    }

    /// A count above zero.
    fn count(&self, (table, key): (&str, &str), value: Option<&N>, default: usize) -> usize {
        let Some(v) = value else { return default };
        match usize::try_from(*v.get_ref()).ok().filter(|n| *n > 0) {
            Some(n) => n,
            None => {
                let m = format!("expected a positive number, got {}", v.get_ref());
                self.report(table, key, v, m);
                default
            }
        }
    }

    /// A number of retries, zero allowed.
    fn retries(&self, (table, key): (&str, &str), value: Option<&N>, default: u32) -> u32 {
        let Some(v) = value else { return default };
        u32::try_from(*v.get_ref()).unwrap_or_else(|_| {
            let m = format!("expected a number >= 0, got {}", v.get_ref());
            self.report(table, key, v, m);
            default
        })
    }

    /// A listener's `max_connections` and `idle_timeout`.
    fn connections(
        &self,
        table: &str,
        max: Option<&N>,
        idle: Option<&S>,
        default: Connections,
    ) -> Connections {
        Connections {
            max: self.count((table, "max_connections"), max, default.max),
            idle_timeout: self.value((table, "idle_timeout"), idle, default.idle_timeout, |t| {
                parse_duration(t).and_then(nonzero)
            }),
        }
    }

    fn listen(&self, text: &str) -> Result<ListenAddr, String> {
        ListenAddr::parse(text, self.base)
    }

    fn path(&self, text: &str) -> Result<PathBuf, String> {
        if text.is_empty() {
            return Err("expected a path, got \"\"".into());
        }
        Ok(self.base.join(text))
    }

    /// Builds the configuration, or every error found.
    pub fn build(&self, raw: RawConfig, rules: Option<&Path>) -> Option<Config> {
        let rules = match rules {
            Some(r) => Some(r.to_path_buf()),
            None => self.required(("", "rules"), raw.rules.as_ref(), |t| self.path(t)),
        };
        let state_dir = self.required(("", "state_dir"), raw.state_dir.as_ref(), |t| self.path(t));
        let defaults = Config::defaults(Path::new(""));
        let config = Config {
            file: Some(PathBuf::from(self.name)),
            rules: rules.unwrap_or_default(),
            state_dir: state_dir.unwrap_or_default(),
            milter: table(raw.milter, defaults.milter, |m, d| self.milter(m, d)),
            lmtp: raw.lmtp.and_then(|l| self.lmtp(l)),
            http: table(raw.http, defaults.http, |h, d| self.http(h, d)),
            limits: table(raw.limits, defaults.limits, |l, d| self.limits(l, d)),
            audit: table(raw.audit, defaults.audit, |a, d| self.audit(a, d)),
            notify: raw
                .notify
                .into_iter()
                .filter_map(|(name, n)| Some((name.clone(), self.notify(&name, n)?)))
                .collect(),
            relay: raw.relay.and_then(|r| self.relay(r)),
            reply: table(raw.reply, defaults.reply, |r, d| self.reply(r, d)),
            outbox: table(raw.outbox, defaults.outbox, |o, d| self.outbox(o, d)),
            classifiers: raw
                .classifiers
                .into_iter()
                .map(|(name, c)| {
                    let built = self.classifier(&name, c);
                    (name, built)
                })
                .collect(),
            store: table(raw.store, defaults.store, |s, d| self.store(s, d)),
        };
        self.errors.borrow().is_empty().then_some(config)
    }

    fn milter(&self, m: RawMilter, defaults: MilterConfig) -> MilterConfig {
        let t = "milter";
        let release = self.value(
            (t, "release"),
            m.release.as_ref(),
            defaults.release,
            command,
        );
        let queue = match &m.queue {
            Some(_) => self.value((t, "queue"), m.queue.as_ref(), Vec::new(), any_command),
            None => crate::holdqueue::default_queue_command(&release),
        };
        MilterConfig {
            listen: self.value((t, "listen"), m.listen.as_ref(), defaults.listen, |v| {
                self.listen(v)
            }),
            on_error: self.value(
                (t, "on_error"),
                m.on_error.as_ref(),
                OnError::Tempfail,
                OnError::parse,
            ),
            release,
            delete: self.value((t, "delete"), m.delete.as_ref(), defaults.delete, command),
            queue,
            connections: self.connections(
                t,
                m.max_connections.as_ref(),
                m.idle_timeout.as_ref(),
                MILTER_CONNECTIONS,
            ),
        }
    }

    fn lmtp(&self, l: RawLmtp) -> Option<LmtpConfig> {
        let t = "lmtp";
        let listen = self.required((t, "listen"), l.listen.as_ref(), |v| self.listen(v));
        let maildir = self.required((t, "maildir"), l.maildir.as_ref(), nonempty);
        let owner = self.value((t, "owner"), l.owner.as_ref(), None, |v| {
            owner::user(v).map(Some)
        });
        let group = self.value((t, "group"), l.group.as_ref(), None, |v| {
            owner::group(v).map(Some)
        });
        Some(LmtpConfig {
            listen: listen?,
            maildir: maildir?,
            lowercase_local: l.lowercase_local.unwrap_or(true),
            on_error: self.value(
                (t, "on_error"),
                l.on_error.as_ref(),
                OnError::Tempfail,
                OnError::parse,
            ),
            utf8_folders: l.utf8_folders.unwrap_or(false),
            owner,
            group,
            connections: self.connections(
                t,
                l.max_connections.as_ref(),
                l.idle_timeout.as_ref(),
                LMTP_CONNECTIONS,
            ),
        })
    }

    fn http(&self, h: RawHttp, defaults: HttpConfig) -> HttpConfig {
        let t = "http";
        HttpConfig {
            listen: self.value((t, "listen"), h.listen.as_ref(), defaults.listen, |v| {
                self.listen(v)
            }),
            token_file: self.value((t, "token_file"), h.token_file.as_ref(), None, |v| {
                self.path(v).map(Some)
            }),
            readonly_token_file: self.value(
                (t, "readonly_token_file"),
                h.readonly_token_file.as_ref(),
                None,
                |v| self.path(v).map(Some),
            ),
            keep_messages: h.keep_messages.as_ref().map_or(0, |v| {
                usize::try_from(*v.get_ref()).unwrap_or_else(|_| {
                    let m = format!("expected a number >= 0, got {}", v.get_ref());
                    self.report(t, "keep_messages", v, m);
                    0
                })
            }),
            keep_for: self.value(
                (t, "keep_for"),
                h.keep_for.as_ref(),
                defaults.keep_for,
                |v| parse_duration(v).and_then(nonzero),
            ),
            connections: self.connections(
                t,
                h.max_connections.as_ref(),
                h.idle_timeout.as_ref(),
                HTTP_CONNECTIONS,
            ),
        }
    }

    fn limits(&self, l: RawLimits, d: LimitsConfig) -> LimitsConfig {
        let t = "limits";
        LimitsConfig {
            max_message_size: self.value(
                (t, "max_message_size"),
                l.max_message_size.as_ref(),
                d.max_message_size,
                parse_size,
            ),
            max_headers: self.count((t, "max_headers"), l.max_headers.as_ref(), d.max_headers),
            max_mime_depth: self.count(
                (t, "max_mime_depth"),
                l.max_mime_depth.as_ref(),
                d.max_mime_depth,
            ),
            eval_timeout: self.value(
                (t, "eval_timeout"),
                l.eval_timeout.as_ref(),
                d.eval_timeout,
                parse_duration,
            ),
            on_limit: self.value(
                (t, "on_limit"),
                l.on_limit.as_ref(),
                d.on_limit,
                OnError::parse,
            ),
        }
    }

    fn audit(&self, a: RawAudit, d: AuditConfig) -> AuditConfig {
        AuditConfig {
            retention: self.value(
                ("audit", "retention"),
                a.retention.as_ref(),
                d.retention,
                parse_duration,
            ),
        }
    }

    fn notify(&self, channel: &str, n: RawNotify) -> Option<NotifyChannel> {
        let t = format!("notify.{channel}");
        let url = self.required((&t, "url"), n.url.as_ref(), http_url);
        Some(NotifyChannel {
            url: url?,
            timeout: self.value(
                (&t, "timeout"),
                n.timeout.as_ref(),
                Duration::from_secs(5),
                parse_duration,
            ),
            retries: self.retries((&t, "retries"), n.retries.as_ref(), 8),
        })
    }

    fn relay(&self, r: RawRelay) -> Option<RelayConfig> {
        let host = self.required(("relay", "host"), r.host.as_ref(), |v| self.listen(v));
        let from = self.required(("relay", "from"), r.from.as_ref(), |v| {
            if v.contains('@') {
                Ok(v.to_string())
            } else {
                Err(format!("expected an address, got {v:?}"))
            }
        });
        Some(RelayConfig {
            host: host?,
            from: from?,
        })
    }

    fn reply(&self, r: RawReply, d: ReplyConfig) -> ReplyConfig {
        ReplyConfig {
            period: self.value(
                ("reply", "period"),
                r.period.as_ref(),
                d.period,
                parse_duration,
            ),
        }
    }

    fn outbox(&self, o: RawOutbox, d: OutboxConfig) -> OutboxConfig {
        let t = "outbox";
        OutboxConfig {
            backoff: self.value(
                (t, "backoff"),
                o.backoff.as_ref(),
                d.backoff,
                parse_duration,
            ),
            max_backoff: self.value(
                (t, "max_backoff"),
                o.max_backoff.as_ref(),
                d.max_backoff,
                parse_duration,
            ),
            mail_retries: self.retries(
                (t, "mail_retries"),
                o.mail_retries.as_ref(),
                d.mail_retries,
            ),
        }
    }
}

/// A table's configuration: `default` when the table is absent, else
/// `build` from its raw values and the defaults of the keys left out.
fn table<R, T>(raw: Option<R>, default: T, build: impl FnOnce(R, T) -> T) -> T {
    match raw {
        Some(raw) => build(raw, default),
        None => default,
    }
}

/// Refuses a zero duration (a timeout that would close every connection).
fn nonzero(d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        Err("expected a duration above zero".into())
    } else {
        Ok(d)
    }
}

fn nonempty(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("expected a value, got \"\"".into())
    } else {
        Ok(text.to_string())
    }
}

/// A release or delete command: argv with `{queue_id}`.
fn command(text: &str) -> Result<Vec<String>, String> {
    let argv = any_command(text)?;
    if !argv.iter().any(|a| a.contains("{queue_id}")) {
        return Err(format!(
            "the command must contain {{queue_id}}, got {text:?}"
        ));
    }
    Ok(argv)
}

fn any_command(text: &str) -> Result<Vec<String>, String> {
    let argv = split_command(text);
    if argv.is_empty() {
        return Err("expected a command, got \"\"".into());
    }
    Ok(argv)
}

/// A webhook URL. The webhook client speaks plain HTTP only: an https://
/// URL would pass here and be dead-lettered at run time.
fn http_url(text: &str) -> Result<String, String> {
    if text.starts_with("http://") {
        Ok(text.to_string())
    } else if text.starts_with("https://") {
        Err(format!(
            "https:// is not supported (no TLS): use http:// to a local relay, got {text:?}"
        ))
    } else {
        Err(format!("expected an http:// URL, got {text:?}"))
    }
}
