//! `weir.toml` (docs/serve.md "The daemon"): parsing, validation and the
//! defaults of `weir serve --rules FILE`.
//!
//! The file is read in two steps: serde + toml into raw tables (every table
//! `deny_unknown_fields`, values that need checking kept as spanned
//! strings), then each value is checked with its key's name, so an error
//! always says which file, which key, and where:
//! `weir.toml: [milter] on_error: expected one of accept, tempfail, reject, got "maybe" (line 6, column 12)`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// Where a server listens: `inet:HOST:PORT`, `unix:/path`, or a bare
/// `HOST:PORT` (= inet). IPv6 hosts are bracketed: `inet:[::1]:8890`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP socket.
    Inet {
        /// A host name or IP address (without brackets).
        host: String,
        /// The port.
        port: u16,
    },
    /// A Unix-domain socket at this path.
    Unix(PathBuf),
}

impl ListenAddr {
    /// Parses the listener syntax; `base` resolves relative `unix:` paths.
    pub fn parse(text: &str, base: &Path) -> Result<ListenAddr, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("expected a socket path after \"unix:\"".into());
            }
            return Ok(ListenAddr::Unix(base.join(path)));
        }
        let rest = text.strip_prefix("inet:").unwrap_or(text);
        let bad = || {
            format!("expected \"inet:HOST:PORT\", \"unix:/path\" or \"HOST:PORT\", got {text:?}")
        };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            let port = after.strip_prefix(':').ok_or_else(bad)?;
            (host, port)
        } else {
            rest.rsplit_once(':').ok_or_else(bad)?
        };
        if host.is_empty() || host.contains(':') && !rest.starts_with('[') {
            return Err(bad());
        }
        let port: u16 = port.parse().map_err(|_| bad())?;
        Ok(ListenAddr::Inet {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Inet { host, port } if host.contains(':') => {
                write!(f, "inet:[{host}]:{port}")
            }
            ListenAddr::Inet { host, port } => write!(f, "inet:{host}:{port}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// What to answer when evaluation fails or a limit is exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Let the message through.
    Accept,
    /// A 4xx reply: the MTA retries later.
    Tempfail,
    /// A 5xx reply.
    Reject,
}

impl OnError {
    fn parse(text: &str) -> Result<OnError, String> {
        match text {
            "accept" => Ok(OnError::Accept),
            "tempfail" => Ok(OnError::Tempfail),
            "reject" => Ok(OnError::Reject),
            other => Err(format!(
                "expected one of accept, tempfail, reject, got {other:?}"
            )),
        }
    }
}

/// `max_connections` and `idle_timeout` of one listener: how many
/// connections it serves at once (more wait in the kernel's accept queue,
/// using no file descriptor) and how long one may stay silent, or not read
/// what Weir writes, before it is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connections {
    /// `max_connections`.
    pub max: usize,
    /// `idle_timeout`.
    pub idle_timeout: Duration,
}

/// `[milter]`.
#[derive(Debug, Clone)]
pub struct MilterConfig {
    /// `listen`.
    pub listen: ListenAddr,
    /// `on_error`.
    pub on_error: OnError,
    /// `release`: the command (argv, `{queue_id}` substituted) that releases
    /// a message from the MTA's hold queue.
    pub release: Vec<String>,
    /// `delete`: the command that deletes a held message.
    pub delete: Vec<String>,
    /// `queue`: the command that lists the MTA's queue as JSON lines
    /// (`postqueue -j`), asked before and after a release or delete.
    pub queue: Vec<String>,
    /// `max_connections`, `idle_timeout`.
    pub connections: Connections,
}

/// `[lmtp]`: the LMTP delivery server (`serve/lmtp/`).
#[derive(Debug, Clone)]
pub struct LmtpConfig {
    /// `listen`.
    pub listen: ListenAddr,
    /// `maildir`: a path pattern with `{domain}`, `{local}`, `{detail}`.
    pub maildir: String,
    /// `lowercase_local`: `{local}` and `{detail}` lower-cased (default
    /// true), so `Bob@` and `bob@` get one Maildir.
    pub lowercase_local: bool,
    /// `on_error`.
    pub on_error: OnError,
    /// `utf8_folders`: folder names stay UTF-8 on disk instead of IMAP's
    /// modified UTF-7 (Dovecot's `UTF8` mail_location option).
    pub utf8_folders: bool,
    /// `max_connections`, `idle_timeout`.
    pub connections: Connections,
}

/// `[http]`.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `listen`.
    pub listen: ListenAddr,
    /// `token_file`; `None`: a token is generated into the state directory.
    pub token_file: Option<PathBuf>,
    /// `max_connections`, `idle_timeout`.
    pub connections: Connections,
}

