//! The hub's wire protocol (API v2): request and answer bodies, the strings
//! to sign and the HMAC helpers. The connector and the simulator both use
//! this module, so the two sides cannot drift apart.
//!
//! Field names are camelCase. Answers are decoded field by field (not with
//! `deny_unknown_fields`): extra fields are ignored, a missing or ill-typed
//! required field is refused with an error naming it. Amounts travel as JSON
//! strings holding a plain decimal ("88.50"); a JSON number for an amount is
//! malformed. Times are RFC 3339 with the hub's local offset and
//! milliseconds (`2026-11-29T10:03:04.005+08:00`); any offset is accepted.
//!
//! # Signing
//!
//! Requests carry [`HEADER_MERCHANT`] (our key id), [`HEADER_TIMESTAMP`]
//! (unix **milliseconds**), [`HEADER_NONCE`] (random, hex) and
//! [`HEADER_SIGNATURE`] = base64 (standard alphabet, padded) of
//! HMAC-SHA256(secret, [`request_string_to_sign`]). Answers carry
//! [`HEADER_TIMESTAMP`] and [`HEADER_SIGNATURE`] over
//! [`response_string_to_sign`], which binds them to OUR request's nonce.

use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use crate::water::codec::parse_amount;

/// Header carrying our merchant id at the hub (the settings' `key_id`).
pub const HEADER_MERCHANT: &str = "x-hub-merchant";
/// Header carrying the signing time (unix milliseconds), on requests and
/// answers.
pub const HEADER_TIMESTAMP: &str = "x-hub-timestamp";
/// Header carrying the request's random nonce (hex).
pub const HEADER_NONCE: &str = "x-hub-nonce";
/// Header carrying the base64 HMAC-SHA256 signature.
pub const HEADER_SIGNATURE: &str = "x-hub-signature";

/// Bill inquiry endpoint (POST), relative to the base URL.
pub const PATH_BILLS: &str = "/hub/v2/bills/inquire";
/// Payment endpoint (POST), and status inquiry endpoint
/// (GET `?partnerRef=...`).
pub const PATH_PAYMENTS: &str = "/hub/v2/payments";
/// Health endpoint (GET).
pub const PATH_PING: &str = "/hub/v2/ping";

/// The query parameter of a status inquiry: OUR reference.
pub const QUERY_PARTNER_REF: &str = "partnerRef";

/// Lowercase hex SHA-256 of a body.
pub fn body_digest(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// What a request's signature covers:
/// `"{METHOD}&{path_and_query}&{timestamp_ms}&{nonce}&{hex(sha256(body))}"`,
/// where `path_and_query` is exactly as sent on the request line (with the
/// base URL's prefix and the percent-encoded query, if any). A GET has an
/// empty body.
pub fn request_string_to_sign(
    method: &str,
    path_and_query: &str,
    timestamp_ms: i64,
    nonce: &str,
    body: &[u8],
) -> String {
    format!(
        "{method}&{path_and_query}&{timestamp_ms}&{nonce}&{}",
        body_digest(body)
    )
}

/// What an answer's signature covers:
/// `"{http_status_code}&{timestamp_ms}&{request_nonce}&{hex(sha256(body))}"`,
/// binding the answer to the nonce of the request it answers.
pub fn response_string_to_sign(
    status: u16,
    timestamp_ms: i64,
    request_nonce: &str,
    body: &[u8],
) -> String {
    format!(
        "{status}&{timestamp_ms}&{request_nonce}&{}",
        body_digest(body)
    )
}

/// The signature of `string_to_sign` under the connector's scheme, as
/// standard base64 (padded) (HMAC-SHA256 by default; RSA or SM2 as configured).
pub fn sign(signer: &crate::Signer, string_to_sign: &str) -> String {
    signer.sign_base64(string_to_sign.as_bytes())
}

/// Checks a standard base64 (padded) signature (an HMAC in constant time). A signature
/// that does not decode is simply wrong.
pub fn verify(signer: &crate::Signer, string_to_sign: &str, signature: &str) -> bool {
    signer.verify_base64(string_to_sign.as_bytes(), signature)
}

/// A random nonce: 16 random bytes in lowercase hex.
pub fn new_nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

// ------------------------------------------------------------------ query

/// Percent-encodes a query value: everything but RFC 3986 unreserved
/// characters (`A-Z a-z 0-9 - . _ ~`) as `%XX` (uppercase hex, UTF-8).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a percent-encoded query value (`+` is NOT a space here: the
/// protocol encodes spaces as `%20`). Refuses bad escapes and non-UTF-8.
pub fn decode_query_value(value: &str) -> Result<String, DecodeError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| DecodeError(format!("query value {value:?}: bad % escape")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| DecodeError(format!("query value {value:?} is not UTF-8")))
}

