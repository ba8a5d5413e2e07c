//! Checking `[store]` (`config/store.rs`): the backend, exactly one way to
//! reach Redis when it is `redis`, and no Redis setting left without it.

use serde::Deserialize;
use toml::Spanned;

use super::super::store::{
    self as cfg, DEFAULT_AUDIT_MAX_LENGTH, DEFAULT_CLAIM_TIMEOUT, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_POOL_SIZE, DEFAULT_PREFIX, DEFAULT_TIMEOUT, RedisConfig, RedisTarget, RedisTls,
    StoreBackend, StoreConfig,
};
use super::{Checker, N, S, nonempty, nonzero};
use crate::config::parse_duration;

type List = Spanned<Vec<String>>;

#[derive(Debug, Deserialize)]
pub(in crate::config) struct RawStore {
    backend: Option<S>,
    url: Option<S>,
    sentinel: Option<Spanned<RawSentinel>>,
    cluster: Option<List>,
    prefix: Option<S>,
    connect_timeout: Option<S>,
    timeout: Option<S>,
    pool_size: Option<N>,
    host: Option<S>,
    audit_max_length: Option<N>,
    claim_timeout: Option<S>,
    tls_ca_file: Option<S>,
    tls_cert_file: Option<S>,
    tls_key_file: Option<S>,
}

#[derive(Debug, Deserialize)]
struct RawSentinel {
    master: Option<S>,
    addresses: Option<List>,
    password: Option<S>,
}

const T: &str = "store";

