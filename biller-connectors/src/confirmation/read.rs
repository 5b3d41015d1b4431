//! Reading confirmation files: the types every reader yields, the money
//! rules it is given, and the plumbing the readers share (physical lines,
//! CSV records, counts, trailer totals, the tally of credits).
//!
//! Common rules (every family's reader):
//!
//! * Text is UTF-8 (a UTF-8 byte-order mark at the start is skipped);
//!   lines end with LF, a CR before it is tolerated (not in co-op acks,
//!   whose format forbids it). The last line must end with its LF: a file
//!   cut mid-line is refused even when the cut falls inside the trailer.
//!   Empty lines are refused. A line (or a CSV record spanning lines) is
//!   at most [`MAX_LINE_BYTES`] (the power XML and the co-op ack are read
//!   whole, bounded by their own formats).
//! * Amounts are strict: the caller's [`Amounts`] at the record's
//!   currency, so an amount the rules refuse refuses the file.
//! * The credits of one file are in one currency (the trailer totals add
//!   them); failed records may be in another known currency.
//! * Line numbers are 1-based; a CSV record whose quoted field spans lines
//!   is numbered by its first line.

use std::fmt;
use std::io::{BufRead, Read};
use std::ops::Range;

use chrono::NaiveDate;
use rust_decimal::Decimal;

/// The `business_date` of a file that does not say which day it reports
/// (an empty water CSV): the caller supplies the date.
pub const UNKNOWN_DATE: NaiveDate = NaiveDate::MIN;

/// The longest line (or CSV record spanning lines) read, in bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

// ------------------------------------------------------------------ types

/// What the counterparty says happened to one payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordStatus {
    /// Applied: the biller credited the payer's account.
    Credited,
    /// Not applied (hub `FAILED`, co-op `R` line): nothing was credited.
    Failed,
}

/// One line of a counterparty's file: a biller's confirmation, a hub
/// statement row or a co-op acknowledgement line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// Our reference as they echo it (the payment id).
    pub our_reference: String,
    /// Their reference: receipt number, `hubTxnId`; empty when they have
    /// none (a failed line).
    pub their_reference: String,
    pub biller_id: String,
    pub account: String,
    /// Exact minor units of `currency`.
    pub amount_minor: i64,
    pub currency: String,
    pub status: RecordStatus,
    /// When they applied or refused it (RFC 3339), as the file says.
    pub at: Option<String>,
    /// The line (1-based) of the record in its file: the evidence.
    pub line: u64,
}

/// Why a file was refused: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {reason}")]
pub struct Refusal {
    /// `line 12`, `line 12, field amount`, an XML element path, or `file`.
    pub location: String,
    pub reason: String,
}

impl Refusal {
    /// `line 12`.
    pub fn line(line: u64, reason: impl Into<String>) -> Refusal {
        Refusal {
            location: format!("line {line}"),
            reason: reason.into(),
        }
    }

    /// `line 12, field amount`.
    pub fn field(line: u64, field: &str, reason: impl Into<String>) -> Refusal {
        Refusal {
            location: format!("line {line}, field {field}"),
            reason: reason.into(),
        }
    }

    pub fn at(location: impl Into<String>, reason: impl Into<String>) -> Refusal {
        Refusal {
            location: location.into(),
            reason: reason.into(),
        }
    }
}

/// What a file says about itself, read whole and checked (trailer counts
/// and totals). The file's kind is the caller's: it chose the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
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

// ------------------------------------------------------------ money rules

/// A currency as the caller's money rules know it.
pub trait CurrencyUnit: Copy + Eq + fmt::Display {
    /// Its ISO 4217 code, as files write it.
    fn code(&self) -> &str;
    /// The decimals of its minor unit (CNY 2, JPY 0, KWD 3).
    fn scale(&self) -> u32;
}

/// The money rules a reader applies, supplied by its caller: which
/// currencies exist and how an amount becomes exact minor units (or why it
/// cannot), in the caller's words. The reader adds where (line, field,
/// element) and keeps the order of its checks.
pub trait Amounts {
    type Currency: CurrencyUnit;
    /// A currency by its code as a file writes it; why not otherwise.
    fn currency(&self, code: &str) -> Result<Self::Currency, String>;
    /// A record's amount written as a decimal string (positive), in minor
    /// units of `currency`.
    fn minor(&self, text: &str, currency: Self::Currency) -> Result<i64, String>;
    /// A record's amount as an exact decimal from a codec (positive), in
    /// minor units of `currency`.
    fn decimal_minor(&self, amount: Decimal, currency: Self::Currency) -> Result<i64, String>;
    /// A trailer total as an exact decimal from a codec (zero allowed), in
    /// minor units of `currency`.
    fn decimal_total(&self, amount: Decimal, currency: Self::Currency) -> Result<i128, String>;
}

