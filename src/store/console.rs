//! What the finance console keeps and reads: sign-in sessions, one-time
//! sign-in links, the staff audit of console actions, and the read models
//! of its pages (the breaks queue, the day overview).

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use super::recon::{BreakRow, ReconFile};
use super::StoreResult;
use crate::domain::recon::breaks::BreakStatus;
use crate::domain::recon::matching::Category;
use crate::domain::staff::StaffUser;

/// A session as a request sees it.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub user: StaffUser,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// One entry of the staff audit (console actions outside a break's trail).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    /// `staff`, `biller`, `file`, `upload` or `payment`.
    pub subject_kind: String,
    pub subject: String,
    pub detail: Option<serde_json::Value>,
}

/// How the queue is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueSort {
    #[default]
    OldestFirst,
    NewestFirst,
    LargestFirst,
}

impl QueueSort {
    pub const ALL: [QueueSort; 3] = [
        QueueSort::OldestFirst,
        QueueSort::NewestFirst,
        QueueSort::LargestFirst,
    ];
    pub fn as_str(&self) -> &'static str {
        match self {
            QueueSort::OldestFirst => "oldest",
            QueueSort::NewestFirst => "newest",
            QueueSort::LargestFirst => "largest",
        }
    }
    pub fn parse(s: &str) -> Option<QueueSort> {
        QueueSort::ALL.into_iter().find(|q| q.as_str() == s)
    }
}

/// The breaks queue's filter (every field optional), sort and page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFilter {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub scope: Option<String>,
    pub category: Option<Category>,
    /// A status; `open_only` (not resolved nor written off) when none.
    pub status: Option<BreakStatus>,
    pub open_only: bool,
    /// An owner's id; `Some("")` for breaks nobody holds.
    pub owner: Option<String>,
    /// The larger of the two sides' amounts, in minor units, at least this.
    pub min_amount_minor: Option<i64>,
    pub sort: QueueSort,
}

/// One page of the queue and how many match in all (counted up to a cap:
/// `more` when there are more than `total`).
#[derive(Debug, Clone)]
pub struct QueuePage {
    pub rows: Vec<BreakRow>,
    pub total: i64,
    pub more: bool,
}

/// Per biller and business date: what the day overview shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BillerDay {
    pub biller_id: String,
    pub biller_name: String,
    pub currency: String,
    /// (status, count, amount) of the payments of the date.
    pub states: Vec<(String, i64, Decimal)>,
    /// The settlement batches of the date: (id, net minor, state, paid by
    /// the bank at).
    pub batches: Vec<DayBatch>,
    /// The latest reconciliation run of the date.
    pub recon: Option<DayRun>,
    /// Open breaks by category: (category, count, oldest opened at).
    pub open_breaks: Vec<(String, i64, DateTime<Utc>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DayBatch {
    pub id: uuid::Uuid,
    pub net: Decimal,
    pub items: i64,
    pub paid_at: Option<DateTime<Utc>>,
    pub files_failed: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DayRun {
    pub id: i64,
    pub finished: bool,
    pub failed: Option<String>,
}

/// Per payment app and business date.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelDay {
    pub channel_id: String,
    pub currency: String,
    /// What the app owes for the date's settled payments, less returns.
    pub statement: Decimal,
    pub statement_items: i64,
    /// Funding the bank shows received from the app for the date.
    pub funded: Decimal,
}

/// A biller's business date as an interval of acceptance times.
#[derive(Debug, Clone)]
pub struct BillerWindow {
    pub biller_id: String,
    pub biller_name: String,
    pub currency: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// The day overview's data.
#[derive(Debug, Clone, Default)]
pub struct DayOverview {
    pub billers: Vec<BillerDay>,
    pub channels: Vec<ChannelDay>,
    /// Open breaks of other scopes (our bank accounts): (scope, category,
    /// count, oldest opened at).
    pub other_breaks: Vec<(String, String, i64, DateTime<Utc>)>,
}

// bulk work and files

/// One row of an uploaded sheet that became a proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRow {
    /// The row's number in the sheet (1 is the header).
    pub sheet_row: i32,
    pub break_id: i64,
    pub resolution: String,
    pub note: String,
    pub connector: Option<String>,
}

/// An uploaded sheet of resolutions, about to be recorded.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub file_name: String,
    pub sha256: String,
    pub uploaded_by: String,
    pub uploaded_at: DateTime<Utc>,
    pub rows: Vec<UploadRow>,
}

/// A recorded upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub id: i64,
    pub file_name: String,
    pub sha256: String,
    pub uploaded_by: String,
    pub uploaded_at: DateTime<Utc>,
    pub rows: i32,
}

/// An imported file with what the console shows beyond [`ReconFile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleFile {
    pub file: ReconFile,
    pub currency: Option<String>,
    pub imported_by: String,
    pub byte_size: i64,
}

