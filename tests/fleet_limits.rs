//! Limits that hold for the fleet as a whole: three processes on one
//! database serve a storm of bill inquiries, and the biller never sees
//! more than its budget in any second of the wall clock.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use billclear::config::Config;
use billclear::startup::{Parts, Service};
use billclear::store::ChannelStore;
use common::{Options, TestApp};

/// Another process serving the API on a port of its own.
async fn serving(app: &TestApp, config: Config, name: &str) -> (Service, String) {
    let parts = Parts {
        worker: name.to_string(),
        ..Parts::api_only()
    };
    let service = app.another_process(config, parts).await;
    let base = service
        .spawn_api(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap();
    (service, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processes_never_give_a_biller_more_than_its_budget() {
    let app = TestApp::spawn_with(Options {
        dispatch: true,
        ..Options::default()
    })
    .await;
    let budget = app.state.inquiry.budget_per_s("sh-water") as u64;
    let config = || (*app.state.config).clone();
    let (second, base2) = serving(&app, config(), "second").await;
    let (third, base3) = serving(&app, config(), "third").await;
    // Until every process sees the three (and the newcomers' warm-up).
    let started = Instant::now();
    while [&app.state, &second.state, &third.state]
        .iter()
        .any(|s| s.fleet.instances() != 3)
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the fleet never saw 3 processes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let shares: Vec<u32> = [&app.state, &second.state, &third.state]
        .iter()
        .map(|s| s.fleet.share(budget as u32))
        .collect();
    assert_eq!(shares.iter().sum::<u32>() as u64, budget, "{shares:?}");

    // A storm spread over the three: distinct well-formed accounts (no
    // cache, no coalescing), 48 at a time, for about four seconds.
    let bases = [app.base.clone(), base2, base3];
    let storm_started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let sem = Arc::new(tokio::sync::Semaphore::new(48));
    let mut i = 0u32;
    while storm_started.elapsed() < Duration::from_secs(4) {
        let mut client = app.alipay.clone();
        client.set_base(&bases[i as usize % 3]);
        let payload = format!("43{i:07}");
        let account = format!(
            "{payload}{}",
            biller_sim::luhn_check_digit(&payload).unwrap()
        );
        let permit = sem.clone().acquire_owned().await.unwrap();
        set.spawn(async move {
            let r = client
                .get(&format!("/v1/billers/sh-water/bills?account={account}"))
                .await
                .unwrap();
            drop(permit);
            r.status.as_u16()
        });
        i += 1;
    }
    let mut answered = std::collections::BTreeMap::<u16, u32>::new();
    while let Some(s) = set.join_next().await {
        *answered.entry(s.unwrap()).or_default() += 1;
    }
    let per_second = app.sim().bill_requests_per_second();
    let max = app.sim().max_bill_requests_per_second();
    eprintln!(
        "{i} inquiries over 3 processes (shares {shares:?} of {budget}/s): answers {answered:?}; \
         the biller saw per second {per_second:?}, at most {max}"
    );
    assert!(
        max <= budget,
        "the biller saw {max} in one second, budget {budget}"
    );
    assert!(
        answered.get(&429).copied().unwrap_or(0) > 0,
        "the storm was refused in part"
    );
    // The budget is used, not wasted: at least half of it in a full second.
    let busiest = per_second.iter().map(|(_, n)| *n).max().unwrap_or(0);
    assert!(busiest * 2 >= budget, "{per_second:?}");
    second.abort();
    third.abort();
    app.finish().await;
}

#[tokio::test]
async fn caches_converge_in_another_process_within_their_bounds() {
    let app = TestApp::spawn_with(Options {
        dispatch: true,
        hub: true,
        ..Options::default()
    })
    .await;
    let (ttl_ms, refresh_ms) = (1_000, 700);
    // Another process with its caches as `serve` configures them: keys
    // for `auth.key_cache_ttl_ms`, billers (and their route preference)
    // refreshed every `intake.biller_refresh_ms`.
    let mut config = (*app.state.config).clone();
    config.auth.key_cache_ttl_ms = ttl_ms;
    config.intake.biller_refresh_ms = refresh_ms;
    let (other, base) = serving(&app, config, "cached").await;

    // A route preference switched through this process: the other one
    // routes by it within the biller refresh.
    let preferred = |s: &billclear::state::AppState| {
        s.billers.snapshot()["sh-water"]
            .preferred_route
            .as_ref()
            .map(|r| r.as_str().to_string())
    };
    assert_eq!(preferred(&other.state), None);
    let switched = Instant::now();
    app.switch_route("sh-water", "water-direct").await;
    while preferred(&other.state).as_deref() != Some("water-direct") {
        assert!(
            switched.elapsed() < Duration::from_millis(refresh_ms + 1_000),
            "the other process still routes by the old preference"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let route_seen = switched.elapsed();

    // A key disabled (through the database, as `billclear channels
    // disable-key` does from any machine): the other process, which has
    // the key cached, refuses it within the key cache's TTL.
    let mut client = app.alipay.clone();
    client.set_base(&base);
    let r = client.get("/v1/billers").await.unwrap();
    assert_eq!(r.status, 200, "the key is cached there: {:?}", r.json());
    let disabled = Instant::now();
    app.store.disable_key(&client.key_id).await.unwrap();
    let refused = loop {
        let r = client.get("/v1/billers").await.unwrap();
        if r.status == 401 {
            break disabled.elapsed();
        }
        assert_eq!(r.status, 200);
        assert!(
            disabled.elapsed() < Duration::from_millis(ttl_ms + 1_000),
            "a disabled key still accepted by the other process"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!(
        "route preference seen after {route_seen:?} (bound {refresh_ms} ms), \
         disabled key refused after {refused:?} (bound {ttl_ms} ms)"
    );
    other.abort();
    app.finish().await;
}
