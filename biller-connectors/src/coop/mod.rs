//! The water co-op (`chongming-coop`): no online API, payments delivered as
//! batch files into the co-op's drop directory, answered later by
//! acknowledgement files in an ack directory. This is NOT a
//! [`crate::Connector`]: paying is not synchronous. billclear cuts a
//! [`Batch`] at the co-op's cut-off, [`write_batch`]es it, and later
//! [`read_acks`], [`reconcile_ack`]s each against the batch it answers and
//! [`mark_processed`]s it.
//!
//! # Files
//!
//! Text, UTF-8 (ASCII in practice), one record per line, every line ended
//! by LF (no CR; a last line without its LF is a truncated file), fields
//! separated by `|` (no field may hold `|` or a control character; no
//! quoting, no padding). Amounts are decimal strings with exactly 2
//! decimals (`88.50`, `0.01`; no sign, no grouping, at most 13 integer
//! digits); totals are exact sums. Dates are `YYYYMMDD`; times are UTC
//! `YYYY-MM-DDTHH:MM:SSZ`. Files are at most 8 MiB and 50 000 lines.
//!
//! ## Batch file `PAY_<coop>_<YYYYMMDD>_<seq>.txt` (billclear → co-op)
//!
//! `<seq>` is 3 digits, 001..=999, the batch's number within the business
//! day; the file id is the name without `.txt`.
//!
//! ```text
//! H|PAY|<file id>|<coop id>|<business date>|<created at>
//! D|<line no>|<our reference>|<account number>|<amount>|<currency>|<bill reference or empty>
//! ...
//! T|<line count>|<total amount>
//! ```
//!
//! Line numbers run 1..=n in order; OUR references are unique in a file.
//! Example (the golden file of the tests):
//!
//! ```text
//! H|PAY|PAY_chongming-coop_20261129_001|chongming-coop|20261129|2026-11-29T09:30:00Z
//! D|1|pay-0001|CM-000123|88.50|CNY|BCM-00012301
//! D|2|pay-0002|CM-104271|120.00|CNY|
//! T|2|208.50
//! ```
//!
//! ## Acknowledgement file `ACK_<batch file name>` (co-op → billclear)
//!
//! ```text
//! H|ACK|<batch file id>|<coop id>|<ack date>|<created at>
//! D|<line no>|<our reference>|<account number>|<amount>|<currency>|A|<receipt no>||
//! D|<line no>|<our reference>|<account number>|<amount>|<currency>|R||<reason code>|<reason text>
//! ...
//! T|<accepted count>|<accepted total>|<rejected count>|<rejected total>
//! ```
//!
//! A detail echoes the batch line it answers (line number, reference,
//! account, amount, currency); `A` carries the co-op's receipt number and
//! no reason, `R` a reason code (1..8 letters/digits) and a text (free
//! UTF-8, at most 200 characters) and no receipt. The co-op's codes: `R01`
//! account not found, `R02` account closed, `R03` currency not accepted,
//! `R04` amount not accepted, `R05` reference already used with other
//! details. A reference the co-op credited in an earlier file is
//! acknowledged `A` again with its ORIGINAL receipt number (never credited
//! twice). The ack files are also the co-op's daily confirmation: there is
//! no other; reconciliation reads them with [`ack::read`].
//!
//! ## Refusal file `REJ_<batch file name>` (co-op → billclear)
//!
//! A batch file the co-op cannot read at all (malformed, truncated, trailer
//! not matching, another co-op's, file id not its name) is refused whole,
//! NOTHING of it applied, by one record:
//!
//! ```text
//! REJ|<batch file name>|<coop id>|<created at>|<line of the fault, 0 = whole file>|<code>|file refused: <reason>
//! ```
//!
//! Codes: `F01` unreadable, `F02` another co-op's file, `F03` file id not
//! the file's name. Its payments are NOT applied: billclear may deliver
//! them again in a new, well-formed batch (a new sequence number).
//!
//! # Writing and reading
//!
//! Every file is written atomically (a dot-named temporary file in the same
//! directory, fsync'd, then linked under its final name, which fails if
//! that name exists, then the directory fsync'd): a file is never seen
//! under its final name half-written, and an existing file is never
//! overwritten. Readers skip dot-files. Acks and refusals once handled are
//! moved into the `processed/` subdirectory of the ack directory.

pub mod ack;
pub mod format;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use format::{
    ack_file_name, batch_file_id, is_batch_file_name, parse_ack, parse_batch, parse_refusal,
    refusal_file_name, render_ack, render_batch, render_refusal, Ack, AckError, AckLine, AckStatus,
    Batch, BatchLine, ErrorKind, FileError, FileRefusal, MAX_FILE_BYTES,
};

