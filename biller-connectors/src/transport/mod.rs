//! What every connector shares on the way to a biller, written once:
//!
//! * [`Operation`] and [`Trouble`], and [`classify_trouble`], the one place
//!   where what went wrong on the way becomes a [`NextStep`];
//! * [`http`]: the HTTP(S) exchange over a pooled client (TLS through
//!   [`tls`]), whose failures are classified by whether the request could
//!   have left;
//! * [`tls`]: certificate verification, client certificates, pinning;
//! * [`Logged`]: the logging wrapper around any [`Connector`];
//! * [`error_chain`] and [`mask_account`] for logs and reasons.

pub mod http;
pub mod tls;

use async_trait::async_trait;
use tracing::Instrument;

use crate::{
    BillQuery, BillStatement, Connector, ConnectorError, Credit, NextStep, PayOrder, Refusal,
    RefusalKind, RemoteStatus,
};

/// The operations of a biller protocol. Only `Pay` moves money, so only
/// its uncertain failures are outcome unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Bills,
    Pay,
    Status,
    Health,
}

impl Operation {
    /// Whether a lost answer may mean money moved.
    pub fn moves_money(self) -> bool {
        matches!(self, Operation::Pay)
    }

    /// How the operation is named in reasons and logs.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Bills => "bill inquiry",
            Operation::Pay => "payment",
            Operation::Status => "status inquiry",
            Operation::Health => "health check",
        }
    }
}

/// What went wrong on the way to or from the biller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// Nothing was sent: no connection could be made, the TLS handshake
    /// failed (certificate, pin, protocol), or the request was not handed
    /// to a live link.
    NotConnected(String),
    /// The request may have been sent, but no answer came: timeout, or the
    /// connection was lost after the request was written.
    NoAnswer(String),
    /// An answer came but cannot be trusted or read: unsigned, bad
    /// signature, malformed message, missing or ill-typed field.
    Unreadable(String),
}

/// The one place transport trouble becomes a next step.
///
/// * `NotConnected` → `Retry` for every operation: nothing was sent.
/// * `NoAnswer` and `Unreadable` → for `Pay`, `Unknown` (the biller may
///   have credited the payment: ask, never re-send); for bill inquiry,
///   status inquiry and health, `Retry` (they move no money).
pub fn classify_trouble(op: Operation, trouble: Trouble) -> ConnectorError {
    match trouble {
        Trouble::NotConnected(why) => {
            ConnectorError::retry(format!("{}: not sent: {why}", op.name()))
        }
        Trouble::NoAnswer(why) | Trouble::Unreadable(why) => {
            let reason = format!("{}: {why}", op.name());
            if op.moves_money() {
                ConnectorError::unknown(reason)
            } else {
                ConnectorError::retry(reason)
            }
        }
    }
}

/// An error with its sources, for logs and reasons.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

/// Masks an account number for logs: all but the last 4 characters.
pub fn mask_account(account: &str) -> String {
    let n = account.chars().count();
    account
        .chars()
        .enumerate()
        .map(|(i, c)| if i + 4 < n { '*' } else { c })
        .collect()
}

/// Any connector, with every call in a span (connector id, operation, our
/// reference, biller, masked account) and its failure logged once: a
/// warning when the outcome is unknown, information otherwise.
pub struct Logged<C> {
    family: &'static str,
    inner: C,
}

impl<C: Connector> Logged<C> {
    pub fn new(family: &'static str, inner: C) -> Logged<C> {
        Logged { family, inner }
    }

    fn span(
        &self,
        op: &'static str,
        reference: &str,
        biller: &str,
        account: &str,
    ) -> tracing::Span {
        tracing::info_span!(
            "connector",
            family = self.family,
            op,
            connector = %self.inner.id(),
            biller = %biller,
            reference = %reference,
            account = %mask_account(account),
        )
    }

    async fn logged<T>(
        span: tracing::Span,
        call: impl std::future::Future<Output = Result<T, ConnectorError>>,
    ) -> Result<T, ConnectorError> {
        let result = call.instrument(span.clone()).await;
        if let Err(e) = &result {
            span.in_scope(|| match e.next_step() {
                NextStep::Unknown => tracing::warn!(next = ?e.next_step(), "{e}"),
                _ => tracing::debug!(next = ?e.next_step(), "{e}"),
            });
        }
        result
    }
}

#[async_trait]
impl<C: Connector> Connector for Logged<C> {
    fn id(&self) -> &str {
        self.inner.id()
    }

    fn refusal_kind(&self, refusal: &Refusal) -> RefusalKind {
        self.inner.refusal_kind(refusal)
    }

    async fn bills(&self, query: &BillQuery) -> Result<BillStatement, ConnectorError> {
        let span = self.span("bills", "-", &query.biller_id, &query.account_number);
        Self::logged(span, self.inner.bills(query)).await
    }

    async fn pay(&self, order: &PayOrder) -> Result<Credit, ConnectorError> {
        let span = self.span(
            "pay",
            &order.our_reference,
            &order.biller_id,
            &order.account_number,
        );
        Self::logged(span, self.inner.pay(order)).await
    }

    async fn status(&self, order: &PayOrder) -> Result<RemoteStatus, ConnectorError> {
        let span = self.span(
            "status",
            &order.our_reference,
            &order.biller_id,
            &order.account_number,
        );
        Self::logged(span, self.inner.status(order)).await
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        let span = tracing::info_span!("connector", family = self.family, op = "health", connector = %self.inner.id());
        Self::logged(span, self.inner.health()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_masked_but_the_last_four() {
        assert_eq!(mask_account("3100000011"), "******0011");
        assert_eq!(mask_account("0011"), "0011");
        assert_eq!(mask_account(""), "");
    }

    #[test]
    fn trouble_maps_by_operation() {
        for op in [
            Operation::Bills,
            Operation::Status,
            Operation::Health,
            Operation::Pay,
        ] {
            let e = classify_trouble(op, Trouble::NotConnected("refused".into()));
            assert_eq!(e.next_step(), NextStep::Retry);
            let expected = if op == Operation::Pay {
                NextStep::Unknown
            } else {
                NextStep::Retry
            };
            let e = classify_trouble(op, Trouble::NoAnswer("timeout".into()));
            assert_eq!(e.next_step(), expected, "{op:?}");
            let e = classify_trouble(op, Trouble::Unreadable("bad signature".into()));
            assert_eq!(e.next_step(), expected, "{op:?}");
        }
    }

    #[test]
    fn error_chain_names_every_source_once() {
        let inner = std::io::Error::other("deep");
        let outer = std::io::Error::other(inner);
        assert_eq!(error_chain(&outer), "deep");
    }
}
