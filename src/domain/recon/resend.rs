//! The `resend` resolution (pure): when a payment may be sent once more
//! through another route, and what the answer means.
//!
//! Dispatch never re-sends a payment whose outcome it does not know. A
//! `resend` is the one exception, and only for a payment PROVEN never to
//! have arrived:
//!
//! * the break is `missing-at-biller`: we hold it delivered (CONFIRMED or
//!   SETTLED) and the biller's records do not have it;
//! * the files of the route it went through are imported for the break's
//!   date AND the day after (a payment credited after midnight is in the
//!   next day's file), and the run that found the break read them all (a
//!   file imported after it proves nothing until the date is run again);
//! * at approval, asked by our reference, the new route has no record of it
//!   (nobody delivered it there already) and the old route has none either,
//!   or cannot be reached and is no longer the biller's preferred route (a
//!   hub that cut us off and that operators switched away from: its files
//!   are the proof). A route that merely failed to answer proves nothing;
//! * the new route is another online route of the same biller;
//! * no earlier re-send of it may have been applied.
//!
//! The re-send is recorded before the call; its answer decides the break:
//! credited closes it, a refusal or "not applied" gives it back to the
//! staff (nothing reached anyone), and an unknown outcome is never
//! repeated: the new route's files decide it.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::breaks::{BreakStatus, ResolutionKind};
use super::matching::Category;
use crate::domain::payment::PaymentStatus;

/// What is known of a payment when a re-send is proposed or approved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResendCase {
    pub category: Category,
    pub business_date: NaiveDate,
    pub payment_status: PaymentStatus,
    /// The route it went through first (None: never sent).
    pub original: Option<String>,
    /// The route to send through.
    pub target: String,
    /// The biller's routes in the order they are tried (the preferred one
    /// first).
    pub biller_routes: Vec<String>,
    /// Whether `target` is an online connector of this process (a file
    /// route cannot take a single payment).
    pub target_online: bool,
    /// Whether the original route's files of the date and of the day after
    /// are imported.
    pub original_files: [bool; 2],
    /// Whether the run that last found the break read every one of them
    /// (false also when no run finds it any more).
    pub read_by_finding_run: bool,
    /// An earlier re-send of the payment that may have been applied:
    /// (connector, outcome or "in flight").
    pub earlier: Option<(String, String)>,
}

/// Why a re-send is refused; the text says what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ResendRefused(pub String);

/// The checks that need no call to anyone (made at proposal and again at
/// approval).
pub fn check_case(c: &ResendCase) -> Result<(), ResendRefused> {
    let refuse = |s: String| Err(ResendRefused(s));
    if c.category != Category::MissingAtBiller {
        return refuse(format!(
            "resend is for a missing-at-biller break (a payment proven never to have arrived); this one is {}",
            c.category.as_str()
        ));
    }
    if !matches!(
        c.payment_status,
        PaymentStatus::Confirmed | PaymentStatus::Settled
    ) {
        return refuse(format!(
            "the payment is {}: only a payment our books hold as delivered (CONFIRMED or SETTLED) is re-sent",
            c.payment_status.as_str()
        ));
    }
    if let Some((connector, outcome)) = &c.earlier {
        return refuse(format!(
            "the payment was re-sent through {connector} already ({outcome}); it may have arrived and is never sent again: the reconciliation of {connector}'s files decides it"
        ));
    }
    let Some(original) = &c.original else {
        return refuse("the payment was never sent: nothing to re-send".into());
    };
    if original == &c.target {
        return refuse(format!(
            "{} is the route the payment went through; a re-send goes through another route",
            c.target
        ));
    }
    if !c.biller_routes.contains(&c.target) {
        return refuse(format!(
            "{} is not a route of this biller (its routes: {})",
            c.target,
            c.biller_routes.join(", ")
        ));
    }
    if !c.target_online {
        return refuse(format!(
            "{} is not an online connector of this process: a single payment cannot be re-sent through it",
            c.target
        ));
    }
    let next = c.business_date.succ_opt().unwrap_or(c.business_date);
    let missing: Vec<String> = [c.business_date, next]
        .iter()
        .zip(c.original_files)
        .filter(|(_, have)| !have)
        .map(|(d, _)| d.to_string())
        .collect();
    if !missing.is_empty() {
        return refuse(format!(
            "absence not proven: {original}'s file(s) of {} are not imported (a payment credited after midnight is in the next day's file); import them and run the reconciliation again",
            missing.join(" and ")
        ));
    }
    if !c.read_by_finding_run {
        return refuse(format!(
            "absence not proven: the break was not found by a run that read {original}'s current files of {} and {next}; run the reconciliation of {} again",
            c.business_date, c.business_date
        ));
    }
    Ok(())
}

