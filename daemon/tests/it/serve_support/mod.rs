//! Helpers for the `weir serve` tests: a daemon in a temporary directory
//! on free loopback ports, and a tiny HTTP/1.1 client over `std::net`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    // Below the kernel's ephemeral range (32768 and up by default): a port
    // the kernel hands out for port 0 may be taken again by any outgoing
    // connection of this process (a flood test opens thousands) before the
    // daemon binds it; these are only ever taken by an explicit bind.
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 500) as u16 * 20;
    loop {
        let offset = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 20_000 + (base - 20_000 + offset) % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub use crate::common::{TempDir, temp_dir};

/// A running `weir serve`, killed when dropped.
pub struct Daemon {
    /// The process.
    pub child: Child,
    /// Its working directory (config, rules, state).
    pub dir: PathBuf,
    /// The HTTP port.
    pub http: u16,
    /// The milter port.
    pub milter: u16,
    /// The API token.
    pub token: String,
    /// Temporary directories removed once the process is gone ([`Daemon::owning`]).
    pub owned: Vec<TempDir>,
}

/// Writes an API token file readable by its owner only (the daemon
/// refuses any other).
pub fn write_token(path: &Path, token: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("{token}\n")).expect("token");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// Writes `weir.toml` in `dir` with fresh ports; `extra` is appended (it
/// may hold other tables; `[milter]` and `[http]` are written here).
pub fn write_config(dir: &Path, milter_extra: &str, extra: &str) -> (u16, u16) {
    let http = free_port();
    let milter = free_port();
    write_token(&dir.join("api-token"), "secret-token");
    let text = format!(
        "rules = \"rules.flow\"\nstate_dir = \"state\"\n\n[milter]\nlisten = \"inet:127.0.0.1:{milter}\"\n{milter_extra}\n\n[http]\nlisten = \"127.0.0.1:{http}\"\ntoken_file = \"api-token\"\n\n{extra}\n"
    );
    std::fs::write(dir.join("weir.toml"), text).expect("config");
    (http, milter)
}

impl Daemon {
    /// Starts `weir serve --config weir.toml` in `dir` (already holding the
    /// config of [`write_config`] and the rules) and waits until it answers.
    pub fn start(dir: &Path, http: u16, milter: u16) -> Daemon {
        let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
        command.args(["serve", "--config", "weir.toml"]);
        Daemon::start_command(dir, http, milter, command)
    }

    /// `kill -9` (`Child::kill` is SIGKILL), then reaps the process and
    /// checks that the signal is what ended it.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("kill -9");
        let status = self.child.wait().expect("wait");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "the daemon died of SIGKILL"
        );
    }

    /// This daemon, which now owns `dir`: a helper that made the daemon's
    /// temporary directory hands it over, and it is removed after the
    /// process is killed.
    pub fn owning(mut self, dir: TempDir) -> Daemon {
        self.owned.push(dir);
        self
    }

    /// [`Daemon::start`] with at most `nofile` open files (`prlimit`, which
    /// execs the daemon in its own process).
    pub fn start_with_nofile(dir: &Path, http: u16, milter: u16, nofile: u32) -> Daemon {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={nofile}:{nofile}"))
            .arg(env!("CARGO_BIN_EXE_weir"))
            .args(["serve", "--config", "weir.toml"]);
        Daemon::start_command(dir, http, milter, command)
    }

    fn start_command(dir: &Path, http: u16, milter: u16, mut command: Command) -> Daemon {
        let child = command
            .current_dir(dir)
            .env("WEIR_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("daemon.log")).expect("log file"))
            .spawn()
            .expect("weir serve starts");
        let mut daemon = Daemon {
            child,
            dir: dir.to_path_buf(),
            http,
            milter,
            token: "secret-token".into(),
            owned: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = daemon.try_request("GET", "/healthz", false, b"")
                && r.status == 200
            {
                break;
            }
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("weir serve exited with {status}:\n{}", daemon.log());
            }
            assert!(
                Instant::now() < deadline,
                "weir serve did not start:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the daemon to exit; its status code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A request with the token.
    pub fn get(&self, path: &str) -> HttpResponse {
        self.request("GET", path, true, b"")
    }

    /// A request; `auth` sends the bearer token.
    pub fn request(&self, method: &str, path: &str, auth: bool, body: &[u8]) -> HttpResponse {
        self.try_request(method, path, auth, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log()))
    }

    /// A request that may fail to connect.
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        auth: bool,
        body: &[u8],
    ) -> std::io::Result<HttpResponse> {
        let token = auth.then_some(self.token.as_str());
        http(self.http, method, path, token, body)
    }

    /// The running ruleset version, from `/healthz`.
    pub fn version(&self) -> u64 {
        self.request("GET", "/healthz", false, b"").json()["ruleset"]["version"]
            .as_u64()
            .expect("a version")
    }

    /// Polls `/healthz` until the version is `want`.
    pub fn wait_version(&self, want: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.version() != want {
            assert!(
                Instant::now() < deadline,
                "version stayed {} (wanted {want}):\n{}",
                self.version(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl HttpResponse {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close`.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| ("Authorization", b))
        .into_iter()
        .collect();
    http_with(port, method, path, &headers, body)
}

/// One HTTP/1.1 request with extra headers and `Connection: close`.
pub fn http_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        text = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// An open `GET /v1/events` stream.
pub struct Events {
    reader: BufReader<TcpStream>,
}

impl Events {
    /// Opens the stream and reads past the response head.
    pub fn open(port: u16, token: &str) -> Events {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        write!(
            stream,
            "GET /v1/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        .expect("request");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("status line");
        assert!(line.contains(" 200 "), "{line}");
        loop {
            line.clear();
            reader.read_line(&mut line).expect("header");
            if line.trim().is_empty() {
                break;
            }
        }
        Events { reader }
    }

    /// Reads lines until a `data:` line of an `event: decision`; its JSON.
    pub fn next_decision(&mut self) -> serde_json::Value {
        let mut in_decision = false;
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.reader.read_line(&mut line).expect("an event in time");
            assert!(n > 0, "the event stream ended");
            let l = line.trim();
            if l == "event: decision" {
                in_decision = true;
            } else if let Some(data) = l.strip_prefix("data:")
                && in_decision
            {
                return serde_json::from_str(data.trim()).expect("JSON data");
            }
        }
    }
}

/// An `[lmtp]` table listening on `listen` and delivering under
/// `dir/mail/{domain}/{local}`.
pub fn lmtp_table(dir: &Path, listen: &str) -> String {
    format!(
        "[lmtp]\nlisten = \"{listen}\"\nmaildir = \"{}/mail/{{domain}}/{{local}}\"\n",
        dir.display()
    )
}

/// The files of one directory (a Maildir's `new` or `cur`), sorted; none
/// when it does not exist.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// The values of every header field called `name` of a stored message
/// (LF line ends), trimmed.
pub fn header_values(message: &str, name: &str) -> Vec<String> {
    let head = message.split("\n\n").next().unwrap_or("");
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

/// One plain message from `from` through the milter on `port`, with
/// Message-ID `<ID@example.test>` and queue id `QID`; the reply as the
/// client saw it, as `{reply:?}` text.
pub fn milter_send(port: u16, from: &str, subject: &str, id: &str) -> String {
    use weir::milter_client::Mail;
    let mail = Mail {
        helo: "client.example.test".into(),
        from: from.into(),
        to: vec!["u@example.test".into()],
        headers: vec![
            ("From".into(), format!("<{from}>")),
            ("To".into(), "u@example.test".into()),
            ("Subject".into(), subject.into()),
            ("Message-ID".into(), format!("<{id}@example.test>")),
        ],
        body: b"Hello.\r\n".to_vec(),
        queue_id: format!("Q{id}"),
        ..Mail::default()
    };
    let reply = milter_reply(port, &mail).expect("the milter answers");
    format!("{reply:?}")
}

/// Sends one message through the milter on 127.0.0.1:`port`, as Postfix
/// would, on a runtime of its own: the final reply, or the I/O error (the
/// daemon gone or going).
pub fn milter_reply(
    port: u16,
    mail: &weir::milter_client::Mail,
) -> std::io::Result<weir::milter_client::Reply> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut client = weir::milter_client::Client::connect(addr).await?;
        client.hello(mail).await?;
        Ok(client.message(mail).await?.reply)
    })
}

/// A raw LMTP client for exact protocol checks; it reads the greeting.
pub struct LmtpClient {
    reader: std::io::BufReader<std::net::TcpStream>,
    writer: std::net::TcpStream,
}

impl LmtpClient {
    /// Connects to `127.0.0.1:port` and checks the `220` greeting.
    pub fn connect(port: u16) -> LmtpClient {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let writer = stream.try_clone().expect("clone");
        let mut client = LmtpClient {
            reader: std::io::BufReader::new(stream),
            writer,
        };
        let greeting = client.reply();
        assert!(greeting.starts_with("220 "), "{greeting}");
        client
    }

    /// Writes bytes as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.writer.write_all(bytes).expect("write");
    }

    /// One (possibly multi-line) reply, lines joined with `\n`.
    pub fn reply(&mut self) -> String {
        use std::io::BufRead;
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("a reply in time");
            assert!(n > 0, "connection closed; got {lines:?}");
            let line = line.trim_end().to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    /// Sends one command line; its reply.
    pub fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// The peer's side of the connection, for reading what is left.
    pub fn reader(&mut self) -> &mut std::io::BufReader<std::net::TcpStream> {
        &mut self.reader
    }
}

/// One LMTP transaction: the reply after DATA of each recipient, in order.
/// `message` may end its lines with LF or CRLF; it is sent dot-stuffed.
pub fn lmtp_deliver(port: u16, from: &str, to: &[&str], message: &str) -> Vec<String> {
    let mut c = LmtpClient::connect(port);
    assert!(c.command("LHLO test").starts_with("250"));
    assert!(c.command(&format!("MAIL FROM:<{from}>")).starts_with("250"));
    for rcpt in to {
        let r = c.command(&format!("RCPT TO:<{rcpt}>"));
        assert!(r.starts_with("250"), "{rcpt}: {r}");
    }
    assert!(c.command("DATA").starts_with("354"));
    let text = message.replace("\r\n", "\n");
    let mut data = String::new();
    for line in text.strip_suffix('\n').unwrap_or(&text).split('\n') {
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
        data.push_str("\r\n");
    }
    data.push_str(".\r\n");
    c.send(data.as_bytes());
    let out = to.iter().map(|_| c.reply()).collect();
    let _ = c.command("QUIT");
    out
}
