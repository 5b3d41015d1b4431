//! The water companies' daily confirmation CSV
//! (`biller_connectors::water::confirmation`):
//!
//! ```text
//! our_reference,biller_reference,biller_id,account_number,amount,currency,credited_at
//! <one row per credit>
//! TRAILER,<count>,<total>
//! ```
//!
//! Every row is a credit. The file names no biller and no date: see the
//! module documentation of [`super`] for how they are taken from the rows
//! (and for the empty file).

use std::io::BufRead;

use chrono::{DateTime, NaiveDate};

use super::{
    amount_minor, check_trailer_total_and_end, count, currency, Csv, FileSummary, Tally,
    UNKNOWN_DATE,
};
use crate::domain::recon::{FileKind, FileRefusal, RecordStatus, TheirRecord};

const COLUMNS: [&str; 7] = [
    "our_reference",
    "biller_reference",
    "biller_id",
    "account_number",
    "amount",
    "currency",
    "credited_at",
];

pub(super) fn read(
    input: impl BufRead,
    sink: &mut dyn FnMut(TheirRecord),
) -> Result<FileSummary, FileRefusal> {
    let mut csv = Csv::new(input);
    if !csv.next_record()? {
        return Err(FileRefusal::line(
            1,
            "the file is empty: not even its header line",
        ));
    }
    if csv.text() != biller_connectors::water::confirmation::HEADER {
        return Err(FileRefusal::line(
            1,
            format!(
                "the first line must be the header {:?}; this is not a water confirmation file",
                biller_connectors::water::confirmation::HEADER
            ),
        ));
    }
    let mut tally = Tally::default();
    let mut biller: Option<String> = None;
    let mut date: Option<NaiveDate> = None;
    loop {
        if !csv.next_record()? {
            return Err(FileRefusal::line(
                csv.last_line(),
                "the file ends without its TRAILER line (truncated?)",
            ));
        }
        let line = csv.line();
        if csv.field(0) == "TRAILER" {
            if csv.len() != 3 {
                return Err(FileRefusal::line(
                    line,
                    format!(
                        "the TRAILER line has {} fields, expected 3 (TRAILER,count,total)",
                        csv.len()
                    ),
                ));
            }
            let declared = count(csv.field(1), "trailer count")
                .map_err(|why| FileRefusal::field(line, "count", why))?;
            if declared != tally.records {
                return Err(FileRefusal::field(
                    line,
                    "count",
                    format!(
                        "trailer count {declared} but the file has {} rows",
                        tally.records
                    ),
                ));
            }
            check_trailer_total_and_end(&mut csv, line, 2, &tally, "rows")?;
            return tally.summary(
                FileKind::WaterCsv,
                biller,
                date.unwrap_or(UNKNOWN_DATE),
                None,
                line,
            );
        }
        let (record, cur, day) = row(&csv)?;
        match &biller {
            Some(b) if *b != record.biller_id => {
                return Err(FileRefusal::field(
                    line,
                    "biller_id",
                    format!(
                        "this row names biller {}, the file is {b}'s (one file per biller)",
                        record.biller_id
                    ),
                ))
            }
            Some(_) => {}
            None => biller = Some(record.biller_id.clone()),
        }
        match date {
            Some(d) if d != day => {
                return Err(FileRefusal::field(
                    line,
                    "credited_at",
                    format!("this row was credited on {day}, the file's first row on {d} (one file per day)"),
                ))
            }
            Some(_) => {}
            None => date = Some(day),
        }
        tally
            .add(&record, cur)
            .map_err(|why| FileRefusal::field(line, "currency", why))?;
        sink(record);
    }
}

fn row<R: BufRead>(
    csv: &Csv<R>,
) -> Result<(TheirRecord, crate::domain::money::Currency, NaiveDate), FileRefusal> {
    let line = csv.line();
    if csv.len() != COLUMNS.len() {
        return Err(FileRefusal::line(
            line,
            format!(
                "the row has {} fields, expected {} ({})",
                csv.len(),
                COLUMNS.len(),
                COLUMNS.join(",")
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
    let at = csv.field(6);
    let day = DateTime::parse_from_rfc3339(at)
        .map_err(|_| {
            FileRefusal::field(
                line,
                "credited_at",
                format!("{at:?} is not a date and time such as 2026-11-29T10:03:04.005+08:00"),
            )
        })?
        .date_naive();
    Ok((
        TheirRecord {
            our_reference: csv.field(0).to_string(),
            their_reference: csv.field(1).to_string(),
            biller_id: csv.field(2).to_string(),
            account: csv.field(3).to_string(),
            amount_minor: amount,
            currency: cur.code().to_string(),
            status: RecordStatus::Credited,
            at: Some(at.to_string()),
            line,
        },
        cur,
        day,
    ))
}