/// What a route answered when asked about the payment by our reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "kebab-case")]
pub enum Answer {
    /// It has no record of our reference.
    NotFound,
    /// It has the payment (credited, pending or refused): the text says how.
    Knows { what: String },
    /// It could not be asked (unreachable, cut off, not an online route).
    Unreachable { why: String },
}

/// The answers of both routes, checked: the new route must not know the
/// payment, and the old one must not know it either, or be unreachable
/// while out of service (no longer the biller's preferred route: its files
/// are then the proof). A route in service that fails to answer proves
/// nothing.
pub fn check_answers(
    original: &str,
    from_original: &Answer,
    original_in_service: bool,
    target: &str,
    from_target: &Answer,
) -> Result<(), ResendRefused> {
    match from_target {
        Answer::NotFound => {}
        Answer::Knows { what } => {
            return Err(ResendRefused(format!(
                "{target} already knows the payment ({what}): it must not be sent again; accept its record (explain) instead"
            )))
        }
        Answer::Unreachable { why } => {
            return Err(ResendRefused(format!(
                "{target} could not be asked whether it knows the payment ({why}): nothing was sent; try again when it answers"
            )))
        }
    }
    match from_original {
        Answer::NotFound => Ok(()),
        Answer::Unreachable { why } if original_in_service => Err(ResendRefused(format!(
            "{original} could not be asked ({why}) and is still the biller's preferred route: a route in service that does not answer proves nothing; try again when it answers"
        ))),
        Answer::Unreachable { .. } => Ok(()),
        Answer::Knows { what } => Err(ResendRefused(format!(
            "{original} says it has the payment ({what}) although its files do not: ask {original} for a corrected file; nothing was sent"
        ))),
    }
}

/// How the re-send ended (the `recon_resends.outcome` column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ResendOutcome {
    /// The new route credited it: the break is resolved.
    Credited { receipt: String },
    /// Refused for good by the new route: nothing arrived.
    Refused { code: String, message: String },
    /// Certainly not applied (connection refused, busy): nothing arrived,
    /// and it may be proposed again.
    NotApplied { reason: String },
    /// May have been applied: never sent again; the new route's files
    /// decide.
    Unknown { reason: String },
}

