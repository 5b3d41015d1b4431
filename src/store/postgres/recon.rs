//! Reconciliation in PostgreSQL: files, runs, decisions and breaks.
//! Breaks of a run are written set-based (one upsert per chunk); a break
//! is never deleted, and every change to one is an event.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::TryStreamExt;
use rust_decimal::Decimal;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::ledger::insert_journals;
use super::payments::{apply_transition_tx, load_payment_tx};
use super::{db_err, PgStore};
use crate::domain::dispatch::CallbackEvent;
use crate::domain::ids::PaymentId;
use crate::domain::ledger::{AccountSpec, Journal};
use crate::domain::money::{Currency, Money};
use crate::domain::payment::{transition, PaymentStatus};
use crate::domain::recon::breaks::{
    decide, Action, Actor, BreakStatus, Outcome, Proposal, ResolutionKind, WorkState,
};
use crate::domain::recon::matching::{
    minor_to_string, Category, Decision, Earlier, Found, OurPayment,
};
use crate::domain::recon::FileKind;
use crate::store::recon::{
    BreakEvent, BreakFilter, BreakRow, BreaksRecorded, ImportOutcome, NewReconFile, ReconFile,
    ReconStore, RunRow,
};
use crate::store::{StoreError, StoreResult};

/// Who the automatic side of reconciliation is in the audit trail.
pub const RECON_ACTOR: &str = "reconciliation";

pub(super) fn row_to_file(r: &PgRow) -> StoreResult<ReconFile> {
    let kind: String = r.get("kind");
    Ok(ReconFile {
        id: r.get("id"),
        sha256: r.get("sha256"),
        kind: FileKind::parse(&kind)
            .ok_or_else(|| StoreError::Rejected(format!("stored file kind {kind}")))?,
        source: r.get("source"),
        biller_id: r.get("biller_id"),
        business_date: r.get("business_date"),
        identity: r.get("identity"),
        file_name: r.get("file_name"),
        records: r.get("records"),
        credited: r.get("credited"),
        credited_total_minor: r.get("credited_total_minor"),
        imported_at: r.get("imported_at"),
        superseded_by: r.get("superseded_by"),
    })
}

/// Records a file in `tx` (unique by digest; a current file with the same
/// identity is marked replaced by it).
pub(super) async fn insert_file_tx(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    f: &NewReconFile,
) -> StoreResult<ImportOutcome> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('recon_file:' || $1))")
        .bind(&f.identity)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    if let Some(id) = sqlx::query_scalar::<_, i64>("SELECT id FROM recon_files WHERE sha256 = $1")
        .bind(&f.sha256)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?
    {
        return Ok(ImportOutcome::AlreadyImported { id });
    }
    let id: i64 = sqlx::query_scalar("SELECT nextval(pg_get_serial_sequence('recon_files', 'id'))")
        .fetch_one(&mut **tx)
        .await
        .map_err(db_err)?;
    let replaced: Option<i64> = sqlx::query_scalar(
        "UPDATE recon_files SET superseded_by = $2
          WHERE identity = $1 AND superseded_by IS NULL RETURNING id",
    )
    .bind(&f.identity)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?;
    sqlx::query(
        "INSERT INTO recon_files (id, sha256, kind, source, biller_id, business_date, identity, file_name,
                                  byte_size, records, credited, credited_total_minor, currency,
                                  imported_at, imported_by)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)",
    )
    .bind(id)
    .bind(&f.sha256)
    .bind(f.kind.as_str())
    .bind(&f.source)
    .bind(&f.biller_id)
    .bind(f.business_date)
    .bind(&f.identity)
    .bind(&f.file_name)
    .bind(f.byte_size as i64)
    .bind(f.records as i64)
    .bind(f.credited as i64)
    .bind(f.credited_total_minor)
    .bind(&f.currency)
    .bind(f.imported_at)
    .bind(&f.imported_by)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(ImportOutcome::Imported { id, replaced })
}

