//! The connectors configured in this process, and route selection.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use biller_connectors::coop::CoopSettings;
use biller_connectors::{Connector, ConnectorKind, ConnectorSettings};
use chrono::{DateTime, Utc};

use crate::auth::sealed_keys::SealedKeyFiles;
use crate::auth::secrets::MasterKey;

/// A certificate this close to its end is warned about.
pub const CERTIFICATE_WARNING_DAYS: i64 = 30;

/// A configured connector and how long one of its calls may take.
type Entry = (Arc<dyn Connector>, Duration);

#[derive(Clone, Default)]
pub struct Connectors {
    by_id: Arc<BTreeMap<String, Entry>>,
    /// File routes (kind "coop-file"): billers with no online interface.
    files: Arc<BTreeMap<String, CoopSettings>>,
}

/// A file route from its settings: `base_url` = `file:///dir` (batch files
/// go to `dir/drop`, acknowledgements come in `dir/ack`), `key_id` = the
/// co-op's id in file names.
fn file_route(id: &str, s: &ConnectorSettings) -> anyhow::Result<CoopSettings> {
    let dir = s
        .base_url
        .strip_prefix("file://")
        .filter(|d| d.starts_with('/'))
        .ok_or_else(|| {
            anyhow::anyhow!("connector {id}: a coop-file base_url is file:///absolute/dir")
        })?;
    let dir = std::path::Path::new(dir);
    Ok(CoopSettings {
        drop_dir: dir.join("drop"),
        ack_dir: dir.join("ack"),
        coop_id: s.key_id.clone(),
    })
}

impl Connectors {
    /// The connectors of `settings`; private keys are read sealed with
    /// `master` (plain PEM only where `allow_plaintext`).
    pub fn from_settings(
        settings: &BTreeMap<String, ConnectorSettings>,
        master: &MasterKey,
    ) -> anyhow::Result<Connectors> {
        let mut by_id = BTreeMap::new();
        let mut files = BTreeMap::new();
        for (id, s) in settings {
            if s.kind == ConnectorKind::CoopFile {
                files.insert(id.clone(), file_route(id, s)?);
                continue;
            }
            let timeout = Duration::from_millis(s.timeout_ms);
            let keys = SealedKeyFiles::new(master, s.allow_plaintext);
            by_id.insert(id.clone(), (biller_connectors::build(id, s, &keys)?, timeout));
        }
        Ok(Connectors {
            by_id: Arc::new(by_id),
            files: Arc::new(files),
        })
    }

    pub fn get(&self, id: &str) -> Option<Arc<dyn Connector>> {
        self.by_id.get(id).map(|(c, _)| c.clone())
    }

    /// How long a call through `id` may take (its `timeout_ms`).
    pub fn timeout(&self, id: &str) -> Duration {
        self.by_id
            .get(id)
            .map(|(_, t)| *t)
            .unwrap_or(Duration::from_secs(60))
    }

    /// A configured file route.
    pub fn file_route(&self, id: &str) -> Option<&CoopSettings> {
        self.files.get(id)
    }

    pub fn file_routes(&self) -> impl Iterator<Item = (&str, &CoopSettings)> {
        self.files.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }
}

/// What an operator should know about how the connectors are secured:
/// plaintext routes, and certificates that expire within
/// [`CERTIFICATE_WARNING_DAYS`] (or have expired, or cannot be read).
pub fn security_warnings(
    settings: &BTreeMap<String, ConnectorSettings>,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for (id, s) in settings {
        if s.kind.is_online() && s.is_plaintext() {
            warnings.push(format!(
                "connector {id}: plaintext {} (allow_plaintext = true): for simulators and local tests only",
                s.base_url
            ));
        }
        for file in s.certificate_files() {
            match biller_connectors::transport::tls::certificate_expiries(file) {
                Err(e) => warnings.push(format!("connector {id}: {e}")),
                Ok(certs) => {
                    for c in certs {
                        let days = c.days_left(now);
                        if days < 0 {
                            warnings.push(format!(
                                "connector {id}: certificate {} in {} expired on {}",
                                c.subject,
                                c.file.display(),
                                c.not_after.format("%Y-%m-%d")
                            ));
                        } else if days < CERTIFICATE_WARNING_DAYS {
                            warnings.push(format!(
                                "connector {id}: certificate {} in {} expires on {} ({days} days left)",
                                c.subject,
                                c.file.display(),
                                c.not_after.format("%Y-%m-%d")
                            ));
                        }
                    }
                }
            }
        }
    }
    warnings
}
