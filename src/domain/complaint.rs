//! Complaints a payment app raises about one of its payments (pure): their
//! types, the statuses they move through, which types make sense in which
//! state of the payment, what the evidence gathered at registration decides
//! on its own, and the turn-around time in the biller's business days.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Days, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};

use super::payment::PaymentStatus;

/// What the customer says went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ComplaintKind {
    /// "I paid and the biller says I didn't."
    NotCredited,
    CreditedToWrongAccount,
    PaidTwice,
    AmountDiffers,
    RefundNotReceived,
}

impl ComplaintKind {
    pub const ALL: [ComplaintKind; 5] = [
        ComplaintKind::NotCredited,
        ComplaintKind::CreditedToWrongAccount,
        ComplaintKind::PaidTwice,
        ComplaintKind::AmountDiffers,
        ComplaintKind::RefundNotReceived,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ComplaintKind::NotCredited => "not_credited",
            ComplaintKind::CreditedToWrongAccount => "credited_to_wrong_account",
            ComplaintKind::PaidTwice => "paid_twice",
            ComplaintKind::AmountDiffers => "amount_differs",
            ComplaintKind::RefundNotReceived => "refund_not_received",
        }
    }

    pub fn parse(s: &str) -> Option<ComplaintKind> {
        ComplaintKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Business days of the biller's calendar to resolve it in, unless
    /// configured otherwise.
    pub fn default_turnaround_days(&self) -> u32 {
        match self {
            ComplaintKind::NotCredited => 3,
            ComplaintKind::PaidTwice => 5,
            ComplaintKind::AmountDiffers => 5,
            ComplaintKind::RefundNotReceived => 5,
            ComplaintKind::CreditedToWrongAccount => 7,
        }
    }
}

/// Where a complaint stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ComplaintStatus {
    Open,
    Investigating,
    /// Waiting for the biller (unreachable, or asked and not answered yet).
    PendingBiller,
    Resolved,
    Rejected,
    /// Its turn-around time ran out before it was resolved.
    Escalated,
}

use ComplaintStatus::*;

/// Every allowed change; the database holds the same table.
pub const TRANSITIONS: &[(ComplaintStatus, ComplaintStatus)] = &[
    (Open, Investigating),
    (Open, PendingBiller),
    (Open, Resolved),
    (Open, Rejected),
    (Open, Escalated),
    (Investigating, PendingBiller),
    (Investigating, Resolved),
    (Investigating, Rejected),
    (Investigating, Escalated),
    (PendingBiller, Investigating),
    (PendingBiller, Resolved),
    (PendingBiller, Rejected),
    (PendingBiller, Escalated),
    (Escalated, Resolved),
    (Escalated, Rejected),
];

impl ComplaintStatus {
    pub const ALL: [ComplaintStatus; 6] = [
        Open,
        Investigating,
        PendingBiller,
        Resolved,
        Rejected,
        Escalated,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Open => "OPEN",
            Investigating => "INVESTIGATING",
            PendingBiller => "PENDING_BILLER",
            Resolved => "RESOLVED",
            Rejected => "REJECTED",
            Escalated => "ESCALATED",
        }
    }

    pub fn parse(s: &str) -> Option<ComplaintStatus> {
        ComplaintStatus::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Not yet answered for good: another complaint of the same type on
    /// the same payment is refused while one is open.
    pub fn is_open(&self) -> bool {
        !matches!(self, Resolved | Rejected)
    }

    pub fn can_move_to(&self, to: ComplaintStatus) -> bool {
        TRANSITIONS.contains(&(*self, to))
    }
}

/// The payment a complaint is about, as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentFacts {
    pub status: PaymentStatus,
    /// Given back to the app already (a refund).
    pub refunded: bool,
}

