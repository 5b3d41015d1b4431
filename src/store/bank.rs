//! What billclear keeps of our bank accounts: statements and notifications
//! as received, each entry once (whatever file brings it again), the
//! channel funding and the settlement payouts booked per entry.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::recon::{ImportOutcome, NewReconFile};
use super::StoreResult;
pub use crate::domain::recon::bank::{AccountPosition, BankPosition};
use crate::domain::recon::statement::{BalanceProof, ChainLink, EntryKeys, MessageKind};

/// A statement (or notification) read, checked and proven, about to be
/// recorded with its entries.
#[derive(Debug, Clone)]
pub struct NewBankStatement {
    /// Normalised account id.
    pub account: String,
    pub identity: String,
    pub kind: MessageKind,
    pub format: String,
    pub statement_id: String,
    pub sequence: Option<i64>,
    pub page: Option<String>,
    pub currency: String,
    pub business_date: NaiveDate,
    pub from_date: Option<NaiveDate>,
    /// Statements only (notifications have no balances).
    pub proof: Option<BalanceProof>,
    /// Where the statement stands in its file, for refusals.
    pub location: String,
    /// Entries not booked (pending, informational): counted, not recorded.
    pub pending: u32,
    /// Booked entries.
    pub entries: Vec<NewBankEntry>,
}

#[derive(Debug, Clone)]
pub struct NewBankEntry {
    pub keys: EntryKeys,
    pub position: u32,
    pub location: String,
    pub amount_minor: i64,
    pub currency: String,
    pub credit: bool,
    pub status: String,
    /// The entry's booking date, else its value date, else its statement's date.
    pub booking_date: NaiveDate,
    pub value_date: Option<NaiveDate>,
    pub bank_reference: Option<String>,
    pub end_to_end_id: Option<String>,
    pub remittance: Option<String>,
}

/// What one bank file added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BankImportCounts {
    pub statements: u64,
    /// Statements (or notifications) not seen before.
    pub statements_new: u64,
    /// Statements whose balances add up (opening + credits - debits = closing).
    pub balances_proven: u64,
    /// Booked entries in the file.
    pub entries: u64,
    /// Pending or informational entries (not booked by the bank: counted only).
    pub entries_pending: u64,
    /// Entries booked now for the first time.
    pub entries_booked: u64,
    /// Entries already known from an earlier file (booked nothing).
    pub entries_already_known: u64,
}

/// One entry as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BankEntryRow {
    pub id: i64,
    pub account: String,
    pub rule: String,
    pub identity: String,
    pub currency: String,
    pub amount_minor: i64,
    pub credit: bool,
    pub status: String,
    pub booking_date: NaiveDate,
    pub bank_reference: Option<String>,
    pub end_to_end_id: Option<String>,
    pub remittance: Option<String>,
    pub statement_id: i64,
    pub position: i32,
    pub file_id: i64,
}

impl BankEntryRow {
    pub fn signed_minor(&self) -> i64 {
        if self.credit {
            self.amount_minor
        } else {
            -self.amount_minor
        }
    }

    pub fn booked(&self) -> bool {
        self.status == "BOOK"
    }
}

/// One statement as recorded (a link of its account's chain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BankStatementRow {
    pub id: i64,
    pub account: String,
    pub kind: MessageKind,
    pub format: String,
    pub currency: String,
    pub link: Option<ChainLink>,
    pub business_date: NaiveDate,
    pub file_id: i64,
    /// Entries the bank had not booked (pending, informational).
    pub pending: i32,
}

#[async_trait]
pub trait BankStore: Send + Sync {
    /// Records a bank file, its statements and their entries in ONE
    /// transaction (serialised per account). An entry already known (by any
    /// of its keys) is not booked again; one known with another amount or
    /// direction, or a statement known with other balances, refuses the
    /// whole file (`Conflict`, naming both figures) and nothing is stored.
    async fn record_bank_file(
        &self,
        file: &NewReconFile,
        statements: &[NewBankStatement],
    ) -> StoreResult<(ImportOutcome, BankImportCounts)>;
    /// Entries booked on `date` (every account; pending ones too), in id order.
    async fn bank_entries_on(&self, date: NaiveDate) -> StoreResult<Vec<BankEntryRow>>;
    /// Statements (not notifications) of `date`, in account and sequence order.
    async fn bank_statements_on(&self, date: NaiveDate) -> StoreResult<Vec<BankStatementRow>>;
    /// The statement before `this` in its account's chain: by sequence
    /// number when it has one, else by date.
    async fn previous_statement(
        &self,
        this: &BankStatementRow,
    ) -> StoreResult<Option<BankStatementRow>>;
    /// Whether any bank entry or statement is recorded for `date`.
    async fn bank_activity_on(&self, date: NaiveDate) -> StoreResult<bool>;
    /// Books a channel's funding from one bank entry (Dr bank:settlement /
    /// Cr the channel's receivable), once per entry. False when booked before.
    #[allow(clippy::too_many_arguments)]
    async fn book_funding(
        &self,
        entry_id: i64,
        channel: &str,
        date: NaiveDate,
        amount_minor: i64,
        currency: &str,
        file_id: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Funding in `currency` booked for a channel's statement `date` from
    /// entries booked on or before `through`: (entries, total minor).
    async fn funded(
        &self,
        channel: &str,
        date: NaiveDate,
        currency: &str,
        through: NaiveDate,
    ) -> StoreResult<(u64, i64)>;
    /// Records that `entry` paid `batch`. Returns the entry recorded as its
    /// payout (this one, or an earlier one: the batch was paid before).
    async fn record_payout(
        &self,
        batch: uuid::Uuid,
        entry: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<i64>;
    /// The entry recorded as a batch's payout, if any.
    async fn payout_entry(&self, batch: uuid::Uuid) -> StoreResult<Option<i64>>;
    /// The bank's balances beside our ledger's, per currency, as of `date`.
    async fn bank_position(&self, date: NaiveDate) -> StoreResult<Vec<BankPosition>>;
}
