//! Finance staff bearer tokens: `bcstaff_` + base64url (no padding) of 32
//! random bytes, 51 characters in all. Shown once when issued; the store
//! keeps only SHA-256 of the token text. Unlike channel secrets (sealed,
//! because an HMAC needs the secret itself), a bearer token is only ever
//! compared, and a 256-bit random token needs no slow hash or salt.
//!
//! The prefix differs from the channel secrets' `bcs_` on purpose: a token
//! of one kind sent where the other is expected is told apart and refused
//! with a clear error.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const STAFF_TOKEN_PREFIX: &str = "bcstaff_";
/// base64url (no padding) of 32 bytes.
const BODY_LEN: usize = 43;

/// A staff bearer token. Debug never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct StaffToken(String);

impl StaffToken {
    pub fn generate() -> StaffToken {
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        StaffToken(format!("{STAFF_TOKEN_PREFIX}{}", B64URL.encode(raw)))
    }

    /// The token as given to its user (shown once).
    pub fn expose_text(&self) -> &str {
        &self.0
    }

    /// What the store keeps.
    pub fn hash(&self) -> [u8; 32] {
        staff_token_hash(&self.0)
    }
}

impl fmt::Debug for StaffToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaffToken(***)")
    }
}

/// SHA-256 of the token text.
pub fn staff_token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `s` is meant as a staff token (has the prefix), well-formed or not.
pub fn looks_like_staff_token(s: &str) -> bool {
    s.starts_with(STAFF_TOKEN_PREFIX)
}

/// Whether `s` has the exact shape of an issued staff token.
pub fn is_well_formed(s: &str) -> bool {
    s.strip_prefix(STAFF_TOKEN_PREFIX).is_some_and(|body| {
        body.len() == BODY_LEN
            && body
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hidden() {
        let a = StaffToken::generate();
        let b = StaffToken::generate();
        assert_ne!(a, b);
        assert!(a.expose_text().starts_with("bcstaff_"));
        assert_eq!(a.expose_text().len(), STAFF_TOKEN_PREFIX.len() + 43);
        assert!(is_well_formed(a.expose_text()));
        assert!(looks_like_staff_token(a.expose_text()));
        assert_eq!(a.hash(), staff_token_hash(a.expose_text()));
        assert_ne!(a.hash(), b.hash());
        assert_eq!(format!("{a:?}"), "StaffToken(***)");
        assert!(!is_well_formed("bcstaff_short"));
        assert!(!is_well_formed(&format!("bcstaff_{}", "!".repeat(43))));
        // A channel secret is not a staff token.
        let channel_secret = crate::auth::secrets::Secret::generate();
        assert!(!looks_like_staff_token(channel_secret.expose_text()));
    }
}
