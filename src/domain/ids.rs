//! Identifiers, parsed once at the edge.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} id {value:?} is invalid: use 1-64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
}

fn valid_slug(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

macro_rules! slug_id {
    ($name:ident, $kind:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, IdError> {
                if valid_slug(s) {
                    Ok(Self(s.to_string()))
                } else {
                    Err(IdError {
                        kind: $kind,
                        value: s.chars().take(80).collect(),
                    })
                }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

slug_id!(BillerId, "biller");
slug_id!(ChannelId, "channel");
slug_id!(ConnectorId, "connector");

/// Our reference for a payment: sent to billers, echoed in every file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PaymentId(pub Uuid);

impl PaymentId {
    /// Time-ordered (UUIDv7), so ids sort by creation and index well.
    pub fn new() -> PaymentId {
        PaymentId(Uuid::now_v7())
    }
}

impl Default for PaymentId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for PaymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(BillerId::parse("sh-water").is_ok());
        assert!(BillerId::parse("a").is_ok());
        assert!(BillerId::parse("").is_err());
        assert!(BillerId::parse("-x").is_err());
        assert!(BillerId::parse("Sh").is_err());
        assert!(BillerId::parse(&"a".repeat(65)).is_err());
        assert!(ChannelId::parse("alipay").is_ok());
    }
}
