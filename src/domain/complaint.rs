//! Complaints a payment app raises about one of its payments (pure): their
//! types, the statuses they move through, which types make sense in which
//! state of the payment, what the evidence gathered at registration decides
//! on its own, and the turn-around time in the biller's business days.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

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
    /// The biller has the payment and refused it (its words).
    Refused { reason: String },
    /// The biller has it but has not decided yet.
    Pending,
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
    /// Put right by the biller at staff's request (credit moved to the
    /// right account, amount corrected), in staff's words.
    Corrected { note: String },
    /// Staff found the biller's credit (its records, its word).
    ConfirmedByStaff { note: String },
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::CreditConfirmed { .. } => "credit_confirmed",
            Outcome::NothingTaken => "nothing_taken",
            Outcome::Refunded => "refunded",
            Outcome::Corrected { .. } => "corrected",
            Outcome::ConfirmedByStaff { .. } => "credit_confirmed",
        }
    }
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
            (BillerAnswer::Unavailable | BillerAnswer::Pending, _) => Decision::WaitForBiller,
            (BillerAnswer::Refused { .. }, _) => Decision::ToStaff {
                reason: "the biller says it refused this payment: check what we recorded",
            },
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
        // Still in delivery: wait for the biller's answer first.
        ComplaintKind::PaidTwice
            if matches!(e.payment.status, S::Received | S::Submitted | S::Unknown) =>
        {
            Decision::WaitForBiller
        }
        // This payment was given back already: that is the answer.
        ComplaintKind::PaidTwice if e.payment.refunded => Decision::Resolve(Outcome::Refunded),
        // Rejected since it was raised: nothing was taken for it.
        ComplaintKind::PaidTwice if e.payment.status == S::Rejected => {
            Decision::Resolve(Outcome::NothingTaken)
        }
        // Returned by the biller: its money comes back already.
        ComplaintKind::PaidTwice if e.payment.status == S::Returned => Decision::ToStaff {
            reason: "the biller returned this payment: its money comes back in a settlement",
        },
        ComplaintKind::PaidTwice if e.credited_twice => Decision::Refund {
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
    pub zone: Tz,
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
        let mut d = at.with_timezone(&self.zone).date_naive();
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
        // A midnight in a daylight-saving gap: the first instant after it.
        let mut end = end;
        loop {
            match self.zone.from_local_datetime(&end) {
                chrono::LocalResult::Single(t) => return t.with_timezone(&Utc),
                chrono::LocalResult::Ambiguous(t, _) => return t.with_timezone(&Utc),
                chrono::LocalResult::None => end += chrono::Duration::minutes(1),
            }
        }
    }

    /// Business days from the day of `from` to the day of `to` (local):
    /// 0 on the same day; a report's resolution time.
    pub fn business_days_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> u32 {
        let mut d = from.with_timezone(&self.zone).date_naive();
        let end = to.with_timezone(&self.zone).date_naive();
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

/// How a payment's amount goes back to its app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundWay {
    /// Not settled yet: the payment's posted transfer is reversed and it
    /// never enters a settlement batch (RETURNED).
    Reversal,
    /// Settled already: a return, recovered from the biller's next batch
    /// and listed in its settlement file (RETURNED).
    Return,
}

impl RefundWay {
    pub fn as_str(&self) -> &'static str {
        match self {
            RefundWay::Reversal => "reversal",
            RefundWay::Return => "return",
        }
    }
}

/// How a payment in `status` can be refunded, or why it cannot.
pub fn refund_way(status: PaymentStatus) -> Result<RefundWay, &'static str> {
    use PaymentStatus as S;
    match status {
        S::Confirmed => Ok(RefundWay::Reversal),
        S::Settled => Ok(RefundWay::Return),
        S::Returned => Err("this payment was given back already"),
        S::Rejected => Err("this payment was rejected and nothing was taken for it"),
        S::Received | S::Submitted | S::Unknown => {
            Err("this payment's delivery is not finished: refund it once the biller has answered")
        }
    }
}

