//! Bank statements and notifications as billclear reads them, whatever the
//! format the bank sends (camt.053 statements, camt.054 notifications,
//! MT940): the model the readers in `crate::reconcile::bankfile` produce,
//! the balance proof, the currency rule, and the rule that recognises one
//! bank entry across files (see `docs/reconciliation.md`, "Bank entries").
//!
//! Pure: no I/O, no clock, no SQL.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::matching::minor_to_string;
use crate::domain::money::Currency;

/// What the bank calls the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageKind {
    /// An end-of-period account statement (camt.053 `Stmt`, MT940): it has
    /// an opening and a closing balance and belongs to the account's chain.
    Statement,
    /// A debit/credit notification sent during the day (camt.054
    /// `Ntfctn`): entries only, repeated later on the day's statement.
    Notification,
}

impl MessageKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            MessageKind::Statement => "statement",
            MessageKind::Notification => "notification",
        }
    }
}

/// The format and version a file was read as, e.g. `camt.053.001.08`,
/// `camt.054.001.02`, `mt940`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BankFormat {
    /// camt.053.001.NN (the version's two digits).
    Camt053(u8),
    /// camt.054.001.NN.
    Camt054(u8),
    Mt940,
}

impl std::fmt::Display for BankFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BankFormat::Camt053(v) => write!(f, "camt.053.001.{v:02}"),
            BankFormat::Camt054(v) => write!(f, "camt.054.001.{v:02}"),
            BankFormat::Mt940 => f.write_str("mt940"),
        }
    }
}

/// A balance as the bank states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// The code as sent: OPBD, PRCD, CLBD (camt); `60F`, `60M`, `62F`,
    /// `62M` are mapped to OPBD/OPBD/CLBD/CLBD by the MT940 reader (an
    /// intermediate page's balances count like final ones for its page).
    pub code: String,
    /// Minor units of `currency`; negative for a debit balance.
    pub signed_minor: i64,
    pub currency: String,
    pub date: NaiveDate,
}

/// One entry (camt `Ntry`, MT940 `:61:` with its `:86:`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankEntry {
    /// Position within its statement (1-based).
    pub position: u32,
    /// Where it stands in the file, for messages: an element path or a line.
    pub location: String,
    /// Minor units of `currency` (never negative; the direction is `credit`).
    pub amount_minor: i64,
    pub currency: String,
    /// Money into the account (CRDT) or out of it (DBIT). A reversal
    /// (MT940 `RC`/`RD`) is read as the direction money actually moved.
    pub credit: bool,
    /// BOOK, PDNG, INFO (camt); MT940 entries are BOOK.
    pub status: String,
    pub booking_date: Option<NaiveDate>,
    pub value_date: Option<NaiveDate>,
    /// The bank's reference for the entry (`AcctSvcrRef`; MT940 `:61:`
    /// after `//`).
    pub account_servicer_ref: Option<String>,
    /// `NtryRef`.
    pub entry_ref: Option<String>,
    /// The EndToEndId of an instruction (our pain.001's `BCE…`).
    pub end_to_end_id: Option<String>,
    /// Unstructured remittance information (camt `RmtInf/Ustrd`, joined
    /// with a space; MT940 `:86:`, its lines joined).
    pub remittance: Option<String>,
}

impl BankEntry {
    pub fn booked(&self) -> bool {
        self.status == "BOOK"
    }

    /// Signed minor units: positive into the account.
    pub fn signed_minor(&self) -> i64 {
        if self.credit {
            self.amount_minor
        } else {
            -self.amount_minor
        }
    }

    /// The bank's own reference for the entry, if it gives one.
    pub fn bank_reference(&self) -> Option<&str> {
        self.account_servicer_ref
            .as_deref()
            .or(self.entry_ref.as_deref())
            .map(str::trim)
            .filter(|r| !r.is_empty() && !r.eq_ignore_ascii_case("NONREF"))
    }
}

