//! RabbitMQ: the settlement topology, the outbox relay that publishes closed
//! settlement batches, and the consumer that hands them to a handler.
//!
//! # Topology ([`declare_topology`])
//!
//! * `amqp.exchange`: durable **topic** exchange. Routing key of a batch:
//!   `settlement.batch.<biller id>` ([`routing_key`]).
//! * `amqp.queue`: durable **quorum** queue bound to the exchange with
//!   `settlement.#`; `x-delivery-limit = amqp.delivery_limit`,
//!   `x-dead-letter-exchange = amqp.dead_letter_exchange`.
//! * `amqp.dead_letter_exchange`: durable **fanout** exchange, and
//!   `amqp.dead_letter_queue`: durable queue bound to it. Poison messages and
//!   messages returned more than `delivery_limit` times end there.
//!
//! Both sides declare the whole topology every time they connect; declaring
//! is idempotent (a queue that exists with other arguments is refused by the
//! broker with PRECONDITION_FAILED, which is logged and retried).
//!
//! # Relay ([`Relay`]): at-least-once publishing
//!
//! Claims `settlement` outbox rows under a lease, publishes each payload
//! (unchanged, persistent, `mandatory`) on a channel in confirm mode, and
//! marks a row done only after the broker **acked** it and did **not** return
//! it as unroutable. Anything else (nack, return, confirm timeout, lost
//! channel or connection) leaves the row for a retry with bounded exponential
//! backoff; a publishable row is never abandoned. Sending a batch and
//! awaiting its confirms are each bounded by `confirm_timeout_ms` (a broker
//! under a resource alarm blocks publishers), and the claim's lease (2 ×
//! that + 5 s) outlasts both. A payload without a valid
//! `biller_id` can never be routed and is abandoned with the reason.
//!
//! A message can be published more than once: an ack lost with a connection
//! (broker restart), a lease that ran out, or a batch whose confirms were only
//! partly received (see below) all lead to a second publish of a message the
//! broker may already hold. **Consumers must be idempotent** (deduplicate on
//! the `message_id`, which is the batch id).
//!
//! Returned messages: lapin hands a `basic.return` to whichever confirmation
//! completes next on the channel, which under `multiple` acks need not be the
//! returned message's own. The relay therefore identifies returned messages
//! by the `outbox-id` header they carry, not by the confirmation they came
//! with, and trusts a batch's acks only when every confirmation of the batch
//! arrived (then every return of the batch has been seen). A channel whose
//! confirmations timed out is dropped, so a late return cannot be mistaken
//! for one of a later batch.
//!
//! # Consumer ([`Consumer`])
//!
//! Manual acknowledgements, `basic.qos(prefetch)`. Deliveries are handled
//! **concurrently**, at most `prefetch` at once (the broker never has more
//! than `prefetch` unacknowledged deliveries out on the channel). The
//! handler's answer decides: `Ok` → ack; [`HandleError::Poison`] (logged at
//! error) and [`HandleError::Failed`] (the batch's failure, recorded and
//! logged by the handler) → dead-lettered at once, once: a copy carrying
//! the reason in the [`REASON_HEADER`] header is published to the
//! dead-letter exchange (confirmed) and the original acked; if that copy
//! cannot be published the original is rejected without requeue, and the
//! broker dead-letters it (`x-death` reason `rejected`);
//! [`HandleError::Transient`] → after a delay that doubles with every
//! earlier delivery (`x-delivery-count`, at most a minute), nack with
//! requeue (the quorum queue dead-letters a message once it was returned
//! more than `delivery_limit` times, `x-death` reason `delivery_limit`); a
//! handler that panics counts as transient. A delivery whose channel is
//! lost before its ack is redelivered (with the `redelivered` flag) to some
//! consumer, so handlers see a message at least once and must be
//! idempotent.
//!
//! # Dead letters ([`dead_letters`], [`replay_dead_letters`])
//!
//! Listed without being removed (`basic.get` unacknowledged, then put back
//! in place), with the reason; replayed by republishing each one to the
//! settlement exchange with its routing key (confirmed, mandatory, without
//! the dead-lettering headers, with [`REPLAYED_AT_HEADER`]) and only then
//! acking it off the dead-letter queue.
//!
//! Both the relay and the consumer reconnect by themselves after the broker
//! went away, with `amqp.reconnect` backoff: the first failure of an outage
//! is logged at warn, later attempts at debug, the recovery at info. They
//! never give up (an error is logged once when `max_attempts` is passed).

use crate::liveness::BrokerLink;
use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use futures_lite::{FutureExt, StreamExt};
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use lapin::{ExchangeKind, PublisherConfirm};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::AmqpConfig;
use crate::domain::dispatch::Backoff;
use crate::domain::ids::BillerId;
use crate::store::{Claim, OutboxNext, StoreError, Topic, WorkStore};

/// Header carrying the outbox row id of a published message.
pub const OUTBOX_ID_HEADER: &str = "outbox-id";
/// Header of a dead letter: why the consumer dead-lettered it.
pub const REASON_HEADER: &str = "x-billclear-reason";
/// Header of a dead letter: when (a timestamp, seconds).
pub const DEAD_LETTERED_AT_HEADER: &str = "x-billclear-dead-lettered-at";
/// Header of a dead letter: the routing key it was delivered with.
pub const ROUTING_KEY_HEADER: &str = "x-billclear-routing-key";
/// Header of a dead letter: the queue it was taken from.
pub const FROM_QUEUE_HEADER: &str = "x-billclear-queue";
/// Header of a replayed message: when it was replayed (a timestamp).
pub const REPLAYED_AT_HEADER: &str = "x-billclear-replayed-at";
/// Binding of the settlement queue to the exchange.
pub const QUEUE_BINDING: &str = "settlement.#";

/// Longest a connection attempt (TCP, handshake, channel, declarations) may
/// take before it counts as failed.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a polite close waits for the broker's answer.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Kept between the end of confirm waiting and the end of the lease.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

// ------------------------------------------------------------------ topology

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

/// The arguments of the settlement (quorum) queue.
pub fn queue_arguments(cfg: &AmqpConfig) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(i64::from(cfg.delivery_limit)),
    );
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(LongString::from(cfg.dead_letter_exchange.as_str())),
    );
    args
}

/// The dead-letter queue's arguments: a quorum queue too on a cluster
/// (`amqp.other_urls` set), so that it does not live on one node only (a
/// classic queue is unusable while its home node is down, and declaring
/// the topology then fails on every node). On a single broker it stays
/// the classic queue earlier versions declared (changing a queue's type
/// needs it deleted first: replay its dead letters, delete it, restart).
pub fn dead_letter_queue_arguments(cfg: &AmqpConfig) -> FieldTable {
    let mut args = FieldTable::default();
    if !cfg.other_urls.is_empty() {
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(LongString::from("quorum")),
        );
    }
    args
}

