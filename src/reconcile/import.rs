//! Importing a counterparty file or a bank statement: read whole and
//! checked first (a refused file leaves nothing), then kept verbatim under
//! its SHA-256 and recorded. The same bytes twice are one file.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};

use super::{camt053, formats};
use crate::domain::recon::{FileKind, FileRefusal};
use crate::store::recon::{ImportOutcome, NewReconFile, ReconStore};

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
}

/// Where a file with this digest is kept.
pub fn stored_path(dir: &Path, sha256: &str) -> PathBuf {
    dir.join("files").join(sha256)
}

/// Imports `path` from `source` (a biller id, `hub` or `bank`). `kind` is
/// recognised from the content when not given; `date` is needed only for
/// a file that does not say its date (an empty water file).
#[allow(clippy::too_many_arguments)]
pub async fn import_file(
    store: &dyn ReconStore,
    dir: &Path,
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
    let refused = |refusal: FileRefusal| ImportError::Refused {
        file: name.clone(),
        refusal,
    };
    let kind = match kind {
        Some(k) => k,
        None => {
            let mut head = vec![0u8; 512];
            let n = File::open(path)?.read(&mut head)?;
            formats::sniff(&head[..n]).ok_or_else(|| {
                refused(FileRefusal::at(
                    "line 1",
                    "not a file kind billclear reads (water CSV, power XML, gas fixed-width, hub statement, co-op ack, camt.053); name it with --kind",
                ))
            })?
        }
    };
    // Pass 1: read whole and check; nothing is kept yet.
    let (summary_biller, business_date, identity, records, credited, total, currency) =
        if kind == FileKind::Camt053 {
            let bytes = std::fs::read(path)?;
            let (_version, statements) = camt053::parse(&bytes)
                .map_err(|e| refused(FileRefusal::at(e.path.clone(), e.reason.clone())))?;
            let entries: Vec<&camt053::Entry> =
                statements.iter().flat_map(|s| s.entries.iter()).collect();
            let booked = entries.iter().filter_map(|e| e.booking_date).min();
            let d = date.or(booked).ok_or_else(|| {
                ImportError::Mismatch(format!(
                    "{name}: the statement has no booked entry to date it; give --date"
                ))
            })?;
            let ids: Vec<&str> = statements.iter().map(|s| s.id.as_str()).collect();
            (
                None,
                d,
                Some(format!("camt053:{}", ids.join("+"))),
                entries.len() as u64,
                entries.iter().filter(|e| e.credit).count() as u64,
                0,
                statements.first().map(|s| s.currency.code().to_string()),
            )
        } else {
            let reader = BufReader::with_capacity(1 << 20, File::open(path)?);
            let s = formats::read(kind, reader, &mut |_| {}).map_err(refused)?;
            let d = if s.business_date == formats::UNKNOWN_DATE {
                date.ok_or_else(|| {
                    ImportError::Mismatch(format!(
                        "{name}: the file has no records to date it; give --date"
                    ))
                })?
            } else {
                if let Some(asked) = date.filter(|d| *d != s.business_date) {
                    return Err(ImportError::Mismatch(format!(
                        "{name}: the file reports {}, not {asked}",
                        s.business_date
                    )));
                }
                s.business_date
            };
            (
                s.biller_id,
                d,
                s.identity,
                s.records,
                s.credited,
                s.credited_total_minor,
                s.currency,
            )
        };
    let biller_id = match kind {
        FileKind::HubStatement => {
            if source != "hub" {
                return Err(ImportError::Mismatch(format!(
                    "{name} is a hub statement: import it with --source hub"
                )));
            }
            None
        }
        FileKind::Camt053 => {
            if source != "bank" {
                return Err(ImportError::Mismatch(format!(
                    "{name} is a bank statement: import it with --source bank"
                )));
            }
            None
        }
        _ => {
            if let Some(b) = summary_biller.as_deref().filter(|b| *b != source) {
                return Err(ImportError::Mismatch(format!(
                    "{name} is biller {b}'s file, not {source}'s"
                )));
            }
            Some(source.to_string())
        }
    };
    // Pass 2: keep the bytes under their digest (atomic: temp, fsync, rename).
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
    std::fs::rename(&tmp, &target)?;
    File::open(&files)?.sync_all()?;
    let identity = identity.unwrap_or_else(|| {
        format!(
            "{}:{}:{}",
            kind.as_str(),
            biller_id.as_deref().unwrap_or(source),
            business_date
        )
    });
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
            currency,
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