pub(super) fn row_to_break(r: &PgRow) -> StoreResult<BreakRow> {
    let bad = |what: &str, v: String| StoreError::Rejected(format!("stored break {what} {v}"));
    let category: String = r.get("category");
    let status: String = r.get("status");
    let proposal: Option<serde_json::Value> = r.get("proposal");
    Ok(BreakRow {
        id: r.get("id"),
        business_date: r.get("business_date"),
        scope: r.get("scope"),
        category: Category::parse(&category).ok_or_else(|| bad("category", category.clone()))?,
        subject: r.get("subject"),
        our_reference: r.get("our_reference"),
        their_reference: r.get("their_reference"),
        our_amount_minor: r.get("our_amount_minor"),
        their_amount_minor: r.get("their_amount_minor"),
        currency: r.get("currency"),
        detail: r.get("detail"),
        evidence: r.get("evidence"),
        status: BreakStatus::parse(&status).ok_or_else(|| bad("status", status.clone()))?,
        owner: r.get("owner"),
        proposal: proposal
            .map(serde_json::from_value::<Proposal>)
            .transpose()
            .map_err(|e| bad("proposal", e.to_string()))?,
        resolution: r.get("resolution"),
        found_by_run: r.get("found_by_run"),
        opened_at: r.get("opened_at"),
        updated_at: r.get("updated_at"),
    })
}

fn row_to_run(r: &PgRow) -> RunRow {
    RunRow {
        id: r.get("id"),
        business_date: r.get("business_date"),
        scope: r.get("scope"),
        started_at: r.get("started_at"),
        finished_at: r.get("finished_at"),
        run_by: r.get("run_by"),
        file_ids: r.get("file_ids"),
        summary: r.get("summary"),
        reports: r.get("reports"),
        failed: r.get("failed"),
    }
}

/// An exact amount in minor units of its currency.
pub fn to_minor(amount: Decimal, currency: Currency) -> StoreResult<i64> {
    let money = Money::new_or_zero(amount, currency)
        .map_err(|e| StoreError::Rejected(format!("amount {amount}: {e}")))?;
    i64::try_from(money.minor_units())
        .map_err(|_| StoreError::Rejected(format!("amount {amount} is too large")))
}

pub(super) fn money_of(minor: i64, currency: &str) -> StoreResult<Money> {
    let c = Currency::from_code(currency).map_err(|e| StoreError::Rejected(e.to_string()))?;
    Money::new(Decimal::new(minor, c.scale()), c)
        .map_err(|e| StoreError::Rejected(format!("amount {minor} minor units: {e}")))
}

