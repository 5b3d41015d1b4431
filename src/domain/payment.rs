//! Payments: the validated request, the states and the explicit transition
//! table. Pure: the store records what this module decides.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::biller::{AccountError, Availability, Biller, PaymentAmountError};
use super::ids::{BillerId, ChannelId, PaymentId};
use super::money::Money;

/// Bounds on free-text fields a channel sends.
pub const MAX_REFERENCE_CHARS: usize = 64;
pub const MAX_ACCOUNT_CHARS: usize = 64;
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;

/// Where a payment is: RECEIVED, SUBMITTED and UNKNOWN move on by
/// themselves; CONFIRMED and REJECTED are final for the channel (a
/// CONFIRMED payment is later SETTLED, and a SETTLED one may be RETURNED).
// (Not in the API's document:) SETTLED is a payment's membership of a
// settlement batch: the store derives it from the batch's item (the row
// stays CONFIRMED), and the database admits an item only for a CONFIRMED
// payment, the one step TRANSITIONS allows into SETTLED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    Received,
    Submitted,
    Confirmed,
    Rejected,
    Unknown,
    Settled,
    Returned,
}

use PaymentStatus::*;

/// Every allowed transition. The database holds the same table
/// (`payment_transitions`); a test keeps the two equal.
pub const TRANSITIONS: &[(PaymentStatus, PaymentStatus)] = &[
    (Received, Submitted),
    (Received, Rejected),
    (Submitted, Confirmed),
    (Submitted, Rejected),
    (Submitted, Unknown),
    (Unknown, Confirmed),
    (Unknown, Rejected),
    (Confirmed, Settled),
    // A refund before settlement (a complaint): never settled.
    (Confirmed, Returned),
    (Settled, Returned),
];

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 7] = [
        Received, Submitted, Confirmed, Rejected, Unknown, Settled, Returned,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Received => "RECEIVED",
            Submitted => "SUBMITTED",
            Confirmed => "CONFIRMED",
            Rejected => "REJECTED",
            Unknown => "UNKNOWN",
            Settled => "SETTLED",
            Returned => "RETURNED",
        }
    }

    pub fn parse(s: &str) -> Option<PaymentStatus> {
        PaymentStatus::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Final for the channel: a callback is due.
    pub fn is_final(&self) -> bool {
        matches!(self, Confirmed | Rejected | Settled | Returned)
    }

    pub fn can_move_to(&self, to: PaymentStatus) -> bool {
        TRANSITIONS.contains(&(*self, to))
    }

    /// What a transition does to the payment's pending ledger transfer.
    pub fn ledger_effect(from: PaymentStatus, to: PaymentStatus) -> LedgerEffect {
        match (from, to) {
            (Submitted | Unknown, Confirmed) => LedgerEffect::PostPending,
            (Received | Submitted | Unknown, Rejected) => LedgerEffect::VoidPending,
            _ => LedgerEffect::None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerEffect {
    None,
    PostPending,
    VoidPending,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payment cannot move from {} to {}", .from.as_str(), .to.as_str())]
pub struct TransitionError {
    pub from: PaymentStatus,
    pub to: PaymentStatus,
}

/// A decided transition, ready to be stored as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub payment_id: PaymentId,
    pub from: PaymentStatus,
    pub to: PaymentStatus,
    pub reason: String,
    pub at: DateTime<Utc>,
    pub ledger: LedgerEffect,
}

pub fn transition(
    payment_id: PaymentId,
    from: PaymentStatus,
    to: PaymentStatus,
    reason: impl Into<String>,
    at: DateTime<Utc>,
) -> Result<Transition, TransitionError> {
    if !from.can_move_to(to) {
        return Err(TransitionError { from, to });
    }
    Ok(Transition {
        payment_id,
        from,
        to,
        reason: reason.into(),
        at,
        ledger: PaymentStatus::ledger_effect(from, to),
    })
}

// Its schema (the API document's PaymentRequest) states what the API's
// body reader and `PaymentRequest::parse` enforce.
/// A bill payment request. Every field is a string: amounts are decimal
/// strings, never JSON numbers. No other field is accepted, and no control
/// character anywhere.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PaymentRequest)]
pub struct PaymentRequestBody {
    /// A biller of `GET /v1/billers`.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", example = "sh-water")]
    pub biller_id: String,
    /// The customer's account number at the biller: it must match the
    /// biller's `account_number.pattern` and pass its check digit (see
    /// `GET /v1/billers`). No control characters, no leading or trailing
    /// space.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\s\\x00-\\x1F\\x7F-\\x9F]([^\\x00-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F])?$"
    )]
    pub account_number: String,
    /// A decimal string, never a JSON number: digits with at most one
    /// '.', no sign, exponent, space or separator. Greater than zero, no
    /// more significant decimals than the currency has (CNY 2, JPY 0, KWD
    /// 3: "10.5" and "10.50" are the same amount, "10.505" is refused in
    /// CNY), within the biller's `amount.min` and `amount.max`.
    #[schema(
        min_length = 1,
        max_length = 32,
        pattern = "^[0-9]+(\\.[0-9]+)?$",
        example = "100.00"
    )]
    pub amount: String,
    /// The biller's currency (ISO 4217).
    #[schema(pattern = "^[A-Z]{3}$", example = "CNY")]
    pub currency: String,
    /// The bill paid (from a bill inquiry), when there is one. Same rules
    /// as `channel_reference`.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\s\\x00-\\x1F\\x7F-\\x9F]([^\\x00-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F])?$"
    )]
    pub bill_reference: Option<String>,
    /// The channel's own reference, unique per channel: 1-64 characters,
    /// no control characters, no leading or trailing space.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\s\\x00-\\x1F\\x7F-\\x9F]([^\\x00-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F])?$"
    )]
    pub channel_reference: String,
}

