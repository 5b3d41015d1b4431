//! The co-op's file formats: the payment batch billclear delivers, the
//! acknowledgement the co-op answers with, and the refusal of a whole file.
//! See the [module documentation](super) for the layouts.
//!
//! Every parser here refuses a file WHOLE at its first fault, naming the
//! line (1-based; 0 for the file as a whole) and the reason: nothing of a
//! malformed or truncated file is ever used.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, SecondsFormat, SubsecRound, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The largest batch, acknowledgement or refusal file read or written.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// The most detail records in one file.
pub const MAX_LINES: usize = 50_000;
/// The largest batch sequence number of a business day (3 digits).
pub const MAX_SEQ: u32 = 999;
/// The field separator.
pub const SEP: char = '|';

/// The largest amount of one line (13 integer digits).
const MAX_INTEGER_DIGITS: usize = 13;
const MAX_ID_LEN: usize = 32;
const MAX_REF_LEN: usize = 64;
const MAX_ACCOUNT_LEN: usize = 34;
const MAX_RECEIPT_LEN: usize = 32;
const MAX_CODE_LEN: usize = 8;
const MAX_REASON_CHARS: usize = 200;

// ------------------------------------------------------------------ errors

/// What is wrong with a file, or with an acknowledgement against its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The file is empty.
    Empty,
    /// Larger than [`MAX_FILE_BYTES`] or more than [`MAX_LINES`] details.
    TooLarge,
    /// Not UTF-8, a CR, an empty line, or a last line without its LF.
    Encoding,
    /// A record type not expected at that place (e.g. a detail before the
    /// header, anything after the trailer).
    RecordType,
    /// A field missing, extra, or not what the format says.
    BadField,
    /// An amount with more than 2 decimals.
    AmountScale,
    /// The same OUR reference twice in one file.
    DuplicateReference,
    /// Line numbers not in sequence.
    LineSequence,
    /// The trailer's counts do not match the details.
    CountMismatch,
    /// The trailer's totals do not match the details.
    TotalMismatch,
    /// The file ends without a trailer (truncated).
    MissingTrailer,
    /// The acknowledgement answers another batch or co-op.
    WrongBatch,
    /// A batch line the acknowledgement does not answer.
    MissingLine,
    /// An acknowledged line the batch does not have.
    ExtraLine,
    /// An acknowledged line whose details (line number, account, amount,
    /// currency) differ from the batch's.
    LineMismatch,
}

/// A file refused whole, or an acknowledgement that does not answer its
/// batch. `line` is the 1-based line of the file (0: the file as a whole;
/// for [`super::reconcile_ack`], the batch line number).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct FileError {
    pub line: usize,
    pub kind: ErrorKind,
    pub reason: String,
}

/// The error of [`parse_ack`] and [`super::reconcile_ack`].
pub type AckError = FileError;

impl FileError {
    pub fn new(line: usize, kind: ErrorKind, reason: impl Into<String>) -> FileError {
        FileError {
            line,
            kind,
            reason: reason.into(),
        }
    }
}

// ------------------------------------------------------------------- batch

/// One batch file: the payments of one co-op collected up to its cut-off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The co-op id, e.g. "chongming-coop": 1 to 32 of `a-z`, `0-9`, `-`.
    pub coop_id: String,
    /// The business day the batch closes.
    pub business_date: NaiveDate,
    /// The batch's number within its business day, 1..=999.
    pub seq: u32,
    /// When the batch was cut. Written to the second (sub-seconds are
    /// dropped).
    pub created_at: DateTime<Utc>,
    /// The payments, in line order (line numbers are 1..=n).
    pub lines: Vec<BatchLine>,
}

/// One payment of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchLine {
    /// OUR reference (the billclear payment id), unique within the batch.
    pub our_reference: String,
    pub account_number: String,
    /// Positive, at most 2 decimals.
    pub amount: Decimal,
    /// ISO 4217 code, e.g. "CNY".
    pub currency: String,
    pub bill_reference: Option<String>,
}

impl Batch {
    /// `PAY_<coop>_<YYYYMMDD>_<seq:03>`, the id in the header and the file
    /// name without `.txt`.
    pub fn file_id(&self) -> String {
        batch_file_id(&self.coop_id, self.business_date, self.seq)
    }

    /// `PAY_<coop>_<YYYYMMDD>_<seq:03>.txt`.
    pub fn file_name(&self) -> String {
        format!("{}.txt", self.file_id())
    }

    /// The sum of the line amounts (exact).
    pub fn total(&self) -> Decimal {
        self.lines.iter().map(|l| l.amount).sum()
    }
}

/// `PAY_<coop>_<YYYYMMDD>_<seq:03>`.
pub fn batch_file_id(coop_id: &str, business_date: NaiveDate, seq: u32) -> String {
    format!("PAY_{coop_id}_{}_{seq:03}", business_date.format("%Y%m%d"))
}

/// The acknowledgement file name of a batch file name: `ACK_<name>`.
pub fn ack_file_name(batch_file_name: &str) -> String {
    format!("ACK_{batch_file_name}")
}

/// The refusal file name of a batch file name: `REJ_<name>`.
pub fn refusal_file_name(batch_file_name: &str) -> String {
    format!("REJ_{batch_file_name}")
}

/// Whether `name` has the shape of a batch file name
/// (`PAY_<coop>_<YYYYMMDD>_<nnn>.txt`, coop id valid).
pub fn is_batch_file_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".txt") else {
        return false;
    };
    let Some(rest) = stem.strip_prefix("PAY_") else {
        return false;
    };
    let parts: Vec<&str> = rest.rsplitn(3, '_').collect();
    let [seq, date, coop] = parts.as_slice() else {
        return false;
    };
    valid_coop_id(coop)
        && seq.len() == 3
        && seq.bytes().all(|b| b.is_ascii_digit())
        && *seq != "000"
        && NaiveDate::parse_from_str(date, "%Y%m%d").is_ok()
        && date.len() == 8
}

