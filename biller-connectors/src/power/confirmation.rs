//! The grid company's daily confirmation file (XML): written by the biller
//! (and its simulator) with [`Confirmation::encode`], read by
//! reconciliation with [`read`] (through [`Confirmation::decode`], which
//! checks `Count` and `Total`): read whole, at most [`MAX_MESSAGE_BYTES`]
//! (1 MiB).
//!
//! Read back, their reference is `ReceiptNo`, ours `TxnRef`, the biller
//! `BillerCode`; `Credit[i]` in refusal locations is 1-based. `at` is
//! `CreditedAt` re-written as RFC 3339 with milliseconds (`Z` for UTC),
//! the writer's own form.

use std::io::{BufRead, Read};

use chrono::SecondsFormat;
use quick_xml::events::Event;
use quick_xml::Reader;

use super::codec::{Confirmation, DecodeError, MAX_MESSAGE_BYTES};
use crate::confirmation::read::{strip_bom, Tally};
use crate::confirmation::{Amounts, Record, RecordStatus, Refusal, Summary};

const CREDIT_PATH: &str = "PowerConfirmation/Credit";

/// Whether the first bytes of a file (a few hundred are plenty) are a
/// power confirmation file's: XML whose root `PowerConfirmation` is in
/// view.
pub fn looks_like(first_bytes: &[u8]) -> bool {
    let b = strip_bom(first_bytes);
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    if !b[start..].starts_with(b"<") {
        return false;
    }
    let needle = b"<PowerConfirmation";
    b.windows(needle.len()).any(|w| w == needle)
}

/// Passes the credits of a power confirmation file to `sink` in file
/// order, once the whole file is checked (the codec's checks, then every
/// credit's currency and amount with `amounts`' money rules): on `Err` the
/// sink has received nothing.
pub fn read<A: Amounts>(
    input: impl BufRead,
    amounts: &A,
    sink: &mut dyn FnMut(Record),
) -> Result<Summary, Refusal> {
    let mut bytes = Vec::new();
    input
        .take(MAX_MESSAGE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Refusal::at("file", format!("the file could not be read: {e}")))?;
    if bytes.is_empty() {
        return Err(Refusal::at("file", "the file is empty"));
    }
    let text_start = strip_bom(&bytes).iter().find(|b| !b.is_ascii_whitespace());
    if text_start != Some(&b'<') {
        return Err(Refusal::line(
            1,
            "this is not XML: a power confirmation file starts with <?xml or <PowerConfirmation",
        ));
    }
    let file = Confirmation::decode(&bytes).map_err(|e| refusal(&bytes, e))?;
    let lines = credit_lines(&bytes);
    let mut tally = Tally::default();
    // Checked whole before the first record goes to the sink.
    let mut records = Vec::with_capacity(file.credits.len());
    for (i, c) in file.credits.into_iter().enumerate() {
        let at = |leaf: &str| format!("{CREDIT_PATH}[{}]/{leaf}", i + 1);
        let cur = amounts
            .currency(&c.currency)
            .map_err(|why| Refusal::at(at("Currency"), why))?;
        let amount_minor = amounts
            .decimal_minor(c.amount, cur)
            .map_err(|why| Refusal::at(at("Amount"), why))?;
        let record = Record {
            our_reference: c.txn_ref,
            their_reference: c.receipt_no,
            biller_id: file.biller_code.clone(),
            account: c.account_no,
            amount_minor,
            currency: c.currency,
            status: RecordStatus::Credited,
            at: Some(c.credited_at.to_rfc3339_opts(SecondsFormat::Millis, true)),
            line: lines.get(i).copied().unwrap_or(0),
        };
        tally
            .add(&record, cur)
            .map_err(|why| Refusal::at(at("Currency"), why))?;
        records.push(record);
    }
    let summary = tally.summary(Some(file.biller_code), file.business_date, None, 0)?;
    records.into_iter().for_each(&mut *sink);
    Ok(summary)
}

/// The codec's error as a refusal: the element path (`Credit[i]` 1-based)
/// as location, or the line of the byte offset it names.
fn refusal(bytes: &[u8], DecodeError(why): DecodeError) -> Refusal {
    // "Credit[3]: element `PowerConfirmation/Credit/Amount`: ..."
    let (credit, why) = match why
        .strip_prefix("Credit[")
        .and_then(|r| r.split_once("]: "))
    {
        Some((i, rest)) => (i.parse::<usize>().ok(), rest.to_string()),
        None => (None, why),
    };
    let truncated = if why.contains("ends inside") {
        " (truncated?)"
    } else {
        ""
    };
    if let Some((_, rest)) = why.split_once("element `") {
        if let Some((path, _)) = rest.split_once('`').filter(|(path, _)| !path.is_empty()) {
            let path = match credit {
                Some(i) => path.replacen(CREDIT_PATH, &format!("{CREDIT_PATH}[{}]", i + 1), 1),
                None => path.to_string(),
            };
            return Refusal::at(path, format!("{why}{truncated}"));
        }
    }
    if let Some((_, rest)) = why.split_once("at byte ") {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(offset) = digits.parse::<usize>() {
            let line = bytes[..offset.min(bytes.len())]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            return Refusal::line(line as u64, format!("{why}{truncated}"));
        }
    }
    Refusal::at("document", format!("{why}{truncated}"))
}

