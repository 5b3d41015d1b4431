//! The files a settlement batch produces, all written atomically
//! ([`write_atomic`]) and deterministically: the same header and lines give
//! byte-identical files, and no file reads the wall clock (the only time a
//! file carries besides the lines' own is the batch's `created_at`).
//!
//! - the biller's settlement file, CSV or fixed-width
//!   ([`SettlementFileWriter`], streaming: memory does not grow with the
//!   number of lines), closed by a trailer whose control totals must equal
//!   the batch's totals;
//! - the ISO 20022 pain.001.001.03 credit transfer paying the batch's net to
//!   the biller ([`render_pain001`], [`write_pain001`]);
//! - the manifest listing every file with its SHA-256, written last: its
//!   presence means the set is complete ([`write_manifest`],
//!   [`verify_manifest`]).
//!
//! The layouts are described in `docs/settlement-files.md`.

pub mod atomic;
mod csv;
mod fixed;
mod manifest;
mod pain001;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::domain::ids::BillerId;
use crate::domain::money::{Currency, Money};
use crate::domain::settlement::{BankAccount, BatchTotals, FileFormat};

pub use atomic::{write_atomic, FileDigest};
pub use fixed::{layout_markdown, Field, FieldKind, DETAIL, HEADER, LINE_END, RECORD_LEN, TRAILER};
pub use manifest::{verify_manifest, write_manifest, Manifest, ManifestError, ManifestTotals};
pub use pain001::{render_pain001, write_pain001, PAIN001_NAMESPACE};

use atomic::AtomicFile;

/// What every file of a batch is rendered from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchHeader {
    pub batch_id: uuid::Uuid,
    pub biller_id: String,
    pub biller_name: String,
    pub business_date: NaiveDate,
    pub currency: Currency,
    /// When the batch was closed; the only clock the files use.
    pub created_at: DateTime<Utc>,
    pub cutoff_at: DateTime<Utc>,
    pub format: FileFormat,
    /// e.g. "0.3% min 0.50 max 8.00, rounded half-up".
    pub commission_rule: String,
    pub totals: BatchTotals,
    /// The biller's account.
    pub creditor: BankAccount,
    /// Our settlement account.
    pub debtor: BankAccount,
}

/// A settled payment, or a return recovered from the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemKind {
    Payment,
    Return,
}

impl ItemKind {
    /// The record type in the settlement file.
    pub fn code(&self) -> &'static str {
        match self {
            ItemKind::Payment => "PAY",
            ItemKind::Return => "RET",
        }
    }
}

/// One detail line of the settlement file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemLine {
    pub kind: ItemKind,
    /// Our payment id (UUID text).
    pub our_reference: String,
    pub biller_reference: Option<String>,
    pub account_number: String,
    /// Positive; a return is shown negative in the files.
    pub amount: Decimal,
    /// Zero for returns.
    pub commission: Decimal,
    pub confirmed_at: DateTime<Utc>,
}

/// Which file of a batch: the settlement file, the pain.001 credit
/// transfer, or the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = SettlementFileKind)]
pub enum FileKind {
    Settlement,
    Pain001,
    Manifest,
}

/// A file written, as the manifest lists it. `count` and `total` are the
/// file's own control figures: for the settlement file the number of detail
/// lines and the sum of its amount column (payments minus returns); for the
/// pain.001 one transaction of the net; for the manifest the number of
/// files it lists and the batch's net.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrittenFile {
    pub name: String,
    pub kind: FileKind,
    /// Lower-case hex.
    pub sha256: String,
    pub bytes: u64,
    pub count: u64,
    pub total: Decimal,
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot {op} {}: {source}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "control totals do not match the batch: the batch says {}, the lines add up to {}; file not written",
        describe_totals(.expected),
        describe_totals(.actual)
    )]
    ControlTotals {
        expected: Box<BatchTotals>,
        actual: Box<BatchTotals>,
    },
    #[error("{field} is {len} characters long, at most {max} fit; refused rather than truncated")]
    FieldTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field} holds a character that is not printable ASCII; refused rather than altered")]
    NonAscii { field: &'static str },
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(
        "the batch's net {net} is not greater than zero: there is nothing to pay, no pain.001"
    )]
    NotPayable { net: Decimal },
    #[error("{} exists with different content (sha256 {existing} on disk, {new} rendered); not replaced", .path.display())]
    Conflict {
        path: PathBuf,
        existing: String,
        new: String,
    },
    #[error("settlement file {name}: an earlier write failed, the file was abandoned")]
    Abandoned { name: String },
    #[error("manifest: {0}")]
    Manifest(#[from] ManifestError),
}