/// The batch file's bytes. Refuses (with the line it would have been
/// written on) a batch the co-op could not read back: no lines or too many,
/// a bad co-op id or sequence, a field holding `|` or a control character
/// or too long, an amount not positive or with more than 2 decimals, a
/// currency not 3 capital letters, a reference twice.
pub fn render_batch(batch: &Batch) -> Result<String, FileError> {
    if !valid_coop_id(&batch.coop_id) {
        return Err(FileError::new(
            1,
            ErrorKind::BadField,
            "co-op id must be 1 to 32 of a-z, 0-9, '-'",
        ));
    }
    if !(1..=MAX_SEQ).contains(&batch.seq) {
        return Err(FileError::new(
            1,
            ErrorKind::BadField,
            "sequence must be within 1..=999",
        ));
    }
    if batch.lines.is_empty() {
        return Err(FileError::new(0, ErrorKind::Empty, "a batch has no lines"));
    }
    if batch.lines.len() > MAX_LINES {
        return Err(FileError::new(
            0,
            ErrorKind::TooLarge,
            format!("more than {MAX_LINES} lines"),
        ));
    }
    let mut out = String::new();
    push_record(
        &mut out,
        &[
            "H",
            "PAY",
            &batch.file_id(),
            &batch.coop_id,
            &batch.business_date.format("%Y%m%d").to_string(),
            &timestamp(batch.created_at),
        ],
    );
    let mut seen = HashSet::new();
    for (i, l) in batch.lines.iter().enumerate() {
        let line = i + 2;
        let bad = |what: &str| FileError::new(line, ErrorKind::BadField, what.to_string());
        check_text(&l.our_reference, MAX_REF_LEN).map_err(|e| bad(&format!("reference {e}")))?;
        check_text(&l.account_number, MAX_ACCOUNT_LEN)
            .map_err(|e| bad(&format!("account number {e}")))?;
        if !valid_currency(&l.currency) {
            return Err(bad("currency must be 3 capital letters"));
        }
        if let Some(b) = &l.bill_reference {
            check_text(b, MAX_REF_LEN).map_err(|e| bad(&format!("bill reference {e}")))?;
        }
        let amount = render_amount(l.amount, line, false)?;
        if !seen.insert(l.our_reference.as_str()) {
            return Err(FileError::new(
                line,
                ErrorKind::DuplicateReference,
                format!("reference {} twice", l.our_reference),
            ));
        }
        push_record(
            &mut out,
            &[
                "D",
                &(i + 1).to_string(),
                &l.our_reference,
                &l.account_number,
                &amount,
                &l.currency,
                l.bill_reference.as_deref().unwrap_or(""),
            ],
        );
    }
    let total = render_amount(batch.total(), batch.lines.len() + 2, true)?;
    push_record(&mut out, &["T", &batch.lines.len().to_string(), &total]);
    Ok(out)
}

/// Reads a batch file (the co-op's side). Refused whole at the first
/// fault: see [`ErrorKind`].
pub fn parse_batch(bytes: &[u8]) -> Result<Batch, FileError> {
    let records = split_records(bytes)?;
    let (n, header) = &records[0];
    let h = fields(*n, header, 'H', 6)?;
    if h[1] != "PAY" {
        return Err(FileError::new(
            *n,
            ErrorKind::BadField,
            format!("file type must be PAY, got {:?}", h[1]),
        ));
    }
    let coop_id = h[3].to_string();
    if !valid_coop_id(&coop_id) {
        return Err(FileError::new(*n, ErrorKind::BadField, "bad co-op id"));
    }
    let business_date = parse_date(*n, h[4])?;
    let created_at = parse_timestamp(*n, h[5])?;
    let file_id = h[2];
    let seq = file_id
        .strip_prefix(&format!(
            "PAY_{coop_id}_{}_",
            business_date.format("%Y%m%d")
        ))
        .filter(|s| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u32>().ok())
        .filter(|s| (1..=MAX_SEQ).contains(s))
        .ok_or_else(|| {
            FileError::new(
                *n,
                ErrorKind::BadField,
                format!("file id {file_id:?} is not PAY_<coop>_<YYYYMMDD>_<nnn> of this header"),
            )
        })?;
    let mut lines = Vec::new();
    let mut seen = HashSet::new();
    let mut total = Decimal::ZERO;
    let mut trailer = None;
    for (n, record) in &records[1..] {
        let n = *n;
        if trailer.is_some() {
            return Err(FileError::new(
                n,
                ErrorKind::RecordType,
                "record after the trailer",
            ));
        }
        match record_type(record) {
            "D" => {
                let d = fields(n, record, 'D', 7)?;
                let line_no = parse_count(n, d[1], "line number")?;
                if line_no != lines.len() + 1 {
                    return Err(FileError::new(
                        n,
                        ErrorKind::LineSequence,
                        format!("line number {line_no}, expected {}", lines.len() + 1),
                    ));
                }
                if lines.len() == MAX_LINES {
                    return Err(FileError::new(
                        n,
                        ErrorKind::TooLarge,
                        format!("more than {MAX_LINES} lines"),
                    ));
                }
                let our_reference = text_field(n, d[2], MAX_REF_LEN, "reference")?;
                let account_number = text_field(n, d[3], MAX_ACCOUNT_LEN, "account number")?;
                let amount = parse_amount(n, d[4], false)?;
                let currency = currency_field(n, d[5])?;
                let bill_reference = if d[6].is_empty() {
                    None
                } else {
                    Some(text_field(n, d[6], MAX_REF_LEN, "bill reference")?)
                };
                if !seen.insert(our_reference.clone()) {
                    return Err(FileError::new(
                        n,
                        ErrorKind::DuplicateReference,
                        format!("reference {our_reference} twice"),
                    ));
                }
                total += amount;
                lines.push(BatchLine {
                    our_reference,
                    account_number,
                    amount,
                    currency,
                    bill_reference,
                });
            }
            "T" => {
                let t = fields(n, record, 'T', 3)?;
                let count = parse_count(n, t[1], "count")?;
                let declared = parse_amount(n, t[2], true)?;
                check_count(n, count, lines.len(), "line")?;
                check_total(n, declared, total, "")?;
                trailer = Some(n);
            }
            other => return Err(unexpected(n, other, "a detail (D) or the trailer (T)")),
        }
    }
    if trailer.is_none() {
        return Err(missing_trailer(&records));
    }
    if lines.is_empty() {
        return Err(FileError::new(0, ErrorKind::Empty, "a batch has no lines"));
    }
    Ok(Batch {
        coop_id,
        business_date,
        seq,
        created_at,
        lines,
    })
}

