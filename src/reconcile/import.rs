//! Importing a counterparty file or a bank statement: read whole and
//! checked first (a refused file leaves nothing), then kept verbatim under
//! its SHA-256 and recorded. The same bytes twice are one file.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};

use super::{bankfile, formats};
use crate::domain::recon::statement::{BankStatement, OurAccount};
use crate::domain::recon::{FileKind, FileRefusal};
use crate::store::bank::{BankImportCounts, NewBankEntry, NewBankStatement};
use crate::store::recon::{ImportOutcome, NewReconFile};
use crate::store::StoreError;

/// Why an import did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is malformed: refused whole (`recon_file_refused`).
    #[error("{file}: refused, nothing imported: {refusal}")]
    Refused { file: String, refusal: FileRefusal },
    /// The file is fine but does not fit what was asked (`recon_file_mismatch`).
    #[error("{0}")]
    Mismatch(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

/// What was imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub id: i64,
    pub kind: FileKind,
    pub business_date: NaiveDate,
    pub records: u64,
    pub credited: u64,
    pub credited_total_minor: i64,
    pub already: bool,
    pub replaced: Option<i64>,
    /// The currency of its amounts, when it has any.
    pub currency: Option<String>,
    /// A bank file: its statements and entries, new and already known.
    pub bank: Option<BankImportCounts>,
}

/// Where a file with this digest is kept.
pub fn stored_path(dir: &Path, sha256: &str) -> PathBuf {
    dir.join("files").join(sha256)
}

/// Imports `path` from `source` (a biller id, `hub` or `bank`). `kind` is
/// recognised from the content when not given; `date` is needed only for
/// a file that does not say its date (an empty water file). A bank file
/// (camt.053, camt.054, MT940) is accepted only for `accounts`, each in its
/// currency, with balances that add up; its entries are booked once each,
/// whatever file brought them before.
#[allow(clippy::too_many_arguments)]
pub async fn import_file(
    store: &dyn crate::store::Store,
    dir: &Path,
    accounts: &[OurAccount],
    source: &str,
    path: &Path,
    kind: Option<FileKind>,
    date: Option<NaiveDate>,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Imported, ImportError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    import_file_named(
        store, dir, accounts, source, path, name, kind, date, by, now,
    )
    .await
}