/// The path and query of a status inquiry for OUR reference `partner_ref`
/// (relative to the base URL).
pub fn status_path(partner_ref: &str) -> String {
    format!(
        "{PATH_PAYMENTS}?{QUERY_PARTNER_REF}={}",
        encode_query_value(partner_ref)
    )
}

/// Reads the partner reference of a status inquiry's query string; exactly
/// one `partnerRef`, non-empty, and no other parameter.
pub fn partner_ref_from_query(query: Option<&str>) -> Result<String, DecodeError> {
    let mut found = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != QUERY_PARTNER_REF {
            return Err(DecodeError(format!(
                "query parameter `{name}` is not known"
            )));
        }
        if found.is_some() {
            return Err(DecodeError(format!(
                "query parameter `{QUERY_PARTNER_REF}` is repeated"
            )));
        }
        found = Some(decode_query_value(value)?);
    }
    match found {
        Some(r) if !r.is_empty() => Ok(r),
        _ => Err(DecodeError(format!(
            "query parameter `{QUERY_PARTNER_REF}` is missing"
        ))),
    }
}

// ---------------------------------------------------------------- requests

/// `POST /hub/v2/bills/inquire`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BillsInquiry {
    /// Our merchant id (the same as [`HEADER_MERCHANT`]).
    pub merchant_id: String,
    pub biller_code: String,
    pub account_no: String,
}

/// `POST /hub/v2/payments`. `partnerRef` is OUR reference (the hub is
/// idempotent on it); the amount is a decimal string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentRequest {
    /// Our merchant id (the same as [`HEADER_MERCHANT`]).
    pub merchant_id: String,
    pub biller_code: String,
    pub partner_ref: String,
    pub account_no: String,
    pub amount: String,
    pub currency: String,
    pub bill_no: Option<String>,
}

impl PaymentRequest {
    /// The request for `order`, amount written as given (never a float).
    pub fn from_order(merchant_id: &str, order: &crate::PayOrder) -> PaymentRequest {
        PaymentRequest {
            merchant_id: merchant_id.to_string(),
            biller_code: order.biller_id.clone(),
            partner_ref: order.our_reference.clone(),
            account_no: order.account_number.clone(),
            amount: order.amount.to_string(),
            currency: order.currency.clone(),
            bill_no: order.bill_reference.clone(),
        }
    }
}

// ----------------------------------------------------------------- answers

/// An answer body as the hub writes it: `code` and `message` first, then
/// the operation's fields (absent on most failures).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reply<T> {
    pub code: String,
    pub message: String,
    #[serde(flatten)]
    pub body: Option<T>,
}

/// One outstanding bill in a bill inquiry answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HubBill {
    pub bill_no: String,
    #[serde(with = "amount_str")]
    pub amount_due: Decimal,
    pub currency: String,
    pub due_date: NaiveDate,
}

/// The fields of a successful bill inquiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BillsAnswer {
    pub biller_code: String,
    pub account_no: String,
    pub customer_name: String,
    pub bills: Vec<HubBill>,
}

/// What the hub did with a payment request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// Credited by the biller behind the hub (code `0`).
    Accepted,
    /// Refused (the code says why); the hub keeps it as a failed
    /// transaction.
    Failed,
}

/// The fields of a payment answer (status ACCEPTED with code `0`, or
/// FAILED with the refusal's code). `hubTxnId` is the hub's own reference;
/// `billerReceipt` the receipt of the biller behind it, when credited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentAnswer {
    pub status: PaymentStatus,
    pub hub_txn_id: String,
    pub partner_ref: String,
    pub biller_code: String,
    pub account_no: String,
    #[serde(with = "amount_str")]
    pub amount: Decimal,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub biller_receipt: Option<String>,
    #[serde(with = "time_str")]
    pub completed_at: DateTime<FixedOffset>,
    /// The hub answered a request it had already decided (same partnerRef,
    /// same details).
    pub repeated: bool,
}

