//! Biller connectors: one trait over every way billclear reaches a biller,
//! and one module per counterpart protocol holding its codec, connector,
//! result codes, and its daily confirmation file's writer and reader.
//!
//! This crate knows nothing of billclear's database or ledger: a connector
//! takes an order, speaks the counterpart's protocol, and says what happened
//! or what to do next. Amounts are exact decimals (never floats); the
//! currency travels as its ISO 4217 code.
//!
//! * [`Connector`]: bill inquiry, pay, status inquiry by OUR reference, health.
//! * [`ConnectorError`]: every failure says what to do next: retry (the
//!   biller certainly did not apply the payment), fail (the biller refused
//!   it), or outcome unknown (it may have been applied: ask, never re-send).
//! * [`codes`]: result codes of a counterpart map into those through a table.
//! * [`echo`]: what a counterpart echoes is checked against what was sent.
//! * [`water`]: the first direct connector (JSON over HTTP, HMAC-signed).
//! * [`gas`]: fixed-length messages over one persistent TCP link.
//! * [`power`]: the electricity company (XML over HTTP, MAC in the envelope).
//! * [`hub`]: the intermediary hub in front of many billers (JSON over HTTP).
//! * [`coop`]: the water co-op, reached by batch files and acknowledgement
//!   files in shared directories (not a [`Connector`]: paying is not
//!   synchronous).
//! * [`confirmation`]: what the families' daily confirmation files share.
//!   Each family folder holds its file's writer AND its reader (for
//!   billclear's reconciliation): [`water::confirmation`],
//!   [`gas::confirmation`], [`hub::statement`], [`power::confirmation`]
//!   (written by [`power::codec::Confirmation`]) and [`coop::ack`]
//!   (written by [`coop::format::render_ack`]). A reader yields
//!   [`confirmation::Record`]s and a [`confirmation::Summary`] or a
//!   [`confirmation::Refusal`]; the money rules (currencies, scales, the
//!   words an amount is refused in) are the caller's
//!   [`confirmation::Amounts`].
//! * The simulators (`biller-sim` binary) are the `biller-sim` crate.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub mod codes;
pub mod confirmation;
pub mod coop;
pub mod echo;
pub mod gas;
pub mod hub;
pub mod power;
pub mod signature;
pub mod transport;
pub mod water;

use std::path::Path;

pub use signature::{SignatureScheme, SignatureSettings, Signer};
pub use transport::tls::{PlainKeyFiles, TlsSettings};

/// A payment to deliver, as the biller must see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayOrder {
    /// OUR reference (the billclear payment id). The biller is idempotent on
    /// it, and status inquiries ask by it.
    pub our_reference: String,
    pub biller_id: String,
    pub account_number: String,
    pub amount: Decimal,
    /// ISO 4217 code, e.g. "CNY".
    pub currency: String,
    pub bill_reference: Option<String>,
}

/// The biller credited the payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credit {
    /// The biller's own reference (receipt number) for the payment.
    pub biller_reference: String,
    pub credited_at: DateTime<Utc>,
}

/// A definitive refusal by the biller: the payment was not applied and will
/// not be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The counterpart's own result code, kept for the record.
    pub code: String,
    pub message: String,
}

/// What the biller says of a payment asked about by our reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteStatus {
    Credited(Credit),
    Rejected(Refusal),
    /// The biller has no record of that reference.
    NotFound,
    /// The biller has it but has not decided yet.
    Pending,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillQuery {
    pub biller_id: String,
    pub account_number: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bill {
    pub bill_reference: String,
    pub amount_due: Decimal,
    pub currency: String,
    pub due_date: NaiveDate,
}

/// The answer to a bill inquiry. The customer name is given in full by the
/// biller; billclear masks it before a channel sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillStatement {
    pub account_number: String,
    pub customer_name: String,
    pub bills: Vec<Bill>,
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NextStep {
    /// Not applied: the same request may be sent again later.
    Retry,
    /// Refused for good: do not send again.
    Fail,
    /// May have been applied: never re-send; ask for the status.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    #[error("not applied, try again later: {reason}")]
    Retry { reason: String },
    #[error("refused by the biller (code {}): {}", .0.code, .0.message)]
    Fail(Refusal),
    #[error("outcome unknown: {reason}")]
    Unknown { reason: String },
}

impl ConnectorError {
    pub fn next_step(&self) -> NextStep {
        match self {
            ConnectorError::Retry { .. } => NextStep::Retry,
            ConnectorError::Fail(_) => NextStep::Fail,
            ConnectorError::Unknown { .. } => NextStep::Unknown,
        }
    }
    pub fn retry(reason: impl Into<String>) -> Self {
        ConnectorError::Retry {
            reason: reason.into(),
        }
    }
    pub fn unknown(reason: impl Into<String>) -> Self {
        ConnectorError::Unknown {
            reason: reason.into(),
        }
    }
    pub fn fail(code: impl Into<String>, message: impl Into<String>) -> Self {
        ConnectorError::Fail(Refusal {
            code: code.into(),
            message: message.into(),
        })
    }
}

/// What a refusal means for a channel, whatever the counterpart's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    UnknownAccount,
    ClosedAccount,
    Other,
}

