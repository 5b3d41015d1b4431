//! Readers for the counterparties' daily files: each turns one file into
//! [`TheirRecord`]s for reconciliation, checking the whole file (first
//! line, every line, trailer) before anything read from it may be used.
//!
//! | kind | writer (source of truth) | reader |
//! |---|---|---|
//! | [`FileKind::WaterCsv`] | `biller_connectors::water::confirmation` | [`water`] |
//! | [`FileKind::PowerXml`] | `biller_connectors::power::codec::Confirmation` | [`power`] |
//! | [`FileKind::GasFixed`] | `biller_connectors::gas::confirmation` | [`gas`] |
//! | [`FileKind::HubStatement`] | `biller_connectors::hub::statement` | [`hub`] |
//! | [`FileKind::CoopAck`] | `biller_connectors::coop::format::render_ack` | [`coop`] |
//!
//! Bank files ([`FileKind::Camt053`], [`FileKind::Camt054`],
//! [`FileKind::Mt940`]) are not read here but by
//! [`crate::reconcile::bankfile`]; [`read`] refuses them saying so.
//!
//! # Streaming and refusal
//!
//! [`read`] passes the records to a sink in file order as it reads them,
//! and only at the end knows whether the file is whole (its trailer
//! counts and totals). **On `Err` the caller must discard everything the
//! sink received**: a refused file contributes nothing. The line-based
//! formats (water CSV, hub statement, gas fixed-width) are read line by
//! line with one reused buffer, so memory does not grow with the file
//! (a line, or a CSV record spanning lines, is at most
//! [`MAX_LINE_BYTES`]). The co-op ack is bounded by its own format (at
//! most `biller_connectors::coop::MAX_FILE_BYTES`, 8 MiB, read whole by
//! `parse_ack`) and the power XML by the grid company's codec (at most
//! `biller_connectors::power::codec::MAX_MESSAGE_BYTES`, 1 MiB).
//!
//! Every refusal names where ([`FileRefusal::location`]: `line N`,
//! `line N, field X`, an XML element path such as
//! `PowerConfirmation/Credit[2]/Amount`, or `file`) and why, in words a
//! finance person can act on. Line numbers are 1-based; a CSV record
//! whose quoted field spans lines is numbered by its first line.
//!
//! # Common rules
//!
//! * Text is UTF-8 (a UTF-8 byte-order mark at the start is skipped);
//!   lines end with LF, a CR before it is tolerated (not in co-op acks,
//!   whose format forbids it). The last line must end with its LF: a file
//!   cut mid-line is refused even when the cut falls inside the trailer.
//!   Empty lines are refused.
//! * Amounts are strict: [`Money::parse`] at the record's currency, so an
//!   amount with more decimals than the currency has, zero, negative or
//!   not a plain decimal refuses the file. `amount_minor` is exact.
//! * The credits of one file are in one currency (the trailer totals add
//!   them); failed records may be in another known currency.
//! * Nothing checks OUR references for duplicates: a reference twice in a
//!   file is the matcher's business (it is evidence, not a format fault).
//!
//! # Per format
//!
//! * **Water CSV** carries no biller or date of its own. `biller_id` is
//!   the rows' biller (every row must name the same one) and
//!   `business_date` is the date of the first row's `credited_at` in the
//!   offset it is written in (every row must fall on that date). **An
//!   empty water file (header + `TRAILER,0,0.00`) is legitimate but tells
//!   neither: it reads with `biller_id` None and `business_date`
//!   [`UNKNOWN_DATE`] (`NaiveDate::MIN`); the caller supplies both (the
//!   CLI's `--date`, the inbox's biller).**
//! * **Power XML**: `their_reference` = `ReceiptNo`, `our_reference` =
//!   `TxnRef`, biller = `BillerCode`; `Credit[i]` in locations is 1-based.
//!   `at` is `CreditedAt` re-written as RFC 3339 with milliseconds (`Z`
//!   for UTC), which is the writer's own form.
//! * **Gas fixed-width**: biller, business date and currency from the `H`
//!   record; every `D` record's currency must be the header's; `at` is the
//!   UTC `credited_at` as RFC 3339 (`2026-11-29T02:03:04Z`). The file's
//!   amounts are hundredths, so a currency without 2 decimals (JPY) is
//!   refused at the first amount that does not fit it.
//! * **Hub statement**: `SUCCESS` → Credited, `FAILED` → Failed (both
//!   with `their_reference` = `hubTxnId`, which failed transactions have
//!   too), `PROCESSING` rows are checked and counted by the trailer's row
//!   count but not passed to the sink. The header date is the business
//!   date; rows completed on another day are NOT refused (the hub decides
//!   what its day holds). `identity` = `hub:<hub id>:<YYYY-MM-DD>`,
//!   `biller_id` None (a statement covers several billers).
//! * **Co-op ack**: `A` → Credited with `their_reference` = the receipt,
//!   `R` → Failed with an empty `their_reference`; `at` is None (an ack
//!   line carries no time). `business_date` = the ack date, `identity` =
//!   `coop-ack:<batch file id>`. **`biller_id` is the ack's co-op id**: the
//!   co-op is configured under its biller id (`chongming-coop` in
//!   `ops/billers.example.toml`, and `CoopConfig::coop_id` is that same
//!   id), so the two are the same string.

