//! The hub's daily statement file (CSV): written by the hub (and its
//! simulator), read by reconciliation.

use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::codec::TxnState;
use crate::confirmation::{csv_field, money2};

/// One transaction of the hub: a payment it decided (credited or refused),
/// under its own reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubTxn {
    /// The hub's reference (`HUB` + business day `YYYYMMDD` + 8 digits).
    pub hub_txn_id: String,
    /// OUR reference.
    pub partner_ref: String,
    pub biller_id: String,
    pub account_number: String,
    pub amount: Decimal,
    pub currency: String,
    pub bill_reference: Option<String>,
    /// `Success` or `Failed` (the simulator decides at once).
    pub state: TxnState,
    /// The receipt of the biller behind the hub (credited payments).
    pub biller_receipt: Option<String>,
    /// The refusal (failed payments).
    pub fail_code: Option<String>,
    pub fail_message: Option<String>,
    pub completed_at: DateTime<Utc>,
}

/// The first line of the statement file starts with this.
pub const MARK: &str = "HUBSTATEMENT";
/// The column header line of the statement file.
pub const COLUMNS: &str =
    "hubTxnId,partnerRef,billerCode,accountNo,amount,currency,status,completedAt";

/// The hub's daily statement file for business day `date` in `offset`:
///
/// ```text
/// HUBSTATEMENT,<hub id>,<date YYYY-MM-DD>,<generated at, RFC 3339 in offset>
/// hubTxnId,partnerRef,billerCode,accountNo,amount,currency,status,completedAt
/// <one row per transaction completed that day, in hubTxnId order>
/// TRAILER,<rows>,<successful rows>,<total of successful amounts>
/// ```
///
/// `status` is `SUCCESS` or `FAILED`; amounts carry 2 decimals; times are
/// RFC 3339 with milliseconds in the offset. Fields holding a comma, quote
/// or line break are quoted.
pub fn write(
    hub_id: &str,
    txns: &[HubTxn],
    date: NaiveDate,
    offset: FixedOffset,
    generated_at: DateTime<Utc>,
) -> String {
    let rows: Vec<&HubTxn> = txns
        .iter()
        .filter(|t| t.completed_at.with_timezone(&offset).date_naive() == date)
        .collect();
    let time = |t: &DateTime<Utc>| {
        t.with_timezone(&offset)
            .to_rfc3339_opts(SecondsFormat::Millis, false)
    };
    let mut out = format!(
        "{MARK},{},{},{}\n{COLUMNS}\n",
        csv_field(hub_id),
        date.format("%Y-%m-%d"),
        time(&generated_at)
    );
    for t in &rows {
        let status = match t.state {
            TxnState::Success => "SUCCESS",
            TxnState::Failed => "FAILED",
            TxnState::Processing => "PROCESSING",
        };
        let fields = [
            csv_field(&t.hub_txn_id),
            csv_field(&t.partner_ref),
            csv_field(&t.biller_id),
            csv_field(&t.account_number),
            money2(t.amount),
            csv_field(&t.currency),
            status.to_string(),
            time(&t.completed_at),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    let successes: Vec<&&HubTxn> = rows
        .iter()
        .filter(|t| t.state == TxnState::Success)
        .collect();
    let total: Decimal = successes.iter().map(|t| t.amount).sum();
    out.push_str(&format!(
        "TRAILER,{},{},{}\n",
        rows.len(),
        successes.len(),
        money2(total)
    ));
    out
}
