//! What a counterpart echoes back (our reference, account, amount, currency)
//! must be what we sent. A mismatch means we cannot tell what the biller
//! applied: the outcome is unknown, never success.

use rust_decimal::Decimal;

use crate::PayOrder;

/// The fields a counterpart echoed for a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Echo<'a> {
    pub our_reference: &'a str,
    pub account_number: &'a str,
    pub amount: Decimal,
    pub currency: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("biller echoed {field} {got:?}, but we sent {sent:?}")]
pub struct EchoMismatch {
    pub field: &'static str,
    pub sent: String,
    pub got: String,
}

/// Compares an echo with the order, field by field. Amounts compare as
/// exact decimals ("88.5" equals "88.50"; "88.499" does not).
pub fn check(order: &PayOrder, echo: &Echo<'_>) -> Result<(), EchoMismatch> {
    let fields: [(&'static str, String, String, bool); 4] = [
        (
            "our reference",
            order.our_reference.clone(),
            echo.our_reference.to_string(),
            order.our_reference == echo.our_reference,
        ),
        (
            "account number",
            order.account_number.clone(),
            echo.account_number.to_string(),
            order.account_number == echo.account_number,
        ),
        (
            "amount",
            order.amount.to_string(),
            echo.amount.to_string(),
            order.amount == echo.amount,
        ),
        (
            "currency",
            order.currency.clone(),
            echo.currency.to_string(),
            order.currency == echo.currency,
        ),
    ];
    match fields.into_iter().find(|f| !f.3) {
        Some((field, sent, got, _)) => Err(EchoMismatch { field, sent, got }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn order() -> PayOrder {
        PayOrder {
            our_reference: "p1".into(),
            biller_id: "sh-water".into(),
            account_number: "3100000011".into(),
            amount: Decimal::from_str("88.50").unwrap(),
            currency: "CNY".into(),
            bill_reference: None,
        }
    }

    fn echo(amount: &str) -> Echo<'static> {
        Echo {
            our_reference: "p1",
            account_number: "3100000011",
            amount: Decimal::from_str(amount).unwrap(),
            currency: "CNY",
        }
    }

    #[test]
    fn same_value_at_another_scale_matches() {
        assert_eq!(check(&order(), &echo("88.5")), Ok(()));
    }

    #[test]
    fn every_field_is_compared() {
        assert_eq!(check(&order(), &echo("88.49")).unwrap_err().field, "amount");
        let e = Echo {
            account_number: "3100000012",
            ..echo("88.50")
        };
        assert_eq!(check(&order(), &e).unwrap_err().field, "account number");
        let e = Echo {
            currency: "HKD",
            ..echo("88.50")
        };
        assert_eq!(check(&order(), &e).unwrap_err().field, "currency");
        let e = Echo {
            our_reference: "p2",
            ..echo("88.50")
        };
        assert_eq!(check(&order(), &e).unwrap_err().field, "our reference");
    }
}