/// Refuses a zero duration (a timeout that would close every connection).
fn nonzero(d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        Err("expected a duration above zero".into())
    } else {
        Ok(d)
    }
}

/// `[limits]`.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// `max_message_size`, in bytes.
    pub max_message_size: u64,
    /// `max_headers`.
    pub max_headers: usize,
    /// `max_mime_depth`.
    pub max_mime_depth: usize,
    /// `eval_timeout`.
    pub eval_timeout: Duration,
    /// `on_limit`.
    pub on_limit: OnError,
}

/// `[audit]`.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// `retention`: audit entries older than this are deleted.
    pub retention: Duration,
}

/// `[notify.NAME]`: a webhook channel.
#[derive(Debug, Clone)]
pub struct NotifyChannel {
    /// `url`.
    pub url: String,
    /// `timeout`.
    pub timeout: Duration,
    /// `retries`.
    pub retries: u32,
}

/// `[relay]`: where outgoing mail goes.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// `host`.
    pub host: ListenAddr,
    /// `from`.
    pub from: String,
}

/// `[reply]`.
#[derive(Debug, Clone)]
pub struct ReplyConfig {
    /// `period`: at most one auto-reply per sender per period.
    pub period: Duration,
}

/// `[outbox]`: how the outbox worker retries (`serve/outbox/`).
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// `backoff`: the delay after the first failed attempt; it doubles
    /// after each further failure.
    pub backoff: Duration,
    /// `max_backoff`: the longest delay between two attempts.
    pub max_backoff: Duration,
    /// `mail_retries`: retries of an auto-reply or forwarded copy after its
    /// first attempt, before it is dead-lettered (webhooks use their
    /// channel's `retries`).
    pub mail_retries: u32,
}

/// The daemon's configuration, every path absolute or relative to the
/// working directory (already resolved against the config file's directory).
// Parsed and checked now; used by the LMTP and outbox servers (a later issue).
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub struct Config {
    /// The configuration file, if one was given.
    pub file: Option<PathBuf>,
    /// `rules`: the entry `.flow` file (or a directory of them).
    pub rules: PathBuf,
    /// `state_dir`: the sled database and quarantine files.
    pub state_dir: PathBuf,
    /// `[milter]`.
    pub milter: MilterConfig,
    /// `[lmtp]`, when configured.
    pub lmtp: Option<LmtpConfig>,
    /// `[http]`.
    pub http: HttpConfig,
    /// `[limits]`.
    pub limits: LimitsConfig,
    /// `[audit]`.
    pub audit: AuditConfig,
    /// `[notify.NAME]` channels by name.
    pub notify: BTreeMap<String, NotifyChannel>,
    /// `[relay]`, when configured.
    pub relay: Option<RelayConfig>,
    /// `[reply]`.
    pub reply: ReplyConfig,
    /// `[outbox]`.
    pub outbox: OutboxConfig,
}

const DEFAULT_MILTER: &str = "inet:127.0.0.1:8890";

/// Postfix opens one milter connection per SMTP session
/// (`default_process_limit` 100) and keeps it while the client is idle,
/// up to `smtpd_timeout` (300 s).
pub const MILTER_CONNECTIONS: Connections = Connections {
    max: 1024,
    idle_timeout: Duration::from_secs(600),
};
/// One LMTP connection per Postfix `lmtp` process; RFC 5321 §4.5.3.2
/// suggests 5 minutes and more for a server's timeouts.
pub const LMTP_CONNECTIONS: Connections = Connections {
    max: 1024,
    idle_timeout: Duration::from_secs(600),
};
/// The control API serves operators and scrapers: a few connections.
pub const HTTP_CONNECTIONS: Connections = Connections {
    max: 256,
    idle_timeout: Duration::from_secs(60),
};
const DEFAULT_HTTP: &str = "inet:127.0.0.1:8080";
const DEFAULT_RELEASE: &str = "postsuper -H {queue_id}";
const DEFAULT_DELETE: &str = "postsuper -d {queue_id} hold";

