//! Settlement files that cannot be written are told once, truthfully
//! (issue 20, part 3), with a real RabbitMQ and PostgreSQL:
//!
//! - a date settled again from a re-created database into the same
//!   directory gets other file names, and both deliveries succeed;
//! - a file planted under a batch's own name fails that batch once: the
//!   failure recorded on the batch (the file and both digests), one error
//!   line, the message dead-lettered once with the reason, no re-render by
//!   the scheduler's passes, and `billclear settle` returns the cause at
//!   once instead of waiting out its timeout;
//! - dead letters are listed with their reason (and left in place) and,
//!   once the cause is fixed, replayed and processed;
//! - a wait that times out says where the message is (not published, or
//!   published and not consumed);
//! - a transient fault (the directory cannot be made) is retried by the
//!   scheduler with a doubling delay and never recorded as a failure.

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use billclear::cli::settle::SettleArgs;
use billclear::config::Config;
use billclear::domain::payment::PaymentStatus;
use billclear::settlement::broker::{self, Consumer};
use billclear::settlement::close::{close_date, Closing, When};
use billclear::settlement::render::BatchRenderer;
use billclear::settlement::service::{self, Rerenders};
use billclear::store::{BatchRecord, CloseOutcome, SettlementStore};
use chrono::Utc;
use common::{Options, TestApp};
use sha2::{Digest, Sha256};

async fn app() -> TestApp {
    TestApp::spawn_with(Options {
        dispatch: true,
        ..Options::default()
    })
    .await
}

/// Confirms payments to sh-water and closes its current date early
/// (closing only: nothing is published or written yet).
async fn closed_batch(app: &TestApp, amounts: &[&str]) -> BatchRecord {
    let mut ids = Vec::new();
    for a in amounts {
        ids.push(app.pay("3100000011", a).await);
    }
    for id in &ids {
        app.wait_for(*id, &[PaymentStatus::Confirmed], 20).await;
    }
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
    match out.into_iter().next().unwrap().1 {
        Closing::Closed(CloseOutcome::Closed(b)) => b,
        other => panic!("{other:?}"),
    }
}

fn sha256_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn settlement_name(b: &BatchRecord) -> String {
    format!(
        "sh-water_{}_{}_settlement.csv",
        b.business_date.format("%Y%m%d"),
        b.id.simple()
    )
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn cleanup(app: TestApp) {
    let _ = service::delete_topology(&app.state.config.amqp).await;
    app.finish().await;
}

/// The log lines written while the guard lives (this thread, which is the
/// one every task of a current-thread test runtime runs on).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn start(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("billclear=info")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn lines(&self, level: &str, containing: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(level) && l.contains(containing))
            .map(str::to_string)
            .collect()
    }
}

fn settle_args(b: &BatchRecord, timeout_s: u64) -> SettleArgs {
    SettleArgs {
        date: b.business_date,
        biller: Some("sh-water".into()),
        early: true,
        no_files: false,
        timeout_s,
    }
}

