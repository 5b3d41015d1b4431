//! Settlement rules: business dates and cut-offs, commission, what a batch
//! holds and its totals. Pure: no SQL, no AMQP, no files.
//!
//! A biller's business date D closes at its cut-off on D in its own time
//! zone. The batch of (biller, D) holds every CONFIRMED payment not settled
//! yet whose confirmation (by our clock: when it committed here) is at or
//! before that instant: a payment
//! confirmed exactly at the cut-off belongs to D, one a microsecond later to
//! the next date. Stragglers (an UNKNOWN payment resolved after D closed)
//! join the next batch that closes.

use std::collections::HashMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;
use uuid::Uuid;

use super::ids::BillerId;
use super::ledger::{Journal, LedgerError};
use super::money::{Currency, Money, MoneyError};

/// How a computed commission is brought to the currency's scale. Named in
/// each biller's terms and printed on every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rounding {
    /// Nearest; a half goes away from zero (0.125 -> 0.13).
    HalfUp,
    /// Nearest; a half goes to the even digit, "banker's rounding"
    /// (0.125 -> 0.12, 0.135 -> 0.14).
    HalfEven,
    /// Toward zero: truncation, in the biller's favour (0.129 -> 0.12).
    Down,
    /// Away from zero, in our favour (0.121 -> 0.13).
    Up,
}

impl Rounding {
    pub const ALL: [Rounding; 4] = [
        Rounding::HalfUp,
        Rounding::HalfEven,
        Rounding::Down,
        Rounding::Up,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Rounding::HalfUp => "half-up",
            Rounding::HalfEven => "half-even",
            Rounding::Down => "down",
            Rounding::Up => "up",
        }
    }

    pub fn parse(s: &str) -> Option<Rounding> {
        Rounding::ALL.into_iter().find(|r| r.as_str() == s)
    }

    fn strategy(&self) -> RoundingStrategy {
        match self {
            Rounding::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            Rounding::HalfEven => RoundingStrategy::MidpointNearestEven,
            Rounding::Down => RoundingStrategy::ToZero,
            Rounding::Up => RoundingStrategy::AwayFromZero,
        }
    }

    /// `value` at `scale` decimal places by this rule.
    pub fn apply(&self, value: Decimal, scale: u32) -> Decimal {
        let mut v = value.round_dp_with_strategy(scale, self.strategy());
        v.rescale(scale);
        v
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TermsError {
    #[error("commission percent must be between 0 and 100, got {0}")]
    Percent(Decimal),
    #[error(
        "commission {what} must be zero or more with at most {scale} decimal places, got {value}"
    )]
    Amount {
        what: &'static str,
        value: Decimal,
        scale: u32,
    },
    #[error("commission min {min} is greater than max {max}")]
    MinOverMax { min: Decimal, max: Decimal },
    #[error("unknown rounding {0:?}: use half-up, half-even, down or up")]
    Rounding(String),
    #[error("unknown settlement file format {0:?}: use csv or fixed-width")]
    Format(String),
    #[error("bank account: {0}")]
    Bank(String),
}

/// What a biller pays us per settled payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommissionRule {
    /// `percent` of the amount (0.30 means 0.30 %), rounded to the currency's
    /// scale by `rounding`, then held within [min, max] where given.
    Percent {
        percent: Decimal,
        min: Option<Decimal>,
        max: Option<Decimal>,
        rounding: Rounding,
    },
    /// The same fee for every payment.
    Fixed { per_item: Decimal },
}

