//! PostgreSQL store (sqlx). The system of record.

mod bank;
mod billers;
mod channels;
mod complaint;
mod console;
mod dispatch;
mod lease;
mod ledger;
mod payments;
mod recon;
mod resend;
pub use recon::to_minor as recon_minor;
mod settlement;
mod staff;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use super::StoreError;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgStore> {
        let opts: PgConnectOptions = url.parse()?;
        let opts = opts.log_statements(tracing::log::LevelFilter::Trace);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await?;
        Ok(PgStore { pool })
    }

    pub fn from_pool(pool: PgPool) -> PgStore {
        PgStore { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl super::HealthStore for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(db_err)
    }

    async fn fleet_gauges(&self, catch_up_days: u32) -> Result<super::FleetGauges, StoreError> {
        use sqlx::Row;
        let mut g = super::FleetGauges::default();
        let row = sqlx::query(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(updated_at)), 0)::float8 \
             FROM payments WHERE status = 'UNKNOWN'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        g.unknown = row.get(0);
        g.unknown_oldest_s = row.get::<f64, _>(1).max(0.0);
        g.outbox = sqlx::query(
            "SELECT topic, count(*), \
                    COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 \
             FROM outbox WHERE done_at IS NULL GROUP BY topic",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get::<f64, _>(2).max(0.0)))
        .collect();
        g.open_breaks = sqlx::query(
            "SELECT category, count(*) FROM recon_breaks \
             WHERE status NOT IN ('resolved', 'written-off') GROUP BY category",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
        let row = sqlx::query(
            "SELECT count(*) FILTER (WHERE files_written_at IS NULL AND files_failed_at IS NULL), \
                    count(*) FILTER (WHERE files_written_at IS NOT NULL), \
                    count(*) FILTER (WHERE files_written_at IS NULL AND files_failed_at IS NOT NULL) \
             FROM settlement_batches",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        g.batches_files_pending = row.get(0);
        g.batches_files_written = row.get(1);
        g.batches_files_failed = row.get(2);
        g.closed_dates = sqlx::query(
            "SELECT biller_id, business_date FROM settlement_batches \
             WHERE business_date >= current_date - ($1::int + 2) \
             UNION \
             SELECT biller_id, min(business_date) FROM settlement_batches GROUP BY biller_id",
        )
        .bind(catch_up_days.min(3650) as i32)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
        Ok(g)
    }
}

/// Maps a database error to what the caller can do about it.
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) => {
            let code = d.code().map(|c| c.to_string()).unwrap_or_default();
            // 40xxx: serialization failure / deadlock; 53xxx resources; 57xxx operator intervention.
            if code.starts_with("40") || code.starts_with("53") || code.starts_with("57") {
                StoreError::Unavailable(d.message().to_string())
            } else if code == "42P01" {
                // undefined_table: a database created but never migrated.
                StoreError::Rejected(format!(
                    "{}: the database lacks billclear's tables; run `billclear migrate`",
                    d.message()
                ))
            } else {
                StoreError::Rejected(d.message().to_string())
            }
        }
        sqlx::Error::RowNotFound => StoreError::NotFound("row".into()),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Rejected(e.to_string())
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// Creates a database if it does not exist (the server URL's database is
/// used for the CREATE). Returns the URL of the new database.
pub async fn create_database(server_url: &str, name: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let base: PgConnectOptions = server_url.parse()?;
    let mut conn = sqlx::PgConnection::connect_with(&base).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        sqlx::query(&format!("CREATE DATABASE \"{}\"", name.replace('"', "")))
            .execute(&mut conn)
            .await?;
    }
    conn.close().await?;
    Ok(with_database(server_url, name))
}

pub async fn drop_database(server_url: &str, name: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let base: PgConnectOptions = server_url.parse()?;
    let mut conn = sqlx::PgConnection::connect_with(&base).await?;
    sqlx::query(&format!(
        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
        name.replace('"', "")
    ))
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(())
}

/// Splits a postgres URL into (URL of the server's `postgres` database, database name).
pub fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let without_query = url.split('?').next().unwrap_or(url);
    let name = without_query
        .rsplit_once('/')
        .map(|(head, name)| (head.contains("://") && !head.ends_with('/'), name))
        .filter(|(ok, name)| *ok && !name.is_empty())
        .map(|(_, name)| name.to_string())
        .ok_or_else(|| anyhow::anyhow!("database URL {url:?} names no database"))?;
    Ok((with_database(url, "postgres"), name))
}

/// Replaces the database name in a postgres URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let host = match path_start {
        Some(i) => &base[..i],
        None => base,
    };
    match query {
        Some(q) => format!("{host}/{name}?{q}"),
        None => format!("{host}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_splits_into_the_server_and_the_database() {
        assert_eq!(
            super::split_url("postgres://u@h:5432/billclear").unwrap(),
            (
                "postgres://u@h:5432/postgres".to_string(),
                "billclear".to_string()
            )
        );
        assert!(super::split_url("postgres://u@h:5432").is_err());
    }

    #[test]
    fn replaces_database_in_url() {
        assert_eq!(
            super::with_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            super::with_database("postgres://u@h:5432", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            super::with_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
