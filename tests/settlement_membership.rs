//! Settled by membership: a payment's settlement is its item in a batch,
//! and the database keeps it that way — a payment is in one batch at most,
//! an item names a CONFIRMED payment of the batch's biller, a settled
//! payment only ever becomes RETURNED, closing again books nothing twice
//! (late confirmations included), a return is recovered once, and every
//! reader (the API, the history) shows SETTLED. Against a real PostgreSQL,
//! with payments confirmed by the water simulator.

mod common;

use std::str::FromStr;

use billclear::domain::ids::{BillerId, PaymentId};
use billclear::domain::payment::PaymentStatus;
use billclear::domain::settlement::settled_reason;
use billclear::settlement::close::{close_date, Closing, When};
use billclear::store::{BatchRecord, CloseOutcome, PaymentStore, SettlementStore};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use common::{Options, TestApp};
use rust_decimal::Decimal;
use uuid::Uuid;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

async fn app() -> TestApp {
    TestApp::spawn_with(Options {
        dispatch: true,
        ..Options::default()
    })
    .await
}

/// 23:00 Shanghai, the cut-off of sh-water's `date`.
fn cutoff_of(date: NaiveDate) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&format!("{date}T15:00:00Z"))
        .unwrap()
        .with_timezone(&Utc)
}

fn date(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
}

/// Closes sh-water's `date` a minute after its cut-off (or at `now`).
async fn close(app: &TestApp, date: NaiveDate, now: Option<DateTime<Utc>>) -> CloseOutcome {
    let billers = app.store_billers().await;
    let now = now.unwrap_or(cutoff_of(date) + Duration::minutes(1));
    let mut out = close_date(
        &*app.state.store,
        &billers,
        date,
        Some("sh-water"),
        When::AtCutoff,
        &app.state.config.settlement.debtor,
        now,
    )
    .await
    .unwrap();
    match out.remove(0).1 {
        Closing::Closed(o) => o,
        other => panic!("{date} not closed: {other:?}"),
    }
}

fn closed(o: CloseOutcome) -> BatchRecord {
    match o {
        CloseOutcome::Closed(b) => b,
        other => panic!("expected a new batch: {other:?}"),
    }
}

/// (payment, kind) of a batch's items, in file order.
async fn items(app: &TestApp, batch: Uuid) -> Vec<(PaymentId, bool)> {
    let mut out = Vec::new();
    app.store
        .for_each_item(batch, &mut |i| {
            out.push((i.payment_id, i.is_return));
            Ok(())
        })
        .await
        .unwrap();
    out
}

/// Runs `setup` then `probe` in a transaction that is rolled back; the
/// probe must be refused: its SQLSTATE and message.
async fn refused(app: &TestApp, setup: &[String], probe: &str) -> (String, String) {
    let mut tx = app.store.pool().begin().await.unwrap();
    for s in setup {
        sqlx::query(s).execute(&mut *tx).await.unwrap();
    }
    let err = sqlx::query(probe)
        .execute(&mut *tx)
        .await
        .expect_err(&format!("the database accepted: {probe}"));
    let db = err.as_database_error().expect("a database error");
    let out = (
        db.code().map(|c| c.to_string()).unwrap_or_default(),
        db.message().to_string(),
    );
    tx.rollback().await.unwrap();
    out
}

/// A batch row of sh-water for `date` whose totals are `count` payments
/// and `gross`, no commission, no returns.
fn batch_row(id: Uuid, date: NaiveDate, count: i64, gross: &str) -> String {
    format!(
        "INSERT INTO settlement_batches (id, biller_id, biller_name, business_date, currency, cutoff_at,
            created_at, payments_count, gross, commission, returns_count, returns, net,
            commission_rule, file_format, creditor_name, creditor_account, creditor_bic,
            debtor_name, debtor_account, debtor_bic)
         VALUES ('{id}', 'sh-water', 'Shanghai Water', '{date}', 'CNY', now(), now(), {count}, {gross}, 0,
            0, 0, {gross}, 'none', 'csv', 'a', 'b', 'c', 'd', 'e', 'f')"
    )
}

fn item_row(batch: Uuid, seq: i32, payment: Uuid, kind: &str, amount: &str) -> String {
    format!(
        "INSERT INTO settlement_items (batch_id, seq, payment_id, kind, channel_id, amount, commission)
         VALUES ('{batch}', {seq}, '{payment}', '{kind}', 'alipay', {amount}, 0)"
    )
}