impl FileError {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> FileError {
        FileError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

fn describe_totals(t: &BatchTotals) -> String {
    format!(
        "{} payments of {} with commission {}, {} returns of {}, net {}",
        t.count,
        t.gross,
        t.commission,
        t.returns_count,
        t.returns,
        t.net()
    )
}

/// The names of a batch's files:
/// `<biller_id>_<YYYYMMDD>_<batch id>_settlement.csv` (`.txt` for
/// fixed-width), `<biller_id>_<YYYYMMDD>_<batch id>_pain001.xml`,
/// `<biller_id>_<YYYYMMDD>_<batch id>_manifest.json`, the batch id as its
/// 32 lower-case hex digits. Two batches never share a name, even of the
/// same biller and date (a date settled again from a restored or another
/// database into the same directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileNames {
    pub settlement: String,
    pub pain001: String,
    pub manifest: String,
}

/// The batch's file names. The biller id must be a valid [`BillerId`]
/// (lower-case letters, digits, `_`, `-`, at most 64), which keeps every
/// name a plain file name of at most 121 bytes.
pub fn file_names(header: &BatchHeader) -> Result<FileNames, FileError> {
    let id = BillerId::parse(&header.biller_id).map_err(|e| FileError::Invalid {
        field: "biller_id",
        reason: e.to_string(),
    })?;
    let stem = format!(
        "{}_{}_{}",
        id,
        header.business_date.format("%Y%m%d"),
        header.batch_id.simple()
    );
    let ext = match header.format {
        FileFormat::Csv => "csv",
        FileFormat::FixedWidth => "txt",
    };
    Ok(FileNames {
        settlement: format!("{stem}_settlement.{ext}"),
        pain001: format!("{stem}_pain001.xml"),
        manifest: format!("{stem}_manifest.json"),
    })
}

/// `value` at exactly `scale` decimal places; refuses more significant
/// decimals (never rounds money). Zero is always unsigned.
pub(crate) fn at_scale(
    field: &'static str,
    value: Decimal,
    scale: u32,
) -> Result<Decimal, FileError> {
    if value.normalize().scale() > scale {
        return Err(FileError::Invalid {
            field,
            reason: format!("{value} has more than {scale} decimal places"),
        });
    }
    let mut v = value;
    v.rescale(scale);
    if v.is_zero() {
        v.set_sign_positive(true);
    }
    Ok(v)
}

/// A line checked against the batch's currency, amounts at its scale.
pub(crate) struct CheckedLine<'a> {
    pub line: &'a ItemLine,
    /// Negative for a return.
    pub signed_amount: Decimal,
    pub commission: Decimal,
}

fn check_line(line: &ItemLine, currency: Currency) -> Result<CheckedLine<'_>, FileError> {
    let invalid = |field, e: crate::domain::money::MoneyError| FileError::Invalid {
        field,
        reason: e.to_string(),
    };
    let amount = Money::new(line.amount, currency)
        .map_err(|e| invalid("amount", e))?
        .amount();
    let commission = Money::new_or_zero(line.commission, currency)
        .map_err(|e| invalid("commission", e))?
        .amount();
    if line.our_reference.is_empty() {
        return Err(FileError::Invalid {
            field: "our_reference",
            reason: "is empty".into(),
        });
    }
    if line.account_number.is_empty() {
        return Err(FileError::Invalid {
            field: "account_number",
            reason: "is empty".into(),
        });
    }
    let signed_amount = match line.kind {
        ItemKind::Payment => {
            if commission > amount {
                return Err(FileError::Invalid {
                    field: "commission",
                    reason: format!("{commission} is more than the payment {amount}"),
                });
            }
            amount
        }
        ItemKind::Return => {
            if !commission.is_zero() {
                return Err(FileError::Invalid {
                    field: "commission",
                    reason: format!("a return carries no commission, got {commission}"),
                });
            }
            -amount
        }
    };
    Ok(CheckedLine {
        line,
        signed_amount,
        commission,
    })
}

/// The trailer's control figures, computed from the lines written.
pub(crate) struct Trailer {
    /// Detail lines (payments and returns).
    pub count: u64,
    /// Sum of the amount column: payments minus returns.
    pub total: Decimal,
    /// Sum of the commission column.
    pub commission: Decimal,
    /// total - commission (= gross - commission - returns).
    pub net: Decimal,
}

