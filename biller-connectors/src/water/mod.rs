//! The water company connector: JSON over HTTP, every request and every
//! answer HMAC-signed (see [`codec`] for the wire format and the strings to
//! sign).
//!
//! How failures map into [`NextStep`] is decided in two places only:
//! [`classify_trouble`] for what went wrong on the way (connection, timeout,
//! unreadable or unsigned answer) and [`WATER_CODES`] (read through
//! [`codes::classify`]) for the biller's result codes.

pub mod codec;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tracing::Instrument;

use crate::base_url::BaseUrl;
use crate::codes::{self, CodeRule, Disposition};
use crate::echo::{self, Echo};
use crate::{
    Bill, BillQuery, BillStatement, Connector, ConnectorError, ConnectorSettings, Credit, NextStep,
    PayOrder, Refusal, RemoteStatus,
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
}

/// What went wrong on the way to or from the biller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// No connection could be made: nothing was sent.
    NotConnected(String),
    /// The request may have been sent, but no answer came: timeout, or the
    /// connection was lost after the request was written.
    NoAnswer(String),
    /// An answer came but cannot be trusted or read: unsigned, bad
    /// signature, malformed JSON, missing or ill-typed field.
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
    base: BaseUrl,
    key_id: String,
    secret: Vec<u8>,
    timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl fmt::Debug for WaterConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaterConnector")
            .field("id", &self.id)
            .field("base", &self.base)
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
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

/// An answer whose signature checked out.
struct Answer {
    status: StatusCode,
    envelope: Envelope,
}

impl WaterConnector {
    /// Builds the connector. `base_url` must be `http://host:port[/prefix]`,
    /// `timeout_ms` positive (it bounds each whole exchange; connecting
    /// gets half of it, so a biller that cannot be reached is `Retry`
    /// before the exchange times out), and the secret non-empty.
    pub fn new(id: &str, settings: &ConnectorSettings) -> Result<WaterConnector, String> {
        let base = BaseUrl::parse(&settings.base_url, &[])?;
        if settings.timeout_ms == 0 {
            return Err("timeout_ms must be positive".into());
        }
        if settings.secret.is_empty() {
            return Err("secret must not be empty".into());
        }
        if settings.key_id.is_empty() {
            return Err("key_id must not be empty".into());
        }
        let timeout = Duration::from_millis(settings.timeout_ms);
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout / 2));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(16)
            .build(http);
        Ok(WaterConnector {
            id: id.to_string(),
            base,
            key_id: settings.key_id.clone(),
            secret: settings.secret.as_bytes().to_vec(),
            timeout,
            client,
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
        let path = format!("{}{endpoint}", self.base.prefix);
        let nonce = codec::new_nonce();
        let request = self.signed_request(&method, &path, &nonce, body)?;
        let (status, headers, bytes) =
            match tokio::time::timeout(self.timeout, self.exchange(request)).await {
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
        let signature = codec::sign(&self.secret, &to_sign);
        Request::builder()
            .method(method.clone())
            .uri(format!("http://{}{path}", self.base.authority))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(codec::HEADER_KEY, &self.key_id)
            .header(codec::HEADER_TIMESTAMP, timestamp.to_string())
            .header(codec::HEADER_NONCE, nonce)
            .header(codec::HEADER_SIGNATURE, signature)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ConnectorError::retry(format!("cannot build request: {e}")))
    }

    /// The HTTP exchange itself, body read to the end (bounded).
    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), Trouble> {
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
        Ok((parts.status, parts.headers, bytes))
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
        if codec::verify(&self.secret, &to_sign, signature) {
            Ok(())
        } else {
            Err(format!("answer signature does not verify (HTTP {status})"))
        }
    }

    fn span(
        &self,
        op: &'static str,
        reference: &str,
        biller: &str,
        account: &str,
    ) -> tracing::Span {
        tracing::info_span!(
            "water",
            op,
            connector = %self.id,
            biller = %biller,
            reference = %reference,
            account = %mask_account(account),
        )
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
        tracing::info!(
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
        tracing::info!(status = ?status, "status");
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
        let span = tracing::info_span!("water", op = "health", connector = %self.id);
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
            kind: "water-json".into(),
            base_url: base_url.into(),
            key_id: "billclear".into(),
            secret: "s3cret".into(),
            timeout_ms: 500,
        }
    }

    #[test]
    fn base_url_is_validated() {
        for bad in [
            "https://127.0.0.1:9101",
            "127.0.0.1:9101",
            "http://127.0.0.1",
            "http://:9101",
            "http://host:0",
            "http://host:99999",
            "http://host:1/a?b",
        ] {
            assert!(WaterConnector::new("w", &settings(bad)).is_err(), "{bad}");
        }
        let c = WaterConnector::new("w", &settings("http://127.0.0.1:9101/water/")).unwrap();
        assert_eq!(c.base.authority, "127.0.0.1:9101");
        assert_eq!(c.base.prefix, "/water");
        let c = WaterConnector::new("w", &settings("http://localhost:9101")).unwrap();
        assert_eq!(c.base.prefix, "");
    }

    #[test]
    fn timeout_and_secret_are_validated() {
        let mut s = settings("http://127.0.0.1:9101");
        s.timeout_ms = 0;
        assert!(WaterConnector::new("w", &s).is_err());
        let mut s = settings("http://127.0.0.1:9101");
        s.secret.clear();
        assert!(WaterConnector::new("w", &s).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = WaterConnector::new("w", &settings("http://127.0.0.1:9101")).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("redacted"),
            "{shown}"
        );
    }

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
