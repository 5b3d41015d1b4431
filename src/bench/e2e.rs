//! `billclear bench e2e`: the whole path under an open-loop load. A fresh
//! stack (see `demo::start`: database, the hub and the billers' direct
//! simulators answering after `--biller-latency-ms`, the API, the dispatch
//! and callback workers, and a receiver that verifies and acknowledges
//! every callback) takes `--rate` signed payments per second until
//! `--payments`; then the bench waits until every accepted payment is
//! final and its callback acknowledged (the drain), measures, and audits.
//! The offering and the receiver run on threads (and runtimes) of their
//! own, so the service's load never delays an offer or an acknowledgement
//! in the bench's own queue.
//!
//! Which clock each figure uses (all in this one process):
//! * offering, answers, accepted/s: the bench's monotonic clock;
//! * accept-to-CONFIRMED and confirmed/s: the service's, from the payment's
//!   events in the database (RECEIVED's time, taken when the API accepted
//!   the request, to CONFIRMED's, taken when the worker recorded the
//!   biller's answer), read after the run with one query;
//! * callback delay: the CONFIRMED (or REJECTED) event's time to the
//!   callback's arrival at the receiver (the wall clock, read as the
//!   request arrives);
//! * drain and accept-to-callback: the wall clock (the last offer, the
//!   accepted answer, the arrival of callbacks).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::{DateTime, Utc};
use clap::Args;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::load::{offer, payment_body, Answer};
use super::percentile;
use crate::client::SignedClient;
use crate::config::Config;
use crate::demo::{self, Stack, StackOptions};
use crate::domain::money::{Currency, Money};
use crate::domain::payment::PaymentStatus;
use crate::receiver::Arrival;
use crate::store::postgres;
use crate::store::LedgerStore;

/// A payment offered more than this behind its schedule counts as late.
pub const LATE_MS: u64 = 50;
/// How long one request may take before it counts as unanswered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The problem code of a 503 for a biller whose queue is too long.
pub const BACKLOGGED: &str = "biller_backlogged";

