//! `weir.toml` (docs/serve.md "The daemon"): parsing, validation and the
//! defaults of `weir serve --rules FILE`.
//!
//! The file is read in three steps: the TOML document (every syntax
//! error), its keys and the kinds of their values against the keys
//! `weir.toml` knows (`schema`: unknown keys with a did-you-mean), then each
//! value with its key's name (`check`). Every error found is reported, each
//! saying which file, which key, and where:
//! `weir.toml: [milter] on_error: expected one of accept, tempfail, reject, got "maybe" (line 6, column 12)`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod autolearn;
mod check;
mod error;
mod owner;
mod schema;
mod store;

use std::cell::RefCell;

pub use autolearn::ClassifierConfig;
use check::Checker;
pub use error::{ConfigError, ConfigErrors};
use serde::Deserialize;
pub use store::{RedisConfig, RedisTarget, RedisTls, StoreBackend, StoreConfig};

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
    pub(crate) fn parse(text: &str) -> Result<OnError, String> {
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
    /// `owner`: the user the Maildir files and directories are given to
    /// (Dovecot's `mail_uid`); `None`: the daemon's own user.
    pub owner: Option<u32>,
    /// `group`: their group (Dovecot's `mail_gid`).
    pub group: Option<u32>,
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
    /// `readonly_token_file`: the token of the read-only role (`None`: no
    /// read-only access).
    pub readonly_token_file: Option<PathBuf>,
    /// `keep_messages`: how many recent messages' bytes to keep in memory
    /// for the console's explain view and backtests (0: none, the default).
    pub keep_messages: usize,
    /// `keep_for`: kept bytes older than this are dropped.
    pub keep_for: Duration,
    /// `max_connections`, `idle_timeout`.
    pub connections: Connections,
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
    /// `[classifiers.NAME]`: autolearn, by classifier.
    pub classifiers: BTreeMap<String, ClassifierConfig>,
    /// `[store]`.
    pub store: StoreConfig,
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
                readonly_token_file: None,
                keep_messages: 0,
                keep_for: Duration::from_secs(86400),
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
            classifiers: BTreeMap::new(),
            store: StoreConfig::defaults(),
        }
    }

    /// Reads and checks a configuration file. `rules` (from `--rules`)
    /// overrides the file's `rules` key. Every problem found is returned,
    /// each naming the file, table and key.
    pub fn load(file: &Path, rules: Option<&Path>) -> Result<Config, ConfigErrors> {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file)
            .map_err(|e| ConfigErrors::file(&name, format!("cannot read: {e}")))?;
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
    ) -> Result<Config, ConfigErrors> {
        let checker = Checker {
            text,
            name,
            base,
            errors: RefCell::new(Vec::new()),
        };
        let (document, syntax) = toml::de::DeTable::parse_recoverable(text);
        if !syntax.is_empty() {
            let errors = syntax.iter().map(|e| syntax_error(&checker, e)).collect();
            return Err(ConfigErrors(errors));
        }
        for m in schema::check(document.get_ref()) {
            let error = checker.at(m.table.as_deref(), Some(&m.key), m.span, m.message);
            checker.errors.borrow_mut().push(error);
        }
        // The document parsed above is read into the raw tables: with every
        // key and kind right, serde cannot fail; when a kind is wrong, the
        // mismatches above are what there is to say.
        let raw = check::RawConfig::deserialize(toml::de::Deserializer::from(document));
        let built = raw.ok().and_then(|raw| checker.build(raw, rules));
        let mut errors = checker.errors.into_inner();
        match built {
            Some(config) if errors.is_empty() => Ok(config),
            _ => {
                errors.sort_by_key(|e| (e.line.unwrap_or(usize::MAX), e.column));
                Err(ConfigErrors(errors))
            }
        }
    }
}

