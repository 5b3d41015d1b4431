//! Protecting billers from query storms (the lesson of the hub that cut a
//! platform off for flooding utilities with bill queries).
//!
//! Every bill inquiry goes through an [`InquiryGuard`]:
//! 1. answered from a short cache when the same account of the same biller
//!    was asked recently (`inquiry.cache_ttl_ms`; definite answers only:
//!    bills, or a refusal such as "no such account");
//! 2. joined to an identical inquiry already in flight (coalescing): one
//!    biller call answers all of them;
//! 3. otherwise it spends one token of the biller's budget
//!    (`inquiry.budget_per_s`, per biller, `inquiry.budgets` overrides); with
//!    none left the channel gets 429 with Retry-After and the biller is not
//!    called. The budget is the fleet's: each process spends its share
//!    (`crate::fleet`), at most that share in any second of the wall
//!    clock, so a biller never sees more than its budget a second whatever
//!    the channels send and however many processes serve them.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use biller_connectors::{BillStatement, ConnectorError, NextStep};
use governor::clock::{Clock, DefaultClock};
use governor::DefaultDirectRateLimiter;
use tokio::sync::OnceCell;

use crate::config::InquiryConfig;

/// What the biller answered to one inquiry.
pub type Answer = Result<BillStatement, ConnectorError>;

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    /// Shared with an identical inquiry in flight.
    Coalesced,
    Biller,
}

impl Source {
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Cache => "cache",
            Source::Coalesced => "coalesced",
            Source::Biller => "biller",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InquiryError {
    #[error("biller {biller} takes at most {per_s} bill inquiries per second; try again in {retry_after_s} s")]
    OverBudget {
        biller: String,
        per_s: u32,
        retry_after_s: u64,
    },
}

type Key = (String, String);

pub struct InquiryGuard {
    config: InquiryConfig,
    cache: Mutex<HashMap<Key, (Instant, Answer)>>,
    inflight: Mutex<HashMap<Key, Arc<OnceCell<Answer>>>>,
    budgets: Mutex<HashMap<String, Budget>>,
    fleet: Arc<crate::fleet::Fleet>,
}

/// One biller's budget in this process: its share of the fleet-wide
/// budget, held per second of the wall clock, and a token bucket of the
/// share (spreading the share over the second).
struct Budget {
    share: u32,
    bucket: Option<Arc<DefaultDirectRateLimiter>>,
    window: crate::domain::fleet::SecondWindow,
}

impl InquiryGuard {
    pub fn new(config: InquiryConfig, fleet: Arc<crate::fleet::Fleet>) -> InquiryGuard {
        InquiryGuard {
            config,
            cache: Mutex::default(),
            inflight: Mutex::default(),
            budgets: Mutex::default(),
            fleet,
        }
    }

    /// The budget of `biller`, in inquiries per second.
    pub fn budget_per_s(&self, biller: &str) -> u32 {
        self.config
            .budgets
            .get(biller)
            .copied()
            .unwrap_or(self.config.budget_per_s)
            .max(1)
    }

    /// Answers an inquiry for (`biller`, `account`), calling `ask` (the
    /// biller) only when neither the cache nor an inquiry in flight can
    /// answer, and only within the biller's budget.
    pub async fn bills<F>(
        &self,
        biller: &str,
        account: &str,
        ask: F,
    ) -> Result<(Answer, Source), InquiryError>
    where
        F: Future<Output = Answer>,
    {
        let key: Key = (biller.to_string(), account.to_string());
        if let Some(answer) = self.cached(&key) {
            return Ok((answer, Source::Cache));
        }
        let cell = self
            .inflight
            .lock()
            .expect("inflight lock")
            .entry(key.clone())
            .or_default()
            .clone();
        let mut asked = false;
        let answer = cell
            .get_or_try_init(|| async {
                self.spend(biller).await?;
                asked = true;
                Ok::<_, InquiryError>(ask.await)
            })
            .await?
            .clone();
        if asked {
            if definite(&answer) {
                self.remember(key.clone(), answer.clone());
            }
            let mut inflight = self.inflight.lock().expect("inflight lock");
            if inflight.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                inflight.remove(&key);
            }
        }
        Ok((
            answer,
            if asked {
                Source::Biller
            } else {
                Source::Coalesced
            },
        ))
    }

