//! Group commit: many small writes from concurrent tasks, one transaction
//! and one fsync. Each task submits its write and waits for its own
//! outcome; a collector takes whatever is queued (up to `max_batch`) and
//! commits it as one batch while up to `max_inflight` other batches commit.
//! With the database idle a write goes at once; under load, the writes
//! that arrive during one commit share the next.
//!
//! Used by intake ([`crate::intake`]: the payments accepted), and by
//! dispatch and callbacks ([`crate::store::DispatchStore::commit_dispatch`]):
//! the commit rate of the machine (about 1,600 transactions a second here)
//! no longer caps the payments accepted or delivered a second.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{StoreError, StoreResult};

/// Writes that can be committed together.
#[async_trait]
pub trait Batch: Send + Sync + 'static {
    type Op: Send + Sync + 'static;
    type Out: Send + 'static;
    /// Commits `ops` in one transaction: each op's own outcome (an op that
    /// fails its checks wrote nothing), or an error of the whole, in which
    /// case nothing was committed.
    async fn commit(&self, ops: &[Self::Op]) -> StoreResult<Vec<StoreResult<Self::Out>>>;
}

/// How writes are grouped.
#[derive(Debug, Clone, Copy)]
pub struct GroupPolicy {
    /// Writes waiting for a batch, at most (submitters wait beyond it).
    pub queue_capacity: usize,
    pub max_batch: usize,
    /// Batches committing at once.
    pub max_inflight: usize,
    /// While other batches commit, a batch smaller than this waits...
    pub fill_target: usize,
    /// ...at most this long for more writes.
    pub fill_wait: Duration,
}

struct Job<B: Batch> {
    op: B::Op,
    reply: oneshot::Sender<StoreResult<B::Out>>,
}

/// Handle to a group committer; cheap to clone. The collector ends when
/// every handle is dropped.
pub struct GroupCommit<B: Batch> {
    tx: mpsc::Sender<Job<B>>,
}

impl<B: Batch> Clone for GroupCommit<B> {
    fn clone(&self) -> Self {
        GroupCommit {
            tx: self.tx.clone(),
        }
    }
}

/// Why a write was not queued by [`GroupCommit::try_submit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// `queue_capacity` writes wait already.
    Full,
    /// The committer stopped (its runtime is shutting down).
    Closed,
}

fn closed() -> StoreError {
    StoreError::Unavailable("the group committer has stopped".into())
}

impl<B: Batch> GroupCommit<B> {
    pub fn start(batch: Arc<B>, policy: GroupPolicy) -> GroupCommit<B> {
        let (tx, rx) = mpsc::channel(policy.queue_capacity.max(1));
        tokio::spawn(collect(rx, batch, policy));
        GroupCommit { tx }
    }

    /// Queues one write without waiting for room and waits for its commit;
    /// refused at once when the queue is full (the caller sheds load).
    pub async fn try_submit(&self, op: B::Op) -> Result<StoreResult<B::Out>, QueueError> {
        let (reply, rx) = oneshot::channel();
        self.tx.try_send(Job { op, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => QueueError::Full,
            mpsc::error::TrySendError::Closed(_) => QueueError::Closed,
        })?;
        rx.await.map_err(|_| QueueError::Closed)
    }

    /// Queues one write (waiting for room) and waits for its commit.
    pub async fn submit(&self, op: B::Op) -> StoreResult<B::Out> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { op, reply })
            .await
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

async fn collect<B: Batch>(mut rx: mpsc::Receiver<Job<B>>, batch: Arc<B>, policy: GroupPolicy) {
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
        // to fill: fewer, larger commits cost the database less per write.
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
        let batch = batch.clone();
        tokio::spawn(async move {
            commit(&*batch, jobs).await;
            drop(permit);
        });
    }
}

