//! Our bank's files, read into one model (`domain::recon::statement`)
//! whatever the format: camt.053 statements and camt.054 notifications
//! (ISO 20022, versions 001.02 to 001.08 of both, one mapping) and SWIFT
//! MT940 statements.
//!
//! The readers only read, faithfully, and refuse a malformed file whole
//! with its place (`Document/BkToCstmrStmt/Stmt[1]/Ntry[3]/Amt`,
//! `line 14, field :61:`) and the reason. Whether a statement is of one of
//! our accounts, in its currency, with balances that add up, is the
//! domain's to decide (`BankStatement::check_ours`, `currency`,
//! `prove_balances`).

pub mod camt;
pub mod mt940;

#[cfg(test)]
mod tests;

use crate::domain::recon::statement::{BankMessage, MessageKind};
use crate::domain::recon::{FileKind, FileRefusal};

/// Recognises a bank file from its first bytes (up to 512): camt.053 or
/// camt.054 (an XML document naming `camt.053.001.` / `camt.054.001.`) or
/// MT940 (after an optional BOM and white space, `:20:`, a SWIFT envelope
/// `{1:` holding `{4:` or `:20:`, or a bare `{4:`).
pub fn sniff(head: &[u8]) -> Option<FileKind> {
    let head = &head[..head.len().min(512)];
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
        return if contains(b"camt.053.001.") {
            Some(FileKind::Camt053)
        } else if contains(b"camt.054.001.") {
            Some(FileKind::Camt054)
        } else {
            None
        };
    }
    let mt940 = b.starts_with(b":20:")
        || b.starts_with(b"{4:")
        || (b.starts_with(b"{1:") && (contains(b"{4:") || contains(b":20:")));
    mt940.then_some(FileKind::Mt940)
}

/// Reads a whole bank file as `kind` (camt.053, camt.054 or MT940; any
/// other kind is refused): all of it, or a refusal.
pub fn read(kind: FileKind, bytes: &[u8]) -> Result<BankMessage, FileRefusal> {
    match kind {
        FileKind::Camt053 => camt::read(bytes, Some(MessageKind::Statement)),
        FileKind::Camt054 => camt::read(bytes, Some(MessageKind::Notification)),
        FileKind::Mt940 => mt940::read(bytes),
        other => Err(FileRefusal::at(
            "file",
            format!(
                "{} is not a bank file (camt053, camt054, mt940): not read as one",
                other.as_str()
            ),
        )),
    }
}
