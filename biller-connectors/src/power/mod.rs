//! The electricity company connector (`sh-power`): XML over HTTP, every
//! request and every answer authenticated by a MAC inside the envelope.
//!
//! # Transport
//!
//! One endpoint, `POST {base_url}/power/gateway`, `Content-Type:
//! application/xml; charset=utf-8`. The message type says what is asked;
//! the HTTP status is informational (200 for every business answer, 401
//! for a refused MAC, sender or timestamp, 503 when busy or down, 400 for
//! an unreadable request, 504 for a request held too long), except for the
//! one case below where an answer cannot be authenticated.
//!
//! # Envelope
//!
//! UTF-8, no DOCTYPE, written without whitespace between elements:
//!
//! ```text
//! <?xml version="1.0" encoding="UTF-8"?>
//! <PowerMsg version="1">
//!   <Header>
//!     <MsgType>PAY_REQ</MsgType>        PAY_REQ|PAY_RSP|QRY_REQ|QRY_RSP|BILL_REQ|BILL_RSP|ECHO_REQ|ECHO_RSP
//!     <Sender>billclear</Sender>        requests: our key_id; answers: the biller's name
//!     <MsgId>…</MsgId>                  unique per message (ours: 32 random hex digits)
//!     <Timestamp>…</Timestamp>          RFC 3339; the biller refuses requests 300 s off its clock
//!     <InReplyTo>…</InReplyTo>          answers only: the MsgId of the request answered
//!     <Mac>…</Mac>                      lowercase hex HMAC-SHA256, see below
//!   </Header>
//!   <Body>…</Body>
//! </PowerMsg>
//! ```
//!
//! Header values are 1..=128 printable ASCII characters without `|`.
//!
//! # MAC
//!
//! `Mac = hex(HMAC-SHA256(secret, MsgType|Sender|MsgId|Timestamp|InReplyTo|hex(SHA-256(body))))`
//! where `InReplyTo` is empty on requests and `body` is the exact bytes of
//! the `<Body>…</Body>` element as sent (see [`codec::string_to_mac`]; a
//! golden test pins it). Both directions use the one shared secret. An
//! answer is accepted only if its MAC verifies, its `InReplyTo` is the
//! `MsgId` we sent (binding it to our request: a replayed answer never
//! matches a fresh random id, so the answer's own timestamp is not checked
//! against our clock), and its `MsgType` answers ours.
//!
//! # Bodies
//!
//! | type | body |
//! | --- | --- |
//! | `PAY_REQ` | `BillerCode`, `TxnRef` (OUR reference), `AccountNo`, `Amount` (decimal string, `88.50`), `Currency`, `BillNo` (optional) |
//! | `PAY_RSP` | `RetCode`, `RetMsg`; on `00`: `TxnRef`, `AccountNo`, `Amount`, `Currency` (the echo), `ReceiptNo`, `CreditedAt` (RFC 3339), `Duplicate` (`true` for a repeat; optional) |
//! | `QRY_REQ` | `BillerCode`, `TxnRef` |
//! | `QRY_RSP` | `RetCode`, `RetMsg`; on `00`: `TxnRef`, `State` (`CREDITED`/`REJECTED`/`PENDING`), `AccountNo`, `Amount`, `Currency`, then `ReceiptNo` + `CreditedAt` (credited) or `RejectCode` + `RejectMsg` (rejected); `E404` when unknown |
//! | `BILL_REQ` | `BillerCode`, `AccountNo` |
//! | `BILL_RSP` | `RetCode`, `RetMsg`; on `00`: `AccountNo`, `CustomerName`, `<Bills>` of `<Bill>` (`BillNo`, `AmountDue`, `Currency`, `DueDate` `YYYY-MM-DD`) |
//! | `ECHO_REQ` | empty (`<Body></Body>`) |
//! | `ECHO_RSP` | `RetCode`, `RetMsg` |
//!
//! Failure answers carry `RetCode` and `RetMsg` only.
//!
//! # Next steps
//!
//! Decided in two places only: [`classify_trouble`] for what went wrong on
//! the way (connection, timeout, an answer that is malformed, lacks an
//! element, has a non-decimal amount, a bad MAC or is not bound to our
//! MsgId: for a payment `Unknown`, for the rest `Retry`), and
//! [`POWER_CODES`] (read through [`codes::classify`]) for the biller's
//! result codes. One deviation, as in the water connector: an answer with
//! HTTP 401 whose MAC does not verify but whose `RetCode` is `E401` or
//! `E402` is `Retry`; a biller that could not authenticate us applied
//! nothing, and cannot MAC an answer we verify when OUR secret is wrong.

