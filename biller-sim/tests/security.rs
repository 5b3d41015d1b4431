//! Transport security and signature schemes against the real simulators,
//! for every HTTP family (water, electricity, hub) and the gas link:
//! HTTPS and mutual TLS that work; every TLS failure before the request
//! went out (unknown CA, expired certificate, wrong name, pin mismatch, no
//! client certificate) is "not applied" and the biller saw nothing; RSA and
//! SM2 signed payments credited; an answer signed with a key we do not
//! hold is UNKNOWN, never a credit; two biller keys during a rotation.

use std::path::PathBuf;
use std::sync::Arc;

use biller_connectors::signature::DEFAULT_SM2_SIGNER_ID;
use biller_connectors::transport::tls::spki_sha256;
use biller_connectors::{
    build, Connector, ConnectorError, ConnectorSettings, NextStep, PlainKeyFiles, SignatureScheme,
    SignatureSettings, Signer, TlsSettings,
};
use biller_sim::http::{server_tls, SimSecurity};
use biller_sim::pki::{sm2_key_pair, KeyPairPem, Pki, Validity};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

mod support;

use support::{order, Family};

const SECRET: &str = "security-test-secret";

const FAMILIES: [Family; 3] = Family::HTTP;

fn assert_next<T: std::fmt::Debug>(r: &Result<T, ConnectorError>, next: NextStep) -> String {
    match r {
        Err(e) => {
            assert_eq!(e.next_step(), next, "{e}");
            e.to_string()
        }
        Ok(v) => panic!("expected {next:?}, got Ok({v:?})"),
    }
}

/// Files of one test: the PKI's certificates and keys on disk.
struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

fn tls_sim(cert: &biller_sim::pki::Issued, client_ca: Option<&str>) -> SimSecurity {
    SimSecurity {
        tls: Some(
            server_tls(
                cert.cert_pem.as_bytes(),
                cert.key_pem.as_bytes(),
                client_ca.map(str::as_bytes),
                &[],
            )
            .unwrap(),
        ),
        signer: None,
    }
}

fn settings(family: Family, base_url: String, tls: TlsSettings) -> ConnectorSettings {
    ConnectorSettings {
        kind: family.kind(),
        base_url,
        key_id: "billclear".into(),
        secret: SECRET.into(),
        timeout_ms: 2_000,
        allow_plaintext: false,
        tls,
        signature: SignatureSettings::default(),
        ..Default::default()
    }
}

