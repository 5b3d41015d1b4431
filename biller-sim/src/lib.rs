//! Biller simulators: real HTTP servers speaking a counterpart's protocol,
//! with switchable faults, for tests and the demo (`biller-sim` binary).
//!
//! A simulator keeps a book of customer accounts per biller id, applies
//! payments idempotently on OUR reference, records every credit and
//! rejection, and writes the biller's daily confirmation file.

mod book;
pub mod coop;
pub mod gas;
pub mod http;
pub mod hub;
pub mod pki;
pub mod power;
pub mod water;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use coop::{CoopSim, CoopSimConfig};
pub use gas::{GasSim, GasSimConfig};
pub use http::{server_tls, SimSecurity, Traffic, TrafficStats};
pub use hub::{HubSim, HubSimConfig, HubSwitches, HubTxn};
pub use power::{PowerSim, PowerSimConfig};
pub use water::{WaterSim, WaterSimConfig};

pub use biller_connectors::confirmation::{money2, CreditRecord};
pub use biller_connectors::water::confirmation::{
    write as confirmation_csv, HEADER as CONFIRMATION_HEADER,
};

/// Locks a simulator's state; a panic elsewhere never takes the simulator
/// down with it.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Requests counted per second of the wall clock (unix seconds), as a
/// counterparty that limits callers per second counts them.
#[derive(Debug, Default)]
pub struct PerSecond(std::sync::Mutex<std::collections::BTreeMap<i64, u64>>);

impl PerSecond {
    /// Counts one request now.
    pub fn hit(&self) {
        *lock(&self.0)
            .entry(chrono::Utc::now().timestamp())
            .or_default() += 1;
    }

    /// The most requests in one second.
    pub fn max(&self) -> u64 {
        lock(&self.0).values().copied().max().unwrap_or(0)
    }

    /// Requests per second (unix second, count), oldest first.
    pub fn seconds(&self) -> Vec<(i64, u64)> {
        lock(&self.0).iter().map(|(s, n)| (*s, *n)).collect()
    }
}

/// Faults a simulator injects, switchable at run time (`PUT /_sim/faults`).
/// They apply in this order: outage, blackhole, error rate, latency, then
/// processing; the response faults (drop, misecho) only to payments.
/// Every counterpart (water, electricity, gas, co-op, hub) takes the same
/// switches; those a transport cannot express are documented as ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Delay before each request is processed. Processing is detached from
    /// the connection, so a client that gives up does not stop it.
    pub latency_ms: u64,
    /// Share (0..=1) of requests answered 503 + code 9001, not applied.
    pub error_rate: f64,
    /// Every request answered 503 + code 9002, nothing applied.
    pub outage: bool,
    /// Requests are read but never answered and nothing is applied (held
    /// at most 10 minutes, then 504).
    pub blackhole: bool,
    /// Share (0..=1) of pay requests applied, then never answered.
    pub drop_response_rate: f64,
    /// The next N pay requests are applied and their answers dropped.
    pub drop_response_next: u32,
    /// The next N pay requests are read and held unanswered, and nothing
    /// is applied: a counterpart that goes silent on a send while still
    /// answering inquiries (the water simulator; others ignore it).
    pub silent_pay_next: u32,
    /// The next N successful pay answers echo an amount 0.01 higher than
    /// sent (the payment is applied normally).
    pub misecho_next: u32,
    /// The next N answers are sent twice (counterparts that can answer
    /// twice: the gas company's TCP link). HTTP counterparts ignore it.
    pub duplicate_answer_next: u32,
    /// Answers on a multiplexed link are sent in another order than the
    /// requests came (the gas company's TCP link). HTTP counterparts
    /// ignore it.
    pub out_of_order: bool,
}

impl Faults {
    /// Refuses rates outside 0..=1 (or not numbers).
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("drop_response_rate", self.drop_response_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be within 0..=1, got {rate}"));
            }
        }
        Ok(())
    }
}

/// A customer account in a simulator's book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub account_number: String,
    pub customer_name: String,
    pub open: bool,
    pub bills: Vec<SimBill>,
}

/// A bill on a simulated account; `amount_due` goes down as payments come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimBill {
    pub bill_reference: String,
    pub amount_due: Decimal,
    pub due_date: NaiveDate,
}

/// A payment the simulated biller refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectRecord {
    pub our_reference: String,
    pub biller_id: String,
    pub account_number: String,
    pub amount: Decimal,
    pub currency: String,
    pub code: String,
    pub message: String,
    pub at: DateTime<Utc>,
}

/// One entry of a book file (`--book FILE.json` is a JSON array of these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookEntry {
    pub biller_id: String,
    pub account: Account,
}