impl CommissionRule {
    /// Checks the rule for `currency` (amounts at its scale, min <= max).
    pub fn check(&self, currency: Currency) -> Result<(), TermsError> {
        let scale = currency.scale();
        let amount_ok = |what: &'static str, v: Decimal| {
            if v.is_sign_negative() || v.normalize().scale() > scale {
                Err(TermsError::Amount {
                    what,
                    value: v,
                    scale,
                })
            } else {
                Ok(())
            }
        };
        match self {
            CommissionRule::Percent {
                percent, min, max, ..
            } => {
                if percent.is_sign_negative() || *percent > Decimal::ONE_HUNDRED {
                    return Err(TermsError::Percent(*percent));
                }
                if let Some(m) = min {
                    amount_ok("min", *m)?;
                }
                if let Some(m) = max {
                    amount_ok("max", *m)?;
                }
                if let (Some(lo), Some(hi)) = (min, max) {
                    if lo > hi {
                        return Err(TermsError::MinOverMax { min: *lo, max: *hi });
                    }
                }
                Ok(())
            }
            CommissionRule::Fixed { per_item } => amount_ok("fixed fee", *per_item),
        }
    }

    /// The commission on one payment of `amount`. Never more than the
    /// payment itself: a fee larger than a small payment takes all of it
    /// and no more, so no item settles at a negative net.
    pub fn commission(&self, amount: Money) -> Money {
        let scale = amount.currency().scale();
        let raw = match self {
            CommissionRule::Percent {
                percent,
                min,
                max,
                rounding,
            } => {
                let mut c =
                    rounding.apply(amount.amount() * *percent / Decimal::ONE_HUNDRED, scale);
                if let Some(lo) = min {
                    c = c.max(*lo);
                }
                if let Some(hi) = max {
                    c = c.min(*hi);
                }
                c
            }
            CommissionRule::Fixed { per_item } => *per_item,
        };
        let mut c = raw.min(amount.amount());
        c.rescale(scale);
        Money::new_or_zero(c, amount.currency()).expect("commission is within the payment")
    }

    /// One line for files, logs and the batch row:
    /// `0.30% min 0.50 max 8.00, half-up` or `fixed 0.80 per payment`.
    pub fn describe(&self) -> String {
        match self {
            CommissionRule::Percent {
                percent,
                min,
                max,
                rounding,
            } => {
                let mut s = format!("{}%", percent.normalize());
                if let Some(m) = min {
                    s.push_str(&format!(" min {m}"));
                }
                if let Some(m) = max {
                    s.push_str(&format!(" max {m}"));
                }
                s.push_str(&format!(", rounded {}", rounding.as_str()));
                s
            }
            CommissionRule::Fixed { per_item } => format!("fixed {per_item} per payment"),
        }
    }
}

/// The layout of a biller's settlement file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FileFormat {
    /// CSV with a header line and a trailer line carrying count and total.
    Csv,
    /// Fixed-width records: a header, one detail record per line, a trailer
    /// with the same control totals.
    FixedWidth,
}

impl FileFormat {
    pub fn as_str(&self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::FixedWidth => "fixed-width",
        }
    }
    pub fn parse(s: &str) -> Result<FileFormat, TermsError> {
        match s {
            "csv" => Ok(FileFormat::Csv),
            "fixed-width" => Ok(FileFormat::FixedWidth),
            other => Err(TermsError::Format(other.to_string())),
        }
    }
}

/// A bank account as credit-transfer instructions name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankAccount {
    /// The account holder.
    pub name: String,
    /// Account number (or IBAN).
    pub account: String,
    /// The bank's BIC, 8 or 11 characters.
    pub bic: String,
}

impl BankAccount {
    pub fn check(&self) -> Result<(), TermsError> {
        let name_ok = !self.name.trim().is_empty() && self.name.chars().count() <= 140;
        let account_ok = (1..=34).contains(&self.account.len())
            && self.account.chars().all(|c| c.is_ascii_alphanumeric());
        let bic_ok = matches!(self.bic.len(), 8 | 11)
            && self
                .bic
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && self.bic[..6].chars().all(|c| c.is_ascii_uppercase());
        match (name_ok, account_ok, bic_ok) {
            (false, _, _) => Err(TermsError::Bank("name must be 1 to 140 characters".into())),
            (_, false, _) => Err(TermsError::Bank(format!(
                "account {:?} must be 1 to 34 letters and digits",
                self.account
            ))),
            (_, _, false) => Err(TermsError::Bank(format!(
                "BIC {:?} must be 8 or 11 characters: 4 letters (bank), 2 letters (country), 2 and optionally 3 letters or digits",
                self.bic
            ))),
            _ => Ok(()),
        }
    }
}

