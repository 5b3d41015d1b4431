//! The intermediary hub connector (`kind = "hub-json"`): one JSON-over-HTTP
//! API in front of many billers (water, electricity, gas), with the hub's
//! own transaction references, status inquiry and daily statement file.
//!
//! # The API (v2)
//!
//! Every request is signed (see [`codec`] for the headers and the strings
//! to sign); every answer is signed by the hub and bound to our nonce.
//! Bodies are JSON, field names camelCase, amounts decimal strings, times
//! RFC 3339 with milliseconds in the hub's offset (+08:00).
//!
//! * `POST /hub/v2/bills/inquire`
//!   `{"merchantId","billerCode","accountNo"}` →
//!   `{"code":"0","message","billerCode","accountNo","customerName",
//!   "bills":[{"billNo","amountDue","currency","dueDate"}]}`
//! * `POST /hub/v2/payments`
//!   `{"merchantId","billerCode","partnerRef","accountNo","amount":"88.50",
//!   "currency","billNo":null}` (`partnerRef` = OUR reference; the hub is
//!   idempotent on it) →
//!   `{"code","message","status":"ACCEPTED"|"FAILED","hubTxnId",
//!   "partnerRef","billerCode","accountNo","amount","currency",
//!   "billerReceipt"?,"completedAt","repeated"}`. ACCEPTED comes with code
//!   `0`; FAILED with the refusal's code; answers that decided nothing
//!   (rate limit, maintenance, suspension, ...) carry only code and message.
//! * `GET /hub/v2/payments?partnerRef=...` (status by OUR reference,
//!   percent-encoded) → code `0` and
//!   `{"state":"SUCCESS"|"FAILED"|"PROCESSING","hubTxnId","partnerRef",
//!   "billerCode","accountNo","amount","currency","billerReceipt"?,
//!   "completedAt"?,"failCode"?,"failMessage"?}`, or code `3004`.
//! * `GET /hub/v2/ping` → `{"code":"0","message":"pong"}`.
//!
//! `merchantId` in request bodies is our `key_id`, the same as the
//! `X-Hub-Merchant` header.
//!
//! # References
//!
//! [`Credit::biller_reference`] from this connector is the hub's
//! **`hubTxnId`** (what the hub's statement file lists and what its support
//! asks for), not the receipt of the biller behind it; that receipt
//! (`billerReceipt`) is kept in [`codec::PaymentAnswer`] and
//! [`codec::StatusAnswer`] and logged.
//!
//! # Next steps
//!
//! How failures map into [`NextStep`] is decided in two places only:
//! [`crate::transport::classify_trouble`] for what went wrong on the way (the
//! same rules as the water connector: not connected → `Retry`; no answer or
//! unreadable answer → `Unknown` for a payment, `Retry` otherwise) and
//! [`HUB_CODES`] (read through [`codes::classify`]) for the hub's result
//! codes. A cut-off (the hub suspends our merchant: HTTP 403, code `4030`)
//! is `Retry` on every call: billclear's failover must treat the route as
//! down and use the billers' direct connections.

pub mod codec;
pub mod statement;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, StatusCode};
use serde::Serialize;

use crate::codes::{self, CodeRule, Disposition};
use crate::echo::{self, Echo};
use crate::transport::http::HttpTransport;
use crate::transport::{classify_trouble, mask_account, Operation, Trouble};
use crate::{
    Bill, BillQuery, BillStatement, Connector, ConnectorError, ConnectorSettings, Credit, NextStep,
    PayOrder, PrivateKeys, Refusal, RemoteStatus, Signer,
};
use codec::{
    BillsAnswer, BillsInquiry, DecodeError, Envelope, PaymentAnswer, PaymentRequest, PaymentStatus,
    StatusAnswer, TxnState,
};

/// The hub's result codes. Read only through [`codes::classify`]; a code
/// not listed here is outcome unknown.
pub const HUB_CODES: &[CodeRule] = &[
    rule("0", Disposition::Success, "success"),
    rule("1000", FAIL, "malformed request (not applied)"),
    rule("1001", FAIL, "biller not served by this hub"),
    rule("2001", FAIL, "account not found"),
    rule("2002", FAIL, "account closed"),
    rule("2003", FAIL, "amount not allowed"),
    rule("2004", FAIL, "currency not accepted"),
    rule("2009", UNKNOWN, "partnerRef reused with other details"),
    rule("3004", Disposition::NotFound, "transaction not found"),
    rule("4010", RETRY, "signature, timestamp or merchant rejected"),
    rule("4030", RETRY, "merchant suspended (cut off)"),
    rule("4290", RETRY, "rate limited: too many queries"),
    rule("5030", RETRY, "biller unavailable behind the hub"),
    rule("5031", RETRY, "hub maintenance"),
    rule("5000", UNKNOWN, "internal error"),
];

