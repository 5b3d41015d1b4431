//! Payment intake: acceptance, idempotency, every invalid-input class and
//! cross-channel isolation, against a real database.

mod common;

use billclear::client::Extra;
use billclear::domain::ids::PaymentId;
use billclear::store::PaymentStore;
use common::{payment_body, Options, TestApp};
use hyper::Method;
use serde_json::json;

#[tokio::test]
async fn an_accepted_payment_is_durable_with_its_pending_transfer_and_outbox_row() {
    let app = TestApp::spawn().await;
    let r = app
        .alipay
        .post_payment("key-1", &payment_body("order-1"))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    let p = r.json();
    assert_eq!(p["status"], "RECEIVED");
    assert_eq!(p["amount"], "88.50");
    assert_eq!(p["currency"], "CNY");
    assert!(r.headers.get("idempotent-replayed").is_none());
    let id: uuid::Uuid = p["id"].as_str().unwrap().parse().unwrap();

    assert_eq!(app.footprint().await, [1, 1, 1, 2, 1, 1]);
    let channel = app.balance("channel:alipay:receivable:CNY").await;
    let biller = app.balance("biller:sh-water:payable:CNY").await;
    assert_eq!(channel.pending_debits.to_string(), "88.50");
    assert_eq!(biller.pending_credits.to_string(), "88.50");
    assert!(channel.posted_debits.is_zero() && biller.posted_credits.is_zero());
    let events = app.store.payment_events(PaymentId(id)).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].to.as_str(), "RECEIVED");
    let outbox: (String, serde_json::Value) =
        sqlx::query_as("SELECT topic, payload FROM outbox WHERE aggregate_id = $1")
            .bind(id)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(outbox.0, "dispatch");
    assert_eq!(outbox.1["biller_id"], "sh-water");

    // Readable by id and by channel reference.
    let got = app.alipay.get(&format!("/v1/payments/{id}")).await.unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["channel_reference"], "order-1");
    assert_eq!(got.json()["created_at"], p["created_at"]);
    let found = app
        .alipay
        .get("/v1/payments?channel_reference=order-1")
        .await
        .unwrap()
        .json();
    assert_eq!(found["data"][0]["id"], p["id"]);
    let none = app
        .alipay
        .get("/v1/payments?channel_reference=nope")
        .await
        .unwrap()
        .json();
    assert_eq!(none["data"].as_array().unwrap().len(), 0);
    app.finish().await;
}

#[tokio::test]
async fn same_key_same_body_replays_and_other_body_conflicts() {
    let app = TestApp::spawn().await;
    let first = app
        .alipay
        .post_payment("key-r", &payment_body("order-r"))
        .await
        .unwrap();
    assert_eq!(first.status, 201);
    // Same meaning, other spelling of the amount: still the same request.
    let mut same = payment_body("order-r");
    same["amount"] = json!("88.5");
    let replay = app.alipay.post_payment("key-r", &same).await.unwrap();
    assert_eq!(replay.status, 201);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.json(), first.json());

    let mut other = payment_body("order-r");
    other["amount"] = json!("99.00");
    let conflict = app.alipay.post_payment("key-r", &other).await.unwrap();
    assert_eq!(
        (conflict.status.as_u16(), conflict.code().as_str()),
        (409, "idempotency_key_reused")
    );

    // A new key with a used channel reference is a duplicate payment.
    let dup = app
        .alipay
        .post_payment("key-r2", &payment_body("order-r"))
        .await
        .unwrap();
    assert_eq!(
        (dup.status.as_u16(), dup.code().as_str()),
        (409, "duplicate_channel_reference")
    );
    assert_eq!(app.footprint().await, [1, 1, 1, 2, 1, 1]);
    // The refused key stays free: it can be used for a real new payment.
    let ok = app
        .alipay
        .post_payment("key-r2", &payment_body("order-r2"))
        .await
        .unwrap();
    assert_eq!(ok.status, 201, "{:?}", ok.body);

    // Keys are scoped per channel: wechat may use "key-r" for its own payment.
    let w = app
        .wechat
        .post_payment("key-r", &payment_body("order-r"))
        .await
        .unwrap();
    assert_eq!(w.status, 201);
    assert!(w.headers.get("idempotent-replayed").is_none());
    assert_ne!(w.json()["id"], first.json()["id"]);
    app.finish().await;
}