/// How a biller is settled: its commission, its file format and the
/// account we pay its net amount into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementTerms {
    pub commission: CommissionRule,
    pub format: FileFormat,
    pub bank: BankAccount,
}

impl SettlementTerms {
    pub fn check(&self, currency: Currency) -> Result<(), TermsError> {
        self.commission.check(currency)?;
        self.bank.check()
    }
}

/// Totals of a batch, accumulated item by item. All amounts are exact at
/// the currency's scale; net = gross - commission - returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BatchTotals {
    pub count: u64,
    pub gross: Decimal,
    pub commission: Decimal,
    pub returns_count: u64,
    pub returns: Decimal,
}

impl BatchTotals {
    pub fn new() -> BatchTotals {
        BatchTotals {
            count: 0,
            gross: Decimal::ZERO,
            commission: Decimal::ZERO,
            returns_count: 0,
            returns: Decimal::ZERO,
        }
    }

    /// Adds a settled payment and its commission.
    pub fn add_payment(&mut self, amount: Decimal, commission: Decimal) {
        self.count += 1;
        self.gross += amount;
        self.commission += commission;
    }

    /// Whether a return of `amount` can be recovered from this batch
    /// without taking its net below zero.
    pub fn can_recover(&self, amount: Decimal) -> bool {
        self.net() - amount >= Decimal::ZERO
    }

    /// Adds a return recovered from this batch.
    pub fn add_return(&mut self, amount: Decimal) {
        self.returns_count += 1;
        self.returns += amount;
    }

    /// What we pay the biller.
    pub fn net(&self) -> Decimal {
        self.gross - self.commission - self.returns
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0 && self.returns_count == 0
    }
}

impl Default for BatchTotals {
    fn default() -> Self {
        BatchTotals::new()
    }
}

/// One item of a planned batch: which payment (or return), through which
/// channel (an index into [`BatchPlan::channels`]), its amount and the
/// commission on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedItem {
    pub payment_id: Uuid,
    pub is_return: bool,
    pub channel: u16,
    pub amount: Decimal,
    pub commission: Decimal,
}

/// Why a batch cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("payment amount {amount} in {currency}: {reason}")]
    Amount {
        amount: Decimal,
        currency: Currency,
        reason: MoneyError,
    },
    #[error("more than 65535 channels in one batch")]
    Channels,
    #[error("batch total {total} in {currency}: {reason}")]
    Total {
        total: Decimal,
        currency: Currency,
        reason: MoneyError,
    },
    #[error("{0}")]
    Journal(#[from] LedgerError),
}

/// What closing a batch settles, decided item by item as the store reads
/// them: every CONFIRMED payment offered (with its commission by the
/// biller's rule), then the returns recovered (oldest first, as long as the
/// net stays at zero or more), each channel named once; and the totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchPlan {
    /// In the order written (sequence numbers from 1).
    pub items: Vec<PlannedItem>,
    /// The channels the items name, by index.
    pub channels: Vec<String>,
    channel_index: HashMap<String, u16>,
    pub totals: BatchTotals,
}

impl BatchPlan {
    pub fn new() -> BatchPlan {
        BatchPlan::default()
    }

    /// Adds a CONFIRMED payment of `amount` through `channel`, its
    /// commission by `rule`.
    pub fn add_payment(
        &mut self,
        rule: &CommissionRule,
        currency: Currency,
        payment_id: Uuid,
        channel: &str,
        amount: Decimal,
    ) -> Result<(), PlanError> {
        let money = Money::new(amount, currency).map_err(|reason| PlanError::Amount {
            amount,
            currency,
            reason,
        })?;
        let commission = rule.commission(money).amount();
        self.totals.add_payment(amount, commission);
        let channel = self.channel(channel)?;
        self.items.push(PlannedItem {
            payment_id,
            is_return: false,
            channel,
            amount,
            commission,
        });
        Ok(())
    }

