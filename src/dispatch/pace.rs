//! Pacing: what each route (connector) takes from this process, so that a
//! fast intake never floods a biller.
//!
//! Every payment and status inquiry waits for its turn on its route
//! (`max_in_flight` requests at once, `max_per_second` a second) BEFORE
//! its attempt is recorded: a payment waiting for its turn has not been
//! sent, and stays safe to send elsewhere or later. The turn is held until
//! the call ends. (Across several processes each paces itself: a fleet
//! shares the limit in the fleet issue's work.)

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::DefaultDirectRateLimiter;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One route's limits.
pub struct Pace {
    in_flight: Arc<Semaphore>,
    limit: usize,
    per_second: Option<DefaultDirectRateLimiter>,
}

/// A call's turn on its route: held for as long as the call lasts.
#[derive(Debug)]
pub struct Turn {
    _permit: OwnedSemaphorePermit,
}

impl Pace {
    /// `in_flight` requests at once (at least 1), `per_second` a second in
    /// bursts of as many (0: no limit).
    pub fn new(in_flight: usize, per_second: u32) -> Pace {
        let limit = in_flight.max(1);
        Pace {
            in_flight: Arc::new(Semaphore::new(limit)),
            limit,
            per_second: NonZeroU32::new(per_second).map(crate::auth::rate_limits::per_second),
        }
    }

    /// Waits for a turn: a free slot, then (holding it) the rate.
    pub async fn turn(&self) -> Turn {
        let permit = self
            .in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("the pace semaphore is never closed");
        if let Some(rate) = &self.per_second {
            rate.until_ready().await;
        }
        Turn { _permit: permit }
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.limit - self.in_flight.available_permits()
    }

    pub fn limit(&self) -> usize {
        self.limit
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
    async fn never_faster_than_the_rate_after_its_burst() {
        // 20 a second, a burst of 20: 50 calls need at least 1.5 s.
        let pace = Pace::new(100, 20);
        let started = Instant::now();
        for _ in 0..50 {
            drop(pace.turn().await);
        }
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(1_400), "50 turns in {took:?}");
        assert!(took < Duration::from_secs(5), "50 turns in {took:?}");
    }
}
