//! The water company connector: JSON over HTTP, every request and every
//! answer HMAC-signed (see [`codec`] for the wire format and the strings to
//! sign).
//!
//! How failures map into [`NextStep`] is decided in two places only:
//! [`classify_trouble`] for what went wrong on the way (connection, timeout,
//! unreadable or unsigned answer) and [`WATER_CODES`] (read through
//! [`codes::classify`]) for the biller's result codes.

pub mod codec;
pub mod confirmation;

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
    BillsAnswer, BillsRequest, DecodeError, Envelope, PayAnswer, PayRequest, PaymentQueryAnswer,
    PaymentQueryRequest, PaymentState,
};

/// The water company's result codes. Read only through [`codes::classify`];
/// a code not listed here is outcome unknown.
pub const WATER_CODES: &[CodeRule] = &[
    rule("0000", Disposition::Success, "success"),
    rule("1001", FAIL, "account not found"),
    rule("1002", FAIL, "account closed"),
    rule("1003", FAIL, "amount not accepted"),
    rule("1004", FAIL, "currency not accepted"),
    rule("1009", UNKNOWN, "reference reused with other details"),
    rule("1404", Disposition::NotFound, "payment not found"),
    rule("4001", RETRY, "signature rejected"),
    rule("4002", RETRY, "timestamp outside window"),
    rule("4003", RETRY, "unknown key"),
    rule("9001", RETRY, "system busy"),
    rule("9002", RETRY, "service down"),
    rule("9999", UNKNOWN, "internal error"),
];

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
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// The error for a result code that is not success (nor, for a status
/// inquiry, not found). A code whose outcome is unknown is `Unknown` for a
/// payment and `Retry` for operations that move no money.
fn failure(op: Operation, env: &Envelope) -> ConnectorError {
    codes::failure(
        WATER_CODES,
        &env.result_code,
        Some(&env.result_msg),
        op.moves_money(),
        op.name(),
    )
}

/// The water company connector (`kind = "water-json"`).
pub struct WaterConnector {
    id: String,
    http: HttpTransport,
    key_id: String,
    signer: Signer,
    timeout: Duration,
}

impl fmt::Debug for WaterConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaterConnector")
            .field("id", &self.id)
            .field("http", &self.http)
            .field("key_id", &self.key_id)
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

impl WaterConnector {
    /// Builds the connector. `base_url` must be `https://host:port[/prefix]`
    /// (`http://` only with `allow_plaintext`), `timeout_ms` positive (it
    /// bounds each whole exchange; connecting gets half of it, so a biller
    /// that cannot be reached is `Retry` before the exchange times out),
    /// the key id non-empty, and the signature settings complete.
    pub fn new(
        id: &str,
        settings: &ConnectorSettings,
        keys: &dyn PrivateKeys,
    ) -> Result<WaterConnector, String> {
        let http = HttpTransport::new(settings, keys, &[])?;
        if settings.key_id.is_empty() {
            return Err("key_id must not be empty".into());
        }
        let signer = settings.signer(keys)?;
        Ok(WaterConnector {
            id: id.to_string(),
            http,
            key_id: settings.key_id.clone(),
            signer,
            timeout: Duration::from_millis(settings.timeout_ms),
        })
    }

