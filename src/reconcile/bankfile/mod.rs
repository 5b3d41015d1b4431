//! Our bank's files, read into one model (`domain::recon::statement`)
//! whatever the format: camt.053 statements and camt.054 notifications
//! (ISO 20022, versions 001.02 to 001.08, one mapping) and MT940
//! statements. The readers only read, faithfully; whether a statement is of
//! one of our accounts, in its currency, with balances that add up, is the
//! domain's to decide (`BankStatement::check_ours`, `prove_balances`).

pub mod camt;
pub mod mt940;

#[cfg(test)]
mod tests;

use crate::domain::recon::statement::BankMessage;
use crate::domain::recon::{FileKind, FileRefusal};

/// Recognises a bank file from its first bytes (up to 512).
pub fn sniff(head: &[u8]) -> Option<FileKind> {
    let b = head
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(head);
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let b = &b[start..];
    let contains = |needle: &[u8]| b.windows(needle.len()).any(|w| w == needle);
    if b.starts_with(b"<") {
        if contains(b"camt.053.001.") {
            return Some(FileKind::Camt053);
        }
        if contains(b"camt.054.001.") {
            return Some(FileKind::Camt054);
        }
        return None;
    }
    if b.starts_with(b":20:") || (b.starts_with(b"{1:") && (contains(b"{4:") || contains(b":20:")))
    {
        return Some(FileKind::Mt940);
    }
    None
}

/// Reads a whole bank file as `kind`.
pub fn read(kind: FileKind, bytes: &[u8]) -> Result<BankMessage, FileRefusal> {
    match kind {
        FileKind::Camt053 | FileKind::Camt054 => {
            let m = camt::read(bytes)?;
            let is_054 = matches!(
                m.format,
                crate::domain::recon::statement::BankFormat::Camt054(_)
            );
            if is_054 != (kind == FileKind::Camt054) {
                return Err(FileRefusal::at(
                    "Document",
                    format!("the file is a {}, not a {}", m.format, kind.as_str()),
                ));
            }
            Ok(m)
        }
        FileKind::Mt940 => mt940::read(bytes),
        other => Err(FileRefusal::at(
            "file",
            format!("{} is not a bank file kind", other.as_str()),
        )),
    }
}
