//! The signature schemes billers use on their messages, one per connector
//! (`[connectors.<id>.signature]`):
//!
//! | scheme | signs with | verifies with | signature bytes |
//! |---|---|---|---|
//! | `hmac-sha256` | the shared secret | the shared secret | the 32-byte MAC |
//! | `rsa-sha256` | our RSA private key (PKCS#1 v1.5, ≥ 2048 bits) | the biller's public key(s) | the modulus-sized signature |
//! | `sm2-sm3` | our SM2 private key (GM/T 0003, SM3 digest of GM/T 0004) | the biller's public key(s) | the DER `SEQUENCE {r, s}` (GM/T 0009) |
//!
//! Each protocol decides WHAT is signed (its string to sign) and how the
//! bytes travel (hex in the water and power protocols, base64 at the
//! hub); this module only decides HOW they are made and checked. Two biller keys may be listed at once: an answer is
//! accepted when any of them verifies it, so a biller can rotate its key
//! without a gap. The cryptography is RustCrypto's (`hmac`, `rsa`, `sm2`,
//! `sm3`); nothing here is hand-rolled.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer as _, Verifier as _};
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};
use sha2_011::Sha256;
use x509_cert::der::{Decode, Encode};

use crate::PrivateKeys;

/// The signer id of GM/T 0009 used when none is configured.
pub const DEFAULT_SM2_SIGNER_ID: &str = "1234567812345678";

/// The smallest RSA key accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SignatureScheme {
    #[default]
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    #[serde(rename = "rsa-sha256")]
    RsaSha256,
    #[serde(rename = "sm2-sm3")]
    Sm2Sm3,
}

impl SignatureScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureScheme::HmacSha256 => "hmac-sha256",
            SignatureScheme::RsaSha256 => "rsa-sha256",
            SignatureScheme::Sm2Sm3 => "sm2-sm3",
        }
    }

    pub fn parse(s: &str) -> Result<SignatureScheme, String> {
        match s {
            "hmac-sha256" => Ok(SignatureScheme::HmacSha256),
            "rsa-sha256" => Ok(SignatureScheme::RsaSha256),
            "sm2-sm3" => Ok(SignatureScheme::Sm2Sm3),
            other => Err(format!(
                "unknown signature scheme {other:?} (known: hmac-sha256, rsa-sha256, sm2-sm3)"
            )),
        }
    }
}

impl fmt::Display for SignatureScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a connector signs (`[connectors.<id>.signature]`). With the default
/// scheme, `hmac-sha256`, nothing here is needed: the connector's `secret`
/// is the key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignatureSettings {
    pub scheme: SignatureScheme,
    /// Our private key (PEM: PKCS#8, or PKCS#1 for RSA), sealed with the
    /// master key in production (`billclear keys seal`).
    pub private_key_file: Option<PathBuf>,
    /// The biller's public keys or certificates (PEM), one file each; any
    /// of them verifies an answer (two during a key rotation).
    pub biller_keys: Vec<PathBuf>,
    /// Our SM2 signer id (default `1234567812345678`, GM/T 0009).
    pub signer_id: Option<String>,
    /// The biller's SM2 signer id (default `1234567812345678`).
    pub biller_signer_id: Option<String>,
}

impl SignatureSettings {
    /// The certificate files among the biller keys (for expiry warnings).
    pub fn certificate_files(&self) -> Vec<&Path> {
        self.biller_keys
            .iter()
            .filter(|p| {
                std::fs::read_to_string(p)
                    .map(|t| t.contains("-----BEGIN CERTIFICATE-----"))
                    .unwrap_or(false)
            })
            .map(PathBuf::as_path)
            .collect()
    }
}

enum SignKey {
    Hmac(Vec<u8>),
    Rsa(Box<rsa::pkcs1v15::SigningKey<Sha256>>),
    Sm2(Box<sm2::dsa::SigningKey>),
}

enum VerifyKey {
    Hmac(Vec<u8>),
    Rsa(Box<rsa::pkcs1v15::VerifyingKey<Sha256>>),
    Sm2(Box<sm2::dsa::VerifyingKey>),
}

/// Signs our messages and verifies the counterpart's, in one scheme.
pub struct Signer {
    scheme: SignatureScheme,
    sign: SignKey,
    verify: Vec<VerifyKey>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("scheme", &self.scheme)
            .field("key", &"<redacted>")
            .field("counterpart_keys", &self.verify.len())
            .finish()
    }
}