impl Checker<'_> {
    /// `[store]`.
    pub(super) fn store(&self, s: RawStore, d: StoreConfig) -> StoreConfig {
        let host = self.value((T, "host"), s.host.as_ref(), d.host, nonempty);
        let redis = self.value((T, "backend"), s.backend.as_ref(), false, |b| match b {
            "sled" => Ok(false),
            "redis" => Ok(true),
            other => Err(format!("expected one of sled, redis, got {other:?}")),
        });
        if !redis {
            self.no_redis_settings(&s);
            return StoreConfig {
                backend: StoreBackend::Sled,
                host,
            };
        }
        let backend = match self.target(&s) {
            Some(target) => StoreBackend::Redis(self.redis(&s, target)),
            None => StoreBackend::Sled,
        };
        StoreConfig { backend, host }
    }

    /// The Redis settings other than the target.
    fn redis(&self, s: &RawStore, target: RedisTarget) -> RedisConfig {
        let pool = self.count((T, "pool_size"), s.pool_size.as_ref(), 1);
        RedisConfig {
            prefix: self.value(
                (T, "prefix"),
                s.prefix.as_ref(),
                DEFAULT_PREFIX.into(),
                cfg::prefix,
            ),
            connect_timeout: self.value(
                (T, "connect_timeout"),
                s.connect_timeout.as_ref(),
                DEFAULT_CONNECT_TIMEOUT,
                |t| parse_duration(t).and_then(nonzero),
            ),
            timeout: self.value((T, "timeout"), s.timeout.as_ref(), DEFAULT_TIMEOUT, |t| {
                parse_duration(t).and_then(nonzero)
            }),
            pool_size: if s.pool_size.is_some() {
                u32::try_from(pool).unwrap_or(u32::MAX)
            } else {
                DEFAULT_POOL_SIZE
            },
            audit_max_length: self.count(
                (T, "audit_max_length"),
                s.audit_max_length.as_ref(),
                usize::try_from(DEFAULT_AUDIT_MAX_LENGTH).unwrap_or(usize::MAX),
            ) as u64,
            claim_timeout: self.value(
                (T, "claim_timeout"),
                s.claim_timeout.as_ref(),
                DEFAULT_CLAIM_TIMEOUT,
                |t| parse_duration(t).and_then(claim_timeout),
            ),
            tls: Box::new(self.tls(s, &target)),
            target,
        }
    }

    /// `tls_ca_file`, `tls_cert_file`, `tls_key_file`: readable PEM files,
    /// a certificate with its key, and only for `rediss://` URLs.
    fn tls(&self, s: &RawStore, target: &RedisTarget) -> RedisTls {
        let file = |key: &str, value: Option<&S>| {
            self.value((T, key), value, None, |p| {
                self.path(p).and_then(|p| cfg::pem_file(&p)).map(Some)
            })
        };
        let tls = RedisTls {
            ca_file: file("tls_ca_file", s.tls_ca_file.as_ref()),
            cert_file: file("tls_cert_file", s.tls_cert_file.as_ref()),
            key_file: file("tls_key_file", s.tls_key_file.as_ref()),
        };
        let given = [
            ("tls_ca_file", s.tls_ca_file.as_ref()),
            ("tls_cert_file", s.tls_cert_file.as_ref()),
            ("tls_key_file", s.tls_key_file.as_ref()),
        ];
        let Some((key, first)) = given.iter().find_map(|(k, v)| Some((*k, (*v)?))) else {
            return tls;
        };
        match (&s.tls_cert_file, &s.tls_key_file) {
            (Some(v), None) => self.report(T, "tls_cert_file", v, "give tls_key_file too".into()),
            (None, Some(v)) => self.report(T, "tls_key_file", v, "give tls_cert_file too".into()),
            _ => {}
        }
        let urls: &[String] = match target {
            RedisTarget::Url(url) => std::slice::from_ref(url),
            RedisTarget::Cluster(nodes) => nodes,
            RedisTarget::Sentinel { .. } => {
                let m =
                    "TLS files are not supported with [store.sentinel]; use url or cluster".into();
                self.report(T, key, first, m);
                return tls;
            }
        };
        if let Some(plain) = urls.iter().find(|u| !u.starts_with("rediss://")) {
            let m = format!("{key} is for rediss:// (TLS) connections, but {plain:?} is not one");
            self.report(T, key, first, m);
        }
        tls
    }

    /// Exactly one of `url`, `sentinel`, `cluster`.
    fn target(&self, s: &RawStore) -> Option<RedisTarget> {
        let given = [
            s.url.as_ref().map(|v| ("url", v.span())),
            s.sentinel.as_ref().map(|v| ("sentinel", v.span())),
            s.cluster.as_ref().map(|v| ("cluster", v.span())),
        ];
        let given: Vec<_> = given.into_iter().flatten().collect();
        if given.len() > 1 {
            let (key, span) = given[1].clone();
            let m = format!(
                "give only one of url, sentinel, cluster (also given: {})",
                given[0].0
            );
            self.errors
                .borrow_mut()
                .push(self.at(Some(T), Some(key), span, m));
            return None;
        }
        if let Some(url) = &s.url {
            return self
                .required((T, "url"), Some(url), cfg::redis_url)
                .map(RedisTarget::Url);
        }
        if let Some(sentinel) = &s.sentinel {
            return self.sentinel(sentinel.get_ref());
        }
        if let Some(cluster) = &s.cluster {
            return self
                .nodes((T, "cluster"), cluster)
                .map(RedisTarget::Cluster);
        }
        let Some(backend) = &s.backend else {
            return None;
        };
        let m = "backend \"redis\" needs one of url, sentinel or cluster".to_string();
        self.report(T, "backend", backend, m);
        None
    }

    fn sentinel(&self, s: &RawSentinel) -> Option<RedisTarget> {
        let t = "store.sentinel";
        let master = self.required((t, "master"), s.master.as_ref(), nonempty);
        let Some(addresses) = &s.addresses else {
            self.required::<()>((t, "addresses"), None, |_| Ok(()));
            return None;
        };
        let addresses = self.nodes((t, "addresses"), addresses);
        let password = self.value((t, "password"), s.password.as_ref(), None, |p| {
            nonempty(p).map(Some)
        });
        Some(RedisTarget::Sentinel {
            master: master?,
            addresses: addresses?,
            password,
        })
    }

    /// A non-empty list of `HOST:PORT` or URLs, as URLs.
    fn nodes(&self, (table, key): (&str, &str), list: &List) -> Option<Vec<String>> {
        if list.get_ref().is_empty() {
            let m = "expected at least one \"HOST:PORT\"".to_string();
            self.report(table, key, list, m);
            return None;
        }
        let urls: Result<Vec<String>, String> =
            list.get_ref().iter().map(|n| cfg::node_url(n)).collect();
        urls.map_err(|m| self.report(table, key, list, m)).ok()
    }

    /// With `backend = "sled"` (or none), a Redis setting is a mistake:
    /// the daemon would silently keep its state to itself.
    fn no_redis_settings(&self, s: &RawStore) {
        let spans = [
            ("url", s.url.as_ref().map(Spanned::span)),
            ("sentinel", s.sentinel.as_ref().map(Spanned::span)),
            ("cluster", s.cluster.as_ref().map(Spanned::span)),
            ("prefix", s.prefix.as_ref().map(Spanned::span)),
            (
                "connect_timeout",
                s.connect_timeout.as_ref().map(Spanned::span),
            ),
            ("timeout", s.timeout.as_ref().map(Spanned::span)),
            ("pool_size", s.pool_size.as_ref().map(Spanned::span)),
            (
                "audit_max_length",
                s.audit_max_length.as_ref().map(Spanned::span),
            ),
            ("claim_timeout", s.claim_timeout.as_ref().map(Spanned::span)),
            ("tls_ca_file", s.tls_ca_file.as_ref().map(Spanned::span)),
            ("tls_cert_file", s.tls_cert_file.as_ref().map(Spanned::span)),
            ("tls_key_file", s.tls_key_file.as_ref().map(Spanned::span)),
        ];
        for (key, span) in spans {
            if let Some(span) = span {
                let m = "a Redis setting, but backend is \"sled\": set backend = \"redis\" or remove it"
                    .to_string();
                self.errors
                    .borrow_mut()
                    .push(self.at(Some(T), Some(key), span, m));
            }
        }
    }
}

