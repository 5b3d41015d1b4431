//! Matching our settlement account's bank statement (pure).
//!
//! Booked debits carry the EndToEndId of our pain.001 (`BCE` + the batch
//! id's 32 hex digits): the bank paid a biller's batch, for its net.
//! Booked credits are payment apps funding us: their remittance names
//! `BCF-<channel id>-<YYYYMMDD>`, the statement date they pay. Each such
//! entry is booked as funding once; a channel may pay one statement date in
//! several transfers, and the sum of them is compared with what its
//! statement says it owes ([`judge_funding`]): under- or over-funding is a
//! break of its own. Anything else is a line we cannot attribute. Pending
//! and informational lines are not reconciled (counted).
//!
//! Every line is a bank entry recorded once (`domain::recon::statement`):
//! a break about a line is about that entry, whatever file brought it.
//!
//! The other way round, a batch whose payout the bank was asked for
//! ([`ClosedBatch::due`], the pain.001's requested execution date) and
//! that no booked debit ever moved is a settlement mismatch too
//! ([`judge_payout`]), judged once: by the first statement on or after
//! that date ([`DueWindow`]).

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::matching::{minor_in, minor_to_string, Category, Found};
use crate::domain::settlement::{pays_out, requested_execution_date};

/// One bank statement line, as reconciliation reads it. Amounts are signed
/// minor units: credits (money in) positive, debits negative.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankLine {
    /// The bank entry (recorded once, whatever file brought it).
    pub entry_id: i64,
    /// The file that first brought it, and its position in its statement.
    pub file_id: i64,
    pub line: u64,
    pub signed_minor: i64,
    pub currency: String,
    pub booked: bool,
    pub bank_reference: Option<String>,
    pub end_to_end_id: Option<String>,
    pub remittance: Option<String>,
}

impl BankLine {
    /// What a break about this line is called: its bank entry, the same
    /// whatever file brings the entry again.
    pub fn subject(&self) -> String {
        format!("bank-entry:{}", self.entry_id)
    }
}

/// The batch id named by an EndToEndId of ours (`BCE` + 32 hex).
pub fn batch_of(end_to_end_id: &str) -> Option<uuid::Uuid> {
    let hex = end_to_end_id.strip_prefix("BCE")?;
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    uuid::Uuid::parse_str(hex).ok()
}

/// The channel and statement date named by a funding reference
/// (`BCF-<channel id>-<YYYYMMDD>`) anywhere in the remittance text (also
/// inside structured text such as MT940's `/REMI/BCF-…`).
pub fn funding_of(remittance: &str) -> Option<(String, NaiveDate)> {
    remittance.match_indices("BCF-").find_map(|(at, _)| {
        let starts_word = remittance[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c == '/' || c == ':');
        let rest = &remittance[at + 4..];
        let word = rest
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("");
        let (channel, date) = word.rsplit_once('-')?;
        let date = NaiveDate::parse_from_str(date, "%Y%m%d").ok()?;
        (starts_word && !channel.is_empty() && date.format("%Y%m%d").to_string() == date_text(word))
            .then(|| (channel.to_string(), date))
    })
}

/// The date part of `<channel>-<YYYYMMDD>` as written.
fn date_text(word: &str) -> String {
    word.rsplit_once('-')
        .map(|(_, d)| d.to_string())
        .unwrap_or_default()
}

