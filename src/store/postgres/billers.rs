use async_trait::async_trait;
use chrono::{DateTime, NaiveTime, Utc};
use rust_decimal::Decimal;
use sqlx::Row;

use super::{db_err, PgStore};
use crate::domain::biller::{
    AccountRule, AmountRule, Biller, BillerKind, BillerStatus, Cutoff, MaintenanceWindow,
};
use crate::domain::check_digit::CheckDigit;
use crate::domain::ids::{BillerId, ChannelId, ConnectorId};
use crate::domain::ledger::AccountSpec;
use crate::domain::money::{Currency, Money};
use crate::domain::routing::RouteState;
use crate::domain::settlement::{
    BankAccount, CommissionRule, FileFormat, Rounding, SettlementTerms,
};
use crate::store::{BacklogRow, BillerStore, LedgerStore, RouteHealthRow, StoreError, StoreResult};

#[async_trait]
impl BillerStore for PgStore {
    async fn upsert_billers(&self, billers: &[Biller]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        for b in billers {
            let (mstart, mend) = match b.maintenance {
                Some(w) => (Some(w.start), Some(w.end)),
                None => (None, None),
            };
            sqlx::query(
                "INSERT INTO billers (id, name, kind, currency, account_regex, account_check_digit,
                    account_example, amount_partial, amount_overpay, amount_min, amount_max, status,
                    maintenance_start, maintenance_end, cutoff_time, timezone,
                    recon_tolerance_minor)
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,
                    coalesce($17, 0))
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind,
                    currency = EXCLUDED.currency, account_regex = EXCLUDED.account_regex,
                    account_check_digit = EXCLUDED.account_check_digit,
                    account_example = EXCLUDED.account_example,
                    amount_partial = EXCLUDED.amount_partial, amount_overpay = EXCLUDED.amount_overpay,
                    amount_min = EXCLUDED.amount_min, amount_max = EXCLUDED.amount_max,
                    status = EXCLUDED.status, maintenance_start = EXCLUDED.maintenance_start,
                    maintenance_end = EXCLUDED.maintenance_end, cutoff_time = EXCLUDED.cutoff_time,
                    timezone = EXCLUDED.timezone,
                    -- not set by the seed: the stored tolerance stays
                    recon_tolerance_minor = coalesce($17, billers.recon_tolerance_minor),
                    updated_at = now()",
            )
            .bind(b.id.as_str())
            .bind(&b.name)
            .bind(b.kind.as_str())
            .bind(b.currency.code())
            .bind(b.account_rule.pattern())
            .bind(b.account_rule.check_digit.map(|c| c.name()))
            .bind(&b.account_rule.example)
            .bind(b.amount_rule.partial)
            .bind(b.amount_rule.overpay)
            .bind(b.amount_rule.min.amount())
            .bind(b.amount_rule.max.amount())
            .bind(b.status.as_str())
            .bind(mstart)
            .bind(mend)
            .bind(b.cutoff.time)
            .bind(b.cutoff.zone.name())
            .bind(b.recon_tolerance_minor)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            upsert_terms(&mut tx, b).await?;
            sqlx::query("DELETE FROM biller_routes WHERE biller_id = $1")
                .bind(b.id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            for (i, route) in b.routes.iter().enumerate() {
                sqlx::query("INSERT INTO biller_routes (biller_id, priority, connector_id) VALUES ($1, $2, $3)")
                    .bind(b.id.as_str())
                    .bind((i + 1) as i16)
                    .bind(route.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            // A switch to a route the biller no longer has is dropped.
            sqlx::query(
                "UPDATE billers b SET preferred_route = NULL
                  WHERE b.id = $1 AND b.preferred_route IS NOT NULL
                    AND NOT EXISTS (SELECT 1 FROM biller_routes r
                                     WHERE r.biller_id = b.id AND r.connector_id = b.preferred_route)",
            )
            .bind(b.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;

        // Ledger accounts: each biller's payable, the system accounts, and a
        // receivable for every channel in every biller currency.
        let channels: Vec<String> = sqlx::query_scalar("SELECT id FROM channels")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let mut specs = Vec::new();
        for b in billers {
            specs.push(AccountSpec::biller_payable(&b.id, b.currency));
            specs.extend(AccountSpec::system(b.currency));
            for c in &channels {
                let c = ChannelId::parse(c).map_err(|e| StoreError::Rejected(e.to_string()))?;
                specs.push(AccountSpec::channel_receivable(&c, b.currency));
            }
        }
        self.ensure_accounts(&specs).await
    }

    async fn set_preferred_route(
        &self,
        biller: &BillerId,
        route: Option<&ConnectorId>,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE billers SET preferred_route = $2, updated_at = now() WHERE id = $1",
        )
        .bind(biller.as_str())
        .bind(route.map(|r| r.as_str()))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("biller {biller}")));
        }
        Ok(())
    }

    async fn record_route_health(&self, worker: &str, rows: &[RouteHealthRow]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO route_health (connector_id, worker, state, consecutive_failures, last_error, updated_at)
             SELECT c, $1, s, f, e, now() FROM unnest($2::text[], $3::text[], $4::int4[], $5::text[]) AS u(c, s, f, e)
             ON CONFLICT (connector_id, worker) DO UPDATE
                SET state = excluded.state, consecutive_failures = excluded.consecutive_failures,
                    last_error = excluded.last_error, updated_at = excluded.updated_at",
        )
        .bind(worker)
        .bind(rows.iter().map(|r| r.connector_id.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.state.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.consecutive_failures as i32).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.last_error.as_deref()).collect::<Vec<_>>())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn route_health(&self, seen_since: DateTime<Utc>) -> StoreResult<Vec<RouteHealthRow>> {
        let rows = sqlx::query(
            "SELECT connector_id, worker, state, consecutive_failures, last_error, updated_at
               FROM route_health WHERE updated_at >= $1 ORDER BY connector_id, worker",
        )
        .bind(seen_since)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(RouteHealthRow {
                    connector_id: r.get("connector_id"),
                    worker: r.get("worker"),
                    state: match r.get::<String, _>("state").as_str() {
                        "open" => RouteState::Open,
                        "half_open" => RouteState::HalfOpen,
                        _ => RouteState::Closed,
                    },
                    consecutive_failures: r.get::<i32, _>("consecutive_failures") as u32,
                    last_error: r.get("last_error"),
                    updated_at: r.get("updated_at"),
                })
            })
            .collect()
    }

    async fn oldest_waiting(&self) -> StoreResult<Vec<(String, DateTime<Utc>)>> {
        // One index probe per biller (payments_waiting is partial on
        // RECEIVED): cheap however many payments wait.
        let rows = sqlx::query(
            "SELECT b.id, w.created_at FROM billers b
               CROSS JOIN LATERAL (SELECT p.created_at FROM payments p
                    WHERE p.biller_id = b.id AND p.status = 'RECEIVED'
                    ORDER BY p.created_at LIMIT 1) w",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| (r.get("id"), r.get("created_at")))
            .collect())
    }

    async fn record_backlog(&self, process: &str, rows: &[BacklogRow]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO biller_backlog (biller_id, process, refused, refusing_since, updated_at)
             SELECT b, $1, n, s, now() FROM unnest($2::text[], $3::int8[], $4::timestamptz[]) AS u(b, n, s)
             ON CONFLICT (biller_id, process) DO UPDATE
                SET refused = excluded.refused, refusing_since = excluded.refusing_since,
                    updated_at = excluded.updated_at",
        )
        .bind(process)
        .bind(rows.iter().map(|r| r.biller_id.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.refused as i64).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.refusing_since).collect::<Vec<_>>())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn backlog(&self, seen_since: DateTime<Utc>) -> StoreResult<Vec<BacklogRow>> {
        let rows = sqlx::query(
            "SELECT biller_id, process, refused, refusing_since, updated_at
               FROM biller_backlog WHERE updated_at >= $1 ORDER BY biller_id, process",
        )
        .bind(seen_since)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| BacklogRow {
                biller_id: r.get("biller_id"),
                process: r.get("process"),
                refused: r.get::<i64, _>("refused").max(0) as u64,
                refusing_since: r.get("refusing_since"),
                updated_at: r.get("updated_at"),
            })
            .collect())
    }

    async fn load_billers(&self) -> StoreResult<Vec<Biller>> {
        let rows = sqlx::query(
            "SELECT b.*, coalesce((SELECT array_agg(r.connector_id ORDER BY r.priority)
                 FROM biller_routes r WHERE r.biller_id = b.id), '{}') AS routes,
                 t.commission_kind, t.commission_percent, t.commission_fixed, t.commission_min,
                 t.commission_max, t.rounding, t.file_format, t.bank_name, t.bank_account, t.bank_bic
             FROM billers b LEFT JOIN biller_settlement_terms t ON t.biller_id = b.id
             ORDER BY b.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(row_to_biller).collect()
    }
}