    /// Sends one signed request and returns its verified, decoded answer.
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
        let path = format!("{}{endpoint}", self.http.base().prefix);
        let nonce = codec::new_nonce();
        let request = self.signed_request(&method, &path, &nonce, body)?;
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
        match self.check_signature(status, &headers, &nonce, &bytes) {
            Ok(()) => {}
            Err(why) => return Err(self.unverified(op, status, envelope.ok(), why)),
        }
        let envelope = envelope.map_err(|e| classify_trouble(op, Trouble::Unreadable(e.0)))?;
        tracing::debug!(status = status.as_u16(), code = %envelope.result_code, "answer");
        Ok(Answer { status, envelope })
    }

    /// An answer whose signature did not verify is unreadable, with one
    /// exception: an authentication refusal (HTTP 401 with a `Retry` code,
    /// 4001/4002/4003). A biller that could not authenticate us applied
    /// nothing, and it cannot sign in a way we verify when OUR secret is
    /// wrong; treating that as unknown would turn every payment of a
    /// misconfigured connector into an outcome to chase.
    fn unverified(
        &self,
        op: Operation,
        status: StatusCode,
        envelope: Option<Envelope>,
        why: String,
    ) -> ConnectorError {
        if let Some(env) = envelope.filter(|_| status == StatusCode::UNAUTHORIZED) {
            let (disposition, meaning) = codes::classify(WATER_CODES, &env.result_code);
            if disposition == RETRY && env.result_code.starts_with('4') {
                return ConnectorError::retry(format!(
                    "{}: biller refused our authentication: code {} ({meaning}): {} \
                     (answer not verifiable: {why}; check key id and secret)",
                    op.name(),
                    env.result_code,
                    env.result_msg
                ));
            }
        }
        classify_trouble(op, Trouble::Unreadable(why))
    }

    fn signed_request(
        &self,
        method: &Method,
        path: &str,
        nonce: &str,
        body: Vec<u8>,
    ) -> Result<Request<Full<Bytes>>, ConnectorError> {
        let timestamp = chrono::Utc::now().timestamp();
        let to_sign = codec::request_string_to_sign(method.as_str(), path, timestamp, nonce, &body);
        let signature = codec::sign(&self.signer, &to_sign);
        Request::builder()
            .method(method.clone())
            .uri(self.http.uri(path))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(codec::HEADER_KEY, &self.key_id)
            .header(codec::HEADER_TIMESTAMP, timestamp.to_string())
            .header(codec::HEADER_NONCE, nonce)
            .header(codec::HEADER_SIGNATURE, signature)
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
        let request = PayRequest::from_order(order);
        let answer = self
            .call(
                Operation::Pay,
                Method::POST,
                codec::PATH_PAY,
                Some(&request),
            )
            .await?;
        let env = &answer.envelope;
        if codes::classify(WATER_CODES, &env.result_code).0 != Disposition::Success {
            return Err(failure(Operation::Pay, env));
        }
        let paid = PayAnswer::decode(&env.fields).map_err(|e| unreadable(Operation::Pay, e))?;
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
            credited_at: paid.credited_at,
        })
    }

    async fn do_status(&self, order: &PayOrder) -> Result<RemoteStatus, ConnectorError> {
        let op = Operation::Status;
        let request = PaymentQueryRequest {
            biller_code: order.biller_id.clone(),
            txn_ref: order.our_reference.clone(),
        };
        let answer = self
            .call(op, Method::POST, codec::PATH_PAY_QUERY, Some(&request))
            .await?;
        let env = &answer.envelope;
        match codes::classify(WATER_CODES, &env.result_code).0 {
            Disposition::NotFound => return Ok(RemoteStatus::NotFound),
            Disposition::Success => {}
            Disposition::Failure(_) => return Err(failure(op, env)),
        }
        let found = PaymentQueryAnswer::decode(&env.fields).map_err(|e| unreadable(op, e))?;
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
        let answer = self
            .call(op, Method::POST, codec::PATH_BILLS, Some(&request))
            .await?;
        let env = &answer.envelope;
        if codes::classify(WATER_CODES, &env.result_code).0 != Disposition::Success {
            return Err(failure(op, env));
        }
        let found = BillsAnswer::decode(&env.fields).map_err(|e| unreadable(op, e))?;
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
        let answer = self
            .call(
                Operation::Health,
                Method::GET,
                codec::PATH_HEALTH,
                None::<&()>,
            )
            .await?;
        if codes::classify(WATER_CODES, &answer.envelope.result_code).0 == Disposition::Success {
            Ok(())
        } else {
            Err(failure(Operation::Health, &answer.envelope))
        }
    }
}

fn unreadable(op: Operation, e: DecodeError) -> ConnectorError {
    classify_trouble(op, Trouble::Unreadable(e.to_string()))
}