mod coop;
mod gas;
mod hub;
mod power;
mod water;

#[cfg(test)]
mod tests;

use std::io::{BufRead, Read};
use std::ops::Range;

use chrono::NaiveDate;

use crate::domain::money::{Currency, Money, MoneyError};
use crate::domain::recon::{FileKind, FileRefusal, ParsedFile, RecordStatus, TheirRecord};

/// The `business_date` of a file that does not say which day it reports
/// (an empty water CSV): the caller supplies the date.
pub const UNKNOWN_DATE: NaiveDate = NaiveDate::MIN;

/// The longest line (or CSV record spanning lines) read, in bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// What a file says about itself, read whole and checked (trailer counts
/// and totals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    pub kind: FileKind,
    /// The biller (or co-op) the file is about; `None` for a hub statement
    /// and for an empty water file.
    pub biller_id: Option<String>,
    /// The business day the file reports ([`UNKNOWN_DATE`] for an empty
    /// water file).
    pub business_date: NaiveDate,
    /// The file's own identity when it has one (hub id + date, co-op batch
    /// file id).
    pub identity: Option<String>,
    /// How many records were passed to the sink.
    pub records: u64,
    /// How many of them are credits.
    pub credited: u64,
    /// The sum of the credits, in minor units of `currency`.
    pub credited_total_minor: i64,
    /// The currency of the credits (gas: of the header); `None` when the
    /// file has no credit and does not say.
    pub currency: Option<String>,
}

/// Streams the records of a file of `kind` to `sink` in file order,
/// checking the whole file (header, every line, trailer). On `Err` the
/// caller must discard everything the sink received.
pub fn read(
    kind: FileKind,
    input: impl BufRead,
    sink: &mut dyn FnMut(TheirRecord),
) -> Result<FileSummary, FileRefusal> {
    match kind {
        FileKind::WaterCsv => water::read(input, sink),
        FileKind::PowerXml => power::read(input, sink),
        FileKind::GasFixed => gas::read(input, sink),
        FileKind::HubStatement => hub::read(input, sink),
        FileKind::CoopAck => coop::read(input, sink),
        FileKind::Camt053 | FileKind::Camt054 | FileKind::Mt940 => Err(FileRefusal::at(
            "file",
            "a bank statement or notification is read by the bank file reader \
             (reconcile::bankfile), not by the counterparty file readers",
        )),
    }
}

/// Reads a whole file of `kind` into a [`ParsedFile`].
pub fn parse(kind: FileKind, bytes: &[u8]) -> Result<ParsedFile, FileRefusal> {
    let mut records = Vec::new();
    let summary = read(kind, bytes, &mut |r| records.push(r))?;
    Ok(ParsedFile {
        kind,
        biller_id: summary.biller_id,
        business_date: summary.business_date,
        identity: summary.identity,
        records,
    })
}

/// Recognises a file's kind from its first bytes (a few hundred are
/// plenty); `None` if unknown.
pub fn sniff(first_bytes: &[u8]) -> Option<FileKind> {
    let b = first_bytes
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(first_bytes);
    let header = biller_connectors::water::confirmation::HEADER.as_bytes();
    let water = if b.len() >= header.len() {
        b.starts_with(header) && matches!(b.get(header.len()), None | Some(b'\r' | b'\n'))
    } else {
        b.len() >= 32 && header.starts_with(b)
    };
    if water {
        return Some(FileKind::WaterCsv);
    }
    if b.starts_with(b"HUBSTATEMENT,") {
        return Some(FileKind::HubStatement);
    }
    if b.starts_with(b"H|ACK|") {
        return Some(FileKind::CoopAck);
    }
    if looks_like_gas_header(b) {
        return Some(FileKind::GasFixed);
    }
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    if b[start..].starts_with(b"<") {
        let contains = |needle: &[u8]| b.windows(needle.len()).any(|w| w == needle);
        if contains(b"<PowerConfirmation") {
            return Some(FileKind::PowerXml);
        }
    }
    // Bank statements and notifications (camt.053, camt.054, MT940).
    super::bankfile::sniff(b)
}

