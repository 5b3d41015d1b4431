//! The connectors configured in this process, and route selection.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use biller_connectors::coop::CoopSettings;
use biller_connectors::{Connector, ConnectorSettings};

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
    pub fn from_settings(
        settings: &BTreeMap<String, ConnectorSettings>,
    ) -> anyhow::Result<Connectors> {
        let mut by_id = BTreeMap::new();
        let mut files = BTreeMap::new();
        for (id, s) in settings {
            if s.kind == "coop-file" {
                files.insert(id.clone(), file_route(id, s)?);
                continue;
            }
            let timeout = Duration::from_millis(s.timeout_ms);
            by_id.insert(id.clone(), (biller_connectors::build(id, s)?, timeout));
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
