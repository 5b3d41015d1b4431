//! The gas company's daily confirmation file (fixed-width H/D/T records):
//! written by the biller (and its simulator) with [`write()`], read by
//! reconciliation with [`read`] (each line through
//! [`ConfirmationLine::decode`]).
//!
//! Lines of [`codec::CONFIRMATION_WIDTH`] (106) bytes: one `H` header
//! (biller, business date, currency), one `D` detail per credit, one `T`
//! trailer (count, total in minor units), and nothing after it. Every `D`
//! record's currency must be the header's; `at` is the UTC `credited_at`
//! as RFC 3339 (`2026-11-29T02:03:04Z`). The file's amounts are
//! hundredths, so a currency without 2 decimals (JPY) is refused at the
//! first amount that does not fit it.

use std::io::BufRead;

use chrono::{FixedOffset, NaiveDate, SecondsFormat};

use super::codec::{self, ConfirmationLine, DecodeError};
use crate::confirmation::read::{show_minor, strip_bom, Lines, Tally};
use crate::confirmation::{
    credited_on, Amounts, CreditRecord, CurrencyUnit, Record, RecordStatus, Refusal, Summary,
};

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

/// Whether the first bytes of a file (a few hundred are plenty) are a gas
/// confirmation file's: `H` + biller (16 printable ASCII) + `YYYYMMDD` +
/// currency (3 capitals), the line 106 bytes wide when its end is in view.
pub fn looks_like(first_bytes: &[u8]) -> bool {
    use codec::CONFIRMATION_WIDTH;
    let b = strip_bom(first_bytes);
    b.len() >= 28
        && b[0] == b'H'
        && b[1..17].iter().all(|c| (0x20..=0x7e).contains(c))
        && b[17..25].iter().all(u8::is_ascii_digit)
        && b[25..28].iter().all(u8::is_ascii_uppercase)
        && match b.iter().position(|c| *c == b'\n') {
            Some(end) => {
                end == CONFIRMATION_WIDTH || (end == CONFIRMATION_WIDTH + 1 && b[end - 1] == b'\r')
            }
            None => b.len() <= CONFIRMATION_WIDTH + 1,
        }
}

/// Streams the `D` records of a gas confirmation file to `sink` in file
/// order, checking the whole file (header, every record, trailer) with
/// `amounts`' money rules. On `Err` the caller must discard everything the
/// sink received.
pub fn read<A: Amounts>(
    input: impl BufRead,
    amounts: &A,
    sink: &mut dyn FnMut(Record),
) -> Result<Summary, Refusal> {
    let mut lines = Lines::new(input);
    let Some((_, first)) = lines.next_line()? else {
        return Err(Refusal::line(
            1,
            "the file is empty: not even its H header record",
        ));
    };
    if !first.starts_with('H') {
        return Err(Refusal::line(
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
            let cur = amounts
                .currency(&code)
                .map_err(|why| Refusal::field(1, "currency", why))?;
            (biller_id, business_date, cur)
        }
        _ => unreachable!("a line starting with H decodes as a header"),
    };
    let mut tally = Tally::default();
    loop {
        let Some((line, text)) = lines.next_line()? else {
            return Err(Refusal::line(
                lines.number(),
                "the file ends without its T trailer record (truncated?)",
            ));
        };
        if text.is_empty() {
            return Err(Refusal::line(line, "empty line"));
        }
        match decode(line, text)? {
            ConfirmationLine::Header { .. } => {
                return Err(Refusal::line(
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
                    return Err(Refusal::field(
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
                        return Err(Refusal::field(line, name, format!("{name} is empty")));
                    }
                }
                let amount_minor = amounts
                    .decimal_minor(amount, cur)
                    .map_err(|why| Refusal::field(line, "amount", why))?;
                let record = Record {
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
                    .map_err(|why| Refusal::field(line, "currency", why))?;
                sink(record);
            }
            ConfirmationLine::Trailer { count, total } => {
                if count != tally.records {
                    return Err(Refusal::field(
                        line,
                        "count",
                        format!(
                            "trailer count {count} but the file has {} D records",
                            tally.records
                        ),
                    ));
                }
                let declared = amounts
                    .decimal_total(total, cur)
                    .map_err(|why| Refusal::field(line, "total", why))?;
                if declared != tally.credited_minor {
                    return Err(Refusal::field(
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
                    return Err(Refusal::line(
                        after,
                        "nothing may follow the T trailer record",
                    ));
                }
                let mut summary = tally.summary(Some(biller_id), business_date, None, line)?;
                summary.currency = Some(cur.code().to_string());
                return Ok(summary);
            }
        }
    }
}

/// One line through the gas codec; its errors name the field.
fn decode(line: u64, text: &str) -> Result<ConfirmationLine, Refusal> {
    ConfirmationLine::decode(text.as_bytes()).map_err(|DecodeError(why)| {
        let field = why
            .split_once("field `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(name, _)| name.to_string());
        let why = if why.contains("record is") {
            format!(
                "{why} (every line of the file is {} bytes)",
                codec::CONFIRMATION_WIDTH
            )
        } else {
            why
        };
        match field {
            Some(f) => Refusal::field(line, &f, why),
            None => Refusal::line(line, why),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use chrono::{DateTime, Utc};
    use rust_decimal::Decimal;

    use super::*;
    use crate::confirmation::read::test_amounts::TestAmounts;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
    }

    fn plus8() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    fn credits(currency: &str) -> Vec<CreditRecord> {
        [("pay-1", "88.50"), ("pay-2", "0.01")]
            .into_iter()
            .map(|(our, amount)| CreditRecord {
                our_reference: our.to_string(),
                biller_reference: format!("G-{our}"),
                biller_id: "sh-gas".to_string(),
                account_number: "GAS-77".to_string(),
                amount: Decimal::from_str(amount).unwrap(),
                currency: currency.to_string(),
                bill_reference: None,
                credited_at: DateTime::parse_from_rfc3339("2026-11-29T02:03:04Z")
                    .unwrap()
                    .with_timezone(&Utc),
            })
            .collect()
    }

    #[test]
    fn what_write_writes_read_reads_back() {
        let file = write(&credits("CNY"), "sh-gas", day(), plus8(), "CNY");
        assert!(looks_like(file.as_bytes()));
        let mut records = Vec::new();
        let summary = read(file.as_bytes(), &TestAmounts, &mut |r| records.push(r)).unwrap();
        assert_eq!(
            summary,
            Summary {
                biller_id: Some("sh-gas".to_string()),
                business_date: day(),
                identity: None,
                records: 2,
                credited: 2,
                credited_total_minor: 8851,
                currency: Some("CNY".to_string()),
            }
        );
        assert_eq!(
            records[0],
            Record {
                our_reference: "pay-1".to_string(),
                their_reference: "G-pay-1".to_string(),
                biller_id: "sh-gas".to_string(),
                account: "GAS-77".to_string(),
                amount_minor: 8850,
                currency: "CNY".to_string(),
                status: RecordStatus::Credited,
                at: Some("2026-11-29T02:03:04Z".to_string()),
                line: 2,
            }
        );
    }

    #[test]
    fn an_amount_the_currency_cannot_carry_refuses_the_file() {
        let file = write(&credits("JPY"), "sh-gas", day(), plus8(), "JPY");
        let refusal = read(file.as_bytes(), &TestAmounts, &mut |_| {}).unwrap_err();
        assert_eq!(refusal.location, "line 2, field amount");
        assert_eq!(refusal.reason, "amount 88.50 does not fit JPY");
    }
}
