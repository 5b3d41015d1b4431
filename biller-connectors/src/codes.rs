//! Result codes of a counterpart mapped into what to do next, as data: each
//! connector keeps one table, and `classify` is the only place that reads it.

use crate::{ConnectorError, NextStep, Refusal};

/// What a result code means for the request that got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The request succeeded (read the rest of the answer).
    Success,
    /// The biller has no record of the payment asked about (status inquiry).
    NotFound,
    /// A failure, and what to do next.
    Failure(NextStep),
}

/// One row of a connector's result-code table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeRule {
    pub code: &'static str,
    pub disposition: Disposition,
    pub meaning: &'static str,
}

/// Looks `code` up in `table`. A code the table does not know is treated as
/// outcome unknown: a counterpart that answers something we cannot read may
/// have applied the payment.
pub fn classify(table: &[CodeRule], code: &str) -> (Disposition, &'static str) {
    table
        .iter()
        .find(|r| r.code == code)
        .map(|r| (r.disposition, r.meaning))
        .unwrap_or((
            Disposition::Failure(NextStep::Unknown),
            "result code not in this connector's table",
        ))
}

/// The error for a result code that is not a success (nor, for a status
/// inquiry, "not found"): a refusal when the table says so, retry when it
/// says so; otherwise (a code whose outcome is unknown) `Unknown` for an
/// operation that moves money and `Retry` for one that moves none.
///
/// `context` starts the reason ("payment", "status inquiry via hub");
/// `message` is the counterpart's own text, when its protocol carries one
/// (without it, the table's meaning stands in).
pub fn failure(
    table: &[CodeRule],
    code: &str,
    message: Option<&str>,
    moves_money: bool,
    context: &str,
) -> ConnectorError {
    let (disposition, meaning) = classify(table, code);
    let mut reason = format!("{context}: code {code} ({meaning})");
    if let Some(m) = message {
        reason.push_str(": ");
        reason.push_str(m);
    }
    match disposition {
        Disposition::Failure(NextStep::Fail) => ConnectorError::Fail(Refusal {
            code: code.to_string(),
            message: message.unwrap_or(meaning).to_string(),
        }),
        Disposition::Failure(NextStep::Retry) => ConnectorError::retry(reason),
        Disposition::Success | Disposition::NotFound | Disposition::Failure(NextStep::Unknown) => {
            if moves_money {
                ConnectorError::unknown(reason)
            } else {
                ConnectorError::retry(reason)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[CodeRule] = &[
        CodeRule {
            code: "00",
            disposition: Disposition::Success,
            meaning: "ok",
        },
        CodeRule {
            code: "51",
            disposition: Disposition::Failure(NextStep::Fail),
            meaning: "refused",
        },
    ];

    #[test]
    fn known_codes_map_and_unknown_codes_are_unknown() {
        assert_eq!(classify(TABLE, "00").0, Disposition::Success);
        assert_eq!(
            classify(TABLE, "51").0,
            Disposition::Failure(NextStep::Fail)
        );
        assert_eq!(
            classify(TABLE, "zz").0,
            Disposition::Failure(NextStep::Unknown)
        );
    }
}