#[tokio::test]
async fn the_database_keeps_a_payment_in_one_batch_and_a_settled_payment_settled() {
    let app = app().await;
    let ids = app.pay_confirmed(&["100.00", "50.00", "70.00"]).await;
    let day = date(20);
    app.set_confirmed_at(ids[0], cutoff_of(day) - Duration::hours(2))
        .await;
    app.set_confirmed_at(ids[1], cutoff_of(day) - Duration::hours(1))
        .await;
    // ids[2]: confirmed after the cut-off, not settled.
    app.set_confirmed_at(ids[2], cutoff_of(day) + Duration::hours(1))
        .await;
    let b1 = closed(close(&app, day, None).await);
    assert_eq!(
        items(&app, b1.id).await,
        vec![(ids[0], false), (ids[1], false)]
    );
    let items_before = app.count("settlement_items").await;
    let other = Uuid::now_v7();

    // A payment already in a batch, in a second one: refused.
    let (code, msg) = refused(
        &app,
        &[batch_row(other, date(25), 1, "100.00")],
        &item_row(other, 1, ids[0].0, "payment", "100.00"),
    )
    .await;
    assert_eq!(code, "23505", "{msg}");
    assert!(msg.contains("settlement_items_once"), "{msg}");

    // Not a CONFIRMED payment: one RECEIVED, one of another biller.
    let received = Uuid::now_v7();
    let (code, msg) = refused(
        &app,
        &[
            format!(
                "INSERT INTO payments (id, channel_id, channel_reference, biller_id, account_number,
                    amount, currency, status, pending_journal_id, created_at, updated_at)
                 VALUES ('{received}', 'alipay', 'probe-1', 'sh-water', '3100000011', 20.00, 'CNY',
                    'RECEIVED', gen_random_uuid(), now(), now())"
            ),
            batch_row(other, date(25), 1, "20.00"),
        ],
        &item_row(other, 1, received, "payment", "20.00"),
    )
    .await;
    assert_eq!(code, "23514", "{msg}");
    assert!(msg.contains("not a CONFIRMED payment"), "{msg}");
    let pudong = Uuid::now_v7();
    let (code, msg) = refused(
        &app,
        &[
            format!(
                "INSERT INTO payments (id, channel_id, channel_reference, biller_id, account_number,
                    amount, currency, status, pending_journal_id, created_at, updated_at)
                 VALUES ('{pudong}', 'alipay', 'probe-2', 'pudong-water', 'PD20261129', 20.00, 'CNY',
                    'CONFIRMED', gen_random_uuid(), now(), now())"
            ),
            batch_row(other, date(25), 1, "20.00"),
        ],
        &item_row(other, 1, pudong, "payment", "20.00"),
    )
    .await;
    assert_eq!(code, "23514", "{msg}");
    // The payment's own amount, and items that add up to the batch.
    let (code, msg) = refused(
        &app,
        &[batch_row(other, date(25), 1, "1.00")],
        &item_row(other, 1, ids[2].0, "payment", "1.00"),
    )
    .await;
    assert_eq!(code, "23514", "{msg}");
    let (code, msg) = refused(
        &app,
        &[batch_row(other, date(25), 2, "140.00")],
        &item_row(other, 1, ids[2].0, "payment", "70.00"),
    )
    .await;
    assert_eq!(code, "23514", "{msg}");
    assert!(msg.contains("add up to its totals"), "{msg}");
    // An item with no batch.
    let (code, _) = refused(&app, &[], &item_row(other, 1, ids[2].0, "payment", "70.00")).await;
    assert_eq!(code, "23514");
    // Items of a batch come in one statement: none added to b1 later.
    let (code, _) = refused(&app, &[], &item_row(b1.id, 3, ids[2].0, "payment", "70.00")).await;
    assert_eq!(code, "23514");
    // A return item names a recorded return (of the batch's biller).
    let (code, msg) = refused(
        &app,
        &[format!(
            "INSERT INTO settlement_batches (id, biller_id, biller_name, business_date, currency, cutoff_at,
                created_at, payments_count, gross, commission, returns_count, returns, net,
                commission_rule, file_format, creditor_name, creditor_account, creditor_bic,
                debtor_name, debtor_account, debtor_bic)
             VALUES ('{other}', 'sh-water', 'x', '2026-11-25', 'CNY', now(), now(), 1, 70.00, 0, 1, 70.00, 0,
                'none', 'csv', 'a', 'b', 'c', 'd', 'e', 'f')"
        )],
        &format!(
            "INSERT INTO settlement_items (batch_id, seq, payment_id, kind, channel_id, amount, commission)
             VALUES ('{other}', 1, '{}', 'payment', 'alipay', 70.00, 0),
                    ('{other}', 2, '{}', 'return', 'alipay', 70.00, 0)",
            ids[2].0, ids[0].0
        ),
    )
    .await;
    assert_eq!(code, "23514", "{msg}");
    assert!(msg.contains("return item"), "{msg}");

    // SETTLED is never written; a settled payment changes only to RETURNED;
    // only a settled one is RETURNED; amounts never change.
    for probe in [
        format!(
            "UPDATE payments SET status = 'SETTLED' WHERE id = '{}'",
            ids[2].0
        ),
        format!(
            "UPDATE payments SET status = 'REJECTED' WHERE id = '{}'",
            ids[0].0
        ),
        format!(
            "UPDATE payments SET updated_at = now() WHERE id = '{}'",
            ids[0].0
        ),
        format!(
            "UPDATE payments SET status = 'RETURNED' WHERE id = '{}'",
            ids[2].0
        ),
        format!("UPDATE payments SET amount = 1 WHERE id = '{}'", ids[2].0),
        format!(
            "UPDATE payments SET biller_id = 'pudong-water' WHERE id = '{}'",
            ids[0].0
        ),
    ] {
        let (code, msg) = refused(&app, &[], &probe).await;
        assert_eq!(code, "23001", "{probe}: {msg}");
    }
    let (code, _) = refused(
        &app,
        &[],
        "INSERT INTO payments (id, channel_id, channel_reference, biller_id, account_number,
            amount, currency, status, pending_journal_id, created_at, updated_at)
         VALUES (gen_random_uuid(), 'alipay', 'probe-3', 'sh-water', '3100000011', 20.00, 'CNY',
            'SETTLED', gen_random_uuid(), now(), now())",
    )
    .await;
    assert_eq!(code, "23514");

    // Nothing of it stayed; the payments read as before.
    assert_eq!(app.count("settlement_items").await, items_before);
    assert_eq!(app.status(ids[0]).await, PaymentStatus::Settled);
    assert_eq!(app.status(ids[1]).await, PaymentStatus::Settled);
    assert_eq!(app.status(ids[2]).await, PaymentStatus::Confirmed);
    app.finish().await;
}