/// What finance staff do with a complaint (operators; approving a refund
/// needs an approver who did not propose it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaffAction {
    /// Take it: INVESTIGATING (an escalated one stays ESCALATED).
    Investigate,
    /// Ask the biller again by machine: PENDING_BILLER.
    AskBiller,
    Comment {
        text: String,
    },
    /// Resolved without money moving (the biller confirmed or put it right).
    Resolve {
        outcome: Outcome,
    },
    Reject {
        reason: String,
    },
    /// Propose giving the amount back (maker).
    ProposeRefund {
        note: String,
    },
    /// Approve the proposal (checker): the refund is made.
    ApproveRefund,
    DeclineRefund {
        reason: String,
    },
}

impl StaffAction {
    pub fn name(&self) -> &'static str {
        match self {
            StaffAction::Investigate => "investigate",
            StaffAction::AskBiller => "ask-biller",
            StaffAction::Comment { .. } => "comment",
            StaffAction::Resolve { .. } => "resolve",
            StaffAction::Reject { .. } => "reject",
            StaffAction::ProposeRefund { .. } => "propose-refund",
            StaffAction::ApproveRefund => "approve-refund",
            StaffAction::DeclineRefund { .. } => "decline-refund",
        }
    }
}

/// A complaint as staff act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffView {
    pub status: ComplaintStatus,
    /// The refund proposed and not yet approved: its maker.
    pub proposed_by: Option<String>,
}

/// What a staff action does, once allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaffEffect {
    /// Status unchanged (a comment; a proposal made or declined).
    Stay,
    MoveTo(ComplaintStatus),
    /// Make the refund, then RESOLVED (refunded).
    Refund,
}

/// Checks `action` by `actor` against the complaint as it stands.
pub fn staff_effect(
    view: &StaffView,
    actor: &str,
    is_approver: bool,
    action: &StaffAction,
) -> Result<StaffEffect, String> {
    if !view.status.is_open() {
        return Err(format!(
            "the complaint is {} already: nothing more can be done with it",
            view.status.as_str()
        ));
    }
    let note_ok = |t: &str, what: &str| {
        let n = t.trim().chars().count();
        if n == 0 || n > 1000 {
            Err(format!("{what} must be 1-1000 characters"))
        } else {
            Ok(())
        }
    };
    let move_to = |to: ComplaintStatus| {
        if view.status == to || view.status.can_move_to(to) {
            Ok(StaffEffect::MoveTo(to))
        } else {
            Err(format!(
                "a complaint {} cannot become {}",
                view.status.as_str(),
                to.as_str()
            ))
        }
    };
    match action {
        StaffAction::Investigate if view.status == Escalated => Ok(StaffEffect::Stay),
        StaffAction::Investigate => move_to(Investigating),
        StaffAction::AskBiller if view.status == Escalated => {
            Err("an escalated complaint is staff's: resolve or reject it".into())
        }
        StaffAction::AskBiller => move_to(PendingBiller),
        StaffAction::Comment { text } => note_ok(text, "a comment").map(|_| StaffEffect::Stay),
        StaffAction::Resolve { outcome } => match outcome {
            Outcome::Refunded => {
                Err("a refund is proposed and approved, not resolved by hand".into())
            }
            Outcome::Corrected { note } | Outcome::ConfirmedByStaff { note } => {
                note_ok(note, "the note").and_then(|_| move_to(Resolved))
            }
            _ => move_to(Resolved),
        },
        StaffAction::Reject { reason } => {
            note_ok(reason, "the reason").and_then(|_| move_to(Rejected))
        }
        StaffAction::ProposeRefund { note } => {
            note_ok(note, "the note")?;
            match &view.proposed_by {
                Some(m) => Err(format!("a refund proposed by {m} is waiting for approval")),
                None => Ok(StaffEffect::Stay),
            }
        }
        StaffAction::ApproveRefund | StaffAction::DeclineRefund { .. } => {
            let Some(maker) = &view.proposed_by else {
                return Err("no refund is proposed for this complaint".into());
            };
            if !is_approver {
                return Err("approving or declining a refund needs the approver role".into());
            }
            if maker == actor {
                return Err(format!(
                    "{actor} proposed this refund: another approver must approve or decline it"
                ));
            }
            match action {
                StaffAction::DeclineRefund { reason } => {
                    note_ok(reason, "the reason").map(|_| StaffEffect::Stay)
                }
                _ => Ok(StaffEffect::Refund),
            }
        }
    }
}

