//! `billclear bench recon --records N`: reconciles one biller's business
//! date of N payments against its confirmation file, on a fresh database
//! of its own. Generates the day (not measured): the payments with their
//! ledger, and the water confirmation CSV in credit order with a known
//! share of every outcome. Then times the import of the file and, apart,
//! the reconciliation run (`reconcile::run::run_biller`), each in a process
//! of its own (`billclear bench recon-step`, hidden) so that its peak
//! memory is its own and not the setup's; checks that every outcome was
//! found exactly as generated, and prints the figures. With `--pandas
//! PYTHON` it runs `ops/bench/recon_pandas.py` on the same files for the
//! comparison figure.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use biller_sim::{confirmation_csv, CreditRecord};
use chrono::{DateTime, Days, NaiveDate, Offset, TimeZone, Utc};
use clap::{Args, ValueEnum};
use futures_util::TryStreamExt;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{BenchDb, BENCH_CHANNEL};
use crate::config::Config;
use crate::domain::biller::Biller;
use crate::domain::ids::ChannelId;
use crate::domain::ledger::AccountSpec;
use crate::reconcile::import::import_file;
use crate::reconcile::run::{day_start, run_biller, RunOptions, RunSummary};
use crate::store::postgres::PgStore;
use crate::store::recon::ReconStore;
use crate::store::BillerStore;

/// The biller: its file is the water CSV.
const BILLER: &str = "sh-water";

#[derive(Args, Debug, Clone)]
pub struct ReconBenchArgs {
    /// Our payments in the business date.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Where to write payments.csv and confirmation.csv (default: a
    /// temporary directory, removed afterwards unless --keep).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also run ops/bench/recon_pandas.py with this Python (one with
    /// pandas) on the same files, and compare.
    #[arg(long, value_name = "PYTHON")]
    pub pandas: Option<PathBuf>,
    /// The pandas script (default: ops/bench/recon_pandas.py here, else in
    /// the source tree).
    #[arg(long, value_name = "FILE")]
    pub pandas_script: Option<PathBuf>,
    /// Seed of the generator (which payments get which outcome, the
    /// file's order).
    #[arg(long, default_value_t = 6)]
    pub seed: u64,
    /// Keep the database and the files afterwards.
    #[arg(long)]
    pub keep: bool,
    /// The billclear executable that runs the timed import and run, each in
    /// a process of its own (default: this one).
    #[arg(long, value_name = "FILE")]
    pub exe: Option<PathBuf>,
}

/// One timed step, run by `billclear bench recon-step` (hidden): the
/// import of the file or the reconciliation run, alone in its process.
#[derive(Args, Debug, Clone)]
pub struct StepArgs {
    #[arg(long, value_enum)]
    pub step: Step,
    /// The bench's database (given in the environment, not on the command
    /// line).
    #[arg(long, env = STEP_DATABASE_ENV, hide_env_values = true)]
    pub database_url: String,
    /// `recon.dir` of the bench (stored files, spill runs).
    #[arg(long)]
    pub recon_dir: PathBuf,
    #[arg(long)]
    pub biller: String,
    #[arg(long)]
    pub date: NaiveDate,
    /// import: the confirmation file.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// run: records sorted in memory before a run is spilled.
    #[arg(long, default_value_t = 200_000)]
    pub sort_buffer: usize,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Import,
    Run,
}

/// Where the parent puts the bench database's URL for a step.
const STEP_DATABASE_ENV: &str = "BILLCLEAR_BENCH_STEP_DATABASE_URL";

/// The line a step prints its figures on (JSON after the prefix).
const STEP_LINE: &str = "bench-recon-step: ";

/// What a step process measured of itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepFigures {
    /// The step alone (process start, connecting and loading excluded).
    pub seconds: f64,
    /// The process's resident memory when the step began (runtime, pool),
    /// bytes.
    pub rss_before: Option<u64>,
    /// The process's peak resident memory (VmHWM), read when the step
    /// ended, just before the process exits; bytes.
    pub peak: Option<u64>,
    /// import: records read, and whether the file was already there.
    pub records: Option<u64>,
    pub already: Option<bool>,
    /// run: what it found.
    pub summary: Option<RunSummary>,
}

