//! Connections to Redis: the pool, the breaker that makes calls fail fast
//! while Redis is down, and the count of round trips.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use redis::{ConnectionLike, RedisResult};

use crate::config::{RedisConfig, RedisTarget, RedisTls};

/// The shortest and the longest wait before Redis is tried again.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Opens standalone and Sentinel connections, with `timeout` on reads and
/// writes.
enum Manager {
    Client {
        client: redis::Client,
        connect_timeout: Duration,
        timeout: Duration,
    },
    Sentinel {
        client: redis::sentinel::LockedSentinelClient,
        timeout: Duration,
    },
}

/// A pooled connection, marked broken after an outage error so the pool
/// drops it (after a Sentinel failover the old master still answers, but
/// read-only).
struct Pooled {
    conn: redis::Connection,
    broken: bool,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Pooled;
    type Error = redis::RedisError;

    fn connect(&self) -> RedisResult<Pooled> {
        let (conn, timeout) = match self {
            Manager::Client {
                client,
                connect_timeout,
                timeout,
            } => (
                client.get_connection_with_timeout(*connect_timeout)?,
                *timeout,
            ),
            Manager::Sentinel { client, timeout } => (client.get_connection()?, *timeout),
        };
        conn.set_read_timeout(Some(timeout))?;
        conn.set_write_timeout(Some(timeout))?;
        Ok(Pooled {
            conn,
            broken: false,
        })
    }

    fn is_valid(&self, pooled: &mut Pooled) -> RedisResult<()> {
        redis::cmd("PING").query(&mut pooled.conn)
    }

    fn has_broken(&self, pooled: &mut Pooled) -> bool {
        pooled.broken || !pooled.conn.is_open()
    }
}

enum Pool {
    Single(r2d2::Pool<Manager>),
    Cluster(r2d2::Pool<redis::cluster::ClusterClient>),
}

/// Whether Redis answers, as the breaker last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// The last command succeeded.
    Up,
    /// Commands fail since this time (seconds since the epoch).
    Down {
        /// When the first failure of this outage happened.
        since: i64,
        /// The last error.
        error: String,
    },
}

#[derive(Default)]
struct Breaker {
    /// Consecutive failures.
    failures: u32,
    /// No command is sent before this instant.
    retry_at: Option<Instant>,
    since: i64,
    error: String,
}

/// A pool of connections to Redis behind a breaker.
pub(super) struct Redis {
    pool: Pool,
    breaker: Mutex<Breaker>,
    round_trips: AtomicU64,
}

impl Redis {
    /// Builds the pool (no connection is opened yet).
    pub(super) fn open(config: &RedisConfig) -> anyhow::Result<Redis> {
        // `rediss://`: rustls takes the one crypto provider compiled in
        // (ring, the workspace's `rustls` feature) on first use.
        let certs = tls_certificates(&config.tls)?;
        let pool = match &config.target {
            RedisTarget::Url(url) => {
                let client = match certs {
                    Some(certs) => redis::Client::build_with_tls(url.as_str(), certs),
                    None => redis::Client::open(url.as_str()),
                };
                Pool::Single(pool_builder(config).build_unchecked(Manager::Client {
                    client: client.with_context(|| format!("[store] url {url:?}"))?,
                    connect_timeout: config.connect_timeout,
                    timeout: config.timeout,
                }))
            }
            RedisTarget::Sentinel {
                master,
                addresses,
                password,
            } => {
                let node = password.as_ref().map(|p| {
                    let info = redis::RedisConnectionInfo::default().set_password(p);
                    redis::sentinel::SentinelNodeConnectionInfo::default()
                        .set_redis_connection_info(info)
                });
                let client = redis::sentinel::SentinelClient::build(
                    addresses.clone(),
                    master.clone(),
                    node,
                    redis::sentinel::SentinelServerType::Master,
                )
                .context("[store.sentinel]")?;
                Pool::Single(pool_builder(config).build_unchecked(Manager::Sentinel {
                    client: redis::sentinel::LockedSentinelClient::new(client),
                    timeout: config.timeout,
                }))
            }
            RedisTarget::Cluster(nodes) => {
                let mut builder = redis::cluster::ClusterClient::builder(nodes.clone())
                    .connection_timeout(config.connect_timeout)
                    .response_timeout(config.timeout);
                if let Some(certs) = certs {
                    builder = builder.certs(certs);
                }
                let client = builder.build().context("[store] cluster")?;
                Pool::Cluster(pool_builder(config).build_unchecked(client))
            }
        };
        Ok(Redis {
            pool,
            breaker: Mutex::new(Breaker::default()),
            round_trips: AtomicU64::new(0),
        })
    }

