//! Complaints and refunds as a payment app sees them: the API's answers
//! and the callbacks' bodies.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::complaint::{ComplaintRecord, RefundRecord};

/// A complaint about one of the app's payments.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Complaint)]
pub struct ComplaintView {
    pub id: uuid::Uuid,
    pub payment_id: uuid::Uuid,
    /// not_credited, credited_to_wrong_account, paid_twice, amount_differs
    /// or refund_not_received.
    #[serde(rename = "type")]
    #[schema(
        pattern = "^(not_credited|credited_to_wrong_account|paid_twice|amount_differs|refund_not_received)$"
    )]
    pub kind: &'static str,
    pub description: String,
    /// OPEN, INVESTIGATING, PENDING_BILLER, RESOLVED, REJECTED or ESCALATED.
    #[schema(pattern = "^(OPEN|INVESTIGATING|PENDING_BILLER|RESOLVED|REJECTED|ESCALATED)$")]
    pub status: &'static str,
    /// How it was resolved (RESOLVED): credit_confirmed, nothing_taken,
    /// refunded or corrected.
    #[schema(required = true)]
    pub outcome: Option<String>,
    /// Why it was rejected, or how it was resolved, in words.
    #[schema(required = true)]
    pub reason: Option<String>,
    /// The biller's receipt, when the biller confirmed the credit.
    #[schema(required = true)]
    pub biller_reference: Option<String>,
    /// When the biller credited the payment (its clock).
    #[schema(required = true)]
    pub credited_at: Option<DateTime<Utc>>,
    /// The refund made for it, if any.
    #[schema(required = true)]
    pub refund: Option<RefundView>,
    pub registered_at: DateTime<Utc>,
    /// When its turn-around time (business days of the biller's calendar)
    /// runs out.
    pub due_at: DateTime<Utc>,
    #[schema(required = true)]
    pub resolved_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub escalated_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// A payment's amount given back to the app (listed on its statement).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Refund)]
pub struct RefundView {
    pub id: uuid::Uuid,
    pub payment_id: uuid::Uuid,
    #[schema(pattern = "^[0-9]+(\\.[0-9]+)?$", example = "100.00")]
    pub amount: String,
    #[schema(pattern = "^[A-Z]{3}$", example = "CNY")]
    pub currency: String,
    /// reversal (before settlement) or return (after: recovered from the
    /// biller's next settlement).
    #[schema(pattern = "^(reversal|return)$")]
    pub how: String,
    /// rule (the evidence proved it) or staff (maker and checker).
    #[schema(pattern = "^(rule|staff)$")]
    pub decided_by: String,
    pub reason: String,
    /// The date of the statement that lists it.
    pub business_date: NaiveDate,
    pub refunded_at: DateTime<Utc>,
}

impl From<&RefundRecord> for RefundView {
    fn from(r: &RefundRecord) -> RefundView {
        RefundView {
            id: r.id,
            payment_id: r.payment_id.0,
            amount: r.amount.to_string(),
            currency: r.currency.clone(),
            how: r.how.clone(),
            decided_by: r.decided_by.clone(),
            reason: r.reason.clone(),
            business_date: r.business_date,
            refunded_at: r.refunded_at,
        }
    }
}

impl From<&ComplaintRecord> for ComplaintView {
    fn from(c: &ComplaintRecord) -> ComplaintView {
        ComplaintView {
            id: c.id,
            payment_id: c.payment_id.0,
            kind: c.kind.as_str(),
            description: c.description.clone(),
            status: c.status.as_str(),
            outcome: c.outcome.clone(),
            reason: c.reason.clone(),
            biller_reference: c.biller_reference.clone(),
            credited_at: c.credited_at,
            refund: c.refund.as_ref().map(RefundView::from),
            registered_at: c.registered_at,
            due_at: c.due_at,
            resolved_at: c.resolved_at,
            escalated_at: c.escalated_at,
            updated_at: c.updated_at,
        }
    }
}

/// What the app is told when a complaint changes status. POSTed to its
/// callback URL like a payment's final state (signed, retried).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComplaintCallbackEvent {
    /// Unique per event; the same on every retry of it.
    pub event_id: uuid::Uuid,
    /// "complaint." and the new status in lower case, e.g.
    /// "complaint.resolved", "complaint.escalated".
    #[serde(rename = "type")]
    #[schema(
        pattern = "^complaint\\.(investigating|pending_biller|resolved|rejected|escalated)$",
        example = "complaint.resolved"
    )]
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub complaint: ComplaintView,
}

/// The callback for `c`'s status as it now stands.
pub fn callback_event(c: &ComplaintRecord, at: DateTime<Utc>) -> ComplaintCallbackEvent {
    ComplaintCallbackEvent {
        event_id: uuid::Uuid::now_v7(),
        kind: format!("complaint.{}", c.status.as_str().to_ascii_lowercase()),
        occurred_at: at,
        complaint: ComplaintView::from(c),
    }
}