/// A payment request that passed every check the intake can make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    pub channel_id: ChannelId,
    pub biller_id: BillerId,
    pub account_number: String,
    pub amount: Money,
    pub bill_reference: Option<String>,
    pub channel_reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{field} must be 1 to {max} printable characters")]
    FieldLength { field: &'static str, max: usize },
    #[error("biller {0:?} is not known")]
    UnknownBiller(String),
    #[error("biller {0} is suspended and takes no payments")]
    BillerSuspended(String),
    #[error("biller {biller} is in a maintenance window until {until}")]
    BillerMaintenance {
        biller: String,
        until: DateTime<Utc>,
    },
    #[error("currency {given:?} does not match biller {biller}, which takes {expected}")]
    CurrencyMismatch {
        biller: String,
        given: String,
        expected: String,
    },
    #[error("{0}")]
    Account(#[from] AccountError),
    #[error("{0}")]
    Amount(#[from] PaymentAmountError),
}

fn printable(field: &'static str, s: &str, max: usize) -> Result<(), RequestError> {
    let n = s.chars().count();
    if n == 0 || n > max || s.chars().any(|c| c.is_control()) || s.trim() != s {
        return Err(RequestError::FieldLength { field, max });
    }
    Ok(())
}

/// Checks an idempotency key: 1-128 visible ASCII characters.
pub fn valid_idempotency_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_IDEMPOTENCY_KEY_CHARS
        && key.bytes().all(|b| b.is_ascii_graphic())
}

impl PaymentRequest {
    /// Parses a body against the biller it names (`lookup`), at `now`.
    pub fn parse<'b>(
        channel_id: ChannelId,
        body: PaymentRequestBody,
        lookup: impl FnOnce(&str) -> Option<&'b Biller>,
        now: DateTime<Utc>,
    ) -> Result<PaymentRequest, RequestError> {
        printable(
            "channel_reference",
            &body.channel_reference,
            MAX_REFERENCE_CHARS,
        )?;
        printable("account_number", &body.account_number, MAX_ACCOUNT_CHARS)?;
        if let Some(r) = &body.bill_reference {
            printable("bill_reference", r, MAX_REFERENCE_CHARS)?;
        }
        let biller = lookup(&body.biller_id).ok_or_else(|| {
            RequestError::UnknownBiller(body.biller_id.chars().take(64).collect())
        })?;
        match biller.availability(now) {
            Availability::Available => {}
            Availability::Suspended => {
                return Err(RequestError::BillerSuspended(biller.id.to_string()))
            }
            Availability::Maintenance { until } => {
                return Err(RequestError::BillerMaintenance {
                    biller: biller.id.to_string(),
                    until,
                })
            }
        }
        if body.currency != biller.currency.code() {
            return Err(RequestError::CurrencyMismatch {
                biller: biller.id.to_string(),
                given: body.currency.chars().take(8).collect(),
                expected: biller.currency.code().to_string(),
            });
        }
        biller.account_rule.check(&body.account_number)?;
        let amount = biller.parse_amount(&body.amount)?;
        Ok(PaymentRequest {
            channel_id,
            biller_id: biller.id.clone(),
            account_number: body.account_number,
            amount,
            bill_reference: body.bill_reference,
            channel_reference: body.channel_reference,
        })
    }

    /// SHA-256 over a canonical form of the request: two bodies that mean
    /// the same payment ("10.5" and "10.50") hash the same.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [
            self.biller_id.as_str(),
            &self.account_number,
            &self.amount.amount().to_string(),
            self.amount.currency().code(),
            self.bill_reference.as_deref().unwrap_or("\u{0}"),
            &self.channel_reference,
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    }
}

