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

use std::net::SocketAddr;
use std::process::ExitCode;
use std::task::{Context as TaskContext, Poll};

use clap::Parser;
use indymilter::{Callbacks, Status};
use tokio::net::{TcpListener, TcpStream};

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(name = "accept-milter", about = "A milter that accepts everything")]
struct Args {
    /// Where to listen (`HOST:PORT`).
    #[arg(long)]
    listen: SocketAddr,
}

/// A TCP listener that turns Nagle's algorithm off on each connection, as
/// `weir serve`'s does (indymilter writes a reply in several small writes).
struct NoDelay(TcpListener);

impl indymilter::Listener for NoDelay {
    type Io = TcpStream;

    fn poll_accept(&mut self, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<TcpStream>> {
        self.0.poll_accept(cx).map(|accepted| {
            let (stream, _) = accepted?;
            stream.set_nodelay(true)?;
            Ok(stream)
        })
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    weir_benches::run_tool("accept-milter", serve(args.listen))
}

async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("accept-milter on {}", listener.local_addr()?);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    let callbacks: Callbacks<()> = Callbacks::new()
        .on_connect(|_, _, _| Box::pin(async { Status::Continue }))
        .on_helo(|_, _| Box::pin(async { Status::Continue }))
        .on_mail(|_, _| Box::pin(async { Status::Continue }))
        .on_rcpt(|_, _| Box::pin(async { Status::Continue }))
        .on_data(|_| Box::pin(async { Status::Continue }))
        .on_header(|_, _, _| Box::pin(async { Status::Continue }))
        .on_eoh(|_| Box::pin(async { Status::Continue }))
        .on_body(|_, _| Box::pin(async { Status::Continue }))
        .on_eom(|_| Box::pin(async { Status::Accept }))
        .on_abort(|_| Box::pin(async { Status::Continue }))
        .on_unknown(|_, _| Box::pin(async { Status::Continue }));
    let config = indymilter::Config {
        // Above the benchmark's 32 sessions with room: a refused
        // connection would show as Postfix's tempfail, and fail the run.
        max_connections: 1000,
        ..Default::default()
    };
    indymilter::run(NoDelay(listener), callbacks, config, shutdown).await?;
    Ok(())
}