/// What we expect a line to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// A settlement batch's net, paid out.
    Batch {
        id: uuid::Uuid,
        biller_id: String,
        net_minor: i64,
        currency: String,
    },
    /// A channel's statement total, paid in.
    Funding {
        channel_id: String,
        date: NaiveDate,
        owed_minor: i64,
        currency: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BankVerdict {
    NotBooked,
    Batch { id: uuid::Uuid },
    Funding { channel_id: String, date: NaiveDate },
    Break(Found),
}

/// Decides one line against what its references point to (`None`: they
/// point to nothing we know).
pub fn judge_line(line: &BankLine, expected: Option<&Expected>) -> BankVerdict {
    if !line.booked {
        return BankVerdict::NotBooked;
    }
    let amount = |m: i64| minor_to_string(m, 2);
    let found = |category, their_reference: String, our: Option<i64>, detail: String| {
        BankVerdict::Break(Found {
            category,
            our_reference: line.subject(),
            their_reference,
            our_amount_minor: our,
            their_amount_minor: Some(line.signed_minor),
            currency: line.currency.clone(),
            detail,
            evidence: Vec::new(),
        })
    };
    let reference = line
        .end_to_end_id
        .clone()
        .or_else(|| line.remittance.clone())
        .unwrap_or_default();
    match expected {
        Some(Expected::Batch {
            id,
            biller_id,
            net_minor,
            currency,
        }) if line.signed_minor < 0 => {
            if -line.signed_minor == *net_minor && *currency == line.currency {
                BankVerdict::Batch { id: *id }
            } else {
                found(
                    Category::SettlementMismatch,
                    id.to_string(),
                    Some(-net_minor),
                    format!(
                        "batch {id} of {biller_id} nets {} {currency}; the bank debited {} {}",
                        amount(*net_minor),
                        amount(-line.signed_minor),
                        line.currency
                    ),
                )
            }
        }
        Some(Expected::Funding {
            channel_id,
            date,
            owed_minor,
            currency,
        }) if line.signed_minor > 0 => {
            // Booked whatever its amount (the money is there); the total of
            // a date's transfers is judged by `judge_funding`.
            if *currency == line.currency {
                BankVerdict::Funding {
                    channel_id: channel_id.clone(),
                    date: *date,
                }
            } else {
                found(
                    Category::SettlementMismatch,
                    format!("BCF-{channel_id}-{}", date.format("%Y%m%d")),
                    Some(*owed_minor),
                    format!(
                        "{channel_id} owes {} {currency} for {date}; the bank credited {} {}, another currency: not booked",
                        amount(*owed_minor),
                        amount(line.signed_minor),
                        line.currency
                    ),
                )
            }
        }
        _ => found(
            Category::UnmatchedBankLine,
            reference.clone(),
            None,
            format!(
                "{} of {} {} we cannot attribute (reference {:?})",
                if line.signed_minor < 0 {
                    "debit"
                } else {
                    "credit"
                },
                amount(line.signed_minor.abs()),
                line.currency,
                reference
            ),
        ),
    }
}

/// What a payment app paid for one statement date, against what it owes:
/// a break when the transfers booked for it (every entry naming
/// `BCF-<channel>-<date>`, each booked once) do not add up to it.
pub fn judge_funding(
    channel_id: &str,
    date: NaiveDate,
    owed_minor: i64,
    currency: &str,
    transfers: u64,
    funded_minor: i64,
) -> Option<Found> {
    if funded_minor == owed_minor {
        return None;
    }
    let m = |v: i64| minor_in(v, currency);
    let (what, by) = if funded_minor < owed_minor {
        ("under-funded", owed_minor - funded_minor)
    } else {
        ("over-funded", funded_minor - owed_minor)
    };
    Some(Found {
        category: Category::SettlementMismatch,
        our_reference: format!("funding:{channel_id}:{}", date.format("%Y%m%d")),
        their_reference: format!("BCF-{channel_id}-{}", date.format("%Y%m%d")),
        our_amount_minor: Some(owed_minor),
        their_amount_minor: Some(funded_minor),
        currency: currency.to_string(),
        detail: format!(
            "{channel_id} owes {} {currency} for its statement of {date}; {transfers} transfer{} booked so far total {} {currency}: {what} by {} {currency}",
            m(owed_minor),
            if transfers == 1 { "" } else { "s" },
            m(funded_minor),
            m(by),
        ),
        evidence: Vec::new(),
    })
}

/// A closed settlement batch, as the payout check reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedBatch {
    pub id: uuid::Uuid,
    pub biller_id: String,
    pub business_date: NaiveDate,
    /// When it was closed (the pain.001's clock).
    pub created_at: DateTime<Utc>,
    pub net_minor: i64,
    pub currency: String,
    /// Whether its files (the pain.001 among them) are written.
    pub files_written: bool,
}