/// `H` + biller (16 printable ASCII) + `YYYYMMDD` + currency (3 capitals),
/// the line 106 bytes wide when its end is in view.
fn looks_like_gas_header(b: &[u8]) -> bool {
    use biller_connectors::gas::codec::CONFIRMATION_WIDTH;
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

// ------------------------------------------------------------------ lines

/// The physical lines of an input, one reused buffer, numbered from 1.
pub(crate) struct Lines<R> {
    input: R,
    buf: Vec<u8>,
    line: u64,
}

impl<R: BufRead> Lines<R> {
    pub(crate) fn new(input: R) -> Lines<R> {
        Lines {
            input,
            buf: Vec::with_capacity(256),
            line: 0,
        }
    }

    /// The number of the last line returned (0 before the first).
    pub(crate) fn number(&self) -> u64 {
        self.line
    }

    /// The next line without its LF (nor a CR before it), with its
    /// number; `None` at the end of the input. Refuses a line over
    /// [`MAX_LINE_BYTES`], a last line without its LF, and bytes that are
    /// not UTF-8.
    pub(crate) fn next_line(&mut self) -> Result<Option<(u64, &str)>, FileRefusal> {
        self.buf.clear();
        let n = (&mut self.input)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| {
                FileRefusal::line(self.line + 1, format!("the file could not be read: {e}"))
            })?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        let line = self.line;
        if self.buf.last() != Some(&b'\n') {
            if self.buf.len() > MAX_LINE_BYTES {
                return Err(FileRefusal::line(
                    line,
                    format!(
                        "the line is longer than {MAX_LINE_BYTES} bytes; this is not such a file"
                    ),
                ));
            }
            return Err(FileRefusal::line(
                line,
                "the file ends in the middle of this line, without its line break (truncated?)",
            ));
        }
        self.buf.pop();
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        let mut bytes = self.buf.as_slice();
        if line == 1 {
            bytes = bytes
                .strip_prefix(b"\xEF\xBB\xBF".as_slice())
                .unwrap_or(bytes);
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Some((line, text))),
            Err(e) => Err(FileRefusal::line(
                line,
                format!(
                    "not UTF-8 (byte {} of the line); the file must be UTF-8 text",
                    e.valid_up_to() + 1
                ),
            )),
        }
    }
}

// -------------------------------------------------------------------- CSV

/// The records of a CSV file (RFC 4180 quoting: a field holding a comma,
/// quote or line break is quoted, quotes inside doubled), read line by
/// line with reused buffers.
pub(crate) struct Csv<R> {
    lines: Lines<R>,
    /// The record's text (physical lines joined by LF).
    text: String,
    /// The fields, unquoted, one after the other.
    fields: String,
    ranges: Vec<Range<usize>>,
    /// The first line of the current record.
    line: u64,
}

impl<R: BufRead> Csv<R> {
    pub(crate) fn new(input: R) -> Csv<R> {
        Csv {
            lines: Lines::new(input),
            text: String::with_capacity(256),
            fields: String::with_capacity(256),
            ranges: Vec::with_capacity(8),
            line: 0,
        }
    }

    /// The first line of the current record.
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// The last physical line read.
    pub(crate) fn last_line(&self) -> u64 {
        self.lines.number()
    }

    /// The current record's text as it stands in the file.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Field `i` of the current record (unquoted), "" past the end.
    pub(crate) fn field(&self, i: usize) -> &str {
        self.ranges.get(i).map_or("", |r| &self.fields[r.clone()])
    }

