//! Our bank accounts in PostgreSQL: statements, each entry once (by any of
//! its keys), funding and payouts booked per entry, and the bank's
//! position beside the ledger's.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

use super::ledger::insert_journals;
use super::recon::{insert_file_tx, money_of, to_minor};
use super::{db_err, PgStore};
use crate::domain::ledger::{AccountSpec, Journal};
use crate::domain::money::Currency;
use crate::domain::recon::matching::{minor_in, minor_to_string, scale_of};
use crate::domain::recon::statement::{mask_account, ChainLink, MessageKind};
use crate::store::bank::{
    AccountPosition, BankEntryRow, BankImportCounts, BankPosition, BankStatementRow, BankStore,
    NewBankEntry, NewBankStatement,
};
use crate::store::recon::{ImportOutcome, NewReconFile};
use crate::store::{StoreError, StoreResult};

fn kind_of(s: &str) -> StoreResult<MessageKind> {
    match s {
        "statement" => Ok(MessageKind::Statement),
        "notification" => Ok(MessageKind::Notification),
        other => Err(StoreError::Rejected(format!(
            "stored statement kind {other}"
        ))),
    }
}

fn row_to_statement(r: &PgRow) -> StoreResult<BankStatementRow> {
    let kind = kind_of(r.get::<String, _>("kind").as_str())?;
    let opening: Option<i64> = r.get("opening_minor");
    let closing: Option<i64> = r.get("closing_minor");
    let business_date: NaiveDate = r.get("business_date");
    let link = match (opening, closing) {
        (Some(opening_minor), Some(closing_minor)) => Some(ChainLink {
            statement_id: r.get("statement_id"),
            sequence: r.get("sequence"),
            page: r.get("page"),
            business_date,
            from_date: r.get("from_date"),
            opening_minor,
            opening_date: r
                .get::<Option<NaiveDate>, _>("opening_date")
                .unwrap_or(business_date),
            closing_minor,
            closing_date: r
                .get::<Option<NaiveDate>, _>("closing_date")
                .unwrap_or(business_date),
        }),
        _ => None,
    };
    Ok(BankStatementRow {
        id: r.get("id"),
        account: r.get("account"),
        kind,
        format: r.get("format"),
        currency: r.get::<String, _>("currency").trim().to_string(),
        link,
        business_date,
        file_id: r.get("file_id"),
        pending: r.get("pending"),
    })
}

fn row_to_entry(r: &PgRow) -> BankEntryRow {
    BankEntryRow {
        id: r.get("id"),
        account: r.get("account"),
        rule: r.get("rule"),
        identity: r.get("identity"),
        currency: r.get::<String, _>("currency").trim().to_string(),
        amount_minor: r.get("amount_minor"),
        credit: r.get("credit"),
        status: r.get("status"),
        booking_date: r.get("booking_date"),
        bank_reference: r.get("bank_reference"),
        end_to_end_id: r.get("end_to_end_id"),
        remittance: r.get("remittance"),
        statement_id: r.get("statement_id"),
        position: r.get("position"),
        file_id: r.get("file_id"),
    }
}

fn show(minor: i64, currency: &str, credit: bool) -> String {
    format!(
        "{} {} {}",
        if credit { "credit" } else { "debit" },
        minor_in(minor, currency),
        currency.trim()
    )
}

/// A known entry as [`find_entry`] finds it: (id, amount, credit, currency,
/// file it was first seen in, booking date).
type FoundEntry = (i64, i64, bool, String, i64, NaiveDate);

