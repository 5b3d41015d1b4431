//! billclear: a utility bill payment clearing service.
//!
//! Layout: `domain` is pure (money, billers, payments, ledger rules);
//! `store` keeps it (PostgreSQL behind traits); `intake` turns accepted
//! requests into durable payments in batches; `api` is the signed HTTP edge;
//! `cli` and `config` run it; `bench` measures it.

pub mod api;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod domain;
pub mod intake;
pub mod store;
pub mod telemetry;