/// A transaction's state as the status inquiry reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TxnState {
    Success,
    Failed,
    Processing,
}

/// The fields of a successful status inquiry (code `0`). A SUCCESS carries
/// `hubTxnId` and `completedAt`; a FAILED carries `failCode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusAnswer {
    pub state: TxnState,
    pub hub_txn_id: String,
    pub partner_ref: String,
    pub biller_code: String,
    pub account_no: String,
    #[serde(with = "amount_str")]
    pub amount: Decimal,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub biller_receipt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_time_str")]
    pub completed_at: Option<DateTime<FixedOffset>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_message: Option<String>,
}

/// An answer that cannot be read; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed answer: {0}")]
pub struct DecodeError(pub String);

/// The `code` and `message` every answer starts with, and the rest of the
/// body for the operation to decode.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub code: String,
    pub message: String,
    pub fields: Map<String, Value>,
}

/// Decodes an answer body down to its envelope.
pub fn decode_envelope(body: &[u8]) -> Result<Envelope, DecodeError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| DecodeError(format!("body is not JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(DecodeError("body is not a JSON object".into()));
    };
    let f = Fields(&fields);
    let code = f.str("code")?.to_string();
    let message = f.opt_str("message")?.unwrap_or_default().to_string();
    Ok(Envelope {
        code,
        message,
        fields,
    })
}

impl BillsAnswer {
    /// Reads a successful bill inquiry's fields.
    pub fn decode(fields: &Map<String, Value>) -> Result<BillsAnswer, DecodeError> {
        let f = Fields(fields);
        let bills = f
            .array("bills")?
            .iter()
            .enumerate()
            .map(|(i, v)| HubBill::decode(i, v))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BillsAnswer {
            biller_code: f.str("billerCode")?.to_string(),
            account_no: f.str("accountNo")?.to_string(),
            customer_name: f.str("customerName")?.to_string(),
            bills,
        })
    }
}

impl HubBill {
    fn decode(index: usize, value: &Value) -> Result<HubBill, DecodeError> {
        let Value::Object(map) = value else {
            return Err(DecodeError(format!("bills[{index}] is not an object")));
        };
        let f = Fields(map);
        let named = |e: DecodeError| DecodeError(format!("bills[{index}]: {}", e.0));
        Ok(HubBill {
            bill_no: f.str("billNo").map_err(named)?.to_string(),
            amount_due: f.amount("amountDue").map_err(named)?,
            currency: f.str("currency").map_err(named)?.to_string(),
            due_date: f.date("dueDate").map_err(named)?,
        })
    }
}

impl PaymentAnswer {
    /// Reads a payment answer's fields.
    pub fn decode(fields: &Map<String, Value>) -> Result<PaymentAnswer, DecodeError> {
        let f = Fields(fields);
        let status = match f.str("status")? {
            "ACCEPTED" => PaymentStatus::Accepted,
            "FAILED" => PaymentStatus::Failed,
            other => {
                return Err(DecodeError(format!(
                    "field `status`: unknown status {other:?}"
                )))
            }
        };
        Ok(PaymentAnswer {
            status,
            hub_txn_id: f.str("hubTxnId")?.to_string(),
            partner_ref: f.str("partnerRef")?.to_string(),
            biller_code: f.str("billerCode")?.to_string(),
            account_no: f.str("accountNo")?.to_string(),
            amount: f.amount("amount")?,
            currency: f.str("currency")?.to_string(),
            biller_receipt: f.opt_str("billerReceipt")?.map(str::to_string),
            completed_at: f.time("completedAt")?,
            repeated: f.opt_bool("repeated")?.unwrap_or(false),
        })
    }
}

impl StatusAnswer {
    /// Reads a successful status inquiry's fields. Which optional fields a
    /// state requires is checked by the connector.
    pub fn decode(fields: &Map<String, Value>) -> Result<StatusAnswer, DecodeError> {
        let f = Fields(fields);
        let state = match f.str("state")? {
            "SUCCESS" => TxnState::Success,
            "FAILED" => TxnState::Failed,
            "PROCESSING" => TxnState::Processing,
            other => {
                return Err(DecodeError(format!(
                    "field `state`: unknown state {other:?}"
                )))
            }
        };
        Ok(StatusAnswer {
            state,
            hub_txn_id: f.str("hubTxnId")?.to_string(),
            partner_ref: f.str("partnerRef")?.to_string(),
            biller_code: f.str("billerCode")?.to_string(),
            account_no: f.str("accountNo")?.to_string(),
            amount: f.amount("amount")?,
            currency: f.str("currency")?.to_string(),
            biller_receipt: f.opt_str("billerReceipt")?.map(str::to_string),
            completed_at: f.opt_time("completedAt")?,
            fail_code: f.opt_str("failCode")?.map(str::to_string),
            fail_message: f.opt_str("failMessage")?.map(str::to_string),
        })
    }
}