/// Why a type of complaint makes no sense for the payment as it stands
/// (422), in words the app can show.
pub fn admissible(kind: ComplaintKind, p: PaymentFacts) -> Result<(), &'static str> {
    use PaymentStatus as S;
    let credited = matches!(p.status, S::Confirmed | S::Settled | S::Returned);
    match kind {
        ComplaintKind::NotCredited => Ok(()),
        ComplaintKind::CreditedToWrongAccount | ComplaintKind::AmountDiffers if !credited => {
            Err("the biller has not credited this payment: raise not_credited if the customer paid")
        }
        ComplaintKind::CreditedToWrongAccount | ComplaintKind::AmountDiffers => Ok(()),
        ComplaintKind::PaidTwice if p.status == S::Rejected => {
            Err("this payment was rejected and nothing was taken for it")
        }
        ComplaintKind::PaidTwice => Ok(()),
        ComplaintKind::RefundNotReceived if !p.refunded && p.status != S::Returned => {
            Err("no refund was made for this payment")
        }
        ComplaintKind::RefundNotReceived => Ok(()),
    }
}

/// What the biller answered when asked about the payment by our
/// reference at registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillerAnswer {
    Credited {
        biller_reference: String,
        credited_at: DateTime<Utc>,
    },
    /// The biller does not know the payment.
    NotFound,
    /// Unreachable, or its inquiry budget spent: ask again later.
    Unavailable,
}

/// What was gathered at registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub payment: PaymentFacts,
    pub biller: BillerAnswer,
    /// The biller's (or the hub's) records credit this payment more than
    /// once (a reconciliation break "credited twice").
    pub credited_twice: bool,
}

/// How a complaint ended well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The biller has the credit: its reference and time.
    CreditConfirmed {
        biller_reference: String,
        credited_at: DateTime<Utc>,
    },
    /// The payment was rejected and its money never taken.
    NothingTaken,
    /// The payment's amount was given back to the app.
    Refunded,
}

/// What the evidence decides on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Resolve(Outcome),
    /// Give the amount back, by rule (no second person needed): the money
    /// provably did not stay with the biller once.
    Refund {
        reason: &'static str,
    },
    /// Ask the biller again when it can be asked (PENDING_BILLER).
    WaitForBiller,
    /// For finance staff (INVESTIGATING), with what they should look at.
    ToStaff {
        reason: &'static str,
    },
}

/// The machine's part of an investigation.
pub fn decide(kind: ComplaintKind, e: &Evidence) -> Decision {
    use PaymentStatus as S;
    match kind {
        ComplaintKind::NotCredited => match (&e.biller, e.payment.status) {
            (_, S::Rejected) => Decision::Resolve(Outcome::NothingTaken),
            (
                BillerAnswer::Credited {
                    biller_reference,
                    credited_at,
                },
                _,
            ) => Decision::Resolve(Outcome::CreditConfirmed {
                biller_reference: biller_reference.clone(),
                credited_at: *credited_at,
            }),
            (BillerAnswer::Unavailable, _) => Decision::WaitForBiller,
            (BillerAnswer::NotFound, S::Confirmed | S::Settled) => Decision::ToStaff {
                reason:
                    "we hold the biller's confirmation but the biller does not know the payment",
            },
            (BillerAnswer::NotFound, S::Returned) => Decision::ToStaff {
                reason: "the biller returned this payment: its money comes back in a settlement",
            },
            (BillerAnswer::NotFound, _) => Decision::ToStaff {
                reason: "the payment is still being delivered and the biller does not know it yet",
            },
        },
        ComplaintKind::PaidTwice if e.credited_twice && !e.payment.refunded => Decision::Refund {
            reason: "the biller credited this payment twice",
        },
        ComplaintKind::PaidTwice => Decision::ToStaff {
            reason: "look for another payment of the same bill by the same customer",
        },
        ComplaintKind::CreditedToWrongAccount => Decision::ToStaff {
            reason: "ask the biller to move the credit to the right account",
        },
        ComplaintKind::AmountDiffers => Decision::ToStaff {
            reason: "compare the amount we sent with the biller's credit",
        },
        ComplaintKind::RefundNotReceived => Decision::ToStaff {
            reason: "the refund is recorded: check the app's statement that listed it",
        },
    }
}