impl ClosedBatch {
    /// The EndToEndId its pain.001 gives the transfer.
    pub fn end_to_end_id(&self) -> String {
        format!("BCE{}", self.id.simple())
    }

    /// What a break about its payout is called (stable across runs).
    pub fn subject(&self) -> String {
        format!("batch:{}", self.id)
    }

    /// The date the bank is asked to pay it: its pain.001's requested
    /// execution date. None when no pain.001 is written for it (a net of
    /// zero or less: nothing to pay, nothing expected).
    pub fn due(&self) -> Option<NaiveDate> {
        if !pays_out(rust_decimal::Decimal::from(self.net_minor)) {
            return None;
        }
        requested_execution_date(self.business_date, self.created_at)
    }

    /// Whether its payout is due on a date `window` answers for.
    pub fn due_in(&self, window: &DueWindow) -> bool {
        self.due().is_some_and(|d| window.contains(d))
    }

    /// The first day a statement could book its payout: the instruction
    /// exists from the close on (its business date, or its UTC day if
    /// earlier, to be safe across zones).
    pub fn bookable_from(&self) -> NaiveDate {
        self.business_date.min(self.created_at.date_naive())
    }
}

/// The batch a line pays: a booked debit whose EndToEndId is ours.
pub fn paid_batch(line: &BankLine) -> Option<uuid::Uuid> {
    if !line.booked || line.signed_minor >= 0 {
        return None;
    }
    line.end_to_end_id.as_deref().and_then(batch_of)
}

/// The execution dates a statement date answers for: those after the
/// latest earlier statement's date, through the date. A day with no
/// statement (a weekend, a holiday, or one not imported) is answered by the
/// next statement, the first on which the bank could book the payout; so a
/// batch is judged once, not again by every later statement. With no
/// earlier statement only the date itself: batches due before the bank's
/// statements start are not judged (nothing can be said of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DueWindow {
    pub from: NaiveDate,
    pub through: NaiveDate,
}

impl DueWindow {
    pub fn of(date: NaiveDate, previous_statement: Option<NaiveDate>) -> DueWindow {
        let from = previous_statement
            .filter(|p| *p < date)
            .and_then(|p| p.succ_opt())
            .unwrap_or(date);
        DueWindow {
            from,
            through: date,
        }
    }

    pub fn contains(&self, day: NaiveDate) -> bool {
        self.from <= day && day <= self.through
    }
}

/// What the statement says of one batch's payout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payout {
    /// No pain.001 asked the bank for anything.
    NotAsked,
    /// Due outside the window: another statement date answers for it.
    NotDue,
    /// A booked debit of the statement or an earlier one moved it.
    Paid,
    /// Due in the window and never moved: a settlement mismatch.
    Unpaid(Found),
}