#[tokio::test]
async fn a_date_settled_again_from_a_recreated_database_into_the_same_folder_gets_other_names() {
    let first = app().await;
    let one = closed_batch(&first, &["100.00", "20.00"]).await;
    service::publish_and_render(
        first.state.store.clone(),
        &first.state.config,
        &[one.id],
        Duration::from_secs(60),
    )
    .await
    .unwrap();

    // The database is re-created (a restore, or a second database) and the
    // same biller's same date is settled again, into the same directory.
    let second = app().await;
    let two = closed_batch(&second, &["100.00", "35.00"]).await;
    assert_eq!(
        (two.biller_id.as_str(), two.business_date),
        (one.biller_id.as_str(), one.business_date)
    );
    assert_ne!(two.id, one.id);
    let mut shared: Config = (*second.state.config).clone();
    shared.settlement.outbox_dir = first.state.config.settlement.outbox_dir.clone();
    service::publish_and_render(
        second.state.store.clone(),
        &shared,
        &[two.id],
        Duration::from_secs(60),
    )
    .await
    .unwrap();

    // Both deliveries succeeded, under names of their own, side by side.
    let dir = shared.settlement.outbox_dir.join("sh-water");
    let files_one = first.store.batch_files(one.id).await.unwrap();
    let files_two = second.store.batch_files(two.id).await.unwrap();
    assert_eq!(files_one.len(), 3);
    assert_eq!(files_two.len(), 3);
    for (b, files) in [(&one, &files_one), (&two, &files_two)] {
        let stem = format!(
            "sh-water_{}_{}_",
            b.business_date.format("%Y%m%d"),
            b.id.simple()
        );
        for f in files.iter() {
            assert!(f.name.starts_with(&stem), "{} for batch {}", f.name, b.id);
            let bytes = std::fs::read(dir.join(&f.name)).unwrap();
            assert_eq!(sha256_of(&bytes), f.sha256, "{}", f.name);
        }
        let manifest = files.iter().find(|f| f.kind == "manifest").unwrap();
        let m = billclear::settlement::files::verify_manifest(&dir, &manifest.name).unwrap();
        assert_eq!(m.batch_id, b.id);
        assert!(m.files.iter().all(|f| f.name.starts_with(&stem)));
    }
    assert_eq!(entries(&dir).len(), 6, "{:?}", entries(&dir));
    for b in [
        first.store.batch(one.id).await.unwrap().unwrap(),
        second.store.batch(two.id).await.unwrap().unwrap(),
    ] {
        assert!(b.files_written_at.is_some());
        assert!(b.files_failed_at.is_none() && b.files_failure.is_none());
    }
    let _ = service::delete_topology(&second.state.config.amqp).await;
    second.finish().await;
    cleanup(first).await;
}