impl Signer {
    /// HMAC-SHA256 under one shared secret (both directions).
    pub fn hmac(secret: &[u8]) -> Result<Signer, String> {
        if secret.is_empty() {
            return Err("secret must not be empty".into());
        }
        Ok(Signer {
            scheme: SignatureScheme::HmacSha256,
            sign: SignKey::Hmac(secret.to_vec()),
            verify: vec![VerifyKey::Hmac(secret.to_vec())],
        })
    }

    /// RSA-SHA256 (PKCS#1 v1.5): our private key (PEM) and the
    /// counterpart's public keys or certificates (PEM, at least one).
    pub fn rsa(private_pem: &[u8], counterpart_pems: &[Vec<u8>]) -> Result<Signer, String> {
        let text = pem_text(private_pem)?;
        let key = rsa::PrivateKey::from_pkcs8_pem(text)
            .or_else(|_| rsa::PrivateKey::from_pkcs1_pem(text))
            .map_err(|e| format!("not an RSA private key (PKCS#8 or PKCS#1 PEM): {e}"))?;
        check_rsa_bits(key.size() * 8)?;
        let verify = counterpart_keys(counterpart_pems, |pem| {
            let public = rsa_public(pem)?;
            check_rsa_bits(public.size() * 8)?;
            Ok(VerifyKey::Rsa(Box::new(rsa::pkcs1v15::VerifyingKey::new(public))))
        })?;
        Ok(Signer {
            scheme: SignatureScheme::RsaSha256,
            sign: SignKey::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(key))),
            verify,
        })
    }

    /// SM2 with SM3: our private key (PKCS#8 PEM) with our signer id, and
    /// the counterpart's public keys or certificates with theirs.
    pub fn sm2(
        private_pem: &[u8],
        counterpart_pems: &[Vec<u8>],
        our_id: &str,
        their_id: &str,
    ) -> Result<Signer, String> {
        let text = pem_text(private_pem)?;
        let secret = sm2::SecretKey::from_pkcs8_pem(text)
            .map_err(|e| format!("not an SM2 private key (PKCS#8 PEM): {e}"))?;
        let key = sm2::dsa::SigningKey::new(our_id, &secret)
            .map_err(|e| format!("SM2 signer id {our_id:?}: {e}"))?;
        let verify = counterpart_keys(counterpart_pems, |pem| {
            let public = sm2_public(pem)?;
            let key = sm2::dsa::VerifyingKey::new(their_id, public)
                .map_err(|e| format!("SM2 signer id {their_id:?}: {e}"))?;
            Ok(VerifyKey::Sm2(Box::new(key)))
        })?;
        Ok(Signer {
            scheme: SignatureScheme::Sm2Sm3,
            sign: SignKey::Sm2(Box::new(key)),
            verify,
        })
    }

    /// The signer a connector's settings describe: `secret` for HMAC, key
    /// files for the others (private keys read through `keys`).
    pub fn from_settings(
        settings: &SignatureSettings,
        secret: &str,
        keys: &dyn PrivateKeys,
    ) -> Result<Signer, String> {
        let files = || -> Result<(Vec<u8>, Vec<Vec<u8>>), String> {
            let private = settings.private_key_file.as_ref().ok_or_else(|| {
                format!("signature scheme {} needs signature.private_key_file", settings.scheme)
            })?;
            if settings.biller_keys.is_empty() {
                return Err(format!(
                    "signature scheme {} needs signature.biller_keys (the biller's public key or certificate)",
                    settings.scheme
                ));
            }
            let theirs = settings
                .biller_keys
                .iter()
                .map(|p| {
                    std::fs::read(p).map_err(|e| format!("cannot read biller key {}: {e}", p.display()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let ours = keys.read(private)?;
            Ok((ours, theirs))
        };
        let with_file = |r: Result<Signer, String>| {
            r.map_err(|e| match &settings.private_key_file {
                Some(p) => format!("signature ({}): {e}", p.display()),
                None => e,
            })
        };
        match settings.scheme {
            SignatureScheme::HmacSha256 => {
                if settings.private_key_file.is_some() || !settings.biller_keys.is_empty() {
                    return Err(
                        "signature scheme hmac-sha256 uses the connector's secret, not key files"
                            .into(),
                    );
                }
                Signer::hmac(secret.as_bytes())
            }
            SignatureScheme::RsaSha256 => {
                let (ours, theirs) = files()?;
                with_file(Signer::rsa(&ours, &theirs))
            }
            SignatureScheme::Sm2Sm3 => {
                let (ours, theirs) = files()?;
                let our_id = settings.signer_id.as_deref().unwrap_or(DEFAULT_SM2_SIGNER_ID);
                let their_id = settings
                    .biller_signer_id
                    .as_deref()
                    .unwrap_or(DEFAULT_SM2_SIGNER_ID);
                with_file(Signer::sm2(&ours, &theirs, our_id, their_id))
            }
        }
    }

    pub fn scheme(&self) -> SignatureScheme {
        self.scheme
    }

    /// Our signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.sign {
            SignKey::Hmac(secret) => hmac_sha256(secret, message),
            SignKey::Rsa(key) => key.sign(message).to_vec(),
            SignKey::Sm2(key) => {
                let signature: sm2::dsa::Signature = key.sign(message);
                signature.to_der().to_vec()
            }
        }
    }

    /// Whether `signature` is the counterpart's signature of `message`
    /// under any of its keys. Never panics on malformed input; HMAC is
    /// compared in constant time.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verify.iter().any(|key| match key {
            VerifyKey::Hmac(secret) => {
                let mut mac = Hmac::<Sha256Old>::new_from_slice(secret).expect("any key length");
                mac.update(message);
                mac.verify_slice(signature).is_ok()
            }
            VerifyKey::Rsa(key) => rsa::pkcs1v15::Signature::try_from(signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            VerifyKey::Sm2(key) => sm2::dsa::Signature::from_der(signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
        })
    }

    /// `sign`, as lowercase hex.
    pub fn sign_hex(&self, message: &[u8]) -> String {
        hex::encode(self.sign(message))
    }

    /// `verify` of a hex signature (anything not hex does not verify).
    pub fn verify_hex(&self, message: &[u8], signature_hex: &str) -> bool {
        hex::decode(signature_hex.trim()).is_ok_and(|raw| self.verify(message, &raw))
    }

    /// `sign`, as standard base64.
    pub fn sign_base64(&self, message: &[u8]) -> String {
        B64.encode(self.sign(message))
    }

    /// `verify` of a base64 signature (anything not base64 does not verify).
    pub fn verify_base64(&self, message: &[u8], signature_b64: &str) -> bool {
        B64.decode(signature_b64.trim()).is_ok_and(|raw| self.verify(message, &raw))
    }
}

