//! Settlement in PostgreSQL. Closing a date is one transaction however big
//! the batch: its payments and returns are read once and offered to the
//! domain's plan (which takes them, computes their commission and the
//! totals), the items written with one COPY, the journal and the outbox
//! message set-based. A payment's settlement is its item: its row is not
//! touched (SETTLED is derived from the item where payments are read, see
//! migrations/20261207000015_settled_by_membership.sql), and the database
//! checks the items against their payments and the batch's totals.

use std::fmt::Write as _;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use super::ledger::insert_journals;
use super::payments::load_payment_tx;
use super::{db_err, PgStore};
use crate::domain::ids::{BillerId, ChannelId, PaymentId};
use crate::domain::ledger::Journal;
use crate::domain::money::Currency;
use crate::domain::payment::PaymentStatus;
use crate::domain::settlement::{
    BankAccount, BatchPlan, BatchTotals, CommissionRule, FileFormat, PlanError, SettlementTerms,
};
use crate::store::{
    BatchFile, BatchRecord, CloseOutcome, CloseRequest, ReturnRecord, SettledItem,
    SettlementMessage, SettlementStore, StatementLine, StoreError, StoreResult, StoredBillerKey,
};

/// Rows sent to the database per COPY message.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// The server's memory for a close's sorts and for the check of its items
/// (a million items take some 100 MB): beyond it they spill to disk.
const CLOSE_WORK_MEM: &str = "256MB";

pub(super) fn row_to_batch(r: &PgRow) -> StoreResult<BatchRecord> {
    let bank = |p: &str| BankAccount {
        name: r.get(format!("{p}_name").as_str()),
        account: r.get(format!("{p}_account").as_str()),
        bic: r.get(format!("{p}_bic").as_str()),
    };
    let format: String = r.get("file_format");
    Ok(BatchRecord {
        id: r.get("id"),
        biller_id: r.get("biller_id"),
        biller_name: r.get("biller_name"),
        business_date: r.get("business_date"),
        currency: r.get::<String, _>("currency").trim().to_string(),
        cutoff_at: r.get("cutoff_at"),
        created_at: r.get("created_at"),
        totals: BatchTotals {
            count: r.get::<i64, _>("payments_count") as u64,
            gross: r.get("gross"),
            commission: r.get("commission"),
            returns_count: r.get::<i64, _>("returns_count") as u64,
            returns: r.get("returns"),
        },
        commission_rule: r.get("commission_rule"),
        format: FileFormat::parse(&format)
            .map_err(|e| StoreError::Rejected(format!("stored batch: {e}")))?,
        creditor: bank("creditor"),
        debtor: bank("debtor"),
        journal_id: r.get("journal_id"),
        files_written_at: r.get("files_written_at"),
        files_failed_at: r.get("files_failed_at"),
        files_failure: r.get("files_failure"),
    })
}

async fn find_batch(
    conn: &mut sqlx::PgConnection,
    biller: &str,
    date: NaiveDate,
) -> StoreResult<Option<BatchRecord>> {
    sqlx::query("SELECT * FROM settlement_batches WHERE biller_id = $1 AND business_date = $2")
        .bind(biller)
        .bind(date)
        .fetch_optional(conn)
        .await
        .map_err(db_err)?
        .map(|r| row_to_batch(&r))
        .transpose()
}

fn row_to_item(r: &PgRow) -> SettledItem {
    SettledItem {
        seq: r.get("seq"),
        payment_id: PaymentId(r.get("payment_id")),
        is_return: r.get::<String, _>("kind") == "return",
        channel_id: r.get("channel_id"),
        channel_reference: r.get("channel_reference"),
        biller_reference: r.get("biller_reference"),
        account_number: r.get("account_number"),
        amount: r.get("amount"),
        commission: r.get("commission"),
        confirmed_at: r.get("confirmed_at"),
    }
}

const ITEM_COLUMNS: &str = "i.seq, i.payment_id, i.kind, i.channel_id, i.amount, i.commission,
     p.channel_reference, p.biller_reference, p.account_number,
     coalesce(p.confirmed_at, p.created_at) AS confirmed_at";

