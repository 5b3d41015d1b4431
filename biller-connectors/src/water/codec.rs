//! The water company's wire protocol: request and answer bodies, the
//! strings to sign and the HMAC helpers. The connector and the simulator
//! both use this module, so the two sides cannot drift apart.
//!
//! Answers from the biller are decoded field by field (not with
//! `deny_unknown_fields`): extra fields are ignored, a missing or ill-typed
//! required field is refused with an error naming it. Amounts travel as JSON
//! strings holding a decimal; a JSON number for an amount is malformed.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Header carrying our key id at the biller.
pub const HEADER_KEY: &str = "x-water-key";
/// Header carrying the signing time (unix seconds), on requests and answers.
pub const HEADER_TIMESTAMP: &str = "x-water-timestamp";
/// Header carrying the request's random nonce (hex).
pub const HEADER_NONCE: &str = "x-water-nonce";
/// Header carrying the lowercase hex HMAC-SHA256 signature.
pub const HEADER_SIGNATURE: &str = "x-water-signature";

/// Bill inquiry endpoint (POST), relative to the base URL.
pub const PATH_BILLS: &str = "/api/v1/bills/query";
/// Payment endpoint (POST).
pub const PATH_PAY: &str = "/api/v1/payments";
/// Payment status inquiry endpoint (POST).
pub const PATH_PAY_QUERY: &str = "/api/v1/payments/query";
/// Health endpoint (GET).
pub const PATH_HEALTH: &str = "/api/v1/health";

/// Lowercase hex SHA-256 of a body.
pub fn body_digest(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// What a request's signature covers:
/// `"{METHOD}\n{path}\n{timestamp}\n{nonce}\n{hex(sha256(body))}"`, where
/// `path` is the full request path (with the base URL's prefix).
pub fn request_string_to_sign(
    method: &str,
    path: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> String {
    format!(
        "{method}\n{path}\n{timestamp}\n{nonce}\n{}",
        body_digest(body)
    )
}

/// What an answer's signature covers:
/// `"{http_status_code}\n{timestamp}\n{request_nonce}\n{hex(sha256(body))}"`,
/// binding the answer to the nonce of the request it answers.
pub fn response_string_to_sign(
    status: u16,
    timestamp: i64,
    request_nonce: &str,
    body: &[u8],
) -> String {
    format!(
        "{status}\n{timestamp}\n{request_nonce}\n{}",
        body_digest(body)
    )
}

/// The signature of `string_to_sign` under the connector's scheme, as
/// lowercase hex (HMAC-SHA256 by default; RSA or SM2 as configured).
pub fn sign(signer: &crate::Signer, string_to_sign: &str) -> String {
    signer.sign_hex(string_to_sign.as_bytes())
}

/// Checks a lowercase hex signature (an HMAC in constant time). A signature
/// that does not decode is simply wrong.
pub fn verify(signer: &crate::Signer, string_to_sign: &str, signature: &str) -> bool {
    signer.verify_hex(string_to_sign.as_bytes(), signature)
}

/// A random nonce: 16 random bytes in lowercase hex.
pub fn new_nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

// ---------------------------------------------------------------- requests

/// `POST /api/v1/bills/query`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillsRequest {
    pub biller_code: String,
    pub account_no: String,
}

/// `POST /api/v1/payments`. `txn_ref` is OUR reference; the amount is a
/// decimal string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayRequest {
    pub biller_code: String,
    pub txn_ref: String,
    pub account_no: String,
    pub amount: String,
    pub currency: String,
    pub bill_no: Option<String>,
}

impl PayRequest {
    /// The request for `order`, amount written as given (never a float).
    pub fn from_order(order: &crate::PayOrder) -> PayRequest {
        PayRequest {
            biller_code: order.biller_id.clone(),
            txn_ref: order.our_reference.clone(),
            account_no: order.account_number.clone(),
            amount: order.amount.to_string(),
            currency: order.currency.clone(),
            bill_no: order.bill_reference.clone(),
        }
    }
}

/// `POST /api/v1/payments/query`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentQueryRequest {
    pub biller_code: String,
    pub txn_ref: String,
}

// ----------------------------------------------------------------- answers

/// An answer body as the biller writes it: the result code and message,
/// then the operation's fields (absent on failures).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reply<T> {
    pub result_code: String,
    pub result_msg: String,
    #[serde(flatten)]
    pub body: Option<T>,
}

/// One outstanding bill in a bill inquiry answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WireBill {
    pub bill_no: String,
    #[serde(with = "amount_str")]
    pub amount_due: Decimal,
    pub currency: String,
    pub due_date: NaiveDate,
}

