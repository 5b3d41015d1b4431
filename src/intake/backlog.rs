//! The backlog watch: each biller's oldest payment waiting for dispatch,
//! read from the database in the background (one index probe per biller,
//! every `intake.backlog_refresh_ms`), so that intake can refuse new
//! payments for a backlogged biller without a query per request
//! (`domain::backlog` decides).
//!
//! It counts its refusals per biller, logs when a biller starts and stops
//! being refused, and stores the counts with each refresh for
//! `billclear routes list`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::backlog::{BacklogPolicy, Backlogged};
use crate::store::{BacklogRow, Store};

#[derive(Default)]
struct Seen {
    /// Each biller's oldest waiting payment, as of the last refresh.
    oldest: HashMap<String, DateTime<Utc>>,
    /// Whether the last refresh read the database (a watch that cannot
    /// read refuses nothing: intake must not stop because a read failed).
    fresh: bool,
}

pub struct BacklogWatch {
    policy: BacklogPolicy,
    process: String,
    seen: RwLock<Seen>,
    /// New payments refused, per biller.
    counts: Mutex<HashMap<String, u64>>,
    /// Billers being refused, and since when (for the log and the rows).
    refusing: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl BacklogWatch {
    pub fn new(policy: BacklogPolicy, process: impl Into<String>) -> BacklogWatch {
        BacklogWatch {
            policy,
            process: process.into(),
            seen: RwLock::default(),
            counts: Mutex::default(),
            refusing: Mutex::default(),
        }
    }

    pub fn policy(&self) -> BacklogPolicy {
        self.policy
    }

    /// Whether a new payment for `biller` is to be refused now; a refusal
    /// is counted.
    pub fn check(&self, biller: &str) -> Option<Backlogged> {
        self.policy.max_age?;
        let oldest = {
            let seen = self.seen.read().expect("backlog lock");
            if !seen.fresh {
                return None;
            }
            seen.oldest.get(biller).copied()
        };
        let verdict = self.policy.judge(oldest, Utc::now())?;
        *self
            .counts
            .lock()
            .expect("backlog counts")
            .entry(biller.to_string())
            .or_default() += 1;
        Some(verdict)
    }

    /// New payments refused for `biller` by this process so far.
    pub fn refused(&self, biller: &str) -> u64 {
        self.counts
            .lock()
            .expect("backlog counts")
            .get(biller)
            .copied()
            .unwrap_or(0)
    }

    /// Reads the oldest waiting payments, logs billers that start or stop
    /// being backlogged, and stores this process's counts.
    pub async fn refresh(&self, store: &dyn Store) {
        let read = store.oldest_waiting().await;
        let now = Utc::now();
        match read {
            Ok(rows) => {
                let mut seen = self.seen.write().expect("backlog lock");
                seen.oldest = rows.into_iter().collect();
                seen.fresh = true;
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the billers' backlogs failed; refusing no payment until it works");
                self.seen.write().expect("backlog lock").fresh = false;
                return;
            }
        }
        let rows = self.note_changes(now);
        if let Err(e) = store.record_backlog(&self.process, &rows).await {
            tracing::warn!(error = %e, "storing the backlog counts failed");
        }
    }

    /// Logs each biller that started or stopped being backlogged since the
    /// last refresh; returns the rows to store (billers refused at some
    /// time, or now).
    fn note_changes(&self, now: DateTime<Utc>) -> Vec<BacklogRow> {
        let oldest = self.seen.read().expect("backlog lock").oldest.clone();
        let mut refusing = self.refusing.lock().expect("backlog refusing");
        let mut billers: Vec<String> = oldest.keys().chain(refusing.keys()).cloned().collect();
        billers.sort();
        billers.dedup();
        for biller in &billers {
            let verdict = self.policy.judge(oldest.get(biller).copied(), now);
            match (verdict, refusing.get(biller).copied()) {
                (Some(b), None) => {
                    tracing::warn!(
                        biller = %biller,
                        oldest_waiting_s = b.oldest_age.as_secs(),
                        bound_s = b.bound.as_secs(),
                        "biller backlogged: new payments for it are refused (503 biller_backlogged) until its deliveries catch up"
                    );
                    refusing.insert(biller.clone(), now);
                }
                (None, Some(since)) => {
                    tracing::warn!(
                        biller = %biller,
                        refused = self.refused(biller),
                        for_s = (now - since).num_seconds(),
                        "biller no longer backlogged: taking its payments again"
                    );
                    refusing.remove(biller);
                }
                _ => {}
            }
        }
        let counts = self.counts.lock().expect("backlog counts");
        let mut names: Vec<&String> = counts.keys().chain(refusing.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|b| BacklogRow {
                biller_id: b.clone(),
                process: self.process.clone(),
                refused: counts.get(b).copied().unwrap_or(0),
                refusing_since: refusing.get(b).copied(),
                updated_at: now,
            })
            .collect()
    }

    /// Refreshes every `every` until the returned task is aborted (nothing
    /// to do when no bound is set).
    pub fn spawn(
        self: &Arc<Self>,
        store: Arc<dyn Store>,
        every: Duration,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.policy.max_age?;
        let me = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                me.refresh(&*store).await;
            }
        }))
    }
}
