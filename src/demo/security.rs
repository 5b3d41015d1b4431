//! How the demo secures its counterparts, as a biller's onboarding would:
//! a certificate authority of its own, the water company over HTTPS with
//! mutual TLS signing with SM2/SM3, the electricity company over HTTPS
//! signing with RSA-SHA256, the hub over HTTPS with its key pinned, the gas
//! link over TLS. billclear's private keys are written sealed with the
//! demo's master key, as `billclear keys seal` writes them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use biller_connectors::transport::tls::spki_sha256;
use biller_connectors::{SignatureScheme, SignatureSettings, Signer, TlsSettings};
use biller_sim::http::{server_tls, SimSecurity};
use biller_sim::pki::{rsa_key_pair, sm2_key_pair, KeyPairPem, Pki};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::auth::sealed_keys;
use crate::auth::secrets::MasterKey;

/// One counterpart: how its simulator serves, how billclear connects.
pub(super) struct Side {
    pub sim: SimSecurity,
    pub tls: TlsSettings,
    pub signature: SignatureSettings,
}

pub(super) struct Secured {
    pub water: Side,
    pub power: Side,
    pub hub: Side,
    pub gas: Side,
}

struct Files<'a> {
    dir: &'a Path,
    master: &'a MasterKey,
}

impl Files<'_> {
    fn public(&self, name: &str, pem: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(name);
        std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// A private key of billclear's, sealed with the master key.
    fn sealed(&self, name: &str, pem: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(name);
        let text = sealed_keys::seal(self.master, pem.as_bytes())?;
        crate::auth::secrets::write_private(&path, &text)?;
        Ok(path)
    }
}

fn io(e: String) -> anyhow::Error {
    anyhow::anyhow!(e)
}

/// Generates the demo's certificates and keys into `dir`.
pub(super) async fn secure(dir: &Path, master: &MasterKey) -> anyhow::Result<Secured> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // RSA key generation takes a moment: both keys beside the rest.
    let rsa = |bits| tokio::task::spawn_blocking(move || rsa_key_pair(bits));
    let (ours_rsa, power_rsa) = (rsa(2048), rsa(2048));
    let files = Files { dir, master };
    let pki = Pki::new("billclear demo CA").map_err(io)?;
    let ca = files.public("ca.pem", &pki.ca_pem())?;
    let server = pki.server(&["127.0.0.1", "localhost"]).map_err(io)?;
    let client = pki.client("billclear").map_err(io)?;
    let client_cert = files.public("billclear-client.pem", &client.cert_pem)?;
    let client_key = files.sealed("billclear-client.key.sealed", &client.key_pem)?;
    let tls_server = |client_ca: Option<&str>| {
        server_tls(
            server.cert_pem.as_bytes(),
            server.key_pem.as_bytes(),
            client_ca.map(str::as_bytes),
            &[],
        )
        .map_err(io)
    };
    let verify_only = TlsSettings {
        ca_file: Some(ca.clone()),
        ..Default::default()
    };

    // Water: mutual TLS, SM2 with SM3.
    let ours_sm2 = sm2_key_pair().map_err(io)?;
    let water_sm2 = sm2_key_pair().map_err(io)?;
    let water = Side {
        sim: SimSecurity {
            tls: Some(tls_server(Some(&pki.ca_pem()))?),
            signer: Some(Arc::new(
                Signer::sm2(
                    water_sm2.private_pem.as_bytes(),
                    &[ours_sm2.public_pem.clone().into_bytes()],
                    biller_connectors::signature::DEFAULT_SM2_SIGNER_ID,
                    biller_connectors::signature::DEFAULT_SM2_SIGNER_ID,
                )
                .map_err(io)?,
            )),
        },
        tls: TlsSettings {
            ca_file: Some(ca.clone()),
            client_cert_file: Some(client_cert),
            client_key_file: Some(client_key),
            pin_sha256: Vec::new(),
        },
        signature: signature(
            &files,
            SignatureScheme::Sm2Sm3,
            "sm2",
            &ours_sm2,
            "water",
            &water_sm2,
        )?,
    };

    // Electricity: HTTPS, RSA-SHA256 (PKCS#1 v1.5).
    let ours_rsa = ours_rsa.await?.map_err(io)?;
    let power_rsa = power_rsa.await?.map_err(io)?;
    let power = Side {
        sim: SimSecurity {
            tls: Some(tls_server(None)?),
            signer: Some(Arc::new(
                Signer::rsa(
                    power_rsa.private_pem.as_bytes(),
                    &[ours_rsa.public_pem.clone().into_bytes()],
                )
                .map_err(io)?,
            )),
        },
        tls: verify_only.clone(),
        signature: signature(
            &files,
            SignatureScheme::RsaSha256,
            "rsa",
            &ours_rsa,
            "power",
            &power_rsa,
        )?,
    };

    // The hub: HTTPS with its server key pinned, HMAC as before.
    let leaf = CertificateDer::from_pem_slice(server.cert_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("demo server certificate: {e}"))?;
    let hub = Side {
        sim: SimSecurity {
            tls: Some(tls_server(None)?),
            signer: None,
        },
        tls: TlsSettings {
            pin_sha256: vec![spki_sha256(leaf.as_ref()).map_err(io)?],
            ..verify_only.clone()
        },
        signature: SignatureSettings::default(),
    };

    // Gas: the TCP link inside TLS, MAC'd as before.
    let gas = Side {
        sim: SimSecurity {
            tls: Some(tls_server(None)?),
            signer: None,
        },
        tls: verify_only,
        signature: SignatureSettings::default(),
    };
    Ok(Secured {
        water,
        power,
        hub,
        gas,
    })
}

/// billclear's key (sealed) and the biller's public key, as files.
fn signature(
    files: &Files<'_>,
    scheme: SignatureScheme,
    tag: &str,
    ours: &KeyPairPem,
    biller: &str,
    theirs: &KeyPairPem,
) -> anyhow::Result<SignatureSettings> {
    Ok(SignatureSettings {
        scheme,
        private_key_file: Some(
            files.sealed(&format!("billclear-{tag}.key.sealed"), &ours.private_pem)?,
        ),
        biller_keys: vec![files.public(&format!("{biller}-{tag}.pub.pem"), &theirs.public_pem)?],
        signer_id: None,
        biller_signer_id: None,
    })
}
