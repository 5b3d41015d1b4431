//! The gas company's daily confirmation file (fixed-width H/D/T records):
//! written by the biller (and its simulator), read by reconciliation.

use chrono::{FixedOffset, NaiveDate};

use super::codec::{self, ConfirmationLine};
use crate::confirmation::{credited_on, CreditRecord};

/// The gas company's daily confirmation file of `biller_id` for business
/// day `date` in `offset`: a header record, one detail record per credit
/// of that day in credit order, a trailer record with the count and the
/// total in minor units; fixed-width lines (see [`super::codec`]).
pub fn write(
    credits: &[CreditRecord],
    biller_id: &str,
    date: NaiveDate,
    offset: FixedOffset,
    currency: &str,
) -> String {
    let rows = credited_on(credits, biller_id, date, offset);
    let mut lines = vec![ConfirmationLine::Header {
        biller_id: biller_id.to_string(),
        business_date: date,
        currency: currency.to_string(),
    }];
    lines.extend(rows.iter().map(|c| ConfirmationLine::Detail {
        reference: c.our_reference.clone(),
        receipt_no: c.biller_reference.clone(),
        account: c.account_number.clone(),
        amount: c.amount,
        currency: c.currency.clone(),
        credited_at: c.credited_at,
    }));
    lines.push(ConfirmationLine::Trailer {
        count: rows.len() as u64,
        total: rows.iter().map(|c| c.amount).sum(),
    });
    let mut out = String::new();
    for line in lines {
        match line.encode() {
            Ok(bytes) => out.push_str(&String::from_utf8_lossy(&bytes)),
            Err(e) => {
                tracing::error!("confirmation file: record cannot be written: {e}");
                out.push_str(&format!("{:width$}", "", width = codec::CONFIRMATION_WIDTH));
            }
        }
        out.push('\n');
    }
    out
}
