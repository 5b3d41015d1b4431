//! Outbox claims (leases, SKIP LOCKED), dispatch attempts and callbacks.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Row, Transaction};

use std::collections::{HashMap, HashSet};

use super::payments::{
    apply_transition_tx, lock_for_transitions, row_to_payment, write_transitions, Checked,
};
use super::{db_err, PgStore};
use crate::domain::dispatch::CallbackEvent;
use crate::domain::dispatch::{AttemptOutcome, DeliveryHistory};
use crate::domain::ids::{ChannelId, PaymentId};
use crate::domain::payment::Payment;
use crate::domain::payment::Transition;
use crate::store::{
    AttemptEnd, AttemptStart, CallbackTarget, Claim, DispatchDone, DispatchOp, DispatchStore,
    DispatchUpdate, FileBatch, FileOutcome, OutboxNext, StoreError, StoreResult, Topic, WorkStore,
};

/// Queues the channel's callback for a payment's final state.
pub(super) async fn enqueue_callback(
    tx: &mut Transaction<'_, Postgres>,
    payment: PaymentId,
    event: &CallbackEvent,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    enqueue_callbacks(tx, &[(payment, event)], now).await
}

/// Queues the channels' callbacks for payments' final states, in one
/// statement.
async fn enqueue_callbacks(
    tx: &mut Transaction<'_, Postgres>,
    events: &[(PaymentId, &CallbackEvent)],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<uuid::Uuid> = events.iter().map(|(p, _)| p.0).collect();
    let bodies: Vec<sqlx::types::Json<&CallbackEvent>> =
        events.iter().map(|(_, e)| sqlx::types::Json(*e)).collect();
    sqlx::query(
        "INSERT INTO outbox (topic, aggregate_id, payload, created_at, available_at)
         SELECT 'callback', p.id, jsonb_build_object('channel_id', p.channel_id, 'event', u.event), $3, $3
           FROM UNNEST($1::uuid[], $2::jsonb[]) WITH ORDINALITY AS u(id, event, n)
           JOIN payments p ON p.id = u.id
          ORDER BY u.n",
    )
    .bind(&ids)
    .bind(&bodies)
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
    let held = hold_many(tx, &[(claim, min_left_ms.unwrap_or(0))]).await?;
    if held.contains(&claim.outbox_id) {
        Ok(())
    } else {
        Err(lease_lost(claim))
    }
}

fn lease_lost(claim: &Claim) -> StoreError {
    StoreError::Conflict(format!(
        "outbox work {} is no longer held by this claim, or its lease is too short (lease lost)",
        claim.outbox_id
    ))
}

/// Locks (in id order, one statement) the claimed rows still held by their
/// claims with at least the given milliseconds of lease left; returns
/// their ids.
async fn hold_many(
    tx: &mut Transaction<'_, Postgres>,
    claims: &[(&Claim, u64)],
) -> StoreResult<HashSet<i64>> {
    let ids: Vec<i64> = claims.iter().map(|(c, _)| c.outbox_id).collect();
    let tokens: Vec<uuid::Uuid> = claims.iter().map(|(c, _)| c.token).collect();
    let min_left: Vec<f64> = claims.iter().map(|(_, ms)| *ms as f64).collect();
    let held: Vec<i64> = sqlx::query_scalar(
        "SELECT o.id FROM outbox o
           JOIN UNNEST($1::bigint[], $2::uuid[], $3::float8[]) AS u(id, token, min_left_ms)
             ON o.id = u.id AND o.claim_token = u.token
          WHERE o.done_at IS NULL
            AND o.available_at >= now() + u.min_left_ms * interval '1 millisecond'
          ORDER BY o.id
            FOR UPDATE OF o",
    )
    .bind(&ids)
    .bind(&tokens)
    .bind(&min_left)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(held.into_iter().collect())
}

async fn finish_tx(
    tx: &mut Transaction<'_, Postgres>,
    claim: &Claim,
    next: &OutboxNext,
) -> StoreResult<()> {
    finish_many(tx, &[(claim.outbox_id, next)]).await
}