/// Declares the exchanges, queues and bindings settlement uses (see the
/// module documentation). Idempotent.
pub async fn declare_topology(channel: &Channel, cfg: &AmqpConfig) -> lapin::Result<()> {
    channel
        .exchange_declare(
            cfg.exchange.as_str().into(),
            ExchangeKind::Topic,
            durable_exchange(),
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            cfg.dead_letter_exchange.as_str().into(),
            ExchangeKind::Fanout,
            durable_exchange(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            cfg.dead_letter_queue.as_str().into(),
            QueueDeclareOptions::durable(),
            dead_letter_queue_arguments(cfg),
        )
        .await?;
    channel
        .queue_bind(
            cfg.dead_letter_queue.as_str().into(),
            cfg.dead_letter_exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            cfg.queue.as_str().into(),
            QueueDeclareOptions::durable(),
            queue_arguments(cfg),
        )
        .await?;
    channel
        .queue_bind(
            cfg.queue.as_str().into(),
            cfg.exchange.as_str().into(),
            QUEUE_BINDING.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// The node this process last connected to (an index into
/// `AmqpConfig::nodes`): tried first next time.
static LAST_NODE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Opens a connection to a node of the broker (on the current tokio
/// runtime): the one this process last reached first, then each of the
/// others in turn; the last error when none answers.
pub async fn connect(cfg: &AmqpConfig) -> lapin::Result<Connection> {
    let nodes = cfg.nodes();
    let first = LAST_NODE.load(std::sync::atomic::Ordering::Relaxed) % nodes.len();
    let mut last_err = None;
    for i in 0..nodes.len() {
        let at = (first + i) % nodes.len();
        let props = ConnectionProperties::default()
            .with_connection_name(format!("billclear-{}", std::process::id()).as_str().into());
        match Connection::connect(nodes[at], props).await {
            Ok(c) => {
                if at != first {
                    tracing::warn!(
                        node = %crate::config::redact_url(nodes[at]),
                        "RabbitMQ: connected to another node of the cluster"
                    );
                }
                LAST_NODE.store(at, std::sync::atomic::Ordering::Relaxed);
                return Ok(c);
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.expect("at least one node"))
}

// ------------------------------------------------------------------ messages

/// Why a settlement payload cannot be published (never will be).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("settlement payload has no biller_id (a string): it cannot be routed")]
    MissingBillerId,
    #[error("settlement payload's biller_id is invalid: {0}")]
    InvalidBillerId(#[from] crate::domain::ids::IdError),
}

/// The routing key of a settlement payload: `settlement.batch.<biller_id>`.
pub fn routing_key(payload: &serde_json::Value) -> Result<String, PayloadError> {
    let biller = payload
        .get("biller_id")
        .and_then(|v| v.as_str())
        .ok_or(PayloadError::MissingBillerId)?;
    let biller = BillerId::parse(biller)?;
    Ok(format!("settlement.batch.{biller}"))
}

/// The message id of a settlement payload: its `batch_id` (a UUID), else
/// `outbox-<row id>`.
pub fn message_id(payload: &serde_json::Value, outbox_id: i64) -> String {
    payload
        .get("batch_id")
        .and_then(|v| v.as_str())
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .map(|u| u.to_string())
        .unwrap_or_else(|| format!("outbox-{outbox_id}"))
}

fn properties(claim: &Claim) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        OUTBOX_ID_HEADER.into(),
        AMQPValue::LongLongInt(claim.outbox_id),
    );
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(message_id(&claim.payload, claim.outbox_id).as_str().into())
        .with_timestamp(Utc::now().timestamp().max(0) as u64)
        .with_app_id("billclear".into())
        .with_headers(headers)
}

/// The outbox id a (returned) message carries, if any.
fn outbox_id_of(props: &BasicProperties) -> Option<i64> {
    match props.headers().as_ref()?.inner().get(OUTBOX_ID_HEADER)? {
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        _ => None,
    }
}

// ------------------------------------------------------------- running tasks

/// A relay or consumer running in its own task.
pub struct Running {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    fn spawn<F, Fut>(f: F) -> Running
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, rx) = watch::channel(false);
        Running {
            stop,
            task: Some(tokio::spawn(f(rx))),
        }
    }

    /// Stops gracefully: the relay finishes the batch in hand, the consumer
    /// cancels its subscription and lets deliveries in hand finish (and be
    /// acked); then the connection is closed.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Stops at once, like a crash: unconfirmed rows come back after their
    /// lease, unacknowledged deliveries are redelivered.
    pub fn abort(&self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }

    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.abort();
    }
}

fn stop_requested(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Sleeps for `d`; true when a stop was requested meanwhile.
async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if stop_requested(stop) {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.changed() => {}
    }
    stop_requested(stop)
}

fn jitter() -> f64 {
    rand::random::<f64>()
}

/// Reconnection bookkeeping: one warning per outage, not one per attempt.
struct Outage {
    what: &'static str,
    backoff: Backoff,
    since: Option<Instant>,
    attempts: u32,
    /// The connection's state as `/readyz` sees it.
    link: BrokerLink,
}

impl Outage {
    fn new(what: &'static str, backoff: Backoff, link: BrokerLink) -> Outage {
        Outage {
            what,
            backoff,
            since: None,
            attempts: 0,
            link,
        }
    }

    /// Records a failure; returns how long to wait before the next attempt.
    fn failed(&mut self, error: &dyn std::fmt::Display) -> Duration {
        self.link.down();
        self.attempts += 1;
        if self.since.is_none() {
            self.since = Some(Instant::now());
            tracing::warn!(side = self.what, %error, "RabbitMQ unavailable; reconnecting with backoff");
        } else if self.attempts == self.backoff.max_attempts {
            tracing::error!(
                side = self.what, %error, attempts = self.attempts,
                "RabbitMQ still unavailable after the configured attempts; still trying"
            );
        } else {
            tracing::debug!(side = self.what, %error, attempts = self.attempts, "RabbitMQ still unavailable");
        }
        self.backoff.delay(self.attempts, jitter())
    }

    fn recovered(&mut self) {
        self.link.up();
        if let Some(since) = self.since.take() {
            tracing::info!(
                side = self.what,
                attempts = self.attempts,
                down_ms = since.elapsed().as_millis() as u64,
                "RabbitMQ connection re-established"
            );
        }
        self.attempts = 0;
    }
}

// --------------------------------------------------------------------- relay

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("RabbitMQ: {0}")]
    Broker(#[from] lapin::Error),
    #[error("RabbitMQ: {0}")]
    Setup(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Test hook: called with the outbox ids of a batch after it was published
/// and before its confirmations are awaited.
#[doc(hidden)]
pub type PublishedHook =
    Arc<dyn Fn(Vec<i64>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Makes a [`PublishedHook`] of an async closure.
#[doc(hidden)]
pub fn published_hook<F, Fut>(f: F) -> PublishedHook
where
    F: Fn(Vec<i64>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |ids| Box::pin(f(ids)))
}

struct Link {
    conn: Connection,
    channel: Channel,
}

impl Link {
    /// Closes politely, but never waits long for a broker that does not
    /// answer (dropping the connection ends it anyway).
    async fn close(self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            let _ = self.channel.close(200, "relay stopping".into()).await;
            let _ = self.conn.close(200, "relay stopping".into()).await;
        })
        .await;
    }
}

