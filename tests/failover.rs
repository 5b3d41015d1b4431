//! Routes and failover: the hub first, the water company direct second.
//! Every test ends with our books compared with the hub's and the biller's
//! together: every accepted payment credited exactly once across them.

mod common;

use std::time::Duration;

use billclear::domain::payment::PaymentStatus::*;
use billclear::store::BillerStore;
use biller_sim::Faults;
use common::{Options, TestApp};

const ACCOUNT: &str = "3100000011";

async fn app() -> TestApp {
    TestApp::spawn_with(Options {
        dispatch: true,
        hub: true,
        ..Options::default()
    })
    .await
}

async fn routes_used(app: &TestApp) -> std::collections::BTreeMap<String, i64> {
    let rows: Vec<(Option<String>, i64)> =
        sqlx::query_as("SELECT connector_id, count(*) FROM payments GROUP BY connector_id")
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    rows.into_iter()
        .map(|(c, n)| (c.unwrap_or_else(|| "none".into()), n))
        .collect()
}

#[tokio::test]
async fn payments_go_through_the_hub_first() {
    let app = app().await;
    let id = app.pay(ACCOUNT, "10.00").await;
    assert_eq!(
        app.wait_for(id, &[Confirmed, Rejected], 10).await,
        Confirmed
    );
    let hub = app.hub.as_ref().unwrap();
    assert_eq!(hub.credits().len(), 1);
    assert!(app.sim().credits().is_empty());
    let r = app.alipay.get("/v1/billers").await.unwrap();
    let water = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == "sh-water")
        .cloned()
        .unwrap();
    assert_eq!(water["routes"][0]["id"], "hub");
    assert_eq!(water["routes"][0]["state"], "closed");
    assert_eq!(water["routes"][1]["id"], "water-direct");
    app.finish().await;
}

