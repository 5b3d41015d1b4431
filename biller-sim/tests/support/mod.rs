//! What the connector-against-simulator suites share: every online family
//! with its simulator started on a random port, and an order for one of
//! its customers.

use biller_connectors::{ConnectorKind, PayOrder};
use biller_sim::{
    book_for, CreditRecord, Faults, GasSim, GasSimConfig, HubSim, HubSimConfig, PowerSim,
    PowerSimConfig, SimSecurity, WaterSim, WaterSimConfig,
};
use rust_decimal::Decimal;

/// An online connector family and its simulator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Family {
    Water,
    Power,
    Hub,
    Gas,
}

impl Family {
    /// The families spoken over HTTP(S).
    #[allow(dead_code)] // not every suite uses both lists
    pub const HTTP: [Family; 3] = [Family::Water, Family::Power, Family::Hub];
    /// Every online family.
    #[allow(dead_code)]
    pub const ALL: [Family; 4] = [Family::Water, Family::Power, Family::Hub, Family::Gas];

    pub fn kind(self) -> ConnectorKind {
        match self {
            Family::Water => ConnectorKind::WaterJson,
            Family::Power => ConnectorKind::PowerXml,
            Family::Hub => ConnectorKind::HubJson,
            Family::Gas => ConnectorKind::GasTcp,
        }
    }

    /// The biller paid through it in the suites.
    pub fn biller(self) -> &'static str {
        match self {
            Family::Water | Family::Hub => "sh-water",
            Family::Power => "sh-power",
            Family::Gas => "sh-gas",
        }
    }

    /// Its simulator, with the default book, secured as `security` says
    /// (the gas link takes only its TLS: it is MAC'd with the secret).
    pub async fn start(self, secret: &str, security: SimSecurity) -> Running {
        let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
        let today = chrono::Utc::now().date_naive();
        match self {
            Family::Water => {
                let mut c = WaterSimConfig::new("billclear", secret);
                c.book = book_for(&["sh-water"], today);
                c.security = security;
                Running::Water(WaterSim::start(bind().await.unwrap(), c).await.unwrap())
            }
            Family::Power => {
                let mut c = PowerSimConfig::new("billclear", secret);
                c.book = book_for(&["sh-power"], today);
                c.security = security;
                Running::Power(PowerSim::start(bind().await.unwrap(), c).await.unwrap())
            }
            Family::Hub => {
                let mut c = HubSimConfig::new("billclear", secret);
                c.book = biller_sim::hub::default_hub_book(today);
                c.security = security;
                Running::Hub(HubSim::start(bind().await.unwrap(), c).await.unwrap())
            }
            Family::Gas => {
                assert!(security.signer.is_none(), "the gas link is MAC'd only");
                let mut c = GasSimConfig::new("billclear", secret);
                c.book = book_for(&["sh-gas"], today);
                c.tls = security.tls;
                let (link, admin) = (bind().await.unwrap(), bind().await.unwrap());
                Running::Gas(GasSim::start(link, admin, c).await.unwrap())
            }
        }
    }
}

/// A running simulator of any family.
pub enum Running {
    Water(WaterSim),
    Power(PowerSim),
    Hub(HubSim),
    Gas(GasSim),
}

#[allow(dead_code)] // not every suite uses every method
impl Running {
    /// Its `base_url` (the link's address for gas).
    pub fn base_url(&self) -> String {
        match self {
            Running::Water(s) => s.base_url(),
            Running::Power(s) => s.base_url(),
            Running::Hub(s) => s.base_url(),
            Running::Gas(s) => s.address(),
        }
    }

    pub fn pay_requests(&self) -> u64 {
        match self {
            Running::Water(s) => s.pay_requests(),
            Running::Power(s) => s.pay_requests(),
            Running::Hub(s) => s.pay_requests(),
            Running::Gas(s) => s.pay_requests(),
        }
    }

    pub fn credits(&self) -> Vec<CreditRecord> {
        match self {
            Running::Water(s) => s.credits(),
            Running::Power(s) => s.credits(),
            Running::Hub(s) => s.credits(),
            Running::Gas(s) => s.credits(),
        }
    }

    /// How many times the payment `reference` was credited.
    pub fn credited(&self, reference: &str) -> usize {
        self.credits()
            .iter()
            .filter(|c| c.our_reference == reference)
            .count()
    }

    pub fn set_faults(&self, f: Faults) {
        match self {
            Running::Water(s) => s.set_faults(f),
            Running::Power(s) => s.set_faults(f),
            Running::Hub(s) => s.set_faults(f),
            Running::Gas(s) => s.set_faults(f),
        }
    }
}

/// A payment of 88.50 CNY to an open (or closed) account of `biller`'s
/// default book, under a new reference.
pub fn order(biller: &str, open: bool) -> PayOrder {
    let (_, account) = book_for(&[biller], chrono::Utc::now().date_naive())
        .into_iter()
        .find(|(_, a)| a.open == open)
        .expect("the default book has open and closed accounts");
    PayOrder {
        our_reference: uuid::Uuid::new_v4().to_string(),
        biller_id: biller.into(),
        account_number: account.account_number,
        amount: Decimal::new(8850, 2),
        currency: "CNY".into(),
        bill_reference: None,
    }
}
