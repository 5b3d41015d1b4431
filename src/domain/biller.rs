//! Billers: who can be paid, which account numbers and amounts they take,
//! and when they are available. Pure: no SQL, no HTTP.

use chrono::{DateTime, Utc};
use regex::Regex;
use serde::Serialize;

use super::check_digit::CheckDigit;
use super::ids::{BillerId, ConnectorId};
use super::money::{Currency, Money, MoneyError};

/// What a biller bills for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BillerKind {
    Water,
    Electricity,
    Gas,
}

impl BillerKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            BillerKind::Water => "water",
            BillerKind::Electricity => "electricity",
            BillerKind::Gas => "gas",
        }
    }
    pub fn parse(s: &str) -> Option<BillerKind> {
        match s {
            "water" => Some(BillerKind::Water),
            "electricity" => Some(BillerKind::Electricity),
            "gas" => Some(BillerKind::Gas),
            _ => None,
        }
    }
}

/// How a biller validates customer account numbers: a whole-string regex,
/// then an optional check digit.
#[derive(Debug, Clone)]
pub struct AccountRule {
    source: String,
    regex: Regex,
    pub check_digit: Option<CheckDigit>,
    pub example: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountRuleError {
    #[error("account number rule {0:?} is not a valid regular expression: {1}")]
    BadRegex(String, String),
    #[error("account number example {0:?} does not satisfy its own rule")]
    BadExample(String),
}

impl AccountRule {
    /// Compiles `pattern` anchored at both ends (whatever the file says, the
    /// whole account number must match).
    pub fn new(
        pattern: &str,
        check_digit: Option<CheckDigit>,
        example: Option<String>,
    ) -> Result<AccountRule, AccountRuleError> {
        let regex = Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| AccountRuleError::BadRegex(pattern.to_string(), e.to_string()))?;
        let rule = AccountRule {
            source: pattern.to_string(),
            regex,
            check_digit,
            example,
        };
        if let Some(ex) = &rule.example {
            if rule.check(ex).is_err() {
                return Err(AccountRuleError::BadExample(ex.clone()));
            }
        }
        Ok(rule)
    }

    /// The pattern as configured; the whole account number must match it.
    pub fn pattern(&self) -> &str {
        &self.source
    }

    pub fn check(&self, account: &str) -> Result<(), AccountError> {
        if !self.regex.is_match(account) {
            return Err(AccountError::Format);
        }
        if let Some(cd) = self.check_digit {
            if !cd.verify(account) {
                return Err(AccountError::CheckDigit(cd));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("account number does not have this biller's format")]
    Format,
    #[error("account number fails its {} check digit", .0.name())]
    CheckDigit(CheckDigit),
}

/// Which amounts a biller accepts for a bill, and the per-payment bounds.
/// `partial` and `overpay` both false means the exact amount due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmountRule {
    pub partial: bool,
    pub overpay: bool,
    pub min: Money,
    pub max: Money,
}

impl AmountRule {
    pub fn mode(&self) -> &'static str {
        match (self.partial, self.overpay) {
            (false, false) => "exact",
            (true, false) => "partial",
            (false, true) => "overpay",
            (true, true) => "any",
        }
    }

    /// Checks an amount against the biller's bounds. The amount due is the
    /// biller's to know: exact/partial/overpay against a bill are checked
    /// when the bill is known (inquiry, or the biller's own answer).
    pub fn check(&self, amount: &Money) -> Result<(), AmountError> {
        if amount.currency() != self.min.currency() {
            return Err(AmountError::Currency {
                expected: self.min.currency(),
            });
        }
        if amount.amount() < self.min.amount() {
            return Err(AmountError::BelowMin(self.min));
        }
        if amount.amount() > self.max.amount() {
            return Err(AmountError::AboveMax(self.max));
        }
        Ok(())
    }