// --------------------------------------------------------- acknowledgement

/// The co-op's answer to one batch file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The id of the batch file answered (`PAY_<coop>_<YYYYMMDD>_<nnn>`).
    pub batch_file_id: String,
    pub coop_id: String,
    /// The co-op's business day of the answer.
    pub ack_date: NaiveDate,
    /// When the co-op wrote it (to the second).
    pub created_at: DateTime<Utc>,
    /// One per batch line answered, line numbers increasing.
    pub lines: Vec<AckLine>,
}

/// The co-op's answer to one batch line, echoing what it read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckLine {
    /// The batch line number answered.
    pub line_no: u32,
    pub our_reference: String,
    pub account_number: String,
    pub amount: Decimal,
    pub currency: String,
    pub status: AckStatus,
}

/// Accepted (credited) or rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AckStatus {
    /// `A`: credited under the co-op's receipt number.
    Accepted { receipt: String },
    /// `R`: not applied; the co-op's reason code and text.
    Rejected { code: String, reason: String },
}

impl Ack {
    /// The ack file name: `ACK_<batch file id>.txt`.
    pub fn file_name(&self) -> String {
        ack_file_name(&format!("{}.txt", self.batch_file_id))
    }
}

/// The acknowledgement file's bytes. Refuses what [`parse_ack`] would.
pub fn render_ack(ack: &Ack) -> Result<String, FileError> {
    if !valid_coop_id(&ack.coop_id) {
        return Err(FileError::new(1, ErrorKind::BadField, "bad co-op id"));
    }
    if !is_batch_file_name(&format!("{}.txt", ack.batch_file_id)) {
        return Err(FileError::new(1, ErrorKind::BadField, "bad batch file id"));
    }
    if ack.lines.len() > MAX_LINES {
        return Err(FileError::new(
            0,
            ErrorKind::TooLarge,
            format!("more than {MAX_LINES} lines"),
        ));
    }
    let mut out = String::new();
    push_record(
        &mut out,
        &[
            "H",
            "ACK",
            &ack.batch_file_id,
            &ack.coop_id,
            &ack.ack_date.format("%Y%m%d").to_string(),
            &timestamp(ack.created_at),
        ],
    );
    let mut seen = HashSet::new();
    let mut last = 0;
    let (mut accepted, mut rejected) = ((0usize, Decimal::ZERO), (0usize, Decimal::ZERO));
    for (i, l) in ack.lines.iter().enumerate() {
        let line = i + 2;
        let bad = |what: String| FileError::new(line, ErrorKind::BadField, what);
        if l.line_no <= last {
            return Err(FileError::new(
                line,
                ErrorKind::LineSequence,
                "line numbers must increase",
            ));
        }
        last = l.line_no;
        check_text(&l.our_reference, MAX_REF_LEN).map_err(|e| bad(format!("reference {e}")))?;
        check_text(&l.account_number, MAX_ACCOUNT_LEN)
            .map_err(|e| bad(format!("account number {e}")))?;
        if !valid_currency(&l.currency) {
            return Err(bad("currency must be 3 capital letters".into()));
        }
        if !seen.insert(l.our_reference.as_str()) {
            return Err(FileError::new(
                line,
                ErrorKind::DuplicateReference,
                format!("reference {} twice", l.our_reference),
            ));
        }
        let amount = render_amount(l.amount, line, false)?;
        let (status, receipt, code, reason) = match &l.status {
            AckStatus::Accepted { receipt } => {
                check_text(receipt, MAX_RECEIPT_LEN).map_err(|e| bad(format!("receipt {e}")))?;
                accepted = (accepted.0 + 1, accepted.1 + l.amount);
                ("A", receipt.as_str(), "", "")
            }
            AckStatus::Rejected { code, reason } => {
                check_code(code).map_err(|e| bad(format!("reason code {e}")))?;
                check_reason(reason).map_err(|e| bad(format!("reason {e}")))?;
                rejected = (rejected.0 + 1, rejected.1 + l.amount);
                ("R", "", code.as_str(), reason.as_str())
            }
        };
        push_record(
            &mut out,
            &[
                "D",
                &l.line_no.to_string(),
                &l.our_reference,
                &l.account_number,
                &amount,
                &l.currency,
                status,
                receipt,
                code,
                reason,
            ],
        );
    }
    let trailer_line = ack.lines.len() + 2;
    push_record(
        &mut out,
        &[
            "T",
            &accepted.0.to_string(),
            &render_amount(accepted.1, trailer_line, true)?,
            &rejected.0.to_string(),
            &render_amount(rejected.1, trailer_line, true)?,
        ],
    );
    Ok(out)
}

