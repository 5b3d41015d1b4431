//! The store interface: everything billclear keeps, behind traits, so that
//! the domain never sees SQL and a second store (an embedded SQLite file) is
//! an addition, not a rewrite. `postgres` is the system of record.

pub mod bank;
pub mod complaint;
pub mod console;
pub mod group;
pub mod lease;
pub mod postgres;
pub mod recon;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::domain::biller::Biller;
use crate::domain::channel::{Channel, ChannelStatus};
use crate::domain::dispatch::{AttemptKind, AttemptOutcome, CallbackEvent, DeliveryHistory};
use crate::domain::ids::{BillerId, ChannelId, ConnectorId, PaymentId};
use crate::domain::ledger::{AccountSpec, Balance, Journal};
use crate::domain::payment::{Payment, PaymentRequest, PaymentStatus, Transition};
use crate::domain::routing::RouteState;
use crate::domain::settlement::{BankAccount, BatchTotals, FileFormat};
use crate::domain::staff::StaffUser;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store refused the data (a constraint, a bad value): retrying the
    /// same data will fail again.
    #[error("store refused the data: {0}")]
    Rejected(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// The store could not be reached or failed transiently: retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One payment to accept, with everything its acceptance commits.
#[derive(Debug, Clone)]
pub struct AcceptItem {
    pub payment_id: PaymentId,
    pub request: PaymentRequest,
    pub journal: Journal,
    pub idempotency_key: String,
    pub fingerprint: [u8; 32],
    /// The response first given (stored for idempotent replays).
    pub response_status: u16,
    pub response_body: String,
    pub key_id: String,
    /// The request's nonce, recorded with the payment; None when an earlier
    /// attempt of the same request recorded it already.
    pub nonce: Option<String>,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// Committed: payment, idempotency record, pending transfer, outbox row.
    Accepted,
    /// The request's nonce was used before: nothing written.
    NonceReused,
    /// The idempotency key is taken: read the stored record and replay or refuse.
    KeyTaken,
    /// Another payment of this channel has the same channel reference.
    DuplicateChannelReference,
}

#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub request_hash: Vec<u8>,
    pub payment_id: PaymentId,
    pub response_status: u16,
    pub response_body: String,
}

#[derive(Debug, Clone)]
pub struct StoredKey {
    pub key_id: String,
    pub channel: Channel,
    pub sealed_secret: Vec<u8>,
    pub active: bool,
}

#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub key_id: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct PaymentEvent {
    pub from: Option<PaymentStatus>,
    pub to: PaymentStatus,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// What an audit of the whole ledger found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerAudit {
    pub journals: i64,
    pub entries: i64,
    pub unbalanced_journals: i64,
    pub short_journals: i64,
    pub total_debits: Decimal,
    pub total_credits: Decimal,
    pub payments: i64,
    /// Payments whose pending transfer is missing, duplicated, or of
    /// another amount than the payment.
    pub payments_without_exactly_one_transfer: i64,
}

impl LedgerAudit {
    pub fn balanced(&self) -> bool {
        self.unbalanced_journals == 0
            && self.short_journals == 0
            && self.total_debits == self.total_credits
    }
    pub fn payments_exactly_once(&self) -> bool {
        self.payments_without_exactly_one_transfer == 0
    }
}

#[async_trait]
pub trait BillerStore: Send + Sync {
    /// Inserts or updates billers (with routes and ledger accounts).
    async fn upsert_billers(&self, billers: &[Biller]) -> StoreResult<()>;
    async fn load_billers(&self) -> StoreResult<Vec<Biller>>;
    /// Switches a biller to one of its routes (None: back to its priority
    /// order). Refused when the route is not one of the biller's.
    async fn set_preferred_route(
        &self,
        biller: &BillerId,
        route: Option<&ConnectorId>,
    ) -> StoreResult<()>;
    /// This process's view of its routes (written by its heartbeat).
    async fn record_route_health(&self, worker: &str, rows: &[RouteHealthRow]) -> StoreResult<()>;
    /// Every process's view written since `seen_since`.
    async fn route_health(&self, seen_since: DateTime<Utc>) -> StoreResult<Vec<RouteHealthRow>>;
    /// When each biller's oldest payment waiting for dispatch (RECEIVED)
    /// was accepted; billers with nothing waiting are left out.
    async fn oldest_waiting(&self) -> StoreResult<Vec<(String, DateTime<Utc>)>>;
    /// This process's refusals of backlogged billers (written by its
    /// backlog watch).
    async fn record_backlog(&self, process: &str, rows: &[BacklogRow]) -> StoreResult<()>;
    /// Every process's refusals written since `seen_since`.
    async fn backlog(&self, seen_since: DateTime<Utc>) -> StoreResult<Vec<BacklogRow>>;
}