// ------------------------------------------------------------------ lines

/// Strips one UTF-8 byte-order mark from the start of `bytes`.
pub(crate) fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(bytes)
}

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
    pub(crate) fn next_line(&mut self) -> Result<Option<(u64, &str)>, Refusal> {
        self.buf.clear();
        let n = (&mut self.input)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| {
                Refusal::line(self.line + 1, format!("the file could not be read: {e}"))
            })?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        let line = self.line;
        if self.buf.last() != Some(&b'\n') {
            if self.buf.len() > MAX_LINE_BYTES {
                return Err(Refusal::line(
                    line,
                    format!(
                        "the line is longer than {MAX_LINE_BYTES} bytes; this is not such a file"
                    ),
                ));
            }
            return Err(Refusal::line(
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
            bytes = strip_bom(bytes);
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Some((line, text))),
            Err(e) => Err(Refusal::line(
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
    pub(crate) fn next_record(&mut self) -> Result<bool, Refusal> {
        self.text.clear();
        let Some((line, first)) = self.lines.next_line()? else {
            return Ok(false);
        };
        self.line = line;
        if first.is_empty() {
            return Err(Refusal::line(line, "empty line"));
        }
        self.text.push_str(first);
        // A quoted field still open at the end of the line goes on in the
        // next one.
        while ends_inside_quotes(&self.text) {
            let Some((_, more)) = self.lines.next_line()? else {
                return Err(Refusal::line(
                    line,
                    "a quoted field opened on this line is never closed: the file ends inside it (truncated?)",
                ));
            };
            if self.text.len() + 1 + more.len() > MAX_LINE_BYTES {
                return Err(Refusal::line(
                    line,
                    format!("a quoted field opened on this line runs past {MAX_LINE_BYTES} bytes; is a closing quote missing?"),
                ));
            }
            self.text.push('\n');
            self.text.push_str(more);
        }
        split_csv(&self.text, &mut self.fields, &mut self.ranges)
            .map_err(|why| Refusal::line(line, why))?;
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

/// A trailer total written as a decimal string: zero allowed; with no
/// currency known (no credits), it must be zero.
pub(crate) fn total_minor<A: Amounts>(
    amounts: &A,
    text: &str,
    currency: Option<A::Currency>,
) -> Result<i64, String> {
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
    amounts
        .minor(text, currency)
        .map_err(|why| format!("trailer total: {why}"))
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
pub(crate) fn show_minor<C: CurrencyUnit>(minor: i128, currency: Option<C>) -> String {
    let scale = currency.map_or(2, |c| c.scale());
    Decimal::from_i128_with_scale(minor, scale).to_string()
}

/// The end of a CSV file: the trailer's total (field `total_field` of the
/// trailer on `line`) must equal the credits read (`counted`: what they
/// are called in the message), and nothing may follow the trailer.
pub(crate) fn check_trailer_total_and_end<R: BufRead, A: Amounts>(
    csv: &mut Csv<R>,
    amounts: &A,
    line: u64,
    total_field: usize,
    tally: &Tally<A::Currency>,
    counted: &str,
) -> Result<(), Refusal> {
    let text = csv.field(total_field);
    let total = total_minor(amounts, text, tally.currency)
        .map_err(|why| Refusal::field(line, "total", why))?;
    if i128::from(total) != tally.credited_minor {
        return Err(Refusal::field(
            line,
            "total",
            format!(
                "trailer total {text} but the {counted} add up to {}",
                show_minor(tally.credited_minor, tally.currency)
            ),
        ));
    }
    if csv.next_record()? {
        return Err(Refusal::line(
            csv.line(),
            "nothing may follow the TRAILER line",
        ));
    }
    Ok(())
}

// ----------------------------------------------------------------- totals

/// Counts and sums the records passed to the sink; holds the credits to
/// one currency.
#[derive(Debug)]
pub(crate) struct Tally<C> {
    pub records: u64,
    pub credited: u64,
    pub credited_minor: i128,
    pub currency: Option<C>,
}

impl<C> Default for Tally<C> {
    fn default() -> Tally<C> {
        Tally {
            records: 0,
            credited: 0,
            credited_minor: 0,
            currency: None,
        }
    }
}

impl<C: CurrencyUnit> Tally<C> {
    /// Counts `record` (whose currency is `currency`), refusing a credit
    /// in another currency than the earlier credits'.
    pub(crate) fn add(&mut self, record: &Record, currency: C) -> Result<(), String> {
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

    pub(crate) fn total_i64(&self, line: u64) -> Result<i64, Refusal> {
        i64::try_from(self.credited_minor)
            .map_err(|_| Refusal::line(line, "the credits add up to more than billclear can count"))
    }

    pub(crate) fn summary(
        &self,
        biller_id: Option<String>,
        business_date: NaiveDate,
        identity: Option<String>,
        trailer_line: u64,
    ) -> Result<Summary, Refusal> {
        Ok(Summary {
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

// ------------------------------------------------------------------ tests

/// Money rules for the readers' own tests: CNY (2 decimals), JPY (0),
/// KWD (3); strict plain decimals, refusals in short words.
#[cfg(test)]
pub(crate) mod test_amounts {
    use std::fmt;
    use std::str::FromStr;

    use rust_decimal::Decimal;

    use super::{Amounts, CurrencyUnit};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct Cur(pub &'static str, pub u32);

    impl fmt::Display for Cur {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.pad(self.0)
        }
    }

    impl CurrencyUnit for Cur {
        fn code(&self) -> &str {
            self.0
        }
        fn scale(&self) -> u32 {
            self.1
        }
    }

    pub(crate) struct TestAmounts;

    impl Amounts for TestAmounts {
        type Currency = Cur;

        fn currency(&self, code: &str) -> Result<Cur, String> {
            [Cur("CNY", 2), Cur("JPY", 0), Cur("KWD", 3)]
                .into_iter()
                .find(|c| c.0 == code)
                .ok_or_else(|| format!("unknown currency {code:?}"))
        }

        fn minor(&self, text: &str, currency: Cur) -> Result<i64, String> {
            let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            let ok = match text.split_once('.') {
                Some((i, f)) => plain(i) && plain(f),
                None => plain(text),
            };
            if !ok {
                return Err(format!("amount {text:?} is not a plain decimal"));
            }
            self.decimal_minor(
                Decimal::from_str(text).map_err(|e| e.to_string())?,
                currency,
            )
        }

        fn decimal_minor(&self, amount: Decimal, currency: Cur) -> Result<i64, String> {
            if amount <= Decimal::ZERO {
                return Err(format!("amount {amount} is not positive"));
            }
            let total = self.decimal_total(amount, currency)?;
            i64::try_from(total).map_err(|_| format!("amount {amount} is too large"))
        }

        fn decimal_total(&self, amount: Decimal, currency: Cur) -> Result<i128, String> {
            let n = amount.normalize();
            if amount < Decimal::ZERO || n.scale() > currency.1 {
                return Err(format!("amount {amount} does not fit {currency}"));
            }
            let mut exact = n;
            exact.rescale(currency.1);
            Ok(exact.mantissa())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_records_span_lines_and_unquote() {
        let mut csv = Csv::new("a,\"b,\"\"c\"\"\",d\n\"x\ny\",z\n".as_bytes());
        assert!(csv.next_record().unwrap());
        assert_eq!((csv.line(), csv.len()), (1, 3));
        assert_eq!(csv.field(1), "b,\"c\"");
        assert!(csv.next_record().unwrap());
        assert_eq!((csv.line(), csv.last_line()), (2, 3));
        assert_eq!((csv.field(0), csv.field(1)), ("x\ny", "z"));
        assert!(!csv.next_record().unwrap());
    }

    #[test]
    fn a_last_line_without_its_line_break_is_refused() {
        let mut lines = Lines::new("\u{feff}one\r\ntwo".as_bytes());
        assert_eq!(lines.next_line().unwrap(), Some((1, "one")));
        let refusal = lines.next_line().unwrap_err();
        assert_eq!(refusal.location, "line 2");
        assert!(refusal.reason.contains("truncated?"), "{refusal}");
    }

    #[test]
    fn a_zero_total_needs_no_currency() {
        use test_amounts::{Cur, TestAmounts};
        assert_eq!(
            total_minor::<TestAmounts>(&TestAmounts, "0.00", None),
            Ok(0)
        );
        assert!(total_minor::<TestAmounts>(&TestAmounts, "1.00", None).is_err());
        assert_eq!(
            total_minor(&TestAmounts, "1.50", Some(Cur("CNY", 2))),
            Ok(150)
        );
        assert_eq!(show_minor(-5, Some(Cur("KWD", 3))), "-0.005");
    }
}
