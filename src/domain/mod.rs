//! The pure domain: money, identifiers, billers, payments and ledger rules.
//! Nothing here knows about SQL, HTTP or AMQP.

pub mod backlog;
pub mod biller;
pub mod channel;
pub mod check_digit;
pub mod complaint;
pub mod cutoff;
pub mod dispatch;
pub mod fleet;
pub mod ids;
pub mod ledger;
pub mod money;
pub mod payment;
pub mod recon;
pub mod routing;
pub mod settlement;
pub mod staff;
pub mod text;
