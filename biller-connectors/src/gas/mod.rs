//! The gas company connector: fixed-length text messages over ONE
//! persistent TCP connection (`kind = "gas-tcp"`, `base_url =
//! "tcp://host:port"`).
//!
//! * [`codec`]: the framing (4-digit length prefix), the record layouts as
//!   data (field, offset, width, kind), the MAC (HMAC-SHA256 truncated to 16
//!   hex digits), amounts as 12-digit minor units converted exactly.
//! * [`link`]: the connection: several requests in flight at once, answers
//!   matched by message type, OUR reference and our trace number in
//!   whatever order they come, duplicates and late answers dropped,
//!   automatic reconnection with a bounded backoff.
//! * [`confirmation`]: the daily confirmation file (fixed-width H/D/T
//!   records), its writer and its reader.
//!
//! How failures map into [`NextStep`] is decided in two places only:
//! [`classify_trouble`] for what went wrong on the way (link down, link
//! lost, timeout, unreadable or unauthenticated answer) and [`GAS_CODES`]
//! (read through [`codes::classify`]) for the biller's result codes.
//!
//! | what happened                                   | pay      | bills, status, health |
//! |-------------------------------------------------|----------|-----------------------|
//! | no live link within half the timeout (nothing sent) | Retry | Retry                |
//! | link lost before the answer / no answer in time | Unknown  | Retry                 |
//! | answer unreadable, bad MAC (not code 63)        | Unknown  | Retry                 |
//! | echo differs from what was sent                 | Unknown  | Unknown (status)      |
//! | order not writable (e.g. amount 1.005): not sent| Fail     | Fail                  |
//!
//! An order the protocol cannot carry is refused before anything is sent,
//! with the code the biller would have used (`13` amount, `14` account,
//! `16` currency, `30` other fields) and a message starting "not sent".

pub mod codec;
pub mod confirmation;
pub mod link;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;

use crate::codes::{self, CodeRule, Disposition};
use crate::echo::{self, Echo};
use crate::transport::mask_account;
pub use crate::transport::{classify_trouble, Operation, Trouble};
use crate::{
    Bill, BillQuery, BillStatement, Connector, ConnectorError, ConnectorSettings, Credit, NextStep,
    PayOrder, PrivateKeys, Refusal, RemoteStatus,
};
use codec::{
    BillsAnswer, BillsRequest, DecodeError, EchoAnswer, EchoRequest, EncodeError, Header,
    PayAnswer, PayRequest, PaymentState, Reader, StatusAnswer, StatusRequest,
};
use link::{Key, Link, LinkTls};
use tokio_rustls::rustls::pki_types::ServerName;

/// The gas company's result codes. Read only through [`codes::classify`];
/// a code not listed here is outcome unknown.
pub const GAS_CODES: &[CodeRule] = &[
    rule("00", Disposition::Success, "success"),
    rule("13", FAIL, "amount not accepted"),
    rule("14", FAIL, "account not found"),
    rule("15", FAIL, "account closed"),
    rule("16", FAIL, "currency not accepted"),
    rule("19", UNKNOWN, "reference reused with other details"),
    rule("25", Disposition::NotFound, "payment not found"),
    rule("30", UNKNOWN, "format error"),
    rule("63", RETRY, "MAC error"),
    rule("91", RETRY, "system busy"),
    rule("92", RETRY, "service down"),
    rule("96", UNKNOWN, "system error"),
];

/// The code of a MAC refusal: the biller could not authenticate us.
pub const MAC_ERROR: &str = "63";

const FAIL: Disposition = Disposition::Failure(NextStep::Fail);
const RETRY: Disposition = Disposition::Failure(NextStep::Retry);
const UNKNOWN: Disposition = Disposition::Failure(NextStep::Unknown);

const fn rule(code: &'static str, disposition: Disposition, meaning: &'static str) -> CodeRule {
    CodeRule {
        code,
        disposition,
        meaning,
    }
}

/// The most requests in flight on the link at once; more are `Retry`.
pub const MAX_IN_FLIGHT: usize = 256;

/// The error for a result code that is not success (nor, for a status
/// inquiry, not found). A code whose outcome is unknown is `Unknown` for a
/// payment and `Retry` for operations that move no money.
fn failure(op: Operation, code: &str) -> ConnectorError {
    codes::failure(GAS_CODES, code, None, op.moves_money(), op.name())
}

/// A request the protocol cannot carry: refused before sending, for good.
fn not_sendable(op: Operation, e: EncodeError) -> ConnectorError {
    let code = match e.field {
        "amount" => "13",
        "account" => "14",
        "currency" => "16",
        _ => "30",
    };
    ConnectorError::fail(
        code,
        format!("not sent: {} cannot be written: {e}", op.name()),
    )
}

