use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::Row;
use uuid::Uuid;

use super::ledger::{insert_journals, load_journals};
use super::{db_err, PgStore};
use crate::domain::ids::{BillerId, ChannelId, PaymentId};
use crate::domain::money::{Currency, Money};
use crate::domain::payment::{LedgerEffect, Payment, PaymentStatus, Transition};
use crate::store::{
    AcceptItem, AcceptOutcome, IdempotencyRecord, PaymentEvent, PaymentStore, StoreError,
    StoreResult,
};

/// Indexes of `items` whose value (by `key`) did not appear earlier in the
/// batch; later duplicates are returned separately.
fn first_occurrences<K: std::hash::Hash + Eq>(
    idx: &[usize],
    key: impl Fn(usize) -> K,
) -> (Vec<usize>, Vec<usize>) {
    let mut seen = HashSet::new();
    idx.iter().partition(|&&i| seen.insert(key(i)))
}

/// In-batch duplicates never reach the database: a second use of a nonce
/// is a replay, a second use of a key waits for the first's record. Returns
/// each item's outcome where already decided, and the items left to accept.
fn screen_in_batch(items: &[AcceptItem]) -> (Vec<Option<AcceptOutcome>>, Vec<usize>) {
    let mut outcome: Vec<Option<AcceptOutcome>> = vec![None; items.len()];
    let all: Vec<usize> = (0..items.len()).collect();
    let (with_nonce, recorded): (Vec<usize>, Vec<usize>) =
        all.iter().partition(|&&i| items[i].nonce.is_some());
    let (mut live, dup) = first_occurrences(&with_nonce, |i| (&items[i].key_id, &items[i].nonce));
    dup.iter()
        .for_each(|&i| outcome[i] = Some(AcceptOutcome::NonceReused));
    live.extend(recorded);
    let (live, dup) = first_occurrences(&live, |i| {
        (&items[i].request.channel_id, &items[i].idempotency_key)
    });
    dup.iter()
        .for_each(|&i| outcome[i] = Some(AcceptOutcome::KeyTaken));
    (outcome, live)
}

/// The journal entries of the items, as the array columns
/// `billclear_accept_payments` takes them.
#[derive(Default)]
struct EntryColumns<'a> {
    journal: Vec<Uuid>,
    code: Vec<&'a str>,
    currency: Vec<&'a str>,
    layer: Vec<&'a str>,
    side: Vec<&'a str>,
    amount: Vec<Decimal>,
}

impl<'a> EntryColumns<'a> {
    fn of(items: &'a [AcceptItem], live: &[usize]) -> Self {
        let mut c = EntryColumns::default();
        for &i in live {
            let j = &items[i].journal;
            for e in j.entries() {
                c.journal.push(j.id);
                c.code.push(e.account.as_str());
                c.currency.push(e.amount.currency().code());
                c.layer.push(e.layer.as_str());
                c.side.push(e.side.as_str());
                c.amount.push(e.amount.amount());
            }
        }
        c
    }
}

