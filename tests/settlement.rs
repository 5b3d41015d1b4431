//! Settlement: closing business dates into batches (one transaction: batch,
//! items, SETTLED, postings, outbox), against a real PostgreSQL and payments
//! confirmed by the water simulator over real sockets.

mod common;

use std::str::FromStr;

use billclear::domain::payment::PaymentStatus;
use billclear::settlement::close::{close_date, Closing, When};
use billclear::store::{CloseOutcome, SettlementStore};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use common::{Options, TestApp};
use rust_decimal::Decimal;

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

async fn close(app: &TestApp, biller: &str, date: NaiveDate, now: DateTime<Utc>) -> Closing {
    let billers = app.store_billers().await;
    let mut out = close_date(
        &*app.state.store,
        &billers,
        date,
        Some(biller),
        When::AtCutoff,
        &app.state.config.settlement.debtor,
        now,
    )
    .await
    .unwrap();
    assert_eq!(out.len(), 1);
    out.remove(0).1
}

fn shanghai_date(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

#[tokio::test]
async fn a_closed_date_settles_its_confirmed_payments_once() {
    let app = app().await;
    // sh-water: 0.30 % min 0.50 max 8.00, half-up.
    let ids = app
        .pay_confirmed(&["100.00", "1000.00", "5000.00", "250.05"])
        .await;
    let date = shanghai_date(2026, 11, 20);
    // 23:00 Shanghai = 15:00 UTC. Three payments that day, one a microsecond
    // after the cut-off (the next date).
    let cutoff = DateTime::parse_from_rfc3339("2026-11-20T15:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    app.set_confirmed_at(ids[0], cutoff - Duration::hours(5))
        .await;
    app.set_confirmed_at(ids[1], cutoff - Duration::minutes(1))
        .await;
    app.set_confirmed_at(ids[2], cutoff).await;
    app.set_confirmed_at(ids[3], cutoff + Duration::microseconds(1))
        .await;

    // Before the cut-off: refused, nothing written.
    let early = close(&app, "sh-water", date, cutoff - Duration::seconds(1)).await;
    assert!(
        matches!(&early, Closing::Skipped(why) if why.contains("not reached")),
        "{early:?}"
    );
    assert_eq!(app.count("settlement_batches").await, 0);

    let now = cutoff + Duration::minutes(5);
    let Closing::Closed(CloseOutcome::Closed(batch)) = close(&app, "sh-water", date, now).await
    else {
        panic!("closed")
    };
    assert_eq!(batch.totals.count, 3);
    assert_eq!(batch.totals.gross, d("6100.00"));
    // 0.50 (minimum) + 3.00 + 8.00 (maximum)
    assert_eq!(batch.totals.commission, d("11.50"));
    assert_eq!(batch.totals.net(), d("6088.50"));
    assert_eq!(batch.cutoff_at, cutoff);
    assert_eq!(
        batch.commission_rule,
        "0.3% min 0.50 max 8.00, rounded half-up"
    );
    for id in &ids[..3] {
        assert_eq!(app.status(*id).await, PaymentStatus::Settled);
    }
    assert_eq!(app.status(ids[3]).await, PaymentStatus::Confirmed);

    // The postings: payable debited gross, commission and bank credited.
    let payable = app.balance("biller:sh-water:payable:CNY").await;
    assert_eq!(payable.posted_debits, d("6100.00"));
    let revenue = app.balance("revenue:commission:CNY").await;
    assert_eq!(revenue.posted_credits, d("11.50"));
    let bank = app.balance("bank:settlement:CNY").await;
    assert_eq!(bank.posted_credits, d("6088.50"));
    // One outbox message for the batch.
    let outbox: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE topic = 'settlement' AND aggregate_id = $1",
    )
    .bind(batch.id)
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(outbox, 1);
    // Items: the payments in confirmation order, with their commission.
    let mut items = Vec::new();
    app.store
        .for_each_item(batch.id, &mut |i| {
            items.push((i.payment_id, i.amount, i.commission));
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(
        items,
        vec![
            (ids[0], d("100.00"), d("0.50")),
            (ids[1], d("1000.00"), d("3.00")),
            (ids[2], d("5000.00"), d("8.00")),
        ]
    );

    // Closing the same date again creates nothing new.
    let footprint = (
        app.count("settlement_batches").await,
        app.count("settlement_items").await,
        app.count("ledger_journals").await,
        app.count("payment_events").await,
        app.count("outbox").await,
    );
    let again = close(&app, "sh-water", date, now + Duration::hours(1)).await;
    assert!(
        matches!(&again, Closing::Closed(CloseOutcome::AlreadyClosed(b)) if b.id == batch.id),
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

    // The next date takes the payment confirmed after the cut-off.
    let next = close(
        &app,
        "sh-water",
        date.succ_opt().unwrap(),
        now + Duration::days(1),
    )
    .await;
    let Closing::Closed(CloseOutcome::Closed(b2)) = next else {
        panic!("{next:?}")
    };
    assert_eq!((b2.totals.count, b2.totals.gross), (1, d("250.05")));
    assert_eq!(b2.totals.commission, d("0.75"));
    assert_eq!(app.status(ids[3]).await, PaymentStatus::Settled);
    app.finish().await;
}

#[tokio::test]
async fn an_empty_date_is_closed_with_an_empty_batch_and_no_journal() {
    let app = app().await;
    let date = shanghai_date(2026, 11, 21);
    let now = DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let Closing::Closed(CloseOutcome::Closed(b)) = close(&app, "pudong-water", date, now).await
    else {
        panic!("closed")
    };
    assert!(b.totals.is_empty());
    assert_eq!(b.totals.net(), Decimal::ZERO);
    assert_eq!(b.journal_id, None);
    assert_eq!(app.count("settlement_items").await, 0);
    app.finish().await;
}

#[tokio::test]
async fn a_return_is_reversed_then_recovered_from_the_next_batch() {
    let app = app().await;
    let ids = app.pay_confirmed(&["200.00", "50.00"]).await;
    let date = shanghai_date(2026, 11, 22);
    let cutoff = DateTime::parse_from_rfc3339("2026-11-22T15:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    app.set_confirmed_at(ids[0], cutoff - Duration::hours(1))
        .await;
    app.set_confirmed_at(ids[1], cutoff + Duration::hours(1))
        .await;
    let now = cutoff + Duration::minutes(1);
    let Closing::Closed(CloseOutcome::Closed(b1)) = close(&app, "sh-water", date, now).await else {
        panic!("closed")
    };
    assert_eq!(b1.totals.gross, d("200.00"));

    // Only a SETTLED payment can be returned.
    let refused = app.store.record_return(ids[1], "account closed", now).await;
    assert!(refused.is_err(), "{refused:?}");
    let r = app
        .store
        .record_return(
            ids[0],
            "account closed after payment",
            now + Duration::hours(2),
        )
        .await
        .unwrap();
    assert_eq!(r.amount, d("200.00"));
    assert_eq!(app.status(ids[0]).await, PaymentStatus::Returned);
    // The payment app is told, like of any final state.
    let told: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE topic = 'callback' AND aggregate_id = $1
            AND payload->'event'->>'type' = 'payment.returned'",
    )
    .bind(ids[0].0)
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(told, 1);
    // A return is recorded once.
    assert!(app
        .store
        .record_return(ids[0], "again", now + Duration::hours(2))
        .await
        .is_err());

    // The next batch: 50.00 (commission 0.50) cannot absorb 200.00: the
    // return waits; the batch pays 49.50.
    let d2 = date.succ_opt().unwrap();
    let Closing::Closed(CloseOutcome::Closed(b2)) =
        close(&app, "sh-water", d2, now + Duration::days(1)).await
    else {
        panic!("closed")
    };
    assert_eq!((b2.totals.count, b2.totals.returns_count), (1, 0));
    assert_eq!(b2.totals.net(), d("49.50"));

    // A big payment later: the return is recovered from it.
    let big = app.pay_confirmed(&["1000.00"]).await;
    app.set_confirmed_at(big[0], cutoff + Duration::days(2) - Duration::hours(1))
        .await;
    let d3 = d2.succ_opt().unwrap();
    let Closing::Closed(CloseOutcome::Closed(b3)) =
        close(&app, "sh-water", d3, now + Duration::days(2)).await
    else {
        panic!("closed")
    };
    assert_eq!((b3.totals.count, b3.totals.returns_count), (1, 1));
    assert_eq!(b3.totals.returns, d("200.00"));
    assert_eq!(b3.totals.net(), d("1000.00") - d("3.00") - d("200.00"));
    // The payable is back to zero: credited 1250, settled 1250 - 200,
    // returned 200.
    let payable = app.balance("biller:sh-water:payable:CNY").await;
    assert_eq!(
        payable.posted_credits - payable.posted_debits,
        Decimal::ZERO
    );
    app.finish().await;
}
