//! Intake: validated payment requests become durable payments.
//!
//! Each accepted payment commits its payment row, idempotency record,
//! pending ledger transfer and dispatch outbox row in one database
//! transaction before its channel is answered. To reach thousands of
//! payments per second with synchronous commit on, concurrent requests are
//! grouped: a collector takes whatever is queued (up to `max_batch`) and
//! commits it as one transaction, while up to `max_inflight_batches` other
//! batches commit (`store::group`, the group committer dispatch shares). One fsync then acknowledges many payments, and no row is
//! updated per payment (balances are derived), so a hot biller is not a
//! point of contention.

mod backlog;
mod directory;

pub use backlog::BacklogWatch;
pub use directory::BillerDirectory;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::store::group::{Batch, GroupCommit, GroupPolicy, QueueError};
use crate::store::{AcceptItem, AcceptOutcome, Store, StoreError, StoreResult};

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("intake queue is full")]
    Overloaded,
    #[error("intake is shutting down")]
    Closed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The store's `accept_payments` as a group-committed batch: a batch the
/// database could not take for a moment is tried again (up to
/// [`BATCH_ATTEMPTS`] times); one it refuses is committed payment by
/// payment by the group committer, so one bad item never fails its
/// neighbours.
struct AcceptBatch(Arc<dyn Store>);

#[async_trait]
impl Batch for AcceptBatch {
    type Op = AcceptItem;
    type Out = AcceptOutcome;
    async fn commit(&self, items: &[AcceptItem]) -> StoreResult<Vec<StoreResult<AcceptOutcome>>> {
        let outcomes = commit_with_retry(&*self.0, items).await?;
        Ok(outcomes.into_iter().map(Ok).collect())
    }
}

/// Handle to the batching writer; cheap to clone.
#[derive(Clone)]
pub struct Intake {
    group: GroupCommit<AcceptBatch>,
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
        let group = GroupCommit::start(
            Arc::new(AcceptBatch(store)),
            GroupPolicy {
                queue_capacity: policy.queue_capacity,
                max_batch: policy.max_batch,
                max_inflight: policy.max_inflight,
                fill_target: policy.fill_target,
                fill_wait: policy.fill_wait,
            },
        );
        Intake { group }
    }

    /// Queues one payment and waits for its commit; a full queue refuses
    /// it at once.
    pub async fn accept(&self, item: AcceptItem) -> Result<AcceptOutcome, IntakeError> {
        match self.group.try_submit(item).await {
            Ok(outcome) => outcome.map_err(IntakeError::Store),
            Err(QueueError::Full) => Err(IntakeError::Overloaded),
            Err(QueueError::Closed) => Err(IntakeError::Closed),
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
