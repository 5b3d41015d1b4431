//! The claim loop shared by the dispatch and callback workers.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::store::{Claim, Store, Topic};

/// How long a busy pool waits for enough jobs to end to claim a whole
/// batch at once.
const CLAIM_GATHER: Duration = Duration::from_millis(10);

/// Handles one claimed piece of work. Errors are the handler's to record.
#[async_trait]
pub trait Job: Send + Sync + 'static {
    async fn handle(self: Arc<Self>, claim: Claim);
}

#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub topic: Topic,
    pub worker: String,
    pub lease: Duration,
    pub claim_batch: u32,
    pub poll: Duration,
    /// Jobs handled at once.
    pub concurrency: usize,
    /// Bumped each time round the loop and as each job ends (`/readyz`).
    pub heartbeat: crate::liveness::Heartbeat,
}

/// Claims and handles work until the task is aborted. Aborting drops the
/// JoinSet, which aborts every job in flight: like a crash, their work
/// comes back to some worker when the lease ends.
pub async fn run(store: Arc<dyn Store>, s: PoolSettings, job: Arc<dyn Job>) {
    let permits = Arc::new(Semaphore::new(s.concurrency.max(1)));
    let batch = (s.claim_batch.max(1) as usize).min(s.concurrency.max(1));
    let mut running = JoinSet::new();
    loop {
        s.heartbeat.beat();
        while running.try_join_next().is_some() {}
        let free = permits.available_permits();
        if free == 0 {
            // Wait for a job to end before claiming more.
            let _ = running.join_next().await;
            continue;
        }
        if free < batch && !running.is_empty() {
            // Under load, claim in batches, not one row per job that ends:
            // each claim is a transaction of its own. Wait a moment for
            // more jobs to end (they end every few milliseconds then).
            let until = tokio::time::Instant::now() + CLAIM_GATHER;
            while permits.available_permits() < batch {
                match tokio::time::timeout_at(until, running.join_next()).await {
                    Ok(Some(_)) => continue,
                    _ => break,
                }
            }
            while running.try_join_next().is_some() {}
        }
        let free = permits.available_permits();
        let want = (free as u32).min(s.claim_batch.max(1));
        let claims = match store.claim_work(s.topic, &s.worker, s.lease, want).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(topic = s.topic.as_str(), error = %e, "claiming work failed; retrying");
                tokio::time::sleep(s.poll.max(Duration::from_millis(500))).await;
                continue;
            }
        };
        let got = claims.len() as u32;
        for claim in claims {
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore never closed");
            let job = job.clone();
            let heartbeat = s.heartbeat.clone();
            running.spawn(async move {
                job.handle(claim).await;
                heartbeat.beat();
                drop(permit);
            });
        }
        if got < want {
            tokio::time::sleep(s.poll).await;
        }
    }
}