/// Typed, named access to the fields of a JSON object.
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Result<&'a Value, DecodeError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Err(DecodeError(format!("field `{name}` is missing"))),
            Some(v) => Ok(v),
        }
    }

    fn str(&self, name: &str) -> Result<&'a str, DecodeError> {
        match self.get(name)? {
            Value::String(s) => Ok(s),
            other => Err(type_error(name, "a string", other)),
        }
    }

    fn opt_str(&self, name: &str) -> Result<Option<&'a str>, DecodeError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.str(name).map(Some),
        }
    }

    fn opt_bool(&self, name: &str) -> Result<Option<bool>, DecodeError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(type_error(name, "a boolean", other)),
        }
    }

    fn array(&self, name: &str) -> Result<&'a Vec<Value>, DecodeError> {
        match self.get(name)? {
            Value::Array(a) => Ok(a),
            other => Err(type_error(name, "an array", other)),
        }
    }

    /// A decimal amount, which must be a JSON string.
    fn amount(&self, name: &str) -> Result<Decimal, DecodeError> {
        match self.get(name)? {
            Value::String(s) => parse_amount(s).ok_or_else(|| {
                DecodeError(format!("field `{name}`: {s:?} is not a decimal amount"))
            }),
            other => Err(type_error(name, "a decimal string", other)),
        }
    }

    fn date(&self, name: &str) -> Result<NaiveDate, DecodeError> {
        let s = self.str(name)?;
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| DecodeError(format!("field `{name}`: {s:?} is not a YYYY-MM-DD date")))
    }

    fn time(&self, name: &str) -> Result<DateTime<FixedOffset>, DecodeError> {
        let s = self.str(name)?;
        DateTime::parse_from_rfc3339(s)
            .map_err(|_| DecodeError(format!("field `{name}`: {s:?} is not an RFC 3339 time")))
    }

    fn opt_time(&self, name: &str) -> Result<Option<DateTime<FixedOffset>>, DecodeError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.time(name).map(Some),
        }
    }
}

fn type_error(name: &str, expected: &str, got: &Value) -> DecodeError {
    let kind = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a JSON number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    DecodeError(format!("field `{name}`: expected {expected}, got {kind}"))
}

/// The protocol's time format: RFC 3339 with milliseconds, in the offset
/// the time carries (`+08:00` from the hub; `Z` is never written).
pub fn format_time(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// Serializes a decimal as a JSON string, keeping its scale.
mod amount_str {
    use rust_decimal::Decimal;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(d)
    }
}

mod time_str {
    use super::*;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &DateTime<FixedOffset>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_time(t))
    }
}