pub mod codec;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{Offset, Utc};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tracing::Instrument;

use crate::base_url::BaseUrl;
use crate::codes::{self, CodeRule, Disposition};
use crate::echo::{self, Echo};
use crate::{
    Bill, BillQuery, BillStatement, Connector, ConnectorError, ConnectorSettings, Credit, NextStep,
    PayOrder, Refusal, RemoteStatus,
};
use codec::{
    BillsAnswer, BillsRequest, DecodeError, Message, MsgType, Node, OutHeader, PayAnswer,
    PayRequest, PaymentState, QueryAnswer, QueryRequest, RetStatus,
};

pub use crate::water::mask_account;

/// The electricity company's result codes. Read only through
/// [`codes::classify`]; a code not listed here is outcome unknown.
pub const POWER_CODES: &[CodeRule] = &[
    rule("00", Disposition::Success, "success"),
    rule("E100", UNKNOWN, "request malformed"),
    rule("E101", FAIL, "account not found"),
    rule("E102", FAIL, "account closed"),
    rule("E103", FAIL, "amount not allowed"),
    rule("E104", FAIL, "currency not accepted"),
    rule("E109", UNKNOWN, "reference reused with other details"),
    rule("E401", RETRY, "MAC rejected"),
    rule("E402", RETRY, "timestamp rejected"),
    rule("E404", Disposition::NotFound, "payment not found"),
    rule("S901", RETRY, "system busy"),
    rule("S902", RETRY, "down for maintenance"),
    rule("S999", UNKNOWN, "internal error"),
];

/// The codes by which the biller says it could not authenticate us: the
/// only ones believed from an answer whose MAC does not verify (HTTP 401).
const AUTH_REFUSALS: &[&str] = &["E401", "E402"];

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

/// The largest answer body read from the biller.
const MAX_ANSWER_BYTES: usize = codec::MAX_MESSAGE_BYTES;

/// The operations of the protocol. Only `Pay` moves money, so only its
/// uncertain failures are outcome unknown.
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

    fn name(self) -> &'static str {
        match self {
            Operation::Bills => "bill inquiry",
            Operation::Pay => "payment",
            Operation::Status => "status inquiry",
            Operation::Health => "health check",
        }
    }

    fn msg_type(self) -> MsgType {
        match self {
            Operation::Bills => MsgType::BillReq,
            Operation::Pay => MsgType::PayReq,
            Operation::Status => MsgType::QryReq,
            Operation::Health => MsgType::EchoReq,
        }
    }
}

/// What went wrong on the way to or from the biller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// No connection could be made: nothing was sent.
    NotConnected(String),
    /// The request may have been sent, but no answer came: timeout, or the
    /// connection was lost after the request was written.
    NoAnswer(String),
    /// An answer came but cannot be trusted or read: malformed XML, a
    /// missing element, a non-decimal amount, a bad MAC, not bound to our
    /// MsgId.
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
            ConnectorError::retry(format!("{}: could not connect: {why}", op.name()))
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

/// The error for a result code that is not success (nor, for a status
/// inquiry, not found). A code whose outcome is unknown is `Unknown` for a
/// payment and `Retry` for operations that move no money.
fn failure(op: Operation, ret: &RetStatus) -> ConnectorError {
    codes::failure(
        POWER_CODES,
        &ret.ret_code,
        Some(&ret.ret_msg),
        op.moves_money(),
        op.name(),
    )
}