/// Accepts the `live` items with one statement in autocommit (one
/// transaction, one round trip); returns what it said of each payment id.
async fn accept_live(
    pool: &sqlx::PgPool,
    items: &[AcceptItem],
    live: &[usize],
) -> StoreResult<HashMap<Uuid, String>> {
    // Columns borrow from the items: nothing is copied to bind them.
    type Opt = for<'a> fn(&'a AcceptItem) -> Option<&'a str>;
    type Str = for<'a> fn(&'a AcceptItem) -> &'a str;
    let it = |f: Opt| {
        live.iter()
            .map(|&i| f(&items[i]))
            .collect::<Vec<Option<&str>>>()
    };
    let s = |f: Str| live.iter().map(|&i| f(&items[i])).collect::<Vec<&str>>();
    let e = EntryColumns::of(items, live);
    let rows = sqlx::query(
        "SELECT payment_id, outcome FROM billclear_accept_payments(
            $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
            $18, $19, $20, $21, $22, $23)",
    )
    .bind(
        live.iter()
            .map(|&i| items[i].payment_id.0)
            .collect::<Vec<Uuid>>(),
    )
    .bind(s(|x| x.request.channel_id.as_str()))
    .bind(s(|x| &x.key_id))
    .bind(it(|x| x.nonce.as_deref()))
    .bind(s(|x| &x.idempotency_key))
    .bind(
        live.iter()
            .map(|&i| items[i].fingerprint.to_vec())
            .collect::<Vec<_>>(),
    )
    .bind(
        live.iter()
            .map(|&i| items[i].response_status as i16)
            .collect::<Vec<_>>(),
    )
    .bind(s(|x| &x.response_body))
    .bind(s(|x| &x.request.channel_reference))
    .bind(s(|x| x.request.biller_id.as_str()))
    .bind(s(|x| &x.request.account_number))
    .bind(it(|x| x.request.bill_reference.as_deref()))
    .bind(
        live.iter()
            .map(|&i| items[i].request.amount.amount())
            .collect::<Vec<Decimal>>(),
    )
    .bind(
        live.iter()
            .map(|&i| items[i].request.amount.currency().code())
            .collect::<Vec<_>>(),
    )
    .bind(
        live.iter()
            .map(|&i| items[i].journal.id)
            .collect::<Vec<Uuid>>(),
    )
    .bind(s(|x| &x.journal.description))
    .bind(
        live.iter()
            .map(|&i| items[i].received_at)
            .collect::<Vec<DateTime<Utc>>>(),
    )
    .bind(&e.journal)
    .bind(&e.code)
    .bind(&e.currency)
    .bind(&e.layer)
    .bind(&e.side)
    .bind(&e.amount)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The outcome `billclear_accept_payments` gave a payment.
fn accept_outcome(said: Option<&str>, payment: PaymentId) -> StoreResult<AcceptOutcome> {
    match said {
        Some("accepted") => Ok(AcceptOutcome::Accepted),
        Some("nonce_reused") => Ok(AcceptOutcome::NonceReused),
        Some("key_taken") => Ok(AcceptOutcome::KeyTaken),
        Some("duplicate_reference") => Ok(AcceptOutcome::DuplicateChannelReference),
        other => Err(StoreError::Rejected(format!(
            "accept_payments returned {other:?} for payment {payment}"
        ))),
    }
}

#[async_trait]
impl PaymentStore for PgStore {
    async fn accept_payments(&self, items: &[AcceptItem]) -> StoreResult<Vec<AcceptOutcome>> {
        let (mut outcome, live) = screen_in_batch(items);
        let by_id = accept_live(&self.pool, items, &live).await?;
        for &i in &live {
            let said = by_id.get(&items[i].payment_id.0).map(String::as_str);
            outcome[i] = Some(accept_outcome(said, items[i].payment_id)?);
        }
        Ok(outcome
            .into_iter()
            .map(|o| o.expect("every item has an outcome"))
            .collect())
    }