/// How one published message ended.
enum Outcome {
    /// Acked (a return, if any, is looked at separately).
    Acked,
    Nacked,
    NotRequested,
    Failed(String),
}

/// A batch on its way: the messages sent and awaiting confirmation, the
/// outcomes known so far, and whether the channel failed or timed out.
#[derive(Default)]
struct Sending {
    sent: Vec<(Claim, String, PublisherConfirm)>,
    outcomes: Vec<(Claim, Outcome)>,
    broken: Option<lapin::Error>,
    timed_out: bool,
}

/// What a batch's confirmations said beyond each message's own outcome:
/// whether all arrived, which messages were returned, each one's key.
struct Confirmed {
    every_confirm_arrived: bool,
    returned: HashSet<i64>,
    unidentified_return: bool,
    keys: std::collections::HashMap<i64, String>,
}

impl Confirmed {
    /// The outcome a confirmation gives its message, noting a return.
    fn outcome_of(&mut self, c: Confirmation) -> Outcome {
        let outcome = match &c {
            Confirmation::Ack(_) => Outcome::Acked,
            Confirmation::Nack(_) => Outcome::Nacked,
            Confirmation::NotRequested => Outcome::NotRequested,
        };
        if let Some(m) = c.take_message() {
            match outbox_id_of(&m.delivery.properties) {
                Some(id) => {
                    self.returned.insert(id);
                }
                None => self.unidentified_return = true,
            }
        }
        outcome
    }
}

/// Publishes `settlement` outbox rows to RabbitMQ (see the module docs).
pub struct Relay {
    store: Arc<dyn WorkStore>,
    cfg: AmqpConfig,
    worker: String,
    link: Option<Link>,
    published_hook: Option<PublishedHook>,
    status: BrokerLink,
}

impl Relay {
    /// `worker` names this process in claims (`outbox.claimed_by`).
    pub fn new(store: Arc<dyn WorkStore>, cfg: AmqpConfig, worker: impl Into<String>) -> Relay {
        Relay {
            store,
            cfg,
            worker: worker.into(),
            link: None,
            published_hook: None,
            status: BrokerLink::default(),
        }
    }

    /// Keeps the connection's state in `link` (for `/readyz`).
    pub fn with_link(mut self, link: BrokerLink) -> Relay {
        self.status = link;
        self
    }

    #[doc(hidden)]
    pub fn on_published(mut self, hook: PublishedHook) -> Relay {
        self.published_hook = Some(hook);
        self
    }

    fn confirm_timeout(&self) -> Duration {
        Duration::from_millis(self.cfg.confirm_timeout_ms.max(1))
    }

    /// Claims last long enough to publish, wait for every confirmation and
    /// record the outcome.
    fn lease(&self) -> Duration {
        2 * self.confirm_timeout() + LEASE_MARGIN
    }

    /// Backoff of rows that could not be published: the reconnect backoff,
    /// without a last attempt (such rows are never given up).
    fn retry_backoff(&self) -> Backoff {
        Backoff {
            max_attempts: u32::MAX,
            ..self.cfg.reconnect.backoff()
        }
    }

    fn retry(&self, claim: &Claim, error: String) -> OutboxNext {
        let delay = self
            .retry_backoff()
            .delay(claim.attempts.max(1) as u32, jitter());
        OutboxNext::RetryAt {
            at: Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default(),
            error,
        }
    }

    async fn open(&self) -> Result<Link, RelayError> {
        let setup = async {
            let conn = connect(&self.cfg).await?;
            let channel = conn.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            declare_topology(&channel, &self.cfg).await?;
            Ok::<_, lapin::Error>(Link { conn, channel })
        };
        match tokio::time::timeout(SETUP_TIMEOUT, setup).await {
            Ok(link) => Ok(link?),
            Err(_) => Err(RelayError::Setup(format!(
                "connecting and declaring the topology took more than {SETUP_TIMEOUT:?}"
            ))),
        }
    }

    async fn ensure_link(&mut self) -> Result<(), RelayError> {
        let usable = self
            .link
            .as_ref()
            .is_some_and(|l| l.conn.status().connected() && l.channel.status().connected());
        if !usable {
            if let Some(old) = self.link.take() {
                old.close().await;
            }
            self.link = Some(self.open().await?);
        }
        Ok(())
    }

    async fn drop_link(&mut self) {
        if let Some(link) = self.link.take() {
            link.close().await;
        }
    }

    async fn finish(&self, claim: &Claim, next: OutboxNext) -> bool {
        let done = next == OutboxNext::Done;
        match &next {
            OutboxNext::Done => {}
            OutboxNext::RetryAt { at, error } | OutboxNext::Defer { at, error } => {
                tracing::warn!(outbox_id = claim.outbox_id, attempts = claim.attempts, retry_at = %at, %error, "settlement message not published; will retry")
            }
            OutboxNext::Abandon { error } => {
                tracing::error!(outbox_id = claim.outbox_id, %error, "settlement message abandoned")
            }
        }
        match self.store.finish_work(claim, &next).await {
            Ok(()) => done,
            Err(e) => {
                // The lease runs out and the row is published again: a
                // duplicate, which consumers absorb.
                tracing::error!(outbox_id = claim.outbox_id, error = %e, "recording the publish outcome failed; the row will be published again");
                false
            }
        }
    }

    /// Claims and publishes one batch on the open link. Returns (rows
    /// claimed, rows done); Err when the link is no longer usable (the rows
    /// are already rescheduled).
    async fn relay_batch(&mut self) -> Result<(usize, usize), RelayError> {
        let claims = self
            .store
            .claim_work(
                Topic::Settlement,
                &self.worker,
                self.lease(),
                self.cfg.relay_batch.max(1),
            )
            .await?;
        let claimed = claims.len();
        if claims.is_empty() {
            return Ok((0, 0));
        }
        let channel = self
            .link
            .as_ref()
            .map(|l| l.channel.clone())
            .ok_or_else(|| RelayError::Setup("no channel".into()))?;

        // Publish every row (pipelined), then await the confirmations. Both
        // phases are bounded by the confirm timeout (a broker that blocks
        // publishers, a resource alarm, stops the sending itself), so the
        // whole batch ends well within the lease.
        let mut sending = self.publish_all(&channel, claims).await;
        if let Some(hook) = &self.published_hook {
            hook(sending.sent.iter().map(|(c, _, _)| c.outbox_id).collect()).await;
        }
        let confirmed = self.await_confirms(&mut sending).await;
        let outcomes = std::mem::take(&mut sending.outcomes);
        let nacked = outcomes.iter().any(|(_, o)| matches!(o, Outcome::Nacked));
        let done = self.record_outcomes(outcomes, &confirmed).await;
        if nacked {
            // A quorum queue whose leader moved to another node can keep
            // refusing this channel's publishes: publish the retries on a
            // fresh channel (and connection).
            self.drop_link().await;
        }

        if let Some(e) = sending.broken {
            return Err(RelayError::Broker(e));
        }
        if sending.timed_out {
            // Late confirmations and returns of this channel must not be
            // taken for those of a later batch: start a fresh channel.
            self.drop_link().await;
            return Err(RelayError::Setup(format!(
                "publishing or its confirmations timed out after {} ms",
                self.cfg.confirm_timeout_ms
            )));
        }
        Ok((claimed, done))
    }

