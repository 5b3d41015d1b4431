//! Dispatch rules: what to do with a payment claimed for delivery, how long
//! to wait before trying again, and what a channel is told. Pure: the
//! dispatch workers call the biller and the store records what this decides.
//!
//! The rule that protects money: a payment is sent again only when every
//! earlier send is known NOT to have been applied. A send whose outcome is
//! unknown (a timeout, an unreadable answer, a process that died mid-call)
//! makes the payment UNKNOWN, and from then on the biller is only ever asked
//! about it by our reference, on the same route.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::payment::{Payment, PaymentStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    Pay,
    Status,
}

impl AttemptKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            AttemptKind::Pay => "pay",
            AttemptKind::Status => "status",
        }
    }
    pub fn parse(s: &str) -> Option<AttemptKind> {
        match s {
            "pay" => Some(AttemptKind::Pay),
            "status" => Some(AttemptKind::Status),
            _ => None,
        }
    }
}

/// How an attempt ended (the `dispatch_attempts.outcome` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Credited,
    Refused,
    NotApplied,
    Unknown,
    NotFound,
    Pending,
}

impl AttemptOutcome {
    pub const ALL: [AttemptOutcome; 6] = [
        AttemptOutcome::Credited,
        AttemptOutcome::Refused,
        AttemptOutcome::NotApplied,
        AttemptOutcome::Unknown,
        AttemptOutcome::NotFound,
        AttemptOutcome::Pending,
    ];
    pub fn as_str(&self) -> &'static str {
        match self {
            AttemptOutcome::Credited => "credited",
            AttemptOutcome::Refused => "refused",
            AttemptOutcome::NotApplied => "not_applied",
            AttemptOutcome::Unknown => "unknown",
            AttemptOutcome::NotFound => "not_found",
            AttemptOutcome::Pending => "pending",
        }
    }
    pub fn parse(s: &str) -> Option<AttemptOutcome> {
        AttemptOutcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// What the store knows of a payment's delivery so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryHistory {
    /// Pay attempts made, and how the last one ended (None: still open, or
    /// its process died during the call).
    pub pay_attempts: u32,
    pub last_pay_outcome: Option<AttemptOutcome>,
    pub last_pay_started_at: Option<DateTime<Utc>>,
    /// The route of the last pay attempt.
    pub connector_id: Option<String>,
    /// How long ago the last pay attempt started (by the database clock).
    pub since_last_pay: Option<std::time::Duration>,
    /// Status inquiries since the last pay attempt, how many of them found
    /// no record of the payment, and how many got an answer that says the
    /// biller does know it (pending, credited, refused) or that could not be
    /// trusted (echo mismatch).
    pub status_attempts: u32,
    pub not_found_answers: u32,
    pub contrary_answers: u32,
}

/// Whether "the biller has no record of the payment" may be taken as final
/// (the payment is then REJECTED and voided): only after `needed` such
/// answers, only once `grace` has passed since the send (longer than the
/// dispatch lease plus the biller's slowest processing: a request still in
/// flight or being processed looks like one never received), and never if
/// the biller ever said otherwise since the send.
pub fn not_found_is_final(
    history: &DeliveryHistory,
    answers_with_this_one: u32,
    needed: u32,
    grace: std::time::Duration,
) -> bool {
    answers_with_this_one >= needed
        && history.contrary_answers == 0
        && history.since_last_pay.is_some_and(|d| d >= grace)
}

/// The next thing to do with a claimed dispatch job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send the payment (first time, or again after sends that were
    /// certainly not applied).
    Send,
    /// A send was open when its process died: its outcome is unknown.
    /// Move the payment to UNKNOWN, then inquire.
    MarkUnknown,
    /// Ask the biller by our reference on `connector_id`.
    Inquire { connector_id: String },
    /// Nothing to do (already final); the job is finished.
    Done,
}

pub fn plan(status: PaymentStatus, history: &DeliveryHistory) -> Step {
    use PaymentStatus::*;
    match status {
        Received => Step::Send,
        Submitted => match history.last_pay_outcome {
            Some(AttemptOutcome::NotApplied) => Step::Send,
            // An open send (no outcome) or any other outcome left behind
            // while the payment is still SUBMITTED: we cannot know.
            _ => Step::MarkUnknown,
        },
        Unknown => match &history.connector_id {
            Some(c) => Step::Inquire {
                connector_id: c.clone(),
            },
            // Cannot happen (UNKNOWN follows a send); keep it for review.
            None => Step::Done,
        },
        Confirmed | Rejected | Settled | Returned => Step::Done,
    }
}

/// Bounded exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base_ms: u64,
    pub max_ms: u64,
    /// Tries in all; after the last one the work is given up.
    pub max_attempts: u32,
}

impl Backoff {
    /// The wait after attempt number `attempt` (1 = the first) failed:
    /// base * 2^(attempt-1), capped, with up to 20% taken off by `jitter`
    /// (0.0..1.0) so that retries of many payments spread out.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(32);
        let raw = self.base_ms.saturating_mul(1u64 << exp).min(self.max_ms);
        let off = (raw as f64 * 0.2 * jitter.clamp(0.0, 1.0)) as u64;
        Duration::from_millis(raw - off)
    }
    pub fn exhausted(&self, attempts_made: u32) -> bool {
        attempts_made >= self.max_attempts
    }
}

