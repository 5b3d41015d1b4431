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
use super::report::{ReportBalanceRow, ReportBreakRow, ReportSummaryRow, RunReport};
use super::spill::{ExternalSorter, SortedIter};
use crate::domain::biller::Biller;
use crate::domain::recon::matching::{
    judge, merge, Category, Decision, Earlier, Found, Group, MatchRules, OrderError, OurPayment,
    Pending, Sourced, Verdict,
};
use crate::domain::recon::{FileKind, FileRoutes};
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
    /// Which connector each file kind reports on (`recon.file_routes`).
    pub file_routes: FileRoutes,
}

/// Counts and totals per outcome (a `BTreeMap` so it prints in one order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub count: u64,
    pub amount_minor: i64,
}

/// Tallies per currency (ISO code): amounts of different currencies are
/// never added together.
pub type PerCurrency = BTreeMap<String, Tally>;

fn add_in(t: &mut PerCurrency, currency: &str, minor: i64) {
    t.entry(currency.to_string()).or_default().add(minor);
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
    let covered = covered_on(&files, date, &opts.file_routes);
    let file_ids: Vec<i64> = files.iter().map(|f| f.id).collect();
    let run_id = store
        .start_run(date, biller.id.as_str(), &opts.run_by, &file_ids, now)
        .await?;
    let run = BillerRun {
        store: store.clone(),
        biller,
        date,
        next,
        prev,
        opts,
        tolerance_minor,
        now,
        run_id,
    };
    let result = run.pass(files, covered, file_ids, progress).await;
    if let Err(e) = &result {
        let _ = store.fail_run(run_id, &e.to_string(), Utc::now()).await;
    }
    result
}

/// What an absence is judged against: the connectors whose file of `date`
/// is among `files`.
fn covered_on(files: &[ReconFile], date: NaiveDate, routes: &FileRoutes) -> BTreeSet<String> {
    // The hub's statement is in for every biller: an absence proves
    // something only for a payment that went through the hub (whatever
    // the biller's routes are today), and then it must.
    files
        .iter()
        .filter(|f| f.business_date == date)
        .filter_map(|f| routes.connector(f.kind).map(str::to_string))
        .collect()
}

/// A progress callback: called with the count of references merged so far.
type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// One biller's run once started: what its steps share.
struct BillerRun<'a> {
    store: Arc<dyn ReconStore>,
    biller: &'a Biller,
    date: NaiveDate,
    next: NaiveDate,
    prev: NaiveDate,
    opts: &'a RunOptions,
    tolerance_minor: i64,
    now: DateTime<Utc>,
    run_id: i64,
}

