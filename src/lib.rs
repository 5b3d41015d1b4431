//! billclear: a utility bill payment clearing service.
//!
//! Layout: `domain` is pure (money, billers, payments, ledger rules);
//! `store` keeps it (PostgreSQL behind traits); `intake` turns accepted
//! requests into durable payments in batches; `api` is the signed HTTP edge; `dispatch` delivers payments to billers
//! through `biller-connectors` and calls channels back;
//! `cli` and `config` run it; `bench` measures it.

pub mod api;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod dispatch;
pub mod domain;
pub mod inquiry;
pub mod intake;
pub mod receiver;
pub mod reconcile;
pub mod settlement;
pub mod store;
pub mod telemetry;
