//! Complaints, their trail, and refunds (PostgreSQL).

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::{db_err, PgStore};
use crate::domain::complaint::{
    refund_way, staff_effect, ComplaintKind, ComplaintStatus, Outcome, RefundWay, StaffAction,
    StaffEffect, StaffView,
};
use crate::domain::ids::{ChannelId, PaymentId};
use crate::domain::ledger::Journal;
use crate::domain::payment::PaymentStatus;
use crate::store::complaint::{
    ComplaintEvent, ComplaintFilter, ComplaintRecord, ComplaintStore, MachineChange, NewComplaint,
    PaymentEvidence, RefundMade, RefundOrder, RefundRecord, RegisterOutcome,
};
use crate::store::{StoreError, StoreResult};

const SELECT: &str =
    "SELECT c.*, c.proposal->>'maker' AS proposed_by, c.proposal->>'note' AS proposal_note,
        r.id AS r_id, r.payment_id AS r_payment_id, r.complaint_id AS r_complaint_id,
        r.channel_id AS r_channel_id, r.biller_id AS r_biller_id, r.amount AS r_amount,
        r.currency AS r_currency, r.how AS r_how, r.decided_by AS r_decided_by, r.maker AS r_maker,
        r.approver AS r_approver, r.reason AS r_reason, r.business_date AS r_business_date,
        r.refunded_at AS r_refunded_at
   FROM complaints c LEFT JOIN refunds r ON r.complaint_id = c.id";

fn bad(what: &str) -> StoreError {
    StoreError::Rejected(format!("stored complaint: bad {what}"))
}

fn row_to_refund(r: &sqlx::postgres::PgRow, prefix: &str) -> Option<RefundRecord> {
    let col = |c: &str| format!("{prefix}{c}");
    let id: Option<Uuid> = r.get(col("id").as_str());
    Some(RefundRecord {
        id: id?,
        payment_id: PaymentId(r.get(col("payment_id").as_str())),
        complaint_id: r.get(col("complaint_id").as_str()),
        channel_id: r.get(col("channel_id").as_str()),
        biller_id: r.get(col("biller_id").as_str()),
        amount: r.get(col("amount").as_str()),
        currency: r
            .get::<String, _>(col("currency").as_str())
            .trim()
            .to_string(),
        how: r.get(col("how").as_str()),
        decided_by: r.get(col("decided_by").as_str()),
        maker: r.get(col("maker").as_str()),
        approver: r.get(col("approver").as_str()),
        reason: r.get(col("reason").as_str()),
        business_date: r.get(col("business_date").as_str()),
        refunded_at: r.get(col("refunded_at").as_str()),
    })
}

fn row_to_complaint(r: &sqlx::postgres::PgRow) -> StoreResult<ComplaintRecord> {
    Ok(ComplaintRecord {
        id: r.get("id"),
        channel_id: r.get("channel_id"),
        payment_id: PaymentId(r.get("payment_id")),
        biller_id: r.get("biller_id"),
        kind: ComplaintKind::parse(&r.get::<String, _>("kind")).ok_or_else(|| bad("kind"))?,
        description: r.get("description"),
        status: ComplaintStatus::parse(&r.get::<String, _>("status"))
            .ok_or_else(|| bad("status"))?,
        outcome: r.get("outcome"),
        reason: r.get("reason"),
        biller_reference: r.get("biller_reference"),
        credited_at: r.get("credited_at"),
        request_hash: r.get("request_hash"),
        registered_at: r.get("registered_at"),
        due_at: r.get("due_at"),
        next_check_at: r.get("next_check_at"),
        checks: r.get("checks"),
        owner: r.get("owner"),
        proposed_by: r.get("proposed_by"),
        proposal_note: r.get("proposal_note"),
        resolved_at: r.get("resolved_at"),
        escalated_at: r.get("escalated_at"),
        updated_at: r.get("updated_at"),
        refund: row_to_refund(r, "r_"),
    })
}