/// [`import_file`] with the file's name given (a file uploaded in the
/// console: its bytes in a temporary file, its name as it was sent).
#[allow(clippy::too_many_arguments)]
pub async fn import_file_named(
    store: &dyn crate::store::Store,
    dir: &Path,
    accounts: &[OurAccount],
    source: &str,
    path: &Path,
    name: String,
    kind: Option<FileKind>,
    date: Option<NaiveDate>,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Imported, ImportError> {
    let kind = match kind {
        Some(k) => k,
        None => sniff_kind(path, &name)?,
    };
    if kind.is_bank() {
        if source != "bank" {
            return Err(ImportError::Mismatch(format!(
                "{name} is a bank file ({}): import it with --source bank",
                kind.as_str()
            )));
        }
        return import_bank(store, dir, accounts, path, name, kind, by, now).await;
    }
    // Pass 1: read whole and check; nothing is kept yet.
    let summary = read_checked(path, &name, kind)?;
    let business_date = file_date(&name, &summary, date)?;
    let biller_id = file_biller(&name, kind, source, summary.biller_id.as_deref())?;
    let (sha256, size, _created) = keep_file(dir, path)?;
    let identity = summary.identity.unwrap_or_else(|| {
        format!(
            "{}:{}:{}",
            kind.as_str(),
            biller_id.as_deref().unwrap_or(source),
            business_date
        )
    });
    let (records, credited, total) = (
        summary.records,
        summary.credited,
        summary.credited_total_minor,
    );
    let currency = summary.currency;
    let outcome = store
        .record_file(&NewReconFile {
            sha256,
            kind,
            source: source.to_string(),
            biller_id,
            business_date,
            identity,
            file_name: name,
            byte_size: size,
            records,
            credited,
            credited_total_minor: total,
            currency: currency.clone(),
            imported_at: now,
            imported_by: by.to_string(),
        })
        .await?;
    let (id, already, replaced) = match outcome {
        ImportOutcome::Imported { id, replaced } => (id, false, replaced),
        ImportOutcome::AlreadyImported { id } => (id, true, None),
    };
    Ok(Imported {
        id,
        kind,
        business_date,
        records,
        credited,
        credited_total_minor: total,
        already,
        replaced,
        currency,
        bank: None,
    })
}

/// A file refused whole.
fn refused(name: &str, refusal: FileRefusal) -> ImportError {
    ImportError::Refused {
        file: name.to_string(),
        refusal,
    }
}

/// The kind of file `path` is, recognised from its first bytes.
fn sniff_kind(path: &Path, name: &str) -> Result<FileKind, ImportError> {
    let mut head = vec![0u8; 512];
    let n = File::open(path)?.read(&mut head)?;
    formats::sniff(&head[..n]).ok_or_else(|| {
        refused(
            name,
            FileRefusal::at(
                "line 1",
                "not a file kind billclear reads (water CSV, power XML, gas fixed-width, hub statement, co-op ack, camt.053, camt.054, MT940); name it with --kind",
            ),
        )
    })
}

/// Reads a counterparty file whole as `kind` and checks it (trailer counts
/// and totals); keeps none of its records.
fn read_checked(
    path: &Path,
    name: &str,
    kind: FileKind,
) -> Result<formats::FileSummary, ImportError> {
    let reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    formats::read(kind, reader, &mut |_| {}).map_err(|r| refused(name, r))
}

/// The business date of a file: the one it reports, which must be `asked`
/// when given; `asked` for a file with no records to date it.
fn file_date(
    name: &str,
    s: &formats::FileSummary,
    asked: Option<NaiveDate>,
) -> Result<NaiveDate, ImportError> {
    if s.business_date == formats::UNKNOWN_DATE {
        return asked.ok_or_else(|| {
            ImportError::Mismatch(format!(
                "{name}: the file has no records to date it; give --date"
            ))
        });
    }
    if let Some(asked) = asked.filter(|d| *d != s.business_date) {
        return Err(ImportError::Mismatch(format!(
            "{name}: the file reports {}, not {asked}",
            s.business_date
        )));
    }
    Ok(s.business_date)
}

/// The biller a file is recorded for: none for a hub statement (which only
/// `hub` imports), else `source`, which must be the biller the file names.
fn file_biller(
    name: &str,
    kind: FileKind,
    source: &str,
    named: Option<&str>,
) -> Result<Option<String>, ImportError> {
    if kind == FileKind::HubStatement {
        if source != "hub" {
            return Err(ImportError::Mismatch(format!(
                "{name} is a hub statement: import it with --source hub"
            )));
        }
        return Ok(None);
    }
    if let Some(b) = named.filter(|b| *b != source) {
        return Err(ImportError::Mismatch(format!(
            "{name} is biller {b}'s file, not {source}'s"
        )));
    }
    Ok(Some(source.to_string()))
}

/// Pass 2: keeps the bytes under their digest (atomic: temp, fsync,
/// rename). Returns the digest, the size, and whether the stored copy is
/// new (a refused import removes a copy it created).
fn keep_file(dir: &Path, path: &Path) -> Result<(String, u64, bool), ImportError> {
    let files = dir.join("files");
    std::fs::create_dir_all(&files)?;
    let tmp = files.join(format!(".import-{}", uuid::Uuid::now_v7()));
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    {
        let mut input = BufReader::with_capacity(1 << 20, File::open(path)?);
        let mut out = std::io::BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            size += n as u64;
        }
        let f = out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
    }
    let sha256 = hex::encode(hasher.finalize());
    let target = stored_path(dir, &sha256);
    let created = !target.exists();
    std::fs::rename(&tmp, &target)?;
    File::open(&files)?.sync_all()?;
    Ok((sha256, size, created))
}

