//! Finance staff users (`staff_users`): only token hashes are stored.

use async_trait::async_trait;
use sqlx::Row;

use super::{db_err, PgStore};
use crate::domain::staff::{StaffRole, StaffUser};
use crate::store::{StaffRecord, StaffStore, StoreError, StoreResult};

pub(super) fn row_to_user(r: &sqlx::postgres::PgRow) -> StoreResult<StaffUser> {
    let id: String = r.get("id");
    let role: String = r.get("role");
    Ok(StaffUser {
        role: StaffRole::parse(&role).ok_or_else(|| {
            StoreError::Rejected(format!("staff user {id} has an unknown role {role:?}"))
        })?,
        name: r.get("name"),
        disabled: r
            .get::<Option<chrono::DateTime<chrono::Utc>>, _>("disabled_at")
            .is_some(),
        id,
    })
}

#[async_trait]
impl StaffStore for PgStore {
    async fn add_staff(&self, user: &StaffUser, token_hash: &[u8]) -> StoreResult<()> {
        let r = sqlx::query(
            "INSERT INTO staff_users (id, name, role, token_hash, disabled_at)
             VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&user.id)
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(token_hash)
        .bind(user.disabled)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "staff user {} already exists (ids are never reused, even of disabled users)",
                user.id
            )));
        }
        Ok(())
    }

    async fn staff_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<StaffUser>> {
        sqlx::query("SELECT id, name, role, disabled_at FROM staff_users WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(row_to_user)
            .transpose()
    }

    async fn list_staff(&self) -> StoreResult<Vec<StaffRecord>> {
        let rows = sqlx::query(
            "SELECT id, name, role, created_at, token_issued_at, disabled_at
               FROM staff_users ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(StaffRecord {
                    user: row_to_user(r)?,
                    created_at: r.get("created_at"),
                    token_issued_at: r.get("token_issued_at"),
                    disabled_at: r.get("disabled_at"),
                })
            })
            .collect()
    }

    async fn disable_staff(&self, id: &str) -> StoreResult<()> {
        let r = sqlx::query(
            "UPDATE staff_users SET disabled_at = coalesce(disabled_at, now()) WHERE id = $1",
        )
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("staff user {id}")));
        }
        Ok(())
    }

    async fn rotate_staff_token(&self, id: &str, token_hash: &[u8]) -> StoreResult<()> {
        // One statement: tells an unknown user from a disabled one without a
        // window between the check and the update.
        let row = sqlx::query(
            "WITH u AS (SELECT id, disabled_at FROM staff_users WHERE id = $1 FOR UPDATE),
                  upd AS (UPDATE staff_users s SET token_hash = $2, token_issued_at = now()
                            FROM u WHERE s.id = u.id AND u.disabled_at IS NULL
                          RETURNING s.id)
             SELECT (SELECT count(*) FROM u) AS found, (SELECT count(*) FROM upd) AS updated",
        )
        .bind(id)
        .bind(token_hash)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        let found: i64 = row.get("found");
        let updated: i64 = row.get("updated");
        match (found, updated) {
            (0, _) => Err(StoreError::NotFound(format!("staff user {id}"))),
            (_, 0) => Err(StoreError::Conflict(format!(
                "staff user {id} is disabled; disabled users get no new token"
            ))),
            _ => Ok(()),
        }
    }
}
