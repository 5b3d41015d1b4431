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
pub mod confirmation;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{Offset, Utc};
use http_body_util::Full;
use hyper::{Method, Request, StatusCode};

use crate::codes::{self, CodeRule, Disposition};
use crate::echo::{self, Echo};
use crate::transport::http::HttpTransport;
pub use crate::transport::{classify_trouble, Operation, Trouble};
use crate::{
    Bill, BillQuery, BillStatement, Connector, ConnectorError, ConnectorSettings, Credit, NextStep,
    PayOrder, PrivateKeys, Refusal, RemoteStatus, Signer,
};
use codec::{
    BillsAnswer, BillsRequest, DecodeError, Message, MsgType, Node, OutHeader, PayAnswer,
    PayRequest, PaymentState, QueryAnswer, QueryRequest, RetStatus,
};

use crate::transport::mask_account;

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

/// The message type of a request of `op`.
fn msg_type(op: Operation) -> MsgType {
    match op {
        Operation::Bills => MsgType::BillReq,
        Operation::Pay => MsgType::PayReq,
        Operation::Status => MsgType::QryReq,
        Operation::Health => MsgType::EchoReq,
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
    http: HttpTransport,
    key_id: String,
    signer: Signer,
    timeout: Duration,
}

impl fmt::Debug for PowerConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PowerConnector")
            .field("id", &self.id)
            .field("http", &self.http)
            .field("key_id", &self.key_id)
            .field("signer", &self.signer)
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
    /// Builds the connector. `base_url` must be `https://host:port[/prefix]`
    /// (`http://` only with `allow_plaintext`), `timeout_ms` positive (it
    /// bounds each whole exchange; connecting gets half of it, so a biller
    /// that cannot be reached is `Retry` before the exchange times out),
    /// the signature settings complete, and the key id a valid header value
    /// (it is our `Sender`).
    pub fn new(
        id: &str,
        settings: &ConnectorSettings,
        keys: &dyn PrivateKeys,
    ) -> Result<PowerConnector, String> {
        let http = HttpTransport::new(settings, keys, &[])?;
        if !codec::valid_header_value(&settings.key_id) {
            return Err(format!(
                "key_id {:?} must be 1..={} printable ASCII characters without `|`",
                settings.key_id,
                codec::MAX_HEADER_VALUE
            ));
        }
        let signer = settings.signer(keys)?;
        Ok(PowerConnector {
            id: id.to_string(),
            http,
            key_id: settings.key_id.clone(),
            signer,
            timeout: Duration::from_millis(settings.timeout_ms),
        })
    }

    /// Sends one request and returns its verified, decoded answer.
    async fn call(&self, op: Operation, body: &[Node]) -> Result<Answer, ConnectorError> {
        let msg_id = codec::new_msg_id();
        let timestamp = codec::format_time(&Utc::now(), Utc.fix());
        let header = OutHeader {
            msg_type: msg_type(op),
            sender: &self.key_id,
            msg_id: &msg_id,
            timestamp: &timestamp,
            in_reply_to: None,
        };
        let xml = codec::encode_message(&header, body, &self.signer);
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.http.uri(&format!(
                "{}{}",
                self.http.base().prefix,
                codec::PATH_GATEWAY
            )))
            .header(hyper::header::CONTENT_TYPE, codec::CONTENT_TYPE)
            .body(Full::new(Bytes::from(xml)))
            .map_err(|e| ConnectorError::retry(format!("cannot build request: {e}")))?;
        let exchange = self.http.exchange(request, MAX_ANSWER_BYTES);
        let (status, _, bytes) = match tokio::time::timeout(self.timeout, exchange).await {
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
        if !message.mac_verifies(&self.signer) {
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
        tracing::debug!(
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
        tracing::debug!(status = ?status, "status");
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
    let expected = msg_type(op).answer();
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
            kind: crate::ConnectorKind::PowerXml,
            base_url: base_url.into(),
            key_id: "billclear".into(),
            secret: "s3cret".into(),
            timeout_ms: 500,
            allow_plaintext: true,
            ..Default::default()
        }
    }

    fn new(s: &ConnectorSettings) -> Result<PowerConnector, String> {
        PowerConnector::new("p", s, &crate::PlainKeyFiles)
    }

    #[test]
    fn settings_are_validated() {
        for bad in ["127.0.0.1:9302", "http://127.0.0.1", "http://host:1/a?b"] {
            assert!(new(&settings(bad)).is_err(), "{bad}");
        }
        let c = new(&settings("http://127.0.0.1:9302/")).unwrap();
        assert_eq!(c.http.base().authority, "127.0.0.1:9302");
        assert_eq!(c.http.base().prefix, "");
        let mut s = settings("http://127.0.0.1:9302");
        s.timeout_ms = 0;
        assert!(new(&s).is_err());
        let mut s = settings("http://127.0.0.1:9302");
        s.secret.clear();
        assert!(new(&s).is_err());
        for bad_key in ["", "bill|clear", "bill clear"] {
            let mut s = settings("http://127.0.0.1:9302");
            s.key_id = bad_key.into();
            assert!(new(&s).is_err(), "{bad_key:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = new(&settings("http://127.0.0.1:9302")).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("redacted"),
            "{shown}"
        );
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
        assert_eq!(msg_type(Operation::Pay), MsgType::PayReq);
        assert_eq!(msg_type(Operation::Status), MsgType::QryReq);
        assert_eq!(msg_type(Operation::Bills), MsgType::BillReq);
        assert_eq!(msg_type(Operation::Health), MsgType::EchoReq);
    }
}