/// What a generated payment (or credit) is made to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// CONFIRMED, credited once, same amount and reference.
    Matched,
    /// UNKNOWN, credited once, same amount: auto-confirmed.
    UnknownCredited,
    /// UNKNOWN, absent from the file: auto-rejected.
    UnknownAbsent,
    /// CONFIRMED, absent from the file.
    MissingAtBiller,
    /// CONFIRMED, credited once for another amount.
    AmountMismatch,
    /// CONFIRMED, credited twice.
    Duplicate,
    /// REJECTED here, credited by them (missing at us).
    RejectedCredited,
}

/// The special outcomes, in parts per 10,000 of the payments (the rest
/// are matched). Missing at us is split: REJECTED here (rounded up) and
/// unknown to us (credits of references we never had).
const SHARES: [(Kind, u64); 6] = [
    (Kind::UnknownCredited, 10),
    (Kind::UnknownAbsent, 5),
    (Kind::MissingAtBiller, 5),
    (Kind::AmountMismatch, 5),
    (Kind::Duplicate, 5),
    (Kind::RejectedCredited, 5),
];

/// How many payments of each kind a day of `n` holds, and how many
/// credits of references unknown to us its file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub payments: u64,
    pub unknown_credited: u64,
    pub unknown_absent: u64,
    pub missing_at_biller: u64,
    pub amount_mismatch: u64,
    pub duplicate: u64,
    pub rejected_credited: u64,
    pub not_ours: u64,
}

impl Plan {
    /// At least one of each for any `n >= 100`.
    pub fn new(n: u64) -> Plan {
        let share = |parts: u64| ((n * parts + 5_000) / 10_000).max(1);
        let missing_at_us = share(5);
        Plan {
            payments: n,
            unknown_credited: share(10),
            unknown_absent: share(5),
            missing_at_biller: share(5),
            amount_mismatch: share(5),
            duplicate: share(5),
            rejected_credited: missing_at_us.div_ceil(2),
            not_ours: missing_at_us / 2,
        }
    }

    fn count(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Matched => self.payments - self.special(),
            Kind::UnknownCredited => self.unknown_credited,
            Kind::UnknownAbsent => self.unknown_absent,
            Kind::MissingAtBiller => self.missing_at_biller,
            Kind::AmountMismatch => self.amount_mismatch,
            Kind::Duplicate => self.duplicate,
            Kind::RejectedCredited => self.rejected_credited,
        }
    }

    fn special(&self) -> u64 {
        SHARES.iter().map(|(k, _)| self.count(*k)).sum()
    }

    /// Rows of the confirmation file.
    pub fn credits(&self) -> u64 {
        self.count(Kind::Matched)
            + self.unknown_credited
            + self.amount_mismatch
            + 2 * self.duplicate
            + self.rejected_credited
            + self.not_ours
    }

    /// What the run must find: count per outcome (the names of the pandas
    /// script).
    pub fn expected(&self) -> BTreeMap<String, u64> {
        outcomes([
            self.count(Kind::Matched),
            self.unknown_credited,
            self.unknown_absent,
            self.missing_at_biller,
            self.rejected_credited + self.not_ours,
            self.duplicate,
            self.amount_mismatch,
            0,
            0,
            0,
            0,
        ])
    }
}

/// The outcome names, in the pandas script's order (then the ones the
/// script never gives for a water day).
const OUTCOMES: [&str; 11] = [
    "matched",
    "auto_confirm",
    "auto_reject",
    "missing_at_biller",
    "missing_at_us",
    "duplicate_at_biller",
    "amount_mismatch",
    "reference_mismatch",
    "agreed_not_applied",
    "status_mismatch",
    "pending",
];

fn outcomes(counts: [u64; 11]) -> BTreeMap<String, u64> {
    OUTCOMES
        .iter()
        .zip(counts)
        .map(|(n, c)| (n.to_string(), c))
        .collect()
}

/// What a run found, under the same names.
pub fn found(s: &RunSummary) -> BTreeMap<String, u64> {
    let brk = |c: &str| s.breaks.get(c).map(|t| t.count).unwrap_or(0);
    let mut out = outcomes([
        s.matched.count + s.matched_within_tolerance.count,
        s.auto_confirmed.count,
        s.auto_rejected.count,
        brk("missing-at-biller"),
        brk("missing-at-us"),
        brk("duplicate-at-biller"),
        brk("amount-mismatch"),
        brk("reference-mismatch"),
        s.agreed_not_applied,
        brk("status-mismatch"),
        s.pending.values().map(|t| t.count).sum(),
    ]);
    // A category this bench does not know must not go unnoticed.
    for (c, t) in &s.breaks {
        let name = c.replace('-', "_");
        out.entry(name).or_insert(t.count);
    }
    out
}