fn unreadable(op: Operation, e: DecodeError) -> ConnectorError {
    classify_trouble(op, Trouble::Unreadable(e.to_string()))
}

/// Where the biller listens: `tls://host:port` (or `tcp://host:port`
/// where plaintext is allowed) → (`host:port`, whether TLS).
fn parse_base_url(url: &str, allow_plaintext: bool) -> Result<(String, bool), String> {
    let (rest, tls) = if let Some(rest) = url.strip_prefix("tls://") {
        (rest, true)
    } else if let Some(rest) = url.strip_prefix("tcp://") {
        if !allow_plaintext {
            return Err(format!(
                "base_url {url:?} is plaintext tcp://: use tls://, or set allow_plaintext = true \
                 (simulators and local tests only)"
            ));
        }
        (rest, false)
    } else {
        return Err(format!(
            "base_url {url:?} must start with tls:// (or tcp://)"
        ));
    };
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("base_url {url:?} must name a port (tcp://host:port)"))?;
    if host.is_empty()
        || host.contains(['/', '?', '#', ' ', '@'])
        || port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(format!("base_url {url:?}: bad host or port"));
    }
    Ok((rest.to_string(), tls))
}

/// The gas company connector (`kind = "gas-tcp"`).
pub struct GasConnector {
    id: String,
    addr: String,
    key_id: String,
    secret: Vec<u8>,
    timeout: Duration,
    link: Link,
    trace: AtomicU64,
}

