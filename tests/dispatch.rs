//! Dispatch against the water simulator over real sockets: every test ends
//! with the ledger audited and our books compared with the biller's.

mod common;

use std::time::Duration;

use billclear::dispatch::Workers;
use billclear::domain::payment::PaymentStatus::{self, *};
use billclear::store::{DispatchStore, PaymentStore, Topic, WorkStore};
use biller_sim::Faults;
use common::{Options, TestApp};

const ACCOUNT: &str = "3100000011";
const CLOSED: &str = "3100000110";

async fn app() -> TestApp {
    TestApp::spawn_with(Options {
        dispatch: true,
        ..Options::default()
    })
    .await
}

fn statuses(events: &[billclear::store::PaymentEvent]) -> Vec<PaymentStatus> {
    events.iter().map(|e| e.to).collect()
}

fn attempt(kind: &str, outcome: &str) -> (String, Option<String>) {
    (kind.to_string(), Some(outcome.to_string()))
}

#[tokio::test]
async fn a_refused_payment_is_rejected_voided_and_called_back() {
    let app = app().await;
    let id = app.pay(CLOSED, "42.00").await;
    assert_eq!(app.wait_for(id, &[Confirmed, Rejected], 10).await, Rejected);
    let b = app.balance("biller:sh-water:payable:CNY").await;
    assert_eq!(
        (b.pending_credits - b.pending_debits, b.posted_credits),
        (0.into(), 0.into()),
        "voided: nothing pending, nothing posted"
    );
    assert_eq!(app.attempts(id).await, vec![attempt("pay", "refused")]);
    assert!(app.sim().credits().is_empty());
    assert_eq!(app.sim().rejections().len(), 1);
    app.wait_callbacks(1, 10).await;
    let cb = &app.receiver().received()[0];
    assert_eq!(cb.event["type"], "payment.rejected");
    assert_eq!(cb.event["payment"]["id"], id.to_string());
    assert!(
        cb.event["payment"]["reason"]
            .as_str()
            .unwrap()
            .contains("1002"),
        "{:?}",
        cb.event
    );
    app.finish().await;
}

#[tokio::test]
async fn a_confirmed_payment_is_posted_and_called_back_signed() {
    let app = app().await;
    let id = app.pay(ACCOUNT, "88.50").await;
    assert_eq!(
        app.wait_for(id, &[Confirmed, Rejected], 10).await,
        Confirmed
    );
    let events = app.store.payment_events(id).await.unwrap();
    assert_eq!(statuses(&events), vec![Received, Submitted, Confirmed]);
    let b = app.balance("biller:sh-water:payable:CNY").await;
    assert_eq!(b.posted_credits, "88.50".parse().unwrap());
    assert_eq!(
        b.pending_credits, b.pending_debits,
        "pending released on post"
    );
    let credit = &app.sim().credits()[0];
    let channel = billclear::domain::ids::ChannelId::parse("alipay").unwrap();
    let stored = app.store.payment(&channel, id).await.unwrap().unwrap();
    assert_eq!(
        stored.biller_reference.as_deref(),
        Some(credit.biller_reference.as_str())
    );
    assert_eq!(stored.connector_id.as_deref(), Some("water-direct"));
    // The channel sees the biller's reference too.
    let r = app.alipay.get(&format!("/v1/payments/{id}")).await.unwrap();
    assert_eq!(r.json()["status"], "CONFIRMED");
    assert_eq!(
        r.json()["biller_reference"],
        credit.biller_reference.as_str()
    );
    app.wait_callbacks(1, 10).await;
    let received = app.receiver().received();
    assert_eq!(received.len(), 1, "acknowledged at once: one delivery");
    assert!(received[0].verified.is_ok(), "{:?}", received[0].verified);
    assert_eq!(received[0].event["type"], "payment.confirmed");
    assert_eq!(received[0].event["payment"]["amount"], "88.50");
    assert_eq!(
        received[0].event["payment"]["biller_reference"],
        credit.biller_reference.as_str()
    );
    app.finish().await;
}

