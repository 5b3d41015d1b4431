//! Outbox claims (leases, SKIP LOCKED), dispatch attempts and callbacks.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Row, Transaction};

use super::payments::{apply_transition_tx, row_to_payment};
use super::{db_err, PgStore};
use crate::domain::dispatch::{AttemptOutcome, DeliveryHistory};
use crate::domain::ids::{ChannelId, PaymentId};
use crate::domain::payment::Payment;
use crate::store::{
    AttemptStart, CallbackTarget, Claim, DispatchStore, DispatchUpdate, OutboxNext, StoreError,
    StoreResult, Topic, WorkStore,
};

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
            sqlx::query(
                "INSERT INTO outbox (topic, aggregate_id, payload, created_at, available_at)
                 SELECT 'callback', p.id, jsonb_build_object('channel_id', p.channel_id, 'event', $2::jsonb), $3, $3
                   FROM payments p WHERE p.id = $1",
            )
            .bind(payment.0)
            .bind(sqlx::types::Json(event))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        finish_tx(&mut tx, claim, &u.next).await?;
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