/// A bank file: every statement must be of one of our accounts, in its
/// currency, with balances that add up; then the file, its statements and
/// every entry not known before are recorded in one transaction. An entry
/// known with another amount refuses the whole file.
#[allow(clippy::too_many_arguments)]
async fn import_bank(
    store: &dyn crate::store::Store,
    dir: &Path,
    accounts: &[OurAccount],
    path: &Path,
    name: String,
    kind: FileKind,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Imported, ImportError> {
    let refused = |refusal: FileRefusal| ImportError::Refused {
        file: name.clone(),
        refusal,
    };
    let bytes = std::fs::read(path)?;
    let message = bankfile::read(kind, &bytes).map_err(refused)?;
    let mut statements = Vec::with_capacity(message.statements.len());
    for st in &message.statements {
        statements.push(
            checked_statement(st, accounts, &message.format.to_string())
                .map_err(|e| refused(FileRefusal::at(e.location, e.reason)))?,
        );
    }
    let business_date = statements
        .iter()
        .map(|s| s.business_date)
        .min()
        .ok_or_else(|| refused(FileRefusal::at("file", "no statement in the file")))?;
    let entries: Vec<&NewBankEntry> = statements.iter().flat_map(|s| &s.entries).collect();
    let (sha256, size, created) = keep_file(dir, path)?;
    let file = NewReconFile {
        identity: format!("bank-file:{sha256}"),
        sha256: sha256.clone(),
        kind,
        source: "bank".into(),
        biller_id: None,
        business_date,
        file_name: name.clone(),
        byte_size: size,
        records: entries.len() as u64,
        credited: entries.iter().filter(|e| e.credit).count() as u64,
        credited_total_minor: 0,
        currency: statements.first().map(|s| s.currency.clone()),
        imported_at: now,
        imported_by: by.to_string(),
    };
    let (outcome, counts) = match store.record_bank_file(&file, &statements).await {
        Ok(r) => r,
        Err(e) => {
            if created {
                let _ = std::fs::remove_file(stored_path(dir, &sha256));
            }
            return Err(match e {
                StoreError::Conflict(reason) => refused(FileRefusal::at("bank entries", reason)),
                other => other.into(),
            });
        }
    };
    let (id, already) = match outcome {
        ImportOutcome::Imported { id, .. } => (id, false),
        ImportOutcome::AlreadyImported { id } => (id, true),
    };
    Ok(Imported {
        id,
        kind,
        business_date,
        records: counts.entries,
        credited: file.credited,
        credited_total_minor: 0,
        already,
        replaced: None,
        currency: file.currency.clone(),
        bank: Some(counts),
    })
}

/// One statement checked (ours, one currency, balances proven) and keyed.
fn checked_statement(
    st: &BankStatement,
    accounts: &[OurAccount],
    format: &str,
) -> Result<NewBankStatement, crate::domain::recon::statement::StatementRefusal> {
    use crate::domain::recon::statement::{normalize_account, StatementRefusal};
    let currency = st.check_ours(accounts)?;
    let proof = st.prove_balances()?;
    let business_date = st.business_date().ok_or_else(|| StatementRefusal {
        location: st.location.clone(),
        reason: "no date: no closing balance, period, booking date or creation date".into(),
    })?;
    let entries = st
        .entries
        .iter()
        .zip(st.entry_keys())
        // Pending and informational entries are not facts yet: counted, not
        // recorded (the booked entry comes on a later statement).
        .filter(|(e, _)| e.booked())
        .map(|(e, keys)| NewBankEntry {
            keys,
            position: e.position,
            location: e.location.clone(),
            amount_minor: e.amount_minor,
            currency: e.currency.clone(),
            credit: e.credit,
            status: e.status.clone(),
            booking_date: e.booking_date.or(e.value_date).unwrap_or(business_date),
            value_date: e.value_date,
            bank_reference: e.bank_reference().map(str::to_string),
            end_to_end_id: e.end_to_end_id.clone(),
            remittance: e.remittance.clone(),
        })
        .collect();
    Ok(NewBankStatement {
        account: normalize_account(&st.account),
        identity: st.identity(),
        kind: st.kind,
        format: format.to_string(),
        statement_id: st.id.clone(),
        sequence: st.sequence_number(),
        page: st.page.clone(),
        currency: currency.code().to_string(),
        business_date,
        from_date: st.from_date,
        proof,
        location: st.location.clone(),
        pending: st.entries.iter().filter(|e| !e.booked()).count() as u32,
        entries,
    })
}

/// Opens a stored file, checking that its bytes are still the ones
/// imported (read through a hashing reader; `finish` compares).
pub struct StoredReader {
    inner: File,
    hasher: Sha256,
    expected: String,
}

impl StoredReader {
    pub fn open(dir: &Path, sha256: &str) -> std::io::Result<StoredReader> {
        Ok(StoredReader {
            inner: File::open(stored_path(dir, sha256))?,
            hasher: Sha256::new(),
            expected: sha256.to_string(),
        })
    }

    /// Whether everything read matched the digest (call after reading to the end).
    pub fn verified(self) -> bool {
        hex::encode(self.hasher.finalize()) == self.expected
    }
}

impl Read for StoredReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