/// The figures of one bench run.
#[derive(Debug, Clone)]
pub struct ReconBenchReport {
    pub plan: Plan,
    pub business_date: NaiveDate,
    pub expected: BTreeMap<String, u64>,
    pub found: BTreeMap<String, u64>,
    pub summary: RunSummary,
    pub setup: Duration,
    /// The import alone, timed in its process.
    pub import: Duration,
    /// The run alone (`run_biller`), timed in its process.
    pub recon: Duration,
    /// Peak resident memory (VmHWM) of the process that ran the import
    /// and nothing else, bytes.
    pub import_peak_rss: Option<u64>,
    /// Peak resident memory (VmHWM) of the process that ran the
    /// reconciliation and nothing else, bytes: the figure.
    pub recon_peak_rss: Option<u64>,
    /// Of which resident when the run began (runtime, connection pool).
    pub recon_rss_before: Option<u64>,
    /// Resident memory of this (the setup's) process after the setup,
    /// bytes; in neither figure.
    pub setup_rss: Option<u64>,
    pub sort_buffer: usize,
    pub out_dir: PathBuf,
    pub pandas: Option<PandasFigures>,
    /// The bench's database (dropped afterwards unless --keep) and its
    /// working directory (stored file, spill runs).
    pub database: String,
    pub work_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct PandasFigures {
    pub seconds: f64,
    pub counts: BTreeMap<String, u64>,
    pub output: String,
}

pub async fn run(config: Config, args: ReconBenchArgs) -> anyhow::Result<()> {
    let r = measure(&config, &args).await?;
    print_report(&r, &args);
    Ok(())
}

/// Generates, imports, reconciles and checks; with `--pandas`, runs the
/// script too. Fails when any count differs from the generated ones.
pub async fn measure(config: &Config, args: &ReconBenchArgs) -> anyhow::Result<ReconBenchReport> {
    anyhow::ensure!(args.records >= 100, "--records must be at least 100");
    let plan = Plan::new(args.records);
    let db = BenchDb::create(config, "recon").await?;
    let result = measure_in(config, args, &plan, &db).await;
    let keep = args.keep;
    match &result {
        Ok(r) if keep => println!(
            "kept: database {}, files in {} and {}",
            db.name,
            r.out_dir.display(),
            work_dir(&db).display()
        ),
        _ => {
            let _ = std::fs::remove_dir_all(work_dir(&db));
            if args.out.is_none() {
                let _ = std::fs::remove_dir_all(default_out(&db));
            }
            db.drop().await;
        }
    }
    result
}

fn work_dir(db: &BenchDb) -> PathBuf {
    std::env::temp_dir().join(&db.name)
}

fn default_out(db: &BenchDb) -> PathBuf {
    work_dir(db).join("out")
}

async fn measure_in(
    config: &Config,
    args: &ReconBenchArgs,
    plan: &Plan,
    db: &BenchDb,
) -> anyhow::Result<ReconBenchReport> {
    let biller = db.biller(BILLER)?;
    let out_dir = args.out.clone().unwrap_or_else(|| default_out(db));
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let recon_dir = work_dir(db).join("recon");
    std::fs::create_dir_all(&recon_dir)?;

    // The business date: yesterday in the biller's zone, so the grace
    // period (0 here) is over.
    let today = Utc::now().with_timezone(&biller.cutoff.zone).date_naive();
    let date = today - Days::new(1);
    println!(
        "setup: {} payments for {} on {date} in database {} ...",
        plan.payments, biller.id, db.name
    );
    let t_setup = Instant::now();
    let expected = plan.expected();
    generate(db, &biller, date, plan, args.seed, &out_dir).await?;
    let setup = t_setup.elapsed();
    println!(
        "setup: {:.1} s (not measured); files in {}",
        setup.as_secs_f64(),
        out_dir.display()
    );

    // From here on: the import and the run, each in a process of its own
    // whose peak memory is its own (this one holds what the setup left).
    let setup_rss = super::proc_status_bytes("VmRSS:");
    let exe = match &args.exe {
        Some(exe) => exe.clone(),
        None => std::env::current_exe().context("finding the billclear executable")?,
    };
    let common: Vec<std::ffi::OsString> = vec![
        "--recon-dir".into(),
        recon_dir.clone().into_os_string(),
        "--biller".into(),
        BILLER.into(),
        "--date".into(),
        date.to_string().into(),
    ];
    let file = out_dir.join("confirmation.csv");
    let mut import_args = common.clone();
    import_args.extend(["--file".into(), file.into_os_string()]);
    let imported = run_step(&exe, &db.url, Step::Import, &import_args)
        .await
        .context("importing the confirmation file")?;
    let import = Duration::from_secs_f64(imported.seconds);
    anyhow::ensure!(
        imported.records == Some(plan.credits()) && imported.already == Some(false),
        "imported {:?} records (already there: {:?}), generated {}",
        imported.records,
        imported.already,
        plan.credits()
    );

    let sort_buffer = config.recon.sort_buffer_records;
    let mut run_args = common;
    run_args.extend(["--sort-buffer".into(), sort_buffer.to_string().into()]);
    let ran = run_step(&exe, &db.url, Step::Run, &run_args)
        .await
        .context("reconciling")?;
    let recon = Duration::from_secs_f64(ran.seconds);
    let summary = ran.summary.context("the run step gave no summary")?;

    let found = found(&summary);
    let names: std::collections::BTreeSet<&String> = expected.keys().chain(found.keys()).collect();
    let mut wrong: Vec<String> = Vec::new();
    for name in names {
        let count = |m: &BTreeMap<String, u64>| m.get(name).copied().unwrap_or(0);
        if count(&expected) != count(&found) {
            wrong.push(format!(
                "{name}: generated {}, found {}",
                count(&expected),
                count(&found)
            ));
        }
    }
    if summary.ours != plan.payments || summary.theirs != plan.credits() {
        wrong.push(format!(
            "references: generated {} ours / {} theirs, read {} / {}",
            plan.payments,
            plan.credits(),
            summary.ours,
            summary.theirs
        ));
    }
    anyhow::ensure!(
        wrong.is_empty(),
        "the run did not find what was generated:\n  {}",
        wrong.join("\n  ")
    );

    let pandas = match &args.pandas {
        Some(python) => {
            let script = pandas_script(args)?;
            let p = run_pandas(python, &script, &out_dir).await?;
            anyhow::ensure!(
                p.counts == expected,
                "pandas counts differ from the generated ones:\n  pandas    {:?}\n  generated {:?}\n{}",
                p.counts,
                expected,
                p.output
            );
            Some(p)
        }
        None => None,
    };

    Ok(ReconBenchReport {
        plan: plan.clone(),
        business_date: date,
        expected,
        found,
        summary,
        setup,
        import,
        recon,
        import_peak_rss: imported.peak,
        recon_peak_rss: ran.peak,
        recon_rss_before: ran.rss_before,
        setup_rss,
        sort_buffer,
        out_dir,
        pandas,
        database: db.name.clone(),
        work_dir: work_dir(db),
    })
}

/// Writes the day: payments (with their pending journals, posted for the
/// CONFIRMED ones, voided for the REJECTED), `payments.csv` and the water
/// `confirmation.csv` in credit order.
async fn generate(
    db: &BenchDb,
    biller: &Biller,
    date: NaiveDate,
    plan: &Plan,
    seed: u64,
    out_dir: &Path,
) -> anyhow::Result<()> {
    let store = &*db.store;
    let n = plan.payments;
    let from = day_start(biller, date);
    let end = day_start(biller, date + Days::new(1));
    // The last payment a second before midnight: all of them of the date.
    let span_ms = (end - from).num_milliseconds() - 1_000;
    super::seed_confirmed_payments(store, biller.id.as_str(), n, from, span_ms).await?;

    // Which payment gets which outcome.
    let mut rng = StdRng::seed_from_u64(seed);
    let mut kinds = vec![Kind::Matched; n as usize];
    let picked = rand::seq::index::sample(&mut rng, n as usize, plan.special() as usize);
    let mut picked = picked.into_iter();
    let mut unknown = Vec::new();
    let mut rejected = Vec::new();
    for (kind, _) in SHARES {
        for _ in 0..plan.count(kind) {
            let i = picked.next().expect("sampled enough");
            kinds[i] = kind;
            let reference = format!("bench-{}", i + 1);
            match kind {
                Kind::UnknownCredited | Kind::UnknownAbsent => unknown.push(reference),
                Kind::RejectedCredited => rejected.push(reference),
                _ => {}
            }
        }
    }
    // We hold no biller reference for a payment whose outcome we do not
    // know, nor for a rejected one.
    for (status, refs) in [("UNKNOWN", &unknown), ("REJECTED", &rejected)] {
        sqlx::query(
            "UPDATE payments SET status = $3, biller_reference = NULL, confirmed_at = NULL
              WHERE channel_id = $1 AND channel_reference = ANY($2)",
        )
        .bind(BENCH_CHANNEL)
        .bind(refs)
        .bind(status)
        .execute(store.pool())
        .await?;
    }
    seed_ledger(store, biller, from, end, n).await?;
    sqlx::query("ANALYZE").execute(store.pool()).await?;

    // The files, from the payments as stored.
    let zone = biller.cutoff.zone;
    let offset = zone.offset_from_utc_datetime(&from.naive_utc()).fix();
    let last = end - chrono::Duration::milliseconds(1);
    let mut payments_csv = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(out_dir.join("payments.csv"))?,
    );
    writeln!(
        payments_csv,
        "our_reference,biller_reference,account_number,amount,currency,status"
    )?;
    let mut credits: Vec<CreditRecord> = Vec::with_capacity(plan.credits() as usize);
    let credit = |reference: String,
                  biller_reference: String,
                  account: String,
                  amount: Decimal,
                  at: DateTime<Utc>| CreditRecord {
        our_reference: reference,
        biller_reference,
        biller_id: BILLER.into(),
        account_number: account,
        amount,
        currency: "CNY".into(),
        bill_reference: None,
        credited_at: at.min(last),
    };
    {
        let mut rows = sqlx::query(
            "SELECT id, channel_reference, biller_reference, account_number, amount, status,
                    created_at
               FROM payments WHERE channel_id = $1",
        )
        .bind(BENCH_CHANNEL)
        .fetch(store.pool());
        while let Some(r) = rows.try_next().await? {
            let id: uuid::Uuid = r.get("id");
            let reference = id.to_string();
            let channel_reference: String = r.get("channel_reference");
            let g: usize = channel_reference
                .strip_prefix("bench-")
                .and_then(|g| g.parse().ok())
                .context("a seeded payment's channel reference")?;
            let account: String = r.get("account_number");
            let amount: Decimal = r.get("amount");
            let status: String = r.get("status");
            let ours_ref: Option<String> = r.get("biller_reference");
            let created: DateTime<Utc> = r.get("created_at");
            writeln!(
                payments_csv,
                "{reference},{},{account},{},CNY,{status}",
                ours_ref.as_deref().unwrap_or(""),
                biller_sim::money2(amount)
            )?;
            let their_ref = format!("W{g}");
            let at = created + chrono::Duration::milliseconds(rng.gen_range(0..120_000));
            let mut push = |their_ref: String, amount: Decimal| {
                credits.push(credit(
                    reference.clone(),
                    their_ref,
                    account.clone(),
                    amount,
                    at,
                ))
            };
            match kinds[g - 1] {
                Kind::Matched | Kind::UnknownCredited | Kind::RejectedCredited => {
                    push(their_ref, amount)
                }
                Kind::UnknownAbsent | Kind::MissingAtBiller => {}
                Kind::AmountMismatch => {
                    let cents: i64 = if amount > Decimal::new(200, 2) {
                        *[-100, -1, 1, 5].choose(&mut rng).expect("deltas")
                    } else {
                        1
                    };
                    push(their_ref, amount + Decimal::new(cents, 2))
                }
                Kind::Duplicate => {
                    push(their_ref.clone(), amount);
                    push(format!("{their_ref}D"), amount)
                }
            }
        }
    }
    payments_csv
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    // Credits of references we never had.
    for i in 0..plan.not_ours {
        let reference = uuid::Builder::from_random_bytes(rng.gen()).into_uuid();
        let at = from + chrono::Duration::milliseconds(rng.gen_range(0..span_ms));
        let amount = Decimal::new(rng.gen_range(100..50_000), 2);
        credits.push(credit(
            reference.to_string(),
            format!("WX{i}"),
            "3100000011".into(),
            amount,
            at,
        ));
    }
    anyhow::ensure!(
        credits.len() as u64 == plan.credits(),
        "generated {} credits, planned {}",
        credits.len(),
        plan.credits()
    );
    // Their file is in their (credit) order, not sorted by our reference.
    credits.shuffle(&mut rng);
    let text = confirmation_csv(&credits, BILLER, date, offset);
    drop(credits);
    std::fs::write(out_dir.join("confirmation.csv"), &text)?;
    Ok(())
}

