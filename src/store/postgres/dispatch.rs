//! Outbox claims (leases, SKIP LOCKED), dispatch attempts and callbacks.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Row, Transaction};

use super::payments::{apply_transition_tx, row_to_payment};
use super::{db_err, PgStore};
use crate::domain::dispatch::CallbackEvent;
use crate::domain::dispatch::{AttemptOutcome, DeliveryHistory};
use crate::domain::ids::{ChannelId, PaymentId};
use crate::domain::payment::Payment;
use crate::domain::payment::Transition;
use crate::store::{
    AttemptStart, CallbackTarget, Claim, DispatchStore, DispatchUpdate, FileBatch, FileOutcome,
    OutboxNext, StoreError, StoreResult, Topic, WorkStore,
};

/// Queues the channel's callback for a payment's final state.
pub(super) async fn enqueue_callback(
    tx: &mut Transaction<'_, Postgres>,
    payment: PaymentId,
    event: &CallbackEvent,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO outbox (topic, aggregate_id, payload, created_at, available_at)
         SELECT 'callback', p.id, jsonb_build_object('channel_id', p.channel_id, 'event', $2::jsonb), $3, $3
           FROM payments p WHERE p.id = $1",
    )
    .bind(payment.0)
    .bind(sqlx::types::Json(event))
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn load_file_batch(
    pool: &sqlx::PgPool,
    row: sqlx::postgres::PgRow,
) -> StoreResult<FileBatch> {
    let id: i64 = row.get("id");
    let lines = sqlx::query(
        "SELECT p.* FROM file_batch_lines l JOIN payments p ON p.id = l.payment_id
          WHERE l.batch_id = $1 ORDER BY l.line_no",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    Ok(FileBatch {
        id,
        connector_id: row.get("connector_id"),
        biller_id: row.get("biller_id"),
        business_date: row.get("business_date"),
        seq: row.get::<i32, _>("seq") as u32,
        file_id: row.get("file_id"),
        created_at: row.get("created_at"),
        answered: row.get::<Option<DateTime<Utc>>, _>("answered_at").is_some(),
        lines: lines
            .iter()
            .map(row_to_payment)
            .collect::<StoreResult<_>>()?,
    })
}

/// Locks the claimed row if the claim is still ours (and, when given, at
/// least `min_left_ms` of its lease remain); Conflict otherwise.
async fn hold(
    tx: &mut Transaction<'_, Postgres>,
    claim: &Claim,
    min_left_ms: Option<u64>,
) -> StoreResult<()> {
    let held = sqlx::query(
        "SELECT 1 FROM outbox
          WHERE id = $1 AND claim_token = $2 AND done_at IS NULL
            AND available_at >= now() + coalesce($3, 0) * interval '1 millisecond'
            FOR UPDATE",
    )
    .bind(claim.outbox_id)
    .bind(claim.token)
    .bind(min_left_ms.map(|m| m as f64))
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::Conflict(format!(
            "outbox work {} is no longer held by this claim, or its lease is too short (lease lost)",
            claim.outbox_id
        ))),
    }
}