impl Config {
    /// The configuration of `weir serve --rules FILE` without a config file:
    /// milter on `inet:127.0.0.1:8890`, HTTP on `inet:127.0.0.1:8080` with a
    /// generated token, state in `./weir-state`, no LMTP.
    pub fn defaults(rules: &Path) -> Config {
        let here = Path::new("");
        Config {
            file: None,
            rules: rules.to_path_buf(),
            state_dir: PathBuf::from("weir-state"),
            milter: MilterConfig {
                listen: ListenAddr::parse(DEFAULT_MILTER, here).unwrap_or(ListenAddr::Inet {
                    host: "127.0.0.1".into(),
                    port: 8890,
                }),
                on_error: OnError::Tempfail,
                release: split_command(DEFAULT_RELEASE),
                delete: split_command(DEFAULT_DELETE),
                queue: crate::holdqueue::default_queue_command(&split_command(DEFAULT_RELEASE)),
                connections: MILTER_CONNECTIONS,
            },
            lmtp: None,
            http: HttpConfig {
                listen: ListenAddr::parse(DEFAULT_HTTP, here).unwrap_or(ListenAddr::Inet {
                    host: "127.0.0.1".into(),
                    port: 8080,
                }),
                token_file: None,
                connections: HTTP_CONNECTIONS,
            },
            limits: LimitsConfig {
                max_message_size: 50 * 1024 * 1024,
                max_headers: 1000,
                max_mime_depth: 20,
                eval_timeout: Duration::from_millis(100),
                on_limit: OnError::Tempfail,
            },
            audit: AuditConfig {
                retention: Duration::from_secs(30 * 86400),
            },
            notify: BTreeMap::new(),
            relay: None,
            reply: ReplyConfig {
                period: Duration::from_secs(7 * 86400),
            },
            outbox: OutboxConfig {
                backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(3600),
                mail_retries: 8,
            },
        }
    }

    /// Reads and checks a configuration file. `rules` (from `--rules`)
    /// overrides the file's `rules` key. The error is one line (or a few)
    /// naming the file and the key.
    pub fn load(file: &Path, rules: Option<&Path>) -> Result<Config, String> {
        let name = file.display().to_string();
        let text =
            std::fs::read_to_string(file).map_err(|e| format!("{name}: cannot read: {e}"))?;
        let base = file.parent().unwrap_or(Path::new("")).to_path_buf();
        Config::parse(&text, &name, &base, rules)
    }

    /// Parses configuration text; `name` is the file name used in errors,
    /// `base` the directory relative paths are resolved against.
    pub fn parse(
        text: &str,
        name: &str,
        base: &Path,
        rules: Option<&Path>,
    ) -> Result<Config, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let place = e.span().map(|s| position(text, s.start));
            let table = e
                .span()
                .and_then(|s| table_at(text, s.start))
                .map(|t| format!("[{t}] "))
                .unwrap_or_default();
            let message = e.message().trim_end();
            match place {
                Some((line, col)) => {
                    format!("{name}: {table}{message} (line {line}, column {col})")
                }
                None => format!("{name}: {message}"),
            }
        })?;
        let checker = Checker { text, name, base };
        checker.build(raw, rules)
    }
}

/// Splits a command into argv at whitespace (no shell is involved).
pub fn split_command(command: &str) -> Vec<String> {
    command.split_whitespace().map(str::to_string).collect()
}

/// Parses a size as in Flow: digits with an optional `K`, `M` or `G`
/// suffix (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("expected a size such as \"50M\", got {text:?}"))?;
    let factor: u64 = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "k" | "m" | "g" => {
            return Err(format!(
                "size units are upper-case K, M, G, got {text:?} (a lower-case unit is a duration)"
            ));
        }
        _ => return Err(format!("expected a size such as \"50M\", got {text:?}")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// Parses a duration as in Flow: digits with `ms`, `s`, `m`, `h` or `d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || format!("expected a duration such as \"100ms\", \"5s\", \"7d\", got {text:?}");
    let split = t
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit())
        .map(|(i, _)| i)
        .ok_or_else(bad)?;
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let secs = |factor: u64| {
        n.checked_mul(factor)
            .map(Duration::from_secs)
            .ok_or_else(bad)
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86400),
        "M" | "K" | "G" => Err(format!(
            "durations take lower-case units ms, s, m, h, d; got {text:?} (upper-case is a size)"
        )),
        _ => Err(bad()),
    }
}

