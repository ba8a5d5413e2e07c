//! A real `redis-server` for the several-hosts tests: Debian's package on a
//! free loopback port, nothing persisted, killed on drop; it can be
//! stopped and started again on the same port (an outage). Without
//! `redis-server` the tests are skipped with a message, unless
//! `WEIR_REQUIRE_REDIS=1` (CI).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::serve_support::{TempDir, free_port, temp_dir};

/// Whether `redis-server` is installed; panics when it is not and
/// `WEIR_REQUIRE_REDIS=1`.
pub fn available() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("WEIR_REQUIRE_REDIS").as_deref() != Ok("1"),
            "WEIR_REQUIRE_REDIS=1 but redis-server is not installed"
        );
        eprintln!("skipped: redis-server is not installed (apt-get install redis-server)");
    }
    found
}

/// One `redis-server`, killed on drop.
pub struct Redis {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    extra: Vec<String>,
    /// Removed after the server stops (fields drop after `drop`).
    dir: TempDir,
}

impl Redis {
    /// A standalone server on a free port.
    pub fn start() -> Redis {
        Redis::start_with(free_port(), &[])
    }

    /// A server on `port` with extra arguments (`--replicaof …`).
    pub fn start_with(port: u16, extra: &[&str]) -> Redis {
        let mut redis = Redis {
            child: None,
            port,
            dir: temp_dir(&format!("redis-{port}")),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        redis.resume();
        redis
    }

    /// `[store]` for a daemon named `host` using this server.
    pub fn store_table(&self, host: &str) -> String {
        format!(
            "[store]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:{}\"\nhost = \"{host}\"\n\
             prefix = \"it:\"\ntimeout = \"1s\"\nconnect_timeout = \"1s\"\n",
            self.port
        )
    }

    /// Kills the server (SIGKILL: an outage, not a shutdown).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (with an empty data set: nothing
    /// is persisted).
    pub fn resume(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.cli(&["ping"]).contains("PONG") {
            assert!(
                Instant::now() < deadline,
                "redis on {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis-cli -p PORT ARGS…`'s standard output (with the server's
    /// `--requirepass`, if it has one).
    pub fn cli(&self, args: &[&str]) -> String {
        let password = self
            .extra
            .iter()
            .position(|a| a == "--requirepass")
            .and_then(|i| self.extra.get(i + 1));
        let auth: Vec<&str> = match password {
            Some(p) => vec!["--no-auth-warning", "-a", p],
            None => Vec::new(),
        };
        Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(auth)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Sentinel watching master `weir`, killed on drop.
pub struct Sentinel {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its directory (config and state), removed after it stops.
    _dir: TempDir,
}

impl Sentinel {
    /// A sentinel for the master on `master_port` (quorum 2, down after
    /// one second), which logs in with `password`.
    pub fn start(master_port: u16, password: &str) -> Sentinel {
        let port = free_port();
        let dir = temp_dir(&format!("sentinel-{port}"));
        // A sentinel rewrites its configuration file: each gets its own.
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor weir 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds weir 1000\nsentinel failover-timeout weir 5000\n\
                 sentinel auth-pass weir {password}\n",
                dir.display()
            ),
        )
        .expect("sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel starts");
        Sentinel {
            child,
            port,
            _dir: dir,
        }
    }

    /// The master's port as this sentinel sees it.
    pub fn master_port(&self) -> Option<u16> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(["sentinel", "get-master-addr-by-name", "weir"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