/// Reads an acknowledgement file. Refused whole at the first fault (wrong
/// record type, bad field, amount with more than 2 decimals, duplicate
/// reference, line numbers not increasing, counts or totals not those of
/// the trailer, missing trailer, truncated last line), with its line.
pub fn parse_ack(bytes: &[u8]) -> Result<Ack, AckError> {
    let records = split_records(bytes)?;
    let (n, header) = &records[0];
    let h = fields(*n, header, 'H', 6)?;
    if h[1] != "ACK" {
        return Err(FileError::new(
            *n,
            ErrorKind::BadField,
            format!("file type must be ACK, got {:?}", h[1]),
        ));
    }
    let batch_file_id = h[2].to_string();
    if !is_batch_file_name(&format!("{batch_file_id}.txt")) {
        return Err(FileError::new(
            *n,
            ErrorKind::BadField,
            format!("{batch_file_id:?} is not a batch file id"),
        ));
    }
    let coop_id = h[3].to_string();
    if !valid_coop_id(&coop_id) {
        return Err(FileError::new(*n, ErrorKind::BadField, "bad co-op id"));
    }
    let ack_date = parse_date(*n, h[4])?;
    let created_at = parse_timestamp(*n, h[5])?;
    let mut lines: Vec<AckLine> = Vec::new();
    let mut seen = HashSet::new();
    let (mut accepted, mut rejected) = ((0usize, Decimal::ZERO), (0usize, Decimal::ZERO));
    let mut trailer = None;
    for (n, record) in &records[1..] {
        let n = *n;
        if trailer.is_some() {
            return Err(FileError::new(
                n,
                ErrorKind::RecordType,
                "record after the trailer",
            ));
        }
        match record_type(record) {
            "D" => {
                let d = fields(n, record, 'D', 10)?;
                if lines.len() == MAX_LINES {
                    return Err(FileError::new(
                        n,
                        ErrorKind::TooLarge,
                        format!("more than {MAX_LINES} lines"),
                    ));
                }
                let line_no = parse_count(n, d[1], "line number")?;
                let line_no = u32::try_from(line_no)
                    .map_err(|_| FileError::new(n, ErrorKind::BadField, "line number too large"))?;
                if lines.last().is_some_and(|l| l.line_no >= line_no) {
                    return Err(FileError::new(
                        n,
                        ErrorKind::LineSequence,
                        format!("line number {line_no} does not increase"),
                    ));
                }
                let our_reference = text_field(n, d[2], MAX_REF_LEN, "reference")?;
                let account_number = text_field(n, d[3], MAX_ACCOUNT_LEN, "account number")?;
                let amount = parse_amount(n, d[4], false)?;
                let currency = currency_field(n, d[5])?;
                let status = match (d[6], d[7], d[8], d[9]) {
                    ("A", receipt, "", "") => AckStatus::Accepted {
                        receipt: text_field(n, receipt, MAX_RECEIPT_LEN, "receipt")?,
                    },
                    ("A", _, _, _) => {
                        return Err(FileError::new(
                            n,
                            ErrorKind::BadField,
                            "an accepted line carries no reason",
                        ))
                    }
                    ("R", "", code, reason) => {
                        check_code(code).map_err(|e| {
                            FileError::new(n, ErrorKind::BadField, format!("reason code {e}"))
                        })?;
                        check_reason(reason).map_err(|e| {
                            FileError::new(n, ErrorKind::BadField, format!("reason {e}"))
                        })?;
                        AckStatus::Rejected {
                            code: code.to_string(),
                            reason: reason.to_string(),
                        }
                    }
                    ("R", _, _, _) => {
                        return Err(FileError::new(
                            n,
                            ErrorKind::BadField,
                            "a rejected line carries no receipt",
                        ))
                    }
                    (other, _, _, _) => {
                        return Err(FileError::new(
                            n,
                            ErrorKind::BadField,
                            format!("status must be A or R, got {other:?}"),
                        ))
                    }
                };
                if !seen.insert(our_reference.clone()) {
                    return Err(FileError::new(
                        n,
                        ErrorKind::DuplicateReference,
                        format!("reference {our_reference} twice"),
                    ));
                }
                match status {
                    AckStatus::Accepted { .. } => accepted = (accepted.0 + 1, accepted.1 + amount),
                    AckStatus::Rejected { .. } => rejected = (rejected.0 + 1, rejected.1 + amount),
                }
                lines.push(AckLine {
                    line_no,
                    our_reference,
                    account_number,
                    amount,
                    currency,
                    status,
                });
            }
            "T" => {
                let t = fields(n, record, 'T', 5)?;
                let accepted_count = parse_count(n, t[1], "accepted count")?;
                let accepted_total = parse_amount(n, t[2], true)?;
                let rejected_count = parse_count(n, t[3], "rejected count")?;
                let rejected_total = parse_amount(n, t[4], true)?;
                check_count(n, accepted_count, accepted.0, "accepted line")?;
                check_count(n, rejected_count, rejected.0, "rejected line")?;
                check_total(n, accepted_total, accepted.1, "accepted ")?;
                check_total(n, rejected_total, rejected.1, "rejected ")?;
                trailer = Some(n);
            }
            other => return Err(unexpected(n, other, "a detail (D) or the trailer (T)")),
        }
    }
    if trailer.is_none() {
        return Err(missing_trailer(&records));
    }
    Ok(Ack {
        batch_file_id,
        coop_id,
        ack_date,
        created_at,
        lines,
    })
}

// ----------------------------------------------------------------- refusal

/// The co-op's refusal of a whole batch file it could not read: nothing
/// of that file was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRefusal {
    /// The name of the batch file refused, as it was found.
    pub batch_file_name: String,
    pub coop_id: String,
    pub created_at: DateTime<Utc>,
    /// The line of the batch file at fault (0: the file as a whole).
    pub line: usize,
    /// The co-op's reason code (`F01` unreadable, `F02` wrong co-op,
    /// `F03` file id not the file's name).
    pub code: String,
    /// "file refused: ...".
    pub reason: String,
}

impl FileRefusal {
    /// `REJ_<batch file name>`.
    pub fn file_name(&self) -> String {
        refusal_file_name(&self.batch_file_name)
    }
}

/// The refusal file's bytes: one record
/// `REJ|<batch file name>|<coop>|<created at>|<line>|<code>|<reason>` + LF.
pub fn render_refusal(r: &FileRefusal) -> Result<String, FileError> {
    let bad = |what: String| FileError::new(1, ErrorKind::BadField, what);
    check_text(&r.batch_file_name, 128).map_err(|e| bad(format!("batch file name {e}")))?;
    if !valid_coop_id(&r.coop_id) {
        return Err(bad("bad co-op id".into()));
    }
    check_code(&r.code).map_err(|e| bad(format!("reason code {e}")))?;
    check_reason(&r.reason).map_err(|e| bad(format!("reason {e}")))?;
    let mut out = String::new();
    push_record(
        &mut out,
        &[
            "REJ",
            &r.batch_file_name,
            &r.coop_id,
            &timestamp(r.created_at),
            &r.line.to_string(),
            &r.code,
            &r.reason,
        ],
    );
    Ok(out)
}