#[tokio::test]
async fn closing_again_and_late_confirmations_book_every_payment_once() {
    let app = app().await;
    let ids = app
        .pay_confirmed(&["100.00", "200.00", "300.00", "400.00"])
        .await;
    let (d1, d2, d3) = (date(20), date(21), date(22));
    app.set_confirmed_at(ids[0], cutoff_of(d1) - Duration::hours(3))
        .await;
    app.set_confirmed_at(ids[1], cutoff_of(d1) - Duration::hours(2))
        .await;
    // Stamped on d2 (after d1's cut-off): in d2's window.
    app.set_confirmed_at(ids[3], cutoff_of(d1) + Duration::hours(5))
        .await;
    // ids[2] is confirmed "late" below: stamped on d1 after d1 was closed.
    app.set_confirmed_at(ids[2], cutoff_of(d2) + Duration::days(30))
        .await;
    let b1 = closed(close(&app, d1, None).await);
    assert_eq!((b1.totals.count, b1.totals.gross), (2, d("300.00")));

    // Closed again: the same batch, nothing new.
    let footprint = (
        app.count("settlement_batches").await,
        app.count("settlement_items").await,
        app.count("ledger_journals").await,
        app.count("payment_events").await,
        app.count("outbox").await,
    );
    let again = close(&app, d1, Some(cutoff_of(d1) + Duration::hours(2))).await;
    assert!(
        matches!(&again, CloseOutcome::AlreadyClosed(b) if b.id == b1.id),
        "{again:?}"
    );
    assert_eq!(
        footprint,
        (
            app.count("settlement_batches").await,
            app.count("settlement_items").await,
            app.count("ledger_journals").await,
            app.count("payment_events").await,
            app.count("outbox").await,
        )
    );

    // A confirmation stamped before d1's cut-off but committed after d1
    // closed (a slow confirming transaction): recorded as a straggler,
    // taken by the next close, and only by it.
    app.set_confirmed_at(ids[2], cutoff_of(d1) - Duration::minutes(10))
        .await;
    let stragglers: Vec<Uuid> = sqlx::query_scalar("SELECT payment_id FROM settlement_stragglers")
        .fetch_all(app.store.pool())
        .await
        .unwrap();
    assert_eq!(stragglers, vec![ids[2].0]);
    let b2 = closed(close(&app, d2, None).await);
    assert_eq!(
        items(&app, b2.id).await,
        vec![(ids[2], false), (ids[3], false)]
    );
    assert_eq!((b2.totals.count, b2.totals.gross), (2, d("700.00")));
    let b3 = closed(close(&app, d3, None).await);
    assert!(b3.totals.is_empty(), "{:?}", b3.totals);
    // A date left behind and closed after later ones takes nothing again.
    let b0 = closed(close(&app, date(19), Some(cutoff_of(d3) + Duration::hours(1))).await);
    assert!(b0.totals.is_empty(), "{:?}", b0.totals);

    // Every payment in exactly one batch; the books hold each once.
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT payment_id FROM settlement_items WHERE kind = 'payment'
          GROUP BY payment_id HAVING count(*) > 1) x",
    )
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(twice, 0);
    assert_eq!(app.count("settlement_items").await, 4);
    for id in &ids {
        assert_eq!(app.status(*id).await, PaymentStatus::Settled);
    }
    let payable = app.balance("biller:sh-water:payable:CNY").await;
    assert_eq!(payable.posted_debits, d("1000.00"));
    assert_eq!(payable.posted_credits, d("1000.00"));
    app.finish().await;
}