/// The Luhn check digit for a string of decimal digits.
pub fn luhn_check_digit(payload: &str) -> Option<u32> {
    let mut sum = 0;
    for (i, c) in payload.chars().rev().enumerate() {
        let mut d = c.to_digit(10)?;
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    Some((10 - sum % 10) % 10)
}

/// Whether `number` (all digits) ends in its Luhn check digit.
pub fn luhn_valid(number: &str) -> bool {
    let Some((payload, last)) = number.len().checked_sub(1).map(|i| number.split_at(i)) else {
        return false;
    };
    !payload.is_empty() && luhn_check_digit(payload) == last.parse().ok()
}

const SURNAMES: &[&str] = &[
    "张", "王", "李", "赵", "陈", "刘", "杨", "黄", "吴", "周", "徐", "孙",
];
const GIVEN_NAMES: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明", "超",
    "秀英", "建国", "晓东", "海燕", "丽华",
];

/// The default book of the `biller-sim` binary, bills due in the month
/// after today.
pub fn default_book() -> Vec<(String, Account)> {
    default_book_at(Utc::now().date_naive())
}

/// The default book of the water company (`sh-water` and `pudong-water`)
/// with bills due in the month after `today`.
pub fn default_book_at(today: NaiveDate) -> Vec<(String, Account)> {
    book_for(&["sh-water", "pudong-water"], today)
}

/// The default customer accounts of the example billers, the same in every
/// simulator that serves them (a direct counterpart and the hub must know
/// the same customers):
///
/// * `sh-water`: 10-digit Luhn numbers, `3100000011` first, 21 in all,
///   `3100000110` closed;
/// * `pudong-water`: `PD` + 8 digits, `PD20261129` first, 11 in all;
/// * `sh-power`: 10-digit mod-11 numbers, `0306406159` first, the 5th
///   generated one closed;
/// * `sh-gas`: 12-digit Luhn numbers, `310012345677` first, the 5th
///   generated one closed;
/// * `minhang-gas`: 9-digit Luhn numbers, `123456782` first;
/// * `chongming-coop`: `CM-` + 6 digits, `CM-000123` first, 16 in all,
///   the 7th generated one closed.
///
/// Other biller ids have no default accounts.
pub fn default_accounts(biller_id: &str, today: NaiveDate) -> Vec<Account> {
    let luhn = |payload: String| luhn_check_digit(&payload).map(|d| format!("{payload}{d}"));
    match biller_id {
        "sh-water" => (1..=21u32)
            .filter_map(|i| luhn(format!("31{i:07}")).map(|n| (i, n)))
            .map(|(i, n)| account(&n, i, i != 11, today))
            .collect(),
        "pudong-water" => std::iter::once(account("PD20261129", 100, true, today))
            .chain((1..=10u32).map(|i| {
                account(
                    &format!("PD{:08}", 20_250_000 + i * 1_037),
                    100 + i,
                    true,
                    today,
                )
            }))
            .collect(),
        "sh-power" => std::iter::once(account("0306406159", 200, true, today))
            .chain((1..=20u32).filter_map(|i| {
                let payload = format!("03{:07}", 1_000 + i * 37);
                mod11_check_digit(&payload)
                    .map(|d| account(&format!("{payload}{d}"), 200 + i, i != 5, today))
            }))
            .collect(),
        "sh-gas" => std::iter::once(account("310012345677", 300, true, today))
            .chain((1..=20u32).filter_map(|i| {
                luhn(format!("3100{:07}", 20_000 + i * 53))
                    .map(|n| account(&n, 300 + i, i != 5, today))
            }))
            .collect(),
        "minhang-gas" => std::iter::once(account("123456782", 400, true, today))
            .chain((1..=10u32).filter_map(|i| {
                luhn(format!("12{:06}", 345_000 + i * 61))
                    .map(|n| account(&n, 400 + i, true, today))
            }))
            .collect(),
        "chongming-coop" => std::iter::once(account("CM-000123", 500, true, today))
            .chain((1..=15u32).map(|i| {
                account(
                    &format!("CM-{:06}", 100_000 + i * 4_271),
                    500 + i,
                    i != 7,
                    today,
                )
            }))
            .collect(),
        _ => Vec::new(),
    }
}

/// `default_accounts` of several billers, as a simulator's book.
pub fn book_for(billers: &[&str], today: NaiveDate) -> Vec<(String, Account)> {
    billers
        .iter()
        .flat_map(|b| {
            default_accounts(b, today)
                .into_iter()
                .map(move |a| (b.to_string(), a))
        })
        .collect()
}

/// The weighted modulus-11 check digit of a digit string (weights 2..7
/// repeating from the right; remainder 0 gives 0, remainder 1 has no valid
/// digit, otherwise 11 - remainder), as billclear checks it.
pub fn mod11_check_digit(payload: &str) -> Option<u32> {
    if payload.is_empty() || !payload.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = payload
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * (2 + (i as u32 % 6)))
        .sum();
    match sum % 11 {
        0 => Some(0),
        1 => None,
        r => Some(11 - r),
    }
}