/// The electricity company connector (`kind = "power-xml"`).
pub struct PowerConnector {
    id: String,
    base: BaseUrl,
    key_id: String,
    secret: Vec<u8>,
    timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl fmt::Debug for PowerConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PowerConnector")
            .field("id", &self.id)
            .field("base", &self.base)
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An answer that verified: MAC, binding to our MsgId, answer type.
struct Answer {
    status: StatusCode,
    message: Message,
    ret: RetStatus,
}

impl PowerConnector {
    /// Builds the connector. `base_url` must be `http://host:port[/prefix]`,
    /// `timeout_ms` positive (it bounds each whole exchange; connecting
    /// gets half of it, so a biller that cannot be reached is `Retry`
    /// before the exchange times out), the secret non-empty, and the key id
    /// a valid header value (it is our `Sender`).
    pub fn new(id: &str, settings: &ConnectorSettings) -> Result<PowerConnector, String> {
        let base = BaseUrl::parse(&settings.base_url, &[])?;
        if settings.timeout_ms == 0 {
            return Err("timeout_ms must be positive".into());
        }
        if settings.secret.is_empty() {
            return Err("secret must not be empty".into());
        }
        if !codec::valid_header_value(&settings.key_id) {
            return Err(format!(
                "key_id {:?} must be 1..={} printable ASCII characters without `|`",
                settings.key_id,
                codec::MAX_HEADER_VALUE
            ));
        }
        let timeout = Duration::from_millis(settings.timeout_ms);
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout / 2));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(16)
            .build(http);
        Ok(PowerConnector {
            id: id.to_string(),
            base,
            key_id: settings.key_id.clone(),
            secret: settings.secret.as_bytes().to_vec(),
            timeout,
            client,
        })
    }

    /// Sends one request and returns its verified, decoded answer.
    async fn call(&self, op: Operation, body: &[Node]) -> Result<Answer, ConnectorError> {
        let msg_id = codec::new_msg_id();
        let timestamp = codec::format_time(&Utc::now(), Utc.fix());
        let header = OutHeader {
            msg_type: op.msg_type(),
            sender: &self.key_id,
            msg_id: &msg_id,
            timestamp: &timestamp,
            in_reply_to: None,
        };
        let xml = codec::encode_message(&header, body, &self.secret);
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!(
                "http://{}{}{}",
                self.base.authority,
                self.base.prefix,
                codec::PATH_GATEWAY
            ))
            .header(hyper::header::CONTENT_TYPE, codec::CONTENT_TYPE)
            .body(Full::new(Bytes::from(xml)))
            .map_err(|e| ConnectorError::retry(format!("cannot build request: {e}")))?;
        let (status, bytes) = match tokio::time::timeout(self.timeout, self.exchange(request)).await
        {
            Ok(result) => result.map_err(|t| classify_trouble(op, t))?,
            Err(_) => {
                return Err(classify_trouble(
                    op,
                    Trouble::NoAnswer(format!("no answer within {:?}", self.timeout)),
                ))
            }
        };
        let message = codec::decode_message(&bytes).map_err(|e| {
            classify_trouble(op, Trouble::Unreadable(format!("{e} (HTTP {status})")))
        })?;
        if !message.mac_verifies(&self.secret) {
            return Err(self.unverified(op, status, &message));
        }
        check_binding(op, &msg_id, &message.header)
            .map_err(|why| classify_trouble(op, Trouble::Unreadable(why)))?;
        let ret = RetStatus::decode(&message.body).map_err(|e| unreadable(op, e))?;
        tracing::debug!(status = status.as_u16(), code = %ret.ret_code, biller_msg = %message.header.msg_id, "answer");
        Ok(Answer {
            status,
            message,
            ret,
        })
    }

    /// An answer that did not verify is unreadable, with one exception: an
    /// authentication refusal (HTTP 401 with code E401/E402). A biller that
    /// could not authenticate us applied nothing, and it cannot MAC in a
    /// way we verify when OUR secret is wrong; treating that as unknown
    /// would turn every payment of a misconfigured connector into an
    /// outcome to chase.
    fn unverified(&self, op: Operation, status: StatusCode, message: &Message) -> ConnectorError {
        let why = format!("answer MAC does not verify (HTTP {status})");
        if status == StatusCode::UNAUTHORIZED {
            if let Ok(ret) = RetStatus::decode(&message.body) {
                let (disposition, meaning) = codes::classify(POWER_CODES, &ret.ret_code);
                if disposition == RETRY && AUTH_REFUSALS.contains(&ret.ret_code.as_str()) {
                    return ConnectorError::retry(format!(
                        "{}: biller refused our authentication: code {} ({meaning}): {} \
                         ({why}; check key id and secret)",
                        op.name(),
                        ret.ret_code,
                        ret.ret_msg
                    ));
                }
            }
        }
        classify_trouble(op, Trouble::Unreadable(why))
    }

    /// The HTTP exchange itself, body read to the end (bounded).
    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), Trouble> {
        let response = self.client.request(request).await.map_err(|e| {
            let why = error_chain(&e);
            if e.is_connect() {
                Trouble::NotConnected(why)
            } else {
                Trouble::NoAnswer(format!("connection lost: {why}"))
            }
        })?;
        let (parts, body) = response.into_parts();
        let bytes = Limited::new(body, MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| Trouble::NoAnswer(format!("answer body lost: {e}")))?
            .to_bytes();
        Ok((parts.status, bytes))
    }

    fn span(
        &self,
        op: &'static str,
        reference: &str,
        biller: &str,
        account: &str,
    ) -> tracing::Span {
        tracing::info_span!(
            "power",
            op,
            connector = %self.id,
            biller = %biller,
            reference = %reference,
            account = %mask_account(account),
        )
    }

    async fn do_pay(&self, order: &PayOrder) -> Result<Credit, ConnectorError> {
        let op = Operation::Pay;
        let request = PayRequest::from_order(order);
        let answer = self.call(op, &request.to_nodes()).await?;
        if codes::classify(POWER_CODES, &answer.ret.ret_code).0 != Disposition::Success {
            return Err(failure(op, &answer.ret));
        }
        let paid = PayAnswer::decode(&answer.message.body).map_err(|e| unreadable(op, e))?;
        let echoed = Echo {
            our_reference: &paid.txn_ref,
            account_number: &paid.account_no,
            amount: paid.amount,
            currency: &paid.currency,
        };
        echo::check(order, &echoed)
            .map_err(|m| ConnectorError::unknown(format!("payment: echo mismatch: {m}")))?;
        tracing::info!(
            receipt = %paid.receipt_no,
            duplicate = paid.duplicate,
            http = answer.status.as_u16(),
            "credited"
        );
        Ok(Credit {
            biller_reference: paid.receipt_no,
            credited_at: paid.credited_at.with_timezone(&Utc),
        })
    }

    async fn do_status(&self, order: &PayOrder) -> Result<RemoteStatus, ConnectorError> {
        let op = Operation::Status;
        let request = QueryRequest {
            biller_code: order.biller_id.clone(),
            txn_ref: order.our_reference.clone(),
        };
        let answer = self.call(op, &request.to_nodes()).await?;
        match codes::classify(POWER_CODES, &answer.ret.ret_code).0 {
            Disposition::NotFound => return Ok(RemoteStatus::NotFound),
            Disposition::Success => {}
            Disposition::Failure(_) => return Err(failure(op, &answer.ret)),
        }
        let found = QueryAnswer::decode(&answer.message.body).map_err(|e| unreadable(op, e))?;
        let echoed = Echo {
            our_reference: &found.txn_ref,
            account_number: &found.account_no,
            amount: found.amount,
            currency: &found.currency,
        };
        echo::check(order, &echoed)
            .map_err(|m| ConnectorError::unknown(format!("status inquiry: echo mismatch: {m}")))?;
        let status = remote_status(found)?;
        tracing::info!(status = ?status, "status");
        Ok(status)
    }

    async fn do_bills(&self, query: &BillQuery) -> Result<BillStatement, ConnectorError> {
        let op = Operation::Bills;
        let request = BillsRequest {
            biller_code: query.biller_id.clone(),
            account_no: query.account_number.clone(),
        };
        let answer = self.call(op, &request.to_nodes()).await?;
        if codes::classify(POWER_CODES, &answer.ret.ret_code).0 != Disposition::Success {
            return Err(failure(op, &answer.ret));
        }
        let found = BillsAnswer::decode(&answer.message.body).map_err(|e| unreadable(op, e))?;
        if found.account_no != query.account_number {
            return Err(ConnectorError::retry(format!(
                "bill inquiry: biller answered for account {}",
                mask_account(&found.account_no)
            )));
        }
        Ok(BillStatement {
            account_number: found.account_no,
            customer_name: found.customer_name,
            bills: found
                .bills
                .into_iter()
                .map(|b| Bill {
                    bill_reference: b.bill_no,
                    amount_due: b.amount_due,
                    currency: b.currency,
                    due_date: b.due_date,
                })
                .collect(),
        })
    }

    async fn do_health(&self) -> Result<(), ConnectorError> {
        let answer = self.call(Operation::Health, &[]).await?;
        if codes::classify(POWER_CODES, &answer.ret.ret_code).0 == Disposition::Success {
            Ok(())
        } else {
            Err(failure(Operation::Health, &answer.ret))
        }
    }
}