/// One complaint as the monthly report counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportItem {
    pub kind: ComplaintKind,
    pub registered_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    /// When it was answered for good (RESOLVED or REJECTED).
    pub closed_at: Option<DateTime<Utc>>,
}

/// One line of the report: a biller's complaints of one type in a month.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReportLine {
    pub kind: &'static str,
    pub raised: u64,
    pub closed: u64,
    pub closed_within_time: u64,
    pub still_open: u64,
    /// Median time to close, in hours (one decimal), of those closed.
    pub median_hours: Option<String>,
    pub worst_hours: Option<String>,
    /// Median and worst in the biller's business days.
    pub median_business_days: Option<u32>,
    pub worst_business_days: Option<u32>,
}

/// The report's lines, one per type (every type, in a fixed order).
pub fn report_lines(items: &[ReportItem], cal: &Calendar) -> Vec<ReportLine> {
    ComplaintKind::ALL
        .iter()
        .map(|k| {
            let of: Vec<&ReportItem> = items.iter().filter(|i| i.kind == *k).collect();
            let mut secs: Vec<i64> = Vec::new();
            let mut days: Vec<u32> = Vec::new();
            let mut within = 0;
            for i in &of {
                if let Some(c) = i.closed_at {
                    secs.push((c - i.registered_at).num_seconds().max(0));
                    days.push(cal.business_days_between(i.registered_at, c));
                    if c <= i.due_at {
                        within += 1;
                    }
                }
            }
            secs.sort_unstable();
            days.sort_unstable();
            // Hours with one decimal, from whole seconds (rounded half up).
            let hours = |s: i64| {
                let tenths = (s * 10 + 1800) / 3600;
                format!("{}.{}", tenths / 10, tenths % 10)
            };
            ReportLine {
                kind: k.as_str(),
                raised: of.len() as u64,
                closed: secs.len() as u64,
                closed_within_time: within,
                still_open: (of.len() - secs.len()) as u64,
                median_hours: median(&secs).map(hours),
                worst_hours: secs.last().copied().map(hours),
                median_business_days: median(&days),
                worst_business_days: days.last().copied(),
            }
        })
        .collect()
}

