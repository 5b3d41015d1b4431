//! Matching our payments against counterparty records (pure).
//!
//! Both sides arrive sorted by our reference (the payment id). [`merge`]
//! walks them together and hands each reference's group (our payment, if
//! any, and every record that names it) to [`judge`], which decides:
//! matched, a break of one of the [`Category`]s, an automatic decision on
//! an UNKNOWN payment, or nothing yet (pending).
//!
//! The window of a date D: our payments of D (core) and of D−1 (read only
//! so that a record of D for a payment of D−1 that crossed midnight is not
//! "missing at us"), and records from the files of D (core) and D+1 (read
//! only so that a payment of D credited after midnight is not "missing at
//! biller"). A group with nothing core in it belongs to another date.
//!
//! Absence proves something only where we looked: a payment is "missing
//! at biller", or an UNKNOWN one rejected, only when the file of the
//! connector it went through is among the inputs (`MatchRules::covered`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{FileKind, RecordStatus, TheirRecord};
use crate::domain::payment::PaymentStatus;

/// The break categories, in report order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// We hold it confirmed (or settled); the biller has no record of it.
    MissingAtBiller,
    /// They credited something we do not know, or hold as rejected.
    MissingAtUs,
    /// Both have it; the amounts (or currencies) differ beyond tolerance.
    AmountMismatch,
    /// They credited the same payment more than once.
    DuplicateAtBiller,
    /// We hold it confirmed; their record says it failed.
    StatusMismatch,
    /// Both have it credited under different biller references.
    ReferenceMismatch,
    /// A bank line for a settlement batch (or channel funding) whose
    /// amount differs from the batch's net (or the amount owed), or a
    /// batch due on the statement's date that the bank did not move.
    SettlementMismatch,
    /// A bank line we cannot attribute to any batch or channel.
    UnmatchedBankLine,
    /// A gap or an overlap in an account's chain of statements: a missing
    /// sequence number or date, or an opening balance that is not the
    /// previous statement's closing balance.
    StatementGap,
}

impl Category {
    pub const ALL: [Category; 9] = [
        Category::MissingAtBiller,
        Category::MissingAtUs,
        Category::AmountMismatch,
        Category::DuplicateAtBiller,
        Category::StatusMismatch,
        Category::ReferenceMismatch,
        Category::SettlementMismatch,
        Category::UnmatchedBankLine,
        Category::StatementGap,
    ];

    /// Whether breaks of this category come from the bank pass.
    pub fn is_bank(&self) -> bool {
        matches!(
            self,
            Category::SettlementMismatch | Category::UnmatchedBankLine | Category::StatementGap
        )
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Category::MissingAtBiller => "missing-at-biller",
            Category::MissingAtUs => "missing-at-us",
            Category::AmountMismatch => "amount-mismatch",
            Category::DuplicateAtBiller => "duplicate-at-biller",
            Category::StatusMismatch => "status-mismatch",
            Category::ReferenceMismatch => "reference-mismatch",
            Category::SettlementMismatch => "settlement-mismatch",
            Category::UnmatchedBankLine => "unmatched-bank-line",
            Category::StatementGap => "statement-gap",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Our side of one payment, as reconciliation reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OurPayment {
    pub our_reference: String,
    /// The biller's reference from its live answer, if it gave one.
    pub biller_reference: Option<String>,
    pub channel_id: String,
    pub account: String,
    pub amount_minor: i64,
    pub currency: String,
    pub status: PaymentStatus,
    /// The connector it was (last) sent through; None if never sent.
    pub connector_id: Option<String>,
    /// Of the date under reconciliation (false: of the day before).
    pub core: bool,
    /// What an earlier run decided on it automatically, if anything.
    #[serde(default)]
    pub decided: Option<Earlier>,
    /// Re-sent through another route (a `resend` resolution) after this
    /// date's window: its absence here is why it was re-sent, and the date
    /// of the re-send reconciles it against the new route's files.
    #[serde(default)]
    pub resent_later: bool,
    /// The route it went through before a `resend` that may have arrived:
    /// a credit through that route now means it was delivered twice.
    #[serde(default)]
    pub resent_from: Option<String>,
}

/// An automatic decision an earlier run made on a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Earlier {
    Confirm,
    Reject,
}

/// A counterparty record with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sourced {
    pub record: TheirRecord,
    /// The imported file's id.
    pub file_id: i64,
    pub kind: FileKind,
    /// From a file of the date under reconciliation (false: of the day after).
    pub core: bool,
}

