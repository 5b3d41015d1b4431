//! The connectors configured in this process, and route selection.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use biller_connectors::{Connector, ConnectorSettings};

/// A configured connector and how long one of its calls may take.
type Entry = (Arc<dyn Connector>, Duration);

#[derive(Clone, Default)]
pub struct Connectors {
    by_id: Arc<BTreeMap<String, Entry>>,
}

impl Connectors {
    pub fn from_settings(
        settings: &BTreeMap<String, ConnectorSettings>,
    ) -> anyhow::Result<Connectors> {
        let mut by_id = BTreeMap::new();
        for (id, s) in settings {
            let timeout = Duration::from_millis(s.timeout_ms);
            by_id.insert(id.clone(), (biller_connectors::build(id, s)?, timeout));
        }
        Ok(Connectors {
            by_id: Arc::new(by_id),
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

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }
}