/// The entry a key (or, across kinds of message, its content) names:
/// (id, amount, credit, currency, file it was first seen in, booking date).
async fn find_entry(
    tx: &mut Transaction<'_, Postgres>,
    account: &str,
    kind: MessageKind,
    e: &NewBankEntry,
) -> StoreResult<Option<FoundEntry>> {
    let by_key = sqlx::query(
        "SELECT e.id, e.amount_minor, e.credit, e.currency::text AS currency, s.file_id, e.booking_date
           FROM bank_entry_keys k JOIN bank_entries e ON e.id = k.entry_id
           JOIN bank_statements s ON s.id = e.statement_id
          WHERE k.account = $1 AND k.key = $2",
    )
    .bind(account)
    .bind(&e.keys.primary)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?;
    if let Some(r) = by_key {
        return Ok(Some((
            r.get("id"),
            r.get("amount_minor"),
            r.get("credit"),
            r.get("currency"),
            r.get("file_id"),
            r.get("booking_date"),
        )));
    }
    // The same entry seen on a message of the other kind (a notification,
    // then the day's statement) when the bank gave it no common reference:
    // its content and occurrence, never two bank references that differ,
    // and each entry taken once per kind.
    let by_content = sqlx::query(
        "SELECT e.id, s.file_id FROM bank_entries e JOIN bank_statements s ON s.id = e.statement_id
          WHERE e.account = $1 AND e.content_key = $2
            AND ($3::text IS NULL OR e.bank_reference IS NULL OR e.bank_reference = $3)
            AND NOT EXISTS (SELECT 1 FROM bank_entry_keys k WHERE k.entry_id = e.id AND k.kind = $4)
          ORDER BY e.id LIMIT 1",
    )
    .bind(account)
    .bind(&e.keys.content)
    .bind(&e.bank_reference)
    .bind(kind.as_str())
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?;
    let Some(r) = by_content else {
        return Ok(None);
    };
    let id: i64 = r.get("id");
    sqlx::query("INSERT INTO bank_entry_keys (account, key, entry_id, kind) VALUES ($1,$2,$3,$4)")
        .bind(account)
        .bind(&e.keys.primary)
        .bind(id)
        .bind(kind.as_str())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(Some((
        id,
        e.amount_minor,
        e.credit,
        e.currency.clone(),
        r.get("file_id"),
        e.booking_date,
    )))
}

/// Records one statement of a file; returns (new statement?, booked, known).
async fn record_statement(
    tx: &mut Transaction<'_, Postgres>,
    file_id: i64,
    st: &NewBankStatement,
    now: DateTime<Utc>,
) -> StoreResult<(bool, u64, u64)> {
    let existing =
        sqlx::query("SELECT * FROM bank_statements WHERE account = $1 AND identity = $2")
            .bind(&st.account)
            .bind(&st.identity)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?;
    let (statement_row, new) = match &existing {
        Some(r) => (r.get::<i64, _>("id"), false),
        None => (insert_statement(tx, file_id, st, now).await?, true),
    };
    let (booked, known) = record_entries(tx, st, statement_row, now).await?;
    if let Some(r) = &existing {
        // The same statement again: its balances must be the ones received.
        if let Some(refusal) = changed_balances(st, r) {
            return Err(StoreError::Conflict(refusal));
        }
    }
    sqlx::query(
        "INSERT INTO bank_statement_receipts (statement_id, file_id, new_entries, known_entries)
         VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING",
    )
    .bind(statement_row)
    .bind(file_id)
    .bind(booked as i32)
    .bind(known as i32)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok((new, booked, known))
}

/// Writes a statement not received before; returns its row id.
async fn insert_statement(
    tx: &mut Transaction<'_, Postgres>,
    file_id: i64,
    st: &NewBankStatement,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    let p = st.proof;
    sqlx::query_scalar(
        "INSERT INTO bank_statements (account, identity, kind, format, statement_id, sequence, page,
                currency, business_date, from_date, opening_minor, opening_date, credits_minor,
                debits_minor, closing_minor, closing_date, entries, file_id, recorded_at, pending)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20) RETURNING id",
    )
    .bind(&st.account)
    .bind(&st.identity)
    .bind(st.kind.as_str())
    .bind(&st.format)
    .bind(&st.statement_id)
    .bind(st.sequence)
    .bind(&st.page)
    .bind(&st.currency)
    .bind(st.business_date)
    .bind(st.from_date)
    .bind(p.map(|p| p.opening_minor))
    .bind(p.map(|p| p.opening_date))
    .bind(p.map(|p| p.credits_minor))
    .bind(p.map(|p| p.debits_minor))
    .bind(p.map(|p| p.closing_minor))
    .bind(p.map(|p| p.closing_date))
    .bind(st.entries.len() as i32)
    .bind(file_id)
    .bind(now)
    .bind(st.pending as i32)
    .fetch_one(&mut **tx)
    .await
    .map_err(db_err)
}