/// A record cited as evidence.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Evidence {
    pub file_id: i64,
    pub kind: FileKind,
    pub line: u64,
    pub their_reference: String,
    pub status: RecordStatus,
    pub amount_minor: i64,
    pub currency: String,
}

impl Evidence {
    pub fn of(s: &Sourced) -> Evidence {
        Evidence {
            file_id: s.file_id,
            kind: s.kind,
            line: s.record.line,
            their_reference: s.record.their_reference.clone(),
            status: s.record.status,
            amount_minor: s.record.amount_minor,
            currency: s.record.currency.clone(),
        }
    }

    /// `water-csv #12 line 40 CREDITED R-88 12.50 CNY`
    pub fn describe(&self) -> String {
        format!(
            "{} file #{} line {} {} {} {} {}",
            self.kind.as_str(),
            self.file_id,
            self.line,
            self.status.as_str(),
            if self.their_reference.is_empty() {
                "-"
            } else {
                &self.their_reference
            },
            minor_to_string(self.amount_minor, 2),
            self.currency
        )
    }
}

/// What the rules need beyond the two sides.
#[derive(Debug, Clone, Default)]
pub struct MatchRules {
    /// Largest difference in minor units still matched (0: exact). Set per
    /// biller; a match within tolerance is counted apart and reported.
    pub tolerance_minor: i64,
    /// The grace period for UNKNOWN payments has passed: absent ones are
    /// rejected.
    pub grace_elapsed: bool,
    /// Connectors whose file for the date is among the inputs.
    pub covered: BTreeSet<String>,
    /// Which connector each file kind reports on.
    pub file_routes: super::FileRoutes,
}

/// A break found by matching.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    pub category: Category,
    pub our_reference: String,
    /// Their reference(s), comma-separated, as the records say.
    pub their_reference: String,
    pub our_amount_minor: Option<i64>,
    pub their_amount_minor: Option<i64>,
    pub currency: String,
    pub detail: String,
    pub evidence: Vec<Evidence>,
}

/// An automatic decision on an UNKNOWN payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Their file shows it credited: CONFIRMED.
    Confirm {
        our_reference: String,
        evidence: Evidence,
    },
    /// Absent from the file of the connector it went through after the
    /// grace period (or marked failed there): REJECTED, voided.
    Reject {
        our_reference: String,
        connector: String,
        evidence: Vec<Evidence>,
    },
}

impl Decision {
    pub fn our_reference(&self) -> &str {
        match self {
            Decision::Confirm { our_reference, .. } | Decision::Reject { our_reference, .. } => {
                our_reference
            }
        }
    }
}

/// Why a group is neither matched nor a break yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pending {
    /// Still with dispatch (RECEIVED or SUBMITTED).
    InFlight,
    /// UNKNOWN and absent, within the grace period.
    WithinGrace,
    /// The file that would prove its absence is not among the inputs.
    SourceMissing,
    /// Absent here, and re-sent through another route later (a `resend`
    /// resolution): the date of the re-send reconciles it.
    Resent,
}

impl Pending {
    pub fn as_str(&self) -> &'static str {
        match self {
            Pending::InFlight => "in-flight",
            Pending::WithinGrace => "within-grace",
            Pending::SourceMissing => "source-missing",
            Pending::Resent => "resent",
        }
    }
}

/// The verdict on one reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Matched {
        within_tolerance: bool,
    },
    /// A failed record for a payment we hold rejected (or do not know):
    /// both agree nothing moved.
    AgreedNotApplied,
    Break(Found),
    Decide(Decision),
    /// Agreed now because an earlier run decided it: counted as that
    /// decision again, so that re-running a date gives the same result.
    DecidedBefore(Earlier),
    Pending(Pending),
}

