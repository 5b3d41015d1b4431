//! Each payment app's daily statement: what it owes us for a business
//! date, per biller whose date is closed, with one line per settled payment
//! and per return. Written as CSV (atomically, with a `sha256sum`-style
//! sidecar) into `<outbox_dir>/channels/<channel id>/`, and served by
//! `GET /v1/statements`.
//!
//! Layout: a header row, `PAY`/`RET` detail rows (`record_type, biller_id,
//! batch_id, our_reference, channel_reference, account_number, amount,
//! currency, confirmed_at`; returns negative), one `SUMMARY` row per biller
//! (`SUMMARY, biller_id, batch_id, payments, amount, returns, returned,
//! owed, currency`) and a `TRAILER, detail rows, total owed` row.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, SecondsFormat};
use rust_decimal::Decimal;

use crate::domain::ids::ChannelId;
use crate::settlement::files::atomic::{write_atomic_replacing, AtomicFile};
use crate::settlement::files::FileError;
use crate::store::Store;

/// The directory of a channel's statements.
pub fn dir(outbox_dir: &Path, channel: &ChannelId) -> PathBuf {
    outbox_dir.join("channels").join(channel.as_str())
}

pub fn file_name(channel: &ChannelId, date: NaiveDate) -> String {
    format!("{channel}_{}_statement.csv", date.format("%Y%m%d"))
}

/// The recorded SHA-256 of a written statement (from its sidecar).
pub fn read_digest(dir: &Path, name: &str) -> std::io::Result<String> {
    let text = std::fs::read_to_string(dir.join(format!("{name}.sha256")))?;
    text.split_whitespace()
        .next()
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad sidecar"))
}

/// What a written statement holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenStatement {
    pub path: PathBuf,
    pub sha256: String,
    pub lines: u64,
    /// Owed per currency (payments less returns).
    pub owed: BTreeMap<String, Decimal>,
}

#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("statement: {0}")]
    Store(String),
    #[error("statement of {channel} for {date}: the detail lines ({detail}) do not add up to the per-biller summary ({summary})")]
    ControlTotals {
        channel: String,
        date: NaiveDate,
        detail: Decimal,
        summary: Decimal,
    },
}

/// Writes the statement of `channel` for `date`, replacing an earlier one
/// (a statement written before every biller closed the date is partial;
/// the scheduler and `settle` write it only once the date is complete).
pub async fn write(
    store: &dyn Store,
    outbox_dir: &Path,
    channel: &ChannelId,
    date: NaiveDate,
) -> Result<WrittenStatement, StatementError> {
    let dir = dir(outbox_dir, channel);
    let name = file_name(channel, date);
    let summary = store
        .channel_statement(channel, date)
        .await
        .map_err(|e| StatementError::Store(e.to_string()))?;
    let currency_of: BTreeMap<String, String> = summary
        .iter()
        .map(|l| (l.biller_id.clone(), l.currency.clone()))
        .collect();
    let file = AtomicFile::create(&dir, &name)?;
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .flexible(true)
        .from_writer(file);
    let csv_err = |e: csv::Error| StatementError::Store(format!("writing {name}: {e}"));
    w.write_record([
        "record_type",
        "biller_id",
        "batch_id",
        "our_reference",
        "channel_reference",
        "account_number",
        "amount",
        "currency",
        "confirmed_at",
    ])
    .map_err(csv_err)?;
    let mut lines = 0u64;
    let mut detail_total = Decimal::ZERO;
    let mut failure: Option<csv::Error> = None;
    store
        .for_each_statement_item(channel, date, &mut |biller, item| {
            let amount = if item.is_return {
                -item.amount
            } else {
                item.amount
            };
            detail_total += amount;
            lines += 1;
            let currency = currency_of.get(&biller).cloned().unwrap_or_default();
            let batch = summary
                .iter()
                .find(|l| l.biller_id == biller)
                .map(|l| l.batch_id.to_string())
                .unwrap_or_default();
            if let Err(e) = w.write_record([
                if item.is_return { "RET" } else { "PAY" },
                biller.as_str(),
                batch.as_str(),
                item.payment_id.to_string().as_str(),
                item.channel_reference.as_str(),
                item.account_number.as_str(),
                amount.to_string().as_str(),
                currency.as_str(),
                item.confirmed_at
                    .to_rfc3339_opts(SecondsFormat::Micros, true)
                    .as_str(),
            ]) {
                failure = Some(e);
                return Err("write failed".into());
            }
            Ok(())
        })
        .await
        .map_err(|e| match failure.take() {
            Some(f) => csv_err(f),
            None => StatementError::Store(e.to_string()),
        })?;
    let mut owed: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut summary_total = Decimal::ZERO;
    for l in &summary {
        let o = l.amount - l.returned;
        *owed.entry(l.currency.clone()).or_default() += o;
        summary_total += o;
        w.write_record([
            "SUMMARY".to_string(),
            l.biller_id.clone(),
            l.batch_id.to_string(),
            l.payments.to_string(),
            l.amount.to_string(),
            l.returns.to_string(),
            l.returned.to_string(),
            o.to_string(),
            l.currency.clone(),
        ])
        .map_err(csv_err)?;
    }
    if summary_total != detail_total {
        return Err(StatementError::ControlTotals {
            channel: channel.to_string(),
            date,
            detail: detail_total,
            summary: summary_total,
        });
    }
    w.write_record([
        "TRAILER".to_string(),
        lines.to_string(),
        summary_total.to_string(),
    ])
    .map_err(csv_err)?;
    let mut file = w
        .into_inner()
        .map_err(|e| StatementError::Store(format!("writing {name}: {}", e.error())))?;
    file.flush()
        .map_err(|e| StatementError::Store(format!("writing {name}: {e}")))?;
    let digest = file.commit_replacing()?;
    write_atomic_replacing(
        &dir,
        &format!("{name}.sha256"),
        format!("{}  {name}\n", digest.sha256).as_bytes(),
    )?;
    Ok(WrittenStatement {
        path: dir.join(&name),
        sha256: digest.sha256,
        lines,
        owed,
    })
}

/// The billers with settlement terms that have no batch among `closed`
/// (a date's statements are complete once there are none), sorted.
pub fn billers_not_closed<'a>(
    billers: impl IntoIterator<Item = &'a crate::domain::biller::Biller>,
    closed: &[crate::store::BatchRecord],
) -> Vec<String> {
    let mut open: Vec<String> = billers
        .into_iter()
        .filter(|b| b.settlement.is_some())
        .filter(|b| !closed.iter().any(|c| c.biller_id == b.id.as_str()))
        .map(|b| b.id.to_string())
        .collect();
    open.sort();
    open
}

/// Writes every channel's statement for `date` once every biller with
/// settlement terms has closed it; returns what was written (nothing while
/// a biller's date is still open).
pub async fn write_all_if_complete(
    store: &dyn Store,
    outbox_dir: &Path,
    date: NaiveDate,
) -> Result<Vec<(String, WrittenStatement)>, StatementError> {
    let err = |e: crate::store::StoreError| StatementError::Store(e.to_string());
    let billers = store.load_billers().await.map_err(err)?;
    let closed = store.batches(None, Some(date)).await.map_err(err)?;
    if !billers_not_closed(&billers, &closed).is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for c in store.statement_channels(date).await.map_err(err)? {
        let channel = ChannelId::parse(&c).map_err(|e| StatementError::Store(e.to_string()))?;
        out.push((c, write(store, outbox_dir, &channel, date).await?));
    }
    Ok(out)
}
