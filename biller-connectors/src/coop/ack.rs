//! One co-op acknowledgement file (`ACK_PAY_<coop>_<date>_<n>.txt`,
//! written by [`render_ack`](super::format::render_ack)) read for
//! reconciliation by [`read`], through [`parse_ack`], which checks the
//! trailer's counts and totals: read whole, at most [`MAX_FILE_BYTES`]
//! (8 MiB).
//!
//! Read back, `A` is a credit with their reference = the receipt, `R` a
//! failed record with an empty their reference; `at` is None (an ack line
//! carries no time). The business date is the ack date, the identity
//! `coop-ack:<batch file id>`, the biller the ack's co-op id.

use std::io::{BufRead, Read};

use super::format::{parse_ack, AckStatus, FileError, MAX_FILE_BYTES};
use crate::confirmation::read::{strip_bom, Tally};
use crate::confirmation::{Amounts, Record, RecordStatus, Refusal, Summary};

/// Whether the first bytes of a file are an acknowledgement's (its first
/// line starts `H|ACK|`).
pub fn looks_like(first_bytes: &[u8]) -> bool {
    strip_bom(first_bytes).starts_with(b"H|ACK|")
}

/// Passes the lines of a co-op acknowledgement to `sink` in file order,
/// once the whole file is checked (the format's checks, then every line's
/// currency and amount with `amounts`' money rules): on `Err` the sink has
/// received nothing.
pub fn read<A: Amounts>(
    input: impl BufRead,
    amounts: &A,
    sink: &mut dyn FnMut(Record),
) -> Result<Summary, Refusal> {
    let mut bytes = Vec::new();
    input
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Refusal::at("file", format!("the file could not be read: {e}")))?;
    let ack = parse_ack(&bytes).map_err(refusal)?;
    let mut tally = Tally::default();
    let mut records = Vec::with_capacity(ack.lines.len());
    for (i, l) in ack.lines.into_iter().enumerate() {
        // The header is line 1 and every record is one line.
        let line = i as u64 + 2;
        let cur = amounts
            .currency(&l.currency)
            .map_err(|why| Refusal::field(line, "currency", why))?;
        let amount_minor = amounts
            .decimal_minor(l.amount, cur)
            .map_err(|why| Refusal::field(line, "amount", why))?;
        let (status, their_reference) = match l.status {
            AckStatus::Accepted { receipt } => (RecordStatus::Credited, receipt),
            AckStatus::Rejected { .. } => (RecordStatus::Failed, String::new()),
        };
        let record = Record {
            our_reference: l.our_reference,
            their_reference,
            biller_id: ack.coop_id.clone(),
            account: l.account_number,
            amount_minor,
            currency: l.currency,
            status,
            at: None,
            line,
        };
        tally
            .add(&record, cur)
            .map_err(|why| Refusal::field(line, "currency", why))?;
        records.push(record);
    }
    let identity = format!("coop-ack:{}", ack.batch_file_id);
    let summary = tally.summary(
        Some(ack.coop_id),
        ack.ack_date,
        Some(identity),
        records.len() as u64 + 2,
    )?;
    records.into_iter().for_each(&mut *sink);
    Ok(summary)
}

/// The co-op parser's error: its line (0: the file as a whole) and reason.
fn refusal(e: FileError) -> Refusal {
    if e.line == 0 {
        Refusal::at("file", e.reason)
    } else {
        Refusal::line(e.line as u64, e.reason)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use chrono::{DateTime, NaiveDate, Utc};
    use rust_decimal::Decimal;

    use super::*;
    use crate::confirmation::read::test_amounts::TestAmounts;
    use crate::coop::format::{render_ack, Ack, AckLine};

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
    }

    fn file(currency: &str) -> String {
        let line = |n: u32, status: AckStatus| AckLine {
            line_no: n,
            our_reference: format!("pay-{n}"),
            account_number: format!("CM-{n:06}"),
            amount: Decimal::from_str("88.50").unwrap(),
            currency: currency.to_string(),
            status,
        };
        render_ack(&Ack {
            batch_file_id: "PAY_chongming-coop_20261129_001".to_string(),
            coop_id: "chongming-coop".to_string(),
            ack_date: day(),
            created_at: DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            lines: vec![
                line(
                    1,
                    AckStatus::Accepted {
                        receipt: "CMR-1".to_string(),
                    },
                ),
                line(
                    2,
                    AckStatus::Rejected {
                        code: "R01".to_string(),
                        reason: "account not found".to_string(),
                    },
                ),
            ],
        })
        .unwrap()
    }

    #[test]
    fn what_render_ack_writes_read_reads_back() {
        let file = file("CNY");
        assert!(looks_like(file.as_bytes()));
        let mut records = Vec::new();
        let summary = read(file.as_bytes(), &TestAmounts, &mut |r| records.push(r)).unwrap();
        assert_eq!(
            summary,
            Summary {
                biller_id: Some("chongming-coop".to_string()),
                business_date: day(),
                identity: Some("coop-ack:PAY_chongming-coop_20261129_001".to_string()),
                records: 2,
                credited: 1,
                credited_total_minor: 8850,
                currency: Some("CNY".to_string()),
            }
        );
        assert_eq!(
            records[1],
            Record {
                our_reference: "pay-2".to_string(),
                their_reference: String::new(),
                biller_id: "chongming-coop".to_string(),
                account: "CM-000002".to_string(),
                amount_minor: 8850,
                currency: "CNY".to_string(),
                status: RecordStatus::Failed,
                at: None,
                line: 3,
            }
        );
    }

    #[test]
    fn an_amount_the_currency_cannot_carry_refuses_the_file() {
        let refusal = read(file("JPY").as_bytes(), &TestAmounts, &mut |_| {}).unwrap_err();
        assert_eq!(refusal.location, "line 2, field amount");
        assert_eq!(refusal.reason, "amount 88.50 does not fit JPY");
    }
}
