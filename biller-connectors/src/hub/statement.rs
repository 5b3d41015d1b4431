//! The hub's daily statement file (CSV): written by the hub (and its
//! simulator) with [`write()`], read by reconciliation with [`read`].
//!
//! ```text
//! HUBSTATEMENT,<hub id>,<date YYYY-MM-DD>,<generated at>
//! hubTxnId,partnerRef,billerCode,accountNo,amount,currency,status,completedAt
//! <one row per transaction completed that day>
//! TRAILER,<rows>,<successful rows>,<total of successful amounts>
//! ```
//!
//! Read back, `SUCCESS` is a credit and `FAILED` a failed record (both
//! with their reference = `hubTxnId`, which failed transactions have too);
//! `PROCESSING` rows are checked and counted by the trailer's row count
//! but not passed to the sink. The header date is the business date; rows
//! completed on another day are NOT refused (the hub decides what its day
//! holds). The identity is `hub:<hub id>:<YYYY-MM-DD>`, the biller none (a
//! statement covers several billers).

use std::io::BufRead;

use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::codec::TxnState;
use crate::confirmation::read::{check_trailer_total_and_end, count, strip_bom, Csv, Tally};
use crate::confirmation::{
    csv_field, money2, Amounts, CurrencyUnit, Record, RecordStatus, Refusal, Summary,
};

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

/// The column names, one by one.
const COLUMN_NAMES: [&str; 8] = [
    "hubTxnId",
    "partnerRef",
    "billerCode",
    "accountNo",
    "amount",
    "currency",
    "status",
    "completedAt",
];

/// Whether the first bytes of a file are a hub statement's (its first
/// line starts `HUBSTATEMENT,`).
pub fn looks_like(first_bytes: &[u8]) -> bool {
    strip_bom(first_bytes).starts_with(b"HUBSTATEMENT,")
}

/// Streams the rows of a hub statement to `sink` in file order (not the
/// `PROCESSING` ones), checking the whole file (first line, column names,
/// every row, trailer) with `amounts`' money rules. On `Err` the caller
/// must discard everything the sink received.
pub fn read<A: Amounts>(
    input: impl BufRead,
    amounts: &A,
    sink: &mut dyn FnMut(Record),
) -> Result<Summary, Refusal> {
    let mut csv = Csv::new(input);
    if !csv.next_record()? {
        return Err(Refusal::line(
            1,
            "the file is empty: not even its HUBSTATEMENT line",
        ));
    }
    if csv.field(0) != MARK || csv.len() != 4 {
        return Err(Refusal::line(
            1,
            "the first line must be HUBSTATEMENT,<hub id>,<date>,<generated at>; this is not a hub statement",
        ));
    }
    let hub_id = csv.field(1).to_string();
    if hub_id.is_empty() {
        return Err(Refusal::field(1, "hub id", "the hub id is empty"));
    }
    let date_text = csv.field(2);
    let date = NaiveDate::parse_from_str(date_text, "%Y-%m-%d")
        .ok()
        .filter(|_| date_text.len() == 10)
        .ok_or_else(|| {
            Refusal::field(
                1,
                "date",
                format!("statement date {date_text:?} is not a date such as 2026-11-29"),
            )
        })?;
    let generated = csv.field(3);
    if DateTime::parse_from_rfc3339(generated).is_err() {
        return Err(Refusal::field(
            1,
            "generated at",
            format!("{generated:?} is not a date and time such as 2026-11-30T09:00:00.000+08:00"),
        ));
    }
    if !csv.next_record()? {
        return Err(Refusal::line(
            csv.last_line(),
            "the file ends without its TRAILER line (truncated?)",
        ));
    }
    if csv.text() != COLUMNS {
        return Err(Refusal::line(
            csv.line(),
            format!("the second line must be the column names {COLUMNS:?}"),
        ));
    }
    let mut tally = Tally::default();
    let mut rows = 0u64;
    loop {
        if !csv.next_record()? {
            return Err(Refusal::line(
                csv.last_line(),
                "the file ends without its TRAILER line (truncated?)",
            ));
        }
        let line = csv.line();
        if csv.field(0) == "TRAILER" {
            if csv.len() != 4 {
                return Err(Refusal::line(
                    line,
                    format!(
                        "the TRAILER line has {} fields, expected 4 (TRAILER,rows,successful rows,total)",
                        csv.len()
                    ),
                ));
            }
            let declared = count(csv.field(1), "trailer row count")
                .map_err(|why| Refusal::field(line, "rows", why))?;
            if declared != rows {
                return Err(Refusal::field(
                    line,
                    "rows",
                    format!("trailer count {declared} but the file has {rows} rows"),
                ));
            }
            let successes = count(csv.field(2), "trailer successful count")
                .map_err(|why| Refusal::field(line, "successful rows", why))?;
            if successes != tally.credited {
                return Err(Refusal::field(
                    line,
                    "successful rows",
                    format!(
                        "trailer counts {successes} successful rows but the file has {}",
                        tally.credited
                    ),
                ));
            }
            check_trailer_total_and_end(&mut csv, amounts, line, 3, &tally, "successful rows")?;
            let identity = format!("hub:{hub_id}:{}", date.format("%Y-%m-%d"));
            return tally.summary(None, date, Some(identity), line);
        }
        rows += 1;
        if let Some((record, cur)) = row(&csv, amounts)? {
            tally
                .add(&record, cur)
                .map_err(|why| Refusal::field(line, "currency", why))?;
            sink(record);
        }
    }
}