async fn load_tx(tx: &mut Transaction<'_, Postgres>, id: Uuid) -> StoreResult<ComplaintRecord> {
    // Lock the complaint itself, then read it with its refund.
    sqlx::query("SELECT 1 FROM complaints WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("complaint {id}")))?;
    let row = sqlx::query(&format!("{SELECT} WHERE c.id = $1"))
        .bind(id)
        .fetch_one(&mut **tx)
        .await
        .map_err(db_err)?;
    row_to_complaint(&row)
}

#[allow(clippy::too_many_arguments)]
async fn event_tx(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    from: Option<ComplaintStatus>,
    to: ComplaintStatus,
    note: &str,
    detail: Option<serde_json::Value>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO complaint_events (complaint_id, at, actor, action, from_status, to_status, note, detail)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
    )
    .bind(id)
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(from.map(|s| s.as_str()))
    .bind(to.as_str())
    .bind(note)
    .bind(detail)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// The app's callback for a complaint's new status, queued in `tx`.
async fn callback_tx(
    tx: &mut Transaction<'_, Postgres>,
    c: &ComplaintRecord,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let event = crate::complaints::view::callback_event(c, now);
    sqlx::query(
        "INSERT INTO outbox (topic, aggregate_id, payload, created_at, available_at)
         VALUES ('callback', $1, jsonb_build_object('channel_id', $2::text, 'event', $3::jsonb), $4, $4)",
    )
    .bind(c.id)
    .bind(&c.channel_id)
    .bind(sqlx::types::Json(&event))
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Writes a complaint's new state (status, outcome, reason, next check),
/// its event and, when the status changed, the app's callback.
#[allow(clippy::too_many_arguments)]
async fn change_tx(
    tx: &mut Transaction<'_, Postgres>,
    before: &ComplaintRecord,
    to: ComplaintStatus,
    outcome: Option<&Outcome>,
    reason: Option<&str>,
    next_check_at: Option<DateTime<Utc>>,
    actor: &str,
    action: &str,
    note: &str,
    detail: Option<serde_json::Value>,
    now: DateTime<Utc>,
) -> StoreResult<ComplaintRecord> {
    let (reference, credited_at) = match outcome {
        Some(Outcome::CreditConfirmed {
            biller_reference,
            credited_at,
        }) => (Some(biller_reference.as_str()), Some(*credited_at)),
        _ => (None, None),
    };
    let closed = !to.is_open();
    // A reason is at most 1000 characters (a biller's receipt in it is
    // not ours to bound).
    let reason: Option<String> = reason.map(|r| r.chars().take(1000).collect());
    sqlx::query(
        "UPDATE complaints SET status = $2, outcome = coalesce($3, outcome), reason = coalesce($4, reason),
                biller_reference = coalesce($5, biller_reference), credited_at = coalesce($6, credited_at),
                next_check_at = $7, checks = checks + CASE WHEN $8 = 'system' THEN 1 ELSE 0 END,
                resolved_at = CASE WHEN $9 THEN $10 ELSE resolved_at END,
                escalated_at = CASE WHEN $2 = 'ESCALATED' AND escalated_at IS NULL THEN $10 ELSE escalated_at END,
                updated_at = $10
          WHERE id = $1",
    )
    .bind(before.id)
    .bind(to.as_str())
    .bind(outcome.map(|o| o.as_str()))
    .bind(reason.as_deref())
    .bind(reference)
    .bind(credited_at)
    .bind(next_check_at)
    .bind(actor)
    .bind(closed)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    event_tx(
        tx,
        before.id,
        now,
        actor,
        action,
        Some(before.status),
        to,
        note,
        detail,
    )
    .await?;
    let after = load_tx(tx, before.id).await?;
    if after.status != before.status {
        callback_tx(tx, &after, now).await?;
        if to == ComplaintStatus::Escalated {
            crate::metrics::complaint_escalated(&after.biller_id, after.kind.as_str());
        }
    }
    Ok(after)
}

/// Gives `order.payment_id`'s amount back (reversal before settlement,
/// return after), records the refund (UNIQUE per payment), in `tx`.
async fn refund_tx(
    tx: &mut Transaction<'_, Postgres>,
    order: &RefundOrder,
    now: DateTime<Utc>,
) -> StoreResult<RefundMade> {
    // Behind any close of the biller's date in progress (a close holds
    // 'settlement:'||biller for its whole transaction), and before any
    // close that starts now: a payment is either in a batch (a return) or
    // not (a reversal), never both.
    let biller: String = sqlx::query_scalar("SELECT biller_id FROM payments WHERE id = $1")
        .bind(order.payment_id.0)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("payment {}", order.payment_id)))?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('settlement:' || $1))")
        .bind(&biller)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    let p = super::payments::load_payment_tx(tx, order.payment_id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("payment {}", order.payment_id)))?;
    if let Some(existing) = refund_of_tx(tx, order.payment_id).await? {
        return Ok(RefundMade::Already(existing));
    }
    let way = refund_way(p.status).map_err(|why| {
        StoreError::Conflict(format!("payment {} cannot be refunded: {why}", p.id))
    })?;
    // A return's reason is at most 500 characters (payment_returns).
    let reason: String = format!("refund: {}", order.reason)
        .chars()
        .take(500)
        .collect();
    let (decided_by, maker, approver) = match &order.staff {
        Some((m, a)) => ("staff", Some(m.as_str()), Some(a.as_str())),
        None => ("rule", None, None),
    };
    // A reversal's journal is made first: the refund names it, and is
    // recorded before the payment becomes RETURNED (the guard checks it).
    let reversal = (way == RefundWay::Reversal)
        .then(|| Journal::payment_refunded(p.id, &p.channel_id, &p.biller_id, p.amount));
    if way == RefundWay::Return {
        super::settlement::record_return_tx(tx, p.id, &reason, now).await?;
    }
    let journal_id = match &reversal {
        Some(j) => j.id,
        None => sqlx::query_scalar::<_, Uuid>(
            "SELECT journal_id FROM payment_returns WHERE payment_id = $1",
        )
        .bind(p.id.0)
        .fetch_one(&mut **tx)
        .await
        .map_err(db_err)?,
    };
    sqlx::query(
        "INSERT INTO refunds (id, payment_id, complaint_id, channel_id, biller_id, amount, currency, how,
                              decided_by, maker, approver, reason, journal_id, business_date, refunded_at)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)",
    )
    .bind(Uuid::now_v7())
    .bind(p.id.0)
    .bind(order.complaint_id)
    .bind(p.channel_id.as_str())
    .bind(p.biller_id.as_str())
    .bind(p.amount.amount())
    .bind(p.amount.currency().code())
    .bind(way.as_str())
    .bind(decided_by)
    .bind(maker)
    .bind(approver)
    .bind(&order.reason)
    .bind(journal_id)
    .bind(order.business_date)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    if let Some(journal) = &reversal {
        let t = crate::domain::payment::transition(
            p.id,
            PaymentStatus::Confirmed,
            PaymentStatus::Returned,
            format!("refunded before settlement: {}", order.reason),
            now,
        )
        .map_err(|e| StoreError::Rejected(e.to_string()))?;
        super::payments::apply_transition_tx(tx, &t, None).await?;
        super::ledger::insert_journals(tx, &[journal]).await?;
        let event = crate::domain::dispatch::CallbackEvent::for_payment(
            &p,
            PaymentStatus::Returned,
            p.biller_reference.as_deref(),
            Some(&reason),
            now,
        );
        super::dispatch::enqueue_callback(tx, p.id, &event, now).await?;
    }
    let refund = refund_of_tx(tx, p.id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("the refund of payment {} just made", p.id)))?;
    Ok(RefundMade::Made { way, refund })
}