impl BillerRun<'_> {
    /// Sorts their side, streams ours, merges and judges them while writing
    /// what is found, then finishes the run with its summary.
    async fn pass(
        &self,
        files: Vec<ReconFile>,
        covered: BTreeSet<String>,
        file_ids: Vec<i64>,
        progress: Option<Progress>,
    ) -> Result<RunSummary, RunError> {
        let day_end = day_start(self.biller, self.next);
        let rules = self.rules(day_end, &covered);
        let biller_id = self.biller.id.to_string();
        let (sorted, spoke_of_biller) = self.sort_theirs(&files, &biller_id).await?;
        let spilled_runs = sorted.spilled_runs();
        let (our_rx, feeder) = self.feed_ours(&biller_id, day_end);

        // The merge, on a blocking thread; its output written in chunks here.
        let (out_tx, out_rx) = tokio::sync::mpsc::channel::<Out>(4);
        let judging = Judging::new(rules, progress, out_tx);
        let merger = tokio::task::spawn_blocking(move || judging.judge_all(our_rx, sorted));
        let (recorded, write_error) = self.write_found(&biller_id, out_rx).await;
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
        s.covered = self.concerned(&files, &biller_id, covered, &spoke_of_biller, &went_through);
        s.run_id = self.run_id;
        s.biller_id = biller_id;
        s.business_date = self.date;
        s.files = file_ids;
        s.tolerance_minor = self.tolerance_minor;
        s.spilled_runs = spilled_runs;
        s.recorded = recorded;
        let summary = serde_json::to_value(&s).map_err(|e| RunError::Other(e.to_string()))?;
        s.cleared = self
            .store
            .finish_run(self.run_id, &summary, self.now)
            .await?;
        Ok(s)
    }

    /// The matching rules of this run: the biller's tolerance, whether the
    /// grace period after the date's end has passed, the covered connectors.
    fn rules(&self, day_end: DateTime<Utc>, covered: &BTreeSet<String>) -> MatchRules {
        MatchRules {
            tolerance_minor: self.tolerance_minor,
            grace_elapsed: self.now
                >= day_end + chrono::Duration::from_std(self.opts.grace).unwrap_or_default(),
            covered: covered.clone(),
            file_routes: self.opts.file_routes.clone(),
        }
    }

    /// Their side, sorted by our reference in bounded memory (on a blocking
    /// thread), and the connectors whose file of the date holds a record of
    /// the biller.
    async fn sort_theirs(
        &self,
        files: &[ReconFile],
        biller_id: &str,
    ) -> Result<(SortedIter<Sourced>, BTreeSet<String>), RunError> {
        let dir = self.opts.dir.clone();
        let spill_dir = dir.join("tmp");
        std::fs::create_dir_all(&spill_dir)?;
        let buffer = self.opts.sort_buffer.max(1_000);
        let files = files.to_vec();
        let biller_id = biller_id.to_string();
        let routes = self.opts.file_routes.clone();
        let date = self.date;
        tokio::task::spawn_blocking(move || {
            sort_their_side(&dir, &spill_dir, buffer, &files, &biller_id, date, &routes)
        })
        .await
        .map_err(|e| RunError::Other(format!("sorting task: {e}")))?
    }

    /// Our side, streamed in reference order by a task of its own: the
    /// biller's payments from the start of the day before to `day_end`.
    fn feed_ours(
        &self,
        biller_id: &str,
        day_end: DateTime<Utc>,
    ) -> (
        tokio::sync::mpsc::Receiver<OurPayment>,
        tokio::task::JoinHandle<Result<u64, StoreError>>,
    ) {
        let (our_tx, our_rx) = tokio::sync::mpsc::channel::<OurPayment>(8_192);
        let store = self.store.clone();
        let biller_id = biller_id.to_string();
        let from = day_start(self.biller, self.prev);
        let core_from = day_start(self.biller, self.date);
        let feeder = tokio::spawn(async move {
            store
                .stream_payments(&biller_id, from, core_from, day_end, our_tx)
                .await
        });
        (our_rx, feeder)
    }

    /// Writes the merge's chunks as they come (breaks recorded, decisions
    /// applied); after a failed write drains the rest so the merge can end,
    /// and returns that error beside what was recorded.
    async fn write_found(
        &self,
        biller_id: &str,
        mut out_rx: tokio::sync::mpsc::Receiver<Out>,
    ) -> (BreaksRecorded, Option<RunError>) {
        let (run_id, date, now) = (self.run_id, self.date, self.now);
        let mut recorded = BreaksRecorded::default();
        let mut write_error: Option<RunError> = None;
        while let Some(out) = out_rx.recv().await {
            if write_error.is_some() {
                continue; // drain so the merge can end
            }
            let r = match out {
                Out::Breaks(chunk) => self
                    .store
                    .record_breaks(run_id, date, biller_id, &chunk, now)
                    .await
                    .map(|r| {
                        recorded.opened += r.opened;
                        recorded.reopened += r.reopened;
                        recorded.still_open += r.still_open;
                    }),
                Out::Decisions(chunk) => self
                    .store
                    .apply_decisions(run_id, date, biller_id, &chunk, now)
                    .await
                    .map(|_| ()),
            };
            if let Err(e) = r {
                write_error = Some(e.into());
            }
        }
        (recorded, write_error)
    }

    /// The covered connectors shown for this biller: a statement of every
    /// biller (the hub's) is shown as covering this one only where it
    /// concerns it.
    fn concerned(
        &self,
        files: &[ReconFile],
        biller_id: &str,
        covered: BTreeSet<String>,
        spoke_of_biller: &BTreeSet<String>,
        went_through: &BTreeSet<String>,
    ) -> Vec<String> {
        let own: BTreeSet<&str> = files
            .iter()
            .filter(|f| f.business_date == self.date && f.biller_id.as_deref() == Some(biller_id))
            .filter_map(|f| self.opts.file_routes.connector(f.kind))
            .collect();
        covered
            .into_iter()
            .filter(|c| {
                own.contains(c.as_str())
                    || self.biller.routes.iter().any(|r| r.as_str() == c)
                    || spoke_of_biller.contains(c.as_str())
                    || went_through.contains(c)
            })
            .collect()
    }
}