#[tokio::test]
async fn fifty_concurrent_identical_requests_make_one_payment_and_one_journal() {
    let app = TestApp::spawn().await;
    let body = payment_body("order-c");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (c, b) = (app.alipay.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            c.post_payment("key-c", &b).await.unwrap()
        }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut replays = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 201, "{:?}", r.body);
        ids.insert(r.json()["id"].as_str().unwrap().to_string());
        replays += r.headers.contains_key("idempotent-replayed") as usize;
    }
    assert_eq!(ids.len(), 1, "every answer names the same payment");
    assert_eq!(replays, 49);
    assert_eq!(app.count("payments").await, 1);
    assert_eq!(app.count("ledger_journals").await, 1);
    assert_eq!(app.footprint().await, [1, 1, 1, 2, 1, 1]);
    app.finish().await;
}

#[tokio::test]
async fn concurrent_different_keys_same_reference_make_one_payment() {
    let app = TestApp::spawn().await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let c = app.alipay.clone();
        tasks.push(tokio::spawn(async move {
            c.post_payment(&format!("key-{i}"), &payment_body("order-same"))
                .await
                .unwrap()
        }));
    }
    let mut created = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status.as_u16() {
            201 => created += 1,
            409 => assert_eq!(r.code(), "duplicate_channel_reference"),
            s => panic!("unexpected {s}: {:?}", r.body),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(app.footprint().await, [1, 1, 1, 2, 1, 1]);
    app.finish().await;
}

/// Sends a body and expects a refusal with `code` that changes nothing.
async fn refused(app: &TestApp, body: serde_json::Value, status: u16, code: &str) {
    let before = app.footprint().await;
    let r = app
        .alipay
        .post_payment(&uuid::Uuid::new_v4().to_string(), &body)
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (status, code),
        "body {body}: {:?}",
        r.body
    );
    assert_eq!(r.headers["content-type"], "application/problem+json");
    let problem = r.json();
    assert!(!problem["detail"].as_str().unwrap_or_default().is_empty());
    assert_eq!(problem["status"], status);
    assert_eq!(
        app.footprint().await,
        before,
        "refused request {body} changed something"
    );
}

fn with(field: &str, value: serde_json::Value) -> serde_json::Value {
    let mut b = payment_body(&uuid::Uuid::new_v4().to_string());
    b[field] = value;
    b
}

#[tokio::test]
async fn every_invalid_input_class_is_refused_with_a_stable_code() {
    let app = TestApp::spawn().await;
    // Amounts.
    refused(&app, with("amount", json!(88.5)), 422, "invalid_amount").await;
    refused(&app, with("amount", json!("0.00")), 422, "invalid_amount").await;
    refused(&app, with("amount", json!("-1.00")), 422, "invalid_amount").await;
    refused(&app, with("amount", json!("1.001")), 422, "invalid_amount").await;
    refused(&app, with("amount", json!("1e3")), 422, "invalid_amount").await;
    refused(&app, with("amount", json!("12,00")), 422, "invalid_amount").await;
    refused(
        &app,
        with("amount", json!("0.99")),
        422,
        "amount_out_of_range",
    )
    .await;
    refused(
        &app,
        with("amount", json!("50000.01")),
        422,
        "amount_out_of_range",
    )
    .await;
    // Currency and biller.
    refused(
        &app,
        with("currency", json!("USD")),
        422,
        "currency_mismatch",
    )
    .await;
    refused(
        &app,
        with("biller_id", json!("no-such-biller")),
        422,
        "unknown_biller",
    )
    .await;
    let mut suspended = with("biller_id", json!("jiading-power"));
    suspended["account_number"] = json!("0306406159");
    refused(&app, suspended, 422, "biller_suspended").await;
    // Account numbers: format and check digit.
    refused(
        &app,
        with("account_number", json!("31000000")),
        422,
        "invalid_account_number",
    )
    .await;
    refused(
        &app,
        with("account_number", json!("3100000012")),
        422,
        "invalid_account_number",
    )
    .await;
    // Fields.
    let mut missing = payment_body("m");
    missing.as_object_mut().unwrap().remove("amount");
    refused(&app, missing, 422, "missing_field").await;
    refused(&app, with("surprise", json!("x")), 422, "unknown_field").await;
    refused(
        &app,
        with("channel_reference", json!("x".repeat(65))),
        422,
        "invalid_field",
    )
    .await;
    refused(
        &app,
        with("channel_reference", json!("")),
        422,
        "invalid_field",
    )
    .await;
    // Control characters are refused before the fields are read.
    refused(
        &app,
        with("bill_reference", json!("b\u{0}")),
        400,
        "invalid_characters",
    )
    .await;
    refused(
        &app,
        with("account_number", json!(3100000011u64)),
        422,
        "invalid_field",
    )
    .await;
    refused(&app, json!([1, 2]), 400, "malformed_json").await;
    app.finish().await;
}

