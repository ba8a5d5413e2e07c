//! The milter server (Postfix, Sendmail) over indymilter.
//!
//! CONTRACT with `serve/mod.rs`:
//! `pub async fn serve(daemon: Arc<Daemon>, listener: super::Listener,
//! shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()>`
//! takes the already bound [`super::Listener`] (TCP or Unix) and serves
//! until `shutdown` completes; sessions in flight then finish their current
//! command.
//!
//! Per connection it keeps the client facts (connect, HELO, macros); per
//! message it takes the running ruleset at MAIL FROM (a reload never
//! changes the rules under a message in flight) and evaluates stage by
//! stage (`stages.rs`): a decision that is final at MAIL is answered at
//! MAIL, one final after the recipients is answered at DATA, then at the end
//! of the headers, then at the end of the message. Only `reject` and
//! `tempfail` are answered early; every other verdict, and every header and
//! envelope edit, is carried out at the end of the message. Each final
//! decision is recorded (audit log, quarantine index, metrics) before the
//! MTA gets the reply.
//!
//! Postfix details that shape this file (see also the harness REPORT):
//! - every accepted TCP connection gets `TCP_NODELAY`: indymilter writes a
//!   reply in several small writes, and Nagle plus the MTA's delayed ACK
//!   would add ~40 ms per reply;
//! - every stage callback is registered, so no `SMFIP_NO*` flag is
//!   negotiated: Postfix still sends a skipped stage's macros and then waits
//!   for our delayed ACK (~40 ms per message). The body, the only stage
//!   whose size matters, is cut short with `SMFIR_SKIP` when no rule reads
//!   it (or the decision is already final), which stalls nothing because it
//!   is a reply;
//! - instead, the reply of every stage where the rules loaded at
//!   negotiation can only continue is negotiated away (`SMFIP_NR_*`,
//!   protocol 6; [`no_reply_opts`]): Postfix then sends the next packet
//!   without waiting, one round trip less per header and per such stage.
//!   A refusal that arises at such a stage anyway (a reload gave rules
//!   that can end there, a limit was passed) is kept and answered at the
//!   next stage that has a reply, at the latest at the end of the message;
//! - those packets wait for nothing from Weir, so on TCP the MTA's Nagle
//!   algorithm would hold each one back until our delayed ACK of the one
//!   before (the same ~40 ms): every read on a TCP connection that
//!   negotiated a reply away turns on `TCP_QUICKACK`, so the kernel ACKs
//!   at once.