/// One statement (or notification) of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankStatement {
    pub kind: MessageKind,
    /// Its place in the file (1-based), for messages.
    pub index: u32,
    /// Where it starts in the file: `Document/BkToCstmrStmt/Stmt[2]`, `line 14`.
    pub location: String,
    /// `Stmt/Id`, `Ntfctn/Id`, MT940 `:20:`.
    pub id: String,
    /// `ElctrncSeqNb` (camt), the statement number of MT940 `:28C:`.
    pub electronic_seq: Option<String>,
    /// `LglSeqNb` (camt).
    pub legal_seq: Option<String>,
    /// The page of an MT940 statement (`:28C:` after `/`).
    pub page: Option<String>,
    /// IBAN or other account id, as sent.
    pub account: String,
    /// `Acct/Ccy` when the bank states it (MT940: the balances' currency).
    pub account_currency: Option<String>,
    /// OPBD (or PRCD when there is no OPBD).
    pub opening: Option<Balance>,
    /// CLBD.
    pub closing: Option<Balance>,
    /// `FrToDt` (dates of the period), when given.
    pub from_date: Option<NaiveDate>,
    pub to_date: Option<NaiveDate>,
    /// `CreDtTm` of the statement (or the group header) as a date.
    pub created: Option<NaiveDate>,
    pub entries: Vec<BankEntry>,
}

/// A file read whole: one message, one or more statements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankMessage {
    pub format: BankFormat,
    /// `GrpHdr/MsgId`; MT940: the first `:20:`.
    pub message_id: String,
    pub statements: Vec<BankStatement>,
}

/// Why a statement is refused (the location of the statement or element,
/// and the reason with its figures).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {reason}")]
pub struct StatementRefusal {
    pub location: String,
    pub reason: String,
}

fn refuse(location: &str, reason: String) -> StatementRefusal {
    StatementRefusal {
        location: location.to_string(),
        reason,
    }
}

/// `1234.50` from minor units at a scale.
fn show(minor: i64, scale: u32) -> String {
    minor_to_string(minor, scale)
}