/// The line (1-based) of each `Credit` child of the root, in order. The
/// document is known well-formed.
fn credit_lines(bytes: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut reader = Reader::from_reader(bytes);
    let mut depth = 0usize;
    let mut line = 1u64;
    let mut counted = 0usize;
    loop {
        let before = usize::try_from(reader.buffer_position()).unwrap_or(bytes.len());
        let event = match reader.read_event() {
            Ok(Event::Eof) | Err(_) => break,
            Ok(e) => e,
        };
        let is_credit = |name: &str| depth == 1 && name == "Credit";
        let at = |line: &mut u64, counted: &mut usize| {
            let upto = before.min(bytes.len());
            *line += bytes[*counted..upto]
                .iter()
                .filter(|b| **b == b'\n')
                .count() as u64;
            *counted = upto;
            *line
        };
        match event {
            Event::Start(s) => {
                if is_credit(s.name().0) {
                    out.push(at(&mut line, &mut counted));
                }
                depth += 1;
            }
            Event::Empty(s) if is_credit(s.name().0) => {
                out.push(at(&mut line, &mut counted));
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use chrono::{DateTime, NaiveDate};
    use rust_decimal::Decimal;

    use super::*;
    use crate::confirmation::read::test_amounts::TestAmounts;
    use crate::power::codec::ConfirmedCredit;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
    }

    fn file(second_currency: &str) -> String {
        let credit = |n: u32, amount: &str, currency: &str| ConfirmedCredit {
            txn_ref: format!("pay-{n}"),
            receipt_no: format!("PR-{n}"),
            account_no: "PW-9".to_string(),
            amount: Decimal::from_str(amount).unwrap(),
            currency: currency.to_string(),
            credited_at: DateTime::parse_from_rfc3339("2026-11-29T10:03:04.005+08:00").unwrap(),
        };
        Confirmation {
            biller_code: "sh-power".to_string(),
            business_date: day(),
            credits: vec![
                credit(1, "88.50", "CNY"),
                credit(2, "11.50", second_currency),
            ],
        }
        .encode()
    }

    #[test]
    fn what_the_codec_writes_read_reads_back() {
        let file = file("CNY");
        assert!(looks_like(file.as_bytes()));
        let mut records = Vec::new();
        let summary = read(file.as_bytes(), &TestAmounts, &mut |r| records.push(r)).unwrap();
        assert_eq!(
            summary,
            Summary {
                biller_id: Some("sh-power".to_string()),
                business_date: day(),
                identity: None,
                records: 2,
                credited: 2,
                credited_total_minor: 10000,
                currency: Some("CNY".to_string()),
            }
        );
        assert_eq!(
            records[1],
            Record {
                our_reference: "pay-2".to_string(),
                their_reference: "PR-2".to_string(),
                biller_id: "sh-power".to_string(),
                account: "PW-9".to_string(),
                amount_minor: 1150,
                currency: "CNY".to_string(),
                status: RecordStatus::Credited,
                at: Some("2026-11-29T10:03:04.005+08:00".to_string()),
                line: 5,
            }
        );
    }

    #[test]
    fn a_currency_the_rules_do_not_know_refuses_the_file_and_passes_nothing() {
        let file = file("XYZ");
        let mut passed = 0;
        let refusal = read(file.as_bytes(), &TestAmounts, &mut |_| passed += 1).unwrap_err();
        assert_eq!(refusal.location, "PowerConfirmation/Credit[2]/Currency");
        assert_eq!(refusal.reason, "unknown currency \"XYZ\"");
        assert_eq!(passed, 0);
    }

    /// Issue 20: a credit as large as a decimal holds after another one
    /// used to overflow the sum checked against `Total` (a panic in
    /// `Confirmation::decode`); it is refused.
    #[test]
    fn credits_whose_sum_overflows_are_refused_not_a_panic() {
        let max = "79228162514264337593543950335";
        let file = file("CNY").replacen(
            "<Amount>11.50</Amount>",
            &format!("<Amount>{max}</Amount>"),
            1,
        );
        let mut passed = 0;
        let refusal = read(file.as_bytes(), &TestAmounts, &mut |_| passed += 1).unwrap_err();
        assert_eq!(refusal.location, "PowerConfirmation/Credit[2]/Amount");
        assert!(
            refusal.reason.contains(&format!(
                "{max} is too large to add up with the other credits: Total cannot be checked"
            )),
            "{refusal:?}"
        );
        assert_eq!(passed, 0);
    }

    /// Issue 20: an element without a name (`<>`) is not XML; its refusal
    /// says where, not an empty location.
    #[test]
    fn an_element_without_a_name_is_refused_with_its_line() {
        let file = file("CNY").replacen("<Credit>", "<><Credit>", 1);
        let refusal = read(file.as_bytes(), &TestAmounts, &mut |_| ()).unwrap_err();
        assert_eq!(refusal.location, "line 4");
        assert!(
            refusal.reason.starts_with("an element without a name"),
            "{refusal:?}"
        );
    }
}
