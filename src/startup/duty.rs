//! Duties that must run in one process of a fleet at a time, each held
//! under a lease in the database (`store::lease`): closing each biller's
//! date at its cut-off, relaying the settlement outbox to RabbitMQ, the
//! file routes, pruning nonces.
//!
//! Every process that could run a duty runs a [`Duty`] for it: every
//! `check` it asks for the lease (or renews it) for `lease`. The holder
//! runs the duty's body; the others wait. When the holder dies, its lease
//! expires and the next process to check takes the duty over: within
//! `lease + check` of its last renewal (15 s + 5 s by default). A holder
//! that cannot renew (the database unreachable) stops the body itself
//! before its lease can have expired, so two bodies never knowingly run
//! at once; a clean shutdown releases the lease for an immediate
//! hand-over.
//!
//! The lease is not the only guard: what each duty does is idempotent in
//! the database (a biller's date is closed once, `UNIQUE (biller_id,
//! business_date)`; an outbox message is claimed under a row lock and
//! consumed idempotently; a file batch is prepared once per route and
//! date), so a body that still ran a moment after losing its lease (a
//! paused process) repeats nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::lease::LeaseOutcome;
use crate::store::Store;

/// The duties' names (the `duty_leases` rows).
pub const CLOSE_DATES: &str = "close-dates";
pub const SETTLEMENT_RELAY: &str = "settlement-relay";
pub const FILE_ROUTES: &str = "file-routes";
pub const PRUNE_NONCES: &str = "prune-nonces";
pub const COMPLAINTS: &str = "complaints";

/// How long a lease lasts and how often it is asked for.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTiming {
    pub lease: Duration,
    pub check: Duration,
}

impl LeaseTiming {
    pub fn from_config(c: &crate::config::DutiesConfig) -> LeaseTiming {
        LeaseTiming {
            lease: Duration::from_millis(c.lease_ms),
            check: Duration::from_millis(c.check_ms),
        }
    }

    /// The longest a duty goes without a holder after its holder died.
    pub fn takeover_bound(&self) -> Duration {
        self.lease + self.check
    }
}

/// A duty's body: started when the lease is taken, aborted when it is lost.
pub type Body = Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The task that holds (or waits for) one duty; aborting it aborts the body.
pub struct Duty {
    task: tokio::task::JoinHandle<()>,
    name: &'static str,
    holder: String,
    store: Arc<dyn Store>,
}

impl Duty {
    pub fn spawn(
        store: Arc<dyn Store>,
        name: &'static str,
        holder: &str,
        timing: LeaseTiming,
        body: Body,
    ) -> Duty {
        let task = tokio::spawn(hold(store.clone(), name, holder.to_string(), timing, body));
        Duty {
            task,
            name,
            holder: holder.to_string(),
            store,
        }
    }

    /// Stops at once, as a crash would: the lease runs out by itself.
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Stops and gives the lease up, for an immediate hand-over.
    pub async fn release(&self) {
        self.task.abort();
        if let Err(e) = self.store.release_lease(self.name, &self.holder).await {
            tracing::warn!(duty = self.name, error = %e, "could not release the duty's lease (it expires by itself)");
        }
    }
}

impl Drop for Duty {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Aborts the body's task when dropped (the holding task aborted).
struct Running(tokio::task::JoinHandle<()>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn hold(
    store: Arc<dyn Store>,
    name: &'static str,
    holder: String,
    timing: LeaseTiming,
    body: Body,
) {
    let mut tick = tokio::time::interval(timing.check);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut running: Option<Running> = None;
    // When the lease was last granted, by our clock (it may not be
    // trusted beyond `lease - check` from then).
    let mut granted_at: Option<Instant> = None;
    let mut waiting_logged = false;
    loop {
        tick.tick().await;
        match store.hold_lease(name, &holder, timing.lease).await {
            Ok(LeaseOutcome::Held {
                taken_from,
                acquired,
                ..
            }) => {
                granted_at = Some(Instant::now());
                if acquired {
                    match &taken_from {
                        Some(from) => tracing::warn!(duty = name, from = %from, "duty taken over"),
                        None => tracing::info!(duty = name, "duty taken"),
                    }
                }
                if running.as_ref().is_none_or(|r| r.0.is_finished()) {
                    running = Some(Running(tokio::spawn(body())));
                }
                waiting_logged = false;
            }
            Ok(LeaseOutcome::HeldBy { holder: other, .. }) => {
                if running.take().is_some() {
                    tracing::warn!(duty = name, holder = %other, "duty lost to another process; stopped here");
                } else if !waiting_logged {
                    tracing::info!(duty = name, holder = %other, "duty held by another process; standing by");
                    waiting_logged = true;
                }
                granted_at = None;
            }
            Err(e) => {
                // Stop before the lease can have run out: another process
                // may take the duty then.
                let safe = timing.lease.saturating_sub(timing.check);
                if running.is_some() && granted_at.is_none_or(|at| at.elapsed() >= safe) {
                    running = None;
                    granted_at = None;
                    tracing::warn!(duty = name, error = %e, "duty's lease cannot be renewed; stopped here until it can");
                } else {
                    tracing::debug!(duty = name, error = %e, "duty's lease not renewed this time");
                }
            }
        }
    }
}

/// A body from an async function called again whenever the duty is taken.
pub fn body<F, Fut>(f: F) -> Body
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Box::new(move || Box::pin(f()))
}
