//! Pacing and connection reuse, seen from the biller's side: however many
//! payments wait, a route never has more than its `max_in_flight` calls at
//! once nor more than `max_per_second` a second, and its calls reuse a few
//! kept-alive connections instead of opening one each.

mod common;

use std::time::{Duration, Instant};

use billclear::domain::payment::PaymentStatus;
use biller_sim::Faults;
use common::{Options, TestApp};

#[tokio::test]
async fn a_route_never_has_more_calls_in_flight_than_its_limit_and_reuses_its_connections() {
    let app = TestApp::spawn_with(Options {
        dispatch: true,
        water_max_in_flight: 2,
        ..Options::default()
    })
    .await;
    // Each call takes a while: unpaced, 16 waiting payments would be 16
    // calls at once (dispatch.concurrency is larger).
    app.sim().set_faults(Faults {
        latency_ms: 120,
        ..Faults::default()
    });
    let mut ids = Vec::new();
    for _ in 0..16 {
        ids.push(app.pay("3100000011", "10.00").await);
    }
    for id in &ids {
        app.wait_for(*id, &[PaymentStatus::Confirmed], 30).await;
    }
    let seen = app.sim().traffic().stats();
    assert!(seen.calls >= 16, "{seen:?}");
    assert_eq!(
        seen.peak_in_flight, 2,
        "the limit is kept, and used: {seen:?}"
    );
    // Two calls at once, plus the heartbeat's health checks (every 100 ms,
    // outside the pace: one beside two calls needs a third connection,
    // which the pool of two does not keep): a handful of connections for
    // some 40 requests, not one each.
    assert!(
        seen.connections <= 8,
        "calls reuse kept-alive connections: {seen:?}"
    );
    app.assert_books_match().await;
    app.finish().await;
}

#[tokio::test]
async fn a_route_never_takes_more_calls_a_second_than_its_limit() {
    let app = TestApp::spawn_with(Options {
        dispatch: true,
        water_max_per_second: 5,
        ..Options::default()
    })
    .await;
    let started = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(app.pay("3100000011", "10.00").await);
    }
    for id in &ids {
        app.wait_for(*id, &[PaymentStatus::Confirmed], 30).await;
    }
    // 5 a second of the clock, as the biller counts them: 20 calls
    // fall in at least four seconds (2 s from a first call at the end of
    // one to the last at the start of the fourth).
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2_000),
        "20 payments at 5 a second confirmed in {took:?}"
    );
    let per_second = app.sim().pay_requests_per_second();
    assert!(
        per_second.len() >= 4 && per_second.iter().all(|(_, n)| *n <= 5),
        "pay requests per second as the biller received them: {per_second:?}"
    );
    assert_eq!(app.sim().credits().len(), 20);
    app.assert_books_match().await;
    app.finish().await;
}
