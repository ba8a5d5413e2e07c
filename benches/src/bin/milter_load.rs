//! `milter-load`: many concurrent milter sessions over loopback against a
//! milter server (`weir serve`, or any milter), no MTA in the loop; prints
//! messages per second and the latency each message spends in the milter.
//!
//! ```text
//! cargo run --release -p weir-benches --bin milter-load -- \
//!     --addr 127.0.0.1:8890|unix:PATH --sessions 32 --messages 10000 [--corpus DIR] \
//!     [--recipients N] [--lmtp 127.0.0.1:8891 [--lmtp-only]]
//! ```
//!
//! With `--lmtp` each accepted message is then delivered over LMTP with the
//! milter's header edits (a `weir serve` with both carries out its stamp);
//! with `--lmtp-only` there is no milter session, LMTP alone decides.
//!
//! Without `--addr` it starts the milter server of `weir serve` inside its
//! own process (`weir_serve::EmbeddedMilter`) with `--rules` (by default the
//! 1,000 generated rules of the benchmark corpus) and a temporary state
//! directory. Messages come from `--corpus DIR` (every file of DIR, in name
//! order) or the synthetic corpus, and are sent round-robin.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use weir_benches::load::{self, Delivery, Plan, Report, Timing};
use weir_serve::milter_client::Endpoint;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(name = "milter-load", about = "Load a milter server over loopback")]
struct Args {
    /// The milter server (`HOST:PORT` or `unix:PATH`); without it, an
    /// embedded `weir serve` milter is started with `--rules`.
    #[arg(long)]
    addr: Option<Endpoint>,
    /// The rules of the embedded server (default: the 1,000 generated rules).
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Concurrent milter sessions.
    #[arg(long, default_value_t = 32)]
    sessions: usize,
    /// Messages to send in all.
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// Messages per milter connection (Postfix: one per SMTP session).
    #[arg(long, default_value_t = 1)]
    per_connection: usize,
    /// A folder of raw messages (default: the synthetic corpus).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Envelope recipients per message.
    #[arg(long, default_value_t = 1)]
    recipients: usize,
    /// An LMTP server each accepted message is then delivered to.
    #[arg(long)]
    lmtp: Option<SocketAddr>,
    /// With `--lmtp`: deliver over LMTP only, without the milter.
    #[arg(long, requires = "lmtp")]
    lmtp_only: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    weir_benches::run_tool("milter-load", run(&args))
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let raw = weir_benches::corpus_or_synth(args.corpus.as_deref())?;
    let mails = Arc::new(load::mails(&raw, args.recipients));
    let (addr, embedded, state) = match &args.addr {
        Some(addr) => (addr.clone(), None, None),
        None => {
            let rules = args
                .rules
                .clone()
                .unwrap_or_else(|| weir_benches::rules(1000));
            let state =
                std::env::temp_dir().join(format!("weir-milter-load-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&state);
            let server = weir_serve::EmbeddedMilter::start(&rules, &state).await?;
            println!(
                "embedded milter on {} with {}",
                server.addr(),
                rules.display()
            );
            (server.addr().into(), Some(server), Some(state))
        }
    };
    let plan = Plan {
        addr,
        sessions: args.sessions,
        messages: args.messages,
        per_connection: args.per_connection,
        first: 0,
        lmtp: args.lmtp.map(|addr| {
            let delivery = if args.lmtp_only {
                Delivery::LmtpOnly
            } else {
                Delivery::AfterMilter
            };
            (addr, delivery)
        }),
    };
    println!(
        "{} messages ({} distinct, {:.1} MB) over {} sessions, {} per connection, to {}",
        plan.messages,
        mails.len(),
        raw.iter().map(Vec::len).sum::<usize>() as f64 / 1e6,
        plan.sessions,
        plan.per_connection.max(1),
        plan.addr,
    );
    let report = load::run(&plan, mails).await;
    if let Some(server) = embedded {
        server.stop().await?;
    }
    if let Some(state) = state {
        let _ = std::fs::remove_dir_all(state);
    }
    print_report(&report?);
    Ok(())
}

/// Which duration of a message a row of the report shows.
type Measure = weir_benches::Measure<Timing>;

fn print_report(report: &Report) {
    println!(
        "{} messages in {:.2} s: {:.0} messages/s",
        report.timings.len(),
        report.elapsed.as_secs_f64(),
        report.messages_per_second()
    );
    let replies: Vec<String> = report
        .replies
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    println!("final replies: {}", replies.join(", "));
    let rows: [(&str, Measure); 4] = [
        ("per message (Weir added)", Timing::total),
        ("  connect+negotiate+HELO", |t| t.setup),
        ("  MAIL to final reply", |t| t.transaction),
        ("  LMTP delivery", |t| t.delivery),
    ];
    weir_benches::print_latencies(&report.timings, &rows);
}