/// Reads the biller's records of every file into one external sorter
/// (spilling under `spill_dir`); returns them sorted, and the connectors
/// whose file of `date` held any.
fn sort_their_side(
    dir: &Path,
    spill_dir: &Path,
    buffer: usize,
    files: &[ReconFile],
    biller_id: &str,
    date: NaiveDate,
    routes: &FileRoutes,
) -> Result<(SortedIter<Sourced>, BTreeSet<String>), RunError> {
    let mut sorter: ExternalSorter<Sourced> =
        ExternalSorter::new(spill_dir, buffer, |s: &Sourced| &s.record.our_reference)?;
    // Connectors whose file of the date holds a record of the biller.
    let mut spoke: BTreeSet<String> = BTreeSet::new();
    for f in files {
        let core = f.business_date == date;
        let records = sort_file(&mut sorter, dir, f, biller_id, core)?;
        if core && records > 0 {
            spoke.extend(routes.connector(f.kind).map(str::to_string));
        }
    }
    Ok((sorter.finish()?, spoke))
}

/// Pushes the biller's records of one stored file into `sorter`, then
/// checks the bytes read are those imported; returns how many it pushed.
fn sort_file(
    sorter: &mut ExternalSorter<Sourced>,
    dir: &Path,
    f: &ReconFile,
    biller_id: &str,
    core: bool,
) -> Result<u64, RunError> {
    let mut reader = BufReader::with_capacity(1 << 20, StoredReader::open(dir, &f.sha256)?);
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
    Ok(records)
}

/// A chunk of what the merge found, for the writer.
enum Out {
    Breaks(Vec<Found>),
    Decisions(Vec<Decision>),
}

/// The merge's state: the summary's counts so far, the connectors our
/// payments went through, and the breaks and decisions not yet handed to
/// the writer.
struct Judging {
    rules: MatchRules,
    progress: Option<Progress>,
    out: tokio::sync::mpsc::Sender<Out>,
    s: RunSummary,
    went_through: BTreeSet<String>,
    breaks: Vec<Found>,
    decisions: Vec<Decision>,
    seen: u64,
}

impl Judging {
    fn new(
        rules: MatchRules,
        progress: Option<Progress>,
        out: tokio::sync::mpsc::Sender<Out>,
    ) -> Judging {
        Judging {
            rules,
            progress,
            out,
            s: RunSummary::default(),
            went_through: BTreeSet::new(),
            breaks: Vec::new(),
            decisions: Vec::new(),
            seen: 0,
        }
    }

    /// Merges both sides and judges each reference; sends the last chunks
    /// and returns the counts and the connectors our payments went through.
    fn judge_all(
        mut self,
        mut our_rx: tokio::sync::mpsc::Receiver<OurPayment>,
        sorted: SortedIter<Sourced>,
    ) -> Result<(RunSummary, BTreeSet<String>), RunError> {
        let ours = std::iter::from_fn(|| our_rx.blocking_recv()).map(Ok::<_, RunError>);
        let theirs = sorted.map(|r| r.map_err(RunError::from));
        merge(ours, theirs, |g| self.group(g))?;
        if !self.breaks.is_empty() {
            let breaks = std::mem::take(&mut self.breaks);
            let _ = self.out.blocking_send(Out::Breaks(breaks));
        }
        if !self.decisions.is_empty() {
            let decisions = std::mem::take(&mut self.decisions);
            let _ = self.out.blocking_send(Out::Decisions(decisions));
        }
        Ok((self.s, self.went_through))
    }

    /// Counts one reference's group and acts on each verdict on it.
    fn group(&mut self, g: Group) -> Result<(), RunError> {
        self.seen += 1;
        if self.seen.is_multiple_of(100_000) {
            if let Some(p) = &self.progress {
                p(self.seen);
            }
        }
        self.count_sides(&g);
        let amount = g
            .ours
            .as_ref()
            .map(|o| o.amount_minor)
            .or_else(|| g.theirs.first().map(|t| t.record.amount_minor))
            .unwrap_or(0);
        for v in judge(g.ours.as_ref(), &g.theirs, &self.rules) {
            self.verdict(v, amount)?;
        }
        Ok(())
    }

