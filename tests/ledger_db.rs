//! The database itself refuses what would corrupt the books: changes to
//! journals and entries, unbalanced or empty journals, entries in the wrong
//! currency, a pending transfer resolved twice, and off-table transitions.

mod common;

use billclear::domain::ids::PaymentId;
use billclear::domain::payment::{transition, PaymentStatus, TRANSITIONS};
use billclear::store::{PaymentStore, StoreError};
use common::{payment_body, TestApp};

async fn accept_one(app: &TestApp, reference: &str) -> PaymentId {
    let r = app
        .alipay
        .post_payment(reference, &payment_body(reference))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    PaymentId(r.json()["id"].as_str().unwrap().parse().unwrap())
}

/// Runs SQL on one connection; a failed transaction is rolled back there.
async fn exec(app: &TestApp, sql: &str) -> Result<u64, String> {
    let mut conn = app.store.pool().acquire().await.unwrap();
    let r = sqlx::raw_sql(sql).execute(&mut *conn).await;
    if r.is_err() {
        sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.ok();
    }
    r.map(|r| r.rows_affected()).map_err(|e| e.to_string())
}

#[tokio::test]
async fn entries_journals_and_events_are_append_only() {
    let app = TestApp::spawn().await;
    accept_one(&app, "ao-1").await;
    for sql in [
        "UPDATE ledger_entries SET amount = amount + 1",
        "DELETE FROM ledger_entries",
        "TRUNCATE ledger_entries CASCADE",
        "UPDATE ledger_journals SET description = 'x'",
        "DELETE FROM ledger_journals",
        "TRUNCATE ledger_journals CASCADE",
        "UPDATE payment_events SET reason = 'x'",
        "DELETE FROM payment_events",
        "DELETE FROM ledger_accounts",
        "UPDATE ledger_accounts SET currency = 'USD'",
        "DELETE FROM billers WHERE id = 'sh-gas'",
        "DELETE FROM channels WHERE id = 'wechat'",
    ] {
        let err = exec(&app, sql).await.expect_err(sql);
        assert!(
            err.contains("append-only")
                || err.contains("permanent")
                || err.contains("never deleted"),
            "{sql}: {err}"
        );
    }
    assert_eq!(app.count("ledger_entries").await, 2);
    app.finish().await;
}