/// What the channel is told when its payment reaches a final state.
/// POSTed to the channel's callback URL (not an endpoint of this API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CallbackEvent {
    /// Unique per event; the same on every retry of it (deduplicate on it).
    pub event_id: uuid::Uuid,
    /// "payment.confirmed", "payment.rejected", or "payment.returned"
    /// (given back by the biller after settlement).
    #[serde(rename = "type")]
    #[schema(
        pattern = "^payment\\.(confirmed|rejected|returned)$",
        example = "payment.confirmed"
    )]
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub payment: CallbackPayment,
}

/// The payment a callback is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CallbackPayment {
    #[schema(format = Uuid)]
    pub id: String,
    pub channel_reference: String,
    pub biller_id: String,
    pub status: PaymentStatus,
    /// Decimal string at exactly the currency's scale.
    #[schema(pattern = "^[0-9]+(\\.[0-9]+)?$", example = "100.00")]
    pub amount: String,
    #[schema(pattern = "^[A-Z]{3}$", example = "CNY")]
    pub currency: String,
    /// The biller's receipt (confirmed payments).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub biller_reference: Option<String>,
    /// Why the payment was rejected or returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<String>,
}

impl CallbackEvent {
    pub fn for_payment(
        payment: &Payment,
        status: PaymentStatus,
        biller_reference: Option<&str>,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> CallbackEvent {
        CallbackEvent {
            event_id: uuid::Uuid::now_v7(),
            kind: format!("payment.{}", status.as_str().to_ascii_lowercase()),
            occurred_at: at,
            payment: CallbackPayment {
                id: payment.id.to_string(),
                channel_reference: payment.channel_reference.clone(),
                biller_id: payment.biller_id.to_string(),
                status,
                amount: payment.amount.amount().to_string(),
                currency: payment.amount.currency().code().to_string(),
                biller_reference: biller_reference.map(str::to_string),
                reason: reason.map(str::to_string),
            },
        }
    }
}

/// Masks a customer name for a channel: the first character stays, every
/// other letter becomes '*' ("王小明" → "王**", "Li Wei" → "L* ***").
pub fn mask_name(name: &str) -> String {
    name.trim()
        .chars()
        .enumerate()
        .map(|(i, c)| if i == 0 || c.is_whitespace() { c } else { '*' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use PaymentStatus::*;

    fn history(last: Option<AttemptOutcome>, connector: Option<&str>) -> DeliveryHistory {
        DeliveryHistory {
            pay_attempts: u32::from(connector.is_some()),
            last_pay_outcome: last,
            last_pay_started_at: None,
            connector_id: connector.map(str::to_string),
            since_last_pay: None,
            status_attempts: 0,
            not_found_answers: 0,
            contrary_answers: 0,
        }
    }

    #[test]
    fn not_found_is_final_only_when_repeated_late_and_uncontradicted() {
        let grace = Duration::from_secs(60);
        let mut h = history(Some(AttemptOutcome::Unknown), Some("w"));
        h.since_last_pay = Some(Duration::from_secs(61));
        assert!(not_found_is_final(&h, 2, 2, grace));
        assert!(
            !not_found_is_final(&h, 1, 2, grace),
            "one answer is not enough"
        );
        h.since_last_pay = Some(Duration::from_secs(59));
        assert!(!not_found_is_final(&h, 2, 2, grace), "within the grace");
        h.since_last_pay = None;
        assert!(!not_found_is_final(&h, 2, 2, grace), "no send known");
        h.since_last_pay = Some(Duration::from_secs(600));
        h.contrary_answers = 1;
        assert!(
            !not_found_is_final(&h, 5, 2, grace),
            "the biller said once it knew the payment"
        );
    }

    #[test]
    fn an_unknown_send_is_never_repeated() {
        // A send that died mid-call (no outcome) is unknown, never re-sent.
        assert_eq!(
            plan(Submitted, &history(None, Some("w"))),
            Step::MarkUnknown
        );
        assert_eq!(
            plan(
                Submitted,
                &history(Some(AttemptOutcome::Unknown), Some("w"))
            ),
            Step::MarkUnknown
        );
        assert_eq!(
            plan(Unknown, &history(Some(AttemptOutcome::Unknown), Some("w"))),
            Step::Inquire {
                connector_id: "w".into()
            }
        );
        // Only a send known not to have been applied may be repeated.
        assert_eq!(
            plan(
                Submitted,
                &history(Some(AttemptOutcome::NotApplied), Some("w"))
            ),
            Step::Send
        );
        assert_eq!(plan(Received, &history(None, None)), Step::Send);
        for s in [Confirmed, Rejected, Settled, Returned] {
            assert_eq!(plan(s, &history(None, Some("w"))), Step::Done);
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_bounded() {
        let b = Backoff {
            base_ms: 500,
            max_ms: 8_000,
            max_attempts: 5,
        };
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(500));
        assert_eq!(b.delay(2, 0.0), Duration::from_millis(1_000));
        assert_eq!(b.delay(5, 0.0), Duration::from_millis(8_000));
        assert_eq!(b.delay(60, 0.0), Duration::from_millis(8_000));
        assert_eq!(b.delay(1, 1.0), Duration::from_millis(400));
        assert!(!b.exhausted(4));
        assert!(b.exhausted(5));
    }

    #[test]
    fn names_are_masked() {
        assert_eq!(mask_name("王小明"), "王**");
        assert_eq!(mask_name("Li Wei"), "L* ***");
        assert_eq!(mask_name(""), "");
    }
}