/// A TOML syntax error, placed at its line and `[table]`.
fn syntax_error(checker: &Checker<'_>, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim_end().to_string();
    match e.span() {
        Some(span) => {
            let table = table_at(checker.text, span.start);
            checker.at(table.as_deref(), None, span, message)
        }
        None => ConfigErrors::file(checker.name, message).0.remove(0),
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

/// The `[table]` header in force at a byte offset, if any.
fn table_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset).unwrap_or(text);
    before.lines().rev().find_map(|line| {
        let l = line.trim();
        let inner = l.strip_prefix('[')?.split(']').next()?;
        (!inner.is_empty()).then(|| inner.trim().to_string())
    })
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
        Config::parse(text, "weir.toml", Path::new("/etc/weir"), None).map_err(|e| e.to_string())
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
    fn the_console_settings_are_read_and_checked() {
        let base = "rules = \"a.flow\"\nstate_dir = \"s\"\n[http]\n";
        let c = parse(&format!(
            "{base}readonly_token_file = \"ro\"\nkeep_messages = 500\nkeep_for = \"2h\"\n"
        ))
        .expect("valid");
        assert_eq!(c.http.keep_messages, 500);
        assert_eq!(c.http.keep_for, Duration::from_secs(7200));
        assert!(
            c.http
                .readonly_token_file
                .is_some_and(|p| p.ends_with("ro"))
        );
        let c = parse(base).expect("valid");
        assert_eq!(c.http.keep_messages, 0, "off by default");
        assert_eq!(c.http.readonly_token_file, None);
        let err = parse(&format!("{base}keep_messages = -1\nkeep_for = \"soon\"\n"))
            .expect_err("bad values");
        assert!(
            err.contains("[http] keep_messages: expected a number >= 0, got -1 (line 4,"),
            "{err}"
        );
        assert!(err.contains("[http] keep_for: "), "{err}");
        let err = parse(&format!("{base}readonly_token_file = \"\"\n")).expect_err("empty");
        assert!(err.contains("[http] readonly_token_file: "), "{err}");
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_its_table() {
        let err = parse(
            "rules = \"a.flow\"\nstate_dir = \"s\"\n[http]\nlisten = \"1.2.3.4:5\"\ntokn_file = \"x\"\nport = 1\n",
        )
        .expect_err("unknown key");
        assert!(
            err.contains("weir.toml: [http] tokn_file: unknown key, did you mean `token_file`? (line 5, column 1)"),
            "{err}"
        );
        assert!(
            err.contains("weir.toml: [http] port: unknown key, expected one of `listen`, `token_file`, `readonly_token_file`, `keep_messages`, `keep_for`, `max_connections`, `idle_timeout` (line 6, column 1)"),
            "{err}"
        );
    }

    #[test]
    fn every_error_is_reported_in_one_run() {
        let text = "rules = \"r\"\nstat_dir = \"s\"\n[milter]\non_error = \"maybe\"\n\
                    max_connections = \"many\"\n[limits]\neval_timeout = \"5\"\n[lmtp]\nlisten = \"x\"\n";
        let err = parse(text).expect_err("five problems");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines,
            [
                "weir.toml: stat_dir: unknown key, did you mean `state_dir`? (line 2, column 1)",
                "weir.toml: [milter] max_connections: expected a whole number, got a string (line 5, column 19)",
            ],
            "{err}"
        );
        // With the kinds right, every value error comes out together.
        let text = "rules = \"r\"\n[milter]\non_error = \"maybe\"\n[limits]\n\
                    eval_timeout = \"5\"\nmax_headers = 0\n[lmtp]\nlisten = \"x\"\n";
        let err = parse(text).expect_err("five problems");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 6, "{err}");
        assert!(
            lines[0].starts_with("weir.toml: [milter] on_error: expected one of"),
            "{err}"
        );
        assert!(
            lines[1].starts_with("weir.toml: [limits] eval_timeout: expected a duration"),
            "{err}"
        );
        assert!(
            lines[2].starts_with("weir.toml: [limits] max_headers: expected a positive"),
            "{err}"
        );
        assert!(
            lines[3].starts_with("weir.toml: [lmtp] listen: expected"),
            "{err}"
        );
        assert!(
            lines.contains(&"weir.toml: state_dir: missing (this setting is required)"),
            "{err}"
        );
        assert!(
            lines.contains(&"weir.toml: [lmtp] maildir: missing (this setting is required)"),
            "{err}"
        );
    }

    #[test]
    fn every_syntax_error_is_reported() {
        let err = parse("rules = \"r\"\nstate_dir = \n[http]\nlisten = = 3\n").expect_err("syntax");
        assert!(err.lines().count() >= 2, "{err}");
        assert!(err.contains("(line 2,"), "{err}");
        assert!(err.contains("[http]"), "{err}");
    }

    #[test]
    fn lmtp_owner_and_group_take_names_or_ids() {
        let base = "rules = \"r\"\nstate_dir = \"s\"\n[lmtp]\nlisten = \"127.0.0.1:24\"\nmaildir = \"/m/{local}\"\n";
        let c = parse(&format!("{base}owner = \"root\"\ngroup = \"5000\"\n")).expect("valid");
        let lmtp = c.lmtp.expect("lmtp");
        assert_eq!((lmtp.owner, lmtp.group), (Some(0), Some(5000)));
        let err =
            parse(&format!("{base}owner = \"no-such-user-here\"\n")).expect_err("unknown user");
        assert!(
            err.contains("[lmtp] owner: no such user \"no-such-user-here\""),
            "{err}"
        );
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
    fn store_defaults_to_sled_named_after_the_machine() {
        let c = parse("rules = \"r\"\nstate_dir = \"s\"\n").expect("valid");
        assert_eq!(c.store.backend, StoreBackend::Sled);
        assert!(!c.store.host.is_empty());
    }

    #[test]
    fn store_redis_takes_a_url_sentinel_or_cluster() {
        let base =
            "rules = \"r\"\nstate_dir = \"s\"\n[store]\nbackend = \"redis\"\nhost = \"mx1\"\n";
        let c = parse(&format!(
            "{base}url = \"rediss://:pw@redis.example:6380/2\"\nprefix = \"mail:\"\n\
             connect_timeout = \"500ms\"\ntimeout = \"1s\"\npool_size = 8\n"
        ))
        .expect("valid");
        let StoreBackend::Redis(r) = c.store.backend else {
            panic!("redis")
        };
        assert_eq!(
            r.target,
            RedisTarget::Url("rediss://:pw@redis.example:6380/2".into())
        );
        assert_eq!((r.prefix.as_str(), r.pool_size), ("mail:", 8));
        assert_eq!(r.connect_timeout, Duration::from_millis(500));
        assert_eq!(c.store.host, "mx1");
        let c = parse(&format!("{base}url = \"unix:///run/redis/redis.sock\"\n")).expect("unix");
        assert!(matches!(c.store.backend, StoreBackend::Redis(_)));
        let c = parse(&format!(
            "{base}cluster = [\"10.0.0.1:7000\", \"redis://10.0.0.2:7000\"]\n"
        ))
        .expect("cluster");
        let StoreBackend::Redis(r) = c.store.backend else {
            panic!("redis")
        };
        assert_eq!(
            r.target,
            RedisTarget::Cluster(vec![
                "redis://10.0.0.1:7000".into(),
                "redis://10.0.0.2:7000".into()
            ])
        );
        let c = parse(&format!(
            "{base}[store.sentinel]\nmaster = \"weir\"\naddresses = [\"10.0.0.1:26379\"]\n"
        ))
        .expect("sentinel");
        let StoreBackend::Redis(r) = c.store.backend else {
            panic!("redis")
        };
        assert_eq!(
            r.target,
            RedisTarget::Sentinel {
                master: "weir".into(),
                addresses: vec!["redis://10.0.0.1:26379".into()],
                password: None,
            }
        );
    }

    #[test]
    fn store_mistakes_are_named() {
        let base = "rules = \"r\"\nstate_dir = \"s\"\n[store]\n";
        let err = |extra: &str| parse(&format!("{base}{extra}")).expect_err(extra);
        assert!(
            err("backend = \"mysql\"\n")
                .contains("[store] backend: expected one of sled, redis, got \"mysql\""),
        );
        assert!(
            err("backend = \"redis\"\n").contains(
                "[store] backend: backend \"redis\" needs one of url, sentinel or cluster"
            )
        );
        let both = err("backend = \"redis\"\nurl = \"redis://a\"\ncluster = [\"b:1\"]\n");
        assert!(
            both.contains("[store] cluster: give only one of url, sentinel, cluster"),
            "{both}"
        );
        assert!(
            err("backend = \"redis\"\nurl = \"http://a\"\n")
                .contains("[store] url: expected a redis://, rediss:// or unix:// URL")
        );
        assert!(
            err("backend = \"redis\"\ncluster = []\n")
                .contains("[store] cluster: expected at least one")
        );
        assert!(
            err("backend = \"redis\"\ncluster = [\"nope\"]\n")
                .contains("[store] cluster: expected \"HOST:PORT\"")
        );
        assert!(
            err("backend = \"redis\"\ncluster = \"a:1\"\n")
                .contains("[store] cluster: expected an array of strings, got a string")
        );
        assert!(
            err("backend = \"redis\"\nurl = \"redis://a\"\nprefix = \"{x}\"\n")
                .contains("[store] prefix: the prefix may not contain")
        );
        assert!(
            err("backend = \"redis\"\nurl = \"redis://a\"\npool_size = 0\n")
                .contains("[store] pool_size: expected a positive number")
        );
        assert!(
            err("backend = \"redis\"\nurl = \"redis://a\"\ntimeout = \"0s\"\n")
                .contains("[store] timeout: expected a duration above zero")
        );
        assert!(
            err("backend = \"redis\"\nurl = \"redis://a\"\nclaim_timeout = \"1s\"\n")
                .contains("[store] claim_timeout: expected at least 2s")
        );
        assert!(
            err("url = \"redis://a\"\n")
                .contains("[store] url: a Redis setting, but backend is \"sled\"")
        );
        assert!(
            err("backend = \"redis\"\n[store.sentinel]\nmaster = \"m\"\n")
                .contains("[store.sentinel] addresses: missing")
        );
        assert!(
            err("backend = \"redis\"\n[store.sentinel]\nmastr = \"m\"\n")
                .contains("[store.sentinel] mastr: unknown key, did you mean `master`?")
        );
        assert!(
            err("bakend = \"redis\"\n")
                .contains("[store] bakend: unknown key, did you mean `backend`?")
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