    /// Offers a return of `amount` to recover: taken (true) when the net
    /// stays at zero or more, else left for a later batch (false).
    pub fn offer_return(
        &mut self,
        payment_id: Uuid,
        channel: &str,
        amount: Decimal,
    ) -> Result<bool, PlanError> {
        if !self.totals.can_recover(amount) {
            return Ok(false);
        }
        self.totals.add_return(amount);
        let channel = self.channel(channel)?;
        self.items.push(PlannedItem {
            payment_id,
            is_return: true,
            channel,
            amount,
            commission: Decimal::ZERO,
        });
        Ok(true)
    }

    /// The index of `channel` among the plan's channels, added when new.
    fn channel(&mut self, channel: &str) -> Result<u16, PlanError> {
        if let Some(i) = self.channel_index.get(channel) {
            return Ok(*i);
        }
        let i = u16::try_from(self.channels.len()).map_err(|_| PlanError::Channels)?;
        self.channels.push(channel.to_string());
        self.channel_index.insert(channel.to_string(), i);
        Ok(i)
    }

    /// The channel an item names.
    pub fn channel_of(&self, item: &PlannedItem) -> &str {
        &self.channels[item.channel as usize]
    }

    /// Whether closing settles payments (a batch of returns only, or of
    /// nothing, settles none).
    pub fn settles_payments(&self) -> bool {
        self.totals.count > 0
    }

    /// The batch's journal: the biller's payable (gross less returns)
    /// debited, our commission and the net to pay out credited. None when
    /// every amount is zero.
    pub fn journal(
        &self,
        batch_id: Uuid,
        biller: &BillerId,
        business_date: NaiveDate,
        currency: Currency,
    ) -> Result<Option<Journal>, PlanError> {
        let t = &self.totals;
        let money = |total: Decimal| {
            Money::new_or_zero(total, currency).map_err(|reason| PlanError::Total {
                total,
                currency,
                reason,
            })
        };
        Ok(Journal::settlement(
            batch_id,
            biller,
            money(t.gross - t.returns)?,
            money(t.commission)?,
            money(t.net())?,
            format!(
                "settlement {biller} {business_date} batch {batch_id}: {} payments, {} returns",
                t.count, t.returns_count
            ),
        )?)
    }
}

/// The reason on each payment's CONFIRMED -> SETTLED event. The event is
/// derived from the payment's batch item where histories are read (the
/// view `payment_history` writes the same text; a test keeps them equal).
pub fn settled_reason(batch_id: Uuid, biller: &BillerId, business_date: NaiveDate) -> String {
    format!("settled in batch {batch_id} ({biller} {business_date})")
}

/// Whether a batch's net is paid out: only a net greater than zero gets a
/// pain.001 credit transfer (a batch of nothing, or whose returns took
/// all of it, asks the bank for nothing).
pub fn pays_out(net: Decimal) -> bool {
    net > Decimal::ZERO
}

