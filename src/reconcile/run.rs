//! One reconciliation run: one biller, one business date.
//!
//! Their side: every current file of the date (core) and of the day after
//! (to catch payments credited after midnight) that speaks of the biller,
//! streamed from the stored bytes (digest checked) into a bounded external
//! sort by our reference. Our side: the biller's payments created on the
//! date (core) and the day before, streamed from the store in reference
//! order. A sorted merge hands each reference to the domain's `judge`;
//! breaks and decisions are written in chunks as they come. Memory holds
//! the sort buffer and one chunk, whatever the day's size.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::formats;
use super::import::StoredReader;
use super::report::{ReportBreakRow, ReportSummaryRow, RunReport};
use super::spill::ExternalSorter;
use crate::domain::biller::Biller;
use crate::domain::recon::matching::{
    judge, merge, Category, Decision, Earlier, Found, MatchRules, OrderError, OurPayment, Pending,
    Sourced, Verdict,
};
use crate::domain::recon::FileKind;
use crate::store::recon::{BreakFilter, BreaksRecorded, ReconFile, ReconStore};
use crate::store::StoreError;

/// Breaks written per chunk.
const CHUNK: usize = 2_000;
/// Automatic decisions are written in smaller chunks: each is a transition
/// with its ledger effect and callback (several statements), so they are
/// applied while the merge goes on rather than all after it.
const DECISION_CHUNK: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Order(#[from] OrderError),
    #[error("stored file #{id} ({name}) no longer has the bytes imported (digest differs): restore it from backup or import it again")]
    Tampered { id: i64, name: String },
    #[error("stored file #{id} ({name}) cannot be read again: {reason}")]
    Unreadable {
        id: i64,
        name: String,
        reason: String,
    },
    #[error("{0}")]
    Other(String),
}

/// How a run is asked for.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub dir: PathBuf,
    pub grace: Duration,
    pub sort_buffer: usize,
    pub run_by: String,
}

/// Counts and totals per outcome (a `BTreeMap` so it prints in one order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub count: u64,
    pub amount_minor: i64,
}

impl Tally {
    fn add(&mut self, minor: i64) {
        self.count += 1;
        self.amount_minor += minor;
    }
}

/// What a run found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: i64,
    pub biller_id: String,
    pub business_date: NaiveDate,
    pub currency: String,
    pub files: Vec<i64>,
    /// Connectors whose file of the date was an input. The hub's statement
    /// (of every biller it serves) only where it concerns this biller: the
    /// biller is routed through the hub, the statement holds a record of
    /// it, or one of its payments went through the hub.
    pub covered: Vec<String>,
    pub tolerance_minor: i64,
    pub ours: u64,
    pub theirs: u64,
    pub matched: Tally,
    pub matched_within_tolerance: Tally,
    pub agreed_not_applied: u64,
    pub auto_confirmed: Tally,
    pub auto_rejected: Tally,
    pub pending: BTreeMap<String, Tally>,
    pub breaks: BTreeMap<String, Tally>,
    pub recorded: BreaksRecorded,
    pub cleared: u64,
    pub spilled_runs: usize,
}

impl RunSummary {
    pub fn break_count(&self) -> u64 {
        self.breaks.values().map(|t| t.count).sum()
    }
}

/// The files of `dates` that speak of `biller`.
fn relevant<'a>(files: &'a [ReconFile], biller: &str) -> Vec<&'a ReconFile> {
    files
        .iter()
        .filter(|f| match f.kind {
            FileKind::HubStatement => true,
            k if k.is_bank() => false,
            _ => f.biller_id.as_deref() == Some(biller),
        })
        .collect()
}

/// Midnight starting `date` in the biller's zone, in UTC.
pub fn day_start(biller: &Biller, date: NaiveDate) -> DateTime<Utc> {
    let local = date.and_hms_opt(0, 0, 0).expect("midnight");
    biller
        .cutoff
        .zone
        .from_local_datetime(&local)
        .earliest()
        .unwrap_or_else(|| biller.cutoff.zone.from_utc_datetime(&local))
        .with_timezone(&Utc)
}