#[derive(Args, Debug, Clone)]
#[command(after_help = "\
Figures and their clocks: accepted/s on the bench's clock; accept-to-CONFIRMED \
and confirmed/s from the payments' events in the database (RECEIVED's time to \
CONFIRMED's, the service's clock); callback delay from the CONFIRMED event to \
the callback's arrival at the receiver; the drain from the last offer until \
every accepted payment is final and its callback acknowledged. The audit: \
every payment confirmed or rejected exactly once, the ledger balanced with one \
pending transfer per payment, the simulators' books equal to ours, every \
callback signed, nothing left in the outbox. Exits non-zero when the audit \
fails or the drain times out.

Dispatch and callback settings come from the configuration (e.g. \
BILLCLEAR_DISPATCH__CONCURRENCY=128).")]
pub struct E2eBenchArgs {
    /// Payments to offer.
    #[arg(long, default_value_t = 20_000)]
    pub payments: u64,
    /// Payments offered per second, on a fixed schedule (open loop: not
    /// waiting for answers, within --max-in-flight).
    #[arg(long, default_value_t = 1_000)]
    pub rate: u32,
    /// Every simulator (the hub and the billers direct) answers after this
    /// many milliseconds.
    #[arg(long, default_value_t = 20)]
    pub biller_latency_ms: u64,
    /// Requests in flight at most. A payment due while this many are
    /// unanswered waits, and counts as late if it waits over 50 ms.
    #[arg(long, default_value_t = 512)]
    pub max_in_flight: usize,
    /// Give up waiting for the drain this many seconds after the last
    /// offer (the audit then fails).
    #[arg(long, default_value_t = 300)]
    pub drain_timeout_s: u64,
    /// Progress on stderr this often, in seconds (0: none).
    #[arg(long, default_value_t = 5)]
    pub progress_s: u64,
    /// Print one JSON object instead of the figures (progress stays on
    /// stderr).
    #[arg(long)]
    pub json: bool,
    /// Keep the bench's database afterwards (its URL is printed).
    #[arg(long)]
    pub keep_db: bool,
    /// Seed of the payments (accounts and amounts).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// billclear processes on the one database (each with its API and
    /// workers); the offered load is spread over them.
    #[arg(long, default_value_t = 1)]
    pub instances: usize,
    /// Each route's `max_in_flight`: calls through it at once, for the
    /// whole fleet (the biller's agreed concurrency; each process takes
    /// its share).
    #[arg(long, default_value_t = 192)]
    pub route_max_in_flight: u32,
}

/// What the bench prints with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct E2eReport {
    /// billclear processes on the database.
    pub instances: usize,
    pub payments: u64,
    pub rate: u32,
    pub biller_latency_ms: u64,
    pub max_in_flight: usize,
    /// Each route's calls at once, for the whole fleet.
    pub route_max_in_flight: u32,
    /// Payments offered (all of them, unless the bench failed).
    pub offered: u64,
    pub offered_per_s: f64,
    /// Offered more than `late_threshold_ms` behind the schedule: the
    /// in-flight bound was reached or the bench itself fell behind.
    pub offered_late: u64,
    pub late_threshold_ms: u64,
    pub max_offer_lag_ms: f64,
    /// Answered 201 (or 200) with a payment id.
    pub accepted: u64,
    /// Accepted payments per second, from the first offer to the last
    /// accepted answer.
    pub accepted_per_s: f64,
    pub answer_p50_ms: f64,
    pub answer_p99_ms: f64,
    /// 503 answers with the problem code `biller_backlogged`.
    pub refused_backlogged: u64,
    /// Other 503 answers.
    pub refused_unavailable_other: u64,
    /// Every refusal by "status code" (the backlogged ones included).
    pub refused: BTreeMap<String, u64>,
    /// Not answered: connection failures and timeouts (30 s).
    pub unanswered: u64,
    /// Accepted payments CONFIRMED, REJECTED, or neither when the bench
    /// stopped waiting.
    pub confirmed: u64,
    pub rejected: u64,
    pub not_final: u64,
    /// Confirmed payments per second, from the first RECEIVED event to the
    /// last CONFIRMED one.
    pub confirmed_per_s: f64,
    /// Every accepted payment final and its callback acknowledged in time.
    pub drained: bool,
    /// From the last offer until the last accepted payment's callback was
    /// acknowledged (or the bench gave up).
    pub drain_s: f64,
    pub accept_to_confirmed_p50_ms: f64,
    pub accept_to_confirmed_p99_ms: f64,
    pub accept_to_confirmed_max_ms: f64,
    /// Distinct events acknowledged by the receiver, and every delivery.
    pub callbacks_acknowledged: u64,
    pub callback_deliveries: u64,
    /// From the final event (CONFIRMED or REJECTED) to the arrival of its
    /// first acknowledged callback.
    pub callback_ack_p50_ms: f64,
    pub callback_ack_p99_ms: f64,
    pub callback_ack_max_ms: f64,
    /// From the accepted answer to the callback's arrival (the channel's
    /// view of the whole path).
    pub accept_to_callback_p50_ms: f64,
    pub accept_to_callback_p99_ms: f64,
    /// Payments in the database the bench got no accepted answer for
    /// (their answer was lost).
    pub payments_not_answered_accepted: u64,
    pub events_exactly_once: bool,
    pub ledger_balanced: bool,
    pub every_payment_one_transfer: bool,
    pub books_agree: bool,
    pub books_matched: u64,
    pub callbacks_all_verified: bool,
    /// Outbox work left undone once drained (dispatch or callbacks).
    pub outbox_pending: u64,
    pub audit_ok: bool,
    /// What failed, in words (empty when `audit_ok`).
    pub audit_problems: Vec<String>,
    pub elapsed_s: f64,
    pub database: Option<String>,
}

/// Counters the offering tasks and the progress lines share.
#[derive(Default)]
struct Counters {
    offered: AtomicU64,
    accepted: AtomicU64,
    backlogged: AtomicU64,
    refused: AtomicU64,
    unanswered: AtomicU64,
    late: AtomicU64,
}

/// One answer, as the offering task saw it.
struct Answered {
    answer: Answer,
    latency_us: u64,
    at: DateTime<Utc>,
    at_instant: Instant,
}

#[derive(Default)]
struct Collected {
    /// Accepted payments and when their answer arrived (wall clock).
    accepted: HashMap<uuid::Uuid, DateTime<Utc>>,
    last_accepted: Option<Instant>,
    latencies_us: Vec<u64>,
    refused: BTreeMap<String, u64>,
    backlogged: u64,
    unavailable_other: u64,
    unanswered: u64,
}

