//! Daily reconciliation: the edges around the pure rules of
//! `crate::domain::recon`.
//!
//! - `bankfile`: our bank's statements and notifications (camt.053,
//!   camt.054, MT940) read into one model, refused whole when malformed.
//! - `formats`: the counterparties' daily files (water CSV, power XML, gas
//!   fixed-width, hub statement, co-op acknowledgement) read into
//!   [`crate::domain::recon::TheirRecord`]s, refused whole when malformed
//!   (the readers are the connectors crate's, beside each family's
//!   writer; `formats` gives them billclear's money rules).
//! - `import`: a file read whole and checked, then kept verbatim under its
//!   SHA-256 and recorded once.
//! - `spill`: bounded-memory external sort (records sorted by our
//!   reference for the sorted merge, whatever the day's size).
//! - `run`: one biller and date: stored files against our payments by a
//!   sorted merge; breaks, automatic decisions, summary.
//! - `report`: a run's reports, CSV and XLSX, byte-for-byte deterministic.
//! - `day`: one business date, every biller and the bank, and its report.
//! - `console`: a run as plain-text tables for a terminal.

pub mod bankfile;
pub mod console;
pub mod day;
pub mod formats;
pub mod import;
pub mod report;
pub mod resend;
pub mod run;
pub mod spill;