fn drain<T>(rx: &mut mpsc::Receiver<T>, jobs: &mut Vec<T>, max_batch: usize) {
    while jobs.len() < max_batch {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
}

/// Commits one batch and answers each submitter. A batch that fails as a
/// whole for a reason other than the store being unavailable is committed
/// again op by op, so that one op's fault never fails its neighbours. An
/// unavailable store fails every op (nothing was committed; each
/// submitter decides whether to retry).
async fn commit<B: Batch>(batch: &B, jobs: Vec<Job<B>>) {
    let (ops, replies): (Vec<B::Op>, Vec<_>) = jobs.into_iter().map(|j| (j.op, j.reply)).unzip();
    match batch.commit(&ops).await {
        Ok(outs) => {
            debug_assert_eq!(outs.len(), replies.len());
            for (reply, out) in replies.into_iter().zip(outs) {
                let _ = reply.send(out);
            }
        }
        Err(e) if ops.len() > 1 && !matches!(e, StoreError::Unavailable(_)) => {
            tracing::warn!(error = %e, size = ops.len(), "a batch failed as a whole; committing its writes one by one");
            for (op, reply) in ops.iter().zip(replies) {
                let out = match batch.commit(std::slice::from_ref(op)).await {
                    Ok(mut outs) => outs.pop().unwrap_or_else(|| Err(closed())),
                    Err(e) => Err(e),
                };
                let _ = reply.send(out);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, size = ops.len(), "a batch could not be committed; nothing of it was");
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records the batches it was given; an op of 0 fails its batch as a
    /// whole, an op of 1 fails alone, an op of 2 makes the store
    /// unavailable.
    #[derive(Default)]
    struct Recorder {
        batches: Mutex<Vec<Vec<u32>>>,
    }

    #[async_trait]
    impl Batch for Recorder {
        type Op = u32;
        type Out = u32;
        async fn commit(&self, ops: &[u32]) -> StoreResult<Vec<StoreResult<u32>>> {
            self.batches.lock().unwrap().push(ops.to_vec());
            tokio::time::sleep(Duration::from_millis(5)).await;
            if ops.contains(&2) {
                return Err(StoreError::Unavailable("down".into()));
            }
            if ops.contains(&0) {
                return Err(StoreError::Rejected("bad batch".into()));
            }
            Ok(ops
                .iter()
                .map(|&op| {
                    if op == 1 {
                        Err(StoreError::Conflict("one".into()))
                    } else {
                        Ok(op * 10)
                    }
                })
                .collect())
        }
    }

    fn policy() -> GroupPolicy {
        GroupPolicy {
            queue_capacity: 1000,
            max_batch: 50,
            max_inflight: 1,
            fill_target: 0,
            fill_wait: Duration::ZERO,
        }
    }

    #[tokio::test]
    async fn concurrent_writes_share_commits_and_each_gets_its_own_outcome() {
        let recorder = Arc::new(Recorder::default());
        let group = GroupCommit::start(recorder.clone(), policy());
        let tasks: Vec<_> = (3..203u32)
            .map(|op| {
                let group = group.clone();
                tokio::spawn(async move { (op, group.submit(op).await) })
            })
            .collect();
        for t in tasks {
            let (op, out) = t.await.unwrap();
            assert_eq!(out.unwrap(), op * 10);
        }
        let batches = recorder.batches.lock().unwrap();
        let ops: usize = batches.iter().map(Vec::len).sum();
        assert_eq!(ops, 200, "every write committed once");
        assert!(
            batches.len() < 50,
            "200 writes in {} commits",
            batches.len()
        );
        assert!(batches.iter().all(|b| b.len() <= 50));
    }

    #[tokio::test]
    async fn one_failing_op_fails_alone_and_a_batch_failing_whole_is_retried_op_by_op() {
        let recorder = Arc::new(Recorder::default());
        let group = GroupCommit::start(recorder.clone(), policy());
        let outs = futures_util::future::join_all([5u32, 1, 0, 7].map(|op| {
            let group = group.clone();
            async move { group.submit(op).await }
        }))
        .await;
        assert_eq!(outs[0].as_ref().unwrap(), &50);
        assert!(matches!(outs[1], Err(StoreError::Conflict(_))));
        assert!(matches!(outs[2], Err(StoreError::Rejected(_))));
        assert_eq!(outs[3].as_ref().unwrap(), &70);
    }

    #[tokio::test]
    async fn an_unavailable_store_fails_the_batch_without_retrying_it() {
        let recorder = Arc::new(Recorder::default());
        let group = GroupCommit::start(recorder.clone(), policy());
        let out = group.submit(2).await;
        assert!(matches!(out, Err(StoreError::Unavailable(_))));
        assert_eq!(recorder.batches.lock().unwrap().len(), 1, "tried once");
    }
}
