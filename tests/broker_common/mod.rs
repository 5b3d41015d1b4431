//! Helpers of the RabbitMQ tests: per-test exchange and queue names, a
//! fresh database, outbox rows, and reading queues directly.
#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use billclear::config::{AmqpConfig, RetryConfig};
use billclear::settlement::broker::{self, HandleError, SettlementHandler};
use billclear::store::postgres::{self, PgStore};
use lapin::message::Delivery;
use lapin::options::{
    BasicGetOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};
use serde_json::{json, Value};
use uuid::Uuid;

pub fn server_url() -> String {
    std::env::var("BILLCLEAR_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn amqp_url() -> String {
    std::env::var("BILLCLEAR_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "billclear=debug,lapin=off".into()),
        )
        .try_init();
}

/// Names unique to one test, fast retries, delivery limit 2.
pub fn test_config() -> AmqpConfig {
    let s = Uuid::new_v4().simple().to_string();
    AmqpConfig {
        url: amqp_url(),
        other_urls: Vec::new(),
        exchange: format!("test.settlement.{s}"),
        queue: format!("test.settlement.{s}.work"),
        dead_letter_exchange: format!("test.settlement.{s}.dlx"),
        dead_letter_queue: format!("test.settlement.{s}.dead"),
        delivery_limit: 2,
        prefetch: 4,
        confirm_timeout_ms: 5_000,
        relay_batch: 16,
        relay_poll_ms: 100,
        reconnect: RetryConfig {
            base_ms: 100,
            max_ms: 1_000,
            max_attempts: 1_000,
        },
    }
}

pub struct Env {
    pub cfg: AmqpConfig,
    /// Deletes everything if the test panics.
    pub leftovers: Leftovers,
    pub store: Arc<PgStore>,
    pub db_name: String,
    /// The test's own connection, to look at the queues.
    pub conn: Connection,
    pub chan: Channel,
}

impl Env {
    pub async fn new() -> Env {
        init_tracing();
        let db_name = format!("billclear_test_{}", Uuid::new_v4().simple());
        let url = postgres::create_database(&server_url(), &db_name)
            .await
            .expect("create the test database");
        let store = PgStore::connect(&url, 4).await.expect("connect to it");
        store.migrate().await.expect("migrate");
        let cfg = test_config();
        let conn = broker::connect(&cfg).await.expect("connect to RabbitMQ");
        let chan = conn.create_channel().await.expect("channel");
        Env {
            leftovers: Leftovers {
                cfg: cfg.clone(),
                db_name: db_name.clone(),
            },
            cfg,
            store: Arc::new(store),
            db_name,
            conn,
            chan,
        }
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        self.store.pool()
    }

    /// Waits until no settlement row is left to relay and `handler` has
    /// seen every batch of `want`; the batches it has not seen (none when
    /// everything arrived within `within`).
    pub async fn wait_all_handled(
        &self,
        handler: &Arc<Recorder>,
        want: &std::collections::BTreeSet<String>,
        within: Duration,
    ) -> (bool, Vec<String>) {
        let pool = self.pool().clone();
        let done = eventually(within, || {
            let (pool, handler) = (pool.clone(), handler.clone());
            async move {
                let pending: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM outbox WHERE topic = 'settlement' AND done_at IS NULL",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                let seen: std::collections::BTreeSet<String> = handler.seen().into_iter().collect();
                pending == 0 && seen == *want
            }
        })
        .await;
        let seen = handler.seen();
        let missing = want.iter().filter(|b| !seen.contains(b)).cloned().collect();
        (done, missing)
    }

    pub fn relay(&self) -> broker::Relay {
        broker::Relay::new(self.store.clone(), self.cfg.clone(), "test-relay")
    }

    /// Inserts a settlement row for a new batch of `biller`; returns (row
    /// id, batch id, payload).
    pub async fn insert_batch(&self, biller: &str) -> (i64, Uuid, Value) {
        let batch = Uuid::new_v4();
        let payload = json!({
            "kind": "settlement_batch",
            "batch_id": batch.to_string(),
            "biller_id": biller,
            "business_date": "2026-11-29",
        });
        let id = self.insert_row(batch, payload.clone()).await;
        (id, batch, payload)
    }

    pub async fn insert_row(&self, aggregate: Uuid, payload: Value) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO outbox (topic, aggregate_id, payload) VALUES ('settlement', $1, $2) RETURNING id",
        )
        .bind(aggregate)
        .bind(payload)
        .fetch_one(self.pool())
        .await
        .expect("insert outbox row")
    }

    pub async fn row(&self, id: i64) -> Row {
        row(self.pool(), id).await
    }

    /// Ready messages in a queue (passive declare).
    pub async fn ready(&self, queue: &str) -> u32 {
        ready(&self.chan, queue).await
    }

    /// Takes one message off a queue (acked), if any.
    pub async fn get(&self, queue: &str) -> Option<Delivery> {
        get(&self.chan, queue).await
    }

    /// Waits for a message on a queue.
    pub async fn get_within(&self, queue: &str, within: Duration) -> Option<Delivery> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(d) = self.get(queue).await {
                return Some(d);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Deletes the test's queues, exchanges and database (a test that
    /// fails before calling this leaves them to [`Leftovers`]).
    pub async fn cleanup(self) {
        let _ = self.conn.close(200, "test done".into()).await;
        self.store.pool().close().await;
        delete_everything(&self.cfg, &self.db_name, true).await;
    }
}