impl ResendOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            ResendOutcome::Credited { .. } => "credited",
            ResendOutcome::Refused { .. } => "refused",
            ResendOutcome::NotApplied { .. } => "not_applied",
            ResendOutcome::Unknown { .. } => "unknown",
        }
    }

    /// Whether the payment may now be at the new route (so reconciliation
    /// looks for it there, and it is never sent again).
    pub fn may_have_arrived(&self) -> bool {
        matches!(
            self,
            ResendOutcome::Credited { .. } | ResendOutcome::Unknown { .. }
        )
    }

    /// The refusal's code (the attempt's `result_code`), if refused.
    pub fn result_code(&self) -> Option<&str> {
        match self {
            ResendOutcome::Refused { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The new route's receipt (the biller's reference), if it credited the
    /// payment and gave one.
    pub fn receipt(&self) -> Option<&str> {
        match self {
            ResendOutcome::Credited { receipt } => Some(receipt.as_str()),
            _ => None,
        }
        .filter(|r| !r.is_empty())
    }

    /// Where the `resending` break goes on this answer: resolved by the
    /// re-send when credited, else back to the staff.
    pub fn break_after(&self) -> AfterResend {
        match self {
            ResendOutcome::Credited { .. } => AfterResend {
                to: ResolutionKind::Resend.closes_as(),
                resolution: Some(ResolutionKind::Resend.as_str()),
                action: "approve",
            },
            ResendOutcome::Unknown { .. } => AfterResend {
                to: BreakStatus::Investigating,
                resolution: None,
                action: "resend-unknown",
            },
            _ => AfterResend {
                to: BreakStatus::Investigating,
                resolution: None,
                action: "resend-failed",
            },
        }
    }

    /// What the staff are told, in the break's trail.
    pub fn describe(&self, target: &str) -> String {
        match self {
            ResendOutcome::Credited { receipt } => {
                format!("re-sent through {target} and credited there, receipt {receipt}")
            }
            ResendOutcome::Refused { code, message } => format!(
                "{target} refused the re-send (code {code}): {message}; nothing arrived: propose reverse (refund the payer) or write-off"
            ),
            ResendOutcome::NotApplied { reason } => format!(
                "{target} did not take the re-send ({reason}); nothing arrived: it may be proposed again"
            ),
            ResendOutcome::Unknown { reason } => format!(
                "the re-send through {target} has an unknown outcome ({reason}); it is never sent again: {target}'s files of the re-send's date decide it"
            ),
        }
    }
}

/// A `resending` break after the re-send's answer: its new status, the
/// resolution recorded, and the action on its trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterResend {
    pub to: BreakStatus,
    pub resolution: Option<&'static str>,
    pub action: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case() -> ResendCase {
        ResendCase {
            category: Category::MissingAtBiller,
            business_date: NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
            payment_status: PaymentStatus::Confirmed,
            original: Some("hub".into()),
            target: "water-direct".into(),
            biller_routes: vec!["water-direct".into(), "hub".into()],
            target_online: true,
            original_files: [true, true],
            read_by_finding_run: true,
            earlier: None,
        }
    }

    fn refused(c: &ResendCase) -> String {
        check_case(c).unwrap_err().0
    }

    #[test]
    fn a_proven_absence_may_be_re_sent() {
        assert_eq!(check_case(&case()), Ok(()));
        let mut c = case();
        c.payment_status = PaymentStatus::Settled;
        assert_eq!(check_case(&c), Ok(()));
    }

    #[test]
    fn only_a_missing_at_biller_break() {
        for category in Category::ALL {
            let mut c = case();
            c.category = category;
            assert_eq!(
                check_case(&c).is_ok(),
                category == Category::MissingAtBiller,
                "{category:?}"
            );
        }
    }

    #[test]
    fn only_a_payment_held_as_delivered() {
        for status in PaymentStatus::ALL {
            let mut c = case();
            c.payment_status = status;
            let ok = matches!(status, PaymentStatus::Confirmed | PaymentStatus::Settled);
            assert_eq!(check_case(&c).is_ok(), ok, "{status:?}");
        }
    }

    #[test]
    fn never_through_the_same_route_nor_a_foreign_one() {
        let mut c = case();
        c.target = "hub".into();
        assert!(refused(&c).contains("another route"));
        let mut c = case();
        c.target = "power-direct".into();
        assert!(refused(&c).contains("not a route of this biller"));
        let mut c = case();
        c.target_online = false;
        assert!(refused(&c).contains("not an online connector"));
        let mut c = case();
        c.original = None;
        assert!(refused(&c).contains("never sent"));
    }

    #[test]
    fn absence_needs_the_files_of_the_date_and_the_day_after() {
        let mut c = case();
        c.original_files = [true, false];
        let why = refused(&c);
        assert!(
            why.contains("2026-11-30") && !why.contains("2026-11-29"),
            "{why}"
        );
        c.original_files = [false, false];
        let why = refused(&c);
        assert!(why.contains("2026-11-29 and 2026-11-30"), "{why}");
        let mut c = case();
        c.read_by_finding_run = false;
        let why = refused(&c);
        assert!(
            why.contains("run the reconciliation of 2026-11-29 again"),
            "{why}"
        );
    }

    #[test]
    fn never_twice_once_it_may_have_arrived() {
        let mut c = case();
        c.earlier = Some(("water-direct".into(), "unknown".into()));
        assert!(refused(&c).contains("never sent again"));
    }

    #[test]
    fn the_new_route_must_not_know_it_and_the_old_one_must_not_have_it() {
        let nf = Answer::NotFound;
        let knows = Answer::Knows {
            what: "credited".into(),
        };
        let down = Answer::Unreachable {
            why: "cut off".into(),
        };
        let check = |o: &Answer, in_service: bool, t: &Answer| {
            check_answers("hub", o, in_service, "water-direct", t).map_err(|e| e.0)
        };
        assert_eq!(check(&nf, true, &nf), Ok(()));
        assert_eq!(check(&down, false, &nf), Ok(()));
        assert!(check(&down, true, &nf)
            .unwrap_err()
            .contains("still the biller's preferred route"));
        assert!(check(&nf, false, &knows)
            .unwrap_err()
            .contains("already knows"));
        assert!(check(&nf, false, &down)
            .unwrap_err()
            .contains("could not be asked"));
        assert!(check(&knows, false, &nf)
            .unwrap_err()
            .contains("hub says it has the payment"));
    }

    #[test]
    fn only_a_credit_or_an_unknown_may_have_arrived() {
        let credited = ResendOutcome::Credited {
            receipt: "R1".into(),
        };
        let unknown = ResendOutcome::Unknown {
            reason: "timeout".into(),
        };
        let refused = ResendOutcome::Refused {
            code: "E1".into(),
            message: "closed".into(),
        };
        let not_applied = ResendOutcome::NotApplied {
            reason: "busy".into(),
        };
        assert!(credited.may_have_arrived() && unknown.may_have_arrived());
        assert!(!refused.may_have_arrived() && !not_applied.may_have_arrived());
        assert!(refused.describe("water-direct").contains("reverse"));
        assert!(unknown
            .describe("water-direct")
            .contains("never sent again"));
    }

    #[test]
    fn the_answer_decides_where_the_break_goes() {
        let credited = ResendOutcome::Credited {
            receipt: "R-1".into(),
        };
        assert_eq!(
            credited.break_after(),
            AfterResend {
                to: BreakStatus::Resolved,
                resolution: Some("resend"),
                action: "approve"
            }
        );
        assert_eq!(
            (credited.receipt(), credited.result_code()),
            (Some("R-1"), None)
        );
        let no_receipt = ResendOutcome::Credited {
            receipt: String::new(),
        };
        assert_eq!(no_receipt.receipt(), None);
        let refused = ResendOutcome::Refused {
            code: "E42".into(),
            message: "closed".into(),
        };
        let not_applied = ResendOutcome::NotApplied {
            reason: "busy".into(),
        };
        let unknown = ResendOutcome::Unknown {
            reason: "timeout".into(),
        };
        assert_eq!(
            (refused.receipt(), refused.result_code()),
            (None, Some("E42"))
        );
        for (o, action) in [
            (&refused, "resend-failed"),
            (&not_applied, "resend-failed"),
            (&unknown, "resend-unknown"),
        ] {
            assert_eq!(
                o.break_after(),
                AfterResend {
                    to: BreakStatus::Investigating,
                    resolution: None,
                    action
                },
                "{o:?}"
            );
        }
        assert_eq!((unknown.receipt(), unknown.result_code()), (None, None));
    }
}