/// The pending journals of the payments created in [$2, $3): Dr channel
/// receivable ($4) / Cr biller payable ($5), journal and entries in one
/// statement.
const PENDING_JOURNALS: &str = "WITH p AS MATERIALIZED (
        SELECT id, pending_journal_id AS j, amount, currency, created_at FROM payments
         WHERE biller_id = $1 AND created_at >= $2 AND created_at < $3),
    journals AS (
        INSERT INTO ledger_journals (id, kind, payment_id, description, created_at)
        SELECT j, 'pending', id, 'payment ' || id || ' accepted', created_at FROM p)
    INSERT INTO ledger_entries (journal_id, account_id, currency, layer, side, amount)
    SELECT p.j, e.account, p.currency, 'pending', e.side, p.amount
      FROM p CROSS JOIN (VALUES ('debit', $4::bigint), ('credit', $5::bigint)) e(side, account)";

/// Their resolutions: post for a CONFIRMED payment, void for a REJECTED one.
const RESOLUTIONS: &str = "WITH p AS MATERIALIZED (
        SELECT id, pending_journal_id AS pending, gen_random_uuid() AS j, amount, currency,
               status, created_at FROM payments
         WHERE biller_id = $1 AND created_at >= $2 AND created_at < $3
           AND status IN ('CONFIRMED', 'REJECTED')),
    journals AS (
        INSERT INTO ledger_journals (id, kind, resolves, payment_id, description, created_at)
        SELECT j, CASE status WHEN 'CONFIRMED' THEN 'post' ELSE 'void' END, pending, id,
               'payment ' || id || ' ' || lower(status), created_at FROM p)
    INSERT INTO ledger_entries (journal_id, account_id, currency, layer, side, amount)
    SELECT p.j, e.account, p.currency, e.layer, e.side, p.amount
      FROM p JOIN (VALUES ('pending', 'credit', $4::bigint, true),
                          ('pending', 'debit', $5::bigint, true),
                          ('posted', 'debit', $4::bigint, false),
                          ('posted', 'credit', $5::bigint, false))
                  e(layer, side, account, always)
        ON e.always OR p.status = 'CONFIRMED'";