impl Collected {
    fn add(&mut self, a: Answered) {
        self.latencies_us.push(a.latency_us);
        match &a.answer {
            Answer::Accepted(id) => {
                self.accepted.insert(id.0, a.at);
                self.last_accepted = Some(a.at_instant);
            }
            Answer::Refused { status, .. } => {
                if a.answer.is_unavailable(BACKLOGGED) {
                    self.backlogged += 1;
                } else if *status == 503 {
                    self.unavailable_other += 1;
                }
                *self.refused.entry(a.answer.label()).or_default() += 1;
            }
            Answer::Failed(_) | Answer::TimedOut(_) => self.unanswered += 1,
        }
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn per_s(n: u64, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        n as f64 / d.as_secs_f64()
    }
}

/// Microseconds from `a` to `b` (0 if `b` is earlier).
fn us_between(a: DateTime<Utc>, b: DateTime<Utc>) -> u64 {
    (b - a).num_microseconds().unwrap_or(i64::MAX).max(0) as u64
}

/// A callback about a final state.
fn is_final(a: &Arrival) -> bool {
    matches!(
        a.status,
        Some(PaymentStatus::Confirmed | PaymentStatus::Rejected)
    )
}

pub async fn run(config: Config, args: E2eBenchArgs) -> anyhow::Result<()> {
    let report = measure(&config, &args).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", render(&report));
    }
    anyhow::ensure!(
        report.audit_ok,
        "bench e2e: the audit FAILED: {}",
        report.audit_problems.join("; ")
    );
    Ok(())
}

/// Runs the bench and returns its report; the database is dropped unless
/// `keep_db`, the stack's files (keys) always removed.
pub async fn measure(config: &Config, args: &E2eBenchArgs) -> anyhow::Result<E2eReport> {
    if args.payments == 0 || args.rate == 0 || args.max_in_flight == 0 {
        bail!("--payments, --rate and --max-in-flight must be positive");
    }
    let began = Instant::now();
    let say = |line: String| demo::say(args.json, line);
    say(format!(
        "billclear bench e2e: {} payments at {}/s, billers answering after {} ms, {} billclear process(es)",
        args.payments, args.rate, args.biller_latency_ms, args.instances.max(1)
    ));
    let opts = StackOptions {
        db_prefix: "billclear_bench_e2e",
        files_root: std::env::temp_dir().join("billclear-bench-e2e"),
        pool: config.database.max_connections,
        fail_first_callbacks: 0,
        callback_receiver_for_load: true,
        biller_latency_ms: args.biller_latency_ms,
        channel_rate_limit_rps: args.rate.saturating_mul(2).max(10_000),
        miniature: false,
        json: args.json,
        instances: args.instances.max(1),
        route_max_in_flight: args.route_max_in_flight,
    };
    let stack = demo::start(config, &opts).await?;
    let d = &config.dispatch;
    say(format!(
        "• settings     dispatch concurrency {}, claim batch {}, poll {} ms, commit groups of {} ({} at once); callbacks concurrency {}; pool {} connections",
        d.concurrency,
        d.claim_batch,
        d.poll_ms,
        d.commit_max_batch,
        d.commit_max_inflight,
        config.callbacks.concurrency,
        opts.pool
    ));
    let result = load_and_audit(&stack, args).await;
    stack.stop().await;
    let _ = std::fs::remove_dir_all(&stack.dir);
    let mut report = match result {
        Ok(r) => r,
        Err(e) => {
            if !args.keep_db {
                let _ = postgres::drop_database(&stack.server_url, &stack.db_name).await;
            }
            return Err(e);
        }
    };
    report.database = stack.keep_or_drop(config, args.keep_db).await?;
    report.elapsed_s = began.elapsed().as_secs_f64();
    Ok(report)
}

