//! The finance console's sessions, sign-in links, staff audit and page
//! read models.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::Row;

use super::recon::{row_to_break, row_to_file};
use super::{db_err, PgStore};
use crate::domain::staff::StaffUser;
use crate::store::console::{
    AttemptRow, AuditEntry, BillerDay, BillerWindow, CallbackRow, ChannelDay, ConsoleFile,
    ConsoleSession, ConsoleStore, DayBatch, DayOverview, DayRun, EntryRow, InFlight, ItemRow,
    JournalRow, NewUpload, PaymentBreak, PaymentFacts, PaymentPage, PayoutRow, QueueFilter,
    QueuePage, QueueSort, ReturnRow, Upload, UploadRow,
};
use crate::store::recon::BreakRow;
use crate::store::{StoreError, StoreResult};

/// The queue counts matching breaks up to this many.
const QUEUE_COUNT_CAP: i64 = 10_000;

/// The breaks queue's filter ($1..$8 of [`QueueFilter`]).
const QUEUE_WHERE: &str = "
              WHERE ($1::date IS NULL OR business_date >= $1)
                AND ($2::date IS NULL OR business_date <= $2)
                AND ($3::text IS NULL OR scope = $3)
                AND ($4::text IS NULL OR category = $4)
                AND ($5::text IS NULL OR status = $5)
                AND (NOT $6 OR status NOT IN ('resolved', 'written-off'))
                AND ($7::text IS NULL OR ($7 = '' AND owner IS NULL) OR owner = $7)
                AND ($8::bigint IS NULL OR greatest(abs(coalesce(our_amount_minor, 0)),
                                                    abs(coalesce(their_amount_minor, 0))) >= $8)";