    async fn idempotency_record(
        &self,
        channel: &ChannelId,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        let row = sqlx::query(
            "SELECT request_hash, payment_id, response_status, response_body AS body
             FROM idempotency_keys WHERE channel_id = $1 AND key = $2",
        )
        .bind(channel.as_str())
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.map(|r| IdempotencyRecord {
            request_hash: r.get("request_hash"),
            payment_id: PaymentId(r.get("payment_id")),
            response_status: r.get::<i16, _>("response_status") as u16,
            response_body: r.get("body"),
        }))
    }

    async fn payment(&self, channel: &ChannelId, id: PaymentId) -> StoreResult<Option<Payment>> {
        let row = sqlx::query("SELECT * FROM payment_states WHERE id = $1 AND channel_id = $2")
            .bind(id.0)
            .bind(channel.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(row_to_payment).transpose()
    }

    async fn payment_by_reference(
        &self,
        channel: &ChannelId,
        reference: &str,
    ) -> StoreResult<Option<Payment>> {
        let row = sqlx::query(
            "SELECT * FROM payment_states WHERE channel_id = $1 AND channel_reference = $2",
        )
        .bind(channel.as_str())
        .bind(reference)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(row_to_payment).transpose()
    }

    async fn apply_transition(&self, t: &Transition) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        apply_transition_tx(&mut tx, t, None).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn payment_events(&self, id: PaymentId) -> StoreResult<Vec<PaymentEvent>> {
        let rows = sqlx::query("SELECT from_status, to_status, reason, at FROM payment_history WHERE payment_id = $1 ORDER BY phase, seq")
            .bind(id.0)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let status = |s: String| {
                    PaymentStatus::parse(&s)
                        .ok_or_else(|| StoreError::Rejected(format!("bad status {s}")))
                };
                Ok(PaymentEvent {
                    from: r
                        .get::<Option<String>, _>("from_status")
                        .map(status)
                        .transpose()?,
                    to: status(r.get("to_status"))?,
                    reason: r.get("reason"),
                    at: r.get("at"),
                })
            })
            .collect()
    }
}

/// A payment read inside `tx`, its row locked.
pub(super) async fn load_payment_tx(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: PaymentId,
) -> StoreResult<Option<Payment>> {
    let row = sqlx::query("SELECT * FROM payment_states WHERE id = $1 FOR UPDATE")
        .bind(id.0)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
    row.as_ref().map(row_to_payment).transpose()
}

pub(super) fn row_to_payment(r: &sqlx::postgres::PgRow) -> StoreResult<Payment> {
    let bad = |s: String| StoreError::Rejected(format!("stored payment: {s}"));
    let currency = Currency::from_code(r.get::<String, _>("currency").trim())
        .map_err(|e| bad(e.to_string()))?;
    Ok(Payment {
        id: PaymentId(r.get("id")),
        channel_id: ChannelId::parse(&r.get::<String, _>("channel_id"))
            .map_err(|e| bad(e.to_string()))?,
        channel_reference: r.get("channel_reference"),
        biller_id: BillerId::parse(&r.get::<String, _>("biller_id"))
            .map_err(|e| bad(e.to_string()))?,
        account_number: r.get("account_number"),
        bill_reference: r.get("bill_reference"),
        amount: Money::new(r.get("amount"), currency).map_err(|e| bad(e.to_string()))?,
        status: PaymentStatus::parse(&r.get::<String, _>("status"))
            .ok_or_else(|| bad("status".into()))?,
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        connector_id: r.get("connector_id"),
        biller_reference: r.get("biller_reference"),
        confirmed_at: r.get("confirmed_at"),
    })
}

/// Applies a decided transition inside `tx`: the status (checked to still be
/// `t.from`: Conflict otherwise), its event, its ledger effect (post or void
/// the pending journal) and, for a confirmation, the biller's reference and
/// credit time.
pub(super) async fn apply_transition_tx(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    t: &Transition,
    credit: Option<(&str, DateTime<Utc>)>,
) -> StoreResult<()> {
    let pending = lock_for_transitions(tx, &[t]).await?.remove(0)?;
    write_transitions(tx, &[Checked { t, credit, pending }]).await
}

/// A transition whose payment is locked and still in its `from` state.
pub(super) struct Checked<'a> {
    pub t: &'a Transition,
    /// The biller's reference and credit time (with a confirmation).
    pub credit: Option<(&'a str, DateTime<Utc>)>,
    /// The payment's pending journal.
    pub pending: uuid::Uuid,
}

