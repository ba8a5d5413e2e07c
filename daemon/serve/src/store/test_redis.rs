//! Real Redis servers for the store's tests: Debian's `redis-server` on a
//! free loopback port, nothing persisted, killed on drop. Without
//! `redis-server` the tests that need it are skipped with a message,
//! unless `WEIR_REQUIRE_REDIS=1` (CI) makes that a failure.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `redis-server` can run here; panics when it cannot and
/// `WEIR_REQUIRE_REDIS=1`.
pub(crate) fn available() -> bool {
    tool_available("redis-server", "--version", "redis-server")
}

/// Whether `tool` runs (`tool ARG` succeeds); else says how to install it
/// (`package`) and skips, or panics when `WEIR_REQUIRE_REDIS=1`.
fn tool_available(tool: &str, arg: &str, package: &str) -> bool {
    let found = Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("WEIR_REQUIRE_REDIS").as_deref() != Ok("1"),
            "WEIR_REQUIRE_REDIS=1 but {tool} is not installed"
        );
        eprintln!("skipped: {tool} is not installed (apt-get install {package})");
    }
    found
}

/// A port free on loopback, and (for a Cluster node) its bus port + 10000.
fn free_port(with_bus: bool) -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if !with_bus {
            return port;
        }
        if port < 55000 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

/// One `redis-server`, killed on drop.
pub(crate) struct RedisServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// A standalone server.
    pub(crate) fn start() -> RedisServer {
        RedisServer::spawn(free_port(false), &[])
    }

    /// A standalone server also listening on a Unix socket, and its
    /// `unix://` URL.
    pub(crate) fn start_with_socket() -> (RedisServer, String) {
        let port = free_port(false);
        let socket = Self::dir_for(port).join("redis.sock");
        let socket = socket.to_str().expect("a UTF-8 path").to_string();
        let server = RedisServer::spawn(port, &["--unixsocket", &socket]);
        (server, format!("unix://{socket}"))
    }

    fn dir_for(port: u16) -> PathBuf {
        std::env::temp_dir().join(format!("weir-redis-{}-{port}", std::process::id()))
    }

    fn spawn(port: u16, extra: &[&str]) -> RedisServer {
        let dir = Self::dir_for(port);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("redis dir");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let server = RedisServer { child, port, dir };
        server.wait_until(|| server.cli(&["ping"]).is_some_and(|o| o.contains("PONG")));
        server
    }

    /// `redis://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis-cli -p PORT ARGS…`'s output, if it ran.
    pub(crate) fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn wait_until(&self, ready: impl Fn() -> bool) {
        let start = Instant::now();
        while !ready() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "redis on {} did not become ready",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl RedisServer {
    /// The server's own directory, removed when it stops: room for a
    /// test's other files.
    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A three-master Redis Cluster on loopback, every slot assigned.
pub(crate) struct RedisCluster {
    /// The masters.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three masters and joins them (`redis-cli --cluster create`).
    pub(crate) fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                let port = free_port(true);
                RedisServer::spawn(
                    port,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ],
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            // Without it redis-cli waits for a typed "yes".
            .arg("--cluster-yes")
            .output()
            .expect("redis-cli runs");
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = RedisCluster { nodes };
        for node in &cluster.nodes {
            node.wait_until(|| {
                node.cli(&["cluster", "info"])
                    .is_some_and(|o| o.contains("cluster_state:ok"))
            });
        }
        cluster
    }

    /// The seed nodes, as `[store] cluster` takes them.
    pub(crate) fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

/// Certificates made at test time with the `openssl` CLI: a private CA,
/// a server certificate for 127.0.0.1 and a client certificate, each a
/// PEM file in `dir`, removed on drop.
pub(crate) struct TestCerts {
    /// Where `ca.pem`, `server.pem`/`server.key` and
    /// `client.pem`/`client.key` are.
    pub dir: PathBuf,
}

impl TestCerts {
    /// Makes them; `None` (skipped, with a message) without `openssl`,
    /// unless `WEIR_REQUIRE_REDIS=1`.
    pub(crate) fn make() -> Option<TestCerts> {
        if !tool_available("openssl", "version", "openssl") {
            return None;
        }
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("weir-tls-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("certificate dir");
        let certs = TestCerts { dir };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        certs.openssl(
            &["req", "-x509", "-nodes", "-days", "2"],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=Weir test CA",
            ],
        );
        certs.signed(
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "serverAuth",
        );
        certs.signed("client", "subjectAltName=DNS:weir-client", "clientAuth");
        Some(certs)
    }

    /// A key and a certificate signed by the CA, with `san` and `usage`.
    fn signed(&self, name: &str, san: &str, usage: &str) {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        let eku = format!("extendedKeyUsage={usage}");
        self.openssl(
            &["req", "-new", "-nodes"],
            &ec,
            &[
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                san,
                "-addext",
                &eku,
                "-addext",
                "basicConstraints=critical,CA:FALSE",
            ],
        );
        self.openssl(
            &["x509", "-req", "-days", "2", "-in", &csr],
            &[],
            &[
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-copy_extensions",
                "copy",
                "-out",
                &pem,
            ],
        );
    }

    fn openssl(&self, a: &[&str], b: &[&str], c: &[&str]) {
        let out = Command::new("openssl")
            .args(a)
            .args(b)
            .args(c)
            .current_dir(&self.dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {a:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A file of `dir`.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl RedisServer {
    /// A standalone server that speaks TLS on a port of its own (and plain
    /// text on `port`, for `redis-cli`), asking clients for a certificate
    /// of `certs`' CA; its `rediss://` URL.
    pub(crate) fn start_tls(certs: &TestCerts) -> (RedisServer, String) {
        let tls_port = free_port(false);
        let file = |n: &str| certs.file(n).to_str().expect("a UTF-8 path").to_string();
        let server = RedisServer::spawn(
            free_port(false),
            &[
                "--tls-port",
                &tls_port.to_string(),
                "--tls-cert-file",
                &file("server.pem"),
                "--tls-key-file",
                &file("server.key"),
                "--tls-ca-cert-file",
                &file("ca.pem"),
                "--tls-auth-clients",
                "yes",
            ],
        );
        (server, format!("rediss://127.0.0.1:{tls_port}"))
    }
}