impl fmt::Debug for GasConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GasConnector")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl GasConnector {
    /// Builds the connector. `base_url` must be `tcp://host:port`, the
    /// key id (our terminal id) 1 to 16 printable ASCII characters,
    /// `timeout_ms` positive (it bounds each request; waiting for the link
    /// gets half of it, so an unreachable biller is `Retry` before the
    /// request times out), the secret non-empty. Nothing connects until
    /// the first request (from a tokio runtime); the link then stays up
    /// until the connector is dropped.
    pub fn new(
        id: &str,
        settings: &ConnectorSettings,
        keys: &dyn PrivateKeys,
    ) -> Result<GasConnector, String> {
        let (addr, tls) = parse_base_url(&settings.base_url, settings.allow_plaintext)?;
        if settings.timeout_ms == 0 {
            return Err("timeout_ms must be positive".into());
        }
        if settings.signature.scheme != crate::SignatureScheme::HmacSha256 {
            return Err(format!(
                "signature scheme {}: the gas protocol's fixed-length frame carries a \
                 64-character HMAC-SHA256 only",
                settings.signature.scheme
            ));
        }
        if settings.secret.is_empty() {
            return Err("secret must not be empty".into());
        }
        let tls = if tls {
            let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(&addr);
            let server_name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
                .map_err(|e| format!("base_url host {host:?}: {e}"))?;
            Some(LinkTls {
                connector: tokio_rustls::TlsConnector::from(crate::transport::tls::client_config(
                    &settings.tls,
                    keys,
                )?),
                server_name,
            })
        } else {
            None
        };
        let key = &settings.key_id;
        if key.is_empty()
            || key.len() > 16
            || key.ends_with(' ')
            || !key.bytes().all(|b| (0x20..=0x7e).contains(&b))
        {
            return Err("key_id must be 1 to 16 printable ASCII characters".into());
        }
        let timeout = Duration::from_millis(settings.timeout_ms);
        let connect_timeout = timeout.clamp(Duration::from_millis(100), Duration::from_secs(10));
        Ok(GasConnector {
            id: id.to_string(),
            link: Link::new(&addr, tls, connect_timeout, MAX_IN_FLIGHT),
            addr,
            key_id: key.clone(),
            secret: settings.secret.as_bytes().to_vec(),
            timeout,
            trace: AtomicU64::new(1),
        })
    }

    /// Requests waiting for their answer on the link right now.
    pub fn in_flight(&self) -> usize {
        self.link.in_flight()
    }

    fn header(&self, reference: &str) -> Header {
        // 10 digits; wrapping is harmless (answers also match by reference).
        let trace = self.trace.fetch_add(1, Ordering::Relaxed) % 10_000_000_000;
        Header {
            terminal_id: self.key_id.clone(),
            reference: reference.to_string(),
            trace,
        }
    }

    /// Sends one framed request and returns its answer record, MAC checked
    /// and header matched.
    async fn call(
        &self,
        op: Operation,
        header: &Header,
        answer_type: &'static str,
        frame: Vec<u8>,
    ) -> Result<Vec<u8>, ConnectorError> {
        let key = Key {
            answer_type,
            reference: header.reference.clone(),
            trace: header.trace,
        };
        let record = self
            .link
            .call(frame, key, self.timeout, self.timeout / 2)
            .await
            .map_err(|t| classify_trouble(op, t))?;
        let reader = Reader::new(&record).map_err(|e| unreadable(op, e))?;
        if !reader.mac_ok(&self.secret) {
            return Err(self.unverified(op, &reader));
        }
        let echoed = reader.header().map_err(|e| unreadable(op, e))?;
        if echoed.terminal_id != self.key_id {
            return Err(classify_trouble(
                op,
                Trouble::Unreadable(format!(
                    "answer for terminal {:?}, we are {:?}",
                    echoed.terminal_id, self.key_id
                )),
            ));
        }
        Ok(record)
    }

    /// An answer whose MAC does not verify is unreadable, with one
    /// exception: a MAC refusal (code 63). A biller that could not
    /// authenticate us applied nothing, and it cannot MAC its answer in a
    /// way we verify when OUR secret is wrong; treating that as unknown
    /// would turn every payment of a misconfigured connector into an
    /// outcome to chase.
    fn unverified(&self, op: Operation, reader: &Reader<'_>) -> ConnectorError {
        if reader.alpha("result_code").ok() == Some(MAC_ERROR) {
            return ConnectorError::retry(format!(
                "{}: biller refused our MAC: code {MAC_ERROR} (answer not verifiable; \
                 check key id and secret)",
                op.name()
            ));
        }
        classify_trouble(op, Trouble::Unreadable("answer MAC does not verify".into()))
    }

    async fn do_pay(&self, order: &PayOrder) -> Result<Credit, ConnectorError> {
        let op = Operation::Pay;
        let header = self.header(&order.our_reference);
        let request = PayRequest {
            header: header.clone(),
            biller_id: order.biller_id.clone(),
            account: order.account_number.clone(),
            amount: order.amount,
            currency: order.currency.clone(),
            bill_no: order.bill_reference.clone(),
        };
        let frame = request
            .encode(&self.secret)
            .map_err(|e| not_sendable(op, e))?;
        let record = self.call(op, &header, codec::MSG_PAY_ANSWER, frame).await?;
        let reader = Reader::new(&record).map_err(|e| unreadable(op, e))?;
        let paid = PayAnswer::decode(&reader).map_err(|e| unreadable(op, e))?;
        if codes::classify(GAS_CODES, &paid.result_code).0 != Disposition::Success {
            return Err(failure(op, &paid.result_code));
        }
        let echoed = Echo {
            our_reference: &paid.header.reference,
            account_number: &paid.account,
            amount: paid.amount,
            currency: &paid.currency,
        };
        echo::check(order, &echoed)
            .map_err(|m| ConnectorError::unknown(format!("payment: echo mismatch: {m}")))?;
        check_biller(op, order, &paid.biller_id)?;
        let credited_at = paid.credited_at.ok_or_else(|| {
            unreadable(
                op,
                DecodeError("field `credited_at`: zeros on a success".into()),
            )
        })?;
        if paid.receipt_no.is_empty() {
            return Err(unreadable(
                op,
                DecodeError("field `receipt_no`: blank on a success".into()),
            ));
        }
        tracing::debug!(receipt = %paid.receipt_no, duplicate = paid.duplicate, "credited");
        Ok(Credit {
            biller_reference: paid.receipt_no,
            credited_at,
        })
    }

    async fn do_status(&self, order: &PayOrder) -> Result<RemoteStatus, ConnectorError> {
        let op = Operation::Status;
        let header = self.header(&order.our_reference);
        let request = StatusRequest {
            header: header.clone(),
            biller_id: order.biller_id.clone(),
        };
        let frame = request
            .encode(&self.secret)
            .map_err(|e| not_sendable(op, e))?;
        let record = self
            .call(op, &header, codec::MSG_STATUS_ANSWER, frame)
            .await?;
        let reader = Reader::new(&record).map_err(|e| unreadable(op, e))?;
        let found = StatusAnswer::decode(&reader).map_err(|e| unreadable(op, e))?;
        match codes::classify(GAS_CODES, &found.result_code).0 {
            Disposition::NotFound => return Ok(RemoteStatus::NotFound),
            Disposition::Success => {}
            Disposition::Failure(_) => return Err(failure(op, &found.result_code)),
        }
        let echoed = Echo {
            our_reference: &found.header.reference,
            account_number: &found.account,
            amount: found.amount,
            currency: &found.currency,
        };
        echo::check(order, &echoed)
            .map_err(|m| ConnectorError::unknown(format!("status inquiry: echo mismatch: {m}")))?;
        check_biller(op, order, &found.biller_id)?;
        let status = remote_status(found)?;
        tracing::debug!(status = ?status, "status");
        Ok(status)
    }

    async fn do_bills(&self, query: &BillQuery) -> Result<BillStatement, ConnectorError> {
        let op = Operation::Bills;
        let header = self.header(&uuid::Uuid::new_v4().to_string());
        let request = BillsRequest {
            header: header.clone(),
            biller_id: query.biller_id.clone(),
            account: query.account_number.clone(),
        };
        let frame = request
            .encode(&self.secret)
            .map_err(|e| not_sendable(op, e))?;
        let record = self
            .call(op, &header, codec::MSG_BILLS_ANSWER, frame)
            .await?;
        let reader = Reader::new(&record).map_err(|e| unreadable(op, e))?;
        let found = BillsAnswer::decode(&reader).map_err(|e| unreadable(op, e))?;
        if codes::classify(GAS_CODES, &found.result_code).0 != Disposition::Success {
            return Err(failure(op, &found.result_code));
        }
        if found.account != query.account_number || found.biller_id != query.biller_id {
            return Err(ConnectorError::retry(format!(
                "bill inquiry: biller answered for {} account {}",
                found.biller_id,
                mask_account(&found.account)
            )));
        }
        let currency = found.currency;
        Ok(BillStatement {
            account_number: found.account,
            customer_name: found.customer_name,
            bills: found
                .bills
                .into_iter()
                .map(|b| Bill {
                    bill_reference: b.bill_no,
                    amount_due: b.amount_due,
                    currency: currency.clone(),
                    due_date: b.due_date,
                })
                .collect(),
        })
    }

    async fn do_health(&self) -> Result<(), ConnectorError> {
        let op = Operation::Health;
        let header = self.header(&uuid::Uuid::new_v4().to_string());
        let request = EchoRequest {
            header: header.clone(),
            sent_at: Utc::now(),
        };
        let frame = request
            .encode(&self.secret)
            .map_err(|e| not_sendable(op, e))?;
        let record = self
            .call(op, &header, codec::MSG_ECHO_ANSWER, frame)
            .await?;
        let reader = Reader::new(&record).map_err(|e| unreadable(op, e))?;
        let answer = EchoAnswer::decode(&reader).map_err(|e| unreadable(op, e))?;
        if codes::classify(GAS_CODES, &answer.result_code).0 == Disposition::Success {
            Ok(())
        } else {
            Err(failure(op, &answer.result_code))
        }
    }
}