/// Parses an amount as the bank writes it into minor units of `currency`:
/// digits with at most one decimal separator (`.`, or `,` for MT940), no
/// sign, no more decimals than the currency has. Zero is allowed (a zero
/// balance). Strict: anything else is refused with the text.
pub fn parse_minor(text: &str, currency: Currency) -> Result<i64, String> {
    let t = text.trim();
    if t.is_empty() || t.len() > 32 {
        return Err(format!("{t:?} is not an amount"));
    }
    let normal = t.replacen(',', ".", 1);
    let (int, frac) = match normal.split_once('.') {
        Some((i, f)) => (i, f),
        None => (normal.as_str(), ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) {
        return Err(format!("{t:?} is not an amount"));
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() as u32 > currency.scale() {
        return Err(format!(
            "{t:?} has more decimals than {} has ({})",
            currency.code(),
            currency.scale()
        ));
    }
    let scale = currency.scale() as usize;
    let padded = format!("{frac:0<scale$}");
    let minor: i128 = format!("{int}{padded}")
        .parse()
        .map_err(|_| format!("{t:?} is too large"))?;
    i64::try_from(minor)
        .ok()
        .filter(|m| *m <= 1_000_000_000_000_000)
        .ok_or_else(|| format!("{t:?} is too large"))
}

/// An account number shown in messages and reports: the first four and
/// last four characters, the rest masked (`3105************0001`); short
/// ones keep only their last two.
pub fn mask_account(account: &str) -> String {
    let chars: Vec<char> = account.chars().collect();
    let n = chars.len();
    if n <= 8 {
        let keep = n.min(2);
        return format!(
            "{}{}",
            "*".repeat(n - keep),
            chars[n - keep..].iter().collect::<String>()
        );
    }
    format!(
        "{}{}{}",
        chars[..4].iter().collect::<String>(),
        "*".repeat(n - 8),
        chars[n - 4..].iter().collect::<String>()
    )
}

/// Account ids compared as banks write them: spaces dropped, letters in
/// upper case (`NL91 ABNA 0417 1643 00` is `NL91ABNA0417164300`).
pub fn normalize_account(account: &str) -> String {
    account
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect()
}

/// One of our bank accounts: its id and its only currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OurAccount {
    pub account: String,
    pub currency: Currency,
}

impl BankStatement {
    /// The statement's currency: `Acct/Ccy` when stated, else the one
    /// every balance and entry is in. A statement in another currency than
    /// its account's, or mixing currencies, is refused.
    pub fn currency(&self) -> Result<Currency, StatementRefusal> {
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for b in self.opening.iter().chain(self.closing.iter()) {
            seen.push((b.currency.as_str(), "a balance"));
        }
        for e in &self.entries {
            seen.push((e.currency.as_str(), "an entry"));
        }
        let code = match &self.account_currency {
            Some(c) => c.as_str(),
            None => match seen.first() {
                Some((c, _)) => c,
                None => {
                    return Err(refuse(
                        &self.location,
                        "no currency: no Acct/Ccy, no balance and no entry".into(),
                    ))
                }
            },
        };
        if let Some((other, what)) = seen.iter().find(|(c, _)| *c != code) {
            return Err(refuse(
                &self.location,
                match &self.account_currency {
                    Some(acct) => format!(
                        "{what} is in {other}, the account {} is in {acct}: a statement in one currency only is accepted",
                        mask_account(&self.account)
                    ),
                    None => format!(
                        "mixes currencies ({code} and {other}) on account {}: refused",
                        mask_account(&self.account)
                    ),
                },
            ));
        }
        Currency::from_code(code)
            .map_err(|e| refuse(&self.location, format!("currency {code:?}: {e}")))
    }

    /// Checks the statement against our accounts: the account must be one
    /// of ours, and the statement in that account's currency.
    pub fn check_ours(&self, ours: &[OurAccount]) -> Result<Currency, StatementRefusal> {
        let account = normalize_account(&self.account);
        let Some(mine) = ours
            .iter()
            .find(|o| normalize_account(&o.account) == account)
        else {
            return Err(refuse(
                &self.location,
                format!(
                    "account {} is not one of ours (settlement.debtor, recon.bank_accounts): refused, nothing stored",
                    mask_account(&self.account)
                ),
            ));
        };
        let currency = self.currency()?;
        if currency != mine.currency {
            return Err(refuse(
                &self.location,
                format!(
                    "the statement is in {}, account {} is kept in {}: refused",
                    currency.code(),
                    mask_account(&self.account),
                    mine.currency.code()
                ),
            ));
        }
        Ok(currency)
    }

    /// The proof a statement must pass: opening balance plus booked credits
    /// minus booked debits equals the closing balance. A notification has
    /// no balances and proves nothing (Ok(None)). A statement without an
    /// opening (OPBD/PRCD) or closing (CLBD) balance is refused.
    pub fn prove_balances(&self) -> Result<Option<BalanceProof>, StatementRefusal> {
        if self.kind == MessageKind::Notification {
            return Ok(None);
        }
        let currency = self.currency()?;
        let scale = currency.scale();
        let opening = self.opening.as_ref().ok_or_else(|| {
            refuse(
                &self.location,
                "no opening balance (OPBD or PRCD; MT940 :60F:/:60M:): its entries cannot be proven".into(),
            )
        })?;
        let closing = self.closing.as_ref().ok_or_else(|| {
            refuse(
                &self.location,
                "no closing balance (CLBD; MT940 :62F:/:62M:): its entries cannot be proven".into(),
            )
        })?;
        let (mut credits, mut debits) = (0i64, 0i64);
        for e in self.entries.iter().filter(|e| e.booked()) {
            if e.credit {
                credits = credits.checked_add(e.amount_minor).unwrap_or(i64::MAX);
            } else {
                debits = debits.checked_add(e.amount_minor).unwrap_or(i64::MAX);
            }
        }
        let computed = (opening.signed_minor as i128) + credits as i128 - debits as i128;
        if computed != closing.signed_minor as i128 {
            return Err(refuse(
                &self.location,
                format!(
                    "balances do not add up: opening {} + credits {} - debits {} = {}, but the closing balance is {} {}",
                    show(opening.signed_minor, scale),
                    show(credits, scale),
                    show(debits, scale),
                    show(computed as i64, scale),
                    show(closing.signed_minor, scale),
                    currency.code()
                ),
            ));
        }
        Ok(Some(BalanceProof {
            opening_minor: opening.signed_minor,
            opening_date: opening.date,
            credits_minor: credits,
            debits_minor: debits,
            closing_minor: closing.signed_minor,
            closing_date: closing.date,
        }))
    }

    /// The sequence number that orders the account's statements
    /// (`ElctrncSeqNb`, else `LglSeqNb`; MT940's statement number), when
    /// it is a number.
    pub fn sequence_number(&self) -> Option<i64> {
        self.electronic_seq
            .as_deref()
            .or(self.legal_seq.as_deref())
            .and_then(|s| s.trim().parse::<i64>().ok())
            .filter(|n| *n >= 0)
    }

    /// The date the statement reports: its closing balance's date, else the
    /// end of its period, else its latest booking date, else its creation.
    pub fn business_date(&self) -> Option<NaiveDate> {
        self.closing
            .as_ref()
            .map(|b| b.date)
            .or(self.to_date)
            .or_else(|| self.entries.iter().filter_map(|e| e.booking_date).max())
            .or(self.created)
    }

    /// What identifies the statement itself across files: the account, its
    /// kind, and its sequence number with the year of its date (numbers
    /// restart every year at many banks; `00330` is `330`) and the MT940
    /// page after the first, when it has one; else its id.
    pub fn identity(&self) -> String {
        let seq = self
            .electronic_seq
            .as_deref()
            .or(self.legal_seq.as_deref())
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let year = self
            .business_date()
            .map(|d| format!("@{}", d.format("%Y")))
            .unwrap_or_default();
        let base = match (self.sequence_number(), seq) {
            (Some(n), _) => format!("seq:{n}{year}"),
            (None, Some(s)) => format!("seq:{s}{year}"),
            (None, None) => format!("id:{}", self.id.trim()),
        };
        // The first page of an MT940 statement is the statement as a
        // camt.053 of it has it (no page): the same identity.
        let page = self
            .page
            .as_deref()
            .map(str::trim)
            .filter(|p| p.trim_start_matches('0') != "1" && !p.is_empty())
            .map(|p| format!("/page:{p}"))
            .unwrap_or_default();
        format!(
            "{}:{}:{base}{page}",
            normalize_account(&self.account),
            self.kind.as_str()
        )
    }

    /// Every entry's keys (see [`EntryKeys`]), in entry order. Entries the
    /// bank has not booked get keys too (never recorded), and count for
    /// neither positions nor occurrences.
    pub fn entry_keys(&self) -> Vec<EntryKeys> {
        let identity = self.identity();
        // A bank reference given to more than one entry of the statement
        // identifies none of them: those entries fall back to the next rule.
        let mut refs: HashMap<&str, u32> = HashMap::new();
        for e in self.entries.iter().filter(|e| e.booked()) {
            if let Some(r) = e.bank_reference() {
                *refs.entry(r).or_insert(0) += 1;
            }
        }
        let mut occurrences: HashMap<String, u32> = HashMap::new();
        let mut booked = 0u32;
        self.entries
            .iter()
            .map(|e| {
                let content = content_of(e);
                let content_key = format!("content:{content}");
                if !e.booked() {
                    return EntryKeys {
                        rule: IdentityRule::Position,
                        primary: format!("not-booked:{identity}:{}", e.position),
                        content: content_key,
                    };
                }
                // Positions and occurrences count booked entries only: a
                // pending entry (camt), or its absence (MT940), moves nothing.
                booked += 1;
                let n = occurrences.entry(content.clone()).or_insert(0);
                *n += 1;
                let unique_ref = e.bank_reference().filter(|r| refs.get(r) == Some(&1));
                let (rule, primary) = match unique_ref {
                    Some(r) => (IdentityRule::BankReference, format!("ref:{r}")),
                    None if self.kind == MessageKind::Statement => (
                        IdentityRule::Position,
                        format!("position:{identity}:{booked}"),
                    ),
                    None => (
                        IdentityRule::Content,
                        format!("content:{identity}:{content}#{n}"),
                    ),
                };
                EntryKeys {
                    rule,
                    primary,
                    content: content_key,
                }
            })
            .collect()
    }
}

/// Which rule recognised an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityRule {
    /// The bank's entry reference (`AcctSvcrRef`, else `NtryRef`).
    BankReference,
    /// The statement's identity and the entry's position in it.
    Position,
    /// Its content and its occurrence among identical entries of its
    /// statement or notification.
    Content,
}

