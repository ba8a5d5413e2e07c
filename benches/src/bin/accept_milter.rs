//! `accept-milter`: a milter that accepts every message, the baseline of
//! `benches/peers/milter.sh` (Postfix with a milter that does nothing, so
//! the difference to `weir serve` is what Weir's rules and records cost).
//!
//! ```text
//! cargo run --release -p weir-benches --bin accept-milter -- --listen 127.0.0.1:8895
//! ```
//!
//! It is built on the same milter library as `weir serve` (indymilter) and
//! takes the message the same way: every stage registered (so it receives
//! the envelope, every header and the whole body, as Weir does; an
//! unregistered stage would also make Postfix wait for a delayed ACK, see
//! the harness pitfalls), `TCP_NODELAY` on each connection (as `weir
//! serve`), `accept` at the end of the message. It stops on SIGTERM or
//! SIGINT.
//!
//! `--no-reply` negotiates away the reply of every stage but the end of
//! the message (`SMFIP_NR_*`, where the MTA offers them), the most a milter
//! can do without; `weir serve` does so for the stages its rules cannot end
//! at. `--quick-ack` turns `TCP_QUICKACK` on after each read, as `weir
//! serve` does; without it, an MTA with Nagle's algorithm (Postfix) holds
//! each unanswered packet until the milter's delayed ACK, which `--no-reply`
//! alone shows through Postfix.

use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::task::{Context as TaskContext, Poll};

use clap::Parser;
use indymilter::{Callbacks, ProtoOpts, Status};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(name = "accept-milter", about = "A milter that accepts everything")]
struct Args {
    /// Where to listen (`HOST:PORT`).
    #[arg(long)]
    listen: SocketAddr,
    /// Negotiate away every reply but the end of the message's.
    #[arg(long)]
    no_reply: bool,
    /// Turn `TCP_QUICKACK` on after each read.
    #[arg(long)]
    quick_ack: bool,
}

/// A TCP listener that turns Nagle's algorithm off on each connection, as
/// `weir serve`'s does (indymilter writes a reply in several small writes).
struct NoDelay {
    listener: TcpListener,
    quick_ack: bool,
}

impl indymilter::Listener for NoDelay {
    type Io = Conn;

    fn poll_accept(&mut self, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<Conn>> {
        self.listener.poll_accept(cx).map(|accepted| {
            let (stream, _) = accepted?;
            stream.set_nodelay(true)?;
            Ok(Conn {
                stream,
                quick_ack: self.quick_ack,
            })
        })
    }
}

/// A connection, with `TCP_QUICKACK` set after each read if asked.
struct Conn {
    stream: TcpStream,
    quick_ack: bool,
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if this.quick_ack && matches!(read, Poll::Ready(Ok(()))) {
            // Best effort, as in `weir serve`: a failure only costs time.
            let _ = socket2::SockRef::from(&this.stream).set_tcp_quickack(true);
        }
        read
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Every "no reply" option: all stages but the end of the message.
const NO_REPLY: ProtoOpts = ProtoOpts::NOREPLY_CONNECT
    .union(ProtoOpts::NOREPLY_HELO)
    .union(ProtoOpts::NOREPLY_MAIL)
    .union(ProtoOpts::NOREPLY_RCPT)
    .union(ProtoOpts::NOREPLY_DATA)
    .union(ProtoOpts::NOREPLY_HEADER)
    .union(ProtoOpts::NOREPLY_EOH)
    .union(ProtoOpts::NOREPLY_BODY)
    .union(ProtoOpts::NOREPLY_UNKNOWN);

/// A stage's answer: `Noreply` on a connection that negotiated it away
/// (the session's data is whether it did).
fn carry_on(quiet: Option<&bool>) -> Status {
    if quiet == Some(&true) {
        Status::Noreply
    } else {
        Status::Continue
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    weir_benches::run_tool("accept-milter", serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen).await?;
    println!("accept-milter on {}", listener.local_addr()?);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    let no_reply = args.no_reply;
    let callbacks: Callbacks<bool> = Callbacks::new()
        .on_negotiate(move |cx, _, mta_opts| {
            let quiet = if no_reply {
                NO_REPLY & mta_opts
            } else {
                ProtoOpts::empty()
            };
            // As without this callback: no action, no option but these.
            cx.requested_actions = indymilter::Actions::empty();
            cx.requested_opts = quiet;
            cx.data = Some(!quiet.is_empty());
            Box::pin(async { Status::Continue })
        })
        .on_connect(|cx, _, _| {
            let status = carry_on(cx.data.as_ref());
            Box::pin(async move { status })
        })
        .on_helo(|cx, _| {
            let status = carry_on(cx.data.as_ref());
            Box::pin(async move { status })
        })
        .on_mail(|cx, _| {
            let status = carry_on(cx.data.as_ref());
            Box::pin(async move { status })
        })
        .on_rcpt(|cx, _| {
            let status = carry_on(cx.data.as_ref());
            Box::pin(async move { status })
        })
        .on_data(|cx| {
            let status = carry_on(cx.data.as_ref());
            Box::pin(async move { status })
        })
        .on_header(|cx, _, _| {
            let status = carry_on(cx.data.as_ref());
            Box::pin(async move { status })
        })
        .on_eoh(|cx| {
            let status = carry_on(cx.data.as_ref());
            Box::pin(async move { status })
        })
        .on_body(|cx, _| {
            let status = carry_on(cx.data.as_ref());
            Box::pin(async move { status })
        })
        .on_eom(|_| Box::pin(async { Status::Accept }))
        .on_abort(|_| Box::pin(async { Status::Continue }))
        .on_unknown(|cx, _| {
            let status = carry_on(cx.data.as_ref());
            Box::pin(async move { status })
        });
    let config = indymilter::Config {
        // Above the benchmark's 32 sessions with room: a refused
        // connection would show as Postfix's tempfail, and fail the run.
        max_connections: 1000,
        ..Default::default()
    };
    let listener = NoDelay {
        listener,
        quick_ack: args.quick_ack,
    };
    indymilter::run(listener, callbacks, config, shutdown).await?;
    Ok(())
}