/// One process's refusals of one backlogged biller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BacklogRow {
    pub biller_id: String,
    pub process: String,
    /// New payments refused `biller_backlogged` since the process started.
    pub refused: u64,
    /// Since when it refuses (None: it does not now).
    pub refusing_since: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// One process's view of one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteHealthRow {
    pub connector_id: String,
    pub worker: String,
    pub state: RouteState,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

#[async_trait]
pub trait ChannelStore: Send + Sync {
    /// Creates a channel with its first key and its receivable accounts.
    async fn create_channel(
        &self,
        channel: &Channel,
        key_id: &str,
        sealed_secret: &[u8],
    ) -> StoreResult<()>;
    async fn add_key(
        &self,
        channel: &ChannelId,
        key_id: &str,
        sealed_secret: &[u8],
    ) -> StoreResult<()>;
    async fn set_channel_status(
        &self,
        channel: &ChannelId,
        status: ChannelStatus,
    ) -> StoreResult<()>;
    async fn disable_key(&self, key_id: &str) -> StoreResult<()>;
    async fn list_channels(&self) -> StoreResult<Vec<(Channel, Vec<KeyInfo>)>>;
    async fn find_key(&self, key_id: &str) -> StoreResult<Option<StoredKey>>;
    /// Records a nonce; false when the key used it before.
    async fn record_nonce(&self, key_id: &str, nonce: &str) -> StoreResult<bool>;
    async fn nonce_seen(&self, key_id: &str, nonce: &str) -> StoreResult<bool>;
    async fn prune_nonces(&self, seen_before: DateTime<Utc>) -> StoreResult<u64>;
}

#[async_trait]
pub trait PaymentStore: Send + Sync {
    /// Accepts a batch in ONE transaction; one outcome per item, in order.
    async fn accept_payments(&self, items: &[AcceptItem]) -> StoreResult<Vec<AcceptOutcome>>;
    async fn idempotency_record(
        &self,
        channel: &ChannelId,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>>;
    async fn payment(&self, channel: &ChannelId, id: PaymentId) -> StoreResult<Option<Payment>>;
    async fn payment_by_reference(
        &self,
        channel: &ChannelId,
        reference: &str,
    ) -> StoreResult<Option<Payment>>;
    /// Applies a decided transition and its ledger effect in one transaction.
    /// Conflict when the payment is no longer in `transition.from`.
    async fn apply_transition(&self, transition: &Transition) -> StoreResult<()>;
    async fn payment_events(&self, id: PaymentId) -> StoreResult<Vec<PaymentEvent>>;
}

#[async_trait]
pub trait LedgerStore: Send + Sync {
    async fn ensure_accounts(&self, accounts: &[AccountSpec]) -> StoreResult<()>;
    /// Pending and posted balance of an account, derived from its entries.
    async fn balance(&self, account_code: &str) -> StoreResult<Option<Balance>>;
    async fn audit(&self) -> StoreResult<LedgerAudit>;
}

#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Succeeds when the store answers.
    async fn ping(&self) -> StoreResult<()>;
    /// What the metrics' gauges read from the database (`crate::metrics`):
    /// one cheap pass, every few seconds. `catch_up_days` bounds the
    /// closed business dates returned.
    async fn fleet_gauges(&self, catch_up_days: u32) -> StoreResult<FleetGauges>;
}

/// The database's side of the metrics (see [`HealthStore::fleet_gauges`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetGauges {
    /// Payments in UNKNOWN, and the age of the oldest (by its last change).
    pub unknown: i64,
    pub unknown_oldest_s: f64,
    /// Per topic: work not done, and the age of the oldest such row.
    pub outbox: Vec<(String, i64, f64)>,
    /// Breaks not resolved nor written off, per category.
    pub open_breaks: Vec<(String, i64)>,
    pub batches_files_pending: i64,
    pub batches_files_written: i64,
    pub batches_files_failed: i64,
    /// Each biller's closed business dates: its first, and those within
    /// the catch-up window.
    pub closed_dates: Vec<(String, chrono::NaiveDate)>,
}