/// Reconciles one biller for one date.
pub async fn run_biller(
    store: Arc<dyn ReconStore>,
    biller: &Biller,
    date: NaiveDate,
    opts: &RunOptions,
    tolerance_minor: i64,
    now: DateTime<Utc>,
    progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
) -> Result<RunSummary, RunError> {
    let next = date + Days::new(1);
    let prev = date - Days::new(1);
    let all = store.current_files(&[date, next]).await?;
    let files: Vec<ReconFile> = relevant(&all, biller.id.as_str())
        .into_iter()
        .cloned()
        .collect();
    // What an absence is judged against. The hub's statement is in for
    // every biller: an absence proves something only for a payment that
    // went through the hub (whatever the biller's routes are today), and
    // then it must.
    let covered: BTreeSet<String> = files
        .iter()
        .filter(|f| f.business_date == date)
        .filter_map(|f| f.kind.connector().map(str::to_string))
        .collect();
    let file_ids: Vec<i64> = files.iter().map(|f| f.id).collect();
    let run_id = store
        .start_run(date, biller.id.as_str(), &opts.run_by, &file_ids, now)
        .await?;
    let result: Result<RunSummary, RunError> = async {
        let day_end = day_start(biller, next);
        let rules = MatchRules {
            tolerance_minor,
            grace_elapsed: now
                >= day_end + chrono::Duration::from_std(opts.grace).unwrap_or_default(),
            covered: covered.clone(),
        };

        // Their side, sorted by our reference in bounded memory.
        let dir = opts.dir.clone();
        let spill_dir = dir.join("tmp");
        std::fs::create_dir_all(&spill_dir)?;
        let biller_id = biller.id.to_string();
        let buffer = opts.sort_buffer.max(1_000);
        let (sorted, spoke_of_biller) = {
            let files = files.clone();
            let biller_id = biller_id.clone();
            tokio::task::spawn_blocking(move || -> Result<_, RunError> {
                let mut sorter: ExternalSorter<Sourced> =
                    ExternalSorter::new(&spill_dir, buffer, |s: &Sourced| &s.record.our_reference)?;
                // Connectors whose file of the date holds a record of the biller.
                let mut spoke: BTreeSet<&'static str> = BTreeSet::new();
                for f in &files {
                    let mut reader =
                        BufReader::with_capacity(1 << 20, StoredReader::open(&dir, &f.sha256)?);
                    let core = f.business_date == date;
                    let mut failed: Option<std::io::Error> = None;
                    let mut records = 0u64;
                    formats::read(f.kind, &mut reader, &mut |record| {
                        if failed.is_some() || record.biller_id != biller_id {
                            return;
                        }
                        records += 1;
                        if let Err(e) = sorter.push(Sourced {
                            record,
                            file_id: f.id,
                            kind: f.kind,
                            core,
                        }) {
                            failed = Some(e);
                        }
                    })
                    .map_err(|r| RunError::Unreadable {
                        id: f.id,
                        name: f.file_name.clone(),
                        reason: r.to_string(),
                    })?;
                    if let Some(e) = failed {
                        return Err(e.into());
                    }
                    if !reader.into_inner().verified() {
                        return Err(RunError::Tampered {
                            id: f.id,
                            name: f.file_name.clone(),
                        });
                    }
                    if core && records > 0 {
                        spoke.extend(f.kind.connector());
                    }
                }
                Ok((sorter.finish()?, spoke))
            })
            .await
            .map_err(|e| RunError::Other(format!("sorting task: {e}")))??
        };
        let spilled_runs = sorted.spilled_runs();

        // Our side, streamed in reference order.
        let (our_tx, mut our_rx) = tokio::sync::mpsc::channel::<OurPayment>(8_192);
        let feeder = {
            let store = store.clone();
            let biller_id = biller_id.clone();
            let from = day_start(biller, prev);
            let core_from = day_start(biller, date);
            tokio::spawn(async move {
                store
                    .stream_payments(&biller_id, from, core_from, day_end, our_tx)
                    .await
            })
        };

        // The merge, on a blocking thread; its output written in chunks here.
        enum Out {
            Breaks(Vec<Found>),
            Decisions(Vec<Decision>),
        }
        let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Out>(4);
        let merger = tokio::task::spawn_blocking(move || -> Result<_, RunError> {
            let mut s = RunSummary::default();
            // Connectors our payments went through.
            let mut went_through: BTreeSet<String> = BTreeSet::new();
            let mut breaks = Vec::new();
            let mut decisions = Vec::new();
            let ours = std::iter::from_fn(|| our_rx.blocking_recv()).map(Ok::<_, RunError>);
            let theirs = sorted.map(|r| r.map_err(RunError::from));
            let mut seen = 0u64;
            merge(ours, theirs, |g| {
                seen += 1;
                if seen.is_multiple_of(100_000) {
                    if let Some(p) = &progress {
                        p(seen);
                    }
                }
                if let Some(o) = &g.ours {
                    if o.core {
                        s.ours += 1;
                    }
                    if let Some(c) = &o.connector_id {
                        if !went_through.contains(c) {
                            went_through.insert(c.clone());
                        }
                    }
                }
                s.theirs += g.theirs.iter().filter(|t| t.core).count() as u64;
                let amount = g
                    .ours
                    .as_ref()
                    .map(|o| o.amount_minor)
                    .or_else(|| g.theirs.first().map(|t| t.record.amount_minor))
                    .unwrap_or(0);
                if s.currency.is_empty() {
                    if let Some(c) = g
                        .ours
                        .as_ref()
                        .map(|o| o.currency.clone())
                        .or_else(|| g.theirs.first().map(|t| t.record.currency.clone()))
                    {
                        s.currency = c;
                    }
                }
                for v in judge(g.ours.as_ref(), &g.theirs, &rules) {
                    match v {
                        Verdict::Matched { within_tolerance } => {
                            if within_tolerance {
                                s.matched_within_tolerance.add(amount)
                            } else {
                                s.matched.add(amount)
                            }
                        }
                        Verdict::AgreedNotApplied => s.agreed_not_applied += 1,
                        Verdict::DecidedBefore(Earlier::Confirm) => s.auto_confirmed.add(amount),
                        Verdict::DecidedBefore(Earlier::Reject) => s.auto_rejected.add(amount),
                        Verdict::Pending(p) => {
                            s.pending.entry(p.as_str().into()).or_default().add(amount)
                        }
                        Verdict::Decide(d) => {
                            match &d {
                                Decision::Confirm { .. } => s.auto_confirmed.add(amount),
                                Decision::Reject { .. } => s.auto_rejected.add(amount),
                            }
                            decisions.push(d);
                            if decisions.len() >= DECISION_CHUNK {
                                let chunk = std::mem::take(&mut decisions);
                                out_tx
                                    .blocking_send(Out::Decisions(chunk))
                                    .map_err(|_| RunError::Other("writer stopped".into()))?;
                            }
                        }
                        Verdict::Break(f) => {
                            let minor = f.their_amount_minor.or(f.our_amount_minor).unwrap_or(0);
                            s.breaks
                                .entry(f.category.as_str().into())
                                .or_default()
                                .add(minor);
                            breaks.push(f);
                            if breaks.len() >= CHUNK {
                                let chunk = std::mem::take(&mut breaks);
                                out_tx
                                    .blocking_send(Out::Breaks(chunk))
                                    .map_err(|_| RunError::Other("writer stopped".into()))?;
                            }
                        }
                    }
                }
                Ok(())
            })?;
            if !breaks.is_empty() {
                let _ = out_tx.blocking_send(Out::Breaks(breaks));
            }
            if !decisions.is_empty() {
                let _ = out_tx.blocking_send(Out::Decisions(decisions));
            }
            Ok((s, went_through))
        });
        let mut recorded = BreaksRecorded::default();
        let mut write_error: Option<RunError> = None;
        while let Some(out) = out_rx.recv().await {
            if write_error.is_some() {
                continue; // drain so the merge can end
            }
            let r = match out {
                Out::Breaks(chunk) => store
                    .record_breaks(run_id, date, &biller_id, &chunk, now)
                    .await
                    .map(|r| {
                        recorded.opened += r.opened;
                        recorded.reopened += r.reopened;
                        recorded.still_open += r.still_open;
                    }),
                Out::Decisions(chunk) => store
                    .apply_decisions(run_id, date, &biller_id, &chunk, now)
                    .await
                    .map(|_| ()),
            };
            if let Err(e) = r {
                write_error = Some(e.into());
            }
        }
        let merged = merger
            .await
            .map_err(|e| RunError::Other(format!("merge task: {e}")))?;
        let fed = feeder
            .await
            .map_err(|e| RunError::Other(format!("payments task: {e}")))?;
        fed?;
        if let Some(e) = write_error {
            return Err(e);
        }
        let (mut s, went_through) = merged?;
        // A statement of every biller (the hub's) is shown as covering this
        // one only where it concerns it.
        let own: BTreeSet<&str> = files
            .iter()
            .filter(|f| f.business_date == date && f.biller_id.as_deref() == Some(&biller_id))
            .filter_map(|f| f.kind.connector())
            .collect();
        s.covered = covered
            .into_iter()
            .filter(|c| {
                own.contains(c.as_str())
                    || biller.routes.iter().any(|r| r.as_str() == c)
                    || spoke_of_biller.contains(c.as_str())
                    || went_through.contains(c)
            })
            .collect();
        s.run_id = run_id;
        s.biller_id = biller_id;
        s.business_date = date;
        s.files = file_ids;
        s.tolerance_minor = tolerance_minor;
        s.spilled_runs = spilled_runs;
        s.recorded = recorded;
        let summary = serde_json::to_value(&s).map_err(|e| RunError::Other(e.to_string()))?;
        s.cleared = store.finish_run(run_id, &summary, now).await?;
        Ok(s)
    }
    .await;
    if let Err(e) = &result {
        let _ = store.fail_run(run_id, &e.to_string(), Utc::now()).await;
    }
    result
}