    /// Runs `call` on a pooled connection, unless the breaker is open.
    /// `what` names the operation in errors.
    pub(super) fn run<T>(
        &self,
        what: &str,
        call: impl FnOnce(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> anyhow::Result<T> {
        self.with_conn(what, |conn| match conn {
            Conn::Single(c) => call(c),
            Conn::Cluster(c) => call(c),
        })
    }

    /// Sends `commands` in one pipeline (standalone, Sentinel) or one
    /// cluster pipeline (grouped by node); their replies in order.
    pub(super) fn batch(
        &self,
        what: &str,
        commands: Vec<redis::Cmd>,
    ) -> anyhow::Result<Vec<redis::Value>> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        self.with_conn(what, |conn| match conn {
            Conn::Single(c) => {
                let mut pipe = redis::pipe();
                for cmd in commands {
                    pipe.add_command(cmd);
                }
                pipe.query(c)
            }
            Conn::Cluster(c) => {
                let mut pipe = redis::cluster::cluster_pipe();
                for cmd in commands {
                    pipe.add_command(cmd);
                }
                pipe.query(c)
            }
        })
    }

    fn with_conn<T>(
        &self,
        what: &str,
        call: impl FnOnce(Conn<'_>) -> RedisResult<T>,
    ) -> anyhow::Result<T> {
        self.admit()?;
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let result = match &self.pool {
            Pool::Single(pool) => match pool.get() {
                Ok(mut pooled) => {
                    let result = call(Conn::Single(&mut pooled.conn));
                    pooled.broken = result.as_ref().is_err_and(is_outage);
                    result
                }
                Err(e) => return Err(self.failed(what, e.to_string())),
            },
            Pool::Cluster(pool) => match pool.get() {
                Ok(mut c) => call(Conn::Cluster(&mut c)),
                Err(e) => return Err(self.failed(what, e.to_string())),
            },
        };
        match result {
            Ok(value) => {
                self.succeeded();
                Ok(value)
            }
            Err(e) if is_outage(&e) => Err(self.failed(what, e.to_string())),
            // Redis answered (a script error, a wrong type): it is up.
            Err(e) => {
                self.succeeded();
                Err(anyhow::Error::new(e).context(format!("Redis store: {what}")))
            }
        }
    }

    /// Refuses at once while the breaker is open and its back-off lasts.
    fn admit(&self) -> anyhow::Result<()> {
        let breaker = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        match breaker.retry_at {
            Some(at) if Instant::now() < at => Err(anyhow::anyhow!(
                "Redis store unavailable ({}); next try in {} ms",
                breaker.error,
                at.saturating_duration_since(Instant::now()).as_millis()
            )),
            _ => Ok(()),
        }
    }

    fn failed(&self, what: &str, error: String) -> anyhow::Error {
        let mut breaker = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        if breaker.failures == 0 {
            breaker.since = crate::clock::unix_now();
            tracing::error!("Redis store: {what}: {error}; failing fast until it answers again");
        }
        breaker.failures = breaker.failures.saturating_add(1);
        let shift = breaker.failures.min(16) - 1;
        let backoff = BACKOFF_MIN.saturating_mul(1 << shift).min(BACKOFF_MAX);
        breaker.retry_at = Some(Instant::now() + backoff);
        breaker.error = error.clone();
        anyhow::anyhow!("Redis store: {what}: {error}")
    }

    fn succeeded(&self) {
        let mut breaker = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        if breaker.failures > 0 {
            tracing::info!(
                "Redis store answers again after {} failed attempts",
                breaker.failures
            );
            *breaker = Breaker::default();
        }
    }

    pub(super) fn health(&self) -> Health {
        let breaker = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        if breaker.failures == 0 {
            Health::Up
        } else {
            Health::Down {
                since: breaker.since,
                error: breaker.error.clone(),
            }
        }
    }

    pub(super) fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }
}

/// The pool's settings: `pool_size` connections at most, opened on demand.
/// The CA and client certificate of `[store] tls_*_file`, read now (a
/// restart picks up renewed files), or `None` for the system's roots and
/// no client certificate.
fn tls_certificates(tls: &RedisTls) -> anyhow::Result<Option<redis::TlsCertificates>> {
    if !tls.is_set() {
        return Ok(None);
    }
    let read = |path: &Path, key: &str| {
        std::fs::read(path).with_context(|| format!("[store] {key} {}", path.display()))
    };
    let root_cert = tls
        .ca_file
        .as_deref()
        .map(|p| read(p, "tls_ca_file"))
        .transpose()?;
    let client_tls = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read(cert, "tls_cert_file")?,
            client_key: read(key, "tls_key_file")?,
        }),
        _ => None,
    };
    Ok(Some(redis::TlsCertificates {
        client_tls,
        root_cert,
    }))
}

fn pool_builder<M: r2d2::ManageConnection>(config: &RedisConfig) -> r2d2::Builder<M> {
    r2d2::Pool::builder()
        .max_size(config.pool_size)
        .min_idle(Some(0))
        .connection_timeout(config.connect_timeout)
        // A dead connection shows on use (and is dropped then): checking
        // each one out with a PING would double the round trips of a call.
        .test_on_check_out(false)
}

enum Conn<'a> {
    Single(&'a mut redis::Connection),
    Cluster(&'a mut redis::cluster::ClusterConnection),
}

/// Whether an error means Redis cannot be reached (rather than an answer).
fn is_outage(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_cluster_error()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            redis::ErrorKind::MasterNameNotFoundBySentinel
                | redis::ErrorKind::ClusterConnectionNotFound
        )
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading)
                | redis::ErrorKind::Server(redis::ServerErrorKind::TryAgain)
                | redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown)
                | redis::ErrorKind::Server(redis::ServerErrorKind::MasterDown)
                | redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
        )
}
