//! The connectors configured in this process, and route selection.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use biller_connectors::coop::CoopSettings;
use biller_connectors::{Connector, ConnectorKind, ConnectorSettings};
use chrono::{DateTime, Utc};

use super::pace::{Pace, Turn};
use crate::auth::sealed_keys::SealedKeyFiles;
use crate::auth::secrets::MasterKey;
use crate::domain::recon::FileRoutes;

/// A certificate this close to its end is warned about.
pub const CERTIFICATE_WARNING_DAYS: i64 = 30;

/// A configured connector, how long one of its calls may take, and its pace.
type Entry = (Arc<dyn Connector>, Duration, Arc<Pace>);

#[derive(Clone, Default)]
pub struct Connectors {
    by_id: Arc<BTreeMap<String, Entry>>,
    /// File routes (kind "coop-file"): billers with no online interface.
    files: Arc<BTreeMap<String, CoopSettings>>,
    /// Which connector each counterparty file kind reports on.
    file_routes: Arc<FileRoutes>,
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
        file_routes: &FileRoutes,
        master: &MasterKey,
        fleet: Arc<crate::fleet::Fleet>,
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
            let pace = Pace::shared(fleet.clone(), s.in_flight_limit(), s.max_per_second);
            by_id.insert(
                id.clone(),
                (
                    biller_connectors::build(id, s, &keys)?,
                    timeout,
                    Arc::new(pace),
                ),
            );
        }
        Ok(Connectors {
            by_id: Arc::new(by_id),
            files: Arc::new(files),
            file_routes: Arc::new(file_routes.clone()),
        })
    }

    pub fn get(&self, id: &str) -> Option<Arc<dyn Connector>> {
        self.by_id.get(id).map(|(c, _, _)| c.clone())
    }

    /// Waits for a call's turn on route `id` (None: not configured here).
    pub async fn turn(&self, id: &str) -> Option<Turn> {
        let pace = self.by_id.get(id)?.2.clone();
        Some(pace.turn().await)
    }

    /// Route `id`'s calls in flight and its limit.
    pub fn in_flight(&self, id: &str) -> Option<(usize, usize)> {
        self.by_id
            .get(id)
            .map(|(_, _, p)| (p.in_flight(), p.limit()))
    }

    /// How long a call through `id` may take (its `timeout_ms`).
    pub fn timeout(&self, id: &str) -> Duration {
        self.by_id
            .get(id)
            .map(|(_, t, _)| *t)
            .unwrap_or(Duration::from_secs(60))
    }

    /// A configured file route.
    pub fn file_route(&self, id: &str) -> Option<&CoopSettings> {
        self.files.get(id)
    }

    pub fn file_routes(&self) -> impl Iterator<Item = (&str, &CoopSettings)> {
        self.files.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Which connector each counterparty file kind reports on
    /// (`recon.file_routes`).
    pub fn file_kind_routes(&self) -> &FileRoutes {
        &self.file_routes
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

#[cfg(test)]
mod tests {
    use super::*;
    use biller_connectors::{SignatureScheme, SignatureSettings, TlsSettings};
    use biller_sim::pki::{Pki, Validity};

    fn master() -> MasterKey {
        MasterKey::from_base64(&MasterKey::generate_base64()).unwrap()
    }

    fn alone() -> Arc<crate::fleet::Fleet> {
        Arc::new(crate::fleet::Fleet::new("test"))
    }

    fn water(base_url: &str) -> ConnectorSettings {
        ConnectorSettings {
            kind: ConnectorKind::WaterJson,
            base_url: base_url.into(),
            key_id: "billclear".into(),
            secret: "s".into(),
            timeout_ms: 1000,
            ..Default::default()
        }
    }

    #[test]
    fn plaintext_and_plain_keys_need_allow_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("sm2.pem");
        let pair = biller_connectors::signature::sm2_key_pair().unwrap();
        std::fs::write(&key, &pair.private_pem).unwrap();
        let public = dir.path().join("biller.pub");
        std::fs::write(&public, &pair.public_pem).unwrap();
        let signed = |base_url: &str, allow: bool, key: &std::path::Path| ConnectorSettings {
            allow_plaintext: allow,
            secret: String::new(),
            signature: SignatureSettings {
                scheme: SignatureScheme::Sm2Sm3,
                private_key_file: Some(key.to_path_buf()),
                biller_keys: vec![public.clone()],
                ..Default::default()
            },
            ..water(base_url)
        };
        let build = |s: ConnectorSettings| {
            Connectors::from_settings(
                &BTreeMap::from([("w".to_string(), s)]),
                &FileRoutes::default(),
                &master(),
                alone(),
            )
        };
        // http:// without allow_plaintext.
        let err = build(water("http://127.0.0.1:1")).err().unwrap();
        assert!(err.to_string().contains("allow_plaintext"), "{err}");
        // A plain PEM key where plaintext is not allowed.
        let err = build(signed("https://127.0.0.1:1", false, &key))
            .err()
            .unwrap();
        assert!(err.to_string().contains("must be sealed"), "{err}");
        // Sealed with the master key: accepted without allow_plaintext.
        let mk = master();
        let sealed = dir.path().join("sm2.sealed");
        std::fs::write(
            &sealed,
            crate::auth::sealed_keys::seal(&mk, pair.private_pem.as_bytes()).unwrap(),
        )
        .unwrap();
        let settings = BTreeMap::from([(
            "w".to_string(),
            signed("https://127.0.0.1:1", false, &sealed),
        )]);
        assert!(Connectors::from_settings(&settings, &FileRoutes::default(), &mk, alone()).is_ok());
        // ... and not with another master key.
        assert!(
            Connectors::from_settings(&settings, &FileRoutes::default(), &master(), alone())
                .is_err()
        );
        // With allow_plaintext the plain key is read (simulators, tests).
        assert!(build(signed("http://127.0.0.1:1", true, &key)).is_ok());
    }

    #[test]
    fn warnings_name_plaintext_routes_and_certificates_about_to_expire() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new("CA").unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let soon = write(
            "soon.pem",
            &pki.server_valid(&["a.example"], Validity::days(10))
                .unwrap()
                .cert_pem,
        );
        let later = write("later.pem", &pki.server(&["b.example"]).unwrap().cert_pem);
        let expired = write(
            "expired.pem",
            &pki.server_valid(&["c.example"], Validity::expired())
                .unwrap()
                .cert_pem,
        );
        let with_ca = |ca: &std::path::Path| ConnectorSettings {
            tls: TlsSettings {
                ca_file: Some(ca.to_path_buf()),
                ..Default::default()
            },
            ..water("https://a.example:443")
        };
        let settings = BTreeMap::from([
            (
                "plain".to_string(),
                ConnectorSettings {
                    allow_plaintext: true,
                    ..water("http://127.0.0.1:9101")
                },
            ),
            ("soon".to_string(), with_ca(&soon)),
            ("later".to_string(), with_ca(&later)),
            ("expired".to_string(), with_ca(&expired)),
            ("missing".to_string(), with_ca(&dir.path().join("nope.pem"))),
        ]);
        let w = security_warnings(&settings, Utc::now());
        assert_eq!(w.len(), 4, "{w:#?}");
        assert!(
            w.iter()
                .any(|l| l.starts_with("connector plain: plaintext http://")),
            "{w:#?}"
        );
        assert!(
            w.iter()
                .any(|l| l.starts_with("connector soon:") && l.contains("days left")),
            "{w:#?}"
        );
        assert!(
            w.iter()
                .any(|l| l.starts_with("connector expired:") && l.contains("expired on")),
            "{w:#?}"
        );
        assert!(
            w.iter().any(|l| l.starts_with("connector missing:")),
            "{w:#?}"
        );
        assert!(!w.iter().any(|l| l.contains("connector later")), "{w:#?}");
    }
}