/// The ledger of the day, set-based in slices of the day: every payment's
/// pending journal (Dr channel receivable / Cr biller payable), posted for
/// a CONFIRMED payment, voided for a REJECTED one; UNKNOWN ones stay
/// pending for the run to decide.
async fn seed_ledger(
    store: &PgStore,
    biller: &Biller,
    from: DateTime<Utc>,
    end: DateTime<Utc>,
    n: u64,
) -> anyhow::Result<()> {
    let channel = ChannelId::parse(BENCH_CHANNEL)?;
    let codes = [
        AccountSpec::channel_receivable(&channel, biller.currency).code,
        AccountSpec::biller_payable(&biller.id, biller.currency).code,
    ];
    let mut ids = Vec::new();
    for code in &codes {
        let id: i64 = sqlx::query_scalar("SELECT id FROM ledger_accounts WHERE code = $1")
            .bind(code)
            .fetch_optional(store.pool())
            .await?
            .with_context(|| format!("no ledger account {code}"))?;
        ids.push(id);
    }
    let slices = n.div_ceil(200_000).max(1) as i32;
    let step = (end - from) / slices;
    for i in 0..slices {
        let lo = from + step * i;
        let hi = if i + 1 == slices { end } else { lo + step };
        // Pending journals, then their resolutions. Post: the pending
        // layer released, the posted layer booked. Void: the pending
        // layer released.
        for sql in [PENDING_JOURNALS, RESOLUTIONS] {
            sqlx::query(sql)
                .bind(biller.id.as_str())
                .bind(lo)
                .bind(hi)
                .bind(ids[0])
                .bind(ids[1])
                .execute(store.pool())
                .await?;
        }
    }
    Ok(())
}