async fn load_and_audit(stack: &Stack, args: &E2eBenchArgs) -> anyhow::Result<E2eReport> {
    // Customers of every biller the hub serves (the direct simulators know
    // the same ones), open accounts only: every payment should confirm.
    let book = biller_sim::hub::default_hub_book(Utc::now().date_naive());
    let accounts: Vec<(String, biller_sim::Account)> =
        book.into_iter().filter(|(_, a)| a.open).collect();
    anyhow::ensure!(!accounts.is_empty(), "no open account to pay");
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    // Which account and how much (10.00 to 500.00), decided before the run.
    let plan: Vec<(u32, i64)> = (0..args.payments)
        .map(|_| {
            (
                rng.gen_range(0..accounts.len()) as u32,
                rng.gen_range(1_000..=50_000),
            )
        })
        .collect();
    let counters = Arc::new(Counters::default());
    let progress = (args.progress_s > 0).then(|| {
        tokio::spawn(progress_lines(
            counters.clone(),
            stack.receiver.clone(),
            args.clone(),
            Instant::now(),
        ))
    });
    // The offering runs on a thread and a runtime of its own: the
    // service's tasks (this runtime's) never delay an offer or the reading
    // of an answer, and what the bench costs shows as its own thread.
    let offered = {
        let clients: Vec<SignedClient> = stack.clients.iter().map(|(_, c)| c.clone()).collect();
        let (counters, args) = (counters.clone(), args.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<Offered> {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(offer_all(clients, accounts, plan, counters, args))
        })
        .await??
    };
    let Offered {
        collected,
        started,
        last_offer,
        last_offer_at,
        max_lag,
    } = offered;
    let offering = last_offer.duration_since(started);
    let accepted = collected.accepted.len() as u64;

    // The drain: until every accepted payment's final state has been
    // acknowledged by the receiver (only final states are called back,
    // after they are committed).
    let deadline = last_offer + Duration::from_secs(args.drain_timeout_s);
    let missing = |receiver: &crate::receiver::CallbackReceiver| {
        let done: HashSet<uuid::Uuid> = receiver
            .arrivals()
            .iter()
            .filter(|a| a.first_acknowledgement && is_final(a))
            .map(|a| a.payment_id)
            .collect();
        collected
            .accepted
            .keys()
            .filter(|id| !done.contains(id))
            .count()
    };
    let mut drained = false;
    loop {
        // The exact check only once enough callbacks have come.
        if stack.receiver.tally().acknowledged >= accepted && missing(&stack.receiver) == 0 {
            drained = true;
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(p) = progress {
        p.abort();
    }
    if !drained {
        eprintln!(
            "bench e2e: gave up waiting {} s after the last offer: {} of {accepted} accepted payments not final or their callback not acknowledged",
            args.drain_timeout_s,
            missing(&stack.receiver)
        );
    }
    let arrivals = stack.receiver.arrivals();
    let tally = stack.receiver.tally();
    // The first acknowledged callback of each payment's final state.
    let mut acked_at: HashMap<uuid::Uuid, DateTime<Utc>> = HashMap::new();
    for a in arrivals
        .iter()
        .filter(|a| a.first_acknowledgement && is_final(a))
    {
        acked_at.entry(a.payment_id).or_insert(a.at);
    }
    let drain = if drained {
        let last = collected
            .accepted
            .keys()
            .filter_map(|id| acked_at.get(id))
            .max()
            .copied()
            .unwrap_or(last_offer_at);
        Duration::from_micros(us_between(last_offer_at, last))
    } else {
        last_offer.elapsed()
    };

    // The figures and the audit, from the database after the run.
    audit(
        stack,
        args,
        Offering {
            collected,
            offered: counters.offered.load(Relaxed),
            late: counters.late.load(Relaxed),
            max_lag,
            offering,
            started,
        },
        Drain {
            drained,
            drain,
            acked_at,
            deliveries: tally.deliveries,
            acknowledged: tally.acknowledged,
            unverified: tally.unverified,
        },
    )
    .await
}

/// What the offering hands back.
struct Offered {
    collected: Collected,
    /// When payment 0 was due, and when the last one was sent.
    started: Instant,
    last_offer: Instant,
    last_offer_at: DateTime<Utc>,
    max_lag: Duration,
}

/// Offers every payment of `plan` on its schedule (payment i due at
/// i / rate seconds), each by a task of its own, at most `max_in_flight`
/// unanswered; returns once every answer is in.
async fn offer_all(
    clients: Vec<SignedClient>,
    accounts: Vec<(String, biller_sim::Account)>,
    plan: Vec<(u32, i64)>,
    counters: Arc<Counters>,
    args: E2eBenchArgs,
) -> anyhow::Result<Offered> {
    let cny = Currency::from_code("CNY")?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    // Warm each app's connection up (not measured).
    for c in &clients {
        let _ = c.get("/healthz").await;
    }
    let in_flight = Arc::new(tokio::sync::Semaphore::new(args.max_in_flight));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Answered>();
    let collector = tokio::spawn(async move {
        let mut c = Collected::default();
        while let Some(a) = rx.recv().await {
            c.add(a);
        }
        c
    });
    let late = Duration::from_millis(LATE_MS);
    let mut max_lag = Duration::ZERO;
    let interval_ns = 1e9 / f64::from(args.rate);
    let started = Instant::now();
    for (i, (account, cents)) in plan.iter().enumerate() {
        let due = started + Duration::from_nanos((i as f64 * interval_ns) as u64);
        if due > Instant::now() {
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        }
        let permit = match in_flight.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => in_flight.clone().acquire_owned().await?,
        };
        let lag = Instant::now().saturating_duration_since(due);
        max_lag = max_lag.max(lag);
        if lag > late {
            counters.late.fetch_add(1, Relaxed);
        }
        let (biller, acct) = &accounts[*account as usize];
        let reference = format!("e2e-{run_id}-{i}");
        let amount = Money::new(rust_decimal::Decimal::new(*cents, 2), cny)?;
        let body = payment_body(biller, &acct.account_number, &amount, &reference);
        let client = clients[i % clients.len()].clone();
        let (tx, counters) = (tx.clone(), counters.clone());
        counters.offered.fetch_add(1, Relaxed);
        tokio::spawn(async move {
            let sent = Instant::now();
            let answer = offer(&client, &reference, &body, REQUEST_TIMEOUT).await;
            let at_instant = Instant::now();
            let at = Utc::now();
            drop(permit);
            let counter = match &answer {
                Answer::Accepted(_) => &counters.accepted,
                a if a.is_unavailable(BACKLOGGED) => &counters.backlogged,
                Answer::Refused { .. } => &counters.refused,
                Answer::Failed(_) | Answer::TimedOut(_) => &counters.unanswered,
            };
            counter.fetch_add(1, Relaxed);
            let _ = tx.send(Answered {
                answer,
                latency_us: at_instant.duration_since(sent).as_micros() as u64,
                at,
                at_instant,
            });
        });
    }
    let last_offer = Instant::now();
    let last_offer_at = Utc::now();
    // Every answer in (each request ends within REQUEST_TIMEOUT).
    drop(in_flight.acquire_many(args.max_in_flight as u32).await?);
    drop(tx);
    Ok(Offered {
        collected: collector.await?,
        started,
        last_offer,
        last_offer_at,
        max_lag,
    })
}

struct Offering {
    collected: Collected,
    offered: u64,
    late: u64,
    max_lag: Duration,
    offering: Duration,
    started: Instant,
}

struct Drain {
    drained: bool,
    drain: Duration,
    acked_at: HashMap<uuid::Uuid, DateTime<Utc>>,
    deliveries: u64,
    acknowledged: u64,
    unverified: u64,
}

/// One payment's events: when RECEIVED, when final, and how many of each.
type EventRow = (
    uuid::Uuid,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    i64,
    i64,
    i64,
);

async fn audit(
    stack: &Stack,
    args: &E2eBenchArgs,
    o: Offering,
    d: Drain,
) -> anyhow::Result<E2eReport> {
    let pool = stack.store.pool();
    let mut problems = Vec::new();
    // Outbox work (dispatch, callbacks) is marked done in group commits a
    // moment after the callback's acknowledgement.
    let settle = Instant::now() + Duration::from_secs(if d.drained { 10 } else { 0 });
    let outbox_pending: i64 = loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE done_at IS NULL")
            .fetch_one(pool)
            .await?;
        if n == 0 || Instant::now() >= settle {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT payment_id,
                min(at) FILTER (WHERE to_status = 'RECEIVED'),
                min(at) FILTER (WHERE to_status IN ('CONFIRMED', 'REJECTED')),
                count(*) FILTER (WHERE to_status = 'RECEIVED'),
                count(*) FILTER (WHERE to_status = 'CONFIRMED'),
                count(*) FILTER (WHERE to_status = 'REJECTED')
           FROM payment_events GROUP BY payment_id",
    )
    .fetch_all(pool)
    .await?;
    let c = &o.collected;
    let mut by_id: HashMap<uuid::Uuid, &EventRow> = HashMap::with_capacity(rows.len());
    let (mut confirmed, mut rejected, mut not_final, mut twice) = (0u64, 0u64, 0u64, 0u64);
    let mut accept_to_confirmed = Vec::with_capacity(rows.len());
    let (mut first_received, mut last_confirmed): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
        (None, None);
    for row in &rows {
        let (id, received_at, final_at, received_n, confirmed_n, rejected_n) = row;
        by_id.insert(*id, row);
        if let Some(r) = received_at {
            first_received = Some(first_received.map_or(*r, |f| f.min(*r)));
        }
        match (received_n, confirmed_n, rejected_n) {
            (1, 1, 0) => {
                confirmed += 1;
                if let (Some(r), Some(f)) = (received_at, final_at) {
                    accept_to_confirmed.push(us_between(*r, *f));
                    last_confirmed = last_confirmed.max(Some(*f));
                }
            }
            (1, 0, 1) => rejected += 1,
            (1, 0, 0) => not_final += 1,
            _ => twice += 1,
        }
    }
    let not_in_db = c
        .accepted
        .keys()
        .filter(|id| !by_id.contains_key(id))
        .count() as u64;
    let not_answered_accepted = by_id
        .keys()
        .filter(|id| !c.accepted.contains_key(id))
        .count() as u64;
    let events_exactly_once = twice == 0 && not_final == 0 && not_in_db == 0;
    if !events_exactly_once {
        problems.push(format!(
            "payments' final states: {not_in_db} accepted payments not in the database, {not_final} not final, {twice} with RECEIVED, CONFIRMED or REJECTED more than once"
        ));
    }
    if !d.drained {
        problems.push(format!(
            "not drained within {} s of the last offer",
            args.drain_timeout_s
        ));
    }
    let ledger = stack.store.audit().await?;
    if !ledger.balanced() {
        problems.push(format!(
            "ledger: {} unbalanced journals, {} with fewer than two entries",
            ledger.unbalanced_journals, ledger.short_journals
        ));
    }
    if !ledger.payments_exactly_once() {
        problems.push(format!(
            "ledger: {} payments without exactly one pending transfer",
            ledger.payments_without_exactly_one_transfer
        ));
    }
    let books = demo::books::compare(&stack.store, &demo::BILLERS, &stack.credits()).await?;
    if !books.agrees() {
        problems.push(format!(
            "books: {} missing at the billers, {} missing here, {} credited twice, {} amounts differ, posted differs for {:?}",
            books.missing_at_biller.len(),
            books.missing_at_us.len(),
            books.double_credits.len(),
            books.amount_mismatches.len(),
            books.posted_mismatches
        ));
    }
    if d.unverified > 0 {
        problems.push(format!(
            "{} callback deliveries without a valid signature",
            d.unverified
        ));
    }
    if outbox_pending > 0 {
        problems.push(format!("{outbox_pending} outbox rows left undone"));
    }
    if c.accepted.is_empty() {
        problems.push("no payment accepted".into());
    }

    // Callback delay (final event to arrival) and the channel's view
    // (accepted answer to arrival).
    let mut callback_delay = Vec::with_capacity(d.acked_at.len());
    let mut accept_to_callback = Vec::with_capacity(d.acked_at.len());
    for (id, answered_at) in &c.accepted {
        let Some(arrived) = d.acked_at.get(id) else {
            continue;
        };
        if let Some(Some(final_at)) = by_id.get(id).map(|r| r.2) {
            callback_delay.push(us_between(final_at, *arrived));
        }
        accept_to_callback.push(us_between(*answered_at, *arrived));
    }
    let mut latencies = c.latencies_us.clone();
    for v in [
        &mut latencies,
        &mut accept_to_confirmed,
        &mut callback_delay,
        &mut accept_to_callback,
    ] {
        v.sort_unstable();
    }
    let p = |v: &[u64], q: f64| ms(percentile(v, q));
    let accepted_window = c
        .last_accepted
        .map(|t| t.duration_since(o.started))
        .unwrap_or_default();
    let confirmed_window = match (first_received, last_confirmed) {
        (Some(a), Some(b)) => Duration::from_micros(us_between(a, b)),
        _ => Duration::ZERO,
    };
    let audit_ok = problems.is_empty();
    Ok(E2eReport {
        instances: args.instances.max(1),
        payments: args.payments,
        rate: args.rate,
        biller_latency_ms: args.biller_latency_ms,
        max_in_flight: args.max_in_flight,
        route_max_in_flight: args.route_max_in_flight,
        offered: o.offered,
        offered_per_s: per_s(o.offered, o.offering),
        offered_late: o.late,
        late_threshold_ms: LATE_MS,
        max_offer_lag_ms: o.max_lag.as_secs_f64() * 1000.0,
        accepted: c.accepted.len() as u64,
        accepted_per_s: per_s(c.accepted.len() as u64, accepted_window),
        answer_p50_ms: p(&latencies, 50.0),
        answer_p99_ms: p(&latencies, 99.0),
        refused_backlogged: c.backlogged,
        refused_unavailable_other: c.unavailable_other,
        refused: c.refused.clone(),
        unanswered: c.unanswered,
        confirmed,
        rejected,
        not_final,
        confirmed_per_s: per_s(confirmed, confirmed_window),
        drained: d.drained,
        drain_s: d.drain.as_secs_f64(),
        accept_to_confirmed_p50_ms: p(&accept_to_confirmed, 50.0),
        accept_to_confirmed_p99_ms: p(&accept_to_confirmed, 99.0),
        accept_to_confirmed_max_ms: ms(accept_to_confirmed.last().copied().unwrap_or(0)),
        callbacks_acknowledged: d.acknowledged,
        callback_deliveries: d.deliveries,
        callback_ack_p50_ms: p(&callback_delay, 50.0),
        callback_ack_p99_ms: p(&callback_delay, 99.0),
        callback_ack_max_ms: ms(callback_delay.last().copied().unwrap_or(0)),
        accept_to_callback_p50_ms: p(&accept_to_callback, 50.0),
        accept_to_callback_p99_ms: p(&accept_to_callback, 99.0),
        payments_not_answered_accepted: not_answered_accepted,
        events_exactly_once,
        ledger_balanced: ledger.balanced(),
        every_payment_one_transfer: ledger.payments_exactly_once(),
        books_agree: books.agrees(),
        books_matched: books.matched,
        callbacks_all_verified: d.unverified == 0,
        outbox_pending: outbox_pending as u64,
        audit_ok,
        audit_problems: problems,
        elapsed_s: 0.0,
        database: None,
    })
}

/// A progress line on stderr every `progress_s` seconds.
async fn progress_lines(
    counters: Arc<Counters>,
    receiver: crate::receiver::CallbackReceiver,
    args: E2eBenchArgs,
    started: Instant,
) {
    let every = Duration::from_secs(args.progress_s);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tick.tick().await;
        let n = |c: &AtomicU64| c.load(Relaxed);
        let t = receiver.tally();
        eprintln!(
            "[{:>6.1} s] offered {}/{}  accepted {}  503 backlogged {}  other refusals {}  unanswered {}  late {}  in flight {}  | confirmed {}  rejected {}  (callbacks acknowledged)",
            started.elapsed().as_secs_f64(),
            n(&counters.offered),
            args.payments,
            n(&counters.accepted),
            n(&counters.backlogged),
            n(&counters.refused),
            n(&counters.unanswered),
            n(&counters.late),
            n(&counters.offered).saturating_sub(
                n(&counters.accepted)
                    + n(&counters.backlogged)
                    + n(&counters.refused)
                    + n(&counters.unanswered)
            ),
            t.confirmed,
            t.rejected,
        );
    }
}