#[tokio::test]
async fn malformed_requests_are_refused_before_anything_is_written() {
    let app = TestApp::spawn_with(Options {
        max_body_bytes: 2048,
        ..Options::default()
    })
    .await;
    let send = |body: Vec<u8>, headers: Vec<(&str, &str)>| {
        let c = app.alipay.clone();
        let headers = headers
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        async move {
            c.send(
                Method::POST,
                "/v1/payments",
                body,
                Extra {
                    headers,
                    ..Extra::default()
                },
            )
            .await
            .unwrap()
        }
    };
    let json_ct = ("content-type", "application/json");
    let r = send(
        b"{not json".to_vec(),
        vec![json_ct, ("idempotency-key", "k1")],
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (400, "malformed_json")
    );
    let body = payment_body("x").to_string().into_bytes();
    let r = send(body.clone(), vec![json_ct]).await;
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (400, "missing_idempotency_key")
    );
    let r = send(
        body.clone(),
        vec![json_ct, ("idempotency-key", "has space")],
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (400, "invalid_idempotency_key")
    );
    let long_key = "k".repeat(129);
    let r = send(body.clone(), vec![json_ct, ("idempotency-key", &long_key)]).await;
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (400, "invalid_idempotency_key")
    );
    let r = send(
        body.clone(),
        vec![("content-type", "text/plain"), ("idempotency-key", "k2")],
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (415, "unsupported_media_type")
    );
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(4096)).into_bytes();
    let r = send(big, vec![json_ct, ("idempotency-key", "k3")]).await;
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (413, "body_too_large")
    );
    assert_eq!(app.footprint().await, [0, 0, 0, 0, 0, 0]);
    app.finish().await;
}

#[tokio::test]
async fn a_biller_in_maintenance_is_refused_with_retry_after() {
    use billclear::store::BillerStore;
    let app = TestApp::spawn().await;
    let mut billers = app.store.load_billers().await.unwrap();
    let water = billers
        .iter_mut()
        .find(|b| b.id.as_str() == "sh-water")
        .unwrap();
    let now = chrono::Utc::now();
    water.maintenance = Some(billclear::domain::biller::MaintenanceWindow {
        start: now - chrono::Duration::minutes(5),
        end: now + chrono::Duration::minutes(30),
    });
    app.store
        .upsert_billers(std::slice::from_ref(water))
        .await
        .unwrap();
    app.state.billers.reload(&*app.store).await.unwrap();
    let r = app
        .alipay
        .post_payment("k-m", &payment_body("maint-1"))
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (503, "biller_in_maintenance")
    );
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1700..=1800).contains(&retry), "retry-after {retry}");
    let listed = app.alipay.get("/v1/billers").await.unwrap().json();
    let entry = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == "sh-water")
        .unwrap()
        .clone();
    assert_eq!(entry["availability"]["state"], "maintenance");
    assert_eq!(app.footprint().await, [0, 0, 0, 0, 0, 0]);
    app.finish().await;
}

#[tokio::test]
async fn a_channel_sees_only_its_own_payments() {
    let app = TestApp::spawn().await;
    let r = app
        .alipay
        .post_payment("k-x", &payment_body("mine-1"))
        .await
        .unwrap();
    let id = r.json()["id"].as_str().unwrap().to_string();
    let other = app.wechat.get(&format!("/v1/payments/{id}")).await.unwrap();
    assert_eq!(
        (other.status.as_u16(), other.code().as_str()),
        (404, "payment_not_found")
    );
    let by_ref = app
        .wechat
        .get("/v1/payments?channel_reference=mine-1")
        .await
        .unwrap()
        .json();
    assert_eq!(by_ref["data"].as_array().unwrap().len(), 0);
    let garbage = app.alipay.get("/v1/payments/not-a-uuid").await.unwrap();
    assert_eq!(garbage.status, 404);
    assert_eq!(
        app.alipay
            .get(&format!("/v1/payments/{id}"))
            .await
            .unwrap()
            .status,
        200
    );
    app.finish().await;
}

#[tokio::test]
async fn billers_list_shows_active_billers_with_rules() {
    let app = TestApp::spawn().await;
    let r = app.alipay.get("/v1/billers").await.unwrap();
    assert_eq!(r.status, 200);
    let data = r.json()["data"].as_array().unwrap().clone();
    assert!(
        data.iter().all(|b| b["id"] != "jiading-power"),
        "suspended billers are not listed"
    );
    let water = data.iter().find(|b| b["id"] == "sh-water").unwrap();
    assert_eq!(water["account_number"]["check_digit"], "luhn");
    assert_eq!(water["amount"]["min"], "1.00");
    assert_eq!(water["availability"]["state"], "available");
    assert_eq!(water["cutoff"]["timezone"], "Asia/Shanghai");
    app.finish().await;
}