/// One way of reaching billers (direct, or through an intermediary).
#[async_trait]
pub trait Connector: Send + Sync {
    /// The connector id (as named in billers' routes).
    fn id(&self) -> &str;
    /// What one of this counterpart's refusals means.
    fn refusal_kind(&self, _refusal: &Refusal) -> RefusalKind {
        RefusalKind::Other
    }
    /// Bills outstanding on a customer account. Never moves money: every
    /// transport failure is `Retry`.
    async fn bills(&self, query: &BillQuery) -> Result<BillStatement, ConnectorError>;
    /// Delivers a payment. `Ok` only when the biller credited it and echoed
    /// back what was sent.
    async fn pay(&self, order: &PayOrder) -> Result<Credit, ConnectorError>;
    /// Asks what became of `order` by OUR reference; the answer's echo is
    /// checked against `order`. Never re-sends the payment.
    async fn status(&self, order: &PayOrder) -> Result<RemoteStatus, ConnectorError>;
    /// Succeeds when the counterpart answers its health check.
    async fn health(&self) -> Result<(), ConnectorError>;
}

/// The protocol families billclear speaks, and the one registry that
/// builds a connector of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConnectorKind {
    /// JSON over HTTP(S), signed headers (the water company's protocol).
    #[default]
    #[serde(rename = "water-json")]
    WaterJson,
    /// XML over HTTP(S), signature in the envelope (the electricity company).
    #[serde(rename = "power-xml")]
    PowerXml,
    /// Fixed-length messages over one TCP link (the gas company).
    #[serde(rename = "gas-tcp")]
    GasTcp,
    /// The intermediary hub: JSON over HTTP(S), signed headers.
    #[serde(rename = "hub-json")]
    HubJson,
    /// Batch files and acknowledgement files in shared folders (the co-op):
    /// not an online connector.
    #[serde(rename = "coop-file")]
    CoopFile,
}

type Build = fn(&str, &ConnectorSettings, &dyn PrivateKeys) -> Result<Arc<dyn Connector>, String>;

/// One line per online protocol family: its kind, its name in logs, and
/// how to build it. A new family is one more line here.
const REGISTRY: &[(ConnectorKind, Build)] = &[
    (ConnectorKind::WaterJson, |id, s, k| {
        Ok(Arc::new(transport::Logged::new(
            "water",
            water::WaterConnector::new(id, s, k)?,
        )))
    }),
    (ConnectorKind::PowerXml, |id, s, k| {
        Ok(Arc::new(transport::Logged::new(
            "power",
            power::PowerConnector::new(id, s, k)?,
        )))
    }),
    (ConnectorKind::GasTcp, |id, s, k| {
        Ok(Arc::new(transport::Logged::new(
            "gas",
            gas::GasConnector::new(id, s, k)?,
        )))
    }),
    (ConnectorKind::HubJson, |id, s, k| {
        Ok(Arc::new(transport::Logged::new(
            "hub",
            hub::HubConnector::new(id, s, k)?,
        )))
    }),
];