/// What becomes of claimed work, set-based: one statement per kind of
/// ending present.
async fn finish_many(
    tx: &mut Transaction<'_, Postgres>,
    items: &[(i64, &OutboxNext)],
) -> StoreResult<()> {
    let mut done = Vec::new();
    let (mut retry, mut defer, mut abandon) =
        (Later::default(), Later::default(), Later::default());
    for (id, next) in items {
        match next {
            OutboxNext::Done => done.push(*id),
            OutboxNext::RetryAt { at, error } => retry.push(*id, Some(*at), error),
            OutboxNext::Defer { at, error } => defer.push(*id, Some(*at), error),
            OutboxNext::Abandon { error } => abandon.push(*id, None, error),
        }
    }
    if !done.is_empty() {
        sqlx::query(
            "UPDATE outbox SET done_at = now(), claim_token = NULL, last_error = NULL
              WHERE id = ANY($1)",
        )
        .bind(&done)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    }
    for (later, sql) in [
        (
            &retry,
            "UPDATE outbox o SET available_at = u.at, last_error = u.error, claim_token = NULL
               FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[]) AS u(id, at, error)
              WHERE o.id = u.id",
        ),
        // Put back without having been tried: the claim does not count.
        (
            &defer,
            "UPDATE outbox o SET available_at = u.at, last_error = u.error, claim_token = NULL,
                    attempts = GREATEST(o.attempts - 1, 0)
               FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[]) AS u(id, at, error)
              WHERE o.id = u.id",
        ),
        (
            &abandon,
            "UPDATE outbox o SET done_at = now(), abandoned = true, last_error = u.error,
                    claim_token = NULL
               FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[]) AS u(id, at, error)
              WHERE o.id = u.id",
        ),
    ] {
        if later.ids.is_empty() {
            continue;
        }
        sqlx::query(sql)
            .bind(&later.ids)
            .bind(&later.at)
            .bind(&later.errors)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

/// Outbox rows put back (or given up) with a time and an error each.
#[derive(Default)]
struct Later<'a> {
    ids: Vec<i64>,
    at: Vec<Option<DateTime<Utc>>>,
    errors: Vec<&'a str>,
}

impl<'a> Later<'a> {
    fn push(&mut self, id: i64, at: Option<DateTime<Utc>>, error: &'a str) {
        self.ids.push(id);
        self.at.push(at);
        self.errors.push(error);
    }
}

/// Attempts left open by a process that stopped mid-call: their outcome is
/// unknown. Closed when the payment's work is next touched.
async fn close_stale_attempts(
    tx: &mut Transaction<'_, Postgres>,
    payments: &[uuid::Uuid],
    at: DateTime<Utc>,
) -> StoreResult<()> {
    if payments.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE dispatch_attempts
            SET finished_at = $2, outcome = 'unknown',
                detail = 'the process making this attempt stopped before it ended'
          WHERE payment_id = ANY($1) AND finished_at IS NULL",
    )
    .bind(payments)
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
        let op = DispatchOp::Finish {
            claim: claim.clone(),
            next: next.clone(),
        };
        self.commit_one(op).await.map(|_| ())
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
        let op = DispatchOp::Start {
            claim: claim.clone(),
            start: start.clone(),
        };
        match self.commit_one(op).await? {
            DispatchDone::Started(id) => Ok(id),
            DispatchDone::Written => unreachable!("a start records an attempt"),
        }
    }

    async fn record_dispatch(&self, claim: &Claim, u: &DispatchUpdate) -> StoreResult<()> {
        let op = DispatchOp::Record {
            claim: claim.clone(),
            update: Box::new(u.clone()),
        };
        self.commit_one(op).await.map(|_| ())
    }

    async fn commit_dispatch(
        &self,
        ops: &[DispatchOp],
    ) -> StoreResult<Vec<StoreResult<DispatchDone>>> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let done = commit_ops(&mut tx, ops).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(done)
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

impl PgStore {
    /// One op in a transaction of its own.
    async fn commit_one(&self, op: DispatchOp) -> StoreResult<DispatchDone> {
        self.commit_dispatch(std::slice::from_ref(&op))
            .await?
            .remove(0)
    }
}