#[tokio::test]
async fn a_timeout_makes_the_payment_unknown_and_an_inquiry_confirms_it() {
    let app = app().await;
    // The biller applies the payment, but only after our timeout (300 ms).
    app.sim().set_faults(Faults {
        latency_ms: 700,
        ..Faults::default()
    });
    let id = app.pay(ACCOUNT, "120.00").await;
    app.wait_for(id, &[Unknown], 10).await;
    app.sim().set_faults(Faults::default());
    assert_eq!(
        app.wait_for(id, &[Confirmed, Rejected], 10).await,
        Confirmed
    );
    let events = statuses(&app.store.payment_events(id).await.unwrap());
    assert_eq!(events, vec![Received, Submitted, Unknown, Confirmed]);
    assert_eq!(
        app.sim().pay_requests(),
        1,
        "an UNKNOWN payment is never sent again"
    );
    let attempts = app.attempts(id).await;
    assert_eq!(attempts[0], attempt("pay", "unknown"));
    assert_eq!(attempts.last().unwrap(), &attempt("status", "credited"));
    assert!(attempts[1..].iter().all(|a| a.0 == "status"));
    app.finish().await;
}

#[tokio::test]
async fn a_timeout_on_a_refused_payment_is_rejected_by_inquiry() {
    let app = app().await;
    // The biller refuses (closed account), but only after our timeout.
    app.sim().set_faults(Faults {
        latency_ms: 700,
        ..Faults::default()
    });
    let id = app.pay(CLOSED, "30.00").await;
    app.wait_for(id, &[Unknown], 10).await;
    app.sim().set_faults(Faults::default());
    assert_eq!(app.wait_for(id, &[Confirmed, Rejected], 15).await, Rejected);
    assert_eq!(
        app.attempts(id).await.last().unwrap(),
        &attempt("status", "refused")
    );
    assert_eq!(app.sim().pay_requests(), 1);
    app.finish().await;
}

#[tokio::test]
async fn a_payment_the_biller_never_saw_is_rejected_after_not_found_answers() {
    let app = app().await;
    // The request is swallowed: never answered, never applied.
    app.sim().set_faults(Faults {
        blackhole: true,
        ..Faults::default()
    });
    let id = app.pay(ACCOUNT, "66.60").await;
    app.wait_for(id, &[Unknown], 10).await;
    // While the biller is silent, inquiries fail and nothing is decided.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(app.status(id).await, Unknown);
    app.sim().set_faults(Faults::default());
    assert_eq!(app.wait_for(id, &[Confirmed, Rejected], 15).await, Rejected);
    let attempts = app.attempts(id).await;
    let not_found = attempts
        .iter()
        .filter(|a| a.1.as_deref() == Some("not_found"))
        .count();
    assert!(
        not_found >= 2,
        "rejected only after two not-found answers: {attempts:?}"
    );
    assert!(app.sim().credits().is_empty());
    assert_eq!(app.sim().pay_requests(), 1);
    let b = app.balance("biller:sh-water:payable:CNY").await;
    assert_eq!(b.pending_credits, b.pending_debits, "voided");
    let (waited_ms,): (f64,) = sqlx::query_as(
        "SELECT (extract(epoch FROM e.at - a.started_at) * 1000)::float8
           FROM payment_events e, dispatch_attempts a
          WHERE e.payment_id = $1 AND e.to_status = 'REJECTED' AND a.payment_id = $1 AND a.kind = 'pay'",
    )
    .bind(id.0)
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert!(
        waited_ms >= 2_000.0,
        "rejected only after the grace: {waited_ms} ms after the send"
    );
    app.finish().await;
}

#[tokio::test]
async fn apply_then_drop_response_never_double_credits() {
    let app = app().await;
    app.sim().set_faults(Faults {
        drop_response_next: 5,
        ..Faults::default()
    });
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(app.pay(ACCOUNT, &format!("{}.25", 10 + i)).await);
    }
    for id in &ids {
        assert_eq!(
            app.wait_for(*id, &[Confirmed, Rejected], 20).await,
            Confirmed
        );
    }
    let unknown_first = {
        let mut n = 0;
        for id in &ids {
            if statuses(&app.store.payment_events(*id).await.unwrap()).contains(&Unknown) {
                n += 1;
            }
        }
        n
    };
    assert_eq!(
        unknown_first, 5,
        "the five dropped answers made five payments UNKNOWN"
    );
    assert_eq!(app.sim().credits().len(), 8, "one credit per payment");
    assert_eq!(app.sim().pay_requests(), 8, "no payment sent twice");
    app.wait_callbacks(8, 10).await;
    app.finish().await;
}