/// Checks that a verified answer answers our MsgId (`InReplyTo`) and our
/// message type.
fn check_binding(op: Operation, msg_id: &str, header: &codec::Header) -> Result<(), String> {
    if header.in_reply_to.as_deref() != Some(msg_id) {
        return Err(format!(
            "answer not bound to our request: InReplyTo {:?}, our MsgId {msg_id:?}",
            header.in_reply_to.as_deref().unwrap_or("")
        ));
    }
    let expected = op.msg_type().answer();
    if Some(header.msg_type) != expected {
        return Err(format!(
            "answer is {}, expected {}",
            header.msg_type,
            expected.map_or("-", MsgType::as_str)
        ));
    }
    Ok(())
}

fn unreadable(op: Operation, e: DecodeError) -> ConnectorError {
    classify_trouble(op, Trouble::Unreadable(e.to_string()))
}

/// A found payment's state, with the elements that state requires. A
/// credited or rejected payment missing them is unreadable (status
/// inquiries move no money: `Retry`).
fn remote_status(found: QueryAnswer) -> Result<RemoteStatus, ConnectorError> {
    let missing = |name: &str| {
        unreadable(
            Operation::Status,
            DecodeError(format!("element `{}/Body/{name}` is missing", codec::ROOT)),
        )
    };
    match found.state {
        PaymentState::Credited => Ok(RemoteStatus::Credited(Credit {
            biller_reference: found.receipt_no.ok_or_else(|| missing("ReceiptNo"))?,
            credited_at: found
                .credited_at
                .ok_or_else(|| missing("CreditedAt"))?
                .with_timezone(&Utc),
        })),
        PaymentState::Rejected => Ok(RemoteStatus::Rejected(Refusal {
            code: found.reject_code.ok_or_else(|| missing("RejectCode"))?,
            message: found.reject_msg.unwrap_or_default(),
        })),
        PaymentState::Pending => Ok(RemoteStatus::Pending),
    }
}

