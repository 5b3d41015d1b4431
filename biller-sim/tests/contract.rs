//! One contract every online connector keeps, run with the same cases
//! against its simulator over TLS: credited, refused, busy, down, timeout,
//! applied-then-answer-lost, echo mismatch, duplicate answer, a
//! counterpart that does not know our key, and a server we do not trust.
//! A new connector gets the suite by joining `Family` in tests/support (its
//! kind, biller and simulator) and `Family::ALL`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use biller_connectors::{
    build, Connector, ConnectorError, ConnectorKind, ConnectorSettings, NextStep, PayOrder,
    PlainKeyFiles, RemoteStatus, TlsSettings,
};
use biller_sim::http::server_tls;
use biller_sim::pki::Pki;
use biller_sim::{Faults, SimSecurity};

mod support;

use support::{order, Family, Running};

const SECRET: &str = "contract-secret";
const TIMEOUT_MS: u64 = 400;

fn next<T: std::fmt::Debug>(r: &Result<T, ConnectorError>) -> Option<NextStep> {
    r.as_ref().err().map(ConnectorError::next_step)
}

struct Case<'a> {
    kind: ConnectorKind,
    biller: &'static str,
    sim: &'a Running,
    ca: &'a PathBuf,
}

impl Case<'_> {
    fn connector(&self, secret: &str, ca: &Path) -> std::sync::Arc<dyn Connector> {
        let settings = ConnectorSettings {
            kind: self.kind,
            base_url: self.sim.base_url(),
            key_id: "billclear".into(),
            secret: secret.into(),
            timeout_ms: TIMEOUT_MS,
            tls: TlsSettings {
                ca_file: Some(ca.to_path_buf()),
                ..Default::default()
            },
            ..Default::default()
        };
        build(self.kind.as_str(), &settings, &PlainKeyFiles).unwrap()
    }

    fn ours(&self) -> std::sync::Arc<dyn Connector> {
        self.connector(SECRET, self.ca)
    }

    /// Pays under `faults` (cleared afterwards), returning the order too.
    async fn pay_with(
        &self,
        faults: Faults,
    ) -> (PayOrder, Result<biller_connectors::Credit, ConnectorError>) {
        let o = order(self.biller, true);
        self.sim.set_faults(faults);
        let r = self.ours().pay(&o).await;
        self.sim.set_faults(Faults::default());
        (o, r)
    }

    /// The status inquiry, once the biller has had time to finish.
    async fn status_after(&self, o: &PayOrder, wait: Duration) -> RemoteStatus {
        tokio::time::sleep(wait).await;
        self.ours()
            .status(o)
            .await
            .unwrap_or_else(|e| panic!("{:?}: status: {e}", self.kind))
    }
}