/// Books each entry of a statement that is not known yet (by any of its
/// keys) and refuses one known with other figures; returns (booked, known).
async fn record_entries(
    tx: &mut Transaction<'_, Postgres>,
    st: &NewBankStatement,
    statement_row: i64,
    now: DateTime<Utc>,
) -> StoreResult<(u64, u64)> {
    let (mut booked, mut known) = (0u64, 0u64);
    for e in &st.entries {
        match find_entry(tx, &st.account, st.kind, e).await? {
            Some(found) => {
                if let Some(refusal) = changed_entry(e, &found) {
                    return Err(StoreError::Conflict(refusal));
                }
                known += 1;
            }
            None => {
                insert_entry(tx, st, statement_row, e, now).await?;
                booked += 1;
            }
        }
    }
    Ok((booked, known))
}

/// Why an entry known before cannot be this one: another amount,
/// direction, currency or booking date under the same identity (a changed
/// entry, or a bank reference used again for another entry). Refused,
/// never merged.
fn changed_entry(e: &NewBankEntry, found: &FoundEntry) -> Option<String> {
    let (id, amount, credit, currency, first_file, booked_on) = found;
    let same = *amount == e.amount_minor
        && *credit == e.credit
        && currency.trim() == e.currency
        && *booked_on == e.booking_date;
    (!same).then(|| {
        format!(
            "{}: this entry was booked before as a {} on {booked_on} (bank entry #{id}, file #{first_file}); this file says {} on {}: a statement that changes a booked entry is refused",
            e.location,
            show(*amount, currency, *credit),
            show(e.amount_minor, &e.currency, e.credit),
            e.booking_date,
        )
    })
}

/// Why a statement received before cannot be received again with these
/// balances (its opening or closing balance differs).
fn changed_balances(st: &NewBankStatement, before: &PgRow) -> Option<String> {
    let was = (
        before.get::<Option<i64>, _>("opening_minor"),
        before.get::<Option<i64>, _>("closing_minor"),
    );
    let now_says = (
        st.proof.map(|p| p.opening_minor),
        st.proof.map(|p| p.closing_minor),
    );
    if was == now_says {
        return None;
    }
    let scale = scale_of(&st.currency);
    let fmt = |(o, c): (Option<i64>, Option<i64>)| {
        format!(
            "opening {} closing {}",
            o.map(|m| minor_to_string(m, scale)).unwrap_or("-".into()),
            c.map(|m| minor_to_string(m, scale)).unwrap_or("-".into())
        )
    };
    Some(format!(
        "{}: statement {} of account {} was received before (file #{}) with {} {}; this file says {}: refused",
        st.location,
        st.statement_id,
        mask_account(&st.account),
        before.get::<i64, _>("file_id"),
        fmt(was),
        st.currency,
        fmt(now_says)
    ))
}

/// Books a new entry of a statement and its key.
async fn insert_entry(
    tx: &mut Transaction<'_, Postgres>,
    st: &NewBankStatement,
    statement_row: i64,
    e: &NewBankEntry,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO bank_entries (account, rule, identity, content_key, currency, amount_minor,
                credit, status, booking_date, value_date, bank_reference, end_to_end_id,
                remittance, statement_id, position, recorded_at)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16) RETURNING id",
    )
    .bind(&st.account)
    .bind(e.keys.rule.as_str())
    .bind(&e.keys.primary)
    .bind(&e.keys.content)
    .bind(&e.currency)
    .bind(e.amount_minor)
    .bind(e.credit)
    .bind(&e.status)
    .bind(e.booking_date)
    .bind(e.value_date)
    .bind(&e.bank_reference)
    .bind(&e.end_to_end_id)
    .bind(&e.remittance)
    .bind(statement_row)
    .bind(e.position as i32)
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .map_err(db_err)?;
    sqlx::query("INSERT INTO bank_entry_keys (account, key, entry_id, kind) VALUES ($1,$2,$3,$4)")
        .bind(&st.account)
        .bind(&e.keys.primary)
        .bind(id)
        .bind(st.kind.as_str())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

const ENTRY_COLUMNS: &str =
    "e.id, e.account, e.rule, e.identity, e.currency::text AS currency, e.amount_minor,
     e.credit, e.status, e.booking_date, e.bank_reference, e.end_to_end_id, e.remittance,
     e.statement_id, e.position, s.file_id";

/// `lower(end_to_end_id)` of a batch's payout: `bce` + its 32 hex digits.
const BATCH_E2E: &str = "'bce' || replace(b.id::text, '-', '')";