#[tokio::test]
async fn a_file_planted_under_a_batchs_own_name_fails_the_batch_once_and_is_told_at_once() {
    let app = app().await;
    let log = Captured::default();
    let _guard = log.start();
    let batch = closed_batch(&app, &["250.00", "12.00"]).await;
    let dir = app.state.config.settlement.outbox_dir.join("sh-water");
    std::fs::create_dir_all(&dir).unwrap();
    let name = settlement_name(&batch);
    let planted = b"not the file billclear writes\n".to_vec();
    std::fs::write(dir.join(&name), &planted).unwrap();

    // `billclear settle` for the date: the batch's message is published,
    // consumed, the write refused; the command returns the recorded cause
    // at once, not after its 300 s, and does not blame RabbitMQ.
    let started = Instant::now();
    let err = billclear::cli::settle::settle(
        app.state.store.clone(),
        &app.state.config,
        settle_args(&batch, 300),
    )
    .await
    .expect_err("the batch's files failed");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "told after {took:?}");
    let text = format!("{err:#}");
    assert!(text.contains(&name), "{text}");
    assert!(text.contains(&sha256_of(&planted)), "{text}");
    assert!(text.contains(&batch.id.to_string()), "{text}");
    assert!(!text.contains("RabbitMQ"), "{text}");

    // Recorded on the batch, once: the file and both digests.
    let failed = app.store.batch(batch.id).await.unwrap().unwrap();
    assert!(failed.files_failed());
    assert!(failed.files_written_at.is_none());
    let failure = failed.files_failure.clone().unwrap();
    assert!(failure.contains(&name), "{failure}");
    assert!(failure.contains(&sha256_of(&planted)), "{failure}");
    let digests = failure
        .split(|c: char| !c.is_ascii_hexdigit())
        .filter(|w| w.len() == 64)
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(digests.len(), 2, "both digests in {failure}");
    // The planted file is untouched; nothing else of the batch written.
    assert_eq!(std::fs::read(dir.join(&name)).unwrap(), planted);
    assert_eq!(entries(&dir), vec![name.clone()]);
    assert!(app.store.batch_files(batch.id).await.unwrap().is_empty());

    // The biller sees the batch without files, and that writing them
    // failed (when), not our server's paths or digests.
    let (key, secret) =
        billclear::cli::settle::new_biller_key(&*app.state.store, &app.master_key, "sh-water")
            .await
            .unwrap();
    let water = billclear::client::SignedClient::new(&app.base, &key, secret.expose_text());
    let r = water
        .get(&format!("/v1/settlements?date={}", batch.business_date))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let seen = r.json()["batches"][0].clone();
    assert_eq!(seen["batch_id"], batch.id.to_string());
    assert_eq!(seen["files_ready"], false);
    assert_eq!(seen["files"], serde_json::json!([]));
    let at: chrono::DateTime<Utc> =
        serde_json::from_value(seen["files_failed_at"].clone()).unwrap();
    assert_eq!(Some(at), failed.files_failed_at);
    assert!(!String::from_utf8_lossy(&r.body).contains(&sha256_of(&planted)));

    // Dead-lettered once, with the reason.
    let dead = broker::dead_letters(&app.state.config.amqp, 100)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].batch_id, Some(batch.id));
    assert!(
        dead[0].reason.starts_with("settlement files failed: ") && dead[0].reason.contains(&name),
        "{}",
        dead[0].reason
    );

    // The scheduler's passes (as if well past the five minutes after the
    // close) skip it: no re-render, no new line, the failure unchanged.
    let renderer = BatchRenderer::new(
        app.state.store.clone(),
        app.state.config.settlement.outbox_dir.clone(),
    );
    let mut rerenders = Rerenders::default();
    let later = Utc::now() + service::RENDER_AFTER + chrono::Duration::minutes(1);
    for pass in 0..3 {
        let batches = app.store.batches(Some("sh-water"), None).await.unwrap();
        let done = service::render_left_behind(
            &renderer,
            &batches,
            later + chrono::Duration::minutes(30 * pass),
            &mut rerenders,
        )
        .await;
        assert_eq!(done.skipped, vec![batch.id], "pass {pass}: {done:?}");
        assert!(done.rendered.is_empty() && done.failed.is_empty() && done.retry_later.is_empty());
    }
    // Settling the date again tells the same failure, at once, and
    // retries nothing.
    let started = Instant::now();
    let again = billclear::cli::settle::settle(
        app.state.store.clone(),
        &app.state.config,
        settle_args(&batch, 300),
    )
    .await
    .expect_err("still failed");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(format!("{again:#}").contains(&failure));
    let now = app.store.batch(batch.id).await.unwrap().unwrap();
    assert_eq!(now.files_failed_at, failed.files_failed_at);
    assert_eq!(now.files_failure, failed.files_failure);
    assert_eq!(entries(&dir), vec![name.clone()]);
    assert_eq!(
        broker::dead_letters(&app.state.config.amqp, 100)
            .await
            .unwrap()
            .len(),
        1,
        "dead-lettered once"
    );

    // Logged once, at error, whatever happened since.
    let errors = log.lines("ERROR", "settlement files failed for good");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains(&batch.id.to_string()), "{}", errors[0]);
    let about_it = log.lines("ERROR", &batch.id.to_string());
    assert_eq!(about_it.len(), 1, "{about_it:#?}");

    // `settlements list` and `settlements show` run with it (stdout).
    billclear::cli::settle::settlements(
        app.state.store.clone(),
        &app.state.config,
        billclear::cli::settle::SettlementsCommand::List {
            date: Some(batch.business_date),
            biller: None,
        },
    )
    .await
    .unwrap();
    billclear::cli::settle::show(&*app.state.store, &app.state.config, batch.id)
        .await
        .unwrap();

    // The database keeps it once: recording again changes nothing, and the
    // failure cannot be rewritten or cleared.
    assert!(!app
        .store
        .record_files_failure(batch.id, "something else", Utc::now())
        .await
        .unwrap());
    for sql in [
        "UPDATE settlement_batches SET files_failure = 'rewritten' WHERE id = $1",
        "UPDATE settlement_batches SET files_failed_at = NULL, files_failure = NULL WHERE id = $1",
        "UPDATE settlement_batches SET net = net + 1, gross = gross + 1 WHERE id = $1",
    ] {
        let r = sqlx::query(sql)
            .bind(batch.id)
            .execute(app.store.pool())
            .await;
        assert!(r.is_err(), "{sql} was allowed");
    }
    cleanup(app).await;
}