    /// Counts each side's items of the date, notes the connector our payment
    /// went through, and takes the run's currency from the first group.
    fn count_sides(&mut self, g: &Group) {
        let s = &mut self.s;
        if let Some(o) = &g.ours {
            if o.core {
                s.ours += 1;
            }
            if let Some(c) = &o.connector_id {
                if !self.went_through.contains(c) {
                    self.went_through.insert(c.clone());
                }
            }
        }
        s.theirs += g.theirs.iter().filter(|t| t.core).count() as u64;
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
    }

    /// Tallies one verdict; queues a decision or a break, handing a full
    /// chunk to the writer.
    fn verdict(&mut self, v: Verdict, amount: i64) -> Result<(), RunError> {
        let s = &mut self.s;
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
            Verdict::Pending(p) => s.pending.entry(p.as_str().into()).or_default().add(amount),
            Verdict::Decide(d) => {
                match &d {
                    Decision::Confirm { .. } => s.auto_confirmed.add(amount),
                    Decision::Reject { .. } => s.auto_rejected.add(amount),
                }
                self.decisions.push(d);
                if self.decisions.len() >= DECISION_CHUNK {
                    let chunk = std::mem::take(&mut self.decisions);
                    self.send(Out::Decisions(chunk))?;
                }
            }
            Verdict::Break(f) => {
                let minor = f.their_amount_minor.or(f.our_amount_minor).unwrap_or(0);
                s.breaks
                    .entry(f.category.as_str().into())
                    .or_default()
                    .add(minor);
                self.breaks.push(f);
                if self.breaks.len() >= CHUNK {
                    let chunk = std::mem::take(&mut self.breaks);
                    self.send(Out::Breaks(chunk))?;
                }
            }
        }
        Ok(())
    }

    /// Hands a chunk to the writer (an error once the writer has stopped).
    fn send(&self, out: Out) -> Result<(), RunError> {
        self.out
            .blocking_send(out)
            .map_err(|_| RunError::Other("writer stopped".into()))
    }
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
    bank: Option<&BankSummary>,
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
                .map(report_row),
        );
    }
    let mut balances = Vec::new();
    if let Some(b) = bank {
        bank_report(store, date, b, &mut summary, &mut breaks, &mut balances).await?;
    }
    Ok(RunReport {
        run_label: label.to_string(),
        business_date: date,
        summary,
        breaks,
        balances,
    })
}

/// A break as the report lists it.
fn report_row(b: crate::store::recon::BreakRow) -> ReportBreakRow {
    ReportBreakRow {
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
    }
}

/// The bank's part of the day's report: its outcomes and breaks (scope
/// `bank`, amounts per currency), and the balances beside the ledger's.
async fn bank_report(
    store: &dyn ReconStore,
    date: NaiveDate,
    b: &BankSummary,
    summary: &mut Vec<ReportSummaryRow>,
    breaks: &mut Vec<ReportBreakRow>,
    balances: &mut Vec<ReportBalanceRow>,
) -> Result<(), RunError> {
    bank_summary_rows(b, summary);
    let found = store
        .breaks(&BreakFilter {
            date: Some(date),
            scope: Some(BANK_SCOPE.to_string()),
            ..Default::default()
        })
        .await?;
    breaks.extend(
        found
            .into_iter()
            .filter(|x| x.found_by_run == Some(b.run_id))
            .map(report_row),
    );
    for p in &b.balances {
        balance_rows(p, balances);
    }
    Ok(())
}

/// The bank's summary rows: per currency, payouts and fundings matched,
/// payouts unpaid, and each bank break category.
fn bank_summary_rows(b: &BankSummary, summary: &mut Vec<ReportSummaryRow>) {
    let mut row = |category: &str, currency: &str, t: &Tally| {
        summary.push(ReportSummaryRow {
            biller_id: BANK_SCOPE.to_string(),
            category: category.to_string(),
            count: t.count,
            amount_minor: t.amount_minor,
            currency: currency.to_string(),
        })
    };
    let mut currencies: BTreeSet<String> = b.balances.iter().map(|p| p.currency.clone()).collect();
    for t in [&b.batches_matched, &b.fundings_matched, &b.batches_unpaid]
        .into_iter()
        .chain(b.breaks.values())
    {
        currencies.extend(t.keys().cloned());
    }
    for c in &currencies {
        let get = |t: &PerCurrency| t.get(c).cloned().unwrap_or_default();
        row("payouts-matched", c, &get(&b.batches_matched));
        row("fundings-matched", c, &get(&b.fundings_matched));
        row("payouts-unpaid", c, &get(&b.batches_unpaid));
        for cat in categories().filter(|c| c.is_bank()) {
            let t = b.breaks.get(cat.as_str()).map(get).unwrap_or_default();
            row(cat.as_str(), c, &t);
        }
    }
}