async fn finish_tx(
    tx: &mut Transaction<'_, Postgres>,
    claim: &Claim,
    next: &OutboxNext,
) -> StoreResult<()> {
    let id = claim.outbox_id;
    let q = match next {
        OutboxNext::Done => sqlx::query(
            "UPDATE outbox SET done_at = now(), claim_token = NULL, last_error = NULL WHERE id = $1",
        )
        .bind(id),
        OutboxNext::RetryAt { at, error } => sqlx::query(
            "UPDATE outbox SET available_at = $2, last_error = $3, claim_token = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(*at)
        .bind(error),
        OutboxNext::Defer { at, error } => sqlx::query(
            "UPDATE outbox SET available_at = $2, last_error = $3, claim_token = NULL,
                    attempts = GREATEST(attempts - 1, 0)
              WHERE id = $1",
        )
        .bind(id)
        .bind(*at)
        .bind(error),
        OutboxNext::Abandon { error } => sqlx::query(
            "UPDATE outbox SET done_at = now(), abandoned = true, last_error = $2, claim_token = NULL
              WHERE id = $1",
        )
        .bind(id)
        .bind(error),
    };
    q.execute(&mut **tx).await.map_err(db_err)?;
    Ok(())
}

/// Attempts left open by a process that stopped mid-call: their outcome is
/// unknown. Closed when the payment's work is next touched.
async fn close_stale_attempts(
    tx: &mut Transaction<'_, Postgres>,
    payment: PaymentId,
    keep: Option<i64>,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE dispatch_attempts
            SET finished_at = $3, outcome = 'unknown',
                detail = 'the process making this attempt stopped before it ended'
          WHERE payment_id = $1 AND finished_at IS NULL AND id <> coalesce($2, 0)",
    )
    .bind(payment.0)
    .bind(keep)
    .bind(at)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl WorkStore for PgStore {
    async fn claim_work(
        &self,
        topic: Topic,
        worker: &str,
        lease: std::time::Duration,
        limit: u32,
    ) -> StoreResult<Vec<Claim>> {
        // The database starts the lease after this instant: a deadline
        // counted from here is never later than the real one.
        let asked = std::time::Instant::now();
        let rows = sqlx::query(
            "WITH ready AS (
                SELECT id FROM outbox
                 WHERE topic = $1 AND done_at IS NULL AND available_at <= now()
                 ORDER BY available_at
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED)
             UPDATE outbox o
                SET available_at = now() + $3 * interval '1 millisecond',
                    claim_token = gen_random_uuid(), claimed_by = $4, attempts = o.attempts + 1
               FROM ready WHERE o.id = ready.id
             RETURNING o.id, o.claim_token, o.aggregate_id, o.payload, o.attempts, o.created_at",
        )
        .bind(topic.as_str())
        .bind(i64::from(limit))
        .bind(lease.as_millis() as f64)
        .bind(worker)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|r| Claim {
                outbox_id: r.get("id"),
                token: r.get("claim_token"),
                aggregate_id: r.get("aggregate_id"),
                payload: r.get("payload"),
                attempts: r.get("attempts"),
                created_at: r.get("created_at"),
                lease_deadline: asked + lease,
            })
            .collect())
    }

    async fn finish_work(&self, claim: &Claim, next: &OutboxNext) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        hold(&mut tx, claim, None).await?;
        finish_tx(&mut tx, claim, next).await?;
        tx.commit().await.map_err(db_err)
    }
}