/// Runs one step in a child process (`<exe> bench recon-step`) and reads
/// back what it measured of itself.
///
/// The peak is the child's own VmHWM, read by the child as its step ends.
/// Not `wait4`/`getrusage(RUSAGE_CHILDREN)`: Linux carries the high-water
/// mark of the address space a child had before `exec` (a copy of, or with
/// posix_spawn the very, parent's) into its `ru_maxrss`, so that figure
/// would again be at least what this process holds after the setup.
async fn run_step(
    exe: &Path,
    database_url: &str,
    step: Step,
    args: &[std::ffi::OsString],
) -> anyhow::Result<StepFigures> {
    let name = match step {
        Step::Import => "import",
        Step::Run => "run",
    };
    let out = tokio::process::Command::new(exe)
        .args(["bench", "recon-step", "--step", name])
        .args(args)
        .env(STEP_DATABASE_ENV, database_url)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "{} bench recon-step --step {name} failed ({}){}",
        exe.display(),
        out.status,
        if stdout.trim().is_empty() {
            String::new()
        } else {
            format!(":\n{stdout}")
        }
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(STEP_LINE))
        .with_context(|| {
            format!(
                "{} bench recon-step gave no figures (is it a billclear executable? --exe):\n{stdout}",
                exe.display()
            )
        })?;
    serde_json::from_str(line).context("reading the step's figures")
}

