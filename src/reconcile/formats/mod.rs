//! The counterparties' daily files as reconciliation reads them: each
//! file turns into [`TheirRecord`]s, checking the whole file (first line,
//! every line, trailer) before anything read from it may be used.
//!
//! Each family's reader lives beside its writer in the connectors crate
//! (`biller_connectors`, in the family's folder); this module is
//! billclear's edge to them: it picks the reader by [`FileKind`], gives it
//! billclear's money rules ([`Money::parse`] at the record's currency,
//! [`Currency::from_code`], and the words an amount is refused in), and
//! turns what it yields into [`TheirRecord`]s, [`FileSummary`] and
//! [`FileRefusal`].
//!
//! | kind | writer (source of truth) | reader |
//! |---|---|---|
//! | [`FileKind::WaterCsv`] | [`biller_connectors::water::confirmation::write`] | [`biller_connectors::water::confirmation::read`] |
//! | [`FileKind::PowerXml`] | [`biller_connectors::power::codec::Confirmation`] | [`biller_connectors::power::confirmation::read`] |
//! | [`FileKind::GasFixed`] | [`biller_connectors::gas::confirmation::write`] | [`biller_connectors::gas::confirmation::read`] |
//! | [`FileKind::HubStatement`] | [`biller_connectors::hub::statement::write`] | [`biller_connectors::hub::statement::read`] |
//! | [`FileKind::CoopAck`] | [`biller_connectors::coop::format::render_ack`] | [`biller_connectors::coop::ack::read`] |
//!
//! The plumbing the readers share (lines, CSV records, counts, trailer
//! totals) is in `biller_connectors::confirmation`.
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

#[cfg(test)]
mod tests;

use std::io::BufRead;

use biller_connectors::confirmation::{self as theirs, Amounts, CurrencyUnit};
use biller_connectors::{coop, gas, hub, power, water};
use chrono::NaiveDate;

use crate::domain::money::{Currency, Money, MoneyError};
use crate::domain::recon::{FileKind, FileRefusal, ParsedFile, RecordStatus, TheirRecord};

/// The `business_date` of a file that does not say which day it reports
/// (an empty water CSV): the caller supplies the date.
pub use biller_connectors::confirmation::UNKNOWN_DATE;

/// The longest line (or CSV record spanning lines) read, in bytes.
pub use biller_connectors::confirmation::MAX_LINE_BYTES;

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

impl FileSummary {
    /// A reader's summary of a file of `kind`.
    fn of(kind: FileKind, s: theirs::Summary) -> FileSummary {
        FileSummary {
            kind,
            biller_id: s.biller_id,
            business_date: s.business_date,
            identity: s.identity,
            records: s.records,
            credited: s.credited,
            credited_total_minor: s.credited_total_minor,
            currency: s.currency,
        }
    }
}