/// A row; `None` for a PROCESSING row (checked, not a record).
fn row<R: BufRead, A: Amounts>(
    csv: &Csv<R>,
    amounts: &A,
) -> Result<Option<(Record, A::Currency)>, Refusal> {
    let line = csv.line();
    if csv.len() != COLUMN_NAMES.len() {
        return Err(Refusal::line(
            line,
            format!(
                "the row has {} fields, expected {} ({COLUMNS})",
                csv.len(),
                COLUMN_NAMES.len()
            ),
        ));
    }
    for (i, name) in COLUMN_NAMES.iter().enumerate() {
        if csv.field(i).is_empty() {
            return Err(Refusal::field(line, name, format!("{name} is empty")));
        }
    }
    let cur = amounts
        .currency(csv.field(5))
        .map_err(|why| Refusal::field(line, "currency", why))?;
    let amount = amounts
        .minor(csv.field(4), cur)
        .map_err(|why| Refusal::field(line, "amount", why))?;
    let at = csv.field(7);
    if DateTime::parse_from_rfc3339(at).is_err() {
        return Err(Refusal::field(
            line,
            "completedAt",
            format!("{at:?} is not a date and time such as 2026-11-29T10:03:04.005+08:00"),
        ));
    }
    let status = match csv.field(6) {
        "SUCCESS" => RecordStatus::Credited,
        "FAILED" => RecordStatus::Failed,
        "PROCESSING" => return Ok(None),
        other => {
            return Err(Refusal::field(
                line,
                "status",
                format!("status {other:?} is not SUCCESS, FAILED or PROCESSING"),
            ))
        }
    };
    Ok(Some((
        Record {
            our_reference: csv.field(1).to_string(),
            their_reference: csv.field(0).to_string(),
            biller_id: csv.field(2).to_string(),
            account: csv.field(3).to_string(),
            amount_minor: amount,
            currency: cur.code().to_string(),
            status,
            at: Some(at.to_string()),
            line,
        },
        cur,
    )))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::confirmation::read::test_amounts::TestAmounts;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn txn(n: u32, amount: &str, state: TxnState) -> HubTxn {
        HubTxn {
            hub_txn_id: format!("HUB20261129{n:08}"),
            partner_ref: format!("pay-{n}"),
            biller_id: "sh-power".to_string(),
            account_number: "PW-9".to_string(),
            amount: Decimal::from_str(amount).unwrap(),
            currency: "CNY".to_string(),
            bill_reference: None,
            state,
            biller_receipt: None,
            fail_code: None,
            fail_message: None,
            completed_at: utc("2026-11-29T02:00:00Z"),
        }
    }

    fn file() -> String {
        let txns = [
            txn(1, "88.50", TxnState::Success),
            txn(2, "10.00", TxnState::Failed),
            txn(3, "5.00", TxnState::Processing),
            txn(4, "1.50", TxnState::Success),
        ];
        let offset = FixedOffset::east_opt(8 * 3600).unwrap();
        write("hub-1", &txns, day(), offset, utc("2026-11-30T01:00:00Z"))
    }

    #[test]
    fn what_write_writes_read_reads_back() {
        let file = file();
        assert!(looks_like(file.as_bytes()));
        let mut records = Vec::new();
        let summary = read(file.as_bytes(), &TestAmounts, &mut |r| records.push(r)).unwrap();
        assert_eq!(
            summary,
            Summary {
                biller_id: None,
                business_date: day(),
                identity: Some("hub:hub-1:2026-11-29".to_string()),
                records: 3,
                credited: 2,
                credited_total_minor: 9000,
                currency: Some("CNY".to_string()),
            }
        );
        let seen: Vec<_> = records
            .iter()
            .map(|r| (r.our_reference.as_str(), r.status, r.line))
            .collect();
        assert_eq!(
            seen,
            [
                ("pay-1", RecordStatus::Credited, 3),
                ("pay-2", RecordStatus::Failed, 4),
                ("pay-4", RecordStatus::Credited, 6),
            ]
        );
        assert_eq!(records[1].their_reference, "HUB2026112900000002");
        assert_eq!(
            records[1].at.as_deref(),
            Some("2026-11-29T10:00:00.000+08:00")
        );
    }

    #[test]
    fn an_unknown_status_refuses_the_file() {
        let file = file().replace(",FAILED,", ",LOST,");
        let refusal = read(file.as_bytes(), &TestAmounts, &mut |_| {}).unwrap_err();
        assert_eq!(refusal.location, "line 4, field status");
        assert_eq!(
            refusal.reason,
            "status \"LOST\" is not SUCCESS, FAILED or PROCESSING"
        );
    }
}
