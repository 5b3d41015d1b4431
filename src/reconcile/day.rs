//! One business date reconciled: every biller (or one) and, with all the
//! billers, the bank's accounts; then the day's report written. What
//! `billclear recon run`, the scheduled day and the demo call.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{NaiveDate, Utc};

use crate::config::Config;
use crate::reconcile::run::{build_report, run_biller, write_report, RunOptions, RunSummary};
use crate::store::Store;

/// The run options the configuration gives, for a run by `by`.
pub fn run_options(config: &Config, by: &str) -> RunOptions {
    RunOptions {
        dir: config.recon.dir.clone(),
        grace: Duration::from_secs(u64::from(config.recon.unknown_grace_hours) * 3600),
        sort_buffer: config.recon.sort_buffer_records,
        run_by: by.to_string(),
        file_routes: config.recon.file_routes.clone(),
    }
}

/// Reconciles every biller (or one) for a date.
pub async fn run_date(
    store: Arc<dyn Store>,
    config: &Config,
    date: NaiveDate,
    only: Option<&str>,
    by: &str,
    progress: bool,
) -> anyhow::Result<(
    Vec<RunSummary>,
    Option<crate::reconcile::run::BankSummary>,
    Vec<PathBuf>,
)> {
    let billers = store.load_billers().await?;
    let chosen: Vec<_> = billers
        .iter()
        .filter(|b| only.is_none_or(|o| b.id.as_str() == o))
        .collect();
    if chosen.is_empty() {
        anyhow::bail!(
            "no biller {}",
            only.unwrap_or("at all: import billers first")
        );
    }
    let opts = run_options(config, by);
    let recon_store: Arc<dyn crate::store::recon::ReconStore> = store.clone();
    let mut out = Vec::new();
    for b in chosen {
        let tolerance = recon_store.recon_tolerance(b.id.as_str()).await?;
        let started = std::time::Instant::now();
        let id = b.id.to_string();
        let tick: Option<Arc<dyn Fn(u64) + Send + Sync>> = progress.then(|| {
            let id = id.clone();
            Arc::new(move |n: u64| eprint!("\r{id:<16} {n:>10} references matched…")) as _
        });
        let s = run_biller(
            recon_store.clone(),
            b,
            date,
            &opts,
            tolerance,
            Utc::now(),
            tick,
        )
        .await
        .with_context(|| format!("reconciling {id} for {date}"))?;
        if progress && s.ours + s.theirs >= 100_000 {
            eprintln!(
                "\r{id:<16} done in {:.1} s{:30}",
                started.elapsed().as_secs_f64(),
                ""
            );
        }
        out.push(s);
    }
    let stem = match only {
        Some(b) => format!("recon-{date}-{b}"),
        None => format!("recon-{date}"),
    };
    let label = match only {
        Some(b) => format!("{date} {b}"),
        None => format!("{date} all billers"),
    };
    // The bank's accounts are reconciled with all the billers (not for one).
    let bank = match only {
        Some(_) => None,
        None => crate::reconcile::run::run_bank(store.clone(), date, &opts, Utc::now())
            .await
            .with_context(|| format!("reconciling the bank statements of {date}"))?,
    };
    let report = build_report(recon_store.as_ref(), date, &label, &out, bank.as_ref()).await?;
    let runs: Vec<i64> = out.iter().map(|s| s.run_id).collect();
    let paths = write_report(
        recon_store.as_ref(),
        &config.recon.dir,
        &report,
        &stem,
        &runs,
    )
    .await?;
    Ok((out, bank, paths))
}
