//! Certificates and key pairs for simulators, the demo and the tests: a
//! private certificate authority issuing server and client certificates
//! (rcgen), and RSA and SM2 signing key pairs (RustCrypto), all as PEM.
//! Nothing here is used on a production path.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// A certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A certificate authority of its own (one per demo or test).
pub struct Pki {
    ca_cert: rcgen::Certificate,
    ca_key: KeyPair,
}

/// When an issued certificate is valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From yesterday for `days` days.
    pub fn days(days: i64) -> Validity {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(days),
        }
    }

    /// Expired yesterday (issued a year before).
    pub fn expired() -> Validity {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - Duration::days(366),
            not_after: now - Duration::days(1),
        }
    }
}

impl Pki {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Result<Pki, String> {
        let key = KeyPair::generate().map_err(|e| format!("CA key: {e}"))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| format!("CA params: {e}"))?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let v = Validity::days(3650);
        params.not_before = v.not_before;
        params.not_after = v.not_after;
        let cert = params
            .self_signed(&key)
            .map_err(|e| format!("CA certificate: {e}"))?;
        Ok(Pki {
            ca_cert: cert,
            ca_key: key,
        })
    }

    /// The CA certificate (what a client trusts, or a server accepts
    /// client certificates from).
    pub fn ca_pem(&self) -> String {
        self.ca_cert.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses), valid
    /// for a year.
    pub fn server(&self, names: &[&str]) -> Result<Issued, String> {
        self.server_valid(names, Validity::days(365))
    }

    /// A server certificate for `names` valid as given.
    pub fn server_valid(&self, names: &[&str], validity: Validity) -> Result<Issued, String> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let first = names.first().cloned().unwrap_or_default();
        self.issue(names, &first, ExtendedKeyUsagePurpose::ServerAuth, validity)
    }

    /// A client certificate whose subject is `name`, valid for a year.
    pub fn client(&self, name: &str) -> Result<Issued, String> {
        self.issue(
            Vec::new(),
            name,
            ExtendedKeyUsagePurpose::ClientAuth,
            Validity::days(365),
        )
    }

    fn issue(
        &self,
        names: Vec<String>,
        common_name: &str,
        usage: ExtendedKeyUsagePurpose,
        validity: Validity,
    ) -> Result<Issued, String> {
        let key = KeyPair::generate().map_err(|e| format!("key: {e}"))?;
        let mut params =
            CertificateParams::new(names).map_err(|e| format!("certificate params: {e}"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let cert = params
            .signed_by(&key, &self.ca_cert, &self.ca_key)
            .map_err(|e| format!("certificate: {e}"))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

pub use biller_connectors::signature::{rsa_key_pair, sm2_key_pair, KeyPairPem};