/// Decides whether the bank moved a batch due in `window`. `paid`: the
/// batches a booked debit of the window's statement(s) or any earlier
/// one names by EndToEndId, whatever its amount (a wrong amount is that
/// line's own settlement mismatch).
pub fn judge_payout(b: &ClosedBatch, window: &DueWindow, paid: &BTreeSet<uuid::Uuid>) -> Payout {
    let Some(due) = b.due() else {
        return Payout::NotAsked;
    };
    if !b.due_in(window) {
        return Payout::NotDue;
    }
    if paid.contains(&b.id) {
        return Payout::Paid;
    }
    let date = window.through;
    let mut detail = format!(
        "batch {} of {} nets {} {}, requested for execution on {due}: no booked debit with EndToEndId {} on the statement of {date} or any earlier one",
        b.id,
        b.biller_id,
        minor_to_string(b.net_minor, 2),
        b.currency,
        b.end_to_end_id(),
    );
    if due < date {
        let last = date.pred_opt().unwrap_or(date);
        if due == last {
            detail.push_str(&format!(" (no statement imported for {due})"));
        } else {
            detail.push_str(&format!(" (no statement imported for {due} to {last})"));
        }
    }
    if !b.files_written {
        detail.push_str("; its settlement files (the pain.001 among them) are not written yet");
    }
    Payout::Unpaid(Found {
        category: Category::SettlementMismatch,
        our_reference: b.subject(),
        their_reference: b.id.to_string(),
        our_amount_minor: Some(-b.net_minor),
        their_amount_minor: None,
        currency: b.currency.clone(),
        detail,
        evidence: Vec::new(),
    })
}

/// Per currency: what the bank says we hold and what our ledger says, with
/// the items that explain the difference (computed by the store; judged by [`BankPosition::judge`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankPosition {
    pub currency: String,
    /// Per account: (masked account, closing balance of its latest
    /// statement on or before the date, that statement's date, the opening
    /// balance of its first statement).
    pub accounts: Vec<AccountPosition>,
    /// `bank:settlement:<ccy>` posted balance (debit-normal).
    pub ledger_minor: i64,
    /// Batches closed (credited to the bank account in our books) that no
    /// booked debit on or before the date paid yet.
    pub in_transit_count: u64,
    pub in_transit_minor: i64,
    /// Batches paid by entries on or before the date for other than their
    /// net (net minus what was debited; a break each).
    pub payout_difference_minor: i64,
    /// Booked entries on or before the date that are neither a batch's
    /// payout nor a booked funding (a break each).
    pub unattributed_count: u64,
    pub unattributed_minor: i64,
    /// Funding booked from entries after the date (in the ledger already).
    pub later_funding_minor: i64,
    /// Posted to the bank account by resolved reconciliation breaks.
    pub resolutions_minor: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountPosition {
    pub account: String,
    pub closing_minor: i64,
    pub closing_date: Option<NaiveDate>,
    pub brought_forward_minor: i64,
}

impl BankPosition {
    /// The bank's closing balances of the currency's accounts, together.
    pub fn bank_minor(&self) -> i64 {
        self.accounts.iter().map(|a| a.closing_minor).sum()
    }

    /// What the accounts held before their first statement imported here
    /// (nothing in our books can explain it).
    pub fn brought_forward_minor(&self) -> i64 {
        self.accounts.iter().map(|a| a.brought_forward_minor).sum()
    }

    /// The difference the listed items explain (bank minus ledger).
    pub fn explained_minor(&self) -> i64 {
        self.brought_forward_minor()
            + self.in_transit_minor
            + self.payout_difference_minor
            + self.unattributed_minor
            - self.later_funding_minor
            - self.resolutions_minor
    }

    /// Bank minus ledger minus the explained items: zero when every cent of
    /// the difference is accounted for.
    pub fn unexplained_minor(&self) -> i64 {
        self.bank_minor() - self.ledger_minor - self.explained_minor()
    }

