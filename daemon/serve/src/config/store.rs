//! `[store]`: where the daemon keeps its state. `sled` (the default) is an
//! embedded database in `state_dir`, for one host; `redis` is a Redis
//! server, Sentinel set or Cluster shared by several hosts (docs/serve.md
//! "Several hosts").

use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `backend`, with the Redis settings when it is `redis`.
    pub backend: StoreBackend,
    /// `host`: the name this daemon gives itself in shared state (audit
    /// entries, ruleset versions, claimed outbox items); the machine's host
    /// name by default.
    pub host: String,
}

/// `[store] backend`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// `"sled"`: everything in `state_dir`.
    Sled,
    /// `"redis"`: shared state in Redis.
    Redis(RedisConfig),
}

/// The Redis settings of `[store]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `url`, `sentinel` or `cluster`: how to reach Redis.
    pub target: RedisTarget,
    /// `prefix`: put before every key, so several deployments can share
    /// one Redis (default `weir:`).
    pub prefix: String,
    /// `connect_timeout`: how long opening a connection may take.
    pub connect_timeout: Duration,
    /// `timeout`: how long one command may take before the store counts as
    /// failing.
    pub timeout: Duration,
    /// `pool_size`: the most connections one daemon opens.
    pub pool_size: u32,
    /// `audit_max_length`: the audit stream is trimmed to about this many
    /// entries, besides `[audit] retention`.
    pub audit_max_length: u64,
    /// `claim_timeout`: how long an outbox item a host's worker took stays
    /// its own; after that (the host died) another host takes it over.
    pub claim_timeout: Duration,
    /// `tls_ca_file`, `tls_cert_file`, `tls_key_file`: the files of
    /// `rediss://` connections (boxed: rarely set, and it would make
    /// every `StoreBackend` larger).
    pub tls: Box<RedisTls>,
}

/// The files of `rediss://` connections (`url` or `cluster`). Without
/// them TLS checks the server against the system's trusted roots and
/// presents no client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// `tls_ca_file`: PEM certificates trusted instead of the system's
    /// roots (a private CA, as Redis deployments usually have).
    pub ca_file: Option<PathBuf>,
    /// `tls_cert_file`: the PEM client certificate (chain) shown to a
    /// server that asks for one (`tls-auth-clients`); with `tls_key_file`.
    pub cert_file: Option<PathBuf>,
    /// `tls_key_file`: the PEM private key of `tls_cert_file`.
    pub key_file: Option<PathBuf>,
}

impl RedisTls {
    /// Whether any file is given.
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()
    }
}

/// A PEM file that can be read now (the daemon reads it again when it
/// connects): `path`, or why not.
pub fn pem_file(path: &Path) -> Result<PathBuf, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !text.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(format!(
            "{} is not a PEM file (no \"-----BEGIN\" line)",
            path.display()
        ));
    }
    Ok(path.to_path_buf())
}

/// How to reach Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// `url`: `redis://`, `rediss://` (TLS) or `unix:///path` (also
    /// `redis+unix:///path`).
    Url(String),
    /// `[store.sentinel]`: the master's name and the sentinels' addresses
    /// (`HOST:PORT` or URLs).
    Sentinel {
        /// `master`.
        master: String,
        /// `addresses`, as `redis://HOST:PORT` URLs (a URL may carry the
        /// sentinels' own password).
        addresses: Vec<String>,
        /// `password`: the master's and replicas' password, if they ask
        /// for one.
        password: Option<String>,
    },
    /// `cluster`: seed nodes, as URLs.
    Cluster(Vec<String>),
}

/// The defaults of the Redis settings.
pub const DEFAULT_PREFIX: &str = "weir:";
/// `connect_timeout` by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// `timeout` by default: well under Postfix's `milter_content_timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// `pool_size` by default: one connection per evaluation slot and then some.
pub const DEFAULT_POOL_SIZE: u32 = 16;
/// `claim_timeout` by default: far longer than any one attempt.
pub const DEFAULT_CLAIM_TIMEOUT: Duration = Duration::from_secs(60);
/// `audit_max_length` by default.
pub const DEFAULT_AUDIT_MAX_LENGTH: u64 = 1_000_000;

impl StoreConfig {
    /// sled, named after this machine.
    pub fn defaults() -> StoreConfig {
        StoreConfig {
            backend: StoreBackend::Sled,
            host: local_host_name(),
        }
    }
}

/// The machine's host name, or `localhost` when it cannot be read.
pub fn local_host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// A `cluster` seed or a sentinel address as a URL: `HOST:PORT` becomes
/// `redis://HOST:PORT`; URLs are checked as Redis reads them.
pub fn node_url(text: &str) -> Result<String, String> {
    let url = if text.contains("://") {
        text.to_string()
    } else {
        let bad = || format!("expected \"HOST:PORT\" or a redis:// URL, got {text:?}");
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad());
        }
        format!("redis://{text}")
    };
    redis_url(&url)
}

/// A Redis URL, parsed (not connected) the way the client will read it.
pub fn redis_url(text: &str) -> Result<String, String> {
    let schemes = ["redis://", "rediss://", "unix://", "redis+unix://"];
    if !schemes.iter().any(|s| text.starts_with(s)) {
        return Err(format!(
            "expected a redis://, rediss:// or unix:// URL, got {text:?}"
        ));
    }
    redis::Client::open(text)
        .map(|_| text.to_string())
        .map_err(|e| format!("not a Redis URL ({e}): {text:?}"))
}

/// A key prefix: any text without `{` or `}`, which Weir's keys use as
/// Redis Cluster hash tags.
pub fn prefix(text: &str) -> Result<String, String> {
    if text.contains(['{', '}']) {
        return Err(format!(
            "the prefix may not contain {{ or }} (Weir's keys use them as Cluster hash tags), got {text:?}"
        ));
    }
    Ok(text.to_string())
}