    fn cached(&self, key: &Key) -> Option<Answer> {
        let ttl = Duration::from_millis(self.config.cache_ttl_ms);
        let cache = self.cache.lock().expect("cache lock");
        cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, a)| a.clone())
    }

    fn remember(&self, key: Key, answer: Answer) {
        if self.config.cache_ttl_ms == 0 {
            return;
        }
        let ttl = Duration::from_millis(self.config.cache_ttl_ms);
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.len() >= self.config.cache_max_entries.max(1) {
            cache.retain(|_, (at, _)| at.elapsed() < ttl);
            if cache.len() >= self.config.cache_max_entries.max(1) {
                // Still full of fresh answers: start over rather than grow.
                cache.clear();
            }
        }
        cache.insert(key, (Instant::now(), answer));
    }

    /// Spends one unit of `biller`'s budget. Nothing goes out in a second's
    /// last [`SECOND_TAIL_MS`](crate::domain::fleet::SECOND_TAIL_MS): an
    /// inquiry arriving then waits for the next second (at most that long)
    /// rather than being refused.
    async fn spend(&self, biller: &str) -> Result<(), InquiryError> {
        let into = chrono::Utc::now().timestamp_millis().rem_euclid(1000);
        if into >= 1000 - crate::domain::fleet::SECOND_TAIL_MS {
            tokio::time::sleep(Duration::from_millis((1000 - into) as u64 + 1)).await;
        }
        self.spend_now(biller)
    }

    /// Spends one unit of `biller`'s budget: this process's share of it
    /// (the fleet's budget split between its live processes), at most the
    /// share in any second of the wall clock.
    fn spend_now(&self, biller: &str) -> Result<(), InquiryError> {
        let checked = self.try_spend(biller);
        crate::metrics::inquiry_budget(biller, checked.is_ok());
        checked.map_err(|wait| InquiryError::OverBudget {
            biller: biller.to_string(),
            per_s: self.budget_per_s(biller),
            retry_after_s: wait.as_secs_f64().ceil().max(1.0) as u64,
        })
    }

    /// Spends one unit of `biller`'s budget, waiting for one up to
    /// `max_wait` (never overdrawing it): for inquiries of our own (a
    /// complaint's status inquiry), which wait rather than fail. False when
    /// none came in time (this process may hold no share of the budget).
    pub async fn spend_waiting(&self, biller: &str, max_wait: Duration) -> bool {
        let until = Instant::now() + max_wait;
        loop {
            let into = chrono::Utc::now().timestamp_millis().rem_euclid(1000);
            let wait = if into >= 1000 - crate::domain::fleet::SECOND_TAIL_MS {
                Duration::from_millis((1000 - into) as u64 + 1)
            } else {
                match self.try_spend(biller) {
                    Ok(()) => {
                        crate::metrics::inquiry_budget(biller, true);
                        return true;
                    }
                    Err(wait) => wait,
                }
            };
            let now = Instant::now();
            if now >= until {
                return false;
            }
            let wait = wait
                .clamp(Duration::from_millis(10), Duration::from_secs(1))
                .min(until - now);
            tokio::time::sleep(wait).await;
        }
    }

    /// One unit of this process's share of `biller`'s budget (the
    /// fleet's budget split between its live processes), at most the share
    /// in any second of the wall clock; or how long to wait for one.
    fn try_spend(&self, biller: &str) -> Result<(), Duration> {
        let per_s = self.budget_per_s(biller);
        let share = self.fleet.share(per_s);
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut budgets = self.budgets.lock().expect("budget lock");
        let b = budgets.entry(biller.to_string()).or_insert_with(|| Budget {
            share: u32::MAX,
            bucket: None,
            window: Default::default(),
        });
        if b.share != share {
            b.share = share;
            b.bucket =
                NonZeroU32::new(share).map(|n| Arc::new(crate::auth::rate_limits::per_second(n)));
        }
        let in_second = b.window.take(now_ms, share);
        match (&b.bucket, in_second) {
            (_, Err(ms)) => Err(Duration::from_millis(ms)),
            (None, Ok(())) => Err(Duration::from_secs(1)),
            (Some(bucket), Ok(())) => bucket
                .check()
                .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now())),
        }
    }
}

