//! What every family's confirmation files share: the record of a payment
//! a biller credited, and the CSV and money formatting of the files. Each
//! family's own layout is in its folder (`water::confirmation`,
//! `gas::confirmation`, `hub::statement`, `power::codec`, `coop::format`).

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A payment a biller credited (one line of its confirmation file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditRecord {
    pub our_reference: String,
    pub biller_reference: String,
    pub biller_id: String,
    pub account_number: String,
    pub amount: Decimal,
    pub currency: String,
    pub bill_reference: Option<String>,
    pub credited_at: DateTime<Utc>,
}

/// The credits of `biller_id` whose business day in `offset` is `date`,
/// in credit order.
pub fn credited_on<'a>(
    credits: &'a [CreditRecord],
    biller_id: &str,
    date: NaiveDate,
    offset: FixedOffset,
) -> Vec<&'a CreditRecord> {
    credits
        .iter()
        .filter(|c| c.biller_id == biller_id)
        .filter(|c| c.credited_at.with_timezone(&offset).date_naive() == date)
        .collect()
}

/// An amount with exactly 2 decimals (banker's rounding never applies to
/// the simulator's amounts, which never carry more).
pub fn money2(amount: Decimal) -> String {
    let mut a = amount.round_dp(2);
    a.rescale(2);
    a.to_string()
}

/// A CSV field, quoted when it holds a comma, quote or line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
