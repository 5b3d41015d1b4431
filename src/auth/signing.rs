//! The BC1-HMAC-SHA256 request signature, shared by the API (verify), the
//! bench and test clients (sign) and, later, channel callbacks.
//!
//! ```text
//! Authorization: BC1-HMAC-SHA256 key=<key_id>,ts=<unix seconds>,nonce=<unique>,sig=<base64>
//! sig = base64(HMAC-SHA256(secret, METHOD "\n" PATH_AND_QUERY "\n" ts "\n" nonce "\n" hex(SHA-256(body)) "\n"))
//! ```

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const SCHEME: &str = "BC1-HMAC-SHA256";
pub const MAX_NONCE_CHARS: usize = 128;
pub const MAX_KEY_ID_CHARS: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// The parts of an Authorization header, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeader {
    pub key_id: String,
    pub ts: i64,
    pub nonce: String,
    pub sig: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("Authorization header is missing")]
    Missing,
    #[error("Authorization scheme must be {SCHEME}")]
    Scheme,
    #[error("Authorization header is malformed: {0}")]
    Malformed(&'static str),
}

/// The exact bytes that are signed.
pub fn string_to_sign(
    method: &str,
    path_and_query: &str,
    ts: i64,
    nonce: &str,
    body: &[u8],
) -> String {
    let body_hash = hex::encode(Sha256::digest(body));
    format!("{method}\n{path_and_query}\n{ts}\n{nonce}\n{body_hash}\n")
}

pub fn signature(
    secret: &[u8],
    method: &str,
    path_and_query: &str,
    ts: i64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    keyed_mac(secret, method, path_and_query, ts, nonce, body)
        .finalize()
        .into_bytes()
        .to_vec()
}

/// The HMAC over the string to sign, before it is finalized.
fn keyed_mac(
    secret: &[u8],
    method: &str,
    path_and_query: &str,
    ts: i64,
    nonce: &str,
    body: &[u8],
) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(string_to_sign(method, path_and_query, ts, nonce, body).as_bytes());
    mac
}

/// Builds the Authorization header value for a request.
pub fn authorization(
    key_id: &str,
    secret: &[u8],
    method: &str,
    path_and_query: &str,
    ts: i64,
    nonce: &str,
    body: &[u8],
) -> String {
    let sig = B64.encode(signature(secret, method, path_and_query, ts, nonce, body));
    format!("{SCHEME} key={key_id},ts={ts},nonce={nonce},sig={sig}")
}

/// Verifies in constant time.
pub fn verify(
    secret: &[u8],
    header: &SignedHeader,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> bool {
    keyed_mac(
        secret,
        method,
        path_and_query,
        header.ts,
        &header.nonce,
        body,
    )
    .verify_slice(&header.sig)
    .is_ok()
}

pub fn parse_header(value: Option<&str>) -> Result<SignedHeader, HeaderError> {
    let value = value.ok_or(HeaderError::Missing)?;
    let rest = value
        .strip_prefix(SCHEME)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or(HeaderError::Scheme)?;
    let (mut key, mut ts, mut nonce, mut sig) = (None, None, None, None);
    for part in rest.split(',') {
        let (name, v) = part
            .trim()
            .split_once('=')
            .ok_or(HeaderError::Malformed("expected name=value pairs"))?;
        let slot = match name {
            "key" => &mut key,
            "ts" => &mut ts,
            "nonce" => &mut nonce,
            "sig" => &mut sig,
            _ => return Err(HeaderError::Malformed("unknown parameter")),
        };
        if slot.replace(v).is_some() {
            return Err(HeaderError::Malformed("parameter given twice"));
        }
    }
    let key = key.ok_or(HeaderError::Malformed("key is missing"))?;
    let ts = ts.ok_or(HeaderError::Malformed("ts is missing"))?;
    let nonce = nonce.ok_or(HeaderError::Malformed("nonce is missing"))?;
    let sig = sig.ok_or(HeaderError::Malformed("sig is missing"))?;
    let visible = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic() && b != b',')
    };
    if !visible(key, MAX_KEY_ID_CHARS) {
        return Err(HeaderError::Malformed(
            "key must be 1-64 visible characters",
        ));
    }
    if !visible(nonce, MAX_NONCE_CHARS) {
        return Err(HeaderError::Malformed(
            "nonce must be 1-128 visible characters",
        ));
    }
    if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeaderError::Malformed("ts must be unix seconds"));
    }
    let ts: i64 = ts
        .parse()
        .map_err(|_| HeaderError::Malformed("ts must be unix seconds"))?;
    let sig = B64
        .decode(sig)
        .map_err(|_| HeaderError::Malformed("sig must be base64"))?;
    if sig.len() != 32 {
        return Err(HeaderError::Malformed(
            "sig must be a base64 HMAC-SHA256 (32 bytes)",
        ));
    }
    Ok(SignedHeader {
        key_id: key.to_string(),
        ts,
        nonce: nonce.to_string(),
        sig,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_parse_then_verify() {
        let secret = b"s3cret";
        let h = authorization(
            "bck_1",
            secret,
            "POST",
            "/v1/payments",
            1_700_000_000,
            "n-1",
            b"{}",
        );
        let parsed = parse_header(Some(&h)).unwrap();
        assert_eq!(parsed.key_id, "bck_1");
        assert_eq!(parsed.ts, 1_700_000_000);
        assert!(verify(secret, &parsed, "POST", "/v1/payments", b"{}"));
        assert!(!verify(secret, &parsed, "POST", "/v1/payments", b"{ }"));
        assert!(!verify(secret, &parsed, "GET", "/v1/payments", b"{}"));
        assert!(!verify(b"other", &parsed, "POST", "/v1/payments", b"{}"));
    }

    #[test]
    fn string_to_sign_matches_the_documented_form() {
        // hex(SHA-256("")) is the well-known e3b0... value.
        assert_eq!(
            string_to_sign("GET", "/v1/billers", 1, "abc", b""),
            "GET\n/v1/billers\n1\nabc\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        );
    }

    #[test]
    fn malformed_headers() {
        assert_eq!(parse_header(None), Err(HeaderError::Missing));
        assert_eq!(parse_header(Some("Bearer x")), Err(HeaderError::Scheme));
        for bad in [
            "BC1-HMAC-SHA256 key=a,ts=1,nonce=n",
            "BC1-HMAC-SHA256 key=a,ts=x,nonce=n,sig=AAAA",
            "BC1-HMAC-SHA256 key=a,ts=1,nonce=n,sig=!!",
            "BC1-HMAC-SHA256 key=a,key=b,ts=1,nonce=n,sig=AAAA",
            "BC1-HMAC-SHA256 key=a,ts=1,nonce=n,sig=AAAA",
        ] {
            assert!(
                matches!(parse_header(Some(bad)), Err(HeaderError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