/// Locks the payments of `ts` (in id order, one statement) and checks that
/// each is still in its transition's `from` state: per transition, the
/// payment's pending journal, or Conflict (moved since) or NotFound.
pub(super) async fn lock_for_transitions(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    ts: &[&Transition],
) -> StoreResult<Vec<StoreResult<uuid::Uuid>>> {
    let ids: Vec<uuid::Uuid> = ts.iter().map(|t| t.payment_id.0).collect();
    let rows = sqlx::query(
        "SELECT id, status, pending_journal_id FROM payment_states WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    let found: std::collections::HashMap<uuid::Uuid, (String, uuid::Uuid)> = rows
        .iter()
        .map(|r| (r.get("id"), (r.get("status"), r.get("pending_journal_id"))))
        .collect();
    Ok(ts
        .iter()
        .map(|t| match found.get(&t.payment_id.0) {
            None => Err(StoreError::NotFound(format!("payment {}", t.payment_id))),
            Some((current, _)) if current != t.from.as_str() => Err(StoreError::Conflict(format!(
                "payment {} is {current}, not {}",
                t.payment_id,
                t.from.as_str()
            ))),
            Some((_, pending)) => Ok(*pending),
        })
        .collect())
}

/// Writes checked transitions, set-based: statuses (with a confirmation's
/// reference and credit time), events, and the ledger effects (each
/// pending journal posted or voided) in one statement each.
pub(super) async fn write_transitions(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    items: &[Checked<'_>],
) -> StoreResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let ids: Vec<uuid::Uuid> = items.iter().map(|c| c.t.payment_id.0).collect();
    let from: Vec<&str> = items.iter().map(|c| c.t.from.as_str()).collect();
    let to: Vec<&str> = items.iter().map(|c| c.t.to.as_str()).collect();
    let at: Vec<DateTime<Utc>> = items.iter().map(|c| c.t.at).collect();
    let reason: Vec<&str> = items.iter().map(|c| c.t.reason.as_str()).collect();
    let reference: Vec<Option<&str>> = items.iter().map(|c| c.credit.map(|c| c.0)).collect();
    let credited: Vec<Option<DateTime<Utc>>> =
        items.iter().map(|c| c.credit.map(|c| c.1)).collect();
    sqlx::query(
        "UPDATE payments p SET status = u.to_status, updated_at = u.at,
                biller_reference = coalesce(u.reference, p.biller_reference),
                confirmed_at = coalesce(u.credited_at, p.confirmed_at)
           FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::timestamptz[])
                AS u(id, to_status, at, reference, credited_at)
          WHERE p.id = u.id",
    )
    .bind(&ids)
    .bind(&to)
    .bind(&at)
    .bind(&reference)
    .bind(&credited)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    sqlx::query(
        "INSERT INTO payment_events (payment_id, from_status, to_status, reason, at)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])",
    )
    .bind(&ids)
    .bind(&from)
    .bind(&to)
    .bind(&reason)
    .bind(&at)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    let effects: Vec<&Checked> = items
        .iter()
        .filter(|c| c.t.ledger != LedgerEffect::None)
        .collect();
    if effects.is_empty() {
        return Ok(());
    }
    let journal_ids: Vec<uuid::Uuid> = effects.iter().map(|c| c.pending).collect();
    let mut pending = load_journals(tx, &journal_ids).await?;
    let mut resolutions = Vec::with_capacity(effects.len());
    for c in effects {
        let t = c.t;
        let journal = pending
            .remove(&c.pending)
            .ok_or_else(|| StoreError::NotFound(format!("journal {}", c.pending)))?;
        let description = format!("payment {} {}", t.payment_id, t.reason);
        let resolution = match t.ledger {
            LedgerEffect::PostPending => journal.post(description),
            _ => journal.void(description),
        }
        .map_err(|e| StoreError::Rejected(e.to_string()))?;
        resolutions.push(resolution);
    }
    let refs: Vec<&crate::domain::ledger::Journal> = resolutions.iter().collect();
    insert_journals(tx, &refs).await
}