/// The biller id echoed must be the one sent (`echo::check` covers the
/// rest); otherwise we cannot tell what was applied.
fn check_biller(op: Operation, order: &PayOrder, echoed: &str) -> Result<(), ConnectorError> {
    if echoed == order.biller_id {
        Ok(())
    } else {
        Err(ConnectorError::unknown(format!(
            "{}: echo mismatch: biller echoed biller id {echoed:?}, but we sent {:?}",
            op.name(),
            order.biller_id
        )))
    }
}

/// A found payment's state, with the fields that state requires. A
/// credited or rejected payment missing them is unreadable (status
/// inquiries move no money: `Retry`).
fn remote_status(found: StatusAnswer) -> Result<RemoteStatus, ConnectorError> {
    let missing = |field: &str| {
        unreadable(
            Operation::Status,
            DecodeError(format!("field `{field}` is blank")),
        )
    };
    match found.state {
        Some(PaymentState::Credited) => Ok(RemoteStatus::Credited(Credit {
            biller_reference: Some(found.receipt_no)
                .filter(|r| !r.is_empty())
                .ok_or_else(|| missing("receipt_no"))?,
            credited_at: found.credited_at.ok_or_else(|| missing("credited_at"))?,
        })),
        Some(PaymentState::Rejected) => {
            if found.reject_code.is_empty() {
                return Err(missing("reject_code"));
            }
            let meaning = codes::classify(GAS_CODES, &found.reject_code).1;
            Ok(RemoteStatus::Rejected(Refusal {
                code: found.reject_code,
                message: meaning.to_string(),
            }))
        }
        Some(PaymentState::Pending) => Ok(RemoteStatus::Pending),
        None => Err(missing("state")),
    }
}

