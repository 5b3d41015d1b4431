//! Complaints and refunds through the real service: signed requests over
//! HTTP, a real PostgreSQL, the water simulator on a real socket (in an
//! outage, or never answering), the investigator as the duty it runs as,
//! callbacks received by a real receiver.

mod common;

use std::time::Duration;

use billclear::client::{Extra, Reply, SignedClient};
use billclear::domain::ids::PaymentId;
use billclear::domain::payment::PaymentStatus;
use billclear::settlement::close::{close_date, Closing, When};
use billclear::store::CloseOutcome;
use biller_sim::Faults;
use chrono::{DateTime, Duration as Days, NaiveDate, Utc};
use common::{Options, TestApp};
use hyper::Method;
use serde_json::{json, Value};

async fn app() -> TestApp {
    TestApp::spawn_with(Options {
        dispatch: true,
        ..Options::default()
    })
    .await
}

async fn raise(client: &SignedClient, key: &str, body: &Value) -> Reply {
    client
        .post_idempotent("/v1/complaints", key, body)
        .await
        .unwrap()
}

fn complaint(payment: PaymentId, kind: &str) -> Value {
    json!({"payment_id": payment.to_string(), "type": kind, "description": "the customer says so"})
}

/// Waits until complaint `id` is in `status`; returns it.
async fn wait_status(app: &TestApp, id: &str, status: &str, secs: u64) -> Value {
    let until = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let r = app
            .alipay
            .get(&format!("/v1/complaints/{id}"))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let c = r.json();
        if c["status"] == status {
            return c;
        }
        assert!(
            std::time::Instant::now() < until,
            "complaint {id} is {} after {secs} s, not {status}: {c}",
            c["status"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The complaint callbacks the app received (verified signatures only).
fn complaint_callbacks(app: &TestApp, id: &str) -> Vec<Value> {
    app.receiver()
        .received()
        .into_iter()
        .filter(|r| r.verified.is_ok() && r.event["complaint"]["id"] == id)
        .map(|r| r.event)
        .collect()
}

async fn wait_callback(app: &TestApp, id: &str, kind: &str) {
    for _ in 0..200 {
        if complaint_callbacks(app, id)
            .iter()
            .any(|e| e["type"] == kind)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no {kind} callback for complaint {id}: {:?}",
        complaint_callbacks(app, id)
    );
}

/// A new staff user's token.
async fn staff_token(app: &TestApp, id: &str, role: billclear::domain::staff::StaffRole) -> String {
    billclear::cli::staff::add_staff(&*app.store, id, id, role)
        .await
        .unwrap()
        .1
        .expose_text()
        .to_string()
}

async fn refunds_of(app: &TestApp, payment: PaymentId) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM refunds WHERE payment_id = $1")
        .bind(payment.0)
        .fetch_one(app.store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn not_credited_is_resolved_by_the_billers_answer_to_a_status_inquiry() {
    let app = app().await;
    let ids = app.pay_confirmed(&["88.00"]).await;
    let r = raise(&app.alipay, "c-1", &complaint(ids[0], "not_credited")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let c = r.json();
    assert_eq!(c["status"], "OPEN");
    assert_eq!(c["type"], "not_credited");
    let id = c["id"].as_str().unwrap().to_string();
    // Due in business days of the biller's calendar: at least a day ahead.
    let due: DateTime<Utc> = c["due_at"].as_str().unwrap().parse().unwrap();
    assert!(due > Utc::now() + Days::hours(12), "{due}");

    let before = app.sim().traffic().stats().calls;
    let done = wait_status(&app, &id, "RESOLVED", 10).await;
    assert_eq!(done["outcome"], "credit_confirmed");
    let ours = billclear::store::PaymentStore::payment(
        &*app.store,
        &billclear::domain::ids::ChannelId::parse("alipay").unwrap(),
        ids[0],
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        done["biller_reference"].as_str(),
        ours.biller_reference.as_deref()
    );
    assert!(done["credited_at"].is_string());
    // The biller was asked (a status inquiry by our reference).
    assert!(app.sim().traffic().stats().calls > before);
    wait_callback(&app, &id, "complaint.resolved").await;
    // The same key and body: the complaint as it stands, replayed.
    let again = raise(&app.alipay, "c-1", &complaint(ids[0], "not_credited")).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.json()["id"], id.as_str());
    assert_eq!(again.json()["status"], "RESOLVED");
    // Resolved: a new complaint of the type may be raised.
    let second = raise(&app.alipay, "c-2", &complaint(ids[0], "not_credited")).await;
    assert_eq!(second.status, 201, "{}", second.text());
    app.finish().await;
}

#[tokio::test]
async fn a_complaint_waits_out_a_billers_outage_and_is_resolved_when_it_is_back() {
    let app = app().await;
    let ids = app.pay_confirmed(&["42.00"]).await;
    app.sim().set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    let r = raise(&app.alipay, "c-out", &complaint(ids[0], "not_credited")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let pending = wait_status(&app, &id, "PENDING_BILLER", 10).await;
    assert!(pending["outcome"].is_null());
    wait_callback(&app, &id, "complaint.pending_biller").await;
    // Asked again while down: still waiting, nothing decided.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let still = wait_status(&app, &id, "PENDING_BILLER", 1).await;
    assert!(still["resolved_at"].is_null());
    app.sim().set_faults(Faults::default());
    let done = wait_status(&app, &id, "RESOLVED", 15).await;
    assert_eq!(done["outcome"], "credit_confirmed");
    wait_callback(&app, &id, "complaint.resolved").await;
    // The trail holds each look.
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM complaint_events WHERE complaint_id = $1::uuid")
            .bind(&id)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert!(events >= 3, "{events}");
    app.finish().await;
}

#[tokio::test]
async fn paid_twice_raised_twice_at_once_is_refunded_once() {
    let app = app().await;
    // The same bill paid twice: same account, same amount.
    let ids = app.pay_confirmed(&["120.00", "120.00"]).await;
    let (a, b) = (ids[0], ids[1]);
    // Raised on both payments, and twice on the first, all at once.
    let bodies = [
        ("k-a1", complaint(a, "paid_twice")),
        ("k-a2", complaint(a, "paid_twice")),
        ("k-b1", complaint(b, "paid_twice")),
    ];
    let replies =
        futures_util::future::join_all(bodies.iter().map(|(k, body)| raise(&app.alipay, k, body)))
            .await;
    let codes: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    // One of the two on payment a is a 409 naming the other.
    let mut on_a = vec![codes[0], codes[1]];
    on_a.sort();
    assert_eq!(on_a, vec![201, 409], "{codes:?}");
    assert_eq!(codes[2], 201);
    let conflict = replies.iter().find(|r| r.status == 409).unwrap();
    assert_eq!(conflict.code(), "complaint_open");
    let open_on_a = replies[..2]
        .iter()
        .find(|r| r.status == 201)
        .unwrap()
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(conflict.text().contains(&open_on_a), "{}", conflict.text());
    let on_b = replies[2].json()["id"].as_str().unwrap().to_string();

    let ca = wait_status(&app, &open_on_a, "RESOLVED", 10).await;
    let cb = wait_status(&app, &on_b, "RESOLVED", 10).await;
    assert_eq!(ca["outcome"], "refunded");
    assert_eq!(cb["outcome"], "refunded");
    // One refund, of the later payment, made by rule before settlement.
    assert_eq!(app.count("refunds").await, 1);
    assert_eq!(refunds_of(&app, b).await, 1);
    assert_eq!(refunds_of(&app, a).await, 0);
    assert_eq!(app.status(b).await, PaymentStatus::Returned);
    assert_eq!(app.status(a).await, PaymentStatus::Confirmed);
    let (how, by): (String, String) =
        sqlx::query_as("SELECT how, decided_by FROM refunds WHERE payment_id = $1")
            .bind(b.0)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!((how.as_str(), by.as_str()), ("reversal", "rule"));
    // The database refuses a second refund of the same payment.
    let second = sqlx::query(
        "INSERT INTO refunds (id, payment_id, channel_id, biller_id, amount, currency, how, decided_by,
                              reason, journal_id, business_date, refunded_at)
         SELECT gen_random_uuid(), payment_id, channel_id, biller_id, amount, currency, how, decided_by,
                'again', journal_id, business_date, now() FROM refunds WHERE payment_id = $1",
    )
    .bind(b.0)
    .execute(app.store.pool())
    .await;
    assert!(second.is_err(), "{second:?}");
    // The channel's receivable is back to one payment.
    let receivable = app.balance("channel:alipay:receivable:CNY").await;
    assert_eq!(
        receivable.posted_debits - receivable.posted_credits,
        "120.00".parse().unwrap()
    );
    // The app heard of the payment's return and of both complaints.
    wait_callback(&app, &on_b, "complaint.resolved").await;
    wait_callback(&app, &open_on_a, "complaint.resolved").await;
    // The refund is listed on the app's statement of its date.
    let business_date: NaiveDate =
        sqlx::query_scalar("SELECT business_date FROM refunds WHERE payment_id = $1")
            .bind(b.0)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    let st = app
        .alipay
        .get(&format!("/v1/statements?date={business_date}"))
        .await
        .unwrap();
    assert_eq!(st.status, 200, "{}", st.text());
    let refunds = st.json()["refunds"].as_array().unwrap().clone();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["payment_id"], b.to_string());
    assert_eq!(refunds[0]["amount"], "120.00");
    // Raised again later, one after the other, on either payment: the
    // refund on record is the answer, never a second one.
    for (key, p) in [("k-a3", a), ("k-b2", b)] {
        let r = raise(&app.alipay, key, &complaint(p, "paid_twice")).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let id = r.json()["id"].as_str().unwrap().to_string();
        let c = wait_status(&app, &id, "RESOLVED", 10).await;
        assert_eq!(c["outcome"], "refunded", "{c}");
    }
    assert_eq!(app.count("refunds").await, 1);
    // The biller credited b and we gave it back: the books differ by
    // exactly that payment (closed without the books comparison).
    app.close().await;
}

async fn close(app: &TestApp, date: NaiveDate, now: DateTime<Utc>) -> CloseOutcome {
    let billers = app.store_billers().await;
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
        other => panic!("not closed: {other:?}"),
    }
}

#[tokio::test]
async fn a_refund_after_settlement_is_a_return_recovered_from_the_next_batch() {
    let app = app().await;
    let ids = app.pay_confirmed(&["200.00", "200.00"]).await;
    let date = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
    let cutoff: DateTime<Utc> = "2026-11-22T15:00:00Z".parse().unwrap();
    for id in &ids {
        app.set_confirmed_at(*id, cutoff - Days::hours(1)).await;
    }
    let CloseOutcome::Closed(b1) = close(&app, date, cutoff + Days::minutes(1)).await else {
        panic!("closed")
    };
    assert_eq!(b1.totals.count, 2);
    assert_eq!(app.status(ids[1]).await, PaymentStatus::Settled);

    let r = raise(&app.alipay, "c-settled", &complaint(ids[0], "paid_twice")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let done = wait_status(&app, &id, "RESOLVED", 10).await;
    assert_eq!(done["outcome"], "refunded");
    assert_eq!(done["refund"]["how"], "return");
    assert_eq!(done["refund"]["payment_id"], ids[1].to_string());
    assert_eq!(app.status(ids[1]).await, PaymentStatus::Returned);
    // A return waiting to be recovered from the biller.
    let waiting: i64 =
        sqlx::query_scalar("SELECT count(*) FROM payment_returns WHERE payment_id = $1")
            .bind(ids[1].0)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(waiting, 1);

    // The biller's next batch recovers it, and its file says so: a date
    // whose cut-off comes after the refund.
    let later = Utc::now() + Days::days(2);
    let next = later.date_naive();
    let cutoff2: DateTime<Utc> = format!("{next}T15:00:00Z").parse().unwrap();
    let big = app.pay_confirmed(&["1000.00"]).await;
    app.set_confirmed_at(big[0], cutoff2 - Days::hours(1)).await;
    let CloseOutcome::Closed(b2) = close(&app, next, cutoff2 + Days::minutes(1)).await else {
        panic!("closed")
    };
    assert_eq!((b2.totals.count, b2.totals.returns_count), (1, 1));
    assert_eq!(b2.totals.returns, "200.00".parse().unwrap());
    let returns_listed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM settlement_items WHERE batch_id = $1 AND kind = 'return' AND payment_id = $2",
    )
    .bind(b2.id)
    .bind(ids[1].0)
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(returns_listed, 1);
    app.close().await;
}

#[tokio::test]
async fn a_complaint_the_biller_never_answers_is_escalated_when_its_time_runs_out() {
    let app = app().await;
    let ids = app.pay_confirmed(&["63.00"]).await;
    app.sim().set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    let r = raise(&app.alipay, "c-esc", &complaint(ids[0], "not_credited")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    wait_status(&app, &id, "PENDING_BILLER", 10).await;
    // Its turn-around time runs out (business days, here made to pass).
    sqlx::query(
        "UPDATE complaints SET due_at = registered_at + interval '1 millisecond' WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(app.store.pool())
    .await
    .unwrap();
    let esc = wait_status(&app, &id, "ESCALATED", 10).await;
    assert!(esc["escalated_at"].is_string());
    wait_callback(&app, &id, "complaint.escalated").await;
    let metrics = reqwest_get(&format!("{}/metrics", app.base)).await;
    assert!(
        metrics.contains("billclear_complaints_escalated_total"),
        "metric missing"
    );
    // Escalated complaints are staff's: the machine does not resolve them
    // even when the biller is back.
    app.sim().set_faults(Faults::default());
    tokio::time::sleep(Duration::from_millis(600)).await;
    wait_status(&app, &id, "ESCALATED", 1).await;
    // Staff close it.
    let (_, token) = billclear::cli::staff::add_staff(
        &*app.store,
        "ops-ann",
        "Ann",
        billclear::domain::staff::StaffRole::Operator,
    )
    .await
    .unwrap();
    let acted = app
        .staff_call(
            Method::POST,
            &format!("/v1/staff/complaints/{id}/actions"),
            json!({"action": "resolve", "outcome": "credit_confirmed", "note": "biller's receipt seen"}),
            token.expose_text(),
        )
        .await;
    assert_eq!(acted.status, 200, "{}", acted.text());
    assert_eq!(acted.json()["status"], "RESOLVED");
    app.finish().await;
}

async fn reqwest_get(url: &str) -> String {
    let r = SignedClient::new(url.trim_end_matches("/metrics"), "", "")
        .send(Method::GET, "/metrics", Vec::new(), Extra::default())
        .await
        .unwrap();
    r.text()
}

#[tokio::test]
async fn a_staff_refund_needs_a_maker_and_another_approver() {
    let app = app().await;
    let ids = app.pay_confirmed(&["75.00"]).await;
    let r = raise(&app.alipay, "c-amt", &complaint(ids[0], "amount_differs")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let to_staff = wait_status(&app, &id, "INVESTIGATING", 10).await;
    assert!(to_staff["reason"].as_str().unwrap().contains("amount"));
    wait_callback(&app, &id, "complaint.investigating").await;
    let add = |id: &'static str, role| staff_token(&app, id, role);
    use billclear::domain::staff::StaffRole::*;
    let (ann, bob, vic) = (
        add("ann", Approver).await,
        add("bob", Approver).await,
        add("vic", Viewer).await,
    );
    let act = |token: String, body: Value| {
        let path = format!("/v1/staff/complaints/{id}/actions");
        let app = &app;
        async move { app.staff_call(Method::POST, &path, body, &token).await }
    };
    let listed = app
        .staff_call(
            Method::GET,
            "/v1/staff/complaints?open=true",
            Value::Null,
            &vic,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(listed.json()["data"][0]["id"], id.as_str());
    assert!(listed.json()["data"][0]["seconds_left"].as_i64().unwrap() > 0);
    // A viewer cannot act; approval without a proposal is refused.
    let r = act(vic.clone(), json!({"action": "investigate"})).await;
    assert_eq!(r.status, 403);
    let r = act(bob.clone(), json!({"action": "approve-refund"})).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "complaint_state".into())
    );
    let r = act(
        ann.clone(),
        json!({"action": "propose-refund", "note": "the biller credited 7.50 less"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["refund_proposed_by"], "ann");
    // The maker cannot approve her own proposal.
    let r = act(ann.clone(), json!({"action": "approve-refund"})).await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "maker_checker".into()));
    assert_eq!(app.count("refunds").await, 0);
    let r = act(bob.clone(), json!({"action": "approve-refund"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "RESOLVED");
    assert_eq!(r.json()["outcome"], "refunded");
    let (by, maker, approver): (String, String, String) =
        sqlx::query_as("SELECT decided_by, maker, approver FROM refunds WHERE payment_id = $1")
            .bind(ids[0].0)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(
        (by.as_str(), maker.as_str(), approver.as_str()),
        ("staff", "ann", "bob")
    );
    // Closed: nothing more, and never a second refund.
    let r = act(
        ann.clone(),
        json!({"action": "propose-refund", "note": "again"}),
    )
    .await;
    assert_eq!(r.status, 409);
    assert_eq!(app.count("refunds").await, 1);
    app.close().await;
}

#[tokio::test]
async fn bad_complaints_are_refused_and_change_nothing() {
    let app = app().await;
    let ids = app.pay_confirmed(&["30.00"]).await;
    let p = ids[0].to_string();
    let footprint = |app: &TestApp| {
        let pool = app.store.pool().clone();
        async move {
            let q = |t: &'static str| {
                let pool = pool.clone();
                async move {
                    sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {t}"))
                        .fetch_one(&pool)
                        .await
                        .unwrap()
                }
            };
            (
                q("complaints").await,
                q("complaint_events").await,
                q("refunds").await,
            )
        }
    };
    let before = footprint(&app).await;
    let long = "x".repeat(1001);
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"payment_id": p, "type": "not_credited"}),
            422,
            "missing_field",
        ),
        (
            json!({"payment_id": p, "description": "d"}),
            422,
            "missing_field",
        ),
        (
            json!({"payment_id": p, "type": "lost", "description": "d"}),
            422,
            "invalid_field",
        ),
        (
            json!({"payment_id": p, "type": "not_credited", "description": long}),
            422,
            "invalid_field",
        ),
        (
            json!({"payment_id": p, "type": "not_credited", "description": "   "}),
            422,
            "invalid_field",
        ),
        (
            json!({"payment_id": p, "type": "not_credited", "description": "d", "amount": "1"}),
            422,
            "unknown_field",
        ),
        (
            json!({"payment_id": p, "channel_reference": "x", "type": "not_credited", "description": "d"}),
            422,
            "invalid_field",
        ),
        (
            json!({"type": "not_credited", "description": "d"}),
            422,
            "missing_field",
        ),
        (
            json!({"payment_id": 5, "type": "not_credited", "description": "d"}),
            422,
            "invalid_field",
        ),
        (
            json!({"payment_id": uuid::Uuid::new_v4().to_string(), "type": "not_credited", "description": "d"}),
            404,
            "payment_not_found",
        ),
        (
            json!({"payment_id": "not-a-uuid", "type": "not_credited", "description": "d"}),
            404,
            "payment_not_found",
        ),
        (
            json!({"channel_reference": "nobody", "type": "not_credited", "description": "d"}),
            404,
            "payment_not_found",
        ),
        (
            json!({"payment_id": p, "type": "refund_not_received", "description": "d"}),
            422,
            "complaint_not_admissible",
        ),
        (json!([1, 2]), 400, "malformed_json"),
    ];
    for (i, (body, status, code)) in cases.iter().enumerate() {
        let r = raise(&app.alipay, &format!("bad-{i}"), body).await;
        assert_eq!(
            (r.status.as_u16(), r.code().as_str()),
            (*status, *code),
            "{body}: {}",
            r.text()
        );
    }
    // Another app's payment does not exist for this one.
    let r = raise(&app.wechat, "w-1", &complaint(ids[0], "not_credited")).await;
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (404, "payment_not_found")
    );
    // No Idempotency-Key.
    let r = app
        .alipay
        .send(
            Method::POST,
            "/v1/complaints",
            complaint(ids[0], "not_credited").to_string().into_bytes(),
            Extra {
                headers: vec![("content-type".into(), "application/json".into())],
                ..Extra::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (400, "missing_idempotency_key")
    );
    let r = app.alipay.get("/v1/complaints?status=LOST").await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (400, "invalid_status")
    );
    let r = app
        .alipay
        .get("/v1/complaints?since=yesterday")
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (400, "invalid_date")
    );
    assert_eq!(
        footprint(&app).await,
        before,
        "a refused complaint changed something"
    );

    // A good one, then the same key with another body: 409, nothing new.
    let ok = raise(&app.alipay, "k", &complaint(ids[0], "not_credited")).await;
    assert_eq!(ok.status, 201);
    let id = ok.json()["id"].as_str().unwrap().to_string();
    let after_one = footprint(&app).await;
    let r = raise(&app.alipay, "k", &complaint(ids[0], "paid_twice")).await;
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (409, "idempotency_key_reused")
    );
    // The other app cannot read it.
    let r = app
        .wechat
        .get(&format!("/v1/complaints/{id}"))
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code().as_str()),
        (404, "complaint_not_found")
    );
    let listed = app.wechat.get("/v1/complaints").await.unwrap();
    assert_eq!(listed.json()["data"].as_array().unwrap().len(), 0);
    let mine = app.alipay.get("/v1/complaints?status=OPEN").await.unwrap();
    assert!(mine.json()["data"].as_array().unwrap().len() <= 1);
    assert_eq!(footprint(&app).await.2, after_one.2);
    app.finish().await;
}