#[tokio::test]
async fn unbalanced_short_and_mismatched_journals_are_refused() {
    let app = TestApp::spawn().await;
    let water = "(SELECT id FROM ledger_accounts WHERE code = 'biller:sh-water:payable:CNY')";
    let alipay = "(SELECT id FROM ledger_accounts WHERE code = 'channel:alipay:receivable:CNY')";
    // A journal and its entries in one statement, as the store writes them.
    let journal = |id: &str, entries: &str| {
        format!(
            "WITH j AS (INSERT INTO ledger_journals (id, kind, description) VALUES ('{id}', 'posted', 't') RETURNING id)
             INSERT INTO ledger_entries (journal_id, account_id, currency, layer, side, amount) {entries}"
        )
    };
    let pair = |id: &str, cur: &str, layer2: &str, debit: &str, credit: &str| {
        format!(
            "VALUES ('{id}', {alipay}, '{cur}', 'posted', 'debit', {debit}), ('{id}', {water}, '{cur}', '{layer2}', 'credit', {credit})"
        )
    };
    let j = |n: u8| format!("00000000-0000-0000-0000-00000000000{n}");
    let cases = [
        // Debits 10.00, credits 9.99.
        journal(&j(1), &pair(&j(1), "CNY", "posted", "10.00", "9.99")),
        // Balanced in total but not per layer.
        journal(&j(2), &pair(&j(2), "CNY", "pending", "10.00", "10.00")),
        // A single entry.
        journal(
            &j(3),
            &format!(
                "VALUES ('{}', {alipay}, 'CNY', 'posted', 'debit', 10.00)",
                j(3)
            ),
        ),
        // A journal with no entries, with or without an entries statement.
        journal(&j(4), "SELECT journal_id, account_id, currency, layer, side, amount FROM ledger_entries WHERE false"),
        format!(
            "INSERT INTO ledger_journals (id, kind, description) VALUES ('{}', 'posted', 'alone')",
            j(4)
        ),
        // Entries in a currency other than their accounts'.
        journal(&j(5), &pair(&j(5), "USD", "posted", "10.00", "10.00")),
        // Entries of a journal that does not exist.
        format!(
            "INSERT INTO ledger_entries (journal_id, account_id, currency, layer, side, amount) {}",
            pair(&j(6), "CNY", "posted", "10.00", "10.00")
        ),
        // A pending journal for a payment that does not exist.
        format!(
            "WITH j AS (INSERT INTO ledger_journals (id, kind, payment_id, description)
                        VALUES ('{}', 'pending', gen_random_uuid(), 't') RETURNING id)
             INSERT INTO ledger_entries (journal_id, account_id, currency, layer, side, amount) {}",
            j(9),
            pair(&j(9), "CNY", "pending", "10.00", "10.00").replace("'posted', 'debit'", "'pending', 'debit'")
        ),
        // Zero amounts.
        journal(&j(7), &pair(&j(7), "CNY", "posted", "0", "0")),
    ];
    for sql in &cases {
        let err = exec(&app, sql).await.expect_err(sql);
        assert!(
            err.contains("does not balance")
                || err.contains("no entries")
                || err.contains("does not exist")
                || err.contains("does not name it back")
                || err.contains("check constraint"),
            "{sql}: {err}"
        );
    }
    assert_eq!(app.count("ledger_journals").await, 0);
    assert_eq!(app.count("ledger_entries").await, 0);
    // The same statement balanced is accepted: the checks are not blanket refusals.
    exec(
        &app,
        &journal(&j(8), &pair(&j(8), "CNY", "posted", "10.00", "10.00")),
    )
    .await
    .unwrap();
    assert_eq!(app.count("ledger_entries").await, 2);
    app.finish().await;
}

#[tokio::test]
async fn confirmation_posts_and_rejection_voids_the_pending_transfer() {
    let app = TestApp::spawn().await;
    let confirmed = accept_one(&app, "tp-1").await;
    let rejected = accept_one(&app, "tp-2").await;
    let now = chrono::Utc::now();
    for (id, path) in [
        (
            confirmed,
            [PaymentStatus::Submitted, PaymentStatus::Confirmed],
        ),
        (
            rejected,
            [PaymentStatus::Submitted, PaymentStatus::Rejected],
        ),
    ] {
        let mut from = PaymentStatus::Received;
        for to in path {
            let t = transition(id, from, to, "test", now).unwrap();
            app.store.apply_transition(&t).await.unwrap();
            from = to;
        }
    }
    let channel = app.balance("channel:alipay:receivable:CNY").await;
    let biller = app.balance("biller:sh-water:payable:CNY").await;
    // Both pending transfers are resolved: pending layer nets to zero.
    assert_eq!(channel.pending_debits, channel.pending_credits);
    assert_eq!(biller.pending_debits, biller.pending_credits);
    // Only the confirmed payment is posted.
    assert_eq!(channel.posted_debits.to_string(), "88.50");
    assert!(channel.posted_credits.is_zero());
    assert_eq!(biller.posted_credits.to_string(), "88.50");

    // A transition from a stale state is a conflict and changes nothing.
    let stale = transition(
        confirmed,
        PaymentStatus::Submitted,
        PaymentStatus::Rejected,
        "late",
        now,
    )
    .unwrap();
    assert!(matches!(
        app.store.apply_transition(&stale).await,
        Err(StoreError::Conflict(_))
    ));
    let events = app.store.payment_events(confirmed).await.unwrap();
    let seq: Vec<&str> = events.iter().map(|e| e.to.as_str()).collect();
    assert_eq!(seq, ["RECEIVED", "SUBMITTED", "CONFIRMED"]);
    app.finish().await;
}