/// Streams the records of a file of `kind` to `sink` in file order,
/// checking the whole file (header, every line, trailer). On `Err` the
/// caller must discard everything the sink received.
pub fn read(
    kind: FileKind,
    input: impl BufRead,
    sink: &mut dyn FnMut(TheirRecord),
) -> Result<FileSummary, FileRefusal> {
    let rules = &MoneyRules;
    let sink = &mut |record: theirs::Record| sink(record.into());
    let summary = match kind {
        FileKind::WaterCsv => water::confirmation::read(input, rules, sink),
        FileKind::PowerXml => power::confirmation::read(input, rules, sink),
        FileKind::GasFixed => gas::confirmation::read(input, rules, sink),
        FileKind::HubStatement => hub::statement::read(input, rules, sink),
        FileKind::CoopAck => coop::ack::read(input, rules, sink),
        FileKind::Camt053 | FileKind::Camt054 | FileKind::Mt940 => {
            return Err(FileRefusal::at(
                "file",
                "a bank statement or notification is read by the bank file reader \
                 (reconcile::bankfile), not by the counterparty file readers",
            ))
        }
    }?;
    Ok(FileSummary::of(kind, summary))
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

/// A family's recogniser of its files' first bytes.
type LooksLike = fn(&[u8]) -> bool;

/// The counterparty families' recognisers, in the order they are asked.
const RECOGNISERS: [(LooksLike, FileKind); 5] = [
    (water::confirmation::looks_like, FileKind::WaterCsv),
    (hub::statement::looks_like, FileKind::HubStatement),
    (coop::ack::looks_like, FileKind::CoopAck),
    (gas::confirmation::looks_like, FileKind::GasFixed),
    (power::confirmation::looks_like, FileKind::PowerXml),
];

/// Recognises a file's kind from its first bytes (a few hundred are
/// plenty); `None` if unknown.
pub fn sniff(first_bytes: &[u8]) -> Option<FileKind> {
    if let Some((_, kind)) = RECOGNISERS
        .iter()
        .find(|(looks_like, _)| looks_like(first_bytes))
    {
        return Some(*kind);
    }
    // Bank statements and notifications (camt.053, camt.054, MT940).
    let b = first_bytes
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(first_bytes);
    super::bankfile::sniff(b)
}

// ------------------------------------------------------------ conversions

impl From<theirs::RecordStatus> for RecordStatus {
    fn from(status: theirs::RecordStatus) -> RecordStatus {
        match status {
            theirs::RecordStatus::Credited => RecordStatus::Credited,
            theirs::RecordStatus::Failed => RecordStatus::Failed,
        }
    }
}

impl From<theirs::Record> for TheirRecord {
    fn from(r: theirs::Record) -> TheirRecord {
        TheirRecord {
            our_reference: r.our_reference,
            their_reference: r.their_reference,
            biller_id: r.biller_id,
            account: r.account,
            amount_minor: r.amount_minor,
            currency: r.currency,
            status: r.status.into(),
            at: r.at,
            line: r.line,
        }
    }
}

impl From<theirs::Refusal> for FileRefusal {
    fn from(r: theirs::Refusal) -> FileRefusal {
        FileRefusal::at(r.location, r.reason)
    }
}

// ------------------------------------------------------------ money rules

impl CurrencyUnit for Currency {
    fn code(&self) -> &str {
        Currency::code(self)
    }

    fn scale(&self) -> u32 {
        Currency::scale(self)
    }
}

/// billclear's money rules, as the readers apply them: the currencies it
/// carries ([`Currency::from_code`]), amounts exact at their currency's
/// scale ([`Money::parse`], [`Money::new`]), refusals in a finance
/// person's words.
struct MoneyRules;

impl Amounts for MoneyRules {
    type Currency = Currency;

    /// A currency billclear knows, by its ISO 4217 code.
    fn currency(&self, code: &str) -> Result<Currency, String> {
        Currency::from_code(code).map_err(|_| {
            format!("currency {code:?} is not one billclear carries (an ISO 4217 code such as CNY)")
        })
    }

    /// A record's amount written as a decimal string, in minor units of
    /// `currency`.
    fn minor(&self, text: &str, currency: Currency) -> Result<i64, String> {
        let money = Money::parse(text, currency).map_err(|e| amount_reason(text, currency, e))?;
        minor(&money, text)
    }

    /// A decimal amount (from a codec) in minor units of `currency`.
    fn decimal_minor(
        &self,
        amount: rust_decimal::Decimal,
        currency: Currency,
    ) -> Result<i64, String> {
        let text = amount.to_string();
        let money = Money::new(amount, currency).map_err(|e| amount_reason(&text, currency, e))?;
        minor(&money, &text)
    }

    /// A trailer total (from a codec; zero allowed) in minor units of
    /// `currency`.
    fn decimal_total(
        &self,
        amount: rust_decimal::Decimal,
        currency: Currency,
    ) -> Result<i128, String> {
        Money::new_or_zero(amount, currency)
            .map(|m| m.minor_units())
            .map_err(|e| amount_reason(&amount.to_string(), currency, e))
    }
}

/// Why an amount was refused, in a finance person's words.
fn amount_reason(text: &str, currency: Currency, e: MoneyError) -> String {
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

fn minor(money: &Money, text: &str) -> Result<i64, String> {
    i64::try_from(money.minor_units())
        .map_err(|_| format!("amount {text} is larger than any payment billclear carries"))
}