    /// A break when the difference is not explained: a statement missing
    /// (the bank's balance moved by entries we never saw), or a posting to
    /// the bank account in our books that no bank entry accounts for.
    pub fn judge(&self, date: NaiveDate) -> Option<Found> {
        let unexplained = self.unexplained_minor();
        if unexplained == 0 || self.accounts.is_empty() {
            return None;
        }
        let m = |v: i64| minor_in(v, &self.currency);
        Some(Found {
            category: Category::SettlementMismatch,
            our_reference: format!("balance:{}", self.currency),
            their_reference: self
                .accounts
                .iter()
                .map(|a| a.account.clone())
                .collect::<Vec<_>>()
                .join(","),
            our_amount_minor: Some(self.ledger_minor),
            their_amount_minor: Some(self.bank_minor()),
            currency: self.currency.clone(),
            detail: format!(
                "on {date} the bank holds {} {c} and bank:settlement:{c} {} {c}; the listed items explain {} {c} (brought forward {}, payouts in transit {}, payout differences {}, unattributed entries {}, funding booked from later entries -{}, posted by resolved breaks -{}), {} {c} is unexplained",
                m(self.bank_minor()),
                m(self.ledger_minor),
                m(self.explained_minor()),
                m(self.brought_forward_minor()),
                m(self.in_transit_minor),
                m(self.payout_difference_minor),
                m(self.unattributed_minor),
                m(self.later_funding_minor),
                m(self.resolutions_minor),
                m(unexplained),
                c = self.currency,
            ),
            evidence: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(signed: i64, e2e: Option<&str>, remittance: Option<&str>) -> BankLine {
        BankLine {
            entry_id: 77,
            file_id: 1,
            line: 3,
            signed_minor: signed,
            currency: "CNY".into(),
            booked: true,
            bank_reference: Some("B-77".into()),
            end_to_end_id: e2e.map(str::to_string),
            remittance: remittance.map(str::to_string),
        }
    }

    const ID: &str = "0190a1b2c3d47000800000000000000a";

    fn batch(net: i64) -> Expected {
        Expected::Batch {
            id: uuid::Uuid::parse_str(ID).unwrap(),
            biller_id: "sh-water".into(),
            net_minor: net,
            currency: "CNY".into(),
        }
    }

    #[test]
    fn references_are_read_strictly() {
        assert_eq!(
            batch_of(&format!("BCE{ID}")).unwrap().simple().to_string(),
            ID
        );
        assert_eq!(batch_of("BCE123"), None);
        assert_eq!(batch_of(&format!("XCE{ID}")), None);
        assert_eq!(
            funding_of("funds BCF-alipay-20261129 thanks"),
            Some((
                "alipay".into(),
                NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
            ))
        );
        assert_eq!(funding_of("BCF-alipay-2026-11-29"), None);
        assert_eq!(
            funding_of("/REMI/BCF-wechat-20261129/X"),
            Some((
                "wechat".into(),
                NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
            ))
        );
        assert_eq!(funding_of("XBCF-alipay-20261129"), None);
    }

    #[test]
    fn a_batch_debited_for_its_net_matches_and_any_other_amount_is_a_settlement_mismatch() {
        let l = line(-9_950, Some(&format!("BCE{ID}")), None);
        assert!(matches!(
            judge_line(&l, Some(&batch(9_950))),
            BankVerdict::Batch { .. }
        ));
        match judge_line(&l, Some(&batch(9_900))) {
            BankVerdict::Break(f) => {
                assert_eq!(f.category, Category::SettlementMismatch);
                assert_eq!(f.our_amount_minor, Some(-9_900));
                assert_eq!(f.their_amount_minor, Some(-9_950));
                assert_eq!(f.our_reference, "bank-entry:77");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn funding_matches_what_the_channel_owes() {
        let owed = Expected::Funding {
            channel_id: "alipay".into(),
            date: NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
            owed_minor: 100_000,
            currency: "CNY".into(),
        };
        let l = line(100_000, None, Some("BCF-alipay-20261129"));
        assert!(matches!(
            judge_line(&l, Some(&owed)),
            BankVerdict::Funding { .. }
        ));
        // Any amount of the right currency is booked; the total is judged apart.
        let short = line(99_900, None, Some("BCF-alipay-20261129"));
        assert!(matches!(
            judge_line(&short, Some(&owed)),
            BankVerdict::Funding { .. }
        ));
        let mut eur = short.clone();
        eur.currency = "EUR".into();
        assert!(matches!(
            judge_line(&eur, Some(&owed)),
            BankVerdict::Break(Found {
                category: Category::SettlementMismatch,
                ..
            })
        ));
    }

    #[test]
    fn a_date_funded_in_several_transfers_is_judged_on_their_sum() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        assert_eq!(judge_funding("alipay", d, 100_000, "CNY", 2, 100_000), None);
        let under = judge_funding("alipay", d, 100_000, "CNY", 1, 60_000).unwrap();
        assert_eq!(under.our_reference, "funding:alipay:20261129");
        assert_eq!(
            under.detail,
            "alipay owes 1000.00 CNY for its statement of 2026-11-29; 1 transfer booked so far total 600.00 CNY: under-funded by 400.00 CNY"
        );
        let over = judge_funding("alipay", d, 100_000, "CNY", 3, 100_001).unwrap();
        assert!(
            over.detail.ends_with("over-funded by 0.01 CNY"),
            "{}",
            over.detail
        );
        assert_eq!(over.their_amount_minor, Some(100_001));
    }

    #[test]
    fn the_bank_balance_is_explained_item_by_item_or_it_is_a_break() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let mut p = BankPosition {
            currency: "CNY".into(),
            accounts: vec![AccountPosition {
                account: "3105************0001".into(),
                closing_minor: 1_000_500,
                closing_date: Some(d),
                brought_forward_minor: 1_000_000,
            }],
            ledger_minor: -9_500,
            in_transit_count: 1,
            in_transit_minor: 10_000,
            ..Default::default()
        };
        // 1,000,500 - (-9,500) = 1,010,000 = 1,000,000 brought forward + 10,000 in transit.
        assert_eq!(p.unexplained_minor(), 0);
        assert_eq!(p.judge(d), None);
        // A statement we never saw moved the balance by 1.00.
        p.accounts[0].closing_minor += 100;
        let f = p.judge(d).unwrap();
        assert_eq!(f.category, Category::SettlementMismatch);
        assert_eq!(f.our_reference, "balance:CNY");
        assert!(
            f.detail.ends_with("1.00 CNY is unexplained"),
            "{}",
            f.detail
        );
    }

    #[test]
    fn unknown_lines_are_unmatched_and_pending_ones_are_not_reconciled() {
        let l = line(5_00, None, Some("interest"));
        assert!(matches!(
            judge_line(&l, None),
            BankVerdict::Break(Found {
                category: Category::UnmatchedBankLine,
                ..
            })
        ));
        // A credit pointing at a batch is not the batch's payout.
        let l = line(9_950, Some(&format!("BCE{ID}")), None);
        assert!(matches!(
            judge_line(&l, Some(&batch(9_950))),
            BankVerdict::Break(Found {
                category: Category::UnmatchedBankLine,
                ..
            })
        ));
        let mut p = line(-1, None, None);
        p.booked = false;
        assert_eq!(judge_line(&p, None), BankVerdict::NotBooked);
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    /// sh-water's batch of the 20th, closed at 23:05 Shanghai: due the 21st.
    fn closed(net: i64) -> ClosedBatch {
        ClosedBatch {
            id: uuid::Uuid::parse_str(ID).unwrap(),
            biller_id: "sh-water".into(),
            business_date: day(20),
            created_at: "2026-11-20T15:05:00Z".parse().unwrap(),
            net_minor: net,
            currency: "CNY".into(),
            files_written: true,
        }
    }

    fn unpaid(p: Payout) -> Found {
        match p {
            Payout::Unpaid(f) => f,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_batch_due_on_the_statement_date_and_never_debited_is_a_settlement_mismatch() {
        let b = closed(109_650);
        assert_eq!(b.due(), Some(day(21)));
        let window = DueWindow::of(day(21), Some(day(20)));
        let f = unpaid(judge_payout(&b, &window, &BTreeSet::new()));
        assert_eq!(f.category, Category::SettlementMismatch);
        assert_eq!(f.our_reference, format!("batch:{}", b.id));
        assert_eq!(f.their_reference, b.id.to_string());
        assert_eq!(f.our_amount_minor, Some(-109_650));
        assert_eq!(f.their_amount_minor, None);
        assert_eq!(f.currency, "CNY");
        assert_eq!(
            f.detail,
            format!(
                "batch {} of sh-water nets 1096.50 CNY, requested for execution on 2026-11-21: no booked debit with EndToEndId BCE{ID} on the statement of 2026-11-21 or any earlier one",
                b.id
            )
        );
        // The same break whatever else the run sees: its subject is the batch.
        let other = BTreeSet::from([uuid::Uuid::nil()]);
        assert_eq!(unpaid(judge_payout(&b, &window, &other)), f);
        // Its pain.001 not written yet: said so.
        let mut pending = b.clone();
        pending.files_written = false;
        assert!(unpaid(judge_payout(&pending, &window, &other))
            .detail
            .ends_with("are not written yet"));
    }

    #[test]
    fn a_batch_any_booked_debit_moved_is_paid() {
        let b = closed(109_650);
        let e2e = format!("BCE{ID}");
        assert_eq!(paid_batch(&line(-109_650, Some(&e2e), None)), Some(b.id));
        // Any amount moves it (a wrong one is that line's own break) ...
        assert_eq!(paid_batch(&line(-1, Some(&e2e), None)), Some(b.id));
        // ... but a credit, a pending debit or another reference does not.
        assert_eq!(paid_batch(&line(109_650, Some(&e2e), None)), None);
        let mut pending = line(-109_650, Some(&e2e), None);
        pending.booked = false;
        assert_eq!(paid_batch(&pending), None);
        assert_eq!(paid_batch(&line(-109_650, None, Some(&e2e))), None);
        let paid = BTreeSet::from([b.id]);
        assert_eq!(
            judge_payout(&b, &DueWindow::of(day(21), None), &paid),
            Payout::Paid
        );
    }

    #[test]
    fn nothing_is_expected_of_a_batch_with_nothing_to_pay() {
        for net in [0, -500] {
            let b = closed(net);
            assert_eq!(b.due(), None);
            assert_eq!(
                judge_payout(&b, &DueWindow::of(day(21), Some(day(20))), &BTreeSet::new()),
                Payout::NotAsked
            );
        }
    }

    #[test]
    fn a_batch_is_judged_once_by_the_first_statement_on_or_after_its_date() {
        let b = closed(109_650);
        let none = BTreeSet::new();
        // Not due yet.
        assert_eq!(
            judge_payout(&b, &DueWindow::of(day(20), Some(day(19))), &none),
            Payout::NotDue
        );
        // The 21st had a statement: the 22nd does not judge it again (paid
        // late or not, the 21st's break stands alone).
        assert_eq!(
            judge_payout(&b, &DueWindow::of(day(22), Some(day(21))), &none),
            Payout::NotDue
        );
        // No statement for the 21st and 22nd (a weekend): the 23rd answers.
        let w = DueWindow::of(day(23), Some(day(20)));
        assert_eq!(
            w,
            DueWindow {
                from: day(21),
                through: day(23)
            }
        );
        let f = unpaid(judge_payout(&b, &w, &none));
        assert!(
            f.detail
                .ends_with("(no statement imported for 2026-11-21 to 2026-11-22)"),
            "{}",
            f.detail
        );
        assert!(unpaid(judge_payout(
            &b,
            &DueWindow::of(day(22), Some(day(20))),
            &none
        ))
        .detail
        .ends_with("(no statement imported for 2026-11-21)"));
        // Before the bank's first statement: nothing can be said.
        assert_eq!(
            judge_payout(&b, &DueWindow::of(day(23), None), &none),
            Payout::NotDue
        );
        assert_eq!(
            DueWindow::of(day(23), None),
            DueWindow {
                from: day(23),
                through: day(23)
            }
        );
    }
}
