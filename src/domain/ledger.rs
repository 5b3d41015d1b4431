//! Double-entry ledger rules, after TigerBeetle's two-phase transfers.
//!
//! Balances are never stored: they are derived from append-only entries.
//! Each entry sits in a *layer*: `pending` (reserved by a two-phase
//! transfer) or `posted` (final). A pending transfer books the pending
//! layer; posting it releases the pending layer and books the posted layer;
//! voiding it releases the pending layer only. Every journal balances per
//! currency and per layer — checked here and again by the database.

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::Decimal;
use uuid::Uuid;

use super::ids::{BillerId, ChannelId, PaymentId};
use super::money::{Currency, Money};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountType {
    Asset,
    Liability,
    Income,
    Expense,
}

impl AccountType {
    pub fn as_str(&self) -> &'static str {
        match self {
            AccountType::Asset => "asset",
            AccountType::Liability => "liability",
            AccountType::Income => "income",
            AccountType::Expense => "expense",
        }
    }

    /// Debit-normal accounts (assets, expenses) grow with debits.
    pub fn debit_normal(&self) -> bool {
        matches!(self, AccountType::Asset | AccountType::Expense)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Channel(ChannelId),
    Biller(BillerId),
    System,
}

impl Owner {
    pub fn kind(&self) -> &'static str {
        match self {
            Owner::Channel(_) => "channel",
            Owner::Biller(_) => "biller",
            Owner::System => "system",
        }
    }
    pub fn id(&self) -> Option<&str> {
        match self {
            Owner::Channel(c) => Some(c.as_str()),
            Owner::Biller(b) => Some(b.as_str()),
            Owner::System => None,
        }
    }
}

/// An account of the chart (docs/accounting.md). Its code is unique and
/// carries the currency: `biller:sh-water:payable:CNY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSpec {
    pub code: String,
    pub kind: AccountType,
    pub currency: Currency,
    pub owner: Owner,
}