/// Kinds of outbox work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// Deliver a payment (and inquire while its outcome is unknown).
    Dispatch,
    /// Tell a channel about a final state.
    Callback,
    /// Publish a closed settlement batch to RabbitMQ (the outbox relay).
    Settlement,
}

impl Topic {
    pub fn as_str(&self) -> &'static str {
        match self {
            Topic::Dispatch => "dispatch",
            Topic::Callback => "callback",
            Topic::Settlement => "settlement",
        }
    }
}

/// Outbox work held under a lease. Writes about it succeed only while the
/// claim token is still the row's (Conflict otherwise: the lease was lost).
#[derive(Debug, Clone)]
pub struct Claim {
    pub outbox_id: i64,
    pub token: uuid::Uuid,
    pub aggregate_id: uuid::Uuid,
    pub payload: serde_json::Value,
    /// Times this work was claimed, this claim included.
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    /// When the lease ends at the latest, by this process's clock.
    pub lease_deadline: std::time::Instant,
}

impl Claim {
    pub fn lease_left(&self) -> std::time::Duration {
        self.lease_deadline
            .saturating_duration_since(std::time::Instant::now())
    }
}

/// What becomes of claimed work.
#[derive(Debug, Clone, PartialEq)]
pub enum OutboxNext {
    Done,
    RetryAt {
        at: DateTime<Utc>,
        error: String,
    },
    /// Put back until `at` without having been tried: the claim does not
    /// count as an attempt (an endpoint backed off as a whole).
    Defer {
        at: DateTime<Utc>,
        error: String,
    },
    /// Given up after bounded retries (kept, flagged, for operators).
    Abandon {
        error: String,
    },
}

/// An attempt about to be made (recorded before the call).
#[derive(Debug, Clone)]
pub struct AttemptStart {
    pub payment_id: PaymentId,
    pub kind: AttemptKind,
    pub connector_id: String,
    pub worker: String,
    pub at: DateTime<Utc>,
    /// RECEIVED → SUBMITTED on a first send.
    pub transition: Option<Transition>,
    /// The attempt is refused (Conflict) unless this much of the lease is
    /// left: the call must end before anyone else can take the work.
    pub min_lease_left_ms: u64,
}

#[derive(Debug, Clone)]
pub struct AttemptEnd {
    pub attempt_id: i64,
    pub outcome: AttemptOutcome,
    pub result_code: Option<String>,
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// Everything one dispatch step commits, in one transaction.
#[derive(Debug, Clone)]
pub struct DispatchUpdate {
    pub attempt: Option<AttemptEnd>,
    pub transition: Option<Transition>,
    /// The biller's reference and credit time (with a confirmation).
    pub credit: Option<(String, DateTime<Utc>)>,
    /// Queued for the payment's channel (with a final state).
    pub callback: Option<CallbackEvent>,
    pub next: OutboxNext,
}

/// One write of dispatch or callback work, committed with others in one
/// transaction ([`DispatchStore::commit_dispatch`]): each is what
/// [`DispatchStore::start_attempt`], [`DispatchStore::record_dispatch`] or
/// [`WorkStore::finish_work`] does alone, with the same checks.
#[derive(Debug, Clone)]
pub enum DispatchOp {
    /// An attempt recorded before its call.
    Start { claim: Claim, start: AttemptStart },
    /// The end of a step: the attempt's outcome, the transition with its
    /// ledger effect, the callback, and what becomes of the work.
    Record {
        claim: Claim,
        update: Box<DispatchUpdate>,
    },
    /// Work finished with nothing else written.
    Finish { claim: Claim, next: OutboxNext },
}

impl DispatchOp {
    pub fn claim(&self) -> &Claim {
        match self {
            DispatchOp::Start { claim, .. }
            | DispatchOp::Record { claim, .. }
            | DispatchOp::Finish { claim, .. } => claim,
        }
    }
}

/// What one [`DispatchOp`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchDone {
    /// The attempt recorded, with its id.
    Started(i64),
    Written,
}

/// A batch file of a file route, as stored.
#[derive(Debug, Clone)]
pub struct FileBatch {
    pub id: i64,
    pub connector_id: String,
    pub biller_id: String,
    pub business_date: chrono::NaiveDate,
    pub seq: u32,
    pub file_id: String,
    pub created_at: DateTime<Utc>,
    pub answered: bool,
    /// The payments in line order.
    pub lines: Vec<Payment>,
}