/// A batch the domain refused to plan.
fn plan_err(e: PlanError) -> StoreError {
    StoreError::Rejected(e.to_string())
}

/// Offers the plan every CONFIRMED payment not settled yet, confirmed (by
/// our clock: when the CONFIRMED transition was stamped, updated_at) at or
/// before the cut-off, streamed. A biller's clock never decides the date.
///
/// Without reading the past: the payments stamped after the biller's
/// latest cut-off (every one stamped before it was closed then, or is a
/// straggler, see [`raise_fence`]), and the stragglers not settled yet. The
/// closing's lock serializes the closes of a biller.
async fn plan_payments(
    tx: &mut sqlx::PgConnection,
    req: &CloseRequest,
    rule: &CommissionRule,
    plan: &mut BatchPlan,
) -> StoreResult<()> {
    use futures_util::TryStreamExt;
    use sqlx::Executor;
    let currency = req.biller.currency;
    let closed_through: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT max(cutoff_at) FROM settlement_batches WHERE biller_id = $1")
            .bind(req.biller.id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
    let mut rows = tx.fetch(
        sqlx::query(
            "SELECT id, channel_id, amount, updated_at FROM payments
              WHERE biller_id = $1 AND status = 'CONFIRMED' AND updated_at <= $2
                AND updated_at > coalesce($3::timestamptz, '-infinity')
             UNION ALL
             SELECT p.id, p.channel_id, p.amount, p.updated_at
               FROM settlement_stragglers s JOIN payments p ON p.id = s.payment_id
              WHERE s.biller_id = $1 AND p.biller_id = $1 AND p.status = 'CONFIRMED'
                AND p.updated_at <= $2 AND p.updated_at <= $3
                AND NOT EXISTS (SELECT 1 FROM settlement_items i
                                 WHERE i.payment_id = p.id AND i.kind = 'payment')
              ORDER BY updated_at, id",
        )
        .bind(req.biller.id.as_str())
        .bind(req.cutoff_at)
        .bind(closed_through),
    );
    while let Some(r) = rows.try_next().await.map_err(db_err)? {
        plan.add_payment(rule, currency, r.get(0), r.get(1), r.get(2))
            .map_err(plan_err)?;
    }
    Ok(())
}

/// Raises the biller's fence to the cut-off, in a transaction of its own
/// committed before the close reads: it waits for the confirming
/// transactions of the biller in flight (they hold the fence's lock
/// shared), and a payment confirmed after it, stamped at or before the
/// fence, is recorded as a straggler (by the payments' triggers) for the
/// next close to take.
async fn raise_fence(
    pool: &sqlx::PgPool,
    biller: &BillerId,
    through: DateTime<Utc>,
) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('settlement-fence:' || $1))")
        .bind(biller.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    sqlx::query(
        "INSERT INTO settlement_fences AS f (biller_id, closed_through) VALUES ($1, $2)
         ON CONFLICT (biller_id) DO UPDATE
            SET closed_through = greatest(f.closed_through, EXCLUDED.closed_through)
          WHERE f.closed_through < EXCLUDED.closed_through",
    )
    .bind(biller.as_str())
    .bind(through)
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)
}

/// Offers the plan the returns not recovered yet, oldest first; it takes
/// them as long as the net stays >= 0, the rest wait for a later batch.
async fn plan_returns(
    tx: &mut sqlx::PgConnection,
    req: &CloseRequest,
    plan: &mut BatchPlan,
) -> StoreResult<()> {
    let returns = sqlx::query(
        "SELECT r.payment_id, r.channel_id, r.amount FROM payment_returns r
          WHERE r.biller_id = $1 AND r.returned_at <= $2
            AND NOT EXISTS (SELECT 1 FROM settlement_items i
                             WHERE i.payment_id = r.payment_id AND i.kind = 'return')
          ORDER BY r.returned_at, r.payment_id",
    )
    .bind(req.biller.id.as_str())
    .bind(req.cutoff_at)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_err)?;
    for r in &returns {
        plan.offer_return(r.get("payment_id"), r.get("channel_id"), r.get("amount"))
            .map_err(plan_err)?;
    }
    Ok(())
}

