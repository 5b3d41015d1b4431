//! Duties held under leases across a fleet: one holder at a time, handed
//! over within `lease + check` when the holder dies (aborted as SIGKILL
//! would: no release), at once when it stops cleanly.

mod common;

use std::time::{Duration, Instant};

use billclear::startup::duty::{self, LeaseTiming};
use billclear::startup::{Parts, Service};
use billclear::store::lease::{LeaseOutcome, LeaseStore};
use common::TestApp;

const DUTIES: [&str; 4] = [
    duty::SETTLEMENT_RELAY,
    duty::FILE_ROUTES,
    duty::PRUNE_NONCES,
    duty::COMPLAINTS,
];

#[tokio::test]
async fn a_lease_has_one_holder_until_it_expires_or_is_released() {
    let app = TestApp::spawn().await;
    let s = &app.store;
    let ttl = Duration::from_millis(400);
    let held = s.hold_lease("test-duty", "a", ttl).await.unwrap();
    assert!(
        matches!(
            held,
            LeaseOutcome::Held {
                acquired: true,
                taken_from: None,
                ..
            }
        ),
        "{held:?}"
    );
    match s.hold_lease("test-duty", "b", ttl).await.unwrap() {
        LeaseOutcome::HeldBy { holder, .. } => assert_eq!(holder, "a"),
        other => panic!("b got {other:?}"),
    }
    let renewed = s.hold_lease("test-duty", "a", ttl).await.unwrap();
    assert!(
        matches!(
            renewed,
            LeaseOutcome::Held {
                acquired: false,
                ..
            }
        ),
        "{renewed:?}"
    );
    // a stops renewing: b takes it once it has expired, and says from whom.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let taken = s.hold_lease("test-duty", "b", ttl).await.unwrap();
    match &taken {
        LeaseOutcome::Held {
            acquired: true,
            taken_from: Some(from),
            ..
        } => assert_eq!(from, "a"),
        other => panic!("b got {other:?}"),
    }
    // a, back, is told b holds it (a must not run the duty).
    assert!(matches!(
        s.hold_lease("test-duty", "a", ttl).await.unwrap(),
        LeaseOutcome::HeldBy { .. }
    ));
    // Released: a takes it at once.
    s.release_lease("test-duty", "b").await.unwrap();
    assert!(matches!(
        s.hold_lease("test-duty", "a", ttl).await.unwrap(),
        LeaseOutcome::Held { acquired: true, .. }
    ));
    let h = s.handovers("test-duty").await.unwrap();
    let who: Vec<(&str, Option<&str>)> = h
        .iter()
        .map(|h| (h.holder.as_str(), h.previous_holder.as_deref()))
        .collect();
    assert_eq!(who, vec![("a", None), ("b", Some("a")), ("a", None)]);
    app.finish().await;
}

#[tokio::test]
async fn many_processes_asking_at_once_get_one_holder() {
    let app = TestApp::spawn().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = app.store.clone();
        tasks.push(tokio::spawn(async move {
            s.hold_lease("race", &format!("p{i}"), Duration::from_secs(5))
                .await
                .unwrap()
        }));
    }
    let mut holders = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), LeaseOutcome::Held { .. }) {
            holders += 1;
        }
    }
    assert_eq!(holders, 1);
    app.finish().await;
}

async fn process(app: &TestApp, name: &str) -> Service {
    let parts = Parts {
        worker: name.to_string(),
        dispatch: true,
        settlement: true,
        prune_nonces: true,
    };
    app.another_process((*app.state.config).clone(), parts)
        .await
}

/// Waits until every duty is held by `holder`; how long that took.
async fn all_held_by(app: &TestApp, holder: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let leases = app.store.leases().await.unwrap();
        let held = DUTIES.iter().all(|d| {
            leases
                .iter()
                .any(|l| l.duty == *d && l.holder == holder && !l.expired)
        });
        if held {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "the duties were not all held by {holder} within {within:?}: {leases:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_dead_holders_duties_are_taken_over_within_the_bound() {
    let app = TestApp::spawn().await;
    let timing = LeaseTiming::from_config(&app.state.config.duties);
    let first = process(&app, "first").await;
    all_held_by(&app, "first", Duration::from_secs(5)).await;
    let second = process(&app, "second").await;
    // While the first lives, the second stands by.
    tokio::time::sleep(timing.lease * 2).await;
    all_held_by(&app, "first", Duration::from_millis(10)).await;

    // The first dies without a word (as SIGKILL: no release).
    first.abort();
    let took = all_held_by(&app, "second", timing.takeover_bound() * 3).await;
    assert!(
        took <= timing.takeover_bound() + Duration::from_millis(500),
        "taken over in {took:?}, bound {:?}",
        timing.takeover_bound()
    );
    for d in DUTIES {
        let h = app.store.handovers(d).await.unwrap();
        let last = h.last().unwrap();
        assert_eq!(
            (last.holder.as_str(), last.previous_holder.as_deref()),
            ("second", Some("first")),
            "{d}"
        );
        assert_eq!(h.len(), 2, "{d}: held once by each: {h:?}");
    }
    second.abort();
    app.finish().await;
}

#[tokio::test]
async fn a_clean_stop_hands_the_duties_over_at_once() {
    let app = TestApp::spawn().await;
    let timing = LeaseTiming::from_config(&app.state.config.duties);
    let first = process(&app, "first").await;
    all_held_by(&app, "first", Duration::from_secs(5)).await;
    let second = process(&app, "second").await;
    tokio::time::sleep(timing.check * 2).await;
    let Service {
        settlement,
        workers,
        ..
    } = first;
    if let Some(s) = settlement {
        s.stop().await;
    }
    drop(workers);
    // The relay was released: taken at the second's next check, well
    // before the lease could have run out.
    let started = Instant::now();
    loop {
        let leases = app.store.leases().await.unwrap();
        if leases
            .iter()
            .any(|l| l.duty == duty::SETTLEMENT_RELAY && l.holder == "second")
        {
            break;
        }
        assert!(started.elapsed() < timing.lease, "{leases:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(started.elapsed() <= timing.check + Duration::from_millis(300));
    second.abort();
    app.finish().await;
}
