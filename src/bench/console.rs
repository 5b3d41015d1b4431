//! `billclear bench console --breaks N`: the finance console's pages over
//! real HTTP with a large queue. On a fresh database of its own it seeds N
//! breaks (30 business dates, every biller, the categories and statuses of
//! a working queue, owners, amounts; each with its opening event) and a
//! day of confirmed payments (setup, not measured); starts the service on
//! a free port; signs a staff user in; then times, one request at a time
//! per client with `--concurrency` clients: the queue's first page under
//! several filters and sorts (and a later page), break pages, and day
//! overviews. Prints p50/p95/max per page kind; with `--json`, one object
//! with `queue_p95_ms`, `detail_p95_ms`, `overview_p95_ms` and the rest.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{Days, Utc};
use clap::Args;
use serde::Serialize;

use super::{percentile, seed_confirmed_payments, BenchDb};
use crate::client::ConsoleClient;
use crate::config::Config;
use crate::domain::recon::breaks::{Proposal, ResolutionKind};
use crate::domain::staff::StaffRole;
use crate::store::Store;

#[derive(Args, Debug, Clone)]
pub struct ConsoleBenchArgs {
    /// Breaks in the queue.
    #[arg(long, default_value_t = 100_000)]
    pub breaks: u64,
    /// Confirmed payments of the measured day (the overview counts them).
    #[arg(long, default_value_t = 100_000)]
    pub payments: u64,
    /// Requests of each page kind.
    #[arg(long, default_value_t = 300)]
    pub requests: usize,
    /// Clients asking at once (each one request at a time).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Print one JSON object instead of the human-readable figures.
    #[arg(long)]
    pub json: bool,
    /// Keep the bench's database afterwards (its name is printed).
    #[arg(long)]
    pub keep_db: bool,
}

#[derive(Debug, Serialize)]
pub struct ConsoleBenchReport {
    pub breaks: u64,
    pub payments: u64,
    pub requests_per_kind: usize,
    pub concurrency: usize,
    pub queue_p50_ms: f64,
    pub queue_p95_ms: f64,
    pub queue_max_ms: f64,
    pub detail_p50_ms: f64,
    pub detail_p95_ms: f64,
    pub detail_max_ms: f64,
    pub overview_p50_ms: f64,
    pub overview_p95_ms: f64,
    pub overview_max_ms: f64,
    /// Answers that were not 200 (none expected).
    pub errors: u64,
    pub seed_s: f64,
}

const CATEGORIES: [&str; 6] = [
    "missing-at-biller",
    "missing-at-us",
    "amount-mismatch",
    "duplicate-at-biller",
    "status-mismatch",
    "reference-mismatch",
];

pub async fn run(config: Config, args: ConsoleBenchArgs) -> anyhow::Result<()> {
    let say = |s: String| {
        if !args.json {
            println!("{s}");
        }
    };
    let db = BenchDb::create(&config, "console").await?;
    say(format!("setup: fresh database {}", db.name));
    let result = bench(&config, &db, &args, &say).await;
    if args.keep_db {
        say(format!("kept database {} ({})", db.name, db.url));
        db.store.pool().close().await;
    } else {
        db.drop().await;
    }
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print(&report);
    }
    Ok(())
}