use std::ffi::{CStr, CString};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use indymilter::{
    Actions, Callbacks, Context, ContextActions, EomContext, MacroStage, NegotiateContext,
    ProtoOpts, SetErrorReply, SocketInfo, Status,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use weir_compiler::{Action, Decision, EvalOptions, TakenKind, Verdict};
use weir_stdlib::{Limits, Stage};

use super::Listener;
use super::audit::{self, AuditDecision, RecipientOutcome};
use super::config::OnError;
use super::edits::{self, Answer, Edit, Plan};
use super::evalpool;
use super::outbox::{self, Origin};
use super::stages::{self, ClientFacts, MessageFacts, PolicyCause, StagePlan, StagedRates};
use super::state::{AuditEntry, Daemon, LoadedRuleset, Record, Source, unix_now};
use super::store::{Durable, Expected, MessageSummary};

/// The modifications Weir may ask for (docs/language.md ("Rules and actions")): add, change and
/// remove headers; add and remove recipients; quarantine.
pub(crate) const ACTIONS: Actions = Actions::ADD_HEADER
    .union(Actions::CHANGE_HEADER)
    .union(Actions::ADD_RCPT)
    .union(Actions::DELETE_RCPT)
    .union(Actions::QUARANTINE);

/// Serves the milter protocol on `listener` until `shutdown` completes.
pub async fn serve(
    daemon: Arc<Daemon>,
    listener: Listener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // `[milter] max_connections` and `idle_timeout` (config.rs has the
    // defaults and why).
    let limits = daemon.config().milter.connections;
    let config = indymilter::Config {
        max_connections: limits.max,
        actions: ACTIONS,
        connection_timeout: limits.idle_timeout,
    };
    let accepting = Accepting {
        listener,
        daemon: daemon.clone(),
        backoff: None,
    };
    indymilter::run(accepting, callbacks(daemon), config, shutdown).await?;
    Ok(())
}

/// The callbacks of every stage (see the module docs for why all of them).
pub(crate) fn callbacks(daemon: Arc<Daemon>) -> Callbacks<Session> {
    let e = [(); 9].map(|_| daemon.clone());
    let [
        e_mail,
        e_data,
        e_header,
        e_eoh,
        e_body,
        e_eom,
        e_rcpt,
        e_neg,
        _,
    ] = e;
    Callbacks::new()
        .on_negotiate(move |cx, actions, opts| {
            Box::pin(negotiate(e_neg.clone(), cx, actions, opts))
        })
        .on_connect(|cx, host, info| Box::pin(connect(cx, host, info)))
        .on_helo(|cx, helo| Box::pin(helo_cb(cx, helo)))
        .on_mail(move |cx, args| Box::pin(mail(e_mail.clone(), cx, args)))
        .on_rcpt(move |cx, args| Box::pin(rcpt(e_rcpt.clone(), cx, args)))
        .on_data(move |cx| Box::pin(data(e_data.clone(), cx)))
        .on_header(move |cx, name, value| Box::pin(header(e_header.clone(), cx, name, value)))
        .on_eoh(move |cx| Box::pin(eoh(e_eoh.clone(), cx)))
        .on_body(move |cx, chunk| Box::pin(body(e_body.clone(), cx, chunk)))
        .on_eom(move |cx| Box::pin(eom(e_eom.clone(), cx)))
        .on_abort(|cx| Box::pin(abort(cx)))
        .on_unknown(|_cx, _arg| Box::pin(async { Status::Continue }))
}

/// Per-connection state.
#[derive(Debug, Default)]
pub struct Session {
    client: ClientFacts,
    /// Whether the MTA understands `SMFIR_SKIP`.
    skip_ok: bool,
    /// The stages whose reply this connection negotiated away
    /// (`SMFIP_NR_*`): their callbacks return `Status::Noreply`.
    quiet: ProtoOpts,
    /// The message in progress, from MAIL FROM to its end.
    message: Option<InFlight>,
}

/// One message being received.
#[derive(Debug)]
struct InFlight {
    loaded: Arc<LoadedRuleset>,
    /// The client as known at MAIL FROM (for the audit log).
    client: ClientFacts,
    /// When MAIL FROM came (the log line's milliseconds).
    started: Instant,
    plan: StagePlan,
    facts: Arc<MessageFacts>,
    rates: StagedRates,
    /// `now` for every evaluation of the message.
    now: i64,
    /// The boundary of the last evaluation that ran.
    last_boundary: Option<usize>,
    /// The final decisions, once known: one per envelope recipient when
    /// the daemon also delivers by LMTP (`recipients.rs`), else one.
    decided: Option<Vec<Decision>>,
}

fn text(c: &CStr) -> String {
    String::from_utf8_lossy(c.to_bytes()).into_owned()
}

fn macro_text(macros: &indymilter::Macros, name: &CStr) -> Option<String> {
    macros.get(name).map(text).filter(|v| !v.is_empty())
}

/// The replies a connection can do without, given the plan of the rules
/// loaded when it negotiates (docs/serve.md, "Round trips"): connect, HELO,
/// each recipient, each header and unknown commands are always answered
/// `continue` (the recipients are evaluated at DATA, a header limit is
/// answered later); MAIL, DATA and the end of the headers when no rule
/// that can end evaluation becomes evaluable there (`StagePlan::may_end_at`:
/// the rules before were decided at the stage before); the body
/// chunks when rules read the body, since they are then never skipped.
/// When no rule reads the body its first chunk keeps its reply, so that
/// `SMFIR_SKIP` spares the MTA sending the rest.
pub(crate) fn no_reply_opts(plan: &StagePlan) -> ProtoOpts {
    let mut opts = ProtoOpts::NOREPLY_CONNECT
        | ProtoOpts::NOREPLY_HELO
        | ProtoOpts::NOREPLY_RCPT
        | ProtoOpts::NOREPLY_HEADER
        | ProtoOpts::NOREPLY_UNKNOWN;
    let stages = [
        (Stage::Mail, None, ProtoOpts::NOREPLY_MAIL),
        (Stage::Rcpt, Some(Stage::Mail), ProtoOpts::NOREPLY_DATA),
        (Stage::Header, Some(Stage::Rcpt), ProtoOpts::NOREPLY_EOH),
    ];
    for (stage, after, no_reply) in stages {
        if !plan.may_end_at(stage, after) {
            opts |= no_reply;
        }
    }
    if plan.needs_body() {
        opts |= ProtoOpts::NOREPLY_BODY;
    }
    opts
}

async fn negotiate(
    daemon: Arc<Daemon>,
    cx: &mut NegotiateContext<Session>,
    mta_actions: Actions,
    mta_opts: ProtoOpts,
) -> Status {
    // Ask only for what the MTA offers: an action it lacks is reported when
    // a rule needs it rather than failing every connection.
    cx.requested_actions = ACTIONS & mta_actions;
    let skip_ok = mta_opts.contains(ProtoOpts::SKIP);
    if skip_ok {
        cx.requested_opts |= ProtoOpts::SKIP;
    }
    // indymilter does not fake a "no reply" the MTA did not offer.
    let quiet = no_reply_opts(&StagePlan::new(daemon.current().ruleset())) & mta_opts;
    cx.requested_opts |= quiet;
    // Postfix sends these by default; asking makes other configurations
    // work too. `i` (queue id) is wanted at every message stage.
    let wanted = [
        (
            MacroStage::Connect,
            "j {client_addr} {client_name} {client_port}",
        ),
        (MacroStage::Helo, "{tls_version} {cipher}"),
        (MacroStage::Mail, "i {auth_authen} {tls_version}"),
        (MacroStage::Rcpt, "i"),
        (MacroStage::Data, "i"),
        (MacroStage::Eoh, "i"),
        (MacroStage::Eom, "i"),
    ];
    for (stage, names) in wanted {
        if let Ok(names) = CString::new(names) {
            cx.requested_macros.insert(stage, names);
        }
    }
    cx.data = Some(Session {
        skip_ok,
        quiet,
        ..Session::default()
    });
    Status::Continue
}

/// Whether this connection negotiated away the reply `no_reply`.
fn is_quiet(data: Option<&Session>, no_reply: ProtoOpts) -> bool {
    data.is_some_and(|s| s.quiet.contains(no_reply))
}

/// What a stage's callback returns: `status`, or `Noreply` when the
/// connection negotiated that stage's reply away (`status` is then
/// `Continue` or `Skip`: a refusal waits in `InFlight::decided`).
fn answer(data: Option<&Session>, no_reply: ProtoOpts, status: Status) -> Status {
    if is_quiet(data, no_reply) {
        Status::Noreply
    } else {
        status
    }
}

async fn connect(cx: &mut Context<Session>, host: CString, info: SocketInfo) -> Status {
    let session = cx.data.get_or_insert_with(Session::default);
    let host = text(&host);
    // Postfix sends "[1.2.3.4]" (Sendmail's form) when it knows no name.
    session.client.name = if host.starts_with('[') || host == "unknown" {
        String::new()
    } else {
        host
    };
    if let SocketInfo::Inet(addr) = info {
        session.client.ip = addr.ip();
        session.client.port = addr.port();
    }
    answer(
        cx.data.as_ref(),
        ProtoOpts::NOREPLY_CONNECT,
        Status::Continue,
    )
}

async fn helo_cb(cx: &mut Context<Session>, helo: CString) -> Status {
    cx.data.get_or_insert_with(Session::default).client.helo = text(&helo);
    answer(cx.data.as_ref(), ProtoOpts::NOREPLY_HELO, Status::Continue)
}

async fn mail(daemon: Arc<Daemon>, cx: &mut Context<Session>, args: Vec<CString>) -> Status {
    let auth_user = macro_text(&cx.macros, c"{auth_authen}").unwrap_or_default();
    let tls = macro_text(&cx.macros, c"{tls_version}").is_some();
    let loaded = daemon.current();
    let facts = MessageFacts {
        auth_user,
        tls,
        from: args
            .first()
            .map(|a| stages::strip_brackets(&text(a)))
            .unwrap_or_default(),
        ..MessageFacts::default()
    };
    let client = cx
        .data
        .as_ref()
        .map(|s| s.client.clone())
        .unwrap_or_default();
    let message = InFlight {
        client,
        started: Instant::now(),
        plan: StagePlan::new(loaded.ruleset()),
        loaded,
        facts: Arc::new(facts),
        rates: StagedRates::new(daemon.store.clone()),
        now: unix_now(),
        last_boundary: None,
        decided: None,
    };
    let session = cx.data.get_or_insert_with(Session::default);
    session.message = Some(message);
    let status = advance(&daemon, cx, Stage::Mail, ProtoOpts::NOREPLY_MAIL).await;
    answer(cx.data.as_ref(), ProtoOpts::NOREPLY_MAIL, status)
}

async fn rcpt(_engine: Arc<Daemon>, cx: &mut Context<Session>, args: Vec<CString>) -> Status {
    if let Some(message) = cx.data.as_mut().and_then(|s| s.message.as_mut())
        && let Some(to) = args.first()
    {
        Arc::make_mut(&mut message.facts)
            .to
            .push(stages::strip_brackets(&text(to)));
    }
    answer(cx.data.as_ref(), ProtoOpts::NOREPLY_RCPT, Status::Continue)
}

async fn data(daemon: Arc<Daemon>, cx: &mut Context<Session>) -> Status {
    // `envelope.to` is complete only now (docs/language.md ("Stages")).
    let status = advance(&daemon, cx, Stage::Rcpt, ProtoOpts::NOREPLY_DATA).await;
    answer(cx.data.as_ref(), ProtoOpts::NOREPLY_DATA, status)
}

async fn header(
    daemon: Arc<Daemon>,
    cx: &mut Context<Session>,
    name: CString,
    value: CString,
) -> Status {
    let max_headers = daemon.config().limits.max_headers;
    let quiet = ProtoOpts::NOREPLY_HEADER;
    let Some(message) = cx.data.as_mut().and_then(|s| s.message.as_mut()) else {
        return answer(cx.data.as_ref(), quiet, Status::Continue);
    };
    let facts = Arc::make_mut(&mut message.facts);
    facts.headers.push((text(&name), text(&value)));
    if facts.headers.len() > max_headers && message.decided.is_none() {
        tracing::warn!("message has more than max_headers ({max_headers}) header fields");
        let status = limit_exceeded(&daemon, cx, Stage::Header, quiet).await;
        return answer(cx.data.as_ref(), quiet, status);
    }
    answer(cx.data.as_ref(), quiet, Status::Continue)
}

async fn eoh(daemon: Arc<Daemon>, cx: &mut Context<Session>) -> Status {
    let status = advance(&daemon, cx, Stage::Header, ProtoOpts::NOREPLY_EOH).await;
    answer(cx.data.as_ref(), ProtoOpts::NOREPLY_EOH, status)
}

/// Takes in a chunk of the body. `chunk` is indymilter's buffer, copied
/// once, into the message's body.
async fn body(
    daemon: Arc<Daemon>,
    cx: &mut Context<Session>,
    chunk: impl AsRef<[u8]> + Send,
) -> Status {
    let status = body_chunk(&daemon, cx, chunk.as_ref()).await;
    answer(cx.data.as_ref(), ProtoOpts::NOREPLY_BODY, status)
}

async fn body_chunk(daemon: &Arc<Daemon>, cx: &mut Context<Session>, chunk: &[u8]) -> Status {
    let max_size = daemon.config().limits.max_message_size;
    let Some(session) = cx.data.as_mut() else {
        return Status::Continue;
    };
    let skip = if session.skip_ok {
        Status::Skip
    } else {
        Status::Continue
    };
    let Some(message) = session.message.as_mut() else {
        return skip;
    };
    if message.decided.is_some() || !message.plan.needs_body() {
        return skip;
    }
    let facts = Arc::make_mut(&mut message.facts);
    facts.body_size += chunk.len() as u64;
    let total = facts.size();
    if total > max_size {
        tracing::warn!("message exceeds max_message_size ({max_size} bytes)");
        facts.body.clear();
        let status = limit_exceeded(daemon, cx, Stage::Body, ProtoOpts::NOREPLY_BODY).await;
        return if status == Status::Continue {
            skip
        } else {
            status
        };
    }
    facts.body.extend_from_slice(chunk);
    Status::Continue
}

async fn abort(cx: &mut Context<Session>) -> Status {
    if let Some(session) = cx.data.as_mut() {
        session.message = None;
    }
    Status::Continue
}

/// The `[limits] on_limit` outcome: final now; answered now when it refuses
/// the message and this stage has a reply (`no_reply` not negotiated),
/// else at the next stage that has one or at the end of the message.
async fn limit_exceeded(
    daemon: &Arc<Daemon>,
    cx: &mut Context<Session>,
    stage: Stage,
    no_reply: ProtoOpts,
) -> Status {
    let decision =
        stages::policy_decision(daemon.config().limits.on_limit, stage, PolicyCause::Limit);
    settle(daemon, cx, vec![decision], no_reply).await
}

/// Evaluates the message at `stage` if that can decide anything new; a
/// final `reject` or `tempfail` is recorded and answered now if this stage
/// has a reply (`no_reply` not negotiated). A refusal kept from a stage
/// without one is answered here when this one has a reply.
async fn advance(
    daemon: &Arc<Daemon>,
    cx: &mut Context<Session>,
    stage: Stage,
    no_reply: ProtoOpts,
) -> Status {
    let replies = !is_quiet(cx.data.as_ref(), no_reply);
    let Some(session) = cx.data.as_mut() else {
        return Status::Continue;
    };
    let client = session.client.clone();
    let Some(message) = session.message.as_mut() else {
        return Status::Continue;
    };
    if let Some(decided) = &message.decided {
        if !replies || recipients::agreed_refusal(decided).is_none() {
            return Status::Continue;
        }
        let decisions = message.decided.take().unwrap_or_default();
        return settle(daemon, cx, decisions, no_reply).await;
    }
    if !message.plan.worth_evaluating(stage, message.last_boundary) {
        return Status::Continue;
    }
    message.last_boundary = Some(message.plan.boundary(stage));
    match evaluate(daemon, message, &client, stage).await {
        Some(decisions) => settle(daemon, cx, decisions, no_reply).await,
        None => Status::Continue,
    }
}

/// Whether each envelope recipient is decided on its own: when this
/// daemon also delivers by LMTP, so the decisions can be handed on in the
/// stamp (`milter/recipients.rs`).
fn per_recipient(daemon: &Daemon) -> bool {
    daemon.config().lmtp.is_some()
}

/// Keeps final decisions for the end of the message, or, when every
/// recipient is refused alike (reject, tempfail) and the current stage has
/// a reply (`no_reply` not negotiated), records and answers it now.
async fn settle(
    daemon: &Arc<Daemon>,
    cx: &mut Context<Session>,
    decisions: Vec<Decision>,
    no_reply: ProtoOpts,
) -> Status {
    let replies = !is_quiet(cx.data.as_ref(), no_reply);
    let Some(message) = cx.data.as_mut().and_then(|s| s.message.as_mut()) else {
        return Status::Continue;
    };
    let refused = recipients::agreed_refusal(&decisions).filter(|_| replies);
    let Some(refused) = refused.cloned() else {
        message.decided = Some(decisions);
        return Status::Continue;
    };
    let queue_id = macro_text(&cx.macros, c"i").unwrap_or_default();
    let Some(message) = cx.data.as_mut().and_then(|s| s.message.take()) else {
        return Status::Continue;
    };
    let (decision, _) = record(daemon, &message, &queue_id, refused, &decisions, None).await;
    refuse(&mut cx.reply, &decision)
}

/// Sets the custom reply of a refusing decision and returns its status
/// (`Continue` for a decision that turned into an accept).
fn refuse(reply: &mut indymilter::SmtpReply, decision: &Decision) -> Status {
    let status = match decision.verdict {
        Verdict::Reject => Status::Reject,
        Verdict::Tempfail => Status::Tempfail,
        Verdict::Discard => return Status::Discard,
        Verdict::Accept | Verdict::Quarantine => return Status::Accept,
    };
    let refusal = decision.refusal();
    set_reply(
        reply,
        &refusal.code.to_string(),
        &refusal.status,
        &refusal.text,
    );
    status
}

/// Defers the message: the MTA keeps it and tries again.
fn defer(reply: &mut indymilter::SmtpReply) -> Status {
    set_reply(reply, "451", "4.3.0", "Mail filter failed; try again later");
    Status::Tempfail
}

fn set_reply(reply: &mut indymilter::SmtpReply, code: &str, xcode: &str, text: &str) {
    let lines = edits::reply_lines(text);
    let xcode = Some(xcode).filter(|x| x.starts_with(code.get(..1).unwrap_or("")));
    if reply.set_error_reply(code, xcode, lines.clone()).is_ok() {
        return;
    }
    // An odd enhanced status (it is checked at compile time, so this is a
    // safety net): send the code and text alone.
    if let Err(e) = reply.set_error_reply(code, None, lines) {
        tracing::warn!("cannot set SMTP reply {code} {text:?}: {e}");
    }
}

/// Writes a final decision's `rate()` hits on a blocking thread; the
/// counter comes back (committed, or, if that thread failed, as it was).
async fn commit_rates(rates: StagedRates) -> StagedRates {
    let kept = rates.clone();
    tokio::task::spawn_blocking(move || {
        let mut rates = rates;
        rates.commit();
        rates
    })
    .await
    .unwrap_or_else(|e| {
        tracing::error!("cannot count the message's rates: {e}");
        kept
    })
}

/// The decisions on `tx`: one, or one per envelope recipient when
/// `each_recipient`. One rate counter for the message: a key counts once
/// however many recipients evaluate it, and every key known before
/// evaluation is read in one round trip for all of them.
fn decide(
    loaded: &LoadedRuleset,
    tx: &mut weir_stdlib::Transaction,
    rates: &mut StagedRates,
    each_recipient: bool,
) -> Vec<Decision> {
    let recipients = if each_recipient {
        tx.envelope.to.clone()
    } else {
        Vec::new()
    };
    rates.prefetch_for(loaded.ruleset(), tx, &recipients);
    let opts = EvalOptions::default();
    if !each_recipient {
        return vec![loaded.evaluator.evaluate(tx, rates, &opts)];
    }
    let mut decisions = Vec::new();
    for recipient in recipients {
        tx.envelope.recipient = Some(recipient);
        decisions.push(loaded.evaluator.evaluate(tx, rates, &opts));
    }
    decisions
}

/// Runs one evaluation, or one per envelope recipient once they are known
/// and [`per_recipient`], in the evaluation pool (`evalpool.rs`: bounded by
/// `eval_timeout` plus a parsing allowance for the message's size).
/// Returns the decisions if every one is final; evaluation failure gives
/// the `on_error` decision, which is final.
async fn evaluate(
    daemon: &Arc<Daemon>,
    message: &mut InFlight,
    client: &ClientFacts,
    stage: Stage,
) -> Option<Vec<Decision>> {
    let limits = Limits {
        max_message_size: daemon.config().limits.max_message_size,
        max_headers: daemon.config().limits.max_headers,
        max_mime_depth: daemon.config().limits.max_mime_depth,
    };
    let facts = message.facts.clone();
    let client = client.clone();
    let loaded = message.loaded.clone();
    let plan = message.plan.clone();
    let now = message.now;
    let each_recipient = per_recipient(daemon) && stage >= Stage::Rcpt && facts.to.len() > 1;
    let mut rates = std::mem::replace(&mut message.rates, StagedRates::new(daemon.store.clone()));
    let budget = evalpool::budget(daemon.config().limits.eval_timeout, facts.body_size);
    let learner = Arc::clone(daemon);
    let size = inline_size(&loaded, &facts);
    let job = evalpool::run_sized(size, budget, move || {
        let started = Instant::now();
        let mut tx = match facts.transaction(&client, stage, now, &limits) {
            Ok(tx) => tx,
            Err(e) => return (Err(e), rates, started.elapsed()),
        };
        // Classifiers read the whole message: their answers exist at the
        // body stage, where the rules that read them run.
        if stage == Stage::Body {
            tx.classes = learner
                .learned
                .answers(loaded.evaluator.ruleset(), &tx.message);
        }
        let decisions = decide(&loaded, &mut tx, &mut rates, each_recipient);
        let is_final = decisions
            .iter()
            .all(|d| plan.is_final(loaded.ruleset(), d, stage));
        // Final decisions' hits are committed once they are known to stand
        // (below, after the timeout); a message deferred for every
        // recipient counts nothing, so an MTA's retries do not count
        // against the sender.
        if !is_final || all_tempfail(&decisions) {
            rates.discard();
        }
        (Ok((decisions, is_final)), rates, started.elapsed())
    });
    let on_error = daemon.config().milter.on_error;
    match job.await {
        Ok((outcome, mut rates, elapsed)) => {
            daemon.observe_eval(elapsed);
            if matches!(&outcome, Ok((d, true)) if !all_tempfail(d)) {
                // A store call (a round trip with Redis) on a blocking
                // thread, as every other; awaited, so the next message of
                // this sender sees the hits. Without hits there is no
                // store call, and no thread to cross to.
                if rates.has_pending() {
                    rates = commit_rates(rates).await;
                } else {
                    rates.commit();
                }
            }
            message.rates = rates;
            match outcome {
                Ok((decisions, true)) => Some(decisions),
                Ok((_, false)) => None,
                Err(limit) => {
                    tracing::warn!("{limit}");
                    Some(vec![stages::policy_decision(
                        daemon.config().limits.on_limit,
                        stage,
                        PolicyCause::Limit,
                    )])
                }
            }
        }
        Err(e) => Some(vec![pool_failure(daemon, &e, on_error, stage)]),
    }
}

/// The size by which `evalpool::run_sized` chooses where the message is
/// evaluated: its own, or `u64::MAX` (always the pool) when evaluation may
/// do I/O: a `rate()` or `duplicate()` (the store, Redis across the
/// network) or a learned classifier (its model may be loaded from the
/// store), which must not block the session's task.
fn inline_size(loaded: &LoadedRuleset, facts: &MessageFacts) -> u64 {
    let ruleset = loaded.ruleset();
    if ruleset.asks_counter() || !ruleset.classifiers().is_empty() {
        return u64::MAX;
    }
    facts.size()
}

/// Whether every decision defers the message.
fn all_tempfail(decisions: &[Decision]) -> bool {
    decisions.iter().all(|d| d.verdict == Verdict::Tempfail)
}

/// The decision when the evaluation pool gave no result: a tempfail when
/// it is saturated (back-pressure: the MTA retries), else `on_error`.
pub(crate) fn pool_failure(
    daemon: &Daemon,
    error: &evalpool::EvalError,
    on_error: OnError,
    stage: Stage,
) -> Decision {
    match error {
        evalpool::EvalError::Busy => {
            tracing::warn!("rule evaluation: {error}; tempfailing");
            stages::policy_decision(OnError::Tempfail, stage, PolicyCause::Error)
        }
        evalpool::EvalError::TimedOut => {
            tracing::warn!(
                "rule evaluation took longer than eval_timeout ({:?}, plus the parsing allowance)",
                daemon.config().limits.eval_timeout
            );
            stages::policy_decision(on_error, stage, PolicyCause::Error)
        }
        evalpool::EvalError::Failed(why) => {
            tracing::error!("rule evaluation failed: {why}");
            stages::policy_decision(on_error, stage, PolicyCause::Error)
        }
    }
}

/// Records a final decision (audit entry flushed, quarantine index,
/// metrics, event) with the side effects of every recipient's decision in
/// `all`, and returns the decision to carry out with the audit entry's id:
/// the `on_error` decision and no id when it cannot be recorded, since
/// nothing may be decided unrecorded. `expected` announced this write to
/// the group commit; it ends just before the write. The writes are made on
/// a blocking thread; the flush is waited for here, holding no thread.
async fn record(
    daemon: &Arc<Daemon>,
    message: &InFlight,
    queue_id: &str,
    decision: Decision,
    all: &[Decision],
    expected: Option<Expected>,
) -> (Decision, Option<u64>) {
    let stage = decision.stage;
    let summary = message.facts.summary();
    let job = RecordJob {
        daemon: daemon.clone(),
        queue_id: queue_id.to_string(),
        facts: message.facts.clone(),
        all: all.to_vec(),
        audit: audit_decision(daemon, message, &decision, all, summary.size),
        summary,
        decision,
        version: message.loaded.version,
        expected,
    };
    let failed = |e: String| {
        tracing::error!("cannot record the decision: {e}");
        let policy = daemon.config().milter.on_error;
        (
            stages::policy_decision(policy, stage, PolicyCause::Error),
            None,
        )
    };
    let Written {
        entry,
        decision,
        queued,
    } = match job.durable().await {
        Ok(written) => written,
        Err(e) => return failed(e),
    };
    daemon.recorded(&entry, &decision);
    let line = LogLine {
        queue_id,
        client: &message.client,
        facts: &message.facts,
        version: message.loaded.version,
        started: message.started,
    };
    line.write(&decision);
    if queued > 0 {
        daemon.outbox_wake.notify_one();
    }
    if stage == Stage::Body {
        autolearn(daemon, message, all);
    }
    (decision, Some(entry.id))
}

/// The audit entry's decision object: the decision, what the transaction
/// was (`from`, `to`, `client`, `auth_user`, `size`) and, when the daemon
/// also delivers by LMTP, each recipient's outcome.
fn audit_decision(
    daemon: &Daemon,
    message: &InFlight,
    decision: &Decision,
    all: &[Decision],
    size: u64,
) -> AuditDecision {
    let (facts, client) = (&message.facts, &message.client);
    let mut audit = AuditDecision {
        to: Some(facts.to.clone()),
        client: audit::Client {
            ip: client.ip.to_string(),
            name: client.name.clone(),
            helo: client.helo.clone(),
        },
        auth_user: Some(facts.auth_user.clone()),
        size,
        ..AuditDecision::new(decision, &facts.from)
    };
    if per_recipient(daemon) && !message.facts.to.is_empty() {
        let all = recipients::expand(all, message.facts.to.len());
        let to = message.facts.to.iter();
        audit.recipients = Some(
            to.zip(&all)
                .map(|(r, d)| RecipientOutcome::new(r, d))
                .collect(),
        );
    }
    audit
}

/// Autolearn from the recorded body-stage decisions (`autolearn.rs`):
/// the message is parsed again in the learning task, off this path.
fn autolearn(daemon: &Arc<Daemon>, message: &InFlight, all: &[Decision]) {
    let limits = Limits {
        max_message_size: daemon.config().limits.max_message_size,
        max_headers: daemon.config().limits.max_headers,
        max_mime_depth: daemon.config().limits.max_mime_depth,
    };
    let facts = message.facts.clone();
    let client = message.client.clone();
    let now = message.now;
    let decisions: Vec<&Decision> = all.iter().collect();
    let ruleset = message.loaded.evaluator.ruleset();
    crate::autolearn::after_decisions(daemon, ruleset, &decisions, move || {
        let tx = facts.transaction(&client, Stage::Body, now, &limits).ok()?;
        Some(Arc::new(tx.message))
    });
}

/// The blocking part of [`record`]: `duplicate()` marks, side effects,
/// audit entry, all written but not yet flushed.
struct RecordJob {
    daemon: Arc<Daemon>,
    queue_id: String,
    facts: Arc<MessageFacts>,
    all: Vec<Decision>,
    decision: Decision,
    version: u64,
    summary: MessageSummary,
    audit: AuditDecision,
    /// Ends just before the audit entry is written.
    expected: Option<Expected>,
}

/// What a [`RecordJob`] wrote: the audit entry, the decision back, and
/// how many side effects it queued in the outbox.
struct Written {
    entry: AuditEntry<AuditDecision>,
    decision: Decision,
    queued: usize,
}

impl RecordJob {
    /// Runs the job on a blocking thread and waits, holding no thread,
    /// until what it wrote is durable; or says why it failed.
    async fn durable(self) -> Result<Written, String> {
        let (answer, written) = tokio::sync::oneshot::channel();
        // Not awaited: after answering, the job may go on running the
        // flushes other sessions wait for (`store/group_flush.rs`).
        tokio::task::spawn_blocking(move || self.run(answer));
        let (written, durable) = written
            .await
            .map_err(|_| "the recording task ended early".to_string())?
            .map_err(|e| format!("{e:#}"))?;
        durable.wait().await.map_err(|e| format!("{e:#}"))?;
        Ok(written)
    }

    /// Writes and sends what it wrote to `answer`, with the flush to wait
    /// for; when nobody else runs the flushes, runs the one it needs
    /// before answering and the others asked for after.
    fn run(self, answer: tokio::sync::oneshot::Sender<anyhow::Result<(Written, Durable)>>) {
        let daemon = self.daemon.clone();
        let written = match self.write() {
            Ok(written) => written,
            Err(e) => {
                // A session gone meanwhile is not an error: its message
                // is deferred by the MTA.
                let _ = answer.send(Err(e));
                return;
            }
        };
        let (durable, duty) = daemon.store.request_flush();
        if let Some(duty) = &duty {
            duty.serve_first();
        }
        let _ = answer.send(Ok((written, durable)));
        if let Some(duty) = duty {
            duty.serve();
        }
    }

    fn write(self) -> anyhow::Result<Written> {
        let RecordJob {
            daemon,
            queue_id,
            facts,
            all,
            decision,
            version,
            summary,
            audit,
            expected,
        } = self;
        // `duplicate()` remembers what each recipient's decision marked.
        let first = facts.to.first().map_or("", String::as_str);
        let pairs: Vec<(&str, &Decision)> = if all.len() == facts.to.len() && all.len() > 1 {
            facts.to.iter().map(String::as_str).zip(&all).collect()
        } else {
            vec![(first, &decision)]
        };
        for (rcpt, one) in pairs {
            daemon
                .store
                .record_decision_duplicates(rcpt, one, unix_now())?;
        }
        let mut queued = 0;
        for one in &all {
            queued += queue_side_effects(&daemon, &facts, one)?;
        }
        // The whole message, only for the ring of recent messages.
        let bytes = daemon
            .keeps_messages()
            .then(|| Arc::new([facts.header_block(), facts.body.clone()].concat()));
        let record = Record {
            source: Source::Milter,
            queue_id: &queue_id,
            version,
            summary: &summary,
            audit,
            lmtp_held: None,
            bytes,
        };
        // From here on a flush need not wait for this write.
        drop(expected);
        let entry = daemon.write_record(record, &decision)?;
        Ok(Written {
            entry,
            decision,
            queued,
        })
    }
}

/// The one INFO line per message, joinable with Postfix's log by queue id
/// (`NOQUEUE` before Postfix assigned one, as Postfix writes it).
struct LogLine<'a> {
    queue_id: &'a str,
    client: &'a ClientFacts,
    facts: &'a MessageFacts,
    version: u64,
    started: Instant,
}

