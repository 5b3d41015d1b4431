//! Daily reconciliation (issue 6, in progress): the inputs read so far.
//!
//! - `camt053`: our settlement account's bank statement (camt.053.001.02
//!   and .08), refused whole when malformed.
//! - `spill`: bounded-memory external sort (records sorted by our
//!   reference for the sorted merge, whatever the day's size).
//! - `report`: a run's reports, CSV and XLSX, byte-for-byte deterministic.

pub mod camt053;
pub mod report;
pub mod spill;