/// The lower median of sorted values (an observed value, never a mean).
fn median<T: Copy>(sorted: &[T]) -> Option<T> {
    if sorted.is_empty() {
        None
    } else {
        Some(sorted[(sorted.len() - 1) / 2])
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
        // Refunded already: never a second refund by rule, the refund is
        // the answer.
        let refunded = Evidence {
            payment: facts(S::Returned, true),
            biller: credited.clone(),
            credited_twice: true,
        };
        assert_eq!(
            decide(ComplaintKind::PaidTwice, &refunded),
            Decision::Resolve(Outcome::Refunded)
        );
        assert!(matches!(
            decide(ComplaintKind::PaidTwice, &ev(S::Settled, &credited, false)),
            Decision::ToStaff { .. }
        ));
        // Rejected or returned by the biller since: never a refund by rule.
        assert_eq!(
            decide(ComplaintKind::PaidTwice, &ev(S::Rejected, &credited, true)),
            Decision::Resolve(Outcome::NothingTaken)
        );
        assert!(matches!(
            decide(ComplaintKind::PaidTwice, &ev(S::Returned, &credited, true)),
            Decision::ToStaff { .. }
        ));
        // A payment still in delivery is not refunded: it is waited for.
        assert_eq!(
            decide(ComplaintKind::PaidTwice, &ev(S::Unknown, &credited, true)),
            Decision::WaitForBiller
        );
    }

    fn shanghai(holidays: &[(i32, u32, u32)]) -> Calendar {
        Calendar {
            zone: chrono_tz::Asia::Shanghai,
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
    #[test]
    fn refunds_need_a_finished_delivery_and_happen_once() {
        assert_eq!(refund_way(S::Confirmed), Ok(RefundWay::Reversal));
        assert_eq!(refund_way(S::Settled), Ok(RefundWay::Return));
        for s in [
            S::Received,
            S::Submitted,
            S::Unknown,
            S::Rejected,
            S::Returned,
        ] {
            assert!(refund_way(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn a_staff_refund_needs_a_second_person() {
        let open = StaffView {
            status: Investigating,
            proposed_by: None,
        };
        let propose = StaffAction::ProposeRefund {
            note: "paid twice".into(),
        };
        assert_eq!(
            staff_effect(&open, "ann", false, &propose),
            Ok(StaffEffect::Stay)
        );
        assert!(staff_effect(&open, "bob", true, &StaffAction::ApproveRefund).is_err());
        let proposed = StaffView {
            status: Investigating,
            proposed_by: Some("ann".into()),
        };
        assert!(
            staff_effect(&proposed, "ann", true, &StaffAction::ApproveRefund)
                .unwrap_err()
                .contains("another approver")
        );
        assert!(staff_effect(&proposed, "carl", false, &StaffAction::ApproveRefund).is_err());
        assert!(staff_effect(&proposed, "bob", false, &propose).is_err());
        assert_eq!(
            staff_effect(&proposed, "bob", true, &StaffAction::ApproveRefund),
            Ok(StaffEffect::Refund)
        );
        // A refund is never "resolved" by hand, and a closed complaint is closed.
        let resolve_refunded = StaffAction::Resolve {
            outcome: Outcome::Refunded,
        };
        assert!(staff_effect(&open, "ann", true, &resolve_refunded).is_err());
        let done = StaffView {
            status: Resolved,
            proposed_by: None,
        };
        assert!(staff_effect(&done, "ann", true, &StaffAction::Investigate).is_err());
        let reject = StaffAction::Reject { reason: " ".into() };
        assert!(staff_effect(&open, "ann", true, &reject).is_err());
        let escalated = StaffView {
            status: Escalated,
            proposed_by: None,
        };
        assert_eq!(
            staff_effect(&escalated, "ann", false, &StaffAction::Investigate),
            Ok(StaffEffect::Stay)
        );
        assert_eq!(
            staff_effect(
                &escalated,
                "ann",
                false,
                &StaffAction::Reject {
                    reason: "no".into()
                }
            ),
            Ok(StaffEffect::MoveTo(Rejected))
        );
    }

    #[test]
    fn the_report_counts_time_kept_and_median_and_worst() {
        let cal = shanghai(&[]);
        let mon = Utc.with_ymd_and_hms(2026, 12, 7, 1, 0, 0).unwrap();
        let h = chrono::Duration::hours;
        let item = |kind, closed: Option<i64>| ReportItem {
            kind,
            registered_at: mon,
            due_at: cal.due(mon, kind.default_turnaround_days()),
            closed_at: closed.map(|x| mon + h(x)),
        };
        let items = vec![
            item(ComplaintKind::NotCredited, Some(1)),
            item(ComplaintKind::NotCredited, Some(30)),
            item(ComplaintKind::NotCredited, Some(24 * 10)),
            item(ComplaintKind::NotCredited, None),
            item(ComplaintKind::PaidTwice, None),
        ];
        let lines = report_lines(&items, &cal);
        assert_eq!(lines.len(), ComplaintKind::ALL.len());
        let nc = &lines[0];
        assert_eq!(nc.kind, "not_credited");
        assert_eq!((nc.raised, nc.closed, nc.still_open), (4, 3, 1));
        // 10 days later is past 3 business days.
        assert_eq!(nc.closed_within_time, 2);
        assert_eq!(nc.median_hours.as_deref(), Some("30.0"));
        // Rounded to tenths of an hour, never a tenth of 10.
        let just_under = ReportItem {
            kind: ComplaintKind::AmountDiffers,
            registered_at: mon,
            due_at: mon + h(100),
            closed_at: Some(mon + chrono::Duration::seconds(3599)),
        };
        let ad = report_lines(&[just_under], &cal);
        assert_eq!(ad[3].worst_hours.as_deref(), Some("1.0"));
        assert_eq!(nc.worst_hours.as_deref(), Some("240.0"));
        assert_eq!(nc.median_business_days, Some(1));
        assert_eq!(nc.worst_business_days, Some(8));
        let pt = lines.iter().find(|l| l.kind == "paid_twice").unwrap();
        assert_eq!(
            (pt.raised, pt.closed, pt.median_hours.clone()),
            (1, 0, None)
        );
    }
}