    /// Reads the next record; `false` at the end of the input. Refuses an
    /// empty line and a field badly quoted.
    pub(crate) fn next_record(&mut self) -> Result<bool, FileRefusal> {
        self.text.clear();
        let Some((line, first)) = self.lines.next_line()? else {
            return Ok(false);
        };
        self.line = line;
        if first.is_empty() {
            return Err(FileRefusal::line(line, "empty line"));
        }
        self.text.push_str(first);
        // A quoted field still open at the end of the line goes on in the
        // next one.
        while ends_inside_quotes(&self.text) {
            let Some((_, more)) = self.lines.next_line()? else {
                return Err(FileRefusal::line(
                    line,
                    "a quoted field opened on this line is never closed: the file ends inside it (truncated?)",
                ));
            };
            if self.text.len() + 1 + more.len() > MAX_LINE_BYTES {
                return Err(FileRefusal::line(
                    line,
                    format!("a quoted field opened on this line runs past {MAX_LINE_BYTES} bytes; is a closing quote missing?"),
                ));
            }
            self.text.push('\n');
            self.text.push_str(more);
        }
        split_csv(&self.text, &mut self.fields, &mut self.ranges)
            .map_err(|why| FileRefusal::line(line, why))?;
        Ok(true)
    }
}

/// Whether a CSV record's text ends inside a quoted field (only a quote
/// at the start of a field opens one; other faults are left to
/// [`split_csv`]).
fn ends_inside_quotes(text: &str) -> bool {
    #[derive(PartialEq)]
    enum State {
        FieldStart,
        Unquoted,
        Quoted,
        /// Just after a quote that closes a quoted field (or starts `""`).
        Closed,
    }
    let mut state = State::FieldStart;
    for b in text.bytes() {
        state = match (state, b) {
            (State::Quoted, b'"') => State::Closed,
            (State::Quoted, _) => State::Quoted,
            (State::Closed, b'"') | (State::FieldStart, b'"') => State::Quoted,
            (_, b',') => State::FieldStart,
            _ => State::Unquoted,
        };
    }
    state == State::Quoted
}

/// Splits one CSV record into `fields` (unquoted, concatenated) and their
/// `ranges`.
fn split_csv(
    text: &str,
    fields: &mut String,
    ranges: &mut Vec<Range<usize>>,
) -> Result<(), String> {
    fields.clear();
    ranges.clear();
    let b = text.as_bytes();
    let mut i = 0;
    loop {
        let start = fields.len();
        if b.get(i) == Some(&b'"') {
            i += 1;
            loop {
                let Some(j) = text[i..].find('"') else {
                    return Err(format!(
                        "field {} opens a quote it never closes",
                        ranges.len() + 1
                    ));
                };
                fields.push_str(&text[i..i + j]);
                i += j + 1;
                if b.get(i) == Some(&b'"') {
                    fields.push('"');
                    i += 1;
                } else {
                    break;
                }
            }
            ranges.push(start..fields.len());
            match b.get(i) {
                None => return Ok(()),
                Some(b',') => i += 1,
                Some(_) => {
                    return Err(format!(
                        "field {} has text after its closing quote",
                        ranges.len()
                    ))
                }
            }
        } else {
            let end = text[i..].find(',').map_or(b.len(), |j| i + j);
            let field = &text[i..end];
            if field.contains('"') {
                return Err(format!(
                    "field {} holds a quote but is not quoted",
                    ranges.len() + 1
                ));
            }
            fields.push_str(field);
            ranges.push(start..fields.len());
            if end == b.len() {
                return Ok(());
            }
            i = end + 1;
        }
    }
}

// ----------------------------------------------------------------- values

/// A currency billclear knows, by its ISO 4217 code.
pub(crate) fn currency(code: &str) -> Result<Currency, String> {
    Currency::from_code(code).map_err(|_| {
        format!("currency {code:?} is not one billclear carries (an ISO 4217 code such as CNY)")
    })
}

/// Why an amount was refused, in a finance person's words.
pub(crate) fn amount_reason(text: &str, currency: Currency, e: MoneyError) -> String {
    match e {
        MoneyError::TooManyDecimals { scale, .. } => {
            format!("amount {text} has more decimals than {currency} allows ({scale})")
        }
        MoneyError::NotPositive => {
            format!("amount {text} is not positive: a credit moves money")
        }
        MoneyError::TooLarge(_) => {
            format!("amount {text} is larger than any payment billclear carries")
        }
        MoneyError::Malformed(_) => {
            format!("amount {text:?} is not a plain decimal such as 88.50")
        }
        other => format!("amount {text}: {other}"),
    }
}

/// A record's amount written as a decimal string, in minor units of
/// `currency`.
pub(crate) fn amount_minor(text: &str, currency: Currency) -> Result<i64, String> {
    let money = Money::parse(text, currency).map_err(|e| amount_reason(text, currency, e))?;
    minor(&money, text)
}