/// 1-based line and column of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    weir_grammar::diagnostic::line_col(text, offset)
}

/// The `[table]` header in force at a byte offset, if any.
fn table_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset).unwrap_or(text);
    before.lines().rev().find_map(|line| {
        let l = line.trim();
        let inner = l.strip_prefix('[')?.split(']').next()?;
        (!inner.is_empty()).then(|| inner.trim().to_string())
    })
}

type S = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMilter {
    listen: Option<S>,
    on_error: Option<S>,
    release: Option<S>,
    delete: Option<S>,
    queue: Option<S>,
    max_connections: Option<Spanned<i64>>,
    idle_timeout: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLmtp {
    listen: Option<S>,
    maildir: Option<S>,
    lowercase_local: Option<bool>,
    on_error: Option<S>,
    utf8_folders: Option<bool>,
    max_connections: Option<Spanned<i64>>,
    idle_timeout: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<S>,
    token_file: Option<S>,
    max_connections: Option<Spanned<i64>>,
    idle_timeout: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_message_size: Option<S>,
    max_headers: Option<Spanned<i64>>,
    max_mime_depth: Option<Spanned<i64>>,
    eval_timeout: Option<S>,
    on_limit: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    retention: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    url: Option<S>,
    timeout: Option<S>,
    retries: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelay {
    host: Option<S>,
    from: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReply {
    period: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutbox {
    backoff: Option<S>,
    max_backoff: Option<S>,
    mail_retries: Option<Spanned<i64>>,
}

/// Checks raw values, naming the file and key in every error.
struct Checker<'a> {
    text: &'a str,
    name: &'a str,
    base: &'a Path,
}

impl Checker<'_> {
    fn error<T>(&self, key: &str, value: &Spanned<T>, message: &str) -> String {
        let (line, col) = position(self.text, value.span().start);
        format!(
            "{}: {key}: {message} (line {line}, column {col})",
            self.name
        )
    }

    fn missing(&self, key: &str) -> String {
        format!("{}: {key}: missing (this setting is required)", self.name)
    }

    fn value<T>(
        &self,
        key: &str,
        value: Option<&S>,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, String> {
        match value {
            None => Ok(default),
            Some(v) => parse(v.get_ref()).map_err(|m| self.error(key, v, &m)),
        }
    }

    fn required<T>(
        &self,
        key: &str,
        value: Option<&S>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, String> {
        let v = value.ok_or_else(|| self.missing(key))?;
        parse(v.get_ref()).map_err(|m| self.error(key, v, &m))
    }

    fn count(
        &self,
        key: &str,
        value: Option<&Spanned<i64>>,
        default: usize,
    ) -> Result<usize, String> {
        match value {
            None => Ok(default),
            Some(v) => usize::try_from(*v.get_ref())
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    self.error(
                        key,
                        v,
                        &format!("expected a positive number, got {}", v.get_ref()),
                    )
                }),
        }
    }

    /// A listener's `max_connections` and `idle_timeout`.
    fn connections(
        &self,
        table: &str,
        max: Option<&Spanned<i64>>,
        idle: Option<&S>,
        default: Connections,
    ) -> Result<Connections, String> {
        Ok(Connections {
            max: self.count(&format!("{table} max_connections"), max, default.max)?,
            idle_timeout: self.value(
                &format!("{table} idle_timeout"),
                idle,
                default.idle_timeout,
                |t| parse_duration(t).and_then(nonzero),
            )?,
        })
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

    fn command(text: &str) -> Result<Vec<String>, String> {
        let argv = split_command(text);
        if argv.is_empty() {
            return Err("expected a command, got \"\"".into());
        }
        if !argv.iter().any(|a| a.contains("{queue_id}")) {
            return Err(format!(
                "the command must contain {{queue_id}}, got {text:?}"
            ));
        }
        Ok(argv)
    }

    /// Sets `[milter] queue`: as configured, else the `postqueue -j` that
    /// goes with the `release` command (see `holdqueue::default_queue_command`).
    fn with_queue_command(
        &self,
        mut milter: MilterConfig,
        raw: Option<S>,
    ) -> Result<MilterConfig, String> {
        milter.queue = match raw {
            Some(text) => {
                let argv = split_command(text.get_ref());
                if argv.is_empty() {
                    return Err(self.error(
                        "[milter] queue",
                        &text,
                        "expected a command, got \"\"",
                    ));
                }
                argv
            }
            None => crate::holdqueue::default_queue_command(&milter.release),
        };
        Ok(milter)
    }

    fn nonempty(text: &str) -> Result<String, String> {
        if text.trim().is_empty() {
            Err("expected a value, got \"\"".into())
        } else {
            Ok(text.to_string())
        }
    }

    fn build(&self, raw: RawConfig, rules: Option<&Path>) -> Result<Config, String> {
        let defaults = Config::defaults(Path::new(""));
        let rules = match rules {
            Some(r) => r.to_path_buf(),
            None => self.required("rules", raw.rules.as_ref(), |t| self.path(t))?,
        };
        let state_dir = self.required("state_dir", raw.state_dir.as_ref(), |t| self.path(t))?;

        let raw_queue = raw.milter.as_ref().and_then(|m| m.queue.clone());
        let milter = match raw.milter {
            None => defaults.milter.clone(),
            Some(m) => MilterConfig {
                listen: self.value(
                    "[milter] listen",
                    m.listen.as_ref(),
                    defaults.milter.listen.clone(),
                    |t| self.listen(t),
                )?,
                on_error: self.value(
                    "[milter] on_error",
                    m.on_error.as_ref(),
                    OnError::Tempfail,
                    OnError::parse,
                )?,
                release: self.value(
                    "[milter] release",
                    m.release.as_ref(),
                    defaults.milter.release.clone(),
                    Self::command,
                )?,
                delete: self.value(
                    "[milter] delete",
                    m.delete.as_ref(),
                    defaults.milter.delete.clone(),
                    Self::command,
                )?,
                queue: Vec::new(),
                connections: self.connections(
                    "[milter]",
                    m.max_connections.as_ref(),
                    m.idle_timeout.as_ref(),
                    MILTER_CONNECTIONS,
                )?,
            },
        };
        let milter = self.with_queue_command(milter, raw_queue)?;
        let lmtp = match raw.lmtp {
            None => None,
            Some(l) => Some(LmtpConfig {
                listen: self.required("[lmtp] listen", l.listen.as_ref(), |t| self.listen(t))?,
                maildir: self.required("[lmtp] maildir", l.maildir.as_ref(), Self::nonempty)?,
                lowercase_local: l.lowercase_local.unwrap_or(true),
                connections: self.connections(
                    "[lmtp]",
                    l.max_connections.as_ref(),
                    l.idle_timeout.as_ref(),
                    LMTP_CONNECTIONS,
                )?,
                on_error: self.value(
                    "[lmtp] on_error",
                    l.on_error.as_ref(),
                    OnError::Tempfail,
                    OnError::parse,
                )?,
                utf8_folders: l.utf8_folders.unwrap_or(false),
            }),
        };
        let http = match raw.http {
            None => defaults.http.clone(),
            Some(h) => HttpConfig {
                listen: self.value(
                    "[http] listen",
                    h.listen.as_ref(),
                    defaults.http.listen.clone(),
                    |t| self.listen(t),
                )?,
                token_file: match &h.token_file {
                    None => None,
                    Some(t) => Some(
                        self.path(t.get_ref())
                            .map_err(|m| self.error("[http] token_file", t, &m))?,
                    ),
                },
                connections: self.connections(
                    "[http]",
                    h.max_connections.as_ref(),
                    h.idle_timeout.as_ref(),
                    HTTP_CONNECTIONS,
                )?,
            },
        };
        let limits = match raw.limits {
            None => defaults.limits.clone(),
            Some(l) => LimitsConfig {
                max_message_size: self.value(
                    "[limits] max_message_size",
                    l.max_message_size.as_ref(),
                    defaults.limits.max_message_size,
                    parse_size,
                )?,
                max_headers: self.count(
                    "[limits] max_headers",
                    l.max_headers.as_ref(),
                    defaults.limits.max_headers,
                )?,
                max_mime_depth: self.count(
                    "[limits] max_mime_depth",
                    l.max_mime_depth.as_ref(),
                    defaults.limits.max_mime_depth,
                )?,
                eval_timeout: self.value(
                    "[limits] eval_timeout",
                    l.eval_timeout.as_ref(),
                    defaults.limits.eval_timeout,
                    parse_duration,
                )?,
                on_limit: self.value(
                    "[limits] on_limit",
                    l.on_limit.as_ref(),
                    OnError::Tempfail,
                    OnError::parse,
                )?,
            },
        };
        let audit = match raw.audit {
            None => defaults.audit.clone(),
            Some(a) => AuditConfig {
                retention: self.value(
                    "[audit] retention",
                    a.retention.as_ref(),
                    defaults.audit.retention,
                    parse_duration,
                )?,
            },
        };
        let mut notify = BTreeMap::new();
        for (channel, n) in raw.notify {
            let key = |k: &str| format!("[notify.{channel}] {k}");
            // The webhook client speaks plain HTTP only: an https:// URL
            // would pass here and be dead-lettered at run time.
            let url = self.required(&key("url"), n.url.as_ref(), |t| {
                if t.starts_with("http://") {
                    Ok(t.to_string())
                } else if t.starts_with("https://") {
                    Err(format!(
                        "https:// is not supported (no TLS): use http:// to a local relay, got {t:?}"
                    ))
                } else {
                    Err(format!("expected an http:// URL, got {t:?}"))
                }
            })?;
            let timeout = self.value(
                &key("timeout"),
                n.timeout.as_ref(),
                Duration::from_secs(5),
                parse_duration,
            )?;
            let retries = match &n.retries {
                None => 8,
                Some(v) => u32::try_from(*v.get_ref()).map_err(|_| {
                    self.error(
                        &key("retries"),
                        v,
                        &format!("expected a number >= 0, got {}", v.get_ref()),
                    )
                })?,
            };
            notify.insert(
                channel,
                NotifyChannel {
                    url,
                    timeout,
                    retries,
                },
            );
        }
        let relay = match raw.relay {
            None => None,
            Some(r) => Some(RelayConfig {
                host: self.required("[relay] host", r.host.as_ref(), |t| self.listen(t))?,
                from: self.required("[relay] from", r.from.as_ref(), |t| {
                    if t.contains('@') {
                        Ok(t.to_string())
                    } else {
                        Err(format!("expected an address, got {t:?}"))
                    }
                })?,
            }),
        };
        let reply = match raw.reply {
            None => defaults.reply.clone(),
            Some(r) => ReplyConfig {
                period: self.value(
                    "[reply] period",
                    r.period.as_ref(),
                    defaults.reply.period,
                    parse_duration,
                )?,
            },
        };
        let outbox = match raw.outbox {
            None => defaults.outbox.clone(),
            Some(o) => OutboxConfig {
                backoff: self.value(
                    "[outbox] backoff",
                    o.backoff.as_ref(),
                    defaults.outbox.backoff,
                    parse_duration,
                )?,
                max_backoff: self.value(
                    "[outbox] max_backoff",
                    o.max_backoff.as_ref(),
                    defaults.outbox.max_backoff,
                    parse_duration,
                )?,
                mail_retries: match &o.mail_retries {
                    None => defaults.outbox.mail_retries,
                    Some(v) => u32::try_from(*v.get_ref()).map_err(|_| {
                        self.error(
                            "[outbox] mail_retries",
                            v,
                            &format!("expected a number >= 0, got {}", v.get_ref()),
                        )
                    })?,
                },
            },
        };
        Ok(Config {
            file: Some(PathBuf::from(self.name)),
            rules,
            state_dir,
            milter,
            lmtp,
            http,
            limits,
            audit,
            notify,
            relay,
            reply,
            outbox,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
rules     = "rules/main.flow"
state_dir = "/var/lib/weir"

[milter]
listen   = "inet:127.0.0.1:8890"
on_error = "tempfail"
release  = "postsuper -H {queue_id}"
delete   = "postsuper -d {queue_id} hold"
queue    = "postqueue -j"
max_connections = 1024
idle_timeout    = "10m"

[lmtp]
listen   = "unix:/run/weir/lmtp.sock"
maildir  = "/var/mail/{domain}/{local}"
lowercase_local = true
on_error = "tempfail"
max_connections = 1024
idle_timeout    = "10m"

[http]
listen     = "inet:127.0.0.1:8080"
token_file = "/etc/weir/api-token"
max_connections = 256
idle_timeout    = "60s"

[limits]
max_message_size = "50M"
max_headers      = 1000
max_mime_depth   = 20
eval_timeout     = "100ms"
on_limit         = "tempfail"

[audit]
retention = "30d"

[notify.slack-vip]
url     = "http://127.0.0.1:9000/hook"
timeout = "5s"
retries = 8

[relay]
host = "inet:127.0.0.1:25"
from = "support@example.com"

[reply]
period = "7d"
"#;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, "weir.toml", Path::new("/etc/weir"), None)
    }

    #[test]
    fn the_product_example_parses() {
        let c = parse(EXAMPLE).expect("example parses");
        assert_eq!(c.rules, PathBuf::from("/etc/weir/rules/main.flow"));
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/weir"));
        assert_eq!(c.milter.release, vec!["postsuper", "-H", "{queue_id}"]);
        assert_eq!(c.limits.max_message_size, 50 * 1024 * 1024);
        assert_eq!(c.limits.eval_timeout, Duration::from_millis(100));
        assert_eq!(c.audit.retention, Duration::from_secs(30 * 86400));
        assert_eq!(c.notify["slack-vip"].retries, 8);
        assert_eq!(
            c.lmtp.map(|l| l.listen),
            Some(ListenAddr::Unix(PathBuf::from("/run/weir/lmtp.sock")))
        );
        assert_eq!(
            c.http.token_file,
            Some(PathBuf::from("/etc/weir/api-token"))
        );
    }

    #[test]
    fn a_bad_value_names_file_key_and_position() {
        let text = EXAMPLE.replace(
            "on_error = \"tempfail\"\nrelease",
            "on_error = \"maybe\"\nrelease",
        );
        let err = parse(&text).expect_err("maybe is not an on_error");
        assert!(
            err.starts_with(
                "weir.toml: [milter] on_error: expected one of accept, tempfail, reject, got \"maybe\" (line 7,"
            ),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_its_table() {
        let err = parse(
            "rules = \"a.flow\"\nstate_dir = \"s\"\n[http]\nlisten = \"1.2.3.4:5\"\ntokn = \"x\"\n",
        )
        .expect_err("unknown key");
        assert!(
            err.contains("weir.toml: [http] unknown field `tokn`"),
            "{err}"
        );
        assert!(err.contains("line 5"), "{err}");
    }

    #[test]
    fn an_https_notify_url_is_refused_at_load() {
        let err = parse(
            "rules = \"r\"\nstate_dir = \"s\"\n[notify.x]\nurl = \"https://hooks.example/x\"\n",
        )
        .expect_err("no TLS");
        assert!(
            err.contains("[notify.x] url: https:// is not supported"),
            "{err}"
        );
    }

    #[test]
    fn missing_rules_is_an_error() {
        let err = parse("state_dir = \"s\"\n").expect_err("rules is required");
        assert_eq!(err, "weir.toml: rules: missing (this setting is required)");
    }

    #[test]
    fn listeners() {
        let base = Path::new("/b");
        assert_eq!(
            ListenAddr::parse("inet:[::1]:8890", base),
            Ok(ListenAddr::Inet {
                host: "::1".into(),
                port: 8890
            })
        );
        assert_eq!(
            ListenAddr::parse("localhost:25", base),
            Ok(ListenAddr::Inet {
                host: "localhost".into(),
                port: 25
            })
        );
        assert_eq!(
            ListenAddr::parse("unix:run/x.sock", base),
            Ok(ListenAddr::Unix(PathBuf::from("/b/run/x.sock")))
        );
        assert!(ListenAddr::parse("inet:127.0.0.1", base).is_err());
        assert!(ListenAddr::parse("::1:25", base).is_err());
        assert!(ListenAddr::parse("inet:1.2.3.4:99999", base).is_err());
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("10K"), Ok(10240));
        assert_eq!(parse_size("7"), Ok(7));
        assert!(parse_size("10k").is_err());
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5M").is_err());
        assert!(parse_duration("5").is_err());
    }
}
