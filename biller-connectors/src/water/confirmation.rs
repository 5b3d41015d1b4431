//! The water company's daily confirmation file (CSV): written by the
//! biller (and its simulator), read by reconciliation.

use chrono::{FixedOffset, NaiveDate, SecondsFormat};
use rust_decimal::Decimal;

use crate::confirmation::{credited_on, csv_field, money2, CreditRecord};

/// The header line of the daily confirmation file.
pub const HEADER: &str =
    "our_reference,biller_reference,biller_id,account_number,amount,currency,credited_at";

/// The daily confirmation file of `biller_id` for business day `date` in
/// `offset`: a header, one row per credit of that day in credit order,
/// then `TRAILER,<count>,<total>`. Amounts carry 2 decimals; times are
/// RFC 3339 in the business day's offset.
pub fn write(
    credits: &[CreditRecord],
    biller_id: &str,
    date: NaiveDate,
    offset: FixedOffset,
) -> String {
    let rows = credited_on(credits, biller_id, date, offset);
    let mut out = String::new();
    out.push_str(HEADER);
    out.push('\n');
    for c in &rows {
        let fields = [
            csv_field(&c.our_reference),
            csv_field(&c.biller_reference),
            csv_field(&c.biller_id),
            csv_field(&c.account_number),
            money2(c.amount),
            csv_field(&c.currency),
            c.credited_at
                .with_timezone(&offset)
                .to_rfc3339_opts(SecondsFormat::Millis, false),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    let total: Decimal = rows.iter().map(|c| c.amount).sum();
    out.push_str(&format!("TRAILER,{},{}\n", rows.len(), money2(total)));
    out
}
