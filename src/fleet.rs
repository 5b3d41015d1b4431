//! This process's view of its fleet: the live processes on the same
//! database (`fleet_instances`, a heartbeat each), and its share of every
//! fleet-wide limit (`domain::fleet::share`).
//!
//! How far off a limit can be, and for how long. Each process holds its
//! share per second of the wall clock; the rules below make sure that a
//! share is only ever taken over in a later second than the one its
//! previous holder last used it in (`fleet.stale_ms` must be at least
//! `fleet.heartbeat_ms` + 1 s for that):
//! - while membership is steady, never: the shares add up to the limit
//!   (up to the machines' clock difference at a second's edge);
//! - a process that has not completed a heartbeat for `stale_ms` - 1 s
//!   takes no share of a biller's limits: it stops at least a second before
//!   the others can take it for dead (its last heartbeat older than
//!   `stale_ms` by the database's clock) and share its part out at their
//!   next heartbeat: the fleet uses less than the limit then, never more.
//!   It takes a share again only as a newcomer does;
//! - a process that joins (or comes back) takes no share of a biller's
//!   limits for `stale_ms` after its first heartbeat: by then every other
//!   process has either seen it and shrunk its share at least a second
//!   earlier, or stopped by the rule above; so again under, never over.
//!   Of a channel's rate limit it takes its share at once (the fleet may
//!   allow one share more for up to a heartbeat: that limit protects us,
//!   and a joining process must not refuse its traffic);
//! - a view counts processes that may have died but are not yet stale:
//!   with more processes seen than live, every share is smaller, never
//!   larger;
//! - the one exception: processes that start within the same heartbeat on
//!   a fleet where nobody else is live may each see itself alone for that
//!   heartbeat.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::store::Store;

/// A process's share lapses this long before the others may take it for
/// dead: a second of the wall clock apart.
const SECOND: Duration = Duration::from_secs(1);

pub struct Fleet {
    me: String,
    view: RwLock<View>,
}

struct View {
    live: Vec<String>,
    /// A joining process takes no share of a biller's limits before this.
    warm_until: Option<Instant>,
    /// With a registry: when the last good heartbeat was sent, and for how
    /// long after it the view may be acted on.
    fresh: Option<(Instant, Duration)>,
}

impl View {
    fn acting(&self, now: Instant) -> bool {
        let warm = self.warm_until.is_none_or(|t| now >= t);
        let fresh = self.fresh.is_none_or(|(at, valid)| now <= at + valid);
        warm && fresh
    }
}

impl Fleet {
    /// Alone, with no registry (a command run by hand, a unit test).
    pub fn new(me: &str) -> Fleet {
        Fleet {
            me: me.to_string(),
            view: RwLock::new(View {
                live: vec![me.to_string()],
                warm_until: None,
                fresh: None,
            }),
        }
    }

    /// Joins the fleet on `store`: the first heartbeat now (a process
    /// finding others live waits `stale` before taking a share of a
    /// biller's limits), then one every `every`.
    pub async fn join(
        me: &str,
        store: Arc<dyn Store>,
        every: Duration,
        stale: Duration,
    ) -> anyhow::Result<(Arc<Fleet>, tokio::task::JoinHandle<()>)> {
        let fleet = Arc::new(Fleet::new(me));
        let sent = Instant::now();
        let live = store.fleet_heartbeat(me, stale).await?;
        let others = live.iter().any(|n| n != me);
        fleet.seen(live, sent, stale, others.then_some(stale));
        let registry = spawn_registry(fleet.clone(), store, every, stale);
        Ok((fleet, registry))
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    /// Live processes, this one included.
    pub fn instances(&self) -> usize {
        self.view.read().expect("fleet view").live.len().max(1)
    }

    /// This process's share of a fleet-wide `total` that must never be
    /// exceeded (a biller's budget, a route's pace): none while it warms
    /// up or its view is too old to act on.
    pub fn share(&self, total: u32) -> u32 {
        let v = self.view.read().expect("fleet view");
        if !v.acting(Instant::now()) {
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

    /// A view read on a heartbeat sent at `sent`; `warm`: take no share of
    /// a biller's limits for that long.
    fn seen(&self, mut live: Vec<String>, sent: Instant, stale: Duration, warm: Option<Duration>) {
        if !live.contains(&self.me) {
            live.push(self.me.clone());
            live.sort();
        }
        let now = Instant::now();
        let mut v = self.view.write().expect("fleet view");
        // Too late: the others may have taken this process for dead, and
        // must see it again before it takes a share.
        let lapsed = v.fresh.is_some_and(|(at, valid)| now > at + valid);
        if let Some(w) = warm.or(lapsed.then_some(stale)) {
            if lapsed {
                tracing::warn!("fleet: heartbeats were late; no share of billers' limits until the others see this process again");
            }
            v.warm_until = Some(now + w);
        }
        v.fresh = Some((sent, stale.saturating_sub(SECOND)));
        if v.live != live {
            tracing::info!(instances = live.len(), "fleet: live processes changed");
            v.live = live;
        }
    }

    #[cfg(test)]
    pub(crate) fn update(&self, live: Vec<String>, warm: Option<Duration>) {
        self.seen(live, Instant::now(), Duration::from_secs(3600), warm);
    }
}

/// Heartbeats every `every` and refreshes the view.
fn spawn_registry(
    fleet: Arc<Fleet>,
    store: Arc<dyn Store>,
    every: Duration,
    stale: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is at once: the first heartbeat was just made.
        tick.tick().await;
        loop {
            tick.tick().await;
            let sent = Instant::now();
            match store.fleet_heartbeat(&fleet.me, stale).await {
                Ok(live) => fleet.seen(live, sent, stale, None),
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

    #[test]
    fn a_view_too_old_to_act_on_gives_no_share_and_its_return_warms_up() {
        let f = Fleet::new("b");
        let stale = Duration::from_millis(1_100);
        let long_ago = Instant::now() - Duration::from_millis(200);
        f.seen(vec!["a".into(), "b".into()], long_ago, stale, None);
        // Valid for stale - 1 s = 100 ms after the heartbeat was sent.
        assert_eq!(f.share(10), 0, "heartbeats late: no share");
        assert_eq!(f.share_at_once(10), 5, "a channel's limit still served");
        // The next heartbeat comes back late: a newcomer's wait.
        f.seen(vec!["a".into(), "b".into()], Instant::now(), stale, None);
        assert_eq!(f.share(10), 0, "back, but warming up");
        // Heartbeats on time from then on: a share once the wait is over.
        let back = Instant::now();
        while back.elapsed() < stale + Duration::from_millis(20) {
            std::thread::sleep(Duration::from_millis(50));
            f.seen(vec!["a".into(), "b".into()], Instant::now(), stale, None);
        }
        assert_eq!(f.share(10), 5);
    }
}
