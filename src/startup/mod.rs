//! The start-up: how one billclear process is put together. `billclear
//! serve`, the demo, the intake benchmark and the tests all start
//! through [`Service::start`], so the wiring is written once:
//!
//! 1. the shared state ([`AppState::start`]: intake writer, biller
//!    directory and its refresh, connectors behind their circuit
//!    breakers, the bill-inquiry guard, channel keys and rate limits);
//! 2. the dispatch and callback workers ([`Workers`]), when asked for;
//! 3. the settlement service ([`SettlementService`]: outbox relay,
//!    consumer, and the cut-off schedule when `settlement.schedule` is
//!    on), when asked for;
//! 4. the nonce pruner, when asked for, and the complaints investigator
//!    with the dispatch workers (each a duty);
//! 5. the HTTP API ([`Service::serve`] until a shutdown signal, or
//!    [`Service::spawn_api`] in a task).
//!
//! The caller opens the store and migrates it, and loads the master key:
//! those depend on where it runs (a configured database, a fresh one per
//! demo or test).

pub mod duty;

use std::sync::Arc;
use std::time::Duration;

use crate::auth::secrets::MasterKey;
use crate::config::Config;
use crate::dispatch::Workers;
use crate::settlement::service::SettlementService;
use crate::state::AppState;
use crate::store::Store;

/// Which of a process's parts to start beside its shared state.
#[derive(Debug, Clone)]
pub struct Parts {
    /// This process's name in claims, attempts and route heartbeats.
    pub worker: String,
    /// The dispatch and callback workers.
    pub dispatch: bool,
    /// The settlement relay, consumer and schedule.
    pub settlement: bool,
    /// Deleting nonces older than `auth.nonce_retention_s`, once a minute.
    pub prune_nonces: bool,
}

impl Parts {
    /// Everything: what `billclear serve` runs.
    pub fn all(worker: impl Into<String>) -> Parts {
        Parts {
            worker: worker.into(),
            dispatch: true,
            settlement: true,
            prune_nonces: true,
        }
    }

    /// The shared state and the API only (no background work but the
    /// intake writer and the biller refresh).
    pub fn api_only() -> Parts {
        Parts {
            worker: crate::dispatch::worker_name(),
            dispatch: false,
            settlement: false,
            prune_nonces: false,
        }
    }
}

/// One started billclear process.
pub struct Service {
    pub state: AppState,
    /// The dispatch and callback workers, when started.
    pub workers: Option<Workers>,
    /// The settlement relay, consumer and schedule, when started.
    pub settlement: Option<SettlementService>,
    pruner: Option<duty::Duty>,
}

impl Service {
    /// Builds the shared state on `store` and starts the `parts` asked
    /// for.
    pub async fn start(
        store: Arc<dyn Store>,
        master_key: MasterKey,
        config: Config,
        parts: Parts,
    ) -> anyhow::Result<Service> {
        let pruner = parts.prune_nonces.then(|| {
            let (store2, retention_s) = (store.clone(), config.auth.nonce_retention_s);
            duty::Duty::spawn(
                store.clone(),
                duty::PRUNE_NONCES,
                &parts.worker,
                duty::LeaseTiming::from_config(&config.duties),
                duty::body(move || prune_nonces(store2.clone(), retention_s)),
            )
        });
        let state = AppState::start(store, master_key, config, &parts.worker).await?;
        let workers = if parts.dispatch {
            log_connectors(&state);
            // The complaints investigator runs with the dispatch workers:
            // it asks billers through the same routes.
            let state2 = state.clone();
            let complaints = duty::Duty::spawn(
                state.store.clone(),
                duty::COMPLAINTS,
                &parts.worker,
                duty::LeaseTiming::from_config(&state.config.duties),
                duty::body(move || crate::complaints::run(state2.clone())),
            );
            Some(Workers::start(&state.dispatch_deps(), &parts.worker)?.with_complaints(complaints))
        } else {
            None
        };
        if let Some(w) = &workers {
            w.watch(&state.liveness);
        }
        let settlement = parts
            .settlement
            .then(|| SettlementService::start(state.store.clone(), &state.config, &parts.worker));
        if let Some(s) = &settlement {
            s.watch(&state.liveness);
        }
        Ok(Service {
            state,
            workers,
            settlement,
            pruner,
        })
    }

    /// Serves the API on `listener` until `shutdown` resolves (requests in
    /// flight finish), then stops the background work.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let served = crate::api::serve(listener, self.state.clone(), shutdown).await;
        self.abort();
        served
    }

    /// Serves the API on `listener` in a task, for as long as the process
    /// runs; returns its base URL (`http://127.0.0.1:PORT`).
    pub fn spawn_api(&self, listener: tokio::net::TcpListener) -> anyhow::Result<String> {
        let base = format!("http://{}", listener.local_addr()?);
        tokio::spawn(crate::api::serve(
            listener,
            self.state.clone(),
            std::future::pending(),
        ));
        Ok(base)
    }

    /// Stops the background work at once (the workers abandon calls in
    /// flight as a crash would: their work comes back after the lease).
    pub fn abort(&self) {
        if let Some(w) = &self.workers {
            w.abort();
        }
        if let Some(s) = &self.settlement {
            s.abort();
        }
        if let Some(p) = &self.pruner {
            p.abort();
        }
        self.state.stop_background();
    }
}

fn log_connectors(state: &AppState) {
    let connectors: Vec<&str> = state.routes.connectors().ids().collect();
    if connectors.is_empty() {
        tracing::warn!("no connectors configured ([connectors] in the config): payments are accepted but cannot be delivered");
    } else {
        tracing::info!(connectors = ?connectors, "dispatch workers starting");
    }
}

/// Deletes nonces older than the retention once a minute (the duty
/// `prune-nonces`, held by one process at a time).
async fn prune_nonces(store: Arc<dyn Store>, retention_s: i64) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let before = chrono::Utc::now() - chrono::Duration::seconds(retention_s);
        match store.prune_nonces(before).await {
            Ok(n) if n > 0 => tracing::debug!(pruned = n, "old nonces pruned"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "nonce pruning failed"),
        }
    }
}