/// The subdirectory of the ack directory handled files are moved into.
pub const PROCESSED_DIR: &str = "processed";

/// How billclear reaches a co-op (`[coops.<id>]` in its config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoopSettings {
    /// Where batch files are delivered (the co-op reads them there).
    pub drop_dir: PathBuf,
    /// Where the co-op writes its ack and refusal files.
    pub ack_dir: PathBuf,
    /// The co-op id, e.g. "chongming-coop" (1 to 32 of a-z, 0-9, '-').
    pub coop_id: String,
}

/// What became of one batch line, per the co-op's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LineOutcome {
    /// Credited: the payment is CONFIRMED, under the co-op's receipt.
    Accepted {
        our_reference: String,
        receipt: String,
    },
    /// Not applied and will not be: the payment is REJECTED.
    Rejected {
        our_reference: String,
        code: String,
        reason: String,
    },
}

impl LineOutcome {
    pub fn our_reference(&self) -> &str {
        match self {
            LineOutcome::Accepted { our_reference, .. }
            | LineOutcome::Rejected { our_reference, .. } => our_reference,
        }
    }
}

/// Writes `batch` into `dir` as `PAY_<coop>_<YYYYMMDD>_<seq>.txt`,
/// atomically, and returns its path.
///
/// Errors: `InvalidInput` for a batch the format cannot carry (see
/// [`render_batch`]); `AlreadyExists` when a file of that name is already
/// there (the batch, or another with the same co-op, day and sequence,
/// was delivered before: compare with [`parse_batch`] of that file if in
/// doubt; never write it under another name, which would deliver it
/// twice).
pub fn write_batch(dir: &Path, batch: &Batch) -> io::Result<PathBuf> {
    let text = render_batch(batch).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    write_file_atomic(dir, &batch.file_name(), text.as_bytes())
}

/// The ack files in `dir` not yet processed (`ACK_PAY_*.txt`, dot-files
/// and subdirectories skipped), in name order, each parsed: an ack refused
/// whole comes with its [`AckError`] (a file larger than
/// [`MAX_FILE_BYTES`] included). An I/O error reading the directory or a
/// file is the call's error.
pub fn read_acks(dir: &Path) -> io::Result<Vec<(PathBuf, Result<Ack, AckError>)>> {
    read_kind(dir, "ACK_", parse_ack)
}

/// The refusal files in `dir` not yet processed (`REJ_PAY_*.txt`), parsed
/// like [`read_acks`].
pub fn read_refusals(dir: &Path) -> io::Result<Vec<(PathBuf, Result<FileRefusal, FileError>)>> {
    read_kind(dir, "REJ_", parse_refusal)
}

fn read_kind<T>(
    dir: &Path,
    prefix: &str,
    parse: fn(&[u8]) -> Result<T, FileError>,
) -> io::Result<Vec<(PathBuf, Result<T, FileError>)>> {
    let mut out = Vec::new();
    for path in list_files(dir, |name| {
        name.strip_prefix(prefix).is_some_and(is_batch_file_name)
    })? {
        let parsed = match read_bounded(&path)? {
            Some(bytes) => parse(&bytes),
            None => Err(FileError::new(
                0,
                ErrorKind::TooLarge,
                format!("larger than {MAX_FILE_BYTES} bytes"),
            )),
        };
        out.push((path, parsed));
    }
    Ok(out)
}

/// Moves a handled ack (or refusal) file into the `processed/`
/// subdirectory of its directory (created if missing) by one rename, then
/// fsyncs both directories. Refuses (`AlreadyExists`) if a file of that
/// name was processed before. Returns the new path. One consumer per ack
/// directory.
pub fn mark_processed(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let processed = dir.join(PROCESSED_DIR);
    if !processed.is_dir() {
        fs::create_dir_all(&processed)?;
        sync_dir(&dir)?;
    }
    let target = processed.join(name);
    if fs::symlink_metadata(&target).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} was processed before", target.display()),
        ));
    }
    fs::rename(path, &target)?;
    sync_dir(&processed)?;
    sync_dir(&dir)?;
    Ok(target)
}

