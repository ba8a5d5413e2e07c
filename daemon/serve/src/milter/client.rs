//! A small milter *client* (the MTA side of the protocol), for the tests
//! and the load tool: it speaks the wire format directly (a 4-byte
//! big-endian length, a command byte, the data) so that no MTA is needed.
//! Packets that want no reply (macros, and the stages whose reply the
//! filter negotiated away) are written together with the next one, in one
//! write before each reply is awaited: the bytes on the wire are an MTA's,
//! in fewer system calls (Postfix writes each packet on its own and its
//! Nagle algorithm joins them while the one before is unacknowledged).
//!
//! Public as `weir::milter_client`: used by `milter.rs` (unit tests), the
//! daemon's integration tests and `weir-benches` (the `milter-load` tool and
//! the milter benchmark). It depends on nothing but tokio.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// How long [`Client::read`] waits for one packet.
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Protocol options (SMFIP_*) this client understands.
const NO_CONNECT: u32 = 0x1;
const NO_HELO: u32 = 0x2;
const NO_MAIL: u32 = 0x4;
const NO_RCPT: u32 = 0x8;
const NO_BODY: u32 = 0x10;
const NO_HDRS: u32 = 0x20;
const NO_EOH: u32 = 0x40;
const NO_DATA: u32 = 0x200;
const SKIP: u32 = 0x400;
/// "No reply" options: the filter sends nothing back for that stage
/// (rspamd's proxy asks for some of them).
const NR_HDR: u32 = 0x80;
const NR_CONN: u32 = 0x1000;
const NR_HELO: u32 = 0x2000;
const NR_MAIL: u32 = 0x4000;
const NR_RCPT: u32 = 0x8000;
const NR_DATA: u32 = 0x1_0000;
const NR_EOH: u32 = 0x4_0000;
const NR_BODY: u32 = 0x8_0000;

/// Where a milter listens: `HOST:PORT` (also written `inet:HOST:PORT`, as
/// in `[milter] listen`) or `unix:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket.
    Unix(PathBuf),
}

impl std::str::FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Endpoint, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let addr = s.strip_prefix("inet:").unwrap_or(s);
        addr.parse()
            .map(Endpoint::Tcp)
            .map_err(|_| format!("{s:?} is neither HOST:PORT nor unix:PATH (e.g. 127.0.0.1:8890)"))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "{addr}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Endpoint {
        Endpoint::Tcp(addr)
    }
}

/// A TCP or Unix stream.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// A reply from the filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `c`.
    Continue,
    /// `a`.
    Accept,
    /// `r`.
    Reject,
    /// `t`.
    Tempfail,
    /// `d`.
    Discard,
    /// `s`.
    Skip,
    /// `y`: a custom SMTP reply (`550 5.7.1 text`).
    Code(String),
    /// Anything else (command byte).
    Other(u8),
}

impl Reply {
    /// Whether the reply ends the message (a verdict, not continue/skip).
    pub fn is_final(&self) -> bool {
        !matches!(self, Reply::Continue | Reply::Skip)
    }
}

/// A modification requested at the end of the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// `h`: add a header.
    AddHeader(String, String),
    /// `m`: change (or delete, with an empty value) occurrence `index`.
    ChangeHeader(u32, String, String),
    /// `i`: insert a header.
    InsertHeader(u32, String, String),
    /// `+`: add a recipient.
    AddRcpt(String),
    /// `-`: delete a recipient.
    DeleteRcpt(String),
    /// `q`: quarantine with a reason.
    Quarantine(String),
}

/// A message to send.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    /// The client's IP and port.
    pub client: Option<SocketAddr>,
    /// HELO name.
    pub helo: String,
    /// MAIL FROM (without brackets).
    pub from: String,
    /// RCPT TO, in order.
    pub to: Vec<String>,
    /// Header fields.
    pub headers: Vec<(String, String)>,
    /// The body (CRLF line ends).
    pub body: Vec<u8>,
    /// Macros sent before EOM (`i` = queue id).
    pub queue_id: String,
}

impl Mail {
    /// Parses a raw message (headers, blank line, body) into headers and body.
    pub fn with_raw(mut self, raw: &[u8]) -> Mail {
        let text = String::from_utf8_lossy(raw).replace("\r\n", "\n");
        let (head, body) = match text.find("\n\n") {
            Some(i) => (&text[..i], &text[i + 2..]),
            None => ("", text.as_str()),
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if (line.starts_with(' ') || line.starts_with('\t')) && !headers.is_empty() {
                if let Some(last) = headers.last_mut() {
                    last.1.push('\n');
                    last.1.push_str(line);
                }
            } else if let Some((n, v)) = line.split_once(':') {
                headers.push((n.to_string(), v.trim_start().to_string()));
            }
        }
        self.headers = headers;
        self.body = body.replace('\n', "\r\n").into_bytes();
        self
    }
}

