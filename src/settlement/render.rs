//! The settlement consumer's work: render a closed batch's files into the
//! biller's directory and record them. Idempotent: a batch whose files are
//! recorded is acknowledged at once; rendering again (a redelivery after a
//! crash before the record) writes byte-identical files under the same
//! names, since every byte comes from the stored batch. A file already
//! there under one of the batch's names with other bytes is never replaced:
//! the batch's files fail for good, recorded on the batch once.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::broker::{HandleError, SettlementHandler};
use super::files::{
    write_manifest, write_pain001, BatchHeader, FileError, FileKind, ItemKind, ItemLine,
    SettlementFileWriter, WrittenFile,
};
use crate::domain::money::Currency;
use crate::store::{BatchFile, BatchRecord, Store, StoreError};

/// Renders batches for the consumer, the `settle` command and the demo.
pub struct BatchRenderer {
    store: Arc<dyn Store>,
    outbox_dir: PathBuf,
}

#[derive(Debug, serde::Deserialize)]
struct Message {
    kind: String,
    batch_id: Uuid,
}

fn kind_name(k: FileKind) -> &'static str {
    match k {
        FileKind::Settlement => "settlement",
        FileKind::Pain001 => "pain001",
        FileKind::Manifest => "manifest",
    }
}

fn transient(e: impl std::fmt::Display) -> HandleError {
    HandleError::Transient(e.to_string())
}

impl BatchRenderer {
    pub fn new(store: Arc<dyn Store>, outbox_dir: PathBuf) -> BatchRenderer {
        BatchRenderer { store, outbox_dir }
    }

    /// The directory a biller's files go to.
    pub fn biller_dir(&self, biller: &str) -> PathBuf {
        self.outbox_dir.join(biller)
    }

    /// Writes and records the files of `batch` unless recorded already.
    /// Returns the batch's files.
    ///
    /// A failure no retry can fix (a file of the batch's own name already
    /// there with other bytes, a value the layout refuses, control totals
    /// off) is recorded on the batch once and logged once, at error, and
    /// returned as [`HandleError::Failed`]; rendering a failed batch again
    /// (a replayed message, after the cause was fixed) is allowed and
    /// writes its files if the cause is gone. Database and disk trouble is
    /// [`HandleError::Transient`].
    pub async fn render(&self, batch_id: Uuid) -> Result<Vec<BatchFile>, HandleError> {
        let batch = self
            .store
            .batch(batch_id)
            .await
            .map_err(transient)?
            .ok_or_else(|| HandleError::Poison(format!("no settlement batch {batch_id}")))?;
        if batch.files_written_at.is_some() {
            return self.store.batch_files(batch_id).await.map_err(transient);
        }
        match self.write(&batch).await {
            Ok(rows) => {
                if batch.files_failed_at.is_some() {
                    tracing::info!(batch = %batch_id, biller = %batch.biller_id, date = %batch.business_date,
                        files = rows.len(), "settlement files written after an earlier failure was fixed");
                } else {
                    tracing::info!(batch = %batch_id, biller = %batch.biller_id, date = %batch.business_date,
                        files = rows.len(), "settlement files written");
                }
                Ok(rows)
            }
            Err(Failure::Transient(e)) => Err(HandleError::Transient(e)),
            Err(Failure::Permanent(reason)) => Err(self.fail(&batch, reason).await),
        }
    }

    /// Records a permanent failure on the batch (once) and logs it (once).
    async fn fail(&self, batch: &BatchRecord, reason: String) -> HandleError {
        match self
            .store
            .record_files_failure(batch.id, &reason, chrono::Utc::now())
            .await
        {
            Ok(true) => {
                tracing::error!(batch = %batch.id, biller = %batch.biller_id, date = %batch.business_date,
                    failure = %reason,
                    "settlement files failed for good: recorded on the batch, not retried; nothing was replaced (`billclear settlements show {}`)",
                    batch.id);
                HandleError::Failed(reason)
            }
            Ok(false) => {
                // Recorded before: this was a retry (a replayed message)
                // and the cause is still there.
                tracing::warn!(batch = %batch.id, biller = %batch.biller_id, date = %batch.business_date,
                    failure = %reason, "settlement files still fail (the failure is recorded already)");
                HandleError::Failed(reason)
            }
            Err(e) => HandleError::Transient(format!(
                "{reason}; recording this failure on the batch failed: {e}"
            )),
        }
    }