/// Decides one reference: our payment (if any) and every record naming it.
/// Returns nothing for a group outside the date (nothing core in it).
pub fn judge(ours: Option<&OurPayment>, theirs: &[Sourced], rules: &MatchRules) -> Vec<Verdict> {
    let mut out = judge_now(ours, theirs, rules);
    if let Some(earlier) = ours.filter(|o| o.core).and_then(|o| o.decided) {
        for v in &mut out {
            let again = matches!(
                (earlier, &*v),
                (Earlier::Confirm, Verdict::Matched { .. })
                    | (Earlier::Reject, Verdict::AgreedNotApplied)
            );
            if again {
                *v = Verdict::DecidedBefore(earlier);
            }
        }
    }
    out
}

fn judge_now(ours: Option<&OurPayment>, theirs: &[Sourced], rules: &MatchRules) -> Vec<Verdict> {
    let core = ours.is_some_and(|o| o.core) || theirs.iter().any(|t| t.core);
    if !core {
        return Vec::new();
    }
    let g = Judged::new(ours, theirs, rules);
    let mut out = Vec::new();
    out.extend(g.duplicate());
    out.extend(match ours {
        Some(o) => g.delivered_twice(o).or_else(|| g.by_status(o)),
        None => Some(g.without_ours()),
    });
    out
}

/// One reference's group as the rules read it: the records split by status,
/// and the reference every verdict on it names.
struct Judged<'a> {
    ours: Option<&'a OurPayment>,
    theirs: &'a [Sourced],
    rules: &'a MatchRules,
    credited: Vec<&'a Sourced>,
    failed: Vec<&'a Sourced>,
    reference: String,
}

impl<'a> Judged<'a> {
    fn new(ours: Option<&'a OurPayment>, theirs: &'a [Sourced], rules: &'a MatchRules) -> Self {
        let with = |status| {
            theirs
                .iter()
                .filter(|t| t.record.status == status)
                .collect()
        };
        Judged {
            ours,
            theirs,
            rules,
            credited: with(RecordStatus::Credited),
            failed: with(RecordStatus::Failed),
            reference: ours
                .map(|o| o.our_reference.clone())
                .or_else(|| theirs.first().map(|t| t.record.our_reference.clone()))
                .unwrap_or_default(),
        }
    }

