//! What reconciliation keeps: imported files, runs, automatic decisions and
//! breaks with their audit trail.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::domain::ids::PaymentId;
use crate::domain::recon::breaks::{Action, Actor, BreakStatus, Proposal};
use crate::domain::recon::matching::{Category, Decision, Found, OurPayment};
use crate::domain::recon::FileKind;

/// A file read whole and checked, about to be recorded.
#[derive(Debug, Clone)]
pub struct NewReconFile {
    pub sha256: String,
    pub kind: FileKind,
    pub source: String,
    pub biller_id: Option<String>,
    pub business_date: NaiveDate,
    pub identity: String,
    pub file_name: String,
    pub byte_size: u64,
    pub records: u64,
    pub credited: u64,
    pub credited_total_minor: i64,
    pub currency: Option<String>,
    pub imported_at: DateTime<Utc>,
    pub imported_by: String,
}

/// A recorded file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconFile {
    pub id: i64,
    pub sha256: String,
    pub kind: FileKind,
    pub source: String,
    pub biller_id: Option<String>,
    pub business_date: NaiveDate,
    pub identity: String,
    pub file_name: String,
    pub records: i64,
    pub credited: i64,
    pub credited_total_minor: i64,
    pub imported_at: DateTime<Utc>,
    pub superseded_by: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    Imported {
        id: i64,
        replaced: Option<i64>,
    },
    /// The same bytes were imported before: nothing new.
    AlreadyImported {
        id: i64,
    },
}

/// One break as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakRow {
    pub id: i64,
    pub business_date: NaiveDate,
    pub scope: String,
    pub category: Category,
    pub subject: String,
    pub our_reference: String,
    pub their_reference: String,
    pub our_amount_minor: Option<i64>,
    pub their_amount_minor: Option<i64>,
    pub currency: String,
    pub detail: String,
    pub evidence: serde_json::Value,
    pub status: BreakStatus,
    pub owner: Option<String>,
    pub proposal: Option<Proposal>,
    pub resolution: Option<String>,
    pub found_by_run: Option<i64>,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One entry of a break's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakEvent {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub note: String,
    pub detail: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default)]
pub struct BreakFilter {
    pub date: Option<NaiveDate>,
    pub scope: Option<String>,
    pub status: Option<BreakStatus>,
    pub open_only: bool,
    pub limit: i64,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub business_date: NaiveDate,
    pub scope: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub run_by: String,
    pub file_ids: Vec<i64>,
    pub summary: Option<serde_json::Value>,
    pub reports: Vec<String>,
    /// Why the run failed (None: it finished, or is running).
    pub failed: Option<String>,
}

/// What recording a run's breaks did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreaksRecorded {
    pub opened: u64,
    pub still_open: u64,
    pub reopened: u64,
    pub cleared: u64,
}