impl IdentityRule {
    pub fn as_str(&self) -> &'static str {
        match self {
            IdentityRule::BankReference => "bank-reference",
            IdentityRule::Position => "position",
            IdentityRule::Content => "content",
        }
    }
}

/// How one entry is recognised across files (keys are per account).
///
/// - `primary`: the first rule that applies: the bank's reference (when no
///   other booked entry of the statement carries it); else, on a statement,
///   the statement's identity and the entry's position among its booked
///   entries; else (a notification's entry without a reference) the
///   notification's identity, the entry's content and its occurrence among
///   identical booked entries of that notification (`#1`, `#2`, ...).
/// - `content`: booking and value date, direction, amount, currency,
///   EndToEndId and remittance. It lets the day's statement recognise an
///   entry first seen on a notification (or the other way round) when the
///   bank gave it no common reference: matched only across kinds, each
///   entry taken once per kind, never between two statements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryKeys {
    pub rule: IdentityRule,
    pub primary: String,
    pub content: String,
}

fn content_of(e: &BankEntry) -> String {
    let d = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    format!(
        "{}|{}|{}|{}|{}|{}|{}",
        d(e.booking_date),
        d(e.value_date),
        if e.credit { "C" } else { "D" },
        e.amount_minor,
        e.currency,
        e.end_to_end_id.as_deref().unwrap_or("").trim(),
        e.remittance
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// A statement's balances, proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceProof {
    pub opening_minor: i64,
    pub opening_date: NaiveDate,
    pub credits_minor: i64,
    pub debits_minor: i64,
    pub closing_minor: i64,
    pub closing_date: NaiveDate,
}

/// One statement of an account's chain, as the gap check reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    pub statement_id: String,
    pub sequence: Option<i64>,
    /// The MT940 page, when the statement is split in pages.
    pub page: Option<String>,
    pub business_date: NaiveDate,
    pub from_date: Option<NaiveDate>,
    pub opening_minor: i64,
    pub opening_date: NaiveDate,
    pub closing_minor: i64,
    pub closing_date: NaiveDate,
}