#[tokio::test]
async fn the_hub_going_down_under_load_fails_over_without_double_credit() {
    let app = app().await;
    let hub = app.hub.as_ref().unwrap();
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(app.pay(ACCOUNT, &format!("{}.10", 20 + i)).await);
    }
    for id in &ids {
        app.wait_for(*id, &[Confirmed], 10).await;
    }
    // The hub applies the next payments but their answers are lost, then
    // swallows everything: its circuit opens.
    hub.set_faults(Faults {
        drop_response_next: 3,
        ..Faults::default()
    });
    let mut during = Vec::new();
    for i in 0..3 {
        during.push(app.pay(ACCOUNT, &format!("{}.20", 30 + i)).await);
    }
    for id in &during {
        app.wait_for(*id, &[Unknown], 10).await;
    }
    hub.set_faults(Faults {
        blackhole: true,
        ..Faults::default()
    });
    // The heartbeat finds the hub silent and opens its circuit.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.state.routes.state("hub") == Some(billclear::domain::routing::RouteState::Closed) {
        assert!(
            std::time::Instant::now() < deadline,
            "the hub's circuit never opened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Under load while the hub is down: new payments flow direct.
    for i in 0..30 {
        during.push(app.pay(ACCOUNT, &format!("{}.30", 40 + i)).await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while app.sim().credits().len() < 30 {
        assert!(
            std::time::Instant::now() < deadline,
            "payments did not fail over: {:?}",
            routes_used(&app).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The hub comes back: the unknowns on it are settled by inquiry there,
    // never re-sent direct.
    hub.set_faults(Faults::default());
    for id in ids.iter().chain(&during) {
        app.wait_for(*id, &[Confirmed, Rejected], 20).await;
    }
    let first_three_confirmed = {
        let mut n = 0;
        for id in &during[..3] {
            if app.status(*id).await == Confirmed {
                n += 1;
            }
        }
        n
    };
    assert_eq!(
        first_three_confirmed, 3,
        "applied at the hub, confirmed by inquiry there"
    );
    let used = routes_used(&app).await;
    assert!(
        used.get("water-direct").copied().unwrap_or(0) >= 25,
        "{used:?}"
    );
    assert!(used.get("hub").copied().unwrap_or(0) >= 13, "{used:?}");
    let everything = app.hub.as_ref().unwrap().credits().len() + app.sim().credits().len();
    let confirmed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM payments WHERE status = 'CONFIRMED'")
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(
        everything as i64, confirmed,
        "credited exactly once across the books"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_planned_switch_sends_new_payments_direct() {
    let app = app().await;
    let biller = billclear::domain::ids::BillerId::parse("sh-water").unwrap();
    let direct = billclear::domain::ids::ConnectorId::parse("water-direct").unwrap();
    app.store
        .set_preferred_route(&biller, Some(&direct))
        .await
        .unwrap();
    app.state.billers.reload(&*app.state.store).await.unwrap();
    let id = app.pay(ACCOUNT, "12.00").await;
    assert_eq!(
        app.wait_for(id, &[Confirmed, Rejected], 10).await,
        Confirmed
    );
    assert_eq!(app.sim().credits().len(), 1);
    assert!(app.hub.as_ref().unwrap().credits().is_empty());
    // A route the biller does not have is refused.
    let nowhere = billclear::domain::ids::ConnectorId::parse("gas-direct").unwrap();
    assert!(app
        .store
        .set_preferred_route(&biller, Some(&nowhere))
        .await
        .is_err());
    // Back to the priority order.
    app.store.set_preferred_route(&biller, None).await.unwrap();
    app.state.billers.reload(&*app.state.store).await.unwrap();
    let id = app.pay(ACCOUNT, "13.00").await;
    assert_eq!(
        app.wait_for(id, &[Confirmed, Rejected], 10).await,
        Confirmed
    );
    assert_eq!(app.hub.as_ref().unwrap().credits().len(), 1);
    app.finish().await;
}

#[tokio::test]
async fn a_hub_that_cuts_us_off_is_routed_around() {
    let app = app().await;
    let hub = app.hub.as_ref().unwrap();
    hub.set_cut_off(true);
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(app.pay(ACCOUNT, &format!("{}.40", 50 + i)).await);
    }
    for id in &ids {
        assert_eq!(
            app.wait_for(*id, &[Confirmed, Rejected], 20).await,
            Confirmed
        );
    }
    assert!(hub.credits().is_empty(), "the hub applied nothing");
    assert_eq!(app.sim().credits().len(), 8);
    app.finish().await;
}

/// One payment to each kind of biller, with the given counterparts' answers
/// dropped after they applied the payment: each confirmed once, by inquiry.
async fn drop_answers_everywhere(app: &TestApp) {
    let payments = [
        ("sh-water", "3100000011"),
        ("sh-power", "0306406159"),
        ("sh-gas", "310012345677"),
        ("minhang-gas", "123456782"),
    ];
    let mut ids = Vec::new();
    for round in 0..3 {
        for (biller, account) in payments {
            ids.push(
                app.pay_to(biller, account, &format!("{}.{round}5", 60 + ids.len()))
                    .await,
            );
        }
    }
    for id in &ids {
        assert_eq!(
            app.wait_for(*id, &[Confirmed, Rejected], 20).await,
            Confirmed
        );
    }
    let unknown_first: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT payment_id) FROM payment_events WHERE to_status = 'UNKNOWN'",
    )
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert!(
        unknown_first >= 4,
        "dropped answers made payments UNKNOWN: {unknown_first}"
    );
    assert_eq!(
        app.all_credits().len(),
        ids.len(),
        "one credit per payment across the books"
    );
}

#[tokio::test]
async fn apply_then_drop_on_every_direct_protocol_never_double_credits() {
    let app = TestApp::spawn_with(Options {
        dispatch: true,
        direct_all: true,
        ..Options::default()
    })
    .await;
    let drop = Faults {
        drop_response_next: 2,
        ..Faults::default()
    };
    app.sim().set_faults(drop.clone());
    app.power.as_ref().unwrap().set_faults(drop.clone());
    app.gas.as_ref().unwrap().set_faults(drop);
    drop_answers_everywhere(&app).await;
    assert_eq!(app.sim().pay_requests(), 3, "water: no payment sent twice");
    assert_eq!(app.power.as_ref().unwrap().pay_requests(), 3);
    assert_eq!(app.gas.as_ref().unwrap().pay_requests(), 6);
    app.finish().await;
}

#[tokio::test]
async fn apply_then_drop_through_the_hub_never_double_credits() {
    let app = TestApp::spawn_with(Options {
        dispatch: true,
        hub: true,
        direct_all: true,
        ..Options::default()
    })
    .await;
    let hub = app.hub.as_ref().unwrap();
    hub.set_faults(Faults {
        drop_response_next: 4,
        ..Faults::default()
    });
    drop_answers_everywhere(&app).await;
    // The four dropped answers happened at the hub. Its timeouts may open
    // its circuit (3 failures open it here), and later payments then go
    // direct: either way each is credited once across all the books
    // (checked above and by finish()).
    assert!(hub.pay_requests() >= 4, "{}", hub.pay_requests());
    let direct = app.sim().pay_requests()
        + app.power.as_ref().unwrap().pay_requests()
        + app.gas.as_ref().unwrap().pay_requests();
    assert_eq!(hub.pay_requests() + direct, 12, "nothing sent twice");
    app.finish().await;
}

async fn ops(
    app: &TestApp,
    method: hyper::Method,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> billclear::client::Reply {
    app.alipay
        .send(
            method,
            path,
            body.as_bytes().to_vec(),
            billclear::client::Extra {
                // An empty Authorization means none at all.
                authorization: Some(token.map(|t| format!("Bearer {t}")).unwrap_or_default()),
                headers: vec![("content-type".into(), "application/json".into())],
                ..Default::default()
            },
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn operators_switch_routes_over_their_api_and_only_they_can() {
    let app = app().await;
    use hyper::Method;
    let r = ops(&app, Method::GET, "/ops/v1/billers", None, "").await;
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (401, "missing_operator_token")
    );
    let r = ops(&app, Method::GET, "/ops/v1/billers", Some("guess"), "").await;
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (401, "bad_operator_token")
    );
    // A channel's signed request is not an operator's.
    let r = app.alipay.get("/ops/v1/billers").await.unwrap();
    assert_eq!(r.status, 401);
    // Nor is the operator token a channel's credential.
    let r = ops(
        &app,
        Method::GET,
        "/v1/billers",
        Some(common::OPS_TOKEN),
        "",
    )
    .await;
    assert_eq!(r.status, 401);

    let r = ops(
        &app,
        Method::GET,
        "/ops/v1/billers",
        Some(common::OPS_TOKEN),
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["id"] == "jiading-power"),
        "suspended billers too"
    );

    let path = "/ops/v1/billers/sh-water/route";
    let r = ops(
        &app,
        Method::PUT,
        path,
        Some(common::OPS_TOKEN),
        r#"{"route":"gas-direct"}"#,
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (422, "unknown_route")
    );
    let r = ops(
        &app,
        Method::PUT,
        "/ops/v1/billers/nowhere/route",
        Some(common::OPS_TOKEN),
        r#"{"route":null}"#,
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (404, "unknown_biller")
    );
    // An empty body is not taken for "back to the priority order".
    let r = ops(&app, Method::PUT, path, Some(common::OPS_TOKEN), "{}").await;
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (400, "invalid_json"),
        "{:?}",
        r.json()
    );
    let r = ops(
        &app,
        Method::PUT,
        path,
        Some(common::OPS_TOKEN),
        r#"{"route":"water-direct"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["routes"][0]["id"], "water-direct");
    assert_eq!(r.json()["routes"][0]["preferred"], true);
    let id = app.pay(ACCOUNT, "14.00").await;
    assert_eq!(
        app.wait_for(id, &[Confirmed, Rejected], 10).await,
        Confirmed
    );
    assert_eq!(app.sim().credits().len(), 1, "sent direct after the switch");
    let r = ops(
        &app,
        Method::PUT,
        path,
        Some(common::OPS_TOKEN),
        r#"{"route":null}"#,
    )
    .await;
    assert_eq!(r.json()["routes"][0]["id"], "hub");
    app.finish().await;
}

#[tokio::test]
async fn bill_inquiries_through_the_hub_map_its_refusals() {
    let app = app().await;
    let r = app
        .alipay
        .get("/v1/billers/sh-power/bills?account=0306406159")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.headers.get("billclear-inquiry-source").unwrap(), "biller");
    // A well-formed account the hub does not know: its own code (2001)
    // means what the water company's 1001 means.
    let r = app
        .alipay
        .get("/v1/billers/sh-water/bills?account=1234567897")
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (404, "account_not_found")
    );
    app.finish().await;
}
