//! Benchmarks: commands that measure and print figures (never timed tests).

pub mod console;
pub mod e2e;
pub mod intake;
pub mod load;
pub mod recon;
pub mod settle;

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::domain::biller::Biller;
use crate::store::postgres::{self, PgStore};
use crate::store::BillerStore;

/// The channel every seeded payment comes from.
pub const BENCH_CHANNEL: &str = "benchpay";

/// A database of a benchmark's own, on the configured server: created
/// fresh, migrated, with the billers of ops/billers.example.toml and the
/// channel [`BENCH_CHANNEL`] (and its receivable accounts).
pub struct BenchDb {
    pub server_url: String,
    pub name: String,
    pub url: String,
    pub store: Arc<PgStore>,
    pub billers: Vec<Biller>,
}

impl BenchDb {
    /// `billclear_bench_<kind>_<8 hex>`.
    pub async fn create(config: &Config, kind: &str) -> anyhow::Result<BenchDb> {
        let (server_url, _) = crate::store::postgres::split_url(&config.database.url)?;
        let name = format!(
            "billclear_bench_{kind}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let url = postgres::create_database(&server_url, &name).await?;
        let store = Arc::new(PgStore::connect(&url, 4).await?);
        store.migrate().await?;
        // The channel first: importing the billers opens its receivables.
        sqlx::query(
            "INSERT INTO channels (id, name, callback_url, status, rate_limit_rps)
             VALUES ($1, 'Bench Pay', 'http://127.0.0.1:9/cb', 'active', 1000)",
        )
        .bind(BENCH_CHANNEL)
        .execute(store.pool())
        .await?;
        let billers =
            crate::config::billers_file::parse(include_str!("../../ops/billers.example.toml"))?;
        store.upsert_billers(&billers).await?;
        Ok(BenchDb {
            server_url,
            name,
            url,
            store,
            billers,
        })
    }

    pub fn biller(&self, id: &str) -> anyhow::Result<Biller> {
        self.billers
            .iter()
            .find(|b| b.id.as_str() == id)
            .cloned()
            .with_context(|| format!("no biller {id} in ops/billers.example.toml"))
    }

    /// Closes the pool and drops the database.
    pub async fn drop(self) {
        self.store.pool().close().await;
        let _ = postgres::drop_database(&self.server_url, &self.name).await;
    }
}

/// Seeds `n` CONFIRMED payments of `biller` through connector
/// `water-direct`, set-based in chunks (setup, never measured). Payment
/// `g` (1..=n) is created at `from + g * span_ms / n` milliseconds (the
/// last one at `from + span_ms`), with a time-ordered (v7-style) id as
/// intake gives them, channel reference `bench-<g>`, biller reference
/// `W<g>`, account 3100000011 and an amount from a hash of `g` (1.00 to
/// 24248.95). Its pending journal id is a fresh uuid: no journal is
/// written here (`recon` writes the ledger of its day).
pub async fn seed_confirmed_payments(
    store: &PgStore,
    biller: &str,
    n: u64,
    from: DateTime<Utc>,
    span_ms: i64,
) -> anyhow::Result<()> {
    let chunk = 200_000u64;
    let mut done = 0u64;
    while done < n {
        let k = chunk.min(n - done);
        sqlx::query(
            "INSERT INTO payments (id, channel_id, channel_reference, biller_id, account_number,
                amount, currency, status, pending_journal_id, created_at, updated_at,
                connector_id, biller_reference, confirmed_at)
             SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7'
                     || substr(md5(g::text), 1, 3) || '8' || substr(md5(g::text), 4, 15))::uuid,
                    $6, 'bench-' || g, $1, '3100000011',
                    round((1 + (hashint4(g::int) & 65535) * 0.37)::numeric, 2), 'CNY', 'CONFIRMED',
                    gen_random_uuid(), t, t, 'water-direct', 'W' || g, t
               FROM (SELECT g, $3::timestamptz
                                 + (g * ($7::bigint::numeric / $5::bigint)) * interval '1 millisecond' AS t
                       FROM generate_series($2::bigint + 1, $2::bigint + $4::bigint) g) s",
        )
        .bind(biller)
        .bind(done as i64)
        .bind(from)
        .bind(k as i64)
        .bind(n as i64)
        .bind(BENCH_CHANNEL)
        .bind(span_ms)
        .execute(store.pool())
        .await?;
        done += k;
    }
    Ok(())
}

/// A `/proc/self/status` figure given in kB (`VmHWM:`, `VmRSS:`), in bytes.
pub fn proc_status_bytes(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Percentile of sorted samples (nearest rank).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(super::percentile(&v, 50.0), 50);
        assert_eq!(super::percentile(&v, 99.0), 99);
        assert_eq!(super::percentile(&v, 100.0), 100);
        assert_eq!(super::percentile(&[], 50.0), 0);
    }
}