    /// Publishes each claim in turn (mandatory, with its routing key) until
    /// the channel fails or the confirm timeout passes; the claims after
    /// that fail unpublished, and a payload without a routing key is
    /// abandoned at once.
    async fn publish_all(&self, channel: &Channel, claims: Vec<Claim>) -> Sending {
        let timeout_ms = self.cfg.confirm_timeout_ms;
        let publish_deadline = tokio::time::Instant::now() + self.confirm_timeout();
        let mut s = Sending::default();
        for claim in claims {
            if s.broken.is_some() || s.timed_out {
                s.outcomes.push((
                    claim,
                    Outcome::Failed("not published: the channel failed before its turn".into()),
                ));
                continue;
            }
            let key = match routing_key(&claim.payload) {
                Ok(k) => k,
                Err(e) => {
                    self.finish(
                        &claim,
                        OutboxNext::Abandon {
                            error: e.to_string(),
                        },
                    )
                    .await;
                    continue;
                }
            };
            let body = serde_json::to_vec(&claim.payload).expect("a JSON value serializes");
            let publish = channel.basic_publish(
                self.cfg.exchange.as_str().into(),
                ShortString::from(key.as_str()),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &body,
                properties(&claim),
            );
            match tokio::time::timeout_at(publish_deadline, publish).await {
                Ok(Ok(confirm)) => s.sent.push((claim, key, confirm)),
                Ok(Err(e)) => {
                    s.outcomes
                        .push((claim, Outcome::Failed(format!("publish failed: {e}"))));
                    s.broken = Some(e);
                }
                Err(_) => {
                    s.outcomes.push((
                        claim,
                        Outcome::Failed(format!(
                            "could not be sent within {timeout_ms} ms (is the broker blocking publishers?)"
                        )),
                    ));
                    s.timed_out = true;
                }
            }
        }
        s
    }

    /// Awaits the confirmation of every message sent (within the confirm
    /// timeout), adding each one's outcome; notes the messages the broker
    /// returned and whether every confirmation arrived.
    async fn await_confirms(&self, s: &mut Sending) -> Confirmed {
        let timeout_ms = self.cfg.confirm_timeout_ms;
        let deadline = tokio::time::Instant::now() + self.confirm_timeout();
        let mut c = Confirmed {
            every_confirm_arrived: s.broken.is_none() && !s.timed_out,
            returned: HashSet::new(),
            unidentified_return: false,
            keys: std::collections::HashMap::new(),
        };
        for (claim, key, confirm) in std::mem::take(&mut s.sent) {
            c.keys.insert(claim.outbox_id, key);
            let outcome = match tokio::time::timeout_at(deadline, confirm).await {
                Ok(Ok(confirmation)) => c.outcome_of(confirmation),
                Ok(Err(e)) => {
                    c.every_confirm_arrived = false;
                    if s.broken.is_none() {
                        s.broken = Some(e.clone());
                    }
                    Outcome::Failed(format!("confirmation lost: {e}"))
                }
                Err(_) => {
                    c.every_confirm_arrived = false;
                    s.timed_out = true;
                    Outcome::Failed(format!(
                        "not confirmed by the broker within {timeout_ms} ms"
                    ))
                }
            };
            s.outcomes.push((claim, outcome));
        }
        c
    }

    /// Records each claim's next step; returns how many are done.
    async fn record_outcomes(&self, outcomes: Vec<(Claim, Outcome)>, c: &Confirmed) -> usize {
        let mut done = 0;
        for (claim, outcome) in outcomes {
            let next = self.next_step(&claim, outcome, c);
            if self.finish(&claim, next).await {
                done += 1;
            }
        }
        done
    }

    /// What happens to a claim after its outcome: done only when acked, not
    /// returned, and no lost confirmation or unidentified return in its
    /// batch leaves a return of it possible; published again otherwise.
    fn next_step(&self, claim: &Claim, outcome: Outcome, c: &Confirmed) -> OutboxNext {
        match outcome {
            Outcome::Failed(error) => self.retry(claim, error),
            Outcome::Acked if c.returned.contains(&claim.outbox_id) => {
                let key = c.keys.get(&claim.outbox_id).cloned().unwrap_or_default();
                self.retry(
                    claim,
                    format!(
                        "returned by the broker as unroutable (NO_ROUTE): no queue is bound to exchange {:?} for routing key {key:?}",
                        self.cfg.exchange
                    ),
                )
            }
            Outcome::Acked if !c.every_confirm_arrived || c.unidentified_return => self.retry(
                claim,
                "acked, but confirmations of other messages of its batch were lost, so a return of it cannot be ruled out; publishing again".into(),
            ),
            Outcome::Acked => OutboxNext::Done,
            Outcome::Nacked => self.retry(claim, "nacked by the broker (not stored)".into()),
            Outcome::NotRequested => self.retry(
                claim,
                "the channel was not in confirm mode; publishing again".into(),
            ),
        }
    }

    /// Publishes every settlement row ready now (batch after batch, until a
    /// batch comes back short), connecting first when needed. Returns how
    /// many rows were confirmed and marked done. Rows that could not be
    /// published are rescheduled; a broker error is returned after that.
    pub async fn relay_ready(&mut self) -> Result<usize, RelayError> {
        let mut done = 0;
        loop {
            self.ensure_link().await?;
            match self.relay_batch().await {
                Ok((claimed, d)) => {
                    done += d;
                    if claimed < self.cfg.relay_batch.max(1) as usize {
                        return Ok(done);
                    }
                }
                Err(e @ RelayError::Store(_)) => return Err(e),
                Err(e) => {
                    self.drop_link().await;
                    return Err(e);
                }
            }
        }
    }

