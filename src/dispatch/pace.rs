//! Pacing: what each route (connector) takes from the fleet, so that a
//! fast intake never floods a biller.
//!
//! Every payment and status inquiry waits for its turn on its route
//! (`max_in_flight` requests at once, `max_per_second` a second) BEFORE
//! its attempt is recorded: a payment waiting for its turn has not been
//! sent, and stays safe to send elsewhere or later. The turn is held until
//! the call ends.
//!
//! Both limits are the fleet's: each process takes its share of them
//! (`Fleet::share`, re-read at every turn) and counts the rate per second
//! of the wall clock, as the biller counts it, so the processes together
//! never exceed them (see `crate::fleet` for how long a change of
//! membership takes to be seen). A process whose share is none gives its
//! work back; another one takes it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::domain::fleet::SecondWindow;
use crate::fleet::Fleet;

/// How often a waiting call looks again at a share that may have grown.
const RECHECK: Duration = Duration::from_millis(100);

/// One route's limits, for the whole fleet.
pub struct Pace {
    fleet: Arc<Fleet>,
    /// The fleet's limits.
    in_flight_total: u32,
    per_second_total: u32,
    gate: Arc<Gate>,
    window: Mutex<SecondWindow>,
}

#[derive(Default)]
struct Gate {
    in_flight: Mutex<usize>,
    freed: Notify,
}

/// A call's turn on its route: held for as long as the call lasts.
pub struct Turn {
    gate: Arc<Gate>,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Turn")
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        *self.gate.in_flight.lock().expect("pace gate") -= 1;
        self.gate.freed.notify_one();
    }
}

impl Pace {
    /// This process alone: `in_flight` requests at once (at least 1),
    /// `per_second` a second (0: no limit).
    pub fn new(in_flight: usize, per_second: u32) -> Pace {
        Pace::shared(Arc::new(Fleet::new("alone")), in_flight, per_second)
    }

    /// The fleet's limits, of which this process takes its share.
    pub fn shared(fleet: Arc<Fleet>, in_flight: usize, per_second: u32) -> Pace {
        Pace {
            fleet,
            in_flight_total: u32::try_from(in_flight.max(1)).unwrap_or(u32::MAX),
            per_second_total: per_second,
            gate: Arc::default(),
            window: Mutex::default(),
        }
    }

    /// Waits for a turn: a free slot of this process's share, then
    /// (holding it) a place in the current second's share.
    pub async fn turn(&self) -> Turn {
        let turn = loop {
            // Registered before looking: a slot freed meanwhile wakes it.
            let freed = self.gate.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut n = self.gate.in_flight.lock().expect("pace gate");
                if *n < self.limit() {
                    *n += 1;
                    break Turn {
                        gate: self.gate.clone(),
                    };
                }
            }
            let _ = tokio::time::timeout(RECHECK, freed).await;
        };
        if self.per_second_total > 0 {
            loop {
                let share = self.fleet.share(self.per_second_total);
                let now_ms = chrono::Utc::now().timestamp_millis();
                let wait = match self.window.lock().expect("pace window").take(now_ms, share) {
                    Ok(()) => break,
                    Err(ms) => Duration::from_millis(ms.max(1)).min(RECHECK * 10),
                };
                tokio::time::sleep(wait).await;
            }
        }
        turn
    }

    /// Calls in flight now in this process.
    pub fn in_flight(&self) -> usize {
        *self.gate.in_flight.lock().expect("pace gate")
    }

    /// This process's share of the route's `max_in_flight` now.
    pub fn limit(&self) -> usize {
        self.fleet.share(self.in_flight_total) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn never_more_in_flight_than_the_limit() {
        let pace = Arc::new(Pace::new(3, 0));
        let now = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (pace, now, most) = (pace.clone(), now.clone(), most.clone());
            calls.spawn(async move {
                let _turn = pace.turn().await;
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                now.fetch_sub(1, Ordering::SeqCst);
            });
        }
        while calls.join_next().await.is_some() {}
        assert_eq!(most.load(Ordering::SeqCst), 3);
        assert_eq!(pace.in_flight(), 0);
    }

    #[tokio::test]
    async fn never_more_in_a_second_of_the_clock_than_the_rate() {
        // 20 a second: 50 calls fall in at least three seconds of the
        // clock, none with more than 20.
        let pace = Pace::new(100, 20);
        let started = Instant::now();
        let mut seconds = std::collections::BTreeMap::<i64, u32>::new();
        for _ in 0..50 {
            drop(pace.turn().await);
            *seconds.entry(chrono::Utc::now().timestamp()).or_default() += 1;
        }
        assert!(seconds.values().all(|n| *n <= 20), "{seconds:?}");
        assert!(seconds.len() >= 3, "{seconds:?}");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(4), "50 turns in {took:?}");
    }

    #[tokio::test]
    async fn three_processes_together_stay_within_the_route_limits() {
        // One route, max_in_flight 4 and max_per_second 5, paced by three
        // processes that each see the same fleet of three.
        let members = ["a", "b", "c"];
        let paces: Vec<Arc<Pace>> = members
            .iter()
            .map(|me| {
                let fleet = Arc::new(Fleet::new(me));
                fleet.update(members.iter().map(|m| m.to_string()).collect(), None);
                Arc::new(Pace::shared(fleet, 4, 5))
            })
            .collect();
        let limits: Vec<usize> = paces.iter().map(|p| p.limit()).collect();
        assert_eq!(limits, vec![2, 1, 1], "shares of 4 in flight");
        let now = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let per_second = Arc::new(Mutex::new(std::collections::BTreeMap::<i64, u32>::new()));
        let mut calls = tokio::task::JoinSet::new();
        for pace in &paces {
            for _ in 0..6 {
                let (pace, now, most, per_second) =
                    (pace.clone(), now.clone(), most.clone(), per_second.clone());
                calls.spawn(async move {
                    let _turn = pace.turn().await;
                    let second = chrono::Utc::now().timestamp();
                    *per_second.lock().unwrap().entry(second).or_default() += 1;
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                });
            }
        }
        while calls.join_next().await.is_some() {}
        assert!(most.load(Ordering::SeqCst) <= 4, "in flight {most:?}");
        let seconds = per_second.lock().unwrap().clone();
        assert_eq!(seconds.values().sum::<u32>(), 18, "every call had its turn");
        assert!(
            seconds.values().all(|n| *n <= 5),
            "calls per second of the clock: {seconds:?}"
        );
    }

    #[tokio::test]
    async fn a_process_with_no_share_waits() {
        // max_in_flight 2 over three processes: the third has none.
        let fleet = Arc::new(Fleet::new("c"));
        fleet.update(vec!["a".into(), "b".into(), "c".into()], None);
        let pace = Pace::shared(fleet.clone(), 2, 0);
        assert_eq!(pace.limit(), 0);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), pace.turn())
                .await
                .is_err(),
            "no turn without a share"
        );
        // One process left: its share grows, and the waiting call goes on.
        fleet.update(vec!["c".into()], None);
        let turn = tokio::time::timeout(Duration::from_millis(500), pace.turn()).await;
        assert!(turn.is_ok(), "a turn once the share grew");
    }
}
