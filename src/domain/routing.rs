//! Routes and their health: which connector a biller's next payment goes
//! through. Pure: times are given, nothing here calls anyone.
//!
//! Each connector (route) has a circuit breaker fed by the outcome of every
//! call through it and by periodic heartbeats:
//!
//! * **closed** (healthy): payments go through it. `failures_to_open`
//!   consecutive failures (no usable answer: refused connection, timeout,
//!   "busy", "down", an unreadable answer) open it. A refusal by the biller
//!   is an answer: it counts as success.
//! * **open**: no new payment goes through it for `open_ms`.
//! * **half-open** (after `open_ms`): the next heartbeat or call decides: a
//!   success closes the breaker, a failure opens it again.
//!
//! A new payment goes to the first route in the biller's order (the
//! operator's preferred route first, when one is set) whose connector is
//! configured and whose breaker is closed. A payment already sent stays on
//! its route (see `domain::dispatch`).

use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    pub failures_to_open: u32,
    pub open_for: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteState {
    Closed,
    Open,
    HalfOpen,
}

impl RouteState {
    pub fn as_str(&self) -> &'static str {
        match self {
            RouteState::Closed => "closed",
            RouteState::Open => "open",
            RouteState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaker {
    policy: BreakerPolicy,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
}

impl Breaker {
    pub fn new(policy: BreakerPolicy) -> Breaker {
        Breaker {
            policy,
            consecutive_failures: 0,
            opened_at: None,
        }
    }

    pub fn state(&self, now: Instant) -> RouteState {
        match self.opened_at {
            None => RouteState::Closed,
            Some(at) if now.saturating_duration_since(at) >= self.policy.open_for => {
                RouteState::HalfOpen
            }
            Some(_) => RouteState::Open,
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// New payments may go through this route.
    pub fn takes_payments(&self, now: Instant) -> bool {
        self.state(now) == RouteState::Closed
    }

    /// A call may be made (a payment already on this route, a status
    /// inquiry, a probe): not while the breaker is open.
    pub fn allows_calls(&self, now: Instant) -> bool {
        self.state(now) != RouteState::Open
    }

    /// How long until the breaker lets calls through again.
    pub fn open_for(&self, now: Instant) -> Duration {
        match self.opened_at {
            Some(at) => self
                .policy
                .open_for
                .saturating_sub(now.saturating_duration_since(at)),
            None => Duration::ZERO,
        }
    }

    /// Records the outcome of a call or heartbeat through the route.
    pub fn record(&mut self, success: bool, now: Instant) {
        match (self.state(now), success) {
            (RouteState::Open, _) => {}
            (_, true) => {
                self.consecutive_failures = 0;
                self.opened_at = None;
            }
            (RouteState::HalfOpen, false) => {
                self.consecutive_failures += 1;
                self.opened_at = Some(now);
            }
            (RouteState::Closed, false) => {
                self.consecutive_failures += 1;
                if self.consecutive_failures >= self.policy.failures_to_open {
                    self.opened_at = Some(now);
                }
            }
        }
    }

    /// Opens the breaker at once (an operator, or a counterpart that cut us off).
    pub fn trip(&mut self, now: Instant) {
        self.opened_at = Some(now);
    }
}

/// The order routes are tried in: the preferred one first (when it is one
/// of the biller's routes), then the biller's priority order.
pub fn route_order<'a>(routes: &'a [String], preferred: Option<&'a str>) -> Vec<&'a str> {
    let first = preferred.filter(|p| routes.iter().any(|r| r == p));
    first
        .into_iter()
        .chain(
            routes
                .iter()
                .map(String::as_str)
                .filter(|r| Some(*r) != first),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            failures_to_open: 3,
            open_for: Duration::from_secs(30),
        }
    }

    #[test]
    fn consecutive_failures_open_then_half_open_then_close() {
        let t0 = Instant::now();
        let mut b = Breaker::new(policy());
        b.record(false, t0);
        b.record(false, t0);
        b.record(true, t0);
        b.record(false, t0);
        b.record(false, t0);
        assert_eq!(
            b.state(t0),
            RouteState::Closed,
            "a success in between resets"
        );
        b.record(false, t0);
        assert_eq!(b.state(t0), RouteState::Open);
        assert!(!b.takes_payments(t0) && !b.allows_calls(t0));
        // While open, nothing changes it.
        b.record(true, t0 + Duration::from_secs(1));
        assert_eq!(b.state(t0 + Duration::from_secs(1)), RouteState::Open);
        assert_eq!(
            b.open_for(t0 + Duration::from_secs(10)),
            Duration::from_secs(20)
        );
        let later = t0 + Duration::from_secs(30);
        assert_eq!(b.state(later), RouteState::HalfOpen);
        assert!(b.allows_calls(later) && !b.takes_payments(later));
        // A failed probe opens it again; a good one closes it.
        b.record(false, later);
        assert_eq!(b.state(later), RouteState::Open);
        let later = later + Duration::from_secs(30);
        b.record(true, later);
        assert_eq!(b.state(later), RouteState::Closed);
        assert_eq!(b.consecutive_failures(), 0);
    }

    #[test]
    fn the_preferred_route_goes_first() {
        let routes = vec!["hub".to_string(), "water-direct".to_string()];
        assert_eq!(route_order(&routes, None), vec!["hub", "water-direct"]);
        assert_eq!(
            route_order(&routes, Some("water-direct")),
            vec!["water-direct", "hub"]
        );
        assert_eq!(
            route_order(&routes, Some("elsewhere")),
            vec!["hub", "water-direct"]
        );
        let mut b = Breaker::new(policy());
        b.trip(Instant::now());
        assert_eq!(b.state(Instant::now()), RouteState::Open);
    }
}
