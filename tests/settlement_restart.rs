//! The broker restarted between publish and confirm: every closed batch
//! still ends with exactly one set of files. Its own test binary, because
//! it restarts RabbitMQ (`rabbitmqctl stop_app` / `start_app`) for every
//! connection on the machine; cargo runs test binaries one at a time.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use billclear::domain::payment::PaymentStatus;
use billclear::settlement::broker::{published_hook, Consumer, Relay};
use billclear::settlement::close::{close_date, Closing, When};
use billclear::settlement::render::BatchRenderer;
use billclear::store::{CloseOutcome, SettlementStore};
use chrono::{DateTime, Duration as Days, NaiveDate, Utc};
use common::{Options, TestApp};

fn rabbitmqctl(args: &[&str]) {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_broker_restart_between_publish_and_confirm_leaves_one_set_of_files_per_batch() {
    let app = TestApp::spawn_with(Options {
        dispatch: true,
        ..Options::default()
    })
    .await;
    // Six business dates of sh-water, each with two payments.
    let first = NaiveDate::from_ymd_opt(2026, 11, 10).unwrap();
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(app.pay("3100000011", &format!("{}.00", 10 + i)).await);
    }
    for (i, id) in ids.iter().enumerate() {
        app.wait_for(*id, &[PaymentStatus::Confirmed], 20).await;
        let date = first + Days::days((i / 2) as i64);
        // 12:00 Shanghai on that date
        let at: DateTime<Utc> = DateTime::parse_from_rfc3339(&format!("{date}T04:00:00Z"))
            .unwrap()
            .with_timezone(&Utc);
        app.set_confirmed_at(*id, at).await;
    }
    let billers = app.store_billers().await;
    let mut batches = Vec::new();
    for d in 0..6 {
        let date = first + Days::days(d);
        let out = close_date(
            &*app.state.store,
            &billers,
            date,
            Some("sh-water"),
            When::AtCutoff,
            &app.state.config.settlement.debtor,
            Utc::now(),
        )
        .await
        .unwrap();
        match &out[0].1 {
            Closing::Closed(CloseOutcome::Closed(b)) => batches.push(b.clone()),
            other => panic!("{other:?}"),
        }
    }
    let batch_ids: Vec<uuid::Uuid> = batches.iter().map(|b| b.id).collect();

    let cfg = {
        let mut c = app.state.config.amqp.clone();
        c.confirm_timeout_ms = 3_000;
        c.relay_batch = 2;
        c.relay_poll_ms = 50;
        c.reconnect.base_ms = 200;
        c.reconnect.max_ms = 1_000;
        c
    };
    // After the first publish, before its confirm is awaited: restart.
    let restarted = Arc::new(AtomicBool::new(false));
    let flag = restarted.clone();
    let hook = published_hook(move |_ids| {
        let flag = flag.clone();
        async move {
            if !flag.swap(true, Ordering::SeqCst) {
                tokio::task::spawn_blocking(|| {
                    rabbitmqctl(&["stop_app"]);
                    rabbitmqctl(&["start_app"]);
                    rabbitmqctl(&["await_startup"]);
                })
                .await
                .unwrap();
            }
        }
    });
    let relay = Relay::new(app.state.store.clone(), cfg.clone(), "restart-test")
        .on_published(hook)
        .spawn();
    let renderer = Arc::new(BatchRenderer::new(
        app.state.store.clone(),
        app.state.config.settlement.outbox_dir.clone(),
    ));
    let consumer = Consumer::new(cfg.clone(), renderer).spawn();
    let waited = billclear::settlement::service::wait_for_files(
        &*app.state.store,
        &batch_ids,
        Duration::from_secs(90),
    )
    .await;
    relay.stop().await;
    consumer.stop().await;
    waited.unwrap();
    assert!(restarted.load(Ordering::SeqCst), "the broker was restarted");

    // Every outbox row done; every batch exactly one set of files on disk
    // and in the record; nothing temporary left.
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE topic = 'settlement' AND done_at IS NULL",
    )
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(open, 0);
    let dir = app.state.config.settlement.outbox_dir.join("sh-water");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert_eq!(on_disk.len(), 6 * 3, "{on_disk:?}");
    assert!(on_disk.iter().all(|n| !n.starts_with('.')), "{on_disk:?}");
    for b in &batches {
        let files = app.store.batch_files(b.id).await.unwrap();
        assert_eq!(files.len(), 3, "batch {}", b.business_date);
        assert_eq!(files[0].count, 2);
    }
    let _ = billclear::settlement::service::delete_topology(&cfg).await;
    app.finish().await;
}
