//! Duty leases (`duty_leases`, `duty_handovers`), on the database clock.

use async_trait::async_trait;
use sqlx::Row;

use super::{db_err, PgStore};
use crate::store::lease::{Handover, LeaseOutcome, LeaseRow, LeaseStore};
use crate::store::StoreResult;

#[async_trait]
impl LeaseStore for PgStore {
    async fn hold_lease(
        &self,
        duty: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> StoreResult<LeaseOutcome> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // The row locked (or the duty's first row inserted) so that two
        // processes asking at once are decided one after the other.
        sqlx::query(
            "INSERT INTO duty_leases (duty, holder, acquired_at, renewed_at, expires_at)
             VALUES ($1, '', now(), now() - interval '2 milliseconds', now() - interval '1 millisecond')
             ON CONFLICT (duty) DO NOTHING",
        )
        .bind(duty)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let row = sqlx::query(
            "SELECT holder, expires_at, expires_at <= now() AS expired FROM duty_leases
              WHERE duty = $1 FOR UPDATE",
        )
        .bind(duty)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let current: String = row.get("holder");
        let expired: bool = row.get("expired");
        let previous_expiry: chrono::DateTime<chrono::Utc> = row.get("expires_at");
        if current != holder && !current.is_empty() && !expired {
            tx.commit().await.map_err(db_err)?;
            return Ok(LeaseOutcome::HeldBy {
                holder: current,
                expires_at: previous_expiry,
            });
        }
        let acquired = current != holder;
        let ttl_ms = ttl.as_millis().min(i64::MAX as u128) as i64;
        let expires_at: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
            "UPDATE duty_leases
                SET holder = $2,
                    acquired_at = CASE WHEN $4 THEN now() ELSE acquired_at END,
                    renewed_at = now(),
                    expires_at = now() + $3 * interval '1 millisecond'
              WHERE duty = $1
              RETURNING expires_at",
        )
        .bind(duty)
        .bind(holder)
        .bind(ttl_ms)
        .bind(acquired)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let taken_from = (acquired && !current.is_empty()).then(|| current.clone());
        if acquired {
            sqlx::query(
                "INSERT INTO duty_handovers (duty, holder, previous_holder, previous_expired_at, at)
                 VALUES ($1, $2, $3, $4, now())",
            )
            .bind(duty)
            .bind(holder)
            .bind(&taken_from)
            .bind(taken_from.as_ref().map(|_| previous_expiry))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(LeaseOutcome::Held {
            expires_at,
            taken_from,
            acquired,
        })
    }

    async fn release_lease(&self, duty: &str, holder: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE duty_leases SET holder = '', expires_at = renewed_at + interval '1 microsecond'
              WHERE duty = $1 AND holder = $2",
        )
        .bind(duty)
        .bind(holder)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn leases(&self) -> StoreResult<Vec<LeaseRow>> {
        let rows = sqlx::query(
            "SELECT duty, holder, acquired_at, renewed_at, expires_at, expires_at <= now() AS expired
               FROM duty_leases ORDER BY duty",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| LeaseRow {
                duty: r.get("duty"),
                holder: r.get("holder"),
                acquired_at: r.get("acquired_at"),
                renewed_at: r.get("renewed_at"),
                expires_at: r.get("expires_at"),
                expired: r.get("expired"),
            })
            .collect())
    }

    async fn handovers(&self, duty: &str) -> StoreResult<Vec<Handover>> {
        let rows = sqlx::query(
            "SELECT duty, holder, previous_holder, previous_expired_at, at FROM duty_handovers
              WHERE duty = $1 ORDER BY id",
        )
        .bind(duty)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| Handover {
                duty: r.get("duty"),
                holder: r.get("holder"),
                previous_holder: r.get("previous_holder"),
                previous_expired_at: r.get("previous_expired_at"),
                at: r.get("at"),
            })
            .collect())
    }

    async fn fleet_heartbeat(
        &self,
        name: &str,
        stale: std::time::Duration,
    ) -> StoreResult<Vec<String>> {
        sqlx::query(
            "INSERT INTO fleet_instances (name, started_at, seen_at) VALUES ($1, now(), now())
             ON CONFLICT (name) DO UPDATE SET seen_at = now()",
        )
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        sqlx::query("DELETE FROM fleet_instances WHERE seen_at < now() - interval '1 hour'")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        sqlx::query_scalar(
            "SELECT name FROM fleet_instances
              WHERE seen_at > now() - $1 * interval '1 millisecond' ORDER BY name",
        )
        .bind(stale.as_millis().min(i64::MAX as u128) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn fleet_leave(&self, name: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM fleet_instances WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
