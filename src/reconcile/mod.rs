//! Daily reconciliation (issue 6, in progress): the inputs read so far.
//!
//! - `camt053`: our settlement account's bank statement (camt.053.001.02
//!   and .08), refused whole when malformed.

pub mod camt053;
