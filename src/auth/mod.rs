//! Authentication: the channel request signature scheme, secrets at rest,
//! and finance staff bearer tokens.

pub mod channel_keys;
pub mod rate_limits;
pub mod sealed_keys;
pub mod secrets;
pub mod signing;
pub mod staff_token;