fn connector(id: &str, s: &ConnectorSettings) -> Arc<dyn Connector> {
    build(id, s, &PlainKeyFiles).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn https_works_and_every_tls_failure_is_not_applied() {
    let pki = Pki::new("test CA").unwrap();
    let stranger = Pki::new("someone else's CA").unwrap();
    let dir = Dir::new();
    let ca = dir.write("ca.pem", &pki.ca_pem());
    let other_ca = dir.write("other-ca.pem", &stranger.ca_pem());
    let good = pki.server(&["127.0.0.1"]).unwrap();
    let expired = pki
        .server_valid(&["127.0.0.1"], Validity::expired())
        .unwrap();
    let misnamed = pki.server(&["billing.example.com"]).unwrap();
    let trust = |ca: &PathBuf| TlsSettings {
        ca_file: Some(ca.clone()),
        ..Default::default()
    };
    for family in FAMILIES {
        // The happy path: verified against our CA, credited.
        let sim = family.start(SECRET, tls_sim(&good, None)).await;
        assert!(sim.base_url().starts_with("https://"), "{}", sim.base_url());
        let c = connector("ok", &settings(family, sim.base_url(), trust(&ca)));
        c.health()
            .await
            .unwrap_or_else(|e| panic!("{family:?}: {e}"));
        let credit = c.pay(&order(family.biller(), true)).await;
        assert!(credit.is_ok(), "{family:?}: {credit:?}");
        assert_eq!(sim.credits().len(), 1);

        // A CA we do not trust; the system roots do not know ours either.
        for tls in [trust(&other_ca), TlsSettings::default()] {
            let c = connector("untrusted", &settings(family, sim.base_url(), tls));
            let why = assert_next(&c.pay(&order(family.biller(), true)).await, NextStep::Retry);
            assert!(why.contains("not sent"), "{family:?}: {why}");
            assert!(
                why.contains("UnknownIssuer") || why.contains("certificate"),
                "{why}"
            );
        }
        // Pinned to another key: refused although the chain verifies.
        let pinned = TlsSettings {
            pin_sha256: vec!["47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into()],
            ..trust(&ca)
        };
        let c = connector("pinned", &settings(family, sim.base_url(), pinned));
        let why = assert_next(&c.pay(&order(family.biller(), true)).await, NextStep::Retry);
        assert!(why.contains("pin"), "{family:?}: {why}");
        // Pinned to its own key: fine.
        let leaf = CertificateDer::from_pem_slice(good.cert_pem.as_bytes()).unwrap();
        let right_pin = TlsSettings {
            pin_sha256: vec![spki_sha256(leaf.as_ref()).unwrap()],
            ..trust(&ca)
        };
        let c = connector("pinned-right", &settings(family, sim.base_url(), right_pin));
        assert!(
            c.pay(&order(family.biller(), true)).await.is_ok(),
            "{family:?}"
        );
        assert_eq!(
            sim.pay_requests(),
            2,
            "{family:?}: no refused call reached the biller"
        );
        assert_eq!(sim.credits().len(), 2);

        // Expired, and issued for another name.
        for (what, cert) in [("expired", &expired), ("misnamed", &misnamed)] {
            let sim = family.start(SECRET, tls_sim(cert, None)).await;
            let c = connector(what, &settings(family, sim.base_url(), trust(&ca)));
            let why = assert_next(&c.pay(&order(family.biller(), true)).await, NextStep::Retry);
            assert!(why.contains("not sent"), "{family:?} {what}: {why}");
            let expected = if what == "expired" {
                "expired"
            } else {
                "not valid for name"
            };
            assert!(why.contains(expected), "{family:?} {what}: {why}");
            assert_eq!(sim.pay_requests(), 0, "{family:?} {what}");
            assert_eq!(sim.credits().len(), 0);
        }

        // Plain http:// is refused unless the connector allows it.
        let plain = family.start(SECRET, SimSecurity::default()).await;
        let err = build(
            "plain",
            &settings(family, plain.base_url(), trust(&ca)),
            &PlainKeyFiles,
        )
        .err()
        .expect("plaintext refused");
        assert!(err.to_string().contains("allow_plaintext"), "{err}");
        // And https:// to a plaintext server: the handshake fails, nothing sent.
        let c = connector(
            "https-to-plain",
            &settings(
                family,
                plain.base_url().replace("http://", "https://"),
                trust(&ca),
            ),
        );
        assert_next(&c.pay(&order(family.biller(), true)).await, NextStep::Retry);
        assert_eq!(plain.pay_requests(), 0);
    }
}

#[tokio::test]
async fn mutual_tls_needs_our_client_certificate() {
    let pki = Pki::new("test CA").unwrap();
    let stranger = Pki::new("another CA").unwrap();
    let dir = Dir::new();
    let ca = dir.write("ca.pem", &pki.ca_pem());
    let server = pki.server(&["127.0.0.1", "localhost"]).unwrap();
    let ours = pki.client("billclear").unwrap();
    let foreign = stranger.client("billclear").unwrap();
    let cert = dir.write("client.pem", &ours.cert_pem);
    let key = dir.write("client.key", &ours.key_pem);
    let foreign_cert = dir.write("foreign.pem", &foreign.cert_pem);
    let foreign_key = dir.write("foreign.key", &foreign.key_pem);
    for family in FAMILIES {
        let sim = family
            .start(SECRET, tls_sim(&server, Some(&pki.ca_pem())))
            .await;
        let with = |cert: Option<&PathBuf>, key: Option<&PathBuf>| TlsSettings {
            ca_file: Some(ca.clone()),
            client_cert_file: cert.cloned(),
            client_key_file: key.cloned(),
            pin_sha256: Vec::new(),
        };
        // No client certificate, or one from a CA the biller does not
        // accept: refused in the handshake, the request never read.
        for (what, tls) in [
            ("none", with(None, None)),
            ("foreign", with(Some(&foreign_cert), Some(&foreign_key))),
        ] {
            let c = connector(what, &settings(family, sim.base_url(), tls));
            let why = assert_next(&c.pay(&order(family.biller(), true)).await, NextStep::Retry);
            assert!(why.contains("not sent"), "{family:?} {what}: {why}");
            assert_next(&c.health().await, NextStep::Retry);
        }
        assert_eq!(sim.pay_requests(), 0, "{family:?}");
        // Ours: credited.
        let c = connector(
            "mtls",
            &settings(family, sim.base_url(), with(Some(&cert), Some(&key))),
        );
        let r = c.pay(&order(family.biller(), true)).await;
        assert!(r.is_ok(), "{family:?}: {r:?}");
        assert_eq!(sim.credits().len(), 1);
        // A certificate without its key is a configuration error.
        let err = build(
            "half",
            &settings(family, sim.base_url(), with(Some(&cert), None)),
            &PlainKeyFiles,
        )
        .err()
        .expect("refused");
        assert!(err.to_string().contains("client_key_file"), "{err}");
    }
}

#[tokio::test]
async fn tls_12_only_billers_are_reached() {
    let pki = Pki::new("test CA").unwrap();
    let dir = Dir::new();
    let ca = dir.write("ca.pem", &pki.ca_pem());
    let server = pki.server(&["127.0.0.1"]).unwrap();
    let security = SimSecurity {
        tls: Some(
            server_tls(
                server.cert_pem.as_bytes(),
                server.key_pem.as_bytes(),
                None,
                &[&rustls::version::TLS12],
            )
            .unwrap(),
        ),
        signer: None,
    };
    let sim = Family::Water.start(SECRET, security).await;
    let tls = TlsSettings {
        ca_file: Some(ca),
        ..Default::default()
    };
    let c = connector("tls12", &settings(Family::Water, sim.base_url(), tls));
    assert!(c.pay(&order("sh-water", true)).await.is_ok());
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../biller-connectors/tests/fixtures/keys")
        .join(name)
}

fn read(p: &PathBuf) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

/// Our key pair and the biller's, for one scheme: (our private key file,
/// our public key PEM, biller private PEM, biller public key file).
struct Keys {
    ours_private: PathBuf,
    ours_public: Vec<u8>,
    biller_private: Vec<u8>,
    biller_public: PathBuf,
    stranger_private: Vec<u8>,
}

fn keys(scheme: SignatureScheme, dir: &Dir) -> Keys {
    match scheme {
        SignatureScheme::RsaSha256 => Keys {
            ours_private: fixture("billclear-rsa.pem"),
            ours_public: read(&fixture("billclear-rsa.pub.pem")),
            // The biller's key in PKCS#1, as some billers hand it out.
            biller_private: read(&fixture("biller-rsa-pkcs1.pem")),
            biller_public: fixture("biller-rsa.pub.pem"),
            // A stranger: our own key signing as if it were the biller.
            stranger_private: read(&fixture("billclear-rsa.pem")),
        },
        _ => {
            let pair = |name: &str| -> (KeyPairPem, PathBuf, PathBuf) {
                let p = sm2_key_pair().unwrap();
                let private = dir.write(&format!("{name}.key"), &p.private_pem);
                let public = dir.write(&format!("{name}.pub"), &p.public_pem);
                (p, private, public)
            };
            let (ours, ours_private, _) = pair("ours");
            let (biller, _, biller_public) = pair("biller");
            let (stranger, _, _) = pair("stranger");
            Keys {
                ours_private,
                ours_public: ours.public_pem.into_bytes(),
                biller_private: biller.private_pem.into_bytes(),
                biller_public,
                stranger_private: stranger.private_pem.into_bytes(),
            }
        }
    }
}

fn sim_signer(scheme: SignatureScheme, private: &[u8], ours_public: &[u8]) -> Arc<Signer> {
    Arc::new(
        match scheme {
            SignatureScheme::RsaSha256 => Signer::rsa(private, &[ours_public.to_vec()]),
            _ => Signer::sm2(
                private,
                &[ours_public.to_vec()],
                DEFAULT_SM2_SIGNER_ID,
                DEFAULT_SM2_SIGNER_ID,
            ),
        }
        .unwrap(),
    )
}

#[tokio::test]
async fn rsa_and_sm2_signed_payments_are_credited_and_bad_signatures_are_unknown() {
    let dir = Dir::new();
    for scheme in [SignatureScheme::RsaSha256, SignatureScheme::Sm2Sm3] {
        let k = keys(scheme, &dir);
        for family in FAMILIES {
            let signed = |signer: Arc<Signer>| SimSecurity {
                tls: None,
                signer: Some(signer),
            };
            let signature = SignatureSettings {
                scheme,
                private_key_file: Some(k.ours_private.clone()),
                biller_keys: vec![k.biller_public.clone()],
                ..Default::default()
            };
            let plain_settings = |url: String| ConnectorSettings {
                allow_plaintext: true,
                secret: String::new(),
                signature: signature.clone(),
                ..settings(family, url, TlsSettings::default())
            };
            // Signed both ways: credited.
            let sim = family
                .start(
                    SECRET,
                    signed(sim_signer(scheme, &k.biller_private, &k.ours_public)),
                )
                .await;
            let c = connector("signed", &plain_settings(sim.base_url()));
            let r = c.pay(&order(family.biller(), true)).await;
            assert!(r.is_ok(), "{scheme} {family:?}: {r:?}");
            c.health().await.unwrap();

            // The biller answers with a key we were never given: the payment
            // was applied, but the answer cannot be trusted: UNKNOWN.
            let rogue = family
                .start(
                    SECRET,
                    signed(sim_signer(scheme, &k.stranger_private, &k.ours_public)),
                )
                .await;
            let c = connector("rogue", &plain_settings(rogue.base_url()));
            let why = assert_next(
                &c.pay(&order(family.biller(), true)).await,
                NextStep::Unknown,
            );
            assert!(
                why.contains("signature") || why.contains("MAC"),
                "{scheme} {family:?}: {why}"
            );
            assert_eq!(rogue.credits().len(), 1, "applied, but not trusted");

            // The biller does not know the key we sign with: refused, not
            // applied (it knows only the stranger's public key).
            let stranger_public = match scheme {
                SignatureScheme::RsaSha256 => read(&k.biller_public),
                _ => {
                    // Any other SM2 public key.
                    sm2_key_pair().unwrap().public_pem.into_bytes()
                }
            };
            let picky = family
                .start(
                    SECRET,
                    signed(sim_signer(scheme, &k.biller_private, &stranger_public)),
                )
                .await;
            let c = connector("unknown-to-biller", &plain_settings(picky.base_url()));
            let r = c.pay(&order(family.biller(), true)).await;
            assert!(r.is_err(), "{scheme} {family:?}");
            assert_ne!(
                r.as_ref().unwrap_err().next_step(),
                NextStep::Unknown,
                "{r:?}"
            );
            assert_eq!(picky.credits().len(), 0);
        }
    }
}

#[tokio::test]
async fn two_biller_keys_are_valid_during_a_rotation() {
    let dir = Dir::new();
    let k = keys(SignatureScheme::Sm2Sm3, &dir);
    let next = sm2_key_pair().unwrap();
    let next_public = dir.write("next.pub", &next.public_pem);
    let signature = SignatureSettings {
        scheme: SignatureScheme::Sm2Sm3,
        private_key_file: Some(k.ours_private.clone()),
        biller_keys: vec![k.biller_public.clone(), next_public],
        ..Default::default()
    };
    for biller_private in [&k.biller_private, &next.private_pem.clone().into_bytes()] {
        let sim = Family::Water
            .start(
                SECRET,
                SimSecurity {
                    tls: None,
                    signer: Some(sim_signer(
                        SignatureScheme::Sm2Sm3,
                        biller_private,
                        &k.ours_public,
                    )),
                },
            )
            .await;
        let s = ConnectorSettings {
            allow_plaintext: true,
            signature: signature.clone(),
            ..settings(Family::Water, sim.base_url(), TlsSettings::default())
        };
        assert!(connector("rotating", &s)
            .pay(&order("sh-water", true))
            .await
            .is_ok());
    }
}

#[tokio::test]
async fn the_gas_link_runs_over_tls() {
    let pki = Pki::new("test CA").unwrap();
    let stranger = Pki::new("another CA").unwrap();
    let dir = Dir::new();
    let ca = dir.write("ca.pem", &pki.ca_pem());
    let other_ca = dir.write("other.pem", &stranger.ca_pem());
    let server = pki.server(&["127.0.0.1"]).unwrap();
    let sim = Family::Gas.start(SECRET, tls_sim(&server, None)).await;
    assert!(sim.base_url().starts_with("tls://"), "{}", sim.base_url());
    let gas = |ca: &PathBuf| {
        settings(
            Family::Gas,
            sim.base_url(),
            TlsSettings {
                ca_file: Some(ca.clone()),
                ..Default::default()
            },
        )
    };
    let c = connector("gas-tls", &gas(&ca));
    assert!(c.pay(&order("sh-gas", true)).await.is_ok());
    let c = connector("gas-untrusted", &gas(&other_ca));
    let why = assert_next(&c.pay(&order("sh-gas", true)).await, NextStep::Retry);
    assert!(why.contains("not sent") || why.contains("TLS"), "{why}");
    assert_eq!(sim.pay_requests(), 1);
    // tcp:// needs allow_plaintext.
    let plain = ConnectorSettings {
        base_url: sim.base_url().replace("tls://", "tcp://"),
        ..gas(&ca)
    };
    assert!(build("gas-plain", &plain, &PlainKeyFiles).is_err());
}