impl LogLine<'_> {
    fn write(&self, decision: &Decision) {
        let reply = decision
            .reply
            .as_ref()
            .map(|r| format!(" reply=\"{} {} {}\"", r.code, r.status, r.text))
            .unwrap_or_default();
        tracing::info!(
            "{}: client={}[{}] helo={} from=<{}> to=<{}> verdict={}{reply} rules={} ruleset={} ms={}",
            if self.queue_id.is_empty() {
                "NOQUEUE"
            } else {
                self.queue_id
            },
            if self.client.name.is_empty() {
                "unknown"
            } else {
                &self.client.name
            },
            self.client.ip,
            self.client.helo,
            self.facts.from,
            self.facts.to.join(">,<"),
            decision.verdict.as_str(),
            if decision.matched.is_empty() {
                "-".to_string()
            } else {
                decision.matched.join(",")
            },
            self.version,
            self.started.elapsed().as_millis()
        );
    }
}

/// Writes the decision's `notify` and `reply` side effects to the outbox
/// (docs/language.md ("Rules and actions"): durable before the MTA gets its answer; the flush of
/// the audit entry that follows makes them durable). Forwarded copies are
/// the MTA's job here: the milter edits the envelope recipients. Returns
/// how many were queued.
fn queue_side_effects(
    daemon: &Daemon,
    facts: &MessageFacts,
    decision: &Decision,
) -> anyhow::Result<usize> {
    // Most decisions have no side effect: spare them the copy and digest.
    let has_effect = decision.actions.iter().any(|t| {
        !t.shadow
            && matches!(
                &t.what,
                TakenKind::Action(Action::Notify { .. } | Action::Reply { .. })
            )
    });
    if !has_effect {
        return Ok(0);
    }
    let mut wire = facts.header_block();
    wire.extend_from_slice(&facts.body);
    let origin = Origin::new(&wire, &facts.from, &facts.to);
    let accepted = !matches!(decision.verdict, Verdict::Reject | Verdict::Tempfail);
    // One decision for the message: it answers as its first recipient.
    let recipient = facts.to.first().map_or("", String::as_str);
    outbox::enqueue(daemon, &origin, decision, recipient, accepted, None)
}

