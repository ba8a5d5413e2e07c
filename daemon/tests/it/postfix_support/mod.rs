//! A private, loopback-only Postfix instance for the `weir serve` tests,
//! with a tiny LMTP sink that keeps what Postfix delivers and a tiny SMTP
//! client that records which command got which reply.
//!
//! The facts behind the configuration (and the pitfalls it avoids) are in
//! the harness report the project verified: Postfix commands print their
//! errors only to a tty, so they run under `script(1)` (pitfall 1);
//! `maillog_file` must be under `maillog_file_prefixes` (2); `-c` takes an
//! absolute path (3); the master needs root and root-owned directories (11).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Checks that the programs a test needs exist and, with `needs_root`,
/// that it runs as root (the Postfix master needs it). `None` when all is
/// there. Otherwise the test must not run: this panics when
/// `WEIR_REQUIRE_MAIL_TOOLS=1` (CI installs the tools, so a missing one is
/// a broken CI, not a reason to pass), else prints `skipped: ...` and the
/// caller returns.
pub fn missing_mail_tools(tools: &[&str], needs_root: bool) -> Option<String> {
    let mut missing: Vec<String> = tools
        .iter()
        .filter(|t| which(t).is_none())
        .map(|t| format!("{t} not installed"))
        .collect();
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if needs_root && uid != "0" {
        missing.push("not root (the Postfix master needs root)".into());
    }
    if missing.is_empty() {
        return None;
    }
    let why = missing.join(", ");
    if std::env::var("WEIR_REQUIRE_MAIL_TOOLS").as_deref() == Ok("1") {
        panic!("WEIR_REQUIRE_MAIL_TOOLS=1 but: {why}");
    }
    eprintln!("skipped: {why}");
    Some(why)
}

/// The full path of a program on `PATH` (or in the sbin directories, which
/// a non-login root shell may lack).
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// A program by full path when [`which`] finds it, so that a `PATH`
/// without the sbin directories still works.
pub fn tool(program: &str) -> PathBuf {
    which(program).unwrap_or_else(|| PathBuf::from(program))
}

/// A Postfix instance in `dir` (config in `dir/etc`, queue in `dir/spool`,
/// log in `dir/log/postfix.log`), stopped when dropped.
pub struct Postfix {
    /// The instance's directory.
    pub dir: PathBuf,
    /// The loopback SMTP port.
    pub smtp: u16,
}

impl Postfix {
    /// Writes `main.cf` and `master.cf` into `dir` and starts the instance:
    /// SMTP on 127.0.0.1:`smtp`, every message through the milter at
    /// 127.0.0.1:`milter`, every recipient in `example.test` delivered by
    /// LMTP to 127.0.0.1:`lmtp`.
    pub fn start(dir: &Path, smtp: u16, milter: u16, lmtp: u16) -> Postfix {
        // Pitfall 3: `postfix -c` wants an absolute path.
        let dir = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            std::env::current_dir().expect("cwd").join(dir)
        };
        for sub in ["etc", "spool", "log", "data"] {
            std::fs::create_dir_all(dir.join(sub)).expect("postfix dirs");
        }
        // Postfix refuses a data directory it does not own.
        run_ok(
            Command::new("chown").args(["postfix:postfix", &dir.join("data").to_string_lossy()]),
        );
        let d = dir.display();
        let main_cf = format!(
            "# written by daemon/tests/postfix_support: one test's private instance
compatibility_level = 3.6
queue_directory = {d}/spool
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {d}/log/postfix.log
maillog_file_prefixes = /var, /dev/stdout, {d}/log
myhostname = mx.weir.test
mydomain = weir.test
myorigin = $myhostname
mydestination = example.test, localhost
mynetworks = 127.0.0.0/8
inet_interfaces = loopback-only
inet_protocols = ipv4
append_dot_mydomain = no
biff = no
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
smtpd_peername_lookup = no
local_transport = lmtp:inet:127.0.0.1:{lmtp}
local_recipient_maps =
alias_maps =
alias_database =
smtpd_milters = inet:127.0.0.1:{milter}
non_smtpd_milters = $smtpd_milters
milter_protocol = 6
# Weir unreachable must show as a failure, never as unfiltered mail.
milter_default_action = tempfail
milter_connect_timeout = 5s
milter_command_timeout = 10s
milter_content_timeout = 30s
in_flow_delay = 0
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 10s
delay_warning_time = 0
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
"
        );
        std::fs::write(dir.join("etc/main.cf"), main_cf).expect("main.cf");
        let master_cf = format!(
            "# service type private unpriv chroot wakeup maxproc command
127.0.0.1:{smtp} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
lmtp      unix  - - n -  - lmtp
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"
        );
        std::fs::write(dir.join("etc/master.cf"), master_cf).expect("master.cf");
        let postfix = Postfix { dir, smtp };
        // `check` creates the queue directories with the right owners.
        let check = postfix.postfix_cmd("check");
        assert!(
            check.status.success(),
            "postfix check failed: {}",
            show(&check)
        );
        let start = postfix.postfix_cmd("start");
        assert!(
            start.status.success(),
            "postfix start failed: {}",
            show(&start)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", smtp)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Postfix smtpd did not listen on {smtp}:\n{}",
                postfix.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        postfix
    }

