//! Settlement end to end with a real RabbitMQ: a closed date is published by
//! the outbox relay, consumed, and rendered into the biller's files (the
//! pain.001 validated against the ISO 20022 schema, control totals equal to
//! the ledger); redelivered and poison messages; the billers' download API
//! and the channels' statements.

mod common;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use billclear::client::SignedClient;
use billclear::domain::payment::PaymentStatus;
use billclear::settlement::broker::{Consumer, SettlementHandler};
use billclear::settlement::close::{close_date, Closing, When};
use billclear::settlement::render::BatchRenderer;
use billclear::store::{BatchRecord, CloseOutcome, SettlementStore, Store};
use chrono::Utc;
use common::{Options, TestApp};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

async fn app() -> TestApp {
    TestApp::spawn_with(Options {
        dispatch: true,
        ..Options::default()
    })
    .await
}

/// Confirms payments to sh-water and closes its current date early.
async fn settled_batch(app: &TestApp, amounts: &[&str]) -> BatchRecord {
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

async fn publish_and_render(app: &TestApp, batches: &[uuid::Uuid]) {
    billclear::settlement::service::publish_and_render(
        app.state.store.clone(),
        &app.state.config,
        batches,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
}

fn renderer(app: &TestApp) -> BatchRenderer {
    BatchRenderer::new(
        app.state.store.clone(),
        app.state.config.settlement.outbox_dir.clone(),
    )
}

fn xsd_valid(xml: &Path) {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/iso20022/pain.001.001.03.xsd");
    let out = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(xml)
        .output()
        .expect("xmllint runs (install libxml2-utils: ops/ensure-xmllint.sh)");
    assert!(
        out.status.success(),
        "{} does not validate: {}",
        xml.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

async fn cleanup(app: TestApp) {
    let _ = billclear::settlement::service::delete_topology(&app.state.config.amqp).await;
    app.finish().await;
}

#[tokio::test]
async fn a_closed_date_becomes_files_through_rabbitmq_with_totals_equal_to_the_ledger() {
    let app = app().await;
    let batch = settled_batch(&app, &["100.00", "1000.00", "5000.00", "1.20"]).await;
    publish_and_render(&app, &[batch.id]).await;

    // The outbox row is done: the broker confirmed it.
    let done: bool = sqlx::query_scalar(
        "SELECT done_at IS NOT NULL FROM outbox WHERE topic = 'settlement' AND aggregate_id = $1",
    )
    .bind(batch.id)
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert!(done);
    let files = app.store.batch_files(batch.id).await.unwrap();
    let kinds: Vec<&str> = files.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, ["settlement", "pain001", "manifest"]);
    let dir = app.state.config.settlement.outbox_dir.join("sh-water");
    for f in &files {
        let path = dir.join(&f.name);
        assert_eq!(sha256_of(&path), f.sha256, "{}", f.name);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), f.bytes);
    }
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");

    // The settlement file's control totals = the batch = the ledger journal.
    let settlement = &files[0];
    let text = std::fs::read_to_string(dir.join(&settlement.name)).unwrap();
    let trailer = text.lines().last().unwrap();
    assert!(trailer.starts_with("TRAILER,4,6101.20,"), "{trailer}");
    assert_eq!(settlement.count, 4);
    assert_eq!(settlement.total, Decimal::from_str("6101.20").unwrap());
    let (debits, credits): (Decimal, Decimal) = sqlx::query_as(
        "SELECT coalesce(sum(amount) FILTER (WHERE side = 'debit'), 0),
                coalesce(sum(amount) FILTER (WHERE side = 'credit'), 0)
           FROM ledger_entries WHERE journal_id = $1",
    )
    .bind(batch.journal_id.unwrap())
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(debits, settlement.total);
    assert_eq!(credits, batch.totals.commission + batch.totals.net());
    // 0.50 (minimum) + 3.00 + 8.00 (maximum) + 0.50 (minimum, on 1.20)
    assert_eq!(batch.totals.commission, Decimal::from_str("12.00").unwrap());
    // The pain.001 pays the net and is valid ISO 20022.
    let pain = dir.join(&files[1].name);
    xsd_valid(&pain);
    let xml = std::fs::read_to_string(&pain).unwrap();
    assert!(
        xml.contains(&format!(">{}</InstdAmt>", batch.totals.net())),
        "{xml}"
    );
    assert!(xml.contains("ICBKCNBJSHI"));
    // The manifest lists every file with its checksum.
    let manifest = billclear::settlement::files::verify_manifest(&dir, &files[2].name).unwrap();
    assert_eq!(manifest.files.len(), 2);
    cleanup(app).await;
}

#[tokio::test]
async fn a_message_delivered_twice_writes_one_set_of_files() {
    let app = app().await;
    let batch = settled_batch(&app, &["250.00"]).await;
    let r = renderer(&app);
    let body = serde_json::to_vec(&serde_json::json!({
        "kind": "settlement_batch", "batch_id": batch.id, "biller_id": "sh-water",
        "business_date": batch.business_date,
    }))
    .unwrap();
    r.handle(&body).await.unwrap();
    let first = app.store.batch_files(batch.id).await.unwrap();
    let dir = app.state.config.settlement.outbox_dir.join("sh-water");
    let before: Vec<(String, std::time::SystemTime)> = first
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                std::fs::metadata(dir.join(&f.name))
                    .unwrap()
                    .modified()
                    .unwrap(),
            )
        })
        .collect();
    // The same message again (a redelivery), and through the broker too.
    r.handle(&body).await.unwrap();
    publish_and_render(&app, &[batch.id]).await;
    assert_eq!(app.store.batch_files(batch.id).await.unwrap(), first);
    let after: Vec<(String, std::time::SystemTime)> = first
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                std::fs::metadata(dir.join(&f.name))
                    .unwrap()
                    .modified()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(before, after, "a recorded batch is not written again");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);

    cleanup(app).await;
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_and_change_nothing() {
    let app = app().await;
    let cfg = app.state.config.amqp.clone();
    let conn = billclear::settlement::broker::connect(&cfg).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    billclear::settlement::broker::declare_topology(&ch, &cfg)
        .await
        .unwrap();
    let consumer = Consumer::new(cfg.clone(), Arc::new(renderer(&app))).spawn();
    for body in [
        b"not json".to_vec(),
        br#"{"kind":"settlement_batch","batch_id":"01a2279b-0000-7000-8000-000000000000"}"#
            .to_vec(),
        br#"{"kind":"refund","batch_id":"01a2279b-0000-7000-8000-000000000000"}"#.to_vec(),
    ] {
        ch.basic_publish(
            cfg.exchange.as_str().into(),
            "settlement.batch.sh-water".into(),
            Default::default(),
            &body,
            lapin::BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let q = ch
            .queue_declare(
                cfg.dead_letter_queue.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .unwrap();
        if q.message_count() == 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of 3 poison messages dead-lettered",
            q.message_count()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    consumer.stop().await;
    assert_eq!(app.count("settlement_files").await, 0);
    let _ = conn.close(200, "done".into()).await;
    cleanup(app).await;
}

#[tokio::test]
async fn billers_download_only_their_own_files_and_channels_get_their_statement() {
    let app = app().await;
    let batch = settled_batch(&app, &["120.00", "80.00"]).await;
    publish_and_render(&app, &[batch.id]).await;
    let store: &dyn Store = &*app.state.store;
    let (water_key, water_secret) =
        billclear::cli::settle::new_biller_key(store, &app.master_key, "sh-water")
            .await
            .unwrap();
    let (power_key, power_secret) =
        billclear::cli::settle::new_biller_key(store, &app.master_key, "sh-power")
            .await
            .unwrap();
    let water = SignedClient::new(&app.base, &water_key, water_secret.expose_text());
    let power = SignedClient::new(&app.base, &power_key, power_secret.expose_text());
    let date = batch.business_date;

    // Refused before anything is read: no date, a bad date, no signature,
    // a channel's key.
    let r = water.get("/v1/settlements").await.unwrap();
    assert_eq!((r.status.as_u16(), r.code()), (400, "missing_date".into()));
    let r = water.get("/v1/settlements?date=2026-13-01").await.unwrap();
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_date".into()));
    let r = app
        .alipay
        .get(&format!("/v1/settlements?date={date}"))
        .await
        .unwrap();
    assert_eq!((r.status.as_u16(), r.code()), (401, "unknown_key".into()));
    // ... and a biller's key is not a channel's.
    let r = water.get("/v1/payments?channel_reference=x").await.unwrap();
    assert_eq!((r.status.as_u16(), r.code()), (401, "unknown_key".into()));

    let r = water
        .get(&format!("/v1/settlements?date={date}"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.json());
    let body = r.json();
    let b = &body["batches"][0];
    assert_eq!(b["batch_id"], batch.id.to_string());
    assert_eq!(b["net"], batch.totals.net().to_string());
    // No returns: the zero total is at the currency's scale like the others.
    assert_eq!(b["returns"], 0);
    assert_eq!(b["returned"], "0.00");
    assert_eq!(b["files"].as_array().unwrap().len(), 3);
    let href = b["files"][0]["href"].as_str().unwrap().to_string();
    let sha = b["files"][0]["sha256"].as_str().unwrap().to_string();
    let file = water.get(&href).await.unwrap();
    assert_eq!(file.status, 200);
    assert_eq!(hex::encode(Sha256::digest(&file.body)), sha);

    // Another biller sees nothing of it.
    let r = power
        .get(&format!("/v1/settlements?date={date}"))
        .await
        .unwrap();
    assert_eq!(r.json()["batches"].as_array().unwrap().len(), 0);
    let r = power.get(&href).await.unwrap();
    assert_eq!((r.status.as_u16(), r.code()), (404, "no_such_file".into()));
    let r = water
        .get(&format!(
            "/v1/settlements/{}/files/..%2F..%2Fmaster.key",
            batch.id
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 404);

    // A disabled key is refused at once.
    let (spare_key, spare_secret) =
        billclear::cli::settle::new_biller_key(store, &app.master_key, "sh-water")
            .await
            .unwrap();
    let spare = SignedClient::new(&app.base, &spare_key, spare_secret.expose_text());
    assert_eq!(spare.get(&href).await.unwrap().status, 200);
    store.disable_biller_key(&spare_key).await.unwrap();
    let r = spare.get(&href).await.unwrap();
    assert_eq!((r.status.as_u16(), r.code()), (401, "key_disabled".into()));

    // A file changed on disk is not handed out.
    let dir = app.state.config.settlement.outbox_dir.join("sh-water");
    let name = b["files"][0]["name"].as_str().unwrap();
    std::fs::write(dir.join(name), "tampered").unwrap();
    let r = water.get(&href).await.unwrap();
    assert_eq!(r.status, 500);

    // The channel's statement for the date: what alipay owes for sh-water.
    let r = app
        .alipay
        .get(&format!("/v1/statements?date={date}"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.json());
    let s = r.json();
    assert_eq!(s["billers"][0]["biller_id"], "sh-water");
    assert_eq!(s["billers"][0]["payments"], 2);
    assert_eq!(s["billers"][0]["owed"], "200.00");
    assert_eq!(s["billers"][0]["returned"], "0.00");
    assert_eq!(s["owed"][0]["amount"], "200.00");
    assert_eq!(s["complete"], false);
    let r = app
        .wechat
        .get(&format!("/v1/statements?date={date}"))
        .await
        .unwrap();
    assert_eq!(r.json()["billers"].as_array().unwrap().len(), 0);
    let w = billclear::settlement::statement::write(
        store,
        &app.state.config.settlement.outbox_dir,
        &billclear::domain::ids::ChannelId::parse("alipay").unwrap(),
        date,
    )
    .await
    .unwrap();
    assert_eq!(w.lines, 2);
    let text = std::fs::read_to_string(&w.path).unwrap();
    assert!(text.trim_end().ends_with("TRAILER,2,200.00"), "{text}");
    // The file is not handed out while other billers have not closed.
    let r = app
        .alipay
        .get(&format!("/v1/statements/{date}/file"))
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "statement_incomplete".into())
    );
    // Every other biller closes the date (at its cut-off: "now" is two days
    // on, so that no biller's date is still ahead, whatever the hour).
    let billers = app.store_billers().await;
    let later = Utc::now() + chrono::Duration::days(2);
    close_date(
        &*app.state.store,
        &billers,
        date,
        None,
        When::AtCutoff,
        &app.state.config.settlement.debtor,
        later,
    )
    .await
    .unwrap();
    let r = app
        .alipay
        .get(&format!("/v1/statements?date={date}"))
        .await
        .unwrap();
    assert_eq!(r.json()["complete"], true, "{:?}", r.json());
    let r = app
        .alipay
        .get(&format!("/v1/statements/{date}/file"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(String::from_utf8(r.body.to_vec()).unwrap(), text);
    cleanup(app).await;
}