/// The categories in report order, for tables.
pub fn categories() -> impl Iterator<Item = Category> {
    Category::ALL.into_iter()
}

/// The pending reasons, for tables.
pub fn pendings() -> [Pending; 4] {
    [
        Pending::InFlight,
        Pending::WithinGrace,
        Pending::SourceMissing,
        Pending::Resent,
    ]
}

/// The report directory of a date.
pub fn report_dir(dir: &Path, date: NaiveDate) -> PathBuf {
    dir.join("reports").join(date.to_string())
}

/// The report of the billers reconciled together for a date: a summary row
/// per biller and outcome (matched, decided, pending, each break
/// category), and the breaks the runs found, in a fixed order.
pub async fn build_report(
    store: &dyn ReconStore,
    date: NaiveDate,
    label: &str,
    summaries: &[RunSummary],
) -> Result<RunReport, RunError> {
    let mut summary = Vec::new();
    let mut breaks = Vec::new();
    let mut ordered: Vec<&RunSummary> = summaries.iter().collect();
    ordered.sort_by(|a, b| a.biller_id.cmp(&b.biller_id));
    for s in ordered {
        let currency = if s.currency.is_empty() {
            "CNY".to_string()
        } else {
            s.currency.clone()
        };
        let mut row = |category: &str, t: &Tally| {
            summary.push(ReportSummaryRow {
                biller_id: s.biller_id.clone(),
                category: category.to_string(),
                count: t.count,
                amount_minor: t.amount_minor,
                currency: currency.clone(),
            })
        };
        row("matched", &s.matched);
        row("matched-within-tolerance", &s.matched_within_tolerance);
        row("auto-confirmed", &s.auto_confirmed);
        row("auto-rejected", &s.auto_rejected);
        for p in pendings() {
            let t = s.pending.get(p.as_str()).cloned().unwrap_or_default();
            row(&format!("pending:{}", p.as_str()), &t);
        }
        for c in categories() {
            let t = s.breaks.get(c.as_str()).cloned().unwrap_or_default();
            row(c.as_str(), &t);
        }
        let found = store
            .breaks(&BreakFilter {
                date: Some(date),
                scope: Some(s.biller_id.clone()),
                ..Default::default()
            })
            .await?;
        breaks.extend(
            found
                .into_iter()
                .filter(|b| b.found_by_run == Some(s.run_id))
                .map(|b| ReportBreakRow {
                    break_id: b.id,
                    business_date: b.business_date,
                    biller_id: b.scope,
                    category: b.category.as_str().to_string(),
                    status: b.status.as_str().to_string(),
                    our_reference: b.our_reference,
                    their_reference: b.their_reference,
                    our_amount_minor: b.our_amount_minor,
                    their_amount_minor: b.their_amount_minor,
                    currency: b.currency,
                    detail: b.detail,
                    owner: b.owner.unwrap_or_default(),
                }),
        );
    }
    Ok(RunReport {
        run_label: label.to_string(),
        business_date: date,
        summary,
        breaks,
    })
}