/// HMAC goes with the `hmac` crate's digest generation.
type Sha256Old = sha2::Sha256;

fn hmac_sha256(secret: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256Old>::new_from_slice(secret).expect("any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn pem_text(pem: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(pem).map_err(|_| "key file is not PEM text".to_string())
}

fn check_rsa_bits(bits: usize) -> Result<(), String> {
    if bits < MIN_RSA_BITS {
        return Err(format!("RSA key of {bits} bits: at least {MIN_RSA_BITS} are required"));
    }
    Ok(())
}

fn counterpart_keys(
    pems: &[Vec<u8>],
    parse: impl Fn(&str) -> Result<VerifyKey, String>,
) -> Result<Vec<VerifyKey>, String> {
    if pems.is_empty() {
        return Err("at least one counterpart key is needed".into());
    }
    pems.iter()
        .enumerate()
        .map(|(i, pem)| parse(pem_text(pem)?).map_err(|e| format!("counterpart key #{}: {e}", i + 1)))
        .collect()
}

/// The SubjectPublicKeyInfo DER of a PEM certificate, when `pem` is one.
fn certificate_spki(pem: &str) -> Result<Option<Vec<u8>>, String> {
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Ok(None);
    }
    let (_, der) = x509_cert::der::pem::decode_vec(pem.trim().as_bytes())
        .map_err(|e| format!("certificate PEM cannot be read: {e}"))?;
    let cert = x509_cert::Certificate::from_der(&der)
        .map_err(|e| format!("certificate cannot be read: {e}"))?;
    cert.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map(Some)
        .map_err(|e| format!("certificate key cannot be encoded: {e}"))
}

fn rsa_public(pem: &str) -> Result<rsa::PublicKey, String> {
    if let Some(spki) = certificate_spki(pem)? {
        return rsa::PublicKey::from_public_key_der(&spki)
            .map_err(|e| format!("certificate does not hold an RSA key: {e}"));
    }
    rsa::PublicKey::from_public_key_pem(pem.trim())
        .or_else(|_| rsa::PublicKey::from_pkcs1_pem(pem.trim()))
        .map_err(|e| format!("not an RSA public key or certificate (PEM): {e}"))
}

fn sm2_public(pem: &str) -> Result<sm2::PublicKey, String> {
    if let Some(spki) = certificate_spki(pem)? {
        return sm2::PublicKey::from_public_key_der(&spki)
            .map_err(|e| format!("certificate does not hold an SM2 key: {e}"));
    }
    sm2::PublicKey::from_public_key_pem(pem.trim())
        .map_err(|e| format!("not an SM2 public key or certificate (PEM): {e}"))
}
