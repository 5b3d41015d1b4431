//! Connectors' private keys at rest (RSA and SM2 signing keys, TLS client
//! keys): sealed with the service master key like channel secrets, in a
//! PEM-like file that `billclear keys seal` writes. A plain PEM private key
//! is refused unless its connector says `allow_plaintext = true`
//! (simulators, local tests).

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use biller_connectors::PrivateKeys;

use super::secrets::{MasterKey, Secret};

/// The label of a sealed key file.
const LABEL: &str = "BILLCLEAR SEALED PRIVATE KEY";
/// The associated data binding a sealed key to its purpose.
const AAD: &str = "billclear connector private key";

/// Whether `text` is a PEM private key (PKCS#8, PKCS#1, SEC1, encrypted
/// or not).
fn is_pem_private_key(text: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.ends_with("PRIVATE KEY-----"))
}

/// Seals a PEM private key with the master key: the text of a sealed key
/// file.
pub fn seal(master: &MasterKey, pem: &[u8]) -> anyhow::Result<String> {
    let text = std::str::from_utf8(pem)
        .map_err(|_| anyhow::anyhow!("not a PEM private key: the file is not text"))?;
    if text.contains(&format!("-----BEGIN {LABEL}-----")) {
        anyhow::bail!("the key is sealed already");
    }
    if !is_pem_private_key(text) {
        anyhow::bail!("not a PEM private key (no -----BEGIN … PRIVATE KEY----- line)");
    }
    let sealed = B64.encode(master.seal(AAD, &Secret::from_bytes(pem.to_vec())));
    let mut out = format!("-----BEGIN {LABEL}-----\n");
    for chunk in sealed.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {LABEL}-----\n"));
    Ok(out)
}

/// Opens a sealed key file's text: the PEM private key.
pub fn open(master: &MasterKey, text: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {LABEL}-----");
    let end = format!("-----END {LABEL}-----");
    let body = text
        .split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&end))
        .map(|(body, _)| body)
        .ok_or_else(|| format!("not a sealed key: no {begin} … {end} block"))?;
    let raw: String = body.split_whitespace().collect();
    let sealed = B64
        .decode(raw)
        .map_err(|e| format!("sealed key is not base64: {e}"))?;
    master
        .open(AAD, &sealed)
        .map(|s| s.expose().to_vec())
        .map_err(|_| "the sealed key does not open with this master key".to_string())
}

/// billclear's reader of connectors' private keys.
pub struct SealedKeyFiles {
    master: MasterKey,
    allow_plain: bool,
}

impl SealedKeyFiles {
    /// Reads sealed keys; plain PEM keys only when `allow_plain` (the
    /// connector's `allow_plaintext`).
    pub fn new(master: &MasterKey, allow_plain: bool) -> SealedKeyFiles {
        SealedKeyFiles {
            master: master.clone(),
            allow_plain,
        }
    }
}

impl PrivateKeys for SealedKeyFiles {
    fn read(&self, path: &Path) -> Result<Vec<u8>, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read private key {}: {e}", path.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        if text.contains(&format!("-----BEGIN {LABEL}-----")) {
            return open(&self.master, &text).map_err(|e| format!("{}: {e}", path.display()));
        }
        if self.allow_plain && is_pem_private_key(&text) {
            return Ok(bytes);
        }
        Err(format!(
            "{}: private keys at rest must be sealed with the master key \
             (`billclear keys seal --in {} --out <file>`); a plain PEM key is \
             accepted only with allow_plaintext = true",
            path.display(),
            path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str =
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";

    fn master() -> MasterKey {
        MasterKey::from_base64(&MasterKey::generate_base64()).unwrap()
    }

    #[test]
    fn sealed_keys_open_only_with_their_master_key() {
        let mk = master();
        let sealed = seal(&mk, PEM.as_bytes()).unwrap();
        assert!(!sealed.contains("MC4CAQAwBQYDK2VwBCIEIA"), "{sealed}");
        assert_eq!(open(&mk, &sealed).unwrap(), PEM.as_bytes());
        assert!(open(&master(), &sealed).is_err());
        assert!(seal(&mk, sealed.as_bytes()).is_err(), "sealed twice");
        assert!(seal(&mk, b"hello").is_err(), "not a key");
        // A flipped character: refused, not garbage.
        let mut broken = sealed.clone().into_bytes();
        broken[40] = if broken[40] == b'A' { b'B' } else { b'A' };
        assert!(open(&mk, &String::from_utf8(broken).unwrap()).is_err());
    }

    #[test]
    fn plain_keys_need_allow_plaintext() {
        let mk = master();
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.pem");
        std::fs::write(&plain, PEM).unwrap();
        let sealed = dir.path().join("sealed.key");
        std::fs::write(&sealed, seal(&mk, PEM.as_bytes()).unwrap()).unwrap();
        let strict = SealedKeyFiles::new(&mk, false);
        let err = strict.read(&plain).unwrap_err();
        assert!(err.contains("must be sealed"), "{err}");
        assert_eq!(strict.read(&sealed).unwrap(), PEM.as_bytes());
        let lax = SealedKeyFiles::new(&mk, true);
        assert_eq!(lax.read(&plain).unwrap(), PEM.as_bytes());
        assert!(strict.read(&dir.path().join("missing")).is_err());
    }
}
