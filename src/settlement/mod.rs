//! Settlement: closing business dates into batches, carrying them over
//! RabbitMQ, and writing the files billers and the bank receive.
//!
//! - `broker`: the RabbitMQ topology, the outbox relay (publisher confirms)
//!   and the settlement consumer (manual acks, idempotent).
//! - `files`: the biller's settlement file (CSV or fixed-width), the pain.001
//!   credit transfer and the manifest, written atomically.

pub mod broker;
pub mod close;
pub mod files;
pub mod render;
pub mod service;
pub mod statement;