#[async_trait]
impl ConsoleStore for PgStore {
    async fn open_session(
        &self,
        id_hash: &[u8],
        staff_id: &str,
        token_hash: &[u8],
        csrf: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, staff_id, token_hash, csrf, created_at, last_seen_at)
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(id_hash)
        .bind(staff_id)
        .bind(token_hash)
        .bind(csrf)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn session(
        &self,
        id_hash: &[u8],
        idle_since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConsoleSession>> {
        let Some(r) = sqlx::query(
            "SELECT s.staff_id AS id, s.csrf, s.created_at, s.last_seen_at, s.ended_at,
                    (u.token_hash = s.token_hash) AS token_current,
                    u.name, u.role, u.disabled_at
               FROM console_sessions s JOIN staff_users u ON u.id = s.staff_id
              WHERE s.id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        else {
            return Ok(None);
        };
        if r.get::<Option<DateTime<Utc>>, _>("ended_at").is_some() {
            return Ok(None);
        }
        let last_seen: DateTime<Utc> = r.get("last_seen_at");
        let user = super::staff::row_to_user(&r)?;
        let end_reason = if user.disabled {
            Some("user disabled")
        } else if !r.get::<bool, _>("token_current") {
            Some("token rotated")
        } else if last_seen < idle_since {
            Some("idle")
        } else {
            None
        };
        if let Some(reason) = end_reason {
            self.end_session(id_hash, reason, now).await?;
            return Ok(None);
        }
        // Seen: written at most every few seconds (a page's requests
        // would otherwise each write the row).
        if now - last_seen > chrono::Duration::seconds(5) {
            sqlx::query(
                "UPDATE console_sessions SET last_seen_at = $2
                  WHERE id_hash = $1 AND ended_at IS NULL AND last_seen_at < $2",
            )
            .bind(id_hash)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        }
        Ok(Some(ConsoleSession {
            csrf: r.get("csrf"),
            created_at: r.get("created_at"),
            last_seen_at: last_seen,
            user,
        }))
    }

    async fn end_session(
        &self,
        id_hash: &[u8],
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE console_sessions SET ended_at = $2, end_reason = $3
              WHERE id_hash = $1 AND ended_at IS NULL",
        )
        .bind(id_hash)
        .bind(now)
        .bind(reason)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn add_sign_in_link(
        &self,
        code_hash: &[u8],
        staff_id: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let r = sqlx::query(
            "INSERT INTO console_sign_in_links (code_hash, staff_id, token_hash, created_at, expires_at)
             SELECT $1, id, token_hash, $4, $3 FROM staff_users
              WHERE id = $2 AND disabled_at IS NULL",
        )
        .bind(code_hash)
        .bind(staff_id)
        .bind(expires_at)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "enabled staff user {staff_id}"
            )));
        }
        Ok(())
    }

    async fn use_sign_in_link(
        &self,
        code_hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(StaffUser, Vec<u8>)>> {
        let Some(r) = sqlx::query(
            "WITH used AS (
                 UPDATE console_sign_in_links SET used_at = $2
                  WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2
                  RETURNING staff_id, token_hash)
             SELECT used.staff_id AS id, used.token_hash, u.name, u.role, u.disabled_at
               FROM used JOIN staff_users u ON u.id = used.staff_id AND u.token_hash = used.token_hash",
        )
        .bind(code_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        else {
            return Ok(None);
        };
        let user = super::staff::row_to_user(&r)?;
        if user.disabled {
            return Ok(None);
        }
        Ok(Some((user, r.get("token_hash"))))
    }

    async fn audit_staff(&self, e: &AuditEntry) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO staff_audit (at, actor, action, subject_kind, subject, detail)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(e.at)
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.subject_kind)
        .bind(&e.subject)
        .bind(&e.detail)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn audit_of(&self, subject_kind: &str, subject: &str) -> StoreResult<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT at, actor, action, subject_kind, subject, detail FROM staff_audit
              WHERE subject_kind = $1 AND subject = $2 ORDER BY id",
        )
        .bind(subject_kind)
        .bind(subject)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                at: r.get("at"),
                actor: r.get("actor"),
                action: r.get("action"),
                subject_kind: r.get("subject_kind"),
                subject: r.get("subject"),
                detail: r.get("detail"),
            })
            .collect())
    }

    async fn break_queue(
        &self,
        f: &QueueFilter,
        offset: i64,
        limit: i64,
    ) -> StoreResult<QueuePage> {
        // One statement: the page and the count of all that match (a
        // window count over the filtered rows, before the limit).
        let order = match f.sort {
            QueueSort::OldestFirst => "opened_at, id",
            QueueSort::NewestFirst => "opened_at DESC, id DESC",
            QueueSort::LargestFirst => {
                "greatest(abs(coalesce(our_amount_minor, 0)), abs(coalesce(their_amount_minor, 0))) DESC, id"
            }
        };
        let sql = format!(
            "SELECT * FROM recon_breaks {QUEUE_WHERE} ORDER BY {order} OFFSET $9 LIMIT $10"
        );
        let rows = sqlx::query(&sql)
            .bind(f.from)
            .bind(f.to)
            .bind(&f.scope)
            .bind(f.category.map(|c| c.as_str()))
            .bind(f.status.map(|s| s.as_str()))
            .bind(f.open_only)
            .bind(&f.owner)
            .bind(f.min_amount_minor)
            .bind(offset.max(0))
            .bind(limit.clamp(1, 500))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        // Counted up to a cap: a queue of 100,000 says "more than 10,000"
        // rather than count them all on every page.
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM (SELECT 1 FROM recon_breaks {QUEUE_WHERE} LIMIT $9) s"
        ))
        .bind(f.from)
        .bind(f.to)
        .bind(&f.scope)
        .bind(f.category.map(|c| c.as_str()))
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.open_only)
        .bind(&f.owner)
        .bind(f.min_amount_minor)
        .bind(QUEUE_COUNT_CAP + 1)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(QueuePage {
            rows: rows.iter().map(row_to_break).collect::<StoreResult<_>>()?,
            total: total.min(QUEUE_COUNT_CAP),
            more: total > QUEUE_COUNT_CAP,
        })
    }

    async fn break_owners(&self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT DISTINCT owner FROM recon_breaks
              WHERE owner IS NOT NULL AND status NOT IN ('resolved', 'written-off')
              ORDER BY 1 LIMIT 500",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn day_overview(
        &self,
        date: NaiveDate,
        windows: &[BillerWindow],
    ) -> StoreResult<DayOverview> {
        let mut billers = Vec::with_capacity(windows.len());
        for w in windows {
            let states = sqlx::query(
                "SELECT status, count(*) AS n, coalesce(sum(amount), 0) AS total FROM payments
                  WHERE biller_id = $1 AND created_at >= $2 AND created_at < $3
                  GROUP BY status ORDER BY status",
            )
            .bind(&w.biller_id)
            .bind(w.from)
            .bind(w.to)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| (r.get("status"), r.get("n"), r.get::<Decimal, _>("total")))
            .collect();
            let batches = sqlx::query(
                "SELECT b.id, b.net, b.payments_count, p.recorded_at AS paid_at,
                        (b.files_failed_at IS NOT NULL) AS files_failed
                   FROM settlement_batches b
                   LEFT JOIN settlement_payouts p ON p.batch_id = b.id
                  WHERE b.biller_id = $1 AND b.business_date = $2
                  ORDER BY b.created_at",
            )
            .bind(&w.biller_id)
            .bind(date)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| DayBatch {
                id: r.get("id"),
                net: r.get("net"),
                items: r.get("payments_count"),
                paid_at: r.get("paid_at"),
                files_failed: r.get("files_failed"),
            })
            .collect();
            let recon = sqlx::query(
                "SELECT r.id, r.finished_at IS NOT NULL AS finished, r.failed
                   FROM recon_runs r
                  WHERE r.business_date = $2 AND r.scope = $1
                  ORDER BY r.id DESC LIMIT 1",
            )
            .bind(&w.biller_id)
            .bind(date)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(|r| DayRun {
                id: r.get("id"),
                finished: r.get("finished"),
                failed: r.get("failed"),
            });
            let open_breaks = sqlx::query(
                "SELECT category, count(*) AS n, min(opened_at) AS oldest FROM recon_breaks
                  WHERE scope = $1 AND business_date = $2
                    AND status NOT IN ('resolved', 'written-off')
                  GROUP BY category ORDER BY category",
            )
            .bind(&w.biller_id)
            .bind(date)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| (r.get("category"), r.get("n"), r.get("oldest")))
            .collect();
            billers.push(BillerDay {
                biller_id: w.biller_id.clone(),
                biller_name: w.biller_name.clone(),
                currency: w.currency.clone(),
                states,
                batches,
                recon,
                open_breaks,
            });
        }
        let channels = sqlx::query(
            "WITH owed AS (
                 SELECT i.channel_id, b.currency,
                        coalesce(sum(i.amount) FILTER (WHERE i.kind = 'payment'), 0)
                          - coalesce(sum(i.amount) FILTER (WHERE i.kind = 'return'), 0) AS owed,
                        count(*) AS items
                   FROM settlement_batches b JOIN settlement_items i ON i.batch_id = b.id
                  WHERE b.business_date = $1
                  GROUP BY i.channel_id, b.currency),
             funded AS (
                 SELECT channel_id, currency, sum(amount) AS funded FROM channel_fundings
                  WHERE business_date = $1 GROUP BY channel_id, currency)
             SELECT coalesce(o.channel_id, f.channel_id) AS channel_id,
                    trim(coalesce(o.currency, f.currency)) AS currency,
                    coalesce(o.owed, 0) AS owed, coalesce(o.items, 0) AS items,
                    coalesce(f.funded, 0) AS funded
               FROM owed o FULL JOIN funded f
                 ON f.channel_id = o.channel_id AND f.currency = o.currency
              ORDER BY 1, 2",
        )
        .bind(date)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| ChannelDay {
            channel_id: r.get("channel_id"),
            currency: r.get("currency"),
            statement: r.get("owed"),
            statement_items: r.get("items"),
            funded: r.get("funded"),
        })
        .collect();
        let known: Vec<&str> = windows.iter().map(|w| w.biller_id.as_str()).collect();
        let other_breaks = sqlx::query(
            "SELECT scope, category, count(*) AS n, min(opened_at) AS oldest FROM recon_breaks
              WHERE business_date = $1 AND NOT (scope = ANY($2))
                AND status NOT IN ('resolved', 'written-off')
              GROUP BY scope, category ORDER BY scope, category",
        )
        .bind(date)
        .bind(&known)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| {
            (
                r.get("scope"),
                r.get("category"),
                r.get("n"),
                r.get("oldest"),
            )
        })
        .collect();
        Ok(DayOverview {
            billers,
            channels,
            other_breaks,
        })
    }

    // pages: payments, settlement, routes
    async fn find_payments(&self, q: &str, limit: i64) -> StoreResult<Vec<PaymentFacts>> {
        let id = uuid::Uuid::parse_str(q.trim()).ok();
        let rows = sqlx::query(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments
              WHERE ($1::uuid IS NOT NULL AND id = $1)
                 OR channel_reference = $2 OR biller_reference = $2 OR account_number = $2
              ORDER BY created_at DESC, id LIMIT $3"
        ))
        .bind(id)
        .bind(q.trim())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows.iter().map(facts_of).collect())
    }

    async fn payment_page(&self, id: uuid::Uuid) -> StoreResult<Option<PaymentPage>> {
        let Some(row) = sqlx::query(&format!(
            "SELECT {PAYMENT_COLUMNS}, pending_journal_id FROM payments WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        else {
            return Ok(None);
        };
        let facts = facts_of(&row);
        let pending: uuid::Uuid = row.get("pending_journal_id");
        let attempts = sqlx::query(
            "SELECT id, kind, connector_id, worker, started_at, finished_at, outcome, result_code, detail
               FROM dispatch_attempts WHERE payment_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| AttemptRow {
            id: r.get("id"),
            kind: r.get("kind"),
            connector_id: r.get("connector_id"),
            worker: r.get("worker"),
            started_at: r.get("started_at"),
            finished_at: r.get("finished_at"),
            outcome: r.get("outcome"),
            result_code: r.get("result_code"),
            detail: r.get("detail"),
        })
        .collect();
        let callbacks = sqlx::query(
            "SELECT id, coalesce(payload->'event'->>'type', '') AS event, created_at, attempts,
                    done_at, abandoned, last_error
               FROM outbox WHERE topic = 'callback' AND aggregate_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| CallbackRow {
            id: r.get("id"),
            event: r.get("event"),
            created_at: r.get("created_at"),
            attempts: r.get("attempts"),
            done_at: r.get("done_at"),
            abandoned: r.get("abandoned"),
            last_error: r.get("last_error"),
        })
        .collect();
        // The payment's journals: its pending one, those naming it, and
        // those resolving either.
        let heads = sqlx::query(
            "SELECT id, kind, resolves, description, created_at FROM ledger_journals
              WHERE id = $2 OR payment_id = $1
                 OR resolves IN (SELECT id FROM ledger_journals WHERE id = $2 OR payment_id = $1)
              ORDER BY created_at, id",
        )
        .bind(id)
        .bind(pending)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let ids: Vec<uuid::Uuid> = heads.iter().map(|r| r.get("id")).collect();
        let entries = sqlx::query(
            "SELECT e.journal_id, a.code, e.currency, e.layer, e.side, e.amount
               FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
              WHERE e.journal_id = ANY($1) ORDER BY e.id",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let journals = heads
            .iter()
            .map(|h| {
                let jid: uuid::Uuid = h.get("id");
                JournalRow {
                    id: jid,
                    kind: h.get("kind"),
                    resolves: h.get("resolves"),
                    description: h.get("description"),
                    created_at: h.get("created_at"),
                    entries: entries
                        .iter()
                        .filter(|e| e.get::<uuid::Uuid, _>("journal_id") == jid)
                        .map(|e| EntryRow {
                            account: e.get("code"),
                            currency: e.get::<String, _>("currency").trim().to_string(),
                            layer: e.get("layer"),
                            side: e.get("side"),
                            amount: e.get("amount"),
                        })
                        .collect(),
                }
            })
            .collect();
        let items = sqlx::query(
            "SELECT i.batch_id, b.business_date, i.kind, i.amount, i.commission, b.currency
               FROM settlement_items i JOIN settlement_batches b ON b.id = i.batch_id
              WHERE i.payment_id = $1 ORDER BY b.business_date, i.seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| ItemRow {
            batch_id: r.get("batch_id"),
            business_date: r.get("business_date"),
            kind: r.get("kind"),
            amount: r.get("amount"),
            commission: r.get("commission"),
            currency: r.get::<String, _>("currency").trim().to_string(),
        })
        .collect();
        let returns = sqlx::query(
            "SELECT amount, currency, reason, returned_at FROM payment_returns WHERE payment_id = $1",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| ReturnRow {
            amount: r.get("amount"),
            currency: r.get::<String, _>("currency").trim().to_string(),
            reason: r.get("reason"),
            returned_at: r.get("returned_at"),
        })
        .collect();
        let breaks = sqlx::query(
            "SELECT id, business_date, category, status FROM recon_breaks
              WHERE our_reference = $1 ORDER BY id",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| PaymentBreak {
            id: r.get("id"),
            business_date: r.get("business_date"),
            category: r.get("category"),
            status: r.get("status"),
        })
        .collect();
        Ok(Some(PaymentPage {
            facts,
            attempts,
            callbacks,
            journals,
            items,
            returns,
            breaks,
        }))
    }

    async fn payouts(&self, batches: &[uuid::Uuid]) -> StoreResult<Vec<PayoutRow>> {
        let rows = sqlx::query(
            "SELECT p.batch_id, p.recorded_at, e.booking_date, e.amount_minor, e.currency, e.bank_reference
               FROM settlement_payouts p JOIN bank_entries e ON e.id = p.entry_id
              WHERE p.batch_id = ANY($1) ORDER BY p.batch_id",
        )
        .bind(batches)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| PayoutRow {
                batch_id: r.get("batch_id"),
                booking_date: r.get("booking_date"),
                amount_minor: r.get("amount_minor"),
                currency: r.get::<String, _>("currency").trim().to_string(),
                bank_reference: r.get("bank_reference"),
                recorded_at: r.get("recorded_at"),
            })
            .collect())
    }

    async fn in_flight_on(&self, biller: &str, route: &str, limit: i64) -> StoreResult<InFlight> {
        let rows = sqlx::query(
            "SELECT id, count(*) OVER () AS n FROM payments
              WHERE biller_id = $1 AND connector_id = $2 AND status IN ('SUBMITTED', 'UNKNOWN')
              ORDER BY created_at, id LIMIT $3",
        )
        .bind(biller)
        .bind(route)
        .bind(limit.max(1))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(InFlight {
            count: rows.first().map(|r| r.get::<i64, _>("n")).unwrap_or(0),
            ids: rows
                .iter()
                .take(limit.max(0) as usize)
                .map(|r| r.get("id"))
                .collect(),
        })
    }

    // bulk work and files
    async fn record_upload(&self, u: &NewUpload) -> StoreResult<i64> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO console_uploads (file_name, sha256, uploaded_by, uploaded_at, rows)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(&u.file_name)
        .bind(&u.sha256)
        .bind(&u.uploaded_by)
        .bind(u.uploaded_at)
        .bind(u.rows.len() as i32)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        for r in &u.rows {
            sqlx::query(
                "INSERT INTO console_upload_rows (upload_id, sheet_row, break_id, resolution, note, connector)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(r.sheet_row)
            .bind(r.break_id)
            .bind(&r.resolution)
            .bind(&r.note)
            .bind(&r.connector)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(id)
    }

    async fn upload(&self, id: i64) -> StoreResult<Option<(Upload, Vec<UploadRow>)>> {
        let Some(r) = sqlx::query("SELECT * FROM console_uploads WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT * FROM console_upload_rows WHERE upload_id = $1 ORDER BY sheet_row",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(Some((
            upload_of(&r),
            rows.iter()
                .map(|r| UploadRow {
                    sheet_row: r.get("sheet_row"),
                    break_id: r.get("break_id"),
                    resolution: r.get("resolution"),
                    note: r.get("note"),
                    connector: r.get("connector"),
                })
                .collect(),
        )))
    }

    async fn uploads(&self, limit: i64) -> StoreResult<Vec<Upload>> {
        let rows = sqlx::query(
            "SELECT * FROM console_uploads ORDER BY uploaded_at DESC, id DESC LIMIT $1",
        )
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows.iter().map(upload_of).collect())
    }

    async fn breaks_by_ids(&self, ids: &[i64]) -> StoreResult<Vec<BreakRow>> {
        sqlx::query("SELECT * FROM recon_breaks WHERE id = ANY($1) ORDER BY id")
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(row_to_break)
            .collect()
    }

    async fn files_of_date(&self, date: NaiveDate) -> StoreResult<Vec<ConsoleFile>> {
        sqlx::query("SELECT * FROM recon_files WHERE business_date = $1 ORDER BY id")
            .bind(date)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(console_file_of)
            .collect()
    }

    async fn console_file(&self, id: i64) -> StoreResult<Option<ConsoleFile>> {
        sqlx::query("SELECT * FROM recon_files WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(console_file_of)
            .transpose()
    }

    async fn file_dates(&self, limit: i64) -> StoreResult<Vec<(NaiveDate, i64)>> {
        let rows = sqlx::query(
            "SELECT business_date, count(*) AS n FROM recon_files
              GROUP BY business_date ORDER BY business_date DESC LIMIT $1",
        )
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| (r.get("business_date"), r.get("n")))
            .collect())
    }
}