#[tokio::test]
async fn dead_letters_are_listed_with_their_reason_and_replayed_once_the_cause_is_fixed() {
    let app = app().await;
    let cfg = app.state.config.amqp.clone();
    let batch = closed_batch(&app, &["75.00"]).await;
    let dir = app.state.config.settlement.outbox_dir.join("sh-water");
    std::fs::create_dir_all(&dir).unwrap();
    let name = settlement_name(&batch);
    std::fs::write(dir.join(&name), b"someone else's file\n").unwrap();
    let err = service::publish_and_render(
        app.state.store.clone(),
        &app.state.config,
        &[batch.id],
        Duration::from_secs(60),
    )
    .await
    .expect_err("failed");
    assert!(
        err.downcast_ref::<service::FilesFailed>().is_some(),
        "{err:#}"
    );

    // Listing shows it with its reason, and leaves it in place.
    for _ in 0..2 {
        let dead = broker::dead_letters(&cfg, 100).await.unwrap();
        assert_eq!(dead.len(), 1, "{dead:?}");
        let d = &dead[0];
        assert_eq!(d.message_id.as_deref(), Some(batch.id.to_string().as_str()));
        assert_eq!(d.batch_id, Some(batch.id));
        assert_eq!(d.biller_id.as_deref(), Some("sh-water"));
        assert_eq!(d.routing_key, "settlement.batch.sh-water");
        assert!(
            d.reason.contains("exists with different content"),
            "{}",
            d.reason
        );
        assert!(d.dead_lettered_at.is_some());
        assert_eq!(d.replays, 0);
    }
    // The command's listing runs too (its output goes to stdout).
    billclear::cli::settle::dead_letters(&*app.state.store, &app.state.config, false, None, 100)
        .await
        .unwrap();

    // Replaying another batch's messages moves nothing.
    let other = broker::replay_dead_letters(&cfg, Some(uuid::Uuid::new_v4()))
        .await
        .unwrap();
    assert!(other.replayed.is_empty());
    assert_eq!(other.left, 1);

    // The cause is fixed (the stray file moved away), then the batch's
    // dead letter is replayed: it is back on the work queue, off the
    // dead-letter queue, and a consumer writes the files.
    std::fs::rename(
        dir.join(&name),
        dir.parent().unwrap().join("moved-away.csv"),
    )
    .unwrap();
    let replayed = broker::replay_dead_letters(&cfg, Some(batch.id))
        .await
        .unwrap();
    assert_eq!(replayed.replayed.len(), 1);
    assert_eq!(replayed.left, 0);
    assert!(broker::dead_letters(&cfg, 100).await.unwrap().is_empty());
    let renderer = Arc::new(BatchRenderer::new(
        app.state.store.clone(),
        app.state.config.settlement.outbox_dir.clone(),
    ));
    let consumer = Consumer::new(cfg.clone(), renderer).spawn();
    // (wait_for_files would return the recorded failure at once: the
    // batch counts as failed until its files are written.)
    let deadline = Instant::now() + Duration::from_secs(30);
    while app
        .store
        .batch(batch.id)
        .await
        .unwrap()
        .unwrap()
        .files_written_at
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "the replayed message was not processed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    consumer.stop().await;

    let done = app.store.batch(batch.id).await.unwrap().unwrap();
    assert!(done.files_written_at.is_some());
    // The failure stays as history.
    assert!(done.files_failed_at.is_some());
    let files = app.store.batch_files(batch.id).await.unwrap();
    assert_eq!(files.len(), 3);
    assert_eq!(files[0].name, name);
    for f in &files {
        assert_eq!(
            sha256_of(&std::fs::read(dir.join(&f.name)).unwrap()),
            f.sha256
        );
    }
    assert!(broker::dead_letters(&cfg, 100).await.unwrap().is_empty());
    // Replaying again (nothing left) is harmless; a batch written is acked.
    let none = broker::replay_dead_letters(&cfg, None).await.unwrap();
    assert!(none.replayed.is_empty() && none.left == 0);
    cleanup(app).await;
}