async fn refund_of_tx(
    tx: &mut Transaction<'_, Postgres>,
    payment: PaymentId,
) -> StoreResult<Option<RefundRecord>> {
    let row = sqlx::query(&format!(
        "SELECT {} FROM refunds r WHERE r.payment_id = $1",
        REFUND_COLUMNS
    ))
    .bind(payment.0)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(row.and_then(|r| row_to_refund(&r, "r_")))
}

const REFUND_COLUMNS: &str =
    "r.id AS r_id, r.payment_id AS r_payment_id, r.complaint_id AS r_complaint_id,
        r.channel_id AS r_channel_id, r.biller_id AS r_biller_id, r.amount AS r_amount,
        r.currency AS r_currency, r.how AS r_how, r.decided_by AS r_decided_by, r.maker AS r_maker,
        r.approver AS r_approver, r.reason AS r_reason, r.business_date AS r_business_date,
        r.refunded_at AS r_refunded_at";

/// Resolves `c` as refunded after `made` (either way), in `tx`.
async fn resolve_refunded_tx(
    tx: &mut Transaction<'_, Postgres>,
    c: &ComplaintRecord,
    made: &RefundMade,
    actor: &str,
    now: DateTime<Utc>,
) -> StoreResult<ComplaintRecord> {
    let (note, detail) = match made {
        RefundMade::Made { way, refund } => (
            format!(
                "refunded {} {} by {} of payment {}",
                refund.amount,
                refund.currency,
                way.as_str(),
                refund.payment_id
            ),
            json!({"refund_id": refund.id, "payment_id": refund.payment_id.to_string(), "how": way.as_str()}),
        ),
        RefundMade::Already(refund) => (
            format!(
                "payment {} was refunded already (refund {})",
                refund.payment_id, refund.id
            ),
            json!({"refund_id": refund.id, "payment_id": refund.payment_id.to_string(), "already": true}),
        ),
    };
    change_tx(
        tx,
        c,
        ComplaintStatus::Resolved,
        Some(&Outcome::Refunded),
        Some(&note),
        None,
        actor,
        "refund",
        &note,
        Some(detail),
        now,
    )
    .await
}