/// How a message ended: the stage of the final reply (`mail`, `data`,
/// `eoh`, `body`, `eom`), the reply, and the end-of-message edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Where the filter gave its final reply.
    pub stage: &'static str,
    /// The reply.
    pub reply: Reply,
    /// Edits (only at `eom`).
    pub edits: Vec<Edit>,
}

/// One milter connection.
pub struct Client {
    stream: Box<dyn Stream>,
    opts: u32,
    /// Packets sent but not yet written (see the module documentation).
    pending: Vec<u8>,
}

/// Past this many unwritten bytes, [`Client::send`] writes them at once
/// (a body sent without replies is not held whole in memory).
const PENDING_MAX: usize = 64 * 1024;

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.replace('\0', " ").as_bytes());
    out.push(0);
}

fn split_cstrs(data: &[u8]) -> Vec<String> {
    data.split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

impl Client {
    /// Connects and negotiates protocol version 6 with every action and
    /// option offered (as Postfix does).
    pub async fn connect(addr: SocketAddr) -> io::Result<Client> {
        Client::connect_offering(addr, 0x1ff).await
    }

    /// Connects offering only the actions in `actions` (the `SMFIF_*`
    /// bits), as an MTA that cannot, say, quarantine does.
    pub async fn connect_offering(addr: SocketAddr, actions: u32) -> io::Result<Client> {
        Client::connect_to(&Endpoint::Tcp(addr), actions).await
    }

    /// Connects to a TCP or Unix endpoint offering the actions in
    /// `actions` (`0x1ff`: all of them, as Postfix does).
    pub async fn connect_to(endpoint: &Endpoint, actions: u32) -> io::Result<Client> {
        let stream: Box<dyn Stream> = match endpoint {
            Endpoint::Tcp(addr) => {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                Box::new(stream)
            }
            Endpoint::Unix(path) => Box::new(UnixStream::connect(path).await?),
        };
        let mut client = Client {
            stream,
            opts: 0,
            pending: Vec::new(),
        };
        let mut data = Vec::new();
        data.extend_from_slice(&6u32.to_be_bytes());
        data.extend_from_slice(&actions.to_be_bytes());
        data.extend_from_slice(&0x1f_ffffu32.to_be_bytes());
        client.send(b'O', &data).await?;
        let (cmd, reply) = client.read().await?;
        if cmd != b'O' || reply.len() < 12 {
            return Err(io::Error::other(format!("bad negotiation reply {cmd}")));
        }
        client.opts = u32::from_be_bytes([reply[8], reply[9], reply[10], reply[11]]);
        Ok(client)
    }

    /// The protocol options the filter asked for.
    pub fn opts(&self) -> u32 {
        self.opts
    }

    /// Sends one packet: it is written with the packets before it when a
    /// reply is next awaited ([`Client::read`]) or on [`Client::flush`].
    pub async fn send(&mut self, cmd: u8, data: &[u8]) -> io::Result<()> {
        let len = u32::try_from(data.len() + 1).map_err(io::Error::other)?;
        self.pending.extend_from_slice(&len.to_be_bytes());
        self.pending.push(cmd);
        self.pending.extend_from_slice(data);
        if self.pending.len() > PENDING_MAX {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes the packets sent so far, in one write.
    pub async fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = self.stream.write_all(&self.pending).await;
        self.pending.clear();
        result
    }

    /// Sends raw bytes (malformed-input tests), after the packets before.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.flush().await?;
        self.stream.write_all(bytes).await
    }

    /// Writes what was sent, then reads one packet. A filter silent for
    /// [`READ_TIMEOUT`] is an error, so a test or a load run fails instead
    /// of hanging.
    pub async fn read(&mut self) -> io::Result<(u8, Vec<u8>)> {
        self.flush().await?;
        tokio::time::timeout(READ_TIMEOUT, self.read_packet())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the filter did not answer"))?
    }

    async fn read_packet(&mut self) -> io::Result<(u8, Vec<u8>)> {
        let len = self.stream.read_u32().await? as usize;
        if len == 0 || len > 16 * 1024 * 1024 {
            return Err(io::Error::other(format!("bad packet length {len}")));
        }
        let cmd = self.stream.read_u8().await?;
        let mut data = vec![0; len - 1];
        self.stream.read_exact(&mut data).await?;
        Ok((cmd, data))
    }

    /// The reply to a stage whose "no reply" option is `no_reply`: none
    /// is read when the filter asked for that option (as an MTA does).
    async fn reply_unless(&mut self, no_reply: u32, edits: &mut Vec<Edit>) -> io::Result<Reply> {
        if self.opts & no_reply != 0 {
            return Ok(Reply::Continue);
        }
        self.reply(edits).await
    }

    /// Reads replies until a verdict-like one; edits before it are collected.
    async fn reply(&mut self, edits: &mut Vec<Edit>) -> io::Result<Reply> {
        loop {
            let (cmd, data) = self.read().await?;
            let strings = || split_cstrs(&data);
            let index = || {
                data.get(..4)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            };
            let after_index = || split_cstrs(data.get(4..).unwrap_or_default());
            let nth = |v: &Vec<String>, i: usize| v.get(i).cloned().unwrap_or_default();
            match cmd {
                b'c' => return Ok(Reply::Continue),
                b'a' => return Ok(Reply::Accept),
                b'r' => return Ok(Reply::Reject),
                b't' => return Ok(Reply::Tempfail),
                b'd' => return Ok(Reply::Discard),
                b's' => return Ok(Reply::Skip),
                b'y' => return Ok(Reply::Code(nth(&strings(), 0))),
                b'p' => continue,
                b'h' => {
                    let s = strings();
                    edits.push(Edit::AddHeader(nth(&s, 0), nth(&s, 1)));
                }
                b'm' => {
                    let s = after_index();
                    edits.push(Edit::ChangeHeader(index(), nth(&s, 0), nth(&s, 1)));
                }
                b'i' => {
                    let s = after_index();
                    edits.push(Edit::InsertHeader(index(), nth(&s, 0), nth(&s, 1)));
                }
                b'+' => edits.push(Edit::AddRcpt(nth(&strings(), 0))),
                b'-' => edits.push(Edit::DeleteRcpt(nth(&strings(), 0))),
                b'q' => edits.push(Edit::Quarantine(nth(&strings(), 0))),
                other => return Ok(Reply::Other(other)),
            }
        }
    }

    async fn macros(&mut self, stage: u8, pairs: &[(&str, &str)]) -> io::Result<()> {
        let mut data = vec![stage];
        for (k, v) in pairs {
            cstr(&mut data, k);
            cstr(&mut data, v);
        }
        self.send(b'D', &data).await
    }

    /// Sends the connection facts (connect and HELO), when the filter wants them.
    pub async fn hello(&mut self, mail: &Mail) -> io::Result<Reply> {
        let mut edits = Vec::new();
        if self.opts & NO_CONNECT == 0 {
            let addr = mail
                .client
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 40000)));
            let mut data = Vec::new();
            cstr(&mut data, "[127.0.0.1]");
            data.push(if addr.is_ipv4() { b'4' } else { b'6' });
            data.extend_from_slice(&addr.port().to_be_bytes());
            cstr(&mut data, &addr.ip().to_string());
            self.macros(b'C', &[("j", "mx.test")]).await?;
            self.send(b'C', &data).await?;
            let r = self.reply_unless(NR_CONN, &mut edits).await?;
            if r != Reply::Continue {
                return Ok(r);
            }
        }
        if self.opts & NO_HELO == 0 {
            let mut data = Vec::new();
            cstr(&mut data, &mail.helo);
            self.send(b'H', &data).await?;
            return self.reply_unless(NR_HELO, &mut edits).await;
        }
        Ok(Reply::Continue)
    }

    /// Sends one message transaction (after [`Client::hello`]) and returns
    /// how it ended.
    pub async fn message(&mut self, mail: &Mail) -> io::Result<Outcome> {
        let mut edits = Vec::new();
        if self.opts & NO_MAIL == 0 {
            self.macros(b'M', &[("i", &mail.queue_id)]).await?;
            let mut data = Vec::new();
            cstr(&mut data, &format!("<{}>", mail.from));
            self.send(b'M', &data).await?;
            let r = self.reply_unless(NR_MAIL, &mut edits).await?;
            if r.is_final() {
                return self.early("mail", r).await;
            }
        }
        if self.opts & NO_RCPT == 0 {
            for to in &mail.to {
                let mut data = Vec::new();
                cstr(&mut data, &format!("<{to}>"));
                self.send(b'R', &data).await?;
                let r = self.reply_unless(NR_RCPT, &mut edits).await?;
                if r.is_final() {
                    return self.early("rcpt", r).await;
                }
            }
        }
        if self.opts & NO_DATA == 0 {
            self.macros(b'T', &[("i", &mail.queue_id)]).await?;
            self.send(b'T', &[]).await?;
            let r = self.reply_unless(NR_DATA, &mut edits).await?;
            if r.is_final() {
                return self.early("data", r).await;
            }
        }
        if self.opts & NO_HDRS == 0 {
            for (name, value) in &mail.headers {
                let mut data = Vec::new();
                cstr(&mut data, name);
                cstr(&mut data, value);
                self.send(b'L', &data).await?;
                let r = self.reply_unless(NR_HDR, &mut edits).await?;
                if r.is_final() {
                    return self.early("header", r).await;
                }
            }
        }
        if self.opts & NO_EOH == 0 {
            self.send(b'N', &[]).await?;
            let r = self.reply_unless(NR_EOH, &mut edits).await?;
            if r.is_final() {
                return self.early("eoh", r).await;
            }
        }
        if self.opts & NO_BODY == 0 {
            for chunk in mail.body.chunks(65535) {
                self.send(b'B', chunk).await?;
                let r = self.reply_unless(NR_BODY, &mut edits).await?;
                if r == Reply::Skip && self.opts & SKIP != 0 {
                    break;
                }
                if r.is_final() {
                    return self.early("body", r).await;
                }
            }
        }
        self.macros(b'E', &[("i", &mail.queue_id)]).await?;
        self.send(b'E', &[]).await?;
        let reply = self.reply(&mut edits).await?;
        Ok(Outcome {
            stage: "eom",
            reply,
            edits,
        })
    }

    /// A final reply before the end of the message: the MTA aborts the
    /// transaction (no reply expected).
    async fn early(&mut self, stage: &'static str, reply: Reply) -> io::Result<Outcome> {
        self.send(b'A', &[]).await?;
        Ok(Outcome {
            stage,
            reply,
            edits: Vec::new(),
        })
    }

    /// Ends the session politely.
    pub async fn quit(mut self) -> io::Result<()> {
        self.send(b'Q', &[]).await?;
        self.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A filter that asks for no replies to connect, HELO and each header
    /// (as rspamd's proxy does) and answers everything else: the client
    /// must not wait for the replies it was told it will not get.
    async fn quiet_filter(listener: tokio::net::TcpListener) -> io::Result<Vec<u8>> {
        let (stream, _) = listener.accept().await?;
        let mut filter = Client {
            stream: Box::new(stream),
            opts: 0,
            pending: Vec::new(),
        };
        let (cmd, _) = filter.read().await?;
        assert_eq!(cmd, b'O');
        let mut negotiated = Vec::new();
        negotiated.extend_from_slice(&6u32.to_be_bytes());
        negotiated.extend_from_slice(&0u32.to_be_bytes());
        negotiated.extend_from_slice(&(NR_CONN | NR_HELO | NR_HDR).to_be_bytes());
        filter.send(b'O', &negotiated).await?;
        let mut seen = Vec::new();
        loop {
            let (cmd, _) = filter.read().await?;
            seen.push(cmd);
            match cmd {
                b'D' | b'C' | b'H' | b'L' => {}
                b'E' => {
                    filter.send(b'a', &[]).await?;
                    filter.flush().await?;
                    return Ok(seen);
                }
                _ => filter.send(b'c', &[]).await?,
            }
        }
    }

    #[tokio::test]
    async fn the_filters_no_reply_options_are_honoured() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let filter = tokio::spawn(quiet_filter(listener));
        let mail = Mail {
            helo: "client.test".into(),
            from: "a@example.test".into(),
            to: vec!["b@example.test".into()],
            headers: vec![("Subject".into(), "hi".into()), ("X-A".into(), "1".into())],
            body: b"body\r\n".to_vec(),
            ..Mail::default()
        };
        let session = async {
            let mut client = Client::connect(addr).await?;
            assert_eq!(client.hello(&mail).await?, Reply::Continue);
            client.message(&mail).await
        };
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(5), session)
            .await
            .expect("the client waited for a reply the filter never sends")
            .expect("a session");
        assert_eq!((outcome.stage, outcome.reply), ("eom", Reply::Accept));
        let seen = filter.await.expect("filter").expect("filter session");
        assert_eq!(seen.iter().filter(|c| **c == b'L').count(), 2, "{seen:?}");
    }

    #[test]
    fn endpoints_are_tcp_addresses_or_unix_paths() {
        let tcp = SocketAddr::from(([127, 0, 0, 1], 8890));
        assert_eq!("127.0.0.1:8890".parse(), Ok(Endpoint::Tcp(tcp)));
        assert_eq!("inet:127.0.0.1:8890".parse(), Ok(Endpoint::Tcp(tcp)));
        let unix: Endpoint = "unix:/run/milter.sock".parse().expect("unix");
        assert_eq!(unix, Endpoint::Unix("/run/milter.sock".into()));
        assert_eq!(unix.to_string(), "unix:/run/milter.sock");
        let bad = "localhost".parse::<Endpoint>().expect_err("no port");
        assert!(bad.contains("HOST:PORT"), "{bad}");
    }
}