async fn eom(daemon: Arc<Daemon>, cx: &mut EomContext<Session>) -> Status {
    let queue_id = macro_text(&cx.macros, c"i").unwrap_or_default();
    let Some(session) = cx.data.as_mut() else {
        return Status::Continue;
    };
    let client = session.client.clone();
    let Some(mut message) = session.message.take() else {
        return Status::Continue;
    };
    // Every message that reaches its end is recorded: a flush starting
    // meanwhile may wait for this one (group commit).
    let expected = daemon.store.expect_write();
    let decisions = match message.decided.take() {
        Some(decisions) => decisions,
        None => match evaluate(&daemon, &mut message, &client, Stage::Body).await {
            Some(decisions) => decisions,
            // Unreachable: every evaluation at the body stage is final.
            None => vec![stages::policy_decision(
                OnError::Accept,
                Stage::Body,
                PolicyCause::Error,
            )],
        },
    };
    if per_recipient(&daemon) && !message.facts.to.is_empty() {
        return eom_stamped(&daemon, cx, &message, &queue_id, decisions, expected).await;
    }
    let decision = decisions.into_iter().next().unwrap_or_else(|| {
        stages::policy_decision(OnError::Accept, Stage::Body, PolicyCause::Error)
    });
    let all = [decision.clone()];
    let (decision, _) = record(&daemon, &message, &queue_id, decision, &all, Some(expected)).await;
    let plan = edits::plan(&decision, &message.facts);
    carry_out(cx, &queue_id, plan, &decision).await
}