impl PgStore {
    /// What a refused complaint insert ran into: its key used before, or an
    /// open complaint of the same type on the payment.
    async fn register_conflict(
        &self,
        c: &NewComplaint,
        constraint: &str,
    ) -> StoreResult<RegisterOutcome> {
        if constraint == "complaints_channel_id_idempotency_key_key" {
            let row = sqlx::query(&format!(
                "{SELECT} WHERE c.channel_id = $1 AND c.idempotency_key = $2"
            ))
            .bind(c.channel_id.as_str())
            .bind(&c.idempotency_key)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
            return Ok(RegisterOutcome::KeyUsed(row_to_complaint(&row)?));
        }
        if constraint == "complaints_one_open" {
            let open: Option<Uuid> = sqlx::query_scalar(
                "SELECT id FROM complaints WHERE payment_id = $1 AND kind = $2
                        AND status NOT IN ('RESOLVED', 'REJECTED')",
            )
            .bind(c.payment_id.0)
            .bind(c.kind.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
            return match open {
                Some(id) => Ok(RegisterOutcome::OpenAlready(id)),
                // Closed meanwhile: the app may raise it again.
                None => Err(StoreError::Unavailable(
                    "the open complaint was closed meanwhile; retry".into(),
                )),
            };
        }
        Err(StoreError::Conflict(format!(
            "complaint refused by {constraint}"
        )))
    }
}

#[async_trait]
impl ComplaintStore for PgStore {
    async fn register_complaint(&self, c: &NewComplaint) -> StoreResult<RegisterOutcome> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let inserted = sqlx::query(
            "INSERT INTO complaints (id, channel_id, payment_id, biller_id, kind, description, status,
                                     idempotency_key, request_hash, registered_at, due_at, next_check_at, updated_at)
             VALUES ($1,$2,$3,$4,$5,$6,'OPEN',$7,$8,$9,$10,$9,$9)",
        )
        .bind(c.id)
        .bind(c.channel_id.as_str())
        .bind(c.payment_id.0)
        .bind(&c.biller_id)
        .bind(c.kind.as_str())
        .bind(&c.description)
        .bind(&c.idempotency_key)
        .bind(&c.request_hash[..])
        .bind(c.registered_at)
        .bind(c.due_at)
        .execute(&mut *tx)
        .await;
        if let Err(sqlx::Error::Database(d)) = &inserted {
            let constraint = d.constraint().unwrap_or_default().to_string();
            if constraint == "complaints_channel_id_idempotency_key_key"
                || constraint == "complaints_one_open"
            {
                tx.rollback().await.map_err(db_err)?;
                return self.register_conflict(c, &constraint).await;
            }
        }
        inserted.map_err(db_err)?;
        event_tx(
            &mut tx,
            c.id,
            c.registered_at,
            &format!("channel:{}", c.channel_id),
            "raise",
            None,
            ComplaintStatus::Open,
            &c.description,
            None,
        )
        .await?;
        let record = load_tx(&mut tx, c.id).await?;
        tx.commit().await.map_err(db_err)?;
        crate::metrics::complaint_raised(&c.biller_id, c.kind.as_str());
        Ok(RegisterOutcome::Registered(record))
    }
    async fn complaint_by_key(
        &self,
        channel: &ChannelId,
        key: &str,
    ) -> StoreResult<Option<ComplaintRecord>> {
        let row = sqlx::query(&format!(
            "{SELECT} WHERE c.channel_id = $1 AND c.idempotency_key = $2"
        ))
        .bind(channel.as_str())
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(row_to_complaint).transpose()
    }

    async fn complaint(&self, id: Uuid) -> StoreResult<Option<ComplaintRecord>> {
        let row = sqlx::query(&format!("{SELECT} WHERE c.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(row_to_complaint).transpose()
    }

    async fn complaints(&self, f: &ComplaintFilter) -> StoreResult<Vec<ComplaintRecord>> {
        let rows = sqlx::query(&format!(
            "{SELECT} WHERE ($1::text IS NULL OR c.channel_id = $1)
                AND ($2::text IS NULL OR c.status = $2)
                AND (NOT $3 OR c.status NOT IN ('RESOLVED', 'REJECTED'))
                AND ($4::timestamptz IS NULL OR c.registered_at >= $4)
                AND ($5::text IS NULL OR c.biller_id = $5)
                AND ($6::timestamptz IS NULL OR (c.registered_at, c.id) < ($6, $7::uuid))
              ORDER BY c.registered_at DESC, c.id DESC LIMIT $8"
        ))
        .bind(f.channel.as_deref())
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.open_only)
        .bind(f.since)
        .bind(f.biller.as_deref())
        .bind(f.before.map(|b| b.0))
        .bind(f.before.map(|b| b.1))
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(row_to_complaint).collect()
    }

    async fn complaint_events(&self, id: Uuid) -> StoreResult<Vec<ComplaintEvent>> {
        let rows = sqlx::query(
            "SELECT at, actor, action, from_status, to_status, note FROM complaint_events
              WHERE complaint_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| ComplaintEvent {
                at: r.get("at"),
                actor: r.get("actor"),
                action: r.get("action"),
                from_status: r.get("from_status"),
                to_status: r.get("to_status"),
                note: r.get("note"),
            })
            .collect())
    }

    async fn complaints_to_check(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<ComplaintRecord>> {
        let rows = sqlx::query(&format!(
            "{SELECT} WHERE c.next_check_at IS NOT NULL AND c.next_check_at <= $1
                AND c.status IN ('OPEN', 'PENDING_BILLER')
              ORDER BY c.next_check_at LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(row_to_complaint).collect()
    }

    async fn payment_evidence(&self, payment: PaymentId) -> StoreResult<Option<PaymentEvidence>> {
        let Some(row) = sqlx::query("SELECT * FROM payment_states WHERE id = $1")
            .bind(payment.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let p = super::payments::row_to_payment(&row)?;
        let refund = self.refund_of(payment).await?;
        let dups = sqlx::query(
            "SELECT p.id, p.created_at, r.payment_id IS NOT NULL AS refunded FROM payments p
               LEFT JOIN refunds r ON r.payment_id = p.id
              WHERE p.channel_id = $1 AND p.biller_id = $2 AND p.account_number = $3 AND p.amount = $4
                AND p.bill_reference IS NOT DISTINCT FROM $5 AND p.id <> $6
                AND (p.status IN ('CONFIRMED', 'SETTLED') OR r.payment_id IS NOT NULL)
                AND p.created_at BETWEEN $7 - interval '1 day' AND $7 + interval '1 day'
              ORDER BY p.created_at",
        )
        .bind(p.channel_id.as_str())
        .bind(p.biller_id.as_str())
        .bind(&p.account_number)
        .bind(p.amount.amount())
        .bind(&p.bill_reference)
        .bind(p.id.0)
        .bind(p.created_at)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let breaks = sqlx::query(
            "SELECT id, category FROM recon_breaks WHERE our_reference = $1
                AND status NOT IN ('resolved', 'written-off') ORDER BY id",
        )
        .bind(p.id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let recon_decision: Option<String> =
            sqlx::query_scalar("SELECT decision FROM recon_decisions WHERE payment_id = $1")
                .bind(p.id.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        let settled_in: Option<Uuid> = sqlx::query_scalar(
            "SELECT batch_id FROM settlement_items WHERE payment_id = $1 AND kind = 'payment' LIMIT 1",
        )
        .bind(p.id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(Some(PaymentEvidence {
            payment: p,
            refund,
            credited_duplicates: dups
                .iter()
                .map(|r| {
                    (
                        PaymentId(r.get("id")),
                        r.get("created_at"),
                        r.get("refunded"),
                    )
                })
                .collect(),
            breaks: breaks
                .iter()
                .map(|r| (r.get("id"), r.get("category")))
                .collect(),
            recon_decision,
            settled_in,
        }))
    }

    async fn complaint_machine_change(
        &self,
        id: Uuid,
        from: ComplaintStatus,
        change: &MachineChange,
        now: DateTime<Utc>,
    ) -> StoreResult<ComplaintRecord> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let before = load_tx(&mut tx, id).await?;
        if before.status != from {
            return Err(StoreError::Conflict(format!(
                "complaint {id} is {}, not {}",
                before.status.as_str(),
                from.as_str()
            )));
        }
        let after = change_tx(
            &mut tx,
            &before,
            change.to,
            change.outcome.as_ref(),
            change.reason.as_deref(),
            change.next_check_at,
            "system",
            "investigate",
            &change.note,
            Some(change.detail.clone()),
            now,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(after)
    }

    async fn complaint_refund(
        &self,
        order: &RefundOrder,
        from: ComplaintStatus,
        actor: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<(ComplaintRecord, RefundMade)> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let c = load_tx(&mut tx, order.complaint_id).await?;
        if c.status != from {
            return Err(StoreError::Conflict(format!(
                "complaint {} is {}, not {}",
                c.id,
                c.status.as_str(),
                from.as_str()
            )));
        }
        let made = refund_tx(&mut tx, order, now).await?;
        let after = resolve_refunded_tx(&mut tx, &c, &made, actor, now).await?;
        tx.commit().await.map_err(db_err)?;
        Ok((after, made))
    }

    async fn complaint_defer(&self, id: Uuid, until: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query(
            "UPDATE complaints SET next_check_at = $2
              WHERE id = $1 AND status IN ('OPEN', 'PENDING_BILLER') AND next_check_at IS NOT NULL",
        )
        .bind(id)
        .bind(until)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn escalate_due(&self, now: DateTime<Utc>) -> StoreResult<Vec<ComplaintRecord>> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM complaints WHERE due_at < $1
                AND status IN ('OPEN', 'INVESTIGATING', 'PENDING_BILLER')
              ORDER BY due_at LIMIT 500",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut out = Vec::new();
        for id in ids {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let before = load_tx(&mut tx, id).await?;
            if !matches!(
                before.status,
                ComplaintStatus::Open
                    | ComplaintStatus::Investigating
                    | ComplaintStatus::PendingBiller
            ) || before.due_at >= now
            {
                continue;
            }
            // The machine keeps asking the biller of an escalated one only
            // if staff ask it to.
            let after = change_tx(
                &mut tx,
                &before,
                ComplaintStatus::Escalated,
                None,
                None,
                None,
                "system",
                "escalate",
                &format!(
                    "not resolved by {} (its turn-around time)",
                    before.due_at.to_rfc3339()
                ),
                None,
                now,
            )
            .await?;
            tx.commit().await.map_err(db_err)?;
            out.push(after);
        }
        Ok(out)
    }

    async fn complaint_staff_action(
        &self,
        id: Uuid,
        actor: &str,
        is_approver: bool,
        action: &StaffAction,
        refund_date: NaiveDate,
        now: DateTime<Utc>,
    ) -> StoreResult<ComplaintRecord> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let before = load_tx(&mut tx, id).await?;
        let view = StaffView {
            status: before.status,
            proposed_by: before.proposed_by.clone(),
        };
        let effect =
            staff_effect(&view, actor, is_approver, action).map_err(StoreError::Conflict)?;
        let name = action.name();
        let after = match (effect, action) {
            (StaffEffect::Refund, _) => {
                let maker = before.proposed_by.clone().unwrap_or_default();
                let order = RefundOrder {
                    payment_id: before.payment_id,
                    complaint_id: id,
                    staff: Some((maker, actor.to_string())),
                    reason: before
                        .proposal_note
                        .clone()
                        .unwrap_or_else(|| "approved by staff".into()),
                    business_date: refund_date,
                };
                let made = refund_tx(&mut tx, &order, now).await?;
                sqlx::query("UPDATE complaints SET proposal = NULL WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                resolve_refunded_tx(&mut tx, &before, &made, actor, now).await?
            }
            (StaffEffect::MoveTo(to), StaffAction::Resolve { outcome }) => {
                let note = match outcome {
                    Outcome::Corrected { note } | Outcome::ConfirmedByStaff { note } => {
                        note.trim().to_string()
                    }
                    o => o.as_str().to_string(),
                };
                change_tx(
                    &mut tx,
                    &before,
                    to,
                    Some(outcome),
                    Some(&note),
                    None,
                    actor,
                    name,
                    &note,
                    None,
                    now,
                )
                .await?
            }
            (StaffEffect::MoveTo(to), StaffAction::Reject { reason }) => {
                change_tx(
                    &mut tx,
                    &before,
                    to,
                    None,
                    Some(reason.trim()),
                    None,
                    actor,
                    name,
                    reason.trim(),
                    None,
                    now,
                )
                .await?
            }
            (StaffEffect::MoveTo(to), _) => {
                // Investigate (owner) or ask the biller (the machine looks
                // again now).
                let next = (to == ComplaintStatus::PendingBiller).then_some(now);
                sqlx::query("UPDATE complaints SET owner = $2 WHERE id = $1")
                    .bind(id)
                    .bind(actor)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                change_tx(
                    &mut tx, &before, to, None, None, next, actor, name, "", None, now,
                )
                .await?
            }
            (StaffEffect::Stay, action) => {
                let (proposal, note): (Option<Option<serde_json::Value>>, String) = match action {
                    StaffAction::ProposeRefund { note } => (
                        Some(Some(
                            json!({"maker": actor, "note": note.trim(), "at": now}),
                        )),
                        note.trim().to_string(),
                    ),
                    StaffAction::DeclineRefund { reason } => {
                        (Some(None), reason.trim().to_string())
                    }
                    StaffAction::Comment { text } => (None, text.trim().to_string()),
                    _ => (None, String::new()),
                };
                sqlx::query(
                    "UPDATE complaints SET proposal = CASE WHEN $2 THEN $3 ELSE proposal END,
                            owner = coalesce(owner, $4), updated_at = $5 WHERE id = $1",
                )
                .bind(id)
                .bind(proposal.is_some())
                .bind(proposal.flatten())
                .bind(actor)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                event_tx(
                    &mut tx,
                    id,
                    now,
                    actor,
                    name,
                    Some(before.status),
                    before.status,
                    &note,
                    None,
                )
                .await?;
                load_tx(&mut tx, id).await?
            }
        };
        tx.commit().await.map_err(db_err)?;
        Ok(after)
    }

    async fn refund_of(&self, payment: PaymentId) -> StoreResult<Option<RefundRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds r WHERE r.payment_id = $1"
        ))
        .bind(payment.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.and_then(|r| row_to_refund(&r, "r_")))
    }

    async fn refunds_on(
        &self,
        channel: &ChannelId,
        date: NaiveDate,
    ) -> StoreResult<Vec<RefundRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds r WHERE r.channel_id = $1 AND r.business_date = $2
              ORDER BY r.refunded_at, r.id"
        ))
        .bind(channel.as_str())
        .bind(date)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows.iter().filter_map(|r| row_to_refund(r, "r_")).collect())
    }

    async fn refunds(&self, limit: i64) -> StoreResult<Vec<RefundRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds r ORDER BY r.refunded_at DESC, r.id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows.iter().filter_map(|r| row_to_refund(r, "r_")).collect())
    }

    async fn complaints_registered(
        &self,
        biller: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<ComplaintRecord>> {
        let rows = sqlx::query(&format!(
            "{SELECT} WHERE c.biller_id = $1 AND c.registered_at >= $2 AND c.registered_at < $3
              ORDER BY c.registered_at, c.id"
        ))
        .bind(biller)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(row_to_complaint).collect()
    }
}