#[tokio::test]
async fn a_wait_that_times_out_says_where_the_message_is() {
    let app = app().await;
    let batch = closed_batch(&app, &["40.00"]).await;
    let store = &*app.state.store;
    // Closed, nothing published: the wait times out on it, and the broker
    // is named as the problem only because the message is not published.
    let started = Instant::now();
    let err = service::wait_for_files(store, &[batch.id], Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    match &err {
        service::WaitError::TimedOut {
            waiting, failed, ..
        } => {
            assert_eq!(waiting, &vec![batch.id]);
            assert!(failed.is_empty());
        }
        other => panic!("{other:?}"),
    }
    let text = service::message_whereabouts(store, batch.id, None).await;
    assert!(text.contains("not published to RabbitMQ yet"), "{text}");
    // Published (confirmed), nobody consuming: said so, not blamed on the
    // broker.
    let published = billclear::settlement::broker::Relay::new(
        app.state.store.clone(),
        app.state.config.amqp.clone(),
        "test",
    )
    .relay_ready()
    .await
    .unwrap();
    assert_eq!(published, 1);
    let text = service::message_whereabouts(store, batch.id, None).await;
    assert!(
        text.contains("published") && text.contains("not consumed"),
        "{text}"
    );
    assert!(!text.contains("not published"), "{text}");
    // A consumer comes: the files are written, the wait returns.
    let renderer = Arc::new(BatchRenderer::new(
        app.state.store.clone(),
        app.state.config.settlement.outbox_dir.clone(),
    ));
    let consumer = Consumer::new(app.state.config.amqp.clone(), renderer).spawn();
    let waited = service::wait_for_files(store, &[batch.id], Duration::from_secs(30)).await;
    consumer.stop().await;
    waited.unwrap();
    cleanup(app).await;
}

#[tokio::test]
async fn a_transient_fault_is_retried_with_backoff_and_never_recorded_as_a_failure() {
    let app = app().await;
    let batch = closed_batch(&app, &["66.00"]).await;
    // The biller's directory cannot be made: a file stands in its place.
    let outbox = app.state.config.settlement.outbox_dir.clone();
    std::fs::create_dir_all(&outbox).unwrap();
    std::fs::write(outbox.join("sh-water"), b"in the way").unwrap();
    let renderer = BatchRenderer::new(app.state.store.clone(), outbox.clone());
    let mut rerenders = Rerenders::default();
    let batches = app.store.batches(Some("sh-water"), None).await.unwrap();
    let t0 = Utc::now() + service::RENDER_AFTER + chrono::Duration::seconds(1);
    let minutes = |m: i64| t0 + chrono::Duration::minutes(m);
    // Tried, failed transiently: tried again after 1 minute, then after 2
    // more, not in between.
    let pass = service::render_left_behind(&renderer, &batches, t0, &mut rerenders).await;
    assert_eq!(pass.retry_later, vec![batch.id], "{pass:?}");
    let pass = service::render_left_behind(
        &renderer,
        &batches,
        t0 + chrono::Duration::seconds(30),
        &mut rerenders,
    )
    .await;
    assert_eq!(pass.skipped, vec![batch.id], "backing off: {pass:?}");
    let pass = service::render_left_behind(&renderer, &batches, minutes(1), &mut rerenders).await;
    assert_eq!(pass.retry_later, vec![batch.id], "{pass:?}");
    let pass = service::render_left_behind(&renderer, &batches, minutes(2), &mut rerenders).await;
    assert_eq!(pass.skipped, vec![batch.id], "backing off longer: {pass:?}");
    // Never recorded as a failure of the batch.
    let b = app.store.batch(batch.id).await.unwrap().unwrap();
    assert!(b.files_pending(), "{b:?}");
    // The fault goes away: the next try writes the files.
    std::fs::remove_file(outbox.join("sh-water")).unwrap();
    let pass = service::render_left_behind(&renderer, &batches, minutes(3), &mut rerenders).await;
    assert_eq!(pass.rendered, vec![batch.id], "{pass:?}");
    assert_eq!(app.store.batch_files(batch.id).await.unwrap().len(), 3);
    let b = app.store.batch(batch.id).await.unwrap().unwrap();
    assert!(b.files_written_at.is_some() && b.files_failed_at.is_none());
    cleanup(app).await;
}
