//! What the benchmarks (and the demo) that load the channel API share: a
//! payment request's body, and one signed offer with its answer sorted
//! into accepted, refused (by status and problem code) or unanswered.

use std::time::Duration;

use serde_json::json;

use crate::client::SignedClient;
use crate::domain::ids::PaymentId;
use crate::domain::money::Money;

/// The body of `POST /v1/payments`; `reference` is the channel reference
/// (the benchmarks use it as the idempotency key too).
pub fn payment_body(
    biller: &str,
    account: &str,
    amount: &Money,
    reference: &str,
) -> serde_json::Value {
    json!({
        "biller_id": biller,
        "account_number": account,
        "amount": amount.amount().to_string(),
        "currency": amount.currency().code(),
        "channel_reference": reference,
    })
}

/// The answer to one offered payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 201 (or 200) with the payment's id.
    Accepted(PaymentId),
    /// Any other answer: its status and problem code (`biller_backlogged`,
    /// `rate_limited`, ...; empty when the body carried none).
    Refused { status: u16, code: String },
    /// No answer: the connection failed.
    Failed(String),
    /// No answer within the timeout.
    TimedOut(Duration),
}

impl Answer {
    /// A refusal's or failure's label for counting: "503 biller_backlogged",
    /// "transport: ...", "timeout 30s".
    pub fn label(&self) -> String {
        match self {
            Answer::Accepted(_) => "accepted".into(),
            Answer::Refused { status, code } if code.is_empty() => format!("{status}"),
            Answer::Refused { status, code } => format!("{status} {code}"),
            Answer::Failed(e) => format!("transport: {e}"),
            Answer::TimedOut(t) => format!("timeout {}s", t.as_secs()),
        }
    }

    /// A 503 with this problem code.
    pub fn is_unavailable(&self, problem: &str) -> bool {
        matches!(self, Answer::Refused { status: 503, code } if code == problem)
    }
}

/// Signs and sends one payment (idempotency key `key`) and sorts the
/// answer.
pub async fn offer(
    client: &SignedClient,
    key: &str,
    body: &serde_json::Value,
    timeout: Duration,
) -> Answer {
    match tokio::time::timeout(timeout, client.post_payment(key, body)).await {
        Ok(Ok(reply)) if matches!(reply.status.as_u16(), 200 | 201) => {
            match reply.json()["id"]
                .as_str()
                .and_then(|id| id.parse::<uuid::Uuid>().ok())
            {
                Some(id) => Answer::Accepted(PaymentId(id)),
                None => Answer::Refused {
                    status: reply.status.as_u16(),
                    code: "answer without a payment id".into(),
                },
            }
        }
        Ok(Ok(reply)) => Answer::Refused {
            status: reply.status.as_u16(),
            code: reply.code(),
        },
        Ok(Err(e)) => Answer::Failed(e.to_string()),
        Err(_) => Answer::TimedOut(timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Currency;

    #[test]
    fn labels_name_the_status_and_the_problem() {
        let backlogged = Answer::Refused {
            status: 503,
            code: "biller_backlogged".into(),
        };
        assert_eq!(backlogged.label(), "503 biller_backlogged");
        assert!(backlogged.is_unavailable("biller_backlogged"));
        assert!(!Answer::Refused {
            status: 503,
            code: "store_unavailable".into()
        }
        .is_unavailable("biller_backlogged"));
        assert_eq!(
            Answer::Refused {
                status: 502,
                code: String::new()
            }
            .label(),
            "502"
        );
        assert_eq!(
            Answer::TimedOut(Duration::from_secs(30)).label(),
            "timeout 30s"
        );
    }

    #[test]
    fn the_body_carries_the_amount_at_the_currency_scale() {
        let cny = Currency::from_code("CNY").unwrap();
        let amount = Money::new(rust_decimal::Decimal::new(12_340, 2), cny).unwrap();
        let body = payment_body("sh-water", "3100000011", &amount, "ref-1");
        assert_eq!(body["amount"], "123.40");
        assert_eq!(body["currency"], "CNY");
        assert_eq!(body["channel_reference"], "ref-1");
    }
}