impl AccountSpec {
    pub fn channel_receivable(channel: &ChannelId, currency: Currency) -> AccountSpec {
        AccountSpec {
            code: format!("channel:{channel}:receivable:{currency}"),
            kind: AccountType::Asset,
            currency,
            owner: Owner::Channel(channel.clone()),
        }
    }
    pub fn biller_payable(biller: &BillerId, currency: Currency) -> AccountSpec {
        AccountSpec {
            code: format!("biller:{biller}:payable:{currency}"),
            kind: AccountType::Liability,
            currency,
            owner: Owner::Biller(biller.clone()),
        }
    }
    /// The system accounts every currency needs.
    pub fn system(currency: Currency) -> Vec<AccountSpec> {
        [
            ("revenue:commission", AccountType::Income),
            ("bank:settlement", AccountType::Asset),
            ("suspense", AccountType::Liability),
        ]
        .into_iter()
        .map(|(name, kind)| AccountSpec {
            code: format!("{name}:{currency}"),
            kind,
            currency,
            owner: Owner::System,
        })
        .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Layer {
    Pending,
    Posted,
}

impl Layer {
    pub fn as_str(&self) -> &'static str {
        match self {
            Layer::Pending => "pending",
            Layer::Posted => "posted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    Debit,
    Credit,
}

impl Side {
    pub fn as_str(&self) -> &'static str {
        match self {
            Side::Debit => "debit",
            Side::Credit => "credit",
        }
    }
    fn opposite(&self) -> Side {
        match self {
            Side::Debit => Side::Credit,
            Side::Credit => Side::Debit,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalKind {
    Pending,
    Post,
    Void,
    Posted,
}

impl JournalKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            JournalKind::Pending => "pending",
            JournalKind::Post => "post",
            JournalKind::Void => "void",
            JournalKind::Posted => "posted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Account code (see [`AccountSpec`]).
    pub account: String,
    pub layer: Layer,
    pub side: Side,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("a journal needs at least two entries, got {0}")]
    TooFewEntries(usize),
    #[error("journal does not balance in {currency} ({layer} layer): debits {debits} <> credits {credits}")]
    Unbalanced {
        currency: Currency,
        layer: &'static str,
        debits: Decimal,
        credits: Decimal,
    },
    #[error("only a pending journal can be posted or voided")]
    NotPending,
}

/// Dr `debit` / Cr `credit`, the same amount in one layer.
fn two_legs(debit: String, credit: String, layer: Layer, amount: Money) -> Vec<Entry> {
    vec![
        Entry {
            account: debit,
            layer,
            side: Side::Debit,
            amount,
        },
        Entry {
            account: credit,
            layer,
            side: Side::Credit,
            amount,
        },
    ]
}

/// A balanced set of entries, recorded atomically. Only constructible
/// through functions that check the balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    pub id: Uuid,
    pub kind: JournalKind,
    pub resolves: Option<Uuid>,
    pub payment_id: Option<PaymentId>,
    pub description: String,
    entries: Vec<Entry>,
}

impl Journal {
    fn new(
        kind: JournalKind,
        resolves: Option<Uuid>,
        payment_id: Option<PaymentId>,
        description: String,
        entries: Vec<Entry>,
    ) -> Result<Journal, LedgerError> {
        check_balanced(&entries)?;
        Ok(Journal {
            id: Uuid::now_v7(),
            kind,
            resolves,
            payment_id,
            description,
            entries,
        })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Payment accepted: pending Dr channel receivable / Cr biller payable.
    pub fn payment_accepted(
        payment: PaymentId,
        channel: &ChannelId,
        biller: &BillerId,
        amount: Money,
    ) -> Journal {
        let c = amount.currency();
        let entries = two_legs(
            AccountSpec::channel_receivable(channel, c).code,
            AccountSpec::biller_payable(biller, c).code,
            Layer::Pending,
            amount,
        );
        Journal::new(
            JournalKind::Pending,
            None,
            Some(payment),
            format!("payment {payment} accepted"),
            entries,
        )
        .expect("two equal opposite entries balance")
    }

    /// Posts a pending journal: reverses its pending layer and books the same
    /// entries in the posted layer.
    pub fn post(&self, description: impl Into<String>) -> Result<Journal, LedgerError> {
        self.resolve(JournalKind::Post, description.into())
    }

    /// Voids a pending journal: reverses its pending layer.
    pub fn void(&self, description: impl Into<String>) -> Result<Journal, LedgerError> {
        self.resolve(JournalKind::Void, description.into())
    }

    fn resolve(&self, kind: JournalKind, description: String) -> Result<Journal, LedgerError> {
        if self.kind != JournalKind::Pending {
            return Err(LedgerError::NotPending);
        }
        let mut entries: Vec<Entry> = self
            .entries
            .iter()
            .map(|e| Entry {
                side: e.side.opposite(),
                ..e.clone()
            })
            .collect();
        if kind == JournalKind::Post {
            entries.extend(self.entries.iter().map(|e| Entry {
                layer: Layer::Posted,
                ..e.clone()
            }));
        }
        Journal::new(kind, Some(self.id), self.payment_id, description, entries)
    }

    /// A settlement batch: Dr biller payable (gross less the returns the
    /// batch recovers) / Cr revenue:commission / Cr bank:settlement (net).
    /// None when nothing moves (an empty batch). Zero legs are left out.
    pub fn settlement(
        batch: Uuid,
        biller: &BillerId,
        payable: Money,
        commission: Money,
        net: Money,
        description: impl Into<String>,
    ) -> Result<Option<Journal>, LedgerError> {
        let c = payable.currency();
        let legs = [
            (
                AccountSpec::biller_payable(biller, c).code,
                Side::Debit,
                payable,
            ),
            (format!("revenue:commission:{c}"), Side::Credit, commission),
            (format!("bank:settlement:{c}"), Side::Credit, net),
        ];
        let entries: Vec<Entry> = legs
            .into_iter()
            .filter(|(_, _, m)| !m.amount().is_zero())
            .map(|(account, side, amount)| Entry {
                account,
                layer: Layer::Posted,
                side,
                amount,
            })
            .collect();
        if entries.is_empty() {
            return Ok(None);
        }
        let mut j = Journal::new(JournalKind::Posted, None, None, description.into(), entries)?;
        j.id = batch;
        Ok(Some(j))
    }

    /// A settled payment returned by its biller: the reversing transfer,
    /// Dr biller payable / Cr channel receivable (posted). The biller then
    /// owes the amount back; a later batch recovers it.
    pub fn payment_returned(
        payment: PaymentId,
        channel: &ChannelId,
        biller: &BillerId,
        amount: Money,
    ) -> Journal {
        let c = amount.currency();
        let entries = two_legs(
            AccountSpec::biller_payable(biller, c).code,
            AccountSpec::channel_receivable(channel, c).code,
            Layer::Posted,
            amount,
        );
        Journal::new(
            JournalKind::Posted,
            None,
            Some(payment),
            format!("payment {payment} returned by the biller after settlement"),
            entries,
        )
        .expect("two equal opposite entries balance")
    }

    /// A CONFIRMED payment refunded to its channel before settlement (a
    /// complaint): the same reversing transfer as a return, Dr biller
    /// payable / Cr channel receivable (posted); the payment is never
    /// settled, so nothing is owed either way afterwards.
    pub fn payment_refunded(
        payment: PaymentId,
        channel: &ChannelId,
        biller: &BillerId,
        amount: Money,
    ) -> Journal {
        let mut j = Journal::payment_returned(payment, channel, biller, amount);
        j.description = format!("payment {payment} refunded to its channel before settlement");
        j
    }

    /// A reconciliation adjustment: Dr `debit` / Cr `credit` (posted), for
    /// a break resolved by accepting the counterparty's amount or written
    /// off to `suspense`.
    pub fn adjustment(
        debit: String,
        credit: String,
        amount: Money,
        payment: Option<PaymentId>,
        description: impl Into<String>,
    ) -> Journal {
        Journal::new(
            JournalKind::Posted,
            None,
            payment,
            description.into(),
            two_legs(debit, credit, Layer::Posted, amount),
        )
        .expect("two equal opposite entries balance")
    }

    /// Rebuilds a journal read back from the store (checks it again).
    pub fn restore(
        id: Uuid,
        kind: JournalKind,
        resolves: Option<Uuid>,
        payment_id: Option<PaymentId>,
        description: String,
        entries: Vec<Entry>,
    ) -> Result<Journal, LedgerError> {
        check_balanced(&entries)?;
        Ok(Journal {
            id,
            kind,
            resolves,
            payment_id,
            description,
            entries,
        })
    }
}

/// Debits equal credits per currency and per layer; at least two entries.
pub fn check_balanced(entries: &[Entry]) -> Result<(), LedgerError> {
    if entries.len() < 2 {
        return Err(LedgerError::TooFewEntries(entries.len()));
    }
    let mut sums: BTreeMap<(Currency, Layer), (Decimal, Decimal)> = BTreeMap::new();
    for e in entries {
        let s = sums
            .entry((e.amount.currency(), e.layer))
            .or_insert((Decimal::ZERO, Decimal::ZERO));
        match e.side {
            Side::Debit => s.0 += e.amount.amount(),
            Side::Credit => s.1 += e.amount.amount(),
        }
    }
    for ((currency, layer), (debits, credits)) in sums {
        if debits != credits {
            return Err(LedgerError::Unbalanced {
                currency,
                layer: layer.as_str(),
                debits,
                credits,
            });
        }
    }
    Ok(())
}

/// Pending and posted balances of one account, each as debits and credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    pub currency: Currency,
    pub pending_debits: Decimal,
    pub pending_credits: Decimal,
    pub posted_debits: Decimal,
    pub posted_credits: Decimal,
}

impl Balance {
    pub fn zero(currency: Currency) -> Balance {
        Balance {
            currency,
            pending_debits: Decimal::ZERO,
            pending_credits: Decimal::ZERO,
            posted_debits: Decimal::ZERO,
            posted_credits: Decimal::ZERO,
        }
    }

    /// Net balance on the account's normal side (positive = what the
    /// account type says it should hold).
    pub fn net(&self, kind: AccountType, layer: Layer) -> Decimal {
        let (d, c) = match layer {
            Layer::Pending => (self.pending_debits, self.pending_credits),
            Layer::Posted => (self.posted_debits, self.posted_credits),
        };
        if kind.debit_normal() {
            d - c
        } else {
            c - d
        }
    }
}

impl fmt::Display for Balance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pending Dr {} Cr {} / posted Dr {} Cr {} {}",
            self.pending_debits,
            self.pending_credits,
            self.posted_debits,
            self.posted_credits,
            self.currency
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted() -> Journal {
        Journal::payment_accepted(
            PaymentId::new(),
            &ChannelId::parse("alipay").unwrap(),
            &BillerId::parse("sh-water").unwrap(),
            Money::parse("88.50", Currency::CNY).unwrap(),
        )
    }

    fn sum(j: &Journal, account_prefix: &str, layer: Layer) -> Decimal {
        j.entries()
            .iter()
            .filter(|e| e.account.starts_with(account_prefix) && e.layer == layer)
            .map(|e| match e.side {
                Side::Debit => e.amount.amount(),
                Side::Credit => -e.amount.amount(),
            })
            .sum()
    }

    #[test]
    fn accepted_payment_is_pending_only() {
        let j = accepted();
        assert_eq!(j.kind, JournalKind::Pending);
        assert_eq!(sum(&j, "channel:", Layer::Pending).to_string(), "88.50");
        assert_eq!(sum(&j, "biller:", Layer::Pending).to_string(), "-88.50");
        assert!(j.entries().iter().all(|e| e.layer == Layer::Pending));
    }

    #[test]
    fn post_moves_pending_to_posted() {
        let p = accepted();
        let post = p.post("confirmed").unwrap();
        assert_eq!(post.resolves, Some(p.id));
        assert_eq!(post.entries().len(), 4);
        // pending layer nets to zero over both journals; posted holds the amount.
        let pending_channel =
            sum(&p, "channel:", Layer::Pending) + sum(&post, "channel:", Layer::Pending);
        assert_eq!(pending_channel, Decimal::ZERO);
        assert_eq!(sum(&post, "channel:", Layer::Posted).to_string(), "88.50");
        assert_eq!(post.post("again"), Err(LedgerError::NotPending));
    }

    #[test]
    fn void_releases_the_pending_layer_only() {
        let p = accepted();
        let void = p.void("rejected").unwrap();
        assert_eq!(void.entries().len(), 2);
        assert!(void.entries().iter().all(|e| e.layer == Layer::Pending));
        assert_eq!(
            sum(&p, "biller:", Layer::Pending) + sum(&void, "biller:", Layer::Pending),
            Decimal::ZERO
        );
    }

    #[test]
    fn unbalanced_and_short_journals_are_refused() {
        let m = |s| Money::parse(s, Currency::CNY).unwrap();
        let e = |side, amount| Entry {
            account: "x".into(),
            layer: Layer::Posted,
            side,
            amount,
        };
        assert_eq!(
            check_balanced(&[e(Side::Debit, m("1.00"))]),
            Err(LedgerError::TooFewEntries(1))
        );
        assert!(matches!(
            check_balanced(&[e(Side::Debit, m("1.00")), e(Side::Credit, m("0.99"))]),
            Err(LedgerError::Unbalanced { .. })
        ));
        // Balanced overall but not per layer.
        let mut pending = e(Side::Credit, m("1.00"));
        pending.layer = Layer::Pending;
        assert!(check_balanced(&[e(Side::Debit, m("1.00")), pending]).is_err());
        // Balanced in amount but across currencies.
        let usd = Money::parse("1.00", Currency::from_code("USD").unwrap()).unwrap();
        assert!(check_balanced(&[e(Side::Debit, m("1.00")), e(Side::Credit, usd)]).is_err());
    }
}