/// Writes the batch row: its totals, the biller's terms and both accounts.
async fn insert_batch(
    tx: &mut sqlx::PgConnection,
    req: &CloseRequest,
    terms: &SettlementTerms,
    batch_id: Uuid,
    totals: &BatchTotals,
    journal: Option<&Journal>,
) -> StoreResult<()> {
    let biller = &req.biller;
    sqlx::query(
        "INSERT INTO settlement_batches (id, biller_id, biller_name, business_date, currency, cutoff_at,
            created_at, payments_count, gross, commission, returns_count, returns, net,
            commission_rule, file_format, creditor_name, creditor_account, creditor_bic,
            debtor_name, debtor_account, debtor_bic, journal_id)
         VALUES ($1,$2,$22,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21)",
    )
    .bind(batch_id)
    .bind(biller.id.as_str())
    .bind(req.business_date)
    .bind(biller.currency.code())
    .bind(req.cutoff_at)
    .bind(req.now)
    .bind(totals.count as i64)
    .bind(totals.gross)
    .bind(totals.commission)
    .bind(totals.returns_count as i64)
    .bind(totals.returns)
    .bind(totals.net())
    .bind(terms.commission.describe())
    .bind(terms.format.as_str())
    .bind(&terms.bank.name)
    .bind(&terms.bank.account)
    .bind(&terms.bank.bic)
    .bind(&req.debtor.name)
    .bind(&req.debtor.account)
    .bind(&req.debtor.bic)
    .bind(journal.map(|j| j.id))
    .bind(&biller.name)
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Writes the plan's items in one COPY (text format; every value is plain
/// ASCII with no tab, newline or backslash: uuids, ids, decimals), numbered
/// from 1 in the plan's order.
async fn copy_items(
    tx: &mut sqlx::PgConnection,
    batch_id: Uuid,
    plan: BatchPlan,
) -> StoreResult<()> {
    if plan.items.is_empty() {
        return Ok(());
    }
    let mut copy = tx
        .copy_in_raw(
            "COPY settlement_items (batch_id, seq, payment_id, kind, channel_id, amount, commission)
             FROM STDIN",
        )
        .await
        .map_err(db_err)?;
    let mut buf = String::with_capacity(COPY_CHUNK_BYTES + 512);
    for (i, it) in plan.items.iter().enumerate() {
        let _ = writeln!(
            buf,
            "{batch_id}\t{}\t{}\t{}\t{}\t{}\t{}",
            i + 1,
            it.payment_id,
            if it.is_return { "return" } else { "payment" },
            plan.channel_of(it),
            it.amount,
            it.commission
        );
        if buf.len() >= COPY_CHUNK_BYTES {
            copy.send(buf.as_bytes()).await.map_err(db_err)?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        copy.send(buf.as_bytes()).await.map_err(db_err)?;
    }
    copy.finish().await.map_err(db_err)?;
    Ok(())
}

/// The outbox message that announces the closed batch.
async fn enqueue_batch(
    tx: &mut sqlx::PgConnection,
    req: &CloseRequest,
    batch_id: Uuid,
) -> StoreResult<()> {
    let payload = serde_json::json!({
        "kind": "settlement_batch",
        "batch_id": batch_id,
        "biller_id": req.biller.id.as_str(),
        "business_date": req.business_date,
    });
    sqlx::query(
        "INSERT INTO outbox (topic, aggregate_id, payload, available_at) VALUES ('settlement', $1, $2, $3)",
    )
    .bind(batch_id)
    .bind(payload)
    .bind(req.now)
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl SettlementStore for PgStore {
    async fn close_batch(&self, req: &CloseRequest) -> StoreResult<CloseOutcome> {
        let biller = &req.biller;
        let terms = biller.settlement.as_ref().ok_or_else(|| {
            StoreError::Rejected(format!(
                "biller {} has no settlement terms: add [biller.settlement] to the billers file and import it",
                biller.id
            ))
        })?;
        let currency: Currency = biller.currency;
        raise_fence(&self.pool, &biller.id, req.cutoff_at).await?;
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // One closing per biller at a time, in every process.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('settlement:' || $1))")
            .bind(biller.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if let Some(b) = find_batch(&mut tx, biller.id.as_str(), req.business_date).await? {
            return Ok(CloseOutcome::AlreadyClosed(b));
        }
        // A day's payments sorted, and its items' check (the COPY's
        // transition table), in memory rather than in temporary files:
        // for this transaction only.
        sqlx::query(&format!("SET LOCAL work_mem = '{CLOSE_WORK_MEM}'"))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let mut plan = BatchPlan::new();
        plan_payments(&mut tx, req, &terms.commission, &mut plan).await?;
        plan_returns(&mut tx, req, &mut plan).await?;

        let batch_id = Uuid::now_v7();
        let journal = plan
            .journal(batch_id, &biller.id, req.business_date, currency)
            .map_err(plan_err)?;
        let totals = plan.totals;
        insert_batch(&mut tx, req, terms, batch_id, &totals, journal.as_ref()).await?;
        // The items settle their payments; the database refuses a payment
        // not CONFIRMED (or of another biller), one already in a batch, and
        // items that do not add up to the batch's totals.
        copy_items(&mut tx, batch_id, plan).await?;
        if let Some(j) = &journal {
            insert_journals(&mut tx, &[j]).await?;
        }
        enqueue_batch(&mut tx, req, batch_id).await?;
        let batch = find_batch(&mut tx, biller.id.as_str(), req.business_date)
            .await?
            .ok_or_else(|| StoreError::Rejected("batch vanished inside its transaction".into()))?;
        tx.commit().await.map_err(db_err)?;
        Ok(CloseOutcome::Closed(batch))
    }

    async fn batch(&self, id: Uuid) -> StoreResult<Option<BatchRecord>> {
        sqlx::query("SELECT * FROM settlement_batches WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(|r| row_to_batch(&r))
            .transpose()
    }

    async fn batches(
        &self,
        biller: Option<&str>,
        date: Option<NaiveDate>,
    ) -> StoreResult<Vec<BatchRecord>> {
        sqlx::query(
            "SELECT * FROM settlement_batches
              WHERE ($1::text IS NULL OR biller_id = $1) AND ($2::date IS NULL OR business_date = $2)
              ORDER BY business_date, biller_id",
        )
        .bind(biller)
        .bind(date)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(row_to_batch)
        .collect()
    }

    async fn for_each_item(
        &self,
        batch: Uuid,
        f: &mut (dyn FnMut(SettledItem) -> Result<(), String> + Send),
    ) -> StoreResult<()> {
        use futures_util::TryStreamExt;
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM settlement_items i JOIN payments p ON p.id = i.payment_id
              WHERE i.batch_id = $1 ORDER BY i.seq"
        );
        let mut rows = sqlx::query(&sql).bind(batch).fetch(&self.pool);
        while let Some(r) = rows.try_next().await.map_err(db_err)? {
            f(row_to_item(&r)).map_err(StoreError::Rejected)?;
        }
        Ok(())
    }

    async fn record_files(&self, batch: Uuid, files: &[BatchFile]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let now = Utc::now();
        for f in files {
            let done = sqlx::query(
                "INSERT INTO settlement_files (batch_id, name, kind, sha256, bytes, line_count, total, written_at)
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (batch_id, name) DO NOTHING",
            )
            .bind(batch)
            .bind(&f.name)
            .bind(&f.kind)
            .bind(&f.sha256)
            .bind(f.bytes as i64)
            .bind(f.count as i64)
            .bind(f.total)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
            if done == 0 {
                // Recorded before: it must be the same file.
                let same: bool = sqlx::query_scalar(
                    "SELECT sha256 = $3 FROM settlement_files WHERE batch_id = $1 AND name = $2",
                )
                .bind(batch)
                .bind(&f.name)
                .bind(&f.sha256)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
                if !same {
                    return Err(StoreError::Conflict(format!(
                        "batch {batch}: file {} was recorded before with other content",
                        f.name
                    )));
                }
            }
        }
        sqlx::query(
            "UPDATE settlement_batches SET files_written_at = $2
              WHERE id = $1 AND files_written_at IS NULL",
        )
        .bind(batch)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn record_files_failure(
        &self,
        batch: Uuid,
        failure: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        // The text is kept whole up to the column's limit (a path and two
        // digests take a few hundred bytes).
        let failure: String = failure.chars().take(4000).collect();
        let done = sqlx::query(
            "UPDATE settlement_batches SET files_failed_at = $2, files_failure = $3
              WHERE id = $1 AND files_failed_at IS NULL AND files_written_at IS NULL",
        )
        .bind(batch)
        .bind(at)
        .bind(if failure.is_empty() {
            "unknown"
        } else {
            failure.as_str()
        })
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(done == 1)
    }

    async fn settlement_messages(&self, batch: Uuid) -> StoreResult<Vec<SettlementMessage>> {
        let rows = sqlx::query(
            "SELECT id, created_at, done_at, abandoned, attempts, available_at, last_error
               FROM outbox WHERE topic = 'settlement' AND aggregate_id = $1 ORDER BY id",
        )
        .bind(batch)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| SettlementMessage {
                outbox_id: r.get("id"),
                created_at: r.get("created_at"),
                done_at: r.get("done_at"),
                abandoned: r.get("abandoned"),
                attempts: r.get("attempts"),
                available_at: r.get("available_at"),
                last_error: r.get("last_error"),
            })
            .collect())
    }

    async fn batch_files(&self, batch: Uuid) -> StoreResult<Vec<BatchFile>> {
        let rows = sqlx::query(
            "SELECT name, kind, sha256, bytes, line_count, total FROM settlement_files
              WHERE batch_id = $1
              ORDER BY CASE kind WHEN 'settlement' THEN 1 WHEN 'pain001' THEN 2 ELSE 3 END, name",
        )
        .bind(batch)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| BatchFile {
                name: r.get("name"),
                kind: r.get("kind"),
                sha256: r.get("sha256"),
                bytes: r.get::<i64, _>("bytes") as u64,
                count: r.get::<i64, _>("line_count") as u64,
                total: r.get("total"),
            })
            .collect())
    }

    async fn record_return(
        &self,
        payment: PaymentId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<ReturnRecord> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(StoreError::Rejected(
                "a return needs a reason of 1 to 500 characters".into(),
            ));
        }
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let record = record_return_tx(&mut tx, payment, reason, now).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(record)
    }

    async fn channel_statement(
        &self,
        channel: &ChannelId,
        date: NaiveDate,
    ) -> StoreResult<Vec<StatementLine>> {
        let rows = sqlx::query(
            "SELECT b.biller_id, b.currency, b.id AS batch_id,
                    count(*) FILTER (WHERE i.kind = 'payment') AS payments,
                    coalesce(sum(i.amount) FILTER (WHERE i.kind = 'payment'), 0) AS amount,
                    count(*) FILTER (WHERE i.kind = 'return') AS returns,
                    coalesce(sum(i.amount) FILTER (WHERE i.kind = 'return'), 0) AS returned
               FROM settlement_batches b
               JOIN settlement_items i ON i.batch_id = b.id AND i.channel_id = $1
              WHERE b.business_date = $2
              GROUP BY b.biller_id, b.currency, b.id
              ORDER BY b.biller_id",
        )
        .bind(channel.as_str())
        .bind(date)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| StatementLine {
                biller_id: r.get("biller_id"),
                currency: r.get::<String, _>("currency").trim().to_string(),
                batch_id: r.get("batch_id"),
                payments: r.get::<i64, _>("payments") as u64,
                amount: r.get("amount"),
                returns: r.get::<i64, _>("returns") as u64,
                returned: r.get("returned"),
            })
            .collect())
    }

    async fn statement_channels(&self, date: NaiveDate) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT DISTINCT i.channel_id FROM settlement_batches b
               JOIN settlement_items i ON i.batch_id = b.id
              WHERE b.business_date = $1 ORDER BY 1",
        )
        .bind(date)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn for_each_statement_item(
        &self,
        channel: &ChannelId,
        date: NaiveDate,
        f: &mut (dyn FnMut(String, SettledItem) -> Result<(), String> + Send),
    ) -> StoreResult<()> {
        use futures_util::TryStreamExt;
        let sql = format!(
            "SELECT b.biller_id, {ITEM_COLUMNS}
               FROM settlement_batches b
               JOIN settlement_items i ON i.batch_id = b.id
               JOIN payments p ON p.id = i.payment_id
              WHERE b.business_date = $1 AND i.channel_id = $2
              ORDER BY b.biller_id, i.seq"
        );
        let mut rows = sqlx::query(&sql)
            .bind(date)
            .bind(channel.as_str())
            .fetch(&self.pool);
        while let Some(r) = rows.try_next().await.map_err(db_err)? {
            f(r.get("biller_id"), row_to_item(&r)).map_err(StoreError::Rejected)?;
        }
        Ok(())
    }

    async fn add_biller_key(
        &self,
        biller: &BillerId,
        key_id: &str,
        sealed_secret: &[u8],
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO biller_keys (key_id, biller_id, secret_sealed, status) VALUES ($1, $2, $3, 'active')",
        )
        .bind(key_id)
        .bind(biller.as_str())
        .bind(sealed_secret)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn disable_biller_key(&self, key_id: &str) -> StoreResult<()> {
        let n = sqlx::query(
            "UPDATE biller_keys SET status = 'disabled', disabled_at = now()
              WHERE key_id = $1 AND status = 'active'",
        )
        .bind(key_id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("active biller key {key_id}")));
        }
        Ok(())
    }

    async fn find_biller_key(&self, key_id: &str) -> StoreResult<Option<StoredBillerKey>> {
        let row = sqlx::query(
            "SELECT k.key_id, k.biller_id, k.secret_sealed, k.status, b.status AS biller_status
               FROM biller_keys k JOIN billers b ON b.id = k.biller_id WHERE k.key_id = $1",
        )
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.map(|r| StoredBillerKey {
            key_id: r.get("key_id"),
            biller_id: r.get("biller_id"),
            sealed_secret: r.get("secret_sealed"),
            active: r.get::<String, _>("status") == "active",
            biller_active: r.get::<String, _>("biller_status") == "active",
        }))
    }
}