/// One payment's outcome from a file route's acknowledgement.
#[derive(Debug, Clone)]
pub struct FileOutcome {
    pub transition: Transition,
    pub credit: Option<(String, DateTime<Utc>)>,
    pub callback: Option<CallbackEvent>,
}

/// Where a channel's callbacks go and the key that signs them.
#[derive(Debug, Clone)]
pub struct CallbackTarget {
    pub url: String,
    pub key_id: String,
    pub sealed_secret: Vec<u8>,
}

#[async_trait]
pub trait WorkStore: Send + Sync {
    /// Claims up to `limit` ready rows of `topic` for `lease`
    /// (FOR UPDATE SKIP LOCKED: several processes share one outbox).
    async fn claim_work(
        &self,
        topic: Topic,
        worker: &str,
        lease: std::time::Duration,
        limit: u32,
    ) -> StoreResult<Vec<Claim>>;
    async fn finish_work(&self, claim: &Claim, next: &OutboxNext) -> StoreResult<()>;
}

#[async_trait]
pub trait DispatchStore: Send + Sync {
    /// A payment with what is known of its delivery so far.
    async fn delivery(&self, id: PaymentId) -> StoreResult<Option<(Payment, DeliveryHistory)>>;
    /// Records an attempt before its call (and the transition it implies);
    /// returns the attempt id.
    async fn start_attempt(&self, claim: &Claim, start: &AttemptStart) -> StoreResult<i64>;
    async fn record_dispatch(&self, claim: &Claim, update: &DispatchUpdate) -> StoreResult<()>;
    /// Commits many ops in one transaction. Each op is checked as it would
    /// be alone (its claim still held, its attempt still open, its payment
    /// still in the transition's `from` state) and one that fails a check
    /// writes nothing and gets its error, without failing the others. An
    /// error of the whole (nothing committed) is the outer `Err`.
    async fn commit_dispatch(
        &self,
        ops: &[DispatchOp],
    ) -> StoreResult<Vec<StoreResult<DispatchDone>>>;
    async fn callback_target(&self, channel: &ChannelId) -> StoreResult<Option<CallbackTarget>>;
    /// Queues a payment for its file route's next batch (RECEIVED →
    /// SUBMITTED), finishing its dispatch work, in one transaction.
    async fn queue_for_file(
        &self,
        claim: &Claim,
        transition: &Transition,
        connector_id: &str,
        biller_id: &str,
    ) -> StoreResult<()>;
    /// Puts every payment queued on `connector_id` up to `up_to` into a new
    /// batch of `business_date` (file id from `file_id(seq)`); None when
    /// nothing waits.
    async fn prepare_file_batch(
        &self,
        connector_id: &str,
        up_to: DateTime<Utc>,
        business_date: chrono::NaiveDate,
        file_id: &(dyn Fn(u32) -> String + Sync),
    ) -> StoreResult<Option<i64>>;
    /// Batches of `connector_id` prepared but not yet delivered.
    async fn undelivered_file_batches(&self, connector_id: &str) -> StoreResult<Vec<FileBatch>>;
    async fn mark_file_batch_delivered(&self, batch_id: i64) -> StoreResult<()>;
    async fn file_batch(&self, file_id: &str) -> StoreResult<Option<FileBatch>>;
    /// Applies an acknowledgement: every line's transition, with its ledger
    /// effect and callback, and the batch marked answered, in one transaction.
    async fn apply_file_outcomes(&self, batch_id: i64, outcomes: &[FileOutcome])
        -> StoreResult<()>;
}

/// Closing one biller's business date.
#[derive(Debug, Clone)]
pub struct CloseRequest {
    pub biller: Biller,
    pub business_date: chrono::NaiveDate,
    /// Payments confirmed up to this instant are settled: the biller's
    /// cut-off on the business date, or an earlier moment when the date is
    /// closed early (`settle --early`).
    pub cutoff_at: DateTime<Utc>,
    /// Our settlement account (the debtor of the credit transfer).
    pub debtor: BankAccount,
    pub now: DateTime<Utc>,
}