#[tokio::test]
async fn a_pending_transfer_is_resolved_at_most_once_and_only_a_pending_one() {
    let app = TestApp::spawn().await;
    let id = accept_one(&app, "once-1").await;
    let now = chrono::Utc::now();
    app.store
        .apply_transition(
            &transition(
                id,
                PaymentStatus::Received,
                PaymentStatus::Rejected,
                "refused",
                now,
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let pending: uuid::Uuid =
        sqlx::query_scalar("SELECT pending_journal_id FROM payments WHERE id = $1")
            .bind(id.0)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    let void: uuid::Uuid = sqlx::query_scalar("SELECT id FROM ledger_journals WHERE resolves = $1")
        .bind(pending)
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    // A second resolution of the same pending journal, even balanced, is refused.
    let water = "(SELECT id FROM ledger_accounts WHERE code = 'biller:sh-water:payable:CNY')";
    let alipay = "(SELECT id FROM ledger_accounts WHERE code = 'channel:alipay:receivable:CNY')";
    let second = format!(
        "WITH j AS (INSERT INTO ledger_journals (id, kind, resolves, description)
                    VALUES ('00000000-0000-0000-0000-0000000000a1', 'post', '{pending}', 'again') RETURNING id)
         INSERT INTO ledger_entries (journal_id, account_id, currency, layer, side, amount) VALUES
         ('00000000-0000-0000-0000-0000000000a1', {alipay}, 'CNY', 'posted', 'debit', 88.50),
         ('00000000-0000-0000-0000-0000000000a1', {water}, 'CNY', 'posted', 'credit', 88.50)"
    );
    let err = exec(&app, &second).await.expect_err("second resolution");
    assert!(err.contains("ledger_journals_resolves"), "{err}");
    // Resolving a journal that is not pending (the void itself) is refused.
    let not_pending = second.replace(&pending.to_string(), &void.to_string());
    let err = exec(&app, &not_pending).await.expect_err("resolve a void");
    assert!(err.contains("not a pending journal"), "{err}");
    app.finish().await;
}

#[tokio::test]
async fn the_database_transition_table_is_the_domain_table() {
    let app = TestApp::spawn().await;
    let mut db: Vec<(String, String)> =
        sqlx::query_as("SELECT from_status, to_status FROM payment_transitions ORDER BY 1, 2")
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    let mut domain: Vec<(String, String)> = TRANSITIONS
        .iter()
        .map(|(a, b)| (a.as_str().to_string(), b.as_str().to_string()))
        .collect();
    db.sort();
    domain.sort();
    assert_eq!(db, domain);
    // An event outside the table is refused by the database.
    let id = accept_one(&app, "tt-1").await;
    let err = exec(
        &app,
        &format!("INSERT INTO payment_events (payment_id, from_status, to_status, reason, at) VALUES ('{}', 'RECEIVED', 'CONFIRMED', 'skip', now())", id.0),
    )
    .await
    .expect_err("RECEIVED -> CONFIRMED is not a transition");
    assert!(
        err.contains("payment_transitions") || err.contains("foreign key"),
        "{err}"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_file_kind_is_a_name_the_code_knows_and_the_database_checks_its_form() {
    use billclear::domain::recon::FileKind;
    let app = TestApp::spawn().await;
    let insert = |kind: &str, n: usize| {
        format!(
            "BEGIN; INSERT INTO recon_files (sha256, kind, source, business_date, identity, file_name, \
             byte_size, records, credited, credited_total_minor, imported_at, imported_by) \
             VALUES ('{:064x}', '{kind}', 'test', '2026-12-01', 'kind-{n}', 'f', 0, 0, 0, 0, now(), 'test'); \
             ROLLBACK;",
            n
        )
    };
    // Every kind the readers know is accepted without a migration of its own.
    for (n, kind) in FileKind::ALL.iter().enumerate() {
        exec(&app, &insert(kind.as_str(), n))
            .await
            .unwrap_or_else(|e| panic!("{} refused: {e}", kind.as_str()));
    }
    // A malformed name is refused by the database itself.
    for (n, bad) in ["Water CSV", "water_csv", "-water", "water--csv", ""]
        .iter()
        .enumerate()
    {
        let err = exec(&app, &insert(bad, 100 + n))
            .await
            .expect_err("a malformed kind is refused");
        assert!(err.contains("recon_files_kind_check"), "{bad:?}: {err}");
    }
    app.finish().await;
}