/// A break, locked for the rest of `tx`.
pub(super) async fn lock_break(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: i64,
) -> StoreResult<BreakRow> {
    let row = sqlx::query("SELECT * FROM recon_breaks WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("break {id}")))?;
    row_to_break(&row)
}

/// Commits `tx` and returns the break as it left it.
pub(super) async fn commit_with_break(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    id: i64,
) -> StoreResult<BreakRow> {
    let row = sqlx::query("SELECT * FROM recon_breaks WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    row_to_break(&row)
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn event(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    break_id: i64,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    from: Option<&str>,
    to: &str,
    note: &str,
    detail: Option<serde_json::Value>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO recon_break_events (break_id, at, actor, action, from_status, to_status, note, detail)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
    )
    .bind(break_id)
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(from)
    .bind(to)
    .bind(note)
    .bind(detail)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl ReconStore for PgStore {
    async fn record_file(&self, f: &NewReconFile) -> StoreResult<ImportOutcome> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let outcome = insert_file_tx(&mut tx, f).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(outcome)
    }

    async fn recon_file(&self, id: i64) -> StoreResult<Option<ReconFile>> {
        sqlx::query("SELECT * FROM recon_files WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(row_to_file)
            .transpose()
    }

    async fn current_files(&self, dates: &[NaiveDate]) -> StoreResult<Vec<ReconFile>> {
        sqlx::query(
            "SELECT * FROM recon_files WHERE business_date = ANY($1) AND superseded_by IS NULL ORDER BY id",
        )
        .bind(dates)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(row_to_file)
        .collect()
    }

    async fn start_run(
        &self,
        date: NaiveDate,
        scope: &str,
        run_by: &str,
        file_ids: &[i64],
        now: DateTime<Utc>,
    ) -> StoreResult<i64> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query(
            "UPDATE recon_runs SET finished_at = $3, failed = 'not finished an hour after it started (taken as dead)'
              WHERE business_date = $1 AND scope = $2 AND finished_at IS NULL
                AND started_at < $3 - interval '1 hour'",
        )
        .bind(date)
        .bind(scope)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let running = sqlx::query(
            "SELECT id, started_at, run_by FROM recon_runs
              WHERE business_date = $1 AND scope = $2 AND finished_at IS NULL",
        )
        .bind(date)
        .bind(scope)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let busy = |id: i64, at: DateTime<Utc>, by: String| {
            StoreError::Conflict(format!(
                "a reconciliation of {date} for {scope} is running (run {id}, started {} UTC by {by}); wait for it to finish",
                at.format("%Y-%m-%d %H:%M:%S")
            ))
        };
        if let Some(r) = running {
            return Err(busy(r.get("id"), r.get("started_at"), r.get("run_by")));
        }
        let id = sqlx::query_scalar(
            "INSERT INTO recon_runs (business_date, scope, started_at, run_by, file_ids)
             VALUES ($1,$2,$3,$4,$5) RETURNING id",
        )
        .bind(date)
        .bind(scope)
        .bind(now)
        .bind(run_by)
        .bind(file_ids)
        .fetch_one(&mut *tx)
        .await;
        match id {
            Ok(id) => {
                tx.commit().await.map_err(db_err)?;
                Ok(id)
            }
            // Another run started between our check and our insert.
            Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("23505") => {
                Err(busy(0, now, "another process".into()))
            }
            Err(e) => Err(db_err(e)),
        }
    }

    async fn fail_run(&self, run_id: i64, reason: &str, now: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query(
            "UPDATE recon_runs SET finished_at = $2, failed = $3 WHERE id = $1 AND finished_at IS NULL",
        )
        .bind(run_id)
        .bind(now)
        .bind(reason)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn stream_payments(
        &self,
        biller: &str,
        from: DateTime<Utc>,
        core_from: DateTime<Utc>,
        to: DateTime<Utc>,
        sink: tokio::sync::mpsc::Sender<OurPayment>,
    ) -> StoreResult<u64> {
        // A payment re-sent (a `resend` that may have arrived, including
        // one whose process died during the call) belongs to the window of
        // its re-send, looked for on the route it was re-sent through; in
        // the window of its creation it is read as re-sent later.
        let mut rows = sqlx::query(
            "SELECT p.id, p.biller_reference, p.channel_id, p.account_number, p.amount, p.currency,
                    p.status, p.connector_id, p.created_at >= $3 AS core, d.decision,
                    r.started_at IS NOT NULL AS resent_later, r.from_connector AS resent_from
               FROM payment_states p
               LEFT JOIN recon_decisions d ON d.payment_id = p.id
               LEFT JOIN recon_resends r ON r.payment_id = p.id
                     AND (r.outcome IS NULL OR r.outcome IN ('credited', 'unknown'))
              WHERE p.biller_id = $1 AND p.created_at >= $2 AND p.created_at < $4
                AND NOT (r.started_at IS NOT NULL AND r.started_at < $4)
             UNION ALL
             SELECT p.id, p.biller_reference, p.channel_id, p.account_number, p.amount, p.currency,
                    p.status, r.connector_id, r.started_at >= $3 AS core, d.decision,
                    false AS resent_later, r.from_connector AS resent_from
               FROM recon_resends r
               JOIN payment_states p ON p.id = r.payment_id
               LEFT JOIN recon_decisions d ON d.payment_id = p.id
              WHERE (r.outcome IS NULL OR r.outcome IN ('credited', 'unknown'))
                AND p.biller_id = $1 AND r.started_at >= $2 AND r.started_at < $4
              ORDER BY id",
        )
        .bind(biller)
        .bind(from)
        .bind(core_from)
        .bind(to)
        .fetch(&self.pool);
        let mut sent = 0u64;
        let mut currency_cache: Option<(String, Currency)> = None;
        while let Some(r) = rows.try_next().await.map_err(db_err)? {
            let code: String = r.get("currency");
            let code = code.trim().to_string();
            let currency = match &currency_cache {
                Some((c, cur)) if *c == code => *cur,
                _ => {
                    let cur = Currency::from_code(&code)
                        .map_err(|e| StoreError::Rejected(e.to_string()))?;
                    currency_cache = Some((code.clone(), cur));
                    cur
                }
            };
            let status: String = r.get("status");
            let p = OurPayment {
                our_reference: r.get::<uuid::Uuid, _>("id").to_string(),
                biller_reference: r.get("biller_reference"),
                channel_id: r.get("channel_id"),
                account: r.get("account_number"),
                amount_minor: to_minor(r.get("amount"), currency)?,
                currency: code,
                status: PaymentStatus::parse(&status)
                    .ok_or_else(|| StoreError::Rejected(format!("stored status {status}")))?,
                connector_id: r.get("connector_id"),
                core: r.get("core"),
                decided: match r.get::<Option<String>, _>("decision").as_deref() {
                    Some("confirm") => Some(Earlier::Confirm),
                    Some("reject") => Some(Earlier::Reject),
                    _ => None,
                },
                resent_later: r.get("resent_later"),
                resent_from: r.get("resent_from"),
            };
            if sink.send(p).await.is_err() {
                // The reader stopped (it failed); its error is the one told.
                break;
            }
            sent += 1;
        }
        Ok(sent)
    }

    async fn decided(&self, payments: &[PaymentId]) -> StoreResult<Vec<(PaymentId, String)>> {
        let ids: Vec<uuid::Uuid> = payments.iter().map(|p| p.0).collect();
        let rows = sqlx::query(
            "SELECT payment_id, decision FROM recon_decisions WHERE payment_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| (PaymentId(r.get("payment_id")), r.get("decision")))
            .collect())
    }

    async fn apply_decisions(
        &self,
        run_id: i64,
        date: NaiveDate,
        biller: &str,
        decisions: &[Decision],
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let mut applied = 0u64;
        for d in decisions {
            let id = uuid::Uuid::parse_str(d.our_reference())
                .map(PaymentId)
                .map_err(|_| StoreError::Rejected(format!("reference {}", d.our_reference())))?;
            let Some(p) = load_payment_tx(&mut tx, id).await? else {
                continue;
            };
            if p.status != PaymentStatus::Unknown {
                continue;
            }
            let (to, reason, credit, kind, evidence) = match d {
                Decision::Confirm { evidence, .. } => (
                    PaymentStatus::Confirmed,
                    format!("reconciliation: credited per {}", evidence.describe()),
                    Some(evidence.their_reference.clone()).filter(|r| !r.is_empty()),
                    "confirm",
                    serde_json::to_value(evidence).unwrap_or_default(),
                ),
                Decision::Reject {
                    connector,
                    evidence,
                    ..
                } => (
                    PaymentStatus::Rejected,
                    format!(
                        "reconciliation: absent from the {connector} files of {date} and the day after, grace period over"
                    ),
                    None,
                    "reject",
                    serde_json::json!({ "connector": connector, "records": evidence }),
                ),
            };
            let t = transition(id, PaymentStatus::Unknown, to, reason.clone(), now)
                .map_err(|e| StoreError::Rejected(e.to_string()))?;
            apply_transition_tx(&mut tx, &t, credit.as_deref().map(|r| (r, now))).await?;
            let event = CallbackEvent::for_payment(
                &p,
                to,
                credit.as_deref().or(p.biller_reference.as_deref()),
                Some(&reason),
                now,
            );
            super::dispatch::enqueue_callback(&mut tx, id, &event, now).await?;
            sqlx::query(
                "INSERT INTO recon_decisions (run_id, payment_id, business_date, biller_id, decision, evidence, decided_at)
                 VALUES ($1,$2,$3,$4,$5,$6,$7)",
            )
            .bind(run_id)
            .bind(id.0)
            .bind(date)
            .bind(biller)
            .bind(kind)
            .bind(evidence)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            applied += 1;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(applied)
    }

    async fn record_breaks(
        &self,
        run_id: i64,
        date: NaiveDate,
        scope: &str,
        found: &[Found],
        now: DateTime<Utc>,
    ) -> StoreResult<BreaksRecorded> {
        if found.is_empty() {
            return Ok(BreaksRecorded::default());
        }
        let col = |f: fn(&Found) -> String| found.iter().map(f).collect::<Vec<String>>();
        let categories = col(|f| f.category.as_str().to_string());
        let subjects = col(|f| f.our_reference.clone());
        let ours = col(|f| f.our_reference.clone());
        let theirs = col(|f| f.their_reference.clone());
        let currencies = col(|f| f.currency.clone());
        let details = col(|f| f.detail.clone());
        let evidence = col(|f| serde_json::to_string(&f.evidence).unwrap_or_else(|_| "[]".into()));
        let our_amounts: Vec<Option<i64>> = found.iter().map(|f| f.our_amount_minor).collect();
        let their_amounts: Vec<Option<i64>> = found.iter().map(|f| f.their_amount_minor).collect();
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let reopen: Vec<i64> = sqlx::query_scalar(
            "SELECT b.id FROM recon_breaks b
               JOIN unnest($3::text[], $4::text[]) AS u(category, subject)
                 ON b.category = u.category AND b.subject = u.subject
              WHERE b.business_date = $1 AND b.scope = $2 AND b.resolution = 'cleared'
              FOR UPDATE OF b",
        )
        .bind(date)
        .bind(scope)
        .bind(&categories)
        .bind(&subjects)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let rows = sqlx::query(
            "INSERT INTO recon_breaks (business_date, scope, category, subject, our_reference, their_reference,
                                       our_amount_minor, their_amount_minor, currency, detail, evidence, status,
                                       first_run, last_run, found_by_run, opened_at, updated_at)
             SELECT $1, $2, u.category, u.subject, u.our_ref, u.their_ref, u.our_amt, u.their_amt, u.currency,
                    u.detail, u.evidence::jsonb, 'open', $3, $3, $3, $4, $4
               FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[],
                           $11::text[], $12::text[], $13::text[])
                    AS u(category, subject, our_ref, their_ref, our_amt, their_amt, currency, detail, evidence)
             ON CONFLICT (business_date, scope, category, subject) DO UPDATE SET
                    their_reference = EXCLUDED.their_reference,
                    our_amount_minor = EXCLUDED.our_amount_minor,
                    their_amount_minor = EXCLUDED.their_amount_minor,
                    detail = EXCLUDED.detail,
                    evidence = EXCLUDED.evidence,
                    last_run = EXCLUDED.last_run,
                    found_by_run = EXCLUDED.found_by_run,
                    status = CASE WHEN recon_breaks.resolution = 'cleared' THEN 'open' ELSE recon_breaks.status END,
                    resolution = CASE WHEN recon_breaks.resolution = 'cleared' THEN NULL ELSE recon_breaks.resolution END,
                    updated_at = EXCLUDED.updated_at
             RETURNING id, (xmax = 0) AS inserted",
        )
        .bind(date)
        .bind(scope)
        .bind(run_id)
        .bind(now)
        .bind(&categories)
        .bind(&subjects)
        .bind(&ours)
        .bind(&theirs)
        .bind(&our_amounts)
        .bind(&their_amounts)
        .bind(&currencies)
        .bind(&details)
        .bind(&evidence)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let opened: Vec<i64> = rows
            .iter()
            .filter(|r| r.get::<bool, _>("inserted"))
            .map(|r| r.get("id"))
            .collect();
        let note = format!("found by run {run_id}");
        for (ids, action, from) in [
            (&opened, "opened", None),
            (&reopen, "reopened", Some("resolved")),
        ] {
            if ids.is_empty() {
                continue;
            }
            sqlx::query(
                "INSERT INTO recon_break_events (break_id, at, actor, action, from_status, to_status, note)
                 SELECT id, $2, $3, $4, $5, 'open', $6 FROM unnest($1::bigint[]) AS id",
            )
            .bind(ids)
            .bind(now)
            .bind(RECON_ACTOR)
            .bind(action)
            .bind(from)
            .bind(&note)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(BreaksRecorded {
            opened: opened.len() as u64,
            reopened: reopen.len() as u64,
            still_open: (rows.len() - opened.len() - reopen.len()) as u64,
            cleared: 0,
        })
    }

    async fn finish_run(
        &self,
        run_id: i64,
        summary: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let run =
            sqlx::query("SELECT business_date, scope FROM recon_runs WHERE id = $1 FOR UPDATE")
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?
                .ok_or_else(|| StoreError::NotFound(format!("run {run_id}")))?;
        let date: NaiveDate = run.get("business_date");
        let scope: String = run.get("scope");
        let cleared = sqlx::query(
            "WITH gone AS (
                 SELECT id, status FROM recon_breaks
                  WHERE business_date = $1 AND scope = $2 AND found_by_run IS DISTINCT FROM $3
                    AND status NOT IN ('resolved', 'written-off')
                  FOR UPDATE),
             upd AS (
                 UPDATE recon_breaks b SET status = 'resolved', resolution = 'cleared', proposal = NULL,
                        found_by_run = NULL, last_run = $3, updated_at = $4
                   FROM gone WHERE b.id = gone.id RETURNING b.id, gone.status AS was)
             INSERT INTO recon_break_events (break_id, at, actor, action, from_status, to_status, note)
             SELECT id, $4, $5, 'cleared', was, 'resolved', $6 FROM upd",
        )
        .bind(date)
        .bind(&scope)
        .bind(run_id)
        .bind(now)
        .bind(RECON_ACTOR)
        .bind(format!("not found by run {run_id} of the same date"))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        sqlx::query(
            "UPDATE recon_breaks SET found_by_run = NULL
              WHERE business_date = $1 AND scope = $2 AND found_by_run IS DISTINCT FROM $3
                AND found_by_run IS NOT NULL",
        )
        .bind(date)
        .bind(&scope)
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("UPDATE recon_runs SET finished_at = $2, summary = $3 WHERE id = $1")
            .bind(run_id)
            .bind(now)
            .bind(summary)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(cleared)
    }

    async fn set_run_reports(&self, run_id: i64, reports: &[String]) -> StoreResult<()> {
        sqlx::query("UPDATE recon_runs SET reports = $2 WHERE id = $1")
            .bind(run_id)
            .bind(reports)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn run(&self, id: i64) -> StoreResult<Option<RunRow>> {
        Ok(sqlx::query("SELECT * FROM recon_runs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(row_to_run))
    }

    async fn runs(&self, date: Option<NaiveDate>, limit: i64) -> StoreResult<Vec<RunRow>> {
        Ok(sqlx::query(
            "SELECT * FROM recon_runs WHERE ($1::date IS NULL OR business_date = $1)
              ORDER BY id DESC LIMIT $2",
        )
        .bind(date)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(row_to_run)
        .collect())
    }

    async fn breaks(&self, f: &BreakFilter) -> StoreResult<Vec<BreakRow>> {
        sqlx::query(
            "SELECT * FROM recon_breaks
              WHERE ($1::date IS NULL OR business_date = $1)
                AND ($2::text IS NULL OR scope = $2)
                AND ($3::text IS NULL OR status = $3)
                AND (NOT $4 OR status NOT IN ('resolved', 'written-off'))
              ORDER BY business_date, scope, category, subject
              LIMIT $5",
        )
        .bind(f.date)
        .bind(&f.scope)
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.open_only)
        .bind(if f.limit > 0 { f.limit } else { i64::MAX })
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(row_to_break)
        .collect()
    }

    async fn break_detail(&self, id: i64) -> StoreResult<Option<(BreakRow, Vec<BreakEvent>)>> {
        let Some(row) = sqlx::query("SELECT * FROM recon_breaks WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let events =
            sqlx::query("SELECT * FROM recon_break_events WHERE break_id = $1 ORDER BY id")
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?
                .iter()
                .map(|r| BreakEvent {
                    at: r.get("at"),
                    actor: r.get("actor"),
                    action: r.get("action"),
                    from_status: r.get("from_status"),
                    to_status: r.get("to_status"),
                    note: r.get("note"),
                    detail: r.get("detail"),
                })
                .collect();
        Ok(Some((row_to_break(&row)?, events)))
    }

    async fn recon_tolerance(&self, biller: &str) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT recon_tolerance_minor FROM billers WHERE id = $1")
            .bind(biller)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or_else(|| StoreError::NotFound(format!("biller {biller}")))
    }

    async fn set_recon_tolerance(&self, biller: &str, minor: i64) -> StoreResult<()> {
        let n = sqlx::query("UPDATE billers SET recon_tolerance_minor = $2 WHERE id = $1")
            .bind(biller)
            .bind(minor)
            .execute(&self.pool)
            .await
            .map_err(db_err)?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("biller {biller}")));
        }
        Ok(())
    }

    async fn act_on_break(
        &self,
        id: i64,
        actor: &Actor,
        action: &Action,
        now: DateTime<Utc>,
    ) -> StoreResult<BreakRow> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let b = lock_break(&mut tx, id).await?;
        let state = WorkState {
            category: b.category,
            status: b.status,
            owner: b.owner.clone(),
            proposal: b.proposal.clone(),
        };
        let outcome = decide(&state, actor, action).map_err(|e| match e {
            crate::domain::recon::breaks::WorkflowError::Role { .. } => {
                StoreError::Rejected(format!("forbidden: {e}"))
            }
            _ => StoreError::Conflict(e.to_string()),
        })?;
        let note = match action {
            Action::Comment { text } => text.clone(),
            Action::Decline { reason } => reason.clone(),
            Action::Propose(p) => p.note.clone(),
            Action::Assign { owner } => format!("assigned to {owner}"),
            _ => String::new(),
        };
        match outcome {
            Outcome::Moved(next) => {
                sqlx::query(
                    "UPDATE recon_breaks SET status = $2, owner = $3, proposal = $4, updated_at = $5 WHERE id = $1",
                )
                .bind(id)
                .bind(next.status.as_str())
                .bind(&next.owner)
                .bind(next.proposal.as_ref().map(|p| serde_json::to_value(p).unwrap_or_default()))
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                let detail = next
                    .proposal
                    .as_ref()
                    .map(|p| serde_json::to_value(p).unwrap_or_default());
                event(
                    &mut tx,
                    id,
                    now,
                    &actor.user,
                    action.name(),
                    Some(b.status.as_str()),
                    next.status.as_str(),
                    &note,
                    if matches!(action, Action::Propose(_)) {
                        detail
                    } else {
                        None
                    },
                )
                .await?;
            }
            Outcome::Apply {
                proposal,
                approver,
                closes_as,
            } => {
                let moved = apply_resolution(&mut tx, &b, &proposal, now).await?;
                sqlx::query(
                    "UPDATE recon_breaks SET status = $2, resolution = $3, proposal = NULL,
                            owner = coalesce(owner, $4), updated_at = $5 WHERE id = $1",
                )
                .bind(id)
                .bind(closes_as.as_str())
                .bind(proposal.kind.as_str())
                .bind(&proposal.maker)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                event(
                    &mut tx,
                    id,
                    now,
                    &actor.user,
                    action.name(),
                    Some(b.status.as_str()),
                    closes_as.as_str(),
                    &proposal.note,
                    Some(serde_json::json!({
                        "resolution": proposal.kind.as_str(),
                        "maker": proposal.maker,
                        "approver": approver,
                        "moved": moved,
                    })),
                )
                .await?;
            }
        }
        commit_with_break(tx, id).await
    }

    async fn bank_statement_before(&self, date: NaiveDate) -> StoreResult<Option<NaiveDate>> {
        sqlx::query_scalar(
            "SELECT max(business_date) FROM bank_statements
              WHERE kind = 'statement' AND business_date < $1",
        )
        .bind(date)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn batches_due_between(
        &self,
        from: NaiveDate,
        through: NaiveDate,
    ) -> StoreResult<Vec<crate::store::BatchRecord>> {
        let day_before = from.pred_opt().unwrap_or(from);
        let since = day_before.and_time(chrono::NaiveTime::MIN).and_utc();
        sqlx::query(
            "SELECT * FROM settlement_batches
              WHERE business_date < $2 AND (business_date >= $1 OR created_at >= $3)
              ORDER BY id",
        )
        .bind(day_before)
        .bind(through)
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(super::settlement::row_to_batch)
        .collect()
    }
}

/// Moves the money a resolution moves (in `tx`), and says what moved.
async fn apply_resolution(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    b: &BreakRow,
    p: &Proposal,
    now: DateTime<Utc>,
) -> StoreResult<serde_json::Value> {
    let payment = uuid::Uuid::parse_str(&b.our_reference).ok().map(PaymentId);
    if let (Some(id), true) = (payment, p.kind.moves_money(b.category)) {
        // A re-send that may have arrived, not yet decided by its route's
        // files: refunding or writing off now could pay twice.
        let live: Option<(String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT connector_id, started_at FROM recon_resends
              WHERE payment_id = $1 AND (outcome IS NULL OR outcome = 'unknown')",
        )
        .bind(id.0)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
        if let Some((connector, started)) = live.filter(|(_, started)| b.opened_at <= *started) {
            return Err(StoreError::Conflict(format!(
                "payment {id} was re-sent through {connector} at {started} and may have arrived there: reconcile the re-send's date with {connector}'s files first; a break found by that run can then be resolved"
            )));
        }
    }
    match p.kind {
        ResolutionKind::Explain | ResolutionKind::Cleared => Ok(serde_json::Value::Null),
        ResolutionKind::AcceptBiller if b.category != Category::AmountMismatch => {
            Ok(serde_json::Value::Null)
        }
        // It calls a biller: `reconcile::resend` makes it, recording the
        // call before it is made (`ResendStore::begin_resend`).
        ResolutionKind::Resend => Err(StoreError::Conflict(
            "a re-send is approved through the re-send path (billclear breaks approve, or the API), which asks both routes first".into(),
        )),
        ResolutionKind::Reverse => {
            let id = payment.ok_or_else(|| {
                StoreError::Rejected(format!("break {} names no payment to reverse", b.id))
            })?;
            let p_row = load_payment_tx(tx, id)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("payment {id}")))?;
            if p_row.status != PaymentStatus::Settled {
                return Err(StoreError::Conflict(format!(
                    "payment {id} is {}: it can be reversed once settled (its settlement then recovers it); write it off meanwhile if it must be closed now",
                    p_row.status.as_str()
                )));
            }
            let r = super::settlement::record_return_tx(
                tx,
                id,
                &format!("reversed by reconciliation break {}: {}", b.id, p.note),
                now,
            )
            .await?;
            Ok(
                serde_json::json!({ "reversed_payment": id.to_string(), "amount": r.amount.to_string() }),
            )
        }
        ResolutionKind::AcceptBiller | ResolutionKind::WriteOff => {
            // The difference, signed: what they hold minus what we hold.
            let theirs = b.their_amount_minor.unwrap_or(0);
            let ours = b.our_amount_minor.unwrap_or(0);
            let diff = match b.category {
                Category::MissingAtBiller | Category::StatusMismatch => -ours,
                Category::MissingAtUs => theirs,
                _ => theirs - ours,
            };
            if diff == 0 {
                return Ok(serde_json::Value::Null);
            }
            let money = money_of(diff.abs(), &b.currency)?;
            let c = money.currency();
            let suspense = format!("suspense:{c}");
            let other = match b.category {
                Category::SettlementMismatch | Category::UnmatchedBankLine | Category::StatementGap => {
                    format!("bank:settlement:{c}")
                }
                _ => {
                    let biller = crate::domain::ids::BillerId::parse(&b.scope)
                        .map_err(|e| StoreError::Rejected(e.to_string()))?;
                    AccountSpec::biller_payable(&biller, c).code
                }
            };
            let bank = other.starts_with("bank:");
            // Biller side higher: we owe the biller more (Cr payable); bank
            // side higher: more money in the bank (Dr bank).
            let (debit, credit) = match (diff > 0, bank) {
                (true, false) => (suspense, other),
                (false, false) => (other, suspense),
                (true, true) => (other, suspense),
                (false, true) => (suspense, other),
            };
            let description = format!(
                "reconciliation break {} ({} {}) {}: {}",
                b.id,
                b.category.as_str(),
                b.subject,
                p.kind.as_str(),
                p.note
            );
            let j = Journal::adjustment(debit.clone(), credit.clone(), money, None, description);
            insert_journals(tx, &[&j]).await?;
            Ok(serde_json::json!({
                "journal": j.id.to_string(),
                "debit": debit,
                "credit": credit,
                "amount": minor_to_string(diff.abs(), c.scale()),
            }))
        }
    }
}
