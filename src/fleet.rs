//! This process's view of its fleet: the live processes on the same
//! database (`fleet_instances`, a heartbeat each), and its share of every
//! fleet-wide limit (`domain::fleet::share`).
//!
//! How far off a limit can be, and for how long:
//! - while membership is steady, never: the shares add up to the limit
//!   and each process holds its share per second of the wall clock (up to
//!   the machines' clock difference at a second's edge);
//! - when a process dies, the others keep their smaller shares until it is
//!   not seen for `fleet.stale_ms` (3 s) and their next heartbeat
//!   (`fleet.heartbeat_ms`, 1 s): the fleet uses less than the limit then,
//!   never more;
//! - when a process joins, it takes no share of a biller's budget until the
//!   others have seen it (two heartbeats), so the fleet is again under,
//!   never over; of a channel's rate limit it takes its share at once (the
//!   fleet may allow one share more for up to a heartbeat: that limit
//!   protects us, and a joining process must not refuse its traffic);
//! - a process that cannot reach the database keeps its last view.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::store::Store;

pub struct Fleet {
    me: String,
    view: RwLock<View>,
}

struct View {
    live: Vec<String>,
    /// A joining process takes no share before this.
    warm_until: Option<Instant>,
}

impl Fleet {
    /// Alone until the first heartbeat says otherwise.
    pub fn new(me: &str) -> Fleet {
        Fleet {
            me: me.to_string(),
            view: RwLock::new(View {
                live: vec![me.to_string()],
                warm_until: None,
            }),
        }
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    /// Live processes, this one included.
    pub fn instances(&self) -> usize {
        self.view.read().expect("fleet view").live.len().max(1)
    }

    /// This process's share of a fleet-wide `total` that must never be
    /// exceeded (a biller's budget): none while it warms up.
    pub fn share(&self, total: u32) -> u32 {
        let v = self.view.read().expect("fleet view");
        if v.warm_until.is_some_and(|t| Instant::now() < t) {
            return 0;
        }
        Self::share_of(&v, &self.me, total)
    }

    /// This process's share of a fleet-wide `total` that protects us (a
    /// channel's rate limit), from its first heartbeat: a process joining
    /// is not idle while the others learn of it (the fleet may then allow
    /// one share more for up to a heartbeat).
    pub fn share_at_once(&self, total: u32) -> u32 {
        let v = self.view.read().expect("fleet view");
        Self::share_of(&v, &self.me, total)
    }

    fn share_of(v: &View, me: &str, total: u32) -> u32 {
        let rank = v.live.iter().position(|n| n == me).unwrap_or(0);
        crate::domain::fleet::share(total, v.live.len(), rank)
    }

    fn update(&self, mut live: Vec<String>, warm: Option<Duration>) {
        if !live.contains(&self.me) {
            live.push(self.me.clone());
            live.sort();
        }
        let mut v = self.view.write().expect("fleet view");
        if let Some(w) = warm {
            v.warm_until = Some(Instant::now() + w);
        }
        if v.live != live {
            tracing::info!(instances = live.len(), "fleet: live processes changed");
            v.live = live;
        }
    }
}

/// Heartbeats every `every` and refreshes the view; a process that finds
/// others already live on its first heartbeat warms up for two heartbeats.
pub fn spawn_registry(
    fleet: Arc<Fleet>,
    store: Arc<dyn Store>,
    every: Duration,
    stale: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first = true;
        loop {
            tick.tick().await;
            match store.fleet_heartbeat(&fleet.me, stale).await {
                Ok(live) => {
                    let warm = (first && live.iter().any(|n| *n != fleet.me)).then_some(every * 2);
                    fleet.update(live, warm);
                    first = false;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "fleet heartbeat failed; keeping the last view")
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_the_view() {
        let f = Fleet::new("b");
        assert_eq!(f.share(5), 5, "alone");
        f.update(vec!["a".into(), "b".into(), "c".into()], None);
        assert_eq!(f.instances(), 3);
        assert_eq!(f.share(5), 2, "rank 1 of 3");
        f.update(vec!["a".into()], None);
        assert_eq!(f.instances(), 2, "itself is always live");
        f.update(vec!["a".into(), "b".into()], Some(Duration::from_secs(60)));
        assert_eq!(f.share(5), 0, "warming up");
        assert_eq!(f.share_at_once(5), 2, "rank 1 of 2");
    }
}