/// A payment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub channel_id: ChannelId,
    pub channel_reference: String,
    pub biller_id: BillerId,
    pub account_number: String,
    pub bill_reference: Option<String>,
    pub amount: Money,
    pub status: PaymentStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The route it was (last) sent through, once dispatched.
    pub connector_id: Option<String>,
    /// The biller's reference and its credit time, once confirmed.
    pub biller_reference: Option<String>,
    pub confirmed_at: Option<DateTime<Utc>>,
}

/// Masks an account number for logs: the last four characters stay.
pub fn mask_account(account: &str) -> String {
    let n = account.chars().count();
    let keep = n.min(4);
    let mut out: String = "*".repeat(n - keep);
    out.extend(account.chars().skip(n - keep));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_table_is_explicit() {
        let id = PaymentId::new();
        let now = Utc::now();
        assert!(transition(id, Received, Submitted, "dispatch", now).is_ok());
        assert_eq!(
            transition(id, Confirmed, Rejected, "x", now),
            Err(TransitionError {
                from: Confirmed,
                to: Rejected
            })
        );
        assert!(transition(id, Unknown, Submitted, "never re-send", now).is_err());
        assert!(transition(id, Rejected, Confirmed, "final", now).is_err());
        for s in PaymentStatus::ALL {
            assert!(!s.can_move_to(s), "{s:?} to itself");
            assert!(!s.can_move_to(Received), "nothing goes back to RECEIVED");
        }
    }

    #[test]
    fn ledger_effects() {
        assert_eq!(
            PaymentStatus::ledger_effect(Submitted, Confirmed),
            LedgerEffect::PostPending
        );
        assert_eq!(
            PaymentStatus::ledger_effect(Unknown, Rejected),
            LedgerEffect::VoidPending
        );
        assert_eq!(
            PaymentStatus::ledger_effect(Received, Submitted),
            LedgerEffect::None
        );
    }

    #[test]
    fn masks_accounts() {
        assert_eq!(mask_account("1234567897"), "******7897");
        assert_eq!(mask_account("12"), "12");
    }

    #[test]
    fn idempotency_keys() {
        assert!(valid_idempotency_key("abc-123"));
        assert!(!valid_idempotency_key(""));
        assert!(!valid_idempotency_key("a b"));
        assert!(!valid_idempotency_key(&"k".repeat(129)));
    }
}