async fn bench(
    config: &Config,
    db: &BenchDb,
    args: &ConsoleBenchArgs,
    say: &dyn Fn(String),
) -> anyhow::Result<ConsoleBenchReport> {
    let seed_started = Instant::now();
    let zone = config.console.zone();
    let today = Utc::now().with_timezone(&zone).date_naive();
    seed_breaks(db, args.breaks, today).await?;
    let water = db.biller("sh-water")?;
    let from = water.cutoff.instant(today - Days::new(1));
    seed_confirmed_payments(&db.store, "sh-water", args.payments, from, 3_600_000 * 20).await?;
    sqlx::query("ANALYZE").execute(db.store.pool()).await?;
    let seed_s = seed_started.elapsed().as_secs_f64();
    say(format!(
        "setup: {} breaks over 30 dates and {} payments seeded in {seed_s:.1} s",
        args.breaks, args.payments
    ));

    let key = crate::auth::secrets::MasterKey::from_base64(
        &crate::auth::secrets::MasterKey::generate_base64(),
    )?;
    let mut cfg = config.clone();
    cfg.database.url = db.url.clone();
    let store: Arc<dyn Store> = Arc::new(
        crate::store::postgres::PgStore::connect(&db.url, config.database.max_connections).await?,
    );
    let service =
        crate::startup::Service::start(store.clone(), key, cfg, crate::startup::Parts::api_only())
            .await?;
    let base = service.spawn_api(tokio::net::TcpListener::bind("127.0.0.1:0").await?)?;
    let (_, token) =
        crate::cli::staff::add_staff(&*store, "bench.approver", "Bench", StaffRole::Approver)
            .await?;
    let mut client = ConsoleClient::new(&base);
    let r = client.sign_in(token.expose_text()).await?;
    anyhow::ensure!(r.status == 303, "sign-in answered {}", r.status);
    say(format!(
        "setup: billclear serve on {base}, signed in as bench.approver"
    ));

    let max_id: i64 = sqlx::query_scalar("SELECT max(id) FROM recon_breaks")
        .fetch_one(db.store.pool())
        .await?;
    let week_ago = today - Days::new(7);
    let queue_paths: Vec<String> = vec![
        "/console/breaks".into(),
        "/console/breaks?category=amount-mismatch".into(),
        "/console/breaks?biller=sh-water&sort=largest".into(),
        format!("/console/breaks?from={week_ago}&to={today}&biller=sz-power"),
        "/console/breaks?owner=-&sort=newest".into(),
        "/console/breaks?owner=ann&status=investigating".into(),
        "/console/breaks?min=5000&sort=largest".into(),
        "/console/breaks?status=all&page=40".into(),
        "/console/breaks?status=pending-approval".into(),
    ];
    let queue = measure(&client, args, |i| {
        queue_paths[i % queue_paths.len()].clone()
    })
    .await?;
    say(format!(
        "measured: queue pages ({} requests)",
        args.requests
    ));
    let detail = measure(&client, args, |i| {
        let id = 1 + (i as i64 * 7919) % max_id.max(1);
        format!("/console/breaks/{id}")
    })
    .await?;
    say(format!(
        "measured: break pages ({} requests)",
        args.requests
    ));
    let overview = measure(&client, args, |i| {
        if i % 3 == 0 {
            "/console/".to_string()
        } else {
            format!("/console/days/{}", today - Days::new((i % 30) as u64))
        }
    })
    .await?;
    say(format!(
        "measured: day overviews ({} requests)",
        args.requests
    ));
    service.abort();

    let ms = |v: u64| v as f64 / 1000.0;
    let figures = |s: &Samples| {
        (
            ms(percentile(&s.micros, 50.0)),
            ms(percentile(&s.micros, 95.0)),
            ms(s.micros.last().copied().unwrap_or(0)),
        )
    };
    let (q50, q95, qmax) = figures(&queue);
    let (d50, d95, dmax) = figures(&detail);
    let (o50, o95, omax) = figures(&overview);
    Ok(ConsoleBenchReport {
        breaks: args.breaks,
        payments: args.payments,
        requests_per_kind: args.requests,
        concurrency: args.concurrency,
        queue_p50_ms: q50,
        queue_p95_ms: q95,
        queue_max_ms: qmax,
        detail_p50_ms: d50,
        detail_p95_ms: d95,
        detail_max_ms: dmax,
        overview_p50_ms: o50,
        overview_p95_ms: o95,
        overview_max_ms: omax,
        errors: queue.errors + detail.errors + overview.errors,
        seed_s,
    })
}

/// Latencies in microseconds, sorted, and the count of non-200 answers.
struct Samples {
    micros: Vec<u64>,
    errors: u64,
}

async fn measure(
    client: &ConsoleClient,
    args: &ConsoleBenchArgs,
    path: impl Fn(usize) -> String,
) -> anyhow::Result<Samples> {
    let paths: Vec<String> = (0..args.requests).map(path).collect();
    let paths = Arc::new(paths);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let mut c = client.clone();
        let (paths, next) = (paths.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut errors = 0u64;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(p) = paths.get(i) else { break };
                let started = Instant::now();
                let r = c.get(p).await?;
                out.push(started.elapsed().as_micros() as u64);
                if r.status != 200 {
                    errors += 1;
                    if errors == 1 {
                        eprintln!("{p}: answered {}", r.status);
                    }
                }
            }
            anyhow::Ok((out, errors))
        }));
    }
    let mut micros = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (m, e) = t.await.context("a bench client failed")??;
        micros.extend(m);
        errors += e;
    }
    micros.sort_unstable();
    Ok(Samples { micros, errors })
}

