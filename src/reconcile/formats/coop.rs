//! One co-op acknowledgement file (`ACK_PAY_<coop>_<date>_<n>.txt`, read
//! by `biller_connectors::coop::format::parse_ack`, which checks the
//! trailer's counts and totals): read whole, at most 8 MiB.

use std::io::{BufRead, Read};

use biller_connectors::coop::format::{parse_ack, AckStatus, FileError};
use biller_connectors::coop::MAX_FILE_BYTES;

use super::{currency, decimal_minor, FileSummary, Tally};
use crate::domain::recon::{FileKind, FileRefusal, RecordStatus, TheirRecord};

pub(super) fn read(
    input: impl BufRead,
    sink: &mut dyn FnMut(TheirRecord),
) -> Result<FileSummary, FileRefusal> {
    let mut bytes = Vec::new();
    input
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FileRefusal::at("file", format!("the file could not be read: {e}")))?;
    let ack = parse_ack(&bytes).map_err(refusal)?;
    let mut tally = Tally::default();
    let mut records = Vec::with_capacity(ack.lines.len());
    for (i, l) in ack.lines.into_iter().enumerate() {
        // The header is line 1 and every record is one line.
        let line = i as u64 + 2;
        let cur = currency(&l.currency).map_err(|why| FileRefusal::field(line, "currency", why))?;
        let amount_minor =
            decimal_minor(l.amount, cur).map_err(|why| FileRefusal::field(line, "amount", why))?;
        let (status, their_reference) = match l.status {
            AckStatus::Accepted { receipt } => (RecordStatus::Credited, receipt),
            AckStatus::Rejected { .. } => (RecordStatus::Failed, String::new()),
        };
        let record = TheirRecord {
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
            .map_err(|why| FileRefusal::field(line, "currency", why))?;
        records.push(record);
    }
    let identity = format!("coop-ack:{}", ack.batch_file_id);
    let summary = tally.summary(
        FileKind::CoopAck,
        Some(ack.coop_id),
        ack.ack_date,
        Some(identity),
        records.len() as u64 + 2,
    )?;
    records.into_iter().for_each(&mut *sink);
    Ok(summary)
}

/// The co-op parser's error: its line (0: the file as a whole) and reason.
fn refusal(e: FileError) -> FileRefusal {
    if e.line == 0 {
        FileRefusal::at("file", e.reason)
    } else {
        FileRefusal::line(e.line as u64, e.reason)
    }
}