impl ConnectorKind {
    pub const ALL: [ConnectorKind; 5] = [
        ConnectorKind::WaterJson,
        ConnectorKind::PowerXml,
        ConnectorKind::GasTcp,
        ConnectorKind::HubJson,
        ConnectorKind::CoopFile,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorKind::WaterJson => "water-json",
            ConnectorKind::PowerXml => "power-xml",
            ConnectorKind::GasTcp => "gas-tcp",
            ConnectorKind::HubJson => "hub-json",
            ConnectorKind::CoopFile => "coop-file",
        }
    }

    /// Whether payments go through it online (every kind but file routes).
    pub fn is_online(self) -> bool {
        REGISTRY.iter().any(|(k, _)| *k == self)
    }
}

impl std::str::FromStr for ConnectorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<ConnectorKind, String> {
        ConnectorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<_> = ConnectorKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown connector kind {s:?} (known: {})", known.join(", "))
            })
    }
}

impl std::fmt::Display for ConnectorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a connector's private keys come from. billclear's own reader
/// opens keys sealed with its master key; [`PlainKeyFiles`] reads PEM
/// files as they are (simulators, tests).
pub trait PrivateKeys: Send + Sync {
    /// The PEM text of the private key in `path`.
    fn read(&self, path: &Path) -> Result<Vec<u8>, String>;
}

/// How a connector is configured (`[connectors.<id>]` in billclear's config).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorSettings {
    /// The protocol family.
    pub kind: ConnectorKind,
    /// Where the counterpart listens, e.g. "https://water.example:443"
    /// ("tcp://host:port" for gas, "file:///dir" for file routes).
    pub base_url: String,
    /// Our key id (merchant id, terminal id) at the counterpart.
    pub key_id: String,
    /// The shared HMAC secret (scheme `hmac-sha256` only).
    #[serde(default)]
    pub secret: String,
    /// How long a call may take before its outcome is unknown.
    pub timeout_ms: u64,
    /// Allows plaintext `http://` and `tcp://` (simulators and local tests
    /// only; the service warns about it at start) and unsealed private keys.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// Certificate verification, client certificate, pins.
    #[serde(default)]
    pub tls: TlsSettings,
    /// How messages are signed (default: HMAC-SHA256 with `secret`).
    #[serde(default)]
    pub signature: SignatureSettings,
    /// Requests in flight through the connector at once, at most, for the
    /// whole fleet (each process takes its share); also the size of each
    /// process's keep-alive pool (0 or absent: [`DEFAULT_MAX_IN_FLIGHT`]).
    #[serde(default)]
    pub max_in_flight: u32,
    /// Requests per second sent through the connector, at most, for the
    /// whole fleet, per second of the wall clock (each process takes its
    /// share; 0 or absent: no limit).
    #[serde(default)]
    pub max_per_second: u32,
}

/// Requests in flight through one connector when `max_in_flight` is not set.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 64;

impl ConnectorSettings {
    /// The signer these settings describe.
    pub fn signer(&self, keys: &dyn PrivateKeys) -> Result<Signer, String> {
        Signer::from_settings(&self.signature, &self.secret, keys)
    }

    /// Requests in flight at once, at most (`max_in_flight`, or its default).
    pub fn in_flight_limit(&self) -> usize {
        match self.max_in_flight {
            0 => DEFAULT_MAX_IN_FLIGHT as usize,
            n => n as usize,
        }
    }

    /// Whether calls travel unencrypted.
    pub fn is_plaintext(&self) -> bool {
        self.base_url.starts_with("http://") || self.base_url.starts_with("tcp://")
    }

    /// Every certificate file the settings name (for expiry warnings).
    pub fn certificate_files(&self) -> Vec<&Path> {
        let mut files = self.tls.certificate_files();
        files.extend(self.signature.certificate_files());
        files
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connector {id}: {reason}")]
pub struct SettingsError {
    pub id: String,
    pub reason: String,
}

/// Builds the connector `id` from its settings, reading private keys
/// through `keys`.
pub fn build(
    id: &str,
    settings: &ConnectorSettings,
    keys: &dyn PrivateKeys,
) -> Result<Arc<dyn Connector>, SettingsError> {
    let err = |reason: String| SettingsError {
        id: id.to_string(),
        reason,
    };
    let (_, build) = REGISTRY
        .iter()
        .find(|(k, _)| *k == settings.kind)
        .ok_or_else(|| err(format!("kind {} is not an online connector", settings.kind)))?;
    build(id, settings, keys).map_err(err)
}
