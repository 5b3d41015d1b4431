//! Per-channel request rate limits: token buckets sized from this
//! process's share (`crate::fleet`) of each channel's `rate_limit_rps`, so
//! that a channel spreading its requests over the fleet gets no more than
//! its limit.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::domain::channel::Channel;

/// A channel over its limit: it may try again in a second.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("channel {channel} is limited to {rps} requests per second")]
pub struct RateLimited {
    pub channel: String,
    pub rps: u32,
}

/// One token bucket per channel, rebuilt when its limit changes.
#[derive(Default)]
pub struct RateLimits {
    map: Mutex<HashMap<String, (u32, Arc<DefaultDirectRateLimiter>)>>,
}

impl RateLimits {
    /// Takes a token from `channel`'s bucket of `share` a second (this
    /// process's share of its limit), or says it is over its limit.
    pub fn check(&self, channel: &Channel, share: u32) -> Result<(), RateLimited> {
        let rps = channel.rate_limit_rps.max(1);
        let over = || RateLimited {
            channel: channel.id.to_string(),
            rps,
        };
        if share == 0 {
            return Err(over());
        }
        let limiter = {
            let mut map = self.map.lock().expect("rate limits");
            let entry = map
                .entry(channel.id.to_string())
                .or_insert_with(|| (share, Arc::new(limiter(share))));
            if entry.0 != share {
                *entry = (share, Arc::new(limiter(share)));
            }
            entry.1.clone()
        };
        limiter.check().map_err(|_| over())
    }
}

fn limiter(rps: u32) -> DefaultDirectRateLimiter {
    per_second(NonZeroU32::new(rps).expect("rps >= 1"))
}

/// A token bucket of `n` a second, in bursts of at most `n`: the shape of
/// every rate limit here (channels, bill inquiries, routes).
pub fn per_second(n: NonZeroU32) -> DefaultDirectRateLimiter {
    RateLimiter::direct(Quota::per_second(n).allow_burst(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::channel::ChannelStatus;
    use crate::domain::ids::ChannelId;

    fn channel(rps: u32) -> Channel {
        Channel {
            id: ChannelId::parse("app-one").unwrap(),
            name: "App one".into(),
            callback_url: "https://app.example/cb".into(),
            status: ChannelStatus::Active,
            rate_limit_rps: rps,
        }
    }

    #[test]
    fn a_channel_gets_its_burst_then_is_refused() {
        let limits = RateLimits::default();
        let c = channel(3);
        for _ in 0..3 {
            limits.check(&c, c.rate_limit_rps).unwrap();
        }
        let refused = limits.check(&c, c.rate_limit_rps).unwrap_err();
        assert_eq!(refused.rps, 3);
        assert_eq!(refused.channel, "app-one");
    }

    #[test]
    fn a_raised_limit_takes_effect_at_once() {
        let limits = RateLimits::default();
        limits.check(&channel(1), 1).unwrap();
        assert!(limits.check(&channel(1), 1).is_err());
        // A new limit (or share) is a new bucket.
        for _ in 0..5 {
            limits.check(&channel(5), 5).unwrap();
        }
    }

    #[test]
    fn a_process_with_no_share_refuses() {
        let limits = RateLimits::default();
        assert!(limits.check(&channel(2), 0).is_err());
        // Two of three processes share a limit of 2: one each.
        limits.check(&channel(2), 1).unwrap();
        assert!(limits.check(&channel(2), 1).is_err());
    }
}