/// A settlement batch as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BatchRecord {
    pub id: uuid::Uuid,
    pub biller_id: String,
    /// The biller's name when the batch was closed (the files show it).
    pub biller_name: String,
    pub business_date: chrono::NaiveDate,
    pub currency: String,
    pub cutoff_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub totals: BatchTotals,
    pub commission_rule: String,
    pub format: FileFormat,
    pub creditor: BankAccount,
    pub debtor: BankAccount,
    pub journal_id: Option<uuid::Uuid>,
    pub files_written_at: Option<DateTime<Utc>>,
    /// When the files failed for good (recorded once; see
    /// [`SettlementStore::record_files_failure`]).
    pub files_failed_at: Option<DateTime<Utc>>,
    /// Why: the file and both digests, or what the layout refused.
    pub files_failure: Option<String>,
}

impl BatchRecord {
    /// The files failed for good and were not written since (a retry after
    /// the cause was fixed writes them; the failure stays as history).
    pub fn files_failed(&self) -> bool {
        self.files_written_at.is_none() && self.files_failed_at.is_some()
    }

    /// Neither written nor failed: the files are still to come.
    pub fn files_pending(&self) -> bool {
        self.files_written_at.is_none() && self.files_failed_at.is_none()
    }
}

/// Where a batch's settlement message stands in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SettlementMessage {
    pub outbox_id: i64,
    pub created_at: DateTime<Utc>,
    /// Confirmed by the broker (or abandoned).
    pub done_at: Option<DateTime<Utc>>,
    pub abandoned: bool,
    pub attempts: i32,
    pub available_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseOutcome {
    /// The batch was created now.
    Closed(BatchRecord),
    /// The date was closed before: nothing new was created.
    AlreadyClosed(BatchRecord),
}

impl CloseOutcome {
    pub fn batch(&self) -> &BatchRecord {
        match self {
            CloseOutcome::Closed(b) | CloseOutcome::AlreadyClosed(b) => b,
        }
    }
}

/// One line of a batch, with what its files show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettledItem {
    pub seq: i32,
    pub payment_id: PaymentId,
    pub is_return: bool,
    pub channel_id: String,
    pub channel_reference: String,
    pub biller_reference: Option<String>,
    pub account_number: String,
    pub amount: Decimal,
    pub commission: Decimal,
    pub confirmed_at: DateTime<Utc>,
}

/// A file written for a batch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BatchFile {
    pub name: String,
    /// settlement | pain001 | manifest
    pub kind: String,
    pub sha256: String,
    pub bytes: u64,
    pub count: u64,
    pub total: Decimal,
}

/// One biller's part of a channel's statement for a business date.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StatementLine {
    pub biller_id: String,
    pub currency: String,
    pub batch_id: uuid::Uuid,
    pub payments: u64,
    /// What the channel's customers paid and the channel owes us.
    pub amount: Decimal,
    pub returns: u64,
    /// Returned payments the channel is owed back.
    pub returned: Decimal,
}

/// A return recorded for a settled payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnRecord {
    pub payment_id: PaymentId,
    pub biller_id: String,
    pub amount: Decimal,
    pub returned_at: DateTime<Utc>,
}

