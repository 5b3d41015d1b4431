//! Dispatch: accepted payments reach their biller, and channels learn the
//! outcome.
//!
//! * [`connectors`]: the connectors configured in this process, and which
//!   one a biller's payment goes through (its first configured route).
//! * [`worker`]: claims `dispatch` work from the outbox (SKIP LOCKED, under a
//!   lease), records an attempt before every call, sends or inquires, and
//!   applies the outcome with its ledger effect in one transaction.
//! * [`callbacks`]: claims `callback` work and POSTs final states to the
//!   channel, signed with the channel's key, until it answers 2xx.
//! * [`pool`]: the claim loop both share: bounded concurrency, polling, and
//!   abort-on-stop (a stopped process's work comes back after its lease).

pub mod callbacks;
pub mod commit;
pub mod connectors;
pub mod endpoints;
pub mod files;
pub mod http;
pub mod pace;
pub mod pool;
pub mod routes;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use crate::auth::secrets::MasterKey;
use crate::config::Config;
use crate::intake::BillerDirectory;
use crate::store::{Store, Topic};

pub use connectors::Connectors;

/// What dispatch needs from the process, given explicitly: the store, the
/// biller directory, the routes (connectors behind their breakers), the
/// configuration, and the master key that opens channels' secrets (signed
/// callbacks).
#[derive(Clone)]
pub struct Deps {
    pub store: Arc<dyn Store>,
    pub billers: BillerDirectory,
    pub routes: Arc<routes::Routes>,
    pub config: Arc<Config>,
    pub master_key: MasterKey,
}

/// The dispatch and callback workers of one process.
pub struct Workers {
    handles: Vec<tokio::task::JoinHandle<()>>,
    file_routes: crate::startup::duty::Duty,
    /// The complaints investigator (it asks billers through the same
    /// routes), set by `crate::startup`.
    complaints: Option<crate::startup::duty::Duty>,
    /// The claim loops' heartbeats, with the age past which a loop is
    /// not alive.
    beats: Vec<(&'static str, crate::liveness::Heartbeat, Duration)>,
}

impl Workers {
    /// Starts both worker pools on the state's store, billers and connectors.
    /// `name` identifies this process in claims and attempts.
    pub fn start(state: &Deps, name: &str) -> anyhow::Result<Workers> {
        let cfg = &state.config;
        // One group committer for both pools' writes.
        let commit = commit::Committer::start(state.store.clone(), &cfg.dispatch);
        let dispatcher = Arc::new(worker::Dispatcher::new(state, name, commit.clone()));
        let sender = Arc::new(callbacks::CallbackSender::new(state, commit)?);
        let dispatch_beat = crate::liveness::Heartbeat::default();
        let callback_beat = crate::liveness::Heartbeat::default();
        let dispatch_lease = Duration::from_millis(cfg.dispatch.lease_ms);
        let callback_lease = Duration::from_millis(
            (2 * cfg.callbacks.timeout_ms + 5_000).max(cfg.dispatch.lease_ms),
        );
        // A loop waits at most for a job to end (within its lease) before
        // it goes round again.
        let stale = |lease: Duration| 2 * lease + Duration::from_secs(30);
        let beats = vec![
            ("dispatch", dispatch_beat.clone(), stale(dispatch_lease)),
            ("callback", callback_beat.clone(), stale(callback_lease)),
        ];
        let handles = vec![
            tokio::spawn(pool::run(
                state.store.clone(),
                pool::PoolSettings {
                    topic: Topic::Dispatch,
                    worker: name.to_string(),
                    lease: dispatch_lease,
                    claim_batch: cfg.dispatch.claim_batch,
                    poll: Duration::from_millis(cfg.dispatch.poll_ms),
                    concurrency: cfg.dispatch.concurrency,
                    heartbeat: dispatch_beat,
                },
                dispatcher,
            )),
            tokio::spawn(pool::run(
                state.store.clone(),
                pool::PoolSettings {
                    topic: Topic::Callback,
                    worker: name.to_string(),
                    lease: callback_lease,
                    claim_batch: cfg.dispatch.claim_batch,
                    poll: Duration::from_millis(cfg.dispatch.poll_ms),
                    concurrency: cfg.callbacks.concurrency,
                    heartbeat: callback_beat,
                },
                sender,
            )),
            routes::spawn_heartbeat(
                state.routes.clone(),
                state.store.clone(),
                name.to_string(),
                Duration::from_millis(cfg.routing.heartbeat_ms),
            ),
        ];
        // The file routes: one process of a fleet at a time.
        let router = Arc::new(files::FileRouter::new(state));
        let every = Duration::from_millis(cfg.dispatch.file_poll_ms);
        let file_routes = crate::startup::duty::Duty::spawn(
            state.store.clone(),
            crate::startup::duty::FILE_ROUTES,
            name,
            crate::startup::duty::LeaseTiming::from_config(&cfg.duties),
            crate::startup::duty::body(move || files::run(router.clone(), every)),
        );
        Ok(Workers {
            handles,
            beats,
            file_routes,
            complaints: None,
        })
    }

    /// Registers the claim loops' heartbeats with `/readyz`.
    pub fn watch(&self, liveness: &crate::liveness::Liveness) {
        for (name, beat, stale) in &self.beats {
            liveness.watch_worker(*name, beat.clone(), *stale);
        }
    }

    /// Stops at once, abandoning calls in flight (as a crash would: their
    /// work comes back after the lease). Used by tests and at shutdown.
    pub fn abort(&self) {
        self.handles.iter().for_each(|h| h.abort());
        self.file_routes.abort();
        if let Some(c) = &self.complaints {
            c.abort();
        }
    }

    /// Runs the complaints investigator's duty with these workers.
    pub fn with_complaints(mut self, duty: crate::startup::duty::Duty) -> Workers {
        self.complaints = Some(duty);
        self
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.abort();
    }
}

/// A name for this process in claims and attempt records.
pub fn worker_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    )
}