    /// Writes the batch's files and records them.
    async fn write(&self, batch: &BatchRecord) -> Result<Vec<BatchFile>, Failure> {
        let batch_id = batch.id;
        let header = self.header(batch).map_err(Failure::Permanent)?;
        let dir = self.biller_dir(&batch.biller_id);
        let mut writer = SettlementFileWriter::create(&dir, &header).map_err(Failure::of)?;
        let mut failure: Option<FileError> = None;
        self.store
            .for_each_item(batch_id, &mut |item| {
                let line = ItemLine {
                    kind: if item.is_return {
                        ItemKind::Return
                    } else {
                        ItemKind::Payment
                    },
                    our_reference: item.payment_id.to_string(),
                    biller_reference: item.biller_reference,
                    account_number: item.account_number,
                    amount: item.amount,
                    commission: item.commission,
                    confirmed_at: item.confirmed_at,
                };
                writer.push(&line).map_err(|e| {
                    let text = e.to_string();
                    failure = Some(e);
                    text
                })
            })
            .await
            .map_err(|e| match failure.take() {
                Some(f) => Failure::of(f),
                None => Failure::Transient(e.to_string()),
            })?;
        let mut files: Vec<WrittenFile> = vec![writer.finish().map_err(Failure::of)?];
        if crate::domain::settlement::pays_out(header.totals.net()) {
            files.push(write_pain001(&dir, &header).map_err(Failure::of)?);
        }
        let manifest = write_manifest(&dir, &header, &files).map_err(Failure::of)?;
        files.push(manifest);
        let rows: Vec<BatchFile> = files
            .iter()
            .map(|f| BatchFile {
                name: f.name.clone(),
                kind: kind_name(f.kind).to_string(),
                sha256: f.sha256.clone(),
                bytes: f.bytes,
                count: f.count,
                total: f.total,
            })
            .collect();
        self.store
            .record_files(batch_id, &rows)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(m) => Failure::Permanent(m),
                other => Failure::Transient(other.to_string()),
            })?;
        Ok(rows)
    }

    fn header(&self, b: &BatchRecord) -> Result<BatchHeader, String> {
        Ok(BatchHeader {
            batch_id: b.id,
            biller_id: b.biller_id.clone(),
            biller_name: b.biller_name.clone(),
            business_date: b.business_date,
            currency: Currency::from_code(&b.currency)
                .map_err(|e| format!("batch {}: {e}", b.id))?,
            created_at: b.created_at,
            cutoff_at: b.cutoff_at,
            format: b.format,
            commission_rule: b.commission_rule.clone(),
            totals: b.totals,
            creditor: b.creditor.clone(),
            debtor: b.debtor.clone(),
        })
    }
}

/// Why a batch's files could not be written.
enum Failure {
    /// Disk or database trouble: may pass, retried with backoff.
    Transient(String),
    /// Will never succeed as things are: a file of the batch's own name
    /// with other bytes, a value its layout refuses, control totals off.
    Permanent(String),
}

impl Failure {
    fn of(e: FileError) -> Failure {
        match e {
            FileError::Io { .. } | FileError::Abandoned { .. } => Failure::Transient(e.to_string()),
            other => Failure::Permanent(other.to_string()),
        }
    }
}

#[async_trait]
impl SettlementHandler for BatchRenderer {
    async fn handle(&self, body: &[u8]) -> Result<(), HandleError> {
        let msg: Message = serde_json::from_slice(body).map_err(|e| {
            HandleError::Poison(format!(
                "not a settlement message (JSON with kind and batch_id): {e}"
            ))
        })?;
        if msg.kind != "settlement_batch" {
            return Err(HandleError::Poison(format!(
                "unknown settlement message kind {:?}",
                msg.kind
            )));
        }
        self.render(msg.batch_id).await.map(|_| ())
    }
}
