//! Settlement over a 3-node RabbitMQ cluster: the node the relay and the
//! consumer are connected to is stopped in the middle of a settlement;
//! they reconnect to another node (`amqp.other_urls`), the quorum queue
//! elects another leader, and every batch is relayed and handled.
//!
//! Needs the cluster `ops/rabbitmq-cluster.sh start` runs (ops/test.sh
//! starts it and sets BILLCLEAR_RABBIT_CLUSTER to its URLs, and
//! BILLCLEAR_CLUSTER_TESTS=required so that a missing cluster fails the
//! run); a plain `cargo test` without it skips and says so.

mod broker_common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use billclear::settlement::broker::{Consumer, Relay};
use broker_common::*;

fn script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/rabbitmq-cluster.sh")
}

fn cluster(args: &[&str]) {
    let out = std::process::Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .expect("run ops/rabbitmq-cluster.sh");
    assert!(
        out.status.success(),
        "rabbitmq-cluster.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts a stopped node again when the test ends (passed or not).
struct NodeBack(&'static str);

impl Drop for NodeBack {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(script())
            .args(["start-node", self.0])
            .output();
    }
}

fn cluster_urls() -> Option<Vec<String>> {
    match std::env::var("BILLCLEAR_RABBIT_CLUSTER") {
        Ok(v) if !v.trim().is_empty() => Some(v.split(',').map(|s| s.trim().to_string()).collect()),
        _ => {
            if std::env::var("BILLCLEAR_CLUSTER_TESTS").as_deref() == Ok("required") {
                panic!("BILLCLEAR_RABBIT_CLUSTER is not set: ops/rabbitmq-cluster.sh start, then set it to `ops/rabbitmq-cluster.sh urls`");
            }
            eprintln!("SKIPPED: no RabbitMQ cluster (ops/test.sh starts one with ops/rabbitmq-cluster.sh)");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_mid_settlement_loses_and_repeats_nothing() {
    let Some(urls) = cluster_urls() else {
        return;
    };
    let started = Instant::now();
    let env = Env::new().await;
    let mut cfg = env.cfg.clone();
    cfg.url = urls[0].clone();
    cfg.other_urls = urls[1..].to_vec();
    cfg.relay_batch = 4;

    let mut batches = Vec::new();
    for i in 0..12 {
        batches.push(env.insert_batch(&format!("biller-{i}")).await);
    }
    let want: BTreeSet<String> = batches.iter().map(|(_, b, _)| b.to_string()).collect();

    // Stop node 1 (where both connect first) right after the relay's
    // second batch of 4 was published.
    let published = Arc::new(AtomicUsize::new(0));
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let stopped_tx = Arc::new(Mutex::new(Some(stopped_tx)));
    let hook = {
        let published = published.clone();
        billclear::settlement::broker::published_hook(move |_ids: Vec<i64>| {
            let n = published.fetch_add(1, Ordering::SeqCst) + 1;
            let stopped_tx = stopped_tx.clone();
            async move {
                if n != 2 {
                    return;
                }
                tokio::task::spawn_blocking(|| cluster(&["stop-node", "1"]))
                    .await
                    .unwrap();
                if let Some(tx) = stopped_tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
            }
        })
    };
    let _back = NodeBack("1");
    let handler = Recorder::ok();
    let consumer = Consumer::new(cfg.clone(), handler.clone()).spawn();
    let relay = Relay::new(env.store.clone(), cfg.clone(), "test-relay")
        .on_published(hook)
        .spawn();
    tokio::time::timeout(Duration::from_secs(60), stopped_rx)
        .await
        .expect("the relay reached its second batch")
        .unwrap();
    eprintln!("node 1 stopped after {:?}", started.elapsed());

    let (everything, missing) = env
        .wait_all_handled(&handler, &want, Duration::from_secs(90))
        .await;
    assert!(
        everything,
        "every row relayed and every batch handled; missing {missing:?}"
    );
    for (id, _, _) in &batches {
        let row = env.row(*id).await;
        assert!(row.done && !row.abandoned, "{row:?}");
    }
    // A message published again (its confirm lost with the node) is
    // handled again: the consumer's handling is idempotent (one set of
    // files per batch: tests/settlement_flow.rs), so duplicates are
    // counted, not forbidden.
    eprintln!(
        "{} batches handled {} times across the failover, in {:?}",
        want.len(),
        handler.seen().len(),
        started.elapsed()
    );
    relay.stop().await;
    consumer.stop().await;
    env.cleanup().await;
}
