use async_trait::async_trait;
use rust_decimal::Decimal;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::{db_err, PgStore};
use crate::domain::ledger::{AccountSpec, Balance, Journal};
use crate::domain::money::Currency;
use crate::store::{LedgerAudit, LedgerStore, StoreError, StoreResult};

/// Inserts journals and their entries in one statement.
pub(super) async fn insert_journals(
    tx: &mut Transaction<'_, Postgres>,
    journals: &[&Journal],
) -> StoreResult<()> {
    if journals.is_empty() {
        return Ok(());
    }
    let n = journals.len();
    let (mut ids, mut kinds, mut resolves, mut payments, mut descs) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let m = n * 2;
    let (mut e_journal, mut e_code, mut e_currency, mut e_layer, mut e_side, mut e_amount) = (
        Vec::with_capacity(m),
        Vec::with_capacity(m),
        Vec::with_capacity(m),
        Vec::with_capacity(m),
        Vec::with_capacity(m),
        Vec::with_capacity(m),
    );
    for j in journals {
        ids.push(j.id);
        kinds.push(j.kind.as_str());
        resolves.push(j.resolves);
        payments.push(j.payment_id.map(|p| p.0));
        descs.push(j.description.as_str());
        for e in j.entries() {
            e_journal.push(j.id);
            e_code.push(e.account.as_str());
            e_currency.push(e.amount.currency().code());
            e_layer.push(e.layer.as_str());
            e_side.push(e.side.as_str());
            e_amount.push(e.amount.amount());
        }
    }
    let expected = e_journal.len() as u64;
    // One statement: the database checks, when it ends, that every new
    // journal has entries and that each journal's entries balance.
    let inserted = sqlx::query(
        "WITH journals AS (
             INSERT INTO ledger_journals AS lj (id, kind, resolves, payment_id, description)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::text[])
             RETURNING lj.id)
         INSERT INTO ledger_entries (journal_id, account_id, currency, layer, side, amount)
         SELECT u.journal_id, a.id, u.currency, u.layer, u.side, u.amount
         FROM UNNEST($6::uuid[], $7::text[], $8::text[], $9::text[], $10::text[], $11::numeric[])
              AS u(journal_id, code, currency, layer, side, amount)
         JOIN ledger_accounts a ON a.code = u.code
         WHERE u.journal_id IN (SELECT id FROM journals)",
    )
    .bind(&ids)
    .bind(&kinds)
    .bind(&resolves)
    .bind(&payments)
    .bind(&descs)
    .bind(&e_journal)
    .bind(&e_code)
    .bind(&e_currency)
    .bind(&e_layer)
    .bind(&e_side)
    .bind(&e_amount)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?
    .rows_affected();
    if inserted != expected {
        return Err(StoreError::Rejected(format!(
            "ledger account missing: {} of {expected} entries name an account that does not exist",
            expected - inserted
        )));
    }
    Ok(())
}

#[async_trait]
impl LedgerStore for PgStore {
    async fn ensure_accounts(&self, accounts: &[AccountSpec]) -> StoreResult<()> {
        if accounts.is_empty() {
            return Ok(());
        }
        let codes: Vec<&str> = accounts.iter().map(|a| a.code.as_str()).collect();
        let types: Vec<&str> = accounts.iter().map(|a| a.kind.as_str()).collect();
        let currencies: Vec<&str> = accounts.iter().map(|a| a.currency.code()).collect();
        let owner_kinds: Vec<&str> = accounts.iter().map(|a| a.owner.kind()).collect();
        let owner_ids: Vec<Option<&str>> = accounts.iter().map(|a| a.owner.id()).collect();
        sqlx::query(
            "INSERT INTO ledger_accounts (code, type, currency, owner_kind, owner_id)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) ORDER BY 1
             ON CONFLICT (code) DO NOTHING",
        )
        .bind(&codes)
        .bind(&types)
        .bind(&currencies)
        .bind(&owner_kinds)
        .bind(&owner_ids)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn balance(&self, account_code: &str) -> StoreResult<Option<Balance>> {
        let row = sqlx::query(
            "SELECT a.currency::text AS currency,
                coalesce(sum(e.amount) FILTER (WHERE e.layer = 'pending' AND e.side = 'debit'), 0) AS pd,
                coalesce(sum(e.amount) FILTER (WHERE e.layer = 'pending' AND e.side = 'credit'), 0) AS pc,
                coalesce(sum(e.amount) FILTER (WHERE e.layer = 'posted' AND e.side = 'debit'), 0) AS sd,
                coalesce(sum(e.amount) FILTER (WHERE e.layer = 'posted' AND e.side = 'credit'), 0) AS sc
             FROM ledger_accounts a LEFT JOIN ledger_entries e ON e.account_id = a.id
             WHERE a.code = $1 GROUP BY a.currency",
        )
        .bind(account_code)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| {
            let currency = Currency::from_code(r.get::<String, _>("currency").trim())
                .map_err(|e| StoreError::Rejected(e.to_string()))?;
            Ok(Balance {
                currency,
                pending_debits: r.get("pd"),
                pending_credits: r.get("pc"),
                posted_debits: r.get("sd"),
                posted_credits: r.get("sc"),
            })
        })
        .transpose()
    }

