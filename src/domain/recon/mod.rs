//! Reconciliation rules (pure): what a counterparty record is, how our
//! payments and their records are compared, the break categories, the
//! automatic decisions, and the life of a break as a work item.
//!
//! Nothing here reads files or the database. The readers (each family's
//! beside its writer in `biller_connectors`, called through
//! `crate::reconcile::formats`) turn each counterparty's file into
//! [`TheirRecord`]s; `crate::reconcile` streams our payments and those
//! records, both sorted by our reference, through [`matching::Matcher`].

pub mod bank;
pub mod breaks;
pub mod matching;
pub mod resend;
pub mod statement;

use serde::{Deserialize, Serialize};

/// Where a counterparty record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// The water companies' daily confirmation CSV (`TRAILER,count,total`).
    WaterCsv,
    /// The grid company's daily confirmation XML (`PowerConfirmation`).
    PowerXml,
    /// The gas companies' daily fixed-width confirmation (H/D/T records).
    GasFixed,
    /// The hub's daily statement CSV (`HUBSTATEMENT`).
    HubStatement,
    /// One co-op acknowledgement file (`ACK_PAY_<coop>_<date>_<n>.txt`).
    CoopAck,
    /// A bank statement of one of our accounts (camt.053.001.02 to .08).
    Camt053,
    /// A bank's debit/credit notification (camt.054.001.02 to .08).
    Camt054,
    /// A bank statement in SWIFT MT940.
    Mt940,
}

impl FileKind {
    pub const ALL: [FileKind; 8] = [
        FileKind::WaterCsv,
        FileKind::PowerXml,
        FileKind::GasFixed,
        FileKind::HubStatement,
        FileKind::CoopAck,
        FileKind::Camt053,
        FileKind::Camt054,
        FileKind::Mt940,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            FileKind::WaterCsv => "water-csv",
            FileKind::PowerXml => "power-xml",
            FileKind::GasFixed => "gas-fixed",
            FileKind::HubStatement => "hub-statement",
            FileKind::CoopAck => "coop-ack",
            FileKind::Camt053 => "camt053",
            FileKind::Camt054 => "camt054",
            FileKind::Mt940 => "mt940",
        }
    }

    pub fn parse(s: &str) -> Option<FileKind> {
        FileKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether this is a bank's file (a statement or notification of one
    /// of our accounts), read by `crate::reconcile::bankfile`.
    pub fn is_bank(&self) -> bool {
        matches!(
            self,
            FileKind::Camt053 | FileKind::Camt054 | FileKind::Mt940
        )
    }
}

/// Which connector's deliveries each counterparty file kind reports on
/// (`[recon.file_routes]` in the configuration: `water-csv =
/// "water-direct"`, …). A payment's absence from a file proves something
/// only when the payment went through that file's connector. Bank files
/// report on no connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FileRoutes(std::collections::BTreeMap<FileKind, String>);

impl Default for FileRoutes {
    /// The connectors of `ops/billclear.example.toml` and the demo.
    fn default() -> FileRoutes {
        FileRoutes(
            [
                (FileKind::WaterCsv, "water-direct"),
                (FileKind::PowerXml, "power-direct"),
                (FileKind::GasFixed, "gas-direct"),
                (FileKind::HubStatement, "hub"),
                (FileKind::CoopAck, "coop-file"),
            ]
            .into_iter()
            .map(|(k, c)| (k, c.to_string()))
            .collect(),
        )
    }
}

impl FileRoutes {
    /// The connector whose deliveries files of `kind` report on.
    pub fn connector(&self, kind: FileKind) -> Option<&str> {
        if kind.is_bank() {
            return None;
        }
        self.0.get(&kind).map(String::as_str)
    }

    /// `kind`'s files report on `connector` from now on.
    pub fn set(&mut self, kind: FileKind, connector: &str) {
        self.0.insert(kind, connector.to_string());
    }
}

/// What the counterparty says happened to one payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordStatus {
    /// Applied: the biller credited the payer's account.
    Credited,
    /// Not applied (hub `FAILED`, co-op `R` line): nothing was credited.
    Failed,
}

impl RecordStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RecordStatus::Credited => "CREDITED",
            RecordStatus::Failed => "FAILED",
        }
    }
}

/// One line of a counterparty's file: a biller's confirmation, a hub
/// statement row or a co-op acknowledgement line.
///
/// Amounts are exact minor units of `currency` (fen for CNY): a file amount
/// with more decimals than the currency has refuses the file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TheirRecord {
    /// Our reference as they echo it (the payment id).
    pub our_reference: String,
    /// Their reference: receipt number, `hubTxnId`; empty when they have
    /// none (a failed line).
    pub their_reference: String,
    pub biller_id: String,
    pub account: String,
    pub amount_minor: i64,
    pub currency: String,
    pub status: RecordStatus,
    /// When they applied or refused it (RFC 3339), as the file says.
    pub at: Option<String>,
    /// The line (1-based) of the record in its file: the evidence.
    pub line: u64,
}

/// A file read whole: its records and its own control figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedFile {
    pub kind: FileKind,
    /// The biller (or co-op) the file is about; `None` for a hub statement,
    /// which covers several billers.
    pub biller_id: Option<String>,
    /// The business day the file reports.
    pub business_date: chrono::NaiveDate,
    /// The file's own identity when it has one (hub id + date, co-op batch
    /// file id): a second file with the same identity replaces the first.
    pub identity: Option<String>,
    pub records: Vec<TheirRecord>,
}

/// Why a file was refused: where, and what is wrong. Nothing of a refused
/// file is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {reason}")]
pub struct FileRefusal {
    /// `line 12`, `line 12, field amount`, or an XML element path.
    pub location: String,
    pub reason: String,
}

impl FileRefusal {
    pub fn line(line: u64, reason: impl Into<String>) -> FileRefusal {
        FileRefusal {
            location: format!("line {line}"),
            reason: reason.into(),
        }
    }

    /// `line 12, field amount`.
    pub fn field(line: u64, field: &str, reason: impl Into<String>) -> FileRefusal {
        FileRefusal {
            location: format!("line {line}, field {field}"),
            reason: reason.into(),
        }
    }

    pub fn at(location: impl Into<String>, reason: impl Into<String>) -> FileRefusal {
        FileRefusal {
            location: location.into(),
            reason: reason.into(),
        }
    }
}
