//! The water company's daily confirmation file (CSV): written by the
//! biller (and its simulator) with [`write()`], read by reconciliation with
//! [`read`].
//!
//! ```text
//! our_reference,biller_reference,biller_id,account_number,amount,currency,credited_at
//! <one row per credit>
//! TRAILER,<count>,<total>
//! ```
//!
//! Every row is a credit. The file names no biller and no date: the
//! biller is the rows' (every row must name the same one) and the
//! business date that of the first row's `credited_at` in the offset it is
//! written in (every row must fall on that date). An empty file (header +
//! `TRAILER,0,0.00`) is legitimate but tells neither: it reads with no
//! biller and [`UNKNOWN_DATE`], and the caller supplies both.

use std::io::BufRead;

use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat};
use rust_decimal::Decimal;

use crate::confirmation::read::{check_trailer_total_and_end, count, strip_bom, Csv, Tally};
use crate::confirmation::{
    credited_on, csv_field, money2, Amounts, CreditRecord, CurrencyUnit, Record, RecordStatus,
    Refusal, Summary, UNKNOWN_DATE,
};

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

const COLUMNS: [&str; 7] = [
    "our_reference",
    "biller_reference",
    "biller_id",
    "account_number",
    "amount",
    "currency",
    "credited_at",
];

/// Whether the first bytes of a file (a few hundred are plenty) are a
/// water confirmation file's: its [`HEADER`] line, or the start of it when
/// at least 32 bytes are in view.
pub fn looks_like(first_bytes: &[u8]) -> bool {
    let b = strip_bom(first_bytes);
    let header = HEADER.as_bytes();
    if b.len() >= header.len() {
        b.starts_with(header) && matches!(b.get(header.len()), None | Some(b'\r' | b'\n'))
    } else {
        b.len() >= 32 && header.starts_with(b)
    }
}

/// Streams the rows of a water confirmation file to `sink` in file order,
/// checking the whole file (header, every row, trailer) with `amounts`'
/// money rules. On `Err` the caller must discard everything the sink
/// received.
pub fn read<A: Amounts>(
    input: impl BufRead,
    amounts: &A,
    sink: &mut dyn FnMut(Record),
) -> Result<Summary, Refusal> {
    let mut csv = Csv::new(input);
    if !csv.next_record()? {
        return Err(Refusal::line(
            1,
            "the file is empty: not even its header line",
        ));
    }
    if csv.text() != HEADER {
        return Err(Refusal::line(
            1,
            format!(
                "the first line must be the header {HEADER:?}; this is not a water confirmation file"
            ),
        ));
    }
    let mut tally = Tally::default();
    let mut biller: Option<String> = None;
    let mut date: Option<NaiveDate> = None;
    loop {
        if !csv.next_record()? {
            return Err(Refusal::line(
                csv.last_line(),
                "the file ends without its TRAILER line (truncated?)",
            ));
        }
        let line = csv.line();
        if csv.field(0) == "TRAILER" {
            if csv.len() != 3 {
                return Err(Refusal::line(
                    line,
                    format!(
                        "the TRAILER line has {} fields, expected 3 (TRAILER,count,total)",
                        csv.len()
                    ),
                ));
            }
            let declared = count(csv.field(1), "trailer count")
                .map_err(|why| Refusal::field(line, "count", why))?;
            if declared != tally.records {
                return Err(Refusal::field(
                    line,
                    "count",
                    format!(
                        "trailer count {declared} but the file has {} rows",
                        tally.records
                    ),
                ));
            }
            check_trailer_total_and_end(&mut csv, amounts, line, 2, &tally, "rows")?;
            return tally.summary(biller, date.unwrap_or(UNKNOWN_DATE), None, line);
        }
        let (record, cur, day) = row(&csv, amounts)?;
        match &biller {
            Some(b) if *b != record.biller_id => {
                return Err(Refusal::field(
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
                return Err(Refusal::field(
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
            .map_err(|why| Refusal::field(line, "currency", why))?;
        sink(record);
    }
}

fn row<R: BufRead, A: Amounts>(
    csv: &Csv<R>,
    amounts: &A,
) -> Result<(Record, A::Currency, NaiveDate), Refusal> {
    let line = csv.line();
    if csv.len() != COLUMNS.len() {
        return Err(Refusal::line(
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
            return Err(Refusal::field(line, name, format!("{name} is empty")));
        }
    }
    let cur = amounts
        .currency(csv.field(5))
        .map_err(|why| Refusal::field(line, "currency", why))?;
    let amount = amounts
        .minor(csv.field(4), cur)
        .map_err(|why| Refusal::field(line, "amount", why))?;
    let at = csv.field(6);
    let day = DateTime::parse_from_rfc3339(at)
        .map_err(|_| {
            Refusal::field(
                line,
                "credited_at",
                format!("{at:?} is not a date and time such as 2026-11-29T10:03:04.005+08:00"),
            )
        })?
        .date_naive();
    Ok((
        Record {
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

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::confirmation::read::test_amounts::TestAmounts;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
    }

    fn plus8() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    fn credit(our: &str, receipt: &str, amount: &str, at: &str) -> CreditRecord {
        CreditRecord {
            our_reference: our.to_string(),
            biller_reference: receipt.to_string(),
            biller_id: "qingpu-water".to_string(),
            account_number: "QP-1001".to_string(),
            amount: Decimal::from_str(amount).unwrap(),
            currency: "CNY".to_string(),
            bill_reference: None,
            credited_at: DateTime::parse_from_rfc3339(at)
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    fn file() -> String {
        let credits = [
            credit("pay-1", "R-1", "88.50", "2026-11-29T02:03:04.005Z"),
            credit("pay-2", "R,\"2\"", "120", "2026-11-29T15:59:59Z"),
            // The next day in +08:00: not in the file.
            credit("pay-3", "R-3", "1.00", "2026-11-29T16:00:00Z"),
        ];
        write(&credits, "qingpu-water", day(), plus8())
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
                biller_id: Some("qingpu-water".to_string()),
                business_date: day(),
                identity: None,
                records: 2,
                credited: 2,
                credited_total_minor: 20850,
                currency: Some("CNY".to_string()),
            }
        );
        assert_eq!(
            records[1],
            Record {
                our_reference: "pay-2".to_string(),
                their_reference: "R,\"2\"".to_string(),
                biller_id: "qingpu-water".to_string(),
                account: "QP-1001".to_string(),
                amount_minor: 12000,
                currency: "CNY".to_string(),
                status: RecordStatus::Credited,
                at: Some("2026-11-29T23:59:59.000+08:00".to_string()),
                line: 3,
            }
        );
    }

    #[test]
    fn a_trailer_count_other_than_the_rows_refuses_the_file() {
        let file = file().replace("TRAILER,2,", "TRAILER,3,");
        let refusal = read(file.as_bytes(), &TestAmounts, &mut |_| {}).unwrap_err();
        assert_eq!(refusal.location, "line 4, field count");
        assert_eq!(refusal.reason, "trailer count 3 but the file has 2 rows");
    }
}