/// The code of an authentication refusal, the one refusal trusted without
/// a verifiable signature (see [`HubConnector`]'s `unverified`).
const AUTH_REFUSED: &str = "4010";

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

/// The largest answer body read from the hub.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// The error for a result code that is not success (nor, for a status
/// inquiry, not found). A code whose outcome is unknown is `Unknown` for a
/// payment and `Retry` for operations that move no money.
fn failure(op: Operation, env: &Envelope) -> ConnectorError {
    codes::failure(
        HUB_CODES,
        &env.code,
        Some(&env.message),
        op.moves_money(),
        &format!("{} via hub", op.name()),
    )
}

/// The hub connector (`kind = "hub-json"`). One instance reaches every
/// biller the hub serves; the order's `biller_id` is sent as `billerCode`.
pub struct HubConnector {
    id: String,
    http: HttpTransport,
    merchant_id: String,
    signer: Signer,
    timeout: Duration,
}

impl fmt::Debug for HubConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubConnector")
            .field("id", &self.id)
            .field("http", &self.http)
            .field("merchant_id", &self.merchant_id)
            .field("signer", &self.signer)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An answer whose signature checked out.
struct Answer {
    status: StatusCode,
    envelope: Envelope,
}

impl HubConnector {
    /// Builds the connector. `base_url` must be `https://host:port[/prefix]`
    /// (`http://` only with `allow_plaintext`), `key_id` (our merchant id
    /// at the hub) non-empty printable ASCII, `timeout_ms` positive (it
    /// bounds each whole exchange; connecting gets half of it, so a hub
    /// that cannot be reached is `Retry` before the exchange times out),
    /// and the signature settings complete.
    pub fn new(
        id: &str,
        settings: &ConnectorSettings,
        keys: &dyn PrivateKeys,
    ) -> Result<HubConnector, String> {
        let http = HttpTransport::new(settings, keys, &['&'])?;
        if settings.key_id.is_empty() {
            return Err("key_id (the merchant id) must not be empty".into());
        }
        if !settings.key_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("key_id (the merchant id) must be printable ASCII".into());
        }
        let signer = settings.signer(keys)?;
        Ok(HubConnector {
            id: id.to_string(),
            http,
            merchant_id: settings.key_id.clone(),
            signer,
            timeout: Duration::from_millis(settings.timeout_ms),
        })
    }

    /// Sends one signed request to `endpoint` (path and query relative to
    /// the base URL) and returns its verified, decoded answer.
    async fn call(
        &self,
        op: Operation,
        method: Method,
        endpoint: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Answer, ConnectorError> {
        let body = match body {
            Some(b) => serde_json::to_vec(b)
                .map_err(|e| ConnectorError::retry(format!("cannot encode request: {e}")))?,
            None => Vec::new(),
        };
        let path_and_query = format!("{}{endpoint}", self.http.base().prefix);
        let nonce = codec::new_nonce();
        let request = self.signed_request(&method, &path_and_query, &nonce, body)?;
        let (status, headers, bytes) =
            match tokio::time::timeout(self.timeout, self.http.exchange(request, MAX_ANSWER_BYTES))
                .await
            {
                Ok(result) => result.map_err(|t| classify_trouble(op, t))?,
                Err(_) => {
                    return Err(classify_trouble(
                        op,
                        Trouble::NoAnswer(format!("no answer within {:?}", self.timeout)),
                    ))
                }
            };
        let envelope = codec::decode_envelope(&bytes);
        if let Err(why) = self.check_signature(status, &headers, &nonce, &bytes) {
            return Err(self.unverified(op, status, envelope.ok(), why));
        }
        let envelope = envelope.map_err(|e| classify_trouble(op, Trouble::Unreadable(e.0)))?;
        tracing::debug!(status = status.as_u16(), code = %envelope.code, "answer");
        Ok(Answer { status, envelope })
    }

    /// An answer whose signature did not verify is unreadable, with one
    /// exception: HTTP 401 with code 4010. A hub that could not
    /// authenticate us applied nothing, and it cannot sign in a way we
    /// verify when OUR secret is wrong; treating that as unknown would turn
    /// every payment of a misconfigured connector into an outcome to chase.
    /// Every other refusal (4030 suspension included) must be signed.
    fn unverified(
        &self,
        op: Operation,
        status: StatusCode,
        envelope: Option<Envelope>,
        why: String,
    ) -> ConnectorError {
        if let Some(env) =
            envelope.filter(|e| status == StatusCode::UNAUTHORIZED && e.code == AUTH_REFUSED)
        {
            let (_, meaning) = codes::classify(HUB_CODES, &env.code);
            return ConnectorError::retry(format!(
                "{} via hub: hub refused our authentication: code {} ({meaning}): {} \
                 (answer not verifiable: {why}; check merchant id and secret)",
                op.name(),
                env.code,
                env.message
            ));
        }
        classify_trouble(op, Trouble::Unreadable(why))
    }

    fn signed_request(
        &self,
        method: &Method,
        path_and_query: &str,
        nonce: &str,
        body: Vec<u8>,
    ) -> Result<Request<Full<Bytes>>, ConnectorError> {
        let timestamp = chrono::Utc::now().timestamp_millis();
        let to_sign =
            codec::request_string_to_sign(method.as_str(), path_and_query, timestamp, nonce, &body);
        let signature = codec::sign(&self.signer, &to_sign);
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(self.http.uri(path_and_query))
            .header(codec::HEADER_MERCHANT, &self.merchant_id)
            .header(codec::HEADER_TIMESTAMP, timestamp.to_string())
            .header(codec::HEADER_NONCE, nonce)
            .header(codec::HEADER_SIGNATURE, signature);
        if !body.is_empty() {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ConnectorError::retry(format!("cannot build request: {e}")))
    }

    fn check_signature(
        &self,
        status: StatusCode,
        headers: &hyper::HeaderMap,
        nonce: &str,
        body: &[u8],
    ) -> Result<(), String> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| format!("answer unsigned: no {name} header (HTTP {status})"))
        };
        let timestamp = header(codec::HEADER_TIMESTAMP)?;
        let signature = header(codec::HEADER_SIGNATURE)?;
        let timestamp: i64 = timestamp
            .parse()
            .map_err(|_| format!("answer header {} is not a number", codec::HEADER_TIMESTAMP))?;
        let to_sign = codec::response_string_to_sign(status.as_u16(), timestamp, nonce, body);
        if codec::verify(&self.signer, &to_sign, signature) {
            Ok(())
        } else {
            Err(format!("answer signature does not verify (HTTP {status})"))
        }
    }

    async fn do_pay(&self, order: &PayOrder) -> Result<Credit, ConnectorError> {
        let op = Operation::Pay;
        let request = PaymentRequest::from_order(&self.merchant_id, order);
        let answer = self
            .call(op, Method::POST, codec::PATH_PAYMENTS, Some(&request))
            .await?;
        let env = &answer.envelope;
        let accepted_claimed =
            env.fields.get("status").and_then(|s| s.as_str()) == Some("ACCEPTED");
        if codes::classify(HUB_CODES, &env.code).0 != Disposition::Success {
            if accepted_claimed {
                return Err(ConnectorError::unknown(format!(
                    "payment via hub: status ACCEPTED with code {} ({})",
                    env.code, env.message
                )));
            }
            return Err(failure(op, env));
        }
        let paid = PaymentAnswer::decode(&env.fields).map_err(|e| unreadable(op, e))?;
        if paid.status != PaymentStatus::Accepted {
            return Err(ConnectorError::unknown(format!(
                "payment via hub: code 0 with status {:?}",
                paid.status
            )));
        }
        check_echo(
            op,
            order,
            &paid.partner_ref,
            &paid.biller_code,
            &paid.account_no,
            paid.amount,
            &paid.currency,
        )?;
        tracing::debug!(
            hub_txn = %paid.hub_txn_id,
            biller_receipt = paid.biller_receipt.as_deref().unwrap_or("-"),
            repeated = paid.repeated,
            http = answer.status.as_u16(),
            "credited"
        );
        Ok(Credit {
            biller_reference: paid.hub_txn_id,
            credited_at: paid.completed_at.with_timezone(&chrono::Utc),
        })
    }

    async fn do_status(&self, order: &PayOrder) -> Result<RemoteStatus, ConnectorError> {
        let op = Operation::Status;
        let endpoint = codec::status_path(&order.our_reference);
        let answer = self.call(op, Method::GET, &endpoint, None::<&()>).await?;
        let env = &answer.envelope;
        match codes::classify(HUB_CODES, &env.code).0 {
            Disposition::NotFound => return Ok(RemoteStatus::NotFound),
            Disposition::Success => {}
            Disposition::Failure(_) => return Err(failure(op, env)),
        }
        let found = StatusAnswer::decode(&env.fields).map_err(|e| unreadable(op, e))?;
        check_echo(
            op,
            order,
            &found.partner_ref,
            &found.biller_code,
            &found.account_no,
            found.amount,
            &found.currency,
        )?;
        let status = remote_status(found)?;
        tracing::debug!(status = ?status, "status");
        Ok(status)
    }

    async fn do_bills(&self, query: &BillQuery) -> Result<BillStatement, ConnectorError> {
        let op = Operation::Bills;
        let request = BillsInquiry {
            merchant_id: self.merchant_id.clone(),
            biller_code: query.biller_id.clone(),
            account_no: query.account_number.clone(),
        };
        let answer = self
            .call(op, Method::POST, codec::PATH_BILLS, Some(&request))
            .await?;
        let env = &answer.envelope;
        if codes::classify(HUB_CODES, &env.code).0 != Disposition::Success {
            return Err(failure(op, env));
        }
        let found = BillsAnswer::decode(&env.fields).map_err(|e| unreadable(op, e))?;
        if found.account_no != query.account_number || found.biller_code != query.biller_id {
            return Err(ConnectorError::retry(format!(
                "bill inquiry via hub: hub answered for {} account {}",
                found.biller_code,
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
        let answer = self
            .call(
                Operation::Health,
                Method::GET,
                codec::PATH_PING,
                None::<&()>,
            )
            .await?;
        if codes::classify(HUB_CODES, &answer.envelope.code).0 == Disposition::Success {
            Ok(())
        } else {
            Err(failure(Operation::Health, &answer.envelope))
        }
    }
}

/// The echo check of the water connector, plus the biller: an answer about
/// a payment to another biller than ours is not an answer about ours.
/// A mismatch is `Unknown` (we cannot tell what was applied).
fn check_echo(
    op: Operation,
    order: &PayOrder,
    partner_ref: &str,
    biller_code: &str,
    account_no: &str,
    amount: rust_decimal::Decimal,
    currency: &str,
) -> Result<(), ConnectorError> {
    let echoed = Echo {
        our_reference: partner_ref,
        account_number: account_no,
        amount,
        currency,
    };
    echo::check(order, &echoed).map_err(|m| {
        ConnectorError::unknown(format!("{} via hub: echo mismatch: {m}", op.name()))
    })?;
    if biller_code != order.biller_id {
        return Err(ConnectorError::unknown(format!(
            "{} via hub: echo mismatch: hub echoed biller {biller_code:?}, but we sent {:?}",
            op.name(),
            order.biller_id
        )));
    }
    Ok(())
}

fn unreadable(op: Operation, e: DecodeError) -> ConnectorError {
    classify_trouble(op, Trouble::Unreadable(e.to_string()))
}

/// A found transaction's state, with the fields that state requires. A
/// successful or failed transaction missing them is unreadable (status
/// inquiries move no money: `Retry`).
fn remote_status(found: StatusAnswer) -> Result<RemoteStatus, ConnectorError> {
    let missing = |field: &str| {
        unreadable(
            Operation::Status,
            DecodeError(format!("field `{field}` is missing")),
        )
    };
    match found.state {
        TxnState::Success => Ok(RemoteStatus::Credited(Credit {
            biller_reference: found.hub_txn_id,
            credited_at: found
                .completed_at
                .ok_or_else(|| missing("completedAt"))?
                .with_timezone(&chrono::Utc),
        })),
        TxnState::Failed => Ok(RemoteStatus::Rejected(Refusal {
            code: found.fail_code.ok_or_else(|| missing("failCode"))?,
            message: found.fail_message.unwrap_or_default(),
        })),
        TxnState::Processing => Ok(RemoteStatus::Pending),
    }
}

#[async_trait]
impl Connector for HubConnector {
    fn refusal_kind(&self, refusal: &crate::Refusal) -> crate::RefusalKind {
        match refusal.code.as_str() {
            "2001" => crate::RefusalKind::UnknownAccount,
            "2002" => crate::RefusalKind::ClosedAccount,
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
            kind: crate::ConnectorKind::HubJson,
            base_url: base_url.into(),
            key_id: "billclear".into(),
            secret: "s3cret".into(),
            timeout_ms: 500,
            allow_plaintext: true,
            ..Default::default()
        }
    }

    fn new(s: &ConnectorSettings) -> Result<HubConnector, String> {
        HubConnector::new("hub", s, &crate::PlainKeyFiles)
    }

    #[test]
    fn settings_are_validated() {
        for bad in ["127.0.0.1:9305", "http://127.0.0.1", "http://host:1/a&b"] {
            assert!(new(&settings(bad)).is_err(), "{bad}");
        }
        let c = new(&settings("http://127.0.0.1:9305/gw/")).unwrap();
        assert_eq!(c.http.base().authority, "127.0.0.1:9305");
        assert_eq!(c.http.base().prefix, "/gw");
        let mut s = settings("http://127.0.0.1:9305");
        s.timeout_ms = 0;
        assert!(new(&s).is_err());
        let mut s = settings("http://127.0.0.1:9305");
        s.secret.clear();
        assert!(new(&s).is_err());
        let mut s = settings("http://127.0.0.1:9305");
        s.key_id = "bill clear".into();
        assert!(new(&s).is_err());
    }

    #[test]
    fn build_knows_the_hub_kind() {
        let c = crate::build(
            "hub",
            &settings("http://127.0.0.1:9305"),
            &crate::PlainKeyFiles,
        )
        .unwrap();
        assert_eq!(c.id(), "hub");
        let mut s = settings("http://127.0.0.1:9305");
        s.kind = crate::ConnectorKind::CoopFile;
        let e = crate::build("hub", &s, &crate::PlainKeyFiles)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not an online connector"), "{e}");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = new(&settings("http://127.0.0.1:9305")).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("redacted"),
            "{shown}"
        );
    }

    fn env(code: &str) -> Envelope {
        Envelope {
            code: code.into(),
            message: "msg".into(),
            fields: Default::default(),
        }
    }

    #[test]
    fn result_codes_map_through_the_table() {
        for code in ["1000", "1001", "2001", "2002", "2003", "2004"] {
            assert_eq!(
                failure(Operation::Pay, &env(code)),
                ConnectorError::fail(code, "msg")
            );
        }
        for code in ["4010", "4030", "4290", "5030", "5031"] {
            assert_eq!(
                failure(Operation::Pay, &env(code)).next_step(),
                NextStep::Retry,
                "{code}"
            );
        }
        for code in ["2009", "5000", "7777", "3004", "00"] {
            assert_eq!(
                failure(Operation::Pay, &env(code)).next_step(),
                NextStep::Unknown,
                "{code}"
            );
            assert_eq!(
                failure(Operation::Status, &env(code)).next_step(),
                NextStep::Retry,
                "{code}"
            );
        }
        assert_eq!(
            failure(Operation::Bills, &env("1001")).next_step(),
            NextStep::Fail
        );
        assert_eq!(codes::classify(HUB_CODES, "3004").0, Disposition::NotFound);
        assert_eq!(codes::classify(HUB_CODES, "0").0, Disposition::Success);
    }

    #[test]
    fn the_table_has_each_code_once() {
        for (i, r) in HUB_CODES.iter().enumerate() {
            assert!(
                HUB_CODES[i + 1..].iter().all(|o| o.code != r.code),
                "{}",
                r.code
            );
        }
    }

    #[test]
    fn only_a_401_4010_is_trusted_unsigned() {
        let c = HubConnector::new(
            "hub",
            &settings("http://127.0.0.1:9305"),
            &crate::transport::tls::PlainKeyFiles,
        )
        .unwrap();
        let e = c.unverified(
            Operation::Pay,
            StatusCode::UNAUTHORIZED,
            Some(env("4010")),
            "bad".into(),
        );
        assert_eq!(e.next_step(), NextStep::Retry);
        for (status, code) in [
            (StatusCode::FORBIDDEN, "4030"),
            (StatusCode::UNAUTHORIZED, "4030"),
            (StatusCode::OK, "2001"),
            (StatusCode::OK, "4010"),
        ] {
            let e = c.unverified(Operation::Pay, status, Some(env(code)), "bad".into());
            assert_eq!(e.next_step(), NextStep::Unknown, "{status} {code}");
        }
    }
}
