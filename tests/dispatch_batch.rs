//! The dispatch workers' group commit at the store: many writes in one
//! transaction, each with its own checks and outcome. A write that fails
//! its check writes nothing and does not fail its neighbours; a payment
//! can never move (or its pending journal be resolved) twice in one commit.

mod common;

use std::time::Duration;

use billclear::domain::dispatch::{AttemptKind, AttemptOutcome, CallbackEvent};
use billclear::domain::ids::PaymentId;
use billclear::domain::payment::{transition, PaymentStatus};
use billclear::store::{
    AttemptEnd, AttemptStart, Claim, DispatchDone, DispatchOp, DispatchStore, DispatchUpdate,
    LedgerStore, OutboxNext, StoreError, Topic, WorkStore,
};
use chrono::Utc;
use common::TestApp;

/// `n` accepted payments (no workers), and the claims of their dispatch work.
async fn claimed(app: &TestApp, n: usize) -> Vec<Claim> {
    for i in 0..n {
        let reference = format!("batch-{i}");
        let r = app
            .alipay
            .post_payment(&reference, &common::payment_body(&reference))
            .await
            .unwrap();
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let mut claims = app
        .store
        .claim_work(Topic::Dispatch, "w", Duration::from_secs(30), n as u32)
        .await
        .unwrap();
    assert_eq!(claims.len(), n);
    claims.sort_by_key(|c| c.created_at);
    claims
}

async fn status_of(app: &TestApp, claim: &Claim) -> String {
    sqlx::query_scalar("SELECT status FROM payments WHERE id = $1")
        .bind(claim.aggregate_id)
        .fetch_one(app.store.pool())
        .await
        .unwrap()
}

async fn count_where(app: &TestApp, sql: &str, id: uuid::Uuid) -> i64 {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(app.store.pool())
        .await
        .unwrap()
}

fn start(claim: &Claim, first_send: bool, min_lease_left_ms: u64) -> AttemptStart {
    let payment = PaymentId(claim.aggregate_id);
    AttemptStart {
        payment_id: payment,
        kind: AttemptKind::Pay,
        connector_id: "water-direct".into(),
        worker: "w".into(),
        at: Utc::now(),
        transition: first_send.then(|| {
            transition(
                payment,
                PaymentStatus::Received,
                PaymentStatus::Submitted,
                "sent",
                Utc::now(),
            )
            .unwrap()
        }),
        min_lease_left_ms,
    }
}

async fn moved(
    app: &TestApp,
    claim: &Claim,
    from: PaymentStatus,
    to: PaymentStatus,
    attempt: Option<i64>,
) -> Box<DispatchUpdate> {
    let payment = app
        .store
        .delivery(PaymentId(claim.aggregate_id))
        .await
        .unwrap()
        .unwrap()
        .0;
    let at = Utc::now();
    let credit = (to == PaymentStatus::Confirmed).then(|| ("R-1".to_string(), at));
    Box::new(DispatchUpdate {
        attempt: attempt.map(|attempt_id| AttemptEnd {
            attempt_id,
            outcome: if to == PaymentStatus::Confirmed {
                AttemptOutcome::Credited
            } else {
                AttemptOutcome::Refused
            },
            result_code: None,
            detail: "answered".into(),
            at,
        }),
        transition: Some(transition(payment.id, from, to, "answered", at).unwrap()),
        credit: credit.clone(),
        callback: Some(CallbackEvent::for_payment(
            &payment,
            to,
            credit.as_ref().map(|c| c.0.as_str()),
            None,
            at,
        )),
        next: OutboxNext::Done,
    })
}

fn conflict(r: &Result<DispatchDone, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict(_)))
}

