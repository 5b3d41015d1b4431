//! Settlement over RabbitMQ, against a real broker and database: topology,
//! the outbox relay (publisher confirms, mandatory returns, nacks, bad
//! payloads) and the consumer (poison, transient failures and the delivery
//! limit, redelivery after a consumer died).

mod broker_common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use billclear::settlement::broker::{self, declare_topology, Consumer, HandleError, Relay};
use broker_common::*;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Confirmation, ExchangeKind};

const WAIT: Duration = Duration::from_secs(15);

// ------------------------------------------------------------------ topology

#[tokio::test]
async fn topology_is_a_quorum_queue_with_a_delivery_limit_and_dead_lettering() {
    let env = Env::new().await;
    let cfg = &env.cfg;
    declare_topology(&env.chan, cfg).await.expect("declare");
    declare_topology(&env.chan, cfg)
        .await
        .expect("declaring again changes nothing");

    // The broker keeps the arguments: redeclaring with another delivery
    // limit is refused (PRECONDITION_FAILED closes that channel).
    let other = env.conn.create_channel().await.unwrap();
    let mut changed = cfg.clone();
    changed.delivery_limit = cfg.delivery_limit + 1;
    let err = declare_topology(&other, &changed)
        .await
        .expect_err("a queue with another delivery limit must be refused");
    assert!(
        err.to_string().contains("PRECONDITION_FAILED") || err.to_string().contains("406"),
        "{err}"
    );

    // What rabbitmqctl reports.
    let listing = rabbitmqctl(&["list_queues", "-q", "name", "type", "durable", "arguments"]);
    let line = listing
        .lines()
        .find(|l| l.split_whitespace().next() == Some(cfg.queue.as_str()))
        .unwrap_or_else(|| panic!("{} not in:\n{listing}", cfg.queue));
    assert!(line.contains("quorum"), "{line}");
    assert!(line.contains("true"), "durable: {line}");
    assert!(
        line.contains(&format!("{{\"x-delivery-limit\",{}}}", cfg.delivery_limit)),
        "{line}"
    );
    assert!(
        line.contains(&format!(
            "{{\"x-dead-letter-exchange\",\"{}\"}}",
            cfg.dead_letter_exchange
        )),
        "{line}"
    );
    let dlq = listing
        .lines()
        .find(|l| l.split_whitespace().next() == Some(cfg.dead_letter_queue.as_str()))
        .unwrap_or_else(|| panic!("{} not in:\n{listing}", cfg.dead_letter_queue));
    assert!(dlq.contains("classic") && dlq.contains("true"), "{dlq}");
    let exchanges = rabbitmqctl(&["list_exchanges", "-q", "name", "type", "durable"]);
    for (name, kind) in [
        (&cfg.exchange, "topic"),
        (&cfg.dead_letter_exchange, "fanout"),
    ] {
        let l = exchanges
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("{name} not in:\n{exchanges}"));
        assert_eq!(
            l.split_whitespace().collect::<Vec<_>>(),
            [name.as_str(), kind, "true"]
        );
    }
    // Passive declares find everything.
    env.chan
        .exchange_declare(
            cfg.exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("exchange exists");
    assert_eq!(env.ready(&cfg.queue).await, 0);
    assert_eq!(env.ready(&cfg.dead_letter_queue).await, 0);

    // Routing: settlement.batch.* reaches the queue, anything else is
    // returned; the dead-letter exchange fans out to the DLQ.
    let pubch = env.conn.create_channel().await.unwrap();
    pubch
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let c = pubch
        .basic_publish(
            cfg.exchange.as_str().into(),
            "settlement.batch.sh-water".into(),
            mandatory,
            b"{}",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(c, Confirmation::Ack(None));
    let c = pubch
        .basic_publish(
            cfg.exchange.as_str().into(),
            "payments.other".into(),
            mandatory,
            b"{}",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(matches!(c, Confirmation::Ack(Some(_))), "{c:?}");
    let c = pubch
        .basic_publish(
            cfg.dead_letter_exchange.as_str().into(),
            "anything".into(),
            mandatory,
            b"dead",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(c, Confirmation::Ack(None));
    assert!(eventually(WAIT, || async { env.ready(&cfg.queue).await == 1 }).await);
    assert_eq!(env.get(&cfg.dead_letter_queue).await.unwrap().data, b"dead");
    env.cleanup().await;
}

// --------------------------------------------------------------------- relay

#[tokio::test]
async fn relay_against_an_unreachable_broker_claims_nothing_and_stops_when_asked() {
    let env = Env::new().await;
    let (id, _, _) = env.insert_batch("sh-water").await;
    let mut cfg = env.cfg.clone();
    cfg.url = "amqp://guest:guest@127.0.0.1:1/%2f".into();
    let mut relay = Relay::new(env.store.clone(), cfg.clone(), "test-relay");
    assert!(relay.relay_ready().await.is_err());
    let running = Relay::new(env.store.clone(), cfg, "test-relay").spawn();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !running.is_finished(),
        "keeps trying while the broker is away"
    );
    tokio::time::timeout(Duration::from_secs(5), running.stop())
        .await
        .expect("stops promptly");
    let row = env.row(id).await;
    assert!(!row.done);
    assert_eq!(row.attempts, 0, "rows are not claimed without a broker");
    // The real broker never declared anything for this test: declare so
    // cleanup finds it.
    declare_topology(&env.chan, &env.cfg).await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn returned_unroutable_rows_stay_pending_until_the_queue_is_bound() {
    let env = Env::new().await;
    let cfg = &env.cfg;
    let mut relay = env.relay();
    assert_eq!(
        relay.relay_ready().await.unwrap(),
        0,
        "connects and declares"
    );
    // Nothing bound for settlement.batch.* any more.
    env.chan
        .queue_unbind(
            cfg.queue.as_str().into(),
            cfg.exchange.as_str().into(),
            broker::QUEUE_BINDING.into(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let (id, batch, _) = env.insert_batch("sh-water").await;
    assert_eq!(relay.relay_ready().await.unwrap(), 0);
    let row = env.row(id).await;
    assert!(!row.done && !row.abandoned, "{row:?}");
    assert_eq!(row.attempts, 1);
    let err = row.last_error.unwrap_or_default();
    assert!(
        err.contains("NO_ROUTE") && err.contains("settlement.batch.sh-water"),
        "{err}"
    );
    assert!(row.available_in_ms > 0, "retried later, not at once");
    assert_eq!(env.ready(&cfg.queue).await, 0);

    // Bound again: the retry goes through.
    declare_topology(&env.chan, cfg).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut done = 0;
    while done == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        done += relay.relay_ready().await.unwrap();
    }
    assert_eq!(done, 1);
    let row = env.row(id).await;
    assert!(
        row.done && !row.abandoned && row.last_error.is_none(),
        "{row:?}"
    );
    assert_eq!(row.attempts, 2);
    let d = env.get_within(&cfg.queue, WAIT).await.expect("published");
    assert_eq!(message_id(&d), batch.to_string());
    assert!(env.get(&cfg.queue).await.is_none(), "exactly once");
    env.cleanup().await;
}

#[tokio::test]
async fn nacked_rows_are_retried() {
    let env = Env::new().await;
    let cfg = &env.cfg;
    let mut relay = env.relay();
    relay.relay_ready().await.unwrap();
    // A second queue on the same binding that refuses every message: the
    // broker nacks a publish any of its queues refused.
    let full = format!("{}.full", cfg.queue);
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    env.chan
        .queue_declare(full.as_str().into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    env.chan
        .queue_bind(
            full.as_str().into(),
            cfg.exchange.as_str().into(),
            broker::QUEUE_BINDING.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let (id, batch, _) = env.insert_batch("sh-power").await;
    assert_eq!(relay.relay_ready().await.unwrap(), 0);
    let row = env.row(id).await;
    assert!(!row.done && !row.abandoned, "{row:?}");
    assert!(row.last_error.unwrap_or_default().contains("nacked"));

    env.chan
        .queue_delete(full.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(
        row.available_in_ms.max(0) as u64 + 50,
    ))
    .await;
    assert_eq!(relay.relay_ready().await.unwrap(), 1);
    assert!(env.row(id).await.done);
    // The nacked publish did reach the work queue: the retry is a
    // duplicate, which is what at-least-once means.
    let mut ids = Vec::new();
    while let Some(d) = env.get_within(&cfg.queue, Duration::from_millis(500)).await {
        ids.push(message_id(&d));
    }
    assert!(
        !ids.is_empty() && ids.iter().all(|m| *m == batch.to_string()),
        "{ids:?}"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_payload_without_a_valid_biller_is_abandoned_and_never_published() {
    let env = Env::new().await;
    let cfg = &env.cfg;
    let no_biller = env
        .insert_row(
            uuid::Uuid::new_v4(),
            serde_json::json!({"kind": "settlement_batch", "batch_id": uuid::Uuid::new_v4().to_string(), "business_date": "2026-11-29"}),
        )
        .await;
    let bad_biller = env
        .insert_row(
            uuid::Uuid::new_v4(),
            serde_json::json!({"kind": "settlement_batch", "batch_id": uuid::Uuid::new_v4().to_string(), "biller_id": "SH WATER.#"}),
        )
        .await;
    let (good, good_batch, _) = env.insert_batch("sh-water").await;
    let mut relay = env.relay();
    assert_eq!(relay.relay_ready().await.unwrap(), 1);
    for (id, needle) in [
        (no_biller, "no biller_id"),
        (bad_biller, "biller_id is invalid"),
    ] {
        let row = env.row(id).await;
        assert!(row.done && row.abandoned, "{row:?}");
        let err = row.last_error.unwrap_or_default();
        assert!(err.contains(needle), "{err}");
    }
    let row = env.row(good).await;
    assert!(row.done && !row.abandoned);
    let d = env.get_within(&cfg.queue, WAIT).await.unwrap();
    assert_eq!(message_id(&d), good_batch.to_string());
    assert!(env.get(&cfg.queue).await.is_none(), "only the good row");
    assert_eq!(env.ready(&cfg.dead_letter_queue).await, 0);
    env.cleanup().await;
}

#[tokio::test]
async fn relay_marks_rows_done_only_after_the_confirm_and_the_consumer_gets_them() {
    let env = Env::new().await;
    let cfg = env.cfg.clone();
    let mut rows = Vec::new();
    for biller in ["sh-water", "sh-power", "bj-gas", "sh-water", "gz-water"] {
        rows.push(env.insert_batch(biller).await);
    }
    // While a batch is published and its confirms not yet awaited, none of
    // its rows is done.
    let done_at_publish: Arc<Mutex<Vec<(usize, i64)>>> = Arc::default();
    let pool = env.pool().clone();
    let seen = done_at_publish.clone();
    let mut relay = env
        .relay()
        .on_published(broker::published_hook(move |ids: Vec<i64>| {
            let pool = pool.clone();
            let seen = seen.clone();
            async move {
                let done: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM outbox WHERE id = ANY($1) AND done_at IS NOT NULL",
                )
                .bind(&ids)
                .fetch_one(&pool)
                .await
                .unwrap();
                seen.lock().unwrap().push((ids.len(), done));
            }
        }));
    assert_eq!(relay.relay_ready().await.unwrap(), 5);
    assert_eq!(*done_at_publish.lock().unwrap(), vec![(5, 0)]);
    for (id, _, _) in &rows {
        let row = env.row(*id).await;
        assert!(
            row.done && !row.abandoned && row.last_error.is_none(),
            "{row:?}"
        );
        assert_eq!(row.attempts, 1);
    }
    assert_eq!(relay.relay_ready().await.unwrap(), 0, "nothing twice");

    // What a consumer receives.
    let by_batch: HashMap<String, serde_json::Value> = rows
        .iter()
        .map(|(_, b, p)| (b.to_string(), p.clone()))
        .collect();
    let mut got = BTreeSet::new();
    for _ in 0..5 {
        let d = env.get_within(&cfg.queue, WAIT).await.expect("a message");
        let id = message_id(&d);
        let payload = by_batch.get(&id).expect("message id is a batch id");
        assert_eq!(&body_json(&d), payload);
        assert_eq!(
            d.routing_key.as_str(),
            format!(
                "settlement.batch.{}",
                payload["biller_id"].as_str().unwrap()
            )
        );
        assert_eq!(d.properties.delivery_mode(), &Some(2), "persistent");
        assert_eq!(
            d.properties.content_type().as_ref().map(|c| c.as_str()),
            Some("application/json")
        );
        let ts = d.properties.timestamp().expect("a timestamp");
        assert!((chrono::Utc::now().timestamp() - ts as i64).abs() < 60);
        assert!(!d.redelivered);
        got.insert(id);
    }
    assert_eq!(got, by_batch.keys().cloned().collect());
    assert!(env.get(&cfg.queue).await.is_none(), "each exactly once");

    // The same through the Consumer.
    let handler = Recorder::ok();
    let consumer = Consumer::new(cfg.clone(), handler.clone()).spawn();
    let mut more = BTreeSet::new();
    for _ in 0..3 {
        more.insert(env.insert_batch("sh-water").await.1.to_string());
    }
    assert_eq!(relay.relay_ready().await.unwrap(), 3);
    assert!(eventually(WAIT, || async { handler.seen().len() >= 3 }).await);
    consumer.stop().await;
    assert_eq!(handler.seen().into_iter().collect::<BTreeSet<_>>(), more);
    assert_eq!(handler.calls(), 3);
    assert_eq!(env.ready(&cfg.queue).await, 0, "all acked");
    env.cleanup().await;
}

/// Counts each batch id among the messages of a queue (taking them off).
async fn drain_ids(env: &Env, queue: &str) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    while let Some(d) = env.get_within(queue, Duration::from_millis(500)).await {
        *ids.entry(message_id(&d)).or_default() += 1;
    }
    ids
}

#[tokio::test]
async fn confirms_lost_with_the_connection_mean_publishing_again() {
    let env = Env::new().await;
    let proxy = Arc::new(Proxy::start().await);
    let mut cfg = env.cfg.clone();
    cfg.url = proxy.url();
    // Between publishing and awaiting the confirms, once the broker holds
    // the messages, the connection is cut (as a broker restart would) while
    // the broker's acks are held back.
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hook = {
        let (proxy, armed) = (proxy.clone(), armed.clone());
        let (chan, queue) = (env.chan.clone(), env.cfg.queue.clone());
        broker::published_hook(move |ids| {
            let (proxy, armed) = (proxy.clone(), armed.clone());
            let (chan, queue) = (chan.clone(), queue.clone());
            async move {
                if armed.load(std::sync::atomic::Ordering::SeqCst) {
                    let n = ids.len() as u32;
                    assert!(eventually(WAIT, || async { ready(&chan, &queue).await == n }).await);
                    proxy.cut();
                }
            }
        })
    };
    let mut relay = Relay::new(env.store.clone(), cfg.clone(), "test-relay").on_published(hook);
    assert_eq!(
        relay.relay_ready().await.unwrap(),
        0,
        "connected through the proxy"
    );
    let mut rows = Vec::new();
    for _ in 0..3 {
        rows.push(env.insert_batch("sh-water").await);
    }
    proxy.hold_replies(true);
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = relay
        .relay_ready()
        .await
        .expect_err("the connection was lost");
    eprintln!("relay_ready: {err}");
    for (id, _, _) in &rows {
        let row = env.row(*id).await;
        assert!(!row.done && !row.abandoned, "{row:?}");
        assert_eq!(row.attempts, 1);
        let e = row.last_error.unwrap_or_default();
        assert!(e.contains("confirmation lost"), "{e}");
    }
    // The broker did take them: only the acks were lost.
    assert_eq!(env.ready(&env.cfg.queue).await, 3);

    proxy.hold_replies(false);
    armed.store(false, std::sync::atomic::Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut done = 0;
    while done < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        done += relay.relay_ready().await.unwrap();
    }
    assert_eq!(done, 3, "published again after reconnecting");
    for (id, _, _) in &rows {
        let row = env.row(*id).await;
        assert!(
            row.done && row.last_error.is_none() && row.attempts == 2,
            "{row:?}"
        );
    }
    // Each batch is in the queue twice: at least once, never zero times.
    let ids = drain_ids(&env, &env.cfg.queue).await;
    let want: BTreeMap<String, usize> = rows.iter().map(|(_, b, _)| (b.to_string(), 2)).collect();
    assert_eq!(ids, want);
    drop(relay);
    env.cleanup().await;
}

#[tokio::test]
async fn unconfirmed_within_the_timeout_means_publishing_again() {
    let env = Env::new().await;
    let proxy = Proxy::start().await;
    let mut cfg = env.cfg.clone();
    cfg.url = proxy.url();
    cfg.confirm_timeout_ms = 400;
    let mut relay = Relay::new(env.store.clone(), cfg.clone(), "test-relay");
    assert_eq!(relay.relay_ready().await.unwrap(), 0);
    let (id, batch, _) = env.insert_batch("sh-gas").await;
    proxy.hold_replies(true);
    let started = std::time::Instant::now();
    let err = relay.relay_ready().await.expect_err("no confirm");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded: {:?}",
        started.elapsed()
    );
    let row = env.row(id).await;
    assert!(!row.done, "{row:?}");
    let e = row.last_error.unwrap_or_default();
    assert!(
        e.contains("not confirmed by the broker within 400 ms"),
        "{e}"
    );

    proxy.hold_replies(false);
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut done = 0;
    while done < 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        done += relay.relay_ready().await.unwrap();
    }
    assert_eq!(done, 1);
    assert!(env.row(id).await.done);
    let ids = drain_ids(&env, &env.cfg.queue).await;
    assert_eq!(ids, BTreeMap::from([(batch.to_string(), 2)]));
    env.cleanup().await;
}

// ------------------------------------------------------------------ consumer

#[tokio::test]
async fn poison_messages_are_dead_lettered_once_and_not_redelivered() {
    let env = Env::new().await;
    let cfg = env.cfg.clone();
    let handler = Recorder::ok();
    let consumer = Consumer::new(cfg.clone(), handler.clone())
        .with_transient_delay(Duration::from_millis(50))
        .spawn();
    // A body that is not JSON (the handler says Poison), and a good batch.
    declare_topology(&env.chan, &cfg).await.unwrap();
    env.chan
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let c = env
        .chan
        .basic_publish(
            cfg.exchange.as_str().into(),
            "settlement.batch.sh-water".into(),
            BasicPublishOptions::default(),
            b"\xff not json",
            BasicProperties::default()
                .with_message_id("poison-1".into())
                .with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(c.is_ack());
    let (_, good, _) = env.insert_batch("sh-water").await;
    assert_eq!(env.relay().relay_ready().await.unwrap(), 1);

    let dead = env
        .get_within(&cfg.dead_letter_queue, WAIT)
        .await
        .expect("the poison message is dead-lettered");
    assert_eq!(dead.data, b"\xff not json");
    assert_eq!(message_id(&dead), "poison-1");
    // Dead-lettered by the consumer itself, with the reason in a header
    // (a copy published to the dead-letter exchange, the original acked).
    let reason = match header(&dead, broker::REASON_HEADER) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("no reason header: {other:?}"),
    };
    assert!(reason.starts_with("poison message: not JSON"), "{reason}");
    let listed = broker::describe_dead_letter(&dead);
    assert_eq!(listed.reason, reason);
    assert_eq!(listed.routing_key, "settlement.batch.sh-water");
    assert!(listed.dead_lettered_at.is_some());
    assert!(eventually(WAIT, || async { handler.seen() == vec![good.to_string()] }).await);
    // Nothing comes back.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(handler.calls(), 2, "poison once, good once");
    consumer.stop().await;
    assert!(
        env.get(&cfg.dead_letter_queue).await.is_none(),
        "exactly once"
    );
    assert_eq!(env.ready(&cfg.queue).await, 0);
    env.cleanup().await;
}

#[tokio::test]
async fn always_transient_is_dead_lettered_after_the_delivery_limit() {
    let env = Env::new().await;
    let cfg = env.cfg.clone();
    assert_eq!(cfg.delivery_limit, 2);
    let handler = Recorder::new(|_| Some(HandleError::Transient("biller host down".into())));
    let consumer = Consumer::new(cfg.clone(), handler.clone())
        .with_transient_delay(Duration::from_millis(50))
        .spawn();
    let (_, batch, payload) = env.insert_batch("sh-water").await;
    assert_eq!(env.relay().relay_ready().await.unwrap(), 1);
    let dead = env
        .get_within(&cfg.dead_letter_queue, WAIT)
        .await
        .expect("dead-lettered once the delivery limit is passed");
    assert_eq!(message_id(&dead), batch.to_string());
    assert_eq!(body_json(&dead), payload);
    assert_eq!(death_reason(&dead).as_deref(), Some("delivery_limit"));
    tokio::time::sleep(Duration::from_millis(700)).await;
    // RabbitMQ 3.10 (quorum queues) dead-letters a message when it is
    // returned more than x-delivery-limit times: the handler sees it
    // delivery_limit + 1 times.
    assert_eq!(handler.calls(), cfg.delivery_limit as usize + 1);
    assert!(handler.seen().is_empty());
    consumer.stop().await;
    assert_eq!(env.ready(&cfg.queue).await, 0);
    assert!(env.get(&cfg.dead_letter_queue).await.is_none());
    env.cleanup().await;
}

#[tokio::test]
async fn one_transient_failure_then_success_is_acked() {
    let env = Env::new().await;
    let cfg = env.cfg.clone();
    let handler = Recorder::new(|n| (n == 1).then(|| HandleError::Transient("busy".into())));
    let consumer = Consumer::new(cfg.clone(), handler.clone())
        .with_transient_delay(Duration::from_millis(50))
        .spawn();
    let (_, batch, _) = env.insert_batch("sh-water").await;
    assert_eq!(env.relay().relay_ready().await.unwrap(), 1);
    assert!(eventually(WAIT, || async { !handler.seen().is_empty() }).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    consumer.stop().await;
    assert_eq!(handler.seen(), vec![batch.to_string()]);
    assert_eq!(handler.calls(), 2);
    // Stopped, so nothing is held unacked: the queue is really empty.
    assert_eq!(env.ready(&cfg.queue).await, 0);
    assert_eq!(env.ready(&cfg.dead_letter_queue).await, 0);
    env.cleanup().await;
}

/// Blocks in the handler until the test kills the consumer.
struct Hang(tokio::sync::mpsc::UnboundedSender<Vec<u8>>);

#[async_trait::async_trait]
impl broker::SettlementHandler for Hang {
    async fn handle(&self, body: &[u8]) -> Result<(), HandleError> {
        let _ = self.0.send(body.to_vec());
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_delivery_in_hand_when_the_consumer_dies_is_redelivered() {
    let env = Env::new().await;
    let cfg = env.cfg.clone();
    let (tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let consumer = Consumer::new(cfg.clone(), Arc::new(Hang(tx))).spawn();
    let (_, batch, payload) = env.insert_batch("sh-water").await;
    assert_eq!(env.relay().relay_ready().await.unwrap(), 1);
    let body = tokio::time::timeout(WAIT, started.recv())
        .await
        .expect("handler started")
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        payload
    );
    assert_eq!(
        env.ready(&cfg.queue).await,
        0,
        "held unacked by the consumer"
    );

    // Killed mid-handling: its connection goes, the message comes back.
    consumer.abort();
    let again = env.get_within(&cfg.queue, WAIT).await.expect("redelivered");
    assert!(again.redelivered, "the redelivered flag is set");
    assert_eq!(message_id(&again), batch.to_string());
    assert_eq!(body_json(&again), payload);
    // The quorum queue counted the return.
    assert!(
        matches!(
            header(&again, "x-delivery-count"),
            Some(AMQPValue::LongLongInt(1)) | Some(AMQPValue::LongInt(1))
        ),
        "{:?}",
        header(&again, "x-delivery-count")
    );
    env.cleanup().await;
}