/// A decimal amount (from a codec) in minor units of `currency`.
pub(crate) fn decimal_minor(
    amount: rust_decimal::Decimal,
    currency: Currency,
) -> Result<i64, String> {
    let text = amount.to_string();
    let money = Money::new(amount, currency).map_err(|e| amount_reason(&text, currency, e))?;
    minor(&money, &text)
}

fn minor(money: &Money, text: &str) -> Result<i64, String> {
    i64::try_from(money.minor_units())
        .map_err(|_| format!("amount {text} is larger than any payment billclear carries"))
}

/// A trailer total written as a decimal string: zero allowed; with no
/// currency known (no credits), it must be zero.
pub(crate) fn total_minor(text: &str, currency: Option<Currency>) -> Result<i64, String> {
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let zero = match text.split_once('.') {
        Some((i, f)) => plain(i) && plain(f) && text.bytes().all(|b| b == b'0' || b == b'.'),
        None => plain(text) && text.bytes().all(|b| b == b'0'),
    };
    if zero {
        return Ok(0);
    }
    let Some(currency) = currency else {
        return Err(format!(
            "trailer total {text:?} but the file has no credit (it should be 0.00)"
        ));
    };
    amount_minor(text, currency).map_err(|why| format!("trailer total: {why}"))
}

/// A count written as decimal digits.
pub(crate) fn count(text: &str, what: &str) -> Result<u64, String> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} {text:?} is not a number"));
    }
    text.parse()
        .map_err(|_| format!("{what} {text:?} is not a number"))
}

/// Minor units back to a decimal string, for messages.
pub(crate) fn show_minor(minor: i128, currency: Option<Currency>) -> String {
    let scale = currency.map_or(2, |c| c.scale());
    rust_decimal::Decimal::from_i128_with_scale(minor, scale).to_string()
}

/// The end of a CSV file: the trailer's total (field `total_field` of the
/// trailer on `line`) must equal the credits read (`counted`: what they
/// are called in the message), and nothing may follow the trailer.
pub(crate) fn check_trailer_total_and_end<R: BufRead>(
    csv: &mut Csv<R>,
    line: u64,
    total_field: usize,
    tally: &Tally,
    counted: &str,
) -> Result<(), FileRefusal> {
    let text = csv.field(total_field);
    let total =
        total_minor(text, tally.currency).map_err(|why| FileRefusal::field(line, "total", why))?;
    if i128::from(total) != tally.credited_minor {
        return Err(FileRefusal::field(
            line,
            "total",
            format!(
                "trailer total {text} but the {counted} add up to {}",
                show_minor(tally.credited_minor, tally.currency)
            ),
        ));
    }
    if csv.next_record()? {
        return Err(FileRefusal::line(
            csv.line(),
            "nothing may follow the TRAILER line",
        ));
    }
    Ok(())
}

// ----------------------------------------------------------------- totals

/// Counts and sums the records passed to the sink; holds the credits to
/// one currency.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub records: u64,
    pub credited: u64,
    pub credited_minor: i128,
    pub currency: Option<Currency>,
}

impl Tally {
    /// Counts `record` (whose currency is `currency`), refusing a credit
    /// in another currency than the earlier credits'.
    pub(crate) fn add(&mut self, record: &TheirRecord, currency: Currency) -> Result<(), String> {
        self.records += 1;
        if record.status == RecordStatus::Credited {
            match self.currency {
                Some(c) if c != currency => {
                    return Err(format!(
                        "this credit is in {currency}, the file's earlier credits are in {c}: one file, one currency"
                    ))
                }
                _ => self.currency = Some(currency),
            }
            self.credited += 1;
            self.credited_minor += i128::from(record.amount_minor);
        }
        Ok(())
    }

    pub(crate) fn total_i64(&self, line: u64) -> Result<i64, FileRefusal> {
        i64::try_from(self.credited_minor).map_err(|_| {
            FileRefusal::line(line, "the credits add up to more than billclear can count")
        })
    }

    pub(crate) fn summary(
        &self,
        kind: FileKind,
        biller_id: Option<String>,
        business_date: NaiveDate,
        identity: Option<String>,
        trailer_line: u64,
    ) -> Result<FileSummary, FileRefusal> {
        Ok(FileSummary {
            kind,
            biller_id,
            business_date,
            identity,
            records: self.records,
            credited: self.credited,
            credited_total_minor: self.total_i64(trailer_line)?,
            currency: self.currency.map(|c| c.code().to_string()),
        })
    }
}