fn account(number: &str, seed: u32, open: bool, today: NaiveDate) -> Account {
    let name = format!(
        "{}{}",
        SURNAMES[seed as usize % SURNAMES.len()],
        GIVEN_NAMES[(seed as usize * 7) % GIVEN_NAMES.len()]
    );
    let bill_count = 1 + seed % 2;
    let bills = (0..bill_count)
        .map(|b| {
            // 38.60 ..= 420.00, deterministic per account and bill.
            let cents = 3_860 + (seed * 1_733 + b * 977) % 38_141;
            SimBill {
                bill_reference: format!("B{}{:02}", number, b + 1),
                amount_due: Decimal::new(i64::from(cents), 2),
                due_date: today + chrono::Days::new(u64::from(5 + (seed + b * 11) % 25)),
            }
        })
        .collect();
    Account {
        account_number: number.to_string(),
        customer_name: name,
        open,
        bills,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use biller_connectors::confirmation::csv_field;

    #[test]
    fn default_accounts_carry_valid_check_digits() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        assert_eq!(mod11_check_digit("030640615"), Some(9));
        for (biller, first, len, n) in [
            ("sh-water", "3100000011", 10, 21),
            ("sh-power", "0306406159", 10, 0),
            ("sh-gas", "310012345677", 12, 0),
            ("minhang-gas", "123456782", 9, 0),
        ] {
            let accounts = default_accounts(biller, today);
            assert_eq!(accounts[0].account_number, first, "{biller}");
            assert!(
                n == 0 || accounts.len() == n,
                "{biller}: {}",
                accounts.len()
            );
            assert!(accounts.len() >= 10, "{biller}: {}", accounts.len());
            for a in &accounts {
                assert_eq!(a.account_number.len(), len, "{biller} {}", a.account_number);
                let (body, check) = a.account_number.split_at(len - 1);
                let want = if biller == "sh-power" {
                    mod11_check_digit(body)
                } else {
                    luhn_check_digit(body)
                };
                assert_eq!(
                    want.map(|d| d.to_string()).as_deref(),
                    Some(check),
                    "{biller} {}",
                    a.account_number
                );
            }
        }
        assert!(default_accounts("sh-power", today).iter().any(|a| !a.open));
        assert!(default_accounts("nobody", today).is_empty());
    }

    use std::str::FromStr;

    #[test]
    fn luhn() {
        assert!(luhn_valid("3100000011"));
        assert!(!luhn_valid("3100000012"));
        assert!(!luhn_valid("31000000a1"));
        assert!(!luhn_valid("7"));
        assert!(!luhn_valid(""));
    }

    #[test]
    fn default_book_is_realistic() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        let book = default_book_at(today);
        let sh: Vec<_> = book.iter().filter(|(b, _)| b == "sh-water").collect();
        assert!(sh.len() >= 21);
        assert!(sh
            .iter()
            .any(|(_, a)| a.account_number == "3100000011" && a.open));
        assert!(sh
            .iter()
            .all(|(_, a)| a.account_number.len() == 10 && luhn_valid(&a.account_number)));
        assert_eq!(sh.iter().filter(|(_, a)| !a.open).count(), 1);
        let pd: Vec<_> = book.iter().filter(|(b, _)| b == "pudong-water").collect();
        assert!(pd.len() >= 11);
        assert!(pd.iter().any(|(_, a)| a.account_number == "PD20261129"));
        assert!(pd
            .iter()
            .all(|(_, a)| a.account_number.len() == 10 && a.account_number.starts_with("PD")));
        let low = Decimal::from_str("38.60").unwrap();
        let high = Decimal::from_str("420.00").unwrap();
        for (_, a) in &book {
            assert!(!a.bills.is_empty());
            for b in &a.bills {
                assert!(
                    b.amount_due >= low && b.amount_due <= high,
                    "{}",
                    b.amount_due
                );
                assert!(b.due_date > today && b.due_date <= today + chrono::Days::new(31));
            }
        }
        let mut numbers: Vec<_> = book.iter().map(|(b, a)| (b, &a.account_number)).collect();
        numbers.sort();
        numbers.dedup();
        assert_eq!(numbers.len(), book.len());
    }

    #[test]
    fn faults_refuse_bad_rates_and_unknown_fields() {
        assert!(Faults {
            error_rate: 1.5,
            ..Faults::default()
        }
        .validate()
        .is_err());
        assert!(Faults {
            drop_response_rate: f64::NAN,
            ..Faults::default()
        }
        .validate()
        .is_err());
        assert!(serde_json::from_str::<Faults>(r#"{"outage":true,"typo":1}"#).is_err());
        let f: Faults = serde_json::from_str(r#"{"drop_response_next":3}"#).unwrap();
        assert_eq!(f.drop_response_next, 3);
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(money2(Decimal::from_str("88.5").unwrap()), "88.50");
        assert_eq!(money2(Decimal::from(7)), "7.00");
    }
}
