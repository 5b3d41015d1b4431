//! Daily reconciliation (issue 6, in progress): the inputs read so far.
//!
//! - `camt053`: our settlement account's bank statement (camt.053.001.02
//!   and .08), refused whole when malformed.
//! - `formats`: the counterparties' daily files (water CSV, power XML, gas
//!   fixed-width, hub statement, co-op acknowledgement) read into
//!   [`crate::domain::recon::TheirRecord`]s, refused whole when malformed.

pub mod camt053;
pub mod formats;
pub mod import;
pub mod run;
pub mod spill;
