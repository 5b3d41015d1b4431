//! The grid company's daily confirmation XML
//! (`biller_connectors::power::codec::Confirmation`, read by its own
//! `decode`, which checks `Count` and `Total`): read whole, at most
//! `MAX_MESSAGE_BYTES` (1 MiB).

use std::io::{BufRead, Read};

use biller_connectors::power::codec::{Confirmation, DecodeError, MAX_MESSAGE_BYTES};
use chrono::SecondsFormat;
use quick_xml::events::Event;
use quick_xml::Reader;

use super::{currency, decimal_minor, FileSummary, Tally};
use crate::domain::recon::{FileKind, FileRefusal, RecordStatus, TheirRecord};

const CREDIT_PATH: &str = "PowerConfirmation/Credit";

pub(super) fn read(
    input: impl BufRead,
    sink: &mut dyn FnMut(TheirRecord),
) -> Result<FileSummary, FileRefusal> {
    let mut bytes = Vec::new();
    input
        .take(MAX_MESSAGE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FileRefusal::at("file", format!("the file could not be read: {e}")))?;
    if bytes.is_empty() {
        return Err(FileRefusal::at("file", "the file is empty"));
    }
    let text_start = bytes
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(&bytes)
        .iter()
        .find(|b| !b.is_ascii_whitespace());
    if text_start != Some(&b'<') {
        return Err(FileRefusal::line(
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
        let cur = currency(&c.currency).map_err(|why| FileRefusal::at(at("Currency"), why))?;
        let amount_minor =
            decimal_minor(c.amount, cur).map_err(|why| FileRefusal::at(at("Amount"), why))?;
        let record = TheirRecord {
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
            .map_err(|why| FileRefusal::at(at("Currency"), why))?;
        records.push(record);
    }
    let summary = tally.summary(
        FileKind::PowerXml,
        Some(file.biller_code),
        file.business_date,
        None,
        0,
    )?;
    records.into_iter().for_each(&mut *sink);
    Ok(summary)
}

/// The codec's error as a refusal: the element path (`Credit[i]` 1-based)
/// as location, or the line of the byte offset it names.
fn refusal(bytes: &[u8], DecodeError(why): DecodeError) -> FileRefusal {
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
        if let Some((path, _)) = rest.split_once('`') {
            let path = match credit {
                Some(i) => path.replacen(CREDIT_PATH, &format!("{CREDIT_PATH}[{}]", i + 1), 1),
                None => path.to_string(),
            };
            return FileRefusal::at(path, format!("{why}{truncated}"));
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
            return FileRefusal::line(line as u64, format!("{why}{truncated}"));
        }
    }
    FileRefusal::at("document", format!("{why}{truncated}"))
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
