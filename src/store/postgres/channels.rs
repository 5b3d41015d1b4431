use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{db_err, PgStore};
use crate::domain::channel::{Channel, ChannelStatus};
use crate::domain::ids::ChannelId;
use crate::domain::ledger::AccountSpec;
use crate::domain::money::Currency;
use crate::store::{ChannelStore, KeyInfo, LedgerStore, StoreError, StoreResult, StoredKey};

fn row_to_channel(r: &sqlx::postgres::PgRow) -> StoreResult<Channel> {
    let id: String = r.get("id");
    Ok(Channel {
        id: ChannelId::parse(&id).map_err(|e| StoreError::Rejected(e.to_string()))?,
        name: r.get("name"),
        callback_url: r.get("callback_url"),
        status: ChannelStatus::parse(&r.get::<String, _>("status"))
            .ok_or_else(|| StoreError::Rejected(format!("channel {id} has a bad status")))?,
        rate_limit_rps: r.get::<i32, _>("rate_limit_rps").max(1) as u32,
    })
}

#[async_trait]
impl ChannelStore for PgStore {
    async fn create_channel(
        &self,
        channel: &Channel,
        key_id: &str,
        sealed_secret: &[u8],
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let inserted = sqlx::query(
            "INSERT INTO channels (id, name, callback_url, status, rate_limit_rps)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(channel.id.as_str())
        .bind(&channel.name)
        .bind(&channel.callback_url)
        .bind(channel.status.as_str())
        .bind(channel.rate_limit_rps.min(i32::MAX as u32) as i32)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "channel {} already exists",
                channel.id
            )));
        }
        sqlx::query("INSERT INTO channel_keys (key_id, channel_id, secret_sealed, status) VALUES ($1, $2, $3, 'active')")
            .bind(key_id)
            .bind(channel.id.as_str())
            .bind(sealed_secret)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        let currencies: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT currency::text FROM billers")
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        let specs: Vec<AccountSpec> = currencies
            .iter()
            .filter_map(|c| Currency::from_code(c.trim()).ok())
            .map(|c| AccountSpec::channel_receivable(&channel.id, c))
            .collect();
        self.ensure_accounts(&specs).await
    }

    async fn add_key(
        &self,
        channel: &ChannelId,
        key_id: &str,
        sealed_secret: &[u8],
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO channel_keys (key_id, channel_id, secret_sealed, status)
             SELECT $1, id, $3, 'active' FROM channels WHERE id = $2",
        )
        .bind(key_id)
        .bind(channel.as_str())
        .bind(sealed_secret)
        .execute(&self.pool)
        .await
        .map_err(db_err)
        .and_then(|r| {
            if r.rows_affected() == 1 {
                Ok(())
            } else {
                Err(StoreError::NotFound(format!("channel {channel}")))
            }
        })
    }

    async fn set_channel_status(
        &self,
        channel: &ChannelId,
        status: ChannelStatus,
    ) -> StoreResult<()> {
        let r = sqlx::query("UPDATE channels SET status = $2, updated_at = now() WHERE id = $1")
            .bind(channel.as_str())
            .bind(status.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("channel {channel}")));
        }
        Ok(())
    }

    async fn disable_key(&self, key_id: &str) -> StoreResult<()> {
        let r = sqlx::query(
            "UPDATE channel_keys SET status = 'disabled', disabled_at = coalesce(disabled_at, now()) WHERE key_id = $1",
        )
        .bind(key_id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("key {key_id}")));
        }
        Ok(())
    }

    async fn list_channels(&self) -> StoreResult<Vec<(Channel, Vec<KeyInfo>)>> {
        let rows = sqlx::query("SELECT * FROM channels ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let keys = sqlx::query(
            "SELECT key_id, channel_id, status, created_at FROM channel_keys ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let ch = row_to_channel(r)?;
                let ks = keys
                    .iter()
                    .filter(|k| k.get::<String, _>("channel_id") == ch.id.as_str())
                    .map(|k| KeyInfo {
                        key_id: k.get("key_id"),
                        active: k.get::<String, _>("status") == "active",
                        created_at: k.get::<DateTime<Utc>, _>("created_at"),
                    })
                    .collect();
                Ok((ch, ks))
            })
            .collect()
    }

    async fn find_key(&self, key_id: &str) -> StoreResult<Option<StoredKey>> {
        let row = sqlx::query(
            "SELECT k.key_id, k.secret_sealed, k.status AS key_status, c.*
             FROM channel_keys k JOIN channels c ON c.id = k.channel_id WHERE k.key_id = $1",
        )
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| {
            Ok(StoredKey {
                key_id: r.get("key_id"),
                sealed_secret: r.get("secret_sealed"),
                active: r.get::<String, _>("key_status") == "active",
                channel: row_to_channel(&r)?,
            })
        })
        .transpose()
    }

    async fn record_nonce(&self, key_id: &str, nonce: &str) -> StoreResult<bool> {
        let r = sqlx::query(
            "INSERT INTO auth_nonces (key_id, nonce) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(key_id)
        .bind(nonce)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn nonce_seen(&self, key_id: &str, nonce: &str) -> StoreResult<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM auth_nonces WHERE key_id = $1 AND nonce = $2)",
        )
        .bind(key_id)
        .bind(nonce)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn prune_nonces(&self, seen_before: DateTime<Utc>) -> StoreResult<u64> {
        let r = sqlx::query("DELETE FROM auth_nonces WHERE seen_at < $1")
            .bind(seen_before)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(r.rows_affected())
    }
}