/// Checks that `ack` answers exactly the lines of `batch` (same batch file
/// id and co-op, every line once: same line number, reference, account,
/// amount and currency; none missing, none extra) and gives the outcome of
/// each line, in batch line order.
pub fn reconcile_ack(batch: &Batch, ack: &Ack) -> Result<Vec<LineOutcome>, AckError> {
    if ack.batch_file_id != batch.file_id() || ack.coop_id != batch.coop_id {
        return Err(FileError::new(
            0,
            ErrorKind::WrongBatch,
            format!(
                "the ack answers {} of {}, not {} of {}",
                ack.batch_file_id,
                ack.coop_id,
                batch.file_id(),
                batch.coop_id
            ),
        ));
    }
    let mut answers: HashMap<&str, &AckLine> = HashMap::new();
    for a in &ack.lines {
        if answers.insert(a.our_reference.as_str(), a).is_some() {
            return Err(FileError::new(
                a.line_no as usize,
                ErrorKind::DuplicateReference,
                format!("reference {} answered twice", a.our_reference),
            ));
        }
    }
    let mut outcomes = Vec::with_capacity(batch.lines.len());
    for (i, line) in batch.lines.iter().enumerate() {
        let line_no = i + 1;
        let Some(a) = answers.remove(line.our_reference.as_str()) else {
            return Err(FileError::new(
                line_no,
                ErrorKind::MissingLine,
                format!("line {line_no} ({}) is not answered", line.our_reference),
            ));
        };
        let mismatch = |what: String| {
            Err(FileError::new(
                line_no,
                ErrorKind::LineMismatch,
                format!("line {line_no} ({}): {what}", line.our_reference),
            ))
        };
        if a.line_no as usize != line_no {
            return mismatch(format!("answered as line {}", a.line_no));
        }
        if a.account_number != line.account_number {
            return mismatch(format!(
                "account {} answered as {}",
                line.account_number, a.account_number
            ));
        }
        if a.amount != line.amount {
            return mismatch(format!("amount {} answered as {}", line.amount, a.amount));
        }
        if a.currency != line.currency {
            return mismatch(format!(
                "currency {} answered as {}",
                line.currency, a.currency
            ));
        }
        outcomes.push(match &a.status {
            AckStatus::Accepted { receipt } => LineOutcome::Accepted {
                our_reference: line.our_reference.clone(),
                receipt: receipt.clone(),
            },
            AckStatus::Rejected { code, reason } => LineOutcome::Rejected {
                our_reference: line.our_reference.clone(),
                code: code.clone(),
                reason: reason.clone(),
            },
        });
    }
    if let Some(extra) = ack
        .lines
        .iter()
        .find(|a| answers.contains_key(a.our_reference.as_str()))
    {
        return Err(FileError::new(
            extra.line_no as usize,
            ErrorKind::ExtraLine,
            format!(
                "line {} ({}) is not in the batch",
                extra.line_no, extra.our_reference
            ),
        ));
    }
    Ok(outcomes)
}

/// The sum of the amounts of accepted lines (for the integrator's control
/// totals).
pub fn accepted_total(ack: &Ack) -> Decimal {
    ack.lines
        .iter()
        .filter(|l| matches!(l.status, AckStatus::Accepted { .. }))
        .map(|l| l.amount)
        .sum()
}

// --------------------------------------------------------------------- I/O

/// Writes `bytes` as `dir/name` atomically: a dot-named temporary file in
/// `dir`, written and fsync'd, hard-linked under `name` (which fails with
/// `AlreadyExists` if that name exists: never overwrites), the temporary
/// name removed, then `dir` fsync'd. Refuses more than [`MAX_FILE_BYTES`]
/// and names that are not one plain file name.
pub fn write_file_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    if name.is_empty()
        || name.starts_with('.')
        || name.contains(['/', '\\', '\0'])
        || Path::new(name).file_name() != Some(std::ffi::OsStr::new(name))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a plain file name"),
        ));
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name}: larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    let target = dir.join(name);
    if fs::symlink_metadata(&target).is_ok() {
        return Err(already_exists(&target));
    }
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        match fs::hard_link(&tmp, &target) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(already_exists(&target)),
            other => other,
        }
    })();
    let removed = fs::remove_file(&tmp);
    result?;
    removed?;
    sync_dir(dir)?;
    Ok(target)
}

fn already_exists(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{} exists already (not overwritten)", path.display()),
    )
}

/// fsyncs a directory (its entries survive a crash). No-op off Unix.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// A file's bytes, or `None` if larger than [`MAX_FILE_BYTES`].
pub fn read_bounded(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let file = File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= MAX_FILE_BYTES).then_some(bytes))
}

/// The regular files of `dir` (not recursive, dot-files skipped) whose
/// name passes `keep`, in name order.
pub fn list_files(dir: &Path, keep: impl Fn(&str) -> bool) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name.starts_with('.') || !keep(&name) || !entry.file_type()?.is_file() {
            continue;
        }
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}