#[tokio::test]
async fn every_connector_keeps_the_contract() {
    let pki = Pki::new("contract CA").unwrap();
    let stranger = Pki::new("a CA nobody trusts").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pki.ca_pem()).unwrap();
    let other_ca = dir.path().join("other.pem");
    std::fs::write(&other_ca, stranger.ca_pem()).unwrap();
    let cert = pki.server(&["127.0.0.1"]).unwrap();
    let tls = SimSecurity {
        tls: Some(
            server_tls(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes(), None, &[]).unwrap(),
        ),
        signer: None,
    };
    // A new online connector joins `Family` (tests/support) and this list.
    for family in Family::ALL {
        let (kind, biller) = (family.kind(), family.biller());
        let sim = family.start(SECRET, tls.clone()).await;
        let c = Case {
            kind,
            biller,
            sim: &sim,
            ca: &ca,
        };
        let k = format!("{kind}");

        // Credited: the answer echoes what was sent; the status agrees.
        let (o, r) = c.pay_with(Faults::default()).await;
        let credit = r.unwrap_or_else(|e| panic!("{k} credited: {e}"));
        assert!(!credit.biller_reference.is_empty(), "{k}");
        assert!(
            matches!(
                c.status_after(&o, Duration::ZERO).await,
                RemoteStatus::Credited(_)
            ),
            "{k}"
        );
        assert_eq!(sim.credited(&o.our_reference), 1, "{k}");

        // Refused: a closed account is a refusal for good, nothing credited.
        let closed = order(biller, false);
        let r = c.ours().pay(&closed).await;
        assert_eq!(next(&r), Some(NextStep::Fail), "{k} refused: {r:?}");
        assert_eq!(sim.credited(&closed.our_reference), 0, "{k}");

        // Busy and down: not applied, try again later.
        for (what, faults) in [
            (
                "busy",
                Faults {
                    error_rate: 1.0,
                    ..Faults::default()
                },
            ),
            (
                "down",
                Faults {
                    outage: true,
                    ..Faults::default()
                },
            ),
        ] {
            let (o, r) = c.pay_with(faults).await;
            assert_eq!(next(&r), Some(NextStep::Retry), "{k} {what}: {r:?}");
            assert_eq!(sim.credited(&o.our_reference), 0, "{k} {what}");
        }

        // Timeout: unknown; the biller applied it late; the status finds it.
        let (o, r) = c
            .pay_with(Faults {
                latency_ms: TIMEOUT_MS + 300,
                ..Faults::default()
            })
            .await;
        assert_eq!(next(&r), Some(NextStep::Unknown), "{k} timeout: {r:?}");
        let s = c
            .status_after(&o, Duration::from_millis(TIMEOUT_MS + 400))
            .await;
        assert!(
            matches!(s, RemoteStatus::Credited(_)),
            "{k} timeout then: {s:?}"
        );

        // Applied, then the answer lost: unknown, then credited by status.
        let (o, r) = c
            .pay_with(Faults {
                drop_response_next: 1,
                ..Faults::default()
            })
            .await;
        assert_eq!(next(&r), Some(NextStep::Unknown), "{k} answer lost: {r:?}");
        let s = c.status_after(&o, Duration::ZERO).await;
        assert!(
            matches!(s, RemoteStatus::Credited(_)),
            "{k} answer lost then: {s:?}"
        );
        assert_eq!(sim.credited(&o.our_reference), 1, "{k}");

        // The answer echoes another amount: never a credit on that answer.
        let (_, r) = c
            .pay_with(Faults {
                misecho_next: 1,
                ..Faults::default()
            })
            .await;
        assert_eq!(next(&r), Some(NextStep::Unknown), "{k} echo: {r:?}");

        // An answer sent twice (where the transport can): one credit, and
        // the next payment gets its own answer.
        let (o, r) = c
            .pay_with(Faults {
                duplicate_answer_next: 1,
                ..Faults::default()
            })
            .await;
        assert!(r.is_ok(), "{k} duplicate answer: {r:?}");
        let (o2, r2) = c.pay_with(Faults::default()).await;
        assert!(r2.is_ok(), "{k}: {r2:?}");
        assert_eq!(sim.credited(&o2.our_reference), 1, "{k}");
        assert_eq!(sim.credited(&o.our_reference), 1, "{k}");

        // A counterpart that does not know our key: not applied, never
        // unknown, never a credit.
        let o = order(biller, true);
        let r = c.connector("not-our-secret", &ca).pay(&o).await;
        assert!(
            matches!(next(&r), Some(NextStep::Retry) | Some(NextStep::Fail)),
            "{k} bad key: {r:?}"
        );
        assert_eq!(sim.credited(&o.our_reference), 0, "{k}");

        // A server we do not trust: nothing sent at all.
        let before = sim.pay_requests();
        let o = order(biller, true);
        let r = c.connector(SECRET, &other_ca).pay(&o).await;
        assert_eq!(next(&r), Some(NextStep::Retry), "{k} untrusted: {r:?}");
        assert_eq!(
            sim.pay_requests(),
            before,
            "{k}: the untrusted call reached nobody"
        );
        assert_eq!(sim.credited(&o.our_reference), 0, "{k}");
    }
}