    /// Relays until `stop` turns true (or its sender is dropped),
    /// reconnecting by itself.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.cfg.relay_poll_ms.max(1));
        let mut outage = Outage::new("relay", self.cfg.reconnect.backoff(), self.status.clone());
        tracing::info!(exchange = %self.cfg.exchange, "settlement relay started");
        while !stop_requested(&stop) {
            if let Err(e) = self.ensure_link().await {
                let wait = outage.failed(&e);
                if sleep_or_stop(&mut stop, wait).await {
                    break;
                }
                continue;
            }
            outage.recovered();
            match self.relay_batch().await {
                Ok((claimed, _)) => {
                    if claimed < self.cfg.relay_batch.max(1) as usize
                        && sleep_or_stop(&mut stop, poll).await
                    {
                        break;
                    }
                }
                Err(RelayError::Store(e)) => {
                    tracing::warn!(error = %e, "settlement relay: the store failed; will try again");
                    if sleep_or_stop(&mut stop, poll.max(Duration::from_millis(500))).await {
                        break;
                    }
                }
                Err(e) => {
                    self.drop_link().await;
                    let wait = outage.failed(&e);
                    if sleep_or_stop(&mut stop, wait).await {
                        break;
                    }
                }
            }
        }
        self.drop_link().await;
        tracing::info!("settlement relay stopped");
    }

    pub fn spawn(self) -> Running {
        Running::spawn(|stop| self.run(stop))
    }
}

// ------------------------------------------------------------------ consumer

/// What a handler makes of a message it could not process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandleError {
    /// Will never succeed (unreadable, invalid): dead-lettered at once,
    /// logged by the consumer at error.
    Poison(String),
    /// The batch the message names failed for good, and the handler
    /// recorded (and logged) that itself: dead-lettered at once with the
    /// reason, for a replay once the cause is fixed; the consumer does not
    /// log it again as an error.
    Failed(String),
    /// Might succeed later: requeued after a delay that doubles with each
    /// delivery (and dead-lettered once the queue's delivery limit is
    /// passed).
    Transient(String),
}

impl std::fmt::Display for HandleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandleError::Poison(e) => write!(f, "poison message: {e}"),
            HandleError::Failed(e) => write!(f, "settlement files failed: {e}"),
            HandleError::Transient(e) => write!(f, "transient failure: {e}"),
        }
    }
}

impl std::error::Error for HandleError {}

/// Processes one settlement message body. Must be idempotent: a message can
/// arrive more than once (duplicate publish, redelivery after a lost ack).
/// Parsing the body is the handler's job: unreadable is `Poison`.
#[async_trait]
pub trait SettlementHandler: Send + Sync {
    async fn handle(&self, body: &[u8]) -> Result<(), HandleError>;
}

/// Consumes the settlement queue (see the module docs).
pub struct Consumer {
    cfg: AmqpConfig,
    handler: Arc<dyn SettlementHandler>,
    transient_delay: Duration,
    status: BrokerLink,
}

/// Why a subscription ended.
enum Ended {
    Stop,
    Broken(String),
}

impl Consumer {
    pub fn new(cfg: AmqpConfig, handler: Arc<dyn SettlementHandler>) -> Consumer {
        Consumer {
            cfg,
            handler,
            transient_delay: Duration::from_secs(1),
            status: BrokerLink::default(),
        }
    }

    /// Keeps the connection's state in `link` (for `/readyz`).
    pub fn with_link(mut self, link: BrokerLink) -> Consumer {
        self.status = link;
        self
    }

    /// How long a transient failure waits before its message is requeued
    /// (default 1 s).
    pub fn with_transient_delay(mut self, delay: Duration) -> Consumer {
        self.transient_delay = delay;
        self
    }

    async fn subscribe(
        &self,
    ) -> Result<(Connection, Channel, lapin::Consumer, Arc<DeadLetterer>), RelayError> {
        let setup = async {
            let conn = connect(&self.cfg).await?;
            let channel = conn.create_channel().await?;
            declare_topology(&channel, &self.cfg).await?;
            // Dead letters are published by the consumer itself (with the
            // reason in a header) on a channel of their own in confirm mode.
            let dead = conn.create_channel().await?;
            dead.confirm_select(ConfirmSelectOptions::default()).await?;
            let dead = Arc::new(DeadLetterer {
                channel: tokio::sync::Mutex::new(dead),
                exchange: self.cfg.dead_letter_exchange.clone(),
                queue: self.cfg.queue.clone(),
            });
            channel
                .basic_qos(self.cfg.prefetch.max(1), BasicQosOptions::default())
                .await?;
            let consumer = channel
                .basic_consume(
                    self.cfg.queue.as_str().into(),
                    format!("billclear-settlement-{}", uuid::Uuid::new_v4().simple())
                        .as_str()
                        .into(),
                    BasicConsumeOptions {
                        no_ack: false,
                        ..BasicConsumeOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, lapin::Error>((conn, channel, consumer, dead))
        };
        match tokio::time::timeout(SETUP_TIMEOUT, setup).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(RelayError::Setup(format!(
                "connecting and subscribing took more than {SETUP_TIMEOUT:?}"
            ))),
        }
    }

    /// Takes deliveries until stopped or the subscription breaks, then waits
    /// for the deliveries in hand to be settled.
    async fn consume(
        &self,
        channel: &Channel,
        mut consumer: lapin::Consumer,
        dead: Arc<DeadLetterer>,
        stop: &mut watch::Receiver<bool>,
    ) -> Ended {
        let mut in_hand: JoinSet<()> = JoinSet::new();
        let ended = loop {
            tokio::select! {
                _ = stop.changed() => {
                    if stop_requested(stop) {
                        let _ = channel
                            .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                            .await;
                        break Ended::Stop;
                    }
                }
                Some(_) = in_hand.join_next(), if !in_hand.is_empty() => {}
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        let handler = self.handler.clone();
                        let delay = self.transient_delay;
                        in_hand.spawn(settle(handler, delivery, delay, dead.clone(), stop.clone()));
                    }
                    Some(Err(e)) => break Ended::Broken(e.to_string()),
                    None => break Ended::Broken("the subscription was cancelled".into()),
                }
            }
        };
        while in_hand.join_next().await.is_some() {}
        ended
    }

    /// Consumes until `stop` turns true (or its sender is dropped),
    /// reconnecting by itself.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut outage = Outage::new(
            "consumer",
            self.cfg.reconnect.backoff(),
            self.status.clone(),
        );
        tracing::info!(queue = %self.cfg.queue, prefetch = self.cfg.prefetch, "settlement consumer started");
        while !stop_requested(&stop) {
            let (conn, channel, consumer, dead) = match self.subscribe().await {
                Ok(s) => s,
                Err(e) => {
                    let wait = outage.failed(&e);
                    if sleep_or_stop(&mut stop, wait).await {
                        break;
                    }
                    continue;
                }
            };
            outage.recovered();
            let ended = self.consume(&channel, consumer, dead, &mut stop).await;
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                let _ = channel.close(200, "consumer stopping".into()).await;
                let _ = conn.close(200, "consumer stopping".into()).await;
            })
            .await;
            match ended {
                Ended::Stop => break,
                Ended::Broken(e) => {
                    let wait = outage.failed(&e);
                    if sleep_or_stop(&mut stop, wait).await {
                        break;
                    }
                }
            }
        }
        tracing::info!("settlement consumer stopped");
    }

    pub fn spawn(self) -> Running {
        Running::spawn(|stop| self.run(stop))
    }
}