    async fn audit(&self) -> StoreResult<LedgerAudit> {
        // Set-based throughout (hash joins and aggregates): linear in the
        // size of the ledger, never a lookup per payment.
        let r = sqlx::query(
            "WITH per_journal AS (
                 SELECT journal_id, sum(n) AS n,
                        bool_and(balanced) AS balanced
                 FROM (SELECT journal_id, count(*) AS n,
                              sum(CASE WHEN side = 'debit' THEN amount ELSE -amount END) = 0 AS balanced
                       FROM ledger_entries GROUP BY journal_id, currency, layer) g
                 GROUP BY journal_id),
             pending AS (
                 SELECT j.payment_id, count(*) AS n, min(j.id::text) AS journal_id,
                        sum(e.debits) AS debits
                 FROM ledger_journals j
                 JOIN (SELECT journal_id, sum(amount) AS debits FROM ledger_entries
                       WHERE side = 'debit' GROUP BY journal_id) e ON e.journal_id = j.id
                 WHERE j.kind = 'pending' AND j.payment_id IS NOT NULL
                 GROUP BY j.payment_id)
             SELECT
               (SELECT count(*) FROM ledger_journals) AS journals,
               (SELECT count(*) FROM ledger_entries) AS entries,
               (SELECT count(*) FROM per_journal WHERE NOT balanced) AS unbalanced,
               (SELECT count(*) FROM ledger_journals j LEFT JOIN per_journal p ON p.journal_id = j.id
                 WHERE coalesce(p.n, 0) < 2) AS short,
               (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE side = 'debit') AS debits,
               (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE side = 'credit') AS credits,
               (SELECT count(*) FROM payments) AS payments,
               (SELECT count(*) FROM payments p LEFT JOIN pending q ON q.payment_id = p.id
                 WHERE q.n IS DISTINCT FROM 1 OR q.journal_id <> p.pending_journal_id::text
                    OR q.debits <> p.amount) AS bad_payments",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(LedgerAudit {
            journals: r.get("journals"),
            entries: r.get("entries"),
            unbalanced_journals: r.get("unbalanced"),
            short_journals: r.get("short"),
            total_debits: r.get::<Decimal, _>("debits"),
            total_credits: r.get::<Decimal, _>("credits"),
            payments: r.get("payments"),
            payments_without_exactly_one_transfer: r.get("bad_payments"),
        })
    }
}

/// Loads journals with their entries (two statements whatever their
/// number), by id; an id with no journal is absent from the map.
pub(super) async fn load_journals(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[Uuid],
) -> StoreResult<std::collections::HashMap<Uuid, Journal>> {
    use crate::domain::ids::PaymentId;
    use crate::domain::ledger::{Entry, JournalKind, Layer, Side};
    use crate::domain::money::Money;
    let heads = sqlx::query(
        "SELECT id, kind, resolves, payment_id, description FROM ledger_journals WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    let rows = sqlx::query(
        "SELECT e.journal_id, a.code, e.currency::text AS currency, e.layer, e.side, e.amount
         FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
         WHERE e.journal_id = ANY($1) ORDER BY e.journal_id, e.id",
    )
    .bind(ids)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    let mut entries: std::collections::HashMap<Uuid, Vec<Entry>> = Default::default();
    for r in &rows {
        let id: Uuid = r.get("journal_id");
        let bad = |s: String| StoreError::Rejected(format!("journal {id}: {s}"));
        let currency = Currency::from_code(r.get::<String, _>("currency").trim())
            .map_err(|e| bad(e.to_string()))?;
        entries.entry(id).or_default().push(Entry {
            account: r.get("code"),
            layer: if r.get::<String, _>("layer") == "pending" {
                Layer::Pending
            } else {
                Layer::Posted
            },
            side: if r.get::<String, _>("side") == "debit" {
                Side::Debit
            } else {
                Side::Credit
            },
            amount: Money::new(r.get("amount"), currency).map_err(|e| bad(e.to_string()))?,
        });
    }
    let mut out = std::collections::HashMap::with_capacity(heads.len());
    for head in heads {
        let id: Uuid = head.get("id");
        let kind = match head.get::<String, _>("kind").as_str() {
            "pending" => JournalKind::Pending,
            "post" => JournalKind::Post,
            "void" => JournalKind::Void,
            _ => JournalKind::Posted,
        };
        let journal = Journal::restore(
            id,
            kind,
            head.get("resolves"),
            head.get::<Option<Uuid>, _>("payment_id").map(PaymentId),
            head.get("description"),
            entries.remove(&id).unwrap_or_default(),
        )
        .map_err(|e| StoreError::Rejected(format!("journal {id}: {e}")))?;
        out.insert(id, journal);
    }
    Ok(out)
}