/// The end of a message decided per recipient (`milter/recipients.rs`):
/// one audit entry, then the SMTP answer, or the common edits and the
/// stamp LMTP delivery follows.
async fn eom_stamped(
    daemon: &Arc<Daemon>,
    cx: &mut EomContext<Session>,
    message: &InFlight,
    queue_id: &str,
    decisions: Vec<Decision>,
    expected: Expected,
) -> Status {
    let decisions = recipients::expand(&decisions, message.facts.to.len());
    let whole = recipients::message_decision(&decisions);
    let (decision, audit_id) =
        record(daemon, message, queue_id, whole, &decisions, Some(expected)).await;
    let Some(audit_id) = audit_id else {
        // Not recorded: the `on_error` decision, for the whole message.
        let plan = edits::plan(&decision, &message.facts);
        return carry_out(cx, queue_id, plan, &decision).await;
    };
    let per_recipient = RecipientDecisions {
        decisions: &decisions,
        facts: &message.facts,
    };
    let plan = match recipients::settle(&per_recipient, queue_id, message.loaded.version) {
        Settled::Whole(answer) => Plan {
            edits: Vec::new(),
            answer,
        },
        Settled::Stamped {
            mut edits,
            answer,
            mut stamp,
        } => {
            stamp.audit_id = audit_id;
            edits.push(recipients::stamp_edit(&stamp, &daemon.stamp_key));
            Plan { edits, answer }
        }
    };
    carry_out(cx, queue_id, plan, &decision).await
}