impl Trailer {
    fn of(t: &BatchTotals, scale: u32) -> Result<Trailer, FileError> {
        Ok(Trailer {
            count: t.count + t.returns_count,
            total: at_scale("total", t.gross - t.returns, scale)?,
            commission: at_scale("commission total", t.commission, scale)?,
            net: at_scale("net", t.net(), scale)?,
        })
    }
}

/// The body of the settlement file, by format.
enum Body {
    Csv(Box<::csv::Writer<AtomicFile>>),
    Fixed(Box<AtomicFile>, String),
}

/// Streams a settlement file: [`create`](Self::create) writes the header,
/// [`push`](Self::push) one detail line per item, [`finish`](Self::finish)
/// the trailer, checks the control totals and publishes the file. Nothing
/// appears under the final name unless `finish` succeeds; dropping the
/// writer (or a failed `finish`) removes the temporary file.
///
/// A line refused by `push` (bad amount, field too long, ...) is not
/// written and the writer can go on; after an I/O error the writer is
/// abandoned and every later call fails.
pub struct SettlementFileWriter {
    body: Body,
    name: String,
    currency: Currency,
    expected: BatchTotals,
    actual: BatchTotals,
    failed: bool,
}

impl fmt::Debug for SettlementFileWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SettlementFileWriter")
            .field("name", &self.name)
            .field("actual", &self.actual)
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

impl SettlementFileWriter {
    /// Starts `dir/<settlement file name>` (creating `dir` if missing) in
    /// the header's format and writes its header.
    pub fn create(dir: &Path, header: &BatchHeader) -> Result<SettlementFileWriter, FileError> {
        let name = file_names(header)?.settlement;
        let mut file = AtomicFile::create(dir, &name)?;
        let body = match header.format {
            FileFormat::Csv => Body::Csv(Box::new(csv::start(file)?)),
            FileFormat::FixedWidth => {
                let mut buf = String::with_capacity(RECORD_LEN + 2);
                fixed::header(&mut buf, header)?;
                file.write_all(buf.as_bytes())
                    .map_err(|e| FileError::io("write", file.tmp_path(), e))?;
                Body::Fixed(Box::new(file), buf)
            }
        };
        Ok(SettlementFileWriter {
            body,
            name,
            currency: header.currency,
            expected: header.totals,
            actual: BatchTotals::new(),
            failed: false,
        })
    }

    /// Writes one detail line.
    pub fn push(&mut self, line: &ItemLine) -> Result<(), FileError> {
        if self.failed {
            return Err(FileError::Abandoned {
                name: self.name.clone(),
            });
        }
        let checked = check_line(line, self.currency)?;
        let written = match &mut self.body {
            Body::Csv(w) => csv::detail(w, &checked, self.currency),
            Body::Fixed(file, buf) => {
                fixed::detail(buf, &checked)?;
                file.write_all(buf.as_bytes())
                    .map_err(|e| FileError::io("write", file.tmp_path(), e))
            }
        };
        if let Err(e) = written {
            self.failed = true;
            return Err(e);
        }
        match line.kind {
            ItemKind::Payment => self
                .actual
                .add_payment(checked.signed_amount, checked.commission),
            ItemKind::Return => self.actual.add_return(-checked.signed_amount),
        }
        Ok(())
    }

    /// Writes the trailer, checks the lines' totals against the batch's
    /// (payments count, gross, commission, returns count, returns: all must
    /// be equal) and publishes the file.
    pub fn finish(self) -> Result<WrittenFile, FileError> {
        if self.failed {
            return Err(FileError::Abandoned { name: self.name });
        }
        let trailer = Trailer::of(&self.actual, self.currency.scale())?;
        let file = match self.body {
            Body::Csv(w) => csv::finish(*w, &trailer)?,
            Body::Fixed(mut file, mut buf) => {
                fixed::trailer(&mut buf, &trailer)?;
                file.write_all(buf.as_bytes())
                    .map_err(|e| FileError::io("write", file.tmp_path(), e))?;
                *file
            }
        };
        let (e, a) = (&self.expected, &self.actual);
        let equal = e.count == a.count
            && e.gross == a.gross
            && e.commission == a.commission
            && e.returns_count == a.returns_count
            && e.returns == a.returns;
        if !equal {
            // `file` is dropped here: its temporary file is removed.
            return Err(FileError::ControlTotals {
                expected: Box::new(self.expected),
                actual: Box::new(self.actual),
            });
        }
        let digest = file.commit()?;
        Ok(WrittenFile {
            name: self.name,
            kind: FileKind::Settlement,
            sha256: digest.sha256,
            bytes: digest.bytes,
            count: trailer.count,
            total: trailer.total,
        })
    }
}