/// Writes the report as `<stem>-summary.csv`, `<stem>-breaks.csv` and
/// `<stem>.xlsx` in the date's report directory (replacing a previous
/// run's), records the names on each run, and returns the paths.
pub async fn write_report(
    store: &dyn ReconStore,
    dir: &Path,
    report: &RunReport,
    stem: &str,
    runs: &[i64],
) -> Result<Vec<PathBuf>, RunError> {
    let out = report_dir(dir, report.business_date);
    std::fs::create_dir_all(&out)?;
    let mut paths = super::report::write_csv(report, &out, stem)?;
    paths.push(super::report::write_xlsx(
        report,
        &out.join(format!("{stem}.xlsx")),
    )?);
    let names: Vec<String> = paths
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for run in runs {
        store.set_run_reports(*run, &names).await?;
    }
    Ok(paths)
}

/// Whether `name` is a report file name billclear writes (no path parts).
pub fn is_report_name(name: &str) -> bool {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok_chars
        && !name.starts_with('.')
        && (name.ends_with("-summary.csv")
            || name.ends_with("-breaks.csv")
            || name.ends_with(".xlsx"))
}

/// What the bank statement pass found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BankSummary {
    pub run_id: i64,
    pub business_date: NaiveDate,
    pub files: Vec<i64>,
    pub lines: u64,
    pub not_booked: u64,
    pub batches_matched: Tally,
    pub fundings_matched: Tally,
    pub fundings_booked: u64,
    /// The first requested execution date this run answers for (the day
    /// after the previous statement's date; the date itself when there is
    /// none): batches due from then through the date are judged here.
    pub payouts_due_from: NaiveDate,
    /// Batches due in that window (a pain.001 asked the bank to pay them).
    pub batches_due: u64,
    /// Of them, those no booked debit of this statement or an earlier one
    /// moved (each a settlement-mismatch break), by net.
    pub batches_unpaid: Tally,
    pub breaks: BTreeMap<String, Tally>,
    pub recorded: BreaksRecorded,
    pub cleared: u64,
}

