//! The hub's daily statement CSV (`biller_connectors::hub::statement`):
//!
//! ```text
//! HUBSTATEMENT,<hub id>,<date YYYY-MM-DD>,<generated at>
//! hubTxnId,partnerRef,billerCode,accountNo,amount,currency,status,completedAt
//! <one row per transaction completed that day>
//! TRAILER,<rows>,<successful rows>,<total of successful amounts>
//! ```

use std::io::BufRead;

use chrono::{DateTime, NaiveDate};

use super::{amount_minor, check_trailer_total_and_end, count, currency, Csv, FileSummary, Tally};
use crate::domain::recon::{FileKind, FileRefusal, RecordStatus, TheirRecord};
use biller_connectors::hub::statement::{COLUMNS as STATEMENT_COLUMNS, MARK as STATEMENT_MARK};

const COLUMNS: [&str; 8] = [
    "hubTxnId",
    "partnerRef",
    "billerCode",
    "accountNo",
    "amount",
    "currency",
    "status",
    "completedAt",
];

pub(super) fn read(
    input: impl BufRead,
    sink: &mut dyn FnMut(TheirRecord),
) -> Result<FileSummary, FileRefusal> {
    let mut csv = Csv::new(input);
    if !csv.next_record()? {
        return Err(FileRefusal::line(
            1,
            "the file is empty: not even its HUBSTATEMENT line",
        ));
    }
    if csv.field(0) != STATEMENT_MARK || csv.len() != 4 {
        return Err(FileRefusal::line(
            1,
            "the first line must be HUBSTATEMENT,<hub id>,<date>,<generated at>; this is not a hub statement",
        ));
    }
    let hub_id = csv.field(1).to_string();
    if hub_id.is_empty() {
        return Err(FileRefusal::field(1, "hub id", "the hub id is empty"));
    }
    let date_text = csv.field(2);
    let date = NaiveDate::parse_from_str(date_text, "%Y-%m-%d")
        .ok()
        .filter(|_| date_text.len() == 10)
        .ok_or_else(|| {
            FileRefusal::field(
                1,
                "date",
                format!("statement date {date_text:?} is not a date such as 2026-11-29"),
            )
        })?;
    let generated = csv.field(3);
    if DateTime::parse_from_rfc3339(generated).is_err() {
        return Err(FileRefusal::field(
            1,
            "generated at",
            format!("{generated:?} is not a date and time such as 2026-11-30T09:00:00.000+08:00"),
        ));
    }
    if !csv.next_record()? {
        return Err(FileRefusal::line(
            csv.last_line(),
            "the file ends without its TRAILER line (truncated?)",
        ));
    }
    if csv.text() != STATEMENT_COLUMNS {
        return Err(FileRefusal::line(
            csv.line(),
            format!("the second line must be the column names {STATEMENT_COLUMNS:?}"),
        ));
    }
    let mut tally = Tally::default();
    let mut rows = 0u64;
    loop {
        if !csv.next_record()? {
            return Err(FileRefusal::line(
                csv.last_line(),
                "the file ends without its TRAILER line (truncated?)",
            ));
        }
        let line = csv.line();
        if csv.field(0) == "TRAILER" {
            if csv.len() != 4 {
                return Err(FileRefusal::line(
                    line,
                    format!(
                        "the TRAILER line has {} fields, expected 4 (TRAILER,rows,successful rows,total)",
                        csv.len()
                    ),
                ));
            }
            let declared = count(csv.field(1), "trailer row count")
                .map_err(|why| FileRefusal::field(line, "rows", why))?;
            if declared != rows {
                return Err(FileRefusal::field(
                    line,
                    "rows",
                    format!("trailer count {declared} but the file has {rows} rows"),
                ));
            }
            let successes = count(csv.field(2), "trailer successful count")
                .map_err(|why| FileRefusal::field(line, "successful rows", why))?;
            if successes != tally.credited {
                return Err(FileRefusal::field(
                    line,
                    "successful rows",
                    format!(
                        "trailer counts {successes} successful rows but the file has {}",
                        tally.credited
                    ),
                ));
            }
            check_trailer_total_and_end(&mut csv, line, 3, &tally, "successful rows")?;
            let identity = format!("hub:{hub_id}:{}", date.format("%Y-%m-%d"));
            return tally.summary(FileKind::HubStatement, None, date, Some(identity), line);
        }
        rows += 1;
        if let Some((record, cur)) = row(&csv)? {
            tally
                .add(&record, cur)
                .map_err(|why| FileRefusal::field(line, "currency", why))?;
            sink(record);
        }
    }
}

/// A row; `None` for a PROCESSING row (checked, not a record).
fn row<R: BufRead>(
    csv: &Csv<R>,
) -> Result<Option<(TheirRecord, crate::domain::money::Currency)>, FileRefusal> {
    let line = csv.line();
    if csv.len() != COLUMNS.len() {
        return Err(FileRefusal::line(
            line,
            format!(
                "the row has {} fields, expected {} ({STATEMENT_COLUMNS})",
                csv.len(),
                COLUMNS.len()
            ),
        ));
    }
    for (i, name) in COLUMNS.iter().enumerate() {
        if csv.field(i).is_empty() {
            return Err(FileRefusal::field(line, name, format!("{name} is empty")));
        }
    }
    let cur = currency(csv.field(5)).map_err(|why| FileRefusal::field(line, "currency", why))?;
    let amount =
        amount_minor(csv.field(4), cur).map_err(|why| FileRefusal::field(line, "amount", why))?;
    let at = csv.field(7);
    if DateTime::parse_from_rfc3339(at).is_err() {
        return Err(FileRefusal::field(
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
            return Err(FileRefusal::field(
                line,
                "status",
                format!("status {other:?} is not SUCCESS, FAILED or PROCESSING"),
            ))
        }
    };
    Ok(Some((
        TheirRecord {
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