#[async_trait]
pub trait ConsoleStore: Send + Sync {
    /// Opens a session for `user`, remembering the token hash it was
    /// opened with.
    async fn open_session(
        &self,
        id_hash: &[u8],
        staff_id: &str,
        token_hash: &[u8],
        csrf: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The open session with this hash, when it was seen after
    /// `idle_since`, its user enabled and still holding the token the
    /// session was opened with; marks it seen at `now`. A session found
    /// idle, or whose token changed, is ended with that reason.
    async fn session(
        &self,
        id_hash: &[u8],
        idle_since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConsoleSession>>;
    /// Ends a session (sign-out). False when it was not open.
    async fn end_session(
        &self,
        id_hash: &[u8],
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Records a one-time sign-in link for a user (by its current token).
    async fn add_sign_in_link(
        &self,
        code_hash: &[u8],
        staff_id: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Uses a link once: the user and the token hash to open the session
    /// with, when the link is unused, not expired and the user's token is
    /// the one it was made for.
    async fn use_sign_in_link(
        &self,
        code_hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(StaffUser, Vec<u8>)>>;
    async fn audit_staff(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// The audit entries of one subject, oldest first.
    async fn audit_of(&self, subject_kind: &str, subject: &str) -> StoreResult<Vec<AuditEntry>>;
    /// One page of the breaks queue.
    async fn break_queue(
        &self,
        filter: &QueueFilter,
        offset: i64,
        limit: i64,
    ) -> StoreResult<QueuePage>;
    /// The staff users holding breaks (for the assignee filter).
    async fn break_owners(&self) -> StoreResult<Vec<String>>;
    /// What the day overview shows for a business date; each biller's
    /// payments of the date are those created in its window `[from, to)`
    /// (cut-off to cut-off).
    async fn day_overview(
        &self,
        date: NaiveDate,
        windows: &[BillerWindow],
    ) -> StoreResult<DayOverview>;

    // pages: payments, settlement, routes
    /// Payments whose id, app reference, biller reference or account number
    /// is `q` exactly, newest first, at most `limit`.
    async fn find_payments(&self, q: &str, limit: i64) -> StoreResult<Vec<PaymentFacts>>;
    /// A payment with its attempts, callbacks, journals, settlement items,
    /// returns and breaks.
    async fn payment_page(&self, id: uuid::Uuid) -> StoreResult<Option<PaymentPage>>;
    /// The payouts recorded for these batches (bank entries that paid them).
    async fn payouts(&self, batches: &[uuid::Uuid]) -> StoreResult<Vec<PayoutRow>>;
    /// A biller's payments SUBMITTED or UNKNOWN on `route`: how many, and
    /// the oldest `limit` ids.
    async fn in_flight_on(&self, biller: &str, route: &str, limit: i64) -> StoreResult<InFlight>;
    // bulk work and files
    /// Records an uploaded sheet and its rows (one transaction); its id.
    async fn record_upload(&self, upload: &NewUpload) -> StoreResult<i64>;
    /// An upload and its rows (by sheet row).
    async fn upload(&self, id: i64) -> StoreResult<Option<(Upload, Vec<UploadRow>)>>;
    /// The most recent uploads, newest first.
    async fn uploads(&self, limit: i64) -> StoreResult<Vec<Upload>>;
    /// The breaks with these ids (those that exist).
    async fn breaks_by_ids(&self, ids: &[i64]) -> StoreResult<Vec<BreakRow>>;
    /// The files imported for a business date (superseded ones too).
    async fn files_of_date(&self, date: NaiveDate) -> StoreResult<Vec<ConsoleFile>>;
    /// One imported file.
    async fn console_file(&self, id: i64) -> StoreResult<Option<ConsoleFile>>;
    /// The latest business dates with imported files and how many.
    async fn file_dates(&self, limit: i64) -> StoreResult<Vec<(NaiveDate, i64)>>;
}

// pages: payments, settlement, routes

/// A payment as the console's pages show it (the account in full: the
/// page masks it).
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentFacts {
    pub id: uuid::Uuid,
    pub channel_id: String,
    pub channel_reference: String,
    pub biller_id: String,
    pub account_number: String,
    pub bill_reference: Option<String>,
    pub amount: Decimal,
    pub currency: String,
    pub status: String,
    pub connector_id: Option<String>,
    pub biller_reference: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
}

/// One dispatch attempt (`pay`, or `status`: an inquiry).
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    pub id: i64,
    pub kind: String,
    pub connector_id: String,
    pub worker: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub result_code: Option<String>,
    pub detail: Option<String>,
}

/// One callback to the payment app (an outbox row of topic `callback`).
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackRow {
    pub id: i64,
    /// The event's type (`payment.confirmed`, ...).
    pub event: String,
    pub created_at: DateTime<Utc>,
    pub attempts: i32,
    pub done_at: Option<DateTime<Utc>>,
    pub abandoned: bool,
    pub last_error: Option<String>,
}

/// A ledger journal of the payment with its entries.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalRow {
    pub id: uuid::Uuid,
    pub kind: String,
    pub resolves: Option<uuid::Uuid>,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub entries: Vec<EntryRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EntryRow {
    pub account: String,
    pub currency: String,
    pub layer: String,
    pub side: String,
    pub amount: Decimal,
}

/// The payment's item in a settlement batch.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRow {
    pub batch_id: uuid::Uuid,
    pub business_date: NaiveDate,
    pub kind: String,
    pub amount: Decimal,
    pub commission: Decimal,
    pub currency: String,
}

/// A return of the payment by its biller.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnRow {
    pub amount: Decimal,
    pub currency: String,
    pub reason: String,
    pub returned_at: DateTime<Utc>,
}

/// A break about the payment.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentBreak {
    pub id: i64,
    pub business_date: NaiveDate,
    pub category: String,
    pub status: String,
}

/// Everything the payment page shows besides its states.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentPage {
    pub facts: PaymentFacts,
    pub attempts: Vec<AttemptRow>,
    pub callbacks: Vec<CallbackRow>,
    pub journals: Vec<JournalRow>,
    pub items: Vec<ItemRow>,
    pub returns: Vec<ReturnRow>,
    pub breaks: Vec<PaymentBreak>,
}

/// A batch's payout: the bank entry that paid it.
#[derive(Debug, Clone, PartialEq)]
pub struct PayoutRow {
    pub batch_id: uuid::Uuid,
    pub booking_date: NaiveDate,
    pub amount_minor: i64,
    pub currency: String,
    pub bank_reference: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

/// Payments still in flight on a route: how many, and the first ids.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InFlight {
    pub count: i64,
    pub ids: Vec<uuid::Uuid>,
}
