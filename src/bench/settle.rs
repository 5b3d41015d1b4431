//! `billclear bench settle --payments N`: closes a business date holding N
//! confirmed payments for one biller and writes its files, on a fresh
//! database of its own. Prints the time of the closing step (the fence,
//! then the one transaction: batch, items that settle their payments,
//! postings, outbox), of the files
//! (through RabbitMQ: relay, consumer, settlement file, pain.001, manifest),
//! and the process's peak memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeZone, Utc};
use clap::Args;

use crate::config::Config;
use crate::settlement::close::{close_date, Closing, When};
use crate::store::{CloseOutcome, Store};

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
    super::proc_status_bytes("VmHWM:")
}

pub async fn run(config: Config, args: SettleBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.payments >= 1, "--payments must be at least 1");
    let db = super::BenchDb::create(&config, "settle").await?;
    let db_name = db.name.clone();
    let url = db.url.clone();
    let store = db.store.clone();
    let biller = db.biller(&args.biller)?;
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
    super::seed_confirmed_payments(
        &store,
        biller.id.as_str(),
        args.payments,
        cutoff - chrono::Duration::days(1),
        86_400_000,
    )
    .await?;
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
    crate::settlement::service::publish_and_render(
        store_dyn.clone(),
        &cfg,
        &[batch.id],
        Duration::from_secs(600),
    )
    .await?;
    let files_s = t_files.elapsed().as_secs_f64();
    let files = store_dyn.batch_files(batch.id).await?;
    // SETTLED as every reader sees it: derived from the batch's items.
    let settled: i64 =
        sqlx::query_scalar("SELECT count(*) FROM payment_states WHERE status = 'SETTLED'")
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
        "  close       {close_s:.2} s   one transaction: {} items (COPY, checked by the database), {} payments SETTLED by them, journal, outbox",
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
    println!("  target      close + files < 10 s, < 500 MiB");

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
        let _ = std::fs::remove_dir_all(&outbox_dir);
        db.drop().await;
    }
    Ok(())
}
