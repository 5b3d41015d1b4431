//! The `resend` resolution's records (`recon_resends`), with the call kept
//! as a dispatch attempt of the payment.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

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
        let r = sqlx::query(
            "SELECT break_id, payment_id, connector_id, maker, approver, finished_at
               FROM recon_resends WHERE id = $1 FOR UPDATE",
        )
        .bind(started.resend_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("re-send {}", started.resend_id)))?;
        if r.get::<Option<DateTime<Utc>>, _>("finished_at").is_some() {
            return Err(StoreError::Conflict(format!(
                "re-send {} is finished already",
                started.resend_id
            )));
        }
        let break_id: i64 = r.get("break_id");
        let payment: uuid::Uuid = r.get("payment_id");
        let connector: String = r.get("connector_id");
        let maker: String = r.get("maker");
        let approver: String = r.get("approver");
        let describe = outcome.describe(&connector);
        let (code, receipt) = match outcome {
            ResendOutcome::Credited { receipt } => (None, Some(receipt.clone())),
            ResendOutcome::Refused { code, .. } => (Some(code.clone()), None),
            _ => (None, None),
        };
        let receipt = receipt.filter(|r| !r.is_empty());
        sqlx::query(
            "UPDATE dispatch_attempts SET finished_at = $2, outcome = $3, result_code = $4, detail = $5
              WHERE id = $1 AND finished_at IS NULL",
        )
        .bind(started.attempt_id)
        .bind(at)
        .bind(outcome.as_str())
        .bind(&code)
        .bind(&describe)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "UPDATE recon_resends SET finished_at = $2, outcome = $3, biller_reference = $4, detail = $5
              WHERE id = $1",
        )
        .bind(started.resend_id)
        .bind(at)
        .bind(outcome.as_str())
        .bind(&receipt)
        .bind(&describe)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if outcome.may_have_arrived() {
            // Reconciliation looks for it on the new route from now on.
            sqlx::query(
                "UPDATE payments SET connector_id = $2, biller_reference = coalesce($3, biller_reference)
                  WHERE id = $1",
            )
            .bind(payment)
            .bind(&connector)
            .bind(&receipt)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        let b = lock_break(&mut tx, break_id).await?;
        if b.status != BreakStatus::Resending {
            // Cannot happen (nothing but a comment moves a resending
            // break); the re-send's answer is kept, the break left as is.
            tx.commit().await.map_err(db_err)?;
            return Err(StoreError::Conflict(format!(
                "break {break_id} is {}, not resending: the re-send's answer ({}) is recorded, the break left as it is",
                b.status.as_str(),
                outcome.as_str()
            )));
        }
        let (to, resolution, action) = match outcome {
            ResendOutcome::Credited { .. } => (
                ResolutionKind::Resend.closes_as(),
                Some(ResolutionKind::Resend.as_str()),
                "approve",
            ),
            ResendOutcome::Unknown { .. } => (BreakStatus::Investigating, None, "resend-unknown"),
            _ => (BreakStatus::Investigating, None, "resend-failed"),
        };
        sqlx::query(
            "UPDATE recon_breaks SET status = $2, resolution = $3, proposal = NULL, updated_at = $4
              WHERE id = $1",
        )
        .bind(break_id)
        .bind(to.as_str())
        .bind(resolution)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        event(
            &mut tx,
            break_id,
            at,
            &approver,
            action,
            Some(b.status.as_str()),
            to.as_str(),
            &describe,
            Some(serde_json::json!({
                "resolution": ResolutionKind::Resend.as_str(),
                "maker": maker,
                "approver": approver,
                "moved": {
                    "resent_payment": payment.to_string(),
                    "through": connector,
                    "outcome": outcome,
                },
            })),
        )
        .await?;
        commit_with_break(tx, break_id).await
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
