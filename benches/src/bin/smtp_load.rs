//! `smtp-load`: many concurrent SMTP sessions over loopback against an SMTP
//! server (a private Postfix, with or without a milter); prints messages per
//! second and each message's latency, above all from the end of DATA to the
//! `250` (where Postfix waits for its milters).
//!
//! ```text
//! cargo run --release -p weir-benches --bin smtp-load -- \
//!     --addr 127.0.0.1:2525 --sessions 32 --messages 10000 [--corpus DIR] \
//!     [--per-connection 1] [--label NAME]
//! ```
//!
//! Messages come from `--corpus DIR` (every file of DIR, in name order) or
//! the synthetic corpus, sent round-robin from the envelope sender of their
//! `From:` to `user@example.com`. Any reply but the expected one (a `5xx`
//! or `4xx` from Postfix or its milter) stops the run with status 1.
//! `--label` prints one more line, `RESULT label sessions messages/s p50
//! p90 p99` (end of DATA to `250`, milliseconds), for scripts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use weir_benches::smtp::{self, Message, Plan, Report, Timing};

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(name = "smtp-load", about = "Load an SMTP server over loopback")]
struct Args {
    /// The SMTP server (`HOST:PORT`).
    #[arg(long)]
    addr: SocketAddr,
    /// Concurrent SMTP sessions.
    #[arg(long, default_value_t = 32)]
    sessions: usize,
    /// Messages to send in all.
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// Messages per SMTP connection.
    #[arg(long, default_value_t = 1)]
    per_connection: usize,
    /// A folder of raw messages (default: the synthetic corpus).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// A name for the machine-readable `RESULT` line.
    #[arg(long)]
    label: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    weir_benches::run_tool("smtp-load", run(&args))
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let raw = weir_benches::corpus_or_synth(args.corpus.as_deref())?;
    // The milter tool's reading of each message gives its envelope sender.
    let envelopes = weir_benches::load::mails(&raw, 1);
    let to = vec!["user@example.com".to_string()];
    let messages: Vec<Message> = raw
        .iter()
        .zip(&envelopes)
        .map(|(bytes, mail)| Message::new(&mail.from, &to, bytes))
        .collect();
    let plan = Plan {
        addr: args.addr,
        sessions: args.sessions,
        messages: args.messages,
        per_connection: args.per_connection,
    };
    println!(
        "{} messages ({} distinct, {:.1} MB) over {} sessions, {} per connection, to {}",
        plan.messages,
        messages.len(),
        raw.iter().map(Vec::len).sum::<usize>() as f64 / 1e6,
        plan.sessions,
        plan.per_connection.max(1),
        plan.addr,
    );
    let report = smtp::run(&plan, Arc::new(messages)).await?;
    print_report(&report);
    if let Some(label) = &args.label {
        let ms = |q: f64| report.quantile(q, |t| t.end_of_data).as_secs_f64() * 1e3;
        println!(
            "RESULT {label} {} {:.0} {:.3} {:.3} {:.3}",
            plan.sessions,
            report.messages_per_second(),
            ms(0.5),
            ms(0.9),
            ms(0.99)
        );
    }
    Ok(())
}

/// Which duration of a message a row of the report shows.
type Measure = weir_benches::Measure<Timing>;

fn print_report(report: &Report) {
    println!(
        "{} messages in {:.2} s: {:.0} messages/s, every one answered 250",
        report.timings.len(),
        report.elapsed.as_secs_f64(),
        report.messages_per_second()
    );
    let rows: [(&str, Measure); 4] = [
        ("end of DATA to 250", |t| t.end_of_data),
        ("whole message", Timing::total),
        ("  connect+greeting+EHLO", |t| t.setup),
        ("  MAIL to 354", |t| t.envelope),
    ];
    weir_benches::print_latencies(&report.timings, &rows);
}