    /// Credited more than once: a `duplicate-at-biller` break.
    fn duplicate(&self) -> Option<Verdict> {
        let credited = &self.credited;
        if credited.len() < 2 {
            return None;
        }
        let total: i64 = credited.iter().map(|t| t.record.amount_minor).sum();
        Some(Verdict::Break(Found {
            category: Category::DuplicateAtBiller,
            our_reference: self.reference.clone(),
            their_reference: their_refs(credited),
            our_amount_minor: self.ours.map(|o| o.amount_minor),
            their_amount_minor: Some(total),
            currency: self
                .ours
                .map(|o| o.currency.clone())
                .or_else(|| self.theirs.first().map(|t| t.record.currency.clone()))
                .unwrap_or_default(),
            detail: format!(
                "credited {} times ({})",
                credited.len(),
                credited
                    .iter()
                    .map(|t| Evidence::of(t).describe())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            evidence: evidence_of(credited),
        }))
    }

    /// Re-sent because the first route had no record of it: a credit
    /// through that route now means it arrived twice.
    fn delivered_twice(&self, o: &OurPayment) -> Option<Verdict> {
        let [t] = self.credited[..] else {
            return None;
        };
        let first_route = o.resent_from.as_deref();
        if first_route.is_none() || self.rules.file_routes.connector(t.kind) != first_route {
            return None;
        }
        Some(Verdict::Break(Found {
            category: Category::DuplicateAtBiller,
            our_reference: self.reference.clone(),
            their_reference: t.record.their_reference.clone(),
            our_amount_minor: Some(o.amount_minor),
            their_amount_minor: Some(t.record.amount_minor),
            currency: o.currency.clone(),
            detail: format!(
                "credited through {} ({}) although it was re-sent through {} because {} had no record of it: delivered twice",
                first_route.unwrap_or_default(),
                Evidence::of(t).describe(),
                o.connector_id.as_deref().unwrap_or("?"),
                first_route.unwrap_or_default(),
            ),
            evidence: vec![Evidence::of(t)],
        }))
    }

    /// No payment of ours: agreed nothing moved, or `missing-at-us`.
    fn without_ours(&self) -> Verdict {
        let credited = &self.credited;
        if credited.is_empty() {
            return Verdict::AgreedNotApplied;
        }
        Verdict::Break(Found {
            category: Category::MissingAtUs,
            our_reference: self.reference.clone(),
            their_reference: their_refs(credited),
            our_amount_minor: None,
            their_amount_minor: Some(credited[0].record.amount_minor),
            currency: credited[0].record.currency.clone(),
            detail: "credited by them; we have no payment with this reference".into(),
            evidence: evidence_of(credited),
        })
    }

    /// Our payment judged by the status we hold it in (nothing more when a
    /// duplicate already says it all).
    fn by_status(&self, o: &OurPayment) -> Option<Verdict> {
        match o.status {
            PaymentStatus::Confirmed | PaymentStatus::Settled | PaymentStatus::Returned => {
                self.held(o)
            }
            PaymentStatus::Unknown => self.unknown(o),
            PaymentStatus::Rejected => self.rejected(o),
            PaymentStatus::Received | PaymentStatus::Submitted => {
                Some(Verdict::Pending(Pending::InFlight))
            }
        }
    }

    /// Ours CONFIRMED (or SETTLED, RETURNED): matched, a break, or pending
    /// where their absence proves nothing yet.
    fn held(&self, o: &OurPayment) -> Option<Verdict> {
        if let Some(t) = self.credited.first() {
            if self.credited.len() > 1 {
                return None; // the duplicate says it all
            }
            return Some(held_credited(o, t, self.rules));
        }
        Some(if !self.failed.is_empty() {
            Verdict::Break(Found {
                category: Category::StatusMismatch,
                our_reference: o.our_reference.clone(),
                their_reference: their_refs(&self.failed),
                our_amount_minor: Some(o.amount_minor),
                their_amount_minor: None,
                currency: o.currency.clone(),
                detail: ours_says(o, "their record says it failed"),
                evidence: evidence_of(&self.failed),
            })
        } else if o.resent_later {
            Verdict::Pending(Pending::Resent)
        } else if absence_proven(o, self.rules) {
            Verdict::Break(Found {
                category: Category::MissingAtBiller,
                our_reference: o.our_reference.clone(),
                their_reference: o.biller_reference.clone().unwrap_or_default(),
                our_amount_minor: Some(o.amount_minor),
                their_amount_minor: None,
                currency: o.currency.clone(),
                detail: ours_says(
                    o,
                    &format!(
                        "absent from the {} file(s) of the date and the day after",
                        o.connector_id.as_deref().unwrap_or("?")
                    ),
                ),
                evidence: Vec::new(),
            })
        } else {
            Verdict::Pending(Pending::SourceMissing)
        })
    }

    /// Ours UNKNOWN: confirmed when credited for the amount, rejected when
    /// absent where it went after the grace period, else pending (nothing
    /// when credited more than once: a duplicate is for a person).
    fn unknown(&self, o: &OurPayment) -> Option<Verdict> {
        if self.credited.len() > 1 {
            return None; // a duplicate is for a person to work out
        }
        Some(if let Some(t) = self.credited.first() {
            match amount_differs(o, t) {
                Some(diff) if diff > self.rules.tolerance_minor => amount_break(
                    o,
                    t,
                    format!(
                        "UNKNOWN for {} {}, they credited {} {}: not confirmed automatically",
                        minor_to_string(o.amount_minor, 2),
                        o.currency,
                        minor_to_string(t.record.amount_minor, 2),
                        t.record.currency
                    ),
                ),
                _ => Verdict::Decide(Decision::Confirm {
                    our_reference: o.our_reference.clone(),
                    evidence: Evidence::of(t),
                }),
            }
        } else if !absence_proven(o, self.rules) {
            Verdict::Pending(Pending::SourceMissing)
        } else if !self.rules.grace_elapsed {
            Verdict::Pending(Pending::WithinGrace)
        } else {
            Verdict::Decide(Decision::Reject {
                our_reference: o.our_reference.clone(),
                connector: o.connector_id.clone().unwrap_or_default(),
                evidence: evidence_of(&self.failed),
            })
        })
    }

    /// Ours REJECTED: agreed nothing moved, or `missing-at-us` when they
    /// credited it once (nothing more when more than once).
    fn rejected(&self, o: &OurPayment) -> Option<Verdict> {
        let Some(t) = self.credited.first() else {
            return Some(Verdict::AgreedNotApplied);
        };
        (self.credited.len() == 1).then(|| {
            Verdict::Break(Found {
                category: Category::MissingAtUs,
                our_reference: o.our_reference.clone(),
                their_reference: t.record.their_reference.clone(),
                our_amount_minor: Some(o.amount_minor),
                their_amount_minor: Some(t.record.amount_minor),
                currency: o.currency.clone(),
                detail: ours_says(o, "they credited it"),
                evidence: vec![Evidence::of(t)],
            })
        })
    }
}

/// A payment we hold confirmed, credited once: an amount break beyond
/// tolerance, a reference break when the references differ, else matched.
fn held_credited(o: &OurPayment, t: &Sourced, rules: &MatchRules) -> Verdict {
    match amount_differs(o, t) {
        Some(diff) if diff > rules.tolerance_minor => amount_break(
            o,
            t,
            format!(
                "we hold {} {}, they credited {} {}",
                minor_to_string(o.amount_minor, 2),
                o.currency,
                minor_to_string(t.record.amount_minor, 2),
                t.record.currency
            ),
        ),
        within => {
            let theirs_ref = &t.record.their_reference;
            match &o.biller_reference {
                Some(ours_ref) if !theirs_ref.is_empty() && ours_ref != theirs_ref => {
                    Verdict::Break(Found {
                        category: Category::ReferenceMismatch,
                        our_reference: o.our_reference.clone(),
                        their_reference: theirs_ref.clone(),
                        our_amount_minor: Some(o.amount_minor),
                        their_amount_minor: Some(t.record.amount_minor),
                        currency: o.currency.clone(),
                        detail: format!(
                            "their live answer gave reference {ours_ref}, their file says {theirs_ref}"
                        ),
                        evidence: vec![Evidence::of(t)],
                    })
                }
                _ => Verdict::Matched {
                    within_tolerance: within.is_some(),
                },
            }
        }
    }
}

/// Their references of `rs`, comma-separated (empty ones left out).
fn their_refs(rs: &[&Sourced]) -> String {
    rs.iter()
        .map(|t| t.record.their_reference.as_str())
        .filter(|r| !r.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

/// Each of `rs` as evidence.
fn evidence_of(rs: &[&Sourced]) -> Vec<Evidence> {
    rs.iter().map(|t| Evidence::of(t)).collect()
}

/// Whether the file of the connector our payment went through is among the
/// inputs (its absence there then proves something).
fn absence_proven(o: &OurPayment, rules: &MatchRules) -> bool {
    o.connector_id
        .as_ref()
        .is_some_and(|c| rules.covered.contains(c))
}

/// How far their record's amount is from ours (None: equal; `i64::MAX`:
/// another currency).
fn amount_differs(o: &OurPayment, t: &Sourced) -> Option<i64> {
    if t.record.currency != o.currency {
        return Some(i64::MAX);
    }
    let diff = (t.record.amount_minor - o.amount_minor).abs();
    (diff != 0).then_some(diff)
}

/// An `amount-mismatch` break between our payment and their record.
fn amount_break(o: &OurPayment, t: &Sourced, detail: String) -> Verdict {
    Verdict::Break(Found {
        category: Category::AmountMismatch,
        our_reference: o.our_reference.clone(),
        their_reference: t.record.their_reference.clone(),
        our_amount_minor: Some(o.amount_minor),
        their_amount_minor: Some(t.record.amount_minor),
        currency: o.currency.clone(),
        detail,
        evidence: vec![Evidence::of(t)],
    })
}

/// A break's detail starting with the status we hold the payment in.
fn ours_says(o: &OurPayment, what: &str) -> String {
    format!("we hold it {}; {what}", o.status.as_str())
}

/// One reference's group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub ours: Option<OurPayment>,
    pub theirs: Vec<Sourced>,
}

/// Input out of order: the merge would be wrong, so it stops.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{side} input out of order: {previous:?} then {next:?}")]
pub struct OrderError {
    pub side: &'static str,
    pub previous: String,
    pub next: String,
}

/// Walks both sides (each sorted by our reference, ascending) and calls
/// `each` once per reference with everything that names it. Our side must
/// hold each reference at most once.
pub fn merge<E: From<OrderError>>(
    ours: impl Iterator<Item = Result<OurPayment, E>>,
    theirs: impl Iterator<Item = Result<Sourced, E>>,
    mut each: impl FnMut(Group) -> Result<(), E>,
) -> Result<(), E> {
    let mut ours = ours.peekable();
    let mut theirs = theirs.peekable();
    let mut last_ours: Option<String> = None;
    let mut last_theirs: Option<String> = None;
    let check = |side: &'static str, last: &mut Option<String>, next: &str, strict: bool| {
        if let Some(prev) = last.as_deref() {
            if next < prev || (strict && next == prev) {
                return Err(OrderError {
                    side,
                    previous: prev.to_string(),
                    next: next.to_string(),
                });
            }
        }
        *last = Some(next.to_string());
        Ok(())
    };
    loop {
        let o_key = match ours.peek() {
            Some(Ok(o)) => Some(o.our_reference.clone()),
            Some(Err(_)) => return Err(ours.next().and_then(Result::err).expect("peeked error")),
            None => None,
        };
        let t_key = match theirs.peek() {
            Some(Ok(t)) => Some(t.record.our_reference.clone()),
            Some(Err(_)) => {
                return Err(theirs.next().and_then(Result::err).expect("peeked error"));
            }
            None => None,
        };
        let key = match (&o_key, &t_key) {
            (None, None) => return Ok(()),
            (Some(a), None) => a.clone(),
            (None, Some(b)) => b.clone(),
            (Some(a), Some(b)) => a.min(b).clone(),
        };
        let our = if o_key.as_deref() == Some(key.as_str()) {
            let o = ours.next().expect("peeked")?;
            check("our", &mut last_ours, &o.our_reference, true)?;
            Some(o)
        } else {
            None
        };
        let mut group = Vec::new();
        while let Some(Ok(t)) = theirs.peek() {
            if t.record.our_reference != key {
                break;
            }
            let t = theirs.next().expect("peeked")?;
            check("their", &mut last_theirs, &t.record.our_reference, false)?;
            group.push(t);
        }
        each(Group {
            ours: our,
            theirs: group,
        })?;
    }
}

/// The minor-unit scale of a currency code (2 for one billclear does not
/// carry: such amounts are refused before they are stored).
pub fn scale_of(code: &str) -> u32 {
    crate::domain::money::Currency::from_code(code.trim())
        .map(|c| c.scale())
        .unwrap_or(2)
}

/// Minor units of currency `code` as a decimal string at its scale. Exact.
pub fn minor_in(minor: i64, code: &str) -> String {
    minor_to_string(minor, scale_of(code))
}

/// Minor units as a decimal string at `scale` ("-12.05"). Exact.
pub fn minor_to_string(minor: i64, scale: u32) -> String {
    let negative = minor < 0;
    let digits = minor.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    let sign = if negative { "-" } else { "" };
    if scale == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

#[cfg(test)]
mod tests;
