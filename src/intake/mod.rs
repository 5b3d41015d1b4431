//! Intake: validated payment requests become durable payments.
//!
//! Each accepted payment commits its payment row, idempotency record,
//! pending ledger transfer and dispatch outbox row in one database
//! transaction before its channel is answered. To reach thousands of
//! payments per second with synchronous commit on, concurrent requests are
//! grouped: a collector takes whatever is queued (up to `max_batch`) and
//! commits it as one transaction, while up to `max_inflight_batches` other
//! batches commit. One fsync then acknowledges many payments, and no row is
//! updated per payment (balances are derived), so a hot biller is not a
//! point of contention.

mod backlog;
mod directory;

pub use backlog::BacklogWatch;
pub use directory::BillerDirectory;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::Instrument;

use crate::store::{AcceptItem, AcceptOutcome, Store, StoreError};

struct Job {
    item: AcceptItem,
    reply: oneshot::Sender<Result<AcceptOutcome, StoreError>>,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("intake queue is full")]
    Overloaded,
    #[error("intake is shutting down")]
    Closed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Handle to the batching writer; cheap to clone.
#[derive(Clone)]
pub struct Intake {
    tx: mpsc::Sender<Job>,
}

/// Transient store failures of a whole batch are retried this many times.
const BATCH_ATTEMPTS: u32 = 3;

/// How payments are grouped into commits (see `[intake]` in the config).
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    pub queue_capacity: usize,
    pub max_batch: usize,
    pub max_inflight: usize,
    /// While other batches commit, a batch smaller than this waits...
    pub fill_target: usize,
    /// ...at most this long for more payments.
    pub fill_wait: Duration,
}

impl BatchPolicy {
    pub fn from_config(c: &crate::config::IntakeConfig) -> BatchPolicy {
        BatchPolicy {
            queue_capacity: c.queue_capacity.max(1),
            max_batch: c.max_batch.max(1),
            max_inflight: c.max_inflight_batches.max(1),
            fill_target: c.batch_fill_target,
            fill_wait: Duration::from_micros(c.batch_fill_wait_us),
        }
    }
}

impl Intake {
    pub fn start(store: Arc<dyn Store>, policy: BatchPolicy) -> Intake {
        let (tx, rx) = mpsc::channel(policy.queue_capacity.max(1));
        tokio::spawn(collect(rx, store, policy));
        Intake { tx }
    }

    /// Queues one payment and waits for its commit.
    pub async fn accept(&self, item: AcceptItem) -> Result<AcceptOutcome, IntakeError> {
        let (reply, rx) = oneshot::channel();
        self.tx.try_send(Job { item, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => IntakeError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => IntakeError::Closed,
        })?;
        rx.await
            .map_err(|_| IntakeError::Closed)?
            .map_err(IntakeError::Store)
    }
}

async fn collect(mut rx: mpsc::Receiver<Job>, store: Arc<dyn Store>, policy: BatchPolicy) {
    let (max_batch, max_inflight) = (policy.max_batch.max(1), policy.max_inflight.max(1));
    let slots = Arc::new(Semaphore::new(max_inflight));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else { return };
        let mut jobs = Vec::with_capacity(max_batch.min(64));
        jobs.push(first);
        drain(&mut rx, &mut jobs, max_batch);
        // While other batches are committing, a small batch waits a moment
        // to fill: fewer, larger commits cost the database less per payment.
        // With the database idle, it goes at once.
        let busy = slots.available_permits() + 1 < max_inflight;
        let fill = policy.fill_target.min(max_batch);
        if busy && jobs.len() < fill {
            let deadline = tokio::time::Instant::now() + policy.fill_wait;
            while jobs.len() < fill {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(job)) => {
                        jobs.push(job);
                        drain(&mut rx, &mut jobs, max_batch);
                    }
                    _ => break,
                }
            }
        }
        let store = store.clone();
        let span = tracing::debug_span!("intake_batch", size = jobs.len());
        tokio::spawn(
            async move {
                commit(&*store, jobs).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
}

fn drain(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>, max_batch: usize) {
    while jobs.len() < max_batch {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
}

async fn commit(store: &dyn Store, jobs: Vec<Job>) {
    let (items, replies): (Vec<AcceptItem>, Vec<_>) =
        jobs.into_iter().map(|j| (j.item, j.reply)).unzip();
    match commit_with_retry(store, &items).await {
        Ok(outcomes) => {
            debug_assert_eq!(outcomes.len(), replies.len());
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(StoreError::Rejected(reason)) if items.len() > 1 => {
            // One bad item must not fail its neighbours: commit one by one.
            tracing::warn!(%reason, size = items.len(), "batch refused by the store; committing its payments one by one");
            for (item, reply) in items.iter().zip(replies) {
                let r = commit_with_retry(store, std::slice::from_ref(item))
                    .await
                    .map(|o| o[0]);
                let _ = reply.send(r);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, size = items.len(), "intake batch failed; nothing of it was committed");
            let msg = e.to_string();
            let unavailable = matches!(e, StoreError::Unavailable(_));
            for reply in replies {
                let err = if unavailable {
                    StoreError::Unavailable(msg.clone())
                } else {
                    StoreError::Rejected(msg.clone())
                };
                let _ = reply.send(Err(err));
            }
        }
    }
}

async fn commit_with_retry(
    store: &dyn Store,
    items: &[AcceptItem],
) -> Result<Vec<AcceptOutcome>, StoreError> {
    let mut attempt = 1;
    loop {
        match store.accept_payments(items).await {
            Err(StoreError::Unavailable(reason)) if attempt < BATCH_ATTEMPTS => {
                tracing::warn!(%reason, attempt, "intake batch failed transiently; retrying");
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}