#[async_trait]
impl BankStore for PgStore {
    async fn record_bank_file(
        &self,
        file: &NewReconFile,
        statements: &[NewBankStatement],
    ) -> StoreResult<(ImportOutcome, BankImportCounts)> {
        let mut counts = BankImportCounts {
            statements: statements.len() as u64,
            balances_proven: statements.iter().filter(|s| s.proof.is_some()).count() as u64,
            entries: statements.iter().map(|s| s.entries.len() as u64).sum(),
            entries_pending: statements.iter().map(|s| u64::from(s.pending)).sum(),
            ..Default::default()
        };
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // One import per account at a time: "seen before" is decided under
        // the lock, and the keys' unique constraints are the last word.
        let mut accounts: Vec<&str> = statements.iter().map(|s| s.account.as_str()).collect();
        accounts.sort_unstable();
        accounts.dedup();
        for a in accounts {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('bank_account:' || $1))")
                .bind(a)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let outcome = insert_file_tx(&mut tx, file).await?;
        let file_id = match outcome {
            ImportOutcome::AlreadyImported { .. } => {
                counts.entries_already_known = counts.entries;
                return Ok((outcome, counts));
            }
            ImportOutcome::Imported { id, .. } => id,
        };
        for st in statements {
            let (new, booked, known) =
                record_statement(&mut tx, file_id, st, file.imported_at).await?;
            counts.statements_new += u64::from(new);
            counts.entries_booked += booked;
            counts.entries_already_known += known;
        }
        tx.commit().await.map_err(db_err)?;
        Ok((outcome, counts))
    }