/// An error with its sources, for logs and reasons.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[async_trait]
impl Connector for PowerConnector {
    fn refusal_kind(&self, refusal: &crate::Refusal) -> crate::RefusalKind {
        match refusal.code.as_str() {
            "E101" => crate::RefusalKind::UnknownAccount,
            "E102" => crate::RefusalKind::ClosedAccount,
            _ => crate::RefusalKind::Other,
        }
    }

    fn id(&self) -> &str {
        &self.id
    }

    async fn bills(&self, query: &BillQuery) -> Result<BillStatement, ConnectorError> {
        let span = self.span("bills", "-", &query.biller_id, &query.account_number);
        let result = self.do_bills(query).instrument(span.clone()).await;
        log_outcome(&span, &result);
        result
    }

    async fn pay(&self, order: &PayOrder) -> Result<Credit, ConnectorError> {
        let span = self.span(
            "pay",
            &order.our_reference,
            &order.biller_id,
            &order.account_number,
        );
        let result = self.do_pay(order).instrument(span.clone()).await;
        log_outcome(&span, &result);
        result
    }

    async fn status(&self, order: &PayOrder) -> Result<RemoteStatus, ConnectorError> {
        let span = self.span(
            "status",
            &order.our_reference,
            &order.biller_id,
            &order.account_number,
        );
        let result = self.do_status(order).instrument(span.clone()).await;
        log_outcome(&span, &result);
        result
    }

    async fn health(&self) -> Result<(), ConnectorError> {
        let span = tracing::info_span!("power", op = "health", connector = %self.id);
        let result = self.do_health().instrument(span.clone()).await;
        log_outcome(&span, &result);
        result
    }
}

