//! Push-back: a biller whose deliveries fall behind gets its new payments
//! refused (503 biller_backlogged, Retry-After), nothing of them written,
//! while other billers' payments are taken; the refusals are counted for
//! `billclear routes list`; once the backlog drains the same request,
//! retried with the same Idempotency-Key, is taken.

mod common;

use std::time::{Duration, Instant};

use billclear::domain::payment::PaymentStatus;
use billclear::domain::routing::RouteState;
use billclear::store::BillerStore;
use biller_sim::Faults;
use common::{Options, TestApp};

fn water(reference: &str) -> serde_json::Value {
    serde_json::json!({
        "biller_id": "sh-water",
        "account_number": "3100000011",
        "amount": "12.30",
        "currency": "CNY",
        "channel_reference": reference,
    })
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    secs: u64,
    mut f: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_backlogged_biller_is_refused_others_are_not_and_the_retry_is_taken_once_it_drains() {
    let app = TestApp::spawn_with(Options {
        dispatch: true,
        backlog_max_age_ms: 500,
        backlog_refresh_ms: 100,
        ..Options::default()
    })
    .await;
    // The water company goes down: its route's circuit opens (heartbeats
    // fail), so its new payments wait, unsent.
    app.sim().set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    wait_until("the water route's circuit opens", 10, || async {
        app.state.routes.state("water-direct") == Some(RouteState::Open)
    })
    .await;
    let waiting = app.pay("3100000011", "10.00").await;
    assert_eq!(app.status(waiting).await, PaymentStatus::Received);

    // Past the bound (and a refresh), new water payments are refused.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(app.status(waiting).await, PaymentStatus::Received);
    let before = app.footprint().await;
    let refused = app
        .alipay
        .post_payment("backlog-key-1", &water("backlog-ref-1"))
        .await
        .unwrap();
    assert_eq!(refused.status, 503, "{:?}", refused.json());
    assert_eq!(refused.code(), "biller_backlogged");
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "Retry-After {retry_after}");
    let detail = refused.json()["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains("sh-water") && detail.contains("Idempotency-Key"),
        "{detail}"
    );
    assert_eq!(
        refused.headers["content-type"], "application/problem+json",
        "a refusal is a problem"
    );
    // Nothing of the refused payment was written.
    assert_eq!(app.footprint().await, before, "a refusal writes nothing");

    // Another biller's payment is taken meanwhile.
    let power = app.pay_to("sh-power", "0306406159", "20.00").await;
    assert!(app.status(power).await != PaymentStatus::Settled);

    // The refusals are counted where `billclear routes list` reads them.
    let since = chrono::Utc::now() - chrono::Duration::seconds(60);
    wait_until("the refusal is stored", 5, || async {
        app.store
            .backlog(since)
            .await
            .unwrap()
            .iter()
            .any(|r| r.biller_id == "sh-water" && r.refused >= 1 && r.refusing_since.is_some())
    })
    .await;
    let rows = app.store.backlog(since).await.unwrap();
    assert!(
        rows.iter().all(|r| r.biller_id == "sh-water"),
        "only the backlogged biller has refusals: {rows:?}"
    );
    let oldest = app.store.oldest_waiting().await.unwrap();
    assert!(oldest.iter().any(|(b, _)| b == "sh-water"), "{oldest:?}");

    // The water company comes back: the waiting payment is delivered, the
    // backlog drains and the refused request, retried with its key, is
    // taken (once).
    app.sim().set_faults(Faults::default());
    app.wait_for(waiting, &[PaymentStatus::Confirmed], 20).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let accepted = loop {
        let r = app
            .alipay
            .post_payment("backlog-key-1", &water("backlog-ref-1"))
            .await
            .unwrap();
        match r.status.as_u16() {
            201 => break r,
            503 => assert_eq!(r.code(), "biller_backlogged"),
            other => panic!("unexpected answer {other}: {:?}", r.json()),
        }
        assert!(
            Instant::now() < deadline,
            "the retried payment is not taken"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(accepted.headers.get("idempotent-replayed").is_none());
    let id: uuid::Uuid = accepted.json()["id"].as_str().unwrap().parse().unwrap();
    app.wait_for(
        billclear::domain::ids::PaymentId(id),
        &[PaymentStatus::Confirmed],
        20,
    )
    .await;
    // Sent again, the same key replays the first answer.
    let replay = app
        .alipay
        .post_payment("backlog-key-1", &water("backlog-ref-1"))
        .await
        .unwrap();
    assert_eq!(replay.status, 201);
    assert_eq!(replay.json()["id"], accepted.json()["id"]);
    // Every payment credited once, our books equal the biller's.
    app.assert_books_match().await;
    app.finish().await;
}

#[tokio::test]
async fn without_a_bound_nothing_is_refused() {
    let app = TestApp::spawn_with(Options {
        backlog_max_age_ms: 0,
        backlog_refresh_ms: 100,
        ..Options::default()
    })
    .await;
    // No workers: the first payment waits for ever.
    app.pay("3100000011", "10.00").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    for i in 0..3 {
        let r = app
            .alipay
            .post_payment(&format!("k{i}"), &water(&format!("r{i}")))
            .await
            .unwrap();
        assert_eq!(r.status, 201, "{:?}", r.json());
    }
    assert!(app.state.backlog.check("sh-water").is_none());
    assert_eq!(app.state.backlog.refused("sh-water"), 0);
    app.close().await;
}