#[tokio::test]
async fn each_write_of_a_batch_is_checked_alone_and_a_failed_one_writes_nothing() {
    let app = TestApp::spawn().await;
    let claims = claimed(&app, 5).await;
    let stale = Claim {
        token: uuid::Uuid::new_v4(),
        ..claims[4].clone()
    };
    let ops = vec![
        // A first send: RECEIVED -> SUBMITTED and its attempt.
        DispatchOp::Start {
            claim: claims[0].clone(),
            start: start(&claims[0], true, 0),
        },
        // A send that could not end within its lease: refused.
        DispatchOp::Start {
            claim: claims[1].clone(),
            start: start(&claims[1], true, 60_000),
        },
        // Refused by the biller before any attempt: REJECTED, voided, called back.
        DispatchOp::Record {
            claim: claims[2].clone(),
            update: moved(
                &app,
                &claims[2],
                PaymentStatus::Received,
                PaymentStatus::Rejected,
                None,
            )
            .await,
        },
        // A transition from a state the payment is not in: refused.
        DispatchOp::Record {
            claim: claims[3].clone(),
            update: moved(
                &app,
                &claims[3],
                PaymentStatus::Submitted,
                PaymentStatus::Confirmed,
                None,
            )
            .await,
        },
        // A claim whose lease was lost: refused.
        DispatchOp::Finish {
            claim: stale,
            next: OutboxNext::Done,
        },
    ];
    let done = app.store.commit_dispatch(&ops).await.unwrap();
    assert_eq!(done.len(), 5);
    assert!(
        matches!(done[0], Ok(DispatchDone::Started(_))),
        "{:?}",
        done[0]
    );
    assert!(conflict(&done[1]), "{:?}", done[1]);
    assert_eq!(done[2].as_ref().unwrap(), &DispatchDone::Written);
    assert!(conflict(&done[3]), "{:?}", done[3]);
    assert!(conflict(&done[4]), "{:?}", done[4]);

    assert_eq!(status_of(&app, &claims[0]).await, "SUBMITTED");
    assert_eq!(status_of(&app, &claims[1]).await, "RECEIVED");
    assert_eq!(status_of(&app, &claims[2]).await, "REJECTED");
    assert_eq!(status_of(&app, &claims[3]).await, "RECEIVED");
    assert_eq!(status_of(&app, &claims[4]).await, "RECEIVED");
    // One attempt, the first send's; its route recorded.
    let Ok(DispatchDone::Started(attempt)) = done[0] else {
        unreachable!()
    };
    let attempts: Vec<(i64, uuid::Uuid)> =
        sqlx::query_as("SELECT id, payment_id FROM dispatch_attempts")
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    assert_eq!(attempts, vec![(attempt, claims[0].aggregate_id)]);
    // One callback, the rejected payment's; events only for the moved.
    let callbacks: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT aggregate_id FROM outbox WHERE topic = 'callback'")
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    assert_eq!(callbacks, vec![claims[2].aggregate_id]);
    for (claim, events) in claims.iter().zip([2, 1, 2, 1, 1]) {
        let n = count_where(
            &app,
            "SELECT count(*) FROM payment_events WHERE payment_id = $1",
            claim.aggregate_id,
        )
        .await;
        assert_eq!(n, events, "events of {}", claim.aggregate_id);
    }
    // The refused writes left their work claimed (it comes back after
    // the lease); the rejected payment's work is done.
    let open: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT aggregate_id FROM outbox WHERE topic = 'dispatch' AND done_at IS NULL ORDER BY created_at",
    )
    .fetch_all(app.store.pool())
    .await
    .unwrap();
    assert_eq!(open.len(), 4);
    assert!(!open.contains(&claims[2].aggregate_id));
    let void = count_where(
        &app,
        "SELECT count(*) FROM ledger_journals WHERE payment_id = $1 AND kind = 'void'",
        claims[2].aggregate_id,
    )
    .await;
    assert_eq!(void, 1);
    let audit = app.store.audit().await.unwrap();
    assert_eq!(audit.unbalanced_journals, 0);
    assert_eq!(audit.total_debits, audit.total_credits);
    app.finish().await;
}

#[tokio::test]
async fn a_payment_is_never_confirmed_and_posted_twice_in_one_commit() {
    let app = TestApp::spawn().await;
    let claims = claimed(&app, 1).await;
    let claim = &claims[0];
    let started = app
        .store
        .commit_dispatch(&[DispatchOp::Start {
            claim: claim.clone(),
            start: start(claim, true, 0),
        }])
        .await
        .unwrap();
    let Ok(DispatchDone::Started(attempt)) = started[0] else {
        panic!("{started:?}")
    };
    // The same confirmation twice in one batch (a bug upstream, or a
    // replayed write): one is applied, the other refused.
    let update = moved(
        &app,
        claim,
        PaymentStatus::Submitted,
        PaymentStatus::Confirmed,
        Some(attempt),
    )
    .await;
    let op = DispatchOp::Record {
        claim: claim.clone(),
        update,
    };
    let done = app
        .store
        .commit_dispatch(&[op.clone(), op.clone()])
        .await
        .unwrap();
    assert_eq!(done[0].as_ref().unwrap(), &DispatchDone::Written);
    assert!(conflict(&done[1]), "{:?}", done[1]);
    // And once more in a later commit: the claim is finished.
    let again = app.store.commit_dispatch(&[op]).await.unwrap();
    assert!(conflict(&again[0]), "{:?}", again[0]);

    assert_eq!(status_of(&app, claim).await, "CONFIRMED");
    let posted = count_where(
        &app,
        "SELECT count(*) FROM ledger_journals WHERE payment_id = $1 AND kind = 'post'",
        claim.aggregate_id,
    )
    .await;
    assert_eq!(posted, 1, "posted once");
    let confirmed = count_where(
        &app,
        "SELECT count(*) FROM payment_events WHERE payment_id = $1 AND to_status = 'CONFIRMED'",
        claim.aggregate_id,
    )
    .await;
    assert_eq!(confirmed, 1);
    let callbacks = count_where(
        &app,
        "SELECT count(*) FROM outbox WHERE topic = 'callback' AND aggregate_id = $1",
        claim.aggregate_id,
    )
    .await;
    assert_eq!(callbacks, 1, "called back once");
    let audit = app.store.audit().await.unwrap();
    assert_eq!(audit.unbalanced_journals, 0);
    assert_eq!(audit.payments_without_exactly_one_transfer, 0);
    app.finish().await;
}