/// The scope of the bank statement's runs and breaks.
pub const BANK_SCOPE: &str = "bank";

/// The statements of a stored camt.053 file, its digest checked.
fn read_statements(dir: &Path, f: &ReconFile) -> Result<Vec<super::camt053::Statement>, RunError> {
    let mut reader = StoredReader::open(dir, &f.sha256)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut bytes)?;
    if !reader.verified() {
        return Err(RunError::Tampered {
            id: f.id,
            name: f.file_name.clone(),
        });
    }
    let (_, statements) = super::camt053::parse(&bytes).map_err(|e| RunError::Unreadable {
        id: f.id,
        name: f.file_name.clone(),
        reason: e.to_string(),
    })?;
    Ok(statements)
}

/// One statement entry as reconciliation reads it.
fn bank_line(
    file_id: i64,
    e: &super::camt053::Entry,
) -> Result<crate::domain::recon::bank::BankLine, RunError> {
    let minor = i64::try_from(e.amount.minor_units())
        .map_err(|_| RunError::Other(format!("bank line {} amount too large", e.line)))?;
    Ok(crate::domain::recon::bank::BankLine {
        file_id,
        line: e.line as u64,
        signed_minor: if e.credit { minor } else { -minor },
        currency: e.amount.currency().code().to_string(),
        booked: e.status == "BOOK",
        bank_reference: e.bank_reference.clone(),
        end_to_end_id: e.end_to_end_id.clone(),
        remittance: e.remittance.clone(),
    })
}