/// Sends the plan's edits, then its answer (`decision` gives a refusal's
/// reply).
async fn carry_out(
    cx: &mut EomContext<Session>,
    queue_id: &str,
    plan: Plan,
    decision: &Decision,
) -> Status {
    // A message must not be delivered without the edits (the decision
    // stamp among them) or the hold the decision asked for: when the MTA
    // refuses one, the message is deferred and decided again on retry.
    for edit in &plan.edits {
        if let Err(e) = apply(&cx.actions, edit).await {
            tracing::error!("milter edit {edit:?} failed (queue id {queue_id:?}): {e}; deferring");
            return defer(&mut cx.reply);
        }
    }
    match plan.answer {
        Answer::Accept => Status::Accept,
        Answer::Discard => Status::Discard,
        Answer::Quarantine(reason) => {
            if let Err(e) = cx.actions.quarantine(reason).await {
                tracing::error!("cannot quarantine (queue id {queue_id:?}): {e}; deferring");
                return defer(&mut cx.reply);
            }
            Status::Accept
        }
        Answer::Reject(_) | Answer::Tempfail(_) => refuse(&mut cx.reply, decision),
    }
}

async fn apply(
    actions: &indymilter::EomActions,
    edit: &Edit,
) -> Result<(), indymilter::ActionError> {
    match edit {
        Edit::AddHeader(name, value) => actions.add_header(name.as_str(), value.as_str()).await,
        Edit::ChangeHeader(name, index, value) => {
            actions
                .change_header(name.as_str(), *index, value.as_deref())
                .await
        }
        Edit::AddRcpt(rcpt) => actions.add_recipient(rcpt.as_str()).await,
        Edit::DeleteRcpt(rcpt) => actions.delete_recipient(rcpt.as_str()).await,
    }
}

/// The listener handed to indymilter: sets `TCP_NODELAY` on every accepted
/// connection, counts connections, and survives accept errors (a full
/// file table must not stop the milter for good).
struct Accepting {
    listener: Listener,
    daemon: Arc<Daemon>,
    backoff: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl indymilter::Listener for Accepting {
    type Io = Tracked;

    fn poll_accept(&mut self, cx: &mut TaskContext<'_>) -> Poll<io::Result<Tracked>> {
        loop {
            if let Some(backoff) = self.backoff.as_mut() {
                if backoff.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.backoff = None;
            }
            let accepted = match &mut self.listener {
                Listener::Tcp(l) => tokio::net::TcpListener::poll_accept(l, cx).map_ok(|(s, _)| {
                    if let Err(e) = s.set_nodelay(true) {
                        tracing::warn!("cannot set TCP_NODELAY: {e}");
                    }
                    Stream::Tcp(s)
                }),
                Listener::Unix(l) => {
                    tokio::net::UnixListener::poll_accept(l, cx).map_ok(|(s, _)| Stream::Unix(s))
                }
            };
            match accepted {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(stream)) => {
                    self.daemon.metrics.milter_connection_opened();
                    return Poll::Ready(Ok(Tracked {
                        stream,
                        daemon: self.daemon.clone(),
                    }));
                }
                Poll::Ready(Err(e)) => {
                    tracing::warn!("milter accept failed: {e}");
                    self.backoff = Some(Box::pin(tokio::time::sleep(Duration::from_millis(100))));
                }
            }
        }
    }
}

