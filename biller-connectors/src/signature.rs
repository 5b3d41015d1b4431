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
    pub const ALL: [SignatureScheme; 3] = [
        SignatureScheme::HmacSha256,
        SignatureScheme::RsaSha256,
        SignatureScheme::Sm2Sm3,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SignatureScheme::HmacSha256 => "hmac-sha256",
            SignatureScheme::RsaSha256 => "rsa-sha256",
            SignatureScheme::Sm2Sm3 => "sm2-sm3",
        }
    }

    pub fn parse(s: &str) -> Result<SignatureScheme, String> {
        SignatureScheme::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("unknown signature scheme {s:?} (known: hmac-sha256, rsa-sha256, sm2-sm3)")
            })
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
            Ok(VerifyKey::Rsa(Box::new(rsa::pkcs1v15::VerifyingKey::new(
                public,
            ))))
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
                format!(
                    "signature scheme {} needs signature.private_key_file",
                    settings.scheme
                )
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
                    std::fs::read(p)
                        .map_err(|e| format!("cannot read biller key {}: {e}", p.display()))
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
                let our_id = settings
                    .signer_id
                    .as_deref()
                    .unwrap_or(DEFAULT_SM2_SIGNER_ID);
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
            // GM/T 0009 encodes the signature in DER; some billers send
            // the 64 bytes r || s as they are.
            VerifyKey::Sm2(key) => sm2::dsa::Signature::from_der(signature)
                .or_else(|e| match signature.len() {
                    64 => sm2::dsa::Signature::from_slice(signature),
                    _ => Err(e),
                })
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
        B64.decode(signature_b64.trim())
            .is_ok_and(|raw| self.verify(message, &raw))
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
        return Err(format!(
            "RSA key of {bits} bits: at least {MIN_RSA_BITS} are required"
        ));
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
        .map(|(i, pem)| {
            parse(pem_text(pem)?).map_err(|e| format!("counterpart key #{}: {e}", i + 1))
        })
        .collect()
}

/// The SubjectPublicKeyInfo DER of a PEM certificate, when `pem` is one.
fn certificate_spki(pem: &str) -> Result<Option<Vec<u8>>, String> {
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Ok(None);
    }
    let (_, der) = x509_cert::der::pem::decode_vec(pem.trim().as_bytes())
        .map_err(|e| format!("certificate PEM cannot be read: {e}"))?;
    crate::transport::tls::spki_der(&der).map(Some)
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

/// A new signing key pair, PEM: the private key (PKCS#8) and its public key
/// (SubjectPublicKeyInfo).
#[derive(Debug, Clone)]
pub struct KeyPairPem {
    pub private_pem: String,
    pub public_pem: String,
}

/// A new RSA key pair of `bits` bits (2048 or more for rsa-sha256).
pub fn rsa_key_pair(bits: usize) -> Result<KeyPairPem, String> {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let key = rsa::PrivateKey::new(&mut getrandom_04::SysRng, bits)
        .map_err(|e| format!("RSA key generation: {e}"))?;
    let private_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| format!("RSA private key PEM: {e}"))?
        .to_string();
    let public_pem = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| format!("RSA public key PEM: {e}"))?;
    Ok(KeyPairPem {
        private_pem,
        public_pem,
    })
}