/// Longest a transient failure holds its message before the requeue.
const MAX_TRANSIENT_DELAY: Duration = Duration::from_secs(60);

/// How many times the quorum queue has had the message back
/// (`x-delivery-count`, absent on the first delivery).
fn delivery_count(props: &BasicProperties) -> u32 {
    let count = props
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count").and_then(int_of));
    count.map_or(0, |c| c.clamp(0, i64::from(u32::MAX)) as u32)
}

fn int_of(v: &AMQPValue) -> Option<i64> {
    match v {
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::Timestamp(v) => i64::try_from(*v).ok(),
        _ => None,
    }
}

/// The wait before a transiently failed message is requeued: `base`,
/// doubled for every earlier delivery, at most a minute (or `base`).
fn transient_backoff(base: Duration, deliveries_before: u32) -> Duration {
    let factor = 1u32 << deliveries_before.min(10);
    base.saturating_mul(factor)
        .min(MAX_TRANSIENT_DELAY.max(base))
}

/// Publishes dead letters to the dead-letter exchange, one at a time on a
/// confirm-mode channel of the consumer's connection (one at a time, so a
/// return from the broker belongs to the message just published).
struct DeadLetterer {
    channel: tokio::sync::Mutex<Channel>,
    exchange: String,
    queue: String,
}

impl DeadLetterer {
    /// A copy of `delivery` with the reason in [`REASON_HEADER`] (and when,
    /// and where it came from), confirmed by the broker and routed to the
    /// dead-letter queue. The caller acks the original only then.
    async fn publish(
        &self,
        delivery: &lapin::message::Delivery,
        reason: &str,
    ) -> Result<(), String> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(
            REASON_HEADER.into(),
            AMQPValue::LongString(LongString::from(reason)),
        );
        headers.insert(
            DEAD_LETTERED_AT_HEADER.into(),
            AMQPValue::Timestamp(Utc::now().timestamp().max(0) as u64),
        );
        headers.insert(
            ROUTING_KEY_HEADER.into(),
            AMQPValue::LongString(LongString::from(delivery.routing_key.as_str())),
        );
        headers.insert(
            FROM_QUEUE_HEADER.into(),
            AMQPValue::LongString(LongString::from(self.queue.as_str())),
        );
        let props = delivery.properties.clone().with_headers(headers);
        let channel = self.channel.lock().await;
        let publish = async {
            channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    delivery.routing_key.clone(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &delivery.data,
                    props,
                )
                .await?
                .await
        };
        match tokio::time::timeout(SETUP_TIMEOUT, publish).await {
            Err(_) => Err(format!(
                "the dead-letter exchange did not confirm within {SETUP_TIMEOUT:?}"
            )),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(Confirmation::Ack(None))) => Ok(()),
            Ok(Ok(Confirmation::Ack(Some(_)))) => Err(format!(
                "returned as unroutable by the dead-letter exchange {:?}: is its queue bound?",
                self.exchange
            )),
            Ok(Ok(other)) => Err(format!("not confirmed by the broker: {other:?}")),
        }
    }
}

/// Dead-letters a delivery with its reason: a copy to the dead-letter
/// exchange carrying the reason, then the original acked. When the copy
/// cannot be published the original is rejected instead (the broker
/// dead-letters it, with `x-death` reason `rejected` and no reason header).
async fn dead_letter(
    dead: &DeadLetterer,
    delivery: &lapin::message::Delivery,
    message_id: &str,
    reason: &str,
) -> lapin::Result<bool> {
    match dead.publish(delivery, reason).await {
        Ok(()) => delivery.ack(Default::default()).await,
        Err(e) => {
            tracing::warn!(%message_id, error = %e,
                "could not publish the dead letter with its reason; rejecting it to the dead-letter queue instead");
            delivery.reject(BasicRejectOptions { requeue: false }).await
        }
    }
}

/// Runs the handler on one delivery and settles it (ack, dead-letter or
/// nack).
async fn settle(
    handler: Arc<dyn SettlementHandler>,
    delivery: lapin::message::Delivery,
    delay: Duration,
    dead: Arc<DeadLetterer>,
    mut stop: watch::Receiver<bool>,
) {
    let message_id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    let redelivered = delivery.redelivered;
    let outcome = AssertUnwindSafe(handler.handle(&delivery.data))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(HandleError::Transient("the handler panicked".into())));
    let settled = match outcome {
        Ok(()) => delivery.ack(Default::default()).await,
        Err(HandleError::Poison(reason)) => {
            tracing::error!(%message_id, redelivered, %reason, "poison settlement message: dead-lettered");
            dead_letter(
                &dead,
                &delivery,
                &message_id,
                &format!("poison message: {reason}"),
            )
            .await
        }
        Err(HandleError::Failed(reason)) => {
            // The handler recorded and logged the failure: told once.
            tracing::info!(%message_id, "settlement message dead-lettered with its batch's failure; replay it once the cause is fixed");
            dead_letter(
                &dead,
                &delivery,
                &message_id,
                &format!("settlement files failed: {reason}"),
            )
            .await
        }
        Err(HandleError::Transient(reason)) => {
            let before = delivery_count(&delivery.properties);
            let wait = transient_backoff(delay, before);
            tracing::warn!(%message_id, redelivered, deliveries_before = before, %reason,
                retry_in_ms = wait.as_millis() as u64, "settlement message failed; requeued after a delay");
            if !stop_requested(&stop) {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
            }
            delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    multiple: false,
                })
                .await
        }
    };
    match settled {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(%message_id, "the channel closed before the message was settled; it will be redelivered")
        }
        Err(e) => {
            tracing::warn!(%message_id, error = %e, "settling the message failed; it will be redelivered")
        }
    }
}

// -------------------------------------------------------------- dead letters

/// A message in the dead-letter queue, as `billclear settlements
/// dead-letters` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// The message id (the batch id for settlement messages).
    pub message_id: Option<String>,
    /// The body's `batch_id`, when it has one.
    pub batch_id: Option<uuid::Uuid>,
    pub biller_id: Option<String>,
    /// The routing key it is replayed with.
    pub routing_key: String,
    /// Why it is there: the consumer's [`REASON_HEADER`], else the
    /// broker's `x-death` reason (`delivery_limit`, `rejected`, ...).
    pub reason: String,
    /// When it was dead-lettered, when known.
    pub dead_lettered_at: Option<chrono::DateTime<Utc>>,
    /// How often it was replayed before.
    pub replays: u32,
    pub bytes: usize,
}