    /// Checks an amount against a known amount due.
    pub fn check_against_due(&self, amount: &Money, due: &Money) -> Result<(), AmountError> {
        self.check(amount)?;
        let a = amount.amount();
        let d = due.amount();
        if (a < d && !self.partial) || (a > d && !self.overpay) {
            return Err(AmountError::NotAllowedForDue {
                due: *due,
                mode: self.mode(),
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("this biller takes {expected} only")]
    Currency { expected: Currency },
    #[error("amount is below this biller's minimum of {0}")]
    BelowMin(Money),
    #[error("amount is above this biller's maximum of {0}")]
    AboveMax(Money),
    #[error("amount does not fit the amount due {due} (this biller takes {mode} payments)")]
    NotAllowedForDue { due: Money, mode: &'static str },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillerStatus {
    Active,
    Suspended,
}

impl BillerStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            BillerStatus::Active => "active",
            BillerStatus::Suspended => "suspended",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Whether a biller takes payments right now (`maintenance`: until when).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Availability {
    Available,
    Suspended,
    Maintenance { until: DateTime<Utc> },
}

pub use super::cutoff::Cutoff;

#[derive(Debug, Clone)]
pub struct Biller {
    pub id: BillerId,
    pub name: String,
    pub kind: BillerKind,
    pub currency: Currency,
    pub account_rule: AccountRule,
    pub amount_rule: AmountRule,
    pub status: BillerStatus,
    pub maintenance: Option<MaintenanceWindow>,
    pub cutoff: Cutoff,
    /// Connector ids in priority order (first is tried first).
    pub routes: Vec<ConnectorId>,
    /// The route an operator switched this biller to, tried first.
    pub preferred_route: Option<ConnectorId>,
    /// Commission, file format and bank account; a biller without terms
    /// cannot be settled (closing its date is refused with a clear error).
    pub settlement: Option<super::settlement::SettlementTerms>,
    /// Reconciliation's matching tolerance in minor units of `currency`
    /// (amounts differing by no more still match). `None` from a seed file
    /// that does not set it: storing the biller keeps the tolerance it has
    /// (`recon tolerance`, default 0). Billers read from the store carry
    /// theirs.
    pub recon_tolerance_minor: Option<i64>,
}

impl Biller {
    pub fn availability(&self, now: DateTime<Utc>) -> Availability {
        if self.status == BillerStatus::Suspended {
            return Availability::Suspended;
        }
        match self.maintenance {
            Some(w) if w.start <= now && now < w.end => Availability::Maintenance { until: w.end },
            _ => Availability::Available,
        }
    }

    /// Parses an amount string in this biller's currency and checks it
    /// against its bounds.
    pub fn parse_amount(&self, text: &str) -> Result<Money, PaymentAmountError> {
        let money = Money::parse(text, self.currency)?;
        self.amount_rule.check(&money)?;
        Ok(money)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentAmountError {
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error(transparent)]
    Rule(#[from] AmountError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn rule() -> AmountRule {
        AmountRule {
            partial: true,
            overpay: false,
            min: Money::parse("1.00", Currency::CNY).unwrap(),
            max: Money::parse("5000.00", Currency::CNY).unwrap(),
        }
    }

    #[test]
    fn account_rule_is_anchored_and_checks_digits() {
        let r = AccountRule::new("[0-9]{10}", Some(CheckDigit::Luhn), None).unwrap();
        assert_eq!(r.check("1234567897"), Ok(()));
        assert_eq!(
            r.check("1234567890"),
            Err(AccountError::CheckDigit(CheckDigit::Luhn))
        );
        assert_eq!(r.check("x1234567897"), Err(AccountError::Format));
        assert_eq!(r.check("12345678970"), Err(AccountError::Format));
        // The configured pattern round-trips unchanged (it is stored as given).
        let again = AccountRule::new(r.pattern(), r.check_digit, None).unwrap();
        assert_eq!(again.pattern(), "[0-9]{10}");
        let alt = AccountRule::new("A[0-9]|B[0-9]{2}", None, None).unwrap();
        assert_eq!(
            alt.check("A1x"),
            Err(AccountError::Format),
            "alternation is anchored as a whole"
        );
        assert_eq!(alt.check("B12"), Ok(()));
        assert!(AccountRule::new("[0-9]{10}", None, Some("12".into())).is_err());
        assert!(AccountRule::new("[0-9", None, None).is_err());
    }

    #[test]
    fn amount_bounds() {
        let r = rule();
        let m = |s| Money::parse(s, Currency::CNY).unwrap();
        assert_eq!(r.check(&m("1.00")), Ok(()));
        assert_eq!(r.check(&m("5000.00")), Ok(()));
        assert!(matches!(r.check(&m("0.99")), Err(AmountError::BelowMin(_))));
        assert!(matches!(
            r.check(&m("5000.01")),
            Err(AmountError::AboveMax(_))
        ));
        assert!(r.check_against_due(&m("50.00"), &m("80.00")).is_ok());
        assert!(r.check_against_due(&m("81.00"), &m("80.00")).is_err());
        let usd = Money::parse("2", Currency::from_code("USD").unwrap()).unwrap();
        assert!(matches!(r.check(&usd), Err(AmountError::Currency { .. })));
    }

    #[test]
    fn exact_rule_takes_only_the_amount_due() {
        let r = AmountRule {
            partial: false,
            overpay: false,
            ..rule()
        };
        let m = |s| Money::parse(s, Currency::CNY).unwrap();
        assert!(r.check_against_due(&m("80.00"), &m("80.00")).is_ok());
        assert!(r.check_against_due(&m("79.99"), &m("80.00")).is_err());
        assert!(r.check_against_due(&m("80.01"), &m("80.00")).is_err());
        assert_eq!(r.mode(), "exact");
    }

    #[test]
    fn availability_follows_status_and_window() {
        let start = Utc.with_ymd_and_hms(2026, 11, 29, 1, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2026, 11, 29, 3, 0, 0).unwrap();
        let mut b = Biller {
            id: BillerId::parse("b1").unwrap(),
            name: "B".into(),
            kind: BillerKind::Water,
            currency: Currency::CNY,
            account_rule: AccountRule::new("[0-9]+", None, None).unwrap(),
            amount_rule: rule(),
            status: BillerStatus::Active,
            maintenance: Some(MaintenanceWindow { start, end }),
            cutoff: Cutoff {
                time: chrono::NaiveTime::from_hms_opt(23, 0, 0).unwrap(),
                zone: chrono_tz::Asia::Shanghai,
            },
            routes: vec![],
            preferred_route: None,
            settlement: None,
            recon_tolerance_minor: None,
        };
        assert_eq!(
            b.availability(start - chrono::Duration::seconds(1)),
            Availability::Available
        );
        assert_eq!(
            b.availability(start),
            Availability::Maintenance { until: end }
        );
        assert_eq!(b.availability(end), Availability::Available);
        b.status = BillerStatus::Suspended;
        assert_eq!(b.availability(end), Availability::Suspended);
    }
}