/// One currency's balance rows: each account's closing balance and what it
/// brought forward, the ledger's balance, the difference and each item
/// that explains it.
fn balance_rows(
    p: &crate::domain::recon::bank::BankPosition,
    balances: &mut Vec<ReportBalanceRow>,
) {
    let c = &p.currency;
    let ledger = format!("bank:settlement:{c}");
    let mut line = |account: &str, item: &str, amount_minor: i64| {
        balances.push(ReportBalanceRow {
            account: account.to_string(),
            item: item.to_string(),
            amount_minor,
            currency: c.clone(),
        })
    };
    for a in &p.accounts {
        let on = a
            .closing_date
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        line(
            &a.account,
            &format!("bank-closing-balance{on}"),
            a.closing_minor,
        );
        line(
            &a.account,
            "brought-forward (before its first statement)",
            a.brought_forward_minor,
        );
    }
    line(&ledger, "ledger-balance", p.ledger_minor);
    line(
        &ledger,
        "difference (bank - ledger)",
        p.bank_minor() - p.ledger_minor,
    );
    line(
        &ledger,
        "explained: brought-forward",
        p.brought_forward_minor(),
    );
    line(
        &ledger,
        &format!("explained: payouts in transit ({})", p.in_transit_count),
        p.in_transit_minor,
    );
    line(
        &ledger,
        "explained: payout differences (breaks)",
        p.payout_difference_minor,
    );
    line(
        &ledger,
        &format!(
            "explained: unattributed entries ({}, breaks)",
            p.unattributed_count
        ),
        p.unattributed_minor,
    );
    line(
        &ledger,
        "explained: funding booked from later entries",
        -p.later_funding_minor,
    );
    line(
        &ledger,
        "explained: posted by resolved breaks",
        -p.resolutions_minor,
    );
    line(
        &ledger,
        "unexplained (a break when not zero)",
        p.unexplained_minor(),
    );
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
            || name.ends_with("-balances.csv")
            || name.ends_with(".xlsx"))
}

/// What the bank statement pass found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BankSummary {
    pub run_id: i64,
    pub business_date: NaiveDate,
    /// The files that brought the date's statements and entries.
    pub files: Vec<i64>,
    /// Statements of the date (notifications not counted), and those whose
    /// balances were proven on import (all of them: one that does not add
    /// up is refused).
    pub statements: u64,
    pub balances_proven: u64,
    /// Booked entries of the date (each bank entry once, whatever files
    /// brought it), and entries the bank had not booked (counted only).
    pub lines: u64,
    pub not_booked: u64,
    /// Per currency.
    pub batches_matched: PerCurrency,
    pub fundings_matched: PerCurrency,
    pub fundings_booked: u64,
    /// The first requested execution date this run answers for (the day
    /// after the previous statement's date; the date itself when there is
    /// none): batches due from then through the date are judged here.
    pub payouts_due_from: NaiveDate,
    /// Batches due in that window (a pain.001 asked the bank to pay them).
    pub batches_due: u64,
    /// Of them, those no booked debit of this statement or an earlier one
    /// moved (each a settlement-mismatch break), by net, per currency.
    pub batches_unpaid: PerCurrency,
    /// Per currency: the bank's closing balance beside `bank:settlement`,
    /// and the items that explain the difference.
    pub balances: Vec<crate::domain::recon::bank::BankPosition>,
    /// Whether every currency's difference is explained (no balance break).
    pub balance_matches_ledger: bool,
    /// Breaks by category, then currency.
    pub breaks: BTreeMap<String, PerCurrency>,
    pub recorded: BreaksRecorded,
    pub cleared: u64,
}

/// The scope of the bank statement's runs and breaks.
pub const BANK_SCOPE: &str = "bank";

