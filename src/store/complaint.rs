//! What the store keeps of complaints and refunds (the rules are in
//! `domain::complaint`; the work in `crate::complaints`).

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::StoreResult;
use crate::domain::complaint::{ComplaintKind, ComplaintStatus, Outcome, RefundWay, StaffAction};
use crate::domain::ids::{ChannelId, PaymentId};
use crate::domain::payment::Payment;

/// A complaint to record (`POST /v1/complaints`).
#[derive(Debug, Clone)]
pub struct NewComplaint {
    pub id: Uuid,
    pub channel_id: ChannelId,
    pub payment_id: PaymentId,
    pub biller_id: String,
    pub kind: ComplaintKind,
    pub description: String,
    pub idempotency_key: String,
    pub request_hash: [u8; 32],
    pub registered_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
}

/// A complaint as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplaintRecord {
    pub id: Uuid,
    pub channel_id: String,
    pub payment_id: PaymentId,
    pub biller_id: String,
    pub kind: ComplaintKind,
    pub description: String,
    pub status: ComplaintStatus,
    pub outcome: Option<String>,
    pub reason: Option<String>,
    pub biller_reference: Option<String>,
    pub credited_at: Option<DateTime<Utc>>,
    pub request_hash: Vec<u8>,
    pub registered_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub next_check_at: Option<DateTime<Utc>>,
    pub checks: i32,
    pub owner: Option<String>,
    /// The staff member who proposed a refund waiting for approval.
    pub proposed_by: Option<String>,
    pub proposal_note: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// The refund made for this complaint, if any.
    pub refund: Option<RefundRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRecord {
    pub id: Uuid,
    pub payment_id: PaymentId,
    pub complaint_id: Option<Uuid>,
    pub channel_id: String,
    pub biller_id: String,
    pub amount: Decimal,
    pub currency: String,
    pub how: String,
    pub decided_by: String,
    pub maker: Option<String>,
    pub approver: Option<String>,
    pub reason: String,
    pub business_date: NaiveDate,
    pub refunded_at: DateTime<Utc>,
}

/// What registering found.
#[derive(Debug, Clone)]
pub enum RegisterOutcome {
    Registered(ComplaintRecord),
    /// The same Idempotency-Key was used before: that complaint (the
    /// caller compares the request hash).
    KeyUsed(ComplaintRecord),
    /// A complaint of the same type on the same payment is open.
    OpenAlready(Uuid),
}

/// What the store knows about a payment a complaint is about.
#[derive(Debug, Clone)]
pub struct PaymentEvidence {
    pub payment: Payment,
    pub refund: Option<RefundRecord>,
    /// Other payments of the same bill by the same app (same biller,
    /// account, amount and bill reference) within a day of it, credited
    /// (or credited and refunded since): id, when accepted, refunded.
    pub credited_duplicates: Vec<(PaymentId, DateTime<Utc>, bool)>,
    /// Reconciliation breaks open about this payment: id and category.
    pub breaks: Vec<(i64, String)>,
    /// The reconciliation's automatic decision on it, if any.
    pub recon_decision: Option<String>,
    /// The settlement batch that paid it to the biller, if any.
    pub settled_in: Option<Uuid>,
}

/// A change the machine makes to a complaint it looked at.
#[derive(Debug, Clone)]
pub struct MachineChange {
    pub to: ComplaintStatus,
    pub outcome: Option<Outcome>,
    pub reason: Option<String>,
    pub next_check_at: Option<DateTime<Utc>>,
    pub note: String,
    pub detail: serde_json::Value,
}

/// A refund to make (in the same transaction as the complaint's change).
#[derive(Debug, Clone)]
pub struct RefundOrder {
    pub payment_id: PaymentId,
    pub complaint_id: Uuid,
    /// The staff pair (maker, approver), or None for a refund by rule.
    pub staff: Option<(String, String)>,
    pub reason: String,
    /// The biller's business date now: the app's statement that lists it.
    pub business_date: NaiveDate,
}