#[async_trait]
impl DispatchStore for PgStore {
    async fn delivery(&self, id: PaymentId) -> StoreResult<Option<(Payment, DeliveryHistory)>> {
        let row = sqlx::query(
            "SELECT p.*,
                    (SELECT count(*) FROM dispatch_attempts a
                      WHERE a.payment_id = p.id AND a.kind = 'pay') AS pay_attempts,
                    lp.outcome AS last_pay_outcome, lp.started_at AS last_pay_started_at,
                    (extract(epoch FROM now() - lp.started_at) * 1000)::bigint AS since_last_pay_ms,
                    (SELECT count(*) FROM dispatch_attempts a
                      WHERE a.payment_id = p.id AND a.kind = 'status'
                        AND a.outcome IN ('pending', 'credited', 'refused', 'unknown')
                        AND a.id > coalesce(lp.id, 0)) AS contrary_answers,
                    (SELECT count(*) FROM dispatch_attempts a
                      WHERE a.payment_id = p.id AND a.kind = 'status'
                        AND a.id > coalesce(lp.id, 0)) AS status_attempts,
                    (SELECT count(*) FROM dispatch_attempts a
                      WHERE a.payment_id = p.id AND a.kind = 'status' AND a.outcome = 'not_found'
                        AND a.id > coalesce(lp.id, 0)) AS not_found_answers
               FROM payments p
               LEFT JOIN LATERAL (
                    SELECT a.id, a.outcome, a.started_at FROM dispatch_attempts a
                     WHERE a.payment_id = p.id AND a.kind = 'pay'
                     ORDER BY a.id DESC LIMIT 1) lp ON true
              WHERE p.id = $1",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let Some(r) = row else { return Ok(None) };
        let payment = row_to_payment(&r)?;
        let outcome: Option<String> = r.get("last_pay_outcome");
        let history = DeliveryHistory {
            pay_attempts: r.get::<i64, _>("pay_attempts") as u32,
            last_pay_outcome: outcome.as_deref().and_then(AttemptOutcome::parse),
            last_pay_started_at: r.get("last_pay_started_at"),
            connector_id: payment.connector_id.clone(),
            since_last_pay: r
                .get::<Option<i64>, _>("since_last_pay_ms")
                .map(|ms| std::time::Duration::from_millis(ms.max(0) as u64)),
            status_attempts: r.get::<i64, _>("status_attempts") as u32,
            not_found_answers: r.get::<i64, _>("not_found_answers") as u32,
            contrary_answers: r.get::<i64, _>("contrary_answers") as u32,
        };
        Ok(Some((payment, history)))
    }

    async fn start_attempt(&self, claim: &Claim, start: &AttemptStart) -> StoreResult<i64> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        hold(&mut tx, claim, Some(start.min_lease_left_ms)).await?;
        close_stale_attempts(&mut tx, start.payment_id, None, start.at).await?;
        if let Some(t) = &start.transition {
            apply_transition_tx(&mut tx, t, None).await?;
        }
        if start.kind == crate::domain::dispatch::AttemptKind::Pay {
            sqlx::query("UPDATE payments SET connector_id = $2 WHERE id = $1")
                .bind(start.payment_id.0)
                .bind(&start.connector_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let id: i64 = sqlx::query_scalar(
            // The database's clock: the not-found grace is measured on it.
            "INSERT INTO dispatch_attempts (payment_id, kind, connector_id, worker, started_at)
             VALUES ($1, $2, $3, $4, now()) RETURNING id",
        )
        .bind(start.payment_id.0)
        .bind(start.kind.as_str())
        .bind(&start.connector_id)
        .bind(&start.worker)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(id)
    }

    async fn record_dispatch(&self, claim: &Claim, u: &DispatchUpdate) -> StoreResult<()> {
        let payment = PaymentId(claim.aggregate_id);
        let now = Utc::now();
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        hold(&mut tx, claim, None).await?;
        if let Some(a) = &u.attempt {
            let finished = sqlx::query(
                "UPDATE dispatch_attempts SET finished_at = $2, outcome = $3, result_code = $4, detail = $5
                  WHERE id = $1 AND finished_at IS NULL",
            )
            .bind(a.attempt_id)
            .bind(a.at)
            .bind(a.outcome.as_str())
            .bind(&a.result_code)
            .bind(&a.detail)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if finished.rows_affected() != 1 {
                return Err(StoreError::Conflict(format!(
                    "attempt {} was already finished (closed as stale by another worker?)",
                    a.attempt_id
                )));
            }
        }
        close_stale_attempts(
            &mut tx,
            payment,
            u.attempt.as_ref().map(|a| a.attempt_id),
            now,
        )
        .await?;
        if let Some(t) = &u.transition {
            let credit = u.credit.as_ref().map(|(r, at)| (r.as_str(), *at));
            apply_transition_tx(&mut tx, t, credit).await?;
        }
        if let Some(event) = &u.callback {
            enqueue_callback(&mut tx, payment, event, now).await?;
        }
        finish_tx(&mut tx, claim, &u.next).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn queue_for_file(
        &self,
        claim: &Claim,
        transition: &Transition,
        connector_id: &str,
        biller_id: &str,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        hold(&mut tx, claim, None).await?;
        apply_transition_tx(&mut tx, transition, None).await?;
        sqlx::query("UPDATE payments SET connector_id = $2 WHERE id = $1")
            .bind(transition.payment_id.0)
            .bind(connector_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO file_batch_lines (payment_id, connector_id, biller_id, queued_at)
             VALUES ($1, $2, $3, now())",
        )
        .bind(transition.payment_id.0)
        .bind(connector_id)
        .bind(biller_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        finish_tx(&mut tx, claim, &OutboxNext::Done).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn prepare_file_batch(
        &self,
        connector_id: &str,
        up_to: DateTime<Utc>,
        business_date: chrono::NaiveDate,
        file_id: &(dyn Fn(u32) -> String + Sync),
    ) -> StoreResult<Option<i64>> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // One preparer at a time per route.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('file_batches:' || $1))")
            .bind(connector_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let waiting: Vec<(uuid::Uuid, String)> = sqlx::query_as(
            "SELECT payment_id, biller_id FROM file_batch_lines
              WHERE connector_id = $1 AND batch_id IS NULL AND queued_at <= $2
              ORDER BY queued_at, payment_id LIMIT 50000",
        )
        .bind(connector_id)
        .bind(up_to)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some((_, biller_id)) = waiting.first().cloned() else {
            return Ok(None);
        };
        let seq: i32 = sqlx::query_scalar(
            "SELECT coalesce(max(seq), 0) + 1 FROM file_batches WHERE connector_id = $1 AND business_date = $2",
        )
        .bind(connector_id)
        .bind(business_date)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let batch_id: i64 = sqlx::query_scalar(
            "INSERT INTO file_batches (connector_id, biller_id, business_date, seq, file_id, created_at)
             VALUES ($1, $2, $3, $4, $5, date_trunc('second', now())) RETURNING id",
        )
        .bind(connector_id)
        .bind(&biller_id)
        .bind(business_date)
        .bind(seq)
        .bind(file_id(seq as u32))
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let ids: Vec<uuid::Uuid> = waiting.iter().map(|(p, _)| *p).collect();
        sqlx::query(
            "UPDATE file_batch_lines l SET batch_id = $1, line_no = u.n
               FROM unnest($2::uuid[]) WITH ORDINALITY AS u(p, n) WHERE l.payment_id = u.p",
        )
        .bind(batch_id)
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(batch_id))
    }

    async fn undelivered_file_batches(&self, connector_id: &str) -> StoreResult<Vec<FileBatch>> {
        let rows = sqlx::query(
            "SELECT * FROM file_batches WHERE connector_id = $1 AND delivered_at IS NULL ORDER BY id",
        )
        .bind(connector_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(load_file_batch(&self.pool, r).await?);
        }
        Ok(out)
    }

    async fn mark_file_batch_delivered(&self, batch_id: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE file_batches SET delivered_at = now() WHERE id = $1 AND delivered_at IS NULL",
        )
        .bind(batch_id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn file_batch(&self, file_id: &str) -> StoreResult<Option<FileBatch>> {
        let row = sqlx::query("SELECT * FROM file_batches WHERE file_id = $1")
            .bind(file_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        match row {
            Some(r) => Ok(Some(load_file_batch(&self.pool, r).await?)),
            None => Ok(None),
        }
    }

    async fn apply_file_outcomes(
        &self,
        batch_id: i64,
        outcomes: &[FileOutcome],
    ) -> StoreResult<()> {
        let now = Utc::now();
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let fresh = sqlx::query(
            "UPDATE file_batches SET answered_at = now() WHERE id = $1 AND answered_at IS NULL",
        )
        .bind(batch_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if fresh.rows_affected() != 1 {
            return Err(StoreError::Conflict(format!(
                "file batch {batch_id} was answered before"
            )));
        }
        for o in outcomes {
            let credit = o.credit.as_ref().map(|(r, at)| (r.as_str(), *at));
            apply_transition_tx(&mut tx, &o.transition, credit).await?;
            if let Some(event) = &o.callback {
                enqueue_callback(&mut tx, o.transition.payment_id, event, now).await?;
            }
        }
        tx.commit().await.map_err(db_err)
    }

    async fn callback_target(&self, channel: &ChannelId) -> StoreResult<Option<CallbackTarget>> {
        let row = sqlx::query(
            "SELECT c.callback_url, k.key_id, k.secret_sealed
               FROM channels c JOIN channel_keys k ON k.channel_id = c.id AND k.status = 'active'
              WHERE c.id = $1
              ORDER BY k.created_at DESC, k.key_id
              LIMIT 1",
        )
        .bind(channel.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.map(|r| CallbackTarget {
            url: r.get("callback_url"),
            key_id: r.get("key_id"),
            sealed_secret: r.get("secret_sealed"),
        }))
    }
}