fn log_outcome<T>(span: &tracing::Span, result: &Result<T, ConnectorError>) {
    if let Err(e) = result {
        span.in_scope(|| match e.next_step() {
            NextStep::Unknown => tracing::warn!(next = ?e.next_step(), "{e}"),
            _ => tracing::info!(next = ?e.next_step(), "{e}"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(base_url: &str) -> ConnectorSettings {
        ConnectorSettings {
            kind: "power-xml".into(),
            base_url: base_url.into(),
            key_id: "billclear".into(),
            secret: "s3cret".into(),
            timeout_ms: 500,
        }
    }

    #[test]
    fn settings_are_validated() {
        for bad in [
            "https://127.0.0.1:9302",
            "127.0.0.1:9302",
            "http://127.0.0.1",
            "http://:9302",
            "http://host:0",
            "http://host:1/a?b",
        ] {
            assert!(PowerConnector::new("p", &settings(bad)).is_err(), "{bad}");
        }
        let c = PowerConnector::new("p", &settings("http://127.0.0.1:9302/")).unwrap();
        assert_eq!(c.base.authority, "127.0.0.1:9302");
        assert_eq!(c.base.prefix, "");
        let mut s = settings("http://127.0.0.1:9302");
        s.timeout_ms = 0;
        assert!(PowerConnector::new("p", &s).is_err());
        let mut s = settings("http://127.0.0.1:9302");
        s.secret.clear();
        assert!(PowerConnector::new("p", &s).is_err());
        for bad_key in ["", "bill|clear", "bill clear"] {
            let mut s = settings("http://127.0.0.1:9302");
            s.key_id = bad_key.into();
            assert!(PowerConnector::new("p", &s).is_err(), "{bad_key:?}");
        }
    }

    #[test]
    fn build_knows_the_kind() {
        let c = crate::build("power-direct", &settings("http://127.0.0.1:9302")).unwrap();
        assert_eq!(c.id(), "power-direct");
        let mut s = settings("http://127.0.0.1:9302");
        s.kind = "power-json".into();
        let e = crate::build("x", &s).err().unwrap();
        assert!(e.reason.contains("\"power-xml\""), "{e}");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = PowerConnector::new("p", &settings("http://127.0.0.1:9302")).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("redacted"),
            "{shown}"
        );
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
            let e = classify_trouble(op, Trouble::Unreadable("bad MAC".into()));
            assert_eq!(e.next_step(), expected, "{op:?}");
        }
    }

    fn ret(code: &str) -> RetStatus {
        RetStatus {
            ret_code: code.into(),
            ret_msg: "msg".into(),
        }
    }

    #[test]
    fn result_codes_map_through_the_table() {
        for code in ["E101", "E102", "E103", "E104"] {
            assert_eq!(
                failure(Operation::Pay, &ret(code)),
                ConnectorError::fail(code, "msg")
            );
        }
        for code in ["E401", "E402", "S901", "S902"] {
            assert_eq!(
                failure(Operation::Pay, &ret(code)).next_step(),
                NextStep::Retry,
                "{code}"
            );
        }
        for code in ["E100", "E109", "S999", "E404", "7777", "00"] {
            assert_eq!(
                failure(Operation::Pay, &ret(code)).next_step(),
                NextStep::Unknown,
                "{code}"
            );
            assert_eq!(
                failure(Operation::Status, &ret(code)).next_step(),
                NextStep::Retry,
                "{code}"
            );
        }
        assert_eq!(
            codes::classify(POWER_CODES, "E404").0,
            Disposition::NotFound
        );
        assert_eq!(
            failure(Operation::Bills, &ret("E101")).next_step(),
            NextStep::Fail
        );
        for code in AUTH_REFUSALS {
            assert_eq!(codes::classify(POWER_CODES, code).0, RETRY, "{code}");
        }
    }

    #[test]
    fn the_table_has_each_code_once() {
        for (i, r) in POWER_CODES.iter().enumerate() {
            assert!(
                POWER_CODES[i + 1..].iter().all(|o| o.code != r.code),
                "{}",
                r.code
            );
        }
    }

    #[test]
    fn operations_send_their_request_types() {
        assert_eq!(Operation::Pay.msg_type(), MsgType::PayReq);
        assert_eq!(Operation::Status.msg_type(), MsgType::QryReq);
        assert_eq!(Operation::Bills.msg_type(), MsgType::BillReq);
        assert_eq!(Operation::Health.msg_type(), MsgType::EchoReq);
    }
}
