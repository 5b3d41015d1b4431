//! Matching our settlement account's bank statement (pure).
//!
//! Booked debits carry the EndToEndId of our pain.001 (`BCE` + the batch
//! id's 32 hex digits): the bank paid a biller's batch, for its net.
//! Booked credits are payment apps funding us: their remittance names
//! `BCF-<channel id>-<YYYYMMDD>`, the statement date they pay, for the
//! amount their statement says they owe. Anything else is a line we cannot
//! attribute. Pending and informational lines are not reconciled (counted).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::matching::{minor_to_string, Category, Found};

/// One bank statement line, as reconciliation reads it. Amounts are signed
/// minor units: credits (money in) positive, debits negative.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankLine {
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
    /// What a break about this line is called (stable across re-imports of
    /// the same statement: the bank's reference, else file and line).
    pub fn subject(&self) -> String {
        match &self.bank_reference {
            Some(r) if !r.is_empty() => format!("bank:{r}"),
            _ => format!("file:{}:line:{}", self.file_id, self.line),
        }
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
/// (`BCF-<channel id>-<YYYYMMDD>`) anywhere in the remittance text.
pub fn funding_of(remittance: &str) -> Option<(String, NaiveDate)> {
    remittance.split_whitespace().find_map(|word| {
        let rest = word.strip_prefix("BCF-")?;
        let (channel, date) = rest.rsplit_once('-')?;
        let date = NaiveDate::parse_from_str(date, "%Y%m%d").ok()?;
        (!channel.is_empty()).then(|| (channel.to_string(), date))
    })
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
            if line.signed_minor == *owed_minor && *currency == line.currency {
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
                        "{channel_id} owes {} {currency} for {date}; the bank credited {} {}",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn line(signed: i64, e2e: Option<&str>, remittance: Option<&str>) -> BankLine {
        BankLine {
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
                assert_eq!(f.our_reference, "bank:B-77");
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
        let short = line(99_900, None, Some("BCF-alipay-20261129"));
        assert!(matches!(
            judge_line(&short, Some(&owed)),
            BankVerdict::Break(Found {
                category: Category::SettlementMismatch,
                ..
            })
        ));
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
}