    /// The configuration directory, for `-c`.
    pub fn etc(&self) -> PathBuf {
        self.dir.join("etc")
    }

    /// Runs `postfix -c ETC ARG` under `script(1)`, so that its errors,
    /// which Postfix prints only to a tty, reach the output (pitfall 1).
    fn postfix_cmd(&self, arg: &str) -> Output {
        let line = format!(
            "{} -c {} {arg}",
            tool("postfix").display(),
            self.etc().display()
        );
        Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .expect("script(1) runs")
    }

    /// Postfix's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/postfix.log")).unwrap_or_default()
    }

    /// Waits until the log has a line containing every one of `needles`;
    /// that line.
    pub fn wait_log(&self, needles: &[&str], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no Postfix log line with {needles:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The queue as `postqueue -j` lists it: one JSON object per message
    /// (`queue_name`, `queue_id`, `sender`, `recipients`, ...).
    pub fn queue(&self) -> Vec<serde_json::Value> {
        let out = run_ok(
            Command::new(tool("postqueue"))
                .arg("-c")
                .arg(self.etc())
                .arg("-j"),
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("postqueue -j prints JSON lines"))
            .collect()
    }

    /// `postqueue -p`, as an administrator reads it (held mail is marked `!`).
    pub fn queue_text(&self) -> String {
        let out = run_ok(
            Command::new(tool("postqueue"))
                .arg("-c")
                .arg(self.etc())
                .arg("-p"),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The queue ids in the hold queue.
    pub fn held(&self) -> Vec<String> {
        self.queue()
            .iter()
            .filter(|m| m["queue_name"] == "hold")
            .filter_map(|m| m["queue_id"].as_str().map(str::to_string))
            .collect()
    }

    /// The header block of a queued message (`postcat -h -q ID`).
    pub fn queued_headers(&self, queue_id: &str) -> String {
        let out = run_ok(
            Command::new(tool("postcat"))
                .arg("-c")
                .arg(self.etc())
                .args(["-h", "-q", queue_id]),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Asks the queue manager to deliver the deferred mail now
    /// (`postqueue -f`) instead of at the next queue run.
    pub fn flush(&self) {
        run_ok(
            Command::new(tool("postqueue"))
                .arg("-c")
                .arg(self.etc())
                .arg("-f"),
        );
    }

    fn master_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("spool/pid/master.pid"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let pid = self.master_pid();
        let _ = self.postfix_cmd("stop");
        let alive = |pid: u32| Path::new(&format!("/proc/{pid}")).exists();
        if let Some(pid) = pid {
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if alive(pid) {
                let _ = self.postfix_cmd("abort");
            }
        }
        // Keep the spool and log of a failed test for a post-mortem.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs a command that must succeed; its output.
pub fn run_ok(command: &mut Command) -> Output {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(out.status.success(), "{command:?} failed: {}", show(&out));
    out
}

/// A command's status and output, for failure messages.
pub fn show(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One message as the LMTP sink received it.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The RCPT TO addresses (without brackets).
    pub rcpts: Vec<String>,
    /// The message, dot-unstuffed, CRLF line ends.
    pub data: String,
}

impl Delivered {
    /// The header block (up to the first empty line).
    pub fn headers(&self) -> &str {
        self.data.split("\r\n\r\n").next().unwrap_or("")
    }

    /// Every value of header `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Vec<String> {
        let mut fields: Vec<String> = Vec::new();
        for line in self.headers().split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = fields.last_mut() {
                    last.push_str(line);
                }
            } else {
                fields.push(line.to_string());
            }
        }
        fields
            .iter()
            .filter_map(|f| f.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }
}

#[derive(Default)]
struct Inbox {
    messages: Mutex<Vec<Delivered>>,
    arrived: Condvar,
}

/// An LMTP server on a free loopback port that accepts every recipient and
/// keeps every message; it stops accepting when dropped.
pub struct LmtpSink {
    /// The port.
    pub port: u16,
    inbox: Arc<Inbox>,
    stop: Arc<AtomicBool>,
}

impl LmtpSink {
    /// Starts the sink.
    pub fn start() -> LmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the LMTP sink");
        let port = listener.local_addr().expect("addr").port();
        let inbox = Arc::new(Inbox::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (inbox2, stop2) = (inbox.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let inbox = inbox2.clone();
                std::thread::spawn(move || {
                    let _ = lmtp_session(stream, &inbox);
                });
            }
        });
        LmtpSink { port, inbox, stop }
    }

    /// Everything delivered so far.
    pub fn messages(&self) -> Vec<Delivered> {
        self.inbox.messages.lock().expect("inbox").clone()
    }

    /// Waits for a delivered message that `pred` accepts; panics with what
    /// did arrive (and `context`) when none does within `within`.
    pub fn wait_for(
        &self,
        within: Duration,
        context: &dyn Fn() -> String,
        pred: impl Fn(&Delivered) -> bool,
    ) -> Delivered {
        let deadline = Instant::now() + within;
        let mut messages = self.inbox.messages.lock().expect("inbox");
        loop {
            if let Some(m) = messages.iter().find(|m| pred(m)) {
                return m.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                let got: Vec<Delivered> = messages.clone();
                drop(messages);
                panic!("no such message delivered; got {got:#?}\n{}", context());
            }
            messages = self
                .inbox
                .arrived
                .wait_timeout(messages, deadline - now)
                .expect("inbox")
                .0;
        }
    }
}

impl Drop for LmtpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Serves one LMTP connection (RFC 2033): every recipient is accepted and
/// gets its own `250` after DATA.
fn lmtp_session(stream: TcpStream, inbox: &Inbox) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    out.write_all(b"220 sink.weir.test LMTP ready\r\n")?;
    let mut rcpts = Vec::<String>::new();
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        let reply: Vec<u8> = if upper.starts_with("LHLO") {
            b"250-sink.weir.test\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n".to_vec()
        } else if upper.starts_with("MAIL FROM:") {
            rcpts.clear();
            b"250 2.1.0 Ok\r\n".to_vec()
        } else if upper.starts_with("RCPT TO:") {
            rcpts.push(address_arg(&line[8..]));
            b"250 2.1.5 Ok\r\n".to_vec()
        } else if upper.starts_with("DATA") {
            out.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
            let mut data = String::new();
            loop {
                line.clear();
                if input.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                let l = line.strip_prefix('.').unwrap_or(&line);
                data.push_str(l.trim_end_matches(['\r', '\n']));
                data.push_str("\r\n");
            }
            let replies = "250 2.0.0 Ok delivered\r\n".repeat(rcpts.len().max(1));
            let mut messages = inbox.messages.lock().expect("inbox");
            messages.push(Delivered {
                rcpts: std::mem::take(&mut rcpts),
                data,
            });
            inbox.arrived.notify_all();
            drop(messages);
            replies.into_bytes()
        } else if upper.starts_with("QUIT") {
            out.write_all(b"221 2.0.0 Bye\r\n")?;
            return Ok(());
        } else if upper.starts_with("RSET") || upper.starts_with("NOOP") {
            b"250 2.0.0 Ok\r\n".to_vec()
        } else {
            b"502 5.5.2 Not implemented\r\n".to_vec()
        };
        out.write_all(&reply)?;
    }
}

/// The address of a MAIL FROM or RCPT TO argument, without brackets and
/// ESMTP parameters.
fn address_arg(arg: &str) -> String {
    let arg = arg.trim();
    let arg = arg.split(' ').next().unwrap_or("");
    arg.trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// An SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    /// The code (`250`).
    pub code: u16,
    /// The text of every line after the code, joined with `\n`.
    pub text: String,
}

impl std::fmt::Display for SmtpReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

/// An SMTP client session that keeps, for each command, the reply it got.
pub struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// `(command, reply)` in order; the greeting is `("", reply)`.
    pub transcript: Vec<(String, SmtpReply)>,
}