/// What [`replay_dead_letters`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Replayed {
    /// Republished to the settlement exchange and removed from the
    /// dead-letter queue.
    pub replayed: Vec<DeadLetter>,
    /// Left in the dead-letter queue (not selected).
    pub left: usize,
}

fn text_of(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

fn time_of(v: &AMQPValue) -> Option<chrono::DateTime<Utc>> {
    int_of(v).and_then(|t| chrono::DateTime::from_timestamp(t, 0))
}

/// The first `x-death` entry of a message the broker dead-lettered.
fn first_death(props: &BasicProperties) -> Option<FieldTable> {
    let headers = props.headers().as_ref()?;
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    match deaths.as_slice().first()? {
        AMQPValue::FieldTable(t) => Some(t.clone()),
        _ => None,
    }
}

/// Reads a dead letter's id, batch, reason and time from its headers and
/// body.
pub fn describe_dead_letter(delivery: &lapin::message::Delivery) -> DeadLetter {
    let props = &delivery.properties;
    let header = |name: &str| {
        props
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(name).cloned())
    };
    let body: Option<serde_json::Value> = serde_json::from_slice(&delivery.data).ok();
    let batch_id = body
        .as_ref()
        .and_then(|b| b.get("batch_id"))
        .and_then(|v| v.as_str())
        .and_then(|s| uuid::Uuid::parse_str(s).ok());
    let biller_id = body
        .as_ref()
        .and_then(|b| b.get("biller_id"))
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let death = first_death(props);
    let death_field = |name: &str| death.as_ref().and_then(|d| d.inner().get(name).cloned());
    let death_routing_key = death_field("routing-keys").and_then(|v| match v {
        AMQPValue::FieldArray(keys) => keys.as_slice().first().and_then(text_of),
        _ => None,
    });
    let routing_key = header(ROUTING_KEY_HEADER)
        .as_ref()
        .and_then(text_of)
        .or(death_routing_key)
        .filter(|k| !k.is_empty())
        .or_else(|| {
            (!delivery.routing_key.as_str().is_empty()).then(|| delivery.routing_key.to_string())
        })
        .or_else(|| body.as_ref().and_then(|b| routing_key(b).ok()))
        .unwrap_or_default();
    let reason = match header(REASON_HEADER).as_ref().and_then(text_of) {
        Some(r) => r,
        None => match death_field("reason").as_ref().and_then(text_of) {
            Some(r) if r == "delivery_limit" => {
                "delivery_limit: returned more often than the queue's delivery limit (transient failures; the consumer's warnings \"settlement message failed\" say why)".into()
            }
            Some(r) if r == "rejected" => {
                "rejected: refused by a consumer (see its error log)".into()
            }
            Some(r) => r,
            None => "unknown (no reason header, no x-death)".into(),
        },
    };
    let dead_lettered_at = header(DEAD_LETTERED_AT_HEADER)
        .as_ref()
        .and_then(time_of)
        .or_else(|| death_field("time").as_ref().and_then(time_of));
    let replays = header("x-billclear-replays")
        .as_ref()
        .and_then(int_of)
        .map_or(0, |n| n.clamp(0, i64::from(u32::MAX)) as u32);
    DeadLetter {
        message_id: props.message_id().as_ref().map(|m| m.to_string()),
        batch_id,
        biller_id,
        routing_key,
        reason,
        dead_lettered_at,
        replays,
        bytes: delivery.data.len(),
    }
}

/// The headers a replayed message keeps: its own (the outbox id, ...)
/// without what dead-lettering added, with when it was replayed and how
/// often.
fn replay_properties(props: &BasicProperties, replays: u32) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(h) = props.headers().as_ref() {
        for (k, v) in h.inner() {
            let name = k.as_str();
            let dead_lettering = name.starts_with("x-death")
                || name.starts_with("x-first-death")
                || name.starts_with("x-last-death")
                || name == "x-delivery-count"
                || name == REASON_HEADER
                || name == DEAD_LETTERED_AT_HEADER
                || name == ROUTING_KEY_HEADER
                || name == FROM_QUEUE_HEADER;
            if !dead_lettering {
                headers.insert(k.clone(), v.clone());
            }
        }
    }
    headers.insert(
        REPLAYED_AT_HEADER.into(),
        AMQPValue::Timestamp(Utc::now().timestamp().max(0) as u64),
    );
    headers.insert(
        "x-billclear-replays".into(),
        AMQPValue::LongLongInt(i64::from(replays) + 1),
    );
    props.clone().with_headers(headers)
}

/// Most messages one listing or replay takes off the dead-letter queue.
pub const DEAD_LETTER_SCAN_LIMIT: usize = 10_000;

/// Lists the dead-letter queue without changing it: every message is
/// taken unacknowledged (`basic.get`) and put back (`nack` with requeue)
/// in its place. At most `limit` messages are read.
pub async fn dead_letters(cfg: &AmqpConfig, limit: usize) -> Result<Vec<DeadLetter>, RelayError> {
    let conn = tokio::time::timeout(SETUP_TIMEOUT, connect(cfg))
        .await
        .map_err(|_| RelayError::Setup(format!("connecting took more than {SETUP_TIMEOUT:?}")))??;
    let listed = async {
        let ch = conn.create_channel().await?;
        declare_topology(&ch, cfg).await?;
        let mut held = Vec::new();
        let mut out = Vec::new();
        while held.len() < limit.min(DEAD_LETTER_SCAN_LIMIT) {
            let Some(m) = ch
                .basic_get(
                    cfg.dead_letter_queue.as_str().into(),
                    lapin::options::BasicGetOptions { no_ack: false },
                )
                .await?
            else {
                break;
            };
            out.push(describe_dead_letter(&m.delivery));
            held.push(m.delivery);
        }
        requeue(&held).await?;
        let _ = ch.close(200, "listed".into()).await;
        Ok::<_, lapin::Error>(out)
    }
    .await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close(200, "done".into())).await;
    Ok(listed?)
}

/// Puts messages taken with `basic.get` back in the queue, in their place.
async fn requeue(held: &[lapin::message::Delivery]) -> lapin::Result<()> {
    for d in held {
        d.nack(BasicNackOptions {
            requeue: true,
            multiple: false,
        })
        .await?;
    }
    Ok(())
}

