//! Per-channel request rate limits (token buckets, per process), sized
//! from each channel's `rate_limit_rps`.

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
    /// Takes a token from `channel`'s bucket, or says it is over its limit.
    pub fn check(&self, channel: &Channel) -> Result<(), RateLimited> {
        let rps = channel.rate_limit_rps.max(1);
        let limiter = {
            let mut map = self.map.lock().expect("rate limits");
            let entry = map
                .entry(channel.id.to_string())
                .or_insert_with(|| (0, Arc::new(limiter(rps))));
            if entry.0 != rps {
                *entry = (rps, Arc::new(limiter(rps)));
            }
            entry.1.clone()
        };
        limiter.check().map_err(|_| RateLimited {
            channel: channel.id.to_string(),
            rps,
        })
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
            limits.check(&c).unwrap();
        }
        let refused = limits.check(&c).unwrap_err();
        assert_eq!(refused.rps, 3);
        assert_eq!(refused.channel, "app-one");
    }

    #[test]
    fn a_raised_limit_takes_effect_at_once() {
        let limits = RateLimits::default();
        limits.check(&channel(1)).unwrap();
        assert!(limits.check(&channel(1)).is_err());
        // A new limit is a new bucket.
        for _ in 0..5 {
            limits.check(&channel(5)).unwrap();
        }
    }
}