/// Deletes a test's queues, exchanges and database when the test panicked
/// before its cleanup: the broker is shared.
pub struct Leftovers {
    pub cfg: AmqpConfig,
    pub db_name: String,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let cfg = self.cfg.clone();
        let db = self.db_name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(delete_everything(&cfg, &db, false));
        })
        .join();
    }
}

async fn delete_everything(cfg: &AmqpConfig, db_name: &str, strict: bool) {
    let conn = broker::connect(cfg).await.expect("connect to RabbitMQ");
    for q in [&cfg.queue, &cfg.dead_letter_queue] {
        let chan = conn.create_channel().await.expect("channel");
        let r = chan
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
        assert!(!strict || r.is_ok(), "delete queue {q}: {r:?}");
    }
    for x in [&cfg.exchange, &cfg.dead_letter_exchange] {
        let chan = conn.create_channel().await.expect("channel");
        let r = chan
            .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
            .await;
        assert!(!strict || r.is_ok(), "delete exchange {x}: {r:?}");
    }
    let _ = conn.close(200, "test done".into()).await;
    let _ = postgres::drop_database(&server_url(), db_name).await;
}

#[derive(Debug, Clone)]
pub struct Row {
    pub done: bool,
    pub abandoned: bool,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub available_in_ms: i64,
}

pub async fn row(pool: &sqlx::PgPool, id: i64) -> Row {
    let (done, abandoned, attempts, last_error, available_in_ms): (
        bool,
        bool,
        i32,
        Option<String>,
        f64,
    ) = sqlx::query_as(
        "SELECT done_at IS NOT NULL, abandoned, attempts, last_error,
                    (extract(epoch FROM available_at - now()) * 1000)::float8
               FROM outbox WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("outbox row");
    Row {
        done,
        abandoned,
        attempts,
        last_error,
        available_in_ms: available_in_ms as i64,
    }
}

pub async fn ready(chan: &Channel, queue: &str) -> u32 {
    chan.queue_declare(
        queue.into(),
        QueueDeclareOptions::durable().passive(),
        FieldTable::default(),
    )
    .await
    .expect("passive declare")
    .message_count()
}

pub async fn get(chan: &Channel, queue: &str) -> Option<Delivery> {
    chan.basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
        .map(|m| m.delivery)
}

/// Polls `check` every 50 ms until it holds; false after `within`.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn body_json(d: &Delivery) -> Value {
    serde_json::from_slice(&d.data).expect("a JSON body")
}

pub fn message_id(d: &Delivery) -> String {
    d.properties
        .message_id()
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default()
}

pub fn header<'a>(d: &'a Delivery, name: &str) -> Option<&'a AMQPValue> {
    d.properties.headers().as_ref()?.inner().get(name)
}