/// One bank entry as the domain's bank rules read it.
fn bank_line(e: &crate::store::bank::BankEntryRow) -> crate::domain::recon::bank::BankLine {
    crate::domain::recon::bank::BankLine {
        entry_id: e.id,
        file_id: e.file_id,
        line: e.position.max(0) as u64,
        signed_minor: e.signed_minor(),
        currency: e.currency.clone(),
        booked: e.booked(),
        bank_reference: e.bank_reference.clone(),
        end_to_end_id: e.end_to_end_id.clone(),
        remittance: e.remittance.clone(),
    }
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

/// The batches due by `date` that no booked debit paid, and the bank's
/// balance beside the ledger's (both judged on a statement's date).
async fn payouts_and_balances(
    store: &dyn crate::store::Store,
    date: NaiveDate,
    s: &mut BankSummary,
    paid: &mut BTreeSet<uuid::Uuid>,
    found: &mut Vec<Found>,
) -> Result<(), RunError> {
    use crate::domain::recon::bank::{judge_payout, paid_batch, DueWindow, Payout};
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
        for day in earliest.iter_days().take_while(|d| *d < date) {
            for e in store.bank_entries_on(day).await? {
                paid.extend(paid_batch(&bank_line(&e)));
            }
        }
    }
    for b in &batches {
        match judge_payout(b, &window, paid) {
            Payout::NotAsked | Payout::NotDue => {}
            Payout::Paid => s.batches_due += 1,
            Payout::Unpaid(f) => {
                s.batches_due += 1;
                add_in(&mut s.batches_unpaid, &b.currency, b.net_minor);
                found.push(f);
            }
        }
    }
    // The bank's balance beside our ledger's.
    s.balances = store.bank_position(date).await?;
    s.balance_matches_ledger = true;
    for p in &s.balances {
        if let Some(f) = p.judge(date) {
            s.balance_matches_ledger = false;
            found.push(f);
        }
    }
    Ok(())
}

/// A debit paying a batch that another bank entry paid already.
fn paid_again(
    line: &crate::domain::recon::bank::BankLine,
    batch: uuid::Uuid,
    paid_by: i64,
) -> Found {
    Found {
        category: Category::SettlementMismatch,
        our_reference: line.subject(),
        their_reference: batch.to_string(),
        our_amount_minor: Some(0),
        their_amount_minor: Some(line.signed_minor),
        currency: line.currency.clone(),
        detail: format!(
            "batch {batch} was paid already by bank entry #{paid_by}; this debit of {} {} pays it again",
            crate::domain::recon::matching::minor_in(-line.signed_minor, &line.currency),
            line.currency
        ),
        evidence: Vec::new(),
    }
}

/// What a line's references point to (a batch we closed, a channel's
/// statement of a date), if anything.
async fn expected_for(
    store: &dyn crate::store::Store,
    line: &crate::domain::recon::bank::BankLine,
) -> Result<Option<crate::domain::recon::bank::Expected>, RunError> {
    use crate::domain::recon::bank::{batch_of, funding_of, Expected};
    if let Some(id) = line.end_to_end_id.as_deref().and_then(batch_of) {
        let Some(b) = store.batch(id).await? else {
            return Ok(None);
        };
        let b = closed_batch(b)?;
        return Ok(Some(Expected::Batch {
            id,
            biller_id: b.biller_id,
            net_minor: b.net_minor,
            currency: b.currency,
        }));
    }
    let Some((channel, day)) = line.remittance.as_deref().and_then(funding_of) else {
        return Ok(None);
    };
    owed(store, &channel, day).await
}

/// What a channel's statement of `day` says it owes (payments less
/// returns), in minor units of its currency; None for a channel id that is
/// not one, or no statement.
pub async fn channel_owes(
    store: &dyn crate::store::Store,
    channel: &str,
    day: NaiveDate,
) -> Result<Option<(i64, String)>, RunError> {
    let Ok(ch) = crate::domain::ids::ChannelId::parse(channel) else {
        return Ok(None);
    };
    let lines = store.channel_statement(&ch, day).await?;
    let Some(first) = lines.first() else {
        return Ok(None);
    };
    let c = crate::domain::money::Currency::from_code(&first.currency)
        .map_err(|e| RunError::Other(e.to_string()))?;
    let owed: rust_decimal::Decimal = lines.iter().map(|l| l.amount - l.returned).sum();
    Ok(Some((
        crate::store::postgres::recon_minor(owed, c)?,
        first.currency.clone(),
    )))
}

