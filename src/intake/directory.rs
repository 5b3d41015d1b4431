//! The biller directory: billers held in memory for validation, reloaded
//! from the store on a timer (and on demand).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::domain::biller::Biller;
use crate::store::{Store, StoreResult};

#[derive(Clone, Default)]
pub struct BillerDirectory {
    inner: Arc<RwLock<Arc<HashMap<String, Biller>>>>,
}

impl BillerDirectory {
    pub async fn load(store: &dyn Store) -> StoreResult<BillerDirectory> {
        let d = BillerDirectory::default();
        d.reload(store).await?;
        Ok(d)
    }

    pub async fn reload(&self, store: &dyn Store) -> StoreResult<()> {
        let billers = store.load_billers().await?;
        let map = billers.into_iter().map(|b| (b.id.to_string(), b)).collect();
        *self.inner.write().expect("directory lock") = Arc::new(map);
        Ok(())
    }

    /// A consistent snapshot of all billers.
    pub fn snapshot(&self) -> Arc<HashMap<String, Biller>> {
        self.inner.read().expect("directory lock").clone()
    }

    /// Reloads every `every` until the returned task is aborted.
    pub fn spawn_refresh(
        &self,
        store: Arc<dyn Store>,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = me.reload(&*store).await {
                    tracing::warn!(error = %e, "biller directory reload failed; keeping the last one");
                }
            }
        })
    }
}
