//! Push-back: when a biller's deliveries fall behind, new payments for it
//! are refused (503 `biller_backlogged`) instead of piling up.
//!
//! A biller is backlogged while its oldest payment waiting for dispatch
//! (RECEIVED: accepted, not yet sent) is older than the bound. Payments
//! for other billers are not affected. The refusal says when to try again:
//! the time the backlog is over its bound, at least one second and at most
//! [`MAX_RETRY_AFTER_S`] (a backlog far over its bound is not drained any
//! faster by clients waiting longer than that before they look again).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The longest Retry-After a backlog refusal gives.
pub const MAX_RETRY_AFTER_S: u64 = 30;

/// When a biller counts as backlogged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogPolicy {
    /// The oldest waiting payment may be at most this old (None: never
    /// refuse).
    pub max_age: Option<Duration>,
}

/// A biller over its backlog bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlogged {
    /// How long its oldest waiting payment has waited.
    pub oldest_age: Duration,
    pub bound: Duration,
    /// Seconds a client should wait before trying again.
    pub retry_after_s: u64,
}

impl BacklogPolicy {
    /// Whether a biller whose oldest waiting payment was accepted at
    /// `oldest_waiting` (None: nothing waits) is backlogged at `now`.
    pub fn judge(
        &self,
        oldest_waiting: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<Backlogged> {
        let bound = self.max_age?;
        let age = (now - oldest_waiting?).to_std().unwrap_or(Duration::ZERO);
        if age <= bound {
            return None;
        }
        let over = age - bound;
        // Whole seconds, rounded up: 0.2 s over is "1".
        let secs = over.as_secs() + u64::from(over.subsec_nanos() > 0);
        Some(Backlogged {
            oldest_age: age,
            bound,
            retry_after_s: secs.clamp(1, MAX_RETRY_AFTER_S),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_780_000_000_000 + ms).unwrap()
    }

    #[test]
    fn nothing_waiting_or_no_bound_is_never_backlogged() {
        let p = BacklogPolicy {
            max_age: Some(Duration::from_secs(30)),
        };
        assert_eq!(p.judge(None, at(0)), None);
        let off = BacklogPolicy { max_age: None };
        assert_eq!(off.judge(Some(at(0)), at(3_600_000)), None);
    }

    #[test]
    fn the_bound_itself_is_still_accepted_and_one_past_it_is_not() {
        let p = BacklogPolicy {
            max_age: Some(Duration::from_secs(30)),
        };
        assert_eq!(p.judge(Some(at(0)), at(30_000)), None);
        let b = p.judge(Some(at(0)), at(30_001)).unwrap();
        assert_eq!(b.oldest_age, Duration::from_millis(30_001));
        assert_eq!(b.retry_after_s, 1);
    }

    #[test]
    fn retry_after_is_the_time_over_the_bound_rounded_up_and_capped() {
        let p = BacklogPolicy {
            max_age: Some(Duration::from_secs(10)),
        };
        assert_eq!(p.judge(Some(at(0)), at(12_000)).unwrap().retry_after_s, 2);
        assert_eq!(p.judge(Some(at(0)), at(12_001)).unwrap().retry_after_s, 3);
        assert_eq!(
            p.judge(Some(at(0)), at(3_600_000)).unwrap().retry_after_s,
            MAX_RETRY_AFTER_S
        );
    }

    #[test]
    fn a_payment_stamped_after_now_is_not_a_backlog() {
        // Clocks of processes differ a little: a "future" payment waits 0.
        let p = BacklogPolicy {
            max_age: Some(Duration::ZERO),
        };
        assert_eq!(p.judge(Some(at(5)), at(0)), None);
    }
}