#[tokio::test]
async fn an_outage_is_retried_then_delivered_and_a_long_one_rejects() {
    let app = app().await;
    app.sim().set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    let delivered = app.pay(ACCOUNT, "15.00").await;
    // Wait until it was refused at least once (an attempt is recorded
    // before its call: wait for its outcome), then end the outage.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !app
        .attempts(delivered)
        .await
        .iter()
        .any(|(_, outcome)| outcome.is_some())
    {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        app.wait_for(delivered, &[Submitted], 5).await,
        Submitted,
        "not applied: stays SUBMITTED"
    );
    app.sim().set_faults(Faults::default());
    assert_eq!(
        app.wait_for(delivered, &[Confirmed, Rejected], 10).await,
        Confirmed
    );
    let attempts = app.attempts(delivered).await;
    assert_eq!(attempts[0], attempt("pay", "not_applied"));
    assert_eq!(attempts.last().unwrap(), &attempt("pay", "credited"));

    // A long outage: after send_retry.max_attempts sends, all answered "not
    // applied", the biller is asked before the payment is voided.
    app.sim().set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    let abandoned = app.pay(ACCOUNT, "16.00").await;
    assert_eq!(
        app.wait_for(abandoned, &[Unknown, Rejected], 15).await,
        Unknown
    );
    let attempts = app.attempts(abandoned).await;
    assert_eq!(
        attempts.len(),
        5,
        "send_retry.max_attempts sends: {attempts:?}"
    );
    assert!(attempts.iter().all(|a| a == &attempt("pay", "not_applied")));
    app.sim().set_faults(Faults::default());
    assert_eq!(
        app.wait_for(abandoned, &[Confirmed, Rejected], 15).await,
        Rejected
    );
    assert_eq!(
        app.attempts(abandoned).await.last().unwrap(),
        &attempt("status", "not_found")
    );
    let first_sends = app.attempts(delivered).await.len() as u64;
    assert_eq!(
        app.sim().pay_requests(),
        first_sends + 5,
        "one request per recorded send"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_worker_killed_mid_call_leaves_work_that_resumes_after_its_lease() {
    let app = app().await;
    // The biller takes 600 ms; the worker dies 150 ms into the call.
    app.sim().set_faults(Faults {
        latency_ms: 600,
        ..Faults::default()
    });
    let id = app.pay(ACCOUNT, "77.70").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.attempts(id).await.is_empty() {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    app.workers.as_ref().unwrap().abort();
    assert_eq!(
        app.attempts(id).await,
        vec![("pay".to_string(), None)],
        "the attempt is left open"
    );
    assert_eq!(app.status(id).await, Submitted);
    // The biller still applies it (the call had reached it).
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(app.sim().credits().len(), 1);
    app.sim().set_faults(Faults::default());
    // Another process takes over once the lease (1.6 s) has run out: it
    // must not send again, only ask.
    let started = std::time::Instant::now();
    let _second = Workers::start(&app.state.dispatch_deps(), "test-worker-2").unwrap();
    assert_eq!(
        app.wait_for(id, &[Confirmed, Rejected], 15).await,
        Confirmed
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "resumed only after the lease"
    );
    // The first worker's lease (1.6 s) began before its send.
    let (taken_after_ms,): (f64,) = sqlx::query_as(
        "SELECT (extract(epoch FROM s.started_at - p.started_at) * 1000)::float8
           FROM dispatch_attempts p, dispatch_attempts s
          WHERE p.payment_id = $1 AND s.payment_id = $1 AND p.kind = 'pay' AND s.kind = 'status'
          ORDER BY s.id LIMIT 1",
    )
    .bind(id.0)
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert!(
        taken_after_ms >= 1_400.0,
        "the second worker asked {taken_after_ms} ms after the send"
    );
    assert_eq!(app.sim().pay_requests(), 1, "never re-sent");
    let events = statuses(&app.store.payment_events(id).await.unwrap());
    assert_eq!(events, vec![Received, Submitted, Unknown, Confirmed]);
    let attempts = app.attempts(id).await;
    assert_eq!(
        attempts[0],
        attempt("pay", "unknown"),
        "the dead attempt is closed as unknown"
    );
    assert_eq!(attempts.last().unwrap(), &attempt("status", "credited"));
    app.finish().await;
}

#[tokio::test]
async fn callbacks_are_retried_until_the_channel_acknowledges() {
    let app = app().await;
    app.receiver().fail_first_deliveries(2);
    let id = app.pay(ACCOUNT, "50.00").await;
    app.wait_for(id, &[Confirmed], 10).await;
    app.wait_callbacks(1, 10).await;
    let received = app.receiver().received();
    assert_eq!(received.len(), 3, "two refusals, then acknowledged");
    assert!(
        received.iter().all(|r| r.verified.is_ok()),
        "every delivery signed"
    );
    let ids: std::collections::HashSet<_> = received.iter().map(|r| r.event_id.clone()).collect();
    assert_eq!(ids.len(), 1, "the same event id on every retry");
    assert_eq!(
        received.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![500, 500, 204]
    );
    // The acknowledgement is recorded just after the channel answered.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (attempts, done): (i32, bool) = sqlx::query_as(
            "SELECT attempts, done_at IS NOT NULL FROM outbox WHERE topic = 'callback' AND aggregate_id = $1",
        )
        .bind(id.0)
        .fetch_one(app.store.pool())
        .await
        .unwrap();
        assert_eq!(attempts, 3);
        if done {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "acknowledgement never recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.finish().await;
}

#[tokio::test]
async fn two_processes_deliver_each_payment_once() {
    let app = app().await;
    // Small claims, so that both processes take some of the work.
    let mut state = app.state.clone();
    let mut cfg = (*state.config).clone();
    cfg.dispatch.claim_batch = 2;
    state.config = std::sync::Arc::new(cfg);
    let _second = Workers::start(&state.dispatch_deps(), "test-worker-2").unwrap();
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(app.pay(ACCOUNT, &format!("{}.00", 1 + i)).await);
    }
    for id in &ids {
        assert_eq!(
            app.wait_for(*id, &[Confirmed, Rejected], 20).await,
            Confirmed
        );
    }
    assert_eq!(app.sim().pay_requests(), 30);
    let workers: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT worker FROM dispatch_attempts")
        .fetch_all(app.store.pool())
        .await
        .unwrap();
    assert_eq!(
        workers.len(),
        2,
        "both processes delivered some: {workers:?}"
    );
    app.finish().await;
}

#[tokio::test]
async fn claims_are_leased_and_a_stale_claim_cannot_act() {
    // No workers: drive the outbox by hand.
    let app = TestApp::spawn().await;
    let reference = "lease-1";
    let r = app
        .alipay
        .post_payment(reference, &common::payment_body(reference))
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    let lease = Duration::from_millis(300);
    let first = app
        .store
        .claim_work(Topic::Dispatch, "a", lease, 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        app.store
            .claim_work(Topic::Dispatch, "b", lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "held under lease"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = app
        .store
        .claim_work(Topic::Dispatch, "b", lease, 10)
        .await
        .unwrap();
    assert_eq!(second.len(), 1, "back after the lease");
    assert_eq!(second[0].attempts, 2);
    let stale = app
        .store
        .finish_work(&first[0], &billclear::store::OutboxNext::Done)
        .await;
    assert!(
        matches!(stale, Err(billclear::store::StoreError::Conflict(_))),
        "{stale:?}"
    );
    // A stale claim can neither start an attempt nor record an outcome.
    let payment = billclear::domain::ids::PaymentId(first[0].aggregate_id);
    let start = billclear::store::AttemptStart {
        payment_id: payment,
        kind: billclear::domain::dispatch::AttemptKind::Pay,
        connector_id: "water-direct".into(),
        worker: "a".into(),
        at: chrono::Utc::now(),
        transition: None,
        min_lease_left_ms: 0,
    };
    let stale = app.store.start_attempt(&first[0], &start).await;
    assert!(
        matches!(stale, Err(billclear::store::StoreError::Conflict(_))),
        "{stale:?}"
    );
    let update = billclear::store::DispatchUpdate {
        attempt: None,
        transition: None,
        credit: None,
        callback: None,
        next: billclear::store::OutboxNext::Done,
    };
    let stale = app.store.record_dispatch(&first[0], &update).await;
    assert!(
        matches!(stale, Err(billclear::store::StoreError::Conflict(_))),
        "{stale:?}"
    );
    // Nor can the holder start a call it could not finish within its lease.
    let short = billclear::store::AttemptStart {
        min_lease_left_ms: 60_000,
        ..start
    };
    let refused = app.store.start_attempt(&second[0], &short).await;
    assert!(
        matches!(refused, Err(billclear::store::StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(app.count("dispatch_attempts").await, 0);
    app.store
        .finish_work(&second[0], &billclear::store::OutboxNext::Done)
        .await
        .unwrap();
    app.finish().await;
}

#[tokio::test]
async fn callbacks_reach_an_https_endpoint_behind_a_private_ca() {
    let app = TestApp::spawn_with(Options {
        dispatch: true,
        tls_callbacks: true,
        ..Options::default()
    })
    .await;
    assert!(app.receiver().url("alipay").starts_with("https://"));
    let id = app.pay(ACCOUNT, "21.00").await;
    app.wait_for(id, &[Confirmed], 10).await;
    app.wait_callbacks(1, 10).await;
    let received = app.receiver().received();
    assert_eq!(received.len(), 1);
    assert!(received[0].verified.is_ok());
    app.finish().await;
}

#[tokio::test]
async fn an_https_endpoint_with_an_untrusted_certificate_gets_nothing() {
    let app = TestApp::spawn_with(Options {
        dispatch: true,
        tls_callbacks: true,
        trust_callback_ca: false,
        ..Options::default()
    })
    .await;
    assert!(app.receiver().url("alipay").starts_with("https://"));
    let id = app.pay(ACCOUNT, "22.00").await;
    app.wait_for(id, &[Confirmed], 10).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let got = app.receiver().received();
    assert!(got.is_empty(), "no request got through TLS: {got:?}");
    let (attempts, error): (i32, Option<String>) = sqlx::query_as(
        "SELECT attempts, last_error FROM outbox WHERE topic = 'callback' AND aggregate_id = $1",
    )
    .bind(id.0)
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert!(attempts >= 2, "retried: {attempts}");
    let error = error.unwrap_or_default();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    app.finish().await;
}

#[tokio::test]
async fn an_endpoint_that_cannot_be_reached_is_backed_off_as_a_whole_and_loses_nothing() {
    let app = app().await;
    // The channel's callback URL points where nothing listens.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let set_url = |url: String| {
        let pool = app.store.pool().clone();
        async move {
            sqlx::query("UPDATE channels SET callback_url = $1 WHERE id = 'alipay'")
                .bind(url)
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    set_url(format!("http://{dead}/callbacks/alipay")).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(app.pay(ACCOUNT, &format!("{}.00", 10 + i)).await);
    }
    for id in &ids {
        app.wait_for(*id, &[Confirmed], 20).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Each callback on its own schedule would have been tried about 7
    // times in these 2 s (50, 100, 200, 400 ms…), about 140 deliveries,
    // and given up after 8. Backed off together: the first burst, then one
    // probe at a time, and the waiting ones do not count as deliveries.
    let (counted, abandoned): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(attempts), 0)::bigint, count(*) FILTER (WHERE abandoned)
           FROM outbox WHERE topic = 'callback'",
    )
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(
        abandoned, 0,
        "no callback given up while its endpoint was backed off"
    );
    assert!(
        counted < 50,
        "{counted} deliveries counted to an unreachable endpoint"
    );
    // Reachable again (here: the channel fixed its URL): every event
    // arrives, each acknowledged once.
    set_url(app.receiver().url("alipay")).await;
    app.wait_callbacks(ids.len(), 20).await;
    assert_eq!(app.receiver().acknowledged().len(), ids.len());
    app.finish().await;
}