/// A biller's working days: Monday to Friday in its time zone, less its
/// holidays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    pub offset: FixedOffset,
    pub holidays: BTreeSet<NaiveDate>,
}

impl Calendar {
    pub fn is_business_day(&self, d: NaiveDate) -> bool {
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !self.holidays.contains(&d)
    }

    /// When a complaint registered `at` is due: the end (midnight, local
    /// time) of the `days`-th business day after the day it was registered
    /// on. With 0 days: the end of the first business day from that day on.
    pub fn due(&self, at: DateTime<Utc>, days: u32) -> DateTime<Utc> {
        let mut d = at.with_timezone(&self.offset).date_naive();
        let mut left = days;
        if left == 0 {
            while !self.is_business_day(d) {
                d = d + Days::new(1);
            }
        }
        while left > 0 {
            d = d + Days::new(1);
            if self.is_business_day(d) {
                left -= 1;
            }
        }
        let end = (d + Days::new(1)).and_time(NaiveTime::MIN);
        self.offset
            .from_local_datetime(&end)
            .single()
            .expect("a fixed offset has no gaps")
            .with_timezone(&Utc)
    }

    /// Business days from the day of `from` to the day of `to` (local):
    /// 0 on the same day; a report's resolution time.
    pub fn business_days_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> u32 {
        let mut d = from.with_timezone(&self.offset).date_naive();
        let end = to.with_timezone(&self.offset).date_naive();
        let mut n = 0;
        while d < end {
            d = d + Days::new(1);
            if self.is_business_day(d) {
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PaymentStatus as S;

    fn facts(status: PaymentStatus, refunded: bool) -> PaymentFacts {
        PaymentFacts { status, refunded }
    }

    #[test]
    fn names_round_trip() {
        for k in ComplaintKind::ALL {
            assert_eq!(ComplaintKind::parse(k.as_str()), Some(k));
        }
        for s in ComplaintStatus::ALL {
            assert_eq!(ComplaintStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ComplaintKind::parse("NOT_CREDITED"), None);
    }

    #[test]
    fn final_statuses_go_nowhere_and_escalation_still_ends() {
        for to in ComplaintStatus::ALL {
            assert!(!Resolved.can_move_to(to));
            assert!(!Rejected.can_move_to(to));
        }
        assert!(Escalated.can_move_to(Resolved));
        assert!(Escalated.is_open());
        assert!(!Resolved.is_open());
        assert!(!Investigating.can_move_to(Open));
    }

    #[test]
    fn a_type_must_make_sense_for_the_payment() {
        // refund_not_received on a confirmed payment with no refund.
        assert_eq!(
            admissible(ComplaintKind::RefundNotReceived, facts(S::Confirmed, false)),
            Err("no refund was made for this payment")
        );
        assert!(admissible(ComplaintKind::RefundNotReceived, facts(S::Confirmed, true)).is_ok());
        assert!(admissible(ComplaintKind::RefundNotReceived, facts(S::Returned, false)).is_ok());
        // Nothing credited yet: not a wrong account or amount.
        for s in [S::Received, S::Submitted, S::Unknown, S::Rejected] {
            assert!(admissible(ComplaintKind::AmountDiffers, facts(s, false)).is_err());
            assert!(admissible(ComplaintKind::CreditedToWrongAccount, facts(s, false)).is_err());
            assert!(admissible(ComplaintKind::NotCredited, facts(s, false)).is_ok());
        }
        assert!(admissible(ComplaintKind::PaidTwice, facts(S::Rejected, false)).is_err());
        assert!(admissible(ComplaintKind::PaidTwice, facts(S::Settled, false)).is_ok());
    }

    #[test]
    fn the_evidence_resolves_what_it_can() {
        let at = Utc.with_ymd_and_hms(2026, 12, 7, 3, 0, 0).unwrap();
        let credited = BillerAnswer::Credited {
            biller_reference: "W-1".into(),
            credited_at: at,
        };
        let ev = |status, biller: &BillerAnswer, twice| Evidence {
            payment: facts(status, false),
            biller: biller.clone(),
            credited_twice: twice,
        };
        assert_eq!(
            decide(
                ComplaintKind::NotCredited,
                &ev(S::Confirmed, &credited, false)
            ),
            Decision::Resolve(Outcome::CreditConfirmed {
                biller_reference: "W-1".into(),
                credited_at: at
            })
        );
        assert_eq!(
            decide(
                ComplaintKind::NotCredited,
                &ev(S::Rejected, &BillerAnswer::NotFound, false)
            ),
            Decision::Resolve(Outcome::NothingTaken)
        );
        assert_eq!(
            decide(
                ComplaintKind::NotCredited,
                &ev(S::Confirmed, &BillerAnswer::Unavailable, false)
            ),
            Decision::WaitForBiller
        );
        assert!(matches!(
            decide(
                ComplaintKind::NotCredited,
                &ev(S::Confirmed, &BillerAnswer::NotFound, false)
            ),
            Decision::ToStaff { .. }
        ));
        assert!(matches!(
            decide(ComplaintKind::PaidTwice, &ev(S::Settled, &credited, true)),
            Decision::Refund { .. }
        ));
        // Refunded already: never a second refund by rule.
        let refunded = Evidence {
            payment: facts(S::Settled, true),
            biller: credited.clone(),
            credited_twice: true,
        };
        assert!(matches!(
            decide(ComplaintKind::PaidTwice, &refunded),
            Decision::ToStaff { .. }
        ));
        assert!(matches!(
            decide(ComplaintKind::PaidTwice, &ev(S::Settled, &credited, false)),
            Decision::ToStaff { .. }
        ));
    }

    fn shanghai(holidays: &[(i32, u32, u32)]) -> Calendar {
        Calendar {
            offset: FixedOffset::east_opt(8 * 3600).unwrap(),
            holidays: holidays
                .iter()
                .map(|(y, m, d)| NaiveDate::from_ymd_opt(*y, *m, *d).unwrap())
                .collect(),
        }
    }

    #[test]
    fn turnaround_counts_business_days_of_the_billers_calendar() {
        let cal = shanghai(&[(2026, 12, 9)]);
        // Friday 2026-12-04 22:00 in Shanghai (14:00 UTC), 3 business days:
        // Mon 7, Tue 8, (Wed 9 a holiday), Thu 10 → due at the end of Thu.
        let fri = Utc.with_ymd_and_hms(2026, 12, 4, 14, 0, 0).unwrap();
        assert_eq!(
            cal.due(fri, 3),
            Utc.with_ymd_and_hms(2026, 12, 10, 16, 0, 0).unwrap()
        );
        // Saturday 01:00 Shanghai is still Friday in UTC: local days count.
        let sat_local = Utc.with_ymd_and_hms(2026, 12, 4, 17, 0, 0).unwrap();
        assert_eq!(cal.due(sat_local, 1), cal.due(fri, 1));
        // 0 days: the end of the first business day from then.
        assert_eq!(
            cal.due(sat_local, 0),
            Utc.with_ymd_and_hms(2026, 12, 7, 16, 0, 0).unwrap()
        );
        assert_eq!(cal.business_days_between(fri, cal.due(fri, 3)), 4);
        assert_eq!(cal.business_days_between(fri, fri), 0);
        let thu = Utc.with_ymd_and_hms(2026, 12, 10, 2, 0, 0).unwrap();
        assert_eq!(cal.business_days_between(fri, thu), 3);
    }
}
