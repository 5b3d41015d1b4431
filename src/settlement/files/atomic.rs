//! Atomic, durable file writes shared by every settlement file.
//!
//! A file is written to `dir/.<name>.tmp-<uuid>` (hashed with SHA-256 as
//! the bytes go out), flushed, fsync'd, renamed to `dir/<name>`, and then
//! `dir` itself is fsync'd so the new entry survives a crash. Readers
//! therefore see either no file or the whole file, never a prefix.
//!
//! Re-rendering is idempotent: if `dir/<name>` already exists with exactly
//! the bytes just written (same SHA-256), the rename replaces it with that
//! identical content and the write succeeds; this is what happens when a
//! batch is rendered again after a crash or a redelivered message. If it
//! exists with DIFFERENT bytes the write is refused ([`FileError::Conflict`])
//! and the existing file is left untouched: a settlement file that may have
//! been delivered already is never silently replaced. (One process renders a
//! given batch at a time; the check and the rename are not one atomic step.)

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::FileError;

/// The longest file name accepted.
const MAX_NAME_BYTES: usize = 200;

/// What was written: its SHA-256 (lower-case hex) and its size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub sha256: String,
    pub bytes: u64,
}

/// Writes `bytes` to `dir/name` atomically and durably (see the module
/// documentation). Creates `dir` and its parents if missing.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<FileDigest, FileError> {
    let mut file = AtomicFile::create(dir, name)?;
    file.write_all(bytes)
        .map_err(|e| FileError::io("write", &file.tmp, e))?;
    file.commit()
}

/// [`write_atomic`] for a file that may replace different content.
pub fn write_atomic_replacing(
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<FileDigest, FileError> {
    let mut file = AtomicFile::create(dir, name)?;
    file.write_all(bytes)
        .map_err(|e| FileError::io("write", &file.tmp, e))?;
    file.commit_replacing()
}

/// A file being written under a temporary name. [`AtomicFile::commit`]
/// publishes it under its final name; dropping it without committing
/// removes the temporary file.
pub(crate) struct AtomicFile {
    dir: PathBuf,
    name: String,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
    hasher: Sha256,
    bytes: u64,
    committed: bool,
}

impl AtomicFile {
    pub(crate) fn create(dir: &Path, name: &str) -> Result<AtomicFile, FileError> {
        check_file_name(name)?;
        ensure_dir(dir)?;
        let tmp = dir.join(format!(".{name}.tmp-{}", uuid::Uuid::new_v4().simple()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| FileError::io("create", &tmp, e))?;
        Ok(AtomicFile {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            tmp,
            out: Some(BufWriter::with_capacity(64 * 1024, file)),
            hasher: Sha256::new(),
            bytes: 0,
            committed: false,
        })
    }

    /// The temporary path (for error messages).
    pub(crate) fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// Flushes and fsyncs the temporary file, renames it to its final name
    /// and fsyncs the directory.
    pub(crate) fn commit(self) -> Result<FileDigest, FileError> {
        self.finish(true)
    }

    /// Like [`AtomicFile::commit`], but replaces an existing file whatever
    /// it holds: for documents that are superseded by design (a payment
    /// app's statement rewritten once every biller closed the date).
    pub(crate) fn commit_replacing(self) -> Result<FileDigest, FileError> {
        self.finish(false)
    }

    fn finish(mut self, refuse_different: bool) -> Result<FileDigest, FileError> {
        let out = self.out.take().ok_or_else(|| FileError::Abandoned {
            name: self.name.clone(),
        })?;
        let file = out
            .into_inner()
            .map_err(|e| FileError::io("write", &self.tmp, e.into_error()))?;
        file.sync_all()
            .map_err(|e| FileError::io("fsync", &self.tmp, e))?;
        drop(file);
        let digest = FileDigest {
            sha256: hex::encode(std::mem::take(&mut self.hasher).finalize()),
            bytes: self.bytes,
        };
        let target = self.dir.join(&self.name);
        if refuse_different {
            refuse_different_existing(&target, &digest)?;
        }
        fs::rename(&self.tmp, &target).map_err(|e| FileError::io("rename", &target, e))?;
        self.committed = true;
        sync_dir(&self.dir)?;
        Ok(digest)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let out = self
            .out
            .as_mut()
            .ok_or_else(|| io::Error::other("file already closed"))?;
        let n = out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.out.as_mut() {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            // Discard the buffer unwritten, close the file, remove it.
            if let Some(out) = self.out.take() {
                let _ = out.into_parts();
            }
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Refuses to replace an existing `target` whose bytes differ from the
/// ones just written. Identical content is fine (idempotent re-render).
fn refuse_different_existing(target: &Path, new: &FileDigest) -> Result<(), FileError> {
    match fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FileError::io("inspect", target, e)),
        Ok(meta) if !meta.is_file() => Err(FileError::Conflict {
            path: target.to_path_buf(),
            existing: "not a regular file".into(),
            new: new.sha256.clone(),
        }),
        Ok(_) => {
            let existing = sha256_file(target)?;
            if existing == *new {
                Ok(())
            } else {
                Err(FileError::Conflict {
                    path: target.to_path_buf(),
                    existing: existing.sha256,
                    new: new.sha256.clone(),
                })
            }
        }
    }
}

/// The SHA-256 and size of a file, read in blocks (memory does not grow
/// with the file).
pub(crate) fn sha256_file(path: &Path) -> Result<FileDigest, FileError> {
    let mut file = File::open(path).map_err(|e| FileError::io("open", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(FileError::io("read", path, e)),
        };
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(FileDigest {
        sha256: hex::encode(hasher.finalize()),
        bytes,
    })
}

/// A plain file name: no directory part, not hidden, not empty.
pub(crate) fn check_file_name(name: &str) -> Result<(), FileError> {
    let reason = if name.is_empty() {
        Some("is empty")
    } else if name.len() > MAX_NAME_BYTES {
        Some("is too long")
    } else if name.starts_with('.') {
        Some("starts with '.'")
    } else if name.contains(['/', '\\', '\0']) || name.chars().any(|c| c.is_control()) {
        Some("contains a path separator or control character")
    } else {
        None
    };
    match reason {
        Some(r) => Err(FileError::Invalid {
            field: "file name",
            reason: format!("{name:?} {r}; a plain file name is required"),
        }),
        None => Ok(()),
    }
}

/// Creates `dir` and its missing parents, fsyncing each new entry's parent.
fn ensure_dir(dir: &Path) -> Result<(), FileError> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(FileError::io(
                "use as directory",
                dir,
                io::Error::other("exists and is not a directory"),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(FileError::io("inspect", dir, e)),
    }
    // The directories about to be created, outermost first.
    let mut missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .collect();
    missing.reverse();
    fs::create_dir_all(dir).map_err(|e| FileError::io("create directory", dir, e))?;
    for created in missing {
        let parent = match created.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        sync_dir(parent)?;
    }
    Ok(())
}

/// fsyncs a directory so its entries survive a crash. No-op off Unix.
fn sync_dir(dir: &Path) -> Result<(), FileError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| FileError::io("fsync directory", dir, e))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}