#[tokio::test]
async fn a_returned_payment_is_recovered_exactly_once_and_every_reader_shows_settled() {
    let app = app().await;
    let ids = app.pay_confirmed(&["200.00", "30.00"]).await;
    let (d1, d2, d3, d4) = (date(20), date(21), date(22), date(23));
    app.set_confirmed_at(ids[0], cutoff_of(d1) - Duration::hours(1))
        .await;
    app.set_confirmed_at(ids[1], cutoff_of(d1) + Duration::hours(1))
        .await;
    let b1 = closed(close(&app, d1, None).await);
    assert_eq!(b1.totals.count, 1);

    // The API: SETTLED, updated when the batch was closed.
    let got = app
        .alipay
        .get(&format!("/v1/payments/{}", ids[0]))
        .await
        .unwrap();
    assert_eq!(got.status, 200);
    let p = got.json();
    assert_eq!(p["status"], "SETTLED");
    let updated: DateTime<Utc> = p["updated_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(updated, b1.created_at);
    let reference = p["channel_reference"].as_str().unwrap().to_string();
    let listed = app
        .alipay
        .get(&format!("/v1/payments?channel_reference={reference}"))
        .await
        .unwrap()
        .json();
    assert_eq!(listed["data"][0]["status"], "SETTLED");
    let unsettled = app
        .alipay
        .get(&format!("/v1/payments/{}", ids[1]))
        .await
        .unwrap()
        .json();
    assert_eq!(unsettled["status"], "CONFIRMED");

    // The history: CONFIRMED -> SETTLED, with the batch's reason and time.
    let events = app.store.payment_events(ids[0]).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (last.from, last.to),
        (Some(PaymentStatus::Confirmed), PaymentStatus::Settled)
    );
    let sh_water = BillerId::parse("sh-water").unwrap();
    assert_eq!(last.reason, settled_reason(b1.id, &sh_water, d1));
    assert_eq!(last.at, b1.created_at);
    assert_eq!(
        events
            .iter()
            .filter(|e| e.to == PaymentStatus::Settled)
            .count(),
        1
    );

    // Returned: RETURNED everywhere, the history ends SETTLED -> RETURNED.
    let returned_at = cutoff_of(d1) + Duration::hours(2);
    app.store
        .record_return(ids[0], "account closed", returned_at)
        .await
        .unwrap();
    assert!(app
        .store
        .record_return(ids[0], "again", returned_at)
        .await
        .is_err());
    // An unsettled payment cannot be returned.
    assert!(app
        .store
        .record_return(ids[1], "not settled", returned_at)
        .await
        .is_err());
    let got = app
        .alipay
        .get(&format!("/v1/payments/{}", ids[0]))
        .await
        .unwrap()
        .json();
    assert_eq!(got["status"], "RETURNED");
    let steps: Vec<(Option<PaymentStatus>, PaymentStatus)> = app
        .store
        .payment_events(ids[0])
        .await
        .unwrap()
        .iter()
        .map(|e| (e.from, e.to))
        .collect();
    assert_eq!(steps[steps.len() - 3].1, PaymentStatus::Confirmed);
    assert_eq!(
        steps[steps.len() - 2..],
        [
            (Some(PaymentStatus::Confirmed), PaymentStatus::Settled),
            (Some(PaymentStatus::Settled), PaymentStatus::Returned),
        ]
    );

    // d2 holds 30.00 (commission 0.50): too little to recover 200.00.
    let b2 = closed(close(&app, d2, None).await);
    assert_eq!((b2.totals.count, b2.totals.returns_count), (1, 0));
    // A big payment on d3: the return is recovered from it, once.
    let big = app.pay_confirmed(&["1000.00"]).await;
    app.set_confirmed_at(big[0], cutoff_of(d3) - Duration::hours(1))
        .await;
    let b3 = closed(close(&app, d3, None).await);
    assert_eq!((b3.totals.count, b3.totals.returns_count), (1, 1));
    assert_eq!(b3.totals.returns, d("200.00"));
    assert!(items(&app, b3.id).await.contains(&(ids[0], true)));
    // More payments on d4: nothing is recovered again.
    let more = app.pay_confirmed(&["500.00"]).await;
    app.set_confirmed_at(more[0], cutoff_of(d4) - Duration::hours(1))
        .await;
    let b4 = closed(close(&app, d4, None).await);
    assert_eq!((b4.totals.count, b4.totals.returns_count), (1, 0));
    let recovered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM settlement_items WHERE kind = 'return'")
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(recovered, 1);
    // The database refuses a second recovery of it.
    let other = Uuid::now_v7();
    let (code, _) = refused(
        &app,
        &[format!(
            "INSERT INTO settlement_batches (id, biller_id, biller_name, business_date, currency, cutoff_at,
                created_at, payments_count, gross, commission, returns_count, returns, net,
                commission_rule, file_format, creditor_name, creditor_account, creditor_bic,
                debtor_name, debtor_account, debtor_bic)
             VALUES ('{other}', 'sh-water', 'x', '2026-11-28', 'CNY', now(), now(), 0, 200.00, 0, 1, 200.00, 0,
                'none', 'csv', 'a', 'b', 'c', 'd', 'e', 'f')"
        )],
        &item_row(other, 1, ids[0].0, "return", "200.00"),
    )
    .await;
    assert_eq!(code, "23505");
    // The payable nets to zero: credited 1730, settled 1730 - 200,
    // returned 200.
    let payable = app.balance("biller:sh-water:payable:CNY").await;
    assert_eq!(
        payable.posted_credits - payable.posted_debits,
        Decimal::ZERO
    );
    app.finish().await;
}

