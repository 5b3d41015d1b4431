//! What every family's confirmation files share.
//!
//! * Writing: the record of a payment a biller credited
//!   ([`CreditRecord`]), and the CSV and money formatting of the files.
//! * Reading: what a file read back yields ([`Record`], one per line, and
//!   the file's [`Summary`]), why a file is refused ([`Refusal`]: where
//!   and why), and the money rules the caller supplies ([`Amounts`]:
//!   which currencies exist, at which scale, and how an amount is refused
//!   in its words; this crate keeps no currency table of its own). The
//!   plumbing the readers share (lines, CSV records, counts, trailer
//!   totals) is in `read`.
//!
//! Each family's own layout, writer and reader are in its folder:
//!
//! | file | writer | reader |
//! |---|---|---|
//! | water CSV | [`crate::water::confirmation::write`] | [`crate::water::confirmation::read`] |
//! | power XML | [`crate::power::codec::Confirmation`] | [`crate::power::confirmation::read`] |
//! | gas fixed-width | [`crate::gas::confirmation::write`] | [`crate::gas::confirmation::read`] |
//! | hub statement | [`crate::hub::statement::write`] | [`crate::hub::statement::read`] |
//! | co-op ack | [`crate::coop::format::render_ack`] | [`crate::coop::ack::read`] |
//!
//! A reader streams a file's records to a sink in file order, checking
//! the whole file (first line, every line, trailer); **on `Err` the caller
//! must discard everything the sink received**. Every refusal message,
//! location and check order is the one billclear's reconciliation
//! documents (`billclear::reconcile::formats`).

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub(crate) mod read;

pub use read::{
    Amounts, CurrencyUnit, Record, RecordStatus, Refusal, Summary, MAX_LINE_BYTES, UNKNOWN_DATE,
};

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