/// `billclear bench recon-step`: one timed step alone in this process;
/// prints its figures on one line for the parent ([`run_step`]).
pub async fn step(args: StepArgs) -> anyhow::Result<()> {
    let store = Arc::new(PgStore::connect(&args.database_url, 4).await?);
    let mut figures = StepFigures::default();
    match args.step {
        Step::Import => {
            let file = args.file.as_deref().context("--step import needs --file")?;
            figures.rss_before = super::proc_status_bytes("VmRSS:");
            let t = Instant::now();
            let imported = import_file(
                &*store,
                &args.recon_dir,
                &[],
                &args.biller,
                file,
                None,
                Some(args.date),
                "bench",
                Utc::now(),
            )
            .await?;
            figures.seconds = t.elapsed().as_secs_f64();
            figures.records = Some(imported.records);
            figures.already = Some(imported.already);
        }
        Step::Run => {
            let biller = store
                .load_billers()
                .await?
                .into_iter()
                .find(|b| b.id.as_str() == args.biller)
                .with_context(|| format!("no biller {}", args.biller))?;
            // The grace period over and exact amounts: what the generated
            // outcomes (and the pandas script) assume.
            let opts = RunOptions {
                dir: args.recon_dir.clone(),
                grace: Duration::ZERO,
                sort_buffer: args.sort_buffer,
                run_by: "bench".into(),
                file_routes: Default::default(),
            };
            let recon_store: Arc<dyn ReconStore> = store.clone();
            figures.rss_before = super::proc_status_bytes("VmRSS:");
            let t = Instant::now();
            let summary =
                run_biller(recon_store, &biller, args.date, &opts, 0, Utc::now(), None).await?;
            figures.seconds = t.elapsed().as_secs_f64();
            figures.summary = Some(summary);
        }
    }
    figures.peak = super::proc_status_bytes("VmHWM:");
    println!("{STEP_LINE}{}", serde_json::to_string(&figures)?);
    Ok(())
}