/// A found payment's state, with the fields that state requires. A
/// credited or rejected payment missing them is unreadable (status
/// inquiries move no money: `Retry`).
fn remote_status(found: PaymentQueryAnswer) -> Result<RemoteStatus, ConnectorError> {
    let missing = |field: &str| {
        unreadable(
            Operation::Status,
            DecodeError(format!("field `{field}` is missing")),
        )
    };
    match found.state {
        PaymentState::Credited => Ok(RemoteStatus::Credited(Credit {
            biller_reference: found.receipt_no.ok_or_else(|| missing("receipt_no"))?,
            credited_at: found.credited_at.ok_or_else(|| missing("credited_at"))?,
        })),
        PaymentState::Rejected => Ok(RemoteStatus::Rejected(Refusal {
            code: found.reject_code.ok_or_else(|| missing("reject_code"))?,
            message: found.reject_msg.unwrap_or_default(),
        })),
        PaymentState::Pending => Ok(RemoteStatus::Pending),
    }
}

#[async_trait]
impl Connector for WaterConnector {
    fn refusal_kind(&self, refusal: &crate::Refusal) -> crate::RefusalKind {
        match refusal.code.as_str() {
            "1001" => crate::RefusalKind::UnknownAccount,
            "1002" => crate::RefusalKind::ClosedAccount,
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
            kind: crate::ConnectorKind::WaterJson,
            base_url: base_url.into(),
            key_id: "billclear".into(),
            secret: "s3cret".into(),
            timeout_ms: 500,
            allow_plaintext: true,
            ..Default::default()
        }
    }

    fn new(s: &ConnectorSettings) -> Result<WaterConnector, String> {
        WaterConnector::new("w", s, &crate::PlainKeyFiles)
    }

    #[test]
    fn base_url_timeout_and_secret_are_validated() {
        let c = new(&settings("http://127.0.0.1:9101/water/")).unwrap();
        assert_eq!(c.http.base().prefix, "/water");
        let mut s = settings("http://127.0.0.1:9101");
        s.allow_plaintext = false;
        assert!(new(&s).unwrap_err().contains("allow_plaintext"));
        let mut s = settings("http://127.0.0.1:9101");
        s.timeout_ms = 0;
        assert!(new(&s).is_err());
        let mut s = settings("http://127.0.0.1:9101");
        s.secret.clear();
        assert!(new(&s).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = new(&settings("http://127.0.0.1:9101")).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("redacted"),
            "{shown}"
        );
    }

    fn env(code: &str) -> Envelope {
        Envelope {
            result_code: code.into(),
            result_msg: "msg".into(),
            fields: Default::default(),
        }
    }

    #[test]
    fn result_codes_map_through_the_table() {
        let f = failure(Operation::Pay, &env("1002"));
        assert_eq!(f, ConnectorError::fail("1002", "msg"));
        assert_eq!(
            failure(Operation::Pay, &env("9001")).next_step(),
            NextStep::Retry
        );
        assert_eq!(
            failure(Operation::Pay, &env("1009")).next_step(),
            NextStep::Unknown
        );
        assert_eq!(
            failure(Operation::Pay, &env("9999")).next_step(),
            NextStep::Unknown
        );
        assert_eq!(
            failure(Operation::Pay, &env("7777")).next_step(),
            NextStep::Unknown
        );
        assert_eq!(
            failure(Operation::Pay, &env("1404")).next_step(),
            NextStep::Unknown
        );
        assert_eq!(
            failure(Operation::Status, &env("7777")).next_step(),
            NextStep::Retry
        );
        assert_eq!(
            failure(Operation::Bills, &env("1001")).next_step(),
            NextStep::Fail
        );
    }

    #[test]
    fn the_table_has_each_code_once() {
        for (i, r) in WATER_CODES.iter().enumerate() {
            assert!(
                WATER_CODES[i + 1..].iter().all(|o| o.code != r.code),
                "{}",
                r.code
            );
        }
    }
}
