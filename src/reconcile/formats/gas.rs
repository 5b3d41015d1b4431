//! The gas companies' daily fixed-width confirmation
//! (`biller_connectors::gas::confirmation`, records read by
//! `biller_connectors::gas::codec::ConfirmationLine::decode`): lines of
//! 106 bytes, one `H` header (biller, business date, currency), one `D`
//! detail per credit, one `T` trailer (count, total in minor units), and
//! nothing after it.

use std::io::BufRead;

use biller_connectors::gas::codec::{ConfirmationLine, DecodeError};
use chrono::SecondsFormat;

use super::{currency, decimal_minor, show_minor, FileSummary, Lines, Tally};
use crate::domain::money::{Currency, Money};
use crate::domain::recon::{FileKind, FileRefusal, RecordStatus, TheirRecord};

pub(super) fn read(
    input: impl BufRead,
    sink: &mut dyn FnMut(TheirRecord),
) -> Result<FileSummary, FileRefusal> {
    let mut lines = Lines::new(input);
    let Some((_, first)) = lines.next_line()? else {
        return Err(FileRefusal::line(
            1,
            "the file is empty: not even its H header record",
        ));
    };
    if !first.starts_with('H') {
        return Err(FileRefusal::line(
            1,
            "the first line must be the H header record; this is not a gas confirmation file",
        ));
    }
    let (biller_id, business_date, cur) = match decode(1, first)? {
        ConfirmationLine::Header {
            biller_id,
            business_date,
            currency: code,
        } => {
            let cur = currency(&code).map_err(|why| FileRefusal::field(1, "currency", why))?;
            (biller_id, business_date, cur)
        }
        _ => unreachable!("a line starting with H decodes as a header"),
    };
    let mut tally = Tally::default();
    loop {
        let Some((line, text)) = lines.next_line()? else {
            return Err(FileRefusal::line(
                lines.number(),
                "the file ends without its T trailer record (truncated?)",
            ));
        };
        if text.is_empty() {
            return Err(FileRefusal::line(line, "empty line"));
        }
        match decode(line, text)? {
            ConfirmationLine::Header { .. } => {
                return Err(FileRefusal::line(
                    line,
                    "a second H header record: only the first line is a header",
                ))
            }
            ConfirmationLine::Detail {
                reference,
                receipt_no,
                account,
                amount,
                currency: code,
                credited_at,
            } => {
                if code != cur.code() {
                    return Err(FileRefusal::field(
                        line,
                        "currency",
                        format!("this credit is in {code}, the header says the file is in {cur}"),
                    ));
                }
                for (name, value) in [
                    ("reference", &reference),
                    ("receipt_no", &receipt_no),
                    ("account", &account),
                ] {
                    if value.is_empty() {
                        return Err(FileRefusal::field(line, name, format!("{name} is empty")));
                    }
                }
                let amount_minor = decimal_minor(amount, cur)
                    .map_err(|why| FileRefusal::field(line, "amount", why))?;
                let record = TheirRecord {
                    our_reference: reference,
                    their_reference: receipt_no,
                    biller_id: biller_id.clone(),
                    account,
                    amount_minor,
                    currency: code,
                    status: RecordStatus::Credited,
                    at: Some(credited_at.to_rfc3339_opts(SecondsFormat::Secs, true)),
                    line,
                };
                tally
                    .add(&record, cur)
                    .map_err(|why| FileRefusal::field(line, "currency", why))?;
                sink(record);
            }
            ConfirmationLine::Trailer { count, total } => {
                if count != tally.records {
                    return Err(FileRefusal::field(
                        line,
                        "count",
                        format!(
                            "trailer count {count} but the file has {} D records",
                            tally.records
                        ),
                    ));
                }
                let declared = trailer_total(total, cur)
                    .map_err(|why| FileRefusal::field(line, "total", why))?;
                if declared != tally.credited_minor {
                    return Err(FileRefusal::field(
                        line,
                        "total",
                        format!(
                            "trailer total {} but the D records add up to {}",
                            show_minor(declared, Some(cur)),
                            show_minor(tally.credited_minor, Some(cur))
                        ),
                    ));
                }
                if let Some((after, _)) = lines.next_line()? {
                    return Err(FileRefusal::line(
                        after,
                        "nothing may follow the T trailer record",
                    ));
                }
                let mut summary = tally.summary(
                    FileKind::GasFixed,
                    Some(biller_id),
                    business_date,
                    None,
                    line,
                )?;
                summary.currency = Some(cur.code().to_string());
                return Ok(summary);
            }
        }
    }
}

fn trailer_total(total: rust_decimal::Decimal, cur: Currency) -> Result<i128, String> {
    Money::new_or_zero(total, cur)
        .map(|m| m.minor_units())
        .map_err(|e| super::amount_reason(&total.to_string(), cur, e))
}

/// One line through the gas codec; its errors name the field.
fn decode(line: u64, text: &str) -> Result<ConfirmationLine, FileRefusal> {
    ConfirmationLine::decode(text.as_bytes()).map_err(|DecodeError(why)| {
        let field = why
            .split_once("field `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(name, _)| name.to_string());
        let why = if why.contains("record is") {
            format!(
                "{why} (every line of the file is {} bytes)",
                biller_connectors::gas::codec::CONFIRMATION_WIDTH
            )
        } else {
            why
        };
        match field {
            Some(f) => FileRefusal::field(line, &f, why),
            None => FileRefusal::line(line, why),
        }
    })
}