fn pandas_script(args: &ReconBenchArgs) -> anyhow::Result<PathBuf> {
    if let Some(p) = &args.pandas_script {
        return Ok(p.clone());
    }
    let here = PathBuf::from("ops/bench/recon_pandas.py");
    if here.exists() {
        return Ok(here);
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/bench/recon_pandas.py");
    anyhow::ensure!(
        source.exists(),
        "ops/bench/recon_pandas.py not found (give --pandas-script)"
    );
    Ok(source)
}

/// Runs the pandas script on `dir`; its counts and its time line.
async fn run_pandas(python: &Path, script: &Path, dir: &Path) -> anyhow::Result<PandasFigures> {
    println!(
        "pandas: {} {} {} ...",
        python.display(),
        script.display(),
        dir.display()
    );
    let out = tokio::process::Command::new(python)
        .arg(script)
        .arg(dir)
        .output()
        .await
        .with_context(|| format!("running {}", python.display()))?;
    let output = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "the pandas script failed ({}):\n{output}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_pandas(&output)
}

/// `<category> <count>` lines, then `pandas matching: X s (read Y s)`.
fn parse_pandas(output: &str) -> anyhow::Result<PandasFigures> {
    let mut counts = BTreeMap::new();
    let mut seconds = None;
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("pandas matching: ") {
            seconds = rest
                .split_whitespace()
                .next()
                .and_then(|s| s.parse::<f64>().ok());
            continue;
        }
        let mut words = line.split_whitespace();
        if let (Some(name), Some(count), None) = (words.next(), words.next(), words.next()) {
            if OUTCOMES.contains(&name) {
                if let Ok(c) = count.parse::<u64>() {
                    counts.insert(name.to_string(), c);
                }
            }
        }
    }
    for name in OUTCOMES {
        counts.entry(name.to_string()).or_insert(0);
    }
    Ok(PandasFigures {
        seconds: seconds
            .with_context(|| format!("no 'pandas matching: X s' line in:\n{output}"))?,
        counts,
        output: output.to_string(),
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn print_report(r: &ReconBenchReport, args: &ReconBenchArgs) {
    println!();
    print!("{}", render(r, args.seed));
}

/// The figures as printed.
pub fn render(r: &ReconBenchReport, seed: u64) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let s = &r.summary;
    let recon = r.recon.as_secs_f64();
    let import = r.import.as_secs_f64();
    let mib_or = |b: Option<u64>| {
        b.map(|b| format!("{:.0} MiB", mib(b)))
            .unwrap_or_else(|| "unknown (no /proc/self/status)".into())
    };
    let _ = writeln!(
        o,
        "bench recon: {} payments, biller {BILLER}, business date {}, seed {seed}",
        r.plan.payments, r.business_date
    );
    let _ = writeln!(
        o,
        "  records     {} ours, {} theirs (confirmation rows)",
        s.ours, s.theirs
    );
    let _ = writeln!(o, "  outcomes    (each exactly as generated)");
    for name in OUTCOMES {
        let n = r.found.get(name).copied().unwrap_or(0);
        if n > 0 || r.expected.get(name).copied().unwrap_or(0) > 0 {
            let _ = writeln!(o, "                {name:<20} {n:>9}");
        }
    }
    let _ = writeln!(
        o,
        "  import      {import:.2} s   (read whole, check, hash, store)"
    );
    let _ = writeln!(
        o,
        "  recon       {recon:.2} s   {:.0} records/s (sort, payments stream, merge, breaks and decisions written)",
        r.plan.payments as f64 / recon
    );
    let _ = writeln!(
        o,
        "  sort        buffer {} records (recon.sort_buffer_records), {} runs spilled",
        r.sort_buffer, s.spilled_runs
    );
    let _ = writeln!(
        o,
        "  peak memory recon {} (VmHWM of the process that ran only the reconciliation; {} resident when the run began)",
        mib_or(r.recon_peak_rss),
        mib_or(r.recon_rss_before)
    );
    let _ = writeln!(
        o,
        "              import {} (its own process); the setup's process, in neither: {} resident",
        mib_or(r.import_peak_rss),
        mib_or(r.setup_rss)
    );
    let _ = writeln!(
        o,
        "  target      recon of 1,000,000 < 10 s, memory bounded by the sort buffer"
    );
    if let Some(p) = &r.pandas {
        let _ = writeln!(
            o,
            "  pandas      {:.2} s   (read, parse, trailer check, group, merge, classify); counts agree",
            p.seconds
        );
        let _ = writeln!(
            o,
            "  ratio       pandas / recon {:.2}; pandas / (import + recon) {:.2}",
            p.seconds / recon,
            p.seconds / (import + recon)
        );
        if let Some(line) = p.output.lines().find(|l| l.starts_with("peak memory")) {
            let _ = writeln!(o, "              pandas {line}");
        }
    }
    let _ = writeln!(o, "  files       {}", r.out_dir.display());
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_shares() {
        let p = Plan::new(1_000_000);
        assert_eq!(p.unknown_credited, 1_000);
        assert_eq!(p.unknown_absent, 500);
        assert_eq!(p.missing_at_biller, 500);
        assert_eq!(p.amount_mismatch, 500);
        assert_eq!(p.duplicate, 500);
        assert_eq!((p.rejected_credited, p.not_ours), (250, 250));
        assert_eq!(p.count(Kind::Matched), 996_750);
        assert_eq!(p.credits(), 999_750);
        let small = Plan::new(100);
        assert!(small.special() <= 100 && small.count(Kind::Matched) > 0);
        assert_eq!(small.expected()["missing_at_us"], 1);
    }

    #[test]
    fn pandas_output() {
        let p = parse_pandas(
            "matched                 997000\nauto_confirm              1000\nreferences 1\npandas matching: 3.456 s (read 1.2 s)\n",
        )
        .unwrap();
        assert_eq!(p.seconds, 3.456);
        assert_eq!(p.counts["matched"], 997_000);
        assert_eq!(p.counts["auto_confirm"], 1_000);
        assert_eq!(p.counts["auto_reject"], 0);
        assert!(!p.counts.contains_key("references"));
    }
}
