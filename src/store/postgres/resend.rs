//! The `resend` resolution's records (`recon_resends`), with the call kept
//! as a dispatch attempt of the payment.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Row, Transaction};

use super::recon::{commit_with_break, event, lock_break};
use super::{db_err, PgStore};
use crate::domain::ids::PaymentId;
use crate::domain::recon::breaks::{
    decide, Action, BreakStatus, Outcome, ResolutionKind, WorkState,
};
use crate::domain::recon::resend::ResendOutcome;
use crate::store::recon::{BreakRow, ResendStart, ResendStarted, ResendStore};
use crate::store::{StoreError, StoreResult};

/// The worker name of a re-send's attempt.
const WORKER: &str = "recon-resend";

/// A re-send being finished, as its row holds it.
struct ResendRow {
    break_id: i64,
    payment: uuid::Uuid,
    connector: String,
    maker: String,
    approver: String,
}

/// Locks a re-send's row; NotFound, or a conflict when it is finished already.
async fn lock_unfinished_resend(
    tx: &mut Transaction<'_, Postgres>,
    resend_id: i64,
) -> StoreResult<ResendRow> {
    let r = sqlx::query(
        "SELECT break_id, payment_id, connector_id, maker, approver, finished_at
           FROM recon_resends WHERE id = $1 FOR UPDATE",
    )
    .bind(resend_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?
    .ok_or_else(|| StoreError::NotFound(format!("re-send {resend_id}")))?;
    if r.get::<Option<DateTime<Utc>>, _>("finished_at").is_some() {
        return Err(StoreError::Conflict(format!(
            "re-send {resend_id} is finished already"
        )));
    }
    Ok(ResendRow {
        break_id: r.get("break_id"),
        payment: r.get("payment_id"),
        connector: r.get("connector_id"),
        maker: r.get("maker"),
        approver: r.get("approver"),
    })
}

/// Records the answer on the attempt and the re-send; when the payment may
/// have arrived, moves it to the new route (reconciliation looks for it
/// there from now on).
async fn record_answer(
    tx: &mut Transaction<'_, Postgres>,
    started: ResendStarted,
    r: &ResendRow,
    outcome: &ResendOutcome,
    describe: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let receipt = outcome.receipt();
    sqlx::query(
        "UPDATE dispatch_attempts SET finished_at = $2, outcome = $3, result_code = $4, detail = $5
          WHERE id = $1 AND finished_at IS NULL",
    )
    .bind(started.attempt_id)
    .bind(at)
    .bind(outcome.as_str())
    .bind(outcome.result_code())
    .bind(describe)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    sqlx::query(
        "UPDATE recon_resends SET finished_at = $2, outcome = $3, biller_reference = $4, detail = $5
          WHERE id = $1",
    )
    .bind(started.resend_id)
    .bind(at)
    .bind(outcome.as_str())
    .bind(receipt)
    .bind(describe)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    if outcome.may_have_arrived() {
        // Reconciliation looks for it on the new route from now on.
        sqlx::query(
            "UPDATE payments SET connector_id = $2, biller_reference = coalesce($3, biller_reference)
              WHERE id = $1",
        )
        .bind(r.payment)
        .bind(&r.connector)
        .bind(receipt)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

/// Moves the `resending` break where the domain says the answer takes it,
/// with the event on its trail.
async fn move_break_after(
    tx: &mut Transaction<'_, Postgres>,
    r: &ResendRow,
    from: BreakStatus,
    outcome: &ResendOutcome,
    describe: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let after = outcome.break_after();
    sqlx::query(
        "UPDATE recon_breaks SET status = $2, resolution = $3, proposal = NULL, updated_at = $4
          WHERE id = $1",
    )
    .bind(r.break_id)
    .bind(after.to.as_str())
    .bind(after.resolution)
    .bind(at)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    event(
        tx,
        r.break_id,
        at,
        &r.approver,
        after.action,
        Some(from.as_str()),
        after.to.as_str(),
        describe,
        Some(serde_json::json!({
            "resolution": ResolutionKind::Resend.as_str(),
            "maker": r.maker,
            "approver": r.approver,
            "moved": {
                "resent_payment": r.payment.to_string(),
                "through": r.connector,
                "outcome": outcome,
            },
        })),
    )
    .await
}

#[async_trait]
impl ResendStore for PgStore {
    async fn resend_of(&self, payment: PaymentId) -> StoreResult<Option<(String, String)>> {
        let row = sqlx::query(
            "SELECT connector_id, outcome, started_at FROM recon_resends
              WHERE payment_id = $1 AND (outcome IS NULL OR outcome IN ('credited', 'unknown'))",
        )
        .bind(payment.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.map(|r| {
            let outcome: Option<String> = r.get("outcome");
            let started: DateTime<Utc> = r.get("started_at");
            (
                r.get("connector_id"),
                outcome
                    .unwrap_or_else(|| format!("in flight since {started}, or its process died")),
            )
        }))
    }

    async fn open_resend(
        &self,
        break_id: i64,
    ) -> StoreResult<Option<(ResendStarted, String, DateTime<Utc>)>> {
        let row = sqlx::query(
            "SELECT id, attempt_id, connector_id, started_at FROM recon_resends
              WHERE break_id = $1 AND outcome IS NULL ORDER BY id DESC LIMIT 1",
        )
        .bind(break_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.map(|r| {
            (
                ResendStarted {
                    resend_id: r.get("id"),
                    attempt_id: r.get("attempt_id"),
                },
                r.get("connector_id"),
                r.get("started_at"),
            )
        }))
    }

    async fn begin_resend(&self, s: &ResendStart) -> StoreResult<ResendStarted> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let b = lock_break(&mut tx, s.break_id).await?;
        let state = WorkState {
            category: b.category,
            status: b.status,
            owner: b.owner.clone(),
            proposal: b.proposal.clone(),
        };
        let proposal = match decide(&state, &s.actor, &Action::Approve) {
            Ok(Outcome::Apply { proposal, .. }) => proposal,
            Ok(Outcome::Moved(_)) => {
                return Err(StoreError::Conflict("nothing to approve".into()));
            }
            Err(e) => return Err(StoreError::Conflict(e.to_string())),
        };
        if proposal.kind != ResolutionKind::Resend
            || proposal.connector.as_deref() != Some(s.connector.as_str())
        {
            return Err(StoreError::Conflict(format!(
                "break {}'s proposal changed: it is no longer a re-send through {}",
                s.break_id, s.connector
            )));
        }
        if b.found_by_run != s.found_by_run || s.found_by_run.is_none() {
            return Err(StoreError::Conflict(format!(
                "break {} was reconciled again meanwhile: approve again (its proof is re-read)",
                s.break_id
            )));
        }
        let attempt_id: i64 = sqlx::query_scalar(
            "INSERT INTO dispatch_attempts (payment_id, kind, connector_id, worker, started_at)
             VALUES ($1, 'pay', $2, $3, $4) RETURNING id",
        )
        .bind(s.payment_id.0)
        .bind(&s.connector)
        .bind(WORKER)
        .bind(s.at)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let resend_id: i64 = sqlx::query_scalar(
            "INSERT INTO recon_resends (break_id, payment_id, from_connector, connector_id, attempt_id,
                                        maker, approver, proof, started_at)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) RETURNING id",
        )
        .bind(s.break_id)
        .bind(s.payment_id.0)
        .bind(&s.from_connector)
        .bind(&s.connector)
        .bind(attempt_id)
        .bind(&proposal.maker)
        .bind(&s.actor.user)
        .bind(&s.proof)
        .bind(s.at)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            let unique = matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"));
            if unique {
                StoreError::Conflict(format!(
                    "payment {} was re-sent already and may have arrived: it is never sent again",
                    s.payment_id
                ))
            } else {
                db_err(e)
            }
        })?;
        sqlx::query(
            "UPDATE recon_breaks SET status = 'resending', proposal = NULL, updated_at = $2 WHERE id = $1",
        )
        .bind(s.break_id)
        .bind(s.at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        event(
            &mut tx,
            s.break_id,
            s.at,
            &s.actor.user,
            "resend-started",
            Some(b.status.as_str()),
            BreakStatus::Resending.as_str(),
            &format!(
                "approved; re-sending through {} (proposed by {})",
                s.connector, proposal.maker
            ),
            Some(serde_json::json!({ "resend": resend_id, "proof": s.proof })),
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(ResendStarted {
            resend_id,
            attempt_id,
        })
    }

    async fn finish_resend(
        &self,
        started: ResendStarted,
        outcome: &ResendOutcome,
        at: DateTime<Utc>,
    ) -> StoreResult<BreakRow> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let r = lock_unfinished_resend(&mut tx, started.resend_id).await?;
        let describe = outcome.describe(&r.connector);
        record_answer(&mut tx, started, &r, outcome, &describe, at).await?;
        let b = lock_break(&mut tx, r.break_id).await?;
        if b.status != BreakStatus::Resending {
            // Cannot happen (nothing but a comment moves a resending
            // break); the re-send's answer is kept, the break left as is.
            tx.commit().await.map_err(db_err)?;
            return Err(StoreError::Conflict(format!(
                "break {} is {}, not resending: the re-send's answer ({}) is recorded, the break left as it is",
                r.break_id,
                b.status.as_str(),
                outcome.as_str()
            )));
        }
        move_break_after(&mut tx, &r, b.status, outcome, &describe, at).await?;
        commit_with_break(tx, r.break_id).await
    }

    async fn note_resend_refused(
        &self,
        break_id: i64,
        actor: &str,
        reason: &str,
        proof: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let status: String =
            sqlx::query_scalar("SELECT status FROM recon_breaks WHERE id = $1 FOR UPDATE")
                .bind(break_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?
                .ok_or_else(|| StoreError::NotFound(format!("break {break_id}")))?;
        event(
            &mut tx,
            break_id,
            at,
            actor,
            "resend-refused",
            Some(&status),
            &status,
            reason,
            Some(proof.clone()),
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }
}