impl Smtp {
    /// Connects, reads the greeting and says EHLO.
    pub fn connect(port: u16) -> Smtp {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to smtpd");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let writer = stream.try_clone().expect("clone");
        let mut smtp = Smtp {
            reader: BufReader::new(stream),
            writer,
            transcript: Vec::new(),
        };
        let greeting = smtp.read_reply();
        smtp.transcript.push((String::new(), greeting.clone()));
        assert_eq!(greeting.code, 220, "greeting {greeting}");
        let ehlo = smtp.command("EHLO client.weir.test");
        assert_eq!(ehlo.code, 250, "EHLO: {ehlo}");
        smtp
    }

    fn read_reply(&mut self) -> SmtpReply {
        let mut lines = Vec::new();
        let mut code = 0;
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("an SMTP reply");
            assert!(
                n > 0,
                "smtpd closed the connection; so far {:?}",
                self.transcript
            );
            let line = line.trim_end();
            code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(code);
            lines.push(line.get(4..).unwrap_or("").to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        SmtpReply {
            code,
            text: lines.join("\n"),
        }
    }

    /// Sends one command line; its reply.
    pub fn command(&mut self, line: &str) -> SmtpReply {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("send command");
        let reply = self.read_reply();
        self.transcript.push((line.to_string(), reply.clone()));
        reply
    }

    /// Sends the message content after a `354` (dot-stuffed, ending with
    /// the lone dot); the reply to the end of data.
    pub fn content(&mut self, message: &str) -> SmtpReply {
        let mut wire = String::new();
        // The final line break ends the last line; it starts no new one.
        let message = message.strip_suffix('\n').unwrap_or(message);
        for line in message.split('\n') {
            let line = line.trim_end_matches('\r');
            if line.starts_with('.') {
                wire.push('.');
            }
            wire.push_str(line);
            wire.push_str("\r\n");
        }
        wire.push_str(".\r\n");
        self.writer.write_all(wire.as_bytes()).expect("send data");
        let reply = self.read_reply();
        self.transcript.push((".".into(), reply.clone()));
        reply
    }

    /// Says QUIT (the reply is not needed).
    pub fn quit(mut self) {
        let _ = self.writer.write_all(b"QUIT\r\n");
        let mut rest = Vec::new();
        let _ = self.reader.read_to_end(&mut rest);
    }
}

/// What one SMTP transaction did: the transcript and, when Postfix took the
/// message, its queue id.
#[derive(Debug)]
pub struct Sent {
    /// `(command, reply)` from MAIL FROM on.
    pub transcript: Vec<(String, SmtpReply)>,
    /// The queue id from `250 2.0.0 Ok: queued as ID`.
    pub queue_id: Option<String>,
}

impl Sent {
    /// The reply to the first command starting with `prefix`.
    pub fn reply(&self, prefix: &str) -> Option<&SmtpReply> {
        self.transcript
            .iter()
            .find(|(c, _)| c.starts_with(prefix))
            .map(|(_, r)| r)
    }
}

/// Sends one message over a new SMTP session (see [`Smtp::send`]).
pub fn send(port: u16, from: &str, to: &[&str], message: &str) -> Sent {
    let mut smtp = Smtp::connect(port);
    let sent = smtp.send(from, to, message);
    smtp.quit();
    sent
}

impl Smtp {
    /// Sends one message in this session, stopping at the first refusal
    /// (as a real client does, with RSET so that the session can go on):
    /// MAIL FROM, RCPT TO each, DATA, content.
    pub fn send(&mut self, from: &str, to: &[&str], message: &str) -> Sent {
        let start = self.transcript.len();
        let mut queue_id = None;
        'tx: {
            if self.command(&format!("MAIL FROM:<{from}>")).code != 250 {
                break 'tx;
            }
            let mut accepted = 0;
            for rcpt in to {
                if self.command(&format!("RCPT TO:<{rcpt}>")).code == 250 {
                    accepted += 1;
                }
            }
            if accepted == 0 || self.command("DATA").code != 354 {
                break 'tx;
            }
            let reply = self.content(message);
            queue_id = reply
                .text
                .split("queued as ")
                .nth(1)
                .map(|id| id.trim().to_string());
        }
        let transcript = self.transcript[start..].to_vec();
        if queue_id.is_none() {
            let rset = self.command("RSET");
            assert_eq!(rset.code, 250, "RSET: {rset}");
        }
        Sent {
            transcript,
            queue_id,
        }
    }
}