/// What a channel's statement of `day` says it owes, as a bank line expects it.
async fn owed(
    store: &dyn crate::store::Store,
    channel: &str,
    day: NaiveDate,
) -> Result<Option<crate::domain::recon::bank::Expected>, RunError> {
    Ok(channel_owes(store, channel, day)
        .await?
        .map(
            |(owed_minor, currency)| crate::domain::recon::bank::Expected::Funding {
                channel_id: channel.to_string(),
                date: day,
                owed_minor,
                currency,
            },
        ))
}

/// Reconciles our bank accounts for `date`: every bank entry booked on the
/// date (each once, whatever files brought it) against settlement batches
/// and channel funding; the chain of each account's statements of the
/// date (a gap or overlap is a `statement-gap`); the batches due by the
/// date that no booked debit paid; and the bank's closing balance beside
/// `bank:settlement`, the difference explained item by item or a break.
/// None when nothing of the date was imported.
pub async fn run_bank(
    store: Arc<dyn crate::store::Store>,
    date: NaiveDate,
    opts: &RunOptions,
    now: DateTime<Utc>,
) -> Result<Option<BankSummary>, RunError> {
    if !store.bank_activity_on(date).await? {
        return Ok(None);
    }
    let statements = store.bank_statements_on(date).await?;
    let entries = store.bank_entries_on(date).await?;
    let mut file_ids: Vec<i64> = statements
        .iter()
        .map(|s| s.file_id)
        .chain(entries.iter().map(|e| e.file_id))
        .collect();
    file_ids.sort_unstable();
    file_ids.dedup();
    let run_id = store
        .start_run(date, BANK_SCOPE, &opts.run_by, &file_ids, now)
        .await?;
    let result = bank_pass(&*store, date, run_id, file_ids, &statements, &entries, now).await;
    if let Err(e) = &result {
        let _ = store.fail_run(run_id, &e.to_string(), Utc::now()).await;
    }
    result.map(Some)
}

#[allow(clippy::too_many_arguments)]
async fn bank_pass(
    store: &dyn crate::store::Store,
    date: NaiveDate,
    run_id: i64,
    file_ids: Vec<i64>,
    statements: &[crate::store::bank::BankStatementRow],
    entries: &[crate::store::bank::BankEntryRow],
    now: DateTime<Utc>,
) -> Result<BankSummary, RunError> {
    let mut s = BankSummary {
        run_id,
        business_date: date,
        files: file_ids,
        statements: statements.len() as u64,
        balances_proven: statements.iter().filter(|st| st.link.is_some()).count() as u64,
        not_booked: statements.iter().map(|st| st.pending.max(0) as u64).sum(),
        ..Default::default()
    };
    let mut found = statement_gaps(store, statements).await?;
    let mut paid = BTreeSet::new();
    let funded_dates = book_lines(store, entries, now, &mut s, &mut paid, &mut found).await?;
    check_fundings(store, date, &funded_dates, &mut found).await?;
    // Only a statement of the date answers for payouts due by it and for
    // the bank's balance (a notification or a back-dated entry alone does not).
    if !statements.is_empty() {
        payouts_and_balances(store, date, &mut s, &mut paid, &mut found).await?;
    }
    tally_breaks(&mut s, &found);
    s.recorded = store
        .record_breaks(run_id, date, BANK_SCOPE, &found, now)
        .await?;
    let summary = serde_json::to_value(&s).map_err(|e| RunError::Other(e.to_string()))?;
    s.cleared = store.finish_run(run_id, &summary, now).await?;
    Ok(s)
}

/// Each account's chain: every statement of the date against the one
/// before it, a `statement-gap` break where they do not join.
async fn statement_gaps(
    store: &dyn crate::store::Store,
    statements: &[crate::store::bank::BankStatementRow],
) -> Result<Vec<Found>, RunError> {
    use crate::domain::recon::statement::chain_gap;
    let mut found: Vec<Found> = Vec::new();
    for st in statements {
        let Some(link) = &st.link else { continue };
        let Some(prev) = store.previous_statement(st).await? else {
            continue;
        };
        let Some(prev_link) = &prev.link else {
            continue;
        };
        let scale = crate::domain::recon::matching::scale_of(&st.currency);
        if let Some(detail) = chain_gap(prev_link, link, scale) {
            found.push(gap_break(st, prev_link, link, &detail));
        }
    }
    Ok(found)
}