/// N breaks over 30 business dates ending `today`: every biller, the
/// categories a biller file shows, 70% open, 15% investigating (held by
/// ann, ben or cai), 5% waiting for approval, 10% closed; each with the
/// event that opened it. One run per date and biller.
async fn seed_breaks(db: &BenchDb, n: u64, today: chrono::NaiveDate) -> anyhow::Result<()> {
    let pool = db.store.pool();
    let billers: Vec<String> = db
        .billers
        .iter()
        .map(|b| b.id.as_str().to_string())
        .collect();
    sqlx::query(
        "INSERT INTO recon_runs (business_date, scope, started_at, finished_at, run_by, file_ids, summary)
         SELECT $1::date - d, b, now(), now(), 'bench', '{}', '{}'::jsonb
           FROM generate_series(0, 29) d, unnest($2::text[]) b",
    )
    .bind(today)
    .bind(&billers)
    .execute(pool)
    .await?;
    let proposal = serde_json::to_value(Proposal {
        kind: ResolutionKind::WriteOff,
        maker: "ann".into(),
        connector: None,
        note: "bench".into(),
    })?;
    let chunk = 100_000u64;
    let mut done = 0u64;
    while done < n {
        let k = chunk.min(n - done);
        sqlx::query(
            "WITH g AS (
                 SELECT g, $1::date - (g % 30)::int AS d, ($2::text[])[1 + (g / 30) % cardinality($2::text[])] AS scope,
                        ($3::text[])[1 + (hashint4(g::int) & 1023) % 6] AS category,
                        (hashint4(g::int + 7) & 1023) AS r
                   FROM generate_series($5::bigint + 1, $5::bigint + $6::bigint) g)
             INSERT INTO recon_breaks (business_date, scope, category, subject, our_reference, their_reference,
                                       our_amount_minor, their_amount_minor, currency, detail, evidence, status,
                                       owner, proposal, resolution, first_run, last_run, found_by_run, opened_at, updated_at)
             SELECT g.d, g.scope, g.category, 'bench-' || g.g, 'bench-' || g.g, 'T' || g.g,
                    100 + (hashint4(g.g::int) & 262143), 100 + (hashint4(g.g::int + 1) & 262143),
                    'CNY', 'seeded by bench console', '[]'::jsonb,
                    CASE WHEN g.r < 717 THEN 'open' WHEN g.r < 870 THEN 'investigating'
                         WHEN g.r < 921 THEN 'pending-approval' ELSE 'written-off' END,
                    CASE WHEN g.r >= 717 AND g.r < 870 THEN (ARRAY['ann','ben','cai'])[1 + g.r % 3] END,
                    CASE WHEN g.r >= 870 AND g.r < 921 THEN $4::jsonb END,
                    CASE WHEN g.r >= 921 THEN 'write-off' END,
                    run.id, run.id, run.id,
                    g.d + interval '1 day' + (g.g % 3600) * interval '1 second',
                    g.d + interval '1 day' + (g.g % 3600) * interval '1 second'
               FROM g JOIN recon_runs run ON run.business_date = g.d AND run.scope = g.scope",
        )
        .bind(today)
        .bind(&billers)
        .bind(&CATEGORIES[..])
        .bind(&proposal)
        .bind(done as i64)
        .bind(k as i64)
        .execute(pool)
        .await?;
        done += k;
    }
    sqlx::query(
        "INSERT INTO recon_break_events (break_id, at, actor, action, from_status, to_status, note)
         SELECT id, opened_at, 'reconciliation', 'opened', NULL, 'open', 'seeded' FROM recon_breaks",
    )
    .execute(pool)
    .await?;
    Ok(())
}

fn print(r: &ConsoleBenchReport) {
    println!(
        "console bench: {} breaks, {} payments in the day, {} requests per page kind, {} clients",
        r.breaks, r.payments, r.requests_per_kind, r.concurrency
    );
    println!(
        "  queue (first filtered page, and a later one): p50 {:.1} ms  p95 {:.1} ms  max {:.1} ms",
        r.queue_p50_ms, r.queue_p95_ms, r.queue_max_ms
    );
    println!(
        "  break page:                                   p50 {:.1} ms  p95 {:.1} ms  max {:.1} ms",
        r.detail_p50_ms, r.detail_p95_ms, r.detail_max_ms
    );
    println!(
        "  day overview:                                 p50 {:.1} ms  p95 {:.1} ms  max {:.1} ms",
        r.overview_p50_ms, r.overview_p95_ms, r.overview_max_ms
    );
    println!("  answers other than 200: {}", r.errors);
    let target = 200.0;
    let worst = r.queue_p95_ms.max(r.detail_p95_ms).max(r.overview_p95_ms);
    println!(
        "  target p95 under {target:.0} ms: {}",
        if worst < target { "met" } else { "MISSED" }
    );
}
