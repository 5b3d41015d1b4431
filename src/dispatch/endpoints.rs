//! One channel callback endpoint that keeps failing (nothing listens, it
//! answers 5xx) is backed off as a whole and told about once, instead of
//! every callback for it trying and logging on its own:
//!
//! - the first failure is logged when it starts; while it lasts, a count
//!   per `log_every` interval; once when the endpoint answers again;
//! - after a failure the endpoint is closed for a growing time (doubling
//!   from `base` to `max`); callbacks for it wait without a delivery of
//!   their own counted, and one probe goes through when the time is up.
//!
//! The logic is kept apart from the clock (`now` is passed in) so that it
//! is tested without waiting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct EndpointPolicy {
    /// The first closed time after a failure.
    pub base: Duration,
    /// The longest closed time.
    pub max: Duration,
    /// How often a failure that goes on is logged (as a count).
    pub log_every: Duration,
    /// How long a probe may take before another is let through.
    pub probe: Duration,
}

#[derive(Debug)]
struct Streak {
    since: Instant,
    failures: u64,
    /// Failures since the last log line.
    unlogged: u64,
    logged_at: Instant,
    closed_until: Instant,
    /// What the last failure was.
    last: String,
}

/// What to say about a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureNote {
    /// The endpoint just started failing: log it.
    Started,
    /// Still failing: log the count of failures since the last line.
    StillFailing {
        failures_since_last: u64,
        failures: u64,
        for_s: u64,
    },
    /// Still failing, already told within the interval.
    Quiet,
}

/// An endpoint answering again after failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub failures: u64,
    pub for_s: u64,
}

#[derive(Debug)]
pub struct Endpoints {
    policy: EndpointPolicy,
    streaks: Mutex<HashMap<String, Streak>>,
}

impl Endpoints {
    pub fn new(policy: EndpointPolicy) -> Endpoints {
        Endpoints {
            policy,
            streaks: Mutex::default(),
        }
    }

    /// `Ok` when a call to `endpoint` may go now (for a failing endpoint:
    /// this call is its probe); else the time to wait until and what the
    /// last failure was.
    pub fn may_call(&self, endpoint: &str, now: Instant) -> Result<(), (Instant, String)> {
        let mut map = self.streaks.lock().expect("endpoints lock");
        match map.get_mut(endpoint) {
            None => Ok(()),
            Some(s) if now < s.closed_until => Err((s.closed_until, s.last.clone())),
            Some(s) => {
                // One probe at a time: the next waits while this one runs.
                s.closed_until = now + self.policy.probe;
                Ok(())
            }
        }
    }

    /// Records a failed call (`why`) and says what to log.
    pub fn failed(&self, endpoint: &str, why: &str, now: Instant) -> FailureNote {
        let p = self.policy;
        let mut map = self.streaks.lock().expect("endpoints lock");
        let Some(s) = map.get_mut(endpoint) else {
            map.insert(
                endpoint.to_string(),
                Streak {
                    since: now,
                    failures: 1,
                    unlogged: 0,
                    logged_at: now,
                    closed_until: now + p.base,
                    last: why.to_string(),
                },
            );
            return FailureNote::Started;
        };
        s.failures += 1;
        s.unlogged += 1;
        s.last = why.to_string();
        let doublings = u32::try_from(s.failures.saturating_sub(1).min(20)).unwrap_or(20);
        let closed = p
            .base
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(p.max);
        s.closed_until = now + closed;
        if now.duration_since(s.logged_at) >= p.log_every {
            let note = FailureNote::StillFailing {
                failures_since_last: s.unlogged,
                failures: s.failures,
                for_s: now.duration_since(s.since).as_secs(),
            };
            s.unlogged = 0;
            s.logged_at = now;
            note
        } else {
            FailureNote::Quiet
        }
    }

    /// Records a call that went through; says so when it ends a streak.
    pub fn succeeded(&self, endpoint: &str, now: Instant) -> Option<Recovered> {
        let mut map = self.streaks.lock().expect("endpoints lock");
        map.remove(endpoint).map(|s| Recovered {
            failures: s.failures,
            for_s: now.duration_since(s.since).as_secs(),
        })
    }
}

/// The endpoint of a callback URL: scheme, host and port (the path and
/// query are one endpoint's business).
pub fn endpoint_of(uri: &hyper::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or("");
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    format!("{scheme}://{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> EndpointPolicy {
        EndpointPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            log_every: Duration::from_secs(60),
            probe: Duration::from_secs(5),
        }
    }

    #[test]
    fn a_failing_endpoint_is_told_once_then_counted_then_once_when_it_recovers() {
        let e = Endpoints::new(policy());
        let t0 = Instant::now();
        assert_eq!(e.failed("http://a:80", "refused", t0), FailureNote::Started);
        for i in 1..=99 {
            assert_eq!(
                e.failed(
                    "http://a:80",
                    "refused",
                    t0 + Duration::from_millis(i * 100)
                ),
                FailureNote::Quiet
            );
        }
        assert_eq!(
            e.failed("http://a:80", "refused", t0 + Duration::from_secs(61)),
            FailureNote::StillFailing {
                failures_since_last: 100,
                failures: 101,
                for_s: 61
            }
        );
        // Another endpoint is its own story.
        assert_eq!(e.failed("http://b:80", "refused", t0), FailureNote::Started);
        assert_eq!(
            e.succeeded("http://a:80", t0 + Duration::from_secs(90)),
            Some(Recovered {
                failures: 101,
                for_s: 90
            })
        );
        assert_eq!(
            e.succeeded("http://a:80", t0 + Duration::from_secs(91)),
            None
        );
        assert_eq!(
            e.failed("http://a:80", "refused", t0 + Duration::from_secs(92)),
            FailureNote::Started
        );
    }

    #[test]
    fn a_failing_endpoint_is_closed_for_a_doubling_time_and_probed_one_at_a_time() {
        let e = Endpoints::new(policy());
        let t0 = Instant::now();
        assert_eq!(e.may_call("x", t0), Ok(()));
        e.failed("x", "refused", t0);
        assert_eq!(
            e.may_call("x", t0),
            Err((t0 + Duration::from_secs(1), "refused".into()))
        );
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(e.may_call("x", t1), Ok(()), "the probe");
        assert_eq!(
            e.may_call("x", t1),
            Err((t1 + Duration::from_secs(5), "refused".into())),
            "a second waits for the probe"
        );
        e.failed("x", "refused", t1);
        assert_eq!(
            e.may_call("x", t1),
            Err((t1 + Duration::from_secs(2), "refused".into()))
        );
        let mut t = t1;
        for _ in 0..10 {
            t += Duration::from_secs(61);
            e.failed("x", "refused", t);
        }
        assert_eq!(
            e.may_call("x", t),
            Err((t + Duration::from_secs(60), "refused".into())),
            "capped"
        );
        e.succeeded("x", t);
        assert_eq!(e.may_call("x", t), Ok(()));
    }

    #[test]
    fn the_endpoint_is_scheme_host_and_port() {
        let u: hyper::Uri = "https://app.example/cb?x=1".parse().unwrap();
        assert_eq!(endpoint_of(&u), "https://app.example:443");
        let u: hyper::Uri = "http://127.0.0.1:9/callbacks".parse().unwrap();
        assert_eq!(endpoint_of(&u), "http://127.0.0.1:9");
    }
}