/// Reads a refusal file (exactly one `REJ` record).
pub fn parse_refusal(bytes: &[u8]) -> Result<FileRefusal, FileError> {
    let records = split_records(bytes)?;
    if let Some((n, _)) = records.get(1) {
        return Err(FileError::new(
            *n,
            ErrorKind::RecordType,
            "a refusal file holds one record",
        ));
    }
    let (n, record) = &records[0];
    let f: Vec<&str> = record.split(SEP).collect();
    if f[0] != "REJ" {
        return Err(unexpected(*n, f[0], "REJ"));
    }
    if f.len() != 7 {
        return Err(FileError::new(
            *n,
            ErrorKind::BadField,
            format!("REJ record has {} fields, expected 7", f.len()),
        ));
    }
    let coop_id = f[2].to_string();
    if !valid_coop_id(&coop_id) {
        return Err(FileError::new(*n, ErrorKind::BadField, "bad co-op id"));
    }
    check_code(f[5])
        .map_err(|e| FileError::new(*n, ErrorKind::BadField, format!("reason code {e}")))?;
    check_reason(f[6])
        .map_err(|e| FileError::new(*n, ErrorKind::BadField, format!("reason {e}")))?;
    Ok(FileRefusal {
        batch_file_name: text_field(*n, f[1], 128, "batch file name")?,
        coop_id,
        created_at: parse_timestamp(*n, f[3])?,
        line: parse_count(*n, f[4], "line")?,
        code: f[5].to_string(),
        reason: f[6].to_string(),
    })
}

// ----------------------------------------------------------------- helpers

/// A co-op id: 1 to 32 of `a-z`, `0-9`, `-` (no `_`, which separates the
/// parts of a file name).
pub fn valid_coop_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_currency(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// A printable ASCII field without `|`, 1 to `max` bytes.
fn check_text(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.len() > max {
        return Err(format!("is longer than {max}"));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic() && b != b'|') {
        return Err("must be printable ASCII without spaces or '|'".into());
    }
    Ok(())
}

fn check_code(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_CODE_LEN || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("must be 1 to {MAX_CODE_LEN} letters or digits"));
    }
    Ok(())
}

/// Free text (UTF-8), 1 to 200 characters, no `|` nor control characters.
fn check_reason(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("is empty".into());
    }
    if s.chars().count() > MAX_REASON_CHARS {
        return Err(format!("is longer than {MAX_REASON_CHARS} characters"));
    }
    if s.chars().any(|c| c == SEP || c.is_control()) {
        return Err("holds '|' or a control character".into());
    }
    Ok(())
}

/// `text` made fit for a reason field: `|` and control characters become
/// spaces, cut to 200 characters.
pub fn sanitize_reason(text: &str) -> String {
    let s: String = text
        .chars()
        .map(|c| if c == SEP || c.is_control() { ' ' } else { c })
        .take(MAX_REASON_CHARS)
        .collect();
    if s.trim().is_empty() {
        "no reason given".to_string()
    } else {
        s
    }
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.trunc_subsecs(0)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn render_amount(amount: Decimal, line: usize, zero_ok: bool) -> Result<String, FileError> {
    if (amount.is_sign_negative() && !amount.is_zero()) || (!zero_ok && amount.is_zero()) {
        return Err(FileError::new(
            line,
            ErrorKind::BadField,
            format!("amount {amount} must be positive"),
        ));
    }
    if amount.normalize().scale() > 2 {
        return Err(FileError::new(
            line,
            ErrorKind::AmountScale,
            format!("amount {amount} has more than 2 decimals"),
        ));
    }
    let mut a = amount.abs();
    a.rescale(2);
    let s = a.to_string();
    if s.len() > MAX_INTEGER_DIGITS + 3 {
        return Err(FileError::new(
            line,
            ErrorKind::BadField,
            format!("amount {amount} has more than {MAX_INTEGER_DIGITS} integer digits"),
        ));
    }
    Ok(s)
}

/// `digits.dd`: no sign, no exponent, no grouping, 1 to 13 integer digits,
/// exactly 2 decimals (more: [`ErrorKind::AmountScale`]).
fn parse_amount(line: usize, s: &str, zero_ok: bool) -> Result<Decimal, FileError> {
    let bad = |why: &str| FileError::new(line, ErrorKind::BadField, format!("amount {s:?}: {why}"));
    let Some((int, frac)) = s.split_once('.') else {
        return Err(bad("must have exactly 2 decimals"));
    };
    if int.is_empty()
        || int.len() > MAX_INTEGER_DIGITS
        || !int.bytes().all(|b| b.is_ascii_digit())
        || (int.len() > 1 && int.starts_with('0'))
    {
        return Err(bad("integer part must be 1 to 13 digits, no leading zero"));
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.is_empty() {
        return Err(bad("decimals must be digits"));
    }
    if frac.len() > 2 {
        return Err(FileError::new(
            line,
            ErrorKind::AmountScale,
            format!("amount {s:?} has more than 2 decimals"),
        ));
    }
    if frac.len() < 2 {
        return Err(bad("must have exactly 2 decimals"));
    }
    let amount: Decimal = s.parse().map_err(|_| bad("not a decimal"))?;
    if !zero_ok && amount.is_zero() {
        return Err(bad("must be positive"));
    }
    Ok(amount)
}

fn parse_count(line: usize, s: &str, what: &str) -> Result<usize, FileError> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FileError::new(
            line,
            ErrorKind::BadField,
            format!("{what} {s:?} must be 1 to 9 digits"),
        ));
    }
    s.parse()
        .map_err(|_| FileError::new(line, ErrorKind::BadField, format!("{what} {s:?}")))
}

