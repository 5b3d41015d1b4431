//! Settlement inside `billclear serve`: the outbox relay (to RabbitMQ), the
//! settlement consumer (files), and the scheduler that closes each biller's
//! business date at its cut-off.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use uuid::Uuid;

use super::broker::{Consumer, HandleError, Relay, Running};
use super::close::{close_date, due_dates, Closing, When};
use super::render::BatchRenderer;
use crate::config::Config;
use crate::startup::duty::{self, Duty, LeaseTiming};
use crate::store::{BatchRecord, CloseOutcome, Store};

/// The running settlement tasks of one process: the consumer (every
/// process consumes; handling is idempotent), and the duties of relaying
/// the outbox and closing dates at their cut-off (one process of a fleet
/// at a time, under a lease: `startup::duty`).
pub struct SettlementService {
    relay: Duty,
    consumer: Running,
    scheduler: Option<Duty>,
    /// The relay's and the consumer's RabbitMQ connections (`/readyz`).
    links: [(&'static str, crate::liveness::BrokerLink); 2],
}

impl SettlementService {
    /// Starts the consumer, and stands for the relay and (when
    /// `settlement.schedule` is on) the scheduler's duties.
    pub fn start(store: Arc<dyn Store>, config: &Config, worker: &str) -> SettlementService {
        let links = [
            ("relay", crate::liveness::BrokerLink::default()),
            ("consumer", crate::liveness::BrokerLink::default()),
        ];
        let timing = LeaseTiming::from_config(&config.duties);
        let relay = {
            let (store, amqp, worker) = (store.clone(), config.amqp.clone(), worker.to_string());
            let link = links[0].1.clone();
            // Until (and whenever) another process holds the relay.
            link.standby();
            Duty::spawn(
                store.clone(),
                duty::SETTLEMENT_RELAY,
                &worker.clone(),
                timing,
                duty::body(move || {
                    let relay = Relay::new(store.clone(), amqp.clone(), worker.clone())
                        .with_link(link.clone());
                    let standby = StandbyWhenDropped(link.clone());
                    async move {
                        // Dropped (aborted) when the lease is lost.
                        let _running = relay.spawn();
                        let _standby = standby;
                        std::future::pending::<()>().await
                    }
                }),
            )
        };
        let renderer = Arc::new(BatchRenderer::new(
            store.clone(),
            config.settlement.outbox_dir.clone(),
        ));
        // A failing database or disk gets a few tries, 5 s apart and
        // doubling, before the message is dead-lettered (the schedule
        // renders what is left without files after a few minutes anyway).
        let consumer = Consumer::new(config.amqp.clone(), renderer)
            .with_transient_delay(Duration::from_secs(5))
            .with_link(links[1].1.clone())
            .spawn();
        let scheduler = config.settlement.schedule.then(|| {
            let cfg = config.clone();
            Duty::spawn(
                store.clone(),
                duty::CLOSE_DATES,
                worker,
                timing,
                duty::body(move || schedule(store.clone(), cfg.clone())),
            )
        });
        SettlementService {
            relay,
            consumer,
            scheduler,
            links,
        }
    }

    /// Registers the RabbitMQ connections with `/readyz`.
    pub fn watch(&self, liveness: &crate::liveness::Liveness) {
        for (name, link) in &self.links {
            liveness.watch_broker(*name, link.clone());
        }
    }

    /// Stops, giving the duties' leases up for an immediate hand-over.
    pub async fn stop(self) {
        if let Some(s) = &self.scheduler {
            s.release().await;
        }
        self.relay.release().await;
        self.consumer.stop().await;
    }

    pub fn abort(&self) {
        if let Some(s) = &self.scheduler {
            s.abort();
        }
        self.relay.abort();
        self.consumer.abort();
    }
}

/// Marks the relay's link as on standby when its duty's body ends here.
struct StandbyWhenDropped(crate::liveness::BrokerLink);

impl Drop for StandbyWhenDropped {
    fn drop(&mut self) {
        self.0.standby();
    }
}

/// Closes due dates every `schedule_check_ms`.
async fn schedule(store: Arc<dyn Store>, config: Config) {
    let mut tick =
        tokio::time::interval(Duration::from_millis(config.settlement.schedule_check_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rerenders = Rerenders::default();
    loop {
        tick.tick().await;
        if let Err(e) = close_due(&store, &config, &mut rerenders).await {
            tracing::warn!(error = %e, "settlement schedule: will try again");
        }
    }
}

/// Publishes ready settlement messages and consumes them in this process
/// until every batch in `ids` has its files, or failed for good.
///
/// A batch whose files failed (recorded on the batch, by this process's
/// consumer or any other) is returned at once as [`FilesFailed`], with the
/// recorded cause. Publishing that fails blames RabbitMQ, truthfully; a
/// wait that times out says where each message is (not published yet, in
/// the work queue, in the dead-letter queue) and the batches still without
/// files are rendered here, since the files never depend on the broker
/// alone.
pub async fn publish_and_render(
    store: Arc<dyn Store>,
    config: &Config,
    ids: &[Uuid],
    timeout: Duration,
) -> anyhow::Result<()> {
    let mut relay = Relay::new(store.clone(), config.amqp.clone(), "billclear-settle");
    let published = relay.relay_ready().await.with_context(|| {
        format!(
            "publishing to RabbitMQ at {} (is it running? ops/ensure-rabbitmq.sh starts it)",
            crate::config::redact_url(&config.amqp.url)
        )
    })?;
    tracing::info!(published, "settlement messages published");
    let renderer = Arc::new(BatchRenderer::new(
        store.clone(),
        config.settlement.outbox_dir.clone(),
    ));
    let consumer = Consumer::new(config.amqp.clone(), renderer.clone()).spawn();
    let waited = wait_for_files(&*store, ids, timeout).await;
    consumer.stop().await;
    match waited {
        Ok(()) => Ok(()),
        Err(WaitError::Failed(failed)) => Err(failed.into()),
        Err(WaitError::Store(e)) => Err(e.into()),
        Err(WaitError::TimedOut {
            waiting, failed, ..
        }) => {
            // Say where each message is, then render here what is left:
            // a message dead-lettered before (by an earlier run) is never
            // consumed, and the files never depend on the broker alone.
            let in_dlq = super::broker::dead_letters(&config.amqp, 1_000).await;
            for id in &waiting {
                let whereabouts = message_whereabouts(&*store, *id, in_dlq.as_ref().ok()).await;
                tracing::warn!(batch = %id, %whereabouts, "settlement files not written within {} s; rendering them here", timeout.as_secs());
            }
            let mut failed = failed;
            for id in &waiting {
                match renderer.render(*id).await {
                    Ok(_) => {}
                    Err(HandleError::Failed(_)) => {
                        if let Some(b) = store.batch(*id).await? {
                            failed.push(FailedBatch::of(&b));
                        }
                    }
                    Err(e) => anyhow::bail!(
                        "batch {id}: its files were not written within {} s, and rendering them here failed: {e}",
                        timeout.as_secs()
                    ),
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(FilesFailed(failed).into())
            }
        }
    }
}

/// Where a batch's settlement message is, in words: not published yet
/// (with the relay's last error), in the dead-letter queue (with the
/// reason), or published and not consumed.
pub async fn message_whereabouts(
    store: &dyn Store,
    batch: Uuid,
    dead_letters: Option<&Vec<super::broker::DeadLetter>>,
) -> String {
    if let Some(d) = dead_letters
        .into_iter()
        .flatten()
        .find(|d| d.batch_id == Some(batch))
    {
        return format!(
            "its message is in the dead-letter queue ({}); `billclear settlements dead-letters --replay --batch {batch}` replays it",
            d.reason
        );
    }
    let messages = match store.settlement_messages(batch).await {
        Ok(m) => m,
        Err(e) => return format!("its message could not be looked up: {e}"),
    };
    match messages.last() {
        None => "it has no settlement message in the outbox".into(),
        Some(m) if m.abandoned => format!(
            "its message was abandoned by the relay: {}",
            m.last_error.as_deref().unwrap_or("no error recorded")
        ),
        Some(m) if m.done_at.is_none() => format!(
            "its message is not published to RabbitMQ yet ({} attempts{}): is RabbitMQ up?",
            m.attempts,
            m.last_error
                .as_deref()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default()
        ),
        Some(_) => "its message was published (the broker confirmed it) and is not consumed yet: is a consumer running (`billclear serve`), or is the work queue backed up?".into(),
    }
}

/// A batch whose files failed for good, as recorded on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedBatch {
    pub id: Uuid,
    pub biller_id: String,
    pub business_date: chrono::NaiveDate,
    pub failed_at: chrono::DateTime<Utc>,
    pub failure: String,
}

impl FailedBatch {
    pub fn of(b: &BatchRecord) -> FailedBatch {
        FailedBatch {
            id: b.id,
            biller_id: b.biller_id.clone(),
            business_date: b.business_date,
            failed_at: b.files_failed_at.unwrap_or_else(Utc::now),
            failure: b.files_failure.clone().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for FailedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "batch {} ({} {}): settlement files failed at {}: {}",
            self.id,
            self.biller_id,
            self.business_date,
            self.failed_at.format("%Y-%m-%dT%H:%M:%SZ"),
            self.failure
        )
    }
}

/// Batches whose files failed for good (the error of
/// [`publish_and_render`] and [`wait_for_files`] for them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesFailed(pub Vec<FailedBatch>);

impl std::fmt::Display for FilesFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "the settlement files of {n} batch{} failed (nothing was replaced; the batch{} stay{} closed and settled)",
            if n == 1 { "" } else { "es" },
            if n == 1 { "" } else { "es" },
            if n == 1 { "s" } else { "" },
        )?;
        for b in &self.0 {
            write!(f, "; {b}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FilesFailed {}

/// Why [`wait_for_files`] returned without every file written.
#[derive(Debug)]
pub enum WaitError {
    /// Every batch is written or failed, and these failed.
    Failed(FilesFailed),
    /// Some batches still have no files (and these others failed).
    TimedOut {
        waiting: Vec<Uuid>,
        failed: Vec<FailedBatch>,
        total: usize,
        timeout: Duration,
    },
    Store(crate::store::StoreError),
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitError::Failed(failed) => failed.fmt(f),
            WaitError::TimedOut {
                waiting,
                failed,
                total,
                timeout,
            } => {
                write!(
                    f,
                    "{} of {total} batches still have no files after {} s",
                    waiting.len(),
                    timeout.as_secs()
                )?;
                if !failed.is_empty() {
                    write!(f, "; {}", FilesFailed(failed.clone()))?;
                }
                Ok(())
            }
            WaitError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for WaitError {}

impl From<crate::store::StoreError> for WaitError {
    fn from(e: crate::store::StoreError) -> WaitError {
        WaitError::Store(e)
    }
}

/// Batches whose files are still missing this long after the close are
/// rendered by the scheduler itself (their message was dead-lettered, or
/// is stuck): the files never depend on the broker alone.
pub const RENDER_AFTER: chrono::Duration = chrono::Duration::minutes(5);

/// After the scheduler's own rendering of a batch failed transiently (disk,
/// database), the next try waits this long, doubled for each failure, at
/// most [`RERENDER_MAX_DELAY`].
const RERENDER_FIRST_DELAY: chrono::Duration = chrono::Duration::minutes(1);
const RERENDER_MAX_DELAY: chrono::Duration = chrono::Duration::hours(1);

/// The scheduler's memory of its own transient rendering failures: when
/// each batch may be tried again (kept by the scheduler's loop).
#[derive(Debug, Default)]
pub struct Rerenders {
    next: std::collections::HashMap<Uuid, (u32, chrono::DateTime<Utc>)>,
}

/// What one pass of [`render_left_behind`] did with each batch it looked at.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RerenderPass {
    /// Rendered now.
    pub rendered: Vec<Uuid>,
    /// Failed for good now (recorded on the batch and logged by the
    /// renderer).
    pub failed: Vec<Uuid>,
    /// Failed transiently: tried again after a backoff.
    pub retry_later: Vec<Uuid>,
    /// Not tried: failed for good before (never retried on a timer), or
    /// still backing off.
    pub skipped: Vec<Uuid>,
}

/// Renders the batches left without files [`RENDER_AFTER`] after their
/// close. A batch whose files failed for good is skipped (it was told once;
/// a replayed message retries it); a transient failure is retried with a
/// doubling delay.
pub async fn render_left_behind(
    renderer: &BatchRenderer,
    batches: &[BatchRecord],
    now: chrono::DateTime<Utc>,
    rerenders: &mut Rerenders,
) -> RerenderPass {
    let mut pass = RerenderPass::default();
    for b in batches
        .iter()
        .filter(|b| b.files_written_at.is_none() && now - b.created_at > RENDER_AFTER)
    {
        if b.files_failed_at.is_some() {
            pass.skipped.push(b.id);
            continue;
        }
        if let Some((_, at)) = rerenders.next.get(&b.id) {
            if now < *at {
                pass.skipped.push(b.id);
                continue;
            }
        }
        tracing::warn!(batch = %b.id, biller = %b.biller_id, date = %b.business_date,
            "settlement files still missing; rendering them here");
        match renderer.render(b.id).await {
            Ok(_) => {
                rerenders.next.remove(&b.id);
                pass.rendered.push(b.id);
            }
            Err(HandleError::Failed(_)) => {
                rerenders.next.remove(&b.id);
                pass.failed.push(b.id);
            }
            Err(e) => {
                let failures = rerenders.next.get(&b.id).map_or(0, |(n, _)| *n) + 1;
                let delay =
                    (RERENDER_FIRST_DELAY * 2i32.pow(failures.min(10) - 1)).min(RERENDER_MAX_DELAY);
                let at = now + delay;
                tracing::warn!(batch = %b.id, error = %e, failures, retry_at = %at,
                    "rendering failed; tried again after a backoff");
                rerenders.next.insert(b.id, (failures, at));
                pass.retry_later.push(b.id);
            }
        }
    }
    pass
}

/// One scheduler pass: every biller's dates whose cut-off has passed and
/// that are still open, oldest first (a biller's pass stops at its first
/// failure: a later date never closes over an open earlier one in the
/// same pass); batches left without files rendered; and the statements of
/// every complete date of the window that has none yet.
pub async fn close_due(
    store_arc: &Arc<dyn Store>,
    config: &Config,
    rerenders: &mut Rerenders,
) -> anyhow::Result<Vec<Uuid>> {
    let store: &dyn Store = &**store_arc;
    let now = Utc::now();
    let billers = store.load_billers().await?;
    let renderer = BatchRenderer::new(store_arc.clone(), config.settlement.outbox_dir.clone());
    let mut closed_now = Vec::new();
    let mut dates = std::collections::BTreeSet::new();
    for b in billers.iter().filter(|b| b.settlement.is_some()) {
        let batches = store.batches(Some(b.id.as_str()), None).await?;
        let closed: std::collections::BTreeSet<_> =
            batches.iter().map(|x| x.business_date).collect();
        'dates: for date in due_dates(b, &closed, now, config.settlement.catch_up_days) {
            let out = close_date(
                store,
                &billers,
                date,
                Some(b.id.as_str()),
                When::AtCutoff,
                &config.settlement.debtor,
                now,
            )
            .await?;
            for (id, c) in out {
                match c {
                    Closing::Closed(CloseOutcome::Closed(batch)) => {
                        tracing::info!(biller = %id, %date, payments = batch.totals.count,
                            net = %batch.totals.net(), "business date closed at its cut-off");
                        closed_now.push(batch.id);
                        dates.insert(date);
                    }
                    Closing::Closed(CloseOutcome::AlreadyClosed(_)) => {}
                    Closing::Skipped(why) => {
                        tracing::debug!(biller = %id, %date, %why, "not closed");
                        break 'dates;
                    }
                    Closing::Failed(why) => {
                        tracing::error!(biller = %id, %date, %why, "closing failed; retried next pass");
                        break 'dates;
                    }
                }
            }
        }
        render_left_behind(&renderer, &batches, now, rerenders).await;
    }
    // Statements: each complete date of the window whose statements were
    // never written (a pass that failed, dates closed by hand).
    let oldest =
        now.date_naive() - chrono::Days::new(u64::from(config.settlement.catch_up_days) + 1);
    let mut d = oldest;
    while d <= now.date_naive() + chrono::Days::new(1) {
        let missing = store.statement_channels(d).await?.into_iter().any(|c| {
            crate::domain::ids::ChannelId::parse(&c).is_ok_and(|ch| {
                let dir = super::statement::dir(&config.settlement.outbox_dir, &ch);
                !dir.join(super::statement::file_name(&ch, d)).exists()
            })
        });
        if missing || dates.contains(&d) {
            let written =
                super::statement::write_all_if_complete(store, &config.settlement.outbox_dir, d)
                    .await?;
            for (channel, s) in written {
                tracing::info!(%channel, date = %d, lines = s.lines, "channel statement written");
            }
        }
        d = d + chrono::Days::new(1);
    }
    Ok(closed_now)
}

/// Waits until every batch in `ids` has its files recorded, or its files
/// failed for good: failures are returned as soon as no other batch is
/// still waiting (a failure is never waited out), with the recorded cause.
/// Times out only on batches still neither written nor failed.
pub async fn wait_for_files(
    store: &dyn Store,
    ids: &[Uuid],
    timeout: Duration,
) -> Result<(), WaitError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut waiting = Vec::new();
        let mut failed = Vec::new();
        for id in ids {
            match store.batch(*id).await? {
                Some(b) if b.files_written_at.is_some() => {}
                Some(b) if b.files_failed() => failed.push(FailedBatch::of(&b)),
                _ => waiting.push(*id),
            }
        }
        if waiting.is_empty() {
            return if failed.is_empty() {
                Ok(())
            } else {
                Err(WaitError::Failed(FilesFailed(failed)))
            };
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(WaitError::TimedOut {
                waiting,
                failed,
                total: ids.len(),
                timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Deletes a (scoped) topology: its queues and exchanges.
pub async fn delete_topology(cfg: &crate::config::AmqpConfig) -> anyhow::Result<()> {
    let conn = super::broker::connect(cfg).await?;
    let ch = conn.create_channel().await?;
    for q in [&cfg.queue, &cfg.dead_letter_queue] {
        ch.queue_delete(q.as_str().into(), Default::default())
            .await?;
    }
    for x in [&cfg.exchange, &cfg.dead_letter_exchange] {
        ch.exchange_delete(x.as_str().into(), Default::default())
            .await?;
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}