/// A SETTLED payment given back: RETURNED, the reversing journal, the
/// return waiting to be recovered, and the channel's callback, in `tx`.
pub(super) async fn record_return_tx(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    payment: PaymentId,
    reason: &str,
    now: DateTime<Utc>,
) -> StoreResult<ReturnRecord> {
    let p = load_payment_tx(tx, payment)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("payment {payment}")))?;
    if p.status != PaymentStatus::Settled {
        return Err(StoreError::Conflict(format!(
            "payment {payment} is {}: only a SETTLED payment can be returned",
            p.status.as_str()
        )));
    }
    let t = crate::domain::payment::transition(
        payment,
        PaymentStatus::Settled,
        PaymentStatus::Returned,
        format!("returned by the biller: {reason}"),
        now,
    )
    .map_err(|e| StoreError::Rejected(e.to_string()))?;
    super::payments::apply_transition_tx(tx, &t, None).await?;
    let journal = Journal::payment_returned(payment, &p.channel_id, &p.biller_id, p.amount);
    insert_journals(tx, &[&journal]).await?;
    sqlx::query(
            "INSERT INTO payment_returns (payment_id, biller_id, channel_id, amount, currency, reason, returned_at, journal_id)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
        )
        .bind(payment.0)
        .bind(p.biller_id.as_str())
        .bind(p.channel_id.as_str())
        .bind(p.amount.amount())
        .bind(p.amount.currency().code())
        .bind(reason)
        .bind(now)
        .bind(journal.id)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    // The payment app hears of it like of any final state.
    let event = crate::domain::dispatch::CallbackEvent::for_payment(
        &p,
        PaymentStatus::Returned,
        p.biller_reference.as_deref(),
        Some(reason),
        now,
    );
    super::dispatch::enqueue_callback(tx, payment, &event, now).await?;
    Ok(ReturnRecord {
        payment_id: payment,
        biller_id: p.biller_id.to_string(),
        amount: p.amount.amount(),
        returned_at: now,
    })
}