#[tokio::test]
async fn staff_work_complaints_in_the_console_with_the_time_left_and_a_checked_refund() {
    use billclear::client::csrf_of;
    use billclear::domain::staff::StaffRole;
    let app = app().await;
    let ids = app.pay_confirmed(&["55.00"]).await;
    let r = raise(
        &app.alipay,
        "c-console",
        &complaint(ids[0], "credited_to_wrong_account"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    wait_status(&app, &id, "INVESTIGATING", 10).await;

    let (mut ann, _) = app.console_as("ann", StaffRole::Operator).await;
    let (mut bob, _) = app.console_as("bob", StaffRole::Approver).await;
    let queue = ann.get("/console/complaints").await.unwrap();
    assert_eq!(queue.status, 200);
    let html = queue.text();
    assert!(html.contains(&format!("data-complaint=\"{id}\"")), "{html}");
    assert!(html.contains("credited_to_wrong_account"));
    // Due in business days: days or hours left, never overdue yet.
    assert!(!html.contains("Overdue by"), "{html}");
    let page = ann.get(&format!("/console/complaints/{id}")).await.unwrap();
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains("id=\"time-left\""), "{text}");
    assert!(text.contains("ask the biller to move the credit"), "{text}");
    let csrf = csrf_of(&text).unwrap();
    let act = format!("/console/complaints/{id}/act");
    // A form without the session's token changes nothing.
    let r = ann
        .post_form(
            &act,
            &[("csrf", "x"), ("action", "propose-refund"), ("note", "n")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let r = ann
        .post_form(
            &act,
            &[
                ("csrf", &csrf),
                ("action", "propose-refund"),
                ("note", "the biller cannot move it"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 303, "{}", r.text());
    // An operator cannot approve; the approver can, and the refund is made.
    let r = ann
        .post_form(&act, &[("csrf", &csrf), ("action", "approve-refund")])
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(app.count("refunds").await, 0);
    let bob_page = bob.get(&format!("/console/complaints/{id}")).await.unwrap();
    assert!(bob_page.text().contains("id=\"refund-waiting\""));
    let bob_csrf = csrf_of(&bob_page.text()).unwrap();
    let r = bob
        .post_form(&act, &[("csrf", &bob_csrf), ("action", "approve-refund")])
        .await
        .unwrap();
    assert_eq!(r.status, 303, "{}", r.text());
    let listed = bob.get("/console/complaints?all=1").await.unwrap().text();
    assert!(listed.contains("data-decided-by=\"staff\""), "{listed}");
    let after = bob
        .get(&format!("/console/complaints/{id}"))
        .await
        .unwrap()
        .text();
    assert!(after.contains("id=\"refund\""), "{after}");
    assert!(after.contains("ann → bob"), "{after}");
    assert_eq!(app.status(ids[0]).await, PaymentStatus::Returned);
    wait_callback(&app, &id, "complaint.resolved").await;
    // The month's report, on the page and as files.
    let month = Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m")
        .to_string();
    let report = bob
        .get(&format!(
            "/console/complaints/report?biller=sh-water&month={month}"
        ))
        .await
        .unwrap();
    assert_eq!(report.status, 200, "{}", report.text());
    assert!(report
        .text()
        .contains("data-kind=\"credited_to_wrong_account\""));
    let csv = bob
        .get(&format!(
            "/console/complaints/report?biller=sh-water&month={month}&format=csv"
        ))
        .await
        .unwrap();
    assert_eq!(csv.status, 200);
    let line = csv
        .text()
        .lines()
        .find(|l| l.starts_with("credited_to_wrong_account,"))
        .unwrap()
        .to_string();
    // raised 1, closed 1, within time 1, still open 0.
    assert!(
        line.starts_with("credited_to_wrong_account,1,1,1,0,"),
        "{line}"
    );
    let xlsx = bob
        .get(&format!(
            "/console/complaints/report?biller=sh-water&month={month}&format=xlsx"
        ))
        .await
        .unwrap();
    assert_eq!(xlsx.status, 200);
    assert!(xlsx.body.starts_with(b"PK"));
    let bad = bob
        .get("/console/complaints/report?month=13-2026")
        .await
        .unwrap();
    assert_eq!(bad.status, 400);
    app.close().await;
}

#[tokio::test]
async fn a_refund_racing_the_close_of_its_date_is_either_a_reversal_or_a_return_never_both() {
    use billclear::domain::staff::StaffRole::*;
    let app = app().await;
    let add = |id: &'static str, role| staff_token(&app, id, role);
    let (ann, bob) = (add("ann", Operator).await, add("bob", Approver).await);
    let first = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
    let (mut reversals, mut returns) = (0, 0);
    for round in 0..6u64 {
        let date = first + Days::days(round as i64);
        let cutoff: DateTime<Utc> = format!("{date}T15:00:00Z").parse().unwrap();
        let ids = app.pay_confirmed(&["90.00"]).await;
        app.set_confirmed_at(ids[0], cutoff - Days::hours(1)).await;
        let r = raise(
            &app.alipay,
            &format!("race-{round}"),
            &complaint(ids[0], "amount_differs"),
        )
        .await;
        let id = r.json()["id"].as_str().unwrap().to_string();
        wait_status(&app, &id, "INVESTIGATING", 10).await;
        let path = format!("/v1/staff/complaints/{id}/actions");
        let r = app
            .staff_call(
                Method::POST,
                &path,
                json!({"action": "propose-refund", "note": "race"}),
                &ann,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        // The approval and the close of the payment's date at once.
        let (approved, closed) = tokio::join!(
            app.staff_call(
                Method::POST,
                &path,
                json!({"action": "approve-refund"}),
                &bob
            ),
            close(&app, date, cutoff + Days::minutes(1)),
        );
        assert_eq!(approved.status, 200, "{}", approved.text());
        assert!(matches!(closed, CloseOutcome::Closed(_)), "{closed:?}");
        let in_batch: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM settlement_items WHERE payment_id = $1 AND kind = 'payment'",
        )
        .bind(ids[0].0)
        .fetch_one(app.store.pool())
        .await
        .unwrap();
        let how: String = sqlx::query_scalar("SELECT how FROM refunds WHERE payment_id = $1")
            .bind(ids[0].0)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
        let to_recover: i64 =
            sqlx::query_scalar("SELECT count(*) FROM payment_returns WHERE payment_id = $1")
                .bind(ids[0].0)
                .fetch_one(app.store.pool())
                .await
                .unwrap();
        // Settled in the batch: the refund is a return the biller owes
        // back; not in it: a reversal, nothing to recover.
        match (in_batch, how.as_str(), to_recover) {
            (1, "return", 1) => returns += 1,
            (0, "reversal", 0) => reversals += 1,
            other => panic!("round {round}: settled and refunded inconsistently: {other:?}"),
        }
        assert_eq!(app.status(ids[0]).await, PaymentStatus::Returned);
    }
    eprintln!("{reversals} reversals, {returns} returns");
    app.close().await;
}