#[derive(Debug)]
enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// A connection, counted in `weir_milter_connections` while it lives.
struct Tracked {
    stream: Stream,
    daemon: Arc<Daemon>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.daemon.metrics.milter_connection_closed();
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match &mut self.get_mut().stream {
            Stream::Tcp(s) => {
                let read = Pin::new(&mut *s).poll_read(cx, buf);
                if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
                    quick_ack(s);
                }
                read
            }
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

/// ACKs what was just read at once instead of after the delayed-ACK timer:
/// an MTA with Nagle's algorithm on (Postfix) holds each packet that wants
/// no reply (`SMFIP_NR_*`, macros) until the one before is ACKed. Linux
/// leaves quick-ACK mode by itself, so it is set again after every read.
fn quick_ack(stream: &tokio::net::TcpStream) {
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_quickack(true) {
        tracing::debug!("cannot set TCP_QUICKACK: {e}");
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

pub mod client;
mod recipients;

use recipients::{RecipientDecisions, Settled};

#[cfg(test)]
mod tests {
    use super::client::{Client, Edit as E, Mail, Reply as R};
    use super::*;
    use crate::config::Config;
    use std::net::SocketAddr;
    use std::path::PathBuf;

    const RULES: &str = r#"
rule blocked_sender priority 10 {
  when envelope.from.domain == "blocked.test"
  then reject 554 "5.7.3" "Sender blocked: 100% sure"
}
rule no_nobody { when envelope.to.local == "nobody" then tempfail 452 "4.2.2" "Mailbox full" }
rule held { when subject contains "HOLDME" then quarantine "suspicious subject" }
rule dropped { when subject contains "DROPME" then discard }
rule body_virus { when body contains "EICAR" then reject "Virus found" }
rule marked {
  when subject contains "billing"
  then { add_header "X-Checked" "yes"; tag "billing"; tag "vip"; fileinto "Support/Billing"; prepend_subject "[B] " }
}
rule rerouted { when subject contains "REDIRECT" then redirect "archive@example.test" }
"#;

    struct Fixture {
        addr: SocketAddr,
        daemon: Arc<Daemon>,
        dir: PathBuf,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    async fn start(rules: &str, tweak: impl FnOnce(&mut Config)) -> Fixture {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("weir-milter-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let rules_path = dir.join("rules.flow");
        std::fs::write(&rules_path, rules).expect("rules");
        let mut config = Config::defaults(&rules_path);
        config.state_dir = dir.join("state");
        tweak(&mut config);
        let daemon = Daemon::new(config).expect("engine");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(daemon.clone(), Listener::Tcp(listener), async {
            let _ = stopped.await;
        }));
        Fixture {
            addr,
            daemon,
            dir,
            stop: Some(stop),
        }
    }

    fn mail(from: &str, to: &[&str], subject: &str, body: &str) -> Mail {
        Mail {
            helo: "client.test".into(),
            from: from.into(),
            to: to.iter().map(|s| s.to_string()).collect(),
            headers: vec![
                ("From".into(), from.into()),
                ("Subject".into(), subject.into()),
                ("Message-ID".into(), "<m1@test>".into()),
            ],
            body: body.as_bytes().to_vec(),
            queue_id: "Q1".into(),
            ..Mail::default()
        }
    }

    async fn send(fx: &Fixture, m: &Mail) -> super::client::Outcome {
        let mut c = Client::connect(fx.addr).await.expect("connect");
        assert_eq!(c.hello(m).await.expect("hello"), R::Continue);
        let outcome = c.message(m).await.expect("message");
        let _ = c.quit().await;
        outcome
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn negotiates_every_stage_and_the_actions_used() {
        let fx = start(RULES, |_| {}).await;
        let c = Client::connect(fx.addr).await.expect("connect");
        // No SMFIP_NO* flag (Postfix would stall on the skipped stages'
        // macros); SKIP requested.
        assert_eq!(c.opts() & 0x37f, 0, "opts {:#x}", c.opts());
        assert_eq!(c.opts() & 0x400, 0x400);
        // No reply to connect, HELO, each recipient, each header, unknown
        // commands and (a rule reads it) each body chunk; MAIL, DATA and
        // the end of the headers keep theirs: rules can refuse there.
        let quiet = ProtoOpts::NOREPLY_CONNECT
            | ProtoOpts::NOREPLY_HELO
            | ProtoOpts::NOREPLY_RCPT
            | ProtoOpts::NOREPLY_HEADER
            | ProtoOpts::NOREPLY_UNKNOWN
            | ProtoOpts::NOREPLY_BODY;
        let replied = ProtoOpts::NOREPLY_MAIL | ProtoOpts::NOREPLY_DATA | ProtoOpts::NOREPLY_EOH;
        let opts = ProtoOpts::from_bits_truncate(c.opts());
        assert!(opts.contains(quiet), "opts {:#x}", c.opts());
        assert!(!opts.intersects(replied), "opts {:#x}", c.opts());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_reply_is_asked_only_where_the_mta_offers_it() {
        let fx = start(RULES, |_| {}).await;
        let c = Client::connect(fx.addr).await.expect("connect");
        drop(c);
        // An MTA of protocol 2 to 5 offers no SMFIP_NR_* flag: indymilter
        // would refuse the connection if Weir asked for one anyway.
        let mut raw = tokio::net::TcpStream::connect(fx.addr).await.expect("tcp");
        let mut packet = 13u32.to_be_bytes().to_vec();
        packet.push(b'O');
        packet.extend_from_slice(&6u32.to_be_bytes());
        packet.extend_from_slice(&0x1ffu32.to_be_bytes());
        packet.extend_from_slice(&0x7ffu32.to_be_bytes());
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        raw.write_all(&packet).await.expect("send");
        let len = raw.read_u32().await.expect("reply length") as usize;
        let mut reply = vec![0; len];
        raw.read_exact(&mut reply).await.expect("reply");
        assert_eq!(reply[0], b'O');
        let opts = u32::from_be_bytes(reply[9..13].try_into().expect("opts"));
        assert_eq!(opts & !0x7ff, 0, "opts {opts:#x}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reload_after_negotiation_still_refuses_where_a_reply_is_left() {
        // Only tags: every stage up to the body's first chunk is quiet.
        let fx = start(
            r#"rule r { when subject contains "x" then tag "x" }"#,
            |_| {},
        )
        .await;
        let mut c = Client::connect(fx.addr).await.expect("connect");
        let quiet = ProtoOpts::NOREPLY_MAIL | ProtoOpts::NOREPLY_DATA | ProtoOpts::NOREPLY_EOH;
        assert!(ProtoOpts::from_bits_truncate(c.opts()).contains(quiet));
        let m = mail("a@blocked.test", &["b@example.test"], "x", "body\r\n");
        c.hello(&m).await.expect("hello");
        // The rules reloaded on this open connection refuse at MAIL, whose
        // reply it negotiated away: the refusal comes at the end.
        std::fs::write(fx.dir.join("rules.flow"), RULES).expect("rules");
        crate::reload::reload(&fx.daemon).await.expect("reload");
        let o = c.message(&m).await.expect("message");
        assert_eq!(
            (o.stage, o.reply),
            (
                "eom",
                R::Code("554 5.7.3 Sender blocked: 100%% sure".into())
            )
        );
        let fine = mail("a@ok.test", &["b@example.test"], "x", "body\r\n");
        let o = c.message(&fine).await.expect("message");
        assert_eq!((o.stage, o.reply), ("eom", R::Accept));
        // A new connection negotiates with the new rules: MAIL is answered.
        let o = send(&fx, &m).await;
        assert_eq!(o.stage, "mail");
        // Both refusals are recorded as decided at MAIL, whenever answered.
        let audit = fx.daemon.store.audit_entries(&Default::default(), 10);
        let seen: Vec<(String, String)> = audit
            .iter()
            .map(|e| {
                (
                    e.decision["verdict"].to_string(),
                    e.decision["stage"].to_string(),
                )
            })
            .collect();
        let reject_at_mail = ("\"reject\"".to_string(), "\"mail\"".to_string());
        assert_eq!(
            seen.iter().filter(|s| **s == reject_at_mail).count(),
            2,
            "{seen:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn envelope_rules_answer_before_data() {
        let fx = start(RULES, |_| {}).await;
        let o = send(
            &fx,
            &mail("a@blocked.test", &["bob@example.test"], "hi", "x\r\n"),
        )
        .await;
        assert_eq!(o.stage, "mail");
        assert_eq!(
            o.reply,
            R::Code("554 5.7.3 Sender blocked: 100%% sure".into())
        );
        let o = send(
            &fx,
            &mail(
                "a@ok.test",
                &["bob@example.test", "nobody@example.test"],
                "hi",
                "x\r\n",
            ),
        )
        .await;
        assert_eq!(o.stage, "data");
        assert_eq!(o.reply, R::Code("452 4.2.2 Mailbox full".into()));
        let audit = fx.daemon.store.audit_entries(&Default::default(), 10);
        assert_eq!(audit.len(), 2);
        assert_eq!(audit[0].decision["verdict"], "reject");
        assert_eq!(audit[0].decision["stage"], "mail");
        assert_eq!(audit[1].decision["stage"], "rcpt");
        assert_eq!(audit[1].queue_id, "Q1");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hold_the_mta_refuses_defers_the_message() {
        let fx = start(RULES, |_| {}).await;
        // Every action but SMFIF_QUARANTINE (0x20): the hold fails, so the
        // message must not be accepted (it would be delivered unheld).
        let m = mail("a@ok.test", &["bob@example.test"], "HOLDME", "x\r\n");
        let mut c = Client::connect_offering(fx.addr, 0x1ff & !0x20)
            .await
            .expect("connect");
        assert_eq!(c.hello(&m).await.expect("hello"), R::Continue);
        let o = c.message(&m).await.expect("message");
        let _ = c.quit().await;
        assert_eq!(
            o.reply,
            R::Code("451 4.3.0 Mail filter failed; try again later".into())
        );
        assert!(o.edits.iter().all(|e| !matches!(e, E::Quarantine(_))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn body_header_and_edit_outcomes() {
        let fx = start(RULES, |_| {}).await;
        let o = send(
            &fx,
            &mail("a@ok.test", &["bob@example.test"], "hi", "EICAR inside\r\n"),
        )
        .await;
        assert_eq!(
            (o.stage, o.reply),
            ("eom", R::Code("550 5.7.1 Virus found".into()))
        );

        let o = send(
            &fx,
            &mail("a@ok.test", &["bob@example.test"], "HOLDME", "x\r\n"),
        )
        .await;
        assert_eq!(o.reply, R::Accept);
        assert_eq!(o.edits, vec![E::Quarantine("suspicious subject".into())]);
        let held = fx
            .daemon
            .store
            .quarantine_entry("Q1")
            .expect("quarantine index");
        assert_eq!(
            (held.rule.as_str(), held.reason.as_str()),
            ("held", "suspicious subject")
        );

        let o = send(
            &fx,
            &mail("a@ok.test", &["bob@example.test"], "DROPME", "x\r\n"),
        )
        .await;
        assert_eq!(o.reply, R::Discard);

        let mut m = mail("a@ok.test", &["bob@example.test"], "billing", "x\r\n");
        m.headers.push(("X-Weir-Tags".into(), "forged".into()));
        let o = send(&fx, &m).await;
        assert_eq!(o.reply, R::Accept);
        assert_eq!(
            o.edits,
            vec![
                E::ChangeHeader(1, "X-Weir-Tags".into(), "".into()),
                E::AddHeader("X-Checked".into(), "yes".into()),
                E::ChangeHeader(1, "Subject".into(), "[B] billing".into()),
                E::AddHeader("X-Weir-Tags".into(), "billing, vip".into()),
                E::AddHeader("X-Weir-Folder".into(), "Support/Billing".into()),
            ]
        );

        let o = send(
            &fx,
            &mail(
                "a@ok.test",
                &["bob@example.test", "carol@example.test"],
                "REDIRECT",
                "x\r\n",
            ),
        )
        .await;
        assert_eq!(
            o.edits,
            vec![
                E::DeleteRcpt("<bob@example.test>".into()),
                E::DeleteRcpt("<carol@example.test>".into()),
                E::AddRcpt("<archive@example.test>".into()),
            ]
        );
        let audit = fx.daemon.store.audit_entries(&Default::default(), 10);
        let verdicts: Vec<&str> = audit
            .iter()
            .filter_map(|a| a.decision["verdict"].as_str())
            .collect();
        assert_eq!(
            verdicts,
            ["reject", "quarantine", "discard", "accept", "accept"]
        );
        assert_eq!(audit[3].message_id, "m1@test");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_body_is_skipped_when_no_rule_reads_it() {
        let fx = start(
            r#"rule r { when subject contains "x" then tag "x" }"#,
            |_| {},
        )
        .await;
        let mut c = Client::connect(fx.addr).await.expect("connect");
        // Only a tag: MAIL, RCPT, DATA, the header and its end get no
        // reply; the body's first chunk keeps its own, for the skip.
        let opts = ProtoOpts::from_bits_truncate(c.opts());
        let quiet = ProtoOpts::NOREPLY_MAIL
            | ProtoOpts::NOREPLY_RCPT
            | ProtoOpts::NOREPLY_DATA
            | ProtoOpts::NOREPLY_HEADER
            | ProtoOpts::NOREPLY_EOH;
        assert!(opts.contains(quiet), "opts {:#x}", c.opts());
        assert!(
            !opts.contains(ProtoOpts::NOREPLY_BODY),
            "opts {:#x}",
            c.opts()
        );
        let m = mail("a@ok.test", &["b@example.test"], "x", "body\r\n");
        c.hello(&m).await.expect("hello");
        c.send(b'M', b"<a@ok.test>\0").await.expect("mail");
        c.send(b'R', b"<b@example.test>\0").await.expect("rcpt");
        c.send(b'T', &[]).await.expect("data");
        c.send(b'L', b"Subject\0x\0").await.expect("header");
        c.send(b'N', &[]).await.expect("eoh");
        c.send(b'B', b"body\r\n").await.expect("body");
        assert_eq!(c.read().await.expect("reply").0, b's', "SMFIR_SKIP");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn several_messages_per_connection() {
        let fx = start(RULES, |_| {}).await;
        let mut c = Client::connect(fx.addr).await.expect("connect");
        let blocked = mail("a@blocked.test", &["b@example.test"], "hi", "x\r\n");
        let fine = mail("a@ok.test", &["b@example.test"], "billing", "x\r\n");
        c.hello(&fine).await.expect("hello");
        for _ in 0..3 {
            assert_eq!(c.message(&blocked).await.expect("m").stage, "mail");
            let o = c.message(&fine).await.expect("m");
            assert_eq!((o.stage, o.reply), ("eom", R::Accept));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn limits_apply_on_limit() {
        let fx = start(RULES, |c| {
            c.limits.max_headers = 2;
            c.limits.max_message_size = 2000;
            c.limits.on_limit = OnError::Reject;
        })
        .await;
        // The header's reply is negotiated away: the refusal is answered at
        // the end of the headers.
        let o = send(&fx, &mail("a@ok.test", &["b@example.test"], "hi", "x\r\n")).await;
        assert_eq!(o.stage, "eoh");
        assert_eq!(
            o.reply,
            R::Code("552 5.3.4 Message exceeds the filter's limits".into())
        );
        let mut m = mail("a@ok.test", &["b@example.test"], "hi", &"y".repeat(5000));
        m.headers.truncate(1);
        // A rule reads the body: its chunks get no reply, the refusal is
        // answered at the end of the message.
        let o = send(&fx, &m).await;
        assert_eq!((o.stage, o.reply.is_final()), ("eom", true));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_evaluation_past_eval_timeout_gets_on_error() {
        // A zero timeout (with no parsing allowance for an empty body)
        // elapses before an evaluation of a large header block can finish
        // (it runs on another thread), so every message meets `on_error`.
        let fx = start(RULES, |c| {
            c.limits.eval_timeout = Duration::ZERO;
            c.milter.on_error = OnError::Reject;
        })
        .await;
        let mut m = mail("a@ok.test", &["b@example.test"], "hi", "");
        for i in 0..900 {
            m.headers.push((format!("X-Filler-{i}"), "f".repeat(1000)));
        }
        let o = send(&fx, &m).await;
        assert_eq!(o.reply, R::Code("550 5.3.0 Mail filter failed".into()));
        let audit = fx.daemon.store.audit_entries(&Default::default(), 10);
        assert_eq!(audit.len(), 1, "the failure is recorded: {audit:?}");
        assert_eq!(audit[0].decision["verdict"], "reject");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_unix_socket_serves_the_client_as_tcp_does() {
        let fx = start(RULES, |_| {}).await;
        let path = fx.dir.join("milter.sock");
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(fx.daemon.clone(), Listener::Unix(listener), async {
            let _ = stopped.await;
        }));
        let endpoint: super::client::Endpoint = format!("unix:{}", path.display())
            .parse()
            .expect("an endpoint");
        let m = mail("a@ok.test", &["b@example.test"], "billing", "x\r\n");
        let mut c = Client::connect_to(&endpoint, 0x1ff).await.expect("connect");
        assert_eq!(c.hello(&m).await.expect("hello"), R::Continue);
        let o = c.message(&m).await.expect("message");
        assert_eq!((o.stage, o.reply), ("eom", R::Accept));
        let _ = stop.send(());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn garbage_ends_one_session_only() {
        let fx = start(RULES, |_| {}).await;
        let inputs: [&[u8]; 5] = [
            b"GET / HTTP/1.0\r\n\r\n",
            &[0, 0, 0, 5, b'O', 0, 0],
            &[0xff, 0xff, 0xff, 0xff, b'X'],
            &[0, 0, 0, 1, b'Z'],
            &[
                0, 0, 0, 13, b'O', 0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0x1f, 0xff, 0xff, 0, 0, 0, 2, b'M',
            ],
        ];
        for garbage in inputs {
            let mut raw = tokio::net::TcpStream::connect(fx.addr)
                .await
                .expect("connect");
            use tokio::io::AsyncWriteExt;
            let _ = raw.write_all(garbage).await;
            drop(raw);
        }
        // A truncated session left open must not block the others.
        let mut stuck = tokio::net::TcpStream::connect(fx.addr)
            .await
            .expect("connect");
        use tokio::io::AsyncWriteExt;
        let _ = stuck.write_all(&[0, 0, 0, 50, b'M', b'<']).await;
        let o = send(
            &fx,
            &mail("a@ok.test", &["b@example.test"], "billing", "x\r\n"),
        )
        .await;
        assert_eq!(o.reply, R::Accept);
    }
}