/// The execution date a batch's pain.001 requests (`ReqdExctnDt`): the day
/// after the business date, or the day the batch was closed (UTC) when that
/// is later (a date closed late, catching up), never a date already past
/// when the instruction was made. None: the business date has no next day.
pub fn requested_execution_date(
    business_date: NaiveDate,
    created_at: DateTime<Utc>,
) -> Option<NaiveDate> {
    Some(
        business_date
            .checked_add_days(Days::new(1))?
            .max(created_at.date_naive()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::cutoff::Cutoff;
    use chrono::NaiveTime;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }
    fn cny(s: &str) -> Money {
        Money::parse(s, Currency::CNY).unwrap()
    }
    fn pct(p: &str, min: Option<&str>, max: Option<&str>, r: Rounding) -> CommissionRule {
        CommissionRule::Percent {
            percent: d(p),
            min: min.map(d),
            max: max.map(d),
            rounding: r,
        }
    }
    fn shanghai(t: &str) -> Cutoff {
        Cutoff {
            time: NaiveTime::parse_from_str(t, "%H:%M").unwrap(),
            zone: chrono_tz::Asia::Shanghai,
        }
    }
    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn each_rounding_rule_on_halves_and_beyond() {
        // 0.125 (a half at the third place), 0.135, 0.121, 0.129, -0.125
        let cases = [
            ("0.125", ["0.13", "0.12", "0.12", "0.13"]),
            ("0.135", ["0.14", "0.14", "0.13", "0.14"]),
            ("0.121", ["0.12", "0.12", "0.12", "0.13"]),
            ("0.129", ["0.13", "0.13", "0.12", "0.13"]),
            ("-0.125", ["-0.13", "-0.12", "-0.12", "-0.13"]),
            ("7", ["7.00", "7.00", "7.00", "7.00"]),
        ];
        for (value, want) in cases {
            for (rule, w) in Rounding::ALL.iter().zip(want) {
                let got = rule.apply(d(value), 2);
                assert_eq!(got.to_string(), w, "{value} {}", rule.as_str());
            }
        }
        for r in Rounding::ALL {
            assert_eq!(Rounding::parse(r.as_str()), Some(r));
        }
        assert_eq!(Rounding::parse("bankers"), None);
    }

    #[test]
    fn percent_commission_with_min_and_max() {
        let rule = pct("0.30", Some("0.50"), Some("8.00"), Rounding::HalfUp);
        // 0.30% of 100.00 = 0.30 -> raised to the minimum 0.50
        assert_eq!(rule.commission(cny("100.00")).amount(), d("0.50"));
        // 0.30% of 1000.00 = 3.00
        assert_eq!(rule.commission(cny("1000.00")).amount(), d("3.00"));
        // 0.30% of 5000.00 = 15.00 -> held at the maximum 8.00
        assert_eq!(rule.commission(cny("5000.00")).amount(), d("8.00"));
        // exactly at the edges
        assert_eq!(rule.commission(cny("166.67")).amount(), d("0.50")); // 0.500010
        assert_eq!(rule.commission(cny("2666.67")).amount(), d("8.00")); // 8.00001
                                                                         // 0.30% of 250.05 = 0.75015 -> 0.75
        assert_eq!(rule.commission(cny("250.05")).amount(), d("0.75"));
        // the minimum never exceeds the payment
        assert_eq!(rule.commission(cny("0.40")).amount(), d("0.40"));
        assert_eq!(rule.commission(cny("0.40")).amount().scale(), 2);
    }

    #[test]
    fn percent_commission_rounds_by_the_named_rule() {
        // 0.25% of 5.00 = 0.0125
        let at = |r| pct("0.25", None, None, r).commission(cny("5.00")).amount();
        assert_eq!(at(Rounding::HalfUp), d("0.01"));
        assert_eq!(at(Rounding::Up), d("0.02"));
        // 0.5% of 1.25 = 0.00625 -> half-even 0.01, down 0.00
        let at = |r| pct("0.5", None, None, r).commission(cny("1.25")).amount();
        assert_eq!(at(Rounding::HalfEven), d("0.01"));
        assert_eq!(at(Rounding::Down), d("0.00"));
        // 1% of 12.50 = 0.125: half-up 0.13, half-even 0.12
        let at = |r| pct("1", None, None, r).commission(cny("12.50")).amount();
        assert_eq!(at(Rounding::HalfUp), d("0.13"));
        assert_eq!(at(Rounding::HalfEven), d("0.12"));
        assert_eq!(at(Rounding::Down), d("0.12"));
        // zero percent is a valid rule
        assert_eq!(
            pct("0", None, None, Rounding::HalfUp)
                .commission(cny("99.99"))
                .amount(),
            d("0.00")
        );
    }

    #[test]
    fn fixed_commission_is_capped_at_the_payment() {
        let rule = CommissionRule::Fixed {
            per_item: d("0.80"),
        };
        assert_eq!(rule.commission(cny("10.00")).amount(), d("0.80"));
        assert_eq!(rule.commission(cny("0.80")).amount(), d("0.80"));
        assert_eq!(rule.commission(cny("0.50")).amount(), d("0.50"));
        assert_eq!(rule.describe(), "fixed 0.80 per payment");
    }

    #[test]
    fn terms_are_checked() {
        let c = Currency::CNY;
        assert!(pct("0.3", Some("0.5"), Some("8"), Rounding::Down)
            .check(c)
            .is_ok());
        assert_eq!(
            pct("101", None, None, Rounding::Down).check(c),
            Err(TermsError::Percent(d("101")))
        );
        assert!(pct("-1", None, None, Rounding::Down).check(c).is_err());
        assert!(matches!(
            pct("1", Some("9"), Some("8"), Rounding::Down).check(c),
            Err(TermsError::MinOverMax { .. })
        ));
        assert!(pct("1", Some("0.001"), None, Rounding::Down)
            .check(c)
            .is_err());
        assert!(CommissionRule::Fixed {
            per_item: d("-0.01")
        }
        .check(c)
        .is_err());
        assert!(CommissionRule::Fixed {
            per_item: d("0.10")
        }
        .check(c)
        .is_ok());
        assert_eq!(
            pct("0.30", Some("0.50"), Some("8.00"), Rounding::HalfUp).describe(),
            "0.3% min 0.50 max 8.00, rounded half-up"
        );
        let bank = |bic: &str| BankAccount {
            name: "Shanghai Water".into(),
            account: "6222000011112222".into(),
            bic: bic.into(),
        };
        assert!(bank("ICBKCNBJSHI").check().is_ok());
        assert!(bank("ICBKCNBJ").check().is_ok());
        assert!(bank("ICBKCNB").check().is_err());
        assert!(bank("icbkcnbjshi").check().is_err());
        assert!(bank("1CBKCNBJ").check().is_err());
        assert_eq!(FileFormat::parse("csv"), Ok(FileFormat::Csv));
        assert_eq!(FileFormat::parse("fixed-width"), Ok(FileFormat::FixedWidth));
        assert!(FileFormat::parse("xlsx").is_err());
    }

    #[test]
    fn cutoff_boundaries_in_shanghai() {
        let c = shanghai("23:00");
        let date = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        // 23:00 Shanghai is 15:00 UTC
        assert_eq!(c.instant(date), utc("2026-11-29T15:00:00Z"));
        assert_eq!(c.business_date_of(utc("2026-11-29T15:00:00Z")), date);
        assert_eq!(
            c.business_date_of(utc("2026-11-29T15:00:00.000001Z")),
            date.succ_opt().unwrap()
        );
        // 00:30 Shanghai on the 30th belongs to the 30th
        assert_eq!(
            c.business_date_of(utc("2026-11-29T16:30:00Z")),
            date.succ_opt().unwrap()
        );
        // 14:59 UTC on the 29th is 22:59 in Shanghai: the 29th
        assert_eq!(c.business_date_of(utc("2026-11-29T14:59:59Z")), date);
        // early morning UTC on the 29th is already the afternoon in Shanghai
        assert_eq!(c.business_date_of(utc("2026-11-29T01:00:00Z")), date);
        // last closed: just before and just after the cut-off
        assert_eq!(
            c.last_closed(utc("2026-11-29T14:59:59Z")),
            (utc("2026-11-28T15:00:00Z"), date.pred_opt().unwrap())
        );
        assert_eq!(
            c.last_closed(utc("2026-11-29T15:00:00Z")),
            (utc("2026-11-29T15:00:00Z"), date)
        );
        assert_eq!(
            c.closed_dates(utc("2026-11-29T15:00:00Z"), 2),
            vec![
                date,
                date.pred_opt().unwrap(),
                date.pred_opt().unwrap().pred_opt().unwrap()
            ]
        );
        // an early cut-off (17:00) for the co-op
        let coop = shanghai("17:00");
        assert_eq!(coop.instant(date), utc("2026-11-29T09:00:00Z"));
    }

    #[test]
    fn cutoff_in_a_zone_with_daylight_saving() {
        // New York springs forward on 2026-03-08 at 02:00 -> 03:00.
        let ny = Cutoff {
            time: NaiveTime::from_hms_opt(2, 30, 0).unwrap(),
            zone: chrono_tz::America::New_York,
        };
        let spring = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        // 02:30 does not exist that day: the date closes at 03:00 EDT = 07:00 UTC
        assert_eq!(ny.instant(spring), utc("2026-03-08T07:00:00Z"));
        // it falls back on 2026-11-01 (01:00-02:00 twice): 01:30 is taken the first time
        let ny = Cutoff {
            time: NaiveTime::from_hms_opt(1, 30, 0).unwrap(),
            zone: chrono_tz::America::New_York,
        };
        let fall = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        assert_eq!(ny.instant(fall), utc("2026-11-01T05:30:00Z"));
        assert_eq!(ny.business_date_of(utc("2026-11-01T05:30:00Z")), fall);
        assert_eq!(
            ny.business_date_of(utc("2026-11-01T06:30:00Z")),
            fall.succ_opt().unwrap()
        );
    }

    #[test]
    fn batch_totals_and_returns() {
        let mut t = BatchTotals::new();
        assert!(t.is_empty());
        t.add_payment(d("100.00"), d("0.50"));
        t.add_payment(d("20.00"), d("0.50"));
        assert_eq!(t.net(), d("119.00"));
        assert!(t.can_recover(d("119.00")));
        assert!(!t.can_recover(d("119.01")));
        t.add_return(d("19.00"));
        assert_eq!((t.count, t.returns_count), (2, 1));
        assert_eq!(t.net(), d("100.00"));
        assert_eq!(t.gross - t.commission - t.returns, t.net());
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn a_plan_takes_every_payment_with_its_commission_and_names_each_channel_once() {
        let rule = pct("1", Some("0.50"), None, Rounding::HalfUp);
        let mut plan = BatchPlan::new();
        plan.add_payment(&rule, Currency::CNY, id(1), "ch-a", d("100.00"))
            .unwrap();
        plan.add_payment(&rule, Currency::CNY, id(2), "ch-b", d("20.00"))
            .unwrap();
        plan.add_payment(&rule, Currency::CNY, id(3), "ch-a", d("12.50"))
            .unwrap();
        assert_eq!(plan.channels, vec!["ch-a".to_string(), "ch-b".to_string()]);
        let got: Vec<_> = plan
            .items
            .iter()
            .map(|i| {
                (
                    i.payment_id,
                    i.is_return,
                    plan.channel_of(i),
                    i.amount,
                    i.commission,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (id(1), false, "ch-a", d("100.00"), d("1.00")),
                (id(2), false, "ch-b", d("20.00"), d("0.50")),
                (id(3), false, "ch-a", d("12.50"), d("0.50")),
            ]
        );
        assert_eq!(plan.totals.count, 3);
        assert_eq!(plan.totals.gross, d("132.50"));
        assert_eq!(plan.totals.commission, d("2.00"));
        assert_eq!(plan.totals.net(), d("130.50"));
        assert!(plan.settles_payments());
    }

    #[test]
    fn a_plan_recovers_returns_in_the_order_offered_while_the_net_stays_positive() {
        let rule = CommissionRule::Fixed {
            per_item: d("1.00"),
        };
        let mut plan = BatchPlan::new();
        plan.add_payment(&rule, Currency::CNY, id(1), "ch-a", d("51.00"))
            .unwrap();
        // net 50.00: 30.00 fits, 25.00 then does not (it waits), 20.00 does.
        assert_eq!(plan.offer_return(id(7), "ch-r", d("30.00")), Ok(true));
        assert_eq!(plan.offer_return(id(8), "ch-a", d("25.00")), Ok(false));
        assert_eq!(plan.offer_return(id(9), "ch-a", d("20.00")), Ok(true));
        // exactly zero left: nothing more, not even a cent
        assert_eq!(plan.offer_return(id(10), "ch-a", d("0.01")), Ok(false));
        assert_eq!(plan.totals.net(), Decimal::ZERO);
        assert_eq!(
            (plan.totals.returns_count, plan.totals.returns),
            (2, d("50.00"))
        );
        let got: Vec<_> = plan
            .items
            .iter()
            .map(|i| (i.payment_id, i.is_return, plan.channel_of(i), i.commission))
            .collect();
        assert_eq!(
            got,
            vec![
                (id(1), false, "ch-a", d("1.00")),
                (id(7), true, "ch-r", Decimal::ZERO),
                (id(9), true, "ch-a", Decimal::ZERO),
            ]
        );
        // A batch of returns only moves no payment.
        let mut only = BatchPlan::new();
        assert_eq!(only.offer_return(id(1), "ch-a", d("0.01")), Ok(false));
        assert!(!only.settles_payments());
        assert!(only.items.is_empty() && only.totals.is_empty());
    }

    #[test]
    fn a_plan_refuses_an_amount_its_currency_cannot_carry_and_a_65537th_channel() {
        let rule = CommissionRule::Fixed {
            per_item: d("0.10"),
        };
        let mut plan = BatchPlan::new();
        let e = plan
            .add_payment(&rule, Currency::CNY, id(1), "ch-a", d("1.005"))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "payment amount 1.005 in CNY: amount 1.005 has more decimals than CNY allows (2)"
        );
        assert!(plan.items.is_empty() && plan.totals.is_empty());

        let mut plan = BatchPlan::new();
        for n in 0..=u16::MAX as u128 {
            plan.add_payment(&rule, Currency::CNY, id(n), &format!("ch-{n}"), d("1.00"))
                .unwrap();
        }
        assert_eq!(plan.channels.len(), 65_536);
        assert_eq!(
            plan.add_payment(&rule, Currency::CNY, id(70_000), "ch-new", d("1.00")),
            Err(PlanError::Channels)
        );
        assert_eq!(
            plan.offer_return(id(70_001), "ch-new-too", d("0.01"))
                .unwrap_err()
                .to_string(),
            "more than 65535 channels in one batch"
        );
        // A known channel is still fine.
        assert_eq!(plan.offer_return(id(70_002), "ch-7", d("0.01")), Ok(true));
    }

    #[test]
    fn a_plans_journal_debits_the_payable_and_credits_commission_and_net() {
        let biller = BillerId::parse("sh-water").unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let batch = id(42);
        let rule = CommissionRule::Fixed {
            per_item: d("0.80"),
        };
        let mut plan = BatchPlan::new();
        plan.add_payment(&rule, Currency::CNY, id(1), "ch-a", d("100.00"))
            .unwrap();
        plan.offer_return(id(2), "ch-a", d("10.00")).unwrap();
        let j = plan
            .journal(batch, &biller, date, Currency::CNY)
            .unwrap()
            .expect("a journal");
        assert_eq!(j.id, batch);
        assert_eq!(
            j.description,
            format!("settlement sh-water 2026-11-20 batch {batch}: 1 payments, 1 returns")
        );
        let legs: Vec<_> = j
            .entries()
            .iter()
            .map(|e| (e.account.as_str(), e.amount.amount()))
            .collect();
        assert_eq!(
            legs,
            vec![
                ("biller:sh-water:payable:CNY", d("90.00")),
                ("revenue:commission:CNY", d("0.80")),
                ("bank:settlement:CNY", d("89.20")),
            ]
        );
        // Nothing to settle: no journal.
        assert_eq!(
            BatchPlan::new().journal(batch, &biller, date, Currency::CNY),
            Ok(None)
        );
        assert_eq!(
            settled_reason(batch, &biller, date),
            format!("settled in batch {batch} (sh-water 2026-11-20)")
        );
    }

    #[test]
    fn the_payout_is_requested_for_the_next_day_or_the_closing_day_when_later() {
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        assert_eq!(
            requested_execution_date(day(20), utc("2026-11-20T15:05:00Z")),
            Some(day(21))
        );
        // Closed late (catching up): the day it was closed.
        assert_eq!(
            requested_execution_date(day(20), utc("2026-11-24T01:00:00Z")),
            Some(day(24))
        );
        assert_eq!(
            requested_execution_date(NaiveDate::MAX, utc("2026-11-24T01:00:00Z")),
            None
        );
        assert!(pays_out(d("0.01")));
        assert!(!pays_out(Decimal::ZERO));
        assert!(!pays_out(d("-1.00")));
    }
}
