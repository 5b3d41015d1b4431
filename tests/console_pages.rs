//! The console's payments, settlement and routes pages against the real
//! service and database: finding a payment by each of its keys (the
//! account never shown in full), a payment's story, a date's batches and
//! their files, and the two-step route switch (roles, CSRF, audit).

mod common;

use billclear::client::{csrf_of, ConsoleClient};
use billclear::domain::payment::PaymentStatus;
use billclear::domain::staff::StaffRole;
use billclear::settlement::close::{close_date, Closing, When};
use billclear::settlement::render::BatchRenderer;
use billclear::store::CloseOutcome;
use chrono::Utc;
use common::{Options, TestApp};
use sha2::{Digest, Sha256};

const ACCOUNT: &str = "3100000011";

async fn csrf(c: &mut ConsoleClient, path: &str) -> String {
    let page = c.get(path).await.unwrap();
    assert_eq!(page.status, 200, "{path}: {}", page.text());
    csrf_of(&page.text()).expect("a csrf token on the page")
}

#[tokio::test]
async fn payments_are_found_by_each_key_and_their_page_tells_their_story() {
    let app = TestApp::spawn_with(Options {
        dispatch: true,
        ..Default::default()
    })
    .await;
    let id = app.pay(ACCOUNT, "12.34").await;
    app.wait_for(id, &[PaymentStatus::Confirmed], 20).await;
    let (channel_ref, biller_ref): (String, Option<String>) =
        sqlx::query_as("SELECT channel_reference, biller_reference FROM payments WHERE id = $1")
            .bind(id.0)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    let biller_ref = biller_ref.expect("a confirmed payment has the biller's reference");
    let (mut c, _) = app.console_as("vera", StaffRole::Viewer).await;
    let link = format!("/console/payments/{id}");
    for q in [
        id.to_string(),
        channel_ref.clone(),
        biller_ref.clone(),
        ACCOUNT.to_string(),
    ] {
        let r = c
            .get(&format!("/console/payments?q={}", urlencode(&q)))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{q}");
        let text = r.text();
        assert!(text.contains(&link), "{q}: {text}");
        assert!(text.contains("******0011"), "{q}: masked account");
        assert!(!text.contains(ACCOUNT), "{q}: the account in full");
        assert!(text.contains("12.34 CNY"), "{q}");
    }
    let r = c.get("/console/payments?q=nothing-like-it").await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("id=\"no-results\""));
    assert!(!r.text().contains(&link));

    // The payment's page: states, the pay attempt, the journals with
    // their entries, the callback; the account masked.
    let r = c.get(&link).await.unwrap();
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(!text.contains(ACCOUNT), "the account in full");
    assert!(text.contains("******0011"));
    assert!(
        text.contains("RECEIVED") && text.contains("CONFIRMED"),
        "{text}"
    );
    assert!(text.contains("data-kind=\"pay\""), "a pay attempt: {text}");
    assert!(text.contains("credited"), "its outcome: {text}");
    assert!(
        text.contains("data-kind=\"pending\""),
        "the pending journal: {text}"
    );
    assert!(text.contains("data-kind=\"post\""), "its posting: {text}");
    assert!(text.contains("payment.confirmed"), "the callback: {text}");
    assert!(text.contains(&biller_ref));

    // Bad and unknown ids are named.
    let r = c.get("/console/payments/not-a-uuid").await.unwrap();
    assert_eq!(r.status, 404);
    assert!(r.text().contains("not a payment id"));
    let r = c
        .get(&format!("/console/payments/{}", uuid::Uuid::new_v4()))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    app.finish().await;
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn the_settlement_page_lists_a_closed_batch_and_serves_its_files() {
    let app = TestApp::spawn_with(Options {
        dispatch: true,
        ..Default::default()
    })
    .await;
    app.pay_confirmed(&["120.00", "80.00"]).await;
    let billers = app.store_billers().await;
    let now = Utc::now();
    let water = billers
        .iter()
        .find(|b| b.id.as_str() == "sh-water")
        .unwrap();
    let date = water.cutoff.business_date_of(now);
    let out = close_date(
        &*app.state.store,
        &billers,
        date,
        Some("sh-water"),
        When::Early,
        &app.state.config.settlement.debtor,
        now,
    )
    .await
    .unwrap();
    let batch = match out.into_iter().next().unwrap().1 {
        Closing::Closed(CloseOutcome::Closed(b)) => b,
        other => panic!("{other:?}"),
    };
    BatchRenderer::new(
        app.state.store.clone(),
        app.state.config.settlement.outbox_dir.clone(),
    )
    .render(batch.id)
    .await
    .unwrap();
    let files = app.state.store.batch_files(batch.id).await.unwrap();
    assert!(!files.is_empty());

    let (mut c, _) = app.console_as("vera", StaffRole::Viewer).await;
    let r = c.get("/console/settlement").await.unwrap();
    assert_eq!(r.status, 303);
    assert!(r.location().unwrap().starts_with("/console/settlement/20"));
    let r = c.get(&format!("/console/settlement/{date}")).await.unwrap();
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.contains(&format!("id=\"{}\"", batch.id)), "{text}");
    assert!(text.contains("200.00 CNY"), "gross: {text}");
    for f in &files {
        let href = format!("/console/settlement/{}/files/{}", batch.id, f.name);
        assert!(text.contains(&href), "{href}: {text}");
        let got = c.get(&href).await.unwrap();
        assert_eq!(got.status, 200, "{href}");
        assert_eq!(hex::encode(Sha256::digest(&got.body)), f.sha256);
    }
    // Only names recorded for the batch; bad dates named.
    let r = c
        .get(&format!(
            "/console/settlement/{}/files/..%2F..%2Fmaster.key",
            batch.id
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let r = c
        .get(&format!(
            "/console/settlement/{}/files/x.csv",
            uuid::Uuid::new_v4()
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let r = c.get("/console/settlement/2026-13-01").await.unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("is not a date"));
    app.finish().await;
}

async fn preferred(app: &TestApp, biller: &str) -> Option<String> {
    sqlx::query_scalar("SELECT preferred_route FROM billers WHERE id = $1")
        .bind(biller)
        .fetch_one(app.store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn routes_are_switched_by_operators_in_two_steps_and_audited() {
    let app = TestApp::spawn().await;
    let biller = "sh-water";
    let routes: Vec<String> = app
        .store_billers()
        .await
        .into_iter()
        .find(|b| b.id.as_str() == biller)
        .unwrap()
        .routes
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert!(routes.len() >= 2, "{routes:?}");
    let (first, second) = (routes[0].clone(), routes[1].clone());
    // A payment in flight on the current (first) route.
    let id = app.pay(ACCOUNT, "5.00").await;
    sqlx::query("UPDATE payments SET status = 'SUBMITTED', connector_id = $2 WHERE id = $1")
        .bind(id.0)
        .bind(&first)
        .execute(app.store.pool())
        .await
        .unwrap();
    let switch = format!("/console/routes/{biller}/switch");
    let confirm = format!("/console/routes/{biller}/switch/confirm");

    // A viewer sees the routes but cannot switch.
    let (mut v, _) = app.console_as("vera", StaffRole::Viewer).await;
    let token = csrf(&mut v, "/console/routes").await;
    let page = v.get("/console/routes").await.unwrap().text();
    assert!(page.contains(&format!("data-biller=\"{biller}\"")));
    assert!(page.contains(&format!("data-route=\"{second}\"")));
    assert!(!page.contains("/switch"), "no switch form for a viewer");
    for path in [&switch, &confirm] {
        let r = v
            .post_form(path, &[("csrf", &token), ("route", &second)])
            .await
            .unwrap();
        assert_eq!(r.status, 403, "{path}");
    }
    assert_eq!(preferred(&app, biller).await, None);

    // An operator's first step only shows what the switch would do.
    let (mut o, _) = app.console_as("otto", StaffRole::Operator).await;
    let token = csrf(&mut o, "/console/routes").await;
    let page = o.get("/console/routes").await.unwrap().text();
    assert!(page.contains(&format!("action=\"{switch}\"")), "{page}");
    let r = o.post_form(&switch, &[("route", &second)]).await.unwrap();
    assert_eq!(r.status, 403, "no CSRF token");
    let r = o
        .post_form(&switch, &[("csrf", &token), ("route", &second)])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(text.contains("id=\"in-flight-count\">1<"), "{text}");
    assert!(text.contains(&format!("/console/payments/{id}")), "{text}");
    assert!(text.contains(&format!("action=\"{confirm}\"")), "{text}");
    assert_eq!(preferred(&app, biller).await, None);

    // Refused: no CSRF token, a route not the biller's, an unknown biller.
    let r = o.post_form(&confirm, &[("route", &second)]).await.unwrap();
    assert_eq!(r.status, 403);
    let r = o
        .post_form(&confirm, &[("csrf", &token), ("route", "power-direct")])
        .await
        .unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    let r = o
        .post_form(
            "/console/routes/no-such-biller/switch/confirm",
            &[("csrf", &token), ("route", "")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(preferred(&app, biller).await, None);
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM staff_audit WHERE subject_kind = 'biller'")
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(audited, 0);

    // Confirmed: switched, and the audit shows it.
    let r = o
        .post_form(&confirm, &[("csrf", &token), ("route", &second)])
        .await
        .unwrap();
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(preferred(&app, biller).await, Some(second.clone()));
    let page = o.get("/console/routes").await.unwrap().text();
    assert!(page.contains("route-switch"), "{page}");
    assert!(page.contains("otto"));
    let (action, detail): (String, serde_json::Value) = sqlx::query_as(
        "SELECT action, detail FROM staff_audit WHERE subject_kind = 'biller' AND subject = $1",
    )
    .bind(biller)
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(action, "route-switch");
    assert_eq!(detail["from"], first);
    assert_eq!(detail["to"], second);
    assert_eq!(detail["in_flight"], 1);

    // Back to the priority order.
    let r = o
        .post_form(&confirm, &[("csrf", &token), ("route", "")])
        .await
        .unwrap();
    assert_eq!(r.status, 303);
    assert_eq!(preferred(&app, biller).await, None);
    app.finish().await;
}
