//! The relay and the consumer ride out a broker restart by themselves.
//!
//! Its own test binary: it stops and starts the RabbitMQ application
//! (`rabbitmqctl stop_app` / `start_app`), which every connection to the
//! broker notices.

mod broker_common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use billclear::settlement::broker::{Consumer, Relay};
use broker_common::*;

/// Starts the broker's application again if a test stopped it and failed
/// before restarting it: the broker is shared.
struct RestartGuard;

impl Drop for RestartGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .arg("start_app")
            .output();
        let _ = std::process::Command::new("rabbitmqctl")
            .arg("await_startup")
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_and_consumer_survive_a_broker_restart() {
    let started = Instant::now();
    let env = Env::new().await;
    let mut cfg = env.cfg.clone();
    cfg.relay_batch = 4;
    let _guard = RestartGuard;

    let mut first = Vec::new();
    for i in 0..12 {
        first.push(env.insert_batch(&format!("biller-{i}")).await);
    }

    // Stop the broker right after the relay published its second batch of
    // 4, before it awaited the confirms: the first batch is confirmed and
    // done, the rest is not.
    let batches = Arc::new(AtomicUsize::new(0));
    let done_before_stop = Arc::new(Mutex::new(None::<i64>));
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let stopped_tx = Arc::new(Mutex::new(Some(stopped_tx)));
    let hook = {
        let batches = batches.clone();
        let done_before_stop = done_before_stop.clone();
        let pool = env.pool().clone();
        billclear::settlement::broker::published_hook(move |_ids: Vec<i64>| {
            let n = batches.fetch_add(1, Ordering::SeqCst) + 1;
            let done_before_stop = done_before_stop.clone();
            let pool = pool.clone();
            let stopped_tx = stopped_tx.clone();
            async move {
                if n != 2 {
                    return;
                }
                let done: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM outbox WHERE topic = 'settlement' AND done_at IS NOT NULL",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                *done_before_stop.lock().unwrap() = Some(done);
                tokio::task::spawn_blocking(|| rabbitmqctl(&["stop_app"]))
                    .await
                    .unwrap();
                if let Some(tx) = stopped_tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
            }
        })
    };

    let handler = Recorder::ok();
    let consumer = Consumer::new(cfg.clone(), handler.clone()).spawn();
    let relay = Relay::new(env.store.clone(), cfg.clone(), "test-relay")
        .on_published(hook)
        .spawn();

    tokio::time::timeout(Duration::from_secs(20), stopped_rx)
        .await
        .expect("the relay reached its second batch")
        .unwrap();
    let stopped_at = Instant::now();
    let done = done_before_stop.lock().unwrap().expect("counted");
    assert!(
        (4..12).contains(&done),
        "some but not all rows done before the restart: {done}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::spawn_blocking(|| {
        rabbitmqctl(&["start_app"]);
        rabbitmqctl(&["await_startup"]);
    })
    .await
    .unwrap();
    eprintln!("broker down for {:?}", stopped_at.elapsed());

    let mut second = Vec::new();
    for i in 0..8 {
        second.push(env.insert_batch(&format!("later-{i}")).await);
    }
    let all: Vec<_> = first.iter().chain(second.iter()).cloned().collect();
    let want: BTreeSet<String> = all.iter().map(|(_, b, _)| b.to_string()).collect();

    let (everything_done, missing) = env
        .wait_all_handled(&handler, &want, Duration::from_secs(40))
        .await;
    let seen = handler.seen();
    assert!(
        everything_done,
        "not every row done and handled; missing {missing:?}"
    );

    for (id, _, _) in &all {
        let row = env.row(*id).await;
        assert!(row.done && !row.abandoned, "{row:?}");
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for b in &seen {
        *counts.entry(b.as_str()).or_default() += 1;
    }
    let duplicates = seen.len() - want.len();
    eprintln!(
        "{} batches handled {} times ({duplicates} duplicates: {:?}); \
         attempts per row: {:?}; took {:?}",
        want.len(),
        seen.len(),
        counts.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>(),
        {
            let mut a = Vec::new();
            for (id, _, _) in &all {
                a.push(env.row(*id).await.attempts);
            }
            a
        },
        started.elapsed()
    );

    relay.stop().await;
    consumer.stop().await;
    // The test's own connection died with the broker: open another.
    let conn = billclear::settlement::broker::connect(&cfg).await.unwrap();
    let chan = conn.create_channel().await.unwrap();
    let env = Env { conn, chan, ..env };
    assert_eq!(env.ready(&cfg.queue).await, 0, "everything acked");
    env.cleanup().await;
    assert!(started.elapsed() < Duration::from_secs(60));
}