const PAYMENT_COLUMNS: &str = "id, channel_id, channel_reference, biller_id, account_number, bill_reference,
     amount, currency, status, connector_id, biller_reference, created_at, updated_at, confirmed_at";

fn facts_of(r: &sqlx::postgres::PgRow) -> PaymentFacts {
    PaymentFacts {
        id: r.get("id"),
        channel_id: r.get("channel_id"),
        channel_reference: r.get("channel_reference"),
        biller_id: r.get("biller_id"),
        account_number: r.get("account_number"),
        bill_reference: r.get("bill_reference"),
        amount: r.get("amount"),
        currency: r.get::<String, _>("currency").trim().to_string(),
        status: r.get("status"),
        connector_id: r.get("connector_id"),
        biller_reference: r.get("biller_reference"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        confirmed_at: r.get("confirmed_at"),
    }
}

fn upload_of(r: &sqlx::postgres::PgRow) -> Upload {
    Upload {
        id: r.get("id"),
        file_name: r.get("file_name"),
        sha256: r.get("sha256"),
        uploaded_by: r.get("uploaded_by"),
        uploaded_at: r.get("uploaded_at"),
        rows: r.get("rows"),
    }
}

fn console_file_of(r: &sqlx::postgres::PgRow) -> StoreResult<ConsoleFile> {
    Ok(ConsoleFile {
        file: row_to_file(r)?,
        currency: r.get("currency"),
        imported_by: r.get("imported_by"),
        byte_size: r.get("byte_size"),
    })
}
