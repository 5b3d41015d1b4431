//! billclear: a utility bill payment clearing service.
//!
//! Layout, from the core outwards (each module uses only those before it
//! in this list, never one after it):
//!
//! - `domain` is pure: money, billers, payments, ledger rules, routing,
//!   settlement math, reconciliation matching.
//! - `config` reads the configuration and the billers file; `store` keeps
//!   the domain (PostgreSQL behind traits); `auth` signs and seals, and
//!   checks the channels' keys and rate limits.
//! - `intake` turns accepted requests into durable payments in batches;
//!   `inquiry` guards bill inquiries; `dispatch` delivers payments to
//!   billers through `biller-connectors` and calls channels back;
//!   `settlement` closes days into batches and files over RabbitMQ;
//!   `reconcile` matches the counterparties' and the bank's files.
//! - `state` is what one process shares; `api` is the signed HTTP edge
//!   over it, `console` the finance staff's web pages beside it; `startup` puts a process together (state, API, workers,
//!   settlement, pruning) once for every caller.
//! - `metrics` (Prometheus) and `liveness` (for `/readyz`) are read by
//!   the API and fed by the parts above.
//! - `cli` runs it; `demo` shows it end to end; `bench` measures it
//!   (both start through `startup`; only `cli` uses them).

pub mod api;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod client;
pub mod complaints;
pub mod config;
pub mod console;
pub mod demo;
pub mod dispatch;
pub mod domain;
pub mod fleet;
pub mod inquiry;
pub mod intake;
pub mod liveness;
pub mod metrics;
pub mod receiver;
pub mod reconcile;
pub mod settlement;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
