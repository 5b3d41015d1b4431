//! Channel authentication: the request signature scheme and secrets at rest.

pub mod secrets;
pub mod signing;