/// The figures, human-readable.
pub fn render(r: &E2eReport) -> String {
    use std::fmt::Write;
    let yes = |b: bool| if b { "OK  " } else { "FAIL" };
    let mut s = String::new();
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "bench e2e: {} payments offered at {}/s to {} billclear process(es), billers answering after {} ms, at most {} requests in flight, {} calls at once per route (the fleet's)",
        r.payments, r.rate, r.instances, r.biller_latency_ms, r.max_in_flight, r.route_max_in_flight
    );
    let _ = writeln!(
        s,
        "  offered              {} ({:.1}/s); {} more than {} ms behind schedule (worst {:.1} ms)",
        r.offered, r.offered_per_s, r.offered_late, r.late_threshold_ms, r.max_offer_lag_ms
    );
    let _ = writeln!(
        s,
        "  accepted             {} ({:.1}/s); answer p50 {:.1} ms, p99 {:.1} ms",
        r.accepted, r.accepted_per_s, r.answer_p50_ms, r.answer_p99_ms
    );
    let others: Vec<String> = r
        .refused
        .iter()
        .filter(|(k, _)| k.as_str() != format!("503 {BACKLOGGED}"))
        .map(|(k, v)| format!("{v} x {k}"))
        .collect();
    let _ = writeln!(
        s,
        "  refused              {} x 503 {BACKLOGGED}; other 503s {}; {}",
        r.refused_backlogged,
        r.refused_unavailable_other,
        if others.is_empty() {
            "nothing else".to_string()
        } else {
            others.join(", ")
        }
    );
    let _ = writeln!(
        s,
        "  unanswered           {} (connection failed or no answer in {} s)",
        r.unanswered,
        REQUEST_TIMEOUT.as_secs()
    );
    let _ = writeln!(
        s,
        "  final                {} confirmed ({:.1}/s), {} rejected, {} not final",
        r.confirmed, r.confirmed_per_s, r.rejected, r.not_final
    );
    let _ = writeln!(
        s,
        "  drain                {:.2} s after the last offer{}",
        r.drain_s,
        if r.drained { "" } else { " (GAVE UP)" }
    );
    let _ = writeln!(
        s,
        "  accept → CONFIRMED   p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms   (RECEIVED event to CONFIRMED event, service clock)",
        r.accept_to_confirmed_p50_ms, r.accept_to_confirmed_p99_ms, r.accept_to_confirmed_max_ms
    );
    let _ = writeln!(
        s,
        "  callbacks            {} acknowledged ({} deliveries); delay p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms   (final event to arrival)",
        r.callbacks_acknowledged,
        r.callback_deliveries,
        r.callback_ack_p50_ms,
        r.callback_ack_p99_ms,
        r.callback_ack_max_ms
    );
    let _ = writeln!(
        s,
        "  accept → callback    p50 {:.1} ms  p99 {:.1} ms   (accepted answer to the callback's arrival)",
        r.accept_to_callback_p50_ms, r.accept_to_callback_p99_ms
    );
    let _ = writeln!(s, "audit");
    let _ = writeln!(
        s,
        "  {} every payment confirmed or rejected exactly once ({} payments in the database the bench had no accepted answer for)",
        yes(r.events_exactly_once),
        r.payments_not_answered_accepted
    );
    let _ = writeln!(s, "  {} every journal balanced", yes(r.ledger_balanced));
    let _ = writeln!(
        s,
        "  {} one pending transfer per payment",
        yes(r.every_payment_one_transfer)
    );
    let _ = writeln!(
        s,
        "  {} the simulators' books equal ours ({} matched)",
        yes(r.books_agree),
        r.books_matched
    );
    let _ = writeln!(
        s,
        "  {} every callback signed; {} outbox rows left",
        yes(r.callbacks_all_verified),
        r.outbox_pending
    );
    let _ = writeln!(s, "  {} drained within the timeout", yes(r.drained));
    for p in &r.audit_problems {
        let _ = writeln!(s, "  problem: {p}");
    }
    let _ = writeln!(
        s,
        "audit_ok             {}",
        if r.audit_ok { "yes" } else { "NO" }
    );
    let _ = writeln!(s, "elapsed              {:.1} s", r.elapsed_s);
    if let Some(db) = &r.database {
        let _ = writeln!(s, "database kept        {db}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(answer: Answer) -> Answered {
        Answered {
            answer,
            latency_us: 1_000,
            at: Utc::now(),
            at_instant: Instant::now(),
        }
    }

    #[test]
    fn answers_are_counted_by_status_and_problem_code() {
        let mut c = Collected::default();
        c.add(answered(Answer::Accepted(crate::domain::ids::PaymentId(
            uuid::Uuid::new_v4(),
        ))));
        for code in [BACKLOGGED, BACKLOGGED, "store_unavailable"] {
            c.add(answered(Answer::Refused {
                status: 503,
                code: code.into(),
            }));
        }
        c.add(answered(Answer::Refused {
            status: 429,
            code: "rate_limited".into(),
        }));
        c.add(answered(Answer::TimedOut(REQUEST_TIMEOUT)));
        assert_eq!(c.accepted.len(), 1);
        assert_eq!(c.backlogged, 2);
        assert_eq!(c.unavailable_other, 1);
        assert_eq!(c.unanswered, 1);
        assert_eq!(c.refused["503 biller_backlogged"], 2);
        assert_eq!(c.refused["503 store_unavailable"], 1);
        assert_eq!(c.refused["429 rate_limited"], 1);
        assert_eq!(c.latencies_us.len(), 6);
    }

    #[test]
    fn durations_between_wall_times_never_go_negative() {
        let a = Utc::now();
        let b = a + chrono::Duration::milliseconds(1500);
        assert_eq!(us_between(a, b), 1_500_000);
        assert_eq!(us_between(b, a), 0);
        assert_eq!(per_s(10, Duration::ZERO), 0.0);
        assert_eq!(per_s(10, Duration::from_secs(2)), 5.0);
    }
}
