//! `billclear bench settle --payments N`: closes a business date holding N
//! confirmed payments for one biller and writes its files, on a fresh
//! database of its own. Prints the time of the closing step (the one
//! transaction: batch, items, SETTLED, postings, outbox), of the files
//! (through RabbitMQ: relay, consumer, settlement file, pain.001, manifest),
//! and the process's peak memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{NaiveDate, TimeZone, Utc};
use clap::Args;

use crate::config::Config;
use crate::settlement::close::{close_date, Closing, When};
use crate::store::postgres::{self, PgStore};
use crate::store::{BillerStore, CloseOutcome, Store};

#[derive(Args, Debug, Clone)]
pub struct SettleBenchArgs {
    /// Confirmed payments in the day to close.
    #[arg(long, default_value_t = 1_000_000)]
    pub payments: u64,
    /// The biller (from ops/billers.example.toml).
    #[arg(long, default_value = "sh-water")]
    pub biller: String,
    /// Keep the database and the files afterwards.
    #[arg(long)]
    pub keep: bool,
}

/// Peak resident memory of this process (VmHWM), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub async fn run(config: Config, args: SettleBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.payments >= 1, "--payments must be at least 1");
    let (server_url, _) = crate::cli::split_db_url(&config.database.url)?;
    let db_name = format!(
        "billclear_bench_settle_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let url = postgres::create_database(&server_url, &db_name).await?;
    let store = Arc::new(PgStore::connect(&url, 4).await?);
    store.migrate().await?;
    let billers = crate::cli::billers_file::parse(include_str!("../../ops/billers.example.toml"))?;
    store.upsert_billers(&billers).await?;
    let biller = billers
        .iter()
        .find(|b| b.id.as_str() == args.biller)
        .with_context(|| format!("no biller {} in ops/billers.example.toml", args.biller))?
        .clone();
    let outbox_dir = std::env::temp_dir().join(&db_name);
    let mut cfg = config.clone();
    cfg.database.url = url.clone();
    cfg.settlement.outbox_dir = outbox_dir.clone();
    // A topology of the bench's own: nothing else consumes its message.
    cfg.amqp = config.amqp.scoped(&db_name);

    // The day: payments accepted and confirmed through the business date,
    // with time-ordered (v7-style) ids as intake gives them, written
    // set-based (setup, not measured).
    let date = NaiveDate::from_ymd_opt(2026, 11, 27).expect("date");
    let cutoff = biller.cutoff.instant(date);
    println!(
        "setup: {} confirmed payments for {} on {date} in database {db_name} ...",
        args.payments, biller.id
    );
    let t = Instant::now();
    sqlx::query(
        "INSERT INTO channels (id, name, callback_url, status, rate_limit_rps)
         VALUES ('benchpay', 'Bench Pay', 'http://127.0.0.1:9/cb', 'active', 1000)",
    )
    .execute(store.pool())
    .await?;
    let chunk = 200_000u64;
    let mut done = 0u64;
    while done < args.payments {
        let n = chunk.min(args.payments - done);
        sqlx::query(
            "INSERT INTO payments (id, channel_id, channel_reference, biller_id, account_number,
                amount, currency, status, pending_journal_id, created_at, updated_at,
                connector_id, biller_reference, confirmed_at)
             SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7'
                     || substr(md5(g::text), 1, 3) || '8' || substr(md5(g::text), 4, 15))::uuid,
                    'benchpay', 'bench-' || g, $1, '3100000011',
                    round((1 + (hashint4(g::int) & 65535) * 0.37)::numeric, 2), 'CNY', 'CONFIRMED',
                    gen_random_uuid(), t, t, 'water-direct', 'W' || g, t
               FROM (SELECT g, $3::timestamptz - interval '1 day'
                                 + (g * (86400000.0 / $5::bigint)) * interval '1 millisecond' AS t
                       FROM generate_series($2::bigint + 1, $2::bigint + $4::bigint) g) s",
        )
        .bind(biller.id.as_str())
        .bind(done as i64)
        .bind(cutoff)
        .bind(n as i64)
        .bind(args.payments as i64)
        .execute(store.pool())
        .await?;
        done += n;
    }
    sqlx::query("ANALYZE payments")
        .execute(store.pool())
        .await?;
    println!("setup: {:.1} s (not measured)", t.elapsed().as_secs_f64());

    let store_dyn: Arc<dyn Store> = store.clone();
    let now = Utc.from_utc_datetime(
        &(date
            .succ_opt()
            .expect("date")
            .and_hms_opt(0, 0, 0)
            .expect("time")),
    );
    let t_close = Instant::now();
    let out = close_date(
        &*store_dyn,
        std::slice::from_ref(&biller),
        date,
        None,
        When::AtCutoff,
        &cfg.settlement.debtor,
        now.max(cutoff),
    )
    .await?;
    let close_s = t_close.elapsed().as_secs_f64();
    let batch = match out.into_iter().next() {
        Some((_, Closing::Closed(CloseOutcome::Closed(b)))) => b,
        other => anyhow::bail!("the date did not close: {other:?}"),
    };
    let t_files = Instant::now();
    crate::cli::settle::publish_and_render(
        store_dyn.clone(),
        &cfg,
        &[batch.id],
        Duration::from_secs(600),
    )
    .await?;
    let files_s = t_files.elapsed().as_secs_f64();
    let files = store_dyn.batch_files(batch.id).await?;
    let settled: i64 = sqlx::query_scalar("SELECT count(*) FROM payments WHERE status = 'SETTLED'")
        .fetch_one(store.pool())
        .await?;
    anyhow::ensure!(
        settled as u64 == args.payments && batch.totals.count == args.payments,
        "settled {settled} of {} payments",
        args.payments
    );
    let peak = peak_rss_bytes().unwrap_or(0);
    println!();
    println!(
        "bench settle: {} payments, biller {}, business date {date}",
        args.payments, biller.id
    );
    println!(
        "  batch       gross {} / commission {} / net {} {} ({})",
        batch.totals.gross,
        batch.totals.commission,
        batch.totals.net(),
        batch.currency,
        batch.commission_rule
    );
    println!(
        "  close       {close_s:.2} s   one transaction: {} items, {} payments SETTLED with events, journal, outbox",
        batch.totals.count, settled
    );
    println!("  files       {files_s:.2} s   via RabbitMQ (relay with confirms, consumer):");
    for f in &files {
        println!(
            "                {:<9} {:<40} {:>11} bytes",
            f.kind, f.name, f.bytes
        );
    }
    println!("  total       {:.2} s", close_s + files_s);
    println!(
        "  peak memory {:.0} MiB (VmHWM of this process)",
        peak as f64 / (1024.0 * 1024.0)
    );
    println!("  target      close + files < 30 s, < 500 MiB");

    // Clean up the bench's queues, files and database.
    if let Err(e) = crate::settlement::service::delete_topology(&cfg.amqp).await {
        println!("(could not delete the bench's queues: {e})");
    }
    if args.keep {
        println!(
            "kept: database {db_name}, files in {}",
            outbox_dir.display()
        );
    } else {
        store.pool().close().await;
        let _ = std::fs::remove_dir_all(&outbox_dir);
        let _ = postgres::drop_database(&server_url, &db_name).await;
    }
    Ok(())
}
