//! The account book every simulator keeps: customer accounts per biller
//! id with their bills, the credits and refusals it recorded, and its
//! receipt counter. Each simulator keeps beside it only what its protocol
//! needs (the requests it decided, by reference; the hub's transactions).

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;

use crate::{Account, CreditRecord, RejectRecord};

#[derive(Debug, Default)]
pub(crate) struct Book {
    pub accounts: HashMap<String, BTreeMap<String, Account>>,
    pub credits: Vec<CreditRecord>,
    pub rejections: Vec<RejectRecord>,
    pub receipts: u64,
}

impl Book {
    /// Adds (or replaces) an account of `biller`.
    pub fn add_account(&mut self, biller: &str, account: Account) {
        self.accounts
            .entry(biller.to_string())
            .or_default()
            .insert(account.account_number.clone(), account);
    }

    /// An account of `biller`.
    pub fn account(&self, biller: &str, account_number: &str) -> Option<&Account> {
        self.accounts
            .get(biller)
            .and_then(|a| a.get(account_number))
    }

    /// Reduces the named bill, or the oldest outstanding one; an
    /// overpayment stays on the bill as a credit (negative amount due).
    pub fn reduce_bill(
        &mut self,
        biller: &str,
        account_number: &str,
        bill_reference: Option<&str>,
        amount: Decimal,
    ) {
        let Some(account) = self
            .accounts
            .get_mut(biller)
            .and_then(|a| a.get_mut(account_number))
        else {
            return;
        };
        let named =
            bill_reference.and_then(|n| account.bills.iter().position(|b| b.bill_reference == n));
        let oldest = || {
            account
                .bills
                .iter()
                .enumerate()
                .filter(|(_, b)| b.amount_due > Decimal::ZERO)
                .min_by_key(|(_, b)| b.due_date)
                .map(|(i, _)| i)
        };
        if let Some(i) = named.or_else(oldest) {
            account.bills[i].amount_due -= amount;
        }
    }
}