#[tokio::test]
async fn a_channel_over_its_rate_gets_429() {
    let app = TestApp::spawn_with(Options {
        rate_limit_rps: 5,
        ..Options::default()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(app.alipay.get("/v1/billers").await.unwrap());
    }
    let limited: Vec<_> = statuses.iter().filter(|r| r.status == 429).collect();
    assert!(!limited.is_empty(), "12 requests at once exceed 5/s");
    assert_eq!(limited[0].code(), "rate_limited");
    assert!(limited[0].headers.contains_key("retry-after"));
    // The other channel has its own budget.
    assert_eq!(app.wechat.get("/v1/billers").await.unwrap().status, 200);
    app.finish().await;
}

#[tokio::test]
async fn an_accepted_payment_survives_a_restart_of_the_service() {
    let app = TestApp::spawn().await;
    let r = app
        .alipay
        .post_payment("k-dur", &payment_body("durable-1"))
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    let id = r.json()["id"].as_str().unwrap().to_string();
    // A second, independent process state on the same database (as after a
    // crash and restart) sees the payment and replays the key.
    let mut config = billclear::config::Config::default();
    config.database.url =
        billclear::store::postgres::with_database(&common::server_url(), &app.db_name);
    config.auth.key_cache_ttl_ms = 0;
    let store = std::sync::Arc::new(
        billclear::store::postgres::PgStore::connect(&config.database.url, 4)
            .await
            .unwrap(),
    );
    let parts = billclear::startup::Parts::api_only();
    let restarted =
        billclear::startup::Service::start(store.clone(), app.master_key.clone(), config, parts)
            .await
            .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = restarted.spawn_api(listener).unwrap();
    let mut client = app.alipay.clone();
    client.set_base(&base);
    let got = client.get(&format!("/v1/payments/{id}")).await.unwrap();
    assert_eq!(got.status, 200);
    let replay = client
        .post_payment("k-dur", &payment_body("durable-1"))
        .await
        .unwrap();
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.json()["id"], id.as_str());
    store.pool().close().await;
    app.finish().await;
}

#[tokio::test]
async fn when_the_database_is_gone_nothing_is_acknowledged() {
    let app = TestApp::spawn().await;
    app.store.pool().close().await;
    let r = app
        .alipay
        .post_payment("k-down", &payment_body("down-1"))
        .await
        .unwrap();
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(r.code(), "store_unavailable");
    assert!(r.headers.contains_key("retry-after"));
    let ready = app.alipay.get("/readyz").await.unwrap();
    assert_eq!(
        (ready.status.as_u16(), ready.code().as_str()),
        (503, "not_ready")
    );
    // Nothing was written: check through a fresh connection, then clean up.
    let url = billclear::store::postgres::with_database(&common::server_url(), &app.db_name);
    let fresh = billclear::store::postgres::PgStore::connect(&url, 2)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(fresh.pool())
        .await
        .unwrap();
    assert_eq!(n, 0);
    fresh.pool().close().await;
    let _ = billclear::store::postgres::drop_database(&common::server_url(), &app.db_name).await;
}

#[tokio::test]
async fn control_characters_from_outside_are_refused_before_the_store() {
    let app = TestApp::spawn().await;
    // The fuzzer's finding: a NUL in the query reached PostgreSQL (500).
    let r = app
        .alipay
        .get("/v1/payments?channel_reference=%00")
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.json()["code"], "invalid_characters");
    assert_eq!(r.json()["field"], "channel_reference");
    assert_eq!(r.headers["content-type"], "application/problem+json");
    // In the path.
    let r = app.alipay.get("/v1/payments/%00").await.unwrap();
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.json()["field"], "path");
    // In a JSON string: refused, naming the field, and nothing is accepted.
    let mut body = payment_body("ctl-1");
    body["account_number"] = serde_json::json!("1234\u{0}5678");
    let r = app.alipay.post_payment("k-ctl-1", &body).await.unwrap();
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.json()["code"], "invalid_characters");
    assert_eq!(r.json()["field"], "account_number");
    let mut body = payment_body("ctl-2");
    body["channel_reference"] = serde_json::json!("ctl-2\u{1b}[31m");
    let r = app.alipay.post_payment("k-ctl-2", &body).await.unwrap();
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.json()["field"], "channel_reference");
    let found = app
        .alipay
        .get("/v1/payments?channel_reference=ctl-1")
        .await
        .unwrap();
    assert_eq!(found.status, 200);
    assert_eq!(found.json()["data"], serde_json::json!([]));
    app.finish().await;
}