/// Replays dead letters (all, or those of one batch): each is republished
/// to the settlement exchange with its routing key (persistent, mandatory,
/// confirmed, without the dead-lettering headers) and only then acked off
/// the dead-letter queue; the others are put back in their place. The
/// consumer is idempotent: a batch whose files are written meanwhile just
/// acks it, a failed batch is tried again.
pub async fn replay_dead_letters(
    cfg: &AmqpConfig,
    batch: Option<uuid::Uuid>,
) -> Result<Replayed, RelayError> {
    let conn = tokio::time::timeout(SETUP_TIMEOUT, connect(cfg))
        .await
        .map_err(|_| RelayError::Setup(format!("connecting took more than {SETUP_TIMEOUT:?}")))??;
    let result = async {
        let ch = conn.create_channel().await?;
        declare_topology(&ch, cfg).await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let mut held = Vec::new();
        let mut done = Replayed::default();
        let mut failed: Option<RelayError> = None;
        while held.len() < DEAD_LETTER_SCAN_LIMIT {
            let Some(m) = ch
                .basic_get(
                    cfg.dead_letter_queue.as_str().into(),
                    lapin::options::BasicGetOptions { no_ack: false },
                )
                .await?
            else {
                break;
            };
            let d = m.delivery;
            let info = describe_dead_letter(&d);
            let selected = batch.is_none_or(|b| info.batch_id == Some(b));
            if !selected || info.routing_key.is_empty() {
                if selected {
                    tracing::warn!(message_id = ?info.message_id, "a dead letter without a routing key cannot be replayed; left in place");
                }
                held.push(d);
                continue;
            }
            let confirm = ch
                .basic_publish(
                    cfg.exchange.as_str().into(),
                    info.routing_key.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &d.data,
                    replay_properties(&d.properties, info.replays),
                )
                .await?;
            let confirmed =
                tokio::time::timeout(Duration::from_millis(cfg.confirm_timeout_ms.max(1)), confirm)
                    .await;
            match confirmed {
                Ok(Ok(Confirmation::Ack(None))) => {
                    d.ack(Default::default()).await?;
                    done.replayed.push(info);
                }
                other => {
                    let why = match other {
                        Ok(Ok(Confirmation::Ack(Some(_)))) => format!(
                            "returned as unroutable by {:?} (routing key {:?}): is the work queue bound?",
                            cfg.exchange, info.routing_key
                        ),
                        Ok(Ok(c)) => format!("not confirmed by the broker: {c:?}"),
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => format!(
                            "not confirmed within {} ms",
                            cfg.confirm_timeout_ms
                        ),
                    };
                    held.push(d);
                    failed = Some(RelayError::Setup(format!(
                        "replaying {:?}: {why}; it stays in the dead-letter queue",
                        info.message_id
                    )));
                    break;
                }
            }
        }
        done.left = held.len();
        requeue(&held).await?;
        let _ = ch.close(200, "replayed".into()).await;
        match failed {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }
    .await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close(200, "done".into())).await;
    match result {
        Ok(r) => Ok(r),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn routing_keys() {
        let p = json!({"kind": "settlement_batch", "batch_id": "0192f5a4-5b7e-7c3a-9f1e-3a2b1c0d9e8f", "biller_id": "sh-water"});
        assert_eq!(routing_key(&p).unwrap(), "settlement.batch.sh-water");
        assert_eq!(
            routing_key(&json!({"batch_id": "x"})),
            Err(PayloadError::MissingBillerId)
        );
        assert_eq!(
            routing_key(&json!({"biller_id": 7})),
            Err(PayloadError::MissingBillerId)
        );
        assert!(matches!(
            routing_key(&json!({"biller_id": "Sh.Water#"})),
            Err(PayloadError::InvalidBillerId(_))
        ));
        assert!(routing_key(&json!({"biller_id": ""})).is_err());
    }

    #[test]
    fn message_ids() {
        let p = json!({"batch_id": "0192F5A4-5B7E-7C3A-9F1E-3A2B1C0D9E8F"});
        assert_eq!(message_id(&p, 9), "0192f5a4-5b7e-7c3a-9f1e-3a2b1c0d9e8f");
        assert_eq!(message_id(&json!({"batch_id": "nope"}), 9), "outbox-9");
        assert_eq!(message_id(&json!({}), 12), "outbox-12");
    }

    #[test]
    fn transient_failures_back_off_doubling_up_to_a_minute() {
        let base = Duration::from_secs(5);
        let waits: Vec<u64> = (0..6)
            .map(|n| transient_backoff(base, n).as_secs())
            .collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
        assert_eq!(
            transient_backoff(Duration::from_millis(50), 2),
            Duration::from_millis(200)
        );
        // A base longer than the cap is kept.
        assert_eq!(
            transient_backoff(Duration::from_secs(90), 3),
            Duration::from_secs(90)
        );
        assert_eq!(transient_backoff(base, u32::MAX).as_secs(), 60);
        let mut headers = FieldTable::default();
        headers.insert("x-delivery-count".into(), AMQPValue::LongLongInt(3));
        assert_eq!(
            delivery_count(&BasicProperties::default().with_headers(headers)),
            3
        );
        assert_eq!(delivery_count(&BasicProperties::default()), 0);
    }

    #[test]
    fn replayed_messages_lose_the_dead_lettering_headers() {
        let mut headers = FieldTable::default();
        headers.insert(OUTBOX_ID_HEADER.into(), AMQPValue::LongLongInt(7));
        headers.insert(
            REASON_HEADER.into(),
            AMQPValue::LongString(LongString::from("poison message: x")),
        );
        headers.insert("x-death".into(), AMQPValue::FieldArray(Default::default()));
        headers.insert(
            "x-first-death-reason".into(),
            AMQPValue::LongString(LongString::from("rejected")),
        );
        headers.insert("x-delivery-count".into(), AMQPValue::LongLongInt(2));
        headers.insert("x-billclear-replays".into(), AMQPValue::LongLongInt(1));
        let props = BasicProperties::default()
            .with_message_id("m".into())
            .with_headers(headers);
        let replayed = replay_properties(&props, 1);
        let h = replayed.headers().as_ref().unwrap().inner();
        assert_eq!(outbox_id_of(&replayed), Some(7));
        for gone in [
            REASON_HEADER,
            "x-death",
            "x-first-death-reason",
            "x-delivery-count",
        ] {
            assert!(!h.contains_key(gone), "{gone} kept");
        }
        assert!(h.contains_key(REPLAYED_AT_HEADER));
        assert_eq!(
            h.get("x-billclear-replays"),
            Some(&AMQPValue::LongLongInt(2))
        );
        assert_eq!(
            replayed.message_id().as_ref().map(|m| m.as_str()),
            Some("m")
        );
    }

    #[test]
    fn outbox_id_header_round_trips() {
        let claim = Claim {
            outbox_id: 42,
            token: uuid::Uuid::new_v4(),
            aggregate_id: uuid::Uuid::new_v4(),
            payload: json!({"biller_id": "sh-water"}),
            attempts: 1,
            created_at: Utc::now(),
            lease_deadline: Instant::now(),
        };
        let props = properties(&claim);
        assert_eq!(outbox_id_of(&props), Some(42));
        assert_eq!(props.delivery_mode(), &Some(2));
        assert_eq!(outbox_id_of(&BasicProperties::default()), None);
    }
}