/// The `statement-gap` break of a statement that does not join the one
/// before it.
fn gap_break(
    st: &crate::store::bank::BankStatementRow,
    prev_link: &crate::domain::recon::statement::ChainLink,
    link: &crate::domain::recon::statement::ChainLink,
    detail: &str,
) -> Found {
    use crate::domain::recon::statement::mask_account;
    let at = link
        .sequence
        .map(|n| {
            format!(
                "{n}{}",
                link.page
                    .as_deref()
                    .map(|p| format!("/{p}"))
                    .unwrap_or_default()
            )
        })
        .unwrap_or_else(|| link.business_date.to_string());
    Found {
        category: Category::StatementGap,
        our_reference: format!("statement:{}:{at}", mask_account(&st.account)),
        their_reference: link.statement_id.clone(),
        our_amount_minor: Some(prev_link.closing_minor),
        their_amount_minor: Some(link.opening_minor),
        currency: st.currency.clone(),
        detail: format!(
            "account {}, statement {} of {}: {detail}",
            mask_account(&st.account),
            link.statement_id,
            link.business_date
        ),
        evidence: Vec::new(),
    }
}

/// Every booked entry of the date, once: the batch it pays recorded as
/// paid, the channel funding it brings booked, or a break. Returns the
/// (channel, statement date) pairs it funded.
async fn book_lines(
    store: &dyn crate::store::Store,
    entries: &[crate::store::bank::BankEntryRow],
    now: DateTime<Utc>,
    s: &mut BankSummary,
    paid: &mut BTreeSet<uuid::Uuid>,
    found: &mut Vec<Found>,
) -> Result<BTreeSet<(String, NaiveDate)>, RunError> {
    use crate::domain::recon::bank::{judge_line, paid_batch, BankVerdict, Expected};
    let mut funded_dates: BTreeSet<(String, NaiveDate)> = BTreeSet::new();
    for e in entries.iter().filter(|e| e.booked()) {
        s.lines += 1;
        let line = bank_line(e);
        paid.extend(paid_batch(&line));
        let expected = expected_for(store, &line).await?;
        // A debit naming a batch another entry already paid: paid again.
        if let Some(Expected::Batch { id, .. }) = &expected {
            if line.signed_minor < 0 {
                if let Some(paid_by) = store.payout_entry(*id).await?.filter(|p| *p != e.id) {
                    found.push(paid_again(&line, *id, paid_by));
                    continue;
                }
            }
        }
        match judge_line(&line, expected.as_ref()) {
            BankVerdict::NotBooked => s.not_booked += 1,
            BankVerdict::Batch { id } => {
                let paid_by = store.record_payout(id, e.id, now).await?;
                if paid_by == e.id {
                    add_in(&mut s.batches_matched, &line.currency, -line.signed_minor);
                } else {
                    found.push(paid_again(&line, id, paid_by));
                }
            }
            BankVerdict::Funding {
                channel_id,
                date: day,
            } => {
                add_in(&mut s.fundings_matched, &line.currency, line.signed_minor);
                if store
                    .book_funding(
                        e.id,
                        &channel_id,
                        day,
                        line.signed_minor,
                        &line.currency,
                        e.file_id,
                        now,
                    )
                    .await?
                {
                    s.fundings_booked += 1;
                }
                funded_dates.insert((channel_id, day));
            }
            BankVerdict::Break(b) => found.push(b),
        }
    }
    Ok(funded_dates)
}

/// What each channel paid for a statement date, in all its transfers
/// booked on or before `date`, against what its statement owes.
async fn check_fundings(
    store: &dyn crate::store::Store,
    date: NaiveDate,
    funded_dates: &BTreeSet<(String, NaiveDate)>,
    found: &mut Vec<Found>,
) -> Result<(), RunError> {
    use crate::domain::recon::bank::{judge_funding, Expected};
    for (channel, day) in funded_dates {
        if let Some(Expected::Funding {
            owed_minor,
            currency,
            ..
        }) = owed(store, channel, *day).await?
        {
            let (n, total) = store.funded(channel, *day, &currency, date).await?;
            found.extend(judge_funding(
                channel, *day, owed_minor, &currency, n, total,
            ));
        }
    }
    Ok(())
}

/// The breaks found, by category then currency.
fn tally_breaks(s: &mut BankSummary, found: &[Found]) {
    for f in found {
        let amount = f.their_amount_minor.or(f.our_amount_minor).unwrap_or(0);
        add_in(
            s.breaks.entry(f.category.as_str().into()).or_default(),
            &f.currency,
            amount,
        );
    }
}