/// A new SM2 key pair.
pub fn sm2_key_pair() -> Result<KeyPairPem, String> {
    use sm2::elliptic_curve::Generate;
    use sm2::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let key = sm2::SecretKey::try_generate_from_rng(&mut getrandom_04::SysRng)
        .map_err(|e| format!("SM2 key generation: {e}"))?;
    let private_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| format!("SM2 private key PEM: {e}"))?
        .to_string();
    let public_pem = key
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| format!("SM2 public key PEM: {e}"))?;
    Ok(KeyPairPem {
        private_pem,
        public_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
    use sm2::pkcs8::{EncodePublicKey, LineEnding};
    use sm3::Digest as _;

    fn sm2_public_pem(x: &str, y: &str) -> Vec<u8> {
        let sec1 = hex::decode(format!("04{x}{y}")).unwrap();
        sm2::PublicKey::from_sec1_bytes(&sec1)
            .unwrap()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
            .into_bytes()
    }

    #[test]
    fn sm3_standard_vectors() {
        // GM/T 0004-2012 appendix A: "abc" and "abcd" x 16.
        assert_eq!(
            hex::encode(sm3::Sm3::digest(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(
            hex::encode(sm3::Sm3::digest("abcd".repeat(16).as_bytes())),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
        );
    }

    /// GM/T 0003.5-2012 appendix A.2 (the recommended curve): the published
    /// signature of "message digest" by ID 1234567812345678 verifies
    /// through our verifier, in DER and as r || s; any change does not.
    #[test]
    fn sm2_standard_signature_verifies() {
        let private = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";
        let x = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020";
        let y = "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13";
        let r = "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3";
        let s = "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA";
        // The private key of the appendix is the key of that public key.
        let secret = sm2::SecretKey::from_slice(&hex::decode(private).unwrap()).unwrap();
        let public = secret.public_key().to_sec1_bytes();
        assert_eq!(hex::encode_upper(&public[1..33]), x);
        assert_eq!(hex::encode_upper(&public[33..]), y);
        let private_pem = {
            use sm2::pkcs8::EncodePrivateKey;
            secret.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
        };
        let signer = Signer::sm2(
            private_pem.as_bytes(),
            &[sm2_public_pem(x, y)],
            DEFAULT_SM2_SIGNER_ID,
            DEFAULT_SM2_SIGNER_ID,
        )
        .unwrap();
        let raw = hex::decode(format!("{r}{s}")).unwrap();
        let der = sm2::dsa::Signature::from_slice(&raw)
            .unwrap()
            .to_der()
            .to_vec();
        assert!(signer.verify(b"message digest", &der));
        assert!(signer.verify(b"message digest", &raw));
        assert!(!signer.verify(b"message digesT", &der));
        let mut flipped = raw.clone();
        flipped[63] ^= 1;
        assert!(!signer.verify(b"message digest", &flipped));
        // Another signer id is another Z: the same signature is wrong.
        let other_id = Signer::sm2(
            private_pem.as_bytes(),
            &[sm2_public_pem(x, y)],
            DEFAULT_SM2_SIGNER_ID,
            "ALICE123@YAHOO.COM",
        )
        .unwrap();
        assert!(!other_id.verify(b"message digest", &der));
        // Our own signatures (random k) verify under the same key.
        let ours = signer.sign(b"message digest");
        assert!(signer.verify(b"message digest", &ours));
    }

    /// RFC 7515 appendix A.2: the RS256 (RSASSA-PKCS1-v1_5 with SHA-256)
    /// signature of the JWS signing input verifies under its public key.
    #[test]
    fn rsa_sha256_rfc7515_signature_verifies() {
        let n = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
        let input = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
        let sig = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
        let public = rsa::PublicKey::new(
            rsa::BoxedUint::from_be_slice_vartime(&B64URL.decode(n).unwrap()),
            rsa::BoxedUint::from_be_slice_vartime(&[1, 0, 1]),
        )
        .unwrap();
        let pem = {
            use rsa::pkcs8::EncodePublicKey;
            public
                .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
                .unwrap()
        };
        // Our key signs; the RFC's key verifies answers.
        let ours = rsa_fixture();
        let signer = Signer::rsa(ours.as_bytes(), &[pem.into_bytes()]).unwrap();
        let sig = B64URL.decode(sig).unwrap();
        assert!(signer.verify(input.as_bytes(), &sig));
        assert!(!signer.verify(format!("{input}.").as_bytes(), &sig));
        let mut bad = sig.clone();
        bad[0] ^= 0x80;
        assert!(!signer.verify(input.as_bytes(), &bad));
        assert!(!signer.verify(input.as_bytes(), &sig[1..]));
        assert!(!signer.verify_base64(input.as_bytes(), "not base64!"));
    }

    fn rsa_fixture() -> String {
        include_str!("../tests/fixtures/keys/billclear-rsa.pem").to_string()
    }

    #[test]
    fn rsa_keys_below_2048_bits_are_refused() {
        let small = include_str!("../tests/fixtures/keys/small-rsa-1024.pem");
        let err = Signer::rsa(small.as_bytes(), &[]).unwrap_err();
        assert!(err.contains("2048"), "{err}");
        let public = include_str!("../tests/fixtures/keys/billclear-rsa.pub.pem");
        let err = Signer::rsa(rsa_fixture().as_bytes(), &[small.as_bytes().to_vec()]).unwrap_err();
        assert!(!err.is_empty());
        assert!(Signer::rsa(rsa_fixture().as_bytes(), &[public.as_bytes().to_vec()]).is_ok());
    }

    /// During a rotation the biller's old and new keys both verify; a key
    /// we were never given does not.
    #[test]
    fn two_biller_keys_verify_during_a_rotation() {
        let old = sm2_key_pair().unwrap();
        let new = sm2_key_pair().unwrap();
        let stranger = sm2_key_pair().unwrap();
        let ours = sm2_key_pair().unwrap();
        let id = DEFAULT_SM2_SIGNER_ID;
        let us = Signer::sm2(
            ours.private_pem.as_bytes(),
            &[
                old.public_pem.clone().into_bytes(),
                new.public_pem.clone().into_bytes(),
            ],
            id,
            id,
        )
        .unwrap();
        let biller = |k: &KeyPairPem| {
            Signer::sm2(
                k.private_pem.as_bytes(),
                &[ours.public_pem.clone().into_bytes()],
                id,
                id,
            )
            .unwrap()
        };
        let m = b"200\n1764000000\nnonce\ndigest";
        assert!(us.verify(m, &biller(&old).sign(m)));
        assert!(us.verify(m, &biller(&new).sign(m)));
        assert!(!us.verify(m, &biller(&stranger).sign(m)));
        // And the biller verifies us.
        assert!(biller(&new).verify(m, &us.sign(m)));
    }

    #[test]
    fn schemes_do_not_mix() {
        let hmac = Signer::hmac(b"secret").unwrap();
        let ours = sm2_key_pair().unwrap();
        let sm2 = Signer::sm2(
            ours.private_pem.as_bytes(),
            &[ours.public_pem.clone().into_bytes()],
            DEFAULT_SM2_SIGNER_ID,
            DEFAULT_SM2_SIGNER_ID,
        )
        .unwrap();
        let m = b"message";
        assert!(!sm2.verify(m, &hmac.sign(m)));
        assert!(!hmac.verify(m, &sm2.sign(m)));
        assert!(!sm2.verify(m, &[]));
        assert!(!hmac.verify_hex(m, "zz"));
        // An RSA key is not an SM2 key.
        assert!(Signer::sm2(rsa_fixture().as_bytes(), &[], "1", "1").is_err());
        assert_eq!(
            SignatureScheme::parse("sm2-sm3").unwrap(),
            SignatureScheme::Sm2Sm3
        );
        assert!(SignatureScheme::parse("md5").is_err());
    }
}