/// What making a refund did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundMade {
    Made {
        way: RefundWay,
        refund: RefundRecord,
    },
    /// The payment was refunded already (by another complaint): that one.
    Already(RefundRecord),
}

/// One event of a complaint's trail.
#[derive(Debug, Clone)]
pub struct ComplaintEvent {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub note: String,
}

/// Staff's filter on complaints.
#[derive(Debug, Clone, Default)]
pub struct ComplaintFilter {
    pub channel: Option<String>,
    pub status: Option<ComplaintStatus>,
    /// Only those still open (any open status).
    pub open_only: bool,
    pub since: Option<DateTime<Utc>>,
    pub biller: Option<String>,
    /// Registered before this (paging: the last seen registered_at, id).
    pub before: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

#[async_trait]
pub trait ComplaintStore: Send + Sync {
    async fn register_complaint(&self, c: &NewComplaint) -> StoreResult<RegisterOutcome>;
    async fn complaint(&self, id: Uuid) -> StoreResult<Option<ComplaintRecord>>;
    /// The complaint an app registered with `key`.
    async fn complaint_by_key(
        &self,
        channel: &ChannelId,
        key: &str,
    ) -> StoreResult<Option<ComplaintRecord>>;
    /// Newest first.
    async fn complaints(&self, f: &ComplaintFilter) -> StoreResult<Vec<ComplaintRecord>>;
    async fn complaint_events(&self, id: Uuid) -> StoreResult<Vec<ComplaintEvent>>;
    /// Complaints the machine should look at now (oldest check first).
    async fn complaints_to_check(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<ComplaintRecord>>;
    async fn payment_evidence(&self, payment: PaymentId) -> StoreResult<Option<PaymentEvidence>>;
    /// Applies the machine's change if the complaint is still `from`
    /// (Conflict otherwise); a change of status queues the app's callback.
    async fn complaint_machine_change(
        &self,
        id: Uuid,
        from: ComplaintStatus,
        change: &MachineChange,
        now: DateTime<Utc>,
    ) -> StoreResult<ComplaintRecord>;
    /// Gives a payment's amount back and resolves the complaint (refunded),
    /// in one transaction; a payment is refunded at most once.
    /// `from`: the status the machine saw (Conflict if it changed).
    async fn complaint_refund(
        &self,
        order: &RefundOrder,
        from: ComplaintStatus,
        actor: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<(ComplaintRecord, RefundMade)>;
    /// The machine looks at the complaint again no sooner than `until`
    /// (after a failed look), its status unchanged.
    async fn complaint_defer(&self, id: Uuid, until: DateTime<Utc>) -> StoreResult<()>;
    /// ESCALATED: every open complaint past its time (callbacks queued).
    async fn escalate_due(&self, now: DateTime<Utc>) -> StoreResult<Vec<ComplaintRecord>>;
    /// A staff action (checked by the caller with `staff_effect`, and again
    /// here under the row lock): status, proposal, trail and callback.
    async fn complaint_staff_action(
        &self,
        id: Uuid,
        actor: &str,
        is_approver: bool,
        action: &StaffAction,
        refund_date: NaiveDate,
        now: DateTime<Utc>,
    ) -> StoreResult<ComplaintRecord>;
    /// The refund of `payment`, if it was refunded.
    async fn refund_of(&self, payment: PaymentId) -> StoreResult<Option<RefundRecord>>;
    /// Refunds listed on an app's statement of `date`.
    async fn refunds_on(
        &self,
        channel: &ChannelId,
        date: NaiveDate,
    ) -> StoreResult<Vec<RefundRecord>>;
    /// All refunds made (newest first), for staff.
    async fn refunds(&self, limit: i64) -> StoreResult<Vec<RefundRecord>>;
    /// A biller's complaints registered in [from, to).
    async fn complaints_registered(
        &self,
        biller: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<ComplaintRecord>>;
}