mod opt_time_str {
    use super::*;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(
        t: &Option<DateTime<FixedOffset>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_time(t)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(secret: &[u8]) -> crate::Signer {
        crate::Signer::hmac(secret).unwrap()
    }
    use crate::PayOrder;
    use std::str::FromStr;

    fn order() -> PayOrder {
        PayOrder {
            our_reference: "pay-0001".into(),
            biller_id: "sh-power".into(),
            account_number: "0306406159".into(),
            amount: Decimal::from_str("88.50").unwrap(),
            currency: "CNY".into(),
            bill_reference: None,
        }
    }

    #[test]
    fn payment_request_encodes_to_pinned_bytes() {
        let body = serde_json::to_vec(&PaymentRequest::from_order("billclear", &order())).unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"merchantId":"billclear","billerCode":"sh-power","partnerRef":"pay-0001","accountNo":"0306406159","amount":"88.50","currency":"CNY","billNo":null}"#
        );
        let with_bill = PayOrder {
            bill_reference: Some("B202612".into()),
            ..order()
        };
        let body =
            serde_json::to_string(&PaymentRequest::from_order("billclear", &with_bill)).unwrap();
        assert!(body.ends_with(r#""billNo":"B202612"}"#), "{body}");
        let inquiry = BillsInquiry {
            merchant_id: "billclear".into(),
            biller_code: "sh-gas".into(),
            account_no: "310012345677".into(),
        };
        assert_eq!(
            serde_json::to_string(&inquiry).unwrap(),
            r#"{"merchantId":"billclear","billerCode":"sh-gas","accountNo":"310012345677"}"#
        );
    }

    #[test]
    fn requests_refuse_unknown_fields_and_snake_case() {
        assert!(serde_json::from_str::<BillsInquiry>(
            r#"{"merchantId":"m","billerCode":"b","account_no":"1"}"#
        )
        .is_err());
        assert!(serde_json::from_str::<PaymentRequest>(
            r#"{"merchantId":"m","billerCode":"b","partnerRef":"p","accountNo":"1","amount":"1.00","currency":"CNY","billNo":null,"x":1}"#
        )
        .is_err());
    }

    #[test]
    fn string_to_sign_and_signature_are_pinned() {
        let body =
            br#"{"merchantId":"billclear","billerCode":"sh-water","accountNo":"3100000011"}"#;
        let s = request_string_to_sign(
            "POST",
            "/hub/v2/bills/inquire",
            1_790_000_000_123,
            "00112233445566778899aabbccddeeff",
            body,
        );
        assert_eq!(
            s,
            "POST&/hub/v2/bills/inquire&1790000000123&00112233445566778899aabbccddeeff&\
             d07182e3d5621675cd6fedbac882db59f4259033d90c626574735ee3575074d4"
        );
        assert_eq!(
            body_digest(body),
            "d07182e3d5621675cd6fedbac882db59f4259033d90c626574735ee3575074d4"
        );
        assert_eq!(
            sign(&hm(b"s3cret"), &s),
            "4+rokHO04zH+09nz7l0lieiMxRgOBxCEUvOa3kN6hM8="
        );
        let q = request_string_to_sign(
            "GET",
            &status_path("pay 01/å"),
            1_790_000_000_123,
            "abcd",
            b"",
        );
        assert_eq!(
            q,
            "GET&/hub/v2/payments?partnerRef=pay%2001%2F%C3%A5&1790000000123&abcd&\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sign(&hm(b"s3cret"), &q),
            "yLxWkXvI8/o9q86ND6AomBfYNOk3da3Jl4ywzsIJHV0="
        );
        let r = response_string_to_sign(403, 1_790_000_000_456, "abcd", b"");
        assert_eq!(
            r,
            "403&1790000000456&abcd&e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sign(&hm(b"s3cret"), &r),
            "kEjQQBnPEhH8KipOEq57KXvTUL89bGk2L41CZpJje+8="
        );
        // RFC 4231 test case 2 pins the HMAC itself (hex 5bdcc146...3843).
        assert_eq!(
            sign(&hm(b"Jefe"), "what do ya want for nothing?"),
            "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="
        );
    }

    #[test]
    fn verify_refuses_bad_signatures() {
        let sig = sign(&hm(b"k"), "x");
        assert!(verify(&hm(b"k"), "x", &sig));
        assert!(!verify(&hm(b"k"), "y", &sig));
        assert!(!verify(&hm(b"other"), "x", &sig));
        assert!(!verify(&hm(b"k"), "x", "not base64!"));
        assert!(!verify(&hm(b"k"), "x", ""));
        assert!(!verify(&hm(b"k"), "x", &sig[..40]));
        // The water scheme's hex signature of the same string is refused.
        let hex_sig = crate::water::codec::sign(&hm(b"k"), "x");
        assert!(!verify(&hm(b"k"), "x", &hex_sig));
    }

    #[test]
    fn query_values_round_trip_and_bad_queries_are_named() {
        assert_eq!(encode_query_value("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(encode_query_value("a b&c=d+"), "a%20b%26c%3Dd%2B");
        for v in ["pay-1", "a b&c=d+%", "å/ü", ""] {
            assert_eq!(decode_query_value(&encode_query_value(v)).unwrap(), v);
        }
        assert!(decode_query_value("%4").is_err());
        assert!(decode_query_value("%zz").is_err());
        assert!(decode_query_value("%FF").is_err());
        assert_eq!(
            partner_ref_from_query(Some("partnerRef=pay%201")).unwrap(),
            "pay 1"
        );
        let e = partner_ref_from_query(None).unwrap_err().0;
        assert!(e.contains("`partnerRef` is missing"), "{e}");
        let e = partner_ref_from_query(Some("partnerRef=")).unwrap_err().0;
        assert!(e.contains("`partnerRef` is missing"), "{e}");
        let e = partner_ref_from_query(Some("partnerRef=a&partnerRef=b"))
            .unwrap_err()
            .0;
        assert!(e.contains("repeated"), "{e}");
        let e = partner_ref_from_query(Some("partnerRef=a&x=1"))
            .unwrap_err()
            .0;
        assert!(e.contains("`x`"), "{e}");
    }

    #[test]
    fn golden_payment_answer_decodes() {
        let body = br#"{"code":"0","message":"success","status":"ACCEPTED","hubTxnId":"HUB2026112900000001","partnerRef":"pay-0001","billerCode":"sh-power","accountNo":"0306406159","amount":"88.50","currency":"CNY","billerReceipt":"E0000000001","completedAt":"2026-11-29T10:03:04.005+08:00","repeated":false,"extra":"ignored"}"#;
        let env = decode_envelope(body).unwrap();
        assert_eq!((env.code.as_str(), env.message.as_str()), ("0", "success"));
        let a = PaymentAnswer::decode(&env.fields).unwrap();
        assert_eq!(a.status, PaymentStatus::Accepted);
        assert_eq!(a.hub_txn_id, "HUB2026112900000001");
        assert_eq!(a.biller_receipt.as_deref(), Some("E0000000001"));
        assert_eq!(a.amount, Decimal::from_str("88.50").unwrap());
        assert_eq!(
            a.completed_at.with_timezone(&chrono::Utc).to_rfc3339(),
            "2026-11-29T02:03:04.005+00:00"
        );
        assert!(!a.repeated);
    }

    #[test]
    fn golden_bills_and_status_answers_decode() {
        let body = r#"{"code":"0","message":"success","billerCode":"sh-gas","accountNo":"310012345677","customerName":"张伟","bills":[{"billNo":"B1","amountDue":"123.45","currency":"CNY","dueDate":"2026-12-15"}]}"#;
        let a = BillsAnswer::decode(&decode_envelope(body.as_bytes()).unwrap().fields).unwrap();
        assert_eq!(a.customer_name, "张伟");
        assert_eq!(a.bills[0].amount_due, Decimal::from_str("123.45").unwrap());
        assert_eq!(
            a.bills[0].due_date,
            NaiveDate::from_ymd_opt(2026, 12, 15).unwrap()
        );
        let body = br#"{"code":"0","state":"FAILED","hubTxnId":"HUB1","partnerRef":"p","billerCode":"sh-water","accountNo":"1","amount":"1.00","currency":"CNY","failCode":"2002","failMessage":"account closed","completedAt":"2026-11-29T10:00:00.000+08:00"}"#;
        let s = StatusAnswer::decode(&decode_envelope(body).unwrap().fields).unwrap();
        assert_eq!(s.state, TxnState::Failed);
        assert_eq!(s.fail_code.as_deref(), Some("2002"));
        assert_eq!(s.biller_receipt, None);
        let body = br#"{"code":"0","state":"PROCESSING","hubTxnId":"HUB1","partnerRef":"p","billerCode":"sh-water","accountNo":"1","amount":"1.00","currency":"CNY"}"#;
        let s = StatusAnswer::decode(&decode_envelope(body).unwrap().fields).unwrap();
        assert_eq!(s.state, TxnState::Processing);
        assert_eq!(s.completed_at, None);
    }

    fn pay_error(body: &str) -> String {
        let env = decode_envelope(body.as_bytes()).unwrap();
        PaymentAnswer::decode(&env.fields).unwrap_err().0
    }

    const OK: &str = r#""code":"0","status":"ACCEPTED","hubTxnId":"HUB1","billerCode":"sh-water","accountNo":"1","currency":"CNY","completedAt":"2026-11-29T10:03:04+08:00""#;

    #[test]
    fn malformed_answers_are_refused_naming_the_field() {
        let e = pay_error(&format!(r#"{{{OK},"partnerRef":"p","amount":88.5}}"#));
        assert!(e.contains("`amount`") && e.contains("JSON number"), "{e}");
        for bad in [
            "\"88,50\"",
            "\"1e3\"",
            "\"\"",
            "\" 1\"",
            "\"NaN\"",
            "\"1.\"",
        ] {
            let e = pay_error(&format!(r#"{{{OK},"partnerRef":"p","amount":{bad}}}"#));
            assert!(e.contains("`amount`"), "{bad}: {e}");
        }
        let e = pay_error(&format!(r#"{{{OK},"amount":"1.00"}}"#));
        assert!(e.contains("`partnerRef` is missing"), "{e}");
        let e = pay_error(&format!(r#"{{{OK},"partnerRef":7,"amount":"1.00"}}"#));
        assert!(
            e.contains("`partnerRef`") && e.contains("JSON number"),
            "{e}"
        );
        let e = pay_error(
            &format!(r#"{{{OK},"partnerRef":"p","amount":"1.00"}}"#).replace("ACCEPTED", "MAYBE"),
        );
        assert!(e.contains("`status`") && e.contains("MAYBE"), "{e}");
        let e = pay_error(
            &format!(r#"{{{OK},"partnerRef":"p","amount":"1.00"}}"#)
                .replace("2026-11-29T10:03:04+08:00", "yesterday"),
        );
        assert!(e.contains("`completedAt`"), "{e}");
        let e = decode_envelope(br#"{"message":"x"}"#).unwrap_err().0;
        assert!(e.contains("`code`"), "{e}");
        let e = decode_envelope(br#"{"code":0}"#).unwrap_err().0;
        assert!(e.contains("`code`") && e.contains("JSON number"), "{e}");
        let e = decode_envelope(b"<html>").unwrap_err().0;
        assert!(e.contains("not JSON"), "{e}");
        let e = decode_envelope(b"[1]").unwrap_err().0;
        assert!(e.contains("not a JSON object"), "{e}");
        let body = br#"{"code":"0","billerCode":"b","accountNo":"1","customerName":"x","bills":[{"billNo":"B","amountDue":"1.00","currency":"CNY"}]}"#;
        let e = BillsAnswer::decode(&decode_envelope(body).unwrap().fields)
            .unwrap_err()
            .0;
        assert!(e.contains("bills[0]") && e.contains("`dueDate`"), "{e}");
        let body = br#"{"code":"0","state":"DONE","hubTxnId":"H","partnerRef":"p","billerCode":"b","accountNo":"1","amount":"1.00","currency":"CNY"}"#;
        let e = StatusAnswer::decode(&decode_envelope(body).unwrap().fields)
            .unwrap_err()
            .0;
        assert!(e.contains("`state`"), "{e}");
    }

    #[test]
    fn answers_encode_to_pinned_bytes_and_back() {
        let offset = FixedOffset::east_opt(8 * 3600).unwrap();
        let a = PaymentAnswer {
            status: PaymentStatus::Accepted,
            hub_txn_id: "HUB2026112900000001".into(),
            partner_ref: "p".into(),
            biller_code: "sh-gas".into(),
            account_no: "1".into(),
            amount: Decimal::from_str("1.50").unwrap(),
            currency: "CNY".into(),
            biller_receipt: Some("G0000000001".into()),
            completed_at: DateTime::parse_from_rfc3339("2026-11-29T02:03:04.005Z")
                .unwrap()
                .with_timezone(&offset),
            repeated: false,
        };
        let reply = Reply {
            code: "0".into(),
            message: "success".into(),
            body: Some(a.clone()),
        };
        let json = serde_json::to_string(&reply).unwrap();
        assert_eq!(
            json,
            r#"{"code":"0","message":"success","status":"ACCEPTED","hubTxnId":"HUB2026112900000001","partnerRef":"p","billerCode":"sh-gas","accountNo":"1","amount":"1.50","currency":"CNY","billerReceipt":"G0000000001","completedAt":"2026-11-29T10:03:04.005+08:00","repeated":false}"#
        );
        let env = decode_envelope(json.as_bytes()).unwrap();
        assert_eq!(PaymentAnswer::decode(&env.fields).unwrap(), a);
        let fail: Reply<PaymentAnswer> = Reply {
            code: "4030".into(),
            message: "merchant suspended".into(),
            body: None,
        };
        assert_eq!(
            serde_json::to_string(&fail).unwrap(),
            r#"{"code":"4030","message":"merchant suspended"}"#
        );
    }
}