/// The `reason` of the first `x-death` entry of a dead-lettered message.
pub fn death_reason(d: &Delivery) -> Option<String> {
    let AMQPValue::FieldArray(deaths) = header(d, "x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else {
        return None;
    };
    match first.inner().get("reason")? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// A handler that reads the batch id from the body (unreadable: Poison)
/// and records every call; `fail` decides a failure per call number
/// (1-based).
pub struct Recorder {
    pub seen: Mutex<Vec<String>>,
    pub calls: std::sync::atomic::AtomicUsize,
    pub fail: Box<dyn Fn(usize) -> Option<HandleError> + Send + Sync>,
}

impl Recorder {
    pub fn new(
        fail: impl Fn(usize) -> Option<HandleError> + Send + Sync + 'static,
    ) -> Arc<Recorder> {
        Arc::new(Recorder {
            seen: Mutex::new(Vec::new()),
            calls: std::sync::atomic::AtomicUsize::new(0),
            fail: Box::new(fail),
        })
    }
    pub fn ok() -> Arc<Recorder> {
        Recorder::new(|_| None)
    }
    pub fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }
    /// Batch ids handled successfully, in order.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

#[async_trait]
impl SettlementHandler for Recorder {
    async fn handle(&self, body: &[u8]) -> Result<(), HandleError> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| HandleError::Poison(format!("not JSON: {e}")))?;
        let batch = v
            .get("batch_id")
            .and_then(|b| b.as_str())
            .ok_or_else(|| HandleError::Poison("no batch_id".into()))?
            .to_string();
        if let Some(e) = (self.fail)(n) {
            return Err(e);
        }
        self.seen.lock().unwrap().push(batch);
        Ok(())
    }
}

/// Runs rabbitmqctl with `args`; its stdout, or a panic with its stderr.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("run rabbitmqctl (the tests need it on PATH, as root)");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A TCP proxy in front of the broker, for the relay's connection only: it
/// can hold back everything the broker sends (acks, returns) and cut every
/// connection through it, which a broker restart cannot do precisely.
pub struct Proxy {
    pub port: u16,
    hold: tokio::sync::watch::Sender<bool>,
    cut: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy to the broker of [`amqp_url`].
    pub async fn start() -> Proxy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let uri: lapin::uri::AMQPUri = amqp_url().parse().expect("AMQP URL");
        let upstream = tokio::net::lookup_host((uri.authority.host.as_str(), uri.authority.port))
            .await
            .expect("broker address")
            .next()
            .expect("broker address");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (hold, hold_rx) = tokio::sync::watch::channel(false);
        let (cut, cut_rx) = tokio::sync::watch::channel(0u64);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let mut cut_up = cut_rx.clone();
                let generation = *cut_up.borrow_and_update();
                let mut cut_down = cut_up.clone();
                let mut hold = hold_rx.clone();
                // client → broker
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        tokio::select! {
                            _ = cut_up.changed() => return,
                            n = cr.read(&mut buf) => match n {
                                Ok(0) | Err(_) => return,
                                Ok(n) => if sw.write_all(&buf[..n]).await.is_err() { return },
                            },
                        }
                    }
                });
                // broker → client, unless held
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        if *cut_down.borrow() != generation {
                            return;
                        }
                        if *hold.borrow_and_update() {
                            tokio::select! {
                                _ = cut_down.changed() => return,
                                _ = hold.changed() => continue,
                            }
                        }
                        tokio::select! {
                            _ = cut_down.changed() => return,
                            _ = hold.changed() => continue,
                            n = sr.read(&mut buf) => match n {
                                Ok(0) | Err(_) => return,
                                Ok(n) => if cw.write_all(&buf[..n]).await.is_err() { return },
                            },
                        }
                    }
                });
            }
        });
        Proxy {
            port,
            hold,
            cut,
            task,
        }
    }

    /// [`amqp_url`] through this proxy.
    pub fn url(&self) -> String {
        let url = amqp_url();
        let uri: lapin::uri::AMQPUri = url.parse().expect("AMQP URL");
        let authority = format!("{}:{}", uri.authority.host, uri.authority.port);
        assert!(url.contains(&authority), "write the port in {url}");
        url.replacen(&authority, &format!("127.0.0.1:{}", self.port), 1)
    }

    /// Holds back (true) or lets through (false) what the broker sends.
    pub fn hold_replies(&self, hold: bool) {
        self.hold.send_replace(hold);
    }

    /// Closes every connection through the proxy (new ones are accepted).
    pub fn cut(&self) {
        self.cut.send_modify(|g| *g += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}
