//! The CSV settlement file (RFC 4180 via the `csv` crate, CRLF line ends,
//! UTF-8, no byte-order mark).
//!
//! The first line is the column header (nothing before it, so spreadsheet
//! tools load the file as is), then one row per item:
//!
//! `record_type,our_reference,biller_reference,account_number,amount,currency,confirmed_at,commission`
//!
//! - `record_type`: `PAY` or `RET`;
//! - `biller_reference`: empty when the biller gave none;
//! - `amount`: at the currency's scale, negative for a return (`-12.50`);
//! - `confirmed_at`: RFC 3339 in UTC with microseconds and `Z`
//!   (`2026-11-29T14:59:59.123456Z`), the precision the database keeps;
//! - `commission`: at the currency's scale, `0.00` for a return.
//!
//! The last row is the trailer (5 fields):
//! `TRAILER,<count>,<total>,<commission>,<net>` where `count` is the number
//! of detail rows, `total` the sum of the amount column (payments minus
//! returns), `commission` the sum of the commission column and
//! `net = total - commission`, the amount paid to the biller.

use chrono::SecondsFormat;

use super::atomic::AtomicFile;
use super::{CheckedLine, FileError, Trailer};
use crate::domain::money::Currency;

pub(crate) const COLUMNS: [&str; 8] = [
    "record_type",
    "our_reference",
    "biller_reference",
    "account_number",
    "amount",
    "currency",
    "confirmed_at",
    "commission",
];

fn csv_err(file: &AtomicFile, e: ::csv::Error) -> FileError {
    let path = file.tmp_path().to_path_buf();
    match e.into_kind() {
        ::csv::ErrorKind::Io(io) => FileError::Io {
            op: "write",
            path,
            source: io,
        },
        other => FileError::Io {
            op: "write",
            path,
            source: std::io::Error::other(format!("{other:?}")),
        },
    }
}

/// Wraps `file` in a CSV writer and writes the column header.
pub(crate) fn start(file: AtomicFile) -> Result<::csv::Writer<AtomicFile>, FileError> {
    let mut w = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        // the trailer has fewer fields than the detail rows
        .flexible(true)
        .from_writer(file);
    if let Err(e) = w.write_record(COLUMNS) {
        return Err(csv_err(w.get_ref(), e));
    }
    Ok(w)
}

pub(crate) fn detail(
    w: &mut ::csv::Writer<AtomicFile>,
    item: &CheckedLine<'_>,
    currency: Currency,
) -> Result<(), FileError> {
    let line = item.line;
    let record = [
        line.kind.code(),
        &line.our_reference,
        line.biller_reference.as_deref().unwrap_or(""),
        &line.account_number,
        &item.signed_amount.to_string(),
        currency.code(),
        &line
            .confirmed_at
            .to_rfc3339_opts(SecondsFormat::Micros, true),
        &item.commission.to_string(),
    ];
    match w.write_record(record) {
        Ok(()) => Ok(()),
        Err(e) => Err(csv_err(w.get_ref(), e)),
    }
}

/// Writes the trailer and hands back the file, flushed.
pub(crate) fn finish(
    mut w: ::csv::Writer<AtomicFile>,
    t: &Trailer,
) -> Result<AtomicFile, FileError> {
    let record = [
        "TRAILER".to_string(),
        t.count.to_string(),
        t.total.to_string(),
        t.commission.to_string(),
        t.net.to_string(),
    ];
    if let Err(e) = w.write_record(&record) {
        return Err(csv_err(w.get_ref(), e));
    }
    w.into_inner().map_err(|e| {
        let err = std::io::Error::new(e.error().kind(), e.error().to_string());
        let path = e.into_inner().get_ref().tmp_path().to_path_buf();
        FileError::Io {
            op: "write",
            path,
            source: err,
        }
    })
}