fn row_to_biller(r: &sqlx::postgres::PgRow) -> StoreResult<Biller> {
    let bad = |what: &str, e: String| {
        StoreError::Rejected(format!("stored biller has a bad {what}: {e}"))
    };
    let currency = Currency::from_code(r.get::<String, _>("currency").trim())
        .map_err(|e| bad("currency", e.to_string()))?;
    let money = |col: &str| -> StoreResult<Money> {
        Money::new(r.get::<Decimal, _>(col), currency).map_err(|e| bad(col, e.to_string()))
    };
    let check_digit = r
        .get::<Option<String>, _>("account_check_digit")
        .map(|n| CheckDigit::from_name(&n).ok_or_else(|| bad("check digit", n)))
        .transpose()?;
    let account_rule = AccountRule::new(
        &r.get::<String, _>("account_regex"),
        check_digit,
        r.get("account_example"),
    )
    .map_err(|e| bad("account rule", e.to_string()))?;
    let start: Option<DateTime<Utc>> = r.get("maintenance_start");
    let end: Option<DateTime<Utc>> = r.get("maintenance_end");
    let zone: String = r.get("timezone");
    let routes: Vec<String> = r.get("routes");
    Ok(Biller {
        id: BillerId::parse(&r.get::<String, _>("id")).map_err(|e| bad("id", e.to_string()))?,
        name: r.get("name"),
        kind: BillerKind::parse(&r.get::<String, _>("kind"))
            .ok_or_else(|| bad("kind", String::new()))?,
        currency,
        account_rule,
        amount_rule: AmountRule {
            partial: r.get("amount_partial"),
            overpay: r.get("amount_overpay"),
            min: money("amount_min")?,
            max: money("amount_max")?,
        },
        status: match r.get::<String, _>("status").as_str() {
            "active" => BillerStatus::Active,
            _ => BillerStatus::Suspended,
        },
        maintenance: start
            .zip(end)
            .map(|(start, end)| MaintenanceWindow { start, end }),
        cutoff: Cutoff {
            time: r.get::<NaiveTime, _>("cutoff_time"),
            zone: zone.parse().map_err(|_| bad("time zone", zone.clone()))?,
        },
        routes: routes
            .iter()
            .map(|c| ConnectorId::parse(c).map_err(|e| bad("route", e.to_string())))
            .collect::<StoreResult<_>>()?,
        preferred_route: r
            .get::<Option<String>, _>("preferred_route")
            .map(|c| ConnectorId::parse(&c).map_err(|e| bad("preferred route", e.to_string())))
            .transpose()?,
        settlement: row_to_terms(r).map_err(|e| bad("settlement terms", e))?,
        recon_tolerance_minor: Some(r.get("recon_tolerance_minor")),
    })
}