/// A closed batch as the payout check reads it.
fn closed_batch(
    b: crate::store::BatchRecord,
) -> Result<crate::domain::recon::bank::ClosedBatch, RunError> {
    let c = crate::domain::money::Currency::from_code(&b.currency)
        .map_err(|e| RunError::Other(e.to_string()))?;
    Ok(crate::domain::recon::bank::ClosedBatch {
        id: b.id,
        biller_id: b.biller_id,
        business_date: b.business_date,
        created_at: b.created_at,
        net_minor: crate::store::postgres::recon_minor(b.totals.net(), c)?,
        currency: b.currency,
        files_written: b.files_written_at.is_some(),
    })
}

/// Reconciles the bank statement(s) of `date` (camt.053 imported with
/// `--source bank`) against settlement batches and channel funding, and
/// finds the batches due by the date (see `DueWindow`) that no booked
/// debit of these or earlier statements paid. None when no statement of
/// the date is imported (nothing is judged then, unpaid batches neither).
pub async fn run_bank(
    store: Arc<dyn crate::store::Store>,
    date: NaiveDate,
    opts: &RunOptions,
    now: DateTime<Utc>,
) -> Result<Option<BankSummary>, RunError> {
    use crate::domain::recon::bank::{
        batch_of, funding_of, judge_line, judge_payout, paid_batch, BankVerdict, DueWindow,
        Expected, Payout,
    };
    let files: Vec<ReconFile> = store
        .current_files(&[date])
        .await?
        .into_iter()
        .filter(|f| f.kind == FileKind::Camt053)
        .collect();
    if files.is_empty() {
        return Ok(None);
    }
    let file_ids: Vec<i64> = files.iter().map(|f| f.id).collect();
    let run_id = store
        .start_run(date, BANK_SCOPE, &opts.run_by, &file_ids, now)
        .await?;
    let result: Result<Option<BankSummary>, RunError> = async {
        let mut s = BankSummary {
            run_id,
            business_date: date,
            files: file_ids,
            ..Default::default()
        };
        let mut found = Vec::new();
        // Batches a booked debit moved (this date's statements, then the
        // earlier ones that matter).
        let mut paid = BTreeSet::new();
        for f in &files {
            let statements = read_statements(&opts.dir, f)?;
            for e in statements.iter().flat_map(|st| st.entries.iter()) {
                s.lines += 1;
                let line = bank_line(f.id, e)?;
                paid.extend(paid_batch(&line));
                let mut expected = None;
                if let Some(id) = line.end_to_end_id.as_deref().and_then(batch_of) {
                    if let Some(b) = store.batch(id).await? {
                        let c = crate::domain::money::Currency::from_code(&b.currency)
                            .map_err(|e| RunError::Other(e.to_string()))?;
                        expected = Some(Expected::Batch {
                            id,
                            biller_id: b.biller_id.clone(),
                            net_minor: crate::store::postgres::recon_minor(b.totals.net(), c)?,
                            currency: b.currency.clone(),
                        });
                    }
                } else if let Some((channel, day)) = line.remittance.as_deref().and_then(funding_of)
                {
                    if let Ok(ch) = crate::domain::ids::ChannelId::parse(&channel) {
                        let lines = store.channel_statement(&ch, day).await?;
                        if let Some(first) = lines.first() {
                            let c = crate::domain::money::Currency::from_code(&first.currency)
                                .map_err(|e| RunError::Other(e.to_string()))?;
                            let owed: rust_decimal::Decimal =
                                lines.iter().map(|l| l.amount - l.returned).sum();
                            expected = Some(Expected::Funding {
                                channel_id: channel.clone(),
                                date: day,
                                owed_minor: crate::store::postgres::recon_minor(owed, c)?,
                                currency: first.currency.clone(),
                            });
                        }
                    }
                }
                match judge_line(&line, expected.as_ref()) {
                    BankVerdict::NotBooked => s.not_booked += 1,
                    BankVerdict::Batch { .. } => s.batches_matched.add(-line.signed_minor),
                    BankVerdict::Funding {
                        channel_id,
                        date: day,
                    } => {
                        s.fundings_matched.add(line.signed_minor);
                        if store
                            .record_funding(
                                &line.subject(),
                                &channel_id,
                                day,
                                line.signed_minor,
                                &line.currency,
                                f.id,
                                now,
                            )
                            .await?
                        {
                            s.fundings_booked += 1;
                        }
                    }
                    BankVerdict::Break(b) => {
                        s.breaks
                            .entry(b.category.as_str().into())
                            .or_default()
                            .add(line.signed_minor);
                        found.push(b);
                    }
                }
            }
        }
        // Batches the bank was asked to pay by this date and never moved.
        let window = DueWindow::of(date, store.bank_statement_before(date).await?);
        s.payouts_due_from = window.from;
        let batches = store
            .batches_due_between(window.from, window.through)
            .await?
            .into_iter()
            .map(closed_batch)
            .collect::<Result<Vec<_>, _>>()?;
        let earliest = batches
            .iter()
            .filter(|b| b.due_in(&window) && !paid.contains(&b.id))
            .map(|b| b.bookable_from())
            .min();
        if let Some(earliest) = earliest {
            let earlier: Vec<NaiveDate> = earliest.iter_days().take_while(|d| *d < date).collect();
            for f in store
                .current_files(&earlier)
                .await?
                .iter()
                .filter(|f| f.kind == FileKind::Camt053)
            {
                for st in read_statements(&opts.dir, f)? {
                    for e in &st.entries {
                        paid.extend(paid_batch(&bank_line(f.id, e)?));
                    }
                }
            }
        }
        for b in &batches {
            match judge_payout(b, &window, &paid) {
                Payout::NotAsked | Payout::NotDue => {}
                Payout::Paid => s.batches_due += 1,
                Payout::Unpaid(f) => {
                    s.batches_due += 1;
                    s.batches_unpaid.add(b.net_minor);
                    s.breaks
                        .entry(f.category.as_str().into())
                        .or_default()
                        .add(-b.net_minor);
                    found.push(f);
                }
            }
        }
        s.recorded = store
            .record_breaks(run_id, date, BANK_SCOPE, &found, now)
            .await?;
        let summary = serde_json::to_value(&s).map_err(|e| RunError::Other(e.to_string()))?;
        s.cleared = store.finish_run(run_id, &summary, now).await?;
        Ok(Some(s))
    }
    .await;
    if let Err(e) = &result {
        let _ = store.fail_run(run_id, &e.to_string(), Utc::now()).await;
    }
    result
}