/// The fields of a successful bill inquiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BillsAnswer {
    pub account_no: String,
    pub customer_name: String,
    pub bills: Vec<WireBill>,
}

/// The fields of a successful payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayAnswer {
    pub txn_ref: String,
    pub account_no: String,
    #[serde(with = "amount_str")]
    pub amount: Decimal,
    pub currency: String,
    pub receipt_no: String,
    #[serde(with = "rfc3339")]
    pub credited_at: DateTime<Utc>,
    pub duplicate: bool,
}

/// What the biller says a payment asked about has become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentState {
    Credited,
    Rejected,
    Pending,
}

/// The fields of a successful payment status inquiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentQueryAnswer {
    pub txn_ref: String,
    pub state: PaymentState,
    pub account_no: String,
    #[serde(with = "amount_str")]
    pub amount: Decimal,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_rfc3339")]
    pub credited_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject_msg: Option<String>,
}

/// An answer that cannot be read; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed answer: {0}")]
pub struct DecodeError(pub String);

/// The result code and message every answer starts with, and the rest of
/// the body for the operation to decode.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub result_code: String,
    pub result_msg: String,
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
    let result_code = f.str("result_code")?.to_string();
    let result_msg = f.opt_str("result_msg")?.unwrap_or_default().to_string();
    Ok(Envelope {
        result_code,
        result_msg,
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
            .map(|(i, v)| WireBill::decode(i, v))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BillsAnswer {
            account_no: f.str("account_no")?.to_string(),
            customer_name: f.str("customer_name")?.to_string(),
            bills,
        })
    }
}

impl WireBill {
    fn decode(index: usize, value: &Value) -> Result<WireBill, DecodeError> {
        let Value::Object(map) = value else {
            return Err(DecodeError(format!("bills[{index}] is not an object")));
        };
        let f = Fields(map);
        let named = |e: DecodeError| DecodeError(format!("bills[{index}]: {}", e.0));
        Ok(WireBill {
            bill_no: f.str("bill_no").map_err(named)?.to_string(),
            amount_due: f.amount("amount_due").map_err(named)?,
            currency: f.str("currency").map_err(named)?.to_string(),
            due_date: f.date("due_date").map_err(named)?,
        })
    }
}

impl PayAnswer {
    /// Reads a successful payment's fields.
    pub fn decode(fields: &Map<String, Value>) -> Result<PayAnswer, DecodeError> {
        let f = Fields(fields);
        Ok(PayAnswer {
            txn_ref: f.str("txn_ref")?.to_string(),
            account_no: f.str("account_no")?.to_string(),
            amount: f.amount("amount")?,
            currency: f.str("currency")?.to_string(),
            receipt_no: f.str("receipt_no")?.to_string(),
            credited_at: f.datetime("credited_at")?,
            duplicate: f.opt_bool("duplicate")?.unwrap_or(false),
        })
    }
}

impl PaymentQueryAnswer {
    /// Reads a successful status inquiry's fields. Which optional fields a
    /// state requires is checked by the connector.
    pub fn decode(fields: &Map<String, Value>) -> Result<PaymentQueryAnswer, DecodeError> {
        let f = Fields(fields);
        let state = match f.str("state")? {
            "CREDITED" => PaymentState::Credited,
            "REJECTED" => PaymentState::Rejected,
            "PENDING" => PaymentState::Pending,
            other => {
                return Err(DecodeError(format!(
                    "field `state`: unknown state {other:?}"
                )))
            }
        };
        Ok(PaymentQueryAnswer {
            txn_ref: f.str("txn_ref")?.to_string(),
            state,
            account_no: f.str("account_no")?.to_string(),
            amount: f.amount("amount")?,
            currency: f.str("currency")?.to_string(),
            receipt_no: f.opt_str("receipt_no")?.map(str::to_string),
            credited_at: f.opt_datetime("credited_at")?,
            reject_code: f.opt_str("reject_code")?.map(str::to_string),
            reject_msg: f.opt_str("reject_msg")?.map(str::to_string),
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

    fn datetime(&self, name: &str) -> Result<DateTime<Utc>, DecodeError> {
        let s = self.str(name)?;
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| DecodeError(format!("field `{name}`: {s:?} is not an RFC 3339 time")))
    }

    fn opt_datetime(&self, name: &str) -> Result<Option<DateTime<Utc>>, DecodeError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.datetime(name).map(Some),
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

/// Parses a plain decimal string ("88.50", "-1", "0.5"); no exponent, no
/// spaces, no sign other than a leading '-'.
pub fn parse_amount(s: &str) -> Option<Decimal> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let mut parts = digits.splitn(2, '.');
    let int = parts.next().unwrap_or_default();
    let frac = parts.next();
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
        return None;
    }
    s.parse::<Decimal>().ok()
}

/// Serializes a decimal as a JSON string, keeping its scale.
mod amount_str {
    use rust_decimal::Decimal;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(d)
    }
}

