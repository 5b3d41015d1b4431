//! Channel API secrets at rest: sealed with the service master key
//! (XChaCha20-Poly1305, the key id as associated data), never stored or
//! logged in clear. HMAC verification needs the secret itself, so a one-way
//! hash would not do; the master key lives outside the database.

use std::fmt;
use std::path::Path;

use anyhow::{bail, Context};
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// A channel's API secret. Debug and Display never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn generate() -> Secret {
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        Secret(format!("bcs_{}", B64URL.encode(raw)).into_bytes())
    }
    pub fn from_text(s: &str) -> Secret {
        Secret(s.as_bytes().to_vec())
    }
    pub fn from_bytes(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }
    /// The bytes the HMAC is keyed with (the secret's text as printed).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    pub fn expose_text(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

pub fn generate_key_id() -> String {
    let mut raw = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut raw);
    format!("bck_{}", hex::encode(raw))
}

/// The master key that seals channel secrets.
#[derive(Clone)]
pub struct MasterKey(XChaCha20Poly1305);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

const NONCE_LEN: usize = 24;

impl MasterKey {
    pub fn from_base64(text: &str) -> anyhow::Result<MasterKey> {
        let raw = B64
            .decode(text.trim())
            .context("master key is not base64")?;
        if raw.len() != 32 {
            bail!(
                "master key must be 32 bytes (base64 of 32 random bytes), got {}",
                raw.len()
            );
        }
        Ok(MasterKey(
            XChaCha20Poly1305::new_from_slice(&raw).expect("32-byte key"),
        ))
    }

    pub fn generate_base64() -> String {
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        B64.encode(raw)
    }

    /// Reads the key file, creating it (mode 0600) with a new random key
    /// when it does not exist.
    pub fn load_or_create(path: &Path) -> anyhow::Result<MasterKey> {
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            write_private(path, &MasterKey::generate_base64())?;
            tracing::warn!(path = %path.display(), "created a new master key; back it up: channel secrets cannot be read without it");
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading master key {}", path.display()))?;
        MasterKey::from_base64(&text).with_context(|| format!("master key file {}", path.display()))
    }

    pub fn seal(&self, key_id: &str, secret: &Secret) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .0
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret.expose(),
                    aad: key_id.as_bytes(),
                },
            )
            .expect("encryption of a short secret cannot fail");
        let mut out = nonce.to_vec();
        out.extend(ct);
        out
    }

    pub fn open(&self, key_id: &str, sealed: &[u8]) -> anyhow::Result<Secret> {
        if sealed.len() <= NONCE_LEN {
            bail!("sealed secret of key {key_id} is truncated");
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let pt = self
            .0
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: key_id.as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow::anyhow!("secret of key {key_id} does not open with this master key")
            })?;
        Ok(Secret(pt))
    }
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open() {
        let mk = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
        let s = Secret::generate();
        let sealed = mk.seal("bck_1", &s);
        assert!(!sealed.windows(s.expose().len()).any(|w| w == s.expose()));
        assert_eq!(mk.open("bck_1", &sealed).unwrap(), s);
        assert!(
            mk.open("bck_2", &sealed).is_err(),
            "key id is bound as associated data"
        );
        let other = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
        assert!(other.open("bck_1", &sealed).is_err());
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }
}