#[async_trait]
pub trait SettlementStore: Send + Sync {
    /// Closes (biller, date) in ONE transaction: the batch with its items
    /// (commission per payment by the biller's terms; a payment's item is
    /// its settlement: it reads SETTLED from then on, its row untouched),
    /// the ledger journal and the outbox message. A date closed before
    /// gives AlreadyClosed and changes nothing.
    async fn close_batch(&self, req: &CloseRequest) -> StoreResult<CloseOutcome>;
    async fn batch(&self, id: uuid::Uuid) -> StoreResult<Option<BatchRecord>>;
    /// Batches, optionally of one biller and/or one business date.
    async fn batches(
        &self,
        biller: Option<&str>,
        date: Option<chrono::NaiveDate>,
    ) -> StoreResult<Vec<BatchRecord>>;
    /// Calls `f` for every item of a batch in file order, streaming (a
    /// batch may hold a million items). Stops at the first error of `f`.
    async fn for_each_item(
        &self,
        batch: uuid::Uuid,
        f: &mut (dyn FnMut(SettledItem) -> Result<(), String> + Send),
    ) -> StoreResult<()>;
    /// Records a batch's files and that they are written (once; recording
    /// the same files again is a no-op).
    async fn record_files(&self, batch: uuid::Uuid, files: &[BatchFile]) -> StoreResult<()>;
    /// Records that a batch's files failed for good, once: true when
    /// recorded now, false when a failure was recorded before or the files
    /// are written (nothing changes then).
    async fn record_files_failure(
        &self,
        batch: uuid::Uuid,
        failure: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// The batch's settlement messages in the outbox, oldest first.
    async fn settlement_messages(&self, batch: uuid::Uuid) -> StoreResult<Vec<SettlementMessage>>;
    async fn batch_files(&self, batch: uuid::Uuid) -> StoreResult<Vec<BatchFile>>;
    /// A settled payment given back by its biller: SETTLED -> RETURNED, the
    /// reversing journal and the return to recover, in one transaction.
    async fn record_return(
        &self,
        payment: PaymentId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<ReturnRecord>;
    /// A channel's statement for a business date: per biller whose date is
    /// closed, what its customers paid and what was returned.
    async fn channel_statement(
        &self,
        channel: &ChannelId,
        date: chrono::NaiveDate,
    ) -> StoreResult<Vec<StatementLine>>;
    /// Channels with settled items on a business date.
    async fn statement_channels(&self, date: chrono::NaiveDate) -> StoreResult<Vec<String>>;
    /// Calls `f` for each item of a channel's statement (by biller, then
    /// file order).
    async fn for_each_statement_item(
        &self,
        channel: &ChannelId,
        date: chrono::NaiveDate,
        f: &mut (dyn FnMut(String, SettledItem) -> Result<(), String> + Send),
    ) -> StoreResult<()>;
    /// Billers' API keys (downloading settlement files).
    async fn add_biller_key(
        &self,
        biller: &BillerId,
        key_id: &str,
        sealed_secret: &[u8],
    ) -> StoreResult<()>;
    async fn find_biller_key(&self, key_id: &str) -> StoreResult<Option<StoredBillerKey>>;
    /// Disables a biller's key at once (every later request with it is 401).
    async fn disable_biller_key(&self, key_id: &str) -> StoreResult<()>;
}

/// A biller's API key as stored (the secret sealed).
#[derive(Debug, Clone)]
pub struct StoredBillerKey {
    pub key_id: String,
    pub biller_id: String,
    pub sealed_secret: Vec<u8>,
    pub active: bool,
    pub biller_active: bool,
}

/// A staff user as listed (never with its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffRecord {
    pub user: StaffUser,
    pub created_at: DateTime<Utc>,
    /// When the current token was issued (creation or last rotation).
    pub token_issued_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

/// Finance staff users. Only a hash of each token is kept (see
/// `auth::staff_token`); users are never deleted, only disabled.
#[async_trait]
pub trait StaffStore: Send + Sync {
    /// Adds an (enabled) user with its token's hash. Conflict when the id
    /// exists (disabled users keep their id).
    async fn add_staff(&self, user: &StaffUser, token_hash: &[u8]) -> StoreResult<()>;
    /// The user holding the token with this hash, disabled or not.
    async fn staff_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<StaffUser>>;
    /// Every user, disabled ones included, by id.
    async fn list_staff(&self) -> StoreResult<Vec<StaffRecord>>;
    /// Disables a user at once (every later request with its token is 401).
    /// NotFound for an unknown id; disabling a disabled user changes nothing.
    async fn disable_staff(&self, id: &str) -> StoreResult<()>;
    /// Replaces a user's token hash (the old token stops working at once).
    /// NotFound for an unknown id, Conflict for a disabled user.
    async fn rotate_staff_token(&self, id: &str, token_hash: &[u8]) -> StoreResult<()>;
}

/// Everything billclear keeps.
pub trait Store:
    BillerStore
    + ChannelStore
    + PaymentStore
    + LedgerStore
    + HealthStore
    + WorkStore
    + DispatchStore
    + SettlementStore
    + StaffStore
    + recon::ReconStore
    + recon::ResendStore
    + bank::BankStore
    + console::ConsoleStore
    + lease::LeaseStore
    + complaint::ComplaintStore
{
}
impl<
        T: BillerStore
            + ChannelStore
            + PaymentStore
            + LedgerStore
            + HealthStore
            + WorkStore
            + DispatchStore
            + SettlementStore
            + StaffStore
            + recon::ReconStore
            + recon::ResendStore
            + bank::BankStore
            + console::ConsoleStore
            + lease::LeaseStore
            + complaint::ComplaintStore,
    > Store for T
{
}