fn parse_date(line: usize, s: &str) -> Result<NaiveDate, FileError> {
    if s.len() != 8 {
        return Err(FileError::new(
            line,
            ErrorKind::BadField,
            format!("date {s:?} must be YYYYMMDD"),
        ));
    }
    NaiveDate::parse_from_str(s, "%Y%m%d").map_err(|_| {
        FileError::new(
            line,
            ErrorKind::BadField,
            format!("date {s:?} must be YYYYMMDD"),
        )
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` exactly (UTC, to the second).
fn parse_timestamp(line: usize, s: &str) -> Result<DateTime<Utc>, FileError> {
    let bad = || {
        FileError::new(
            line,
            ErrorKind::BadField,
            format!("timestamp {s:?} must be YYYY-MM-DDTHH:MM:SSZ"),
        )
    };
    if s.len() != 20 || !s.ends_with('Z') {
        return Err(bad());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| bad())
}

fn text_field(line: usize, s: &str, max: usize, what: &str) -> Result<String, FileError> {
    check_text(s, max)
        .map(|()| s.to_string())
        .map_err(|e| FileError::new(line, ErrorKind::BadField, format!("{what} {e}")))
}

fn currency_field(line: usize, s: &str) -> Result<String, FileError> {
    if valid_currency(s) {
        Ok(s.to_string())
    } else {
        Err(FileError::new(
            line,
            ErrorKind::BadField,
            format!("currency {s:?} must be 3 capital letters"),
        ))
    }
}

fn check_count(line: usize, declared: usize, actual: usize, what: &str) -> Result<(), FileError> {
    if declared == actual {
        Ok(())
    } else {
        Err(FileError::new(
            line,
            ErrorKind::CountMismatch,
            format!("trailer says {declared} {what}s, the file has {actual}"),
        ))
    }
}

fn check_total(
    line: usize,
    declared: Decimal,
    actual: Decimal,
    what: &str,
) -> Result<(), FileError> {
    if declared == actual {
        Ok(())
    } else {
        Err(FileError::new(
            line,
            ErrorKind::TotalMismatch,
            format!("trailer says {what}total {declared}, the lines sum to {actual}"),
        ))
    }
}

fn missing_trailer(records: &[(usize, &str)]) -> FileError {
    let last = records.last().map_or(0, |(n, _)| *n);
    FileError::new(
        last,
        ErrorKind::MissingTrailer,
        format!("no trailer after line {last} (truncated file?)"),
    )
}

fn unexpected(line: usize, got: &str, expected: &str) -> FileError {
    let got: String = got.chars().take(8).collect();
    FileError::new(
        line,
        ErrorKind::RecordType,
        format!("record type {got:?}, expected {expected}"),
    )
}

fn record_type(record: &str) -> &str {
    record.split(SEP).next().unwrap_or("")
}

/// The fields of a record of type `kind` with exactly `count` fields.
fn fields(line: usize, record: &str, kind: char, count: usize) -> Result<Vec<&str>, FileError> {
    let f: Vec<&str> = record.split(SEP).collect();
    let mut buf = [0u8; 4];
    let kind_str: &str = kind.encode_utf8(&mut buf);
    if f[0] != kind_str {
        let expected = match kind {
            'H' => "the header (H)",
            'D' => "a detail (D)",
            _ => "the trailer (T)",
        };
        return Err(unexpected(line, f[0], expected));
    }
    if f.len() != count {
        return Err(FileError::new(
            line,
            ErrorKind::BadField,
            format!("{kind} record has {} fields, expected {count}", f.len()),
        ));
    }
    Ok(f)
}

/// The records of a file with their 1-based line numbers: UTF-8, every
/// line ended by LF (a last line without it is a truncated file), no CR,
/// no empty line, at most [`MAX_FILE_BYTES`].
fn split_records(bytes: &[u8]) -> Result<Vec<(usize, &str)>, FileError> {
    if bytes.is_empty() {
        return Err(FileError::new(0, ErrorKind::Empty, "the file is empty"));
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(FileError::new(
            0,
            ErrorKind::TooLarge,
            format!("larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        FileError::new(line, ErrorKind::Encoding, "not UTF-8")
    })?;
    let Some(body) = text.strip_suffix('\n') else {
        let line = text.matches('\n').count() + 1;
        return Err(FileError::new(
            line,
            ErrorKind::Encoding,
            "the last line has no line end (truncated file?)",
        ));
    };
    let mut records = Vec::new();
    for (i, record) in body.split('\n').enumerate() {
        let n = i + 1;
        if record.contains('\r') {
            return Err(FileError::new(
                n,
                ErrorKind::Encoding,
                "carriage return (lines end with LF only)",
            ));
        }
        if record.is_empty() {
            return Err(FileError::new(n, ErrorKind::Encoding, "empty line"));
        }
        records.push((n, record));
    }
    Ok(records)
}

fn push_record(out: &mut String, fields: &[&str]) {
    out.push_str(&fields.join("|"));
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    const GOLDEN_BATCH: &str = "\
H|PAY|PAY_chongming-coop_20261129_001|chongming-coop|20261129|2026-11-29T09:30:00Z
D|1|pay-0001|CM-000123|88.50|CNY|BCM-00012301
D|2|pay-0002|CM-104271|120.00|CNY|
T|2|208.50
";

    const GOLDEN_ACK: &str = "\
H|ACK|PAY_chongming-coop_20261129_001|chongming-coop|20261129|2026-11-29T10:15:00Z
D|1|pay-0001|CM-000123|88.50|CNY|A|CM0000000001||
D|2|pay-0002|CM-104271|120.00|CNY|R||R02|account closed
T|1|88.50|1|120.00
";

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn batch() -> Batch {
        Batch {
            coop_id: "chongming-coop".into(),
            business_date: NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
            seq: 1,
            created_at: at("2026-11-29T09:30:00.789Z"),
            lines: vec![
                BatchLine {
                    our_reference: "pay-0001".into(),
                    account_number: "CM-000123".into(),
                    amount: dec("88.5"),
                    currency: "CNY".into(),
                    bill_reference: Some("BCM-00012301".into()),
                },
                BatchLine {
                    our_reference: "pay-0002".into(),
                    account_number: "CM-104271".into(),
                    amount: dec("120"),
                    currency: "CNY".into(),
                    bill_reference: None,
                },
            ],
        }
    }

    fn ack() -> Ack {
        Ack {
            batch_file_id: "PAY_chongming-coop_20261129_001".into(),
            coop_id: "chongming-coop".into(),
            ack_date: NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
            created_at: at("2026-11-29T10:15:00Z"),
            lines: vec![
                AckLine {
                    line_no: 1,
                    our_reference: "pay-0001".into(),
                    account_number: "CM-000123".into(),
                    amount: dec("88.50"),
                    currency: "CNY".into(),
                    status: AckStatus::Accepted {
                        receipt: "CM0000000001".into(),
                    },
                },
                AckLine {
                    line_no: 2,
                    our_reference: "pay-0002".into(),
                    account_number: "CM-104271".into(),
                    amount: dec("120.00"),
                    currency: "CNY".into(),
                    status: AckStatus::Rejected {
                        code: "R02".into(),
                        reason: "account closed".into(),
                    },
                },
            ],
        }
    }

    #[test]
    fn golden_batch_renders_and_parses_back() {
        let b = batch();
        assert_eq!(b.file_name(), "PAY_chongming-coop_20261129_001.txt");
        assert_eq!(render_batch(&b).unwrap(), GOLDEN_BATCH);
        let parsed = parse_batch(GOLDEN_BATCH.as_bytes()).unwrap();
        let mut want = b;
        want.created_at = at("2026-11-29T09:30:00Z");
        assert_eq!(parsed, want);
        assert_eq!(parsed.total(), dec("208.50"));
    }

    #[test]
    fn golden_ack_renders_and_parses_back() {
        assert_eq!(render_ack(&ack()).unwrap(), GOLDEN_ACK);
        assert_eq!(parse_ack(GOLDEN_ACK.as_bytes()).unwrap(), ack());
        assert_eq!(ack().file_name(), "ACK_PAY_chongming-coop_20261129_001.txt");
    }

    #[test]
    fn render_batch_refuses_what_cannot_be_read_back() {
        let with = |f: &dyn Fn(&mut Batch)| {
            let mut b = batch();
            f(&mut b);
            render_batch(&b).unwrap_err()
        };
        let e = with(&|b| b.lines[1].our_reference = "a|b".into());
        assert_eq!((e.line, e.kind), (3, ErrorKind::BadField));
        let e = with(&|b| b.lines[0].amount = dec("1.005"));
        assert_eq!((e.line, e.kind), (2, ErrorKind::AmountScale));
        let e = with(&|b| b.lines[0].amount = dec("-1.00"));
        assert_eq!(e.kind, ErrorKind::BadField);
        let e = with(&|b| b.lines[0].amount = Decimal::ZERO);
        assert_eq!(e.kind, ErrorKind::BadField);
        let e = with(&|b| b.lines[1].our_reference = "pay-0001".into());
        assert_eq!((e.line, e.kind), (3, ErrorKind::DuplicateReference));
        let e = with(&|b| b.lines.clear());
        assert_eq!(e.kind, ErrorKind::Empty);
        let e = with(&|b| b.seq = 0);
        assert_eq!(e.kind, ErrorKind::BadField);
        let e = with(&|b| b.seq = 1000);
        assert_eq!(e.kind, ErrorKind::BadField);
        let e = with(&|b| b.coop_id = "Chongming_Coop".into());
        assert_eq!(e.kind, ErrorKind::BadField);
        let e = with(&|b| b.lines[0].currency = "cny".into());
        assert_eq!(e.kind, ErrorKind::BadField);
        let e = with(&|b| b.lines[0].account_number = "CM 000123".into());
        assert_eq!(e.kind, ErrorKind::BadField);
        let e = with(&|b| b.lines[0].amount = dec("12345678901234.00"));
        assert_eq!(e.kind, ErrorKind::BadField);
    }

    /// `GOLDEN_ACK` with line `n` (1-based) replaced.
    fn ack_with_line(n: usize, line: &str) -> String {
        GOLDEN_ACK
            .lines()
            .enumerate()
            .map(|(i, l)| if i + 1 == n { line } else { l })
            .map(|l| format!("{l}\n"))
            .collect()
    }

    fn refused(text: &str) -> (usize, ErrorKind) {
        let e = parse_ack(text.as_bytes()).unwrap_err();
        assert!(!e.reason.is_empty());
        (e.line, e.kind)
    }

    #[test]
    fn malformed_acks_are_refused_with_their_line() {
        use ErrorKind::*;
        assert_eq!(refused(""), (0, Empty));
        assert_eq!(refused(&GOLDEN_ACK.replace('\n', "\r\n")), (1, Encoding));
        assert_eq!(
            refused(&GOLDEN_ACK[..GOLDEN_ACK.len() - 1]),
            (4, Encoding),
            "last line without LF: truncated"
        );
        let three: String = GOLDEN_ACK
            .lines()
            .take(3)
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(refused(&three), (3, MissingTrailer));
        assert_eq!(refused(&format!("{GOLDEN_ACK}\n")), (5, Encoding));
        assert_eq!(
            refused(&format!("{GOLDEN_ACK}T|1|88.50|1|120.00\n")),
            (5, RecordType)
        );
        assert_eq!(refused(&ack_with_line(3, "X|2")), (3, RecordType));
        assert_eq!(refused(&ack_with_line(1, "D|1")), (1, RecordType));
        assert_eq!(
            refused(&GOLDEN_ACK.replace("H|ACK|", "H|PAY|")),
            (1, BadField)
        );
        assert_eq!(
            refused(&GOLDEN_ACK.replace("20261129|2026-11-29T10", "2026-11-29|2026-11-29T10")),
            (1, BadField)
        );
        assert_eq!(
            refused(&ack_with_line(
                2,
                "D|1|pay-0001|CM-000123|88.505|CNY|A|CM0000000001||"
            )),
            (2, AmountScale)
        );
        assert_eq!(
            refused(&ack_with_line(
                2,
                "D|1|pay-0001|CM-000123|88.5|CNY|A|CM0000000001||"
            )),
            (2, BadField)
        );
        assert_eq!(
            refused(&ack_with_line(
                2,
                "D|1|pay-0001|CM-000123|-88.50|CNY|A|CM0000000001||"
            )),
            (2, BadField)
        );
        assert_eq!(
            refused(&ack_with_line(
                2,
                "D|1|pay-0001|CM-000123|88.50|CNY|X|CM0000000001||"
            )),
            (2, BadField)
        );
        assert_eq!(
            refused(&ack_with_line(2, "D|1|pay-0001|CM-000123|88.50|CNY|A|||")),
            (2, BadField),
            "accepted without receipt"
        );
        assert_eq!(
            refused(&ack_with_line(
                3,
                "D|2|pay-0002|CM-104271|120.00|CNY|R|CM1||account closed"
            )),
            (3, BadField),
            "rejected with a receipt"
        );
        assert_eq!(
            refused(&ack_with_line(
                2,
                "D|1|pay-0001|CM-000123|88.50|CNY|A|CM0000000001|"
            )),
            (2, BadField),
            "a field missing"
        );
        assert_eq!(
            refused(&ack_with_line(
                3,
                "D|2|pay-0001|CM-104271|120.00|CNY|R||R02|account closed"
            )),
            (3, DuplicateReference)
        );
        assert_eq!(
            refused(&ack_with_line(
                3,
                "D|1|pay-0002|CM-104271|120.00|CNY|R||R02|account closed"
            )),
            (3, LineSequence)
        );
        assert_eq!(
            refused(&ack_with_line(4, "T|2|88.50|1|120.00")),
            (4, CountMismatch)
        );
        assert_eq!(
            refused(&ack_with_line(4, "T|1|88.51|1|120.00")),
            (4, TotalMismatch)
        );
        assert_eq!(
            refused(&ack_with_line(4, "T|1|88.50|1|120.01")),
            (4, TotalMismatch)
        );
        assert_eq!(refused(&ack_with_line(4, "T|1|88.50|1")), (4, BadField));
        let not_utf8 = [GOLDEN_ACK.as_bytes(), b"\xff\n"].concat();
        assert_eq!(parse_ack(&not_utf8).unwrap_err().kind, Encoding);
    }

    #[test]
    fn every_truncation_of_an_ack_is_refused() {
        let bytes = GOLDEN_ACK.as_bytes();
        for cut in 0..bytes.len() {
            let e = parse_ack(&bytes[..cut]).expect_err(&format!("cut at {cut}"));
            assert!(e.line <= 4, "cut at {cut}: {e}");
        }
    }

    #[test]
    fn malformed_batches_are_refused_with_their_line() {
        let with_line = |n: usize, line: &str| -> FileError {
            let text: String = GOLDEN_BATCH
                .lines()
                .enumerate()
                .map(|(i, l)| if i + 1 == n { line } else { l })
                .map(|l| format!("{l}\n"))
                .collect();
            parse_batch(text.as_bytes()).unwrap_err()
        };
        let e = with_line(
            1,
            "H|PAY|PAY_chongming-coop_20261129_002|chongming-coop|20261128|2026-11-29T09:30:00Z",
        );
        assert_eq!((e.line, e.kind), (1, ErrorKind::BadField), "{e}");
        let e = with_line(3, "D|3|pay-0002|CM-104271|120.00|CNY|");
        assert_eq!((e.line, e.kind), (3, ErrorKind::LineSequence));
        let e = with_line(3, "D|2|pay-0001|CM-104271|120.00|CNY|");
        assert_eq!((e.line, e.kind), (3, ErrorKind::DuplicateReference));
        let e = with_line(4, "T|2|208.49");
        assert_eq!((e.line, e.kind), (4, ErrorKind::TotalMismatch));
        let e = with_line(4, "T|3|208.50");
        assert_eq!((e.line, e.kind), (4, ErrorKind::CountMismatch));
        let e = parse_batch(b"H|PAY|PAY_chongming-coop_20261129_001|chongming-coop|20261129|2026-11-29T09:30:00Z\nT|0|0.00\n").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Empty);
        for cut in 0..GOLDEN_BATCH.len() {
            assert!(
                parse_batch(&GOLDEN_BATCH.as_bytes()[..cut]).is_err(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn refusal_round_trips() {
        let r = FileRefusal {
            batch_file_name: "PAY_chongming-coop_20261129_003.txt".into(),
            coop_id: "chongming-coop".into(),
            created_at: at("2026-11-29T10:15:00Z"),
            line: 4,
            code: "F01".into(),
            reason: "file refused: line 4: no trailer".into(),
        };
        let text = render_refusal(&r).unwrap();
        assert_eq!(
            text,
            "REJ|PAY_chongming-coop_20261129_003.txt|chongming-coop|2026-11-29T10:15:00Z|4|F01|file refused: line 4: no trailer\n"
        );
        assert_eq!(parse_refusal(text.as_bytes()).unwrap(), r);
        assert_eq!(r.file_name(), "REJ_PAY_chongming-coop_20261129_003.txt");
        assert!(parse_refusal(format!("{text}{text}").as_bytes()).is_err());
        assert_eq!(sanitize_reason("a|b\nc"), "a b c");
    }

    #[test]
    fn batch_file_names() {
        assert!(is_batch_file_name("PAY_chongming-coop_20261129_001.txt"));
        assert!(!is_batch_file_name("PAY_chongming-coop_20261129_000.txt"));
        assert!(!is_batch_file_name("PAY_chongming-coop_20261129_01.txt"));
        assert!(!is_batch_file_name("PAY_chongming-coop_20261329_001.txt"));
        assert!(!is_batch_file_name("PAY_chongming_coop_20261129_001.txt"));
        assert!(!is_batch_file_name(
            "ACK_PAY_chongming-coop_20261129_001.txt"
        ));
        assert!(!is_batch_file_name("PAY_chongming-coop_20261129_001.csv"));
        assert_eq!(
            batch_file_id(
                "chongming-coop",
                NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
                7
            ),
            "PAY_chongming-coop_20260102_007"
        );
    }
}