/// Every op's checks, then the writes of those that passed, set-based: a
/// few statements for the whole batch whatever its size.
///
/// Checks (each failure is that op's error, and it writes nothing): its
/// claim still held with enough lease left (a start needs its call's
/// time); a recorded attempt still open; the payment still in its
/// transition's `from` state. Writes, in this order: recorded attempts
/// finished; other attempts of the same payments left open by a stopped
/// process closed as unknown; transitions with their events and ledger
/// effects; a first send's route; new attempts (started on the database's
/// clock: the not-found grace is measured on it); callbacks; the outbox
/// rows finished.
async fn commit_ops(
    tx: &mut Transaction<'_, Postgres>,
    ops: &[DispatchOp],
) -> StoreResult<Vec<StoreResult<DispatchDone>>> {
    let now = Utc::now();
    let mut verdict: Vec<Option<StoreError>> = vec![None; ops.len()];

    // The claims.
    let claims: Vec<(&Claim, u64)> = ops
        .iter()
        .map(|op| match op {
            DispatchOp::Start { claim, start } => (claim, start.min_lease_left_ms),
            other => (other.claim(), 0),
        })
        .collect();
    let held = hold_many(tx, &claims).await?;
    // One write per claim and per payment in a batch: a second one (which
    // no worker sends: each waits for its write) is refused, so a payment
    // can never move, or its journal be resolved, twice in one commit.
    let (mut claimed, mut paid) = (HashSet::new(), HashSet::new());
    for (i, (claim, _)) in claims.iter().enumerate() {
        let payment = match &ops[i] {
            DispatchOp::Start { start, .. } => Some(start.payment_id.0),
            DispatchOp::Record { .. } => Some(claim.aggregate_id),
            DispatchOp::Finish { .. } => None,
        };
        if !held.contains(&claim.outbox_id) {
            verdict[i] = Some(lease_lost(claim));
        } else if !claimed.insert(claim.outbox_id) || payment.is_some_and(|p| !paid.insert(p)) {
            verdict[i] = Some(StoreError::Conflict(format!(
                "outbox work {} or its payment has another write in the same commit",
                claim.outbox_id
            )));
        }
    }

    // Recorded attempts still open.
    let ending: Vec<(usize, &AttemptEnd)> = ops
        .iter()
        .enumerate()
        .filter(|(i, _)| verdict[*i].is_none())
        .filter_map(|(i, op)| match op {
            DispatchOp::Record { update, .. } => update.attempt.as_ref().map(|a| (i, a)),
            _ => None,
        })
        .collect();
    if !ending.is_empty() {
        let ids: Vec<i64> = ending.iter().map(|(_, a)| a.attempt_id).collect();
        let open: HashSet<i64> = sqlx::query_scalar(
            "SELECT id FROM dispatch_attempts WHERE id = ANY($1) AND finished_at IS NULL
              ORDER BY id FOR UPDATE",
        )
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_err)?
        .into_iter()
        .collect();
        for (i, a) in &ending {
            if !open.contains(&a.attempt_id) {
                verdict[*i] = Some(StoreError::Conflict(format!(
                    "attempt {} was already finished (closed as stale by another worker?)",
                    a.attempt_id
                )));
            }
        }
    }

    // Payments still where their transitions start.
    let moving: Vec<(usize, &Transition)> = ops
        .iter()
        .enumerate()
        .filter(|(i, _)| verdict[*i].is_none())
        .filter_map(|(i, op)| match op {
            DispatchOp::Start { start, .. } => start.transition.as_ref().map(|t| (i, t)),
            DispatchOp::Record { update, .. } => update.transition.as_ref().map(|t| (i, t)),
            DispatchOp::Finish { .. } => None,
        })
        .collect();
    let mut pending: HashMap<usize, uuid::Uuid> = HashMap::new();
    if !moving.is_empty() {
        let ts: Vec<&Transition> = moving.iter().map(|(_, t)| *t).collect();
        let checked = lock_for_transitions(tx, &ts).await?;
        for ((i, _), c) in moving.iter().zip(checked) {
            match c {
                Ok(journal) => {
                    pending.insert(*i, journal);
                }
                Err(e) => verdict[*i] = Some(e),
            }
        }
    }

    // The writes of the ops that passed.
    let live = |i: &usize| verdict[*i].is_none();
    let ended: Vec<(usize, &AttemptEnd)> = ending.into_iter().filter(|(i, _)| live(i)).collect();
    if !ended.is_empty() {
        let ids: Vec<i64> = ended.iter().map(|(_, a)| a.attempt_id).collect();
        let at: Vec<DateTime<Utc>> = ended.iter().map(|(_, a)| a.at).collect();
        let outcome: Vec<&str> = ended.iter().map(|(_, a)| a.outcome.as_str()).collect();
        let code: Vec<Option<&str>> = ended
            .iter()
            .map(|(_, a)| a.result_code.as_deref())
            .collect();
        let detail: Vec<&str> = ended.iter().map(|(_, a)| a.detail.as_str()).collect();
        let finished = sqlx::query(
            "UPDATE dispatch_attempts a
                SET finished_at = u.at, outcome = u.outcome, result_code = u.code, detail = u.detail
               FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[])
                    AS u(id, at, outcome, code, detail)
              WHERE a.id = u.id AND a.finished_at IS NULL",
        )
        .bind(&ids)
        .bind(&at)
        .bind(&outcome)
        .bind(&code)
        .bind(&detail)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
        if finished.rows_affected() != ids.len() as u64 {
            return Err(StoreError::Conflict(format!(
                "{} of {} attempts locked open were finished",
                finished.rows_affected(),
                ids.len()
            )));
        }
    }
    let touched: Vec<uuid::Uuid> = ops
        .iter()
        .enumerate()
        .filter(|(i, _)| live(i))
        .filter_map(|(_, op)| match op {
            DispatchOp::Start { start, .. } => Some(start.payment_id.0),
            DispatchOp::Record { claim, .. } => Some(claim.aggregate_id),
            DispatchOp::Finish { .. } => None,
        })
        .collect();
    close_stale_attempts(tx, &touched, now).await?;
    let transitions: Vec<Checked> = moving
        .iter()
        .filter(|(i, _)| live(i))
        .map(|(i, t)| Checked {
            t,
            credit: match &ops[*i] {
                DispatchOp::Record { update, .. } => {
                    update.credit.as_ref().map(|(r, at)| (r.as_str(), *at))
                }
                _ => None,
            },
            pending: pending[i],
        })
        .collect();
    write_transitions(tx, &transitions).await?;
    let starts: Vec<(usize, &AttemptStart)> = ops
        .iter()
        .enumerate()
        .filter(|(i, _)| live(i))
        .filter_map(|(i, op)| match op {
            DispatchOp::Start { start, .. } => Some((i, start)),
            _ => None,
        })
        .collect();
    let mut started: HashMap<uuid::Uuid, i64> = HashMap::new();
    if !starts.is_empty() {
        let sends: Vec<&AttemptStart> = starts
            .iter()
            .map(|(_, s)| *s)
            .filter(|s| s.kind == crate::domain::dispatch::AttemptKind::Pay)
            .collect();
        if !sends.is_empty() {
            let ids: Vec<uuid::Uuid> = sends.iter().map(|s| s.payment_id.0).collect();
            let routes: Vec<&str> = sends.iter().map(|s| s.connector_id.as_str()).collect();
            sqlx::query(
                "UPDATE payments p SET connector_id = u.connector_id
                   FROM UNNEST($1::uuid[], $2::text[]) AS u(id, connector_id) WHERE p.id = u.id",
            )
            .bind(&ids)
            .bind(&routes)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
        }
        let ids: Vec<uuid::Uuid> = starts.iter().map(|(_, s)| s.payment_id.0).collect();
        let kinds: Vec<&str> = starts.iter().map(|(_, s)| s.kind.as_str()).collect();
        let routes: Vec<&str> = starts
            .iter()
            .map(|(_, s)| s.connector_id.as_str())
            .collect();
        let workers: Vec<&str> = starts.iter().map(|(_, s)| s.worker.as_str()).collect();
        let rows: Vec<(i64, uuid::Uuid)> = sqlx::query_as(
            // The database's clock: the not-found grace is measured on it.
            "INSERT INTO dispatch_attempts (payment_id, kind, connector_id, worker, started_at)
             SELECT u.payment_id, u.kind, u.connector_id, u.worker, now()
               FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[])
                    AS u(payment_id, kind, connector_id, worker)
             RETURNING id, payment_id",
        )
        .bind(&ids)
        .bind(&kinds)
        .bind(&routes)
        .bind(&workers)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_err)?;
        started = rows.into_iter().map(|(id, p)| (p, id)).collect();
    }
    let callbacks: Vec<(PaymentId, &CallbackEvent)> = ops
        .iter()
        .enumerate()
        .filter(|(i, _)| live(i))
        .filter_map(|(_, op)| match op {
            DispatchOp::Record { claim, update } => update
                .callback
                .as_ref()
                .map(|e| (PaymentId(claim.aggregate_id), e)),
            _ => None,
        })
        .collect();
    enqueue_callbacks(tx, &callbacks, now).await?;
    let finishing: Vec<(i64, &OutboxNext)> = ops
        .iter()
        .enumerate()
        .filter(|(i, _)| live(i))
        .filter_map(|(_, op)| match op {
            DispatchOp::Record { claim, update } => Some((claim.outbox_id, &update.next)),
            DispatchOp::Finish { claim, next } => Some((claim.outbox_id, next)),
            DispatchOp::Start { .. } => None,
        })
        .collect();
    finish_many(tx, &finishing).await?;

    Ok(ops
        .iter()
        .zip(verdict)
        .map(|(op, verdict)| match (verdict, op) {
            (Some(e), _) => Err(e),
            (None, DispatchOp::Start { start, .. }) => started
                .get(&start.payment_id.0)
                .map(|id| DispatchDone::Started(*id))
                .ok_or_else(|| StoreError::Conflict("the attempt was not recorded".into())),
            (None, _) => Ok(DispatchDone::Written),
        })
        .collect())
}