/// Serializes a time as RFC 3339 in UTC with milliseconds.
mod rfc3339 {
    use super::*;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_time(t))
    }
}

mod opt_rfc3339 {
    use super::*;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_time(t)),
            None => s.serialize_none(),
        }
    }
}

/// The protocol's time format: RFC 3339, UTC, milliseconds, `Z`.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
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
            biller_id: "sh-water".into(),
            account_number: "3100000011".into(),
            amount: Decimal::from_str("88.50").unwrap(),
            currency: "CNY".into(),
            bill_reference: None,
        }
    }

    #[test]
    fn pay_request_encodes_to_pinned_bytes() {
        let body = serde_json::to_vec(&PayRequest::from_order(&order())).unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"biller_code":"sh-water","txn_ref":"pay-0001","account_no":"3100000011","amount":"88.50","currency":"CNY","bill_no":null}"#
        );
        let with_bill = PayOrder {
            bill_reference: Some("B202612".into()),
            ..order()
        };
        let body = serde_json::to_string(&PayRequest::from_order(&with_bill)).unwrap();
        assert!(body.ends_with(r#""bill_no":"B202612"}"#), "{body}");
    }

    #[test]
    fn string_to_sign_and_signature_are_pinned() {
        let body = br#"{"biller_code":"sh-water","txn_ref":"pay-0001"}"#;
        let s = request_string_to_sign(
            "POST",
            "/water/api/v1/payments/query",
            1_790_000_000,
            "00112233445566778899aabbccddeeff",
            body,
        );
        assert_eq!(
            s,
            "POST\n/water/api/v1/payments/query\n1790000000\n00112233445566778899aabbccddeeff\n\
             14d380f3795d91e68fc2363b0fb10f519634a32f464339af18e5feef114dda6f"
        );
        assert_eq!(
            sign(&hm(b"s3cret"), &s),
            "0418275dd204d144059f8153d4b882354fe401091fd394951e9b2f586a62d63b"
        );
        let r = response_string_to_sign(200, 1_790_000_001, "abcd", b"");
        assert_eq!(
            r,
            "200\n1790000001\nabcd\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sign(&hm(b"s3cret"), &r),
            "3cecd3b37cb8e7a6597316b6bf3167b49288d98840f0b9c941683aeac9bb3fea"
        );
        // RFC 4231 test case 2 pins the HMAC itself.
        assert_eq!(
            sign(&hm(b"Jefe"), "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verify_refuses_bad_signatures() {
        let sig = sign(&hm(b"k"), "x");
        assert!(verify(&hm(b"k"), "x", &sig));
        assert!(!verify(&hm(b"k"), "y", &sig));
        assert!(!verify(&hm(b"other"), "x", &sig));
        assert!(!verify(&hm(b"k"), "x", "not-hex"));
        assert!(!verify(&hm(b"k"), "x", ""));
        assert!(!verify(&hm(b"k"), "x", &sig[..62]));
    }

    #[test]
    fn golden_pay_answer_decodes() {
        let body = br#"{"result_code":"0000","result_msg":"ok","txn_ref":"pay-0001","account_no":"3100000011","amount":"88.50","currency":"CNY","receipt_no":"W000000000001","credited_at":"2026-11-29T02:03:04.005Z","duplicate":false,"extra":"ignored"}"#;
        let env = decode_envelope(body).unwrap();
        assert_eq!(env.result_code, "0000");
        let a = PayAnswer::decode(&env.fields).unwrap();
        assert_eq!(a.amount, Decimal::from_str("88.50").unwrap());
        assert_eq!(a.receipt_no, "W000000000001");
        assert_eq!(format_time(&a.credited_at), "2026-11-29T02:03:04.005Z");
        assert!(!a.duplicate);
    }

    #[test]
    fn golden_bills_and_status_answers_decode() {
        let body = br#"{"result_code":"0000","result_msg":"ok","account_no":"3100000011","customer_name":"Zhang Wei","bills":[{"bill_no":"B1","amount_due":"123.45","currency":"CNY","due_date":"2026-12-15"}]}"#;
        let a = BillsAnswer::decode(&decode_envelope(body).unwrap().fields).unwrap();
        assert_eq!(a.bills[0].amount_due, Decimal::from_str("123.45").unwrap());
        assert_eq!(
            a.bills[0].due_date,
            NaiveDate::from_ymd_opt(2026, 12, 15).unwrap()
        );
        let body = br#"{"result_code":"0000","txn_ref":"p","state":"REJECTED","account_no":"1","amount":"1.00","currency":"CNY","reject_code":"1002","reject_msg":"closed"}"#;
        let s = PaymentQueryAnswer::decode(&decode_envelope(body).unwrap().fields).unwrap();
        assert_eq!(s.state, PaymentState::Rejected);
        assert_eq!(s.reject_code.as_deref(), Some("1002"));
        assert_eq!(s.receipt_no, None);
    }

    fn pay_error(body: &str) -> String {
        let env = decode_envelope(body.as_bytes()).unwrap();
        PayAnswer::decode(&env.fields).unwrap_err().0
    }

    const OK: &str = r#""result_code":"0000","account_no":"1","currency":"CNY","receipt_no":"W1","credited_at":"2026-11-29T02:03:04Z""#;

    #[test]
    fn amount_as_json_number_is_refused_naming_the_field() {
        let e = pay_error(&format!(r#"{{{OK},"txn_ref":"p","amount":88.5}}"#));
        assert!(e.contains("`amount`") && e.contains("JSON number"), "{e}");
    }

    #[test]
    fn non_decimal_amount_is_refused() {
        for bad in [
            "\"88,50\"",
            "\"1e3\"",
            "\"\"",
            "\" 1\"",
            "\"NaN\"",
            "\"1.\"",
        ] {
            let e = pay_error(&format!(r#"{{{OK},"txn_ref":"p","amount":{bad}}}"#));
            assert!(e.contains("`amount`"), "{bad}: {e}");
        }
    }

    #[test]
    fn missing_fields_are_named() {
        let e = pay_error(&format!(r#"{{{OK},"amount":"1.00"}}"#));
        assert!(e.contains("`txn_ref` is missing"), "{e}");
        let e = decode_envelope(br#"{"result_msg":"x"}"#).unwrap_err().0;
        assert!(e.contains("`result_code`"), "{e}");
        let e = decode_envelope(b"<html>").unwrap_err().0;
        assert!(e.contains("not JSON"), "{e}");
        let e = decode_envelope(b"[1]").unwrap_err().0;
        assert!(e.contains("not a JSON object"), "{e}");
        let body = br#"{"result_code":"0000","account_no":"1","customer_name":"x","bills":[{"bill_no":"B","amount_due":"1.00","currency":"CNY"}]}"#;
        let e = BillsAnswer::decode(&decode_envelope(body).unwrap().fields)
            .unwrap_err()
            .0;
        assert!(e.contains("bills[0]") && e.contains("`due_date`"), "{e}");
    }

    #[test]
    fn answers_encode_back_to_what_decodes() {
        let a = PayAnswer {
            txn_ref: "p".into(),
            account_no: "1".into(),
            amount: Decimal::from_str("1.50").unwrap(),
            currency: "CNY".into(),
            receipt_no: "W1".into(),
            credited_at: DateTime::parse_from_rfc3339("2026-11-29T02:03:04.005Z")
                .unwrap()
                .with_timezone(&Utc),
            duplicate: true,
        };
        let reply = Reply {
            result_code: "0000".into(),
            result_msg: "ok".into(),
            body: Some(a.clone()),
        };
        let json = serde_json::to_string(&reply).unwrap();
        assert!(json.contains(r#""amount":"1.50""#), "{json}");
        let env = decode_envelope(json.as_bytes()).unwrap();
        assert_eq!(PayAnswer::decode(&env.fields).unwrap(), a);
        let fail: Reply<PayAnswer> = Reply {
            result_code: "1001".into(),
            result_msg: "account not found".into(),
            body: None,
        };
        assert_eq!(
            serde_json::to_string(&fail).unwrap(),
            r#"{"result_code":"1001","result_msg":"account not found"}"#
        );
    }

    #[test]
    fn parse_amount_accepts_plain_decimals_only() {
        assert_eq!(parse_amount("88.50"), Some(Decimal::new(8850, 2)));
        assert_eq!(parse_amount("-0.01"), Some(Decimal::new(-1, 2)));
        assert_eq!(parse_amount("7"), Some(Decimal::new(7, 0)));
        for bad in ["", "-", ".5", "5.", "+1", "1e2", "1_000", "0x10", "1.2.3"] {
            assert_eq!(parse_amount(bad), None, "{bad}");
        }
    }
}