#[tokio::test]
async fn a_close_waits_for_a_confirmation_in_flight_and_takes_it() {
    let app = app().await;
    let ids = app.pay_confirmed(&["120.00"]).await;
    let day = date(20);
    // As committed, stamped on a later date: not of this one.
    app.set_confirmed_at(ids[0], cutoff_of(day) + Duration::days(30))
        .await;
    // A confirmation in flight: stamped before the cut-off, not committed
    // when the close starts.
    let mut tx = app.store.pool().begin().await.unwrap();
    sqlx::query("UPDATE payments SET updated_at = $2, confirmed_at = $2 WHERE id = $1")
        .bind(ids[0].0)
        .bind(cutoff_of(day) - Duration::hours(1))
        .execute(&mut *tx)
        .await
        .unwrap();
    let store = app.state.store.clone();
    let billers = app.store_billers().await;
    let debtor = app.state.config.settlement.debtor.clone();
    let closing = tokio::spawn(async move {
        close_date(
            &*store,
            &billers,
            day,
            Some("sh-water"),
            When::AtCutoff,
            &debtor,
            cutoff_of(day) + Duration::minutes(1),
        )
        .await
        .unwrap()
    });
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(
        !closing.is_finished(),
        "the close reads only once the confirmation in flight is committed"
    );
    tx.commit().await.unwrap();
    let mut out = closing.await.unwrap();
    let b = match out.remove(0).1 {
        Closing::Closed(o) => closed(o),
        other => panic!("{other:?}"),
    };
    assert_eq!(items(&app, b.id).await, vec![(ids[0], false)]);
    assert_eq!(app.status(ids[0]).await, PaymentStatus::Settled);
    app.finish().await;
}
