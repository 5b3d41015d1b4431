//! The dispatch and callback workers' writes, group-committed: every
//! attempt recorded before its call, every outcome with its posting, event
//! and callback row, every callback's acknowledgement goes through one
//! [`Committer`], which commits whatever the workers have ready together
//! (see [`crate::store::group`]). Each write keeps its own checks and its
//! own outcome; a write is answered only once it is durable, so an attempt
//! is still recorded before its call.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::store::group::{Batch, GroupCommit, GroupPolicy};
use crate::store::{
    AttemptStart, Claim, DispatchDone, DispatchOp, DispatchUpdate, OutboxNext, Store, StoreError,
    StoreResult,
};

/// The store's [`crate::store::DispatchStore::commit_dispatch`] as a batch.
pub struct StoreBatch(pub Arc<dyn Store>);

#[async_trait]
impl Batch for StoreBatch {
    type Op = DispatchOp;
    type Out = DispatchDone;
    async fn commit(&self, ops: &[DispatchOp]) -> StoreResult<Vec<StoreResult<DispatchDone>>> {
        self.0.commit_dispatch(ops).await
    }
}

/// The workers' group committer; cheap to clone.
#[derive(Clone)]
pub struct Committer(GroupCommit<StoreBatch>);

impl Committer {
    pub fn start(store: Arc<dyn Store>, c: &crate::config::DispatchConfig) -> Committer {
        Committer(GroupCommit::start(
            Arc::new(StoreBatch(store)),
            GroupPolicy {
                queue_capacity: 4 * c.commit_max_batch.max(1),
                max_batch: c.commit_max_batch,
                max_inflight: c.commit_max_inflight,
                // Workers wait on every write: a batch never waits to fill.
                fill_target: 0,
                fill_wait: Duration::ZERO,
            },
        ))
    }

    /// Records an attempt before its call; its id.
    pub async fn start_attempt(&self, claim: &Claim, start: AttemptStart) -> StoreResult<i64> {
        let op = DispatchOp::Start {
            claim: claim.clone(),
            start,
        };
        match self.0.submit(op).await? {
            DispatchDone::Started(id) => Ok(id),
            DispatchDone::Written => {
                Err(StoreError::Conflict("the attempt was not recorded".into()))
            }
        }
    }

    /// The end of a step, in one transaction with other writes.
    pub async fn record(&self, claim: &Claim, update: DispatchUpdate) -> StoreResult<()> {
        let op = DispatchOp::Record {
            claim: claim.clone(),
            update: Box::new(update),
        };
        self.0.submit(op).await.map(|_| ())
    }

    /// Finishes work with nothing else written.
    pub async fn finish(&self, claim: &Claim, next: OutboxNext) -> StoreResult<()> {
        let op = DispatchOp::Finish {
            claim: claim.clone(),
            next,
        };
        self.0.submit(op).await.map(|_| ())
    }
}