#[async_trait]
impl Connector for GasConnector {
    fn refusal_kind(&self, refusal: &crate::Refusal) -> crate::RefusalKind {
        match refusal.code.as_str() {
            "14" => crate::RefusalKind::UnknownAccount,
            "15" => crate::RefusalKind::ClosedAccount,
            _ => crate::RefusalKind::Other,
        }
    }

    fn id(&self) -> &str {
        &self.id
    }

    async fn bills(&self, query: &BillQuery) -> Result<BillStatement, ConnectorError> {
        self.do_bills(query).await
    }

    async fn pay(&self, order: &PayOrder) -> Result<Credit, ConnectorError> {
        self.do_pay(order).await
    }

    async fn status(&self, order: &PayOrder) -> Result<RemoteStatus, ConnectorError> {
        self.do_status(order).await
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        self.do_health().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(base_url: &str) -> ConnectorSettings {
        ConnectorSettings {
            kind: crate::ConnectorKind::GasTcp,
            base_url: base_url.into(),
            key_id: "billclear".into(),
            secret: "s3cret".into(),
            timeout_ms: 500,
            allow_plaintext: true,
            ..Default::default()
        }
    }

    fn new(s: &ConnectorSettings) -> Result<GasConnector, String> {
        GasConnector::new("g", s, &crate::PlainKeyFiles)
    }

    #[test]
    fn settings_are_validated() {
        for bad in [
            "http://127.0.0.1:9303",
            "127.0.0.1:9303",
            "tcp://127.0.0.1",
            "tcp://:9303",
            "tcp://host:0",
            "tcp://host:99999",
            "tcp://host/x:1",
        ] {
            assert!(new(&settings(bad)).is_err(), "{bad}");
        }
        let c = new(&settings("tcp://127.0.0.1:9303")).unwrap();
        assert_eq!(c.addr, "127.0.0.1:9303");
        let mut s = settings("tcp://127.0.0.1:9303");
        s.allow_plaintext = false;
        assert!(new(&s).unwrap_err().contains("allow_plaintext"));
        let mut s = settings("tcp://localhost:9303");
        s.timeout_ms = 0;
        assert!(new(&s).is_err());
        let mut s = settings("tcp://localhost:9303");
        s.secret.clear();
        assert!(new(&s).is_err());
        let mut s = settings("tcp://localhost:9303");
        s.signature.scheme = crate::SignatureScheme::Sm2Sm3;
        assert!(new(&s).unwrap_err().contains("HMAC-SHA256 only"));
        for key in ["", "seventeen-chars-x", "终端", "trailing "] {
            let mut s = settings("tcp://localhost:9303");
            s.key_id = key.into();
            assert!(new(&s).is_err(), "{key:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = new(&settings("tcp://127.0.0.1:9303")).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("redacted"),
            "{shown}"
        );
    }

    #[test]
    fn result_codes_map_through_the_table() {
        assert_eq!(
            failure(Operation::Pay, "15"),
            ConnectorError::fail("15", "account closed")
        );
        for (code, pay, other) in [
            ("13", NextStep::Fail, NextStep::Fail),
            ("14", NextStep::Fail, NextStep::Fail),
            ("16", NextStep::Fail, NextStep::Fail),
            ("19", NextStep::Unknown, NextStep::Retry),
            ("25", NextStep::Unknown, NextStep::Retry),
            ("63", NextStep::Retry, NextStep::Retry),
            ("91", NextStep::Retry, NextStep::Retry),
            ("92", NextStep::Retry, NextStep::Retry),
            ("96", NextStep::Unknown, NextStep::Retry),
            ("77", NextStep::Unknown, NextStep::Retry),
        ] {
            assert_eq!(failure(Operation::Pay, code).next_step(), pay, "{code}");
            assert_eq!(
                failure(Operation::Status, code).next_step(),
                other,
                "{code}"
            );
        }
    }

    #[test]
    fn the_table_has_each_code_once() {
        for (i, r) in GAS_CODES.iter().enumerate() {
            assert!(
                GAS_CODES[i + 1..].iter().all(|o| o.code != r.code),
                "{}",
                r.code
            );
        }
    }

    #[test]
    fn unwritable_orders_are_refused_naming_the_field() {
        let e = not_sendable(
            Operation::Pay,
            codec::to_minor(rust_decimal::Decimal::new(1005, 3)).unwrap_err(),
        );
        match e {
            ConnectorError::Fail(r) => {
                assert_eq!(r.code, "13");
                assert!(r.message.starts_with("not sent") && r.message.contains("1.005"));
            }
            other => panic!("{other:?}"),
        }
    }
}
