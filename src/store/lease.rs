//! Duty leases: which process of a fleet holds each duty that must run
//! once at a time (see `startup::duty`); and the fleet's live processes
//! (see `fleet`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;

/// What asking for (or renewing) a lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// This holder has the lease until `expires_at` (database clock).
    /// `taken_from`: another holder had it before (its lease had expired,
    /// or it released it): a hand-over.
    Held {
        expires_at: DateTime<Utc>,
        taken_from: Option<String>,
        /// Newly acquired (not a renewal).
        acquired: bool,
    },
    /// Another holder has it, unexpired.
    HeldBy {
        holder: String,
        expires_at: DateTime<Utc>,
    },
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub duty: String,
    pub holder: String,
    pub acquired_at: DateTime<Utc>,
    pub renewed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Whether it has expired (by the database clock).
    pub expired: bool,
}

/// One acquisition of a duty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    pub duty: String,
    pub holder: String,
    pub previous_holder: Option<String>,
    pub previous_expired_at: Option<DateTime<Utc>>,
    pub at: DateTime<Utc>,
}

#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes or renews `duty` for `holder` for `ttl`: granted when nobody
    /// holds it, `holder` does, or the holder's lease has expired.
    async fn hold_lease(
        &self,
        duty: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> StoreResult<LeaseOutcome>;
    /// Gives the duty up at once (a clean shutdown): another process may
    /// take it at its next check.
    async fn release_lease(&self, duty: &str, holder: &str) -> StoreResult<()>;
    async fn leases(&self) -> StoreResult<Vec<LeaseRow>>;
    /// The acquisitions of a duty, oldest first.
    async fn handovers(&self, duty: &str) -> StoreResult<Vec<Handover>>;
    /// Records that process `name` is alive (database clock) and returns
    /// the names of the live processes (seen within `stale`), sorted.
    /// Processes not seen for an hour are forgotten.
    async fn fleet_heartbeat(
        &self,
        name: &str,
        stale: std::time::Duration,
    ) -> StoreResult<Vec<String>>;
    /// A process leaving cleanly: the others' shares grow at their next
    /// heartbeat.
    async fn fleet_leave(&self, name: &str) -> StoreResult<()>;
}