fn row_to_terms(r: &sqlx::postgres::PgRow) -> Result<Option<SettlementTerms>, String> {
    let Some(kind) = r.get::<Option<String>, _>("commission_kind") else {
        return Ok(None);
    };
    let rounding: String = r.get("rounding");
    let commission = match kind.as_str() {
        "percent" => CommissionRule::Percent {
            percent: r.get("commission_percent"),
            min: r.get("commission_min"),
            max: r.get("commission_max"),
            rounding: Rounding::parse(&rounding).ok_or(rounding)?,
        },
        _ => CommissionRule::Fixed {
            per_item: r.get("commission_fixed"),
        },
    };
    Ok(Some(SettlementTerms {
        commission,
        format: FileFormat::parse(&r.get::<String, _>("file_format")).map_err(|e| e.to_string())?,
        bank: BankAccount {
            name: r.get("bank_name"),
            account: r.get("bank_account"),
            bic: r.get("bank_bic"),
        },
    }))
}

async fn upsert_terms(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    biller: &Biller,
) -> StoreResult<()> {
    let Some(t) = &biller.settlement else {
        return Ok(());
    };
    let (kind, percent, fixed, min, max, rounding) = match &t.commission {
        CommissionRule::Percent {
            percent,
            min,
            max,
            rounding,
        } => ("percent", Some(*percent), None, *min, *max, *rounding),
        CommissionRule::Fixed { per_item } => {
            ("fixed", None, Some(*per_item), None, None, Rounding::HalfUp)
        }
    };
    sqlx::query(
        "INSERT INTO biller_settlement_terms (biller_id, commission_kind, commission_percent,
            commission_fixed, commission_min, commission_max, rounding, file_format, bank_name,
            bank_account, bank_bic)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)
         ON CONFLICT (biller_id) DO UPDATE SET commission_kind = EXCLUDED.commission_kind,
            commission_percent = EXCLUDED.commission_percent,
            commission_fixed = EXCLUDED.commission_fixed, commission_min = EXCLUDED.commission_min,
            commission_max = EXCLUDED.commission_max, rounding = EXCLUDED.rounding,
            file_format = EXCLUDED.file_format, bank_name = EXCLUDED.bank_name,
            bank_account = EXCLUDED.bank_account, bank_bic = EXCLUDED.bank_bic, updated_at = now()",
    )
    .bind(biller.id.as_str())
    .bind(kind)
    .bind(percent)
    .bind(fixed)
    .bind(min)
    .bind(max)
    .bind(rounding.as_str())
    .bind(t.format.as_str())
    .bind(&t.bank.name)
    .bind(&t.bank.account)
    .bind(&t.bank.bic)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}