/// What is wrong between a statement and the one before it in the
/// account's chain (sequence-number order where both have one, else date
/// order): a `statement-gap` when not None.
pub fn chain_gap(previous: &ChainLink, this: &ChainLink, scale: u32) -> Option<String> {
    let mut problems = Vec::new();
    if let (Some(p), Some(t)) = (previous.sequence, this.sequence) {
        if t > p + 1 {
            let missing: Vec<String> = ((p + 1)..t).take(20).map(|n| n.to_string()).collect();
            let more = if t - p - 1 > 20 { ", ..." } else { "" };
            problems.push(format!(
                "statement number{} {}{more} missing between {p} and {t}",
                if t - p - 1 == 1 { "" } else { "s" },
                missing.join(", ")
            ));
        }
    } else if this.business_date > previous.business_date {
        // Date order: a statement per banking day; a period start after the
        // day following the previous statement's date means days missing.
        if let Some(from) = this.from_date {
            if let Some(next) = previous.business_date.succ_opt() {
                if from > next {
                    let last = from.pred_opt().unwrap_or(from);
                    problems.push(if next == last {
                        format!("no statement for {next}")
                    } else {
                        format!("no statement for {next} to {last}")
                    });
                }
            }
        }
    }
    if let Some(from) = this.from_date {
        if from <= previous.business_date && this.sequence.is_none() {
            problems.push(format!(
                "its period starts {from}, the previous statement ({}) already covers {}: overlap",
                previous.statement_id, previous.business_date
            ));
        }
    }
    if this.opening_minor != previous.closing_minor {
        problems.push(format!(
            "its opening balance {} is not the previous statement's ({}{}) closing balance {}",
            show(this.opening_minor, scale),
            previous.statement_id,
            previous
                .sequence
                .map(|s| format!(", number {s}"))
                .unwrap_or_default(),
            show(previous.closing_minor, scale)
        ));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    fn entry(position: u32, minor: i64, credit: bool, r: Option<&str>) -> BankEntry {
        BankEntry {
            position,
            location: format!("Ntry[{position}]"),
            amount_minor: minor,
            currency: "CNY".into(),
            credit,
            status: "BOOK".into(),
            booking_date: Some(day(30)),
            value_date: Some(day(30)),
            account_servicer_ref: r.map(str::to_string),
            entry_ref: None,
            end_to_end_id: None,
            remittance: Some("BCF-alipay-20261129".into()),
        }
    }

    fn balance(code: &str, minor: i64, d: u32) -> Balance {
        Balance {
            code: code.into(),
            signed_minor: minor,
            currency: "CNY".into(),
            date: day(d),
        }
    }

    fn stmt(entries: Vec<BankEntry>, opening: i64, closing: i64) -> BankStatement {
        BankStatement {
            kind: MessageKind::Statement,
            index: 1,
            location: "Stmt[1]".into(),
            id: "S-1".into(),
            electronic_seq: Some("12".into()),
            legal_seq: None,
            page: None,
            account: "31050161373600000001".into(),
            account_currency: None,
            opening: Some(balance("OPBD", opening, 29)),
            closing: Some(balance("CLBD", closing, 30)),
            from_date: None,
            to_date: None,
            created: None,
            entries,
        }
    }

    #[test]
    fn amounts_are_read_exactly_or_refused() {
        let cny = Currency::CNY;
        assert_eq!(parse_minor("1000000.00", cny), Ok(100_000_000));
        assert_eq!(parse_minor("0", cny), Ok(0));
        assert_eq!(parse_minor("12,5", cny), Ok(1_250));
        assert_eq!(parse_minor("1.230", cny), Ok(123));
        assert!(parse_minor("1.234", cny)
            .unwrap_err()
            .contains("more decimals"));
        for bad in ["", "-1", "1e3", "1.2.3", " . ", "1 000"] {
            assert!(parse_minor(bad, cny).is_err(), "{bad:?}");
        }
        let jpy = Currency::from_code("JPY").unwrap();
        assert_eq!(parse_minor("1500", jpy), Ok(1_500));
        assert!(parse_minor("1500.5", jpy).is_err());
    }

    #[test]
    fn accounts_are_masked_and_compared_as_banks_write_them() {
        assert_eq!(mask_account("31050161373600000001"), "3105************0001");
        assert_eq!(mask_account("123456"), "****56");
        assert_eq!(
            normalize_account("nl91 abna 0417 1643 00"),
            "NL91ABNA0417164300"
        );
    }

    #[test]
    fn balances_must_add_up() {
        let s = stmt(
            vec![entry(1, 10_000, true, None), entry(2, 2_500, false, None)],
            100_000,
            107_500,
        );
        let p = s.prove_balances().unwrap().unwrap();
        assert_eq!((p.credits_minor, p.debits_minor), (10_000, 2_500));
        let bad = stmt(s.entries.clone(), 100_000, 107_600);
        let e = bad.prove_balances().unwrap_err();
        assert_eq!(
            e.reason,
            "balances do not add up: opening 1000.00 + credits 100.00 - debits 25.00 = 1075.00, but the closing balance is 1076.00 CNY"
        );
        // Pending entries are not in the booked balance.
        let mut pending = s.clone();
        pending.entries.push(BankEntry {
            status: "PDNG".into(),
            ..entry(3, 99, false, None)
        });
        assert!(pending.prove_balances().is_ok());
        let mut no_close = s.clone();
        no_close.closing = None;
        assert!(no_close
            .prove_balances()
            .unwrap_err()
            .reason
            .contains("no closing balance"));
    }

    #[test]
    fn currency_comes_from_the_account_or_else_the_amounts_and_is_never_mixed() {
        let mut s = stmt(vec![entry(1, 10_000, true, None)], 0, 10_000);
        assert_eq!(s.currency().unwrap(), Currency::CNY);
        s.entries[0].currency = "EUR".into();
        assert!(s
            .currency()
            .unwrap_err()
            .reason
            .contains("mixes currencies"));
        s.account_currency = Some("CNY".into());
        assert!(s.currency().unwrap_err().reason.contains("is in EUR"));
        let ours = [OurAccount {
            account: "3105 0161 3736 0000 0001".into(),
            currency: Currency::CNY,
        }];
        let good = stmt(vec![entry(1, 10_000, true, None)], 0, 10_000);
        assert_eq!(good.check_ours(&ours).unwrap(), Currency::CNY);
        let mut theirs = good.clone();
        theirs.account = "NL91ABNA0417164300".into();
        let e = theirs.check_ours(&ours).unwrap_err();
        assert!(e.reason.contains("NL91**********4300"), "{}", e.reason);
        assert!(!e.reason.contains("0417164300"));
        let eur = [OurAccount {
            account: "31050161373600000001".into(),
            currency: Currency::from_code("EUR").unwrap(),
        }];
        assert!(good
            .check_ours(&eur)
            .unwrap_err()
            .reason
            .contains("kept in EUR"));
    }

    #[test]
    fn entries_are_recognised_by_reference_then_position_then_content() {
        let s = stmt(
            vec![
                entry(1, 10_000, true, Some("B-1")),
                entry(2, 10_000, true, None),
                entry(3, 10_000, true, None),
            ],
            0,
            30_000,
        );
        let k = s.entry_keys();
        assert_eq!(k[0].rule, IdentityRule::BankReference);
        assert_eq!(k[0].primary, "ref:B-1");
        assert_eq!(k[1].rule, IdentityRule::Position);
        assert_eq!(
            k[1].primary,
            "position:31050161373600000001:statement:seq:12@2026:2"
        );
        // Identical content: one content key (matched across kinds, each
        // entry taken once).
        assert_eq!(k[1].content, k[2].content);
        assert!(!k[1].content.contains('#'));
        // A notification's entry without a reference: the notification,
        // its content and its occurrence.
        let mut n = s.clone();
        n.kind = MessageKind::Notification;
        let kn = n.entry_keys();
        assert_eq!(kn[1].rule, IdentityRule::Content);
        assert!(kn[1]
            .primary
            .starts_with("content:31050161373600000001:notification:seq:12@2026:"));
        assert!(kn[1].primary.ends_with("#2") && kn[2].primary.ends_with("#3"));
        // A reference two booked entries share identifies neither; a
        // pending entry moves no position.
        let mut shared = s.clone();
        shared.entries[1].account_servicer_ref = Some("B-1".into());
        shared.entries.insert(
            0,
            BankEntry {
                status: "PDNG".into(),
                ..entry(9, 5, false, None)
            },
        );
        let ks = shared.entry_keys();
        assert_eq!(ks[1].rule, IdentityRule::Position);
        assert_eq!(ks[1].primary, k[1].primary.replace(":2", ":1"));
        assert_eq!(ks[3].primary, k[2].primary);
        // Leading zeros and the first MT940 page change nothing.
        let mut mt = s.clone();
        mt.electronic_seq = Some("00012".into());
        mt.page = Some("1".into());
        assert_eq!(mt.entry_keys(), k);
        // A new MsgId or file changes nothing: only the statement counts.
        assert_eq!(s.clone().entry_keys(), k);
        // No sequence number: the statement's id.
        let mut no_seq = s.clone();
        no_seq.electronic_seq = None;
        assert!(no_seq.entry_keys()[1].primary.contains(":id:S-1:2"));
    }

    fn link(seq: Option<i64>, d: u32, opening: i64, closing: i64) -> ChainLink {
        ChainLink {
            statement_id: format!("S-{d}"),
            sequence: seq,
            page: None,
            business_date: day(d),
            from_date: Some(day(d)),
            opening_minor: opening,
            opening_date: day(d),
            closing_minor: closing,
            closing_date: day(d),
        }
    }

    #[test]
    fn the_chain_finds_missing_numbers_dates_and_balances_that_do_not_carry() {
        let a = link(Some(11), 27, 0, 500);
        assert_eq!(chain_gap(&a, &link(Some(12), 28, 500, 700), 2), None);
        assert_eq!(
            chain_gap(&a, &link(Some(13), 29, 500, 700), 2).unwrap(),
            "statement number 12 missing between 11 and 13"
        );
        assert_eq!(
            chain_gap(&a, &link(Some(12), 28, 400, 700), 2).unwrap(),
            "its opening balance 4.00 is not the previous statement's (S-27, number 11) closing balance 5.00"
        );
        let b = link(None, 27, 0, 500);
        assert_eq!(chain_gap(&b, &link(None, 28, 500, 600), 2), None);
        assert_eq!(
            chain_gap(&b, &link(None, 30, 500, 600), 2).unwrap(),
            "no statement for 2026-11-28 to 2026-11-29"
        );
        let mut overlap = link(None, 28, 500, 600);
        overlap.from_date = Some(day(27));
        assert!(chain_gap(&b, &overlap, 2).unwrap().contains("overlap"));
    }
}
