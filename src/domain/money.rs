//! Exact money: a decimal amount bound to an ISO 4217 currency and its
//! minor-unit scale. No floats anywhere; every rounding is named.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The largest amount billclear accepts for any single item, in major units.
/// A bound on everything: no biller accepts more, and it keeps sums of many
/// items far inside `Decimal`'s 96-bit mantissa.
pub const MAX_AMOUNT_MAJOR: i64 = 1_000_000_000_000;

/// Longest amount string accepted at the edge (digits, one point).
const MAX_AMOUNT_CHARS: usize = 32;

/// An ISO 4217 currency billclear can carry, with its minor-unit scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency {
    code: &'static str,
    scale: u32,
}

/// Supported currencies and their minor-unit exponents (ISO 4217).
const CURRENCIES: &[(&str, u32)] = &[
    ("CNY", 2),
    ("HKD", 2),
    ("USD", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("SGD", 2),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("BHD", 3),
];

impl Currency {
    pub const CNY: Currency = Currency {
        code: "CNY",
        scale: 2,
    };

    /// Looks a currency up by its ISO 4217 alphabetic code (upper case).
    pub fn from_code(code: &str) -> Result<Currency, MoneyError> {
        CURRENCIES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(code, scale)| Currency {
                code,
                scale: *scale,
            })
            .ok_or_else(|| MoneyError::UnknownCurrency(code.chars().take(8).collect()))
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Number of decimal places of the minor unit (CNY 2, JPY 0, KWD 3).
    pub fn scale(&self) -> u32 {
        self.scale
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.code())
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Currency::from_code(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.code().to_string()
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::from_code(s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("unknown or unsupported currency {0:?}; use an ISO 4217 code such as CNY")]
    UnknownCurrency(String),
    #[error("amount {0:?} is not a decimal string such as \"123.45\" (digits, at most one '.', no sign, no exponent)")]
    Malformed(String),
    #[error("amount must be greater than zero")]
    NotPositive,
    #[error("amount {amount} has more decimals than {currency} allows ({scale})")]
    TooManyDecimals {
        amount: String,
        currency: Currency,
        scale: u32,
    },
    #[error("amount {0} is larger than any payment billclear carries")]
    TooLarge(String),
    #[error("currency mismatch: {0} and {1}")]
    CurrencyMismatch(Currency, Currency),
}

/// A positive or zero amount of one currency, always at that currency's
/// scale. Constructed only through [`Money::parse`] or [`Money::new`], which
/// refuse extra decimals instead of rounding them away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// Parses a decimal string from the edge ("123.45"). Strict: ASCII
    /// digits with at most one '.', no sign, exponent, spaces or separators.
    /// Zero and negative amounts are refused: a payment moves money.
    pub fn parse(text: &str, currency: Currency) -> Result<Money, MoneyError> {
        if text.is_empty() || text.len() > MAX_AMOUNT_CHARS {
            return Err(MoneyError::Malformed(truncate(text)));
        }
        let (int, frac) = match text.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (text, None),
        };
        let digits_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits_ok(int) || frac.is_some_and(|f| !digits_ok(f)) {
            if text.starts_with('-') {
                return Err(MoneyError::NotPositive);
            }
            return Err(MoneyError::Malformed(truncate(text)));
        }
        let amount = Decimal::from_str(text).map_err(|_| MoneyError::TooLarge(truncate(text)))?;
        Money::new(amount, currency)
    }

    /// Binds an exact decimal to a currency. Refuses zero, negatives, amounts
    /// with more significant decimals than the currency's scale, and amounts
    /// over [`MAX_AMOUNT_MAJOR`]. Trailing zeros are fine ("1.50" in JPY is
    /// refused, "100.00" in JPY is 100).
    pub fn new(amount: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        if amount <= Decimal::ZERO {
            return Err(MoneyError::NotPositive);
        }
        Money::at_scale(amount, currency)
    }

    /// Like [`Money::new`] but admits zero (balances, totals).
    pub fn new_or_zero(amount: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        if amount < Decimal::ZERO {
            return Err(MoneyError::NotPositive);
        }
        Money::at_scale(amount, currency)
    }

    fn at_scale(amount: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        if amount > Decimal::from(MAX_AMOUNT_MAJOR) {
            return Err(MoneyError::TooLarge(amount.to_string()));
        }
        let normalized = amount.normalize();
        if normalized.scale() > currency.scale() {
            return Err(MoneyError::TooManyDecimals {
                amount: amount.to_string(),
                currency,
                scale: currency.scale(),
            });
        }
        let mut exact = normalized;
        exact.rescale(currency.scale());
        debug_assert_eq!(exact, amount);
        Ok(Money {
            amount: exact,
            currency,
        })
    }

    pub fn zero(currency: Currency) -> Money {
        let mut amount = Decimal::ZERO;
        amount.rescale(currency.scale());
        Money { amount, currency }
    }

    pub fn amount(&self) -> Decimal {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The amount in minor units (fen for CNY). Exact: the scale is fixed.
    pub fn minor_units(&self) -> i128 {
        self.amount.mantissa()
    }

    pub fn checked_add(&self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        let sum = self
            .amount
            .checked_add(other.amount)
            .ok_or_else(|| MoneyError::TooLarge(self.amount.to_string()))?;
        Ok(Money {
            amount: sum,
            currency: self.currency,
        })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// An amount of the currency `code` as answers show it: at exactly the
/// currency's scale, so that a zero total in CNY reads "0.00" like any other
/// amount ("0" would be a JPY amount). An amount with more significant
/// decimals than the scale (refused before it is stored) keeps them: money
/// is never rounded here. A code billclear does not carry gets scale 2.
pub fn at_currency_scale(amount: Decimal, code: &str) -> String {
    let scale = Currency::from_code(code.trim()).map_or(2, |c| c.scale());
    let mut v = amount.normalize();
    if v.scale() < scale {
        v.rescale(scale);
    }
    if v.is_zero() {
        v.set_sign_positive(true);
    }
    v.to_string()
}

fn truncate(s: &str) -> String {
    s.chars().take(MAX_AMOUNT_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cny(s: &str) -> Result<Money, MoneyError> {
        Money::parse(s, Currency::CNY)
    }

    #[test]
    fn amounts_are_shown_at_the_currency_scale() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(at_currency_scale(Decimal::ZERO, "CNY"), "0.00");
        assert_eq!(at_currency_scale(d("-0"), "CNY"), "0.00");
        assert_eq!(at_currency_scale(Decimal::ZERO, "JPY"), "0");
        assert_eq!(at_currency_scale(Decimal::ZERO, "KWD"), "0.000");
        assert_eq!(at_currency_scale(d("12.5"), "CNY"), "12.50");
        assert_eq!(at_currency_scale(d("12.5000"), "CNY"), "12.50");
        assert_eq!(at_currency_scale(d("-3.1"), "CNY"), "-3.10");
        assert_eq!(at_currency_scale(d("1200"), "JPY"), "1200");
        assert_eq!(at_currency_scale(d("1.005"), "CNY"), "1.005");
        assert_eq!(at_currency_scale(d("7"), "XXX"), "7.00");
    }

    #[test]
    fn parses_amounts_at_the_currency_scale() {
        assert_eq!(cny("123.45").unwrap().amount().to_string(), "123.45");
        assert_eq!(cny("123").unwrap().amount().to_string(), "123.00");
        assert_eq!(cny("0.01").unwrap().minor_units(), 1);
        assert_eq!(cny("1.5").unwrap().amount().to_string(), "1.50");
        let jpy = Currency::from_code("JPY").unwrap();
        assert_eq!(
            Money::parse("100", jpy).unwrap().amount().to_string(),
            "100"
        );
        assert_eq!(Money::parse("100.00", jpy).unwrap().minor_units(), 100);
        let kwd = Currency::from_code("KWD").unwrap();
        assert_eq!(Money::parse("1.234", kwd).unwrap().minor_units(), 1234);
    }

    #[test]
    fn refuses_zero_negative_and_extra_decimals() {
        assert_eq!(cny("0"), Err(MoneyError::NotPositive));
        assert_eq!(cny("0.00"), Err(MoneyError::NotPositive));
        assert_eq!(cny("-1.00"), Err(MoneyError::NotPositive));
        assert!(matches!(
            cny("1.001"),
            Err(MoneyError::TooManyDecimals { scale: 2, .. })
        ));
        let jpy = Currency::from_code("JPY").unwrap();
        assert!(matches!(
            Money::parse("1.5", jpy),
            Err(MoneyError::TooManyDecimals { scale: 0, .. })
        ));
    }

    #[test]
    fn refuses_malformed_strings() {
        for bad in [
            "", " 1", "1 ", "+1", "1e3", "1.", ".5", "1,000.00", "1.2.3", "NaN", "0x10", "١٢",
        ] {
            assert!(
                matches!(cny(bad), Err(MoneyError::Malformed(_))),
                "{bad:?} should be malformed"
            );
        }
        assert!(matches!(
            cny("10000000000000000000000000000000"),
            Err(MoneyError::TooLarge(_))
        ));
        assert!(matches!(
            cny("1000000000000.01"),
            Err(MoneyError::TooLarge(_))
        ));
    }

    #[test]
    fn currencies_are_iso_codes_only() {
        assert!(Currency::from_code("cny").is_err());
        assert!(Currency::from_code("XXX").is_err());
        assert_eq!(Currency::from_code("CNY").unwrap(), Currency::CNY);
    }

    #[test]
    fn addition_is_exact_and_currency_checked() {
        let a = cny("0.10").unwrap();
        let b = cny("0.20").unwrap();
        assert_eq!(a.checked_add(b).unwrap(), cny("0.30").unwrap());
        let usd = Money::parse("1", Currency::from_code("USD").unwrap()).unwrap();
        assert!(matches!(
            a.checked_add(usd),
            Err(MoneyError::CurrencyMismatch(..))
        ));
    }
}
