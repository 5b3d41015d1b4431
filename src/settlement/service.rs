//! Settlement inside `billclear serve`: the outbox relay (to RabbitMQ), the
//! settlement consumer (files), and the scheduler that closes each biller's
//! business date at its cut-off.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use uuid::Uuid;

use super::broker::{Consumer, Relay, Running};
use super::close::{close_date, due_dates, Closing, When};
use super::render::BatchRenderer;
use crate::config::Config;
use crate::store::{CloseOutcome, Store};

/// The running settlement tasks of one process.
pub struct SettlementService {
    relay: Running,
    consumer: Running,
    scheduler: Option<tokio::task::JoinHandle<()>>,
}

impl SettlementService {
    /// Starts the relay and the consumer, and the scheduler when
    /// `settlement.schedule` is on.
    pub fn start(store: Arc<dyn Store>, config: &Config, worker: &str) -> SettlementService {
        let relay = Relay::new(store.clone(), config.amqp.clone(), worker).spawn();
        let renderer = Arc::new(BatchRenderer::new(
            store.clone(),
            config.settlement.outbox_dir.clone(),
        ));
        // A failing database or disk gets five tries five seconds apart
        // before the message is dead-lettered (the schedule renders what is
        // left without files after a few minutes anyway).
        let consumer = Consumer::new(config.amqp.clone(), renderer)
            .with_transient_delay(Duration::from_secs(5))
            .spawn();
        let scheduler = config.settlement.schedule.then(|| {
            let cfg = config.clone();
            tokio::spawn(async move { schedule(store, cfg).await })
        });
        SettlementService {
            relay,
            consumer,
            scheduler,
        }
    }

    pub async fn stop(self) {
        if let Some(s) = &self.scheduler {
            s.abort();
        }
        self.relay.stop().await;
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

/// Closes due dates every `schedule_check_ms`.
async fn schedule(store: Arc<dyn Store>, config: Config) {
    let mut tick =
        tokio::time::interval(Duration::from_millis(config.settlement.schedule_check_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = close_due(&store, &config).await {
            tracing::warn!(error = %e, "settlement schedule: will try again");
        }
    }
}

/// Publishes ready settlement messages and consumes them in this process
/// until every batch in `ids` has its files.
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
    if let Err(e) = waited {
        // A message published before (by an earlier run) may have been
        // dead-lettered: the files never depend on the broker alone.
        tracing::warn!(error = %e, "rendering the batches still without files here");
        for id in ids {
            renderer
                .render(*id)
                .await
                .map_err(|e| anyhow::anyhow!("batch {id}: {e}"))?;
        }
    }
    Ok(())
}

/// Batches whose files are still missing this long after the close are
/// rendered by the scheduler itself (their message was dead-lettered, or
/// is stuck): the files never depend on the broker alone.
const RENDER_AFTER: chrono::Duration = chrono::Duration::minutes(5);

/// One scheduler pass: every biller's dates whose cut-off has passed and
/// that are still open, oldest first (a biller's pass stops at its first
/// failure: a later date never closes over an open earlier one in the
/// same pass); batches left without files rendered; and the statements of
/// every complete date of the window that has none yet.
pub async fn close_due(store_arc: &Arc<dyn Store>, config: &Config) -> anyhow::Result<Vec<Uuid>> {
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
        for stuck in batches
            .iter()
            .filter(|x| x.files_written_at.is_none() && now - x.created_at > RENDER_AFTER)
        {
            tracing::warn!(batch = %stuck.id, biller = %stuck.biller_id, date = %stuck.business_date,
                "settlement files still missing; rendering them here");
            if let Err(e) = renderer.render(stuck.id).await {
                tracing::error!(batch = %stuck.id, error = %e, "rendering failed; retried next pass");
            }
        }
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

/// Waits until every batch in `ids` has its files recorded.
pub async fn wait_for_files(
    store: &dyn Store,
    ids: &[Uuid],
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut waiting = 0;
        for id in ids {
            let b = store.batch(*id).await?;
            if b.is_none_or(|b| b.files_written_at.is_none()) {
                waiting += 1;
            }
        }
        if waiting == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{waiting} of {} batches still have no files after {} s: is RabbitMQ up, and the consumer running?",
            ids.len(),
            timeout.as_secs()
        );
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