    async fn bank_entries_on(&self, date: NaiveDate) -> StoreResult<Vec<BankEntryRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM bank_entries e JOIN bank_statements s ON s.id = e.statement_id
              WHERE e.booking_date = $1 ORDER BY e.id"
        ))
        .bind(date)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows.iter().map(row_to_entry).collect())
    }

    async fn bank_statements_on(&self, date: NaiveDate) -> StoreResult<Vec<BankStatementRow>> {
        sqlx::query(
            "SELECT * FROM bank_statements WHERE kind = 'statement' AND business_date = $1
              ORDER BY account, sequence NULLS LAST, page NULLS FIRST, id",
        )
        .bind(date)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(row_to_statement)
        .collect()
    }

    async fn previous_statement(
        &self,
        this: &BankStatementRow,
    ) -> StoreResult<Option<BankStatementRow>> {
        let seq = this.link.as_ref().and_then(|l| l.sequence);
        let page = this.link.as_ref().and_then(|l| l.page.clone());
        let row = match seq {
            // By number (pages of one number in page order).
            Some(n) => sqlx::query(
                "SELECT * FROM bank_statements
                  WHERE kind = 'statement' AND account = $1 AND id <> $2 AND sequence IS NOT NULL
                    AND (sequence < $3 OR (sequence = $3 AND $4::text IS NOT NULL AND page IS NOT NULL
                         AND lpad(page, 10, '0') < lpad($4, 10, '0')))
                  ORDER BY sequence DESC, lpad(coalesce(page, ''), 10, '0') DESC, id DESC LIMIT 1",
            )
            .bind(&this.account)
            .bind(this.id)
            .bind(n)
            .bind(&page)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?,
            None => sqlx::query(
                "SELECT * FROM bank_statements
                  WHERE kind = 'statement' AND account = $1 AND id <> $2 AND business_date < $3
                  ORDER BY business_date DESC, id DESC LIMIT 1",
            )
            .bind(&this.account)
            .bind(this.id)
            .bind(this.business_date)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?,
        };
        row.as_ref().map(row_to_statement).transpose()
    }

    async fn bank_activity_on(&self, date: NaiveDate) -> StoreResult<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM bank_entries WHERE booking_date = $1)
                 OR EXISTS (SELECT 1 FROM bank_statements WHERE business_date = $1)",
        )
        .bind(date)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn book_funding(
        &self,
        entry_id: i64,
        channel: &str,
        date: NaiveDate,
        amount_minor: i64,
        currency: &str,
        file_id: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let money = money_of(amount_minor, currency)?;
        let c = money.currency();
        let channel_id = crate::domain::ids::ChannelId::parse(channel)
            .map_err(|e| StoreError::Rejected(e.to_string()))?;
        let j = Journal::adjustment(
            format!("bank:settlement:{c}"),
            AccountSpec::channel_receivable(&channel_id, c).code,
            money,
            None,
            format!("{channel} funds its statement of {date} (bank entry #{entry_id})"),
        );
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let inserted = sqlx::query(
            // Funding booked before bank entries existed named the bank
            // line `bank:<reference>`: the same line is not booked again.
            "INSERT INTO channel_fundings (subject, channel_id, business_date, amount, currency, file_id,
                                           journal_id, recorded_at, entry_id)
             SELECT $1,$2,$3,$4,$5,$6,$7,$8,$9
              WHERE NOT EXISTS (SELECT 1 FROM channel_fundings f JOIN bank_entries e ON e.id = $9
                                 WHERE e.bank_reference IS NOT NULL
                                   AND f.subject = 'bank:' || e.bank_reference)
             ON CONFLICT DO NOTHING",
        )
        .bind(format!("bank-entry:{entry_id}"))
        .bind(channel)
        .bind(date)
        .bind(money.amount())
        .bind(c.code())
        .bind(file_id)
        .bind(j.id)
        .bind(now)
        .bind(entry_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            == 1;
        if inserted {
            insert_journals(&mut tx, &[&j]).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(inserted)
    }

    async fn funded(
        &self,
        channel: &str,
        date: NaiveDate,
        currency: &str,
        through: NaiveDate,
    ) -> StoreResult<(u64, i64)> {
        let c = Currency::from_code(currency).map_err(|e| StoreError::Rejected(e.to_string()))?;
        let r = sqlx::query(
            "SELECT count(*) AS n, coalesce(sum(f.amount), 0) AS total
               FROM channel_fundings f JOIN bank_entries e ON e.id = f.entry_id
              WHERE f.channel_id = $1 AND f.business_date = $2 AND f.currency = $3
                AND e.booking_date <= $4",
        )
        .bind(channel)
        .bind(date)
        .bind(currency)
        .bind(through)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok((
            r.get::<i64, _>("n") as u64,
            to_minor(r.get::<Decimal, _>("total"), c)?,
        ))
    }

    async fn record_payout(
        &self,
        batch: uuid::Uuid,
        entry: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<i64> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // The batch first, then the entry: one entry never pays two batches.
        let existing: Option<i64> = sqlx::query_scalar(
            "INSERT INTO settlement_payouts (batch_id, entry_id, recorded_at) VALUES ($1,$2,$3)
             ON CONFLICT (batch_id) DO NOTHING RETURNING entry_id",
        )
        .bind(batch)
        .bind(entry)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let paid_by = match existing {
            Some(e) => e,
            None => {
                sqlx::query_scalar("SELECT entry_id FROM settlement_payouts WHERE batch_id = $1")
                    .bind(batch)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?
            }
        };
        tx.commit().await.map_err(db_err)?;
        Ok(paid_by)
    }

    async fn payout_entry(&self, batch: uuid::Uuid) -> StoreResult<Option<i64>> {
        sqlx::query_scalar("SELECT entry_id FROM settlement_payouts WHERE batch_id = $1")
            .bind(batch)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn bank_position(&self, date: NaiveDate) -> StoreResult<Vec<BankPosition>> {
        let mut out: BTreeMap<String, BankPosition> = BTreeMap::new();
        let accounts = sqlx::query(
            "SELECT a.account, a.currency::text AS currency, l.closing_minor, l.business_date AS closing_date,
                    f.opening_minor AS brought_forward
               FROM (SELECT DISTINCT account, currency FROM bank_statements
                      WHERE kind = 'statement' AND business_date <= $1) a
               CROSS JOIN LATERAL (SELECT closing_minor, business_date FROM bank_statements s
                      WHERE s.kind = 'statement' AND s.account = a.account AND s.business_date <= $1
                      ORDER BY s.business_date DESC, s.sequence DESC NULLS LAST,
                               lpad(coalesce(s.page, ''), 10, '0') DESC, s.id DESC
                      LIMIT 1) l
               CROSS JOIN LATERAL (SELECT opening_minor FROM bank_statements s
                      WHERE s.kind = 'statement' AND s.account = a.account
                      ORDER BY s.business_date, s.sequence NULLS LAST,
                               lpad(coalesce(s.page, ''), 10, '0'), s.id LIMIT 1) f
              ORDER BY 1",
        )
        .bind(date)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        for r in &accounts {
            let currency = r.get::<String, _>("currency").trim().to_string();
            let p = out.entry(currency.clone()).or_insert_with(|| BankPosition {
                currency,
                ..Default::default()
            });
            p.accounts.push(AccountPosition {
                account: mask_account(&r.get::<String, _>("account")),
                closing_minor: r.get("closing_minor"),
                closing_date: r.get("closing_date"),
                brought_forward_minor: r.get("brought_forward"),
            });
        }
        for (currency, p) in out.iter_mut() {
            let c =
                Currency::from_code(currency).map_err(|e| StoreError::Rejected(e.to_string()))?;
            let code = format!("bank:settlement:{currency}");
            // The ledger's bank account, and what resolved breaks posted to it.
            let r = sqlx::query(
                "SELECT coalesce(sum(CASE WHEN e.side = 'debit' THEN e.amount ELSE -e.amount END), 0) AS ledger,
                        coalesce(sum(CASE WHEN e.side = 'debit' THEN e.amount ELSE -e.amount END)
                                 FILTER (WHERE j.description LIKE 'reconciliation break %'), 0) AS resolutions
                   FROM ledger_accounts a JOIN ledger_entries e ON e.account_id = a.id
                   JOIN ledger_journals j ON j.id = e.journal_id
                  WHERE a.code = $1 AND e.layer = 'posted'",
            )
            .bind(&code)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
            p.ledger_minor = to_signed_minor(r.get("ledger"), c)?;
            p.resolutions_minor = to_signed_minor(r.get("resolutions"), c)?;
            // Batches (credited to the bank in our books) and what booked
            // debits on or before the date paid of each.
            let batches = sqlx::query(&format!(
                "SELECT b.net,
                        (SELECT coalesce(sum(e.amount_minor), 0)::bigint FROM bank_entries e
                          WHERE lower(e.end_to_end_id) = {BATCH_E2E} AND NOT e.credit
                            AND e.currency = b.currency
                            AND e.status = 'BOOK' AND e.booking_date <= $2) AS paid_minor,
                        (SELECT count(*) FROM bank_entries e
                          WHERE lower(e.end_to_end_id) = {BATCH_E2E} AND NOT e.credit
                            AND e.status = 'BOOK' AND e.booking_date <= $2) AS payouts
                   FROM settlement_batches b WHERE b.currency = $1 AND b.net > 0"
            ))
            .bind(currency)
            .bind(date)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
            for b in batches {
                let net = to_minor(b.get::<Decimal, _>("net"), c)?;
                if b.get::<i64, _>("payouts") == 0 {
                    p.in_transit_count += 1;
                    p.in_transit_minor += net;
                } else {
                    p.payout_difference_minor += net - b.get::<i64, _>("paid_minor");
                }
            }
            let r = sqlx::query(&format!(
                "SELECT count(*) AS n,
                        coalesce(sum(CASE WHEN e.credit THEN e.amount_minor ELSE -e.amount_minor END), 0)::bigint AS total
                   FROM bank_entries e
                  WHERE e.currency = $1 AND e.status = 'BOOK' AND e.booking_date <= $2
                    AND NOT EXISTS (SELECT 1 FROM channel_fundings f WHERE f.entry_id = e.id)
                    AND NOT (NOT e.credit AND EXISTS (SELECT 1 FROM settlement_batches b
                              WHERE {BATCH_E2E} = lower(e.end_to_end_id)))"
            ))
            .bind(currency)
            .bind(date)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
            p.unattributed_count = r.get::<i64, _>("n") as u64;
            p.unattributed_minor = r.get("total");
            let later: Decimal = sqlx::query_scalar(
                "SELECT coalesce(sum(f.amount), 0) FROM channel_fundings f
                   JOIN bank_entries e ON e.id = f.entry_id
                  WHERE f.currency = $1 AND e.booking_date > $2",
            )
            .bind(currency)
            .bind(date)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
            p.later_funding_minor = to_minor(later, c)?;
        }
        Ok(out.into_values().collect())
    }
}

/// A signed decimal amount in minor units of `c` (exact: refused otherwise).
fn to_signed_minor(amount: Decimal, c: Currency) -> StoreResult<i64> {
    let m = to_minor(amount.abs(), c)?;
    Ok(if amount.is_sign_negative() { -m } else { m })
}