/// `claim_timeout`: a host renews its hold on its outbox attempts at every
/// look at the queue, at least once a second, so a shorter timeout would
/// hand a living host's attempts to another.
fn claim_timeout(d: std::time::Duration) -> Result<std::time::Duration, String> {
    if d < std::time::Duration::from_secs(2) {
        Err("expected at least 2s: a host renews its hold on its outbox items once a second".into())
    } else {
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, RedisTls, StoreBackend};

    /// A directory with a PEM file `ca.pem` (its content is not parsed
    /// here: the client reads it when it connects) and a text file.
    fn files(test: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("weir-tls-config-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        for name in ["ca.pem", "client.pem", "client.key"] {
            std::fs::write(dir.join(name), pem).expect("pem");
        }
        std::fs::write(dir.join("notes.txt"), "not a certificate\n").expect("txt");
        dir
    }

    fn parse(dir: &Path, store: &str) -> Result<Config, String> {
        let text = format!("rules = \"r\"\nstate_dir = \"s\"\n[store]\n{store}");
        Config::parse(&text, "weir.toml", dir, None).map_err(|e| e.to_string())
    }

    #[test]
    fn tls_files_are_read_relative_to_the_configuration() {
        let dir = files("read");
        let c = parse(
            &dir,
            "backend = \"redis\"\nurl = \"rediss://redis.example:6380\"\n\
             tls_ca_file = \"ca.pem\"\ntls_cert_file = \"client.pem\"\ntls_key_file = \"client.key\"\n",
        )
        .expect("TLS files");
        let StoreBackend::Redis(r) = c.store.backend else {
            panic!("redis")
        };
        assert_eq!(
            *r.tls,
            RedisTls {
                ca_file: Some(dir.join("ca.pem")),
                cert_file: Some(dir.join("client.pem")),
                key_file: Some(dir.join("client.key")),
            }
        );
        let c = parse(
            &dir,
            "backend = \"redis\"\ncluster = [\"rediss://a:7000\", \"rediss://b:7000\"]\ntls_ca_file = \"ca.pem\"\n",
        )
        .expect("a cluster over TLS");
        assert!(matches!(c.store.backend, StoreBackend::Redis(r) if r.tls.ca_file.is_some()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tls_mistakes_are_named() {
        let dir = files("mistakes");
        let err = |store: &str| parse(&dir, store).expect_err(store);
        let url = "backend = \"redis\"\nurl = \"rediss://a:6380\"\n";
        let missing = err(&format!("{url}tls_ca_file = \"nope.pem\"\n"));
        assert!(
            missing.contains("[store] tls_ca_file: cannot read") && missing.contains("nope.pem"),
            "{missing}"
        );
        let text = err(&format!("{url}tls_ca_file = \"notes.txt\"\n"));
        assert!(text.contains("is not a PEM file"), "{text}");
        let half = err(&format!("{url}tls_cert_file = \"client.pem\"\n"));
        assert!(
            half.contains("[store] tls_cert_file: give tls_key_file too"),
            "{half}"
        );
        let half = err(&format!("{url}tls_key_file = \"client.key\"\n"));
        assert!(
            half.contains("[store] tls_key_file: give tls_cert_file too"),
            "{half}"
        );
        let plain = err("backend = \"redis\"\nurl = \"redis://a\"\ntls_ca_file = \"ca.pem\"\n");
        assert!(
            plain.contains("[store] tls_ca_file: tls_ca_file is for rediss:// (TLS) connections"),
            "{plain}"
        );
        let sentinel = err(
            "backend = \"redis\"\ntls_ca_file = \"ca.pem\"\n[store.sentinel]\nmaster = \"m\"\naddresses = [\"a:26379\"]\n",
        );
        assert!(
            sentinel.contains("not supported with [store.sentinel]"),
            "{sentinel}"
        );
        let sled = err("tls_ca_file = \"ca.pem\"\n");
        assert!(
            sled.contains("[store] tls_ca_file: a Redis setting, but backend is \"sled\""),
            "{sled}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