/// Bills, or a refusal (no such account): worth remembering. A transport
/// failure is not.
fn definite(answer: &Answer) -> bool {
    match answer {
        Ok(_) => true,
        Err(e) => e.next_step() == NextStep::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn guard(per_s: u32, ttl_ms: u64) -> InquiryGuard {
        InquiryGuard::new(
            InquiryConfig {
                budget_per_s: per_s,
                budgets: Default::default(),
                cache_ttl_ms: ttl_ms,
                cache_max_entries: 100,
            },
            Arc::new(crate::fleet::Fleet::new("test")),
        )
    }

    fn statement(account: &str) -> Answer {
        Ok(BillStatement {
            account_number: account.into(),
            customer_name: "王小明".into(),
            bills: vec![],
        })
    }

    #[tokio::test]
    async fn repeated_inquiries_are_answered_from_the_cache() {
        let g = guard(100, 60_000);
        let calls = AtomicU32::new(0);
        for i in 0..5 {
            let (a, source) = g
                .bills("b", "1", async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    statement("1")
                })
                .await
                .unwrap();
            assert!(a.is_ok());
            assert_eq!(
                source,
                if i == 0 {
                    Source::Biller
                } else {
                    Source::Cache
                }
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn concurrent_identical_inquiries_make_one_call() {
        let g = Arc::new(guard(100, 0));
        let calls = Arc::new(AtomicU32::new(0));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (g, calls) = (g.clone(), calls.clone());
            set.spawn(async move {
                g.bills("b", "1", async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    statement("1")
                })
                .await
                .unwrap()
                .1
            });
        }
        let mut sources = Vec::new();
        while let Some(s) = set.join_next().await {
            sources.push(s.unwrap());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(sources.iter().filter(|s| **s == Source::Biller).count(), 1);
        assert_eq!(
            sources.iter().filter(|s| **s == Source::Coalesced).count(),
            19
        );
    }

    #[tokio::test]
    async fn the_budget_is_never_exceeded_and_failures_are_not_cached() {
        let g = guard(3, 60_000);
        let calls = AtomicU32::new(0);
        let mut refused = 0;
        for i in 0..10 {
            let r = g
                .bills("b", &i.to_string(), async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(ConnectorError::retry("down"))
                })
                .await;
            match r {
                Ok((a, _)) => assert!(a.is_err()),
                Err(InquiryError::OverBudget { retry_after_s, .. }) => {
                    assert!(retry_after_s >= 1);
                    refused += 1
                }
            }
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3, "the budget of 3");
        assert_eq!(refused, 7);
        // Another biller has its own budget.
        assert!(g
            .bills("other", "1", async { statement("1") })
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn our_own_inquiries_wait_for_the_budget_and_never_overdraw_it() {
        let g = guard(2, 60_000);
        // The budget of 2 this second is spent by channels' inquiries.
        for i in 0..2 {
            assert!(g
                .bills("b", &i.to_string(), async { statement("x") })
                .await
                .is_ok());
        }
        // Ours waits for the next second's budget rather than overdrawing.
        let started = std::time::Instant::now();
        let second = chrono::Utc::now().timestamp();
        assert!(g.spend_waiting("b", Duration::from_secs(3)).await);
        assert!(
            chrono::Utc::now().timestamp() > second,
            "spent in the same second"
        );
        assert!(started.elapsed() < Duration::from_millis(2_100));
        // Given no time to wait: at most what is left of this second's
        // budget (one of 2 is spent already), the rest refused at once.
        let mut ok = 0;
        for _ in 0..5 {
            if g.spend_waiting("b", Duration::ZERO).await {
                ok += 1;
            }
        }
        assert!(ok <= 2, "more than the budget of 2 in a second: {ok}");
    }
}