#[async_trait]
pub trait ReconStore: Send + Sync {
    /// Records a file (unique by digest). A current file with the same
    /// identity is marked replaced by the new one.
    async fn record_file(&self, file: &NewReconFile) -> StoreResult<ImportOutcome>;
    async fn recon_file(&self, id: i64) -> StoreResult<Option<ReconFile>>;
    /// Current (not replaced) files of these dates, in id order.
    async fn current_files(&self, dates: &[NaiveDate]) -> StoreResult<Vec<ReconFile>>;
    async fn start_run(
        &self,
        date: NaiveDate,
        scope: &str,
        run_by: &str,
        file_ids: &[i64],
        now: DateTime<Utc>,
    ) -> StoreResult<i64>;
    /// Streams a biller's payments created in `[from, to)` in reference
    /// order into `sink` (core: created at or after `core_from`). Returns
    /// how many were sent.
    async fn stream_payments(
        &self,
        biller: &str,
        from: DateTime<Utc>,
        core_from: DateTime<Utc>,
        to: DateTime<Utc>,
        sink: tokio::sync::mpsc::Sender<OurPayment>,
    ) -> StoreResult<u64>;
    /// Payment ids (of these) that a reconciliation decided before.
    async fn decided(&self, payments: &[PaymentId]) -> StoreResult<Vec<(PaymentId, String)>>;
    /// Applies automatic decisions (UNKNOWN → CONFIRMED / REJECTED, the
    /// ledger, the channel's callback) and records each with its evidence.
    /// A payment no longer UNKNOWN is skipped. Returns how many applied.
    async fn apply_decisions(
        &self,
        run_id: i64,
        date: NaiveDate,
        biller: &str,
        decisions: &[Decision],
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;
    /// Records breaks found by a run (new ones open; known ones keep their
    /// work state; cleared ones found again reopen).
    async fn record_breaks(
        &self,
        run_id: i64,
        date: NaiveDate,
        scope: &str,
        found: &[Found],
        now: DateTime<Utc>,
    ) -> StoreResult<BreaksRecorded>;
    /// Ends a run: breaks of the date and scope it did not find are
    /// cleared; the summary is stored.
    async fn finish_run(
        &self,
        run_id: i64,
        summary: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;
    /// Ends a run that failed, with the reason (nothing else changes).
    async fn fail_run(&self, run_id: i64, reason: &str, now: DateTime<Utc>) -> StoreResult<()>;
    async fn set_run_reports(&self, run_id: i64, reports: &[String]) -> StoreResult<()>;
    async fn run(&self, id: i64) -> StoreResult<Option<RunRow>>;
    async fn runs(&self, date: Option<NaiveDate>, limit: i64) -> StoreResult<Vec<RunRow>>;
    async fn breaks(&self, filter: &BreakFilter) -> StoreResult<Vec<BreakRow>>;
    async fn break_detail(&self, id: i64) -> StoreResult<Option<(BreakRow, Vec<BreakEvent>)>>;
    /// A biller's matching tolerance in minor units (0: exact).
    async fn recon_tolerance(&self, biller: &str) -> StoreResult<i64>;
    async fn set_recon_tolerance(&self, biller: &str, minor: i64) -> StoreResult<()>;
    /// Applies a staff action (checked by the domain's workflow rules,
    /// under the break's row lock); an approved money-moving resolution
    /// moves its money in the same transaction.
    async fn act_on_break(
        &self,
        id: i64,
        actor: &Actor,
        action: &Action,
        now: DateTime<Utc>,
    ) -> StoreResult<BreakRow>;
    /// The latest date before `date` with a statement of one of our accounts.
    async fn bank_statement_before(&self, date: NaiveDate) -> StoreResult<Option<NaiveDate>>;
    /// Closed settlement batches whose payout may be requested for a date
    /// in `from..=through` (a superset: closed for a date before `through`,
    /// and for the day before `from` or later, or closed since that day);
    /// the domain's `ClosedBatch::due` decides. In id order.
    async fn batches_due_between(
        &self,
        from: NaiveDate,
        through: NaiveDate,
    ) -> StoreResult<Vec<crate::store::BatchRecord>>;
}

/// A re-send about to be made (written before the call).
#[derive(Debug, Clone)]
pub struct ResendStart {
    pub break_id: i64,
    /// The approver (checked again under the break's row lock).
    pub actor: Actor,
    pub payment_id: PaymentId,
    pub from_connector: Option<String>,
    pub connector: String,
    /// The run whose reading of the files is the proof: the break must
    /// still be found by it when the re-send is recorded.
    pub found_by_run: Option<i64>,
    /// The evidence of absence: files and both routes' answers.
    pub proof: serde_json::Value,
    pub at: DateTime<Utc>,
}

/// A re-send recorded and about to be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResendStarted {
    pub resend_id: i64,
    pub attempt_id: i64,
}

/// What the `resend` resolution keeps (`recon_resends`, with the call as a
/// dispatch attempt of the payment).
#[async_trait]
pub trait ResendStore: Send + Sync {
    /// An earlier re-send of the payment that may have reached a biller:
    /// (connector, outcome, or "in flight since …").
    async fn resend_of(&self, payment: PaymentId) -> StoreResult<Option<(String, String)>>;
    /// The unfinished re-send of a break: (ids, connector, started at).
    async fn open_resend(
        &self,
        break_id: i64,
    ) -> StoreResult<Option<(ResendStarted, String, DateTime<Utc>)>>;
    /// Under the break's row lock: checks the approval again (the
    /// workflow's rules, the proposal still a re-send through
    /// `start.connector`, the break still found by `start.found_by_run`),
    /// then records the re-send and its attempt, moves the break to
    /// `resending`, and records the event. Conflict if another re-send of
    /// the payment may have arrived.
    async fn begin_resend(&self, start: &ResendStart) -> StoreResult<ResendStarted>;
    /// Records the answer: the attempt finished, the payment's route moved
    /// to the new one if it may have arrived there, the break resolved
    /// (credited) or given back to the staff (anything else).
    async fn finish_resend(
        &self,
        started: ResendStarted,
        outcome: &crate::domain::recon::resend::ResendOutcome,
        at: DateTime<Utc>,
    ) -> StoreResult<BreakRow>;
    /// Records on the break's trail that a re-send was refused before any
    /// call (the answers that refused it); the break does not change.
    async fn note_resend_refused(
        &self,
        break_id: i64,
        actor: &str,
        reason: &str,
        proof: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
}
