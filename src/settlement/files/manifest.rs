//! The manifest: a pretty JSON document listing every file of a batch with
//! its SHA-256 and size. Written last, so its presence means the set is
//! complete. Deterministic: keys in declaration order, no wall clock, money
//! as decimal strings at the currency's scale.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::atomic::{check_file_name, sha256_file};
use super::{at_scale, file_names, write_atomic, BatchHeader, FileError, FileKind, WrittenFile};

/// The manifest format's version.
pub const MANIFEST_VERSION: u32 = 1;
/// The largest manifest [`verify_manifest`] reads.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    pub batch_id: uuid::Uuid,
    pub biller_id: String,
    pub biller_name: String,
    pub business_date: NaiveDate,
    /// ISO 4217 code.
    pub currency: String,
    pub cutoff_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// `csv` or `fixed-width`.
    pub format: String,
    pub commission_rule: String,
    pub totals: ManifestTotals,
    pub files: Vec<WrittenFile>,
}

/// The batch's totals; amounts are decimal strings at the currency's scale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestTotals {
    pub count: u64,
    pub gross: String,
    pub commission: String,
    pub returns_count: u64,
    pub returns: String,
    pub net: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("{name} is not a valid manifest: {reason}")]
    Unreadable { name: String, reason: String },
    #[error("lists {name:?}, which is not a plain file name in the batch directory")]
    BadName { name: String },
    #[error("lists {name} twice")]
    Duplicate { name: String },
    #[error("may not list a manifest ({name})")]
    ListsManifest { name: String },
    #[error("lists no files")]
    Empty,
    #[error("{name} is missing")]
    Missing { name: String },
    #[error("{name} is {actual} bytes, the manifest says {expected}")]
    Size {
        name: String,
        expected: u64,
        actual: u64,
    },
    #[error("{name} has sha256 {actual}, the manifest says {expected}")]
    Sha256 {
        name: String,
        expected: String,
        actual: String,
    },
}

/// Writes `dir/<biller>_<date>_<batch>_manifest.json` listing `files` (in the order
/// given). Every listed file is first re-read and must match its recorded
/// size and SHA-256, so a manifest never vouches for a file that is not
/// there. Its own [`WrittenFile`] has `count` = the number of files listed
/// and `total` = the batch's net.
pub fn write_manifest(
    dir: &Path,
    header: &BatchHeader,
    files: &[WrittenFile],
) -> Result<WrittenFile, FileError> {
    let name = file_names(header)?.manifest;
    check_listed(dir, files)?;
    let scale = header.currency.scale();
    let t = &header.totals;
    let net = at_scale("net", t.net(), scale)?;
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        batch_id: header.batch_id,
        biller_id: header.biller_id.clone(),
        biller_name: header.biller_name.clone(),
        business_date: header.business_date,
        currency: header.currency.code().to_string(),
        cutoff_at: header.cutoff_at,
        created_at: header.created_at,
        format: header.format.as_str().to_string(),
        commission_rule: header.commission_rule.clone(),
        totals: ManifestTotals {
            count: t.count,
            gross: at_scale("gross", t.gross, scale)?.to_string(),
            commission: at_scale("commission", t.commission, scale)?.to_string(),
            returns_count: t.returns_count,
            returns: at_scale("returns", t.returns, scale)?.to_string(),
            net: net.to_string(),
        },
        files: files.to_vec(),
    };
    let mut json = serde_json::to_vec_pretty(&manifest).map_err(|e| {
        FileError::Manifest(ManifestError::Unreadable {
            name: name.clone(),
            reason: e.to_string(),
        })
    })?;
    json.push(b'\n');
    let digest = write_atomic(dir, &name, &json)?;
    Ok(WrittenFile {
        name,
        kind: FileKind::Manifest,
        sha256: digest.sha256,
        bytes: digest.bytes,
        count: files.len() as u64,
        total: net,
    })
}

/// Reads `dir/manifest_name` and re-reads every file it lists, checking
/// size and SHA-256. Listed names must be plain file names (no path can
/// escape `dir`), unique, and no manifest.
pub fn verify_manifest(dir: &Path, manifest_name: &str) -> Result<Manifest, FileError> {
    check_file_name(manifest_name)?;
    let path = dir.join(manifest_name);
    let file = fs::File::open(&path).map_err(|e| FileError::io("open", &path, e))?;
    let mut text = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| FileError::io("read", &path, e))?;
    let unreadable = |reason: String| {
        FileError::Manifest(ManifestError::Unreadable {
            name: manifest_name.to_string(),
            reason,
        })
    };
    if text.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(unreadable(format!(
            "larger than {MAX_MANIFEST_BYTES} bytes"
        )));
    }
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| unreadable(e.to_string()))?;
    if manifest.version != MANIFEST_VERSION {
        return Err(unreadable(format!(
            "version {} (this build reads {MANIFEST_VERSION})",
            manifest.version
        )));
    }
    check_listed(dir, &manifest.files)?;
    Ok(manifest)
}

/// Each listed file is a unique plain name, not a manifest, present in
/// `dir` with the recorded size and SHA-256.
fn check_listed(dir: &Path, files: &[WrittenFile]) -> Result<(), FileError> {
    if files.is_empty() {
        return Err(ManifestError::Empty.into());
    }
    let mut seen = HashSet::new();
    for f in files {
        let name = f.name.clone();
        if check_file_name(&f.name).is_err() {
            return Err(ManifestError::BadName { name }.into());
        }
        if f.kind == FileKind::Manifest {
            return Err(ManifestError::ListsManifest { name }.into());
        }
        if !seen.insert(f.name.as_str()) {
            return Err(ManifestError::Duplicate { name }.into());
        }
        let path = dir.join(&f.name);
        let digest = match sha256_file(&path) {
            Err(FileError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(ManifestError::Missing { name }.into())
            }
            other => other?,
        };
        if digest.bytes != f.bytes {
            return Err(ManifestError::Size {
                name,
                expected: f.bytes,
                actual: digest.bytes,
            }
            .into());
        }
        if digest.sha256 != f.sha256 {
            return Err(ManifestError::Sha256 {
                name,
                expected: f.sha256.clone(),
                actual: digest.sha256,
            }
            .into());
        }
    }
    Ok(())
}
